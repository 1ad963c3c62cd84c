"""Rate–distortion analysis and bit allocation among transmitted streams (``cilight.allocation``).

Implements S. R. Alvar and I. V. Bajić, "Pareto-optimal bit allocation for collaborative
intelligence", IEEE TIP 2021 (and their "Bit allocation for multi-task collaborative
intelligence", IEEE ICASSP 2020):

* task and total distortion (eq 1, eq 17, eq 25) — :mod:`~cilight.allocation.distortion`
* distortion–rate surfaces and their fit (eq 2) — :mod:`~cilight.allocation.surface`
* closed-form, fit-first and baseline allocations (eq 12–15, §V, §VI-A) — :mod:`~cilight.allocation.solve`
* Pareto sets for 2×k and 3×2 systems (Theorems 2 and 4, eq 18, eq 31–33) — :mod:`~cilight.allocation.pareto`
* rate sweeps and the §VI-A experiment — :mod:`~cilight.allocation.sweep`, :mod:`~cilight.allocation.experiment`
* BD-rate and BD-metric (VCEG-M33) — :mod:`~cilight.allocation.bdrate`; rate–accuracy curves
  measured with real bytes and the BD-rate table between models (ICIP 2019 §3) — :mod:`~cilight.allocation.curves`
* tables, plots, CSV/JSON and W&B logging of the results — :mod:`~cilight.allocation.report`
* the per-epoch :class:`RateDistortionCallback` — :mod:`~cilight.allocation.callback`

Rates are in whatever unit the surface was fitted in (bits, kbit, …); every solution comes back
in that unit.
"""

from cilight.allocation.bdrate import MIN_OVERLAP, bd_metric, bd_rate, metric_overlap
from cilight.allocation.callback import RateDistortionCallback
from cilight.allocation.curves import (
    BdRateRow,
    CurvePoint,
    Family,
    RateAccuracyCurves,
    bd_rate_rows,
    measure_curves,
    parse_families,
)
from cilight.allocation.distortion import check_weights, task_distortion, task_weights, total_distortion
from cilight.allocation.experiment import (
                                           METHODS,
                                           REFINE_TUPLES,
                                           TUPLES,
                                           UNREFINED,
                                           AllocationRow,
                                           run_allocation,
                                           scan_budget_line,
                                           task_distortions,
)
from cilight.allocation.pareto import pareto_bounds, pareto_polygon, pareto_segment
from cilight.allocation.solve import allocate, allocate_fit_first, baseline_allocations
from cilight.allocation.surface import DistortionSurface, FitReport, fit_surface
from cilight.allocation.sweep import RateSweep, distortion_metrics, local_rate_tuples, rate_sweep, sample_rate_tuples

__all__ = [
    "METHODS",
    "MIN_OVERLAP",
    "REFINE_TUPLES",
    "TUPLES",
    "UNREFINED",
    "AllocationRow",
    "BdRateRow",
    "CurvePoint",
    "DistortionSurface",
    "Family",
    "FitReport",
    "RateAccuracyCurves",
    "RateDistortionCallback",
    "RateSweep",
    "allocate",
    "allocate_fit_first",
    "baseline_allocations",
    "bd_metric",
    "bd_rate",
    "bd_rate_rows",
    "check_weights",
    "distortion_metrics",
    "fit_surface",
    "local_rate_tuples",
    "measure_curves",
    "metric_overlap",
    "parse_families",
    "pareto_bounds",
    "pareto_polygon",
    "pareto_segment",
    "rate_sweep",
    "run_allocation",
    "sample_rate_tuples",
    "scan_budget_line",
    "task_distortions",
    "task_distortion",
    "task_weights",
    "total_distortion",
]
