"""Shared test helpers: running the entry points as a user does."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


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
