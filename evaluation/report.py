"""Reporting measurements: tables, plots, CSV and JSON, and W&B logging (the allocation experiment,
BD-rate tables, paired comparisons of arms).

What ``evaluate.py allocate`` prints and writes and what :class:`RateDistortionCallback` logs
after an epoch, in one place beside the experiment (:mod:`~cilight.evaluation.experiment`).
Every table loops over the metrics the rows carry, so a model with other tasks gets other
columns and nothing here changes.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import matplotlib
import numpy as np

from cilight.allocation.distortion import total_distortion
from cilight.allocation.surface import DistortionSurface
from cilight.evaluation.curves import BdRateRow, RateAccuracyCurves
from cilight.evaluation.experiment import AllocationRow, rows_as_dicts
from cilight.evaluation.paired import PairedComparison, PostHocReading
from cilight.evaluation.sweep import RateSweep
from cilight.evaluation.tables import markdown_table

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402 (after choosing the backend)


def allocation_table(rows: list[AllocationRow], extras: dict) -> str:
    """Table III/IV of the Pareto paper: one line per budget and method, the lowest D_t marked ``*``."""
    metrics = list(extras["reference"])
    lines = [f"{'R_t (kbit)':>10} {'method':>9} {'rates (kbit)':>22} " + " ".join(f"{m:>20}" for m in metrics)
             + f" {'D_t (%)':>8} {'R²':>6}"]
    lines.append(f"{'—':>10} {'reference':>9} {'uncompressed':>22} "
                 + " ".join(f"{extras['reference'][m]:20.4f}" for m in metrics))
    best: dict[float, float] = {}
    for r in rows:
        best[r.budget] = min(best.get(r.budget, np.inf), r.total_distortion)
    for r in rows:
        rates = ", ".join(f"{x / 1e3:.2f}" for x in r.rates)
        mark = " *" if r.total_distortion == best[r.budget] else ""
        lines.append(f"{r.budget / 1e3:10.2f} {r.method:>9} {rates:>22} "
                     + " ".join(f"{r.metrics[m]:20.4f}" for m in metrics)
                     + f" {r.total_distortion:8.3f} {r.r2:6.3f}{mark}")
    for budget, segment in extras.get("pareto", {}).items():
        lines.append(f"Pareto set at R_t = {float(budget) / 1e3:.2f} kbit: "
                     f"R_1 ∈ [{segment[0] / 1e3:.2f}, {segment[1] / 1e3:.2f}] kbit")
    return "\n".join(lines)


def plot_allocations(rows: list[AllocationRow], path: Path) -> Path:
    """Bars of D_t per method at every budget."""
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
    return path


def write_allocation(out: Path, sweep: RateSweep, rows: list[AllocationRow], extras: dict, settings: dict) -> list[Path]:
    """``allocation.json`` (rows, extras, settings, the sweep), ``allocation.csv`` and ``allocation.png`` in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    records = rows_as_dicts(rows)
    (out / "allocation.json").write_text(json.dumps({"rows": records, **extras, **settings, "sweep": sweep.as_dict()},
                                                    indent=1, default=float))
    with open(out / "allocation.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["budget_bits", "method", "rates_bits", "bits_used", *records[0]["metrics"], "total_distortion",
                         "r2"])
        for r in rows:
            writer.writerow([r.budget, r.method, " ".join(f"{x:.0f}" for x in r.rates),
                             " ".join(f"{x:.0f}" for x in r.bits_used), *r.metrics.values(), r.total_distortion, r.r2])
    plot_allocations(rows, out / "allocation.png")
    return [out / "allocation.json", out / "allocation.csv", out / "allocation.png"]


