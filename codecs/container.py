"""The bitstream that crosses the network: a 24-byte header, side information, codec payload.

Every byte :meth:`FeatureCodec.encode` returns is in this container, and every byte counts
towards the rate (a JPEG2000 ``target_bits`` includes the header and the side information).

::

    offset size  field
    0      4     magic b"CIFT"
    4      1     container version (2; version 1 is read too, except a learned stream's
                 payload, whose range coder changed)
    5      1     codec id          (the codec's registered container_id: png 1, jpeg 2, jpeg2000 3)
    6      1     dtype of the tensor that was coded (float32 0, float16 1, bfloat16 2, float64 3)
    7      1     quantizer kind    (minmax 0, channel 1, clip 2, neuron 3; 255 none: a learned codec)
    8      1     quantizer bits    (1–16; 0 with no quantizer)
    9      1     tiling            (square 0, power_of_two 1)
    10     2     C   (uint16)
    12     2     H   (uint16)
    14     2     W   (uint16)
    16     4     payload length in bytes (uint32)
    20     4     CRC-32 of bytes 0–19, the side information and the payload
    24     …     side information (length fixed by quantizer kind and C), then the payload

All integers are little-endian. :func:`parse` checks every field, the total length and the
CRC before anything is decoded, so a corrupt, truncated or foreign stream is rejected with a
:class:`CodecError` saying what was wrong, and never reaches an image decoder.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

import numpy as np

from cilight.codecs.arrays import FLOAT_DTYPES
from cilight.codecs.errors import CodecError
from cilight.codecs.quantizers import QUANTIZERS, Quantizer
from cilight.codecs.registry import CODECS, codec_name_for_id, container_id_of
from cilight.codecs.tiling import TILINGS, TileLayout

MAGIC = b"CIFT"
VERSION = 2
READS = (1, 2)  # versions parse() accepts; a codec whose payload changed refuses the older one by name
_HEADER = struct.Struct("<4sBBBBBBHHHI")
HEADER_BYTES = _HEADER.size + 4  # + CRC-32

DTYPES = FLOAT_DTYPES  # by name, so the edge needs no torch: float32, float16, bfloat16, float64
QUANTIZER_KINDS = tuple(QUANTIZERS)  # ordered by container_id, which is the index
NO_QUANTIZER, NO_QUANTIZER_ID = "none", 255  # a codec that quantizes its own latents (a learned codec)
# Tiled images larger than this are refused before decoding (Pillow's bomb limit is ~179 M).
MAX_IMAGE_PIXELS = 2**27


def _lookup(table: tuple | dict, index: int, what: str):
    names = list(table)
    if not 0 <= index < len(names):
        raise CodecError(f"unknown {what} id {index} in the stream header (this version knows 0–{len(names) - 1})")
    return names[index]


@dataclass(frozen=True)
class Header:
    """Everything the cloud needs to turn a payload back into a tensor, validated on creation."""

    codec: str
    dtype: str  # the coded tensor's dtype by name (one of DTYPES)
    quantizer: str
    bits: int
    tiling: str
    shape: tuple[int, int, int]
    version: int = VERSION  # what parse() read; what pack() writes is always VERSION

    def __post_init__(self) -> None:
        if container_id_of(self.codec) is None:
            writers = [name for name, cls in CODECS.items() if cls.container_id is not None]
            raise CodecError(f"codec {self.codec!r} has no container id; codecs that write bytes: {', '.join(writers)}")
        object.__setattr__(self, "dtype", str(self.dtype).removeprefix("torch."))  # a torch dtype names the same
        if self.dtype not in DTYPES:
            raise CodecError(f"tensor dtype {self.dtype} cannot be coded; expected one of {DTYPES}")
        quantizes = getattr(CODECS[self.codec], "quantizes", True)
        if not quantizes:
            if self.quantizer != NO_QUANTIZER or self.bits != 0:
                raise CodecError(f"the {self.codec} codec has no quantizer: expected quantizer {NO_QUANTIZER!r} with "
                                 f"0 bits, got {self.quantizer!r} with {self.bits}")
        elif self.quantizer not in QUANTIZER_KINDS:
            raise CodecError(f"quantizer {self.quantizer!r} unknown for the {self.codec} codec; expected one of "
                             f"{QUANTIZER_KINDS}")
        elif not 1 <= self.bits <= 16:
            raise CodecError(f"quantizer bits {self.bits} out of range 1–16")
        if self.tiling not in TILINGS:
            raise CodecError(f"tiling {self.tiling!r} unknown; expected one of {TILINGS}")
        if len(self.shape) != 3 or not all(isinstance(n, int) and 1 <= n <= 0xFFFF for n in self.shape):
            raise CodecError(f"tensor shape {self.shape} cannot be coded: expected [C, H, W], each 1–65535")
        rows, cols = self.layout.image_shape
        if rows * cols > MAX_IMAGE_PIXELS:
            raise CodecError(f"tiled image {rows}×{cols} exceeds the {MAX_IMAGE_PIXELS}-pixel limit")

    @property
    def layout(self) -> TileLayout:
        return TileLayout.named(self.tiling, *self.shape)

    def dequantizer(self) -> Quantizer:
        """The quantizer that reads this stream's codes (encoder-only options at their defaults)."""
        if self.quantizer == NO_QUANTIZER:
            raise CodecError(f"a {self.codec} stream has no quantizer")
        return QUANTIZERS[self.quantizer](bits=self.bits)

    @property
    def side_bytes(self) -> int:
        return _side_bytes(self.quantizer, self.bits, self.shape[0])


