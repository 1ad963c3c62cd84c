"""Shared test fixtures: tiny models and data, and one tiny ``train.py`` checkpoint per test run.

Entry points run in-process through ``main(argv)`` where no separate process is needed
(``evaluate.py``, ``export.py``); ``train.py`` runs as a user runs it, in its own process
(LightningCLI and DDP), and the checkpoints it writes are made once and shared.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from cilight.ci_models import MultiTaskCI

ROOT = Path(__file__).resolve().parents[1]

# train.py options of a run that takes seconds: 8 training images, one epoch, narrow heads
TINY = [
    "--data.height", "64", "--data.width", "128",
    "--data.num_train", "8", "--data.num_val", "4", "--data.num_test", "4", "--data.batch_size", "4",
    "--model.decoder_width", "16",
    "--trainer.max_epochs", "1", "--trainer.enable_model_summary", "false",
]


def run_entry_point(script: str, args: list[str], cwd: Path, timeout: float = 240, extra_env: dict | None = None):
    """Run ``python <script> args`` in its own process group, so a hang kills every (DDP) child too."""
    env = {**os.environ, "WANDB_MODE": "disabled", "PYTHONWARNINGS": "ignore", **(extra_env or {})}
    env.pop("CILIGHT_RUN_DIR", None)
    command = [sys.executable, str(ROOT / script), *map(str, args)]
    with subprocess.Popen(
        command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    ) as proc:
        try:
            stdout, stderr = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            stdout, stderr = proc.communicate()
            pytest.fail(f"{script} ran past {timeout} s and was killed; stderr tail:\n{stderr[-3000:]}")
    return subprocess.CompletedProcess(command, proc.returncode, stdout, stderr)


def train(args: list[str], cwd: Path, timeout: float = 240, extra_env: dict | None = None):
    return run_entry_point("train.py", args, cwd, timeout, extra_env)


def tiny_model(split_points=("layer3",), tasks=("segmentation", "disparity", "reconstruction"), num_classes=5,
               width=8) -> MultiTaskCI:
    """An untrained model with narrow heads, in eval mode, the same weights every call."""
    torch.manual_seed(0)
    return MultiTaskCI(backbone="resnet18", split_points=list(split_points), tasks=list(tasks),
                       num_classes=num_classes, decoder_width=width).eval()


def smooth_images(n: int, height: int = 64, width: int = 96, seed: int = 0) -> torch.Tensor:
    """Smooth random images, so codes span the range like real features do."""
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(n, 3, height // 8, width // 8, generator=g)
    return torch.nn.functional.interpolate(low, size=(height, width), mode="bilinear", align_corners=False)


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """``last.ckpt`` of ``python train.py`` with :data:`TINY` (the default single-stream, 3-task model)."""
    root = tmp_path_factory.mktemp("tiny_run")
    proc = train([*TINY, "--trainer.default_root_dir", root / "runs", "--run_name", "t"], root)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return root / "runs" / "t" / "checkpoints" / "last.ckpt"


@pytest.fixture(scope="session")
def two_task_checkpoint(tmp_path_factory) -> Path:
    """``last.ckpt`` of a 2-stream, 2-task model (the Pareto paper's §VI-C 2×2 system) from ``train.py``."""
    root = tmp_path_factory.mktemp("two_task_run")
    proc = train([*TINY, "--model.split_points", "[layer2,layer3]", "--model.tasks", "[segmentation,disparity]",
                  "--trainer.default_root_dir", root / "runs", "--run_name", "t"], root)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return root / "runs" / "t" / "checkpoints" / "last.ckpt"


@pytest.fixture(scope="session")
def learned_checkpoint(tmp_path_factory) -> Path:
    """``last.ckpt`` of ``python train.py`` with a hyperprior bottleneck (:data:`TINY`, 2 epochs)."""
    root = tmp_path_factory.mktemp("learned_run")
    proc = train([*TINY, "--trainer.max_epochs", "2", "--model.bottleneck", "hyperprior",
                  "--model.bottleneck_channels", "16", "--model.rate_lambda", "1e-3",
                  "--trainer.default_root_dir", root / "runs", "--run_name", "t"], root)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return root / "runs" / "t" / "checkpoints" / "last.ckpt"
