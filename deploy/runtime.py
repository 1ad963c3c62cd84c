"""Run exported halves over real bytes: ``EdgeRuntime`` (image → bytes), ``CloudRuntime`` (bytes → outputs).

Ulhaq, B.A.Sc. thesis, SFU 2020, §4.1.2, Fig. 4.3. Only ONNX Runtime, numpy and
:mod:`cilight.codecs` are used — no training code, no PyTorch model — so this module is what
a server (or a phone app's Python prototype) ships.

::

    edge:   image ─► edge.onnx ─► codes_s, minimum_s, maximum_s ─► codec.encode_quantized ─► container_s
            bytes = container_1 ‖ container_2 ‖ …   (one cilight.codecs container per stream, split-point order)
    cloud:  bytes ─► split_streams ─► codec.decode_quantized ─► codes_s, [min, max]_s ─► cloud.onnx ─► outputs

    over a lossy link (thesis §3.2, §4.3; :mod:`cilight.deploy.packets`):
    edge:   codes_s ─► channel groups, each its own container ─► packets of ≤ mss bytes
    cloud:  packets that arrived ─► reassemble ─► conceal what is missing (zero, channel_mean,
            dataset_mean, hybrid) in the feature domain ─► re-quantize on the received range ─► cloud.onnx

    with a learned bottleneck (codec ``learned``; Ballé et al., ICLR 2018):
    edge:   image ─► edge.onnx ─► symbols of every latent ─► range coder (rows: channel, or hyper.onnx
            on the z symbols) with entropy_tables.npz ─► one learned container per stream
    cloud:  bytes ─► split_streams ─► range decoder, z first, then hyper.onnx for the y rows, then y
            ─► symbols_y_s ─► cloud.onnx ─► outputs

The edge and cloud share nothing but the bytes and the metadata of the files (and, for
concealment, ``dataset_mean.npz`` beside them, or a learned bottleneck's ``entropy_tables.npz``
and ``hyper.onnx``); tensor names, side-information layout and metadata come from
:mod:`cilight.codecs.wire`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from cilight.codecs import (
    CONCEALMENT_METHODS,
    CodecError,
    LearnedCodec,
    Quantized,
    codec_of,
    conceal,
    get_codec,
    get_quantizer,
    parse_operating_point,
    split_streams,
)
from cilight.codecs.wire import (
    DATASET_MEAN,
    ENTROPY_TABLES,
    IMAGE,
    SYNTHESIS_LATENT,
    HalfMetadata,
    latent_tensor_names,
    open_half,
    read_dataset_mean,
    read_entropy_tables,
    stream_range,
    stream_side,
)
from cilight.deploy.packets import (
    DEFAULT_MSS,
    ReceivedStream,
    Reception,
    channel_groups,
    is_packet,
    packetize,
    reassemble,
    stream_side_of,
)
from cilight.errors import ConfigError

__all__ = ["CloudRuntime", "EdgeRuntime", "HalfMetadata"]


class ExportedLatents:
    """The :class:`~cilight.codecs.LatentModel` of one exported stream, for the learned codec's
    ``encode_symbols``/``decode_symbols``: the latent layout from the metadata, each latent's table
    rows its channel or, for the latents in ``hyper_rows``, what ``hyper.onnx`` computes from the
    decoded ``z`` symbols (the other streams' inputs zero: the graph computes each stream alone)."""

    def __init__(self, meta: HalfMetadata, split: str, hyper) -> None:
        self.meta, self.split, self.hyper = meta, split, hyper
        self.channels = meta.stream_shapes[split][0]
        self.coding_order = tuple(meta.latents[split])

    def latent_shapes(self, height: int, width: int) -> dict[str, tuple[int, int, int]]:
        if (height, width) != tuple(self.meta.stream_shapes[self.split][1:]):
            raise CodecError(f"stream {self.split}: {height}×{width}, the halves were exported for "
                             f"{'×'.join(map(str, self.meta.stream_shapes[self.split][1:]))}")
        return dict(self.meta.latents[self.split])

    def rows(self, name, decoded, shape, tables) -> np.ndarray:
        if name not in self.meta.hyper_rows:
            return np.broadcast_to(np.arange(shape[1], dtype=np.int32)[None, :, None, None], shape)
        zs = latent_tensor_names(self.meta.latents, only="z")
        feed = {z: np.zeros((1, *self.meta.latents[s]["z"]), np.int32) for z, s in zip(zs, self.meta.split_points)}
        feed[f"symbols_z_{self.split}"] = np.asarray(decoded["z"], dtype=np.int32)
        return self.hyper.run([f"rows_{name}_{self.split}"], feed)[0]


def learned_codecs(meta: HalfMetadata, folder: Path) -> dict[str, LearnedCodec]:
    """The learned codec of every stream of exported halves in ``folder`` (tables and ``hyper.onnx`` there)."""
    tables = read_entropy_tables(folder / ENTROPY_TABLES, meta)
    hyper = open_half(folder / "hyper.onnx", "hyper")[0] if meta.hyper_rows else None
    return {split: LearnedCodec(ExportedLatents(meta, split, hyper), tables[split]) for split in meta.split_points}


def _refuse_packets(meta: HalfMetadata) -> None:
    if meta.learned:
        raise ConfigError("packets of a learned bottleneck's streams are not supported: a range-coded string cannot "
                          "be cut into channel groups that decode alone; send whole frames (encode/infer)")


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
        self._next_frame = 0
        if self.meta.learned:
            if (codec and parse_operating_point(codec).codec != "learned") or rate:
                raise ConfigError(f"these halves code with their learned bottleneck (codec learned, rate set by "
                                  f"training); got codec={codec!r} and rate options {sorted(rate)}")
            self.codecs = learned_codecs(self.meta, Path(edge_path).parent)
            return
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

    def _check_rates(self, rates: dict[str, dict] | None) -> None:
        unknown = set(rates or {}) - set(self.meta.split_points)
        if unknown:
            raise ConfigError(f"rates for unknown streams {sorted(unknown)}; this model sends {list(self.meta.split_points)}")

    def encode(self, images: np.ndarray, rates: dict[str, dict] | None = None) -> list[bytes]:
        """One byte string per image: the stream containers in split-point order.

        ``rates`` maps a split point to rate options of that stream (e.g.
        ``{"layer3": {"target_bits": 20000}}``); streams not named use the runtime's rate.
        """
        self._check_rates(rates)
        if self.meta.learned:
            if rates:
                raise ConfigError("a learned bottleneck's rate is set by training: no per-stream rates")
            return self._learned_frames(images)
        frames = []
        for streams in self._quantized(images):
            frames.append(b"".join(self.codec.encode_quantized(q, **self._rate(rates, s)) for s, q in streams.items()))
        return frames

    def packets(self, images: np.ndarray, rates: dict[str, dict] | None = None, mss: int = DEFAULT_MSS,
                channel_means: bool = False, first_frame: int | None = None) -> list[list[bytes]]:
        """The packets of each image (:mod:`cilight.deploy.packets`): every stream cut into channel
        groups that each fit one ``mss``-byte packet and decode alone, so a lost packet loses only
        its channels. ``channel_means`` adds one packet per stream with ``T_μ(c)`` (C × float16)
        for ``channel_mean``/``hybrid`` concealment. Frame ids count up from ``first_frame``
        (default: where the previous call stopped)."""
        self._check_rates(rates)
        _refuse_packets(self.meta)
        frame = self._next_frame if first_frame is None else first_frame
        dequantizer = get_quantizer(self.meta.quantizer, bits=self.meta.bits)
        result = []
        for streams in self._quantized(images):
            packets = []
            for index, (split, q) in enumerate(streams.items()):
                rate, channels = self._rate(rates, split), q.codes.shape[0]

                def encode(group: Quantized, rate=rate, channels=channels) -> bytes:
                    share = group.codes.shape[0] / channels  # an absolute target is shared by channel count
                    return self.codec.encode_quantized(
                        group, **{k: v * share if k == "target_bits" else v for k, v in rate.items()})

                groups = channel_groups(q, self.meta.quantizer, encode, mss)
                means = dequantizer.dequantize(q.codes, q.side).mean(dim=(1, 2)).numpy() if channel_means else None
                packets += packetize(frame % 2**32, index, q.codes.shape[0], groups, mss, means)
            result.append(packets)
            frame += 1
        self._next_frame = frame
        return result

    def _learned_frames(self, images: np.ndarray) -> list[bytes]:
        symbols = self.features(images)
        batch = len(next(iter(symbols.values())))
        return [b"".join(codec.encode_symbols(
                    {latent: torch.from_numpy(symbols[f"symbols_{latent}_{split}"][b]) for latent in codec.coding_order},
                    self.meta.stream_shapes[split])
                    for split, codec in self.codecs.items())
                for b in range(batch)]

    def _rate(self, rates: dict[str, dict] | None, split: str) -> dict:
        return {**self.default_rate, **(rates or {}).get(split, {})}

    def _quantized(self, images: np.ndarray) -> list[dict[str, Quantized]]:
        tensors = self.features(images)
        return [{s: Quantized(torch.from_numpy(tensors[f"codes_{s}"][b]),
                              stream_side(tensors[f"minimum_{s}"][b], tensors[f"maximum_{s}"][b], self.meta.quantizer))
                 for s in self.meta.split_points}
                for b in range(len(tensors[f"codes_{self.meta.split_points[0]}"]))]


class CloudRuntime:
    """Bytes → task outputs, with ``cloud.onnx``; the codec is read from each stream's header.

    Args:
        cloud_path: the ``cloud.onnx`` written by ``export.py``.
        dataset_mean: the ``dataset_mean.npz`` for ``dataset_mean``/``hybrid`` concealment
            (default: the one beside ``cloud_path``, read when first needed).
    """

    def __init__(self, cloud_path: Path | str, dataset_mean: Path | str | None = None) -> None:
        self.session, self.meta = open_half(cloud_path, "cloud")
        self.dataset_mean_path = Path(dataset_mean) if dataset_mean else Path(cloud_path).parent / DATASET_MEAN
        self._dataset_mean: dict[str, np.ndarray] | None = None
        self.codecs = learned_codecs(self.meta, Path(cloud_path).parent) if self.meta.learned else {}

    def decode(self, frame: bytes) -> dict[str, np.ndarray]:
        """The streams in ``frame`` as ``cloud.onnx`` inputs (batch of one)."""
        pieces = split_streams(frame)
        if len(pieces) != len(self.meta.split_points):
            raise CodecError(f"frame holds {len(pieces)} stream(s), this model expects "
                             f"{len(self.meta.split_points)} ({', '.join(self.meta.split_points)})")
        inputs = {}
        for split, piece in zip(self.meta.split_points, pieces):
            if self.meta.learned:
                header, symbols = self.codecs[split].decode_symbols(piece)
                if header.shape != tuple(self.meta.stream_shapes[split]):
                    raise CodecError(f"stream {split}: {list(header.shape)}, expected {list(self.meta.stream_shapes[split])}")
                inputs[f"symbols_{SYNTHESIS_LATENT}_{split}"] = symbols[SYNTHESIS_LATENT].numpy()[None]
                continue
            header, quantized = codec_of(piece).decode_quantized(piece)
            expected = (self.meta.quantizer, self.meta.bits, self.meta.stream_shapes[split])
            if (header.quantizer, header.bits, header.shape) != expected:
                raise CodecError(f"stream {split}: {header.quantizer} {header.bits}-bit {list(header.shape)}, expected "
                                 f"{expected[0]} {expected[1]}-bit {list(expected[2])}")
            inputs[f"codes_{split}"] = quantized.codes.numpy().astype(np.uint8)[None]
            inputs[f"minimum_{split}"], inputs[f"maximum_{split}"] = stream_range(quantized.side, self.meta.quantizer)
        return inputs

    def dataset_mean(self) -> dict[str, np.ndarray]:
        """``μ(y, x, c)`` of every stream, from the file written at export."""
        if self._dataset_mean is None:
            self._dataset_mean = read_dataset_mean(self.dataset_mean_path, self.meta)
        return self._dataset_mean

    def receive(self, packets: list[bytes], conceal: str | None = None,
                drop_corrupt: bool = False) -> tuple[Reception, dict[str, np.ndarray]]:
        """Reassemble ``packets`` (any frames, any order) and conceal what was lost.

        Returns the :class:`~cilight.deploy.packets.Reception` (frame ids, which channels arrived,
        duplicates, corrupt packets) and the cloud half's inputs for its frames, batched in frame
        order. ``conceal=None`` is strict: any missing channel is a :class:`CodecError`. A frame of
        which no codes arrived at all is an error with any strategy: there is nothing to infer from.
        """
        if conceal is not None and conceal not in CONCEALMENT_METHODS:
            raise ConfigError(f"conceal={conceal!r}: expected None or one of {', '.join(CONCEALMENT_METHODS)}")
        _refuse_packets(self.meta)
        packets = list(packets)
        reception = reassemble(packets, self.meta, drop_corrupt)
        if not reception.frames:
            raise CodecError(f"no usable packet among {len(packets)}: nothing arrived to infer from")
        inputs: dict[str, list[np.ndarray]] = {}
        for frame, streams in zip(reception.frames, reception.streams):
            if not any(s.channels.any() for s in streams):
                raise CodecError(f"frame {frame}: no codes arrived for any stream, nothing to infer from")
            for split, received in zip(self.meta.split_points, streams):
                if not received.channels.all() and conceal is None:
                    lost = np.flatnonzero(~received.channels)
                    raise CodecError(f"frame {frame}, stream {split}: {len(lost)} of {len(received.channels)} channels "
                                     f"lost (first {lost[0]}) and conceal=None; pass a concealment strategy")
                codes, side = self._concealed(received, split, conceal)
                minimum, maximum = stream_range(side, self.meta.quantizer)
                for name, value in ((f"codes_{split}", codes[None]), (f"minimum_{split}", minimum),
                                    (f"maximum_{split}", maximum)):
                    inputs.setdefault(name, []).append(value)
        return reception, {k: np.concatenate(v) for k, v in inputs.items()}

    def _concealed(self, received: ReceivedStream, split: str, method: str | None) -> tuple[np.ndarray, np.ndarray]:
        """Codes and side information of one stream with its lost channels filled in (thesis §3.2)."""
        quantizer = self.meta.quantizer
        if received.channels.all():
            return received.codes, stream_side_of(received, quantizer, torch.from_numpy(received.features), self.meta.bits)
        features = torch.from_numpy(received.features)
        mask = torch.from_numpy(received.channels)[:, None, None].expand_as(features)
        mean = torch.from_numpy(self.dataset_mean()[split]) if method in ("dataset_mean", "hybrid") else None
        means = received.channel_means
        if method in ("channel_mean", "hybrid") and means is None:
            if mean is None:  # channel_mean without the edge's means packet: the dataset's channel means
                mean = torch.from_numpy(self.dataset_mean()[split])
            means = mean.mean(dim=(1, 2)).numpy()  # documented fallback: hybrid becomes dataset_mean
        filled = conceal(features, mask, method, dataset_mean=mean,
                         channel_mean=None if means is None else torch.from_numpy(np.asarray(means, np.float32)))
        side = stream_side_of(received, quantizer, filled, self.meta.bits)
        codes = get_quantizer(quantizer, bits=self.meta.bits).codes_with(filled, side).numpy()
        return np.where(received.channels[:, None, None], received.codes, codes.astype(received.codes.dtype)), side

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """``cloud.onnx`` on batched inputs: one output per task, named as in the metadata."""
        names = list(self.meta.outputs)
        return dict(zip(names, self.session.run(names, inputs)))

    def infer(self, data: list[bytes] | bytes, conceal: str | None = None, drop_corrupt: bool = False) -> dict[str, np.ndarray]:
        """Task outputs (one array per task, named as in the metadata), batched.

        ``data``: one frame or a list of frames (whole containers, as :meth:`EdgeRuntime.encode`
        writes them; strict: any damage is a :class:`CodecError`), or a list of packets of any
        frames (:meth:`EdgeRuntime.packets`, flattened; outputs in frame-id order), of which lost
        ones are filled in with ``conceal`` (``zero``, ``channel_mean``, ``dataset_mean``, ``hybrid``;
        ``None``: strict). :meth:`receive` also says which frames and channels arrived.
        """
        items = [data] if isinstance(data, (bytes, bytearray, memoryview)) else list(data)
        if not items:
            raise CodecError("nothing to infer from: no frames or packets")
        if any(is_packet(x) for x in items):
            return self.run(self.receive(items, conceal, drop_corrupt)[1])
        decoded = [self.decode(f) for f in items]
        return self.run({k: np.concatenate([d[k] for d in decoded]) for k in decoded[0]})