def _side_bytes(quantizer: str, bits: int, channels: int) -> int:
    return 0 if quantizer == NO_QUANTIZER else QUANTIZERS[quantizer](bits=bits).side_bytes(channels)


def _quantizer_id(name: str) -> int:
    return NO_QUANTIZER_ID if name == NO_QUANTIZER else QUANTIZERS[name].container_id


def _quantizer_name(quantizer_id: int, offset: int = 0) -> str:
    if quantizer_id == NO_QUANTIZER_ID:
        return NO_QUANTIZER
    where = f" at offset {offset}" if offset else ""
    return _lookup(QUANTIZER_KINDS, quantizer_id, f"quantizer{where}")


def pack(header: Header, side: np.ndarray, payload: bytes) -> bytes:
    """Header + side information + payload, with the CRC-32 over all three."""
    fields = _HEADER.pack(
        MAGIC,
        VERSION,
        container_id_of(header.codec),
        DTYPES.index(header.dtype),
        _quantizer_id(header.quantizer),
        header.bits,
        TILINGS.index(header.tiling),
        *header.shape,
        len(payload),
    )
    body = side.tobytes() + payload
    return fields + struct.pack("<I", zlib.crc32(body, zlib.crc32(fields))) + body


def parse(data: bytes) -> tuple[Header, bytes, bytes]:
    """Validate ``data`` and split it into (header, side information bytes, payload)."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise CodecError(f"expected bytes, got {type(data).__name__}")
    data = bytes(data)
    if len(data) < HEADER_BYTES:
        raise CodecError(f"stream is {len(data)} bytes, shorter than the {HEADER_BYTES}-byte header")
    magic, version, codec_id, dtype_id, quantizer_id, bits, tiling_id, c, h, w, payload_len = _HEADER.unpack_from(data)
    if magic != MAGIC:
        raise CodecError(f"not a cilight feature stream: magic {magic!r}, expected {MAGIC!r}")
    if version not in READS:
        raise CodecError(f"container version {version} is not supported (this cilight reads versions "
                         f"{', '.join(map(str, READS))})")
    codec = codec_name_for_id(codec_id)
    if codec is None:
        known = sorted(cls.container_id for cls in CODECS.values() if cls.container_id is not None)
        raise CodecError(f"unknown codec id {codec_id} in the stream header; known: {known}")
    header = Header(
        codec=codec,
        dtype=_lookup(dict.fromkeys(DTYPES), dtype_id, "dtype"),
        quantizer=_quantizer_name(quantizer_id),
        bits=bits,
        tiling=_lookup(TILINGS, tiling_id, "tiling"),
        shape=(c, h, w),
        version=version,
    )
    n_side = header.side_bytes
    expected = HEADER_BYTES + n_side + payload_len
    if len(data) != expected:
        raise CodecError(
            f"stream is {len(data)} bytes but its header announces {expected} "
            f"({HEADER_BYTES} header + {n_side} side information + {payload_len} payload): truncated or padded"
        )
    (crc,) = struct.unpack_from("<I", data, _HEADER.size)
    actual = zlib.crc32(data[HEADER_BYTES:], zlib.crc32(data[: _HEADER.size]))
    if crc != actual:
        raise CodecError(f"CRC-32 mismatch (stored {crc:08x}, computed {actual:08x}): the stream is corrupt")
    return header, data[HEADER_BYTES : HEADER_BYTES + n_side], data[HEADER_BYTES + n_side :]


def split_streams(data: bytes) -> list[bytes]:
    """Cut a concatenation of containers (one per transmitted stream) into validated containers."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise CodecError(f"expected bytes, got {type(data).__name__}")
    data, pieces, offset = bytes(data), [], 0
    if not data:
        raise CodecError("an empty frame (0 bytes): expected one container per transmitted stream")
    while offset < len(data):
        if len(data) - offset < HEADER_BYTES:
            raise CodecError(f"{len(data) - offset} trailing bytes at offset {offset} are shorter than a header")
        magic, *_, quantizer_id, bits, _, c, _, _, payload_len = _HEADER.unpack_from(data, offset)
        if magic != MAGIC:
            raise CodecError(f"not a cilight feature stream at offset {offset}: magic {magic!r}, expected {MAGIC!r}")
        quantizer = _quantizer_name(quantizer_id, offset)
        if not (quantizer == NO_QUANTIZER or 1 <= bits <= 16):
            raise CodecError(f"unreadable quantizer fields in the header at offset {offset}")
        end = offset + HEADER_BYTES + _side_bytes(quantizer, bits, c) + payload_len
        parse(data[offset:end])  # everything else, CRC included
        pieces.append(data[offset:end])
        offset = end
    if not pieces:
        raise CodecError("no stream in 0 bytes")
    return pieces
