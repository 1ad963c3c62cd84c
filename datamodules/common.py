"""Code shared by the street-scene datamodules: argument checks, loaders, trivial baselines.

Both datamodules (the embedded :mod:`~cilight.datamodules.synthetic` scenes and
:mod:`~cilight.datamodules.cityscapes`) serve the same item contract, so the parts that do
not depend on where the pixels come from live here:

* :func:`check_int` / :func:`check_fraction` turn a bad constructor argument into a
  :class:`~cilight.errors.ConfigError` that names the value and what was expected, so that
  ``python train.py --data.height 100`` fails with one clear line instead of a shape error deep
  inside the network.
* :class:`StreetSceneDataModule` builds the three loaders the same way for every dataset
  (seeded shuffling, ``drop_last`` only when it cannot empty an epoch, persistent workers).
* :func:`trivial_baselines` measures what a model that ignores its input would score, the
  floor every trained model must clear by a wide margin.

Item contract (every dataset here returns exactly this dict of tensors)::

    image           float32 [3, H, W] in [0, 1], not normalized
    segmentation    int64   [H, W], class ids 0..num_classes-1, 255 = ignore
    disparity       float32 [H, W], pixels at the output resolution, 0 where invalid
    disparity_mask  bool    [H, W], True where disparity is valid
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping

import lightning.pytorch as pl
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from cilight.errors import ConfigError

IGNORE_INDEX = 255
"""Segmentation label of pixels that no loss or metric may count."""

SPLITS = ("train", "val", "test")

# Which splits each Lightning stage needs; ``None`` (called by hand) prepares everything.
_STAGE_SPLITS: Mapping[str | None, tuple[str, ...]] = {
    None: SPLITS,
    "fit": ("train", "val"),
    "validate": ("val",),
    "test": ("test",),
    "predict": ("test",),
}


def check_int(name: str, value: object, *, minimum: int, multiple_of: int | None = None) -> int:
    """Return ``value`` as an ``int`` or raise :class:`ConfigError` naming it and the rule.

    ``bool`` is refused although it is an ``int`` subclass: ``--data.height true`` is a typo.
    """
    rule = f"an integer >= {minimum}" + (f" and a multiple of {multiple_of}" if multiple_of else "")
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ConfigError(f"{name}={value!r}: expected {rule}")
    value = int(value)
    if value < minimum or (multiple_of and value % multiple_of):
        hint = ""
        if multiple_of and value >= minimum:
            lower = value - value % multiple_of
            hint = f" (e.g. {lower or multiple_of} or {lower + multiple_of})"
        raise ConfigError(f"{name}={value}: expected {rule}{hint}")
    return value


def check_fraction(name: str, value: object) -> float:
    """Return ``value`` as a float strictly between 0 and 1 or raise :class:`ConfigError`."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0.0 < float(value) < 1.0:
        raise ConfigError(f"{name}={value!r}: expected a number strictly between 0 and 1")
    return float(value)


def check_image_size(height: object, width: object) -> tuple[int, int]:
    """Validate an output size: positive multiples of 32 (the encoder downsamples by 32)."""
    return (
        check_int("height", height, minimum=32, multiple_of=32),
        check_int("width", width, minimum=32, multiple_of=32),
    )


class StreetSceneDataModule(pl.LightningDataModule):
    """Base of the datamodules: loaders, split bookkeeping and the class metadata.

    Subclasses set the class metadata in ``__init__`` and implement :meth:`_build_split`,
    which returns the dataset of one split; :meth:`setup` builds the splits a stage needs
    once and keeps them.
    """

    ignore_index: int = IGNORE_INDEX

    def __init__(self, *, height: int, width: int, batch_size: int, num_workers: int, seed: int) -> None:
        super().__init__()
        self.height, self.width = check_image_size(height, width)
        self.batch_size = check_int("batch_size", batch_size, minimum=1)
        self.num_workers = check_int("num_workers", num_workers, minimum=0)
        # numpy's SeedSequence, used for all seeded draws, refuses negative entropy.
        self.seed = check_int("seed", seed, minimum=0)
        self.num_classes: int = 0
        self.class_names: tuple[str, ...] = ()
        self.class_colors: tuple[tuple[int, int, int], ...] = ()
        self._datasets: dict[str, Dataset] = {}

    def _build_split(self, split: str) -> Dataset:
        raise NotImplementedError

    def setup(self, stage: str | None = None) -> None:
        """Build (once) the splits ``stage`` needs: fit → train+val, validate → val, test/predict → test."""
        if stage not in _STAGE_SPLITS:
            raise ConfigError(f"stage={stage!r}: expected one of {sorted(s for s in _STAGE_SPLITS if s)} or None")
        for split in _STAGE_SPLITS[stage]:
            if split not in self._datasets:
                self._datasets[split] = self._build_split(split)

    def dataset(self, split: str) -> Dataset:
        """The dataset of ``split`` ("train", "val" or "test"), built on first use."""
        if split not in SPLITS:
            raise ConfigError(f"split={split!r}: expected one of {SPLITS}")
        if split not in self._datasets:
            self._datasets[split] = self._build_split(split)
        return self._datasets[split]

    def _loader(self, split: str) -> DataLoader:
        dataset = self.dataset(split)
        train = split == "train"
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            shuffle=train,
            # A generator owned by the loader makes the epoch orders a function of `seed`
            # alone, independent of how much global RNG the model consumed before.
            generator=torch.Generator().manual_seed(self.seed) if train else None,
            # Dropping the ragged last batch keeps batch statistics stable, but on a split no
            # larger than one batch it would leave an epoch with no step at all.
            drop_last=train and len(dataset) > self.batch_size,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train")

    def val_dataloader(self) -> DataLoader:
        return self._loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._loader("test")

    def predict_dataloader(self) -> DataLoader:
        return self._loader("test")


