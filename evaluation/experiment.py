"""The allocation experiment of Alvar & Bajić, IEEE TIP 2021, §VI-A, on a trained model.

For each budget ``R_t``: fit the surface of eq 2 to the total distortion of a rate sweep
(:mod:`~cilight.evaluation.sweep`), allocate with the closed form (eq 15) and with Methods 1–3,
then code every stream at each allocation and measure the tasks — the rows of Tables III/IV.
The per-epoch callback and ``evaluate.py allocate`` both run this.

With ``refine_tuples > 0`` the surface is refitted near the first allocation after a small
local sweep (see :mod:`~cilight.evaluation.sweep`); ``proposed`` is then the refined
allocation and the row ``unrefined`` the closed form on the §VI-A fit alone, measured beside it.

A stream whose allocated rate is below what the codec can reach (the closed form gives some
streams nothing at small budgets) is not sent; the cloud fills it with the dataset mean of that
stream (Ulhaq, B.A.Sc. thesis, SFU 2020, §3.2), and it costs no bits.

Task weights (eq 17) are resolved to numbers once, from the first sweep: ``inverse-mean``
(eq 25) takes each task's mean distortion over every tuple of that sweep, and the same weights
score every method at every budget.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

from cilight.allocation.distortion import task_distortion, total_distortion
from cilight.allocation.pareto import pareto_segment
from cilight.allocation.solve import allocate, baseline_allocations
from cilight.codecs import StreamCoder
from cilight.errors import ConfigError
from cilight.evaluation.defaults import REFINE_TUPLES, TUPLES
from cilight.evaluation.sweep import (
    RateSweep,
    cloud_outputs,
    distortion_metrics,
    local_rate_tuples,
    rate_sweep,
    sample_rate_tuples,
)

METHODS = ("proposed", "equal", "numel", "variance")
UNREFINED = "unrefined"  # the closed form on the §VI-A fit alone, when the proposed one is refined


@dataclass(frozen=True)
class AllocationRow:
    """One method at one budget: rates per stream (bits per image), task metrics, distortions."""

    budget: float
    method: str
    rates: list[float]
    bits_used: list[float]
    metrics: dict[str, float]
    distortions: dict[str, float]
    total_distortion: float
    r2: float | None


@torch.no_grad()
def measure_at_rates(model, batches: list[dict[str, Tensor]], features: list[list[Tensor]], coder: StreamCoder,
                     rates, floors, means: list[Tensor], prepared: dict | None = None) -> tuple[dict[str, float], list[float]]:
    """Task metrics with every stream coded at ``rates`` (streams below their floor are not sent).

    ``features[b]`` are the edge outputs of ``batches[b]``; ``prepared`` caches ``coder.prepare``
    per (batch, stream) across calls: evaluating several allocations on the same images runs the
    edge once and transforms each stream once.
    """
    prepared = {} if prepared is None else prepared
    metrics = model.task_metrics(sync=False)  # one rank only
    used, count = np.zeros(len(rates)), 0
    for b, (batch, feats) in enumerate(zip(batches, features)):
        decoded = []
        for s, (f, rate) in enumerate(zip(feats, rates)):
            if rate < floors[s]:
                decoded.append(means[s].expand_as(f))
                continue
            if (b, s) not in prepared:
                prepared[b, s] = coder.prepare(f)
            x, bits = coder.code(prepared[b, s], float(rate))
            decoded.append(x)
            used[s] += float(bits.sum())
        metrics.update(cloud_outputs(model, decoded), batch)
        count += len(batch["image"])
    return {k: float(v) for k, v in metrics.compute().items()}, (used / count).tolist()


def task_distortions(metrics: dict[str, float], reference: dict[str, float], directions: dict[str, bool],
                     weights) -> tuple[dict[str, float], float]:
    """Eq 1 for every column of ``directions`` (metric key → higher is better) and their total (eq 17).

    ``weights`` are eq 17's numbers (or ``equal``); eq 25's ``inverse-mean`` is not computed
    from one row — see :meth:`RateSweep.task_weights`.
    """
    if isinstance(weights, str) and weights != "equal":
        raise ConfigError(f"weights={weights!r}: resolve them over the sweep first (RateSweep.task_weights)")
    distortions = {m: float(task_distortion(metrics[m], reference[m], higher_is_better=up))
                   for m, up in directions.items()}
    return distortions, float(total_distortion(np.array([list(distortions.values())]), weights)[0])


def scan_budget_line(model, batches: list[dict[str, Tensor]], coder: StreamCoder, budget: float, shares,
                     weights="equal", progress: bool = True) -> list[dict]:
    """The measured total distortion along ``R_1 + R_2 = R_t`` (2 streams): one row per share
    ``R_1 / R_t`` — where the best split of this budget really lies, to check a fitted allocation.

    ``weights``: ``equal`` or numbers (e.g. ``RateSweep.task_weights`` of the fitting sweep)."""
    if len(model.split_points) != 2:
        raise ConfigError(f"the budget line is scanned for 2 streams, this model has {list(model.split_points)}")
    with torch.no_grad():
        features = [model.eval().features(b["image"]) for b in batches]
    floors = [coder.floor(f) for f in features[0]]
    _, _, means = stream_statistics(features)
    reference = measure_at_rates(model, batches, features, Uncoded(), [np.inf] * 2, [0.0] * 2, means)[0]
    prepared: dict = {}
    rows = []
    shares = np.asarray(shares, dtype=float)
    if progress:
        shares = tqdm(shares, desc=f"budget line {budget / 1e3:g} kbit", leave=False)
    directions = distortion_metrics(model)
    for share in shares:
        rates = [share * budget, (1 - share) * budget]
        metrics, used = measure_at_rates(model, batches, features, coder, rates, floors, means, prepared)
        distortions, total = task_distortions(metrics, reference, directions, weights)
        rows.append({"share": float(share), "rates": rates, "bits_used": used, "distortions": distortions,
                     "total_distortion": total})
    return rows


def stream_statistics(features: list[list[Tensor]]) -> tuple[list[int], list[float], list[Tensor]]:
    """Elements per image, element variance and mean tensor of every stream (Methods 2–3, concealment),
    from the edge outputs ``features[b][s]`` of batch b, stream s."""
    streams = list(zip(*features))
    numel = [int(s[0][0].numel()) for s in streams]
    variance = [float(torch.cat([t.detach().flatten().cpu() for t in s]).double().var()) for s in streams]  # float64 on the CPU
    means = [torch.cat(list(s)).mean(0, keepdim=True) for s in streams]
    return numel, variance, means


def run_allocation(model, fit_batches, eval_batches, coder: StreamCoder, budgets, *, tuples: int = TUPLES,
                   refine_tuples: int = REFINE_TUPLES, weights="equal", seed: int = 0, progress: bool = True,
                   evaluation_coder: StreamCoder | None = None, stratified: bool = True,
                   floors: list[float] | None = None) -> tuple[RateSweep, list[AllocationRow], dict]:
    """Sweep on ``fit_batches`` with ``coder``, fit per budget, allocate, and evaluate every method on
    ``eval_batches`` with ``evaluation_coder`` (default: the same coder).

    ``refine_tuples``: rate tuples per budget of the local sweep around the first allocation
    (0: the paper's single sweep). ``weights``: eq 17's task weights — ``equal``,
    ``inverse-mean`` (eq 25, from the first sweep's tuples) or one number per task; the numbers
    used are in ``extras["weights"]``. ``stratified=False`` draws the tuples uniformly, as
    printed in §VI-A (:func:`~cilight.evaluation.sweep.sample_rate_tuples`). ``floors``: the
    coder's floors on the fit images, when the caller has them (each costs real encodes).
    """
    budgets = sorted(float(b) for b in budgets)
    points = 2 * len(model.split_points) + 1  # eq 2's parameters
    if refine_tuples and refine_tuples < 2 * points:
        raise ConfigError(f"refine_tuples={refine_tuples}: the local fit of {len(model.split_points)} streams needs "
                          f"{points} points, so use 0 (no refinement) or at least {2 * points}")
    evaluation_coder = evaluation_coder or coder
    with torch.no_grad():
        fit_features = [model.eval().features(b["image"]) for b in fit_batches]
        eval_features = fit_features if eval_batches is fit_batches else [model.features(b["image"]) for b in eval_batches]
    floors = list(floors) if floors is not None else [coder.floor(f) for f in fit_features[0]]
    eval_floors = floors if evaluation_coder is coder else [evaluation_coder.floor(f) for f in fit_features[0]]
    clock = time.perf_counter()
    sweep = rate_sweep(model, fit_batches, coder, sample_rate_tuples(tuples, floors, budgets, seed, stratified),
                       progress=progress, features=fit_features)
    seconds = {"sweep": time.perf_counter() - clock, "fits": 0.0, "evaluation": 0.0}
    weights = sweep.task_weights(weights)  # eq 25 over every tuple of the §VI-A sweep, once
    clock = time.perf_counter()
    fitted = {budget: sweep.fit(budget, weights) for budget in budgets}
    first = {budget: allocate(fitted[budget], budget) for budget in budgets}
    seconds["fits"] += time.perf_counter() - clock
    if refine_tuples:
        clock = time.perf_counter()
        local = np.concatenate([local_rate_tuples(refine_tuples, first[b], floors, seed + 1 + i)
                                for i, b in enumerate(budgets)])
        sweep = sweep.merged(rate_sweep(model, fit_batches, coder, local, progress=progress, features=fit_features,
                                        reference=sweep.reference))
        seconds["sweep"] += time.perf_counter() - clock
    numel, variance, means = stream_statistics(fit_features)
    reference = measure_at_rates(model, eval_batches, eval_features, Uncoded(), [np.inf] * len(floors),
                                 [0.0] * len(floors), means)[0]
    rows, extras = [], {"floors": eval_floors, "numel": numel, "variance": variance, "reference": reference,
                        "weights": dict(zip(sweep.directions, weights.tolist())), "surfaces": {}, "pareto": {},
                        "seconds": seconds}
    methods = METHODS + ((UNREFINED,) if refine_tuples else ())
    prepared: dict = {}
    bar = None
    if progress:
        bar = tqdm(total=len(budgets) * len(methods), desc="evaluating allocations", leave=False)
    for budget in budgets:
        clock = time.perf_counter()
        around = first[budget] if refine_tuples else None
        try:
            surface = sweep.fit(budget, weights, around=around) if around is not None else fitted[budget]
        except ConfigError:  # too few distinct points near the first allocation: keep the §VI-A fit
            around, surface = None, fitted[budget]
        seconds["fits"] += time.perf_counter() - clock
        extras["surfaces"][str(budget)] = {"gamma": surface.gamma, "alpha": surface.alpha.tolist(),
                                           "beta": surface.beta.tolist(), "r2": surface.r2,
                                           "points": int(sweep.near(budget, around).sum())}
        allocations = {"proposed": allocate(surface, budget), UNREFINED: first[budget],
                       **baseline_allocations(budget, numel, variance)}
        clock = time.perf_counter()
        for method in methods:
            rates = allocations[method]
            metrics, used = measure_at_rates(model, eval_batches, eval_features, evaluation_coder, rates, eval_floors,
                                             means, prepared)
            if bar is not None:
                bar.update()
            distortions, total = task_distortions(metrics, reference, sweep.directions, weights)
            rows.append(AllocationRow(budget, method, [float(r) for r in rates], used, metrics, distortions, total,
                                      surface.r2))
        seconds["evaluation"] += time.perf_counter() - clock
        if len(floors) == 2:
            clock = time.perf_counter()
            per_task = [sweep.fit_task(budget, k) for k in range(len(sweep.directions))]
            extras["pareto"][str(budget)] = list(pareto_segment(per_task, budget))
            seconds["fits"] += time.perf_counter() - clock
    return sweep, rows, extras


class Uncoded:
    """The identity coder: the reference (uncompressed) metrics on the evaluation images."""

    name = "uncompressed"

    def prepare(self, features):
        return features

    def code(self, features, bits):
        return features, torch.zeros(len(features))

    def floor(self, features):
        return 0.0


def split_batches(batches: list[dict[str, Tensor]], fraction: float, seed: int = 0):
    """A seeded random ``fraction`` of the images to fit, the rest to evaluate (§VI-A: 20% / 80%).

    Random rather than the first images in loader order: on Cityscapes those are one city. Each
    part keeps the loader's batch size and the images' relative order.
    """
    if not 0 < fraction < 1:
        raise ConfigError(f"fit fraction {fraction}: expected a number between 0 and 1")
    images = {k: torch.cat([b[k] for b in batches]) for k in batches[0]}
    n = len(images["image"])
    if n < 2:
        raise ConfigError(f"{n} test image: fitting and evaluating on different images needs at least 2")
    cut = max(1, min(n - 1, round(fraction * n)))
    chosen = np.zeros(n, dtype=bool)
    chosen[np.random.default_rng(seed).permutation(n)[:cut]] = True
    size = batches[0]["image"].shape[0]

    def chunks(mask):
        index = torch.from_numpy(np.flatnonzero(mask))
        return [{k: v[index[i : i + size]] for k, v in images.items()} for i in range(0, len(index), size)]

    return chunks(chosen), chunks(~chosen)


def rows_as_dicts(rows: list[AllocationRow]) -> list[dict]:
    return [asdict(r) for r in rows]
