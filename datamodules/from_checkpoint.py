"""A checkpoint's datamodule rebuilt from the arguments ``train.py`` saved with it.

LightningCLI stores the datamodule's class path and arguments in the checkpoint; they are read by
:func:`cilight.ci_models.checkpoints.datamodule_hparams` (or returned with the model by
:func:`~cilight.ci_models.checkpoints.load_model`) and turned back into a datamodule here, with
the data side: ``ci_models`` imports only ``codecs`` (DESIGN.md), and this module imports nothing
of cilight but its errors (the class is found by the saved path, which must name a cilight class).
"""

from __future__ import annotations

import importlib

import torch

from cilight.errors import ConfigError

SYNTHETIC = "cilight.datamodules.SyntheticStreets"


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


test_batches.__test__ = False  # a function of the library, not a pytest test

__all__ = ["SYNTHETIC", "datamodule_from", "test_batches"]
