"""What a path given to an entry point must be, checked before anything heavy is imported.

These checks need neither torch nor Lightning, so ``export.py --ckpt missing.ckpt`` answers in a
fraction of a second, and every entry point words the same mistake the same way:

* :func:`check_checkpoint_file` — an existing file, a PyTorch archive (``torch.save`` writes a zip
  archive whose entries carry CRC-32 checksums, so truncation and flipped bytes are found by
  reading it once, ~20 ms for a 40 MB checkpoint), not a folder, not some other file;
* :func:`check_output_folder` — a folder that exists or can be made, not a file and not below one;
* :func:`check_input_file` — an existing file, not a folder.

What the archive holds (a LightningModule of the expected class and architecture) is checked by
:mod:`cilight.ci_models.checkpoints`, which reads it with torch.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

from cilight.errors import ConfigError

ZIP_MAGIC = b"PK\x03\x04"


def check_input_file(path: str | os.PathLike, label: str, expected: str) -> Path:
    """``path`` as a :class:`Path` if it is an existing file; one :class:`ConfigError` naming ``label``
    and ``expected`` (e.g. ``"an .onnx file written by export.py"``) otherwise."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{label} {path} is a folder; expected {expected}")
    if not path.is_file():
        raise ConfigError(f"{label} {path}: no such file; expected {expected}")
    return path


def check_checkpoint_file(path: str | os.PathLike, label: str = "--ckpt") -> Path:
    """``path`` if it is a readable PyTorch checkpoint archive; one :class:`ConfigError` that says what it
    is instead (missing, a folder — with the checkpoint inside it, if there is one —, another kind of
    file, or a truncated or corrupt archive)."""
    path = Path(path)
    expected = "a checkpoint (.ckpt) written by train.py"
    if path.is_dir():
        inside = _checkpoint_in(path)
        hint = f" (did you mean {inside}?)" if inside else ""
        raise ConfigError(f"{label} {path} is a folder; expected {expected}{hint}")
    check_input_file(path, label, expected)
    with path.open("rb") as file:
        head = file.read(len(ZIP_MAGIC))
    if head != ZIP_MAGIC:
        kind = "an empty file" if not head else "not a PyTorch archive"
        raise ConfigError(f"{label} {path}: {kind}; expected {expected}")
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError, EOFError) as err:
        raise ConfigError(f"{label} {path}: a PyTorch archive that cannot be read, truncated or corrupt? "
                          f"({path.stat().st_size:,} bytes; {err})") from None
    if bad is not None:
        raise ConfigError(f"{label} {path}: a PyTorch archive whose entry {bad} fails its checksum, corrupt?")
    if not any(name.endswith("/data.pkl") for name in names):
        raise ConfigError(f"{label} {path}: a zip archive but not a PyTorch checkpoint (no data.pkl); expected {expected}")
    return path


def _checkpoint_in(folder: Path) -> Path | None:
    """The checkpoint a user most likely meant when naming a run folder or its ``checkpoints/`` folder."""
    for candidate in (folder / "last.ckpt", folder / "checkpoints" / "last.ckpt"):
        if candidate.is_file():
            return candidate
    found = sorted(folder.glob("*.ckpt")) or sorted(folder.glob("checkpoints/*.ckpt"))
    return found[0] if found else None


def check_output_folder(path: str | os.PathLike, label: str = "--out") -> Path:
    """``path`` if it is a folder or can be made one; one :class:`ConfigError` if it, or a folder above it,
    is a file, or if the nearest existing folder above it is not writable. Nothing is created."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{label} {path} is a file; expected a folder (new or existing) to write into")
    existing = next(p for p in (path, *path.parents) if p.exists() or p == Path(p.anchor or "."))
    if existing != path and not existing.is_dir():
        raise ConfigError(f"{label} {path}: {existing} is a file, not a folder")
    if existing.exists() and not os.access(existing, os.W_OK):
        raise ConfigError(f"{label} {path}: {existing} is not writable")
    return path


__all__ = ["check_checkpoint_file", "check_input_file", "check_output_folder"]
