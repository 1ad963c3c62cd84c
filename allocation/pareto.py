"""Pareto sets of multi-task bit allocation (Alvar & Bajić, IEEE TIP 2021, §V-A, §V-B, App. B).

* :func:`pareto_segment` — 2 streams, k tasks (Theorem 2): the Pareto set is the part of the
  line ``R_1 + R_2 = R_t`` between the per-task minima of eq 18.
* :func:`pareto_bounds` — 3 streams, 2 tasks (Theorem 4): per-stream intervals
  ``[R_j^min, R_j^max]`` (eq 31–33) whose box ``C`` (eq 23) meets the plane ``P`` (eq 24) in a
  polygon that contains the whole Pareto set.
* :func:`pareto_polygon` — the vertices of ``C ∩ P`` for plotting (Fig. 4, Fig. 9).

All rates are in the unit of the surfaces.

Zero rates in Theorem 4. Eq 31–33 are derived from the KKT system (21) assuming every rate is
positive, and the paper then clips them to ``[0, R_t]``. With some stream at zero rate that
clipping is not enough: when a stream gets no rate anywhere on the Pareto set, its ``R^ext``
are negative and those of the other two exceed what they actually share, so the clipped box can
miss the Pareto set entirely (an example is in the tests). The derivation extends exactly,
though. Write ``ℓ_{p,j} = log2(α_{p,j} β_{p,j})`` and, for a stream ``k`` against
stream ``j``, the line where task ``p`` has equal marginal returns (the equations of (21)
equated pairwise)::

    L^k_p(R_j) = (ℓ_{p,k} − ℓ_{p,j} + β_{p,j} R_j) / β_{p,k}.

At a (weakly) Pareto-optimal point with ``R_j > 0``, the KKT conditions give, for each other
stream k, ``max(0, min_p L^k_p(R_j)) ≤ R_k ≤ max(0, max_p L^k_p(R_j))`` — between the two lines
when ``R_k > 0`` (eq 22 with ``w_1/w_2 > 0``), and ``min_p L^k_p ≤ 0`` when ``R_k = 0``.
Summing with ``R_j + R_k + R_l = R_t`` bounds ``R_j`` by the roots of two increasing piecewise
linear functions, and the roots are closed-form:

* ``R_j ≥ min`` of: the four ``R_j^ext`` of eq 31–33 (both other streams on a line), the four
  two-stream solutions ``R_j + L^k_p(R_j) = R_t`` (one other stream at zero), and ``R_t``;
* ``R_j ≤ max`` over the four task pairs ``(p, q)`` of
  ``min(R_j^ext(p, q), two-stream roots for (k, p) and (l, q), R_t)``;

then both are clipped to ``[0, R_t]``. The same argument with ``R_j = 0`` shows the lower bound
is then ≤ 0. When the lines are non-negative at the ``R^ext`` points (all rates positive, the
paper's setting) this reduces to eq 31–33 exactly; otherwise it is the bound that still holds.
The tests check both: equality with the printed eq 31–33 when rates are positive, and
containment of numerically sampled Pareto points when they are not.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np

from cilight.allocation.solve import allocate, check_total_rate
from cilight.allocation.surface import DistortionSurface
from cilight.errors import ConfigError


def _surfaces(surfaces: Sequence[DistortionSurface], streams: int, what: str) -> list[DistortionSurface]:
    surfaces = list(surfaces)
    if not surfaces or not all(isinstance(s, DistortionSurface) for s in surfaces):
        raise ConfigError(f"{what} needs a sequence of DistortionSurface, one per task; got {surfaces!r}")
    found = sorted({s.num_streams for s in surfaces})
    if found != [streams]:
        raise ConfigError(f"{what} is for {streams}-stream surfaces; got surfaces with {found} streams")
    return surfaces


def pareto_segment(surfaces: Sequence[DistortionSurface], total_rate: float) -> tuple[float, float]:
    """The Pareto set of a 2-stream k-task system (Theorem 2) as ``(R_1^min, R_1^max)``.

    Every rate tuple ``(r, R_t − r)`` with ``R_1^min ≤ r ≤ R_1^max`` is Pareto-optimal and no
    other is. The endpoints are the per-task minima of eq 18 along ``R_1 + R_2 = R_t``; eq 18
    is eq 15 for N = 2, so they are computed by :func:`~cilight.allocation.allocate`, which
    also clips them to ``[0, R_t]`` (the minimum of a convex curve over the segment).

    Args:
        surfaces: one 2-stream surface per task (k ≥ 1).
        total_rate: ``R_t ≥ 0``.

    Returns:
        ``(r1_min, r1_max)``; ``R_2 = R_t − R_1`` at each end. A task whose surface is flat
        (``α β = 0`` for both streams) is indifferent to the split and does not narrow the
        segment; if every task is flat the whole line ``[0, R_t]`` is returned.
    """
    surfaces = _surfaces(surfaces, 2, "pareto_segment")
    total = check_total_rate(total_rate)
    minima = [allocate(s, total)[0] for s in surfaces if np.any(s.alpha * s.beta > 0)]  # eq 18
    if not minima:
        return 0.0, total
    return float(min(minima)), float(max(minima))


def pareto_bounds(surfaces: Sequence[DistortionSurface], total_rate: float) -> np.ndarray:
    """Bounds on the Pareto set of a 3-stream 2-task system (Theorem 4, eq 31–33).

    Args:
        surfaces: the two tasks' 3-stream surfaces, with ``α, β > 0`` (eq 2).
        total_rate: ``R_t ≥ 0``.

    Returns:
        ``(3, 2)`` array; row j is ``[R_j^min, R_j^max]`` within ``[0, R_t]``. No Pareto-optimal
        rate tuple lies outside the box they define (see the module docstring for the
        zero-rate extension of eq 31–33).
    """
    surfaces = _surfaces(surfaces, 3, "pareto_bounds")
    if len(surfaces) != 2:
        raise ConfigError(f"pareto_bounds is for 2 tasks (Theorem 4); got {len(surfaces)} surfaces")
    total = check_total_rate(total_rate)
    if any(np.any(s.alpha <= 0) or np.any(s.beta <= 0) for s in surfaces):
        raise ConfigError(
            "pareto_bounds needs α, β > 0 for every stream of both tasks (strictly convex surfaces); "
            f"got α = {[s.alpha.tolist() for s in surfaces]}, β = {[s.beta.tolist() for s in surfaces]}"
        )
    ell = np.stack([s.log2_initial_slopes for s in surfaces])  # (task, stream); ln 2 cancels
    beta = np.stack([s.beta for s in surfaces])

    def two_stream(j: int, k: int, p: int) -> float:
        """``R_j`` with ``R_j + L^k_p(R_j) = R_t``: eq 18 for streams j, k of task p."""
        return (total * beta[p, k] - ell[p, k] + ell[p, j]) / (beta[p, j] + beta[p, k])

    def extreme(j: int, k: int, l: int, p: int, q: int) -> float:
        """``R_j^ext`` of eq 31–33: stream k on task p's line, stream l on task q's line."""
        numerator = (
            total * beta[p, k] * beta[q, l]
            - beta[q, l] * (ell[p, k] - ell[p, j])
            - beta[p, k] * (ell[q, l] - ell[q, j])
        )
        return numerator / (beta[p, k] * beta[q, l] + beta[p, j] * beta[q, l] + beta[q, j] * beta[p, k])

    bounds = np.empty((3, 2))
    for j in range(3):
        k, l = (s for s in range(3) if s != j)
        lower, upper = total, -np.inf
        for p, q in itertools.product(range(2), repeat=2):
            ext = extreme(j, k, l, p, q)
            roots = min(total, two_stream(j, k, p), two_stream(j, l, q), ext)
            lower = min(lower, roots)
            upper = max(upper, roots)
        bounds[j] = np.clip([lower, upper], 0.0, total)
    return bounds


def pareto_polygon(bounds, total_rate: float) -> np.ndarray:
    """Vertices of ``C ∩ P`` (eq 23–24): the box of ``bounds`` cut by ``R_1 + R_2 + R_3 = R_t``.

    Args:
        bounds: ``(3, 2)`` from :func:`pareto_bounds`.
        total_rate: ``R_t``.

    Returns:
        ``(V, 3)`` rate tuples, ``V ≤ 6``, in order around the polygon (counter-clockwise seen
        from ``(1, 1, 1)``), ready for plotting as a closed outline. Empty ``(0, 3)`` if the box
        misses the plane; one or two rows if it only touches it.
    """
    box = np.asarray(bounds, dtype=np.float64)
    if box.shape != (3, 2) or not np.all(np.isfinite(box)) or np.any(box[:, 0] > box[:, 1]):
        raise ConfigError(f"bounds must be (3, 2) finite [min, max] rows, got {np.asarray(bounds).tolist()}")
    total = check_total_rate(total_rate)
    tolerance = 1e-12 * max(total, 1.0)
    vertices = []
    for free in range(3):  # the plane meets each box edge parallel to axis `free` at most once
        fixed = [a for a in range(3) if a != free]
        for ends in itertools.product((0, 1), repeat=2):
            point = np.empty(3)
            point[fixed] = box[fixed, list(ends)]
            point[free] = total - point[fixed].sum()
            if box[free, 0] - tolerance <= point[free] <= box[free, 1] + tolerance:
                point[free] = np.clip(point[free], box[free, 0], box[free, 1])
                if not any(np.allclose(point, v, rtol=0, atol=1e-9 * max(total, 1.0)) for v in vertices):
                    vertices.append(point)
    if len(vertices) < 3:
        return np.array(vertices).reshape(-1, 3)
    vertices = np.array(vertices)
    centred = vertices - vertices.mean(axis=0)
    u = np.array([1.0, -1.0, 0.0]) / np.sqrt(2.0)  # an orthonormal basis of the plane
    v = np.array([1.0, 1.0, -2.0]) / np.sqrt(6.0)
    return vertices[np.argsort(np.arctan2(centred @ v, centred @ u))]
