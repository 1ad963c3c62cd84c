"""Distortion–rate surfaces (Alvar & Bajić, IEEE TIP 2021, §III-C, eq 2).

A task distortion, as a function of the rate tuple ``R = (R_1, …, R_N)`` of the N streams, is
modelled by the convex, monotonically decreasing surface of eq 2::

    D(R) ≈ γ + Σ_j α_j 2^(−β_j R_j)

with one offset ``γ`` per task (a scalar, not one per stream) and one ``(α_j, β_j)`` pair per
stream. The bit-allocation paper (Alvar & Bajić, ICASSP 2020, eq 4) uses the same form
for the total distortion.

Rate units: a surface works in whatever unit its rates were given in (bits, kbit, bits per
element …); ``β`` carries the inverse unit and every solution (:func:`~cilight.allocation.allocate`,
the Pareto sets) is returned in that same unit. :meth:`DistortionSurface.rescaled` converts
(``β / 1000`` turns a kbit surface into a bit surface). :func:`fit_surface` normalises rates
and distortions internally, so its result does not depend on the unit either.

Fitting is non-linear least squares (the Pareto paper used Levenberg–Marquardt, the
bit-allocation paper trust-region reflective). For fixed ``β`` the model is linear in
``(γ, α)``, so the fit uses variable projection (Golub & Pereyra): the linear part is solved
exactly (non-negative least squares, ``α ≥ 0``) inside the residual, and scipy's solver only
searches the N values of ``β`` (bounds ``0 ≤ β``). Starting points come from a grid of ``β``
scanned the same way; the best local minima of the grid (one per basin) each start a local
solve, and the best result is kept. The grid makes the starting points global rather than
guessed, so a bad local optimum cannot be returned silently: the result is never worse than
the best grid point, and the report says how many starts were made and how many agreed.
Searching ``β`` alone is also what makes the fit fast (tens of milliseconds) and accurate
where a solver on all ``2N + 1`` parameters crawls along the ``α``–``β`` valley of a slowly
decaying term.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import least_squares, nnls

from cilight.errors import ConfigError

LN2 = math.log(2.0)
FIT_METHODS = ("trf", "lm")

# β grid in normalised units: β·max(R_j) halvings of the stream's term over its sampled range,
# from a nearly linear surface (0.02) to one that has decayed before the first sample (200).
_BETA_GRID = np.geomspace(0.02, 200.0, 10)
_MAX_GRID_POINTS = 2000
_BETA_UPPER = 1e4  # normalised; beyond this the term is 0 at every positive rate
# Below this a term is linear to 1e-4 over the sampled range, and α → ∞ as β → 0 along a valley
# of nearly equal cost where the centred columns lose all precision; a stream that does not
# matter gets α = 0 from the non-negative least squares instead.
_BETA_LOWER = 1e-4


@dataclass(frozen=True, eq=False)
class FitReport:
    """How well a fitted surface matches the measured points.

    Attributes:
        r2: coefficient of multiple determination ``1 − SS_res / SS_tot`` (1 when the
            distortions are constant and matched exactly).
        residuals: ``(M,)`` measured minus fitted distortion, in the order of the points.
        method: ``"trf"`` or ``"lm"``.
        starts: number of local solves, one from each of the best local minima of the β grid.
        agreeing: how many of them reached the best cost (within 1e-6 relative). Several
            starts that end in different optima are normal (the grid minima lie in different
            basins); the best is kept.
    """

    r2: float
    residuals: np.ndarray
    method: str
    starts: int
    agreeing: int

    @property
    def rmse(self) -> float:
        return float(np.sqrt(np.mean(self.residuals**2)))

    @property
    def mean_residual(self) -> float:
        return float(np.mean(self.residuals))


@dataclass(frozen=True, eq=False)
class DistortionSurface:
    """The surface ``D(R) = γ + Σ_j α_j 2^(−β_j R_j)`` of eq 2, for N streams.

    Attributes:
        gamma: ``γ``, the distortion left at infinite rate (any finite real: distortions of
            eq 1 may be slightly negative when compression does not hurt).
        alpha: ``α`` ``(N,)``, non-negative: the distortion stream j adds at zero rate.
        beta: ``β`` ``(N,)``, non-negative, in inverse rate units: how fast it decays.
        fit: the :class:`FitReport` when the surface came from :func:`fit_surface`.

    ``α_j β_j = 0`` is allowed (a stream that does not affect the task); allocation gives such
    a stream no rate. Arrays are stored read-only so the surface is immutable.
    """

    gamma: float
    alpha: np.ndarray
    beta: np.ndarray
    fit: FitReport | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        try:
            gamma = float(self.gamma)
        except (TypeError, ValueError):
            raise ConfigError(f"surface gamma must be a real number, got {self.gamma!r}") from None
        alpha = np.array(self.alpha, dtype=np.float64, copy=True)
        beta = np.array(self.beta, dtype=np.float64, copy=True)
        if alpha.ndim != 1 or alpha.size == 0 or beta.shape != alpha.shape:
            raise ConfigError(
                f"surface alpha and beta must be 1-D with one entry per stream and the same length; "
                f"got shapes {alpha.shape} and {beta.shape}"
            )
        for name, value in (("alpha", alpha), ("beta", beta)):
            if not np.all(np.isfinite(value)) or np.any(value < 0):
                raise ConfigError(
                    f"surface {name} must be finite and non-negative (eq 2 is a decreasing convex "
                    f"surface), got {value.tolist()}"
                )
        if not math.isfinite(gamma):
            raise ConfigError(f"surface gamma must be finite, got {gamma}")
        alpha.flags.writeable = False
        beta.flags.writeable = False
        object.__setattr__(self, "gamma", gamma)
        object.__setattr__(self, "alpha", alpha)
        object.__setattr__(self, "beta", beta)

    @property
    def num_streams(self) -> int:
        return self.alpha.size

    @property
    def r2(self) -> float | None:
        """R² of the fit, or ``None`` for a surface given by its parameters."""
        return None if self.fit is None else self.fit.r2

    @property
    def log2_initial_slopes(self) -> np.ndarray:
        """``log2((ln 2) α_j β_j)``: the log of ``−∂D/∂R_j`` at ``R_j = 0`` (eq 10), −∞ for a flat stream.

        Formed as a sum of logarithms so that tiny or huge products do not under- or overflow.
        """
        with np.errstate(divide="ignore"):
            return math.log2(LN2) + np.log2(self.alpha) + np.log2(self.beta)

    def _rates(self, rates) -> np.ndarray:
        r = np.asarray(rates, dtype=np.float64)
        if r.ndim not in (1, 2) or r.shape[-1] != self.num_streams:
            raise ConfigError(
                f"rates must have shape ({self.num_streams},) or (M, {self.num_streams}) for this "
                f"{self.num_streams}-stream surface, got {r.shape}"
            )
        if not np.all(np.isfinite(r)) or np.any(r < 0):
            raise ConfigError("rates must be finite and non-negative")
        return r

    def __call__(self, rates) -> np.ndarray | float:
        """``D(R)`` for one rate tuple ``(N,)`` (a float) or many ``(M, N)`` (an array ``(M,)``)."""
        r = self._rates(rates)
        d = self.gamma + (self.alpha * np.exp2(-self.beta * r)).sum(axis=-1)  # eq 2
        return float(d) if r.ndim == 1 else d

    def gradient(self, rates) -> np.ndarray:
        """``∂D/∂R_j = −(ln 2) α_j β_j 2^(−β_j R_j)`` (the first term of eq 8), shaped like ``rates``."""
        r = self._rates(rates)
        return -LN2 * self.alpha * self.beta * np.exp2(-self.beta * r)

    def rescaled(self, rate_scale: float) -> DistortionSurface:
        """The same surface for rates multiplied by ``rate_scale`` (1000: kbit → bit).

        ``D'(s·R) = D(R)`` with ``β' = β / s``; the fit report (whose residuals do not depend
        on the unit) is kept.
        """
        s = float(rate_scale)
        if not math.isfinite(s) or s <= 0:
            raise ConfigError(f"rate_scale must be positive and finite, got {rate_scale!r}")
        return DistortionSurface(self.gamma, self.alpha, self.beta / s, fit=self.fit)


def _check_points(rates, distortions) -> tuple[np.ndarray, np.ndarray]:
    r = np.asarray(rates, dtype=np.float64)
    d = np.asarray(distortions, dtype=np.float64)
    if r.ndim != 2 or r.shape[1] == 0:
        raise ConfigError(f"rates must be an array (M, N): M rate tuples of N streams; got shape {r.shape}")
    m, n = r.shape
    if d.shape != (m,):
        raise ConfigError(f"distortions must have shape ({m},), one per rate tuple; got {d.shape}")
    if m < 2 * n + 1:
        raise ConfigError(
            f"fitting eq 2 to {n} stream(s) needs at least {2 * n + 1} rate tuples "
            f"(γ and one α, β per stream), got {m}"
        )
    if not (np.all(np.isfinite(r)) and np.all(np.isfinite(d))):
        raise ConfigError("rates and distortions must be finite")
    if np.any(r < 0):
        raise ConfigError("rates must be non-negative")
    constant = [j for j in range(n) if np.ptp(r[:, j]) == 0]
    if constant:
        raise ConfigError(
            f"stream(s) {constant} have the same rate in every tuple; their α and β cannot be "
            "fitted (sample several rates per stream)"
        )
    return r, d


def _grid_starts(x: np.ndarray, y: np.ndarray, count: int) -> list[tuple[float, np.ndarray]]:
    """Starting points from the β grid: its local minima, best first, at most ``count``.

    At every grid point the linear part is solved exactly: for fixed β, minimising over a free
    ``γ`` is the same as centring ``y`` and every column (``γ`` absorbs the means), which
    leaves an ordinary non-negative least-squares problem for ``α``. A grid point no worse
    than its neighbours marks a basin of the full problem; one local solve per basin is
    enough, and the best basins are tried first. Returns ``(cost, [γ, α…, β…])`` pairs in
    normalised units.
    """
    m, n = x.shape
    terms = np.exp2(-_BETA_GRID[:, None, None] * x[None])  # (grid, M, N)
    centred = terms - terms.mean(axis=1, keepdims=True)
    yc = y - y.mean()
    size = len(_BETA_GRID)
    full = size**n <= _MAX_GRID_POINTS
    if full:
        combos = list(itertools.product(range(size), repeat=n))
    else:  # many streams: the diagonal plus a fixed random sample of the grid
        rng = np.random.default_rng(0)
        combos = [(i,) * n for i in range(size)]
        combos += [tuple(c) for c in rng.integers(0, size, size=(_MAX_GRID_POINTS - size, n))]
    cols = np.arange(n)
    costs, alphas = np.empty(len(combos)), []
    for i, combo in enumerate(combos):
        a, norm = nnls(centred[list(combo), :, cols].T, yc)
        costs[i] = norm * norm
        alphas.append(a)
    if full:
        grid = np.pad(costs.reshape((size,) * n), 1, constant_values=np.inf)
        inner = tuple(slice(1, -1) for _ in range(n))
        local = np.ones((size,) * n, dtype=bool)
        for axis in range(n):
            for shift in (-1, 1):
                neighbour = list(inner)
                neighbour[axis] = slice(1 + shift, size + 1 + shift)
                local &= grid[inner] <= grid[tuple(neighbour)]
        candidates = np.flatnonzero(local.ravel())
    else:
        candidates = np.arange(len(combos))
    starts = []
    for i in candidates[np.argsort(costs[candidates], kind="stable")][:count]:
        combo = list(combos[i])
        gamma = y.mean() - (terms[combo, :, cols].T @ alphas[i]).mean()
        starts.append((float(costs[i]), np.concatenate([[gamma], alphas[i], _BETA_GRID[combo]])))
    return starts


def fit_surface(rates, distortions, *, method: str = "trf", starts: int = 4) -> DistortionSurface:
    """Fit eq 2 to measured distortions by non-linear least squares.

    Args:
        rates: ``(M, N)`` rate tuples, non-negative, in any unit (the surface keeps it).
        distortions: ``(M,)`` measured (task or total) distortion at each tuple.
        method: the solver for ``β``: ``"trf"`` — trust-region reflective with bounds
            ``β ≥ 0`` (default); ``"lm"`` — Levenberg–Marquardt as in the Pareto paper
            (unbounded; solutions with a negative ``β`` are discarded). ``α ≥ 0`` always.
        starts: at most this many local solves, one from each of the best local minima of
            the β grid.

    Returns:
        A :class:`DistortionSurface` whose ``fit`` holds R², residuals and the restart count.

    Raises:
        ConfigError: fewer than ``2N + 1`` points (the number of parameters), shapes that do
            not match, negative or non-finite values, or a stream sampled at a single rate.
    """
    if method not in FIT_METHODS:
        raise ConfigError(f"method must be one of {FIT_METHODS}, got {method!r}")
    if int(starts) < 1:
        raise ConfigError(f"starts must be at least 1, got {starts!r}")
    r, d = _check_points(rates, distortions)
    m, n = r.shape
    ss_tot = float(np.sum((d - d.mean()) ** 2))
    if ss_tot == 0.0:  # a flat surface: no stream affects this distortion
        return DistortionSurface(
            float(d[0]), np.zeros(n), np.zeros(n), fit=FitReport(1.0, np.zeros(m), method, 0, 0)
        )

    # Work in normalised units (rates / max rate of each stream, distortions standardised) so
    # that the grid, the bounds and the solver tolerances mean the same for bits and kbit.
    scale = r.max(axis=0)
    x = r / scale
    mu, sigma = d.mean(), d.std()
    y = (d - mu) / sigma

    def projected(beta: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
        """Variable projection: the exact ``(γ, α ≥ 0)`` for this ``β`` and the residual there."""
        terms = np.exp2(-beta * x)
        centred = terms - terms.mean(axis=0)  # a free γ absorbs the means
        # Columns are normalised for NNLS: a large β leaves a column of denormals whose α would
        # overflow; below 1e-10 such a term is constant at every measured rate and gets α = 0.
        norms = np.sqrt(np.sum(centred * centred, axis=0))
        used = norms > 1e-10
        alpha = np.zeros_like(beta)
        if used.any():
            alpha[used] = nnls(centred[:, used] / norms[used], y - y.mean())[0] / norms[used]
        return float(y.mean() - terms.mean(axis=0) @ alpha), alpha, centred @ alpha - (y - y.mean())

    if method == "trf":
        options = {"bounds": (_BETA_LOWER, _BETA_UPPER), "method": "trf"}
    else:
        options = {"method": "lm"}

    candidates = []
    grid = _grid_starts(x, y, int(starts))
    for grid_cost, p0 in grid:
        with np.errstate(over="ignore", invalid="ignore"):  # LM may try β < 0; such steps are rejected
            sol = least_squares(lambda b: projected(b)[2], p0[1 + n :], x_scale=np.maximum(p0[1 + n :], 1e-3),
                                ftol=1e-10, xtol=1e-10, gtol=1e-10, max_nfev=100 * (n + 1), **options)
        if method == "lm" and np.any(sol.x < 0):
            continue  # LM is unbounded: a negative β is not an eq 2 surface
        beta = np.clip(sol.x, _BETA_LOWER, _BETA_UPPER)
        gamma, alpha, res = projected(beta)
        p, cost = np.concatenate([[gamma], alpha, beta]), float(res @ res)
        if cost > grid_cost:  # never return something worse than the grid point it started from
            p, cost = p0, grid_cost
        candidates.append((cost, p))
    if not candidates:
        raise ConfigError(
            "Levenberg–Marquardt found no fit with β ≥ 0 from any start; use method='trf'"
        )
    best_cost, best = min(candidates, key=lambda item: item[0])
    agreeing = sum(cost <= best_cost * (1 + 1e-6) + 1e-15 for cost, _ in candidates)

    gamma = mu + sigma * best[0]
    alpha = sigma * best[1 : 1 + n]
    beta = best[1 + n :] / scale
    surface = DistortionSurface(gamma, alpha, beta)
    residuals = d - surface(r)
    r2 = 1.0 - float(np.sum(residuals**2)) / ss_tot
    report = FitReport(r2, residuals, method, len(grid), int(agreeing))
    return DistortionSurface(gamma, alpha, beta, fit=report)
