"""Error concealment: filling in tensor elements or channels lost in transmission.

Ulhaq, B.A.Sc. thesis, SFU 2020, §3.2 (Fig. 3.3) compares four ways of replacing the
missing entries ``(y, x, c)`` of a received ``C×H×W`` tensor ``T``:

* ``zero`` — 0;
* ``channel_mean`` — ``T_μ(c)``, the channel's mean, computed on the edge over the full tensor
  and transmitted (``C`` extra values);
* ``dataset_mean`` — ``μ(y, x, c)``, the mean tensor over a representative sample set,
  precomputed in the cloud (:class:`DatasetMean`); nothing extra is sent;
* ``hybrid`` — ``μ(y, x, c) + (T_μ(c) − (1/HW)·Σ_ij μ(i, j, c))``: the dataset mean map shifted
  to this tensor's channel mean.

The thesis finds ``dataset_mean`` best at low loss and ``hybrid`` marginally better at high
loss; ``zero`` worst. :func:`loss_mask` draws the random element or channel losses of its
experiments. Everything here is numpy (a tensor is accepted and copied to the CPU): the cloud
conceals with the edge install's dependencies only.
"""

from __future__ import annotations

import math

import numpy as np

from cilight.codecs.arrays import as_array
from cilight.errors import ConfigError

METHODS = ("zero", "channel_mean", "dataset_mean", "hybrid")
UNITS = ("element", "channel")


def channel_means(features) -> np.ndarray:
    """``T_μ(c)`` of ``[..., C, H, W]`` features: what the edge sends for ``channel_mean``/``hybrid``."""
    return as_array(features).mean(axis=(-2, -1))


class DatasetMean:
    """Running mean ``μ(y, x, c)`` of ``[B, C, H, W]`` batches (float64, exact for any count)."""

    def __init__(self) -> None:
        self.total: np.ndarray | None = None
        self.count = 0

    def update(self, batch) -> None:
        batch = as_array(batch, "a batch")
        if batch.ndim != 4:
            raise ConfigError(f"dataset mean takes [B, C, H, W] batches, got shape {tuple(batch.shape)}")
        if self.total is not None and batch.shape[1:] != self.total.shape:
            raise ConfigError(f"batch of shape {tuple(batch.shape)} does not match [B, {', '.join(map(str, self.total.shape))}]")
        summed = batch.astype(np.float64).sum(0)
        self.total = summed if self.total is None else self.total + summed
        self.count += batch.shape[0]

    def compute(self) -> np.ndarray:
        if self.total is None:
            raise ConfigError("dataset mean has seen no batches")
        return (self.total / self.count).astype(np.float32)


def loss_mask(shape: tuple[int, ...], fraction: float, unit: str = "element",
              generator: np.random.Generator | None = None) -> np.ndarray:
    """Boolean mask over ``[..., C, H, W]``, ``True`` where data arrived.

    Exactly ``round(fraction·n)`` of the ``n`` elements (``unit="element"``) or channels
    (``unit="channel"``) of each tensor are lost, chosen uniformly at random (``generator``: a
    ``numpy.random.Generator``, for repeatable draws).
    """
    if unit not in UNITS:
        raise ConfigError(f"loss unit={unit!r}: expected one of {', '.join(UNITS)}")
    if not isinstance(fraction, (int, float)) or not 0 <= fraction <= 1:
        raise ConfigError(f"loss fraction={fraction!r}: expected a number from 0 to 1")
    if len(shape) < 3:
        raise ConfigError(f"loss mask needs a [..., C, H, W] shape, got {tuple(shape)}")
    *lead, c, h, w = shape
    units = c * h * w if unit == "element" else c
    lost = round(fraction * units)
    if generator is not None and not isinstance(generator, np.random.Generator):
        raise ConfigError(f"loss mask generator: expected a numpy.random.Generator (np.random.default_rng(seed)), got "
                          f"{type(generator).__name__}")
    rng = generator if generator is not None else np.random.default_rng()
    order = rng.random((math.prod(lead), units)).argsort(axis=1, kind="stable")
    keep = np.ones((math.prod(lead), units), dtype=bool)
    np.put_along_axis(keep, order[:, :lost], False, axis=1)
    keep = keep.reshape(*lead, c, h, w) if unit == "element" else keep.reshape(*lead, c, 1, 1)
    return np.broadcast_to(keep, (*lead, c, h, w)).copy()


def conceal(
    received,
    mask,
    method: str = "dataset_mean",
    *,
    channel_mean=None,
    dataset_mean=None,
) -> np.ndarray:
    """``received`` (``[..., C, H, W]``) with the entries where ``mask`` is ``False`` filled in.

    Args:
        method: ``zero``, ``channel_mean``, ``dataset_mean`` or ``hybrid``.
        channel_mean: ``[..., C]`` transmitted channel means (``channel_mean``, ``hybrid``).
        dataset_mean: ``[C, H, W]`` precomputed mean tensor (``dataset_mean``, ``hybrid``).
    """
    if method not in METHODS:
        raise ConfigError(f"concealment method={method!r}: expected one of {', '.join(METHODS)}")
    received, mask = as_array(received, "received features"), as_array(mask, "mask")
    channel_mean = None if channel_mean is None else as_array(channel_mean, "channel_mean")
    dataset_mean = None if dataset_mean is None else as_array(dataset_mean, "dataset_mean")
    if mask.shape != received.shape or mask.dtype != np.bool_:
        raise ConfigError(f"mask must be a bool tensor of shape {tuple(received.shape)}, got {mask.dtype} {tuple(mask.shape)}")
    c, h, w = received.shape[-3:]
    if method in ("channel_mean", "hybrid"):
        if channel_mean is None or channel_mean.shape != received.shape[:-2]:
            raise ConfigError(f"{method} concealment needs channel_mean of shape {tuple(received.shape[:-2])}")
    if method in ("dataset_mean", "hybrid"):
        if dataset_mean is None or dataset_mean.shape != (c, h, w):
            raise ConfigError(f"{method} concealment needs dataset_mean of shape ({c}, {h}, {w})")
    if method == "zero":
        fill = np.zeros_like(received)
    elif method == "channel_mean":
        fill = channel_mean[..., None, None]
    elif method == "dataset_mean":
        fill = dataset_mean
    else:  # hybrid: μ(y,x,c) + (T_μ(c) − mean_ij μ(i,j,c))
        fill = dataset_mean + (channel_mean - dataset_mean.mean(axis=(-2, -1)))[..., None, None]
    return np.where(mask, received, np.asarray(fill, dtype=received.dtype))
