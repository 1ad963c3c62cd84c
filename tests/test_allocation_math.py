"""The allocation math (Pareto paper eq 1–33) against independent computations.

References are scipy solvers written out here (SLSQP, trust-constr), brute-force grids, the KKT
conditions checked directly, the numbers printed in the papers' tables, and eq 31–33
transcribed literally from Appendix B — never the implementation restated.
"""

from __future__ import annotations

import dataclasses
import functools
import math

import numpy as np
import pytest
from scipy.optimize import curve_fit, minimize

from cilight.allocation import (
    DistortionSurface,
    allocate,
    allocate_fit_first,
    baseline_allocations,
    fit_surface,
    pareto_bounds,
    pareto_polygon,
    pareto_segment,
    task_distortion,
    task_weights,
    total_distortion,
)
from cilight.errors import ConfigError

# Alvar & Bajić, ICASSP 2020, §3: the fitted total-distortion surface, rates in kbit.
PAPER = DistortionSurface(0.80, [72.45, 183.09], [7.07e-4, 2.11e-2])


def random_surface(rng: np.random.Generator, n: int, gamma: float = 1.0) -> DistortionSurface:
    return DistortionSurface(gamma, 10 ** rng.uniform(0, 3, n), 10 ** rng.uniform(-3.5, -1.5, n))


def minimize_on_simplex(fun, grad, n: int, total: float, starts: list[np.ndarray]) -> np.ndarray:
    """Best SLSQP solution of min fun(R) s.t. ΣR = R_t, R ≥ 0 over several starts."""
    best = None
    for x0 in starts:
        res = minimize(
            fun, x0, jac=grad, method="SLSQP", bounds=[(0, total)] * n,
            constraints=[{"type": "eq", "fun": lambda r: r.sum() - total}],
            options={"ftol": 1e-13, "maxiter": 1000},
        )
        x = np.clip(res.x, 0, None)
        x *= total / x.sum()
        if best is None or fun(x) < fun(best):
            best = x
    return best


def numerical_allocation(surface: DistortionSurface, total: float, rng: np.random.Generator) -> np.ndarray:
    n = surface.num_streams
    starts = [np.full(n, total / n)] + [rng.dirichlet(np.ones(n)) * total for _ in range(2)]
    return minimize_on_simplex(surface, surface.gradient, n, total, starts)


def sample_rate_tuples(rng, m: int, high: np.ndarray, low_sum: float, high_sum: float) -> np.ndarray:
    """§VI-A: rate tuples uniformly sampled with low_sum ≤ ΣR ≤ high_sum."""
    out = []
    while len(out) < m:
        r = rng.uniform(0, 1, high.size) * high
        if low_sum <= r.sum() <= high_sum:
            out.append(r)
    return np.array(out)


# ---------------------------------------------------------------- task and total distortion (eq 1, 17, 25)


def test_task_distortion_directions():
    assert task_distortion(62.15, 63.02) == pytest.approx(100 * 0.87 / 63.02)  # mIoU falls: positive
    assert task_distortion(7.91, 7.80, higher_is_better=False) == pytest.approx(100 * 0.11 / 7.80)  # RMSE rises
    assert task_distortion(63.5, 63.02) < 0  # compression that helps is a negative drop
    np.testing.assert_allclose(task_distortion([63.02, 31.51], 63.02), [0.0, 50.0])


# Table IV of the Pareto paper: (mIoU, RMSE, PSNR) per method and the printed D_t.
TABLE_IV_REFERENCE = (63.02, 7.80, 39.97)
TABLE_IV = {
    "Method 1": ((61.91, 7.85, 19.98), 17.46, 2.20),
    "Method 2": ((62.16, 7.87, 21.61), 16.03, 2.01),
    "Method 3": ((61.75, 8.07, 22.79), 16.10, 3.48),
}


@pytest.mark.parametrize("method", sorted(TABLE_IV))
def test_total_distortion_reproduces_table_iv(method):
    metrics, d_equal, d_inverse = TABLE_IV[method]
    d = np.array([[
        task_distortion(metrics[0], TABLE_IV_REFERENCE[0]),
        task_distortion(metrics[1], TABLE_IV_REFERENCE[1], higher_is_better=False),
        task_distortion(metrics[2], TABLE_IV_REFERENCE[2]),
    ]])
    # the printed metrics are rounded to 0.01, which moves D_t by up to ~0.05
    assert total_distortion(d, "equal")[0] == pytest.approx(d_equal, abs=0.1)
    assert total_distortion(d, [0.5, 0.48, 0.02])[0] == pytest.approx(d_inverse, abs=0.1)


def test_proposed_column_of_table_iv():
    d = np.array([[task_distortion(62.20, 63.02), task_distortion(7.85, 7.80, higher_is_better=False),
                   task_distortion(20.87, 39.97)]])
    assert total_distortion(d, [0.5, 0.48, 0.02])[0] == pytest.approx(1.91, abs=0.02)


