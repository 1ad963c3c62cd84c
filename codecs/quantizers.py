"""Scalar quantizers that turn a feature tensor into integer codes plus side information.

Four ways of choosing the quantization interval, all uniform with ``L = 2ⁿ − 1`` steps:

* ``minmax`` — one interval ``[min, max]`` over the whole tensor (Alvar & Bajić, IEEE TIP
  2021, §VI-A; Alvar & Bajić, ICIP 2019, §2.1). Side information: ``min`` and ``max`` as
  float32 (8 bytes).
* ``channel`` — one interval per channel, ``round((Z − m)/(M − m)·(2ⁿ − 1))``
  (Choi et al., ICASSP 2020, §3.2, eq 4) with ``m`` and ``M`` stored as float16
  (``C·32`` bits of side information, as in that paper). The float16 bounds are rounded
  *outwards* (``m`` down, ``M`` up) so every element stays inside its interval; the paper
  only says "rounded to 16-bit", and rounding to nearest would clip the extremes.
* ``clip`` — the interval ``[μ − wσ, μ + wσ]`` centred on the tensor mean (Ulhaq, B.A.Sc.
  thesis, SFU 2020, §2.1.2) with ``N = 2ⁿ`` bins reconstructed at their midpoints, as in the
  thesis; values outside are clipped. Side information: ``μ`` and ``wσ`` as float32.
* ``neuron`` — one interval ``[μ_i − wσ_i, μ_i + wσ_i]`` per tensor element ("neuron") i, with
  ``μ_i`` and ``σ_i`` measured once over a sample set (the same thesis, §2.1.3), ``N = 2ⁿ``
  bins as for ``clip``. The statistics (:class:`NeuronStatistics`) are shipped once, beside the
  model, not with every tensor; the per-tensor side information is their 32-bit fingerprint,
  so a decoder holding other statistics refuses the stream instead of decoding garbage.

Every quantizer maps a ``[C, H, W]`` float array (numpy, or a tensor, which is copied to the CPU) to
numpy codes of the same shape (``uint8`` for ``n ≤ 8``, ``int32`` otherwise) and back: the byte path
needs no torch. The arithmetic lives in :func:`uniform_step`, :func:`uniform_codes` and
:func:`uniform_values`, written once for numpy arrays and torch tensors alike
(:mod:`cilight.codecs.arrays`), which the Q-layer and BaF of ``cilight.ci_models``, the differentiable
proxy and the exported edge halves share, so there is one definition of "n-bit min–max".

The two quantizers an exported edge half computes on the device (:data:`WIRE_QUANTIZERS`,
:func:`wire_quantizer`) are :class:`BoundsQuantizer` s: their side information is the
interval's bounds, and each declares its own layout — :meth:`~BoundsQuantizer.side_of` (the
edge half's ``minimum``/``maximum`` → side information), :meth:`~BoundsQuantizer.range_of`
(side information → the cloud half's inputs), :meth:`~BoundsQuantizer.group_side` (the side
information of a channel group) — and every quantizer its :attr:`~Quantizer.tiling` (the
default grid, or BaF's power-of-two grid for ``channel``), so no caller asks which one it holds::

    edge half    minimum, maximum  ([batch] for minmax, [batch, C] for channel)
                     │ side_of (one image)          ▲ range_of (a batch of one)
                     ▼                              │
    container    side information  ([min, max] float32, or [m_1…m_C, M_1…M_C] float16)
"""

from __future__ import annotations

import math
import zlib
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from cilight.codecs.arrays import amax, amin, as_array, astype
from cilight.codecs.errors import CodecError
from cilight.codecs.tiling import DEFAULT_TILING
from cilight.errors import ConfigError

# A constant tensor has max == min; a tiny step keeps the division finite and decodes to min.
MIN_STEP = 1e-12


