"""Rate terms of the training loss, chosen by name, and the codec in the training loop.

In Alvar & Bajić ("Multi-task learning with compressible features for collaborative
intelligence", IEEE ICIP 2019, §2.1–2.3) two stand-ins take the codec's place in training: the
Q-layer's uniform noise for its distortion, and the DPCM + DCT compressibility loss L_r
(eq 1–5) for its rate. The features then meet JPEG2000 (Alvar & Bajić, "Pareto-optimal bit
allocation for collaborative intelligence", IEEE TIP 2021, §VI-A). cilight has a calibrated,
differentiable model of that codec (:class:`~cilight.ci_models.proxy.Jpeg2000Proxy`), so it can
train against the codec itself:

* rate terms by name (``--model.transmission.rate_loss``, :data:`RATE_LOSSES`):

  - ``dpcm_dct`` — L_r of eq 1–5 (:func:`~cilight.ci_models.losses.compressibility_loss`),
    the default;
  - ``proxy_bits`` — the proxy's predicted codestream bits per element of each stream, on the
    stream as the min–max quantizer sees it (the proxy quantizes it so itself);
  - ``none`` — no rate term: the paper's benchmark model.

  A rate term enters eq 6 as one more regression-type loss, as L_r does;
* the codec in the loop (``--model.transmission.codec_noise proxy``, :data:`CODEC_NOISES`): in training,
  each sample's stream after the Q-layer is replaced, with probability
  ``codec_noise_probability``, by the proxy's reconstruction, so the cloud half learns the
  codec's distortion, not only uniform noise. The gradient reaches the edge half through the
  proxy (straight-through roundings).

Both evaluate the proxy at one dead-zone step per batch and stream: a rate in bits per element
is drawn log-uniformly from ``rate_bpe_range`` (the operating range the model is meant for;
in evaluation its geometric middle) and mapped to a step by the proxy's own rate model, or the
step is fixed (``rate_step``)::

    stream F ──► Q-layer (uniform noise) ──────────────────┬─(1 − p)─► cloud half
       │                                                   │
       └──► proxy: min–max 8 bit → tile → 9/7 DWT ──► dead-zone(step) ─┬─► reconstruction ─(p)─┘
                        bpe ~ logU(rate_bpe_range) ─► step ─┘           └─► bits / (C·H·W) ─► rate term (eq 6)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from cilight.ci_models.losses import compressibility_loss
from cilight.ci_models.proxy import Jpeg2000Proxy, ProxyCoder, Transformed
from cilight.errors import ConfigError

RATE_LOSSES = ("dpcm_dct", "proxy_bits", "none")
CODEC_NOISES = ("none", "proxy")
RATE_FEATURES = ("normalized", "raw")  # dpcm_dct on the stream as the min–max quantizer sees it, or on F (eq 5)
# the step of a batch is searched on its first few samples: the target is a random draw, a few
# percent off it does not matter, and the search then costs a fraction of one bits evaluation
SEARCH_SAMPLES = 4
SEARCH_ITERATIONS = 10


def normalized_stream(x: Tensor) -> Tensor:
    """``(F − min) / (max − min)`` per sample: the stream as the min–max quantizer sees it."""
    flat = x.flatten(1)
    lo = flat.min(dim=1).values.view(-1, 1, 1, 1)
    hi = flat.max(dim=1).values.view(-1, 1, 1, 1)
    return (x - lo) / (hi - lo).clamp_min(1e-12)


@dataclass(frozen=True)
class ProxyOperatingRange:
    """Where the proxy is evaluated in training: a fixed dead-zone ``step``, or a rate drawn
    log-uniformly per batch from ``bpe`` (bits per element, header and side information
    included, like the ``jpeg2000`` codec's ``bpe``) and mapped to a step."""

    bpe: tuple[float, float] = (0.1, 2.0)
    step: float | None = None

    def __post_init__(self) -> None:
        bpe = tuple(self.bpe) if isinstance(self.bpe, (list, tuple)) else ()
        if (len(bpe) != 2 or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in bpe)
                or not all(math.isfinite(v) for v in bpe) or not 0 < bpe[0] <= bpe[1]):
            shown = list(self.bpe) if isinstance(self.bpe, (list, tuple)) else self.bpe
            raise ConfigError(f"rate_bpe_range={shown!r}: expected [low, high] bits per element with 0 < low ≤ high")
        object.__setattr__(self, "bpe", (float(bpe[0]), float(bpe[1])))
        knob = Jpeg2000Proxy.rate
        if self.step is not None:
            if isinstance(self.step, bool) or not isinstance(self.step, (int, float)) \
                    or not knob.low <= self.step <= knob.high:
                raise ConfigError(f"rate_step={self.step!r}: expected a dead-zone step from {knob.low:g} to "
                                  f"{knob.high:g}, or null to draw it from rate_bpe_range")
            object.__setattr__(self, "step", float(self.step))

    def draw_bpe(self, training: bool) -> float:
        """A log-uniform draw from the range in training (global torch RNG), its geometric middle otherwise."""
        low, high = self.bpe
        u = float(torch.rand(())) if training else 0.5
        return low * (high / low) ** u