def plot_curve(sweep: RateSweep, path: Path) -> Path:
    """Every metric of one stream against its rate, with the uncompressed value dashed."""
    fig, axes = plt.subplots(1, len(sweep.metrics), figsize=(3 * len(sweep.metrics), 3.5), squeeze=False)
    for ax, (name, values) in zip(axes[0], sweep.metrics.items()):
        ax.scatter(sweep.rates.sum(1) / 1e3, values, s=10)
        ax.axhline(sweep.reference[name], color="gray", ls="--", lw=1)
        ax.set_xlabel("rate (kbit per image)")
        ax.set_title(name)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_surface(sweep: RateSweep, budget: float, fitted: dict, weights, path: Path) -> Path:
    """Measured points and the fitted surface near ``budget`` (like the paper's Fig. 2/7), 2 streams."""
    surface = DistortionSurface(fitted["gamma"], fitted["alpha"], fitted["beta"])
    near = sweep.near(budget)
    r = sweep.rates[near] / 1e3
    d = total_distortion(sweep.distortions[near], weights)
    g1, g2 = np.meshgrid(np.linspace(r[:, 0].min(), r[:, 0].max(), 30), np.linspace(r[:, 1].min(), r[:, 1].max(), 30))
    z = surface(np.stack([g1.ravel(), g2.ravel()], 1) * 1e3).reshape(g1.shape)
    fig = plt.figure(figsize=(6, 5))
    ax = fig.add_subplot(projection="3d")
    ax.plot_surface(g1, g2, z, alpha=0.4, cmap="viridis")
    ax.scatter(r[:, 0], r[:, 1], d, color="k", s=8)
    ax.set_xlabel("R1 (kbit)")
    ax.set_ylabel("R2 (kbit)")
    ax.set_zlabel("total distortion (%)")
    ax.set_title(f"R_t = {budget / 1e3:.1f} kbit, R² = {fitted['r2']:.3f}")
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def curves_table(curves: RateAccuracyCurves) -> str:
    """One line per operating point: bits per image and per element, every task's curve metric."""
    keys = list(curves.tasks.values())
    lines = [f"{'family':>10} {'operating point':>22} {'kbit/image':>10} {'bits/elem':>9} " + " ".join(f"{k:>22}" for k in keys)]
    lines.append(f"{'—':>10} {'uncompressed (Q-layer)':>22} {'—':>10} {'—':>9} "
                 + " ".join(f"{curves.reference[k]:22.4f}" for k in keys))
    for p in curves.points:
        lines.append(f"{p.family:>10} {p.point:>22} {p.bits_per_image / 1e3:10.2f} {p.bits_per_element:9.4f} "
                     + " ".join(f"{p.metrics[k]:22.4f}" for k in keys))
    return "\n".join(lines)


def bd_rate_table(rows: list[BdRateRow]) -> str:
    """Table 1 of the ICIP 2019 paper: BD-rate (%) and BD-metric per test model, task and curve family,
    with the overlap of the metric ranges the BD-rate integrates over."""
    lines = [f"{'test':>16} {'family':>10} {'task':>15} {'metric':>22} {'BD-rate %':>10} {'BD-metric':>10} {'overlap':>8}"]
    for r in rows:
        rate = f"{r.bd_rate:10.2f}" if r.bd_rate is not None else f"{'refused':>10}"
        metric = f"{r.bd_metric:10.4f}" if r.bd_metric is not None else f"{'refused':>10}"
        lines.append(f"{r.test:>16} {r.family:>10} {r.task:>15} {r.metric:>22} {rate} {metric} {100 * r.overlap:7.0f}%")
    notes = [f"  {r.test}/{r.family}/{r.task}: {r.note}" for r in rows if r.note]
    return "\n".join(lines + (["refused:"] + notes if notes else []))


