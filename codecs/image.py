"""Feature codecs built on image codecs: quantize, tile, code the image, wrap in the container.

Ulhaq, "Mobile-cloud inference for collaborative intelligence", B.A.Sc. thesis, SFU 2020, §2.2
(tiling §2.2.1, JPEG §2.2.2, JPEG 2000 §2.2.3): a ``C×H×W`` tensor is quantized to integers
(:mod:`cilight.codecs.quantizers`), its channels are tiled into one grey image
(:mod:`cilight.codecs.tiling`) — the luma plane only, since chroma subsampling would mix
unrelated channels — and the image is coded with an image codec.

::

    features [C,H,W] ─► quantizer ─► codes + side info ─► tile ─► image codec ─► payload
                                                    └────────── container (header, side, payload, CRC) ─► bytes
    bytes ─► parse + validate ─► image decoder ─► untile ─► dequantize ─► features [C,H,W] (original dtype)

Every codec has the same contract: ``encode(features, **rate) -> bytes``,
``decode(bytes) -> np.ndarray``, on numpy arrays (a torch tensor is accepted and copied to the CPU:
training calls the same code, the edge install has no torch); construct them by name with
:func:`get_codec`. Each declares its
container id and its rate knob (:mod:`cilight.codecs.registry`); :meth:`FeatureCodec.encode_to_bits`
turns any knob into "this many bits" (a search over the knob, or the codec's own rate control),
which is what a rate sweep needs (:class:`CodecCoder`).

The same image coding codes the input picture itself — 8-bit RGB, the codec's own file with no
quantizer and no container (:meth:`FeatureCodec.encode_picture`) — for the remote-inference anchor,
where the device sends the image and the whole model runs in the cloud
(:mod:`cilight.evaluation.remote`).
"""

from __future__ import annotations

import io
import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from PIL import Image

from cilight.codecs import container, jpeg2000
from cilight.codecs.arrays import as_array, dtype_name
from cilight.codecs.errors import CodecError
from cilight.codecs.pillow import pillow_decode
from cilight.codecs.quantizers import Quantized, Quantizer, code_dtype, get_quantizer
from cilight.codecs.registry import (
    CODECS,
    RateKnob,
    check_codec_options,
    check_options,
    codec_class,
    rate_options,
    register_codec,
)
from cilight.codecs.tiling import TileLayout, tile, untile
from cilight.errors import ConfigError

KNOB_SEARCH_STEPS = 16  # encodes a real-valued knob search may spend
WEBP_MAX_SIDE = 16383  # libwebp's largest width or height


def _pillow_image(image: np.ndarray) -> Image.Image:
    """An 8-bit Pillow image of a grey code image ``[H, W]`` or an RGB picture ``[H, W, 3]``."""
    return Image.fromarray(image.astype(np.uint8), mode="L" if image.ndim == 2 else "RGB")


def _modes(shape: tuple[int, ...]) -> tuple[str, ...]:
    """The Pillow mode an 8-bit image of ``shape`` decodes to: grey ``(H, W)`` or RGB ``(H, W, 3)``."""
    return ("L",) if len(shape) == 2 else ("RGB",)


def construct(cls: type, options: dict):
    """``cls(**options)``, with a wrong option name turned into one :class:`ConfigError` (the nearest name and
    every option: :func:`~cilight.codecs.registry.check_codec_options`)."""
    check_codec_options(cls, options)
    try:
        return cls(**options)
    except TypeError as err:
        raise ConfigError(f"codec {cls.name!r}: {err}") from None


