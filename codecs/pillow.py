"""Decoding untrusted image payloads with Pillow: one place that maps its failures to CodecError."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from cilight.codecs.errors import CodecError


def pillow_decode(payload: bytes, fmt: str, shape: tuple[int, int], modes: tuple[str, ...]) -> np.ndarray:
    """Pixels of a ``fmt`` payload that must hold an image of ``shape`` in one of ``modes``.

    The size and mode are checked before the pixels are decoded, so a payload cannot make
    the decoder allocate more than the container header announced.
    """
    try:
        with Image.open(io.BytesIO(payload), formats=[fmt]) as img:
            if img.size != (shape[1], shape[0]) or img.mode not in modes:
                raise CodecError(f"{fmt} payload holds a {img.mode} image of {img.size[::-1]}, expected {modes[0]} {shape}")
            img.load()
            return np.asarray(img)
    except CodecError:
        raise
    except Exception as err:  # Pillow reports corrupt data with many exception types
        raise CodecError(f"corrupt {fmt} payload: {err}") from None
