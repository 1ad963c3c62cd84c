"""The edge and cloud halves of a trained :class:`MultiTaskCI` as plain tensor-in/tensor-out modules.

Ulhaq, B.A.Sc. thesis, SFU 2020, §4.1.2, Fig. 4.3: the *encoder* (the client model with its
8-bit quantizer attached) runs on the device, the *decoder* (dequantizer + server model) in the
cloud; the codec in between (postencoder/predecoder) is not part of either.

::

    EdgeHalf:   image [B,3,H,W] ─► ResNet to split points ─► Q-layer.encode ─► for each stream s:
                                                               codes_s [B,C,h,w] uint8, minimum_s [B], maximum_s [B]
    CloudHalf:  codes_s, minimum_s, maximum_s (every s) ─► Q-layer.decode ─► fuse ─► one output per task

The tensor names and their order are the wire format's (:mod:`cilight.codecs.wire`), so the two
files and the runtimes agree on them without any other convention.
"""

from __future__ import annotations

from torch import Tensor, nn

from cilight.ci_models.quantization import QuantizedStream
from cilight.codecs.wire import STREAM_FIELDS


class EdgeHalf(nn.Module):
    """Image → quantized codes and range of every stream (outputs in ``stream_tensor_names`` order)."""

    def __init__(self, model) -> None:
        super().__init__()
        self.model = model

    def forward(self, image: Tensor) -> tuple[Tensor, ...]:
        return tuple(t for stream in self.model.edge(image) for t in stream)


class CloudHalf(nn.Module):
    """Codes and ranges of every stream → the task outputs, in the model's task order."""

    def __init__(self, model) -> None:
        super().__init__()
        self.model = model

    def forward(self, *tensors: Tensor) -> tuple[Tensor, ...]:
        n = len(STREAM_FIELDS)
        streams = [QuantizedStream(*tensors[i : i + n]) for i in range(0, len(tensors), n)]
        outputs = self.model.cloud(streams)
        return tuple(outputs[task.name] for task in self.model.tasks)


__all__ = ["CloudHalf", "EdgeHalf"]
