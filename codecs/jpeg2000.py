"""JPEG2000 codestreams of tiled 8-bit feature images, through OpenJPEG.

``mobile-cloud-inference-ci-thesis.md`` §2.2.3 and ``pareto-optimal-bit-allocation-ci.md``
§VI-A code tiled, 8-bit min–max quantized tensors with JPEG2000 because its rate control can
hit a requested size. Pillow bundles OpenJPEG and exposes its fixed-rate mode in memory; this
module fixes the encoder settings in one place so the real codec and the differentiable proxy
(:mod:`cilight.codecs.proxy`) model the same thing:

* raw codestream (``no_jp2``), irreversible CDF 9/7 wavelet, one quality layer,
* ``num_resolutions`` = :func:`resolutions` (at most 6, fewer for small images),
* 32×32 code-blocks: ~0.13 dB worse than 64×64 but far finer rate control.
"""

from __future__ import annotations

import io
import math

import numpy as np
from PIL import Image

from cilight.codecs.errors import CodecError

CODEBLOCK = 32
MAX_RESOLUTIONS = 6


def resolutions(height: int, width: int) -> int:
    """Resolution levels OpenJPEG can use on an ``height × width`` image (DWT levels + 1)."""
    return max(1, min(MAX_RESOLUTIONS, int(math.log2(min(height, width))) + 1))


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
    try:
        with Image.open(io.BytesIO(data), formats=["JPEG2000"]) as img:
            if img.size != (shape[1], shape[0]) or img.mode != "L":
                raise CodecError(f"JPEG2000 codestream holds a {img.mode} {img.size[::-1]} image, expected L {shape}")
            img.load()
            return np.asarray(img, dtype=np.uint8)
    except CodecError:
        raise
    except Exception as err:  # Pillow/OpenJPEG report corrupt data with many exception types
        raise CodecError(f"corrupt JPEG2000 codestream: {err}") from None
