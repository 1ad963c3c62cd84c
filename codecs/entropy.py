"""Entropy coding with fixed integer tables: the part of a learned codec that must agree bit for bit.

Ballé, Minnen, Singh, Hwang & Johnston, "Variational image compression with a scale hyperprior",
ICLR 2018: a latent ``ŷ = round(y − μ)`` is coded with a discrete distribution per element,
chosen by an *index* — the channel for a factorized prior (``EntropyBottleneck``), the
quantized scale for a Gaussian conditional (``GaussianConditional``). CompressAI (Bégaint et al.,
"CompressAI: a PyTorch library and evaluation platform for end-to-end compression research",
arXiv:2011.03029, 2020) turns each distribution into an integer CDF table (``update()``) and
codes with rANS; its tables are floating-point results, recomputed whenever ``update()`` runs,
so bytes written with one build may not decode with another (CompressAI issues #279, #309).

cilight fixes the tables once: :class:`EntropyTables` holds them as integer arrays, validated on
creation, stored in the checkpoint and beside the ONNX halves, and :func:`range_encode` /
:func:`range_decode` read only those arrays, with the escape coding CompressAI defines for symbols
outside a table. Nothing here recomputes a table. The coder is constriction's range coder, not
CompressAI's rANS extension: CompressAI depends on torch, and the edge install has none; the
probabilities constriction reads are the tables' integer steps over 2¹⁶, exact in float64, so both
installs write and read the same bytes (container version 2; version-1 learned streams, coded with
CompressAI's rANS, are refused by name).

::

    trained entropy model ─update()─► EntropyTables (quantized CDF [K, L], lengths [K], offsets [K])
    symbols (int) + indexes (int, which table) ─range_encode─► bytes ─range_decode─► symbols
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import warnings
from dataclasses import dataclass
from types import ModuleType

import numpy as np

from cilight.codecs.errors import CodecError
from cilight.errors import ConfigError

PRECISION = 16  # CompressAI's entropy_coder_precision: every CDF ends at 2**16
ARRAY_NAMES = ("quantized_cdf", "cdf_length", "offset", "medians")


@dataclass(frozen=True, eq=False)
class EntropyTables:
    """The integer CDF tables of one entropy model, as CompressAI's rANS coder reads them.

    Attributes:
        quantized_cdf: ``[K, L]`` int32; row ``k`` holds ``cdf_length[k]`` non-decreasing values
            from 0 to ``2**precision`` (the last symbol of each row is the escape), zero-padded.
        cdf_length: ``[K]`` int32, the used length of each row (≥ 2).
        offset: ``[K]`` int32, the symbol value of each row's first entry.
        medians: ``[K]`` float32, what is subtracted from a latent before rounding, per row (a
            factorized prior's medians: symbols are ``round(y − median)``), or ``None`` when
            symbols are ``round(y)`` (a Gaussian conditional). Part of the tables, since edge and
            cloud must agree on it as bit-exactly as on the CDFs.
    """

    quantized_cdf: np.ndarray
    cdf_length: np.ndarray
    offset: np.ndarray
    precision: int = PRECISION
    medians: np.ndarray | None = None

    def __post_init__(self) -> None:
        cdf, length, offset = (np.asarray(a) for a in (self.quantized_cdf, self.cdf_length, self.offset))
        for name, array, dims in (("quantized_cdf", cdf, 2), ("cdf_length", length, 1), ("offset", offset, 1)):
            if array.ndim != dims or not np.issubdtype(array.dtype, np.integer):
                raise ConfigError(f"entropy tables: {name} must be a {dims}-D integer array, got {array.dtype} {array.shape}")
        if len(cdf) == 0 or length.shape != (len(cdf),) or offset.shape != (len(cdf),):
            raise ConfigError(f"entropy tables: {len(cdf)} CDF rows, {length.size} lengths and {offset.size} offsets; "
                              "expected one length and one offset per row, at least one row")
        if self.precision != PRECISION:
            raise ConfigError(f"entropy tables: precision {self.precision}, expected {PRECISION} (CompressAI's coder)")
        if (length < 2).any() or (length > cdf.shape[1]).any():
            raise ConfigError(f"entropy tables: CDF lengths must lie in 2–{cdf.shape[1]}, got {length.min()}–{length.max()}")
        top = 1 << self.precision
        for k, n in enumerate(length):
            row = cdf[k, :n]
            if row[0] != 0 or row[-1] != top or (np.diff(row) < 0).any():
                raise ConfigError(f"entropy tables: row {k} is not a CDF from 0 to {top} (starts {row[0]}, ends {row[-1]})")
        for name, array in (("quantized_cdf", cdf), ("cdf_length", length), ("offset", offset)):
            object.__setattr__(self, name, np.ascontiguousarray(array, dtype=np.int32))
            getattr(self, name).setflags(write=False)
        if self.medians is not None:
            medians = np.asarray(self.medians)
            if medians.shape != (len(cdf),) or not np.issubdtype(medians.dtype, np.floating) or not np.isfinite(medians).all():
                raise ConfigError(f"entropy tables: medians must be {len(cdf)} finite floats (one per row), got "
                                  f"{medians.dtype} {medians.shape}")
            object.__setattr__(self, "medians", np.ascontiguousarray(medians, dtype=np.float32))
            self.medians.setflags(write=False)

    @classmethod
    def of(cls, entropy_model) -> EntropyTables:
        """The tables of a CompressAI ``EntropyBottleneck``/``GaussianConditional`` after its ``update()``
        (an ``EntropyBottleneck``'s medians included)."""
        cdf = getattr(entropy_model, "_quantized_cdf", None)
        if cdf is None or cdf.numel() == 0:
            raise ConfigError(f"{type(entropy_model).__name__} has no CDF tables yet: call update() once the model is trained")
        quantiles = getattr(entropy_model, "quantiles", None)
        medians = None if quantiles is None else quantiles[:, 0, 1].detach().cpu().numpy().astype(np.float32)
        return cls(cdf.cpu().numpy(), entropy_model._cdf_length.cpu().numpy().reshape(-1),
                   entropy_model._offset.cpu().numpy().reshape(-1), int(entropy_model.entropy_coder_precision), medians)

    @property
    def rows(self) -> int:
        return len(self.cdf_length)

    @functools.cached_property
    def probabilities(self) -> np.ndarray:
        """``[K, L − 1]`` float64: each row's symbol probabilities, exactly its CDF's steps over ``2**precision``
        (0 past the row's length), as the range coder reads them."""
        steps = np.diff(self.quantized_cdf.astype(np.int64), axis=1)
        steps[np.arange(steps.shape[1])[None, :] >= self.cdf_length[:, None] - 1] = 0
        return steps.astype(np.float64) / (1 << self.precision)

    @property
    def digest(self) -> str:
        """``sha256:<12 hex>`` of the tables: bytes coded with other tables are refused by name."""
        h = hashlib.sha256()
        for array in self._arrays():
            h.update(np.asarray(array.shape, np.int64).tobytes())
            h.update(array.tobytes())
        return "sha256:" + h.hexdigest()[:12]

    def _arrays(self) -> tuple[np.ndarray, ...]:
        return (self.quantized_cdf, self.cdf_length, self.offset) + (() if self.medians is None else (self.medians,))

    def arrays(self, prefix: str = "") -> dict[str, np.ndarray]:
        """As named arrays (for ``np.savez`` or a checkpoint); :meth:`from_arrays` reads them back."""
        return dict(zip((f"{prefix}{name}" for name in ARRAY_NAMES), self._arrays()))

    @classmethod
    def from_arrays(cls, arrays, prefix: str = "") -> EntropyTables:
        try:
            cdf, length, offset = (np.asarray(arrays[f"{prefix}{name}"]) for name in ARRAY_NAMES[:3])
        except KeyError as err:
            raise ConfigError(f"entropy tables {prefix or ''}: missing array {err}") from None
        medians = arrays[f"{prefix}medians"] if f"{prefix}medians" in arrays else None
        return cls(cdf, length, offset, medians=None if medians is None else np.asarray(medians))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, EntropyTables) and self.digest == other.digest

    def __hash__(self) -> int:
        return hash(self.digest)


def _rows_of(indexes, tables: EntropyTables) -> np.ndarray:
    indexes = np.asarray(indexes)
    if not np.issubdtype(indexes.dtype, np.integer):
        raise CodecError(f"entropy-coding indexes must be integers, got {indexes.dtype}")
    if indexes.size and (indexes.min() < 0 or indexes.max() >= tables.rows):
        raise CodecError(f"entropy-coding indexes must lie in 0–{tables.rows - 1} (one per table row), "
                         f"got {indexes.min()}–{indexes.max()}")
    return indexes.reshape(-1).astype(np.intp)


def compressai_module(name: str) -> ModuleType:
    """CompressAI's module ``name``, imported on first use and quietly (the training install's entropy models;
    the edge never needs it): importing CompressAI takes about half a second (it loads its point-cloud datasets,
    and with them torch_geometric and pandas), and warns about two deprecated torch APIs it calls, which no user
    can act on."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return importlib.import_module(name)


def _constriction():
    try:
        return importlib.import_module("constriction")
    except ImportError:
        raise ConfigError("the learned codec's range coder needs constriction (pip install constriction, or the edge "
                          "install: pip install ./edge)") from None


def range_encode(symbols: np.ndarray, indexes: np.ndarray, tables: EntropyTables) -> bytes:
    """Range-code integer ``symbols``, each with the table row its ``indexes`` entry names.

    Each symbol's value ``v = symbol − offset[row]`` is coded with its row's distribution; a value outside
    the row (``v < 0`` or ``v ≥ L − 2``, ``L`` the row's CDF length) is coded as the row's last symbol, the
    escape, followed after all symbols by its magnitude in 4-bit chunks (the escape scheme of Ballé et al.'s
    tables as CompressAI defines them). The coder is constriction's range coder (Bamler, "Understanding
    entropy coding with asymmetric numeral systems (ANS): a statistician's perspective", arXiv:2201.01741,
    2022), which runs without torch: the edge and the cloud write and read the same bytes in any install.
    """
    constriction = _constriction()
    symbols = np.asarray(symbols)
    if not np.issubdtype(symbols.dtype, np.integer):
        raise CodecError(f"symbols must be integers, got {symbols.dtype}")
    if symbols.shape != np.shape(indexes):
        raise CodecError(f"symbols {symbols.shape} and indexes {np.shape(indexes)} must have the same shape")
    if symbols.size and np.abs(symbols.astype(np.int64)).max() > 2**24:
        raise CodecError(f"symbol magnitude {np.abs(symbols).max()} exceeds 2**24: the latent is not quantized")
    rows = _rows_of(indexes, tables)
    values = symbols.reshape(-1).astype(np.int64) - tables.offset[rows]
    escape = tables.cdf_length[rows].astype(np.int64) - 2
    low, high = values < 0, values >= escape
    raw = np.where(low, -2 * values - 1, 2 * (values - escape))[low | high]
    encoder = constriction.stream.queue.RangeEncoder()
    if rows.size:
        encoder.encode(np.where(low | high, escape, values).astype(np.int32),
                       constriction.stream.model.Categorical(perfect=False), tables.probabilities[rows])
    if raw.size:
        encoder.encode(_bypass_chunks(raw), constriction.stream.model.Uniform(BYPASS_SIZE))
    return encoder.get_compressed().astype("<u4").tobytes()


def range_decode(data: bytes, indexes: np.ndarray, tables: EntropyTables) -> np.ndarray:
    """The symbols of :func:`range_encode`, shaped like ``indexes`` (int32).

    A range decoder cannot detect damage: ``data`` must come from a container whose CRC was
    checked (every cilight codec's does).
    """
    constriction = _constriction()
    if not isinstance(data, (bytes, bytearray)):
        raise CodecError(f"expected bytes, got {type(data).__name__}")
    if len(data) % 4:
        raise CodecError(f"a range-coded string is whole 32-bit words; {len(data)} bytes is not")
    rows = _rows_of(indexes, tables)
    if not rows.size:
        return np.zeros(np.shape(indexes), np.int32)
    try:
        decoder = constriction.stream.queue.RangeDecoder(np.frombuffer(bytes(data), "<u4").astype(np.uint32))
        values = decoder.decode(constriction.stream.model.Categorical(perfect=False),
                                tables.probabilities[rows]).astype(np.int64)
        escape = tables.cdf_length[rows].astype(np.int64) - 2
        uniform = constriction.stream.model.Uniform(BYPASS_SIZE)
        for i in np.flatnonzero(values == escape):
            count = int(decoder.decode(uniform, 1)[0])
            chunks = decoder.decode(uniform, count).astype(np.int64) if count else np.zeros(0, np.int64)
            raw = int(sum(int(c) << (BYPASS_BITS * j) for j, c in enumerate(chunks)))
            values[i] = -(raw + 1) // 2 if raw % 2 else escape[i] + raw // 2
    except (ValueError, RuntimeError, AssertionError) as err:
        raise CodecError(f"the range-coded string does not decode with these tables: {err}") from None
    return (values + tables.offset[rows]).astype(np.int32).reshape(np.shape(indexes))


BYPASS_BITS = 4  # an escaped value's magnitude goes in 4-bit chunks, as in CompressAI's tables' scheme
BYPASS_SIZE = 2**BYPASS_BITS


def _bypass_chunks(raw: np.ndarray) -> np.ndarray:
    """Each magnitude as its number of 4-bit chunks, then the chunks, least significant first."""
    out = []
    for value in raw.tolist():
        chunks = []
        while value:
            chunks.append(value & (BYPASS_SIZE - 1))
            value >>= BYPASS_BITS
        out += [len(chunks), *chunks]
    return np.asarray(out, dtype=np.int32)


__all__ = ["PRECISION", "EntropyTables", "compressai_module", "range_decode", "range_encode"]
