"""What an ``evaluate.py`` argument means, shared by the checks of the command line
(:mod:`cilight.evaluate_cli`, which answers without torch) and the commands that run
(:mod:`cilight.evaluate_commands`): the allocation protocols, task weights, checkpoint lists and the
names of the models they make."""

from __future__ import annotations

from pathlib import Path

from cilight.errors import ConfigError
from cilight.evaluation.defaults import REFINE_TUPLES, TUPLES

# §VI-A of the Pareto paper as printed, and cilight's defaults where they differ (README: "Allocation protocol")
PROTOCOLS = {
    "paper": {"codec": "jpeg2000", "eval_codec": "jpeg2000", "tuples": TUPLES, "refine_tuples": 0, "fit_fraction": 0.2,
              "stratified": False},
    "cilight": {"codec": "proxy", "eval_codec": "jpeg2000", "tuples": TUPLES, "refine_tuples": REFINE_TUPLES,
                "fit_fraction": 0.2, "stratified": True},
}


def resolve_protocol(args) -> dict:
    """The protocol's settings with explicit options applied; the paper protocol refuses changes to it."""
    settings = dict(PROTOCOLS[args.protocol])
    given = {k: getattr(args, k) for k in settings if getattr(args, k, None) is not None}
    if args.protocol == "paper":
        changed = {k: v for k, v in given.items() if v != settings[k]}
        if changed:
            flags = ", ".join(f"--{k.replace('_', '-')} {v}" for k, v in changed.items())
            raise ConfigError(f"--protocol paper runs §VI-A as printed; {flags} would change it "
                              f"(drop them, or use --protocol cilight)")
    return {**settings, **given}


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


def model_names(paths: list[Path | list[Path]]) -> list[str]:
    """Short unique names: the run folder of each checkpoint (the first, ``+N`` more, for a curve over
    several checkpoints), else its path."""
    groups = [p if isinstance(p, list) else [p] for p in paths]
    names = [(g[0].resolve().parent.parent.name or g[0].stem) + (f"+{len(g) - 1}" if len(g) > 1 else "")
             for g in groups]
    return names if len(set(names)) == len(names) else [",".join(map(str, g)) for g in groups]


def checkpoint_group(text: str) -> list[Path]:
    """``CKPT[,CKPT…]``: one model; several checkpoints make one curve, a point (or points) each —
    a learned codec trained at several λ."""
    paths = [Path(t) for t in str(text).split(",") if t.strip()]
    if not paths:
        raise ConfigError(f"checkpoint list {text!r}: expected CKPT or CKPT,CKPT,…")
    return paths


def anchor_among_tests(anchor: str, tests: list[str]) -> list[str]:
    """The ``--test`` models that are the anchor itself (the same checkpoint files)."""
    def files(text: str) -> list[Path]:
        return [p.resolve() for p in checkpoint_group(text)]
    return [t for t in tests if files(t) == files(anchor)]
