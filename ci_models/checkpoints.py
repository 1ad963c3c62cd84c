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
from cilight.files import check_checkpoint_file


def read_checkpoint(path: str | Path, label: str = "checkpoint") -> dict:
    """The dict of a checkpoint written by ``train.py`` (weights only), or one clear :class:`ConfigError`
    that starts with ``label`` (e.g. the option that named the file) and says what the file is instead:
    missing, a folder, another kind of file, truncated or corrupt (:func:`cilight.files.check_checkpoint_file`),
    or a PyTorch file that is not a Lightning checkpoint."""
    path = check_checkpoint_file(path, label)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # many exception types, and messages of many lines advising unsafe loading
        raise ConfigError(f"{label} {path}: a PyTorch file that torch.load with weights only refuses "
                          f"({type(err).__name__}); expected a checkpoint written by train.py") from None
    if not isinstance(state, dict) or "state_dict" not in state or "hyper_parameters" not in state:
        raise ConfigError(f"{label} {path}: a PyTorch file but not a checkpoint written by train.py "
                          "(no state_dict and hyper_parameters)")
    return state


def _model_classes() -> tuple[type[pl.LightningModule], type[pl.LightningModule]]:
    # imported here, not at the top: cilight.ci_models.baf loads its task model through this module
    from cilight.ci_models.baf import BaFPredictor

    return MultiTaskCI, BaFPredictor


def checkpoint_class(state: dict) -> type[pl.LightningModule]:
    """The class that saved ``state``: a :class:`BaFPredictor` (recognised by the task model whose
    hyperparameters it carries) or a :class:`MultiTaskCI`."""
    multitask, baf = _model_classes()
    return baf if "task_hparams" in state["hyper_parameters"] else multitask


def saved_class_name(state: dict) -> str:
    """The name of the LightningModule class that saved ``state`` (LightningCLI records its class path;
    older files are recognised by :func:`checkpoint_class`)."""
    class_path = state["hyper_parameters"].get("_class_path")
    return class_path.rpartition(".")[2] if isinstance(class_path, str) else checkpoint_class(state).__name__


def check_class(state: dict, cls: type, path: str | Path, label: str) -> None:
    """One :class:`ConfigError` if ``state`` was saved by a cilight model class other than ``cls``."""
    saved = saved_class_name(state)
    known = {c.__name__ for c in _model_classes()}
    if saved != cls.__name__ and saved in known and cls.__name__ in known:
        raise ConfigError(f"{label} {path} is a {saved} checkpoint; expected a {cls.__name__} checkpoint")


# saved arguments that do not shape the weights: left out when explaining why weights do not fit
NOT_ARCHITECTURE = ("init_from", "backbone_weights", "lr", "weight_decay")


def architecture_mismatch(state: dict, model: pl.LightningModule, path: str | Path, label: str) -> str | None:
    """Why the weights in ``state`` cannot be loaded into ``model`` (one line naming the saved and the
    configured values of the hyperparameters that differ), or ``None`` if every tensor has its place.

    The state dict decides — its keys and shapes are the architecture — and the hyperparameters explain:
    a different backbone, task set, split point or transmission shows up as the argument that differs.
    """
    saved_cls, configured_cls = saved_class_name(state), type(model).__name__
    if saved_cls != configured_cls:
        return f"{label} {path} is a {saved_cls} checkpoint; the configured model is a {configured_cls}"
    saved = {k: v.shape for k, v in state["state_dict"].items() if hasattr(v, "shape")}
    configured = {k: v.shape for k, v in model.state_dict().items()}
    if saved == configured:
        return None
    saved_hp = {k: v for k, v in state["hyper_parameters"].items() if not k.startswith("_") and k not in NOT_ARCHITECTURE}
    configured_hp = {k: v for k, v in dict(model.hparams).items() if not k.startswith("_") and k not in NOT_ARCHITECTURE}
    differ = [f"{k}={_plain(saved_hp.get(k))} (configured: {_plain(configured_hp.get(k))})"
              for k in sorted(set(saved_hp) | set(configured_hp)) if _plain(saved_hp.get(k)) != _plain(configured_hp.get(k))]
    if not differ:
        missing = sorted(set(configured) - set(saved)) or sorted(k for k in saved if saved[k] != configured.get(k))
        differ = [f"its weights differ from the configured model's, e.g. at {missing[0]}"] if missing else []
    return f"{label} {path} holds another {saved_cls}: saved with {'; '.join(differ)}"


def initialise_from(model: pl.LightningModule, path: str | Path, label: str = "init_from") -> None:
    """Load the weights (and transmission state) of the checkpoint ``path`` into ``model``, which must
    have its class and architecture, after ``model.adapt_base_state(state)`` where the model defines it
    (the weights a fine-tune may start afresh); its optimizer, schedule, epoch and step are not taken."""
    state = read_checkpoint(path, label)
    upgrade = getattr(type(model), "upgrade_checkpoint", None)
    if upgrade is not None:
        state = upgrade(state)
    adapt = getattr(model, "adapt_base_state", None)  # weights a fine-tune may start afresh (eq 6's rate term)
    if adapt is not None:
        state = adapt(state)
    mismatch = architecture_mismatch(state, model, path, label)
    if mismatch:
        raise ConfigError(f"{mismatch}; expected a checkpoint of the configured architecture to start from")
    model.load_state_dict(state["state_dict"])
    model.on_load_checkpoint(state)


def _plain(value: object) -> object:
    """A hyperparameter as comparable, printable plain data (a jsonargparse Namespace becomes a dict)."""
    if hasattr(value, "as_dict"):
        value = value.as_dict()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items() if not str(k).startswith("_")}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def check_resume(path: str | Path, model: pl.LightningModule, label: str = "--ckpt_path") -> None:
    """One :class:`ConfigError` unless ``path`` is a checkpoint the configured ``model`` can resume from
    (same class, same architecture: :func:`architecture_mismatch`)."""
    state = read_checkpoint(path, label)
    if "optimizer_states" not in state or "loops" not in state:
        raise ConfigError(f"{label} {path} holds weights but no training state (optimizer, loops); "
                          "a run resumes from the checkpoints train.py writes (runs/<run>/checkpoints/last.ckpt)")
    mismatch = architecture_mismatch(state, model, path, label)
    if mismatch:
        config = Path(path).resolve().parent.parent / "config.yaml"
        raise ConfigError(f"{mismatch}; resume it with "
                          f"{f'--config {config}' if config.is_file() else 'the options it was trained with'}")


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
    state = read_checkpoint(path, label)
    check_class(state, cls, path, label)
    return build_from_checkpoint(cls, state, path, label)


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


__all__ = ["architecture_mismatch", "build_from_checkpoint", "check_class", "check_resume", "checkpoint_class",
           "datamodule_hparams", "initialise_from", "load_lightning_module", "load_model", "load_task_model", "read_checkpoint",
           "saved_class_name"]