@dataclass(frozen=True)
class FeatureCodec(ABC):
    """Quantizer + tiling + an image codec; subclasses supply the image coding.

    Args:
        quantizer: ``minmax`` (default), ``channel``, ``clip``, ``neuron``, or a
            :class:`~cilight.codecs.quantizers.Quantizer` instance (then ``bits`` is its bits).
        bits: bits per quantized element.
        tiling: ``square`` (default) or ``power_of_two``.
        clip_width: ``w`` of the ``clip`` quantizer, in standard deviations.

    A subclass declares ``name``, ``container_id`` and ``rate`` (its :class:`RateKnob`, or
    ``None``) and is registered with :func:`register_codec`.
    """

    quantizer: str | Quantizer = "minmax"
    bits: int = 8
    tiling: str = "square"
    clip_width: float = 3.0

    name: ClassVar[str]
    container_id: ClassVar[int]
    rate: ClassVar[RateKnob | None] = None
    rate_aliases: ClassVar[tuple[str, ...]] = ()  # other names encode(**rate) takes for the same knob
    max_bits: ClassVar[int] = 8
    writes_bytes: ClassVar[bool] = True

    def __post_init__(self) -> None:
        if isinstance(self.quantizer, Quantizer):
            object.__setattr__(self, "bits", self.quantizer.bits)
        if not isinstance(self.bits, int) or isinstance(self.bits, bool) or not 1 <= self.bits <= self.max_bits:
            raise ConfigError(f"{self.name} codec bits={self.bits!r}: expected an integer from 1 to {self.max_bits}")
        TileLayout.named(self.tiling, 1, 1, 1)  # validates the name
        _ = self.quantizer_  # validates the quantizer name and options

    @property
    def quantizer_(self) -> Quantizer:
        if isinstance(self.quantizer, Quantizer):
            return self.quantizer
        options = {"width": self.clip_width} if self.quantizer == "clip" else {}
        return get_quantizer(self.quantizer, bits=self.bits, **options)

    @classmethod
    def stream_coder(cls, **options) -> CodecCoder:
        """This codec as a rate sweep's stream coder (every sample coded to its target bits)."""
        return CodecCoder(construct(cls, options))

    # -- the contract -------------------------------------------------------------------
    def encode(self, features, **rate) -> bytes:
        """Bytes of ``features`` (``[C, H, W]``, floating point; numpy, or a tensor on any device): the
        container, all included.

        ``rate``: this codec's knob (e.g. ``quality=90``), over the constructor's value.
        """
        return self.encode_quantized(self.quantizer_.quantize(features), dtype_name(features), **rate)

    def decode(self, data: bytes) -> np.ndarray:
        """The array coded in ``data``, in its original shape and dtype; bfloat16, which numpy lacks, as float32
        (the header still names it: ``decode_quantized(data)[0].dtype``)."""
        header, quantized = self.decode_quantized(data)
        values = self.quantizer_for(header).dequantize(quantized.codes, quantized.side)
        return values if header.dtype == "bfloat16" else values.astype(header.dtype, copy=False)

    def encode_quantized(self, quantized: Quantized, dtype: str = "float32", **rate) -> bytes:
        """Bytes of codes that are already quantized (e.g. by an exported edge model).

        ``quantized.side`` must be this codec's quantizer's side information; ``dtype`` is the
        dtype :meth:`decode` will restore.
        """
        quantizer = self.quantizer_
        codes, side = as_array(quantized.codes, "codes"), np.asarray(quantized.side, dtype=quantizer.side_dtype)
        if codes.ndim != 3 or side.shape != (quantizer.side_numel(codes.shape[0]),):
            raise CodecError(f"quantized codes [C, H, W] with {quantizer.kind} side information expected, got codes "
                             f"{tuple(codes.shape)} and side {side.shape}")
        if codes.dtype.kind not in "ui" or int(codes.min()) < 0 or int(codes.max()) > quantizer.levels:
            raise CodecError(f"codes must be integers from 0 to {quantizer.levels} for {self.bits}-bit quantization")
        if not np.isfinite(side).all():  # what a decoder refuses is never written
            raise CodecError(f"{quantizer.kind} side information is not finite: {side.tolist()[:4]}; the features "
                             "were NaN or infinite")
        header = container.Header(self.name, dtype, quantizer.kind, self.bits, self.tiling, tuple(codes.shape))
        image = tile(codes, header.layout)
        options = self._rate(codes.size, **rate)
        payload = self._encode_image(image, overhead=container.HEADER_BYTES + side.nbytes, **options)
        return container.pack(header, side, payload)

    def decode_quantized(self, data: bytes) -> tuple[container.Header, Quantized]:
        """The header and the integer codes + side information in ``data`` (no dequantization)."""
        header, side, payload = container.parse(data)
        if header.codec != self.name:
            raise CodecError(f"stream was written by the {header.codec!r} codec, not {self.name!r}")
        quantizer = header.dequantizer()
        image = self._decode_image(payload, header.layout.image_shape, header.bits)
        codes = untile(image.astype(np.int32), header.layout)
        if int(codes.max()) > quantizer.levels:
            raise CodecError(f"decoded code {int(codes.max())} exceeds the {header.bits}-bit range")
        side_values = np.frombuffer(side, dtype=quantizer.side_dtype)
        if not np.isfinite(side_values).all():
            raise CodecError(f"{quantizer.kind} side information is not finite: {side_values.tolist()[:4]}")
        return header, Quantized(np.ascontiguousarray(codes, dtype=code_dtype(header.bits)), side_values)

    def quantizer_for(self, header: container.Header) -> Quantizer:
        """The quantizer that dequantizes a stream with ``header``: this codec's own when it is of the
        stream's kind and bits (it may hold statistics the header cannot), else the header's."""
        own = self.quantizer_
        if own.kind == header.quantizer and own.bits == header.bits:
            return own
        return header.dequantizer()

    # -- rate ---------------------------------------------------------------------------
    def encode_to_bits(self, features, target_bits: float) -> bytes:
        """The stream of ``features`` whose size (container included) is closest to ``target_bits``."""
        return self._encode_to_bits(self.quantizer_.quantize(features), dtype_name(features), float(target_bits))

    def floor_bits(self, features) -> float:
        """Bits of the smallest stream this codec writes for ``features`` (container included)."""
        knob = self.rate
        if knob is None:
            return 8.0 * len(self.encode(features))
        least = knob.low if knob.more_bits_when_higher else knob.high
        return 8.0 * len(self.encode(features, **{knob.name: least}))

    def _encode_to_bits(self, quantized: Quantized, dtype: str, target_bits: float) -> bytes:
        """Search the knob for the size closest to ``target_bits`` (sizes are monotone in it)."""
        knob = self.rate
        if knob is None:
            return self.encode_quantized(quantized, dtype)
        tried: dict[float, bytes] = {}

        def size(value: float) -> float:
            value = int(round(value)) if knob.integer else value
            if value not in tried:
                tried[value] = self.encode_quantized(quantized, dtype, **{knob.name: value})
            return 8.0 * len(tried[value])

        lo, hi = knob.low, knob.high
        use_log = not knob.integer and lo > 0 and math.isfinite(hi)
        for _ in range(KNOB_SEARCH_STEPS if not knob.integer else 64):
            if (knob.integer and hi - lo <= 1) or (not knob.integer and not hi > lo):
                break
            mid = math.sqrt(lo * hi) if use_log else (lo + hi) / 2
            too_many = size(mid) > target_bits
            if too_many == knob.more_bits_when_higher:
                hi = mid
            else:
                lo = mid
        size(lo)
        size(hi)
        return min(tried.values(), key=lambda data: abs(8 * len(data) - target_bits))

    # -- pictures: the input image itself (remote inference) -------------------------------
    def encode_picture(self, pixels: np.ndarray, **rate) -> bytes:
        """The image file of an 8-bit RGB picture ``pixels`` (``uint8 [H, W, 3]``), as a device sends its
        camera's image when the whole model runs in the cloud (remote inference).

        The bytes are the codec's own file (PNG, JFIF, WebP's RIFF, a raw JPEG2000 codestream) with its
        headers — no quantizer, no cilight container — and every byte counts. ``rate`` is this codec's
        knob; a rate per element (``bpe``) counts the picture's 3·H·W elements (bits per pixel per channel).
        """
        pixels = np.asarray(pixels)
        if pixels.dtype != np.uint8 or pixels.ndim != 3 or pixels.shape[2] != 3 or not pixels.size:
            raise CodecError(f"{self.name}: a picture is uint8 [H, W, 3] (8-bit RGB), got {pixels.dtype} "
                             f"{list(pixels.shape)}")
        return self._encode_image(pixels, overhead=0, **self._rate(pixels.size, **rate))

    def decode_picture(self, data: bytes, height: int, width: int) -> np.ndarray:
        """The ``uint8 [height, width, 3]`` picture in ``data`` (:meth:`encode_picture`); any failure, a size
        other than announced included, is a :class:`CodecError`."""
        return self._decode_image(data, (height, width, 3), 8)

    def check_rate(self, **rate) -> None:
        """Raise :class:`ConfigError` unless ``encode(features, **rate)`` has a valid rate (e.g. before an export)."""
        self._rate(1, **rate)

    def _rate(self, numel: int, **rate) -> dict:
        """Validated rate options of one ``encode`` call (defaults from the constructor)."""
        knob = self.rate
        check_options(self.name, rate, rate_options(type(self)), "rate option")
        if knob is None:
            return {}
        value = rate.get(knob.name, getattr(self, knob.name, None))
        if value is None:
            raise ConfigError(f"the {self.name} codec needs {knob.name} ({knob.description})")
        return {knob.name: knob.check(value, self.name)}

    # -- what a codec supplies ----------------------------------------------------------
    @abstractmethod
    def _encode_image(self, image: np.ndarray, *, overhead: int, **rate) -> bytes:
        """Payload of the tiled code image ``[H, W]``, or of an 8-bit RGB picture ``[H, W, 3]``
        (:meth:`encode_picture`); ``overhead`` = container bytes around it (for rate targets)."""

    @abstractmethod
    def _decode_image(self, payload: bytes, shape: tuple[int, ...], bits: int) -> np.ndarray:
        """The tiled code image of ``shape`` ``(H, W)`` — or the RGB picture of ``shape`` ``(H, W, 3)`` —
        in ``payload``; any failure is a :class:`CodecError`."""


