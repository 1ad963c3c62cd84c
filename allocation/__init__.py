"""Rate–distortion analysis and bit allocation among transmitted streams (``cilight.allocation``).

Implements ``pareto-optimal-bit-allocation-ci.md`` (and ``bit-allocation-multitask-ci.md``):

* task and total distortion (eq 1, eq 17, eq 25) — :mod:`~cilight.allocation.distortion`
* distortion–rate surfaces and their fit (eq 2) — :mod:`~cilight.allocation.surface`
* closed-form, fit-first and baseline allocations (eq 12–15, §V, §VI-A) — :mod:`~cilight.allocation.solve`
* Pareto sets for 2×k and 3×2 systems (Theorems 2 and 4, eq 18, eq 31–33) — :mod:`~cilight.allocation.pareto`
* rate sweeps and the §VI-A experiment — :mod:`~cilight.allocation.sweep`, :mod:`~cilight.allocation.experiment`
* the per-epoch :class:`RateDistortionCallback` — :mod:`~cilight.allocation.callback`

Rates are in whatever unit the surface was fitted in (bits, kbit, …); every solution comes back
in that unit.
"""

from cilight.allocation.callback import RateDistortionCallback
from cilight.allocation.distortion import task_distortion, task_weights, total_distortion
from cilight.allocation.pareto import pareto_bounds, pareto_polygon, pareto_segment
from cilight.allocation.solve import allocate, allocate_fit_first, baseline_allocations
from cilight.allocation.surface import DistortionSurface, FitReport, fit_surface
from cilight.allocation.sweep import CodecCoder, ProxyCoder, RateSweep, rate_sweep, sample_rate_tuples

__all__ = [
    "CodecCoder",
    "DistortionSurface",
    "FitReport",
    "ProxyCoder",
    "RateDistortionCallback",
    "RateSweep",
    "allocate",
    "allocate_fit_first",
    "baseline_allocations",
    "fit_surface",
    "pareto_bounds",
    "pareto_polygon",
    "pareto_segment",
    "rate_sweep",
    "sample_rate_tuples",
    "task_distortion",
    "task_weights",
    "total_distortion",
]
