"""The learned feature codec: a trained bottleneck's latents, range-coded with its fixed tables.

Ballé, Minnen, Singh, Hwang & Johnston, "Variational image compression with a scale hyperprior",
ICLR 2018: the edge computes the integer symbols of every latent (``ŷ``, and a hyperprior's side
latent ``ẑ`` first), codes each with the discrete distribution its table row gives, and the cloud
decodes them in the same order — a hyperprior's ``y`` rows come from the decoded ``ẑ`` — and
synthesises the features. The model that computes symbols, rows and features is a trained
bottleneck (``cilight.ci_models.bottleneck``, behind the transmission's adapter) or, in deployment,
the ONNX halves; this package does not import either, it only asks for a :class:`LatentModel`, and
it runs on numpy arrays: the edge install has no torch.

::

    features [C,H,W] ─model.symbols─► {z, y} int ─range_encode (rows of each, fixed tables)─► strings
    bytes = container(header: codec "learned", no quantizer, shape C×H×W;
                      payload: tables digest (4 B) │ length of every string but the last (LEB128) │
                               CRC-16 of the rows of every latent but the first │ strings in coding order)
    bytes ─parse + CRC─► digest check ─► for each latent: rows from those decoded so far ─range_decode─►
          symbols ─model.reconstruct─► features [C,H,W]

The rate is the learned model's: there is no rate knob (a rate–accuracy curve is a sweep of the
training trade-off λ, one model per point). Every byte counts: header, digest, lengths, strings;
the lengths are variable-length integers (one byte below 128) and the last string's is implied,
since on a small stream a fixed uint32 per latent would be a visible share of the rate.

The rows of a later latent are computed from decoded data (a hyperprior's scales, a float network).
Edge and cloud compute them with the same model, but two machines' kernels may still disagree on a
value that sits on a table boundary, and rANS cannot tell: it would decode other symbols without
complaint. The 16-bit check of those rows turns that into a :class:`CodecError` naming the latent.
"""

from __future__ import annotations

import hashlib
import struct
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

import numpy as np

from cilight.codecs import container
from cilight.codecs.arrays import as_array, dtype_name
from cilight.codecs.entropy import EntropyTables, range_decode, range_encode
from cilight.codecs.errors import CodecError
from cilight.codecs.registry import RateKnob, register_codec
from cilight.errors import ConfigError

DIGEST_BYTES = 4
ROWS_CHECK_BYTES = 2
RANGE_CODER_VERSION = 2  # the first container version whose learned strings are constriction's range coder's


def rows_check(rows: np.ndarray) -> bytes:
    """The 16-bit check of a latent's table rows (the low half of their CRC-32)."""
    return struct.pack("<H", zlib.crc32(np.ascontiguousarray(rows, dtype=np.int32).tobytes()) & 0xFFFF)


def _varint(n: int) -> bytes:
    """``n`` ≥ 0 as LEB128: 7 bits per byte, the high bit set on every byte but the last."""
    out = bytearray()
    while True:
        out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
        n >>= 7
        if not n:
            return bytes(out)


def _read_varint(data: bytes, offset: int) -> tuple[int, int]:
    """``(value, offset after it)`` of the LEB128 integer at ``offset``."""
    value = shift = 0
    for i in range(offset, min(len(data), offset + 5)):
        value |= (data[i] & 0x7F) << shift
        if not data[i] & 0x80:
            return value, i + 1
        shift += 7
    raise CodecError(f"learned payload: unterminated string length at byte {offset}")


class LatentModel(Protocol):
    """What the learned codec needs of a model, on numpy arrays (batches of one): a trained
    ``LearnedBottleneck`` behind its transmission's adapter, or the exported halves."""

    channels: int
    coding_order: tuple[str, ...]

    def latent_shapes(self, height: int, width: int) -> dict[str, tuple[int, int, int]]: ...

    def symbols(self, features: np.ndarray, tables: dict[str, EntropyTables]) -> dict[str, np.ndarray]: ...

    def rows(self, name: str, decoded: dict[str, np.ndarray], shape: tuple[int, ...],
             tables: dict[str, EntropyTables]) -> np.ndarray: ...

    def reconstruct(self, symbols: dict[str, np.ndarray], tables: dict[str, EntropyTables]) -> np.ndarray: ...