def test_task_weights():
    rng = np.random.default_rng(0)
    d = rng.uniform(0.1, 50, size=(100, 3)) * [1, 3, 40]
    w = task_weights(d, "inverse-mean")
    assert w.sum() == pytest.approx(1.0)
    weighted_means = w * d.mean(axis=0)  # eq 25 equalises the weighted distortions
    np.testing.assert_allclose(weighted_means, weighted_means[0], rtol=1e-12)
    np.testing.assert_allclose(task_weights(d, "equal"), [1 / 3] * 3)
    np.testing.assert_allclose(task_weights(d, [8, 1, 1]), [8, 1, 1])  # as given (ICASSP Table 2)
    np.testing.assert_allclose(total_distortion(d, [1, 0, 0]), d[:, 0])


@pytest.mark.parametrize(
    "call",
    [
        lambda: task_distortion(1.0, 0.0),
        lambda: task_distortion(1.0, -2.0),
        lambda: task_distortion(np.nan, 1.0),
        lambda: task_weights(np.ones((4, 3)), [1, 1]),
        lambda: task_weights(np.ones((4, 3)), [1, -1, 1]),
        lambda: task_weights(np.ones((4, 3)), [0, 0, 0]),
        lambda: task_weights(np.ones((4, 3)), "inverse"),
        lambda: task_weights(-np.ones((4, 3)), "inverse-mean"),
        lambda: total_distortion(np.ones(4)),
    ],
)
def test_distortion_errors(call):
    with pytest.raises(ConfigError):
        call()


# ---------------------------------------------------------------- surfaces (eq 2)


def test_surface_evaluation_and_gradient():
    rates = np.array([[100.0, 20.0], [0.0, 0.0], [5e5, 3e4]])  # the last underflows 2^(−βR) to 0
    expected = 0.80 + 72.45 * 2.0 ** (-7.07e-4 * rates[:, 0]) + 183.09 * 2.0 ** (-2.11e-2 * rates[:, 1])
    np.testing.assert_allclose(PAPER(rates), expected, rtol=1e-14)
    assert PAPER(rates[1]) == pytest.approx(0.80 + 72.45 + 183.09)
    assert PAPER(rates[2]) == 0.80
    r, h = np.array([300.0, 40.0]), 1e-4
    numeric = [(PAPER(r + h * e) - PAPER(r - h * e)) / (2 * h) for e in np.eye(2)]
    np.testing.assert_allclose(PAPER.gradient(r), numeric, rtol=1e-7)


def test_surface_is_immutable_and_validated():
    s = DistortionSurface(1, [1, 2], [0.1, 0.2])
    assert isinstance(s.gamma, float) and s.r2 is None and s.num_streams == 2
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.gamma = 2.0
    with pytest.raises(ValueError):
        s.alpha[0] = 5.0
    for alpha, beta in [([1, 2], [0.1]), ([[1, 2]], [[0.1, 0.2]]), ([], []), ([1, -2], [0.1, 0.2]),
                        ([1, 2], [0.1, np.nan]), ([1, 2], [0.1, np.inf])]:
        with pytest.raises(ConfigError):
            DistortionSurface(1.0, alpha, beta)
    with pytest.raises(ConfigError):
        DistortionSurface(np.nan, [1], [1])
    for rates in (np.ones(3), np.ones((4, 3)), np.ones((2, 2, 2)), [-1.0, 2.0], [np.nan, 1.0]):
        with pytest.raises(ConfigError):
            s(rates)


def test_rescaled_surface_is_the_same_function_in_other_units():
    bits = PAPER.rescaled(1000.0)
    rates_kbit = np.array([[681.58, 318.42], [10.0, 900.0]])
    np.testing.assert_allclose(bits(rates_kbit * 1000), PAPER(rates_kbit), rtol=1e-14)
    np.testing.assert_allclose(allocate(bits, 1e6), allocate(PAPER, 1000.0) * 1000, rtol=1e-12)


def true_and_samples(seed: int, truth: DistortionSurface, high: np.ndarray, noise: float, m: int = 100):
    rng = np.random.default_rng(seed)
    rates = sample_rate_tuples(rng, m, high, 0.5 * 0.4 * high.sum(), 1.5 * 0.6 * high.sum())
    return rates, truth(rates) + rng.normal(0, noise, m)


def sse(surface: DistortionSurface, rates, d) -> float:
    return float(np.sum((surface(rates) - d) ** 2))


