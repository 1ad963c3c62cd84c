"""Cityscapes: real street scenes with fine semantic labels and stereo disparity, read from disk.

The dataset of Alvar & Bajić, ICIP 2019, §3: the 2,975 finely
annotated training images with their segmentation and disparity maps, tested on the 500
images of the official ``val`` split, resized to 512×256. The official ``test`` split has no
public labels, so it is not used; instead the official ``val`` split is our *test* split, and
a seeded ``val_fraction`` of the official training images is held out for validation.

Expected layout under ``root`` (the one the Cityscapes downloads unpack to)::

    leftImg8bit/{train,val}/CITY/CITY_SEQ_FRAME_leftImg8bit.png   8-bit RGB
    gtFine/{train,val}/CITY/CITY_SEQ_FRAME_gtFine_labelIds.png    8-bit label ids
    disparity/{train,val}/CITY/CITY_SEQ_FRAME_disparity.png       16-bit, d = (p - 1) / 256, p = 0 invalid

Label ids map to the 19 train ids of cityscapesScripts' ``labels.py``; every other id
(void classes, parking, rail track, guard rail, bridge, tunnel, pole group, caravan,
trailer) becomes 255 = ignore. Items are decoded from disk one at a time: at full
resolution the dataset is far too big to hold in memory.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from lightning.pytorch.utilities import rank_zero_info
from PIL import Image
from torch.utils.data import Dataset

from cilight.datamodules.common import IGNORE_INDEX, StreetSceneDataModule, check_fraction
from cilight.errors import ConfigError, DatasetError

IMAGE_SUFFIX = "_leftImg8bit.png"
LABEL_SUFFIX = "_gtFine_labelIds.png"
DISPARITY_SUFFIX = "_disparity.png"

# (name, label id, colour) of the 19 evaluated classes, in train-id order (cityscapesScripts labels.py).
_TRAIN_CLASSES = (
    ("road", 7, (128, 64, 128)),
    ("sidewalk", 8, (244, 35, 232)),
    ("building", 11, (70, 70, 70)),
    ("wall", 12, (102, 102, 156)),
    ("fence", 13, (190, 153, 153)),
    ("pole", 17, (153, 153, 153)),
    ("traffic light", 19, (250, 170, 30)),
    ("traffic sign", 20, (220, 220, 0)),
    ("vegetation", 21, (107, 142, 35)),
    ("terrain", 22, (152, 251, 152)),
    ("sky", 23, (70, 130, 180)),
    ("person", 24, (220, 20, 60)),
    ("rider", 25, (255, 0, 0)),
    ("car", 26, (0, 0, 142)),
    ("truck", 27, (0, 0, 70)),
    ("bus", 28, (0, 60, 100)),
    ("train", 31, (0, 80, 100)),
    ("motorcycle", 32, (0, 0, 230)),
    ("bicycle", 33, (119, 11, 32)),
)
CLASS_NAMES = tuple(name for name, _, _ in _TRAIN_CLASSES)
CLASS_COLORS = tuple(color for _, _, color in _TRAIN_CLASSES)
LABEL_ID_TO_TRAIN_ID = np.full(256, IGNORE_INDEX, np.uint8)
"""Lookup table: Cityscapes label id (0..255) → train id (0..18) or 255."""
LABEL_ID_TO_TRAIN_ID[[label_id for _, label_id, _ in _TRAIN_CLASSES]] = np.arange(len(_TRAIN_CLASSES))


def _layout_error(root: Path, problem: str) -> DatasetError:
    return DatasetError(
        f"Cityscapes root {str(root)!r}: {problem}; expected the standard layout "
        f"leftImg8bit/SPLIT/CITY/CITY_SEQ_FRAME{IMAGE_SUFFIX}, gtFine/SPLIT/CITY/CITY_SEQ_FRAME{LABEL_SUFFIX} "
        f"and disparity/SPLIT/CITY/CITY_SEQ_FRAME{DISPARITY_SUFFIX} under it, with SPLIT = train and val"
    )


def scan_split(root: Path, split: str) -> list[tuple[Path, Path, Path]]:
    """Sorted ``(image, labelIds, disparity)`` paths of an official split; raises if any file is missing."""
    image_dir = root / "leftImg8bit" / split
    if not image_dir.is_dir():
        raise _layout_error(root, f"folder {str(image_dir)!r} is missing")
    images = sorted(image_dir.glob(f"*/*{IMAGE_SUFFIX}"))
    if not images:
        raise _layout_error(root, f"no *{IMAGE_SUFFIX} images in the city folders of {str(image_dir)!r}")
    # One directory listing per kind instead of two stat calls per image: cheap on network disks.
    present = set((root / "gtFine" / split).glob(f"*/*{LABEL_SUFFIX}"))
    present |= set((root / "disparity" / split).glob(f"*/*{DISPARITY_SUFFIX}"))
    triples, missing = [], []
    for image in images:
        stem, city = image.name[: -len(IMAGE_SUFFIX)], image.parent.name
        label = root / "gtFine" / split / city / f"{stem}{LABEL_SUFFIX}"
        disparity = root / "disparity" / split / city / f"{stem}{DISPARITY_SUFFIX}"
        missing += [path for path in (label, disparity) if path not in present]
        triples.append((image, label, disparity))
    if missing:
        raise _layout_error(root, f"{len(missing)} label/disparity file(s) missing, first {str(missing[0])!r}")
    return triples


def _read(path: Path, size: tuple[int, int], resample: Image.Resampling, mode: str | None = None):
    """Decode ``path`` and resize it to ``size`` = (width, height); returns (array, original width)."""
    with Image.open(path) as img:
        if mode is not None:
            img = img.convert(mode)
        return np.asarray(img.resize(size, resample)), img.width


class CityscapesDataset(Dataset):
    """Items of a list of ``(image, labelIds, disparity)`` paths, decoded and resized on access."""

    def __init__(self, files: list[tuple[Path, Path, Path]], height: int, width: int) -> None:
        self.files = list(files)
        self.height, self.width = height, width

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        image_path, label_path, disparity_path = self.files[index]
        size = (self.width, self.height)
        image, _ = _read(image_path, size, Image.Resampling.BILINEAR, "RGB")
        # Nearest for labels and disparity: interpolating ids, or across depth edges, invents values.
        label_ids, _ = _read(label_path, size, Image.Resampling.NEAREST)
        raw, width_in = _read(disparity_path, size, Image.Resampling.NEAREST)
        raw = raw.astype(np.float32)
        valid = raw > 0
        # Disparity is a horizontal offset in pixels, so it shrinks with the image width.
        disparity = np.where(valid, (raw - 1.0) / 256.0 * (self.width / width_in), 0.0).astype(np.float32)
        segmentation = LABEL_ID_TO_TRAIN_ID[label_ids.astype(np.int64).clip(0, 255)]
        return {
            "image": torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))).float().div_(255.0),
            "segmentation": torch.from_numpy(segmentation.astype(np.int64)),
            "disparity": torch.from_numpy(disparity),
            "disparity_mask": torch.from_numpy(valid),
        }


class Cityscapes(StreetSceneDataModule):
    """Cityscapes fine annotations with disparity: 19 classes, official ``val`` as the test split."""

    class_colors = CLASS_COLORS

    def __init__(
        self,
        root: str,
        height: int = 256,
        width: int = 512,
        val_fraction: float = 0.1,
        batch_size: int = 8,
        num_workers: int = 4,
        seed: int = 0,
    ) -> None:
        """Find and pair every file under ``root`` now, so that a bad path fails before training starts.

        Args:
            root: dataset folder holding ``leftImg8bit/``, ``gtFine/`` and ``disparity/``.
            height: output image height in pixels, a positive multiple of 32.
            width: output image width in pixels, a positive multiple of 32.
            val_fraction: fraction (0..1, exclusive) of the official training images held out
                for validation; the official ``val`` split is the test split.
            batch_size: samples per batch in every loader.
            num_workers: loader worker processes (0 loads in the main process).
            seed: seed (>= 0) of the held-out choice and of the training shuffle.
        """
        super().__init__(height=height, width=width, batch_size=batch_size, num_workers=num_workers, seed=seed)
        self.val_fraction = check_fraction("val_fraction", val_fraction)
        if not isinstance(root, (str, os.PathLike)) or not str(root):
            raise ConfigError(f"root={root!r}: expected the path of the Cityscapes folder")
        self.root = Path(root).expanduser()
        if not self.root.is_dir():
            raise _layout_error(self.root, "no such folder")
        official_train = scan_split(self.root, "train")
        official_val = scan_split(self.root, "val")
        n = len(official_train)
        if n < 2:
            raise _layout_error(self.root, f"{n} training image(s); 2 or more are needed to hold one out")
        # Held-out set from the sorted file list and the seed alone: the same on every machine and rank.
        num_val = min(max(round(self.val_fraction * n), 1), n - 1)
        held_out = set(np.random.default_rng(self.seed).permutation(n)[:num_val].tolist())
        self.files = {
            "train": [f for i, f in enumerate(official_train) if i not in held_out],
            "val": [f for i, f in enumerate(official_train) if i in held_out],
            "test": official_val,
        }
        self.num_classes = len(CLASS_NAMES)
        self.class_names = CLASS_NAMES
        self.save_hyperparameters()
        rank_zero_info(
            "Cityscapes: " + ", ".join(f"{len(v)} {k}" for k, v in self.files.items()) + f" images under {self.root}"
        )

    def _build_split(self, split: str) -> CityscapesDataset:
        return CityscapesDataset(self.files[split], self.height, self.width)


__all__ = [
    "CLASS_COLORS",
    "CLASS_NAMES",
    "LABEL_ID_TO_TRAIN_ID",
    "Cityscapes",
    "CityscapesDataset",
    "scan_split",
]