def tables_digest(tables: Mapping[str, EntropyTables], order: tuple[str, ...]) -> bytes:
    """The first :data:`DIGEST_BYTES` of a SHA-256 over the tables of every latent, in coding order."""
    h = hashlib.sha256()
    for name in order:
        h.update(name.encode() + b"\0" + tables[name].digest.encode())
    return h.digest()[:DIGEST_BYTES]


@register_codec
@dataclass(frozen=True, eq=False)
class LearnedCodec:
    """``encode(features [C,H,W]) -> bytes`` / ``decode(bytes) -> features`` with a trained model's
    latents and its fixed :class:`~cilight.codecs.EntropyTables`.

    Args:
        model: the :class:`LatentModel` (a trained bottleneck, in eval mode).
        tables: its tables by latent name (``fix_tables()`` once the model is trained; stored in the
            checkpoint and beside the ONNX halves). Nothing here recomputes them.
    """

    model: Any = None
    tables: Mapping[str, EntropyTables] = field(default_factory=dict)

    name: ClassVar[str] = "learned"
    container_id: ClassVar[int] = 4
    model_bound: ClassVar[bool] = True  # a transmission's own codec: it codes with a trained model only
    rate: ClassVar[RateKnob | None] = None
    writes_bytes: ClassVar[bool] = True
    quantizes: ClassVar[bool] = False  # the model quantizes its own latents: no quantizer in the header

    def __post_init__(self) -> None:
        if self.model is None:
            raise ConfigError("the learned codec is bound to a trained model's bottleneck: use "
                              "model.transmissions[stream].own_codec(), or get_codec('learned', model=…, tables=…)")
        order = tuple(getattr(self.model, "coding_order", ()))
        if not order or set(self.tables) != set(order):
            raise ConfigError(f"learned codec: tables for latents {sorted(self.tables)}, but the model codes "
                              f"{list(order)}; fix the tables of this model (fix_tables())")
        for name in order:
            if not isinstance(self.tables[name], EntropyTables):
                raise ConfigError(f"learned codec: tables[{name!r}] is a {type(self.tables[name]).__name__}, "
                                  "expected EntropyTables")

    @property
    def coding_order(self) -> tuple[str, ...]:
        return tuple(self.model.coding_order)

    @property
    def digest(self) -> bytes:
        return tables_digest(self.tables, self.coding_order)

    @classmethod
    def stream_coder(cls, **options):
        raise ConfigError("the learned codec has no rate knob to sweep: its rate is set by training (rate_lambda); "
                          "measure a curve over models trained at several λ")

    # -- the contract -------------------------------------------------------------------
    def encode(self, features, **rate) -> bytes:
        """Bytes of ``features`` ``[C, H, W]`` (floating point; numpy, or a tensor on any device): the
        container, all included."""
        if rate:
            raise ConfigError(f"the learned codec takes no rate options (its rate is set by training), got {sorted(rate)}")
        shape = getattr(features, "shape", None)
        if shape is None or len(shape) != 3 or not dtype_name(features).startswith(("float", "bfloat")):
            got = (tuple(shape), dtype_name(features)) if shape is not None else type(features).__name__
            raise CodecError(f"learned codec: features must be a floating-point [C, H, W] array, got {got}")
        if shape[0] != self.model.channels:
            raise CodecError(f"learned codec: features have {shape[0]} channels, the model's stream "
                             f"has {self.model.channels}")
        symbols = self.model.symbols(as_array(features).astype(np.float32)[None], dict(self.tables))
        return self.encode_symbols({k: as_array(v)[0] for k, v in symbols.items()}, tuple(shape), dtype_name(features))

    def decode(self, data: bytes) -> np.ndarray:
        """The features coded in ``data``, in their original shape and dtype (bfloat16 as float32)."""
        header, symbols = self.decode_symbols(data)
        features = as_array(self.model.reconstruct({k: v[None] for k, v in symbols.items()}, dict(self.tables)))[0]
        return features if header.dtype == "bfloat16" else features.astype(header.dtype, copy=False)

    # -- symbols, for runtimes whose model halves compute them --------------------------
    def encode_symbols(self, symbols: Mapping[str, np.ndarray], shape: tuple[int, int, int],
                       dtype: str = "float32") -> bytes:
        """Bytes of one sample's latent symbols (``{latent: [N, h, w]}`` int) of a ``shape`` stream."""
        expected = self.model.latent_shapes(*shape[1:])
        batched: dict[str, np.ndarray] = {}
        for name in self.coding_order:
            s = None if symbols.get(name) is None else as_array(symbols[name], f"symbols of latent {name!r}")
            if s is None or tuple(s.shape) != expected[name] or s.dtype.kind not in "iu":
                got = None if s is None else (tuple(s.shape), str(s.dtype))
                raise CodecError(f"learned codec: symbols of latent {name!r} must be integers of shape "
                                 f"{expected[name]} for a {shape} stream, got {got}")
            batched[name] = s[None].astype(np.int32)
        strings, checks = [], b""
        for i, name in enumerate(self.coding_order):
            rows = as_array(self.model.rows(name, batched, tuple(batched[name].shape), dict(self.tables)))[0]
            strings.append(range_encode(batched[name][0], rows, self.tables[name]))
            checks += rows_check(rows) if i else b""
        payload = self.digest + b"".join(_varint(len(s)) for s in strings[:-1]) + checks + b"".join(strings)
        header = container.Header(self.name, dtype, container.NO_QUANTIZER, 0, "square", tuple(shape))
        return container.pack(header, np.zeros(0, np.uint8), payload)

    def decode_symbols(self, data: bytes) -> tuple[container.Header, dict[str, np.ndarray]]:
        """The header and every latent's symbols ``[N, h, w]`` (int32) in ``data``."""
        header, _, payload = container.parse(data)
        if header.codec != self.name:
            raise CodecError(f"stream was written by the {header.codec!r} codec, not {self.name!r}")
        if header.version < RANGE_CODER_VERSION:
            raise CodecError(f"a container version {header.version} learned stream was range-coded with CompressAI's "
                             f"rANS coder, which this cilight no longer reads (it writes version {container.VERSION}); "
                             "encode it again")
        if header.shape[0] != self.model.channels:
            raise CodecError(f"learned stream of {header.shape[0]} channels, the model's stream has {self.model.channels}")
        order = self.coding_order
        if len(payload) < DIGEST_BYTES:
            raise CodecError(f"learned payload is {len(payload)} bytes, shorter than its {DIGEST_BYTES}-byte table digest")
        if payload[:DIGEST_BYTES] != self.digest:
            raise CodecError(f"stream was coded with other entropy tables (digest {payload[:DIGEST_BYTES].hex()}, "
                             f"this model's {self.digest.hex()}): decode it with the model that wrote it")
        lengths, head = [], DIGEST_BYTES
        for _ in order[:-1]:
            length, head = _read_varint(payload, head)
            lengths.append(length)
        checks = payload[head : head + ROWS_CHECK_BYTES * (len(order) - 1)]
        head += len(checks)
        if head + sum(lengths) > len(payload):
            raise CodecError(f"learned payload: strings of {lengths} bytes announced, {len(payload) - head} present")
        lengths.append(len(payload) - head - sum(lengths))
        shapes = self.model.latent_shapes(*header.shape[1:])
        decoded: dict[str, np.ndarray] = {}
        offset = head
        for i, (name, length) in enumerate(zip(order, lengths)):
            shape = (1, *shapes[name])
            rows = as_array(self.model.rows(name, decoded, shape, dict(self.tables)))[0]
            if i and rows_check(rows) != checks[ROWS_CHECK_BYTES * (i - 1) : ROWS_CHECK_BYTES * i]:
                raise CodecError(f"the table rows of latent {name!r} computed here differ from the edge's (their "
                                 "check does not match): this machine's model disagrees with the encoder's")
            values = range_decode(payload[offset : offset + length], rows, self.tables[name])
            decoded[name] = values[None]
            offset += length
        return header, {k: v[0] for k, v in decoded.items()}


__all__ = ["DIGEST_BYTES", "LatentModel", "LearnedCodec", "rows_check", "tables_digest"]