@pytest.mark.parametrize(
    "truth, high",
    [
        (PAPER, np.array([1600.0, 400.0])),  # kbit, the paper's surface
        (PAPER.rescaled(1000.0), np.array([1.6e6, 4e5])),  # the same in bits: β ~ 1e-7
        (DistortionSurface(2.0, [30.0, 80.0, 15.0], [4e-3, 1.5e-2, 2e-3]), np.array([800.0, 200.0, 1500.0])),
    ],
)
@pytest.mark.parametrize("method", ["trf", "lm"])
def test_fit_recovers_known_parameters_from_noisy_samples(truth, high, method):
    rates, d = true_and_samples(3, truth, high, noise=0.2)
    fitted = fit_surface(rates, d, method=method)
    # no bad local optimum: at least as good as the parameters that generated the data
    assert sse(fitted, rates, d) <= sse(truth, rates, d) * (1 + 1e-9)
    assert fitted.r2 > 0.99 and abs(fitted.fit.mean_residual) < 1e-6
    np.testing.assert_allclose(fitted.fit.residuals, d - fitted(rates), atol=1e-12)
    # the slowest term (β R ≈ 1 over the sampled range) is the least determined by noisy data
    np.testing.assert_allclose(fitted.alpha, truth.alpha, rtol=0.15)
    np.testing.assert_allclose(fitted.beta, truth.beta, rtol=0.15)
    # γ trades off against slowly decaying terms; it is known to ~1% of the distortion range
    assert fitted.gamma == pytest.approx(truth.gamma, abs=0.01 * np.ptp(d))
    # what the fit is for: the allocation it gives is that of the true surface
    budget = 0.5 * high.sum()
    np.testing.assert_allclose(allocate(fitted, budget), allocate(truth, budget), atol=0.02 * budget)


def test_fit_does_not_depend_on_the_rate_unit():
    rates, d = true_and_samples(4, PAPER, np.array([1600.0, 400.0]), noise=0.3)
    kbit, bit = fit_surface(rates, d), fit_surface(rates * 1000, d)
    np.testing.assert_allclose(bit.alpha, kbit.alpha, rtol=1e-5)
    np.testing.assert_allclose(bit.beta * 1000, kbit.beta, rtol=1e-5)
    assert bit.r2 == pytest.approx(kbit.r2, abs=1e-9)


@pytest.mark.filterwarnings("ignore:Covariance of the parameters could not be estimated")
def test_fit_beats_a_naive_single_start_where_it_fails():
    # Rates in bits put β near 1e-6: scipy's curve_fit from its default start (all ones) stalls
    # far from the optimum. The fit must not.
    rates, d = true_and_samples(5, PAPER.rescaled(1000.0), np.array([1.6e6, 4e5]), noise=0.2)

    def model(r, g, a1, a2, b1, b2):
        return g + a1 * 2.0 ** (-b1 * r[:, 0]) + a2 * 2.0 ** (-b2 * r[:, 1])

    naive, _ = curve_fit(model, rates, d, maxfev=2000)
    naive_sse = float(np.sum((model(rates, *naive) - d) ** 2))
    fitted = fit_surface(rates, d)
    assert sse(fitted, rates, d) < 0.01 * naive_sse


def test_fit_of_flat_distortion():
    rates = np.random.default_rng(0).uniform(0, 100, (10, 2))
    flat = fit_surface(rates, np.full(10, 3.5))
    assert flat.gamma == 3.5 and np.all(flat.alpha == 0) and flat.r2 == 1.0
    np.testing.assert_allclose(allocate(flat, 10.0), [5.0, 5.0])


@pytest.mark.parametrize("seed", [14, 22, 33])
def test_fit_of_noise_with_no_rate_dependence_stays_finite(seed):
    # Distortion that does not depend on the rates (an untrained model): the best β drives a
    # term to denormals at every rate, where an unnormalised NNLS returned α = inf (seeds found
    # by search: each crashed scipy's solver before the columns were normalised).
    rng = np.random.default_rng(seed)
    rates = np.c_[rng.uniform(2500, 9000, 25), rng.uniform(10000, 19000, 25)]
    d = np.where(rng.random(25) < 0.25, 0.1, -0.3) + rng.normal(0, 0.005, 25)
    fitted = fit_surface(rates, d)
    assert np.isfinite([fitted.gamma, *fitted.alpha, *fitted.beta]).all() and 0 <= fitted.r2 <= 1
    assert np.isfinite(allocate(fitted, 20000.0)).all()


@pytest.mark.parametrize(
    "rates, d, kwargs",
    [
        (np.ones((3, 2)) * [[1], [2], [3]], np.ones(3), {}),  # fewer than N + 2 = 4 points
        (np.arange(8.0).reshape(4, 2), np.arange(4.0), {}),  # fewer than 2N + 1 = 5 parameters
        (np.arange(10.0), np.arange(10.0), {}),  # rates not (M, N)
        (np.arange(20.0).reshape(10, 2), np.arange(9.0), {}),  # distortions of the wrong length
        (np.c_[np.arange(10.0), np.full(10, 4.0)], np.arange(10.0), {}),  # stream 1 at one rate
        (-np.arange(20.0).reshape(10, 2), np.arange(10.0), {}),
        (np.arange(20.0).reshape(10, 2), np.r_[np.arange(9.0), np.nan], {}),
        (np.arange(20.0).reshape(10, 2), np.arange(10.0), {"method": "nelder-mead"}),
        (np.arange(20.0).reshape(10, 2), np.arange(10.0), {"starts": 0}),
    ],
)
def test_fit_refuses_impossible_input(rates, d, kwargs):
    with pytest.raises(ConfigError):
        fit_surface(rates, d, **kwargs)


# ---------------------------------------------------------------- closed-form allocation (eq 12–15)


