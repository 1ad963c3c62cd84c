"""The quick-start run, measured: ``python train.py`` with its defaults, timed end to end.

Runs the training command exactly as ``make train`` does (a fresh process, the default
SyntheticStreets data and model, W&B offline), in a temporary run root, and records the wall
time, the test metrics of the best checkpoint and the trivial baselines the command prints.
These are the numbers the README quotes.

    python -m benchmarks.default_run [--out FILE] [-- extra train.py options]

Writes JSON (default ``benchmarks/results/default_run.json``) naming the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.report import RESULTS, ROOT, write_result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=RESULTS / "default_run.json")
    parser.add_argument("train_args", nargs="*", help="extra train.py options (after --)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="cilight-default-run-") as tmp:
        command = [sys.executable, str(ROOT / "train.py"), "--trainer.default_root_dir", tmp, "--run_name", "default",
                   "--trainer.enable_progress_bar", "false", *args.train_args]
        env = {**os.environ, "WANDB_MODE": os.environ.get("WANDB_MODE", "offline")}
        print("running:", " ".join(command), flush=True)
        start = time.perf_counter()
        subprocess.run(command, cwd=tmp, env=env, check=True)
        seconds = time.perf_counter() - start
        report = json.loads((Path(tmp) / "default" / "test_metrics.json").read_text())
        config = (Path(tmp) / "default" / "config.yaml").read_text()

    baselines = report["trivial_baselines"]
    metrics = report["metrics"]
    write_result(args.out, {
        "benchmark": "default_run",
        "command": " ".join(["python train.py", *args.train_args]),
        "wall_seconds": seconds,
        "test_metrics": metrics,
        "trivial_baselines": baselines,
        "margins": {
            "segmentation_miou_ratio": metrics["test/segmentation_miou"] / baselines["segmentation_miou"],
            "disparity_rmse_ratio": baselines["disparity_rmse"] / metrics["test/disparity_rmse"],
            "reconstruction_psnr_gain_db": metrics["test/reconstruction_psnr"] - baselines["reconstruction_psnr"],
        },
        "config_yaml": config,
    })
    print(f"wall time {seconds / 60:.1f} min")


if __name__ == "__main__":
    main()
