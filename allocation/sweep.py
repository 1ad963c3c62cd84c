"""Rate sweeps: measure task distortion over sampled rate tuples (``pareto-optimal-bit-allocation-ci.md`` §VI-A).

The paper's experiment: for budgets ``R_min … R_max`` (total bits of all streams per image),
sample rate tuples ``(R_1, …, R_N)`` with ``0.5·R_min ≤ ΣR ≤ 1.5·R_max`` (:func:`sample_rate_tuples`), code every
stream at its rate, run the cloud half on the decoded tensors, and measure every task. For a
budget ``R_t`` the surface of eq 2 is then fitted on the tuples with
``0.75·R_t ≤ ΣR ≤ 1.25·R_t``.

Local refinement (cilight's addition; ``refine_tuples=0`` is the paper's procedure): the
window of §VI-A holds every split of the budget, including splits that starve one stream, whose
large distortions dominate the least squares. Where eq 2 is not exact (its streams are
separable; a real model's are not quite) the fitted minimum then lands off the measured one —
on the 2-stream model of the README by 3–5% of ``R_t``. So a second, small sweep samples
tuples whose split is within ``±LOCAL_SPREAD`` of the first allocation
(:func:`local_rate_tuples`), and the surface is refitted on the points of the window near that
split (``RateSweep.fit(…, around=…)``): eq 2 only has to hold where the optimum is.

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

import math
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import torch
from torch import Tensor

from cilight.allocation.distortion import task_distortion, total_distortion
from cilight.allocation.surface import DistortionSurface, fit_surface
from cilight.codecs import MinMaxQuantizer, TileLayout, get_codec, jpeg2000, tile
from cilight.codecs.proxy import Jpeg2000Proxy
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


@dataclass
class ProxyCoder:
    """The differentiable JPEG2000 proxy as a stream coder: one DWT per stream, then a step per rate.

    Rates include the container's header and min–max side information, exactly as the real
    codec counts them, so proxy and ``jpeg2000`` sweeps are on the same axis.
    """

    proxy: Any = field(default_factory=lambda: Jpeg2000Proxy().eval())
    name: str = "proxy"

    overhead_bits: float = 8.0 * (HEADER_BYTES + MinMaxQuantizer().side_bytes(1))

    steps: int = 33  # log-spaced steps tabulated once per stream; rates are interpolated between them

    def prepare(self, features: Tensor) -> tuple[Any, Tensor, Tensor]:
        """The transform, and each sample's predicted bits on a grid of steps (bits fall as step grows)."""
        transformed = self.proxy.transform(features.detach())
        grid = torch.logspace(-2, 4, self.steps, dtype=torch.float64)
        bits = torch.stack([self.proxy.bits(transformed, float(s)).double() for s in grid], dim=1)  # [B, S]
        return transformed, grid.log(), bits.clamp_min(1.0).log()

    def code(self, prepared: tuple[Any, Tensor, Tensor], bits: float) -> tuple[Tensor, Tensor]:
        transformed, log_steps, log_bits = prepared
        target = math.log(max(bits - self.overhead_bits, 1.0))
        # log bits is monotone (non-increasing) in log step: interpolate on the reversed axes
        steps = [math.exp(float(np.interp(target, lb.flip(0).numpy(), log_steps.flip(0).numpy()))) for lb in log_bits]
        reconstruction, predicted = self.proxy.quantize(transformed, torch.tensor(steps, dtype=transformed.image.dtype))
        return reconstruction, predicted.double() + self.overhead_bits

    def floor(self, features: Tensor) -> float:
        """The real codec's floor: a proxy sweep must not ask for rates OpenJPEG cannot reach."""
        return CodecCoder().floor(features)


