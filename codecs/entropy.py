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
:func:`range_decode` read only those arrays (CompressAI's rANS coder, with its escape coding
for symbols outside a table). Nothing here recomputes a table.

::

    trained entropy model ─update()─► EntropyTables (quantized CDF [K, L], lengths [K], offsets [K])
    symbols (int) + indexes (int, which table) ─range_encode─► bytes ─range_decode─► symbols
"""

from __future__ import annotations

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


def _coder_arguments(indexes: np.ndarray, tables: EntropyTables) -> tuple[list[int], list, list, list]:
    indexes = np.asarray(indexes)
    if not np.issubdtype(indexes.dtype, np.integer):
        raise CodecError(f"entropy-coding indexes must be integers, got {indexes.dtype}")
    if indexes.size and (indexes.min() < 0 or indexes.max() >= tables.rows):
        raise CodecError(f"entropy-coding indexes must lie in 0–{tables.rows - 1} (one per table row), "
                         f"got {indexes.min()}–{indexes.max()}")
    return (indexes.reshape(-1).tolist(), tables.quantized_cdf.tolist(), tables.cdf_length.tolist(),
            tables.offset.tolist())


def compressai_module(name: str) -> ModuleType:
    """CompressAI's module ``name``, imported on first use and quietly: importing CompressAI takes about
    half a second (it loads its point-cloud datasets, and with them torch_geometric and pandas), which
    only a learned codec needs, and warns about two deprecated torch APIs it calls, which no user can act on."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return importlib.import_module(name)


def range_encode(symbols: np.ndarray, indexes: np.ndarray, tables: EntropyTables) -> bytes:
    """rANS-code integer ``symbols``, each with the table row its ``indexes`` entry names."""
    ans = compressai_module("compressai.ans")

    symbols = np.asarray(symbols)
    if not np.issubdtype(symbols.dtype, np.integer):
        raise CodecError(f"symbols must be integers, got {symbols.dtype}")
    if symbols.shape != np.shape(indexes):
        raise CodecError(f"symbols {symbols.shape} and indexes {np.shape(indexes)} must have the same shape")
    if symbols.size and np.abs(symbols).max() > 2**24:
        raise CodecError(f"symbol magnitude {np.abs(symbols).max()} exceeds 2**24: the latent is not quantized")
    return ans.RansEncoder().encode_with_indexes(symbols.reshape(-1).tolist(), *_coder_arguments(indexes, tables))


def range_decode(data: bytes, indexes: np.ndarray, tables: EntropyTables) -> np.ndarray:
    """The symbols of :func:`range_encode`, shaped like ``indexes`` (int32).

    The rANS decoder cannot detect damage: ``data`` must come from a container whose CRC was
    checked (every cilight codec's does).
    """
    ans = compressai_module("compressai.ans")

    if not isinstance(data, (bytes, bytearray)):
        raise CodecError(f"expected bytes, got {type(data).__name__}")
    values = ans.RansDecoder().decode_with_indexes(bytes(data), *_coder_arguments(indexes, tables))
    return np.asarray(values, dtype=np.int32).reshape(np.shape(indexes))


__all__ = ["PRECISION", "EntropyTables", "compressai_module", "range_decode", "range_encode"]
