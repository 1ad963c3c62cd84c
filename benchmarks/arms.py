"""What the training-recipe experiments share: train an arm's seeds with ``train.py``, compare two
arms (the statistics are :mod:`cilight.evaluation.comparison`: per-seed paired BD-rates, a paired
95% t-interval over the seeds, Holm across tasks, a verdict) and print each comparison, summarise the
arms' lossless points, plot.

Used by ``benchmarks.compressibility_bdrate`` (L_r against the benchmark), ``benchmarks.rate_aware_training``
(every rate option against ``none``) and ``benchmarks.learned_codec`` (learned bottlenecks against JPEG2000);
``benchmarks.shared_base`` trains its bases and fine-tunes with :func:`train` (and :func:`finished`) and decides with
:mod:`cilight.evaluation.paired` over a metric band fixed in advance.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.report import ROOT
from cilight.evaluation.comparison import ArmComparison, Spread, compare_arms, holm_by_family
from cilight.evaluation.curves import PAPER_FAMILY
from cilight.evaluation.report import plot_rate_accuracy
from cilight.evaluation.tables import interval_cell

# Curve families more than one recipe measures, defined once here.
PAPER = PAPER_FAMILY  # ICIP 2019 §3, Table 1: PNG, then JPEG at quality 95, 90, 85, 80; its first point is lossless
J2K = "j2k=jpeg2000:bpe=0.25,0.4,0.6,1,1.4,2"  # rate_aware_training's JPEG2000 family: learned_codec's anchors


def finished(run_root: Path, name: str) -> bool:
    """Whether the run ``run_root/name`` finished: ``test_metrics.json`` (written last) beside its ``last.ckpt``."""
    return (run_root / name / "test_metrics.json").is_file() and (run_root / name / "checkpoints" / "last.ckpt").is_file()


def train(run_root: Path, name: str, seed: int, extra: list[str], epochs: int) -> Path:
    """``last.ckpt`` of ``python train.py … extra`` in ``run_root/name``: reused when the run finished
    (:func:`finished`), resumed from it when the run was interrupted."""
    ckpt = run_root / name / "checkpoints" / "last.ckpt"
    if finished(run_root, name):
        print(f"{name}: reusing {ckpt}", flush=True)
        return ckpt
    resume = ["--ckpt_path", str(ckpt)] if ckpt.is_file() else []
    command = [sys.executable, str(ROOT / "train.py"), "--trainer.default_root_dir", str(run_root), "--run_name", name,
               "--seed_everything", str(seed), "--trainer.max_epochs", str(epochs),
               "--trainer.enable_progress_bar", "false", "--baselines", "false", *resume, *extra]
    print("running:", " ".join(command[1:]), flush=True)
    start = time.perf_counter()
    subprocess.run(command, cwd=run_root, env={**os.environ, "WANDB_MODE": "disabled"}, check=True,
                   stdout=subprocess.DEVNULL)
    print(f"{name}: trained in {(time.perf_counter() - start) / 60:.1f} min", flush=True)
    return ckpt


def compare(anchor: dict, test: dict, families, label: str, min_overlap: float, dominated: str,
            method: str = "cubic") -> list[ArmComparison]:
    """:func:`~cilight.evaluation.comparison.compare_arms` (``{seed: curves}`` of each arm), each
    comparison printed as one line starting with ``label``: the BD-rate's mean and 95% interval in
    percent of rate, n, the overlaps and the verdict."""
    table = compare_arms(anchor, test, families, method=method, min_overlap=min_overlap, dominated=dominated)
    for c in table:
        print(f"{label:>22} {c.family:>6} {c.task:>15}: BD-rate % {bd_rate_cell(c)} (overlap "
              f"{min(c.overlap):.0%}–{max(c.overlap):.0%}): {c.verdict}", flush=True)
    return table


def bd_rate_cell(c: ArmComparison) -> str:
    """The table cell "BD-rate % mean [95% interval] (n)" of a comparison; ``refused`` when no seed has a BD-rate."""
    if c.bd_rate is None:
        return "refused"
    return interval_cell(c.interval, c.seeds, missing="no interval")


def read_table(entries: list[dict]) -> list[ArmComparison]:
    """One table of a results file (one :func:`compare` call, the old layout or the new) as comparisons, Holm
    recomputed across the tasks of each family (an old file has no adjusted p-values)."""
    return holm_by_family(map(ArmComparison.from_dict, entries))


def arm_summaries(arms: dict) -> dict:
    """Per arm (``{arm: {seed: curves}}``): the lossless (first :data:`PAPER` point, PNG) bits per image and
    the task metrics there, and the uncompressed (Q-layer only) metrics, each mean ± sd over seeds."""
    first = next(iter(next(iter(arms.values())).values()))
    paper = PAPER.split("=", 1)[0]
    png = {arm: Spread([c.family(paper)[0].bits_per_image for c in runs.values()]).as_dict() for arm, runs in arms.items()}
    png_metrics = {arm: {task: Spread([c.family(paper)[0].metrics[key] for c in runs.values()]).as_dict()
                         for task, key in first.tasks.items()} for arm, runs in arms.items()}
    uncompressed = {arm: {task: Spread([c.reference[key] for c in runs.values()]).as_dict()
                          for task, key in first.tasks.items()} for arm, runs in arms.items()}
    return {"png_bits_per_image": png, "png_metrics": png_metrics, "uncompressed": uncompressed}


def plot_arms(arms: dict, families, folder: Path, label: str) -> None:
    """One RD plot per family and task with every seed of every arm: ``folder/rd_<label>_<task>_<family>.png``."""
    folder.mkdir(parents=True, exist_ok=True)
    first = next(iter(next(iter(arms.values())).values()))
    for family in (f.name for f in families):
        for task in first.tasks:
            only = {f"{arm} s{s}": c.restrict(family) for arm, runs in arms.items() for s, c in runs.items()}
            plot_rate_accuracy(only, task, folder / f"rd_{label}_{task}_{family}.png")
