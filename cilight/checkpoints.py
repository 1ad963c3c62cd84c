"""Loading what ``train.py`` saved: the model, the datamodule it was trained on, its test images.

LightningCLI stores the datamodule's class path and arguments in the checkpoint
(``datamodule_hyper_parameters``), so ``export.py`` and ``evaluate.py`` need only ``--ckpt``.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import subprocess
from pathlib import Path

import torch

import cilight
from cilight.ci_models import BaFPredictor, MultiTaskCI
from cilight.ci_models.checkpoints import load_lightning_module, read_checkpoint
from cilight.errors import ConfigError
from cilight.evaluation.curves import LEARNED, RateAccuracyCurves, measure_curves, parse_families

SYNTHETIC = "cilight.datamodules.SyntheticStreets"


def load_model(path: Path, accept: tuple[type, ...] = (MultiTaskCI,)):
    """``(model in eval mode, datamodule arguments with '_class_path')`` from a checkpoint of ``train.py``:
    a :class:`MultiTaskCI`, or a :class:`BaFPredictor` (recognised by the task model it carries),
    refused unless its class is in ``accept``."""
    state = read_checkpoint(path, "--ckpt")  # twice (here and in load_lightning_module): checkpoints are small
    cls = BaFPredictor if "task_hparams" in state["hyper_parameters"] else MultiTaskCI
    if cls not in accept:
        raise ConfigError(f"--ckpt {path} is a {cls.__name__} checkpoint; this command takes "
                          f"{' or '.join(c.__name__ for c in accept)} checkpoints")
    return load_lightning_module(cls, path, "--ckpt"), dict(state.get("datamodule_hyper_parameters") or {})


def datamodule_from(data: dict, **overrides):
    """Re-create the checkpoint's datamodule (default SyntheticStreets), with ``overrides`` applied."""
    class_path = data.get("_class_path", SYNTHETIC)
    module, _, name = class_path.rpartition(".")
    if not module.startswith("cilight."):
        raise ConfigError(f"checkpoint datamodule {class_path!r} is not a cilight datamodule")
    cls = getattr(importlib.import_module(module), name)
    kwargs = {k: v for k, v in data.items() if not k.startswith("_")}
    return cls(**{**kwargs, **{k: v for k, v in overrides.items() if v is not None}})


def test_batches(data: dict, images: int | None = None, num_test: int | None = None,
                 data_root: str | None = None) -> list[dict[str, torch.Tensor]]:
    """The checkpoint's test split as batches: its first ``images`` images, or a rendered split of
    ``num_test`` (SyntheticStreets only), from ``data_root`` if the dataset moved."""
    overrides = {"root": data_root} if data_root else {}
    if num_test is not None:
        if data.get("_class_path", SYNTHETIC) != SYNTHETIC:
            raise ConfigError(f"--num-test {num_test}: only SyntheticStreets renders a test split of any size; "
                              f"this checkpoint's data is {data.get('_class_path')}")
        if num_test < 2:
            raise ConfigError(f"--num-test {num_test}: expected at least 2 images (some to fit, some to evaluate)")
        overrides["num_test"] = num_test
    datamodule = datamodule_from(data, **overrides)
    datamodule.setup("test")
    batches, count = [], 0
    for batch in datamodule.test_dataloader():
        if images and count >= images:
            break
        if images:
            batch = {k: v[: images - count] for k, v in batch.items()}
        batches.append(batch)
        count += len(batch["image"])
    return batches


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def git_revision() -> str | None:
    """The commit of the cilight source tree, with ``+dirty`` if it has changes; ``None`` outside git."""
    root = Path(cilight.__file__).resolve().parent.parent
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

    A learned bottleneck's checkpoint is measured at its one operating point, ``learned``, whatever
    ``families`` say (a curve over λ is :meth:`RateAccuracyCurves.merge` of several checkpoints).
    Written to ``out`` (default ``<run>/curves/``) as ``curves.json`` and ``curves.csv`` with what
    is needed to redo them. With ``reuse``, a saved ``curves.json`` of the same checkpoint (by
    hash), families, images and data is read instead of measured again.
    """
    ckpt = Path(ckpt)
    model, data = load_model(ckpt)
    if model.bottlenecks is not None:  # its rate is set by training: one point per checkpoint
        families = parse_families(LEARNED)
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


__all__ = ["checkpoint_curves", "datamodule_from", "file_sha256", "git_revision", "load_model", "test_batches"]
