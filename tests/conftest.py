"""Shared fixtures: the golden-file switch, and the checkpoints of tiny ``train.py`` runs, each trained once
per session and shared by every test that needs one.

Helpers (``TINY``, ``tiny_model``, ``smooth_images``, ``train``) are in ``tests/helpers``. ``train.py``
runs in this process through ``main(argv)``, except for the one end-to-end run (``tiny_run``), which runs
as a user runs it, and the DDP tests.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import (
    DATA,
    ROOT,
    TINY,
    UPDATE_GOLDEN,
    EndToEndRun,
    Golden,
    smooth_images,
    tiny_model,
    train,
    train_checkpoint,
    train_subprocess,
)

from cilight.ci_models import MultiTaskCI
from cilight.cli import DEFAULT_CONFIG
from cilight.onnx_export import ParityReport, export_halves

# Intra-op threads: torch's default (one per core). Measured back to back on an idle 2-core machine the
# whole suite took 219 s with it and 260 s with one thread; on a machine shared with other processes two
# threads wait on each other (a TINY train.py run took 12–23 s instead of 1.3–2.6 s), so there run
# OMP_NUM_THREADS=1 pytest — the processes the tests start inherit it.

# fixtures that run train.py: every test that uses one, directly or through another fixture, is slow
TRAINING_FIXTURES = {"tiny_run", "tiny_checkpoint", "two_task_checkpoint", "learned_checkpoint", "baf_checkpoint",
                     "rate_aware_checkpoint", "custom_run"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if TRAINING_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(UPDATE_GOLDEN, action="store_true", default=False,
                     help="rewrite the golden files in tests/data from the current code instead of comparing with them")


@pytest.fixture
def golden(request: pytest.FixtureRequest) -> Golden:
    """The golden files in ``tests/data``; rewritten only under ``pytest --update-golden``."""
    return Golden(DATA, request.config.getoption(UPDATE_GOLDEN))


@pytest.fixture(scope="session", params=[["layer3"], ["layer2", "layer3"]], ids=["single", "multi"])
def tiny_halves(request, tmp_path_factory) -> tuple[MultiTaskCI, Path, ParityReport]:
    """An untrained :func:`tiny_model` (one stream or two), the folder of its ONNX halves (64×96, png codec)
    and the export's parity report; exported once per session (read-only: copy the folder to add files)."""
    model = tiny_model(request.param)
    out = tmp_path_factory.mktemp("onnx")
    return model, out, export_halves(model, out, 64, 96, smooth_images(3, 64, 96), codec="png")


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> EndToEndRun:
    """``python train.py`` with :data:`TINY` (the default single-stream, 3-task model and the default
    callbacks) in a process of its own, as a user runs it: the suite's one end-to-end run."""
    cwd = tmp_path_factory.mktemp("tiny_run")
    proc = train_subprocess([*TINY, "--trainer.default_root_dir", cwd / "runs", "--run_name", "t"], cwd)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return EndToEndRun(cwd, cwd / "runs" / "t", proc)


@pytest.fixture(scope="session")
def tiny_checkpoint(tiny_run) -> Path:
    """``last.ckpt`` of :func:`tiny_run`."""
    return tiny_run.folder / "checkpoints" / "last.ckpt"


@pytest.fixture(scope="session")
def quick_callbacks() -> Path:
    """``configs/callbacks/none.yaml``: checkpoints only, no sample grids and no per-epoch rate–distortion
    experiment (which costs more than a TINY fit), for the runs whose tests read only the checkpoint."""
    return DEFAULT_CONFIG.parent / "callbacks" / "none.yaml"


@pytest.fixture(scope="session")
def two_task_checkpoint(tmp_path_factory, quick_callbacks) -> Path:
    """``last.ckpt`` of a 2-stream, 2-task model (the Pareto paper's §VI-C 2×2 system) from ``train.py``."""
    return train_checkpoint(tmp_path_factory.mktemp("two_task_run"), "--config", quick_callbacks,
                            "--model.split_points", "[layer2,layer3]", "--model.tasks", "[segmentation,disparity]")


@pytest.fixture(scope="session")
def learned_checkpoint(tmp_path_factory, quick_callbacks) -> Path:
    """``last.ckpt`` of ``train.py`` with a hyperprior bottleneck (:data:`TINY`, 2 epochs)."""
    return train_checkpoint(tmp_path_factory.mktemp("learned_run"), "--config", quick_callbacks,
                            "--trainer.max_epochs", "2", "--model.transmission", "BottleneckTransmission",
                            "--model.transmission.prior", "hyperprior", "--model.transmission.channels", "16",
                            "--model.transmission.rate_lambda", "1e-3")


@pytest.fixture(scope="session")
def baf_checkpoint(tiny_checkpoint, tmp_path_factory):
    """``last.ckpt`` of ``python train.py --config configs/baf.yaml`` on the tiny task checkpoint."""
    root = tmp_path_factory.mktemp("baf_run")
    data_and_trainer = [a for i, a in enumerate(TINY) if not (a.startswith("--model.") or TINY[i - 1].startswith("--model."))]
    proc = train(["--config", ROOT / "configs" / "baf.yaml", *data_and_trainer, "--model.task_ckpt", tiny_checkpoint,
                  "--model.num_channels", "16", "--model.bits", "6", "--model.calibration_images", "8",
                  "--trainer.default_root_dir", root / "runs", "--run_name", "b"], root)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "BaF: transmitting channels" in proc.stdout
    return root / "runs" / "b" / "checkpoints" / "last.ckpt"
