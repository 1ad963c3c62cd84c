"""The Q-layer: uniform n-bit quantization of a transmitted stream
(Alvar & Bajić, ICIP 2019, §2.1, Fig. 1).

Each stream is quantized over its own min–max range, per sample: with
``Δ = (max − min) / (2ⁿ − 1)`` the codes are ``q = round((F − min) / Δ)`` and the cloud
reconstructs ``F̂ = min + q·Δ``. Rounding has no useful gradient, so in training the layer
adds uniform noise of one quantization step instead (``F + u·Δ``, ``u ~ U(−½, ½)``, as in
Ballé et al.); in evaluation it rounds for real, with a straight-through gradient.

``min`` and ``max`` are the side information sent with the codes; :meth:`QuantizationLayer.encode`
and :meth:`QuantizationLayer.decode` expose the two halves for export.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor, nn

from cilight.ci_models.precision import at_least_float32
from cilight.codecs.arrays import astype
from cilight.codecs.quantizers import code_dtype, uniform_codes, uniform_step, uniform_values
from cilight.errors import ConfigError


class QuantizedStream(NamedTuple):
    """What crosses the network for one stream: integer codes and the range to dequantize them."""

    codes: Tensor  # [B, C, H, W], uint8 for n ≤ 8 bits, int32 otherwise
    minimum: Tensor  # [B], float32
    maximum: Tensor  # [B], float32


def _per_sample_range(x: Tensor) -> tuple[Tensor, Tensor]:
    flat = x.flatten(1)
    return flat.min(dim=1).values, flat.max(dim=1).values


def _expand(v: Tensor, like: Tensor) -> Tensor:
    return v.view(-1, *([1] * (like.dim() - 1)))


class QuantizationLayer(nn.Module):
    """Uniform n-bit min–max quantizer of a ``[B, C, H, W]`` stream.

    Args:
        bits: bits per element, 1 to 16.
    """

    def __init__(self, bits: int = 8) -> None:
        super().__init__()
        if not isinstance(bits, int) or not 1 <= bits <= 16:
            raise ConfigError(f"quantization bits must be an integer from 1 to 16, got {bits!r}")
        self.bits = bits
        self.levels = 2**bits - 1

    def step(self, minimum: Tensor, maximum: Tensor) -> Tensor:
        """Quantization step Δ for each sample's range (:func:`~cilight.codecs.quantizers.uniform_step`)."""
        return uniform_step(minimum, maximum, self.levels)

    def forward(self, x: Tensor) -> Tensor:
        """Noisy (training) or rounded (evaluation) version of ``x`` in the feature domain.

        Computed in float32 whatever ``x`` is: the noise is one step Δ, about the spacing of bfloat16
        numbers near ``max`` at 8 bits, so added in bfloat16 most of it would round away. Under autocast
        the float32 result is returned (the next convolution casts it); otherwise ``x``'s dtype.
        """
        y = self._noisy_or_rounded(at_least_float32(x))
        return y if torch.is_autocast_enabled(x.device.type) else y.to(x.dtype)

    def _noisy_or_rounded(self, x: Tensor) -> Tensor:
        minimum, maximum = _per_sample_range(x.detach())
        delta = _expand(self.step(minimum, maximum), x)
        if self.training:
            return x + (torch.rand_like(x) - 0.5) * delta
        lo = _expand(minimum, x)
        rounded = uniform_values(uniform_codes(x, lo, delta, self.levels), lo, delta)
        return x + (rounded - x).detach()

    def encode(self, x: Tensor) -> QuantizedStream:
        """Integer codes and per-sample range of ``x`` (the edge side of the Q-layer)."""
        minimum, maximum = _per_sample_range(x)
        delta = _expand(self.step(minimum, maximum), x)
        codes = uniform_codes(x, _expand(minimum, x), delta, self.levels)
        return QuantizedStream(astype(codes, code_dtype(self.bits)), minimum.float(), maximum.float())

    def decode(self, stream: QuantizedStream) -> Tensor:
        """Feature tensor reconstructed from codes and range (the cloud side of the Q-layer)."""
        codes = stream.codes.float()
        delta = _expand(self.step(stream.minimum, stream.maximum), codes)
        return uniform_values(codes, _expand(stream.minimum, codes), delta)

    def extra_repr(self) -> str:
        return f"bits={self.bits}"
