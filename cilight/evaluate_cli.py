"""``python evaluate.py curves|bdrate|compare|allocate|baf``: rate–accuracy curves, BD-rate tables, paired
comparisons of training recipes, bit allocation, BaF.

    python evaluate.py curves --ckpt CKPT [--codecs FAMILY …] [--images N] [--out DIR]
    python evaluate.py bdrate --anchor CKPT_A --test CKPT_B [CKPT_C …] [--codecs FAMILY …]
                              [--method cubic|pchip|akima] [--min-overlap 0.5] [--dominated refuse|drop]
                              [--out DIR]

``curves`` codes every stream of every test image at each operating point with the real codec
and measures every task (ICIP 2019 §3, Fig. 4); a FAMILY is one curve,
``[name=]point+point+…`` (default ``paper=png+jpeg:quality=95,90,85,80``; e.g.
``wide=jpeg:quality=95,80,60,40,20`` or ``j2k=jpeg2000:bpe=0.25,0.5,1,2,3``). Results go to
``<run>/curves/`` beside the checkpoint. ``bdrate`` measures (or reuses the saved curves of)
every model and prints Table 1: BD-rate and BD-metric of each test model against the anchor per
task and family, with the overlap of the metric ranges (a BD-rate over less than
``--min-overlap`` of them is refused). Disparity enters as IRMSE = 1/RMSE. It writes
``bdrate.json``, ``bdrate.csv`` and ``rd_<task>.png`` to ``--out`` and logs them to an active
W&B run.

    python evaluate.py compare --anchor A_SEED0 A_SEED1 … --test B_SEED0 B_SEED1 … [--pair-by position|seed]
                               [--codecs FAMILY …] [--remote FAMILY …] [--band 0.5 0.95] [--levels 0.8 0.9 0.95]
                               [--alpha 0.05] [--post-hoc] [--out DIR]

``compare`` compares two training recipes ("arms") over paired checkpoints (the same seed, or fine-tuned
from one base with the same fine-tune seed): per pair and task, the BD-rate as a mean log rate ratio
(PCHIP) over a metric band fixed in advance (``--band``: shares of the anchor's uncompressed metric;
PSNR counted from the trivial predictor's) and the rate at equal accuracy at ``--levels``; over pairs,
the mean with a paired 95% t-interval, Holm-adjusted p-values across tasks and a verdict in words
(:mod:`cilight.evaluation.paired`). ``--remote`` adds remote-inference families (the anchor models on
their coded input images): every test family is also compared against them. Writes ``compare.json``,
``compare.csv`` and one plot per family and task (each pair faint, each arm's mean bold) to ``--out``;
logs them to an active W&B run. A band a curve does not cover refuses the command; with ``--post-hoc``
it refuses that task only and reads it again where the curves allow (``read_refused``: over the
band every pair covers, or where the curves meet, bounds saying *at least*), apart and labelled.

    python evaluate.py baf --ckpt BAF_CKPT [BAF_CKPT …] [--codecs png jpeg:quality=90 …] [--images N] [--out DIR]

``baf`` codes the transmitted channels of every test image with each operating point (real bytes,
container and fp16 bounds included) and reports, for every BaF checkpoint, every task metric
through BaF (with and without consolidation, eq 6) against the unmodified model, and the size
against all P channels of the same tensor at 8 bits with the same codec and against the input
image as PNG and JPEG q90 (Choi et al., ICASSP 2020, Fig. 3–4). Writes ``baf.json``, ``baf.csv``
and one plot per metric to ``--out``; logs them to an active W&B run.

    python evaluate.py allocate --ckpt CKPT --budgets 8 12 16 [--protocol paper] [--weights 1 1 1] [--codec proxy]
                                [--eval-codec jpeg2000] [--tuples 100] [--refine-tuples 10]
                                [--fit-fraction 0.2] [--images N] [--out DIR]

Budgets are **kbit per image** (all streams together), as in the paper. The test split is cut
in two at random (seeded by ``--seed``): surfaces are fitted on ``--fit-fraction`` of it (20%,
as in §VI-A) with ``--codec``
(the fast proxy, the real JPEG2000, or any registered codec) and every allocation — the closed
form (eq 15) and Methods 1–3 — is evaluated on the rest with ``--eval-codec`` (real JPEG2000).
By default the surface is refitted near the first allocation after a local sweep of
``--refine-tuples`` per budget (``0``: the paper's single sweep; the row ``unrefined`` shows that
allocation). ``--protocol paper`` runs §VI-A exactly as printed: 100 uniform tuples, no
refinement, JPEG2000 to fit and to evaluate. Prints a Table III/IV style table and writes ``allocation.csv``,
``allocation.json`` and ``allocation.png`` to ``--out`` (default: ``<run>/allocation/`` beside
the checkpoint).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from cilight.entrypoint import ArgumentParser, run_main
from cilight.errors import ConfigError
from cilight.evaluate_args import PROTOCOLS, checkpoint_group, resolve_protocol
from cilight.evaluation.defaults import (
    ALPHA,
    BAND_FRACTIONS,
    BD_METHODS,
    DEFAULT_FAMILIES,
    DOMINATED,
    LEVELS,
    MIN_OVERLAP,
    REFINE_TUPLES,
    TUPLES,
)
from cilight.files import check_checkpoint_file, check_output_folder


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(prog="evaluate.py", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)

    def data_options(p):
        p.add_argument("--codecs", nargs="+", default=list(DEFAULT_FAMILIES),
                       help="curve families, each [name=]point+point+… (default: %(default)s)")
        p.add_argument("--images", type=int, help="use only the first N test images")
        p.add_argument("--num-test", type=int,
                       help="render a test split of N images (SyntheticStreets only; default: the checkpoint's)")
        p.add_argument("--data-root", help="dataset root (Cityscapes), if not the one in the checkpoint")
        p.add_argument("--remeasure", action="store_true", help="measure again even if saved curves match")

    c = commands.add_parser("curves", help="rate-accuracy curves of one checkpoint with real codecs")
    c.add_argument("--ckpt", required=True, type=Path)
    data_options(c)
    c.add_argument("--out", type=Path, help="folder for curves.json/csv (default: <run>/curves/)")
    b = commands.add_parser("bdrate", help="BD-rate of test checkpoints against an anchor, per task (Table 1)")
    b.add_argument("--anchor", required=True, help="CKPT, or CKPT,CKPT,… for one curve over several (one per λ)")
    b.add_argument("--test", required=True, nargs="+", help="CKPT or CKPT,CKPT,… per test model")
    data_options(b)
    b.add_argument("--method", default="cubic", choices=BD_METHODS, help="interpolation (default: cubic, VCEG-M33)")
    b.add_argument("--min-overlap", type=float, default=MIN_OVERLAP,
                   help=f"refuse BD-rates over less than this share of the metric ranges (default {MIN_OVERLAP})")
    b.add_argument("--dominated", default="refuse", choices=list(DOMINATED),
                   help="a curve whose metric does not rise strictly with rate: refuse it (default), or drop its "
                        "dominated points (more bits, no better metric) first")
    b.add_argument("--out", type=Path, help="folder for the table and plots (default: <anchor run>/bdrate/)")
    m = commands.add_parser("compare", help="two training recipes over paired checkpoints: paired BD-rate intervals "
                                            "and a verdict per task and family")
    m.add_argument("--anchor", required=True, type=Path, nargs="+", help="the anchor arm's checkpoints, one per pair")
    m.add_argument("--test", required=True, type=Path, nargs="+", help="the test arm's checkpoints, one per pair")
    m.add_argument("--pair-by", default="position", choices=("position", "seed"),
                   help="pair the i-th anchor with the i-th test checkpoint (default), or the runs of the same "
                        "seed_everything (read from each run's config.yaml)")
    data_options(m)
    m.add_argument("--remote", nargs="+", metavar="FAMILY",
                   help="remote-inference families (the input image coded, e.g. remote=image:jpeg:quality=95,75,50,25,10): "
                        "every test family is also compared against the anchor models on their coded images")
    m.add_argument("--band", type=float, nargs=2, default=list(BAND_FRACTIONS), metavar=("LO", "HI"),
                   help="the metric band of the BD-rate, shares of the anchor's uncompressed metric (PSNR: from the "
                        "trivial predictor's) (default: %(default)s)")
    m.add_argument("--levels", type=float, nargs="+", default=list(LEVELS),
                   help="accuracy levels of the rate at equal accuracy, the same shares (default: %(default)s)")
    m.add_argument("--alpha", type=float, default=ALPHA, help="family-wise level of the verdicts (default %(default)s)")
    m.add_argument("--post-hoc", action="store_true",
                   help="compare each task alone: a task whose band a curve does not cover is refused in one line, not "
                        "the command, and read again over the band every pair covers or where the curves meet (a "
                        "reading chosen after seeing the curves, printed and saved apart, never a verdict of --band)")
    m.add_argument("--out", type=Path, help="folder for compare.json/csv and the plots (default: <first anchor run>/compare/)")
    f = commands.add_parser("baf", help="Back-and-Forth prediction: coded size against task accuracy (Fig. 3-4)")
    f.add_argument("--ckpt", required=True, type=Path, nargs="+", help="BaFPredictor checkpoints, one per (C, n)")
    f.add_argument("--codecs", nargs="+", default=["png"],
                   help="operating points the transmitted channels are coded with (default: png, lossless)")
    f.add_argument("--images", type=int, help="use only the first N test images")
    f.add_argument("--num-test", type=int,
                   help="render a test split of N images (SyntheticStreets only; default: the checkpoint's)")
    f.add_argument("--data-root", help="dataset root (Cityscapes), if not the one in the checkpoint")
    f.add_argument("--out", type=Path, help="folder for baf.json/csv and the plots (default: <first run>/baf/)")
    p = commands.add_parser("allocate", help="fit D(R) surfaces, allocate bits, compare with Methods 1-3")
    p.add_argument("--ckpt", required=True, type=Path)
    p.add_argument("--budgets", required=True, type=float, nargs="+", help="total rates, kbit per image")
    p.add_argument("--weights", nargs="+", help="task weights of eq 17 (one number per task), 'equal' or 'inverse-mean'")
    p.add_argument("--protocol", default="cilight", choices=list(PROTOCOLS),
                   help="'paper': §VI-A as printed (100 uniform tuples, no refinement, JPEG2000 to fit and to "
                        "evaluate); 'cilight' (default): the fast proxy to fit and a local refinement")
    p.add_argument("--codec", help="codec of the fitting sweep (default: the protocol's, proxy or jpeg2000)")
    p.add_argument("--eval-codec", help="codec the allocations are evaluated with (default: jpeg2000)")
    p.add_argument("--tuples", type=int, help=f"rate tuples in the sweep (default {TUPLES}, as in the paper)")
    p.add_argument("--refine-tuples", type=int,
                   help=f"rate tuples per budget of the local sweep around the first allocation (0: none; "
                        f"default {REFINE_TUPLES}, paper protocol 0)")
    p.add_argument("--fit-fraction", type=float,
                   help="random part of the test split used to fit (default 0.2, as in §VI-A)")
    p.add_argument("--images", type=int, help="use only the first N test images")
    p.add_argument("--num-test", type=int,
                   help="render a test split of N images (SyntheticStreets only; default: the checkpoint's)")
    p.add_argument("--data-root", help="dataset root (Cityscapes), if not the one in the checkpoint")
    p.add_argument("--out", type=Path)
    p.add_argument("--seed", type=int, default=0, help="seed of the fit/evaluation split and the rate tuples")
    return parser


def check_arguments(args) -> None:
    """What the command line alone decides, checked before a model is loaded or anything measured:
    counts and shares, every checkpoint file, the output folder, the protocol. (Operating points are
    checked first thing by each command: parsing them needs the codec registry.)"""
    for option in ("images", "num_test", "tuples"):
        value = getattr(args, option, None)
        if value is not None and value < 1:
            raise ConfigError(f"--{option.replace('_', '-')} {value}: expected at least 1")
    if getattr(args, "refine_tuples", None) is not None and args.refine_tuples < 0:
        raise ConfigError(f"--refine-tuples {args.refine_tuples}: expected 0 (no refinement) or more")
    if getattr(args, "min_overlap", None) is not None and not 0 <= args.min_overlap <= 1:
        raise ConfigError(f"--min-overlap {args.min_overlap}: expected a share in [0, 1]")
    if getattr(args, "fit_fraction", None) is not None and not 0 < args.fit_fraction < 1:
        raise ConfigError(f"--fit-fraction {args.fit_fraction}: expected a share strictly between 0 and 1")
    if getattr(args, "budgets", None) and any(not b > 0 for b in args.budgets):
        raise ConfigError(f"--budgets {' '.join(f'{b:g}' for b in args.budgets)}: expected positive kbit per image")
    if args.command == "allocate":
        resolve_protocol(args)
    if args.command == "bdrate":
        for label, text in (("--anchor", args.anchor), *(("--test", t) for t in args.test)):
            for path in checkpoint_group(text):
                check_checkpoint_file(path, label)
    elif args.command == "compare":
        check_compare(args)
    else:
        for path in args.ckpt if isinstance(args.ckpt, list) else [args.ckpt]:
            check_checkpoint_file(path, "--ckpt")
    if args.out is not None:
        check_output_folder(args.out)


def check_compare(args) -> None:
    """The arms of ``evaluate.py compare``: one checkpoint per pair in each, every file a checkpoint, a band
    and levels that are shares, a level that is a probability."""
    if len(args.anchor) != len(args.test):
        raise ConfigError(f"--anchor has {len(args.anchor)} checkpoints and --test {len(args.test)}; expected one of "
                          "each per pair")
    for label, paths in (("--anchor", args.anchor), ("--test", args.test)):
        for path in paths:
            check_checkpoint_file(path, label)
        if len({p.resolve() for p in paths}) != len(paths):
            raise ConfigError(f"{label} lists a checkpoint twice; expected one per pair")
    lo, hi = args.band
    if not 0 <= lo < hi <= 1:
        raise ConfigError(f"--band {lo:g} {hi:g}: expected two shares 0 ≤ LO < HI ≤ 1 of the uncompressed metric")
    if any(not 0 < level <= 1 for level in args.levels):
        raise ConfigError(f"--levels {' '.join(f'{v:g}' for v in args.levels)}: expected shares in (0, 1]")
    if not 0 < args.alpha < 1:
        raise ConfigError(f"--alpha {args.alpha:g}: expected a level in (0, 1)")


def evaluate(argv=None) -> int:
    args = build_parser().parse_args(argv)
    check_arguments(args)
    # imported only now: --help and the checks above answer without torch, the codecs and matplotlib
    from cilight.evaluate_commands import COMMANDS

    return COMMANDS[args.command](args)


def main(argv=None) -> int:
    """Entry point of ``evaluate.py``: a user error prints one line and exits with status 2."""
    return run_main(evaluate, argv)
