"""Edge encoder: a torchvision ResNet cut at one or more split points
(Alvar & Bajić, ICIP 2019, §2.1 and §3).

The paper's Encoder1 is ResNet-34 up to ``layer4`` (stride 32, 512 channels) and its Encoder2
stops after ``layer3`` (stride 16, 256 channels). With several split points every named
stage output is a transmitted *stream* (e.g. ``layer2`` + ``layer3`` for the bit-allocation
experiments); the edge computes up to the deepest one.

::

    image ─► stem (conv1·bn·relu·maxpool) ─► layer1 ─► layer2 ─► layer3 ─► layer4
                                               │         │         │         │
                                  streams:  (/4, 64) (/8, 128) (/16, 256) (/32, 512)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torchvision
from torch import Tensor, nn

from cilight.errors import ConfigError

BACKBONES = ("resnet18", "resnet34")
SPLIT_POINTS = ("layer1", "layer2", "layer3", "layer4")
# channels and stride of each stage output of ResNet-18/34 (basic blocks)
_STAGE_CHANNELS = {"layer1": 64, "layer2": 128, "layer3": 256, "layer4": 512}
_STAGE_STRIDE = {"layer1": 4, "layer2": 8, "layer3": 16, "layer4": 32}
# ImageNet statistics: the encoder normalizes, so both halves take images in [0, 1]
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class StreamLayout:
    """Shape of one transmitted stream for a given input size."""

    split_point: str
    channels: int
    stride: int

    def __post_init__(self) -> None:
        if self.split_point not in SPLIT_POINTS:
            raise ConfigError(f"unknown split point {self.split_point!r}; expected one of {SPLIT_POINTS}")
        if self.channels <= 0 or self.stride <= 0:
            raise ConfigError(f"stream {self.split_point!r} needs positive channels and stride")

    def shape(self, height: int, width: int) -> tuple[int, int, int]:
        """``(C, H, W)`` of the stream for an input image of ``height × width``."""
        return (self.channels, height // self.stride, width // self.stride)


def validate_split_points(split_points: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """Check names and uniqueness; return the split points ordered from shallow to deep."""
    if isinstance(split_points, str):
        split_points = [split_points]
    if not split_points:
        raise ConfigError(f"split_points is empty; expected one or more of {SPLIT_POINTS}")
    unknown = [s for s in split_points if s not in SPLIT_POINTS]
    if unknown:
        raise ConfigError(f"unknown split point(s) {unknown}; expected names from {SPLIT_POINTS}")
    if len(set(split_points)) != len(split_points):
        raise ConfigError(f"split_points {list(split_points)} name a split point twice")
    return tuple(sorted(split_points, key=SPLIT_POINTS.index))


def stream_layouts(split_points: list[str] | tuple[str, ...]) -> tuple[StreamLayout, ...]:
    """Layouts of the streams for the given split points, shallow to deep."""
    return tuple(
        StreamLayout(s, _STAGE_CHANNELS[s], _STAGE_STRIDE[s]) for s in validate_split_points(split_points)
    )


def _load_weights(net: nn.Module, arch: str, weights: str) -> None:
    """Load ``weights``: a local state-dict file, or a torchvision weight enum name."""
    path = Path(weights).expanduser()
    if path.suffix in {".pt", ".pth", ".ckpt", ".bin"} or path.exists():
        if not path.is_file():
            raise ConfigError(f"backbone_weights file {str(path)!r} does not exist")
        state = torch.load(path, map_location="cpu", weights_only=True)
        if isinstance(state, dict) and "state_dict" in state:
            state = state["state_dict"]
        state = {k.removeprefix("module."): v for k, v in state.items() if not k.startswith("fc.")}
        try:
            missing, unexpected = net.load_state_dict(state, strict=False)
        except RuntimeError as err:  # shape mismatches
            raise ConfigError(f"backbone_weights {str(path)!r} does not fit {arch}: {err}") from err
        missing = [k for k in missing if not k.startswith("fc.")]
        if missing or unexpected:
            raise ConfigError(
                f"backbone_weights {str(path)!r} does not fit {arch}: "
                f"missing {missing[:4]}{'…' if len(missing) > 4 else ''}, "
                f"unexpected {unexpected[:4]}{'…' if len(unexpected) > 4 else ''}"
            )
        return
    enum_name = weights if "." in weights else f"{arch.replace('resnet', 'ResNet')}_Weights.{weights}"
    try:
        weight_enum = torchvision.models.get_weight(enum_name)
    except (ValueError, KeyError, AttributeError) as err:
        raise ConfigError(
            f"backbone_weights {weights!r} is neither a file nor a torchvision weight name "
            f"(e.g. 'IMAGENET1K_V1' or '{arch.replace('resnet', 'ResNet')}_Weights.IMAGENET1K_V1')"
        ) from err
    try:
        state = weight_enum.get_state_dict(progress=False, check_hash=True)
    except Exception as err:  # urllib raises many types; all mean "could not download"
        raise ConfigError(
            f"could not download torchvision weights {enum_name} ({type(err).__name__}: {err}); "
            "offline, pass a local state-dict file as backbone_weights instead"
        ) from err
    net.load_state_dict(state)


class ResNetEncoder(nn.Module):
    """The edge half's encoder: a ResNet cut at ``split_points``; returns one tensor per stream.

    Args:
        arch: ``"resnet18"`` or ``"resnet34"``.
        split_points: stage names to transmit, e.g. ``["layer3"]`` or ``["layer2", "layer3"]``.
        weights: ``None`` for random initialization, a local state-dict path, or a torchvision
            weight name (downloads: needs internet).
    """

    def __init__(
        self, arch: str = "resnet34", split_points: list[str] | tuple[str, ...] = ("layer3",), weights: str | None = None
    ) -> None:
        super().__init__()
        if arch not in BACKBONES:
            raise ConfigError(f"unknown backbone {arch!r}; expected one of {BACKBONES}")
        self.layouts = stream_layouts(split_points)
        self.split_points = tuple(layout.split_point for layout in self.layouts)
        net = getattr(torchvision.models, arch)(weights=None)
        if weights:
            _load_weights(net, arch, weights)
        deepest = SPLIT_POINTS.index(self.split_points[-1])
        self.stem = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool)
        self.stages = nn.ModuleDict({name: getattr(net, name) for name in SPLIT_POINTS[: deepest + 1]})
        self.register_buffer("mean", torch.tensor(_IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(_IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, images: Tensor) -> list[Tensor]:
        x = self.stem((images - self.mean) / self.std)
        streams = []
        for name, stage in self.stages.items():
            x = stage(x)
            if name in self.split_points:
                streams.append(x)
        return streams
