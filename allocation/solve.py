"""Bit allocation among streams (Alvar & Bajić, IEEE TIP 2021, §IV, §V, §VI-A).

* :func:`allocate` — the closed-form solution (eq 12–15) of the single-objective problem (3):
  minimise ``D(R)`` of one surface (a single task, or the total distortion of eq 17 fitted
  directly: *scalarize-first*) subject to ``Σ_j R_j ≤ R_t`` and ``R_j ≥ 0``.
* :func:`allocate_fit_first` — *fit-first* (§V, Table I): minimise ``Σ_i w_i D_i(R)`` over
  per-task surfaces; the sum is no longer of the form eq 2, so it is solved numerically.
* :func:`baseline_allocations` — Methods 1–3 of §VI-A: equal, proportional to the number of
  tensor elements, proportional to the variance of the tensor elements.

Every allocation is non-negative and sums to ``R_t`` exactly (``rates.sum() == total_rate``),
in the rate unit of the surfaces.

Reverse water-filling (eq 15). With ``c_j = log2((ln 2) α_j β_j)`` (the log initial slope of
stream j, eq 10) and the water level ``log2 λ`` of eq 14, stream j receives
``R_j = [c_j − log2 λ]⁺ / β_j``. Sort the streams by ``c_j``, largest first; with the first
``m`` active, eq 14 gives a level below ``c_(m)`` exactly when
``R_t > T_m = Σ_{k≤m} (c_(k) − c_(m)) / β_(k)``. ``T_m`` does not depend on ``R_t`` and grows
with ``m``: it is the total rate at which the m-th stream starts to receive bits. So the active
set for a budget is found by one binary search in ``T``, with no iteration, and within it

    R_j = (R_t + Σ_{k active} (c_j − c_k) / β_k) / (β_j Σ_{k active} 1/β_k)

which is eq 12 with eq 14 substituted, arranged so that only differences of ``c`` appear (no
cancellation between large sums when some ``β`` is tiny). The ``ln 2`` of eq 12 cancels in
these differences. The tables are computed once per surface and cached.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize

from cilight.allocation.surface import LN2, DistortionSurface
from cilight.errors import ConfigError


def check_total_rate(total_rate) -> float:
    """``R_t`` as a float; a budget that is negative, NaN, infinite or not a number is refused."""
    if type(total_rate) is float and 0.0 <= total_rate < math.inf:
        return total_rate  # the common case, checked without conversions
    try:
        if isinstance(total_rate, (str, bytes, bool)):
            raise TypeError  # float("1e3") and float(True) would pass silently
        r = float(total_rate)
    except (TypeError, ValueError):
        raise ConfigError(f"total rate must be a real number, got {total_rate!r}") from None
    if not 0.0 <= r < math.inf:
        raise ConfigError(f"total rate must be finite and non-negative, got {total_rate!r}")
    return r


def _sum_exactly(rates: list[float], total: float) -> np.ndarray:
    """``rates`` as an array whose sum is exactly ``total``, in any order of summation.

    Every rate is truncated to a multiple of ``q = ulp(total)`` (exactly: ``fmod`` is exact)
    and the largest takes the remainder. All partial sums are then multiples of ``q`` no
    larger than ``total``, hence exact floats, so ``.sum()``, ``math.fsum`` and a plain loop
    all give ``total``. Each rate moves by less than an ulp of the total; the largest is at
    least ``total / N``, so taking the remainder cannot make it negative.
    """
    if total == 0.0:
        return np.zeros(len(rates))
    if len(rates) == 2:
        # One addition, so exact in every order once exact at all; the larger rate taking the
        # remainder almost always achieves that (not on a rounding tie), at a fraction of the cost.
        k = 0 if rates[0] >= rates[1] else 1
        rates[k] = total - rates[1 - k]
        if rates[0] + rates[1] == total:
            return np.array(rates)
    q = math.ulp(total)
    rates = [rate - math.fmod(rate, q) for rate in rates]
    k = rates.index(max(rates))
    rates[k] = 0.0
    rates[k] = total - sum(rates)
    return np.array(rates)


@dataclass(frozen=True)
class _WaterFilling:
    """Eq 12–15 prepared for one surface: ``turn_on[m-1] = T_m`` and, for ``m`` active streams,
    ``R_j = (R_t + offset_j) * scale_j`` with ``(offset_j, scale_j) = pieces[m-1][j]``
    (scale 0 where inactive). Plain floats: for a handful of streams Python arithmetic is
    several times faster than numpy calls, and allocation runs inside training loops."""

    turn_on: list[float]
    pieces: list[tuple[tuple[float, float], ...]]  # per m: (offset_j, scale_j) for every stream j


def _water_filling(surface: DistortionSurface) -> _WaterFilling:
    """The table of ``surface``, computed on first use and kept on the (immutable) surface."""
    c = surface.log2_initial_slopes
    beta = surface.beta
    n = surface.num_streams
    # Streams with α_j β_j = 0 never lower the distortion: they stay at zero rate (eq 10
    # holds for every λ > 0).
    order = [j for j in np.argsort(-c, kind="stable") if np.isfinite(c[j])]
    turn_on, pieces = [], []
    for m in range(1, len(order) + 1):
        active = np.array(order[:m])
        inv_beta = 1.0 / beta[active]
        turn_on.append(float(np.sum((c[active] - c[active[-1]]) * inv_beta)))
        offset, scale = np.zeros(n), np.zeros(n)
        for j in active:
            offset[j] = np.sum((c[j] - c[active]) * inv_beta)
            scale[j] = 1.0 / (beta[j] * inv_beta.sum())
        pieces.append(tuple(zip(offset.tolist(), scale.tolist())))
    table = _WaterFilling(turn_on, pieces)
    object.__setattr__(surface, "_water_filling", table)
    return table


def allocate(surface: DistortionSurface, total_rate: float) -> np.ndarray:
    """The optimal rate tuple for one surface and budget: reverse water-filling (eq 15).

    Args:
        surface: ``D(R)`` of eq 2 (one task, or the total distortion of eq 17).
        total_rate: ``R_t ≥ 0`` in the surface's rate unit.

    Returns:
        ``(N,)`` rates, non-negative, with ``rates.sum() == total_rate``. Streams whose initial
        slope ``(ln 2) α_j β_j`` does not exceed the multiplier λ get zero (eq 10). If no
        stream affects the distortion (``α_j β_j = 0`` for all j) every split is optimal and
        the budget is split equally.

    Raises:
        ConfigError: a budget that is negative, NaN or infinite.
    """
    total = check_total_rate(total_rate)
    table = surface.__dict__.get("_water_filling") or _water_filling(surface)
    if not table.turn_on:
        return _sum_exactly([total / surface.num_streams] * surface.num_streams, total)
    active = bisect.bisect_left(table.turn_on, total)  # streams with T_m < R_t
    if active == 0:
        return np.zeros(surface.num_streams)
    # eq 12 with eq 14. Positive for active streams without clipping: offset_j ≥ −T_m term by
    # term in floating point too (c_j ≥ c_(m)), and R_t > T_m.
    return _sum_exactly([(total + offset) * scale for offset, scale in table.pieces[active - 1]], total)


def allocate_fit_first(
    surfaces: Sequence[DistortionSurface], weights: Sequence[float], total_rate: float
) -> np.ndarray:
    """Fit-first allocation (§V): minimise ``Σ_i w_i D_i(R)`` (eq 17) over ``R ∈ S`` numerically.

    The weighted sum of eq 2 surfaces with different ``β`` is convex but has no closed form.
    It is solved with scipy's SLSQP on the fractions ``R / R_t`` (so tolerances do not depend on
    the rate unit), with the analytic gradient, starting from the closed-form solution for the
    weighted ``α`` of all tasks and the ``β`` of the most heavily weighted one — the exact
    answer when all tasks share their ``β``.

    Args:
        surfaces: per-task surfaces ``D_i``, all with the same number of streams.
        weights: ``w_i ≥ 0`` (not all zero), one per surface.
        total_rate: ``R_t ≥ 0``.

    Returns:
        ``(N,)`` rates, non-negative, summing to ``total_rate``.
    """
    total = check_total_rate(total_rate)
    surfaces = list(surfaces)
    if not surfaces:
        raise ConfigError("fit-first needs at least one task surface")
    n = surfaces[0].num_streams
    if any(s.num_streams != n for s in surfaces):
        raise ConfigError(
            f"all task surfaces must have the same number of streams, got {[s.num_streams for s in surfaces]}"
        )
    w = np.asarray(weights, dtype=np.float64)
    if w.shape != (len(surfaces),) or not np.all(np.isfinite(w)) or np.any(w < 0) or not np.any(w > 0):
        raise ConfigError(
            f"weights must be {len(surfaces)} finite non-negative numbers, not all zero; got {weights!r}"
        )
    if total == 0.0 or n == 1:
        return np.full(n, total / n)

    alpha = np.stack([s.alpha for s in surfaces])  # (k, N)
    beta = np.stack([s.beta for s in surfaces])
    wa = w[:, None] * alpha

    def objective(f: np.ndarray) -> tuple[float, np.ndarray]:
        e = np.exp2(-beta * (f * total))
        value = float(np.sum(wa * e))  # eq 17 without the constant Σ w_i γ_i
        grad = -LN2 * total * np.sum(wa * beta * e, axis=0)
        return value, grad

    start = allocate(DistortionSurface(0.0, wa.sum(axis=0), beta[int(np.argmax(w))]), total) / total
    solution = minimize(
        objective,
        start,
        jac=True,
        method="SLSQP",
        bounds=[(0.0, 1.0)] * n,
        constraints=[{"type": "eq", "fun": lambda f: f.sum() - 1.0, "jac": lambda f: np.ones(n)}],
        options={"ftol": 1e-15, "maxiter": 500},
    )
    fractions = np.clip(solution.x, 0.0, 1.0)
    if objective(fractions)[0] > objective(start)[0]:
        fractions = start
    return _sum_exactly((fractions / fractions.sum() * total).tolist(), total)


def baseline_allocations(total_rate: float, numel: Sequence[int], variance: Sequence[float]) -> dict[str, np.ndarray]:
    """The three comparison allocations of §VI-A.

    Args:
        total_rate: ``R_t ≥ 0``.
        numel: number of elements of each stream's tensor (positive), ``(N,)``.
        variance: variance of each stream's tensor elements (non-negative, not all zero),
            ``(N,)``, computed on the same samples the surfaces are fitted on.

    Returns:
        ``{"equal": …, "numel": …, "variance": …}`` — Methods 1, 2 and 3, each ``(N,)`` summing
        to ``total_rate``.
    """
    total = check_total_rate(total_rate)
    count = np.asarray(numel, dtype=np.float64)
    var = np.asarray(variance, dtype=np.float64)
    if count.ndim != 1 or count.size == 0 or not np.all(np.isfinite(count)) or np.any(count <= 0):
        raise ConfigError(f"numel must be one positive count per stream, got {numel!r}")
    if var.shape != count.shape:
        raise ConfigError(f"variance must have one entry per stream ({count.size}), got shape {var.shape}")
    if not np.all(np.isfinite(var)) or np.any(var < 0) or not np.any(var > 0):
        raise ConfigError(f"variance must be finite, non-negative and not all zero, got {variance!r}")
    n = count.size
    return {
        "equal": _sum_exactly([total / n] * n, total),  # Method 1
        "numel": _sum_exactly((total * count / count.sum()).tolist(), total),  # Method 2
        "variance": _sum_exactly((total * var / var.sum()).tolist(), total),  # Method 3
    }
