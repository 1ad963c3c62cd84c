"""What the runtimes are given, checked before anything is run, encoded or sent.

One helper per concern, each raising one :class:`~cilight.errors.ConfigError` (a value the caller
chose) or :class:`~cilight.codecs.CodecError` (data to decode) whose one-line message names the value
and what was expected:

* :func:`check_images` — the image batch of :class:`~cilight.deploy.EdgeRuntime`: a numpy array of
  floating point, finite, in ``[0, 1]`` (± :data:`IMAGE_TOLERANCE`), ``[batch ≥ 1, 3, H, W]`` at
  the exported size; a uint8 or ×255 image, a NaN, a channels-last layout is refused, not sent;
* :func:`check_rates` — per-stream rate options (``{split point: {option: value}}``);
* :func:`check_data` — what :meth:`~cilight.deploy.CloudRuntime.infer` decodes: bytes, or a
  non-empty list of frames or of packets;
* :func:`check_conceal`, :func:`check_drop_corrupt` — a concealment strategy's name (or ``None``,
  strict) and whether corrupt packets are dropped.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from cilight.codecs import CONCEALMENT_METHODS, CodecError
from cilight.codecs.container import MAGIC as FRAME_MAGIC
from cilight.deploy.packets import is_packet
from cilight.errors import ConfigError

# How far outside [0, 1] an image value may lie and still be accepted, as it is (absolute): room for
# float rounding (x / 255 * 255 / 255, a float16 copy) but far below a ×255 or mean/std-normalized image.
IMAGE_TOLERANCE = 1e-3
BYTES = (bytes, bytearray, memoryview)


def describe(value: object) -> str:
    """A short name of what ``value`` is, for messages: ``a str ('hello')``, ``a torch.Tensor``, ``None``."""
    if value is None:
        return "None"
    kind = type(value)
    name = kind.__name__ if kind.__module__ == "builtins" else f"{kind.__module__.split('.')[0]}.{kind.__name__}"
    if isinstance(value, str):
        return f"a str ({value[:20]!r}{'…' if len(value) > 20 else ''})"
    if isinstance(value, np.ndarray):
        return f"a numpy array {value.dtype} {list(value.shape)}"
    return f"{'an' if name[0].lower() in 'aeiou' else 'a'} {name}"


def check_images(images: object, shape: tuple[int, int, int]) -> np.ndarray:
    """``images`` as a contiguous float32 ``[batch, C, H, W]`` array, or one :class:`ConfigError`.

    ``shape`` is ``(C, H, W)`` the edge half was exported at. Accepted: a numpy array of float16,
    float32 or float64 values, all finite and in ``[0, 1]`` (± :data:`IMAGE_TOLERANCE`, kept as they
    are), shaped ``[batch ≥ 1, C, H, W]``, or one image ``[C, H, W]`` (a batch of one). Refused, with
    what to do: anything not a numpy array, an integer or bool dtype (uint8 0–255: divide by 255),
    values above 1 or below 0 (×255, or normalized with a mean and std: the model normalizes
    itself), NaN or infinity, an empty batch, another size, a channels-last layout. The checks
    are one ``min`` and one ``max`` over the array; counting NaN happens only when there is one.
    """
    c, h, w = shape
    expected = f"[batch, {c}, {h}, {w}]"
    if not isinstance(images, np.ndarray):
        hint = " (tensor.numpy())" if type(images).__module__.startswith("torch") else " (np.asarray(images, np.float32))"
        raise ConfigError(f"images: got {describe(images)}; expected a numpy array {expected} of float32 in [0, 1]{hint}")
    given = list(images.shape)
    if images.ndim == 3 and images.shape == (c, h, w):
        images = images[None]  # one image: a batch of one
    if images.ndim != 4 or images.shape[1:] != (c, h, w):
        if images.ndim in (3, 4) and images.shape[-3:] == (h, w, c):
            order = "(2, 0, 1)" if images.ndim == 3 else "(0, 3, 1, 2)"
            raise ConfigError(f"images have shape {given}, channels last; expected {expected} with channels first "
                              f"(images.transpose{order})")
        size = " (the size the model was exported at)"
        raise ConfigError(f"images must have shape {expected}{size}, got {given}")
    if images.shape[0] == 0:
        raise ConfigError(f"images: an empty batch {given}; expected at least one image {expected}")
    if not np.issubdtype(images.dtype, np.floating):
        if images.dtype.kind in "iu":
            high = int(images.max())
            hint = "divide by 255" if images.dtype == np.uint8 or 1 < high <= 255 else "images.astype(np.float32)"
            raise ConfigError(f"image batch has dtype {images.dtype} with values up to {high}; expected float32 in "
                              f"[0, 1] ({hint})")
        raise ConfigError(f"image batch has dtype {images.dtype}; expected float32 in [0, 1]")
    low, high = float(images.min()), float(images.max())  # NaN anywhere makes both NaN
    if not (np.isfinite(low) and np.isfinite(high)):
        nan, inf = int(np.isnan(images).sum()), int(np.isinf(images).sum())
        raise ConfigError(f"image batch has {nan} NaN and {inf} infinite values (of {images.size}); expected finite "
                          "values in [0, 1]")
    if low < -IMAGE_TOLERANCE or high > 1 + IMAGE_TOLERANCE:
        if low >= -IMAGE_TOLERANCE and 2 < high <= 255 + IMAGE_TOLERANCE:
            hint = "; 0–255 values? divide by 255"
        elif low < -0.1:
            hint = "; normalized with a mean and std? the model normalizes itself: pass images in [0, 1]"
        elif high <= 1.1:
            hint = "; slightly outside (resampling overshoot?): np.clip(images, 0, 1)"
        else:
            hint = ""
        raise ConfigError(f"image batch has {images.dtype} values from {low:.4g} to {high:.4g}; expected values in "
                          f"[0, 1] (within {IMAGE_TOLERANCE:g}){hint}")
    return np.ascontiguousarray(images, dtype=np.float32)


def check_rates(rates: object, split_points: Iterable[str]) -> dict[str, dict]:
    """Per-stream rate options as ``{split point: {option: value}}`` (``None``: none), or one :class:`ConfigError`
    naming an unknown stream or a value that is not a dict. The options themselves are the codec's to check."""
    split_points = list(split_points)
    if rates is None:
        return {}
    if not isinstance(rates, dict):
        raise ConfigError(f"rates: got {describe(rates)}; expected a dict of rate options per stream, e.g. "
                          f"{{{split_points[0]!r}: {{'target_bits': 20000}}}}")
    unknown = sorted(str(k) for k in set(rates) - set(split_points))
    if unknown:
        raise ConfigError(f"rates for unknown streams {unknown}; this model sends {split_points}")
    for split, options in rates.items():
        if options is not None and not isinstance(options, dict):
            raise ConfigError(f"rates[{split!r}]: got {describe(options)}; expected a dict of rate options, e.g. "
                              "{'target_bits': 20000}")
    return {split: dict(options or {}) for split, options in rates.items()}


