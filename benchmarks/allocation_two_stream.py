"""The README's bit-allocation tables: a 2-stream model, ``evaluate.py allocate``, the budget line scanned.

1. Trains ``python train.py --model.split_points [layer2,layer3]`` (``--split-points``; default
   settings otherwise) unless ``--ckpt`` names a checkpoint.
2. Runs ``python evaluate.py allocate --ckpt CKPT --budgets 6 12 24 --num-test 512 --refine-tuples 24`` as a user
   would (fresh process), writing its CSV/JSON/PNG to ``--out``. The budgets are 0.25, 0.5 and
   1 bit per element of both streams (the callback's defaults), rounded: 6/12/24 kbit for
   layer2 + layer3 (24 576 elements at 64×128), 10/20/40 kbit for layer1 + layer3 (40 960).
3. With ``--scan``: codes the held-out images at ``R_1 / R_t = 0.40, 0.42, …, 0.70`` of every
   budget with the real codec — the measured total distortion along the budget line, i.e. where
   the best split really is — and plots it with each method's allocation marked
   (``--out``/``budget_line.png``). This shows how far each method is from the best split and
   how large the measurement noise between neighbouring splits is.

    python -m benchmarks.allocation_two_stream [--split-points layer2 layer3] [--budgets 6 12 24]
                                               [--ckpt CKPT] [--scan] [--out DIR]

Writes ``benchmarks/results/allocation_<split points>.json`` (table, scan, timings, machine) and
the evaluation's files under ``benchmarks/results/allocation_<split points>/``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks.report import RESULTS, ROOT, write_result

NUM_TEST = 512


def run(command: list[str]) -> None:
    env = {**os.environ, "WANDB_MODE": os.environ.get("WANDB_MODE", "offline")}
    print("running:", " ".join(command), flush=True)
    subprocess.run(command, cwd=ROOT, env=env, check=True)


def plot_scan(scan: dict, rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(scan), figsize=(4.2 * len(scan), 3.6))
    for ax, (budget, line) in zip(np.atleast_1d(axes), scan.items()):
        ax.plot([p["share"] for p in line], [p["total_distortion"] for p in line], "k.-", lw=1,
                label="measured along R₁+R₂=R_t")
        for r in (r for r in rows if r["budget"] == float(budget)):
            ax.plot(r["rates"][0] / r["budget"], r["total_distortion"], "o", label=r["method"])
        ax.set_title(f"R_t = {float(budget) / 1e3:g} kbit")
        ax.set_xlabel("R₁ / R_t")
        ax.set_ylabel("D_t (%)")
    np.atleast_1d(axes)[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--split-points", nargs=2, default=["layer2", "layer3"])
    parser.add_argument("--budgets", nargs="+", default=["6", "12", "24"],
                        help="kbit per image: steep, middle and flat part of the surface (§VI-C, Table III)")
    parser.add_argument("--ckpt", type=Path, help="a 2-stream checkpoint (default: train one)")
    parser.add_argument("--runs", type=Path, default=ROOT / "runs", help="run root for the training step")
    parser.add_argument("--scan", action="store_true", help="also scan the budget lines with the real codec")
    parser.add_argument("--out", type=Path, help="default: benchmarks/results/allocation_<split points>/")
    args = parser.parse_args()
    name = "allocation_" + "_".join(args.split_points)
    args.out = args.out or RESULTS / name

    seconds = {}
    ckpt = args.ckpt
    if ckpt is None:
        start = time.perf_counter()
        run_name = "_".join(args.split_points)
        run([sys.executable, "train.py", "--model.split_points", f"[{','.join(args.split_points)}]",
             "--run_name", run_name, "--trainer.default_root_dir", str(args.runs), "--trainer.enable_progress_bar", "false"])
        seconds["train"] = time.perf_counter() - start
        ckpt = min((args.runs / run_name / "checkpoints").glob("best-*.ckpt"))
    command = ["evaluate.py", "allocate", "--ckpt", str(ckpt), "--budgets", *args.budgets,
               "--num-test", str(NUM_TEST), "--refine-tuples", "24", "--out", str(args.out)]
    start = time.perf_counter()
    run([sys.executable, *command])
    seconds["evaluate"] = time.perf_counter() - start
    table = json.loads((args.out / "allocation.json").read_text())
    rows = table["rows"]

    scan = {}
    if args.scan:
        from cilight.ci_models.checkpoints import load_model
        from cilight.codecs import stream_coder
        from cilight.datamodules.from_checkpoint import test_batches
        from cilight.evaluation import scan_budget_line
        from cilight.evaluation.experiment import split_batches

        start = time.perf_counter()
        model, data = load_model(ckpt)
        _, held_out = split_batches(test_batches(data, num_test=NUM_TEST), 0.2)
        weights = list(table["weights"].values())  # the numbers the allocation was scored with
        for budget in table["budgets_kbit"]:
            scan[str(budget * 1e3)] = scan_budget_line(model, held_out, stream_coder("jpeg2000"), budget * 1e3,
                                                       np.round(np.arange(0.40, 0.701, 0.02), 2), weights)
        seconds["scan"] = time.perf_counter() - start
        plot_scan(scan, rows, args.out / "budget_line.png")

    lowest = {}
    for r in rows:
        if r["method"] != "unrefined" and r["total_distortion"] < lowest.get(r["budget"], (np.inf, ""))[0]:
            lowest[r["budget"]] = (r["total_distortion"], r["method"])
    for budget, (value, method) in lowest.items():
        print(f"R_t = {budget / 1e3:g} kbit: lowest D_t {value:.3f} ({method})")
        if scan:
            best = min(scan[str(budget)], key=lambda p: p["total_distortion"])
            print(f"    budget line: lowest {best['total_distortion']:.3f} at R1/R_t = {best['share']:.2f}")
    write_result(RESULTS / f"{name}.json", {
        "benchmark": "allocation_two_stream",
        "split_points": args.split_points,
        "checkpoint": str(ckpt),
        "command": "python " + " ".join(command),
        "rows": rows,
        "surfaces": table["surfaces"],
        "pareto": table["pareto"],
        "reference": table["reference"],
        "lowest_of_the_four_methods": {str(b): m for b, (_, m) in lowest.items()},
        "budget_line": scan,
        "seconds": seconds,
    })


if __name__ == "__main__":
    main()