def uniform_step(low, high, levels: int):
    """The min–max step ``Δ = (high − low)/levels`` (``levels = 2ⁿ − 1``), at least :data:`MIN_STEP`.

    The one definition of the step of every min–max quantizer: per tensor (Alvar & Bajić, ICIP
    2019, §2.1), per channel (Choi et al., ICASSP 2020, eq 4–5), in the Q-layer, in BaF and in
    the JPEG2000 proxy. ``clip`` and ``neuron`` divide their interval into ``2ⁿ`` bins instead and
    pass ``levels + 1``. Only arithmetic that numpy arrays and torch tensors share, so on tensors it is
    differentiable and exports to ONNX, and on numpy arrays it is the edge's byte path.
    """
    return ((high - low) / levels).clip(min=MIN_STEP)


def uniform_codes(x, low, step, levels: int):
    """``clamp(round((x − low) / step), 0, levels)`` as floats (round half to even, in numpy and torch);
    ``low``/``step`` broadcast."""
    return ((x - low) / step).round().clip(0, levels)


def uniform_values(codes, low, step):
    """``low + codes·step``: the dequantized values of :func:`uniform_codes`."""
    return low + codes * step


def code_dtype(bits: int) -> str:
    """The dtype of ``bits``-bit codes by name (:func:`cilight.codecs.arrays.astype` casts numpy and torch to it)."""
    return "uint8" if bits <= 8 else "int32"


def _check_bits(bits: object) -> int:
    if isinstance(bits, bool) or not isinstance(bits, int) or not 1 <= bits <= 16:
        raise ConfigError(f"quantizer bits={bits!r}: expected an integer from 1 to 16")
    return bits


def _check_features(x: object) -> np.ndarray:
    """``x`` (a numpy array or a tensor on any device) as a float32 ``[C, H, W]`` numpy array, checked."""
    if not (isinstance(x, np.ndarray) or hasattr(x, "shape") and hasattr(x, "dtype")):
        raise CodecError(f"features must be an array of shape [C, H, W] (numpy or torch), got {type(x).__name__}")
    x = as_array(x)
    if x.ndim != 3 or x.size == 0:
        raise CodecError(f"features must have shape [C, H, W] with no empty axis, got {tuple(x.shape)}")
    if not np.issubdtype(x.dtype, np.floating):
        raise CodecError(f"features must be floating point, got {x.dtype}")
    if not np.isfinite(x).all():
        raise CodecError("features contain NaN or infinite values; only finite tensors can be quantized")
    return x.astype(np.float32, copy=False)


def _check_codes(codes: object) -> np.ndarray:
    codes = as_array(codes, "codes")
    if codes.ndim != 3:
        raise CodecError(f"codes must have shape [C, H, W], got {tuple(codes.shape)}")
    return codes


@dataclass(frozen=True)
class Quantized:
    """Integer codes of a ``[C, H, W]`` tensor and the side information that dequantizes them."""

    codes: np.ndarray  # [C, H, W], uint8 or int32
    side: np.ndarray  # 1-D, dtype = the quantizer's side_dtype


