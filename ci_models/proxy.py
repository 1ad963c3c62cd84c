"""A differentiable proxy of the JPEG2000 feature codec.

The real codec (:mod:`cilight.codecs.jpeg2000`) quantizes a ``[C, H, W]`` tensor to 8 bits
over its min–max range, tiles the channels into one image and codes it with OpenJPEG at a
requested size. OpenJPEG cannot be differentiated and is slow to sweep, so allocation and
training use this model of it instead. :class:`Jpeg2000Proxy` follows the same pipeline:

1. ``MinMaxQuantizer(bits=8)`` per tensor (:func:`uniform_step`, :func:`uniform_codes`, :func:`uniform_values`),
   rounding with a straight-through gradient;
2. the quantizer's tiling (``MinMaxQuantizer.tiling``: ``square``) + :func:`tile` (padding cells hold
   the rounded mean, as for ``uint8``);
3. the DC level shift of JPEG2000 (``−128``, ISO/IEC 15444-1 Annex G.1);
4. :func:`resolutions` − 1 levels of the CDF 9/7 DWT with whole-sample symmetric extension
   (:mod:`cilight.ci_models.dwt`, Annex F);
5. a dead-zone scalar quantizer (Annex E) with one ``step`` for every subband *in the
   orthonormal-weighted domain*: each subband ``b`` is multiplied by the L2 norm ``w_b`` of its
   synthesis basis functions, so ``step`` is an effective step ``step / w_b`` on the subband.
   That is what OpenJPEG's rate control approximates: its PCRD truncation equalizes
   rate–distortion slopes across code-blocks with the distortion weighted by ``w_b²``, and its
   irreversible step sizes are ``1 / w_b``, so every subband shares one bit-plane grid
   (OpenJPEG ``opj_dwt_calc_explicit_stepsizes``, ``opj_t1_getwmsedec``). Reconstruction is at
   the middle of the interval, like OpenJPEG's decoder (``1.5·2ᵖ`` for a coefficient found
   significant in plane ``p``);
6. inverse DWT, ``+128``, rounding and clipping to ``[0, 255]`` (the decoder's ``uint8``
   output), untiling and 8-bit dequantization. The reconstruction therefore carries the 8-bit
   quantization error, exactly like decoding the real codec's output;
7. a rate model (:class:`ProxyCalibration`) shaped like EBCOT's bit-plane coder (Annex D):
   a linear combination, with weights fitted to OpenJPEG byte counts by
   ``benchmarks/calibrate_proxy.py``, of

   * ``significance_bits`` — for every significant coefficient (``|q| ≥ 1``), the ideal code
     length ``−log2 P(|c| ≥ step) = step / (b·ln 2)`` of finding it significant under a
     Laplacian whose scale ``b`` is the local mean ``|c|`` of its subband (a window across the
     edge direction for HL/LH, the neighbours JPEG2000's context model weights most; 3×3
     otherwise): the cost of locating significant coefficients among the zeros;
   * ``significant_coefficients`` — sign and first-significance decisions;
   * ``refinement_planes`` — ``Σ ⌊log2 |q|⌋``, the magnitude-refinement bits;
   * ``significant_codeblocks`` — packet-header cost of each code-block that has data;
   * ``constant`` — main header and tile-part headers.

   A plain per-coefficient Laplacian code length (zeros included) was tried first; it missed
   OpenJPEG's bytes by 3.7 % (median) / 9 % (p90) on held-out tensors, because its magnitude
   cost grows linearly in ``|q|`` where EBCOT's grows like ``log2 |q|``; the fit gave the zero
   coefficients' own code length no weight, so it is left out. The count features are
   piecewise constant; their gradient comes from continuous relaxations
   (``min(|c|/step, 1)`` and ``log2 max(|c|/step, 1)``, straight-through), so bits grow with
   ``|c|/step``; the Laplacian scales add the context effect (a significant coefficient among
   large neighbours is cheaper to find).

Training: rounding has no gradient, so while the module is in training mode the dead-zone
quantizer is relaxed — ``relaxation="straight_through"`` (hard values, identity gradient;
the default) or ``"noise"`` (uniform noise of one step, as in Ballé et al.). In evaluation it
always rounds. The rate's value always uses the hard quantization indices.

Invariance: min–max quantization makes the codes, and so the real bits, invariant to
``a·F + b`` (``a > 0``). The predicted bits are too, and so is their gradient's meaning: the
8-bit codes' straight-through surrogate ``(F − min F)/step8(F)`` differentiates the min and the
step as well, so ``∇_F bits`` has no component along ``F`` or along the constant tensor — a rate
gradient cannot be met by rescaling or shifting the features. (With the min and step detached
it would: a pure scale change would look like a rate change.)

The step ↔ rate link: ``bits`` is the predicted size in bits of the codestream that OpenJPEG
would produce at the rate where its distortion equals the proxy's at ``step``.
:meth:`Jpeg2000Proxy.step_for_bits` inverts it (bisection on ``log step``).
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cilight.ci_models.dwt import Pyramid, dwt2, idwt2, synthesis_norm
from cilight.ci_models.precision import at_least_float32, float32_region
from cilight.codecs.container import HEADER_BYTES
from cilight.codecs.errors import CodecError
from cilight.codecs.image import CodecCoder, construct, get_codec
from cilight.codecs.jpeg2000 import CODEBLOCK, resolutions
from cilight.codecs.quantizers import MinMaxQuantizer, uniform_codes, uniform_step, uniform_values
from cilight.codecs.registry import RateKnob, register_codec
from cilight.codecs.tiling import TileLayout, tile, untile
from cilight.errors import ConfigError

CALIBRATION_FILE = Path(__file__).with_name("proxy_calibration.json")
RATE_FEATURES = (
    "significance_bits",
    "significant_coefficients",
    "refinement_planes",
    "significant_codeblocks",
    "constant",
)
RELAXATIONS = ("straight_through", "noise")
LEVELS = MinMaxQuantizer(bits=8).levels  # 8-bit min–max quantization, 2⁸ − 1 = 255 steps (also the uint8 range)
DC_SHIFT = 128.0  # Annex G.1: unsigned 8-bit samples are shifted by 2⁷
CHUNK_ELEMENTS = 1 << 21  # forward() splits larger batches
_LN2 = math.log(2.0)


# --------------------------------------------------------------------------- parameters
@dataclass(frozen=True)
class ProxyCalibration:
    """The fitted constants of the rate model.

    ``bits = Σ_k weights[k] · feature_k`` with the features :data:`RATE_FEATURES`.
    ``window`` is the length of the local-mean window across the edge direction of HL and
    LH subbands (HH and LL use 3×3); ``codeblock`` the code-block size the fit was made for
    (it must equal :data:`CODEBLOCK` of the codec). ``fit`` records how the constants were
    obtained (script, data, residuals).
    """

    weights: tuple[float, ...]
    features: tuple[str, ...] = RATE_FEATURES
    window: int = 5
    codeblock: int = CODEBLOCK
    scale_floor: float = 1e-2
    fit: dict = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        if tuple(self.features) != RATE_FEATURES:
            raise ConfigError(f"proxy calibration features {list(self.features)}: expected {list(RATE_FEATURES)}")
        if len(self.weights) != len(self.features) or not all(math.isfinite(w) for w in self.weights):
            raise ConfigError(f"proxy calibration weights {self.weights!r}: expected {len(self.features)} finite numbers")
        if not isinstance(self.window, int) or self.window < 1 or self.window % 2 == 0:
            raise ConfigError(f"proxy calibration window={self.window!r}: expected an odd positive integer")
        if self.codeblock != CODEBLOCK:
            raise ConfigError(
                f"proxy calibration was fitted for {self.codeblock}×{self.codeblock} code-blocks but the codec "
                f"uses {CODEBLOCK}×{CODEBLOCK}; re-run benchmarks/calibrate_proxy.py"
            )
        object.__setattr__(self, "weights", tuple(float(w) for w in self.weights))
        object.__setattr__(self, "features", tuple(self.features))

    @classmethod
    def load(cls, path: str | Path) -> ProxyCalibration:
        path = Path(path)
        try:
            raw = json.loads(path.read_text())
        except (OSError, ValueError) as err:
            raise ConfigError(f"cannot read proxy calibration {path}: {err}") from None
        try:
            return cls(
                weights=tuple(raw["weights"]),
                features=tuple(raw["features"]),
                window=raw["window"],
                codeblock=raw["codeblock"],
                scale_floor=raw.get("scale_floor", 1e-2),
                fit=raw.get("fit", {}),
            )
        except (KeyError, TypeError) as err:
            raise ConfigError(f"proxy calibration {path} lacks or mistypes {err}") from None

    @classmethod
    def default(cls) -> ProxyCalibration:
        """The calibration shipped with cilight (``ci_models/proxy_calibration.json``)."""
        return cls.load(CALIBRATION_FILE)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(asdict(self), indent=2) + "\n")


@dataclass(frozen=True)
class Transformed:
    """What :meth:`Jpeg2000Proxy.transform` computes once per batch and every step reuses.

    Attributes:
        features: the input ``[B, C, H, W]``.
        coefficients: weighted DWT subbands of the level-shifted tiled 8-bit image
            (``[B, h_b, w_b]`` each; multiplied by their synthesis norm).
        flat: the same coefficients as one ``[B, N]`` tensor, subbands in ``coefficients.bands()``
            order (every rate and quantization step works on it: a handful of tensor operations
            per step instead of a handful per subband).
        flat_scales: local mean ``|c|`` of every coefficient (the Laplacian scales), ``[B, N]``.
        image: the tiled 8-bit codes ``[B, rows·H, cols·W]`` (float, straight-through).
        low, step8: ``[B]`` minimum and 8-bit step of the min–max quantizer (differentiable
            when the features are: the bits are then invariant to ``a·F + b`` to first order too,
            and the reconstruction equivariant).
        layout: the tile layout.
    """

    features: Tensor
    coefficients: Pyramid
    flat: Tensor
    flat_scales: Tensor
    image: Tensor
    low: Tensor
    step8: Tensor
    layout: TileLayout

    @property
    def batch(self) -> int:
        return self.image.shape[0]

    @property
    def bands(self) -> _Bands:
        return _bands(self.coefficients, self.flat.dtype, self.flat.device)

    def head(self, count: int) -> Transformed:
        """The first ``count`` samples, detached (e.g. to search a step on a few samples of a batch)."""
        def take(t: Tensor) -> Tensor:
            return t[:count].detach()
        return Transformed(take(self.features), self.coefficients.map(lambda name, level, t: take(t)), take(self.flat),
                           take(self.flat_scales), take(self.image), take(self.low), take(self.step8), self.layout)

    @property
    def quantization_mse(self) -> Tensor:
        """``[B]`` feature-domain MSE of the 8-bit min–max quantization alone."""
        codes = untile(self.image, self.layout)
        rec = uniform_values(codes, self.low.view(-1, 1, 1, 1), self.step8.view(-1, 1, 1, 1))
        return (rec - self.features).detach().pow(2).flatten(1).mean(1)


# --------------------------------------------------------------------------- helpers
def _straight_through(hard: Tensor, soft: Tensor) -> Tensor:
    """``hard`` in the forward pass, the gradient of ``soft`` in the backward pass."""
    return soft + (hard - soft).detach()


def _autograd(*xs: Tensor) -> bool:
    """Whether autograd records operations on any of ``xs`` (else the fast exact paths run)."""
    return torch.is_grad_enabled() and any(x.requires_grad for x in xs)


def _box_mean(a: Tensor, size: int, dim: int) -> Tensor:
    """Mean over a centred window of ``size`` samples along ``dim`` (−1 or −2); at the edges,
    over the samples inside. A difference of running sums: two slices whatever the window,
    so its backward pass is cheap too."""
    n = a.shape[dim]
    if size == 1 or n == 1:
        return a
    half = size // 2
    sums = F.pad(a, (half + 1, half) if dim == -1 else (0, 0, half + 1, half)).cumsum(dim)  # sums[k] = Σ_{i<k}
    total = sums.narrow(dim, size, n) - sums.narrow(dim, 0, n)
    j = torch.arange(n, device=a.device)
    count = ((j + half).clamp(max=n - 1) - (j - half).clamp(min=0) + 1).to(a.dtype)
    return total / (count if dim == -1 else count.view(-1, 1))


def _local_mean(a: Tensor, height: int, width: int) -> Tensor:
    """Mean of ``a`` ``[B, h, w]`` over a centred ``height × width`` window (edges: inside only)."""
    return _box_mean(_box_mean(a, width, -1), height, -2)


@dataclass(frozen=True)
class _Bands:
    """Where every subband lies in :attr:`Transformed.flat`: ``(name, level)``, shape and size
    of each, the code-block of every coefficient and ``1 / w_b`` of every coefficient."""

    keys: tuple[tuple[str, int], ...]
    shapes: tuple[tuple[int, int], ...]
    sizes: tuple[int, ...]
    blocks: Tensor  # [N] code-block index of each coefficient, 0 … num_blocks − 1
    num_blocks: int
    inverse_norms: Tensor  # [N]

    def pyramid(self, flat: Tensor, shape: tuple[int, int]) -> Pyramid:
        """``flat`` ``[B, N]`` split back into the subbands of a :class:`Pyramid`."""
        parts = [p.view(-1, h, w) for p, (h, w) in zip(flat.split(self.sizes, dim=1), self.shapes)]
        levels = len(parts) // 3
        details = tuple(tuple(parts[1 + 3 * (levels - level) + k] for k in range(3)) for level in range(1, levels + 1))
        return Pyramid(parts[0], details, shape)


@functools.lru_cache(maxsize=64)
def _band_layout(keys: tuple[tuple[str, int], ...], shapes: tuple[tuple[int, int], ...], codeblock: int,
                 dtype: torch.dtype, device: torch.device) -> _Bands:
    blocks, norms, offset = [], [], 0
    for (name, level), (h, w) in zip(keys, shapes):
        rows, cols = torch.arange(h) // codeblock, torch.arange(w) // codeblock
        per_row = -(-w // codeblock)
        blocks.append((offset + rows.view(-1, 1) * per_row + cols.view(1, -1)).flatten())
        offset += -(-h // codeblock) * per_row
        norms.append(torch.full((h * w,), 1.0 / (synthesis_norm(name, level) if level else 1.0), dtype=torch.float64))
    # converted on the CPU, then copied: some devices have no float64 (MPS)
    return _Bands(keys, shapes, tuple(h * w for h, w in shapes), torch.cat(blocks).to(device), offset,
                  torch.cat(norms).to(dtype=dtype).to(device))


@functools.lru_cache(maxsize=16)
def calibration_weights(weights: tuple[float, ...], device: torch.device, dtype: torch.dtype) -> Tensor:
    """The rate model's weights as a tensor on ``device``, made once: the step search evaluates the bits
    about ten times per batch, and a new tensor from Python numbers is a host-to-device copy each time."""
    return torch.tensor(weights, dtype=dtype).to(device)


def _bands(pyramid: Pyramid, dtype: torch.dtype, device: torch.device) -> _Bands:
    bands = pyramid.bands()
    return _band_layout(tuple((name, level) for name, level, _ in bands),
                        tuple(tuple(t.shape[-2:]) for _, _, t in bands), CODEBLOCK, dtype, device)


def _check_step(step: float | Tensor, batch: int, like: Tensor, name: str = "step") -> Tensor:
    """``step`` as a ``[B]`` tensor; positive and finite."""
    if isinstance(step, bool) or not isinstance(step, (int, float, Tensor)):
        raise CodecError(f"{name} must be a positive number or a tensor [B], got {type(step).__name__}")
    s = torch.as_tensor(step, dtype=like.dtype, device=like.device)
    if s.dim() == 0:
        s = s.expand(batch)
    if s.shape != (batch,):
        raise CodecError(f"{name} must be a number or a tensor of shape [{batch}] (one per sample), got {tuple(s.shape)}")
    if not bool(torch.isfinite(s).all()) or not bool((s > 0).all()):
        raise CodecError(f"{name} must be positive and finite, got {s.detach().flatten().tolist()[:8]}")
    return s


# --------------------------------------------------------------------------- the proxy
@register_codec
class Jpeg2000Proxy(nn.Module):
    """Differentiable model of the ``jpeg2000`` feature codec: ``(features, step) → (reconstruction, bits)``.

    ::

        features [B,C,H,W]
           │ min–max 8-bit quantization (round, straight-through)   ── low, step8 [B]
           ▼
        codes ──tile──► image [B, rows·H, cols·W] ── −128 ──► 9/7 DWT (L = resolutions−1 levels)
                                                                  │ × w_b (synthesis norms)
                                            transform() ─ ─ ─ ─ ─ ┼ ─ ─ cached: coefficients y, scales b = mean|y|
                                                                  ▼
                          step [B] ──► dead-zone quantizer  q = sign(y)·⌊|y|/step⌋, ŷ = sign(q)(|q|+½)·step
                                          │                                     │
                       rate model ◄───────┘                                     ▼
   bits = w · [Σ_sig step/(b·ln2), #sig, Σ⌊log2|q|⌋, #sig blocks, 1]    ÷ w_b ─► inverse DWT ─► +128
                       │                                                        │ round, clip [0,255]
                       ▼                                                        ▼
                  bits [B]                       reconstruction [B,C,H,W] ◄─ dequantize ◄─ untile

    Args:
        calibration: rate-model constants; a :class:`ProxyCalibration`, a path to its JSON, or
            ``None`` for the shipped default.
        relaxation: how the dead-zone quantizer behaves in training mode,
            ``"straight_through"`` or ``"noise"``; evaluation mode always rounds.

    Registered as the codec ``proxy`` (rate knob ``step``, no container id: it writes no
    bytes); :meth:`stream_coder` is how rate sweeps use it.
    """

    name: ClassVar[str] = "proxy"
    container_id: ClassVar[None] = None
    rate: ClassVar[RateKnob] = RateKnob("step", False, 1e-2, 1e4, False,
                                        "dead-zone step on the synthesis-weighted DWT coefficients")
    writes_bytes: ClassVar[bool] = False

    @classmethod
    def stream_coder(cls, **options) -> ProxyCoder:
        """The proxy as a rate sweep's stream coder (one DWT per stream, then a step per rate)."""
        return ProxyCoder(construct(cls, options).eval())

    def __init__(
        self, calibration: ProxyCalibration | str | Path | None = None, relaxation: str = "straight_through"
    ) -> None:
        super().__init__()
        if calibration is None:
            calibration = ProxyCalibration.default()
        elif isinstance(calibration, (str, Path)):
            calibration = ProxyCalibration.load(calibration)
        elif not isinstance(calibration, ProxyCalibration):
            raise ConfigError(f"calibration must be a ProxyCalibration, a path or None, got {type(calibration).__name__}")
        if relaxation not in RELAXATIONS:
            raise ConfigError(f"relaxation={relaxation!r}: expected one of {', '.join(RELAXATIONS)}")
        self.calibration = calibration
        self.relaxation = relaxation

    # ------------------------------------------------------------------ transform once
    def transform(self, features: Tensor) -> Transformed:
        """8-bit quantization, tiling, level shift and weighted DWT of ``features`` ``[B, C, H, W]``.

        In float32 for bfloat16 or float16 features and under autocast (:mod:`cilight.ci_models.precision`):
        every step and rate after it works on the transformed coefficients, in their dtype."""
        x = self._check_features(features)
        with float32_region(x):
            return self._transform(at_least_float32(x))

    def _transform(self, x: Tensor) -> Transformed:
        b, c, h, w = x.shape
        layout = TileLayout.named(MinMaxQuantizer.tiling, c, h, w)
        low, high = torch.aminmax(x.detach().flatten(1), dim=1)
        if not bool(torch.isfinite(low).all() and torch.isfinite(high).all()):  # NaN and ±inf reach min/max
            raise CodecError("features contain NaN or infinite values; only finite tensors can be coded")
        step8 = uniform_step(low, high, LEVELS)
        low4, step4 = low.view(-1, 1, 1, 1), step8.view(-1, 1, 1, 1)
        codes = uniform_codes(x.detach(), low4, step4, LEVELS)
        # tile() fills empty cells with the mean; for uint8 codes (the real pipeline) it is rounded
        image = tile(codes.to(torch.uint8), layout).to(x.dtype)
        if _autograd(x):
            # straight-through: the gradient of u = (x − min x)/step8(x), tiled, with min and step8
            # differentiated too. u is invariant to a·x + b (a > 0), so its Jacobian annihilates x and
            # the constant tensor, and so does the gradient of the bits; dequantizing with the same
            # differentiable min and step makes the reconstruction equivariant (a·rec + b).
            flat = x.flatten(1)
            low, high = flat.amin(dim=1), flat.amax(dim=1)  # amin/amax share the gradient among ties
            step8 = uniform_step(low, high, LEVELS)
            low4, step4 = low.view(-1, 1, 1, 1), step8.view(-1, 1, 1, 1)
            image = _straight_through(image, tile((x - low4) / step4, layout))
        levels = resolutions(*layout.image_shape) - 1
        pyramid = dwt2(image - DC_SHIFT, levels)
        coefficients = pyramid.map(lambda name, level, t: t * synthesis_norm(name, level)) if levels else pyramid
        bands = coefficients.bands()
        flat = torch.cat([t.flatten(1) for _, _, t in bands], dim=1)
        flat_scales = torch.cat([self._scale(name, level, t).flatten(1) for name, level, t in bands], dim=1)
        return Transformed(x, coefficients, flat, flat_scales, image, low, step8, layout)

    def _scale(self, name: str, level: int, band: Tensor) -> Tensor:
        """Local mean |c|: across the edge for HL (vertical window) and LH (horizontal), else 3×3."""
        k = self.calibration.window
        shape = {"HL": (k, 1), "LH": (1, k)}.get(name, (3, 3))
        return _local_mean(band.abs(), *shape)

    # ------------------------------------------------------------------ quantize many times
    def _indices(self, transformed: Transformed, s: Tensor) -> tuple[Tensor, Tensor]:
        """``[B, N]``: ``|c| / step`` (differentiable) and the dead-zone index ``|q| = ⌊|c|/step⌋``."""
        ratio = transformed.flat.abs() / s.view(-1, 1)
        return ratio, torch.floor(ratio.detach())

    def _dequantize(self, transformed: Transformed, magnitude: Tensor, s: Tensor) -> Tensor:
        """``[B, N]`` dead-zone reconstruction ``sign(c)·(|q| + ½)·step`` (relaxed in training), ÷ ``w_b``."""
        y, step, inverse_norms = transformed.flat, s.view(-1, 1), transformed.bands.inverse_norms
        if self.training and self.relaxation == "noise":
            return (y + (torch.rand_like(y) - 0.5) * step) * inverse_norms
        # exact values; the gradient reaches ``step`` through (|q| + ½)·step
        hard = torch.copysign((magnitude + 0.5) * step * inverse_norms, y.detach())
        if not _autograd(y, step):
            return hard.masked_fill_(magnitude == 0, 0.0)
        return hard.masked_fill(magnitude == 0, 0.0) + (y - y.detach()) * inverse_norms  # straight-through to c

    def rate_features(self, transformed: Transformed, step: float | Tensor) -> Tensor:
        """``[B, 5]`` rate features (:data:`RATE_FEATURES`) at ``step``; ``bits`` is their
        dot product with the calibration weights."""
        s = _check_step(step, transformed.batch, transformed.image)
        return self._rate_features(transformed, s, self._indices(transformed, s))

    def _rate_features(self, transformed: Transformed, s: Tensor, indices: tuple[Tensor, Tensor]) -> Tensor:
        ratio, q = indices
        sv = s.view(-1, 1)
        significant = q > 0
        u = sv / torch.maximum(transformed.flat_scales, self.calibration.scale_floor * sv)  # step / Laplacian scale
        sig = significant.to(q.dtype)
        refine = torch.log2(q.clamp(min=1.0)).floor_()  # ⌊log2 |q|⌋ for |q| ≥ 1, else 0
        bands = transformed.bands
        blocks = q.new_zeros(q.shape[0], bands.num_blocks).index_add_(1, bands.blocks, sig)
        if _autograd(ratio):  # relaxations: min(|c|/step, 1) and log2 max(|c|/step, 1)
            sig = _straight_through(sig, ratio.clamp(max=1.0))
            refine = _straight_through(refine, torch.log2(ratio.clamp(min=1.0)))
        return torch.stack([(sig * u).sum(1) / _LN2, sig.sum(1), refine.sum(1), (blocks > 0).sum(1).to(q.dtype),
                            torch.ones_like(s)], dim=1)

    def _bits(self, transformed: Transformed, s: Tensor, indices: tuple[Tensor, Tensor] | None = None) -> Tensor:
        # autocast off: it would run the sums over every coefficient and this product in bfloat16
        with float32_region(s):
            indices = self._indices(transformed, s) if indices is None else indices
            weights = calibration_weights(self.calibration.weights, s.device, s.dtype)
            return self._rate_features(transformed, s, indices) @ weights

    def _reconstruct(self, transformed: Transformed, s: Tensor, indices: tuple[Tensor, Tensor] | None = None) -> Tensor:
        with float32_region(s):
            return self._reconstruct_float32(transformed, s, indices)

    def _reconstruct_float32(self, transformed: Transformed, s: Tensor, indices: tuple[Tensor, Tensor] | None) -> Tensor:
        _, magnitude = self._indices(transformed, s) if indices is None else indices
        flat = self._dequantize(transformed, magnitude, s)
        image = idwt2(transformed.bands.pyramid(flat, transformed.coefficients.shape))
        if _autograd(image):
            pixels = (image.detach() + DC_SHIFT).round_().clamp_(0, LEVELS)  # the decoder's uint8 output
            image = _straight_through(pixels, image + DC_SHIFT)
        else:
            image = image.add_(DC_SHIFT).round_().clamp_(0, LEVELS)
        codes = untile(image, transformed.layout)
        return uniform_values(codes, transformed.low.view(-1, 1, 1, 1), transformed.step8.view(-1, 1, 1, 1))

    def quantize(self, transformed: Transformed, step: float | Tensor) -> tuple[Tensor, Tensor]:
        """``(reconstruction [B, C, H, W], bits [B])`` of a transformed batch at ``step``."""
        s = _check_step(step, transformed.batch, transformed.image)
        indices = self._indices(transformed, s)
        return self._reconstruct(transformed, s, indices), self._bits(transformed, s, indices)

    def forward(self, features: Tensor, step: float | Tensor) -> tuple[Tensor, Tensor]:
        """``(reconstruction [B, C, H, W], bits [B])`` at dead-zone ``step`` (a number or ``[B]``).

        Large batches run in chunks of about :data:`CHUNK_ELEMENTS` elements: the same result,
        but the working set stays in cache (about 1.5× faster for 704×768 images on one core).
        """
        x = self._check_features(features)
        s = _check_step(step, x.shape[0], x)
        per_chunk = max(1, CHUNK_ELEMENTS // x[0].numel())
        if x.shape[0] <= per_chunk:
            return self.quantize(self.transform(x), s)
        parts = [self.quantize(self.transform(xc), sc) for xc, sc in zip(x.split(per_chunk), s.split(per_chunk))]
        return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])

    def bits(self, transformed: Transformed, step: float | Tensor) -> Tensor:
        """``[B]`` predicted codestream size in bits at ``step`` (no inverse DWT)."""
        return self._bits(transformed, _check_step(step, transformed.batch, transformed.image))

    def sweep(
        self, transformed: Transformed, steps: Sequence[float] | Tensor, reconstructions: bool = False
    ) -> tuple[Tensor, Tensor]:
        """Quantize a transformed batch at many steps without redoing the DWT.

        Args:
            transformed: from :meth:`transform`.
            steps: ``[S]`` steps shared by the batch, or ``[B, S]``.
            reconstructions: return ``[B, S, C, H, W]`` reconstructions instead of the MSE.

        Returns:
            ``(mse [B, S], bits [B, S])``: feature-domain MSE against ``transformed.features``
            and predicted bits — or ``(reconstructions, bits)``.
        """
        b = transformed.batch
        grid = torch.as_tensor(steps, dtype=transformed.image.dtype, device=transformed.image.device)
        if grid.dim() == 1:
            grid = grid.unsqueeze(0).expand(b, -1)
        if grid.dim() != 2 or grid.shape[0] != b or grid.shape[1] == 0:
            raise CodecError(f"steps must have shape [S] or [{b}, S] with S ≥ 1, got {tuple(grid.shape)}")
        outputs, bits = [], []
        for j in range(grid.shape[1]):
            s = _check_step(grid[:, j], b, transformed.image)
            indices = self._indices(transformed, s)
            rec = self._reconstruct(transformed, s, indices)
            outputs.append(rec if reconstructions else (rec - transformed.features).pow(2).flatten(1).mean(1))
            bits.append(self._bits(transformed, s, indices))
        return torch.stack(outputs, dim=1), torch.stack(bits, dim=1)

    @torch.no_grad()
    def step_for_bits(
        self, transformed: Transformed, bits: float | Tensor, low: float = 1e-2, high: float = 1e4, iterations: int = 40
    ) -> Tensor:
        """``[B]`` step whose predicted bits equal ``bits`` (bisection on ``log step``).

        Targets outside what ``[low, high]`` reaches return the nearest end.
        """
        target = _check_step(bits, transformed.batch, transformed.image, name="bits")
        lo = torch.full_like(target, math.log(low))
        hi = torch.full_like(target, math.log(high))
        for _ in range(iterations):
            mid = (lo + hi) / 2
            above = self._bits(transformed, mid.exp()) > target  # too many bits: step must grow
            lo = torch.where(above, mid, lo)
            hi = torch.where(above, hi, mid)
        return ((lo + hi) / 2).exp()

    @staticmethod
    def _check_features(features: object) -> Tensor:
        if not isinstance(features, Tensor):
            raise CodecError(f"features must be a torch.Tensor [B, C, H, W], got {type(features).__name__}")
        if features.dim() != 4 or features.numel() == 0:
            raise CodecError(f"features must have shape [B, C, H, W] with no empty axis, got {tuple(features.shape)}")
        if not features.is_floating_point():
            raise CodecError(f"features must be floating point, got {features.dtype}")
        return features  # finiteness is checked on the min and max in transform()