def test_paper_surface_allocation():
    rates = allocate(PAPER, 1000.0)
    assert rates[0] == pytest.approx(681.58, abs=0.005)
    assert rates.sum() == 1000.0
    # eq 7 of the bit-allocation paper, written out for N = 2
    ab = PAPER.alpha * PAPER.beta
    level = (np.sum(np.log2(ab) / PAPER.beta) - 1000.0) / np.sum(1 / PAPER.beta)
    np.testing.assert_allclose(rates, (np.log2(ab) - level) / PAPER.beta, rtol=1e-12)


def kkt_violation(surface: DistortionSurface, rates: np.ndarray) -> float:
    """Relative violation of eq 7–11: equal slopes λ on active streams, initial slope ≤ λ elsewhere."""
    slopes = -surface.gradient(rates)
    active = rates > 0
    lam = slopes[active].max()
    violation = np.abs(slopes[active] - lam).max() / lam
    if np.any(~active):
        violation = max(violation, (slopes[~active].max() - lam) / lam)
    return float(violation)


def test_allocation_matches_numerical_solver_on_random_surfaces():
    rng = np.random.default_rng(1)
    zero_rate_cases = 0
    for _ in range(40):
        n = int(rng.integers(1, 7))
        surface = random_surface(rng, n)
        total = float(10 ** rng.uniform(0.5, 3.5))
        rates = allocate(surface, total)
        assert rates.shape == (n,) and np.all(rates >= 0) and rates.sum() == total
        zero_rate_cases += bool(np.any(rates == 0))
        reference = numerical_allocation(surface, total, rng)
        excess, excess_ref = surface(rates) - surface.gamma, surface(reference) - surface.gamma
        assert excess <= excess_ref * (1 + 1e-9), (surface, total)
        assert kkt_violation(surface, rates) < 1e-9
    assert zero_rate_cases >= 10  # the active set matters in these cases


def test_allocation_against_brute_force_grid():
    rng = np.random.default_rng(2)
    for _ in range(10):
        surface, total = random_surface(rng, 2), float(10 ** rng.uniform(1, 3))
        r1 = np.linspace(0, total, 200_001)
        grid = surface(np.c_[r1, total - r1])
        rates = allocate(surface, total)
        assert surface(rates) <= grid.min() + 1e-12
        assert rates[0] == pytest.approx(r1[grid.argmin()], abs=2 * total / 200_000)


def test_active_set_grows_with_the_budget():
    surface = DistortionSurface(0.0, [100.0, 10.0, 1.0], [0.01, 0.02, 0.05])  # initial slopes 1, 0.2, 0.05
    previous = np.zeros(3)
    active_counts = []
    for total in np.linspace(0, 2000, 401):
        rates = allocate(surface, total)
        assert np.all(rates >= previous - 1e-9)  # water-filling: no stream loses bits as R_t grows
        previous = rates
        active_counts.append(int(np.sum(rates > 0)))
    assert active_counts[0] == 0 and sorted(active_counts) == active_counts and active_counts[-1] == 3
    # stream 2 enters when the water level reaches its initial slope (eq 10): D'_1(R_1) = D'_2(0)
    entry = np.log2(100 * 0.01 / (10 * 0.02)) / 0.01
    assert allocate(surface, entry * (1 - 1e-9))[1] == 0.0
    assert allocate(surface, entry * (1 + 1e-6))[1] > 0.0


def test_allocation_extremes():
    assert np.all(allocate(PAPER, 0.0) == 0.0) and allocate(PAPER, 0).sum() == 0.0
    np.testing.assert_array_equal(allocate(DistortionSurface(0, [5.0], [0.1]), 7.5), [7.5])
    # a stream that does not affect the distortion gets nothing; all flat: equal split
    np.testing.assert_array_equal(allocate(DistortionSurface(0, [5.0, 0.0, 3.0], [0.1, 0.3, 0.0]), 9.0), [9.0, 0, 0])
    np.testing.assert_array_equal(allocate(DistortionSurface(0, [0.0, 2.0], [0.1, 0.0]), 9.0), [4.5, 4.5])
    # rates of 1e9 bits with β of 1e-9 per bit, and tiny/huge α·β: no overflow, still optimal.
    # Exact sums put every rate on the grid of ulp(R_t) (1.9e-9 at R_t = 1e7), so with β = 1e3
    # the slopes agree to ~1e-6 only, while the distortion is optimal to rounding.
    rng = np.random.default_rng(3)
    for surface, total in [
        (DistortionSurface(0, [1.0, 3.0, 2.0], [1e-9, 2e-9, 5e-10]), 5e9),
        (DistortionSurface(0, [1e-200, 1e200], [1e-100, 1e-150]), 1e152),
        (DistortionSurface(0, [1e3, 1.0], [1e3, 1e-6]), 1e7),
    ]:
        rates = allocate(surface, total)
        assert np.all(np.isfinite(rates)) and np.all(rates >= 0) and rates.sum() == total
        assert kkt_violation(surface, rates) < 1e-5
        reference = numerical_allocation(surface, total, rng)
        assert surface(rates) <= surface(reference) * (1 + 1e-9) + 1e-300