def plot_rate_accuracy(models: dict[str, RateAccuracyCurves], task: str, path: Path) -> Path:
    """Fig. 4 of the ICIP 2019 paper: ``task``'s metric against kbit per image, one line per model and
    curve family, each model's uncompressed value dotted."""
    fig, ax = plt.subplots(figsize=(5.5, 4))
    markers = "osD^v<>"
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    key = ""
    for m, (name, curves) in enumerate(models.items()):
        if task not in curves.tasks:
            continue
        key = curves.tasks[task]
        color = colors[m % len(colors)]
        for f, family in enumerate(curves.families):
            rates, metric = curves.curve(task, family)
            order = np.argsort(rates)
            ax.plot(rates[order] / 1e3, metric[order], marker=markers[f % len(markers)], color=color, ms=4, lw=1,
                    label=f"{name} ({family})")
        ax.axhline(curves.reference[key], color=color, ls=":", lw=1)
    ax.set_xscale("log")
    ax.set_xlabel("rate (kbit per image, all streams)")
    ax.set_ylabel(key)
    ax.set_title(task)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_bd_rates(out: Path, rows: list[BdRateRow], models: dict[str, RateAccuracyCurves], settings: dict) -> list[Path]:
    """``bdrate.json`` (rows, settings, every model's curves), ``bdrate.csv`` and ``rd_<task>.png``."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "bdrate.json").write_text(json.dumps({"rows": [asdict(r) for r in rows], **settings,
                                                 "curves": {k: v.as_dict() for k, v in models.items()}}, indent=1))
    with open(out / "bdrate.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["test", "family", "task", "metric", "bd_rate_percent", "bd_metric", "overlap", "note"])
        for r in rows:
            writer.writerow([r.test, r.family, r.task, r.metric, r.bd_rate, r.bd_metric, r.overlap, r.note])
    tasks = dict.fromkeys(t for curves in models.values() for t in curves.tasks)
    plots = [plot_rate_accuracy(models, task, out / f"rd_{task}.png") for task in tasks]
    return [out / "bdrate.json", out / "bdrate.csv", *plots]


def log_to_active_run(values: dict, tables: dict[str, tuple[list[str], list[list]]] | None = None) -> bool:
    """Scalars, images (:class:`~pathlib.Path` values) and tables to the active W&B run, if there is one
    (``evaluate.py`` inside a W&B-launched job); ``False`` when there is none."""
    try:
        import wandb
    except ImportError:
        return False
    if wandb.run is None:
        return False
    payload = {k: wandb.Image(str(v)) if isinstance(v, Path) else v for k, v in values.items()}
    for name, (columns, data) in (tables or {}).items():
        payload[name] = wandb.Table(columns=columns, data=data)
    wandb.log(payload)
    return True


def bd_rate_wandb_table(rows: list[BdRateRow]) -> tuple[list[str], list[list]]:
    columns = ["test", "family", "task", "metric", "bd_rate_percent", "bd_metric", "overlap"]
    return columns, [[r.test, r.family, r.task, r.metric, r.bd_rate, r.bd_metric, r.overlap] for r in rows]


def wandb_loggers(trainer) -> list:
    from lightning.pytorch.loggers import WandbLogger

    return [logger for logger in trainer.loggers if isinstance(logger, WandbLogger)]


def log_to_wandb(trainer, values: dict) -> None:
    """Scalars, and images for :class:`~pathlib.Path` values, to every W&B logger of ``trainer``."""
    for logger in wandb_loggers(trainer):
        import wandb

        logger.experiment.log({k: wandb.Image(str(v)) if isinstance(v, Path) else v for k, v in values.items()},
                              commit=False)


def log_allocation_table(trainer, rows: list[AllocationRow], caption: str = "") -> None:
    """The rows as a W&B table ``rate_distortion/allocations``; ``caption`` says which images it
    was fitted and evaluated on (a column, so it stays with the table)."""
    metrics = list(rows[0].metrics) if rows else []
    columns = ["budget", "method", "rates", *metrics, "total_distortion", "r2", "images"]
    data = [[r.budget, r.method, json.dumps([round(x) for x in r.rates]), *(r.metrics[m] for m in metrics),
             r.total_distortion, r.r2, caption] for r in rows]
    for logger in wandb_loggers(trainer):
        logger.log_table("rate_distortion/allocations", columns=columns, data=data)


__all__ = ["allocation_table", "bd_rate_table", "bd_rate_wandb_table", "curves_table", "log_allocation_table",
           "log_to_active_run", "log_to_wandb", "plot_allocations", "plot_curve", "plot_rate_accuracy", "plot_surface",
           "write_allocation", "write_bd_rates"]


# ----------------------------------------------------------------------------------- paired comparisons
def _reading(r: PairedComparison | PostHocReading) -> tuple[PairedComparison, str, str]:
    """``(comparison, where it was read, verdict)``: the fixed band, or a post-hoc reading's band or meeting."""
    if isinstance(r, PostHocReading):
        return r.comparison, f"post hoc {r.where}", r.verdict
    return r, "fixed band", r.verdict


def comparison_table(rows: Sequence[PairedComparison | PostHocReading]) -> str:
    """One line per family and task: n pairs, the mean BD-rate with its 95% interval (percent of rate, from
    the mean log rate ratio), the Holm-adjusted p and the verdict in words; with post-hoc readings
    (:class:`~cilight.evaluation.paired.PostHocReading`), a column says where each row was read."""
    header = ["test family", "anchor family", "task", "metric", "n", "BD-rate %", "95% interval %", "p (Holm)", "verdict"]
    post_hoc = any(isinstance(r, PostHocReading) for r in rows)
    lines = []
    for row in rows:
        r, where, words = _reading(row)
        interval = r.interval
        span = f"[{interval.lo_percent:+.1f}, {interval.hi_percent:+.1f}]" if interval.has_interval else "—"
        p = f"{r.p_adjusted:.3g}" if r.p_adjusted is not None else "—"
        cells = [r.family, r.anchor_family or r.family, r.task, r.metric, r.n, f"{interval.percent:+.1f}", span, p, words]
        lines.append([*cells[:4], where, *cells[4:]] if post_hoc else cells)
    return markdown_table([*header[:4], "read", *header[4:]] if post_hoc else header, lines)


