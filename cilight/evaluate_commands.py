"""The ``evaluate.py`` commands (:mod:`cilight.evaluate_cli` parses and checks their arguments first)."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

import cilight
from cilight.ci_models import BaFPredictor
from cilight.ci_models.checkpoints import load_model
from cilight.ci_models.tasks import trivial_baselines
from cilight.codecs import parse_operating_points, stream_coder
from cilight.datamodules.from_checkpoint import datamodule_from, test_batches
from cilight.errors import ConfigError
from cilight.evaluate_args import anchor_among_tests, checkpoint_group, model_names, parse_weights, resolve_protocol
from cilight.evaluation.baf import arm_of, baf_table, baf_wandb_table, measure_baf, write_baf
from cilight.evaluation.checkpoint_curves import checkpoint_curves, git_revision
from cilight.evaluation.curves import RateAccuracyCurves, bd_rate_rows, parse_families
from cilight.evaluation.experiment import run_allocation, split_batches
from cilight.evaluation.paired import PairedComparison, compare_pairs, compare_tasks, read_refused
from cilight.evaluation.report import (
    allocation_table,
    bd_rate_table,
    bd_rate_wandb_table,
    comparison_table,
    comparison_wandb_table,
    curves_table,
    log_to_active_run,
    write_allocation,
    write_bd_rates,
    write_comparison,
)


def allocate(args) -> int:
    protocol = resolve_protocol(args)
    coder, evaluation_coder = stream_coder(protocol["codec"]), stream_coder(protocol["eval_codec"])
    model, data = load_model(args.ckpt)
    if len(model.split_points) < 2:
        raise ConfigError(f"{args.ckpt} has one stream ({model.split_points[0]}); allocation needs ≥ 2 split points")
    weights = parse_weights(args.weights, len(model.tasks))
    fit, held_out = split_batches(test_batches(data, args.images, args.num_test, args.data_root),
                                  protocol["fit_fraction"], seed=args.seed)
    budgets = [b * 1e3 for b in args.budgets]
    print(f"protocol {args.protocol}: fitting on a random {sum(len(b['image']) for b in fit)} test images with "
          f"{coder.name}, evaluating on the other {sum(len(b['image']) for b in held_out)} with "
          f"{evaluation_coder.name}; budgets {args.budgets} kbit per image")
    sweep, rows, extras = run_allocation(model, fit, held_out, coder, budgets, tuples=protocol["tuples"],
                                         refine_tuples=protocol["refine_tuples"], weights=weights, seed=args.seed,
                                         evaluation_coder=evaluation_coder, stratified=protocol["stratified"])
    print(allocation_table(rows, extras))
    out = args.out or args.ckpt.resolve().parent.parent / "allocation"
    settings = {"budgets_kbit": args.budgets, "weight_scheme": weights, "protocol": args.protocol,
                "fit_codec": protocol["codec"], "eval_codec": protocol["eval_codec"], "tuples": protocol["tuples"],
                "refine_tuples": protocol["refine_tuples"], "fit_fraction": protocol["fit_fraction"],
                "stratified_tuples": protocol["stratified"], "split_seed": args.seed}
    written = write_allocation(out, sweep, rows, extras, settings)
    print("wrote " + ", ".join(str(p) for p in written))
    return 0


def _curves_of(ckpt: Path, args, families):
    curves, written, reused = checkpoint_curves(ckpt, families, args.images, args.num_test, args.data_root,
                                                getattr(args, "out", None) if args.command == "curves" else None,
                                                reuse=not args.remeasure)
    where = "reused " + str(ckpt.resolve().parent.parent / "curves" / "curves.json") if reused else \
        "wrote " + ", ".join(map(str, written))
    print(f"{ckpt}: {curves.images} test images, {where}")
    return curves


def curves(args) -> int:
    families = parse_families(args.codecs)
    print(curves_table(_curves_of(args.ckpt, args, families)))
    return 0


def _model_curves(paths: list[Path], args, families):
    parts = [_curves_of(path, args, families) for path in paths]
    return parts[0] if len(parts) == 1 else RateAccuracyCurves.merge(parts)


def bdrate(args) -> int:
    families = parse_families(args.codecs)
    for test in anchor_among_tests(args.anchor, args.test):
        print(f"note: --test {test} is the anchor itself; its BD-rate is 0 by definition")
    paths = [checkpoint_group(t) for t in (args.anchor, *args.test)]
    names = model_names(paths)
    models = {name: _model_curves(group, args, families) for name, group in zip(names, paths)}
    anchor, tests = names[0], {n: models[n] for n in names[1:]}
    rows = bd_rate_rows(models[anchor], tests, method=args.method, min_overlap=args.min_overlap,
                        dominated=args.dominated)
    print(f"BD-rate against {anchor} ({args.method}; negative = fewer bits at equal accuracy)")
    print(bd_rate_table(rows))
    out = args.out or paths[0][0].resolve().parent.parent / "bdrate"
    settings = {"anchor": str(args.anchor), "tests": [str(t) for t in args.test], "names": names,
                "families": [str(f) for f in families], "method": args.method, "min_overlap": args.min_overlap,
                "dominated": args.dominated}
    written = write_bd_rates(out, rows, models, settings)
    print("wrote " + ", ".join(str(p) for p in written))
    plots = {f"bdrate/{p.stem}": p for p in written if p.suffix == ".png"}
    if log_to_active_run(plots, {"bdrate/table": bd_rate_wandb_table(rows)}):
        print("logged the table and plots to the active W&B run")
    return 0


def baf(args) -> int:
    parse_operating_points(args.codecs)  # before any model is loaded
    rows, batches_of = [], {}
    for path in args.ckpt:
        model, data = load_model(path, accept=(BaFPredictor,))
        key = json.dumps(data, sort_keys=True, default=str)
        if key not in batches_of:
            batches_of[key] = test_batches(data, args.images, args.num_test, args.data_root)
        print(f"{path}: BaF C={model.hparams.num_channels} n={model.hparams.bits} {model.hparams.selection} "
              f"at {model.hparams.split} ({model.network.layer_info.out_channels} channels)")
        rows += measure_baf(model, batches_of[key], args.codecs, checkpoint=str(path),
                            arm=arm_of(path.resolve().parent.parent.name))
    print(baf_table(rows))
    out = args.out or args.ckpt[0].resolve().parent.parent / "baf"
    settings = {"checkpoints": [str(p) for p in args.ckpt], "codecs": list(args.codecs), "images": args.images,
                "num_test": args.num_test, "cilight": cilight.__version__, "git": git_revision()}
    written = write_baf(out, rows, settings)
    print("wrote " + ", ".join(str(p) for p in written))
    plots = {f"baf/{p.stem}": p for p in written if p.suffix == ".png"}
    if log_to_active_run(plots, {"baf/table": baf_wandb_table(rows)}):
        print("logged the table and plots to the active W&B run")
    return 0


# datamodule arguments that do not change the test split: the arms of a comparison may differ in them
TRAINING_ONLY = ("num_train", "num_val", "batch_size", "num_workers")


def run_seed(ckpt: Path) -> int:
    """``seed_everything`` of the run a checkpoint belongs to (its ``config.yaml``, beside ``checkpoints/``)."""
    config = ckpt.resolve().parent.parent / "config.yaml"
    try:
        seed = yaml.safe_load(config.read_text()).get("seed_everything")
    except (OSError, yaml.YAMLError, AttributeError):
        seed = None
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ConfigError(f"--pair-by seed: {ckpt} has no seed_everything in {config}; pair by position instead")
    return seed


def pair_arms(anchors: list[Path], tests: list[Path], by: str) -> list[tuple[str, Path, Path]]:
    """``(label, anchor, test)`` per pair: by position, or by the runs' seeds (each seed once in each arm)."""
    if by == "position":
        return [(f"pair {i + 1}", a, t) for i, (a, t) in enumerate(zip(anchors, tests))]
    seeds = {}
    for label, arm in (("--anchor", anchors), ("--test", tests)):
        seeds[label] = {}
        for path in arm:
            seed = run_seed(path)
            if seed in seeds[label]:
                raise ConfigError(f"--pair-by seed: {label} has two runs of seed {seed} ({seeds[label][seed]}, {path})")
            seeds[label][seed] = path
    if set(seeds["--anchor"]) != set(seeds["--test"]):
        raise ConfigError(f"--pair-by seed: the anchor arm has seeds {sorted(seeds['--anchor'])}, the test arm "
                          f"{sorted(seeds['--test'])}; expected the same seeds")
    return [(f"seed {s}", seeds["--anchor"][s], seeds["--test"][s]) for s in sorted(seeds["--anchor"])]


