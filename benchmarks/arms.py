"""What the training-recipe experiments share: train an arm's seeds with ``train.py``, compare
two arms seed by seed with BD-rate against the seed-to-seed noise floor, summarise and plot.

Used by ``compressibility_bdrate.py`` (L_r against the benchmark), ``rate_aware_training.py``
(every rate option against ``none``) and ``learned_codec.py`` (learned bottlenecks against JPEG2000).
"""

from __future__ import annotations

import itertools
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from cilight.evaluation import bd_rate_rows
from cilight.evaluation.report import plot_rate_accuracy

ROOT = Path(__file__).resolve().parents[1]


def train(run_root: Path, name: str, seed: int, extra: list[str], epochs: int) -> Path:
    """``last.ckpt`` of ``python train.py … extra`` in ``run_root/name``: reused when the run finished
    (``test_metrics.json`` is written last), resumed from it when the run was interrupted."""
    ckpt = run_root / name / "checkpoints" / "last.ckpt"
    if (run_root / name / "test_metrics.json").is_file() and ckpt.is_file():
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


def summary(values: list[float]) -> dict:
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0,
            "values": values}


def compare_arms(anchor: dict, test: dict, families, label: str, min_overlap: float, dominated: str,
                 method: str = "cubic") -> list[dict]:
    """One entry per family and task: the BD-rate of each ``test`` seed against the ``anchor`` of the
    same seed (mean ± sd), and the noise floor — the largest |BD-rate| between anchors of different
    seeds. A saving counts only if the mean is below −floor and every seed's BD-rate is negative.
    ``anchor``/``test`` map seed → :class:`~cilight.allocation.RateAccuracyCurves`; ``method`` is the
    interpolation of :func:`~cilight.allocation.bd_rate`."""
    seeds = sorted(anchor)
    rows: dict = {}
    pairs = {"effect": [(anchor[s], test[s]) for s in seeds],
             "noise": [(anchor[a], anchor[b]) for a, b in itertools.combinations(seeds, 2)]}
    for kind, models in pairs.items():
        for a, b in models:
            for overlap_rule, least in (("", min_overlap), ("_any_overlap", 0.0)):
                for r in bd_rate_rows(a, {"test": b}, method=method, dominated=dominated, min_overlap=least):
                    rows.setdefault((kind + overlap_rule, r.family, r.task), []).append(r)
    table = []
    for family in (f.name for f in families):
        for task in anchor[seeds[0]].tasks:
            effect, noise = rows[("effect", family, task)], rows[("noise", family, task)]
            measured = [r.bd_rate for r in effect if r.bd_rate is not None]
            metric_deltas = [r.bd_metric for r in effect if r.bd_metric is not None]
            floor_values = [abs(r.bd_rate) for r in noise if r.bd_rate is not None]
            floor = max(floor_values) if floor_values else None
            entry = {
                "family": family, "task": task, "metric": effect[0].metric,
                "bd_rate": summary(measured) if measured else None,
                "bd_metric": summary(metric_deltas) if metric_deltas else None,
                "overlap": [r.overlap for r in effect], "refused": [r.note for r in effect if r.bd_rate is None],
                "noise_bd_rates": [r.bd_rate for r in noise], "noise_overlap": [r.overlap for r in noise],
                "noise_refused": [r.note for r in noise if r.bd_rate is None], "noise_floor": floor,
            }
            any_effect = [r.bd_rate for r in rows[("effect_any_overlap", family, task)] if r.bd_rate is not None]
            any_noise = [abs(r.bd_rate) for r in rows[("noise_any_overlap", family, task)] if r.bd_rate is not None]
            entry["any_overlap"] = {"bd_rate": summary(any_effect) if any_effect else None,
                                    "noise_floor": max(any_noise) if any_noise else None}
            entry["saving_beyond_noise"] = bool(
                measured and len(measured) == len(effect) and floor is not None
                and entry["bd_rate"]["mean"] < -floor and all(v < 0 for v in measured))
            table.append(entry)
            shown = (f"{entry['bd_rate']['mean']:+7.2f}% ± {entry['bd_rate']['std']:5.2f}" if measured else "refused")
            print(f"{label:>22} {family:>6} {task:>15}: BD-rate {shown} ({len(measured)}/{len(effect)} seeds; overlap "
                  f"{min(entry['overlap']):.0%}–{max(entry['overlap']):.0%}); noise floor "
                  f"{'—' if floor is None else f'{floor:.2f}%'} ({len(floor_values)}/{len(noise)} pairs); "
                  f"saving beyond noise: {entry['saving_beyond_noise']}", flush=True)
    return table


def arm_summaries(arms: dict) -> dict:
    """Per arm (``{arm: {seed: curves}}``): the lossless (first ``paper`` point, PNG) bits per image and
    the task metrics there, and the uncompressed (Q-layer only) metrics, each mean ± sd over seeds."""
    first = next(iter(next(iter(arms.values())).values()))
    png = {arm: summary([c.family("paper")[0].bits_per_image for c in runs.values()]) for arm, runs in arms.items()}
    png_metrics = {arm: {task: summary([c.family("paper")[0].metrics[key] for c in runs.values()])
                         for task, key in first.tasks.items()} for arm, runs in arms.items()}
    uncompressed = {arm: {task: summary([c.reference[key] for c in runs.values()])
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