def _sequential_batches(dataset: Dataset, batch_size: int):
    # Baselines must see every sample exactly once, unlike the shuffled, drop_last train loader.
    return DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=0)


def trivial_baselines(datamodule: StreetSceneDataModule) -> dict[str, float]:
    """Test-split scores of three predictors that ignore the input image.

    Statistics come from the training split, scores from the test split:

    * ``segmentation_miou``: predict the most frequent training class at every pixel; the
      mean over classes of IoU from the confusion matrix of all non-ignored test pixels,
      averaged over the classes that occur in the target or the prediction (a class with
      an empty union is left out, like the usual ``nanmean`` FCN score).
    * ``disparity_rmse``: predict the mean valid training disparity; RMSE over all valid
      test pixels pooled.
    * ``reconstruction_psnr``: predict the per-pixel mean training image; PSNR with peak 1.0
      of each test image, averaged over images.
    """
    k = datamodule.num_classes
    ignore = datamodule.ignore_index
    batch_size = max(datamodule.batch_size, 32)

    class_counts = np.zeros(k, np.int64)
    disparity_sum, disparity_count = 0.0, 0
    image_sum, image_count = None, 0
    for batch in _sequential_batches(datamodule.dataset("train"), batch_size):
        seg = batch["segmentation"]
        class_counts += torch.bincount(seg[seg != ignore].flatten(), minlength=k)[:k].numpy()
        valid = batch["disparity_mask"]
        disparity_sum += batch["disparity"][valid].double().sum().item()
        disparity_count += int(valid.sum())
        images = batch["image"].double().sum(0)
        image_sum = images if image_sum is None else image_sum + images
        image_count += batch["image"].shape[0]
    majority = int(class_counts.argmax())
    mean_disparity = disparity_sum / max(disparity_count, 1)
    mean_image = image_sum / image_count

    confusion = np.zeros((k, k), np.int64)  # rows: target, columns: prediction
    squared_error, error_count = 0.0, 0
    psnrs = []
    for batch in _sequential_batches(datamodule.dataset("test"), batch_size):
        seg = batch["segmentation"]
        target_counts = torch.bincount(seg[seg != ignore].flatten(), minlength=k)[:k].numpy()
        confusion[:, majority] += target_counts
        valid = batch["disparity_mask"]
        squared_error += ((batch["disparity"][valid].double() - mean_disparity) ** 2).sum().item()
        error_count += int(valid.sum())
        mse = ((batch["image"].double() - mean_image) ** 2).flatten(1).mean(1)
        psnrs.extend((10.0 * torch.log10(1.0 / mse.clamp_min(1e-12))).tolist())

    true_positive = np.diag(confusion).astype(np.float64)
    union = confusion.sum(0) + confusion.sum(1) - true_positive
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(union > 0, true_positive / union, np.nan)
    return {
        "segmentation_miou": float(np.nanmean(iou)) if np.any(union > 0) else math.nan,
        "disparity_rmse": math.sqrt(squared_error / error_count) if error_count else math.nan,
        "reconstruction_psnr": float(np.mean(psnrs)),
    }


__all__ = [
    "IGNORE_INDEX",
    "SPLITS",
    "StreetSceneDataModule",
    "check_fraction",
    "check_image_size",
    "check_int",
    "trivial_baselines",
]
