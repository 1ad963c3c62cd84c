"""Bjøntegaard delta rate and delta metric between two rate–accuracy curves.

G. Bjøntegaard, "Calculation of average PSNR differences between RD-curves", VCEG-M33, 2001,
used by Alvar & Bajić, "Multi-task learning with compressible features for collaborative
intelligence", IEEE ICIP 2019, §3 (Table 1: BD-rate of each task of the model trained with the
compressibility loss against the benchmark model, over PNG and JPEG at quality 95–80).

* :func:`bd_rate` — the average rate difference in percent at equal accuracy: log-rate is
  interpolated as a function of the metric on each curve and integrated over the metric range
  both curves cover; ``100·(10^Δ − 1)``. Negative means the test curve needs fewer bits.
* :func:`bd_metric` — the average metric difference at equal rate (the BD-PSNR of video coding,
  here in the task metric's unit): the metric is interpolated over log-rate.

Interpolation: ``cubic`` (VCEG-M33's cubic polynomial fit), ``pchip`` (piecewise cubic Hermite,
as in the JCT-VC/JVET spreadsheets) or ``akima``. The arithmetic is the ``bjontegaard`` package's
(Herglotz et al., FAU Erlangen-Nürnberg); this module adds the checks it leaves out, each with
one clear ``ValueError``: equal lengths, at least :data:`MIN_POINTS` points, finite values,
positive rates, a metric strictly rising with rate (sorted by rate first), and an overlap of
the two curves' ranges of at least ``min_overlap`` (the package only warns).

A curve whose metric does not rise strictly with rate is refused by default. With
``dominated="drop"`` its *dominated* points are dropped first — those for which another point
of the same curve spends no more bits and scores at least as well (JPEG at quality 95 spends
more than PNG at the same accuracy) — and the deltas are taken on the efficient points that
remain, of which there must still be :data:`MIN_POINTS`. The metric must
rise with accuracy: a task whose metric falls (RMSE) enters as its inverse (IRMSE = 1/RMSE,
:attr:`cilight.ci_models.Task.rate_accuracy`).
"""

from __future__ import annotations

import warnings

import bjontegaard
import numpy as np

from cilight.evaluation.defaults import BD_METHODS as METHODS
from cilight.evaluation.defaults import DOMINATED, MIN_OVERLAP

MIN_POINTS = 4  # VCEG-M33 fits a cubic: four points determine it


def _curve(rates, metric, which: str) -> tuple[np.ndarray, np.ndarray]:
    """``(rates, metric)`` sorted by rate, checked."""
    rates = np.asarray(rates, dtype=np.float64).ravel()
    metric = np.asarray(metric, dtype=np.float64).ravel()
    if rates.size != metric.size:
        raise ValueError(f"{which} curve: {rates.size} rates but {metric.size} metric values; expected one each")
    if rates.size < MIN_POINTS:
        raise ValueError(f"{which} curve has {rates.size} points; Bjøntegaard deltas need at least {MIN_POINTS}")
    if not (np.all(np.isfinite(rates)) and np.all(np.isfinite(metric))):
        raise ValueError(f"{which} curve has non-finite values: rates {rates.tolist()}, metric {metric.tolist()}")
    if np.any(rates <= 0):
        raise ValueError(f"{which} curve has rates ≤ 0 ({rates.tolist()}); rates are integrated in log scale")
    order = np.argsort(rates, kind="stable")
    return rates[order], metric[order]


def efficient_points(rates, metric) -> np.ndarray:
    """Indices (into the given order) of the points no other point dominates, by increasing rate.

    Point ``i`` is dominated when some ``j`` has ``rate_j ≤ rate_i`` and ``metric_j ≥ metric_i``
    (ties: the first in rate order is kept). What remains has a strictly rising metric.
    """
    rates, metric = np.asarray(rates, dtype=np.float64), np.asarray(metric, dtype=np.float64)
    order = np.lexsort((-metric, rates))  # by rate, the best metric first among equal rates
    kept, best = [], -np.inf
    for i in order:
        if metric[i] > best:
            kept.append(int(i))
            best = metric[i]
    return np.array(kept, dtype=int)


def _rising_curve(rates, metric, which: str, dominated: str) -> tuple[np.ndarray, np.ndarray]:
    rates, metric = _curve(rates, metric, which)
    if dominated == "drop":
        kept = efficient_points(rates, metric)
        if kept.size < MIN_POINTS:
            raise ValueError(f"{which} curve keeps {kept.size} of its {rates.size} points once dominated ones are "
                             f"dropped (rates {np.round(rates[kept]).tolist()}); Bjøntegaard deltas need at least "
                             f"{MIN_POINTS}: the operating points barely move the metric")
        rates, metric = rates[kept], metric[kept]
    _strictly_rising(rates, metric, which)
    return rates, metric


