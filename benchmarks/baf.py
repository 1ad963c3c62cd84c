"""How much does Back-and-Forth prediction save on the default model? (Choi et al., ICASSP 2020, Fig. 3–4)

The paper cuts YOLO-v3 before the activation of a stride-2 layer, sends a quarter of its channels
and reports 62% fewer bits at < 1% mAP loss (75% at < 2%). This recipe measures the same on
cilight's default model and data, under a protocol fixed before any result was seen:

* **Task model**: ``python train.py`` with its defaults (ResNet-18 split at layer3, SyntheticStreets
  64×128, 8 epochs, seed 0), or ``--task-ckpt``.
* **Split**: ``layer3.0`` (the first block of the edge half's last stage: P = 256 channels of 4×8,
  input X = the layer2 output, 128×8×16).
* **BaF training**: ``python train.py --config configs/baf.yaml`` (8 epochs over the 1,024 training
  images, Adam 1e-3 with cosine decay, channels chosen by eq 2–3 on all 1,024 images), one model
  per setting: C ∈ {16, 32, 64, 128} at n = 8 (Fig. 3), n ∈ {2, 4, 6} at C = 64 (Fig. 4).
* **Arms at C = 64, n = 8**, three seeds each (seed of the predictor's initialisation and data
  order): ``correlation`` (eq 2–3, with the shortcut term, cilight's default), ``eq7_only``
  (``shortcut_weight 0``: eq 7 alone, as printed), ``first`` (channels 0 … 63) and ``random``.
  Consolidation (eq 6) on and off is measured on every model. A difference between arms counts
  only outside the seed-to-seed spread.
* **Measurement**: ``evaluate.py baf`` on the 128 test images with PNG (lossless, as the paper's
  FLIF): real container sizes (header and fp16 bounds included) against all 256 channels of the same
  tensor at 8 bits with PNG, and against the input image as PNG and JPEG q90; every task metric
  against the unmodified model.
* **Added after the first results** (the first C = 64, n = 8 model lost 0.7% mIoU and 1.0% PSNR on
  the test split, just outside the target, and its best validation loss was at its last epoch):
  ``long``, the main setting trained for 24 epochs instead of 8, three seeds.
* **Target** (the issue): a C = 64 setting ≥ 60% smaller than all-channel coding with every task
  metric within 1% (relative) of the unmodified model — on every seed of that setting.

    python -m benchmarks.baf [--task-ckpt CKPT] [--work DIR] [--epochs 8]

Runs resume: a finished run (``test_metrics.json``) is not trained again, an interrupted one resumes from its
``last.ckpt``. Writes ``benchmarks/results/baf.json`` (every row), ``benchmarks/results/baf/`` (CSV and the plots).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.report import RESULTS, ROOT, write_result
from cilight.evaluation.comparison import Spread
from cilight.evaluation.tables import markdown_table, yes_no

SPLIT = "layer3.0"
# run name → train.py options of that BaF model
SETTINGS = {
    **{f"correlation_C{c}_n8_s0": ["--model.num_channels", str(c)] for c in (16, 32, 128)},
    **{f"correlation_C64_n{n}_s0": ["--model.bits", str(n)] for n in (2, 4, 6)},
    **{f"{arm}_C64_n8_s{seed}": [*options, "--seed_everything", str(seed), "--model.selection_seed", str(seed)]
       for seed in (0, 1, 2)
       for arm, options in (("correlation", []), ("eq7_only", ["--model.shortcut_weight", "0"]),
                            ("first", ["--model.selection", "first"]), ("random", ["--model.selection", "random"]))},
    # added after the first results (see the module docstring): the main setting trained 3× longer
    **{f"long_C64_n8_s{seed}": ["--trainer.max_epochs", "24", "--seed_everything", str(seed)] for seed in (0, 1, 2)},
}
TARGET_REDUCTION, TARGET_CHANGE = 0.60, -0.01


def run(command: list[str], cwd: Path) -> None:
    print("running:", " ".join(map(str, command[1:])), flush=True)
    subprocess.run(command, cwd=cwd, env={**os.environ, "WANDB_MODE": "disabled"}, check=True, stdout=subprocess.DEVNULL)


def trained(work: Path, name: str, command: list[str]) -> Path:
    """``last.ckpt`` of ``command`` (a ``train.py`` run named ``name`` under ``work``): reused when the run finished
    (``test_metrics.json`` is written last), resumed from it when the run was interrupted."""
    ckpt = work / name / "checkpoints" / "last.ckpt"
    if (work / name / "test_metrics.json").is_file() and ckpt.is_file():
        print(f"{name}: reusing {ckpt}", flush=True)
        return ckpt
    start = time.perf_counter()
    run([*command, *(["--ckpt_path", str(ckpt)] if ckpt.is_file() else [])], work)
    print(f"{name}: trained in {(time.perf_counter() - start) / 60:.1f} min", flush=True)
    return ckpt


def train_task_model(work: Path, epochs: int) -> Path:
    return trained(work, "task", [sys.executable, str(ROOT / "train.py"), "--trainer.default_root_dir", str(work),
                                  "--run_name", "task", "--trainer.max_epochs", str(epochs),
                                  "--trainer.enable_progress_bar", "false", "--baselines", "false"])


def train_baf(work: Path, name: str, options: list[str], task_ckpt: Path, epochs: int) -> Path:
    return trained(work, name, [sys.executable, str(ROOT / "train.py"), "--config", str(ROOT / "configs" / "baf.yaml"),
                                "--model.task_ckpt", str(task_ckpt), "--model.split", SPLIT, "--trainer.max_epochs",
                                str(epochs), "--trainer.default_root_dir", str(work), "--run_name", name,
                                "--trainer.enable_progress_bar", "false", "--baselines", "false", *options])


def arms(rows: list[dict]) -> dict:
    """Mean ± std over seeds of size reduction and every metric's relative change, per arm and eq 6."""
    out: dict = {}
    for r in rows:
        name = Path(r["checkpoint"]).parents[1].name.rsplit("_s", 1)[0]
        key = f"{name}{'' if r['consolidation'] else ' (no eq 6)'}"
        out.setdefault(key, []).append(r)
    table = {}
    for key, group in out.items():
        table[key] = {"seeds": len(group), "size_reduction": Spread([g["size_reduction"] for g in group]).as_dict(),
                      "kbit_per_image": Spread([g["bits_per_image"] / 1e3 for g in group]).as_dict(),
                      "relative_change": {m: Spread([g["relative_change"][m] for g in group]).as_dict()
                                          for m in group[0]["relative_change"]},
                      "meets_target": all(g["size_reduction"] >= TARGET_REDUCTION and g["worst_change"] >= TARGET_CHANGE
                                          for g in group)}
    return table


