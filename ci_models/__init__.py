"""Split multi-task models for collaborative intelligence and their layers."""

from cilight.ci_models.backbone import BACKBONES, SPLIT_POINTS, ResNetEncoder, StreamLayout, stream_layouts
from cilight.ci_models.heads import TASKS, CloudDecoder
from cilight.ci_models.losses import (
    UncertaintyWeighting,
    compressibility_loss,
    disparity_loss,
    reconstruction_loss,
    segmentation_loss,
)
from cilight.ci_models.multitask import MultiTaskCI
from cilight.ci_models.quantization import QuantizationLayer, QuantizedStream

__all__ = [
    "BACKBONES",
    "SPLIT_POINTS",
    "TASKS",
    "CloudDecoder",
    "MultiTaskCI",
    "QuantizationLayer",
    "QuantizedStream",
    "ResNetEncoder",
    "StreamLayout",
    "UncertaintyWeighting",
    "compressibility_loss",
    "disparity_loss",
    "reconstruction_loss",
    "segmentation_loss",
    "stream_layouts",
]
