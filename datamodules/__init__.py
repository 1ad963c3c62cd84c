"""LightningDataModules of cilight: the embedded synthetic street scenes and Cityscapes.

Both serve the same batch contract (see :mod:`cilight.datamodules.common`): ``image``
float [3, H, W] in [0, 1], ``segmentation`` int64 [H, W] (255 = ignore), ``disparity``
float [H, W] in pixels (0 = invalid) and ``disparity_mask`` bool [H, W].
"""

from cilight.datamodules.cityscapes import Cityscapes
from cilight.datamodules.common import IGNORE_INDEX, StreetSceneDataModule
from cilight.datamodules.synthetic import SyntheticStreets, generate_sample

__all__ = [
    "IGNORE_INDEX",
    "Cityscapes",
    "StreetSceneDataModule",
    "SyntheticStreets",
    "generate_sample",
]