class ProxyCoding:
    """One stream of one batch coded by the proxy at one step: its bits and its reconstruction,
    computed once each and sharing the quantization indices when both are asked for."""

    def __init__(self, proxy: Jpeg2000Proxy, transformed: Transformed, step: Tensor) -> None:
        self.proxy, self.transformed, self.step = proxy, transformed, step
        self._bits: Tensor | None = None
        self._reconstruction: Tensor | None = None

    @property
    def elements(self) -> int:
        return self.transformed.features[0].numel()

    def bits(self) -> Tensor:
        """``[B]`` predicted codestream bits."""
        if self._bits is None:
            self._bits = self.proxy.bits(self.transformed, self.step)
        return self._bits

    def reconstruction(self) -> Tensor:
        """``[B, C, H, W]`` the stream as the cloud would decode it."""
        if self._reconstruction is None:
            self._reconstruction, self._bits = self.proxy.quantize(self.transformed, self.step)
        return self._reconstruction


class StreamProxy(nn.Module):
    """The JPEG2000 proxy as a training layer: one step per batch and stream (see the module docstring)."""

    def __init__(self, operating: ProxyOperatingRange) -> None:
        super().__init__()
        self.operating = operating
        self.proxy = Jpeg2000Proxy()

    def step(self, transformed: Transformed) -> Tensor:
        """``[B]`` the batch's step: fixed, or the step where the proxy predicts the drawn rate
        (searched on the first :data:`SEARCH_SAMPLES` samples, their steps' geometric mean)."""
        batch = transformed.batch
        if self.operating.step is not None:
            return transformed.image.new_full((batch,), self.operating.step).detach()
        bpe = self.operating.draw_bpe(self.training)
        elements = transformed.features[0].numel()
        target = max(bpe * elements - ProxyCoder.overhead_bits, 1.0)  # codestream bits, as ProxyCoder counts
        sample = transformed.head(min(batch, SEARCH_SAMPLES))
        low, high = ProxyCoder.step_range
        steps = self.proxy.step_for_bits(sample, target, low=low, high=high, iterations=SEARCH_ITERATIONS)
        return steps.log().mean().exp().expand(batch).clone()

    def forward(self, features: Tensor) -> ProxyCoding:
        transformed = self.proxy.transform(features)
        return ProxyCoding(self.proxy, transformed, self.step(transformed))


def dpcm_dct_rate(stream: Tensor, coding: ProxyCoding | None, rate_features: str) -> Tensor:
    """L_r (eq 1–5) of one stream, on the normalized stream or on ``F`` (eq 5 as printed)."""
    return compressibility_loss(normalized_stream(stream) if rate_features == "normalized" else stream)


def proxy_bits_rate(stream: Tensor, coding: ProxyCoding | None, rate_features: str) -> Tensor:
    """The proxy's predicted bits per element of one stream, averaged over the batch."""
    return coding.bits().mean() / coding.elements


RATE_TERMS = {"dpcm_dct": dpcm_dct_rate, "proxy_bits": proxy_bits_rate}  # "none": no term
PROXY_RATE_LOSSES = ("proxy_bits",)


def check_rate_options(rate_loss: str, rate_features: str, codec_noise: str, codec_noise_probability: float) -> None:
    """One clear :class:`ConfigError` for an unknown or contradictory rate option."""
    if rate_loss not in RATE_LOSSES:
        raise ConfigError(f"rate_loss={rate_loss!r}: expected one of {', '.join(RATE_LOSSES)}")
    if rate_features not in RATE_FEATURES:
        raise ConfigError(f"rate_features={rate_features!r}: expected one of {', '.join(RATE_FEATURES)}")
    if rate_features != "normalized" and rate_loss != "dpcm_dct":
        raise ConfigError(f"rate_features={rate_features!r} applies to rate_loss=dpcm_dct only (the proxy always "
                          f"sees the stream as the min–max quantizer does), got rate_loss={rate_loss!r}")
    if codec_noise not in CODEC_NOISES:
        raise ConfigError(f"codec_noise={codec_noise!r}: expected one of {', '.join(CODEC_NOISES)}")
    if isinstance(codec_noise_probability, bool) or not isinstance(codec_noise_probability, (int, float)) \
            or not 0 < codec_noise_probability <= 1:
        raise ConfigError(f"codec_noise_probability={codec_noise_probability!r}: expected a probability in (0, 1]")


__all__ = ["CODEC_NOISES", "PROXY_RATE_LOSSES", "RATE_FEATURES", "RATE_LOSSES", "RATE_TERMS", "ProxyCoding",
           "ProxyOperatingRange", "StreamProxy", "check_rate_options", "dpcm_dct_rate", "normalized_stream",
           "proxy_bits_rate"]