@dataclass
class CodecCoder:
    """A byte codec as a rate sweep's stream coder: encode every sample to its target, decode it.

    ``prepare(features) -> state``, ``code(state, bits) -> (reconstruction [B,C,H,W], bits [B])``
    and ``floor(features) -> bits``: the contract of every stream coder
    (:func:`cilight.codecs.stream_coder`). Rates are the real stream sizes, container included.
    Features come in as numpy arrays or tensors; reconstructions and bits go out as numpy arrays
    (float32 and float64).
    """

    codec: FeatureCodec

    @property
    def name(self) -> str:
        return self.codec.name

    def prepare(self, features) -> np.ndarray:
        return as_array(features).astype(np.float32, copy=False)

    def code(self, features: np.ndarray, bits: float) -> tuple[np.ndarray, np.ndarray]:
        decoded, sizes = [], []
        for x in features:
            data = self.codec.encode_to_bits(x, bits)
            decoded.append(self.codec.decode(data))
            sizes.append(8 * len(data))
        return np.stack(decoded), np.asarray(sizes, dtype=np.float64)

    def code_at(self, features: np.ndarray, **rate) -> tuple[np.ndarray, np.ndarray]:
        """Every sample at one value of the rate knob (an operating point such as ``jpeg:quality=90``)."""
        data = [self.codec.encode(x, **rate) for x in features]
        return np.stack([self.codec.decode(d) for d in data]), np.asarray([8.0 * len(d) for d in data])

    def floor(self, features) -> float:
        """Bits of the smallest stream any sample can be coded into (header and side info included)."""
        return max(self.codec.floor_bits(x) for x in features)


