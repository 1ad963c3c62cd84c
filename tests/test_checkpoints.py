"""Checkpoint loading (:mod:`cilight.ci_models.checkpoints`): one clear error per bad file, the class
picked from the saved hyperparameters, and every load passing through ``upgrade_checkpoint``."""

from __future__ import annotations

import lightning.pytorch as pl
import pytest
import torch
from helpers import smooth_images, tiny_model

from cilight.ci_models import BaFPredictor, MultiTaskCI
from cilight.ci_models.checkpoints import (
    checkpoint_class,
    datamodule_hparams,
    load_lightning_module,
    load_model,
    load_task_model,
    read_checkpoint,
)
from cilight.errors import ConfigError

DATA = {"_class_path": "cilight.datamodules.SyntheticStreets", "height": 64, "width": 128}


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A checkpoint file with what ``train.py`` saves: weights, hyperparameters, datamodule arguments."""
    model = tiny_model()
    path = tmp_path_factory.mktemp("ckpt") / "tiny.ckpt"
    torch.save({"state_dict": model.state_dict(), "hyper_parameters": dict(model.hparams),
                "datamodule_hyper_parameters": DATA}, path)
    return model, path


def test_a_saved_model_loads_with_its_datamodule_arguments(saved):
    model, path = saved
    loaded, data = load_model(path)
    assert isinstance(loaded, MultiTaskCI) and not loaded.training and data == DATA
    images = smooth_images(1, 64, 128)
    with torch.no_grad():
        for name, output in model(images).items():
            torch.testing.assert_close(loaded(images)[name], output)
    assert isinstance(load_task_model(path), MultiTaskCI)
    with pytest.raises(ConfigError, match=rf"^--ckpt {path} is a MultiTaskCI checkpoint; this command takes BaFPredictor"):
        load_model(path, accept=(BaFPredictor,))


def test_bad_files_are_one_error_naming_the_option(tmp_path):
    missing, garbage, other = tmp_path / "missing.ckpt", tmp_path / "garbage.ckpt", tmp_path / "other.ckpt"
    garbage.write_bytes(b"not a checkpoint")
    torch.save({"weights": torch.zeros(1)}, other)
    with pytest.raises(ConfigError, match=rf"^--ckpt {missing}: no such file; expected a checkpoint \(.ckpt\) written"):
        read_checkpoint(missing, "--ckpt")
    with pytest.raises(ConfigError, match=rf"^task_ckpt {garbage}: not a PyTorch archive; expected a checkpoint"):
        load_task_model(garbage)
    with pytest.raises(ConfigError, match=r"a PyTorch file but not a checkpoint written by train.py \(no state_dict"):
        read_checkpoint(other)


def test_the_class_is_picked_from_the_hyperparameters():
    assert checkpoint_class({"hyper_parameters": {"task_hparams": {}}}) is BaFPredictor
    assert checkpoint_class({"hyper_parameters": {"tasks": ["segmentation"]}}) is MultiTaskCI
    assert datamodule_hparams({}) == {} and datamodule_hparams({"datamodule_hyper_parameters": DATA}) == DATA


class Renamed(pl.LightningModule):
    """A module whose argument ``width`` was once saved as ``size``."""

    def __init__(self, width: int = 2):
        super().__init__()
        self.save_hyperparameters()
        self.layer = torch.nn.Linear(width, 1)

    @staticmethod
    def upgrade_checkpoint(state: dict) -> dict:
        hp = dict(state["hyper_parameters"])
        if "size" in hp:
            hp["width"] = hp.pop("size")
        return {**state, "hyper_parameters": hp}


def test_every_load_upgrades_an_old_checkpoint_first(tmp_path):
    old = Renamed(width=3)
    path = tmp_path / "old.ckpt"
    torch.save({"state_dict": old.state_dict(), "hyper_parameters": {"size": 3}}, path)
    loaded = load_lightning_module(Renamed, path)
    assert loaded.hparams.width == 3
    torch.testing.assert_close(loaded.layer.weight, old.layer.weight)
    with pytest.raises(ConfigError, match=rf"^checkpoint {path}: not a Plain checkpoint \(TypeError"):
        load_lightning_module(type("Plain", (Renamed,), {"upgrade_checkpoint": None}), path)