@dataclass(frozen=True)
class Quantizer(ABC):
    """Base of the uniform quantizers; subclasses choose the interval and the side information."""

    bits: int = 8

    kind: ClassVar[str]
    container_id: ClassVar[int]  # the quantizer byte of the container header
    side_dtype: ClassVar[np.dtype]
    tiling: ClassVar[str] = DEFAULT_TILING  # the grid its codes are tiled on (cilight.codecs.tiling)

    def __post_init__(self) -> None:
        _check_bits(self.bits)

    @property
    def levels(self) -> int:
        return 2**self.bits - 1

    @abstractmethod
    def side_numel(self, channels: int) -> int:
        """Number of side-information values sent for a tensor with ``channels`` channels."""

    def side_bytes(self, channels: int) -> int:
        return self.side_numel(channels) * np.dtype(self.side_dtype).itemsize

    def quantize(self, features) -> Quantized:
        """Codes and side information of ``features`` (``[C, H, W]`` float, numpy or a tensor)."""
        x = _check_features(features)
        low, step, side = self._interval(x)
        codes = uniform_codes(x, low, step, self.levels).astype(code_dtype(self.bits))
        return Quantized(codes, side.astype(self.side_dtype))

    def codes_with(self, features, side: np.ndarray) -> np.ndarray:
        """The codes of ``features`` on the interval that ``side`` describes (not the features' own):
        what a receiver writes into a tensor whose range it already knows (error concealment)."""
        x = _check_features(features)
        side = np.asarray(side, dtype=np.float64)
        if side.shape != (self.side_numel(x.shape[0]),) or not np.isfinite(side).all():
            raise CodecError(f"{self.kind} side information for {x.shape[0]} channels must hold "
                             f"{self.side_numel(x.shape[0])} finite values, got {side.shape}")
        low, step = self._dequantization(side, tuple(x.shape))
        return uniform_codes(x, low, step, self.levels).astype(code_dtype(self.bits))

    def dequantize(self, codes, side: np.ndarray) -> np.ndarray:
        """The float32 values of ``codes`` (``[C, H, W]``) on the interval ``side`` describes."""
        codes = _check_codes(codes)
        side = np.asarray(side)
        expected = self.side_numel(codes.shape[0])
        if side.shape != (expected,):
            raise CodecError(f"{self.kind} side information must hold {expected} values, got {side.shape}")
        side = side.astype(np.float64)
        if not np.isfinite(side).all():
            raise CodecError(f"{self.kind} side information is not finite: {side.tolist()[:4]}")
        low, step = self._dequantization(side, tuple(codes.shape))
        return uniform_values(codes.astype(np.float32), low, step)

    @abstractmethod
    def _interval(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(low, step) broadcastable to ``x`` (float32), and the side information that reproduces them."""

    @abstractmethod
    def _dequantization(self, side: np.ndarray, shape: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray]:
        """(low, step) for dequantization, from the side information of a tensor of ``shape``."""


@dataclass(frozen=True)
class BoundsQuantizer(Quantizer):
    """A min–max quantizer whose side information is its interval bounds, all lower bounds then
    all upper bounds: one pair per tensor, or one pair per channel (:attr:`per_channel`).

    These are the quantizers an exported edge half computes (:data:`WIRE_QUANTIZERS`): the half
    outputs ``minimum``/``maximum`` (``[batch]``, or ``[batch, C]`` per channel), and the layout
    between those tensors and the container's side information is defined here, once.
    """

    per_channel: ClassVar[bool]
    range_layout: ClassVar[str]  # how the ONNX metadata describes the range

    def side_numel(self, channels: int) -> int:
        return 2 * channels if self.per_channel else 2

    @classmethod
    def side_of(cls, minimum, maximum) -> np.ndarray:
        """The side information of one tensor from its bounds as the edge half outputs them for one
        image (a number, or ``[C]`` per channel; any shape holding those values is raveled)."""
        low, high = np.ravel(np.asarray(minimum)), np.ravel(np.asarray(maximum))
        if low.shape != high.shape or low.size == 0 or (not cls.per_channel and low.size != 1):
            what = "one value each" if not cls.per_channel else "one value per channel each"
            raise CodecError(f"{cls.kind} bounds need {what}, got minimum {list(np.shape(minimum))} and maximum "
                             f"{list(np.shape(maximum))}")
        return np.concatenate([low, high]).astype(cls.side_dtype)

    @classmethod
    def range_of(cls, side: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(minimum, maximum)`` from the side information, as the cloud half's float32 inputs for a
        batch of one: ``[1]`` each, or ``[1, C]`` per channel."""
        side = np.asarray(side, dtype=np.float32)
        half = cls._channels_of(side)
        low, high = side[:half], side[half:]
        return (low[None], high[None]) if cls.per_channel else (low, high)

    @classmethod
    def group_side(cls, side: np.ndarray, first: int, count: int) -> np.ndarray:
        """The side information of channels ``first … first + count − 1`` (a channel group that decodes
        alone): the same range per tensor, those channels' bounds per channel."""
        side = np.asarray(side)
        channels = cls._channels_of(side)
        if not cls.per_channel:
            return side
        if first < 0 or count < 1 or first + count > channels:
            raise ConfigError(f"channel group {first}+{count} lies outside a stream of {channels} channels")
        return np.concatenate([side[first : first + count], side[channels + first : channels + first + count]])

    @classmethod
    def _channels_of(cls, side: np.ndarray) -> int:
        """The number of bound pairs in ``side``, which must be 1-D and hold whole pairs."""
        if side.ndim != 1 or len(side) < 2 or len(side) % 2 or (not cls.per_channel and len(side) != 2):
            expected = "2 values" if not cls.per_channel else "2·C values"
            raise CodecError(f"{cls.kind} side information must hold {expected}, got shape {list(side.shape)}")
        return len(side) // 2


@dataclass(frozen=True)
class MinMaxQuantizer(BoundsQuantizer):
    """One ``[min, max]`` interval for the whole tensor; side information 2 × float32."""

    kind: ClassVar[str] = "minmax"
    container_id: ClassVar[int] = 0
    side_dtype: ClassVar[np.dtype] = np.dtype("<f4")
    per_channel: ClassVar[bool] = False
    range_layout: ClassVar[str] = "per sample"

    def _interval(self, x):
        low, high = x.min(), x.max()
        return low, uniform_step(low, high, self.levels), np.array([low, high], dtype=np.float64)

    def _dequantization(self, side, shape):
        low, high = (np.float32(v) for v in side)
        return low, uniform_step(low, high, self.levels)


FLOAT16_MAX = 65504.0


def float16_bounds(low, high):
    """``low`` and ``high`` rounded to float16 *outwards* (``m ≤ low``, ``M ≥ high``), as float32.

    Each bound is first moved outwards by a little more than half a float16 step (2⁻¹⁰ of its
    magnitude, 2⁻²⁴ near zero, where float16 steps are absolute) and then rounded to nearest,
    so the rounded interval still covers the data. Only casts and arithmetic: the same function
    runs in the exported ONNX edge half (BaF, Choi et al., ICASSP 2020, §3.2) and in the
    ``channel`` quantizer of the codecs. Values beyond float16's range become ±inf; callers check.
    """
    margin = 2.0**-10
    tiny = 2.0**-24
    low16 = astype(astype(low - abs(low) * margin - tiny, "float16"), "float32")
    high16 = astype(astype(high + abs(high) * margin + tiny, "float16"), "float32")
    return low16, high16


def channel_bounds(x):
    """Per-channel float16 ``(m, M)`` of ``x`` ``[..., C, H, W]`` (BaF eq 4), each ``[..., C]``; numpy or torch."""
    flat = x.reshape(*x.shape[:-2], -1)
    return float16_bounds(amin(flat, -1), amax(flat, -1))


@dataclass(frozen=True)
class ChannelQuantizer(BoundsQuantizer):
    """One ``[m, M]`` interval per channel (BaF eq 4); side information ``2C`` × float16; codes
    tiled on BaF's power-of-two grid (Choi et al., ICASSP 2020, §3.2)."""

    kind: ClassVar[str] = "channel"
    container_id: ClassVar[int] = 1
    side_dtype: ClassVar[np.dtype] = np.dtype("<f2")
    tiling: ClassVar[str] = "power_of_two"
    per_channel: ClassVar[bool] = True
    range_layout: ClassVar[str] = "per channel, float16"

    def _interval(self, x):
        low, high = channel_bounds(x)
        if not (np.isfinite(low).all() and np.isfinite(high).all()):
            raise CodecError(
                f"per-channel range [{x.min():.4g}, {x.max():.4g}] does not fit in float16 "
                f"(|value| ≤ {FLOAT16_MAX:g}); use the 'minmax' quantizer for such tensors"
            )
        side = np.concatenate([low, high]).astype(np.float64)
        low, step = self._dequantization(side, tuple(x.shape))
        return low, step, side

    def _dequantization(self, side, shape):
        channels = shape[0]
        low = side[:channels].astype(np.float32).reshape(-1, 1, 1)
        high = side[channels:].astype(np.float32).reshape(-1, 1, 1)
        return low, uniform_step(low, high, self.levels)


@dataclass(frozen=True)
class ClipQuantizer(Quantizer):
    """``N = 2ⁿ`` bins over ``[μ − wσ, μ + wσ]``, midpoint reconstruction (thesis §2.1.2)."""

    width: float = 3.0

    kind: ClassVar[str] = "clip"
    container_id: ClassVar[int] = 2
    side_dtype: ClassVar[np.dtype] = np.dtype("<f4")

    def __post_init__(self) -> None:
        super().__post_init__()
        if not isinstance(self.width, (int, float)) or not math.isfinite(self.width) or self.width <= 0:
            raise ConfigError(f"clip quantizer width={self.width!r}: expected a positive number (units of σ)")

    def side_numel(self, channels: int) -> int:
        return 2

    def _interval(self, x):
        wide = x.astype(np.float64)
        mean, half_width = wide.mean(), wide.std() * self.width
        side = np.array([mean, half_width]).astype(self.side_dtype).astype(np.float64)
        low, step = self._dequantization(side, tuple(x.shape))
        return low, step, side

    def _dequantization(self, side, shape):
        mean, half_width = (np.float32(v) for v in side)
        # N = 2ⁿ bins over a width of 2wσ; centred on 0 rather than μ, so the width is exactly 2wσ
        step = uniform_step(-half_width, half_width, self.levels + 1)
        # Codes k = floor((x − low)/step) are reconstructed at bin midpoints low + (k + ½)·step;
        # that is uniform rounding with its origin shifted by half a step.
        return mean - half_width + step / 2, step


@dataclass(frozen=True, eq=False)
class NeuronStatistics:
    """Mean ``μ_i`` and standard deviation ``σ_i`` of every element of a ``[C, H, W]`` tensor,
    measured over a sample set (thesis §2.1.3); what the per-neuron quantizer ships once."""

    mean: np.ndarray  # [C, H, W] float32
    std: np.ndarray  # [C, H, W] float32

    def __post_init__(self) -> None:
        mean = np.ascontiguousarray(self.mean, dtype=np.float32)
        std = np.ascontiguousarray(self.std, dtype=np.float32)
        if mean.ndim != 3 or mean.shape != std.shape or mean.size == 0:
            raise ConfigError(f"neuron statistics need mean and std of one shape [C, H, W], got {mean.shape} and {std.shape}")
        if not (np.isfinite(mean).all() and np.isfinite(std).all()) or (std < 0).any():
            raise ConfigError("neuron statistics must be finite, with non-negative standard deviations")
        object.__setattr__(self, "mean", mean)
        object.__setattr__(self, "std", std)

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.mean.shape)

    @property
    def fingerprint(self) -> int:
        """CRC-32 of both arrays: the per-tensor side information that names these statistics."""
        return zlib.crc32(self.std.tobytes(), zlib.crc32(self.mean.tobytes()))

    @classmethod
    def from_samples(cls, batches) -> NeuronStatistics:
        """Statistics of ``[B, C, H, W]`` batches (float64 running sums; population σ)."""
        total = squares = None
        count = 0
        for batch in batches:
            x = as_array(batch, "a batch").astype(np.float64)
            if x.ndim != 4:
                raise ConfigError(f"neuron statistics take [B, C, H, W] batches, got shape {tuple(x.shape)}")
            if total is not None and x.shape[1:] != total.shape:
                raise ConfigError(f"batch of shape {tuple(x.shape)} does not match [B, {', '.join(map(str, total.shape))}]")
            total = x.sum(0) if total is None else total + x.sum(0)
            squares = (x * x).sum(0) if squares is None else squares + (x * x).sum(0)
            count += x.shape[0]
        if total is None:
            raise ConfigError("neuron statistics need at least one batch of samples")
        mean = total / count
        std = np.sqrt(np.maximum(squares / count - mean * mean, 0))
        return cls(mean, std)

    def save(self, path: str | Path) -> None:
        np.savez(path, mean=self.mean, std=self.std)

    @classmethod
    def load(cls, path: str | Path) -> NeuronStatistics:
        try:
            with np.load(path) as data:
                return cls(data["mean"], data["std"])
        except (OSError, KeyError, ValueError) as err:
            raise ConfigError(f"cannot read neuron statistics {path}: {err}") from None