def get_codec(name: str, **options) -> FeatureCodec:
    """The feature codec called ``name`` (``png``, ``jpeg``, ``jpeg2000`` or any registered one) with ``options``."""
    cls = codec_class(name)
    if not cls.writes_bytes:
        raise ConfigError(f"codec {name!r} models a codec and writes no bytes; use it where a rate sweep codes "
                          f"streams (e.g. evaluate.py allocate --codec {name}), or one of "
                          f"{', '.join(n for n, c in CODECS.items() if c.writes_bytes)} for bytes")
    return construct(cls, options)


def codec_of(data: bytes, quantizer: Quantizer | None = None) -> FeatureCodec:
    """The codec that reads ``data``, as its header names it (quantizer, bits and tiling included).

    ``quantizer``: a quantizer holding what a header cannot (the per-neuron statistics);
    used when it is of the stream's kind.
    """
    header, _, _ = container.parse(data)
    if not getattr(CODECS[header.codec], "quantizes", True):
        raise CodecError(f"a {header.codec} stream decodes only with the model that wrote it (its bottleneck and "
                         "entropy tables): model.transmissions[stream].own_codec().decode(data)")
    chosen = quantizer if quantizer is not None and quantizer.kind == header.quantizer else header.quantizer
    return CODECS[header.codec](quantizer=chosen, bits=header.bits, tiling=header.tiling)


def decode(data: bytes, quantizer: Quantizer | None = None) -> np.ndarray:
    """Decode a stream of any registered codec (the codec is named in its header)."""
    return codec_of(data, quantizer).decode(data)


