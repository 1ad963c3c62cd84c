"""The irreversible CDF 9/7 discrete wavelet transform of JPEG2000, in differentiable torch.

Implements ISO/IEC 15444-1 (JPEG2000 Part 1) Annex F for the 9-7 irreversible filter:

* F.3.8.2 / F.4.8.2 — the lifting steps (four lifting steps, then scaling by ``K``)::

      step 1   Y(2n+1) = X(2n+1) + α·[X(2n)   + X(2n+2)]
      step 2   Y(2n)   = X(2n)   + β·[Y(2n−1) + Y(2n+1)]
      step 3   Y(2n+1) = Y(2n+1) + γ·[Y(2n)   + Y(2n+2)]
      step 4   Y(2n)   = Y(2n)   + δ·[Y(2n−1) + Y(2n+1)]
      step 5   Y(2n+1) = K · Y(2n+1)          (high pass, odd samples)
      step 6   Y(2n)   = Y(2n) / K            (low pass, even samples)

  and the inverse runs them backwards with the signs flipped;
* F.3.7 / F.4.7 (``1D_EXTR``) — *whole-sample symmetric* extension at both ends of a
  signal: ``X(−i) = X(i)`` and ``X(n−1+i) = X(n−1−i)`` (the edge sample is not repeated),
  periodically for very short signals; the four lifting steps reach 4 samples beyond each
  edge, so each polyphase component is extended by that much and the steps trim it;
* F.4.2 (``2D_SD``) — one level splits a 2-D array into the four subbands ``LL``, ``HL``
  (horizontal high pass), ``LH`` (vertical high pass) and ``HH``; levels recurse on ``LL``.

Every signal starts at an even index (one tile, origin 0), so a signal of ``n`` samples has
``⌈n/2⌉`` low-pass and ``⌊n/2⌋`` high-pass samples, as in JPEG2000. A signal of a single
sample passes through unchanged (F.3.7).

Scaling: with steps 5–6 as above the analysis low pass has DC gain 1 and the high pass has
gain 2 at Nyquist — the normalization of the standard's 9-7 analysis filter taps (which the
tests check by direct convolution).
OpenJPEG scales its subbands differently, but a codec that allocates rate by MSE works with
coefficients weighted by the L2 norm of their synthesis basis functions
(:func:`synthesis_norm`), which makes the choice irrelevant.

All functions take ``[..., H, W]`` tensors (any leading batch dims), work in the input's
dtype, and are built from gathers, slicing and arithmetic, so autograd flows through the
forward and the inverse transform; without autograd the lifting steps run in place.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from cilight.codecs.errors import CodecError

# Lifting parameters α, β, γ, δ and K of the 9-7 irreversible filter (Annex F).
ALPHA = -1.586134342059924
BETA = -0.052980118572961
GAMMA = 0.882911075530934
DELTA = 0.443506852043971
K = 1.230174104914001

SUBBANDS = ("HL", "LH", "HH")


# --------------------------------------------------------------------------- 1-D lifting
# The lifting runs along one axis (``dim`` = −1 or −2) of a batched tensor. The even and
# odd samples are first gathered, with the symmetric extension, into two contiguous tensors;
# every lifting step is then an update of a slice of one by two slices of the other (no
# strided access, no transposes). Each component carries the signal position of its first
# sample, so the steps can trim the extension as it is used up.

# Samples of extension on each side: the four lifting steps reach 4 samples beyond the edge.
_EXTENSION = 4


def _symmetric_positions(n: int, start: int, stop: int) -> np.ndarray:
    """Source index of signal positions ``start … stop−1`` under whole-sample symmetric
    extension of ``0 … n−1`` (F.3.7, applied as often as needed for very short signals)."""
    positions = np.arange(start, stop)
    if n == 1:
        return np.zeros_like(positions)
    period = 2 * (n - 1)
    positions = np.mod(positions, period)
    return np.where(positions >= n, period - positions, positions)


@functools.lru_cache(maxsize=256)
def _extension_index(n: int, parity: int, device: torch.device, interleaved: bool) -> Tensor:
    """Gather index of the extended even (``parity`` 0) or odd (1) samples of a length-``n``
    signal — positions ``−4 + parity, −2 + parity, …`` up to ``n + 3``. Symmetric extension
    keeps parity, so they come from the signal itself (``interleaved``) or from its even or
    odd component alone (``⌈n/2⌉`` or ``⌊n/2⌋`` samples)."""
    positions = np.arange(-_EXTENSION + parity, n + _EXTENSION, 2)
    source = _symmetric_positions(n, -_EXTENSION, n + _EXTENSION)[positions + _EXTENSION]
    return torch.from_numpy(source if interleaved else (source - parity) // 2).to(device)


def _extended(x: Tensor, n: int, parity: int, dim: int, interleaved: bool) -> Tensor:
    """The even (``parity`` 0) or odd (1) samples of a length-``n`` signal along ``dim`` over
    positions ``−4 + parity … n + 3``, from the signal (``interleaved``) or the component.
    The middle is a (strided) slice, only the few extension samples are gathered."""
    index = _extension_index(n, parity, x.device, interleaved)
    count = (n - parity + 1) // 2  # samples of this parity inside the signal
    axis = dim % x.dim()
    middle = x[(slice(None),) * axis + (slice(parity, None, 2),)] if interleaved else x
    left = x.index_select(dim, index[:2])  # positions −4 + parity, −2 + parity
    right = x.index_select(dim, index[2 + count :])
    return torch.cat([left, middle, right], dim=dim)


def _lift(
    target: Tensor, t0: int, source: Tensor, s0: int, coefficient: float, dim: int, inplace: bool
) -> tuple[Tensor, int]:
    """``Y(p) += coefficient · [Y(p−1) + Y(p+1)]`` for every sample ``p`` of ``target`` whose
    two neighbours are in ``source``; ``t0``/``s0`` are the positions of their first samples
    along ``dim``. Returns the updated samples and the position of the first one. ``inplace``
    (no autograd) updates ``target``'s storage instead of allocating."""
    offset = (t0 - 1 - s0) // 2  # source index of the left neighbour of target sample 0
    first = max(0, -offset)
    last = min(target.shape[dim], source.shape[dim] - 1 - offset)
    left = source.narrow(dim, first + offset, last - first)
    right = source.narrow(dim, first + offset + 1, last - first)
    samples = target.narrow(dim, first, last - first)
    if inplace:
        return samples.add_(left, alpha=coefficient).add_(right, alpha=coefficient), t0 + 2 * first
    return torch.add(samples, left + right, alpha=coefficient), t0 + 2 * first