def evaluated_split(curves: RateAccuracyCurves) -> dict:
    data = curves.provenance.get("data") or {}
    return {k: v for k, v in data.items() if k not in TRAINING_ONLY and not k.startswith("_instantiator")}


def band_floors(ckpt: Path, args) -> dict[str, float]:
    """Metric key → the floor of its band, for metrics without a natural zero (PSNR): the trivial predictor's
    score, from the anchor run's ``test_metrics.json``, or measured on the checkpoint's data."""
    model, data = load_model(ckpt)
    keys = [t.rate_accuracy_key for t in model.tasks if t.rate_accuracy.zero_is_trivial]
    if not keys:
        return {}
    saved = ckpt.resolve().parent.parent / "test_metrics.json"
    try:
        baselines = json.loads(saved.read_text()).get("trivial_baselines") or {}
    except (OSError, json.JSONDecodeError):
        baselines = {}
    if not all(k in baselines for k in keys):
        datamodule = datamodule_from(data, **({"root": args.data_root} if args.data_root else {}))
        datamodule.setup("fit")
        datamodule.setup("test")
        baselines = trivial_baselines(model.tasks, model.task_context, datamodule.sequential_loader("train"),
                                      datamodule.sequential_loader("test"))
    return {k: float(baselines[k]) for k in keys}


