"""Closed-form bit allocation (eq 15) against scipy's SLSQP on the same surface.

The surface is the one printed in the bit-allocation paper (§3: α = (72.45, 183.09),
β = (7.07e-4, 2.11e-2) per kbit, γ = 0.80), at the budgets of its Table 1 (R_t = 1000, 1500,
2000 kbit); also timed: a 6-stream surface whose budget leaves three streams at zero rate.
Optimality is checked on those and on 200 random surfaces with 2–8 streams, most of them with
zero-rate streams. SLSQP gets the analytic gradient, starts from the equal split and runs at the tolerance
that brings it within 1e-9 of the optimum (``ftol=1e-12``); the default tolerance is timed too.
Both are timed in the same process, alternating, best of ``--repeats`` (each repeat the mean of
many calls), and the ratio is taken per repeat. Also reported: the largest relative gap of the
closed form over SLSQP in excess distortion ``D − γ`` (negative: closed form better), and
whether every closed-form allocation was non-negative and summed to R_t exactly.

    python benchmarks/allocation_speed.py [--repeats 7] [--out FILE]

Writes JSON (default ``benchmarks/results/allocation_speed.json``) naming the machine.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
from scipy.optimize import minimize

from cilight.allocation import DistortionSurface, allocate
from report import RESULTS, write_result

PAPER_SURFACE = DistortionSurface(0.80, [72.45, 183.09], [7.07e-4, 2.11e-2])
PAPER_BUDGETS = (1000.0, 1500.0, 2000.0)
SIX_STREAMS = DistortionSurface(1.0, [120.0, 60.0, 30.0, 8.0, 4.0, 2.0], [4e-3, 6e-3, 2e-3, 1e-3, 5e-3, 2e-3])
SIX_STREAMS_BUDGET = 1500.0


def slsqp(surface: DistortionSurface, total_rate: float, ftol: float) -> np.ndarray:
    """Problem (3) as a generic numerical solver sees it: eq 2 with its gradient, Σ R = R_t, R ≥ 0."""
    n = surface.num_streams
    result = minimize(
        lambda r: surface(r),
        np.full(n, total_rate / n),
        jac=surface.gradient,
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
        rows = []
        for _ in range(args.repeats):
            closed = mean_seconds(lambda: allocate(surface, budget))
            numeric = mean_seconds(lambda: slsqp(surface, budget, 1e-12))
            default = mean_seconds(lambda: slsqp(surface, budget, 1e-6))
            rows.append((closed, numeric, default))
        closed, numeric, default = (min(column) for column in zip(*rows))
        timings[name] = {
            "allocation": allocate(surface, budget).tolist(),
            "closed_form_us": closed * 1e6,
            "slsqp_us": numeric * 1e6,
            "slsqp_default_ftol_us": default * 1e6,
            "speedup_median": statistics.median(n / c for c, n, _ in rows),
            "speedup_best": numeric / closed,
            "speedup_vs_default_ftol_median": statistics.median(d / c for c, _, d in rows),
        }
        print(f"{name}: closed form {closed * 1e6:.2f} µs, SLSQP {numeric * 1e6:.0f} µs "
              f"(default ftol {default * 1e6:.0f} µs), speed-up ×{timings[name]['speedup_median']:.0f} (median)")

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
        "timings": timings,
        "optimality": {"cases": len(cases), "cases_with_zero_rate_streams": zero_streams,
                       "worst_relative_gap_over_slsqp": worst_gap, "sums_exact": exact,
                       "non_negative": non_negative},
    })


if __name__ == "__main__":
    main()