def test_allocation_sums_exactly_in_any_order():
    rng = np.random.default_rng(4)
    for _ in range(2000):
        n = int(rng.integers(1, 13))
        surface = DistortionSurface(0, 10 ** rng.uniform(-3, 3, n), 10 ** rng.uniform(-6, 1, n))
        total = float(10 ** rng.uniform(-3, 7))
        rates = allocate(surface, total)
        assert rates.sum() == total and math.fsum(rates) == total and np.all(rates >= 0)
        assert functools.reduce(lambda a, b: a + b, rates[::-1].tolist()) == total


@pytest.mark.parametrize("budget", [-1.0, -1e-300, np.nan, np.inf, -np.inf, "1000", True, None, [1000.0]])
def test_allocation_refuses_impossible_budgets(budget):
    with pytest.raises(ValueError, match="total rate"):
        allocate(PAPER, budget)
    with pytest.raises(ConfigError):
        baseline_allocations(budget, [1, 2], [1.0, 1.0])


# ---------------------------------------------------------------- fit-first (§V, Table I)


def test_fit_first_with_shared_beta_is_the_closed_form():
    rng = np.random.default_rng(5)
    beta = 10 ** rng.uniform(-3, -1.5, 3)
    tasks = [DistortionSurface(rng.uniform(0, 2), 10 ** rng.uniform(0, 2, 3), beta) for _ in range(3)]
    w = np.array([0.2, 0.5, 0.3])
    combined = DistortionSurface(0.0, sum(wi * t.alpha for wi, t in zip(w, tasks)), beta)
    for total in (10.0, 300.0, 3000.0):
        np.testing.assert_allclose(allocate_fit_first(tasks, w, total), allocate(combined, total),
                                   atol=1e-6 * total)


@pytest.mark.filterwarnings("ignore:delta_grad == 0.0")
def test_fit_first_against_brute_force_and_scipy():
    rng = np.random.default_rng(6)
    for n in (2, 3, 2, 3):
        tasks = [random_surface(rng, n) for _ in range(3)]
        w = rng.dirichlet(np.ones(3))
        total = float(10 ** rng.uniform(1.5, 3))
        rates = allocate_fit_first(tasks, w, total)
        assert np.all(rates >= 0) and rates.sum() == total

        def weighted(r):
            return sum(wi * t(r) for wi, t in zip(w, tasks))

        if n == 2:
            r1 = np.linspace(0, total, 100_001)
            grid = weighted(np.c_[r1, total - r1])
            assert weighted(rates) <= grid.min() + 1e-10
        else:
            ref = minimize(weighted, np.full(n, total / n), method="trust-constr",
                           constraints=[{"type": "eq", "fun": lambda r: r.sum() - total}],
                           bounds=[(0, total)] * n, options={"xtol": 1e-12, "gtol": 1e-12, "maxiter": 5000})
            assert weighted(rates) <= weighted(np.clip(ref.x, 0, None)) + 1e-9 * weighted(rates)


def test_scalarize_first_and_fit_first_agree_like_table_i():
    # Table I: the two approaches give rates within ~1% of R_t of each other.
    rng = np.random.default_rng(7)
    tasks = [DistortionSurface(1.0, [40.0, 20.0], [3e-3, 8e-3]),
             DistortionSurface(0.5, [5.0, 8.0], [2e-3, 6e-3]),
             DistortionSurface(2.0, [90.0, 60.0], [1.5e-3, 9e-3])]
    rates = sample_rate_tuples(rng, 100, np.array([1600.0, 600.0]), 250.0, 1500.0)
    measured = np.stack([t(rates) + rng.normal(0, 0.1, len(rates)) for t in tasks], axis=1)
    w = task_weights(measured, "equal")
    scalarize_first = allocate(fit_surface(rates, total_distortion(measured, w)), 1000.0)
    fit_first = allocate_fit_first([fit_surface(rates, measured[:, i]) for i in range(3)], w, 1000.0)
    assert np.abs(scalarize_first - fit_first).max() < 0.01 * 1000.0


def test_fit_first_refuses_mismatched_input():
    two, three = PAPER, DistortionSurface(0, [1, 1, 1], [1, 1, 1])
    for surfaces, w in [([], []), ([two, three], [1, 1]), ([two, two], [1]), ([two, two], [0, 0]),
                        ([two, two], [1, -1])]:
        with pytest.raises(ConfigError):
            allocate_fit_first(surfaces, w, 100.0)
    with pytest.raises(ConfigError):
        allocate_fit_first([two], [1], -5)


# ---------------------------------------------------------------- baselines (§VI-A, Methods 1–3)


def test_baselines_reproduce_tables_ii_and_iii():
    densenet = baseline_allocations(50.0, [28 * 28 * 128, 28 * 28 * 32], [1.0, 1.0])  # Table V sizes
    np.testing.assert_allclose(densenet["equal"], [25.0, 25.0])
    np.testing.assert_allclose(densenet["numel"], [40.0, 10.0])  # Table II, Method 2
    multitask = baseline_allocations(1000.0, [32 * 64 * 256, 16 * 32 * 512], [1.0, 1.0])  # Table VI
    np.testing.assert_allclose(multitask["numel"], [666.67, 333.33], atol=0.005)  # Table III
    # Method 3 is proportional: the variance ratio behind Table II at R_t = 50 gives its other rows
    variance = [35.091, 14.909]
    for total, expected in [(100.0, [70.182, 29.818]), (150.0, [105.273, 44.727])]:
        np.testing.assert_allclose(baseline_allocations(total, [1, 1], variance)["variance"], expected, atol=2e-3)
    for rates in baseline_allocations(1e6 / 3, [7, 11, 13], [0.1, 0.0, 2.5]).values():
        assert rates.sum() == 1e6 / 3 and np.all(rates >= 0)


