"""Bit allocation among transmitted streams (``cilight.allocation``): the math only.

Implements S. R. Alvar and I. V. Bajić, "Pareto-optimal bit allocation for collaborative
intelligence", IEEE TIP 2021 (and their "Bit allocation for multi-task collaborative
intelligence", IEEE ICASSP 2020):

* task and total distortion (eq 1, eq 17, eq 25) — :mod:`~cilight.allocation.distortion`
* distortion–rate surfaces and their fit (eq 2) — :mod:`~cilight.allocation.surface`
* closed-form, fit-first and baseline allocations (eq 12–15, §V, §VI-A) — :mod:`~cilight.allocation.solve`
* Pareto sets for 2×k and 3×2 systems (Theorems 2 and 4, eq 18, eq 31–33) — :mod:`~cilight.allocation.pareto`

This package is numpy and scipy only: it imports no torch and nothing else of cilight but its
errors, so a planner can run on any machine. Measuring a model — rate sweeps, the §VI-A
experiment, rate–accuracy curves, BD-rate, reports and the per-epoch callback — is
:mod:`cilight.evaluation`.

Rates are in whatever unit the surface was fitted in (bits, kbit, …); every solution comes back
in that unit.
"""

from cilight.allocation.distortion import check_weights, task_distortion, task_weights, total_distortion
from cilight.allocation.pareto import pareto_bounds, pareto_polygon, pareto_segment
from cilight.allocation.solve import allocate, allocate_fit_first, baseline_allocations, check_total_rate
from cilight.allocation.surface import DistortionSurface, FitReport, fit_surface

__all__ = [
    "DistortionSurface",
    "FitReport",
    "allocate",
    "allocate_fit_first",
    "baseline_allocations",
    "check_total_rate",
    "check_weights",
    "fit_surface",
    "pareto_bounds",
    "pareto_polygon",
    "pareto_segment",
    "task_distortion",
    "task_weights",
    "total_distortion",
]
