"""The file both halves of the edge-install check exchange bytes through: a list of byte strings in one ``.npz``.

The full install (``tests/test_edge_install.py``) writes frames and packets and reads back what the edge-only
install wrote; the edge-only install (``test_edge_runtime.py``) does the opposite. One definition, so the two
sides cannot drift apart. numpy only: it runs in both.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def save_bytes(path: Path, items: list[bytes]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **{f"item_{i}": np.frombuffer(b, np.uint8) for i, b in enumerate(items)})


def load_bytes(path: Path) -> list[bytes]:
    with np.load(path) as data:
        return [data[f"item_{i}"].tobytes() for i in range(len(data.files))]