def plot_paired(anchors: Sequence[RateAccuracyCurves], tests: Sequence[RateAccuracyCurves], task: str, family: str,
                anchor_family: str, path: Path) -> Path:
    """``task``'s metric against kbit per image: each pair's anchor and test curves faint, each arm's mean over
    pairs (operating point by operating point) bold."""
    fig, ax = plt.subplots(figsize=(5.5, 4))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    key = anchors[0].tasks[task]
    for (arm, arm_curves, arm_family), color in zip((("anchor", anchors, anchor_family), ("test", tests, family)), colors):
        curves = [c.curve(task, arm_family) for c in arm_curves]
        for rates, metric in curves:
            ax.plot(rates / 1e3, metric, color=color, lw=0.8, alpha=0.3)
        if len({len(r) for r, _ in curves}) == 1:  # the same operating points in every pair
            ax.plot(np.mean([r for r, _ in curves], axis=0) / 1e3, np.mean([m for _, m in curves], axis=0),
                    color=color, lw=2.2, marker="o", ms=3, label=f"{arm} ({arm_family}), mean of {len(curves)}")
    ax.set_xscale("log")
    ax.set_xlabel("rate (kbit per image)")
    ax.set_ylabel(key)
    ax.set_title(f"{task}: {family} against {anchor_family}")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_comparison(out: Path, rows: Sequence[PairedComparison], anchors: Sequence[RateAccuracyCurves],
                     tests: Sequence[RateAccuracyCurves], settings: dict, post_hoc: Sequence[PostHocReading] = (),
                     refused: Sequence[str] = ()) -> list[Path]:
    """``compare.json`` (rows, settings, every pair's curves; with ``refused`` tasks and their ``post_hoc``
    readings apart), ``compare.csv`` (one row per family and task, its ``read`` column ``fixed band`` or the
    post-hoc reading's) and ``compare_<family>_vs_<anchor family>_<task>.png``."""
    out.mkdir(parents=True, exist_ok=True)
    extra = {"refused": list(refused), "post_hoc": [r.as_dict() for r in post_hoc]} if refused else {}
    (out / "compare.json").write_text(json.dumps({"rows": [r.as_dict() for r in rows], **extra, **settings,
                                                  "anchor_curves": [c.as_dict() for c in anchors],
                                                  "test_curves": [c.as_dict() for c in tests]}, indent=1))
    with open(out / "compare.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["family", "anchor_family", "task", "metric", "n", "bd_rate_percent", "lo_percent",
                         "hi_percent", "p", "p_holm", "verdict", "read"])
        for row in (*rows, *post_hoc):
            r, where, words = _reading(row)
            i = r.interval
            writer.writerow([r.family, r.anchor_family or r.family, r.task, r.metric, r.n, i.percent,
                             i.lo_percent if i.has_interval else "", i.hi_percent if i.has_interval else "",
                             r.p if r.p is not None else "", r.p_adjusted if r.p_adjusted is not None else "", words,
                             where])
    plots = {}
    for r in (*rows, *(reading.comparison for reading in post_hoc)):
        path = out / f"compare_{r.family}_vs_{r.anchor_family or r.family}_{r.task}.png"
        plots[path] = plot_paired(anchors, tests, r.task, r.family, r.anchor_family or r.family, path)
    return [out / "compare.json", out / "compare.csv", *plots.values()]


def comparison_wandb_table(rows: Sequence[PairedComparison | PostHocReading]) -> tuple[list[str], list[list]]:
    columns = ["family", "anchor_family", "task", "metric", "read", "n", "bd_rate_percent", "lo_percent", "hi_percent",
               "p_holm", "verdict"]
    data = []
    for row in rows:
        r, where, words = _reading(row)
        i = r.interval
        data.append([r.family, r.anchor_family or r.family, r.task, r.metric, where, r.n, i.percent,
                     i.lo_percent if i.has_interval else None, i.hi_percent if i.has_interval else None, r.p_adjusted,
                     words])
    return columns, data
