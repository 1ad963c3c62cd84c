"""Does the compressibility loss save bits? BD-rate of L_r-trained models against the benchmark, with seed noise.

Alvar & Bajić, IEEE ICIP 2019, §3, Table 1 reports −7.8% to −20.7% BD-rate on segmentation for
the model trained with the compressibility loss L_r (eq 1–5) against the same model without it.
This recipe measures that claim on cilight's default model and data, under a protocol fixed
before any result was seen:

* **Arms**: ``benchmark`` (``--model.compressibility_weight 0``) and ``compressible`` (the
  default, weight 1, L_r in eq 6), each trained with ``python train.py`` defaults (ResNet-18 split
  at layer3, SyntheticStreets 64×128, 8 epochs) for seeds 0, 1, 2 (``--seed_everything``; the
  data are the same for every run). The last checkpoint of each run is measured (the best one is
  chosen on a validation loss that includes L_r in one arm only).
* **Curves** (``evaluate.py curves`` on the 128 test images): the paper's points (PNG + JPEG
  95/90/85/80), JPEG over a wider range (95 … 20), JPEG2000 at 9 rates over 0.1–3 bits per
  element. Each family has its own BD-rate (cubic, VCEG-M33).
* **BD-rate** of each compressible seed against the benchmark of the same seed: mean ± standard
  deviation over the 3 pairs. **Noise floor**: the BD-rates between benchmark models of different
  seeds (pairs 0–1, 0–2, 1–2); the floor is the largest |BD-rate| among them. A saving counts only
  if the mean is below −floor and every seed's BD-rate is negative. Each BD-rate is reported with
  the overlap of the two curves' metric ranges; one over less than 50% of them is refused (not
  averaged) and counted as such.
* **Lossless bits**: the PNG point's bits per image of each arm (mean ± std), at its accuracy.

    python benchmarks/compressibility_bdrate.py [--work DIR] [--seeds 0 1 2] [--epochs 8]

Runs resume: a run folder with ``last.ckpt`` is not trained again and saved curves are reused.
Writes ``benchmarks/results/compressibility_bdrate.json`` (every curve, every BD-rate) and the RD
plots ``benchmarks/results/compressibility_bdrate/rd_<task>_<family>.png``, naming the machine.
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from report import RESULTS, write_result

from cilight.allocation import bd_rate_rows, parse_families
from cilight.allocation.report import plot_rate_accuracy
from cilight.checkpoints import checkpoint_curves

ROOT = Path(__file__).resolve().parents[1]
FAMILIES = ("paper=png+jpeg:quality=95,90,85,80", "wide=jpeg:quality=95,90,80,70,60,50,40,30,20",
            "j2k=jpeg2000:bpe=0.1,0.15,0.2,0.3,0.5,0.8,1.2,2,3")
ARMS = {"benchmark": ["--model.compressibility_weight", "0"], "compressible": []}


def train(run_root: Path, name: str, seed: int, extra: list[str], epochs: int) -> Path:
    ckpt = run_root / name / "checkpoints" / "last.ckpt"
    if ckpt.is_file():
        print(f"{name}: reusing {ckpt}", flush=True)
        return ckpt
    command = [sys.executable, str(ROOT / "train.py"), "--trainer.default_root_dir", str(run_root), "--run_name", name,
               "--seed_everything", str(seed), "--trainer.max_epochs", str(epochs),
               "--trainer.enable_progress_bar", "false", "--baselines", "false", *extra]
    print("running:", " ".join(command[1:]), flush=True)
    start = time.perf_counter()
    subprocess.run(command, cwd=run_root, env={**os.environ, "WANDB_MODE": "disabled"}, check=True,
                   stdout=subprocess.DEVNULL)
    print(f"{name}: trained in {(time.perf_counter() - start) / 60:.1f} min", flush=True)
    return ckpt


def summary(values: list[float]) -> dict:
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0,
            "values": values}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/cilight-compressibility"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--out", type=Path, default=RESULTS / "compressibility_bdrate.json")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    families = parse_families(FAMILIES)
    start = time.perf_counter()

    curves = {}
    for arm, extra in ARMS.items():
        for seed in args.seeds:
            name = f"{arm}_s{seed}"
            ckpt = train(args.work, name, seed, extra, args.epochs)
            curves[name], _, reused = checkpoint_curves(ckpt, families)
            print(f"{name}: curves {'reused' if reused else 'measured'}", flush=True)

    rows = {}
    for seed in args.seeds:  # the effect: compressible vs benchmark, seed by seed
        for r in bd_rate_rows(curves[f"benchmark_s{seed}"], {f"compressible_s{seed}": curves[f"compressible_s{seed}"]}):
            rows.setdefault(("effect", r.family, r.task), []).append(r)
    for a, b in itertools.combinations(args.seeds, 2):  # the noise floor: benchmark vs benchmark
        for r in bd_rate_rows(curves[f"benchmark_s{a}"], {f"benchmark_s{b}": curves[f"benchmark_s{b}"]}):
            rows.setdefault(("noise", r.family, r.task), []).append(r)

    table = []
    for family in (f.name for f in families):
        for task in curves[f"benchmark_s{args.seeds[0]}"].tasks:
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
                "noise_floor": floor,
            }
            entry["saving_beyond_noise"] = bool(
                measured and len(measured) == len(effect) and floor is not None
                and entry["bd_rate"]["mean"] < -floor and all(v < 0 for v in measured))
            table.append(entry)
            shown = (f"{entry['bd_rate']['mean']:+7.2f}% ± {entry['bd_rate']['std']:5.2f}" if measured else "refused")
            print(f"{family:>6} {task:>15}: BD-rate {shown} ({len(measured)}/{len(effect)} seeds; overlap "
                  f"{min(entry['overlap']):.0%}–{max(entry['overlap']):.0%}); noise floor "
                  f"{'—' if floor is None else f'{floor:.2f}%'}; saving beyond noise: {entry['saving_beyond_noise']}")

    png = {arm: summary([curves[f"{arm}_s{s}"].family("paper")[0].bits_per_image for s in args.seeds]) for arm in ARMS}
    png_metrics = {arm: {task: summary([curves[f"{arm}_s{s}"].family("paper")[0].metrics[key] for s in args.seeds])
                         for task, key in curves[f"{arm}_s{args.seeds[0]}"].tasks.items()} for arm in ARMS}
    plots = RESULTS / "compressibility_bdrate"
    plots.mkdir(parents=True, exist_ok=True)
    for family in (f.name for f in families):
        for task in curves[f"benchmark_s{args.seeds[0]}"].tasks:
            only = {n: type(c)(tuple(p for p in c.points if p.family == family), c.reference, c.tasks, c.elements,
                               c.images, c.provenance) for n, c in curves.items()}
            plot_rate_accuracy(only, task, plots / f"rd_{task}_{family}.png")
    write_result(args.out, {
        "benchmark": "compressibility_bdrate",
        "protocol": __doc__.split("\n\n")[2:4],
        "families": [str(f) for f in families], "seeds": args.seeds, "epochs": args.epochs,
        "table": table, "png_bits_per_image": png, "png_metrics": png_metrics,
        "curves": {n: c.as_dict() for n, c in curves.items()},
        "wall_seconds": time.perf_counter() - start,
    })


if __name__ == "__main__":
    main()
