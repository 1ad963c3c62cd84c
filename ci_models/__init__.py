"""Split multi-task models for collaborative intelligence and their layers (``cilight.ci_models``).

* :mod:`~cilight.ci_models.tasks` — tasks as data: head, loss, metrics, baseline, colouring, output name;
* :mod:`~cilight.ci_models.backbone` — the edge encoder cut at split points;
* :mod:`~cilight.ci_models.quantization` — the Q-layer;
* :mod:`~cilight.ci_models.transmission` — one stream between split point and cloud: the interface and its
  implementations (Q-layer + rate term, learned bottleneck; BaF in :mod:`~cilight.ci_models.baf`);
* :mod:`~cilight.ci_models.losses` — L_r (eq 1–5) and eq 6;
* :mod:`~cilight.ci_models.rate` — rate terms by name and the JPEG2000 proxy as a training layer;
* :mod:`~cilight.ci_models.heads` — the cloud half's branches;
* :mod:`~cilight.ci_models.multitask` — :class:`MultiTaskCI`;
* :mod:`~cilight.ci_models.baf` — :class:`BaFPredictor` (Back-and-Forth prediction) on a frozen task model;
* :mod:`~cilight.ci_models.halves` — the ONNX halves (exported by :mod:`cilight.onnx_export`);
* :mod:`~cilight.ci_models.proxy`, :mod:`~cilight.ci_models.dwt` — the differentiable JPEG2000 proxy (codec ``proxy``);
* :mod:`~cilight.ci_models.checkpoints` — every checkpoint load (and the upgrade of older layouts).
"""

from cilight.ci_models.backbone import BACKBONES, SPLIT_POINTS, ResNetEncoder, StreamLayout, stream_layouts
from cilight.ci_models.baf import BaFPredictor, consolidate, resnet_split, select_channels, task_model_split
from cilight.ci_models.heads import CloudDecoder
from cilight.ci_models.losses import (
    UncertaintyWeighting,
    compressibility_loss,
    disparity_loss,
    reconstruction_loss,
    segmentation_loss,
)
from cilight.ci_models.multitask import MultiTaskCI
from cilight.ci_models.quantization import QuantizationLayer, QuantizedStream
from cilight.ci_models.rate import CODEC_NOISES, RATE_LOSSES, ProxyOperatingRange, StreamProxy, normalized_stream
from cilight.ci_models.tasks import (
    DEFAULT_TASKS,
    TASKS,
    Baseline,
    Task,
    TaskContext,
    TaskMetric,
    TaskMetrics,
    get_task,
    register_task,
    resolve_tasks,
    trivial_baselines,
)
from cilight.ci_models.transmission import (
    TRANSMISSIONS,
    BottleneckTransmission,
    QLayerTransmission,
    QuantizedTransmission,
    Transmission,
    Transmitted,
    build_transmission,
    register_transmission,
)

__all__ = [
    "BACKBONES",
    "CODEC_NOISES",
    "DEFAULT_TASKS",
    "SPLIT_POINTS",
    "TASKS",
    "TRANSMISSIONS",
    "BottleneckTransmission",
    "QLayerTransmission",
    "QuantizedTransmission",
    "Transmission",
    "Transmitted",
    "build_transmission",
    "register_transmission",
    "BaFPredictor",
    "Baseline",
    "CloudDecoder",
    "MultiTaskCI",
    "QuantizationLayer",
    "ProxyOperatingRange",
    "QuantizedStream",
    "RATE_LOSSES",
    "ResNetEncoder",
    "StreamLayout",
    "StreamProxy",
    "Task",
    "TaskContext",
    "TaskMetric",
    "TaskMetrics",
    "UncertaintyWeighting",
    "compressibility_loss",
    "consolidate",
    "disparity_loss",
    "get_task",
    "normalized_stream",
    "reconstruction_loss",
    "register_task",
    "resnet_split",
    "resolve_tasks",
    "segmentation_loss",
    "select_channels",
    "stream_layouts",
    "task_model_split",
    "trivial_baselines",
]
