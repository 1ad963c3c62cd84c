"""One definition for numpy and torch: the array operations the byte path shares with training.

The edge install (``cilight-edge``) has no torch, so every codec works on numpy arrays. Training
needs some of the same arithmetic on tensors — the n-bit min–max quantizer of the Q-layer, BaF's
float16 channel bounds, the tiling the JPEG2000 proxy codes — and, inside an exported edge half, as
ONNX operators. Rather than a numpy copy beside a torch copy, those functions are written once
against the methods numpy arrays and torch tensors share (``reshape``, ``round``, ``clip``,
``swapaxes``, arithmetic); the few operations whose spelling differs are here. A tensor is recognised
by its type's module, so this module never imports torch: where a tensor is passed, torch is
already loaded.

Why not ``array-api-compat``: its torch namespace wraps ``clip`` and ``astype`` in generic code that
exports to ONNX as several operators and may not keep autograd's straight paths; these four
functions call each library's own operator.
"""

from __future__ import annotations

import sys

import numpy as np

from cilight.codecs.errors import CodecError

FLOAT_DTYPES = ("float32", "float16", "bfloat16", "float64")  # what a container can say was coded


def is_tensor(x: object) -> bool:
    """Whether ``x`` is a torch tensor (without importing torch)."""
    return type(x).__module__.split(".")[0] == "torch"


def _torch():
    return sys.modules["torch"]


def astype(x, dtype: str):
    """``x`` cast to the dtype named ``dtype`` (``"float16"``, ``"uint8"`` …): numpy's ``astype``, torch's ``to``."""
    if is_tensor(x):
        return x.to(getattr(_torch(), dtype))
    with np.errstate(over="ignore"):  # as torch does: a value beyond the dtype's range becomes ±inf (callers check)
        return np.asarray(x).astype(dtype)


def amin(x, axis: int):
    """The minimum over ``axis`` (torch's ``amin``, numpy's ``min``)."""
    return x.amin(axis) if is_tensor(x) else x.min(axis)


def amax(x, axis: int):
    """The maximum over ``axis`` (torch's ``amax``, numpy's ``max``)."""
    return x.amax(axis) if is_tensor(x) else x.max(axis)


def concat(parts: list, axis: int):
    """``parts`` joined along ``axis`` (``torch.cat``, ``np.concatenate``)."""
    return _torch().cat(parts, dim=axis) if is_tensor(parts[0]) else np.concatenate(parts, axis=axis)


def dtype_name(x) -> str:
    """The dtype of an array or tensor by name: ``float32``, ``bfloat16``, ``uint8`` …"""
    return str(x.dtype).removeprefix("torch.")


def as_array(x, what: str = "features") -> np.ndarray:
    """``x`` as a numpy array: an array as it is; a tensor (any device, with or without grad) detached and
    copied to the CPU, bfloat16 (which numpy lacks) widened to float32; anything else through ``np.asarray``."""
    if isinstance(x, np.ndarray):
        return x
    if is_tensor(x):
        x = x.detach().cpu()
        return (x.float() if dtype_name(x) == "bfloat16" else x).numpy()
    try:
        return np.asarray(x)
    except (TypeError, ValueError) as err:
        raise CodecError(f"{what} must be a numpy array or a torch tensor, got {type(x).__name__}: {err}") from None


__all__ = ["FLOAT_DTYPES", "amax", "amin", "as_array", "astype", "concat", "dtype_name", "is_tensor"]
