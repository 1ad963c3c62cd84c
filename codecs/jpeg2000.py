"""JPEG2000 codestreams of tiled 8-bit feature images, through OpenJPEG.

Ulhaq, B.A.Sc. thesis, SFU 2020, §2.2.3 and Alvar & Bajić, IEEE TIP 2021,
§VI-A code tiled, 8-bit min–max quantized tensors with JPEG2000 because its rate control can
hit a requested size. Pillow bundles OpenJPEG and exposes its fixed-rate mode in memory; this
module fixes the encoder settings in one place so the real codec and the differentiable proxy
(:mod:`cilight.ci_models.proxy`) model the same thing:

* raw codestream (``no_jp2``), irreversible CDF 9/7 wavelet, one quality layer,
* ``num_resolutions`` = :func:`resolutions` (at most 6, fewer for small images),
* 32×32 code-blocks: ~0.13 dB worse than 64×64 but far finer rate control.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass

import numpy as np
from PIL import Image

from cilight.codecs.errors import CodecError
from cilight.codecs.pillow import pillow_decode

CODEBLOCK = 32
MAX_RESOLUTIONS = 6


def resolutions(height: int, width: int) -> int:
    """Resolution levels OpenJPEG can use on an ``height × width`` image (DWT levels + 1)."""
    return max(1, min(MAX_RESOLUTIONS, int(math.log2(min(height, width))) + 1))


def smallest_codestream(image: np.ndarray) -> int:
    """Bytes of the smallest codestream OpenJPEG writes for ``image`` (headers, first passes)."""
    return len(encode_codestream(image, float(image.size)))


def encode_codestream(image: np.ndarray, ratio: float) -> bytes:
    """OpenJPEG codestream of a ``uint8 [H, W]`` image at compression ``ratio`` (H·W / bytes)."""
    if image.dtype != np.uint8 or image.ndim != 2:
        raise CodecError(f"JPEG2000 codes uint8 [H, W] images, got {image.dtype} {image.shape}")
    out = io.BytesIO()
    Image.fromarray(image).save(
        out,
        format="JPEG2000",
        no_jp2=True,
        irreversible=True,
        quality_mode="rates",
        quality_layers=[float(ratio)],
        num_resolutions=resolutions(*image.shape),
        codeblock_size=(CODEBLOCK, CODEBLOCK),
    )
    return out.getvalue()


def decode_codestream(data: bytes, shape: tuple[int, int]) -> np.ndarray:
    """Decode a codestream expected to hold a ``uint8`` image of ``shape``."""
    return pillow_decode(data, "JPEG2000", shape, ("L",))


@dataclass(frozen=True)
class SizedCodestream:
    """Result of :func:`encode_to_size`: the codestream closest to the target and its cost."""

    codestream: bytes
    ratio: float
    encodes: int


def encode_to_size(image: np.ndarray, target_bytes: float, tolerance_bytes: float, max_encodes: int = 10) -> SizedCodestream:
    """The codestream of ``image`` whose size is closest to ``target_bytes``.

    OpenJPEG's fixed-rate mode stops at coding-pass boundaries, so one encode at
    ``ratio = H·W / target`` misses by a few percent about a quarter of the time. Size falls
    monotonically with the ratio and roughly as ``1/ratio``, so this searches ``log ratio``
    with the secant method inside a bracket (regula falsi with the Illinois correction,
    falling back to bisection), starting from the slope −1 guess. It stops once a size is
    within ``tolerance_bytes``. Some targets are unreachable — no pass boundary lies within
    the tolerance, or the target is below :func:`smallest_codestream` (~160–180 bytes) or above
    the size with every pass kept — and then the closest size wins; the caller decides whether
    that is an error.
    """
    pixels = image.size
    lo_x, hi_x = 0.0, math.log(pixels)  # ratio 1 keeps every pass; ratio H·W asks for 1 byte
    log_target = math.log(max(target_bytes, 1.0))
    tried: list[tuple[float, int, bytes]] = []

    def attempt(x: float) -> float:
        data = encode_codestream(image, math.exp(x))
        tried.append((x, len(data), data))
        return math.log(len(data)) - log_target

    def closest() -> SizedCodestream:
        x, _, data = min(tried, key=lambda t: abs(t[1] - target_bytes))
        return SizedCodestream(data, math.exp(x), len(tried))

    # Bracket: f(x_big) > 0 (too many bytes), f(x_small) < 0 (too few); f falls as x grows.
    big = small = previous = None
    moved = 0  # which end moved last: +1 big, −1 small (for the Illinois correction)
    x = min(max(math.log(pixels / max(target_bytes, 1.0)), lo_x), hi_x)
    while len(tried) < max_encodes:
        f = attempt(x)
        if abs(tried[-1][1] - target_bytes) <= tolerance_bytes:
            break
        if (f > 0 and x >= hi_x) or (f < 0 and x <= lo_x):
            break  # below the smallest or above the largest codestream
        if f > 0:
            big = (x, f)
            if moved == 1 and small:
                small = (small[0], small[1] / 2)  # Illinois: halve the weight of the end that stayed
            moved = 1
        else:
            small = (x, f)
            if moved == -1 and big:
                big = (big[0], big[1] / 2)
            moved = -1
        if big and small:
            if small[0] - big[0] < 1e-6:
                break
            nxt = big[0] - big[1] * (small[0] - big[0]) / (small[1] - big[1])
            if not big[0] < nxt < small[0]:
                nxt = (big[0] + small[0]) / 2
        elif previous and previous[1] != f:
            nxt = x - f * (x - previous[0]) / (f - previous[1])
        else:
            nxt = x + f  # size ∝ 1/ratio
        previous = (x, f)
        x = min(max(nxt, lo_x), hi_x)
    return closest()
