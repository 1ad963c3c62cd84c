"""``python evaluate.py allocate``: the bit-allocation experiment of the Pareto paper on a checkpoint.

    python evaluate.py allocate --ckpt CKPT --budgets 8 12 16 [--weights 1 1 1] [--codec proxy]
                                [--eval-codec jpeg2000] [--tuples 100] [--refine-tuples 10]
                                [--fit-fraction 0.2] [--images N] [--out DIR]

Budgets are **kbit per image** (all streams together), as in the paper. The test split is cut
in two: surfaces are fitted on ``--fit-fraction`` of it (20%, as in §VI-A) with ``--codec``
(the fast proxy, the real JPEG2000, or any registered codec) and every allocation — the closed
form (eq 15) and Methods 1–3 — is evaluated on the rest with ``--eval-codec`` (real JPEG2000).
By default the surface is refitted near the first allocation after a local sweep of
``--refine-tuples`` per budget (``0``: the paper's single sweep; the row ``unrefined`` shows that
allocation). Prints a Table III/IV style table and writes ``allocation.csv``,
``allocation.json`` and ``allocation.png`` to ``--out`` (default: ``<run>/allocation/`` beside
the checkpoint).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from cilight.allocation.experiment import REFINE_TUPLES, TUPLES, run_allocation, split_batches
from cilight.allocation.report import allocation_table, write_allocation
from cilight.checkpoints import load_model, test_batches
from cilight.codecs import stream_coder
from cilight.entrypoint import run_main
from cilight.errors import ConfigError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="evaluate.py", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser("allocate", help="fit D(R) surfaces, allocate bits, compare with Methods 1-3")
    p.add_argument("--ckpt", required=True, type=Path)
    p.add_argument("--budgets", required=True, type=float, nargs="+", help="total rates, kbit per image")
    p.add_argument("--weights", nargs="+", help="task weights of eq 17 (one number per task), 'equal' or 'inverse-mean'")
    p.add_argument("--codec", default="proxy", help="codec of the fitting sweep (default: proxy)")
    p.add_argument("--eval-codec", default="jpeg2000", help="codec the allocations are evaluated with (default: jpeg2000)")
    p.add_argument("--tuples", type=int, default=TUPLES, help=f"rate tuples in the sweep (paper: {TUPLES})")
    p.add_argument("--refine-tuples", type=int, default=REFINE_TUPLES,
                   help=f"rate tuples per budget of the local sweep around the first allocation (0: none; "
                        f"default {REFINE_TUPLES})")
    p.add_argument("--fit-fraction", type=float, default=0.2, help="part of the test split used to fit")
    p.add_argument("--images", type=int, help="use only the first N test images")
    p.add_argument("--num-test", type=int,
                   help="render a test split of N images (SyntheticStreets only; default: the checkpoint's)")
    p.add_argument("--data-root", help="dataset root (Cityscapes), if not the one in the checkpoint")
    p.add_argument("--out", type=Path)
    p.add_argument("--seed", type=int, default=0)
    return parser


def parse_weights(values, tasks: int):
    if not values:
        return "equal"
    if len(values) == 1 and values[0] in ("equal", "inverse-mean"):
        return values[0]
    try:
        weights = [float(v) for v in values]
    except ValueError:
        weights = []
    if len(weights) != tasks:
        raise ConfigError(f"--weights {' '.join(values)}: expected {tasks} numbers (one per task), 'equal' or "
                          f"'inverse-mean'")
    return weights


def allocate(args) -> int:
    if any(not b > 0 for b in args.budgets):
        raise ConfigError(f"--budgets {args.budgets}: expected positive kbit per image")
    coder, evaluation_coder = stream_coder(args.codec), stream_coder(args.eval_codec)
    model, data = load_model(args.ckpt)
    if len(model.split_points) < 2:
        raise ConfigError(f"{args.ckpt} has one stream ({model.split_points[0]}); allocation needs ≥ 2 split points")
    weights = parse_weights(args.weights, len(model.tasks))
    fit, held_out = split_batches(test_batches(data, args.images, args.num_test, args.data_root), args.fit_fraction)
    budgets = [b * 1e3 for b in args.budgets]
    print(f"fitting on {sum(len(b['image']) for b in fit)} test images with {coder.name}, evaluating on "
          f"{sum(len(b['image']) for b in held_out)} with {evaluation_coder.name}; budgets {args.budgets} kbit per image")
    sweep, rows, extras = run_allocation(model, fit, held_out, coder, budgets, tuples=args.tuples,
                                         refine_tuples=args.refine_tuples, weights=weights, seed=args.seed,
                                         evaluation_coder=evaluation_coder)
    print(allocation_table(rows, extras))
    out = args.out or args.ckpt.resolve().parent.parent / "allocation"
    settings = {"budgets_kbit": args.budgets, "weight_scheme": weights, "fit_codec": args.codec,
                "eval_codec": args.eval_codec, "tuples": args.tuples, "refine_tuples": args.refine_tuples}
    written = write_allocation(out, sweep, rows, extras, settings)
    print("wrote " + ", ".join(str(p) for p in written))
    return 0


COMMANDS = {"allocate": allocate}


def evaluate(argv=None) -> int:
    args = build_parser().parse_args(argv)
    return COMMANDS[args.command](args)


def main(argv=None) -> int:
    """Entry point of ``evaluate.py``: a user error prints one line and exits with status 2."""
    return run_main(evaluate, argv)