@register_codec
@dataclass(frozen=True)
class PngCodec(FeatureCodec):
    """Lossless: the decoded tensor differs from the input only by the quantization error."""

    name: ClassVar[str] = "png"
    container_id: ClassVar[int] = 1
    max_bits: ClassVar[int] = 16

    def _encode_image(self, image, *, overhead):
        out = io.BytesIO()
        if self.bits <= 8 or image.ndim == 3:
            _pillow_image(image).save(out, format="PNG", optimize=False)
        else:
            Image.fromarray(image.astype(np.uint16)).save(out, format="PNG")
        return out.getvalue()

    def _decode_image(self, payload, shape, bits):
        return pillow_decode(payload, "PNG", shape, _modes(shape) if bits <= 8 else ("I;16", "I"))


@register_codec
@dataclass(frozen=True)
class JpegCodec(FeatureCodec):
    """Baseline JPEG of the tiled codes in the luma plane; ``quality`` 1–95 sets the rate."""

    quality: int = 75

    name: ClassVar[str] = "jpeg"
    container_id: ClassVar[int] = 2
    rate: ClassVar[RateKnob] = RateKnob("quality", True, 1, 100, True, "libjpeg quality, higher spends more bits")

    def __post_init__(self) -> None:
        super().__post_init__()
        self.rate.check(self.quality, self.name)

    def _encode_image(self, image, *, overhead, quality):
        out = io.BytesIO()  # an RGB picture gets libjpeg's default 4:2:0 chroma, as a camera's JPEG
        _pillow_image(image).save(out, format="JPEG", quality=quality)
        return out.getvalue()

    def _decode_image(self, payload, shape, bits):
        # a lossy decoder may overshoot the n-bit code range (n < 8); those codes are the range's top
        return np.minimum(pillow_decode(payload, "JPEG", shape, _modes(shape)), 2**bits - 1)