@pytest.mark.parametrize("numel, variance", [([1, 0], [1, 1]), ([1, 2], [1]), ([], []), ([1, 2], [0, 0]),
                                             ([1, 2], [1, -1]), ([[1, 2]], [[1, 1]])])
def test_baselines_refuse_bad_input(numel, variance):
    with pytest.raises(ConfigError):
        baseline_allocations(100.0, numel, variance)


# ---------------------------------------------------------------- Pareto set, 2 streams k tasks (Theorem 2)


def test_pareto_segment_against_brute_force():
    rng = np.random.default_rng(8)
    for k in (2, 3, 4):
        tasks = [random_surface(rng, 2) for _ in range(k)]
        total = float(10 ** rng.uniform(1.5, 3))
        lo, hi = pareto_segment(tasks, total)
        r1 = np.linspace(0, total, 20_001)
        curves = np.stack([t(np.c_[r1, total - r1]) for t in tasks])  # (k, grid)
        minima = r1[curves.argmin(axis=1)]
        step = total / 20_000
        assert lo == pytest.approx(minima.min(), abs=step) and hi == pytest.approx(minima.max(), abs=step)
        # Definition 1 on the grid: inside the segment no grid point dominates; outside one does
        sub = slice(None, None, 50)
        dominated = np.array([
            np.any(np.all(curves[:, sub] <= curves[:, [i]], axis=0) & np.any(curves[:, sub] < curves[:, [i]], axis=0))
            for i in range(0, r1.size, 50)
        ])
        inside = (r1[sub] >= lo + step) & (r1[sub] <= hi - step)
        outside = (r1[sub] < lo - step) | (r1[sub] > hi + step)
        assert not np.any(dominated[inside]) and np.all(dominated[outside])


def test_pareto_segment_is_clipped_to_the_budget():
    # task 2's minimum along R_1 + R_2 = 100 is beyond R_1 = 100 (stream 2 barely matters to it)
    tasks = [DistortionSurface(0, [10.0, 10.0], [0.05, 0.05]), DistortionSurface(0, [50.0, 1e-6], [0.02, 0.01])]
    lo, hi = pareto_segment(tasks, 100.0)
    assert lo == pytest.approx(50.0) and hi == 100.0
    assert pareto_segment([PAPER], 1000.0) == pytest.approx((681.575, 681.575), abs=0.01)
    assert pareto_segment(tasks, 0.0) == (0.0, 0.0)
    flat = DistortionSurface(1.0, [0.0, 0.0], [1.0, 1.0])
    assert pareto_segment([flat, tasks[0]], 100.0) == pytest.approx((50.0, 50.0))
    assert pareto_segment([flat], 100.0) == (0.0, 100.0)


def test_pareto_segment_refuses_other_shapes():
    three = DistortionSurface(0, [1, 1, 1], [1, 1, 1])
    for surfaces in ([three, three], [PAPER, three], [], [None]):
        with pytest.raises(ConfigError):
            pareto_segment(surfaces, 100.0)
    with pytest.raises(ConfigError):
        pareto_segment([PAPER, PAPER], np.nan)


# ---------------------------------------------------------------- Pareto set, 3 streams 2 tasks (Theorem 4)


