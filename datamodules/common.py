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
* :meth:`StreetSceneDataModule.sequential_loader` serves a split in order, each sample once
  (what the tasks' trivial baselines are measured on, in :mod:`cilight.ci_models.tasks`).

Item contract (every dataset here returns exactly this dict of tensors)::

    image           float32 [3, H, W] in [0, 1], not normalized
    segmentation    int64   [H, W], class ids 0..num_classes-1, 255 = ignore
    disparity       float32 [H, W], pixels at the output resolution, 0 where invalid
    disparity_mask  bool    [H, W], True where disparity is valid
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping

import lightning.pytorch as pl
import torch
from torch.utils.data import DataLoader, Dataset, RandomSampler

from cilight.errors import ConfigError
from cilight.resume import ResumableBatchSampler, TrainOrder

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
    once and keeps them. ``class_colors`` is a class attribute where the colours are fixed, so
    ``export.py`` reads it from a checkpoint's datamodule class path without the data.
    """

    ignore_index: int = IGNORE_INDEX
    class_colors: tuple[tuple[int, int, int], ...] = ()

    def __init__(self, *, height: int, width: int, batch_size: int, num_workers: int, seed: int) -> None:
        super().__init__()
        self.height, self.width = check_image_size(height, width)
        self.batch_size = check_int("batch_size", batch_size, minimum=1)
        self.num_workers = check_int("num_workers", num_workers, minimum=0)
        # numpy's SeedSequence, used for all seeded draws, refuses negative entropy.
        self.seed = check_int("seed", seed, minimum=0)
        self.num_classes: int = 0
        self.class_names: tuple[str, ...] = ()
        self._datasets: dict[str, Dataset] = {}
        # where the shuffled training order stands; checkpoints save it (cilight.resume.ExactResume)
        self.train_order = TrainOrder()

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
        persistent = self.num_workers > 0
        if split != "train":
            return DataLoader(dataset, batch_size=self.batch_size, shuffle=False, num_workers=self.num_workers,
                              persistent_workers=persistent)
        # A generator owned by the loader makes the epoch orders a function of `seed` alone, independent of how
        # much global RNG the model consumed before. The samplers are what DataLoader(shuffle=True, generator=…,
        # batch_size=…, drop_last=…) builds, the batch sampler one that a resumed run can start mid-order
        # (cilight.resume): the same draws, so the same orders as before it existed.
        generator = torch.Generator().manual_seed(self.seed)
        self.train_order.attach(generator, fresh_iterator_per_epoch=not persistent)
        # Dropping the ragged last batch keeps batch statistics stable, but on a split no larger than one batch
        # it would leave an epoch with no step at all.
        batches = ResumableBatchSampler(RandomSampler(dataset, generator=generator), self.batch_size,
                                        drop_last=len(dataset) > self.batch_size, order=self.train_order)
        return DataLoader(dataset, batch_sampler=batches, generator=generator, num_workers=self.num_workers,
                          persistent_workers=persistent)

    def sequential_loader(self, split: str, batch_size: int = 32) -> DataLoader:
        """Every sample of ``split`` exactly once, in order (unlike the shuffled, drop_last train loader)."""
        return DataLoader(self.dataset(split), batch_size=max(batch_size, self.batch_size), shuffle=False,
                          num_workers=0)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train")

    def val_dataloader(self) -> DataLoader:
        return self._loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._loader("test")

    def predict_dataloader(self) -> DataLoader:
        return self._loader("test")


__all__ = [
    "IGNORE_INDEX",
    "SPLITS",
    "StreetSceneDataModule",
    "check_fraction",
    "check_image_size",
    "check_int",
]