def _tuples_with_totals(totals: np.ndarray, floors: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Rate tuples with the given sums, split uniformly over the simplex above the floors."""
    spare = totals[:, None] - floors.sum()
    return floors + spare * rng.dirichlet(np.ones(len(floors)), size=len(totals))


LOCAL_SPREAD = 0.15  # half-width of the split band the refinement fits on (share of R_t per stream)


def local_rate_tuples(count: int, allocation, floors, seed: int = 0, spread: float = LOCAL_SPREAD) -> np.ndarray:
    """``count`` rate tuples around ``allocation`` ``R*`` of the budget ``R_t = ΣR*``.

    Totals are uniform in the §VI-A window ``0.75·R_t … 1.25·R_t``; each stream's share
    ``R_j / ΣR`` is ``R*_j / R_t`` moved by at most ``spread`` (a zero-sum perturbation, so the
    shares still add up to 1); rates are kept above the floors.
    """
    allocation = np.asarray(allocation, dtype=float)
    floors = np.asarray(floors, dtype=float)
    if allocation.shape != floors.shape or not np.all(np.isfinite(allocation)) or allocation.sum() <= 0:
        raise ConfigError(f"allocation must be {floors.size} finite rates with a positive sum, got {allocation.tolist()}")
    rng = np.random.default_rng(seed)
    total = allocation.sum()
    totals = rng.uniform(0.75 * total, 1.25 * total, count)
    moves = rng.uniform(-1.0, 1.0, (count, floors.size))
    moves -= moves.mean(1, keepdims=True)
    moves *= spread / np.maximum(np.abs(moves).max(1, keepdims=True), 1e-12) * rng.uniform(0, 1, (count, 1))
    shares = np.clip(allocation / total + moves, 0.0, None)
    shares /= shares.sum(1, keepdims=True)
    return np.maximum(totals[:, None] * shares, floors)


def least_budget(floors) -> float:
    """The budget whose fitting window ``0.75·R_t ≤ ΣR`` starts at the streams' floors: smaller ones
    leave no codable tuple below the budget."""
    return float(np.sum(floors)) / 0.75


def sample_rate_tuples(count: int, floors, budgets, seed: int = 0) -> np.ndarray:
    """``count`` rate tuples for the budgets ``R_t`` (bits per image), each stream above its floor.

    §VI-A samples uniformly over ``0.5·min R_t ≤ ΣR ≤ 1.5·max R_t`` and fits each budget on the
    points with ``0.75·R_t ≤ ΣR ≤ 1.25·R_t``. With budgets far apart a uniform draw leaves few
    points near the smallest one (its window is the narrowest), so half the tuples are drawn
    that way and the other half evenly inside each budget's window: every fit gets at least
    ``count / (2 × budgets)`` points. Within a total, the split is uniform on the simplex.
    """
    floors = np.asarray(floors, dtype=float)
    budgets = np.sort(np.asarray(budgets, dtype=float).ravel())
    if budgets.size == 0 or not np.all(np.isfinite(budgets)) or budgets[0] <= 0:
        raise ConfigError(f"budgets must be positive, finite bits per image, got {budgets.tolist()}")
    low, high = max(0.5 * budgets[0], floors.sum()), 1.5 * budgets[-1]
    if budgets[0] <= least_budget(floors):
        raise ConfigError(f"budget {budgets[0]:.0f} bits is too small: the streams cannot be coded in fewer than "
                          f"{floors.sum():.0f} bits together (floors {np.round(floors).tolist()}); "
                          f"use budgets above {least_budget(floors):.0f}")
    needed = 2 * (2 * len(floors) + 1) * len(budgets)  # eq 2 has 2N+1 parameters per budget fit
    if count < needed:
        raise ConfigError(f"{count} rate tuples are too few for {len(floors)} streams and {len(budgets)} budget(s): "
                          f"each fit needs {2 * len(floors) + 1} points, so use at least {needed} tuples")
    rng = np.random.default_rng(seed)
    uniform = rng.uniform(low, high, count - count // 2)
    per_budget = np.array_split(np.arange(count // 2), len(budgets))
    windows = [rng.uniform(0.75 * b, 1.25 * b, len(idx)) for b, idx in zip(budgets, per_budget)]
    return _tuples_with_totals(np.concatenate([uniform, *windows]), floors, rng)


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

    def as_dict(self) -> dict:
        """The measured points as JSON-ready lists (what the callback and ``evaluate.py`` save)."""
        return {"rates": self.rates.tolist(), "targets": self.targets.tolist(),
                "metrics": {k: v.tolist() for k, v in self.metrics.items()}, "reference": self.reference}

    def merged(self, other: RateSweep) -> RateSweep:
        """This sweep's points and ``other``'s (same images and reference), e.g. a local refinement."""
        return RateSweep(np.concatenate([self.rates, other.rates]), np.concatenate([self.targets, other.targets]),
                         {k: np.concatenate([v, other.metrics[k]]) for k, v in self.metrics.items()}, self.reference)

    def near(self, total_rate: float, around=None) -> np.ndarray:
        """Mask of the points used for budget ``R_t``: ``0.75·R_t ≤ ΣR ≤ 1.25·R_t`` (§VI-A) and,
        with ``around`` (an allocation of ``R_t``), shares within ``LOCAL_SPREAD`` of its shares."""
        totals = self.rates.sum(1)
        mask = (totals >= 0.75 * total_rate) & (totals <= 1.25 * total_rate)
        if around is not None:
            around = np.asarray(around, dtype=float)
            shares = self.rates / np.maximum(totals, 1e-12)[:, None]
            mask &= np.abs(shares - around / around.sum()).max(1) <= LOCAL_SPREAD + 1e-9
        return mask

    def fit(self, total_rate: float, weights="equal", around=None) -> DistortionSurface:
        """Scalarize-first: the surface of eq 2 fitted to the total distortion (eq 17) near ``R_t``
        (and near the allocation ``around``, for the local refinement)."""
        near = self.near(total_rate, around)
        return fit_surface(self.rates[near], total_distortion(self.distortions[near], weights))

    def fit_task(self, total_rate: float, task: int) -> DistortionSurface:
        """The surface of task ``task`` (column of :attr:`distortions`) near ``R_t``, for Pareto sets."""
        near = self.near(total_rate)
        return fit_surface(self.rates[near], self.distortions[near, task])


def _compute(metrics) -> dict[str, float]:
    out = {name: float(m.compute()) for name, m in metrics.items()}
    for m in metrics.values():
        m.reset()
    return out


@torch.no_grad()
def rate_sweep(model, batches: list[dict[str, Tensor]], coder: StreamCoder, rate_tuples: np.ndarray,
               progress: bool = True, features: list[list[Tensor]] | None = None) -> RateSweep:
    """Measure the tasks of ``model`` (a :class:`~cilight.ci_models.MultiTaskCI`) at every rate tuple.

    ``features[b]``, the edge outputs of ``batches[b]``, when the caller already has them.
    """
    from cilight.ci_models.multitask import task_metrics, update_task_metrics

    rate_tuples = np.asarray(rate_tuples, dtype=float)
    streams = len(model.split_points)
    if rate_tuples.ndim != 2 or rate_tuples.shape[1] != streams:
        raise ConfigError(f"rate tuples must have shape (M, {streams}) for streams {list(model.split_points)}, "
                          f"got {rate_tuples.shape}")
    model = model.eval()
    metrics = task_metrics(model.hparams.num_classes, model.hparams.ignore_index, sync=False)  # one rank only
    if features is None:
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


__all__ = ["LOCAL_SPREAD", "TASK_METRICS", "CodecCoder", "ProxyCoder", "RateSweep", "StreamCoder", "least_budget",
           "local_rate_tuples", "rate_sweep", "sample_rate_tuples"]