def printed_extremes(s1: DistortionSurface, s2: DistortionSurface, Rt: float) -> dict[int, list[float]]:
    """Eq 31–33 of Appendix B, transcribed term by term (1-based indices as printed)."""
    A = {(i, j): s.alpha[j - 1] for i, s in ((1, s1), (2, s2)) for j in (1, 2, 3)}
    B = {(i, j): s.beta[j - 1] for i, s in ((1, s1), (2, s2)) for j in (1, 2, 3)}

    def b(i, j):
        return B[i, j]

    def L(i, j):
        return math.log2(A[i, j] * B[i, j])

    r1 = [
        (Rt * b(2, 3) * b(2, 2) - b(2, 2) * L(2, 3) - b(2, 3) * L(2, 2) + b(2, 2) * L(2, 1) + b(2, 3) * L(2, 1))
        / (b(2, 1) * b(2, 2) + b(2, 1) * b(2, 3) + b(2, 3) * b(2, 2)),
        (Rt * b(2, 3) * b(1, 2) - b(1, 2) * L(2, 3) - b(2, 3) * L(1, 2) + b(1, 2) * L(2, 1) + b(2, 3) * L(1, 1))
        / (b(1, 2) * b(2, 1) + b(1, 1) * b(2, 3) + b(2, 3) * b(1, 2)),
        (Rt * b(1, 3) * b(2, 2) - b(2, 2) * L(1, 3) - b(1, 3) * L(2, 2) + b(2, 2) * L(1, 1) + b(1, 3) * L(2, 1))
        / (b(1, 1) * b(2, 2) + b(2, 1) * b(1, 3) + b(1, 3) * b(2, 2)),
        (Rt * b(1, 3) * b(1, 2) - b(1, 2) * L(1, 3) - b(1, 3) * L(1, 2) + b(1, 2) * L(1, 1) + b(1, 3) * L(1, 1))
        / (b(1, 1) * b(1, 2) + b(1, 1) * b(1, 3) + b(1, 3) * b(1, 2)),
    ]
    r2 = [
        (Rt * b(2, 1) * b(2, 3) - b(2, 3) * L(2, 1) - b(2, 1) * L(2, 3) + b(2, 1) * L(2, 2) + b(2, 3) * L(2, 2))
        / (b(2, 2) * b(2, 3) + b(2, 2) * b(2, 1) + b(2, 1) * b(2, 3)),
        (Rt * b(2, 1) * b(1, 3) - b(1, 3) * L(2, 1) - b(2, 1) * L(1, 3) + b(1, 3) * L(2, 2) + b(2, 1) * L(1, 2))
        / (b(1, 3) * b(2, 2) + b(1, 2) * b(2, 1) + b(2, 1) * b(1, 3)),
        (Rt * b(1, 1) * b(2, 3) - b(2, 3) * L(1, 1) - b(1, 1) * L(2, 3) + b(2, 3) * L(1, 2) + b(1, 1) * L(2, 2))
        / (b(1, 2) * b(2, 3) + b(1, 1) * b(2, 2) + b(1, 1) * b(2, 3)),
        (Rt * b(1, 1) * b(1, 3) - b(1, 3) * L(1, 1) - b(1, 1) * L(1, 3) + b(1, 1) * L(1, 2) + b(1, 3) * L(1, 2))
        / (b(1, 2) * b(1, 3) + b(1, 1) * b(1, 2) + b(1, 1) * b(1, 3)),
    ]
    r3 = [
        (Rt * b(2, 1) * b(2, 2) - b(2, 2) * L(2, 1) - b(2, 1) * L(2, 2) + b(2, 2) * L(2, 3) + b(2, 1) * L(2, 3))
        / (b(2, 3) * b(2, 2) + b(2, 3) * b(2, 1) + b(2, 1) * b(2, 2)),
        (Rt * b(2, 1) * b(1, 2) - b(1, 2) * L(2, 1) - b(2, 1) * L(1, 2) + b(1, 2) * L(2, 3) + b(2, 1) * L(1, 3))
        / (b(2, 3) * b(1, 2) + b(1, 3) * b(2, 1) + b(2, 1) * b(1, 2)),
        (Rt * b(1, 1) * b(2, 2) - b(2, 2) * L(1, 1) - b(1, 1) * L(2, 2) + b(2, 2) * L(1, 3) + b(1, 1) * L(2, 3))
        / (b(1, 3) * b(2, 2) + b(2, 3) * b(1, 1) + b(1, 1) * b(2, 2)),
        (Rt * b(1, 1) * b(1, 2) - b(1, 2) * L(1, 1) - b(1, 1) * L(1, 2) + b(1, 2) * L(1, 3) + b(1, 1) * L(1, 3))
        / (b(1, 3) * b(1, 2) + b(1, 3) * b(1, 1) + b(1, 1) * b(1, 2)),
    ]
    return {1: r1, 2: r2, 3: r3}


def sampled_pareto_set(tasks, total: float, count: int = 21) -> np.ndarray:
    """Pareto points as in Fig. 8–9: minima of w·D_1 + (1 − w)·D_2 for w from 0 to 1 (Theorem 1)."""
    points = [np.full(3, total / 3)]
    for w in np.linspace(0, 1, count):
        def fun(r, w=w):
            return w * tasks[0](r) + (1 - w) * tasks[1](r)

        def grad(r, w=w):
            return w * tasks[0].gradient(r) + (1 - w) * tasks[1].gradient(r)

        points.append(minimize_on_simplex(fun, grad, 3, total, [np.full(3, total / 3), points[-1]]))
    return np.array(points[1:])


def inside_polygon(point: np.ndarray, vertices: np.ndarray, tol: float) -> bool:
    u, v = np.array([1.0, -1.0, 0.0]) / np.sqrt(2), np.array([1.0, 1.0, -2.0]) / np.sqrt(6)
    p, q = np.array([point @ u, point @ v]), np.c_[vertices @ u, vertices @ v]
    edges = np.roll(q, -1, axis=0) - q
    cross = edges[:, 0] * (p[1] - q[:, 1]) - edges[:, 1] * (p[0] - q[:, 0])
    return bool(np.all(cross >= -tol * np.linalg.norm(edges, axis=1)))


def three_by_two_cases():
    rng = np.random.default_rng(9)
    cases = []
    while len(cases) < 10:
        tasks = [random_surface(rng, 3) for _ in range(2)]
        cases.append((tasks, float(10 ** rng.uniform(2, 3.3))))
    return cases


