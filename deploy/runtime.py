"""Run exported halves over real bytes: ``EdgeRuntime`` (image → bytes), ``CloudRuntime`` (bytes → outputs).

``mobile-cloud-inference-ci-thesis.md`` §4.1.2, Fig. 4.3. Only ONNX Runtime, numpy and
:mod:`cilight.codecs` are used — no training code, no PyTorch model — so this module is what
a server (or a phone app's Python prototype) ships.

::

    edge:   image ─► edge.onnx ─► codes_s, minimum_s, maximum_s ─► codec.encode_quantized ─► container_s
            bytes = container_1 ‖ container_2 ‖ …   (one cilight.codecs container per stream, split-point order)
    cloud:  bytes ─► split_streams ─► codec.decode_quantized ─► codes_s, [min, max]_s ─► cloud.onnx ─► outputs

The edge and cloud share nothing but the bytes and the metadata of the two files.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from cilight.codecs import CodecError, Quantized, get_codec
from cilight.codecs.container import split_streams
from cilight.codecs.image import codec_of
from cilight.errors import ConfigError


@dataclass(frozen=True)
class HalfMetadata:
    """The ``metadata_props`` written by ``export.py``, parsed and checked."""

    half: str
    split_points: tuple[str, ...]
    stream_shapes: dict[str, tuple[int, int, int]]
    input_shape: tuple[int, int, int]  # (3, H, W)
    bits: int
    codec: dict
    num_classes: int
    model_version: str
    cilight_version: str

    @classmethod
    def read(cls, session, path: Path) -> HalfMetadata:
        props = session.get_modelmeta().custom_metadata_map
        try:
            shapes = json.loads(props["stream_shapes"])
            return cls(
                half=props["half"],
                split_points=tuple(json.loads(props["split_points"])),
                stream_shapes={k: tuple(v) for k, v in shapes.items()},
                input_shape=tuple(json.loads(props["input"])["shape"][1:]),
                bits=int(json.loads(props["quantizer"])["bits"]),
                codec=json.loads(props["codec"]),
                num_classes=int(props["num_classes"]),
                model_version=props["model_version"],
                cilight_version=props["cilight_version"],
            )
        except (KeyError, ValueError, TypeError) as err:
            raise ConfigError(f"{path} has no valid cilight metadata ({err}); export it with export.py") from None


def _session(path: Path | str, half: str):
    import onnxruntime as ort

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{half} model {path} does not exist")
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    meta = HalfMetadata.read(session, path)
    if meta.half != half:
        raise ConfigError(f"{path} is the {meta.half} half, expected the {half} half")
    return session, meta


def _codec(meta: HalfMetadata, name: str | None, options: dict):
    """The codec and per-stream default rates: the metadata's unless ``name`` overrides them.

    A ``bits_per_element`` in the metadata becomes each stream's ``target_bits``.
    """
    name = name or meta.codec.get("name", "png")
    defaults = {k: v for k, v in meta.codec.items() if k != "name"} if name == meta.codec.get("name") else {}
    bits_per_element = defaults.pop("bits_per_element", None)
    rates = {}
    if bits_per_element is not None and "target_bits" not in options:
        rates = {s: {"target_bits": bits_per_element * math.prod(shape)} for s, shape in meta.stream_shapes.items()}
    return get_codec(name, quantizer="minmax", bits=meta.bits, **{**defaults, **options}), rates


class EdgeRuntime:
    """Images → bytes, with ``edge.onnx`` and a feature codec.

    Args:
        edge_path: the ``edge.onnx`` written by ``export.py``.
        codec: codec name (``png``, ``jpeg``, ``jpeg2000``); default: the one in the metadata.
        **options: codec options (``quality=``, ``target_bits=`` …), over the metadata's.
    """

    def __init__(self, edge_path: Path | str, codec: str | None = None, **options) -> None:
        self.session, self.meta = _session(edge_path, "edge")
        self.codec, self.default_rates = _codec(self.meta, codec, options)

    def features(self, images: np.ndarray) -> dict[str, np.ndarray]:
        """Run ``edge.onnx``: ``{codes_s, minimum_s, maximum_s}`` for every stream ``s``."""
        images = np.asarray(images, dtype=np.float32)
        if images.ndim == 3:
            images = images[None]
        expected = self.meta.input_shape
        if images.ndim != 4 or images.shape[1:] != expected:
            raise ConfigError(f"images must have shape [batch, {', '.join(map(str, expected))}] "
                              f"(the size the model was exported at), got {list(images.shape)}")
        names = [o.name for o in self.session.get_outputs()]
        return dict(zip(names, self.session.run(names, {"image": images})))

    def encode(self, images: np.ndarray, rates: dict[str, dict] | None = None) -> list[bytes]:
        """One byte string per image: the stream containers in split-point order.

        ``rates`` maps a split point to rate options of that stream (e.g.
        ``{"layer3": {"target_bits": 20000}}``); streams not named use the defaults (the
        metadata's ``bits_per_element`` for jpeg2000, else the codec's own).
        """
        rates = {**self.default_rates, **(rates or {})}
        unknown = set(rates) - set(self.meta.split_points)
        if unknown:
            raise ConfigError(f"rates for unknown streams {sorted(unknown)}; this model sends {list(self.meta.split_points)}")
        tensors = self.features(images)
        frames = []
        for b in range(len(tensors[f"codes_{self.meta.split_points[0]}"])):
            frame = b""
            for s in self.meta.split_points:
                side = np.array([tensors[f"minimum_{s}"][b], tensors[f"maximum_{s}"][b]], dtype=np.float32)
                quantized = Quantized(torch.from_numpy(tensors[f"codes_{s}"][b]), side)
                frame += self.codec.encode_quantized(quantized, **rates.get(s, {}))
            frames.append(frame)
        return frames


class CloudRuntime:
    """Bytes → task outputs, with ``cloud.onnx``; the codec is read from each stream's header."""

    def __init__(self, cloud_path: Path | str) -> None:
        self.session, self.meta = _session(cloud_path, "cloud")

    def decode(self, frame: bytes) -> dict[str, np.ndarray]:
        """The streams in ``frame`` as ``cloud.onnx`` inputs (batch of one)."""
        pieces = split_streams(frame)
        if len(pieces) != len(self.meta.split_points):
            raise CodecError(f"frame holds {len(pieces)} stream(s), this model expects "
                             f"{len(self.meta.split_points)} ({', '.join(self.meta.split_points)})")
        inputs = {}
        for split, piece in zip(self.meta.split_points, pieces):
            header, quantized = codec_of(piece).decode_quantized(piece)
            if header.shape != self.meta.stream_shapes[split] or header.quantizer != "minmax" or header.bits != self.meta.bits:
                raise CodecError(f"stream {split}: {header.quantizer} {header.bits}-bit {list(header.shape)}, expected "
                                 f"minmax {self.meta.bits}-bit {list(self.meta.stream_shapes[split])}")
            inputs[f"codes_{split}"] = quantized.codes.numpy().astype(np.uint8)[None]
            inputs[f"minimum_{split}"] = quantized.side[:1].astype(np.float32)
            inputs[f"maximum_{split}"] = quantized.side[1:].astype(np.float32)
        return inputs

    def infer(self, frames: list[bytes] | bytes) -> dict[str, np.ndarray]:
        """Task outputs (``segmentation`` logits, ``disparity``, ``reconstruction``) for each frame, batched."""
        frames = [frames] if isinstance(frames, (bytes, bytearray)) else list(frames)
        decoded = [self.decode(f) for f in frames]
        inputs = {k: np.concatenate([d[k] for d in decoded]) for k in decoded[0]}
        names = [o.name for o in self.session.get_outputs()]
        return dict(zip(names, self.session.run(names, inputs)))