def _strictly_rising(rates: np.ndarray, metric: np.ndarray, which: str) -> None:
    falls = np.flatnonzero(np.diff(metric) <= 0)
    if falls.size:
        i = int(falls[0])
        raise ValueError(
            f"{which} curve: the metric does not rise strictly with rate — {metric[i]:.6g} at rate {rates[i]:.6g} "
            f"then {metric[i + 1]:.6g} at rate {rates[i + 1]:.6g}. BD-rate reads rate as a function of the metric, "
            "which then is not one; use operating points farther apart, more test images, or a metric that "
            "rises with accuracy (IRMSE instead of RMSE)")


def _distinct_rates(rates: np.ndarray, which: str) -> None:
    if np.any(np.diff(rates) <= 0):
        raise ValueError(f"{which} curve repeats a rate ({rates.tolist()}); the metric must be a function of rate")


def overlap(anchor, test) -> float:
    """The share of the union of two ranges that both cover: ``|A ∩ T| / |A ∪ T|`` in [0, 1]."""
    anchor, test = np.asarray(anchor, dtype=np.float64), np.asarray(test, dtype=np.float64)
    union = max(anchor.max(), test.max()) - min(anchor.min(), test.min())
    common = min(anchor.max(), test.max()) - max(anchor.min(), test.min())
    return float(max(common, 0.0) / union) if union > 0 else 0.0


def metric_overlap(anchor_metric, test_metric) -> float:
    """The overlap of the two curves' metric ranges, over which :func:`bd_rate` integrates."""
    return overlap(anchor_metric, test_metric)


def _check(method: str, min_overlap: float, dominated: str = "refuse") -> None:
    if method not in METHODS:
        raise ValueError(f"method={method!r}: expected one of {', '.join(METHODS)}")
    if dominated not in DOMINATED:
        raise ValueError(f"dominated={dominated!r}: expected one of {', '.join(DOMINATED)}")
    if not 0.0 <= min_overlap <= 1.0:
        raise ValueError(f"min_overlap={min_overlap!r}: expected a share in [0, 1]")


def _refuse_sliver(share: float, min_overlap: float, axis: str) -> None:
    if share <= 0:
        raise ValueError(f"the curves' {axis} ranges do not overlap: there is nothing to integrate over")
    if share < min_overlap:
        raise ValueError(f"the curves share {100 * share:.1f}% of their {axis} range, below the minimum of "
                         f"{100 * min_overlap:.0f}%: a Bjøntegaard delta over that sliver says little "
                         "(pass min_overlap=0 to compute it anyway)")


def bd_rate(anchor_rates, anchor_metric, test_rates, test_metric, method: str = "cubic",
            min_overlap: float = MIN_OVERLAP, dominated: str = "refuse") -> float:
    """Bjøntegaard delta rate of the test curve against the anchor, in percent.

    Args:
        anchor_rates, anchor_metric: the anchor's points (any rate unit, the same for both curves).
        test_rates, test_metric: the test curve's points; a different count is allowed.
        method: ``cubic`` (VCEG-M33), ``pchip`` (JCT-VC/JVET sheet) or ``akima``.
        min_overlap: refuse when the metric ranges overlap by less than this share of their union.
        dominated: ``refuse`` a curve whose metric does not rise strictly with rate, or ``drop``
            its dominated points first (:func:`efficient_points`).

    Returns:
        The mean rate change at equal metric, ``100·(10^Δ − 1)``; −50 means half the bits.
    """
    _check(method, min_overlap, dominated)
    anchor = _rising_curve(anchor_rates, anchor_metric, "anchor", dominated)
    test = _rising_curve(test_rates, test_metric, "test", dominated)
    _refuse_sliver(metric_overlap(anchor[1], test[1]), min_overlap, "metric")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the overlap was checked above
        return float(bjontegaard.bd_rate(*anchor, *test, method=method, require_matching_points=False, min_overlap=0))


def bd_metric(anchor_rates, anchor_metric, test_rates, test_metric, method: str = "cubic",
              min_overlap: float = MIN_OVERLAP, dominated: str = "refuse") -> float:
    """Bjøntegaard delta metric: the test curve's mean metric gain at equal rate, in the metric's unit.

    The metric is interpolated over log-rate, so only the rates must be distinct; the overlap
    checked is that of the two curves' log-rate ranges. ``dominated="drop"`` uses the efficient
    points only, as :func:`bd_rate` does.
    """
    _check(method, min_overlap, dominated)
    if dominated == "drop":
        anchor = _rising_curve(anchor_rates, anchor_metric, "anchor", dominated)
        test = _rising_curve(test_rates, test_metric, "test", dominated)
    else:
        anchor = _curve(anchor_rates, anchor_metric, "anchor")
        test = _curve(test_rates, test_metric, "test")
    for (rates, _), which in ((anchor, "anchor"), (test, "test")):
        _distinct_rates(rates, which)
    _refuse_sliver(overlap(np.log10(anchor[0]), np.log10(test[0])), min_overlap, "log-rate")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(bjontegaard.bd_psnr(*anchor, *test, method=method, require_matching_points=False, min_overlap=0))


__all__ = ["DOMINATED", "METHODS", "MIN_OVERLAP", "MIN_POINTS", "bd_metric", "bd_rate", "efficient_points",
           "metric_overlap", "overlap"]
