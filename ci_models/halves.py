"""The edge and cloud halves of a trained :class:`MultiTaskCI` as plain tensor-in/tensor-out modules.

Ulhaq, B.A.Sc. thesis, SFU 2020, §4.1.2, Fig. 4.3: the *encoder* (the client model with its
8-bit quantizer attached) runs on the device, the *decoder* (dequantizer + server model) in the
cloud; the codec in between (postencoder/predecoder) is not part of either.

::

    EdgeHalf:   image [B,3,H,W] ─► ResNet to split points ─► Q-layer.encode ─► for each stream s:
                                                               codes_s [B,C,h,w] uint8, minimum_s [B], maximum_s [B]
    CloudHalf:  codes_s, minimum_s, maximum_s (every s) ─► Q-layer.decode ─► fuse ─► one output per task

With a learned bottleneck (Ballé et al., ICLR 2018) the halves carry symbols instead of codes,
and a hyperprior adds the hyper-decoder that both sides need to find each ``y`` symbol's table:

::

    LearnedEdgeHalf:  image ─► ResNet ─► g_a (, h_a) ─► symbols_l_s int32, every latent l of every stream s
    HyperHalf:        symbols_z_s ─► h_s ─► σ ─► rows_y_s int32 (the scale-table row of every y symbol)
    LearnedCloudHalf: symbols_y_s ─► g_s ─► fuse ─► one output per task

The tensor names and their order are the wire format's (:mod:`cilight.codecs.wire`), so the
files and the runtimes agree on them without any other convention.
"""

from __future__ import annotations

import torch
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


class _LearnedHalf(nn.Module):
    """Base of the learned halves: the model, its fixed tables, and the latent layout of the export size."""

    def __init__(self, model, height: int, width: int) -> None:
        super().__init__()
        if model.bottlenecks is None or model.entropy_tables is None:
            raise ValueError("learned halves need a model with a learned bottleneck and fixed entropy tables")
        self.model = model
        self.latents = model.latent_shapes(height, width)


class LearnedEdgeHalf(_LearnedHalf):
    """Image → the symbols of every latent of every stream (``latent_tensor_names`` order)."""

    def forward(self, image: Tensor) -> tuple[Tensor, ...]:
        out = []
        for b, tables, f in zip(self.model.bottlenecks, self.model.entropy_tables, self.model.encoder(image)):
            symbols = b.symbols(f, tables)
            out += [symbols[name] for name in b.coding_order]
        return tuple(out)


class HyperHalf(_LearnedHalf):
    """The ``z`` symbols of every stream → the table rows of its ``y`` symbols (a hyperprior's)."""

    def forward(self, *z_symbols: Tensor) -> tuple[Tensor, ...]:
        return tuple(b.y_rows(z, tables, torch.Size((z.shape[0], *shapes["y"])))
                     for b, tables, z, shapes in zip(self.model.bottlenecks, self.model.entropy_tables, z_symbols,
                                                     self.latents.values()))


class LearnedCloudHalf(_LearnedHalf):
    """The ``y`` symbols of every stream → the task outputs, in the model's task order."""

    def forward(self, *y_symbols: Tensor) -> tuple[Tensor, ...]:
        features = [b.reconstruct({"y": y}, tables)
                    for b, tables, y in zip(self.model.bottlenecks, self.model.entropy_tables, y_symbols)]
        outputs = self.model.decoder(features)
        return tuple(outputs[task.name] for task in self.model.tasks)


__all__ = ["CloudHalf", "EdgeHalf", "HyperHalf", "LearnedCloudHalf", "LearnedEdgeHalf"]
