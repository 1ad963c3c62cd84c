"""How each stream of exported halves becomes bytes and back: one stream coder per stream.

The halves' metadata says what each stream puts on the wire (the transmission's
:class:`~cilight.deploy.wire.StreamWire`, recorded by the exporter): quantized codes with their
side information, which any registered codec codes at an operating point (Alvar & Bajić, ICIP
2019; Choi et al., ICASSP 2020; Ulhaq, B.A.Sc. thesis, SFU 2020, §4.1.2), or a learned
bottleneck's symbols, which its own range coder codes with the fixed tables shipped beside the
halves (Ballé et al., ICLR 2018). :func:`stream_coders` reads that once and returns one coder per
stream with the same four calls, so the runtimes loop over streams and never ask which kind each is::

    coder.encode(wire tensors of one image, rate options) -> container bytes
    coder.decode(container bytes) -> the cloud half's inputs of that stream (a batch of one)
    coder.packets(...)       channel groups that decode alone (quantized codes only)
    coder.dequantizer        what concealment re-quantizes with (quantized codes only)
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from cilight.codecs import (
    CODECS,
    CodecError,
    LearnedCodec,
    Quantized,
    codec_class,
    codec_of,
    get_codec,
    get_quantizer,
    parse_operating_point,
)
from cilight.codecs.quantizers import wire_quantizer
from cilight.deploy.packets import channel_groups, packetize
from cilight.deploy.wire import (
    ENTROPY_TABLES,
    NO_QUANTIZER,
    HalfMetadata,
    latent_tensor_names,
    open_half,
    read_entropy_tables,
    stream_range,
    stream_side,
)
from cilight.errors import ConfigError


def codes_quantized(cls: type) -> bool:
    """Whether codec class ``cls`` writes bytes of quantized codes (png, jpeg, jpeg2000, …; not the proxy or learned)."""
    return getattr(cls, "writes_bytes", True) and getattr(cls, "quantizes", True)


class QuantizedStreamCoder:
    """A stream of n-bit codes and side information (``codes_s``, ``minimum_s``, ``maximum_s``), coded
    by any registered codec at the operating point chosen; it can be cut into channel groups."""

    fields = ("codes", "minimum", "maximum")

    def __init__(self, meta: HalfMetadata, split: str, codec: str | None, rate: dict) -> None:
        self.meta, self.split = meta, split
        self.quantizer = meta.quantizer
        point = parse_operating_point(meta.codec if codec is None else codec)
        cls = codec_class(point.codec)
        if not codes_quantized(cls):
            why = "codes a learned bottleneck's symbols" if getattr(cls, "writes_bytes", True) else "writes no bytes"
            raise ConfigError(f"codec {point.codec!r} cannot code these halves' quantized codes (it {why}); expected "
                              f"one of {', '.join(n for n, c in CODECS.items() if codes_quantized(c))}")
        fixed = {"quantizer": self.quantizer, "bits": meta.bits}  # the edge half quantizes: the codec cannot change it
        options = dict(point.codec_options)
        for name, value in fixed.items():
            if name in options and options.pop(name) != value:
                raise ConfigError(f"codec {str(point)!r}: {name} is fixed by the exported halves ({name}={value!r}); "
                                  f"drop the option or export again")
        # the tiling rule belongs to the quantizer (BaF's per-channel codes tile on a power-of-two grid, §3.2)
        self.codec = get_codec(point.codec, **fixed, **{"tiling": wire_quantizer(self.quantizer).tiling, **options})
        self.default_rate = {**point.rate_options, **rate}
        self.codec.check_rate(**self.default_rate)
        self.dequantizer = get_quantizer(self.quantizer, bits=meta.bits)

    def rate_of(self, rate: dict | None) -> dict:
        """The rate options of one call: a stream's own (they replace the runtime's, e.g. target_bits over the
        point's bpe), or the runtime's."""
        return dict(rate) if rate else self.default_rate

    def check_rate(self, rate: dict | None) -> None:
        """Raise :class:`ConfigError` unless ``rate`` (``None``: the runtime's) is a valid rate of this stream."""
        self.codec.check_rate(**self.rate_of(rate))

    def quantized(self, tensors: dict[str, np.ndarray]) -> Quantized:
        return Quantized(np.ascontiguousarray(tensors["codes"]),
                         stream_side(tensors["minimum"], tensors["maximum"], self.quantizer))

    def encode(self, tensors: dict[str, np.ndarray], rate: dict | None = None) -> bytes:
        return self.codec.encode_quantized(self.quantized(tensors), **self.rate_of(rate))

    def packets(self, tensors: dict[str, np.ndarray], rate: dict | None, frame: int, index: int, mss: int,
                channel_means: bool) -> list[bytes]:
        """The stream's channel groups, each its own container that fits one ``mss``-byte packet."""
        q = self.quantized(tensors)
        rate, channels = self.rate_of(rate), q.codes.shape[0]

        def encode(group: Quantized) -> bytes:
            share = group.codes.shape[0] / channels  # an absolute target is shared by channel count
            return self.codec.encode_quantized(group, **{k: v * share if k == "target_bits" else v for k, v in rate.items()})

        groups = channel_groups(q, self.quantizer, encode, mss)
        means = self.dequantizer.dequantize(q.codes, q.side).mean(axis=(1, 2)) if channel_means else None
        return packetize(frame % 2**32, index, channels, groups, mss, means)

    def decode(self, data: bytes) -> dict[str, np.ndarray]:
        header, quantized = codec_of(data).decode_quantized(data)
        expected = (self.quantizer, self.meta.bits, self.meta.stream_shapes[self.split])
        if (header.quantizer, header.bits, header.shape) != expected:
            raise CodecError(f"stream {self.split}: the frame holds {header.quantizer} {header.bits}-bit "
                             f"{list(header.shape)}, these halves expect {expected[0]} {expected[1]}-bit "
                             f"{list(expected[2])} (a frame from other halves?)")
        minimum, maximum = stream_range(quantized.side, self.quantizer)
        return {f"codes_{self.split}": quantized.codes.astype(np.uint8)[None],
                f"minimum_{self.split}": minimum, f"maximum_{self.split}": maximum}


class SymbolStreamCoder:
    """A learned bottleneck's symbols (``symbols_<latent>_s``), range-coded with the tables shipped
    beside the halves (``entropy_tables.npz``); a hyperprior's ``y`` rows come from ``hyper.onnx``."""

    def __init__(self, meta: HalfMetadata, split: str, codec: LearnedCodec, asked: str | None, rate: dict) -> None:
        if (asked is not None and parse_operating_point(asked).codec != meta.codec) or rate:
            raise ConfigError(f"these halves code with their transmission's own codec ({meta.codec}, its rate set by "
                              f"training); got codec={asked!r} and rate options {sorted(rate)}")
        self.meta, self.split, self.codec = meta, split, codec
        self.fields = tuple(f"symbols_{latent}" for latent in meta.latents[split])

    def check_rate(self, rate: dict | None) -> None:
        if rate:
            raise ConfigError(f"stream {self.split} codes with its transmission's own codec, whose rate is set by training: "
                              f"no per-stream rates (got {sorted(rate)})")

    def encode(self, tensors: dict[str, np.ndarray], rate: dict | None = None) -> bytes:
        self.check_rate(rate)
        symbols = {name.removeprefix("symbols_"): np.ascontiguousarray(v) for name, v in tensors.items()}
        return self.codec.encode_symbols(symbols, self.meta.stream_shapes[self.split])

    def packets(self, *args, **kwargs) -> list[bytes]:
        raise ConfigError(f"stream {self.split}: packets of range-coded symbols are not supported (a range-coded string "
                          "cannot be cut into channel groups that decode alone); send whole frames (encode/infer)")

    @property
    def dequantizer(self):
        raise ConfigError(f"stream {self.split} sends range-coded symbols: nothing to conceal channel by channel")

    def decode(self, data: bytes) -> dict[str, np.ndarray]:
        header, symbols = self.codec.decode_symbols(data)
        if header.shape != tuple(self.meta.stream_shapes[self.split]):
            raise CodecError(f"stream {self.split}: {list(header.shape)}, expected {list(self.meta.stream_shapes[self.split])}")
        return {f"symbols_{latent}_{self.split}": symbols[latent][None]
                for latent in self.meta.latents[self.split] if f"symbols_{latent}_{self.split}" in self.meta.cloud_inputs}


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


StreamCoder = QuantizedStreamCoder | SymbolStreamCoder


def _symbol_coders(meta: HalfMetadata, folder: Path, codec: str | None, rate: dict) -> dict[str, StreamCoder]:
    tables = read_entropy_tables(folder / ENTROPY_TABLES, meta)
    hyper = open_half(folder / "hyper.onnx", "hyper")[0] if meta.hyper_rows else None
    return {split: SymbolStreamCoder(meta, split, LearnedCodec(ExportedLatents(meta, split, hyper), tables[split]), codec, rate)
            for split in meta.split_points}


def _quantized_coders(meta: HalfMetadata, folder: Path, codec: str | None, rate: dict) -> dict[str, StreamCoder]:
    return {split: QuantizedStreamCoder(meta, split, codec, rate) for split in meta.split_points}


# what the metadata's quantizer says a stream carries: the one place the two wires are told apart
WIRES: dict[bool, Callable[..., dict[str, StreamCoder]]] = {True: _symbol_coders, False: _quantized_coders}


def stream_coders(meta: HalfMetadata, folder: str | Path, codec: str | None = None, rate: dict | None = None
                  ) -> dict[str, StreamCoder]:
    """The coder of every stream of the halves in ``folder`` (tables and coding graphs beside them), by
    split point: ``codec`` the operating point (default: the metadata's), ``rate`` options over its.

    The codec and rate options are checked here, once, so a runtime with a wrong one is never built:
    an empty or unknown codec, an unknown option (with the nearest name), a rate out of range.
    """
    if codec is not None:
        if not isinstance(codec, str):
            raise ConfigError(f"codec={codec!r}: expected an operating point such as 'png' or 'jpeg:quality=90', "
                              f"or None for the exported one ({meta.codec})")
        parse_operating_point(codec)  # an empty or unknown codec, bad options: one error naming the known codecs
    return WIRES[meta.quantizer == NO_QUANTIZER](meta, Path(folder), codec, dict(rate or {}))


__all__ = ["ExportedLatents", "QuantizedStreamCoder", "StreamCoder", "SymbolStreamCoder", "stream_coders"]
