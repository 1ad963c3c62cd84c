"""``python evaluate.py allocate``: the bit-allocation experiment of the Pareto paper on a checkpoint.

    python evaluate.py allocate --ckpt CKPT --budgets 8 12 16 [--weights 1 1 1] [--codec jpeg2000|proxy]
                                [--tuples 100] [--refine-tuples 24] [--fit-fraction 0.2] [--images N] [--out DIR]

Budgets are **kbit per image** (all streams together), as in the paper. The test split is cut
in two: surfaces are fitted on ``--fit-fraction`` of it (20%, as in §VI-A) with ``--codec``
(the fast proxy or the real JPEG2000) and every allocation — the closed form (eq 15) and
Methods 1–3 — is evaluated on the rest with the real ``jpeg2000`` codec. By default the surface
is refitted near the first allocation after a local sweep of ``--refine-tuples`` per budget
(``0``: the paper's single sweep; the row ``unrefined`` shows that allocation). Prints a Table III/IV
style table and writes ``allocation.csv``, ``allocation.json`` and ``allocation.png`` to
``--out`` (default: ``<run>/allocation/`` beside the checkpoint).
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

import numpy as np
import torch

from cilight.checkpoints import datamodule_from, load_model
from cilight.errors import CilightError, ConfigError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="evaluate.py", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser("allocate", help="fit D(R) surfaces, allocate bits, compare with Methods 1-3")
    p.add_argument("--ckpt", required=True, type=Path)
    p.add_argument("--budgets", required=True, type=float, nargs="+", help="total rates, kbit per image")
    p.add_argument("--weights", nargs="+", help="task weights of eq 17 (3 numbers), 'equal' or 'inverse-mean'")
    p.add_argument("--codec", default="proxy", choices=["proxy", "jpeg2000"], help="codec of the fitting sweep")
    p.add_argument("--tuples", type=int, default=100, help="rate tuples in the sweep (paper: 100)")
    p.add_argument("--refine-tuples", type=int, default=24,
                   help="rate tuples per budget of the local sweep around the first allocation (0: none)")
    p.add_argument("--fit-fraction", type=float, default=0.2, help="part of the test split used to fit")
    p.add_argument("--images", type=int, help="use only the first N test images")
    p.add_argument("--num-test", type=int,
                   help="render a test split of N images (SyntheticStreets only; default: the checkpoint's)")
    p.add_argument("--data-root", help="dataset root (Cityscapes), if not the one in the checkpoint")
    p.add_argument("--out", type=Path)
    p.add_argument("--seed", type=int, default=0)
    return parser


def parse_weights(values):
    if not values:
        return "equal"
    if len(values) == 1 and values[0] in ("equal", "inverse-mean"):
        return values[0]
    try:
        return [float(v) for v in values]
    except ValueError:
        raise ConfigError(f"--weights {' '.join(values)}: expected 3 numbers, 'equal' or 'inverse-mean'") from None


def test_batches(data: dict, args) -> list[dict[str, torch.Tensor]]:
    overrides = {"root": args.data_root} if args.data_root else {}
    if args.num_test is not None:
        if not data.get("_class_path", "cilight.datamodules.SyntheticStreets").endswith("SyntheticStreets"):
            raise ConfigError(f"--num-test {args.num_test}: only SyntheticStreets renders a test split of any size; "
                              f"this checkpoint's data is {data.get('_class_path')}")
        if args.num_test < 2:
            raise ConfigError(f"--num-test {args.num_test}: expected at least 2 images (some to fit, some to evaluate)")
        overrides["num_test"] = args.num_test
    datamodule = datamodule_from(data, **overrides)
    datamodule.setup("test")
    batches, count = [], 0
    for batch in datamodule.test_dataloader():
        if args.images and count >= args.images:
            break
        if args.images:
            batch = {k: v[: args.images - count] for k, v in batch.items()}
        batches.append(batch)
        count += len(batch["image"])
    return batches


def split_batches(batches, fraction: float):
    """First ``fraction`` of the images to fit, the rest to evaluate (whole samples, order kept)."""
    images = {k: torch.cat([b[k] for b in batches]) for k in batches[0]}
    n = len(images["image"])
    cut = max(1, min(n - 1, round(fraction * n)))
    size = batches[0]["image"].shape[0]

    def chunks(lo, hi):
        return [{k: v[i : min(i + size, hi)] for k, v in images.items()} for i in range(lo, hi, size)]

    return chunks(0, cut), chunks(cut, n)


def format_table(rows, extras) -> str:
    from cilight.allocation.sweep import TASK_METRICS

    lines = [f"{'R_t (kbit)':>10} {'method':>9} {'rates (kbit)':>22} " + " ".join(f"{m:>20}" for m in TASK_METRICS)
             + f" {'D_t (%)':>8} {'R²':>6}"]
    lines.append(f"{'—':>10} {'reference':>9} {'uncompressed':>22} "
                 + " ".join(f"{extras['reference'][m]:20.4f}" for m in TASK_METRICS))
    best = {}
    for r in rows:
        best[r.budget] = min(best.get(r.budget, np.inf), r.total_distortion)
    for r in rows:
        rates = ", ".join(f"{x / 1e3:.2f}" for x in r.rates)
        mark = " *" if r.total_distortion == best[r.budget] else ""
        lines.append(f"{r.budget / 1e3:10.2f} {r.method:>9} {rates:>22} "
                     + " ".join(f"{r.metrics[m]:20.4f}" for m in TASK_METRICS)
                     + f" {r.total_distortion:8.3f} {r.r2:6.3f}{mark}")
    for budget, segment in extras.get("pareto", {}).items():
        lines.append(f"Pareto set at R_t = {float(budget) / 1e3:.2f} kbit: R_1 ∈ [{segment[0] / 1e3:.2f}, {segment[1] / 1e3:.2f}] kbit")
    return "\n".join(lines)


def plot(rows, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    budgets = sorted({r.budget for r in rows})
    methods = list(dict.fromkeys(r.method for r in rows))
    fig, ax = plt.subplots(figsize=(6, 4))
    width = 0.8 / len(methods)
    for i, method in enumerate(methods):
        values = [next(r.total_distortion for r in rows if r.budget == b and r.method == method) for b in budgets]
        ax.bar(np.arange(len(budgets)) + i * width, values, width, label=method)
    ax.set_xticks(np.arange(len(budgets)) + width * (len(methods) - 1) / 2, [f"{b / 1e3:g}" for b in budgets])
    ax.set_xlabel("total rate R_t (kbit per image)")
    ax.set_ylabel("total distortion D_t (%)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def allocate_command(args) -> int:
    from cilight.allocation.callback import make_coder
    from cilight.allocation.experiment import rows_as_dicts, run_allocation

    if not 0 < args.fit_fraction < 1:
        raise ConfigError(f"--fit-fraction {args.fit_fraction}: expected a number between 0 and 1")
    if any(not b > 0 for b in args.budgets):
        raise ConfigError(f"--budgets {args.budgets}: expected positive kbit per image")
    model, data = load_model(args.ckpt)
    if len(model.split_points) < 2:
        raise ConfigError(f"{args.ckpt} has one stream ({model.split_points[0]}); allocation needs ≥ 2 split points")
    weights = parse_weights(args.weights)
    batches = test_batches(data, args)
    fit, held_out = split_batches(batches, args.fit_fraction)
    budgets = [b * 1e3 for b in args.budgets]
    print(f"fitting on {sum(len(b['image']) for b in fit)} test images with {args.codec}, evaluating on "
          f"{sum(len(b['image']) for b in held_out)} with jpeg2000; budgets {args.budgets} kbit per image")
    sweep, rows, extras = run_allocation(model, fit, held_out, make_coder(args.codec), budgets, tuples=args.tuples,
                                         refine_tuples=args.refine_tuples, weights=weights, seed=args.seed,
                                         evaluation_coder=make_coder("jpeg2000"))
    print(format_table(rows, extras))
    out = args.out or args.ckpt.resolve().parent.parent / "allocation"
    out.mkdir(parents=True, exist_ok=True)
    records = rows_as_dicts(rows)
    (out / "allocation.json").write_text(json.dumps({"rows": records, **extras, "budgets_kbit": args.budgets,
                                                     "weights": weights, "fit_codec": args.codec,
                                                     "refine_tuples": args.refine_tuples,
                                                     "sweep": sweep.as_dict()},
                                                    indent=1, default=float))
    with open(out / "allocation.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["budget_bits", "method", "rates_bits", "bits_used", *records[0]["metrics"], "total_distortion", "r2"])
        for r in rows:
            writer.writerow([r.budget, r.method, " ".join(f"{x:.0f}" for x in r.rates), " ".join(f"{x:.0f}" for x in r.bits_used),
                             *r.metrics.values(), r.total_distortion, r.r2])
    plot(rows, out / "allocation.png")
    print(f"wrote {out / 'allocation.csv'}, allocation.json, allocation.png")
    return 0


def main(argv=None) -> int:
    """Entry point of ``evaluate.py``: a user error prints one line and exits with status 2."""
    args = build_parser().parse_args(argv)
    try:
        return allocate_command(args)
    except CilightError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
