"""The rate–accuracy curves of one checkpoint on its test split, measured once and cached beside it.

::

    checkpoint ─► load_model ─► test_batches ─► measure_curves ─► <run>/curves/curves.json, curves.csv
                  (ci_models)   (datamodules)   (evaluation.curves)  with the provenance to redo them;
                                                                     read back instead while it matches

A saved ``curves.json`` is reused only if it was measured from the same checkpoint (by SHA-256),
families, number of images and data; its provenance also names the cilight version, torch and
the git commit of the source tree (:func:`git_revision`).
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import torch

import cilight
from cilight.ci_models.checkpoints import load_model
from cilight.datamodules.from_checkpoint import test_batches
from cilight.errors import ConfigError
from cilight.evaluation.curves import RateAccuracyCurves, measure_curves, parse_families


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def git_revision() -> str | None:
    """The commit of the cilight source tree, with ``+dirty`` if it has changes; ``None`` outside git."""
    root = Path(__file__).resolve().parent  # inside the source tree of a checkout
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    if head.returncode != 0:
        return None
    return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def checkpoint_curves(ckpt: Path, families, images: int | None = None, num_test: int | None = None,
                      data_root: str | None = None, out: Path | None = None, reuse: bool = True,
                      progress: bool = True) -> tuple[RateAccuracyCurves, list[Path], bool]:
    """``(curves, files written, reused)``: the rate–accuracy curves of a checkpoint on its test split.

    A checkpoint whose transmissions code with their own codec (a learned bottleneck's ``learned``) is
    measured at that one operating point, whatever ``families`` say (a curve over λ is
    :meth:`RateAccuracyCurves.merge` of several checkpoints).
    Written to ``out`` (default ``<run>/curves/``) as ``curves.json`` and ``curves.csv`` with what
    is needed to redo them. With ``reuse``, a saved ``curves.json`` of the same checkpoint (by
    hash), families, images and data is read instead of measured again.
    """
    ckpt = Path(ckpt)
    model, data = load_model(ckpt)
    own = sorted({name for t in model.transmissions if (name := t.own_codec_name())})
    if own:  # its rate is set by training: one point per checkpoint, its transmission's own codec (and images)
        families = (*parse_families(own), *(f for f in families if f.codes_image))
    out = Path(out) if out else ckpt.resolve().parent.parent / "curves"
    request = {"checkpoint_sha256": file_sha256(ckpt), "families": [str(f) for f in families],
               "images": images, "num_test": num_test, "data": json.loads(json.dumps(data, default=str))}
    saved = out / "curves.json"
    if reuse and saved.is_file():
        try:
            curves = RateAccuracyCurves.read(saved)
        except ConfigError:
            curves = None
        if curves is not None and {k: curves.provenance.get(k) for k in request} == request:
            return curves, [], True
    batches = test_batches(data, images, num_test, data_root)
    provenance = {"checkpoint": str(ckpt.resolve()), **request, "cilight": cilight.__version__,
                  "torch": torch.__version__, "git": git_revision()}
    curves = measure_curves(model, batches, families, progress=progress, provenance=provenance)
    return curves, curves.write(out), False


__all__ = ["checkpoint_curves", "file_sha256", "git_revision"]