@dataclass(frozen=True)
class NeuronQuantizer(Quantizer):
    """``N = 2ⁿ`` bins over ``[μ_i − wσ_i, μ_i + wσ_i]`` for every element i (thesis §2.1.3).

    Side information per tensor: the statistics' fingerprint (uint32); the statistics
    themselves travel once, beside the model (:meth:`NeuronStatistics.save`).
    """

    width: float = 3.0
    statistics: NeuronStatistics | None = None

    kind: ClassVar[str] = "neuron"
    container_id: ClassVar[int] = 3
    side_dtype: ClassVar[np.dtype] = np.dtype("<u4")

    def __post_init__(self) -> None:
        super().__post_init__()
        if not isinstance(self.width, (int, float)) or not math.isfinite(self.width) or self.width <= 0:
            raise ConfigError(f"neuron quantizer width={self.width!r}: expected a positive number (units of σ_i)")
        if self.statistics is not None and not isinstance(self.statistics, NeuronStatistics):
            raise ConfigError(f"neuron quantizer statistics: expected NeuronStatistics, got {type(self.statistics).__name__}")

    def side_numel(self, channels: int) -> int:
        return 1

    def _statistics_for(self, shape: tuple[int, ...]) -> NeuronStatistics:
        if self.statistics is None:
            raise CodecError("this stream was quantized per neuron: pass the NeuronStatistics it was coded with "
                             "(e.g. decode(data, quantizer=NeuronQuantizer(bits, width, statistics)))")
        if tuple(shape) != self.statistics.shape:
            raise CodecError(f"neuron statistics are for tensors of shape {list(self.statistics.shape)}, "
                             f"got {list(shape)}")
        return self.statistics

    def _bins(self, statistics: NeuronStatistics) -> tuple[np.ndarray, np.ndarray]:
        mean, std = statistics.mean, statistics.std
        half_width = std * self.width
        step = uniform_step(-half_width, half_width, self.levels + 1)  # N = 2ⁿ bins, as for ``clip``
        return mean - half_width + step / 2, step  # midpoints, as for ``clip``

    def _interval(self, x):
        statistics = self._statistics_for(x.shape)
        low, step = self._bins(statistics)
        return low, step, np.array([statistics.fingerprint])

    def _dequantization(self, side, shape):
        statistics = self._statistics_for(shape)
        if int(side[0]) != statistics.fingerprint:
            raise CodecError(f"stream was quantized with neuron statistics {int(side[0]):08x}, "
                             f"these are {statistics.fingerprint:08x}")
        return self._bins(statistics)


