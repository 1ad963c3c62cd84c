"""What tests share besides fixtures: tiny models, images and training options, ``train.py`` run in this
process or as a user runs it, and the golden files.

Fixtures live in ``conftest.py``; a test module imports these with ``from helpers import …``
(``tests`` is on pytest's ``pythonpath``, see pyproject.toml).

``train.py`` runs in this process (:func:`train`, its ``main(argv)``) wherever a process of its own
proves nothing; :func:`train_subprocess` is kept for the one end-to-end run and for DDP.
"""

from __future__ import annotations

import io
import json
import logging
import os
import random
import signal
import subprocess
import sys
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml

from cilight.ci_models import MultiTaskCI

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data"

# train.py options of a run that takes seconds: 8 training images, one epoch, narrow heads
TINY = [
    "--data.height", "64", "--data.width", "128",
    "--data.num_train", "8", "--data.num_val", "4", "--data.num_test", "4", "--data.batch_size", "4",
    "--model.decoder_width", "16",
    "--trainer.max_epochs", "1", "--trainer.enable_model_summary", "false",
]


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


def callbacks_config(path: Path, **rate_distortion) -> Path:
    """The default callbacks with the rate–distortion callback's arguments changed, as a ``--config`` file
    (``every_n_epochs=0`` switches it off)."""
    from cilight.cli import DEFAULT_CONFIG

    config = yaml.safe_load(DEFAULT_CONFIG.read_text())
    callbacks = config["trainer"]["callbacks"]
    for callback in callbacks:
        if callback["class_path"].endswith("RateDistortionCallback"):
            callback["init_args"].update(rate_distortion)
    path.write_text(yaml.safe_dump({"trainer": {"callbacks": callbacks}}))
    return path


# -- train.py ----------------------------------------------------------------------------------


def train(args: list, cwd: Path) -> subprocess.CompletedProcess:
    """``train.py args`` in this process, run from ``cwd``: its exit status and what it printed.

    Returns what :func:`train_subprocess` returns; a ``SystemExit`` (``--print_config``, ``--help``)
    becomes the exit status, as in a process. What a run changes in this process is undone afterwards: the
    environment (``CILIGHT_RUN_DIR``, Lightning's seed variables), the working directory, the random
    generators, warning filters, Lightning's log filters and the W&B run.
    """
    from cilight.cli import main

    return run_entry_point(main, "train.py", args, cwd)


def run_entry_point(main: Callable[[list[str]], int], name: str, args: list, cwd: Path) -> subprocess.CompletedProcess:
    """``main(args)`` of an entry point (``name``: how the process would be called) in this process, from
    ``cwd``, isolated as :func:`train` describes: its exit status and what it printed."""
    stdout, stderr = io.StringIO(), io.StringIO()
    argv = [str(a) for a in args]
    with _isolated(cwd), redirect_stdout(stdout), redirect_stderr(stderr):
        try:
            code = main(argv)
        except SystemExit as end:  # as the interpreter ends: None is 0, a message is printed and is 1
            code = end.code if isinstance(end.code, int) else 0 if end.code is None else 1
            if isinstance(end.code, str):
                print(end.code, file=sys.stderr)
    return subprocess.CompletedProcess([name, *argv], code, stdout.getvalue(), stderr.getvalue())


@contextmanager
def _isolated(cwd: Path) -> Iterator[None]:
    from cilight.cli import RUN_DIR_ENV

    environ, here = dict(os.environ), Path.cwd()
    generators = torch.get_rng_state(), np.random.get_state(), random.getstate()
    rank_zero = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    log_filters = list(rank_zero.filters)
    os.environ.pop(RUN_DIR_ENV, None)  # a run folder chosen by an earlier run must not be inherited
    os.environ["WANDB_MODE"] = "disabled"
    os.chdir(cwd)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # as PYTHONWARNINGS=ignore for the process
            yield
    finally:
        import wandb

        if wandb.run is not None:
            wandb.finish()
        os.chdir(here)
        os.environ.clear()
        os.environ.update(environ)
        torch.set_rng_state(generators[0])
        np.random.set_state(generators[1])
        random.setstate(generators[2])
        rank_zero.filters[:] = log_filters


def train_checkpoint(root: Path, *args) -> Path:
    """``last.ckpt`` of ``train.py`` with :data:`TINY` and ``args``, run in this process under ``root``."""
    proc = train([*TINY, *args, "--trainer.default_root_dir", root / "runs", "--run_name", "t"], root)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return root / "runs" / "t" / "checkpoints" / "last.ckpt"


@dataclass(frozen=True)
class EndToEndRun:
    """A ``python train.py`` process: where it ran, its run folder, and its exit status and output."""

    cwd: Path
    folder: Path
    proc: subprocess.CompletedProcess


def train_subprocess(args: list, cwd: Path, timeout: float = 240,
                     extra_env: dict | None = None) -> subprocess.CompletedProcess:
    """``python train.py args`` in its own process group, so a hang kills every (DDP) child too."""
    env = {**os.environ, "WANDB_MODE": "disabled", "PYTHONWARNINGS": "ignore", **(extra_env or {})}
    env.pop("CILIGHT_RUN_DIR", None)
    command = [sys.executable, str(ROOT / "train.py"), *map(str, args)]
    with subprocess.Popen(
        command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    ) as proc:
        try:
            stdout, stderr = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            stdout, stderr = proc.communicate()
            pytest.fail(f"train.py ran past {timeout} s and was killed; stderr tail:\n{stderr[-3000:]}")
    return subprocess.CompletedProcess(command, proc.returncode, stdout, stderr)


# -- golden files ------------------------------------------------------------------------------

UPDATE_GOLDEN = "--update-golden"


class Golden:
    """The golden files in ``tests/data``: read and compared against, and rewritten from the current
    code only when pytest runs with ``--update-golden`` (the ``golden`` fixture).

    Each reader takes ``make``, which computes the file's content with the current code; a file
    read without ``make`` is frozen (an old stream that must keep decoding) and is never rewritten.
    """

    def __init__(self, folder: Path, update: bool) -> None:
        self.folder, self.update = folder, update

    def bytes(self, name: str, make: Callable[[], bytes] | None = None) -> bytes:
        return self._file(name, make, Path.write_bytes, Path.read_bytes)

    def array(self, name: str, make: Callable[[], np.ndarray] | None = None) -> np.ndarray:
        return self._file(name, make, lambda p, a: np.save(p, a), np.load)

    def json(self, name: str, make: Callable[[], Any] | None = None) -> Any:
        return self._file(name, make, lambda p, v: p.write_text(json.dumps(v, indent=1)),
                          lambda p: json.loads(p.read_text()))

    def _file(self, name, make, write, read):
        path = self.folder / name
        if self.update and make is not None:
            write(path, make())
        if not path.is_file():
            how = (f"pytest {UPDATE_GOLDEN} writes it from the current code" if make is not None
                   else "it is frozen (written by an older version, never rewritten): restore it from git")
            pytest.fail(f"golden file {path} is missing; {how}")
        return read(path)
