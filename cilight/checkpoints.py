"""Loading what ``train.py`` saved: the model and the datamodule it was trained on.

LightningCLI stores the datamodule's class path and arguments in the checkpoint
(``datamodule_hyper_parameters``), so ``export.py`` and ``evaluate.py`` need only ``--ckpt``.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import torch

from cilight.errors import ConfigError


def load_model(path: Path):
    """``(MultiTaskCI in eval mode, datamodule arguments with '_class_path')`` from a checkpoint."""
    from cilight.ci_models import MultiTaskCI

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"--ckpt {path}: no such checkpoint file")
    try:
        model = MultiTaskCI.load_from_checkpoint(path, map_location="cpu", weights_only=True)
        data = torch.load(path, map_location="cpu", weights_only=True).get("datamodule_hyper_parameters") or {}
    except Exception as err:  # torch reports unreadable files with many exception types
        raise ConfigError(f"--ckpt {path}: not a MultiTaskCI checkpoint ({type(err).__name__}: {err})") from None
    return model.eval(), dict(data)


def datamodule_from(data: dict, **overrides):
    """Re-create the checkpoint's datamodule (default SyntheticStreets), with ``overrides`` applied."""
    class_path = data.get("_class_path", "cilight.datamodules.SyntheticStreets")
    module, _, name = class_path.rpartition(".")
    if not module.startswith("cilight."):
        raise ConfigError(f"checkpoint datamodule {class_path!r} is not a cilight datamodule")
    cls = getattr(importlib.import_module(module), name)
    kwargs = {k: v for k, v in data.items() if not k.startswith("_")}
    return cls(**{**kwargs, **{k: v for k, v in overrides.items() if v is not None}})