QUANTIZERS: dict[str, type[Quantizer]] = {
    q.kind: q for q in sorted((MinMaxQuantizer, ChannelQuantizer, ClipQuantizer, NeuronQuantizer),
                              key=lambda q: q.container_id)
}


WIRE_QUANTIZERS: tuple[str, ...] = tuple(k for k, q in QUANTIZERS.items() if issubclass(q, BoundsQuantizer))


def wire_quantizer(kind: str) -> type[BoundsQuantizer]:
    """The class of the quantizer ``kind`` that an exported edge half computes (``minmax`` or
    ``channel``): its side-information layout (:meth:`~BoundsQuantizer.side_of`,
    :meth:`~BoundsQuantizer.range_of`, :meth:`~BoundsQuantizer.group_side`) and its ``tiling``."""
    if kind not in WIRE_QUANTIZERS:
        raise ConfigError(f"quantizer {kind!r} has no wire layout; expected one of {', '.join(WIRE_QUANTIZERS)}")
    return QUANTIZERS[kind]


def get_quantizer(kind: str = "minmax", **options) -> Quantizer:
    """The quantizer named ``kind`` (``minmax``, ``channel``, ``clip`` or ``neuron``) with its options."""
    if kind not in QUANTIZERS:
        raise ConfigError(f"quantizer={kind!r}: expected one of {', '.join(QUANTIZERS)}")
    try:
        return QUANTIZERS[kind](**options)
    except TypeError as err:
        raise ConfigError(f"quantizer {kind!r}: {err}") from None
