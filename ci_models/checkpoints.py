"""Loading what ``train.py`` saved: every checkpoint read in cilight passes through this module.

::

    file ─► read_checkpoint ─► checkpoint_class ─► build_from_checkpoint ─► model (CPU, eval mode)
            (weights only,     (MultiTaskCI or     (cls.upgrade_checkpoint(state) if the class
             one ConfigError)   BaFPredictor)        defines it, then cls(**hyperparameters),
                                                     load_state_dict, on_load_checkpoint)

:func:`build_from_checkpoint` is the one place a model is rebuilt from a checkpoint, so a class
that changes its saved layout upgrades old files in one static method,
``upgrade_checkpoint(state: dict) -> dict``, called before the model is built.

LightningCLI also stores the datamodule's class path and arguments in the checkpoint
(``datamodule_hyper_parameters``, read by :func:`datamodule_hparams`), so ``export.py`` and
``evaluate.py`` need only ``--ckpt``. Building that datamodule is not done here:
``ci_models`` imports only ``codecs`` (DESIGN.md), and datamodules are built by
:mod:`cilight.datamodules.from_checkpoint`.
"""

from __future__ import annotations

from pathlib import Path

import lightning.pytorch as pl
import torch

from cilight.ci_models.multitask import MultiTaskCI
from cilight.errors import CilightError, ConfigError


def read_checkpoint(path: str | Path, label: str = "checkpoint") -> dict:
    """The dict of a checkpoint written by ``train.py`` (weights only), or one clear :class:`ConfigError`
    that starts with ``label`` (e.g. the option that named the file)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{label} {path}: no such checkpoint file")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # many exception types, and messages of many lines advising unsafe loading
        raise ConfigError(f"{label} {path}: not a checkpoint written by train.py (torch.load with weights only "
                          f"could not read it: {type(err).__name__})") from None
    if not isinstance(state, dict) or "state_dict" not in state or "hyper_parameters" not in state:
        raise ConfigError(f"{label} {path}: not a checkpoint written by train.py (no state_dict and hyper_parameters)")
    return state


def checkpoint_class(state: dict) -> type[pl.LightningModule]:
    """The class that saved ``state``: a :class:`BaFPredictor` (recognised by the task model whose
    hyperparameters it carries) or a :class:`MultiTaskCI`."""
    # imported here, not at the top: cilight.ci_models.baf loads its task model through this module
    from cilight.ci_models.baf import BaFPredictor

    return BaFPredictor if "task_hparams" in state["hyper_parameters"] else MultiTaskCI


def datamodule_hparams(state: dict) -> dict:
    """The datamodule arguments saved with ``state``, with ``'_class_path'`` (empty if none were saved)."""
    return dict(state.get("datamodule_hyper_parameters") or {})


def build_from_checkpoint(cls: type[pl.LightningModule], state: dict, path: str | Path,
                          label: str = "checkpoint") -> pl.LightningModule:
    """``cls`` rebuilt from the hyperparameters in ``state`` (read from ``path``) and loaded with its
    weights, on the CPU in eval mode; any failure is one :class:`ConfigError`.

    Every load passes here: ``cls.upgrade_checkpoint(state)`` (a static method taking and returning
    the checkpoint dict), if the class defines it, first brings an older checkpoint to the current
    layout. The model is built directly from the saved arguments, not through Lightning's saved
    ``_instantiator`` (which re-parses them with jsonargparse).
    """
    try:
        upgrade = getattr(cls, "upgrade_checkpoint", None)
        if upgrade is not None:
            state = upgrade(state)
        kwargs = {k: v for k, v in state["hyper_parameters"].items() if not k.startswith("_")}
        model = cls(**kwargs)
        model.load_state_dict(state["state_dict"])
        model.on_load_checkpoint(state)
    except CilightError:
        raise
    except Exception as err:
        first_line = (str(err).strip().splitlines() or [""])[0][:160]
        raise ConfigError(f"{label} {path}: not a {cls.__name__} checkpoint ({type(err).__name__}: {first_line})") from None
    return model.eval()


def load_lightning_module(cls: type[pl.LightningModule], path: str | Path, label: str = "checkpoint") -> pl.LightningModule:
    """``cls`` rebuilt from the checkpoint ``path`` (:func:`build_from_checkpoint`), on the CPU in eval mode."""
    return build_from_checkpoint(cls, read_checkpoint(path, label), path, label)


def load_task_model(path: str | Path, label: str = "task_ckpt") -> MultiTaskCI:
    """The :class:`MultiTaskCI` saved in ``path``, in eval mode."""
    return load_lightning_module(MultiTaskCI, path, label)


def load_model(path: str | Path, accept: tuple[type, ...] = (MultiTaskCI,), label: str = "--ckpt"):
    """``(model in eval mode, datamodule arguments with '_class_path')`` from a checkpoint of ``train.py``:
    a :class:`MultiTaskCI`, or a :class:`BaFPredictor` (recognised by the task model it carries),
    refused unless its class is in ``accept``."""
    state = read_checkpoint(path, label)
    cls = checkpoint_class(state)
    if cls not in accept:
        raise ConfigError(f"{label} {path} is a {cls.__name__} checkpoint; this command takes "
                          f"{' or '.join(c.__name__ for c in accept)} checkpoints")
    return build_from_checkpoint(cls, state, path, label), datamodule_hparams(state)


__all__ = ["build_from_checkpoint", "checkpoint_class", "datamodule_hparams", "load_lightning_module", "load_model",
           "load_task_model", "read_checkpoint"]