def _no_autograd(*xs: Tensor) -> bool:
    return not (torch.is_grad_enabled() and any(x.requires_grad for x in xs))


def _analyze_along(x: Tensor, dim: int) -> tuple[Tensor, Tensor]:
    """One level of the 1-D forward transform along ``dim``: steps 1–6 of F.4.8.2."""
    n = x.shape[dim]
    if n < 2:  # F.3.7: a single sample is left as it is
        return x, x.narrow(dim, 0, 0)
    inplace = _no_autograd(x)
    even = _extended(x, n, 0, dim, True)  # positions −4, −2, …
    odd = _extended(x, n, 1, dim, True)  # positions −3, −1, …
    e0, o0 = -_EXTENSION, 1 - _EXTENSION
    odd, o0 = _lift(odd, o0, even, e0, ALPHA, dim, inplace)  # step 1
    even, e0 = _lift(even, e0, odd, o0, BETA, dim, inplace)  # step 2
    odd, o0 = _lift(odd, o0, even, e0, GAMMA, dim, inplace)  # step 3
    even, e0 = _lift(even, e0, odd, o0, DELTA, dim, inplace)  # step 4
    low = even.narrow(dim, -e0 // 2, (n + 1) // 2)
    high = odd.narrow(dim, (1 - o0) // 2, n // 2)
    if inplace:
        return low.mul_(1 / K), high.mul_(K)
    return low * (1 / K), high * K  # steps 6 and 5


def _synthesize_along(low: Tensor, high: Tensor, dim: int) -> Tensor:
    """Inverse of :func:`_analyze_along` (F.3.8.2): undo steps 6…1, then interleave."""
    n_low, n_high = low.shape[dim], high.shape[dim]
    if n_high == 0:
        return low
    if n_low - n_high not in (0, 1):
        raise CodecError(f"9/7 synthesis needs ⌈n/2⌉ low and ⌊n/2⌋ high samples, got {n_low} and {n_high}")
    n = n_low + n_high
    inplace = _no_autograd(low, high)
    even = _extended(low, n, 0, dim, False)
    odd = _extended(high, n, 1, dim, False)
    even, odd = (even.mul_(K), odd.mul_(1 / K)) if inplace else (even * K, odd * (1 / K))
    e0, o0 = -_EXTENSION, 1 - _EXTENSION
    even, e0 = _lift(even, e0, odd, o0, -DELTA, dim, inplace)
    odd, o0 = _lift(odd, o0, even, e0, -GAMMA, dim, inplace)
    even, e0 = _lift(even, e0, odd, o0, -BETA, dim, inplace)
    odd, o0 = _lift(odd, o0, even, e0, -ALPHA, dim, inplace)
    even = even.narrow(dim, -e0 // 2, n_low)
    odd = odd.narrow(dim, (1 - o0) // 2, n_high)
    # interleave: stack a new axis right after ``dim`` and merge the two
    axis = dim % even.dim()
    pairs = torch.stack([even.narrow(dim, 0, n_high), odd], dim=axis + 1).flatten(axis, axis + 1)
    return torch.cat([pairs, even.narrow(dim, n_high, n_low - n_high)], dim=dim) if n_low > n_high else pairs


def analyze(x: Tensor) -> tuple[Tensor, Tensor]:
    """One level of the 1-D forward 9/7 transform along the last axis: ``(low, high)``
    with ``⌈n/2⌉`` and ``⌊n/2⌋`` samples."""
    return _analyze_along(x, -1)


def synthesize(low: Tensor, high: Tensor) -> Tensor:
    """Inverse of :func:`analyze` along the last axis."""
    return _synthesize_along(low, high, -1)


# --------------------------------------------------------------------------- 2-D, multi-level
@dataclass(frozen=True)
class Pyramid:
    """Subbands of a multi-level 2-D DWT.

    ``details[0]`` is the finest level (1) and ``details[-1]`` the coarsest; each entry is
    ``(HL, LH, HH)``: horizontal high pass, vertical high pass, both. ``ll`` is the low-pass
    residue of the coarsest level. ``shape`` is the ``(H, W)`` of the transformed image.
    """

    ll: Tensor
    details: tuple[tuple[Tensor, Tensor, Tensor], ...]
    shape: tuple[int, int]

    @property
    def levels(self) -> int:
        return len(self.details)

    def bands(self) -> list[tuple[str, int, Tensor]]:
        """``(name, level, tensor)`` for every subband, coarsest first (LL, then HL/LH/HH)."""
        out = [("LL", self.levels, self.ll)]
        for level in range(self.levels, 0, -1):
            out += [(name, level, t) for name, t in zip(SUBBANDS, self.details[level - 1])]
        return out

    def map(self, fn) -> Pyramid:
        """A pyramid of the same layout with ``fn(name, level, tensor)`` applied to each band."""
        ll = fn("LL", self.levels, self.ll)
        details = tuple(
            tuple(fn(name, level + 1, t) for name, t in zip(SUBBANDS, bands)) for level, bands in enumerate(self.details)
        )
        return Pyramid(ll, details, self.shape)


def _check_image(x: object, levels: int) -> Tensor:
    if not isinstance(x, Tensor) or x.dim() < 2 or not x.is_floating_point():
        got = f"{x.dtype} {tuple(x.shape)}" if isinstance(x, Tensor) else type(x).__name__
        raise CodecError(f"the DWT takes a floating-point tensor [..., H, W], got {got}")
    if isinstance(levels, bool) or not isinstance(levels, int) or levels < 0:
        raise CodecError(f"DWT levels={levels!r}: expected a non-negative integer")
    height, width = x.shape[-2:]
    if min(height, width) < 1:
        raise CodecError(f"the DWT needs a non-empty image, got {height}×{width}")
    return x


def dwt2(x: Tensor, levels: int) -> Pyramid:
    """``levels`` levels of the 2-D 9/7 analysis of ``x`` ``[..., H, W]`` (Annex F.4, ``FDWT``)."""
    ll = _check_image(x, levels)
    details = []
    for _ in range(levels):
        low, high = _analyze_along(ll, -2)  # vertical: along H
        ll, hl = _analyze_along(low, -1)  # horizontal on the vertical low pass
        lh, hh = _analyze_along(high, -1)
        details.append((hl, lh, hh))
    return Pyramid(ll, tuple(details), (x.shape[-2], x.shape[-1]))


def idwt2(pyramid: Pyramid) -> Tensor:
    """The 2-D 9/7 synthesis of a :class:`Pyramid` (Annex F.3, ``IDWT``)."""
    ll = pyramid.ll
    for hl, lh, hh in reversed(pyramid.details):
        low = _synthesize_along(ll, hl, -1)
        high = _synthesize_along(lh, hh, -1)
        ll = _synthesize_along(low, high, -2)
    if tuple(ll.shape[-2:]) != tuple(pyramid.shape):
        raise CodecError(f"inverse DWT produced {tuple(ll.shape[-2:])}, expected {pyramid.shape}")
    return ll


# --------------------------------------------------------------------------- norms
@functools.cache
def _norms_1d(levels: int) -> tuple[tuple[float, float], ...]:
    """L2 norms of the 1-D synthesis basis functions, ``(low, high)`` for levels 1…``levels``.

    Computed by synthesizing a unit impulse in the middle of a long signal (so the boundary
    does not touch it), the same infinite-length norms as OpenJPEG's ``opj_dwt_norms_real``
    up to the subband scaling.
    """
    n = 2 ** (levels + 6)
    out = []
    for level in range(1, levels + 1):
        norms = []
        for band in ("low", "high"):
            size = n >> level
            coeffs = torch.zeros(2, size, dtype=torch.float64)
            coeffs[0 if band == "low" else 1, size // 2] = 1.0
            x = synthesize(coeffs[0], coeffs[1])
            for _ in range(level - 1):
                x = synthesize(x, torch.zeros_like(x))
            norms.append(math.sqrt(float((x * x).sum())))
        out.append((norms[0], norms[1]))
    return tuple(out)


def synthesis_norm(name: str, level: int) -> float:
    """L2 norm of one synthesis basis function of subband ``name`` (LL, HL, LH, HH) at ``level``.

    A quantization error ``e`` on one coefficient of that subband adds ``(norm · e)²`` to the
    squared error of the image; weighting each subband by its norm makes the transform
    (nearly) orthonormal, the domain in which JPEG2000's rate control equalizes slopes.
    """
    if level < 1 or name not in ("LL", *SUBBANDS):
        raise CodecError(f"no subband {name!r} at level {level}")
    norms = _norms_1d(level)
    low_l, high_l = norms[level - 1]
    horizontal = high_l if name in ("HL", "HH") else low_l
    vertical = high_l if name in ("LH", "HH") else low_l
    return horizontal * vertical
