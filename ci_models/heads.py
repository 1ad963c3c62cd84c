"""Cloud half: stream fusion and one branch per task
(Alvar & Bajić, ICIP 2019, §2.1, Fig. 1, Models 1–3).

Every branch maps the received features back to input resolution with convolutions and
transposed convolutions (each ×2), then applies its task's output transform
(:class:`~cilight.ci_models.tasks.Task`). With several streams, deeper streams are upsampled to
the shallowest one's grid and concatenated before the branches, so all tasks share one fused
tensor, just as they share the single bottleneck in the paper.

::

    stream_1 (/s₁) ───────────────┐
    stream_2 (/s₂) ─ upsample ──► concat ─┬─► Model 1 ─► segmentation logits [B, K, H, W]
      …                                   ├─► Model 2 ─► disparity          [B, H, W]
                                          └─► Model 3 ─► reconstruction     [B, 3, H, W]
                                              (one branch per task of the model)
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cilight.ci_models.backbone import StreamLayout
from cilight.ci_models.tasks import Task, TaskContext
from cilight.errors import ConfigError


def _conv_block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


def _up_block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.ConvTranspose2d(cin, cout, 4, stride=2, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)
    )


class TaskBranch(nn.Module):
    """Conv, then ``log2(stride)`` transposed convolutions, then a 3×3 conv to ``out_channels``."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, width: int, min_width: int = 16) -> None:
        super().__init__()
        ups = int(math.log2(stride))
        if 2**ups != stride:
            raise ConfigError(f"stream stride must be a power of two, got {stride}")
        layers: list[nn.Module] = [_conv_block(in_channels, width)]
        c = width
        for _ in range(ups):
            nxt = max(c // 2, min_width)
            layers.append(_up_block(c, nxt))
            c = nxt
        layers.append(nn.Conv2d(c, out_channels, 3, padding=1))
        self.body = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.body(x)


class CloudDecoder(nn.Module):
    """Fuses the received streams and runs one branch per task.

    Args:
        layouts: the streams, shallow to deep (from :func:`~cilight.ci_models.backbone.stream_layouts`).
        tasks: the tasks, in output order.
        context: number of classes and the other data facts the heads need.
        width: channels after the first conv of each branch; halved at every upsampling.
    """

    def __init__(self, layouts: tuple[StreamLayout, ...], tasks: tuple[Task, ...], context: TaskContext,
                 width: int = 64) -> None:
        super().__init__()
        if context.num_classes < 2:
            raise ConfigError(f"num_classes must be at least 2, got {context.num_classes}")
        if width < 8:
            raise ConfigError(f"decoder_width={width}: expected at least 8")
        self.stride = layouts[0].stride
        self.tasks = tuple(tasks)
        fused = sum(layout.channels for layout in layouts)
        self.branches = nn.ModuleDict(
            {task.name: TaskBranch(fused, task.out_channels(context), self.stride, width) for task in self.tasks}
        )

    def fuse(self, streams: list[Tensor]) -> Tensor:
        size = streams[0].shape[-2:]
        resized = [streams[0]] + [F.interpolate(s, size=size, mode="bilinear", align_corners=False) for s in streams[1:]]
        return torch.cat(resized, dim=1) if len(resized) > 1 else resized[0]

    def forward(self, streams: list[Tensor]) -> dict[str, Tensor]:
        x = self.fuse(streams)
        return {task.name: task.output(self.branches[task.name](x)) for task in self.tasks}
