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

Every quantizer maps ``[..., C, H, W]`` float tensors to codes of the same shape
(``uint8`` for ``n ≤ 8``, ``int32`` otherwise) and back. The arithmetic lives in
:func:`uniform_codes` and :func:`uniform_values`, which the Q-layer of ``cilight.ci_models``
and the differentiable proxy share, so there is one definition of "8-bit min–max".
"""

from __future__ import annotations

import math
import zlib
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
from torch import Tensor

from cilight.codecs.errors import CodecError
from cilight.errors import ConfigError

# A constant tensor has max == min; a tiny step keeps the division finite and decodes to min.
MIN_STEP = 1e-12


def uniform_codes(x: Tensor, low: Tensor, step: Tensor, levels: int) -> Tensor:
    """``clamp(round((x − low) / step), 0, levels)`` as floats; ``low``/``step`` broadcast."""
    return torch.round((x - low) / step).clamp(0, levels)


def uniform_values(codes: Tensor, low: Tensor, step: Tensor) -> Tensor:
    """``low + codes·step``: the dequantized values of :func:`uniform_codes`."""
    return low + codes * step


def code_dtype(bits: int) -> torch.dtype:
    return torch.uint8 if bits <= 8 else torch.int32


def _check_bits(bits: object) -> int:
    if isinstance(bits, bool) or not isinstance(bits, int) or not 1 <= bits <= 16:
        raise ConfigError(f"quantizer bits={bits!r}: expected an integer from 1 to 16")
    return bits


def _check_features(x: object) -> Tensor:
    if not isinstance(x, Tensor):
        raise CodecError(f"features must be a torch.Tensor of shape [C, H, W], got {type(x).__name__}")
    if x.dim() != 3 or x.numel() == 0:
        raise CodecError(f"features must have shape [C, H, W] with no empty axis, got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise CodecError(f"features must be floating point, got {x.dtype}")
    if not torch.isfinite(x).all():
        raise CodecError("features contain NaN or infinite values; only finite tensors can be quantized")
    return x


@dataclass(frozen=True)
class Quantized:
    """Integer codes of a ``[C, H, W]`` tensor and the side information that dequantizes them."""

    codes: Tensor  # [C, H, W], uint8 or int32
    side: np.ndarray  # 1-D, dtype = the quantizer's side_dtype


@dataclass(frozen=True)
class Quantizer(ABC):
    """Base of the uniform quantizers; subclasses choose the interval and the side information."""

    bits: int = 8

    kind: ClassVar[str]
    container_id: ClassVar[int]  # the quantizer byte of the container header
    side_dtype: ClassVar[np.dtype]

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

    def quantize(self, features: Tensor) -> Quantized:
        x = _check_features(features).detach().to(torch.float32)
        low, step, side = self._interval(x)
        codes = uniform_codes(x, low, step, self.levels).to(code_dtype(self.bits))
        return Quantized(codes, side.astype(self.side_dtype))

    def codes_with(self, features: Tensor, side: np.ndarray) -> Tensor:
        """The codes of ``features`` on the interval that ``side`` describes (not the features' own):
        what a receiver writes into a tensor whose range it already knows (error concealment)."""
        x = _check_features(features).detach().to(torch.float32)
        side = np.asarray(side, dtype=np.float64)
        if side.shape != (self.side_numel(x.shape[0]),) or not np.isfinite(side).all():
            raise CodecError(f"{self.kind} side information for {x.shape[0]} channels must hold "
                             f"{self.side_numel(x.shape[0])} finite values, got {side.shape}")
        low, step = self._dequantization(side, tuple(x.shape))
        return uniform_codes(x, low, step, self.levels).to(code_dtype(self.bits))

    def dequantize(self, codes: Tensor, side: np.ndarray) -> Tensor:
        if codes.dim() != 3:
            raise CodecError(f"codes must have shape [C, H, W], got {tuple(codes.shape)}")
        expected = self.side_numel(codes.shape[0])
        if side.shape != (expected,):
            raise CodecError(f"{self.kind} side information must hold {expected} values, got {side.shape}")
        side = side.astype(np.float64)
        if not np.isfinite(side).all():
            raise CodecError(f"{self.kind} side information is not finite: {side.tolist()[:4]}")
        low, step = self._dequantization(side, tuple(codes.shape))
        return uniform_values(codes.to(torch.float32), low, step)

    @abstractmethod
    def _interval(self, x: Tensor) -> tuple[Tensor, Tensor, np.ndarray]:
        """(low, step) broadcastable to ``x``, and the side information that reproduces them."""

    @abstractmethod
    def _dequantization(self, side: np.ndarray, shape: tuple[int, int, int]) -> tuple[Tensor, Tensor]:
        """(low, step) for dequantization, from the side information of a tensor of ``shape``."""


def _step(low: Tensor, high: Tensor, levels: int) -> Tensor:
    return ((high - low) / levels).clamp_min(MIN_STEP)


@dataclass(frozen=True)
class MinMaxQuantizer(Quantizer):
    """One ``[min, max]`` interval for the whole tensor; side information 2 × float32."""

    kind: ClassVar[str] = "minmax"
    container_id: ClassVar[int] = 0
    side_dtype: ClassVar[np.dtype] = np.dtype("<f4")

    def side_numel(self, channels: int) -> int:
        return 2

    @classmethod
    def side_of(cls, minimum: float, maximum: float) -> np.ndarray:
        """The side information of a tensor with range ``[minimum, maximum]`` (its one layout)."""
        return np.array([minimum, maximum], dtype=cls.side_dtype)

    @staticmethod
    def range_of(side: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(minimum, maximum)`` as float32 arrays of shape ``[1]`` from :meth:`side_of`'s layout."""
        side = np.asarray(side, dtype=np.float32)
        return side[:1], side[1:2]

    def _interval(self, x):
        low, high = x.min(), x.max()
        return low, _step(low, high, self.levels), np.array([low.item(), high.item()])

    def _dequantization(self, side, shape):
        low, high = (torch.tensor(v, dtype=torch.float32) for v in side)
        return low, _step(low, high, self.levels)


FLOAT16_MAX = 65504.0


def float16_bounds(low: Tensor, high: Tensor) -> tuple[Tensor, Tensor]:
    """``low`` and ``high`` rounded to float16 *outwards* (``m ≤ low``, ``M ≥ high``), as float32.

    Each bound is first moved outwards by a little more than half a float16 step (2⁻¹⁰ of its
    magnitude, 2⁻²⁴ near zero, where float16 steps are absolute) and then rounded to nearest,
    so the rounded interval still covers the data. Only casts and arithmetic: the same function
    runs in the exported ONNX edge half (BaF, Choi et al., ICASSP 2020, §3.2) and in the
    ``channel`` quantizer of the codecs. Values beyond float16's range become ±inf; callers check.
    """
    margin = 2.0**-10
    tiny = 2.0**-24
    low16 = (low - low.abs() * margin - tiny).to(torch.float16).to(torch.float32)
    high16 = (high + high.abs() * margin + tiny).to(torch.float16).to(torch.float32)
    return low16, high16


def channel_bounds(x: Tensor) -> tuple[Tensor, Tensor]:
    """Per-channel float16 ``(m, M)`` of ``x`` ``[..., C, H, W]`` (BaF eq 4), each ``[..., C]``."""
    flat = x.flatten(-2)
    return float16_bounds(flat.amin(-1), flat.amax(-1))


@dataclass(frozen=True)
class ChannelQuantizer(Quantizer):
    """One ``[m, M]`` interval per channel (BaF eq 4); side information ``2C`` × float16."""

    kind: ClassVar[str] = "channel"
    container_id: ClassVar[int] = 1
    side_dtype: ClassVar[np.dtype] = np.dtype("<f2")

    def side_numel(self, channels: int) -> int:
        return 2 * channels

    def _interval(self, x):
        low, high = channel_bounds(x)
        if not (torch.isfinite(low).all() and torch.isfinite(high).all()):
            raise CodecError(
                f"per-channel range [{x.min().item():.4g}, {x.max().item():.4g}] does not fit in float16 "
                f"(|value| ≤ {FLOAT16_MAX:g}); use the 'minmax' quantizer for such tensors"
            )
        side = torch.cat([low, high]).numpy().astype(np.float64)
        low_t, step = self._dequantization(side, tuple(x.shape))
        return low_t, step, side

    def _dequantization(self, side, shape):
        channels = shape[0]
        low = torch.from_numpy(side[:channels]).float().view(-1, 1, 1)
        high = torch.from_numpy(side[channels:]).float().view(-1, 1, 1)
        return low, _step(low, high, self.levels)


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
        mean, half_width = x.double().mean(), x.double().std(correction=0) * self.width
        side = np.array([mean.item(), half_width.item()]).astype(self.side_dtype).astype(np.float64)
        low, step = self._dequantization(side, tuple(x.shape))
        return low, step, side

    def _dequantization(self, side, shape):
        mean, half_width = (torch.tensor(v, dtype=torch.float32) for v in side)
        bins = self.levels + 1
        step = (2 * half_width / bins).clamp_min(MIN_STEP)
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
            x = torch.as_tensor(batch).detach().double()
            if x.dim() != 4:
                raise ConfigError(f"neuron statistics take [B, C, H, W] batches, got shape {tuple(x.shape)}")
            if total is not None and x.shape[1:] != total.shape:
                raise ConfigError(f"batch of shape {tuple(x.shape)} does not match [B, {', '.join(map(str, total.shape))}]")
            total = x.sum(0) if total is None else total + x.sum(0)
            squares = (x * x).sum(0) if squares is None else squares + (x * x).sum(0)
            count += x.shape[0]
        if total is None:
            raise ConfigError("neuron statistics need at least one batch of samples")
        mean = total / count
        std = (squares / count - mean * mean).clamp_min(0).sqrt()
        return cls(mean.numpy(), std.numpy())

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

    def _bins(self, statistics: NeuronStatistics) -> tuple[Tensor, Tensor]:
        mean, std = torch.from_numpy(statistics.mean), torch.from_numpy(statistics.std)
        half_width = std * self.width
        step = (2 * half_width / (self.levels + 1)).clamp_min(MIN_STEP)
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


def get_quantizer(kind: str = "minmax", **options) -> Quantizer:
    """The quantizer named ``kind`` (``minmax``, ``channel``, ``clip`` or ``neuron``) with its options."""
    if kind not in QUANTIZERS:
        raise ConfigError(f"quantizer={kind!r}: expected one of {', '.join(QUANTIZERS)}")
    try:
        return QUANTIZERS[kind](**options)
    except TypeError as err:
        raise ConfigError(f"quantizer {kind!r}: {err}") from None