def compare(args) -> int:
    families = parse_families(args.codecs)
    remote = parse_families(args.remote) if args.remote else ()
    features = [str(f) for f in remote if not f.codes_image]
    if features:
        raise ConfigError(f"--remote {' '.join(features)}: expected families that code the input image "
                          "(image:jpeg:quality=…, image:jpeg2000:bpe=…, image:webp:…, image:png)")
    pairs = pair_arms(list(args.anchor), list(args.test), args.pair_by)
    labels = [label for label, _, _ in pairs]
    anchors = [_curves_of(a, args, (*families, *remote)) for _, a, _ in pairs]
    tests = [_curves_of(t, args, families) for _, _, t in pairs]
    reference = evaluated_split(anchors[0])
    for label, a, t in zip(labels, anchors, tests):
        for arm, curves in (("anchor", a), ("test", t)):
            if evaluated_split(curves) != reference:
                raise ConfigError(f"{label}: the {arm} checkpoint's test data {evaluated_split(curves)} differs from "
                                  f"{labels[0]}'s anchor {reference}; expected the same test split in every pair")
    floors = band_floors(pairs[0][1], args)
    options = {"fractions": tuple(args.band), "floors": floors, "levels": tuple(args.levels), "alpha": args.alpha,
               "labels": labels}
    rows, refused, post_hoc = [], [], []
    for family in families:
        for anchor_family in (family.name, *(f.name for f in remote)):
            if not args.post_hoc:  # any task a curve does not cover refuses the whole command
                rows += compare_pairs(anchors, tests, family.name, anchor_family=anchor_family, **options)
                continue
            outcome = compare_tasks(anchors, tests, family.name, anchor_family=anchor_family, **options)
            rows += [v for v in outcome.values() if isinstance(v, PairedComparison)]
            refused += [f"{family.name} vs {anchor_family}, {task}: {v}" for task, v in outcome.items()
                        if isinstance(v, str)]
            post_hoc += read_refused(anchors, tests, family.name, outcome, anchor_family=anchor_family,
                                     **options).values()
    print(f"{len(pairs)} pairs ({args.pair_by}); BD-rate as the mean log rate ratio over "
          f"{args.band[0]:g}–{args.band[1]:g} of the anchor's uncompressed metric"
          + (f" (from the trivial predictor for {', '.join(floors)})" if floors else "")
          + "; negative = fewer bits at equal accuracy")
    print(comparison_table(rows) if rows else "no task compared over the fixed band")
    if refused:
        print("refused over the fixed band:\n" + "\n".join(f"  {line}" for line in refused))
        print("read again after seeing the curves (over the band every pair covers, or where the curves meet; "
              "not verdicts of the fixed band):")
        print(comparison_table(post_hoc) if post_hoc else "  no task could be read again (curves apart)")
    out = args.out or pairs[0][1].resolve().parent.parent / "compare"
    settings = {"pairs": [{"label": label, "anchor": str(a), "test": str(t)} for label, a, t in pairs],
                "pair_by": args.pair_by, "families": [str(f) for f in families], "remote": [str(f) for f in remote],
                "band": list(args.band), "read_refused": args.post_hoc, "floors": floors, "levels": list(args.levels),
                "alpha": args.alpha, "cilight": cilight.__version__, "git": git_revision()}
    written = write_comparison(out, rows, anchors, tests, settings, post_hoc, refused)
    print("wrote " + ", ".join(str(p) for p in written))
    plots = {f"compare/{p.stem}": p for p in written if p.suffix == ".png"}
    if log_to_active_run(plots, {"compare/table": comparison_wandb_table([*rows, *post_hoc])}):
        print("logged the table and plots to the active W&B run")
    return 0


COMMANDS = {"curves": curves, "bdrate": bdrate, "allocate": allocate, "baf": baf, "compare": compare}