def test_pareto_bounds_equal_eq_31_to_33_when_rates_are_positive():
    rng = np.random.default_rng(10)
    checked = 0
    while checked < 10:
        tasks = [DistortionSurface(0, 10 ** rng.uniform(1, 2, 3), 10 ** rng.uniform(-2.5, -2, 3)) for _ in range(2)]
        total = 2000.0
        printed = printed_extremes(*tasks, total)
        if min(min(v) for v in printed.values()) <= 0 or max(max(v) for v in printed.values()) >= total:
            continue
        pareto = sampled_pareto_set(tasks, total, count=5)
        if np.any(pareto <= 1e-6 * total):  # the paper's setting: every Pareto rate positive
            continue
        bounds = pareto_bounds(tasks, total)
        for j in (1, 2, 3):
            np.testing.assert_allclose(bounds[j - 1], [min(printed[j]), max(printed[j])], rtol=1e-10)
        checked += 1


def test_pareto_bounds_contain_numerically_sampled_pareto_points():
    zero_rate_cases = 0
    for tasks, total in three_by_two_cases():
        bounds = pareto_bounds(tasks, total)
        assert bounds.shape == (3, 2) and np.all(bounds >= 0) and np.all(bounds <= total)
        assert np.all(bounds[:, 0] <= bounds[:, 1])
        pareto = sampled_pareto_set(tasks, total)
        tol = 1e-6 * total
        assert np.all(pareto >= bounds[:, 0] - tol) and np.all(pareto <= bounds[:, 1] + tol), (tasks, total)
        zero_rate_cases += bool(np.any(pareto < tol))
        vertices = pareto_polygon(bounds, total)
        assert 1 <= len(vertices) <= 6
        np.testing.assert_allclose(vertices.sum(axis=1), total, rtol=1e-12)
        assert np.all(vertices >= bounds[:, 0] - tol) and np.all(vertices <= bounds[:, 1] + tol)
        if len(vertices) >= 3:
            assert all(inside_polygon(p, vertices, tol) for p in pareto)
    assert zero_rate_cases >= 3  # the cases eq 31–33 alone do not cover


def test_clipping_eq_31_to_33_alone_misses_pareto_points_with_zero_rates():
    # Stream 3 matters little to either task, so both task optima (and every Pareto point) give
    # it zero rate. Eq 31–33 extrapolate a negative R_3 and put R_1, R_2 beyond the budget that
    # is actually shared by two streams; clipping to [0, R_t] does not repair that.
    tasks = [DistortionSurface(0, [50.0, 20.0, 0.5], [0.01, 0.02, 0.001]),
             DistortionSurface(0, [20.0, 60.0, 0.3], [0.02, 0.01, 0.002])]
    total = 300.0
    pareto = sampled_pareto_set(tasks, total)
    assert np.all(pareto[:, 2] < 1e-6 * total)
    printed = printed_extremes(*tasks, total)
    clipped = np.array([np.clip([min(printed[j]), max(printed[j])], 0, total) for j in (1, 2, 3)])
    outside = np.any((pareto < clipped[:, 0] - 1e-6) | (pareto > clipped[:, 1] + 1e-6), axis=1)
    assert np.any(outside)  # the printed bounds alone fail here
    bounds = pareto_bounds(tasks, total)
    assert np.all(pareto >= bounds[:, 0] - 1e-6 * total) and np.all(pareto <= bounds[:, 1] + 1e-6 * total)


def test_pareto_polygon_geometry():
    bounds = np.array([[100.0, 600.0], [100.0, 600.0], [100.0, 600.0]])
    hexagon = pareto_polygon(bounds, 1050.0)  # the plane through the cube's centre: 6 vertices
    assert len(hexagon) == 6
    centred = hexagon - 350.0
    angles = np.unwrap(np.arctan2(centred @ [1.0, 1.0, -2.0] / np.sqrt(6), centred @ [1.0, -1.0, 0.0] / np.sqrt(2)))
    assert np.all(np.diff(angles) > 0)  # ordered around the polygon
    assert len(pareto_polygon(bounds, 1600.0)) == 3  # near a corner: a triangle
    assert len(pareto_polygon(bounds, 300.0)) == 1  # touching the corner (100, 100, 100)
    assert pareto_polygon(bounds, 2000.0).shape == (0, 3)
    with pytest.raises(ConfigError):
        pareto_polygon(np.ones((2, 2)), 10.0)


def test_pareto_bounds_refuse_other_systems():
    three = DistortionSurface(0, [1, 2, 3], [0.1, 0.2, 0.3])
    for surfaces in ([PAPER, PAPER], [three], [three, three, three], [three, PAPER]):
        with pytest.raises(ConfigError):
            pareto_bounds(surfaces, 100.0)
    with pytest.raises(ConfigError, match="α, β > 0"):
        pareto_bounds([three, DistortionSurface(0, [1, 0, 3], [0.1, 0.2, 0.3])], 100.0)
    with pytest.raises(ConfigError):
        pareto_bounds([three, three], -1.0)
    np.testing.assert_array_equal(pareto_bounds([three, three], 0.0), np.zeros((3, 2)))
