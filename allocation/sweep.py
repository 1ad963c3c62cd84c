"""Rate sweeps: measure task distortion over sampled rate tuples (``pareto-optimal-bit-allocation-ci.md`` §VI-A).

The paper's experiment: for budgets ``R_min … R_max`` (total bits of all streams per image),
sample rate tuples ``(R_1, …, R_N)`` uniformly with ``0.5·R_min ≤ ΣR ≤ 1.5·R_max``, code every
stream at its rate, run the cloud half on the decoded tensors, and measure every task. For a
budget ``R_t`` the surface of eq 2 is then fitted on the tuples with
``0.75·R_t ≤ ΣR ≤ 1.25·R_t``.

::

    images ─► edge (split points) ─► features_s ─► coder.prepare (once per stream)
                                               └► for each rate tuple: coder.code(·, R_s) ─► decoder ─► task metrics
                                                                                                  └► eq 1 distortions

Rates are **bits per image** (all streams of one image together for ``ΣR``), measured on what
the coder actually produced, not the targets.

A *stream coder* turns features into their decoded version at a rate:
``prepare(features[B,C,H,W]) -> state``, ``code(state, bits) -> (reconstruction[B,C,H,W],
bits[B])`` and ``floor(features) -> bits`` (the least it can code). :class:`CodecCoder` wraps a
real byte codec of :mod:`cilight.codecs`; the proxy coder (:mod:`cilight.codecs.proxy`)
transforms once and re-quantizes per tuple.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import torch
from torch import Tensor

from cilight.allocation.distortion import task_distortion, total_distortion
from cilight.allocation.surface import DistortionSurface, fit_surface
from cilight.codecs import TileLayout, get_codec, jpeg2000, tile
from cilight.codecs.container import HEADER_BYTES
from cilight.errors import ConfigError

# Task metric → whether it rises with accuracy (eq 1 needs the direction).
TASK_METRICS = {"segmentation_miou": True, "disparity_rmse": False, "reconstruction_psnr": True}


class StreamCoder(Protocol):
    name: str

    def prepare(self, features: Tensor) -> Any: ...

    def code(self, state: Any, bits: float) -> tuple[Tensor, Tensor]: ...

    def floor(self, features: Tensor) -> float: ...


@dataclass
class CodecCoder:
    """A real byte codec (default ``jpeg2000``) as a stream coder: encode and decode every sample."""

    codec: Any = field(default_factory=lambda: get_codec("jpeg2000"))
    name: str = "jpeg2000"

    def prepare(self, features: Tensor) -> Tensor:
        return features.detach().cpu()

    def code(self, features: Tensor, bits: float) -> tuple[Tensor, Tensor]:
        decoded, sizes = [], []
        for x in features:
            data = self.codec.encode(x, target_bits=bits)
            decoded.append(self.codec.decode(data))
            sizes.append(8 * len(data))
        return torch.stack(decoded), torch.tensor(sizes, dtype=torch.float64)

    def floor(self, features: Tensor) -> float:
        """Bits of the smallest stream any sample can be coded into (header and side info included)."""
        quantizer = self.codec.quantizer_
        smallest = 0
        for x in features:
            q = quantizer.quantize(x)
            image = tile(q.codes, TileLayout.named(self.codec.tiling, *x.shape)).numpy()
            smallest = max(smallest, jpeg2000.smallest_codestream(image) + HEADER_BYTES + q.side.nbytes)
        return 8.0 * smallest


def sample_rate_tuples(count: int, floors, min_total: float, max_total: float, seed: int = 0) -> np.ndarray:
    """``count`` rate tuples uniform over ``{R_s ≥ floor_s, 0.5·min_total ≤ ΣR ≤ 1.5·max_total}``."""
    floors = np.asarray(floors, dtype=float)
    low, high = 0.5 * min_total, 1.5 * max_total
    if not 0 < min_total <= max_total:
        raise ConfigError(f"budgets must satisfy 0 < min ≤ max, got min={min_total}, max={max_total}")
    if floors.sum() >= high:
        raise ConfigError(f"the streams cannot be coded below {floors.sum():.0f} bits together (floors "
                          f"{np.round(floors).tolist()}), above 1.5 × the largest budget ({high:.0f}): raise the budgets")
    rng = np.random.default_rng(seed)
    tops = high - (floors.sum() - floors)
    out: list[np.ndarray] = []
    while len(out) < count:
        batch = floors + rng.random((4 * count, len(floors))) * (tops - floors)
        total = batch.sum(1)
        out.extend(batch[(total >= low) & (total <= high)])
    return np.array(out[:count])


@dataclass(frozen=True)
class RateSweep:
    """Measured points: rates ``(M, N)`` bits per image, task metrics ``(M,)`` each, and the reference."""

    rates: np.ndarray
    targets: np.ndarray
    metrics: dict[str, np.ndarray]
    reference: dict[str, float]

    @property
    def distortions(self) -> np.ndarray:
        """``(M, k)`` task distortions of eq 1 in percent, columns in :data:`TASK_METRICS` order."""
        return np.stack([task_distortion(self.metrics[m], self.reference[m], higher_is_better=up)
                         for m, up in TASK_METRICS.items()], axis=1)

    def fit(self, total_rate: float, weights="equal") -> DistortionSurface:
        """The surface of eq 2 on the points with ``0.75·R_t ≤ ΣR ≤ 1.25·R_t`` (§VI-A)."""
        totals = self.rates.sum(1)
        near = (totals >= 0.75 * total_rate) & (totals <= 1.25 * total_rate)
        return fit_surface(self.rates[near], total_distortion(self.distortions[near], weights))


def _compute(metrics) -> dict[str, float]:
    out = {name: float(m.compute()) for name, m in metrics.items()}
    for m in metrics.values():
        m.reset()
    return out


@torch.no_grad()
def rate_sweep(model, batches: list[dict[str, Tensor]], coder: StreamCoder, rate_tuples: np.ndarray,
               progress: bool = True) -> RateSweep:
    """Measure the tasks of ``model`` (a :class:`~cilight.ci_models.MultiTaskCI`) at every rate tuple."""
    from cilight.ci_models.multitask import task_metrics, update_task_metrics

    rate_tuples = np.asarray(rate_tuples, dtype=float)
    streams = len(model.split_points)
    if rate_tuples.ndim != 2 or rate_tuples.shape[1] != streams:
        raise ConfigError(f"rate tuples must have shape (M, {streams}) for streams {list(model.split_points)}, "
                          f"got {rate_tuples.shape}")
    model = model.eval()
    metrics = task_metrics(model.hparams.num_classes, model.hparams.ignore_index)
    features = [model.features(batch["image"]) for batch in batches]
    for batch, feats in zip(batches, features):
        update_task_metrics(metrics, model.decoder(feats), batch)
    reference = _compute(metrics)
    prepared = [[coder.prepare(f) for f in feats] for feats in features]
    rates = np.zeros_like(rate_tuples)
    values = {name: np.zeros(len(rate_tuples)) for name in TASK_METRICS}
    iterator = range(len(rate_tuples))
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(iterator, desc=f"rate sweep ({coder.name})", leave=False)
    for i in iterator:
        bits = np.zeros(streams)
        count = 0
        for batch, states in zip(batches, prepared):
            coded = [coder.code(state, rate_tuples[i, s]) for s, state in enumerate(states)]
            update_task_metrics(metrics, model.decoder([c[0] for c in coded]), batch)
            bits += np.array([float(c[1].sum()) for c in coded])
            count += len(batch["image"])
        rates[i] = bits / count
        for name, value in _compute(metrics).items():
            values[name][i] = value
    return RateSweep(rates, rate_tuples, values, reference)


__all__ = ["TASK_METRICS", "CodecCoder", "RateSweep", "StreamCoder", "rate_sweep", "sample_rate_tuples"]
