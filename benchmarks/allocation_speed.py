"""Closed-form bit allocation (eq 15) against scipy's SLSQP on the same surface.

The surface is the one printed in the bit-allocation paper (§3: α = (72.45, 183.09),
β = (7.07e-4, 2.11e-2) per kbit, γ = 0.80), at the budgets of its Table 1 (R_t = 1000, 1500,
2000 kbit); also timed: a 6-stream surface whose budget leaves three streams at zero rate.

SLSQP solves problem (3) with the analytic gradient from the equal split, at the tolerance
that brings it within 1e-9 of the optimum (``ftol=1e-12``; the default 1e-6 is timed too). It
is timed two ways: on the surface object itself (``minimize(surface, …, jac=surface.gradient)``,
what a user of cilight would write) and on bare numpy expressions of eq 2 (SLSQP at its
fastest). All are timed in the same process, alternating; each repeat takes the mean of many
calls, and the speed-up is the median over ``--repeats`` of the per-repeat ratios (its
minimum is reported too).

Optimality is checked on the timed surfaces and on 200 random surfaces with 2–8 streams, most
of them with zero-rate streams: the largest relative gap of the closed form over SLSQP in
excess distortion ``D − γ`` (negative: closed form better), and whether every closed-form
allocation was non-negative and summed to R_t exactly.

    python -m benchmarks.allocation_speed [--repeats 7] [--out FILE]

Writes JSON (default ``benchmarks/results/allocation_speed.json``) naming the machine.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import numpy as np
from scipy.optimize import minimize

from benchmarks.report import RESULTS, write_result
from cilight.allocation import DistortionSurface, allocate

PAPER_SURFACE = DistortionSurface(0.80, [72.45, 183.09], [7.07e-4, 2.11e-2])
PAPER_BUDGETS = (1000.0, 1500.0, 2000.0)
SIX_STREAMS = DistortionSurface(1.0, [120.0, 60.0, 30.0, 8.0, 4.0, 2.0], [4e-3, 6e-3, 2e-3, 1e-3, 5e-3, 2e-3])
SIX_STREAMS_BUDGET = 1500.0


def slsqp(surface: DistortionSurface, total_rate: float, ftol: float, bare: bool = True) -> np.ndarray:
    """Problem (3) as a generic numerical solver sees it: eq 2 with its gradient, Σ R = R_t, R ≥ 0.

    ``bare``: objective and gradient as plain numpy expressions instead of the surface's own
    (validating) ``__call__`` and ``gradient``.
    """
    n = surface.num_streams
    if bare:
        gamma, alpha, beta = surface.gamma, surface.alpha, surface.beta
        slope = -np.log(2.0) * alpha * beta

        def objective(r):
            return gamma + np.sum(alpha * np.exp2(-beta * r))

        def gradient(r):
            return slope * np.exp2(-beta * r)
    else:
        objective, gradient = surface, surface.gradient
    result = minimize(
        objective,
        np.full(n, total_rate / n),
        jac=gradient,
        method="SLSQP",
        bounds=[(0.0, total_rate)] * n,
        constraints=[{"type": "eq", "fun": lambda r: r.sum() - total_rate, "jac": lambda r: np.ones(n)}],
        options={"ftol": ftol, "maxiter": 500},
    )
    return np.clip(result.x, 0.0, total_rate)


def mean_seconds(fn, min_time: float = 0.2) -> float:
    """Mean wall time of ``fn()`` over enough calls to last ``min_time`` seconds."""
    calls = 1
    while True:
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        elapsed = time.perf_counter() - start
        if elapsed >= min_time:
            return elapsed / calls
        calls *= 2 if elapsed > min_time / 10 else 10


def random_cases(count: int, seed: int = 0) -> list[tuple[DistortionSurface, float]]:
    rng = np.random.default_rng(seed)
    cases = []
    for _ in range(count):
        n = int(rng.integers(2, 9))
        surface = DistortionSurface(1.0, 10 ** rng.uniform(0, 3, n), 10 ** rng.uniform(-3.5, -1.5, n))
        cases.append((surface, float(10 ** rng.uniform(1, 3.5))))
    return cases


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--out", type=Path, default=RESULTS / "allocation_speed.json")
    args = parser.parse_args()

    timings = {}
    timed = [(f"paper surface, R_t = {b:g} kbit", PAPER_SURFACE, b) for b in PAPER_BUDGETS]
    timed.append((f"6 streams, R_t = {SIX_STREAMS_BUDGET:g}", SIX_STREAMS, SIX_STREAMS_BUDGET))
    for name, surface, budget in timed:
        solvers = {
            "closed_form": lambda: allocate(surface, budget),
            "slsqp_on_surface": lambda: slsqp(surface, budget, 1e-12, bare=False),
            "slsqp_bare": lambda: slsqp(surface, budget, 1e-12),
            "slsqp_bare_default_ftol": lambda: slsqp(surface, budget, 1e-6),
        }
        rows = [{key: mean_seconds(fn) for key, fn in solvers.items()} for _ in range(args.repeats)]
        result = {"allocation": allocate(surface, budget).tolist()}
        for key in solvers:
            result[f"{key}_us"] = min(row[key] for row in rows) * 1e6
        for key in list(solvers)[1:]:
            ratios = [row[key] / row["closed_form"] for row in rows]
            result[f"speedup_over_{key}"] = {"median": statistics.median(ratios), "min": min(ratios)}
        timings[name] = result
        print(f"{name}: closed form {result['closed_form_us']:.2f} µs; SLSQP on the surface "
              f"{result['slsqp_on_surface_us']:.0f} µs (×{result['speedup_over_slsqp_on_surface']['median']:.0f}), "
              f"bare {result['slsqp_bare_us']:.0f} µs (×{result['speedup_over_slsqp_bare']['median']:.0f}), "
              f"bare at default ftol {result['slsqp_bare_default_ftol_us']:.0f} µs "
              f"(×{result['speedup_over_slsqp_bare_default_ftol']['median']:.0f})")

    worst_gap, exact, non_negative = -np.inf, True, True
    cases = [(surface, budget) for _, surface, budget in timed] + random_cases(200)
    zero_streams = 0
    for surface, budget in cases:
        rates = allocate(surface, budget)
        reference = slsqp(surface, budget, 1e-12)
        excess_closed = surface(rates) - surface.gamma
        excess_numeric = surface(reference) - surface.gamma
        worst_gap = max(worst_gap, (excess_closed - excess_numeric) / excess_numeric)
        exact &= bool(rates.sum() == budget)
        non_negative &= bool(np.all(rates >= 0))
        zero_streams += int(np.any(rates == 0))
    print(f"{len(cases)} surfaces ({zero_streams} with zero-rate streams): worst relative gap of the closed "
          f"form over SLSQP {worst_gap:.2e}; sums exact: {exact}; non-negative: {non_negative}")

    write_result(args.out, {
        "benchmark": "allocation_speed",
        "surface": {"gamma": PAPER_SURFACE.gamma, "alpha": PAPER_SURFACE.alpha.tolist(),
                    "beta": PAPER_SURFACE.beta.tolist(), "rate_unit": "kbit"},
        "repeats": args.repeats,
        "load_average_1_5_15_min": list(os.getloadavg()),  # other work on the machine while timing
        "timings": timings,
        "optimality": {"cases": len(cases), "cases_with_zero_rate_streams": zero_streams,
                       "worst_relative_gap_over_slsqp": worst_gap, "sums_exact": exact,
                       "non_negative": non_negative},
    })


if __name__ == "__main__":
    main()
