"""Rate sweeps: measure task distortion over sampled rate tuples (Alvar & Bajić, "Pareto-optimal
bit allocation for collaborative intelligence", IEEE TIP 2021, §VI-A).

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

A *stream coder* (:func:`cilight.codecs.stream_coder`, derived from any registered codec) turns
features into their decoded version at a rate: ``prepare(features[B,C,H,W]) -> state``,
``code(state, bits) -> (reconstruction[B,C,H,W], bits[B])`` and ``floor(features) -> bits``.

The tasks are the model's (:mod:`cilight.ci_models.tasks`): every metric of every task is
recorded, and the primary metric of each task, with its direction, is a column of eq 1.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

from cilight.allocation.distortion import task_distortion, task_weights, total_distortion
from cilight.allocation.surface import DistortionSurface, fit_surface
from cilight.codecs import StreamCoder
from cilight.errors import ConfigError

SWEEP_CHUNK = 6  # images per cloud-half call in a sweep: small batches stay in cache on a CPU


def cloud_outputs(model, streams: list[Tensor], received: bool = False) -> dict[str, Tensor]:
    """The cloud half's task outputs for decoded ``streams`` (each stream's :meth:`MultiTaskCI.features`
    after a codec), as ``model.receive(streams)`` gives them; ``received``: the streams are already what
    the cloud continues from (a transmission's output), as ``model.decoder(streams)`` takes them.

    A sweep calls the cloud half once per rate tuple, so this is where its time goes. On a CPU,
    inputs in channels-last layout in chunks of :data:`SWEEP_CHUNK` images run the same
    convolutions about 1.5× faster than one contiguous batch (the layout propagates through the
    layers; the values agree to float rounding). Other devices get the plain call. Streams a byte codec
    decoded come as numpy arrays (:mod:`cilight.codecs` is torch-free); they go to the model's device and dtype.
    """
    cloud = model.decoder if received else model.receive
    parameter = next(model.parameters())
    streams = [torch.as_tensor(s).to(device=parameter.device, dtype=parameter.dtype) if not isinstance(s, Tensor) else s
               for s in streams]
    if streams[0].device.type != "cpu":
        return cloud(streams)
    parts = [cloud([s[i : i + SWEEP_CHUNK].contiguous(memory_format=torch.channels_last) for s in streams])
             for i in range(0, len(streams[0]), SWEEP_CHUNK)]
    return parts[0] if len(parts) == 1 else {k: torch.cat([p[k] for p in parts]) for k in parts[0]}


def distortion_metrics(model) -> dict[str, bool]:
    """The eq 1 columns of ``model``: each task's primary metric key → whether higher is better."""
    return {task.primary_key: task.primary.higher_is_better for task in model.tasks}


def _tuples_with_totals(totals: np.ndarray, floors: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Rate tuples with the given sums, split uniformly over the simplex above the floors."""
    spare = totals[:, None] - floors.sum()
    return floors + spare * rng.dirichlet(np.ones(len(floors)), size=len(totals))


WINDOW_DRAW = (0.8, 1.2)  # where the stratified tuples of a budget's window are drawn (window: 0.75-1.25)
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


def sample_rate_tuples(count: int, floors, budgets, seed: int = 0, stratified: bool = True) -> np.ndarray:
    """``count`` rate tuples for the budgets ``R_t`` (bits per image), each stream above its floor.

    §VI-A samples uniformly over ``0.5·min R_t ≤ ΣR ≤ 1.5·max R_t`` and fits each budget on the
    points with ``0.75·R_t ≤ ΣR ≤ 1.25·R_t`` (``stratified=False``: exactly that). With budgets
    far apart a uniform draw leaves few points near the smallest one (its window is the
    narrowest), so by default half the tuples are drawn that way and the other half evenly
    inside each budget's window, within ``0.8·R_t … 1.2·R_t`` (:data:`WINDOW_DRAW`) so that the
    rate a coder actually spends, a few percent off its target, still falls in the window: every
    fit gets at least ``count / (2 × budgets)`` points.
    Within a total, the split is uniform on the simplex.
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
    if not stratified:
        return _tuples_with_totals(rng.uniform(low, high, count), floors, rng)
    uniform = rng.uniform(low, high, count - count // 2)
    per_budget = np.array_split(np.arange(count // 2), len(budgets))
    # inside the window with a margin: a measured rate a few percent off its target stays in it
    windows = [rng.uniform(WINDOW_DRAW[0] * b, WINDOW_DRAW[1] * b, len(idx)) for b, idx in zip(budgets, per_budget)]
    return _tuples_with_totals(np.concatenate([uniform, *windows]), floors, rng)


@dataclass(frozen=True)
class RateSweep:
    """Measured points: rates ``(M, N)`` bits per image, task metrics ``(M,)`` each, and the reference.

    ``directions``: the eq 1 columns — each task's primary metric key → higher is better.
    """

    rates: np.ndarray
    targets: np.ndarray
    metrics: dict[str, np.ndarray]
    reference: dict[str, float]
    directions: dict[str, bool] = field(default_factory=dict)

    def __post_init__(self) -> None:
        missing = [m for m in self.directions if m not in self.metrics]
        if missing:
            raise ConfigError(f"rate sweep has no measurements of {missing}; measured {sorted(self.metrics)}")

    @property
    def distortions(self) -> np.ndarray:
        """``(M, k)`` task distortions of eq 1 in percent, one column per task (:attr:`directions`)."""
        return np.stack([task_distortion(self.metrics[m], self.reference[m], higher_is_better=up)
                         for m, up in self.directions.items()], axis=1)

    def task_weights(self, weights="equal") -> np.ndarray:
        """Eq 17's weights as numbers; ``inverse-mean`` (eq 25) from the task distortions of every tuple."""
        return task_weights(self.distortions, weights)

    def as_dict(self) -> dict:
        """The measured points as JSON-ready lists (what the callback and ``evaluate.py`` save)."""
        return {"rates": self.rates.tolist(), "targets": self.targets.tolist(),
                "metrics": {k: v.tolist() for k, v in self.metrics.items()}, "reference": self.reference,
                "directions": self.directions}

    def merged(self, other: RateSweep) -> RateSweep:
        """This sweep's points and ``other``'s (same images and reference), e.g. a local refinement."""
        return RateSweep(np.concatenate([self.rates, other.rates]), np.concatenate([self.targets, other.targets]),
                         {k: np.concatenate([v, other.metrics[k]]) for k, v in self.metrics.items()}, self.reference,
                         self.directions)

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
        (and near the allocation ``around``, for the local refinement).

        ``weights`` should be numbers: ``inverse-mean`` given here would take eq 25's means over
        the window only; :meth:`task_weights` takes them over every tuple."""
        near = self.near(total_rate, around)
        return fit_surface(self.rates[near], total_distortion(self.distortions[near], weights))

    def fit_task(self, total_rate: float, task: int) -> DistortionSurface:
        """The surface of task ``task`` (column of :attr:`distortions`) near ``R_t``, for Pareto sets."""
        near = self.near(total_rate)
        return fit_surface(self.rates[near], self.distortions[near, task])


@torch.no_grad()
def rate_sweep(model, batches: list[dict[str, Tensor]], coder: StreamCoder, rate_tuples: np.ndarray,
               progress: bool = True, features: list[list[Tensor]] | None = None,
               reference: dict[str, float] | None = None) -> RateSweep:
    """Measure the tasks of ``model`` (a :class:`~cilight.ci_models.MultiTaskCI`) at every rate tuple.

    ``features[b]``, the edge outputs of ``batches[b]``, and ``reference``, the uncompressed
    metrics on them, when the caller already has them (a second sweep on the same images).
    """
    rate_tuples = np.asarray(rate_tuples, dtype=float)
    streams = len(model.split_points)
    if rate_tuples.ndim != 2 or rate_tuples.shape[1] != streams:
        raise ConfigError(f"rate tuples must have shape (M, {streams}) for streams {list(model.split_points)}, "
                          f"got {rate_tuples.shape}")
    model = model.eval()
    metrics = model.task_metrics(sync=False)  # one rank only
    if features is None:
        features = [model.features(batch["image"]) for batch in batches]
    if reference is None:
        for batch, feats in zip(batches, features):
            metrics.update(cloud_outputs(model, feats), batch)
        reference = {k: float(v) for k, v in metrics.compute().items()}
    prepared = [[coder.prepare(f) for f in feats] for feats in features]
    rates = np.zeros_like(rate_tuples)
    values = {name: np.zeros(len(rate_tuples)) for name in reference}
    iterator = range(len(rate_tuples))
    if progress:
        iterator = tqdm(iterator, desc=f"rate sweep ({coder.name})", leave=False)
    for i in iterator:
        bits = np.zeros(streams)
        count = 0
        for batch, states in zip(batches, prepared):
            coded = [coder.code(state, rate_tuples[i, s]) for s, state in enumerate(states)]
            metrics.update(cloud_outputs(model, [c[0] for c in coded]), batch)
            bits += np.array([float(c[1].sum()) for c in coded])
            count += len(batch["image"])
        rates[i] = bits / count
        for name, value in metrics.compute().items():
            values[name][i] = float(value)
    return RateSweep(rates, rate_tuples, values, reference, distortion_metrics(model))


__all__ = ["LOCAL_SPREAD", "SWEEP_CHUNK", "RateSweep", "cloud_outputs", "distortion_metrics", "least_budget",
           "local_rate_tuples", "rate_sweep",
           "sample_rate_tuples"]
