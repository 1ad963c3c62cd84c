"""Feature codecs built on image codecs: quantize, tile, code the image, wrap in the container.

``mobile-cloud-inference-ci-thesis.md`` §2.2 (tiling §2.2.1, JPEG §2.2.2, JPEG 2000 §2.2.3):
a ``C×H×W`` tensor is quantized to integers (:mod:`cilight.codecs.quantizers`), its channels
are tiled into one grey image (:mod:`cilight.codecs.tiling`) — the luma plane only, since
chroma subsampling would mix unrelated channels — and the image is coded with an image codec.

::

    features [C,H,W] ─► quantizer ─► codes + side info ─► tile ─► image codec ─► payload
                                                    └────────── container (header, side, payload, CRC) ─► bytes
    bytes ─► parse + validate ─► image decoder ─► untile ─► dequantize ─► features [C,H,W] (original dtype)

Every codec has the same contract: ``encode(features, **rate) -> bytes``,
``decode(bytes) -> Tensor``; construct them by name with :func:`get_codec`.
"""

from __future__ import annotations

import difflib
import io
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from cilight.codecs import container, jpeg2000
from cilight.codecs.errors import CodecError
from cilight.codecs.pillow import pillow_decode
from cilight.codecs.quantizers import Quantized, Quantizer, get_quantizer
from cilight.codecs.tiling import TileLayout, tile, untile
from cilight.errors import ConfigError


@dataclass(frozen=True)
class FeatureCodec(ABC):
    """Quantizer + tiling + an image codec; subclasses supply the image coding.

    Args:
        quantizer: ``minmax`` (default), ``channel`` or ``clip``.
        bits: bits per quantized element.
        tiling: ``square`` (default) or ``power_of_two``.
        clip_width: ``w`` of the ``clip`` quantizer, in standard deviations.
    """

    quantizer: str = "minmax"
    bits: int = 8
    tiling: str = "square"
    clip_width: float = 3.0

    name: ClassVar[str]
    max_bits: ClassVar[int] = 8

    def __post_init__(self) -> None:
        if not isinstance(self.bits, int) or isinstance(self.bits, bool) or not 1 <= self.bits <= self.max_bits:
            raise ConfigError(f"{self.name} codec bits={self.bits!r}: expected an integer from 1 to {self.max_bits}")
        TileLayout.named(self.tiling, 1, 1, 1)  # validates the name

    @property
    def quantizer_(self) -> Quantizer:
        options = {"width": self.clip_width} if self.quantizer == "clip" else {}
        return get_quantizer(self.quantizer, bits=self.bits, **options)

    # -- the contract -------------------------------------------------------------------
    def encode(self, features: Tensor, **rate) -> bytes:
        """Bytes of ``features`` (``[C, H, W]``, floating point): the container, all included."""
        return self.encode_quantized(self.quantizer_.quantize(features), features.dtype, **rate)

    def decode(self, data: bytes) -> Tensor:
        """The tensor coded in ``data``, in its original shape and dtype."""
        header, quantized = self.decode_quantized(data)
        return header.dequantizer().dequantize(quantized.codes, quantized.side).to(header.dtype)

    def encode_quantized(self, quantized: Quantized, dtype: torch.dtype = torch.float32, **rate) -> bytes:
        """Bytes of codes that are already quantized (e.g. by an exported edge model).

        ``quantized.side`` must be this codec's quantizer's side information; ``dtype`` is the
        dtype :meth:`decode` will restore.
        """
        quantizer = self.quantizer_
        codes, side = quantized.codes, np.asarray(quantized.side, dtype=quantizer.side_dtype)
        if codes.dim() != 3 or side.shape != (quantizer.side_numel(codes.shape[0]),):
            raise CodecError(f"quantized codes [C, H, W] with {quantizer.kind} side information expected, got codes "
                             f"{tuple(codes.shape)} and side {side.shape}")
        if codes.is_floating_point() or int(codes.min()) < 0 or int(codes.max()) > quantizer.levels:
            raise CodecError(f"codes must be integers from 0 to {quantizer.levels} for {self.bits}-bit quantization")
        header = container.Header(self.name, dtype, quantizer.kind, self.bits, self.tiling, tuple(codes.shape))
        image = tile(codes, header.layout).numpy()
        payload = self._encode_image(image, overhead=container.HEADER_BYTES + side.nbytes, **self._rate(**rate))
        return container.pack(header, side, payload)

    def decode_quantized(self, data: bytes) -> tuple[container.Header, Quantized]:
        """The header and the integer codes + side information in ``data`` (no dequantization)."""
        header, side, payload = container.parse(data)
        if header.codec != self.name:
            raise CodecError(f"stream was written by the {header.codec!r} codec, not {self.name!r}")
        quantizer = header.dequantizer()
        image = self._decode_image(payload, header.layout.image_shape, header.bits)
        codes = untile(torch.from_numpy(image.astype(np.int32)), header.layout)
        if int(codes.max()) > quantizer.levels:
            raise CodecError(f"decoded code {int(codes.max())} exceeds the {header.bits}-bit range")
        side_values = np.frombuffer(side, dtype=quantizer.side_dtype)
        if not np.isfinite(side_values).all():
            raise CodecError(f"{quantizer.kind} side information is not finite: {side_values.tolist()[:4]}")
        return header, Quantized(codes.to(torch.uint8 if header.bits <= 8 else torch.int32), side_values)

    # -- what a codec supplies ----------------------------------------------------------
    def _rate(self, **rate) -> dict:
        """Validated rate options of one ``encode`` call (defaults from the constructor)."""
        if rate:
            raise ConfigError(f"the {self.name} codec takes no rate options, got {sorted(rate)}")
        return {}

    @abstractmethod
    def _encode_image(self, image: np.ndarray, *, overhead: int, **rate) -> bytes:
        """Payload of the tiled code image; ``overhead`` = container bytes around it (for rate targets)."""

    @abstractmethod
    def _decode_image(self, payload: bytes, shape: tuple[int, int], bits: int) -> np.ndarray:
        """The tiled code image of ``shape`` in ``payload``; any failure is a :class:`CodecError`."""


