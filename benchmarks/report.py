"""What every benchmark writes: the machine it ran on and its raw results as JSON."""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path

import lightning.pytorch as pl
import torch

import cilight

ROOT = Path(__file__).resolve().parents[1]  # the repository: train.py, evaluate.py, export.py, configs/
RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> dict:
    """CPU model, core and thread counts and the software versions that set the speed."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "lightning": pl.__version__,
        "cilight": cilight.__version__,
        "platform": platform.platform(),
    }


def write_result(path: Path, result: dict) -> None:
    """Write ``result`` (with the machine added) as indented JSON and say where."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({**result, "machine": machine()}, indent=2) + "\n")
    print(f"wrote {path}")