class ProxyCoder:
    """The differentiable JPEG2000 proxy as a stream coder: one DWT per stream, then a step per rate.

    Rates include the container's header and min–max side information, exactly as the real
    codec counts them, so proxy and ``jpeg2000`` sweeps are on the same axis. The floor is the
    real codec's: a proxy sweep must not ask for rates OpenJPEG cannot reach.
    """

    name = "proxy"
    overhead_bits: float = 8.0 * (HEADER_BYTES + MinMaxQuantizer().side_bytes(1))
    # log-spaced steps tabulated once per stream, from near-lossless to almost nothing left of
    # 8-bit codes; a target rate's step is interpolated between them
    steps: int = 17
    step_range: tuple[float, float] = (0.1, 1000.0)

    def __init__(self, proxy: Jpeg2000Proxy | None = None) -> None:
        self.proxy = proxy if proxy is not None else Jpeg2000Proxy().eval()

    def prepare(self, features: Tensor) -> tuple[Any, Tensor, Tensor]:
        """The transform, and each sample's predicted bits on a grid of steps (bits fall as step grows)."""
        transformed = self.proxy.transform(features.detach())
        grid = torch.logspace(math.log10(self.step_range[0]), math.log10(self.step_range[1]), self.steps,
                              dtype=torch.float64)
        # the table lives on the CPU in float64 (code() reads it with numpy; some devices have no float64)
        bits = torch.stack([self.proxy.bits(transformed, float(s)).cpu().double() for s in grid], dim=1)  # [B, S]
        return transformed, grid.log(), bits.clamp_min(1.0).log()

    def code(self, prepared: tuple[Any, Tensor, Tensor], bits: float) -> tuple[Tensor, Tensor]:
        """The reconstruction at the step whose tabulated bits meet ``bits``, and the rate model's bits
        at that step (computed, not read off the table: log–log interpolation between the
        tabulated steps would add up to ~6% to the proxy's own error)."""
        transformed, log_steps, log_bits = prepared
        target = math.log(max(bits - self.overhead_bits, 1.0))
        # log bits is monotone (non-increasing) in log step: interpolate on the reversed axes
        steps = [math.exp(float(np.interp(target, lb.flip(0).numpy(), log_steps.flip(0).numpy()))) for lb in log_bits]
        reconstruction, predicted = self.proxy.quantize(transformed, torch.tensor(steps, dtype=transformed.image.dtype))
        return reconstruction, predicted.detach().cpu().double() + self.overhead_bits  # as CodecCoder's: CPU float64

    def code_at(self, prepared: tuple[Any, Tensor, Tensor], step: float) -> tuple[Tensor, Tensor]:
        """Every sample at one dead-zone ``step`` (an operating point ``proxy:step=…``)."""
        reconstruction, predicted = self.proxy.quantize(prepared[0], float(step))
        return reconstruction, predicted.detach().cpu().double() + self.overhead_bits

    def floor(self, features: Tensor) -> float:
        return CodecCoder(get_codec("jpeg2000")).floor(features)