def check_data(data: object) -> list:
    """What :meth:`~cilight.deploy.CloudRuntime.infer` decodes, as a non-empty list of byte strings, or one
    :class:`CodecError`: bytes (one frame), or a list of whole frames, or a list of packets (not both)."""
    expected = "expected bytes (one frame), or a list of frames or of packets (each bytes)"
    if isinstance(data, BYTES):
        return [data]
    if data is None or isinstance(data, (str, dict, np.ndarray)) or not isinstance(data, Iterable):
        hint = " (array.tobytes() if it holds a frame)" if isinstance(data, np.ndarray) else ""
        raise CodecError(f"data: got {describe(data)}; {expected}{hint}")
    items = list(data)
    if not items:
        raise CodecError(f"nothing to infer from: an empty {type(data).__name__}; {expected}")
    for index, item in enumerate(items):
        if not isinstance(item, BYTES):
            raise CodecError(f"data[{index}]: got {describe(item)}; {expected}")
    packets = [is_packet(item) for item in items]
    if any(packets):
        frames = [i for i, item in enumerate(items) if bytes(item[: len(FRAME_MAGIC)]) == FRAME_MAGIC]
        if frames:
            raise CodecError(f"data mixes {sum(packets)} packet(s) and {len(frames)} whole frame(s) (first at index "
                             f"{frames[0]}); pass frames or packets, not both")
    return items


def check_drop_corrupt(drop_corrupt: object) -> bool:
    """``drop_corrupt`` of the cloud runtime: a bool (a truthy string is not ``True``), or one :class:`ConfigError`."""
    if not isinstance(drop_corrupt, bool):
        raise ConfigError(f"drop_corrupt={drop_corrupt!r}: expected True or False")
    return drop_corrupt


def check_conceal(conceal: object) -> str | None:
    """A concealment strategy (``None``: strict, any loss is an error), or one :class:`ConfigError`."""
    if conceal is not None and (not isinstance(conceal, str) or conceal not in CONCEALMENT_METHODS):
        raise ConfigError(f"conceal={conceal!r}: expected None or one of {', '.join(CONCEALMENT_METHODS)}")
    return conceal


__all__ = ["IMAGE_TOLERANCE", "check_conceal", "check_data", "check_drop_corrupt", "check_images", "check_rates",
           "describe"]