CODECS: dict[str, type[FeatureCodec]] = {}


def register_codec(cls: type[FeatureCodec]) -> type[FeatureCodec]:
    """Class decorator: make ``cls`` available to :func:`get_codec` under ``cls.name``."""
    CODECS[cls.name] = cls
    return cls


def get_codec(name: str, **options) -> FeatureCodec:
    """The feature codec called ``name`` (``png``, ``jpeg``, ``jpeg2000``) with ``options``."""
    if name not in CODECS:
        close = difflib.get_close_matches(str(name), CODECS, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(f"codec={name!r}: expected one of {', '.join(CODECS)}{hint}")
    try:
        return CODECS[name](**options)
    except TypeError as err:
        raise ConfigError(f"codec {name!r}: {err}") from None


def codec_of(data: bytes) -> FeatureCodec:
    """The codec that reads ``data``, as its header names it (quantizer, bits and tiling included)."""
    header, _, _ = container.parse(data)
    return CODECS[header.codec](quantizer=header.quantizer, bits=header.bits, tiling=header.tiling)


def decode(data: bytes) -> Tensor:
    """Decode a stream of any registered codec (the codec is named in its header)."""
    return codec_of(data).decode(data)


@register_codec
@dataclass(frozen=True)
class PngCodec(FeatureCodec):
    """Lossless: the decoded tensor differs from the input only by the quantization error."""

    name: ClassVar[str] = "png"
    max_bits: ClassVar[int] = 16

    def _encode_image(self, image, *, overhead):
        out = io.BytesIO()
        if self.bits <= 8:
            Image.fromarray(image.astype(np.uint8), mode="L").save(out, format="PNG", optimize=False)
        else:
            Image.fromarray(image.astype(np.uint16)).save(out, format="PNG")
        return out.getvalue()

    def _decode_image(self, payload, shape, bits):
        return pillow_decode(payload, "PNG", shape, ("L",) if bits <= 8 else ("I;16", "I"))


@register_codec
@dataclass(frozen=True)
class JpegCodec(FeatureCodec):
    """Baseline JPEG of the tiled codes in the luma plane; ``quality`` 1–95 sets the rate."""

    quality: int = 75

    name: ClassVar[str] = "jpeg"

    def __post_init__(self) -> None:
        super().__post_init__()
        self._rate()

    def _rate(self, quality: int | None = None, **rest) -> dict:
        super()._rate(**rest)
        quality = self.quality if quality is None else quality
        if isinstance(quality, bool) or not isinstance(quality, int) or not 1 <= quality <= 100:
            raise ConfigError(f"jpeg quality={quality!r}: expected an integer from 1 to 100")
        return {"quality": quality}

    def _encode_image(self, image, *, overhead, quality):
        out = io.BytesIO()
        Image.fromarray(image.astype(np.uint8), mode="L").save(out, format="JPEG", quality=quality)
        return out.getvalue()

    def _decode_image(self, payload, shape, bits):
        return pillow_decode(payload, "JPEG", shape, ("L",))


@register_codec
@dataclass(frozen=True)
class Jpeg2000Codec(FeatureCodec):
    """JPEG2000 (OpenJPEG) with exact rate control.

    ``target_bits`` is the size of everything :meth:`encode` returns — container header and
    side information included — and the result lands within ``tolerance`` (relative) of it
    whenever OpenJPEG has a coding-pass boundary there; otherwise the closest size is used.
    A target below the smallest codestream raises :class:`CodecError` naming that minimum.
    """

    target_bits: float | None = None
    tolerance: float = 0.01

    name: ClassVar[str] = "jpeg2000"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.target_bits is not None:
            self._rate()
        if not isinstance(self.tolerance, (int, float)) or not 0 < self.tolerance < 1:
            raise ConfigError(f"jpeg2000 tolerance={self.tolerance!r}: expected a fraction between 0 and 1")

    def _rate(self, target_bits: float | None = None, **rest) -> dict:
        super()._rate(**rest)
        target_bits = self.target_bits if target_bits is None else target_bits
        if target_bits is None:
            raise ConfigError("the jpeg2000 codec needs target_bits (total bits of the stream, header included)")
        if isinstance(target_bits, bool) or not isinstance(target_bits, (int, float)) or not 0 < target_bits < float("inf"):
            raise ConfigError(f"jpeg2000 target_bits={target_bits!r}: expected a positive, finite number of bits")
        return {"target_bits": float(target_bits)}

    def _encode_image(self, image, *, overhead, target_bits):
        image = image.astype(np.uint8)
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

    def _decode_image(self, payload, shape, bits):
        return jpeg2000.decode_codestream(payload, shape)
