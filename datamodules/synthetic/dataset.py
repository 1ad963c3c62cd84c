"""The SyntheticStreets dataset and LightningDataModule: rendered splits held in memory."""

from __future__ import annotations

import time

import numpy as np
import torch
from lightning.pytorch.utilities import rank_zero_info
from torch.utils.data import Dataset

from cilight.datamodules.common import StreetSceneDataModule, check_int
from cilight.datamodules.synthetic.render import generate_sample
from cilight.datamodules.synthetic.scene import CLASS_COLORS, CLASS_NAMES


class SyntheticStreetsDataset(Dataset):
    """One rendered split held in memory: uint8 images and labels, float16 disparity, bool mask."""

    def __init__(self, seed: int, split: str, num_samples: int, height: int, width: int) -> None:
        self.split = split
        self.images = np.empty((num_samples, 3, height, width), np.uint8)
        self.labels = np.empty((num_samples, height, width), np.uint8)
        self.disparity = np.empty((num_samples, height, width), np.float16)
        self.valid = np.empty((num_samples, height, width), bool)
        for i in range(num_samples):
            sample = generate_sample(seed, split, i, height, width)
            self.images[i] = sample["image"]
            self.labels[i] = sample["segmentation"]
            self.disparity[i] = sample["disparity"]
            self.valid[i] = sample["disparity_mask"]

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {
            "image": torch.from_numpy(self.images[index]).float().div_(255.0),
            "segmentation": torch.from_numpy(self.labels[index]).long(),
            "disparity": torch.from_numpy(self.disparity[index]).float(),
            "disparity_mask": torch.from_numpy(self.valid[index].copy()),
        }


class SyntheticStreets(StreetSceneDataModule):
    """Procedurally generated street scenes with segmentation and stereo disparity; no files.

    The default dataset of cilight: ten Cityscapes classes (road, sidewalk, building, pole,
    traffic sign, vegetation, terrain, sky, person, car), rendered in memory on ``setup``.
    """

    class_colors = CLASS_COLORS

    def __init__(
        self,
        height: int = 64,
        width: int = 128,
        num_train: int = 1024,
        num_val: int = 128,
        num_test: int = 128,
        seed: int = 0,
        batch_size: int = 16,
        num_workers: int = 0,
    ) -> None:
        """Configure the synthetic dataset; nothing is rendered until ``setup``.

        Args:
            height: image height in pixels, a positive multiple of 32. The default (64x128)
                trains to far above the trivial baselines in a few CPU minutes; the scenes
                are geometry, so any larger size renders the same streets, sharper.
            width: image width in pixels, a positive multiple of 32.
            num_train: number of training samples.
            num_val: number of validation samples.
            num_test: number of test samples.
            seed: base seed (>= 0); sample i of a split depends only on (seed, split, i) and the size.
            batch_size: samples per batch in every loader.
            num_workers: loader worker processes (0 loads in the main process).
        """
        super().__init__(height=height, width=width, batch_size=batch_size, num_workers=num_workers, seed=seed)
        self.split_sizes = {
            "train": check_int("num_train", num_train, minimum=1),
            "val": check_int("num_val", num_val, minimum=1),
            "test": check_int("num_test", num_test, minimum=1),
        }
        self.num_classes = len(CLASS_NAMES)
        self.class_names = CLASS_NAMES
        self.save_hyperparameters()

    def _build_split(self, split: str) -> SyntheticStreetsDataset:
        n = self.split_sizes[split]
        start = time.perf_counter()
        dataset = SyntheticStreetsDataset(self.seed, split, n, self.height, self.width)
        rank_zero_info(
            f"SyntheticStreets: rendered {n} {split} samples of {self.height}x{self.width} "
            f"in {time.perf_counter() - start:.1f} s"
        )
        return dataset


__all__ = ["SyntheticStreets", "SyntheticStreetsDataset"]
