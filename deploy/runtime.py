"""Run exported halves over real bytes: ``EdgeRuntime`` (image → bytes), ``CloudRuntime`` (bytes → outputs).

Ulhaq, B.A.Sc. thesis, SFU 2020, §4.1.2, Fig. 4.3. Only ONNX Runtime, numpy and
:mod:`cilight.codecs` are used — no training code, no PyTorch model — so this module is what
a server (or a phone app's Python prototype) ships.

::

    edge:   image ─► edge.onnx ─► codes_s, minimum_s, maximum_s ─► codec.encode_quantized ─► container_s
            bytes = container_1 ‖ container_2 ‖ …   (one cilight.codecs container per stream, split-point order)
    cloud:  bytes ─► split_streams ─► codec.decode_quantized ─► codes_s, [min, max]_s ─► cloud.onnx ─► outputs

The edge and cloud share nothing but the bytes and the metadata of the two files; tensor names,
side-information layout and metadata come from :mod:`cilight.codecs.wire`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from cilight.codecs import CodecError, Quantized, codec_of, get_codec, parse_operating_point, split_streams
from cilight.codecs.wire import IMAGE, HalfMetadata, open_half, stream_range, stream_side
from cilight.errors import ConfigError

__all__ = ["CloudRuntime", "EdgeRuntime", "HalfMetadata"]


class EdgeRuntime:
    """Images → bytes, with ``edge.onnx`` and a feature codec.

    Args:
        edge_path: the ``edge.onnx`` written by ``export.py``.
        codec: an operating point (``png``, ``jpeg:quality=90``, ``jpeg2000:bpe=0.5``);
            default: the one in the metadata.
        **rate: rate options for every stream (e.g. ``target_bits=20000``), over the point's.
    """

    def __init__(self, edge_path: Path | str, codec: str | None = None, **rate) -> None:
        self.session, self.meta = open_half(edge_path, "edge")
        point = parse_operating_point(codec or self.meta.codec)
        tiling = {"tiling": "power_of_two"} if self.meta.quantizer == "channel" else {}  # BaF §3.2
        self.codec = get_codec(point.codec, quantizer=self.meta.quantizer, bits=self.meta.bits,
                               **{**tiling, **point.codec_options})
        self.default_rate = {**point.rate_options, **rate}

    def features(self, images: np.ndarray) -> dict[str, np.ndarray]:
        """Run ``edge.onnx``: ``{codes_s, minimum_s, maximum_s}`` for every stream ``s``."""
        images = np.asarray(images, dtype=np.float32)
        if images.ndim == 3:
            images = images[None]
        expected = self.meta.input_shape
        if images.ndim != 4 or images.shape[1:] != expected:
            raise ConfigError(f"images must have shape [batch, {', '.join(map(str, expected))}] "
                              f"(the size the model was exported at), got {list(images.shape)}")
        names = self.meta.stream_names
        return dict(zip(names, self.session.run(names, {IMAGE: images})))

    def encode(self, images: np.ndarray, rates: dict[str, dict] | None = None) -> list[bytes]:
        """One byte string per image: the stream containers in split-point order.

        ``rates`` maps a split point to rate options of that stream (e.g.
        ``{"layer3": {"target_bits": 20000}}``); streams not named use the runtime's rate.
        """
        rates = rates or {}
        unknown = set(rates) - set(self.meta.split_points)
        if unknown:
            raise ConfigError(f"rates for unknown streams {sorted(unknown)}; this model sends {list(self.meta.split_points)}")
        tensors = self.features(images)
        frames = []
        for b in range(len(tensors[f"codes_{self.meta.split_points[0]}"])):
            frame = b""
            for s in self.meta.split_points:
                side = stream_side(tensors[f"minimum_{s}"][b], tensors[f"maximum_{s}"][b], self.meta.quantizer)
                quantized = Quantized(torch.from_numpy(tensors[f"codes_{s}"][b]), side)
                frame += self.codec.encode_quantized(quantized, **{**self.default_rate, **rates.get(s, {})})
            frames.append(frame)
        return frames


class CloudRuntime:
    """Bytes → task outputs, with ``cloud.onnx``; the codec is read from each stream's header."""

    def __init__(self, cloud_path: Path | str) -> None:
        self.session, self.meta = open_half(cloud_path, "cloud")

    def decode(self, frame: bytes) -> dict[str, np.ndarray]:
        """The streams in ``frame`` as ``cloud.onnx`` inputs (batch of one)."""
        pieces = split_streams(frame)
        if len(pieces) != len(self.meta.split_points):
            raise CodecError(f"frame holds {len(pieces)} stream(s), this model expects "
                             f"{len(self.meta.split_points)} ({', '.join(self.meta.split_points)})")
        inputs = {}
        for split, piece in zip(self.meta.split_points, pieces):
            header, quantized = codec_of(piece).decode_quantized(piece)
            expected = (self.meta.quantizer, self.meta.bits, self.meta.stream_shapes[split])
            if (header.quantizer, header.bits, header.shape) != expected:
                raise CodecError(f"stream {split}: {header.quantizer} {header.bits}-bit {list(header.shape)}, expected "
                                 f"{expected[0]} {expected[1]}-bit {list(expected[2])}")
            inputs[f"codes_{split}"] = quantized.codes.numpy().astype(np.uint8)[None]
            inputs[f"minimum_{split}"], inputs[f"maximum_{split}"] = stream_range(quantized.side, self.meta.quantizer)
        return inputs

    def infer(self, frames: list[bytes] | bytes) -> dict[str, np.ndarray]:
        """Task outputs (one array per task, named as in the metadata) for each frame, batched."""
        frames = [frames] if isinstance(frames, (bytes, bytearray)) else list(frames)
        decoded = [self.decode(f) for f in frames]
        inputs = {k: np.concatenate([d[k] for d in decoded]) for k in decoded[0]}
        names = list(self.meta.outputs)
        return dict(zip(names, self.session.run(names, inputs)))