def readme_table(table: dict) -> str:
    """The README table: one row per setting (and eq 6 off), mean ± sd over its seeds."""
    metrics = list(next(iter(table.values()))["relative_change"])
    rows = [[key, e["seeds"], f"{e['kbit_per_image']['mean']:.2f}", f"{100 * e['size_reduction']['mean']:.1f}%",
             *(f"{100 * e['relative_change'][m]['mean']:+.2f} ± {100 * e['relative_change'][m]['std']:.2f}" for m in metrics),
             yes_no(e["meets_target"])] for key, e in table.items()]
    return markdown_table(["setting", "seeds", "kbit/image", "smaller than all 256 channels", *(f"{m} Δ%" for m in metrics),
                           "target met"], rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--task-ckpt", type=Path, help="a trained MultiTaskCI (default: train one with train.py)")
    parser.add_argument("--work", type=Path, default=Path("/tmp/cilight-baf"))
    parser.add_argument("--epochs", type=int, default=8, help="BaF training epochs (default 8)")
    parser.add_argument("--only", nargs="+", choices=list(SETTINGS), help="train and measure only these settings")
    parser.add_argument("--out", type=Path, default=RESULTS / "baf.json")
    parser.add_argument("--table", action="store_true", help="print the README table of --out and stop")
    args = parser.parse_args()
    if args.table:
        print(readme_table(json.loads(args.out.read_text())["arms"]))
        return
    args.work.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    task_ckpt = args.task_ckpt or train_task_model(args.work, 8)
    names = args.only or list(SETTINGS)
    checkpoints = [train_baf(args.work, name, SETTINGS[name], task_ckpt, args.epochs) for name in names]
    measured = args.work / "measured"
    run([sys.executable, str(ROOT / "evaluate.py"), "baf", "--ckpt", *map(str, checkpoints), "--codecs", "png",
         "--out", str(measured)], args.work)
    rows = json.loads((measured / "baf.json").read_text())["rows"]
    table = arms(rows)
    plots = RESULTS / "baf"
    plots.mkdir(parents=True, exist_ok=True)
    for path in measured.iterdir():
        if path.suffix in (".png", ".csv"):
            (plots / path.name).write_bytes(path.read_bytes())
    write_result(args.out, {"benchmark": "baf", "protocol": __doc__.split("\n\n")[2], "split": SPLIT,
                            "epochs": args.epochs, "task_checkpoint": str(task_ckpt), "settings": SETTINGS,
                            "arms": table, "rows": rows, "wall_seconds": time.perf_counter() - start})
    print(readme_table(table))


if __name__ == "__main__":
    main()