@register_codec
@dataclass(frozen=True)
class Jpeg2000Codec(FeatureCodec):
    """JPEG2000 (OpenJPEG) with exact rate control.

    ``target_bits`` is the size of everything :meth:`encode` returns — container header and
    side information included — and the result lands within ``tolerance`` (relative) of it
    whenever OpenJPEG has a coding-pass boundary there; otherwise the closest size is used.
    A target below the smallest codestream raises :class:`CodecError` naming that minimum.
    The rate knob is ``bpe``, bits per element of the tensor (``target_bits = bpe · C·H·W``);
    ``target_bits`` gives the same in absolute bits.
    """

    bpe: float | None = None
    target_bits: float | None = None
    tolerance: float = 0.01

    name: ClassVar[str] = "jpeg2000"
    container_id: ClassVar[int] = 3
    rate: ClassVar[RateKnob] = RateKnob(
        "bpe", False, 1e-6, math.inf, True, "bits per tensor element, container included, > 0")
    rate_aliases: ClassVar[tuple[str, ...]] = ("target_bits",)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.bpe is not None or self.target_bits is not None:
            self._rate(1)
        if not isinstance(self.tolerance, (int, float)) or not 0 < self.tolerance < 1:
            raise ConfigError(f"jpeg2000 tolerance={self.tolerance!r}: expected a fraction between 0 and 1")

    def _rate(self, numel: int, target_bits: float | None = None, bpe: float | None = None, **rest) -> dict:
        check_options(self.name, rest, rate_options(type(self)), "rate option")
        if target_bits is not None and bpe is not None:
            raise ConfigError(f"jpeg2000: give bpe={bpe!r} or target_bits={target_bits!r}, not both")
        if target_bits is None and bpe is None:
            target_bits, bpe = self.target_bits, self.bpe
        if target_bits is None and bpe is None:
            raise ConfigError("the jpeg2000 codec needs bpe (bits per element) or target_bits (total bits of the "
                              "stream, header included)")
        if target_bits is None:
            target_bits = self.rate.check(bpe, self.name) * numel
        if isinstance(target_bits, bool) or not isinstance(target_bits, (int, float)) or not 0 < target_bits < math.inf:
            raise ConfigError(f"jpeg2000 target_bits={target_bits!r}: expected a positive, finite number of bits")
        return {"target_bits": float(target_bits)}

    def _encode_to_bits(self, quantized, dtype, target_bits):
        return self.encode_quantized(quantized, dtype, target_bits=target_bits)

    def floor_bits(self, features) -> float:
        q = self.quantizer_.quantize(features)
        image = tile(q.codes, TileLayout.named(self.tiling, *q.codes.shape))
        return 8.0 * (jpeg2000.smallest_codestream(image) + container.HEADER_BYTES + q.side.nbytes)

    def _encode_image(self, image, *, overhead, target_bits):
        image = image.astype(np.uint8)
        if image.ndim == 3:
            return self._encode_picture_codestream(image, target_bits)
        target_bytes, tolerance = target_bits / 8, self.tolerance * target_bits / 8
        sized = jpeg2000.encode_to_size(image, target_bytes - overhead, tolerance)
        if len(sized.codestream) + overhead > target_bytes + tolerance:
            floor = (jpeg2000.smallest_codestream(image) + overhead) * 8
            if floor > target_bits * (1 + self.tolerance):
                raise CodecError(
                    f"target_bits={target_bits:.0f} is below the smallest jpeg2000 stream of this tensor: "
                    f"{floor} bits ({overhead} bytes of header and side information + the smallest codestream)"
                )
        return sized.codestream

    def _encode_picture_codestream(self, pixels: np.ndarray, target_bits: float) -> bytes:
        """One OpenJPEG fixed-rate encode of an RGB picture, with the irreversible colour transform and the
        feature codestreams' settings (:mod:`cilight.codecs.jpeg2000`). Its rate control stops at a
        coding-pass boundary, so the size may miss ``target_bits`` by a few percent: the bytes written are
        what a curve counts. A target below the smallest codestream is a :class:`CodecError`."""

        def codestream(ratio: float) -> bytes:
            out = io.BytesIO()
            Image.fromarray(pixels, mode="RGB").save(
                out, format="JPEG2000", no_jp2=True, irreversible=True, mct=1, quality_mode="rates",
                quality_layers=[float(ratio)], num_resolutions=jpeg2000.resolutions(*pixels.shape[:2]),
                codeblock_size=(jpeg2000.CODEBLOCK, jpeg2000.CODEBLOCK))
            return out.getvalue()

        data = codestream(max(pixels.size / max(target_bits / 8, 1.0), 1.0))
        if 8 * len(data) > target_bits * (1 + self.tolerance):
            floor = 8 * len(codestream(float(pixels.size)))
            if floor > target_bits * (1 + self.tolerance):
                raise CodecError(f"target_bits={target_bits:.0f} is below the smallest jpeg2000 codestream of this "
                                 f"picture: {floor} bits")
        return data

    def _decode_image(self, payload, shape, bits):
        if len(shape) == 3:
            return pillow_decode(payload, "JPEG2000", shape, _modes(shape))
        # as for JPEG: lossy decoding may overshoot the n-bit code range (n < 8)
        return np.minimum(jpeg2000.decode_codestream(payload, shape), 2**bits - 1)


@register_codec
@dataclass(frozen=True)
class WebpCodec(FeatureCodec):
    """Lossy WebP (libwebp, VP8 intra coding); ``quality`` 0–100 sets the rate.

    libwebp codes RGB only: the tiled codes go in as a grey RGB image (equal channels: flat 4:2:0
    chroma costs almost nothing) and come back as the rounded mean of the decoded channels.
    Images are at most 16383 pixels on a side.
    """

    quality: int = 80

    name: ClassVar[str] = "webp"
    container_id: ClassVar[int] = 5
    rate: ClassVar[RateKnob] = RateKnob("quality", True, 0, 100, True, "libwebp quality, higher spends more bits")

    def __post_init__(self) -> None:
        super().__post_init__()
        self.rate.check(self.quality, self.name)

    def _encode_image(self, image, *, overhead, quality):
        if max(image.shape[:2]) > WEBP_MAX_SIDE:
            raise CodecError(f"webp codes images of at most {WEBP_MAX_SIDE} pixels on a side, got "
                             f"{image.shape[0]}×{image.shape[1]}; use png, jpeg or jpeg2000")
        out = io.BytesIO()
        _pillow_image(image).convert("RGB").save(out, format="WEBP", quality=quality)
        return out.getvalue()

    def _decode_image(self, payload, shape, bits):
        pixels = pillow_decode(payload, "WEBP", (*shape[:2], 3), ("RGB",))
        if len(shape) == 3:
            return pixels
        grey = np.rint(pixels.mean(axis=2, dtype=np.float64)).astype(np.uint8)
        return np.minimum(grey, 2**bits - 1)  # as for JPEG: lossy decoding may overshoot the n-bit range
