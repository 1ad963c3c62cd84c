"""The callback fragments under configs/callbacks/ that ``--config`` composes, and the one-option
re-budget of the rate–distortion callback; in-process."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import yaml
from lightning.pytorch.callbacks import ModelCheckpoint

from cilight.cli import DEFAULT_CONFIG, RUN_DIR_ENV, CilightCLI
from cilight.evaluation import PredictionGrid, RateDistortionCallback

CONFIGS = DEFAULT_CONFIG.parent
FRAGMENTS = CONFIGS / "callbacks"
# a run of seconds: 8 training images, one epoch, narrow heads, no W&B
TINY = ["--data.height", "64", "--data.width", "128", "--data.num_train", "8", "--data.num_val", "4",
        "--data.num_test", "4", "--data.batch_size", "4", "--model.decoder_width", "16", "--trainer.max_epochs", "1",
        "--trainer.enable_model_summary", "false", "--trainer.enable_progress_bar", "false", "--trainer.logger", "false"]


@pytest.fixture(autouse=True)
def fresh_process_state(monkeypatch):
    monkeypatch.setattr(sys, "argv", ["train.py"])  # LightningCLI warns when it sees pytest's own
    # the CLI hands its run folder to DDP workers through the environment; in one process it would stick
    os.environ.pop(RUN_DIR_ENV, None)
    yield
    os.environ.pop(RUN_DIR_ENV, None)


def cli(root: Path, *args: str) -> CilightCLI:
    return CilightCLI(args=[*TINY, "--trainer.default_root_dir", str(root), "--run_name", "r", *args])


def configured(trainer) -> set[type]:
    """The trainer's callbacks of the kinds the configs name (Lightning adds its own progress bar and
    moves checkpointing last)."""
    kinds = (ModelCheckpoint, PredictionGrid, RateDistortionCallback)
    return {type(c) for c in trainer.callbacks if isinstance(c, kinds)}


@pytest.mark.parametrize(("fragment", "expected"), [
    (None, {ModelCheckpoint, PredictionGrid, RateDistortionCallback}),
    ("no_rate_distortion.yaml", {ModelCheckpoint, PredictionGrid}),
    ("none.yaml", {ModelCheckpoint}),
])
def test_a_fragment_replaces_the_callback_list_and_nothing_else(tmp_path, fragment, expected):
    args = ["--config", str(FRAGMENTS / fragment)] if fragment else []
    run = cli(tmp_path, *args)
    assert configured(run.trainer) == expected
    assert run.trainer.max_epochs == 1 and run.datamodule.height == 64  # the rest of the defaults and options stay


def test_fragments_keep_the_default_entries_they_share():
    """A fragment copies entries of configs/default.yaml; they must not drift from it."""
    default = yaml.safe_load(DEFAULT_CONFIG.read_text())["trainer"]["callbacks"]
    assert default[-1]["class_path"] == "cilight.evaluation.RateDistortionCallback"  # last: see test below
    for path in sorted(FRAGMENTS.glob("*.yaml")):
        for entry in yaml.safe_load(path.read_text())["trainer"]["callbacks"]:
            assert entry in default, f"{path.name}: {entry} differs from configs/default.yaml"


def test_one_option_re_budgets_or_switches_off_the_rate_distortion_callback(tmp_path):
    run = cli(tmp_path, "--trainer.callbacks.init_args.every_n_epochs", "4",
              "--trainer.callbacks.init_args.budgets_bpe", "[0.5, 2]")
    (callback,) = [c for c in run.trainer.callbacks if isinstance(c, RateDistortionCallback)]
    assert callback.every_n_epochs == 4 and callback.budgets_bpe == [0.5, 2.0]
    (off,) = [c for c in cli(tmp_path, "--trainer.callbacks.init_args.every_n_epochs", "0").trainer.callbacks
              if isinstance(c, RateDistortionCallback)]
    assert off.every_n_epochs == 0


@pytest.mark.slow
def test_a_run_without_the_rate_distortion_callback_writes_no_sweep(tmp_path):
    run = cli(tmp_path, "--config", str(FRAGMENTS / "no_rate_distortion.yaml"), "--test_after_fit", "false")
    assert RateDistortionCallback not in configured(run.trainer)
    run.fit_and_test()
    folder = tmp_path / "r"
    assert (folder / "checkpoints" / "last.ckpt").is_file() and (folder / "samples").is_dir()
    assert not (folder / "rate_distortion").exists()


def test_help_names_the_fragments(capsys):
    with pytest.raises(SystemExit):
        CilightCLI(args=["--help"])
    text = capsys.readouterr().out
    for path in sorted(FRAGMENTS.glob("*.yaml")):
        assert f"--config configs/callbacks/{path.name}" in text
    assert "--trainer.callbacks.init_args.every_n_epochs" in text
