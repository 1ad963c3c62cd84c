"""Paired comparisons of two training recipes ("arms"): BD-rate as a log rate ratio, t-intervals, Holm, a verdict.

cilight compares recipes whose models come in pairs — the anchor and the test model of a pair share a
seed, or were fine-tuned from one base checkpoint with one fine-tune seed. The seed moves both curves
of a pair together, so the effect of the recipe is measured *within* each pair and its uncertainty
from the spread of those within-pair effects over pairs: a paired t-interval, never the largest
difference between seeds of one arm (which compares different seeds while the effect is measured
within one; that older rule is :mod:`~cilight.evaluation.comparison`).

::

    pair i (one seed or one base)          task t, family F: (bits per image, metric) points
      anchor curves_i ─► efficient points ─► PCHIP ln R_anchor(m) ─┐
      test curves_i   ─► efficient points ─► PCHIP ln R_test(m)  ──┴─┬─► d_i = mean over band_i of ln R_test − ln R_anchor
                                                                     └─► at m_ℓ: ln R_test(m_ℓ) − ln R_anchor(m_ℓ)
      band_i = floor + (f_lo, f_hi)·(ref_i − floor),  m_ℓ = floor + ℓ·(ref_i − floor),  ref_i: the ANCHOR's reference
    d_1 … d_n ─► paired t-interval (n, mean, sd, 95% CI, p) ─► Holm across the tasks ─► verdict in % of rate

* :func:`bd_log_rate` — the Bjøntegaard delta rate (G. Bjøntegaard, "Calculation of average PSNR
  differences between RD-curves", VCEG-M33, 2001) as a *mean log rate ratio*: log rate is interpolated
  as a function of the metric on each curve's efficient points
  (:func:`~cilight.evaluation.bdrate.efficient_points`) with the monotone piecewise cubic Hermite
  interpolant (PCHIP: F. N. Fritsch and R. E. Carlson, "Monotone piecewise cubic interpolation",
  SIAM J. Numer. Anal. 17(2), 1980), integrated exactly over a metric band fixed in advance and
  divided by its width. Unlike :func:`~cilight.evaluation.bdrate.bd_rate`, which integrates over
  whatever range two curves happen to share, every pair is read over the band its anchor defines.
* :func:`metric_band` — that band, as fractions of the way from a floor (0 for mIoU and IRMSE, the
  trivial predictor's PSNR for reconstruction) to the anchor's uncompressed metric;
* :func:`covered_band` — a secondary band for curves that do not cover the fixed one (a choice made
  after seeing data, reported as such);
* :func:`meet_curves` — for curves that share no such band: the BD-rate over the accuracies they do
  share, or a bound from their nearest points (also a choice made after seeing data);
* :func:`log_rate_at_levels` — the log rate ratio at equal accuracy at fixed levels of the same scale;
* :func:`paired_interval` — the paired t-interval and two-sided one-sample t-test of the per-pair values;
* :func:`holm` — Holm–Bonferroni adjusted p-values (S. Holm, "A simple sequentially rejective multiple
  test procedure", Scand. J. Statist. 6(2), 1979) across the tasks of one comparison;
* :func:`verdict` — the decision in words, which the interval and the adjusted p-value alone support;
* :func:`compare_pairs` — all of it for two lists of curves, one :class:`PairedComparison` per task.
* :func:`compare_tasks` — the same one task at a time, a task the curves cannot compare refused in one
  line while the others keep their BD-rates (Holm still counts it, as p = 1);
* :func:`read_refused` — each refused task read again over :func:`covered_band` or where the curves meet
  (:func:`meet_curves`), a :class:`PostHocReading`: chosen after seeing data, reported apart.

**Why log.** Everything is computed on ``ln(rate)`` and turned into percent of rate only for display,
``100·expm1(value)`` (:func:`percent`). The log ratio is antisymmetric — the pair read the other way
round gives exactly the negative value — and adds up over pairs, so a mean and a t-interval of it mean
something. Percent is not: half the rate is −50%, twice the rate +100%; +43.7% one way is −30.4% the
other. The interval's ends are mapped to percent the same way, so they stay the interval's ends.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import TYPE_CHECKING

import numpy as np
from scipy import stats
from scipy.interpolate import PchipInterpolator

from cilight.errors import ConfigError
from cilight.evaluation.bdrate import efficient_points
from cilight.evaluation.defaults import BAND_FRACTIONS, LEVELS

if TYPE_CHECKING:  # only its methods are used: this module imports no torch
    from cilight.evaluation.curves import RateAccuracyCurves

MIN_POINTS = 2  # efficient points a PCHIP needs; whether a curve covers the band is checked separately
FRACTIONS = BAND_FRACTIONS


def percent(log_ratio: float) -> float:
    """A log rate ratio in percent of rate, ``100·expm1(log_ratio)``: −50.0 for half the bits."""
    return 100.0 * math.expm1(log_ratio)


# --------------------------------------------------------------------------- one pair of curves
def _log_rate(rates, metric, which: str) -> PchipInterpolator:
    """PCHIP of ln(rate) over the metric on a curve's efficient points, checked."""
    rates = np.asarray(rates, dtype=np.float64)
    metric = np.asarray(metric, dtype=np.float64)
    if rates.ndim != 1 or rates.shape != metric.shape:
        raise ConfigError(f"{which} curve: rates of shape {rates.shape} and metric of shape {metric.shape}; "
                          "expected two 1-D arrays of one value per point")
    if not (np.all(np.isfinite(rates)) and np.all(np.isfinite(metric))):
        raise ConfigError(f"{which} curve has non-finite values: rates {rates.tolist()}, metric {metric.tolist()}")
    if np.any(rates <= 0):
        raise ConfigError(f"{which} curve has rates ≤ 0 ({rates.tolist()}); expected bits > 0 (rates are compared in log)")
    kept = efficient_points(rates, metric)  # strictly rising metric, and so strictly rising rate
    if kept.size < MIN_POINTS:
        raise ConfigError(f"{which} curve has {kept.size} efficient point(s) of {rates.size} (rates {rates.tolist()}, "
                          f"metric {metric.tolist()}); expected at least {MIN_POINTS} whose metric rises with rate")
    return PchipInterpolator(metric[kept], np.log(rates[kept]), extrapolate=False)


def _check_band(band) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in band)
    except (TypeError, ValueError):
        raise ConfigError(f"metric band {band!r}: expected two numbers (lo, hi)") from None
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise ConfigError(f"metric band ({lo:.6g}, {hi:.6g}): expected finite numbers with lo < hi")
    return lo, hi


def _range(curve: PchipInterpolator) -> tuple[float, float]:
    return float(curve.x[0]), float(curve.x[-1])


def _covers(curve: PchipInterpolator, lo: float, hi: float, which: str) -> None:
    first, last = _range(curve)
    if lo < first or hi > last:
        raise ConfigError(f"the {which} curve's metric runs from {first:.6g} to {last:.6g} (efficient points) and does "
                          f"not cover the band {lo:.6g}–{hi:.6g}; expected a band inside both curves' ranges")


def bd_log_rate(anchor_rates, anchor_metric, test_rates, test_metric, band) -> float:
    """The BD-rate of the test curve against the anchor as a mean natural-log rate ratio over a metric band.

    ``(1 / (hi − lo)) ∫_lo^hi [ln R_test(m) − ln R_anchor(m)] dm`` with ``ln R(m)`` each curve's PCHIP
    through its efficient points (dominated points — more bits for no better metric — are dropped),
    integrated exactly (the PCHIP is a piecewise cubic).

    Args:
        anchor_rates, anchor_metric: the anchor's points (any rate unit, the same for both curves;
            any order); the metric must rise with accuracy (IRMSE, not RMSE).
        test_rates, test_metric: the test curve's points; their count may differ.
        band: ``(lo, hi)``, the metric range to average over, fixed in advance (:func:`metric_band`).

    Returns:
        The mean log rate ratio; negative when the test curve needs fewer bits. ``percent(value)``
        is the rate change in percent (−50.0 for half the bits everywhere).

    Raises:
        ConfigError: a band that either curve's efficient points do not cover (naming both), or a
            curve that is not one (non-finite, rates ≤ 0, fewer than two efficient points).
    """
    lo, hi = _check_band(band)
    anchor = _log_rate(anchor_rates, anchor_metric, "anchor")
    test = _log_rate(test_rates, test_metric, "test")
    _covers(anchor, lo, hi, "anchor")
    _covers(test, lo, hi, "test")
    return float((test.integrate(lo, hi) - anchor.integrate(lo, hi)) / (hi - lo))


def _check_fractions(values, what: str) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in values)
    except (TypeError, ValueError):
        raise ConfigError(f"{what} {values!r}: expected numbers in (0, 1]") from None
    if not values or not all(0.0 < v <= 1.0 for v in values):
        raise ConfigError(f"{what} {values!r}: expected shares of the way to the uncompressed metric, in (0, 1]")
    return values


def _scale(reference: float, floor: float) -> tuple[float, float]:
    reference, floor = float(reference), float(floor)
    if not (math.isfinite(reference) and math.isfinite(floor) and reference > floor):
        raise ConfigError(f"uncompressed metric {reference:.6g} with floor {floor:.6g}: expected finite values with the "
                          "reference above the floor (the floor is what a trivial predictor scores: 0 for mIoU and "
                          "IRMSE, the trivial predictor's PSNR)")
    return reference, floor


def metric_band(reference: float, fractions: Sequence[float] = FRACTIONS, floor: float = 0.0) -> tuple[float, float]:
    """The metric band ``floor + f·(reference − floor)`` for ``f`` in ``fractions = (f_lo, f_hi)``.

    ``reference`` is the anchor's uncompressed metric (both curves of a pair are read over the
    anchor's band); ``floor`` what a predictor that ignores the image scores — 0 for mIoU and IRMSE,
    the trivial predictor's PSNR for reconstruction. The default band runs from halfway to 95% of
    the way from the floor to the uncompressed model.
    """
    reference, floor = _scale(reference, floor)
    values = _check_fractions(fractions, "band fractions")
    if len(values) != 2 or values[0] >= values[1]:
        raise ConfigError(f"band fractions {values!r}: expected two shares (lo, hi) with 0 < lo < hi ≤ 1")
    return floor + values[0] * (reference - floor), floor + values[1] * (reference - floor)


def covered_band(pairs: Sequence[tuple[tuple, tuple, float]], fractions: Sequence[float] = FRACTIONS, floor: float = 0.0,
                 step: float = 0.05) -> tuple[float, float] | None:
    """The widest band inside ``fractions`` that every pair's curves cover, on a grid of ``step``, or ``None``.

    ``pairs``: per pair ``((anchor_rates, anchor_metric), (test_rates, test_metric), reference)`` with
    the anchor's uncompressed metric as ``reference``. The low share moves up to where the last curve
    to start starts, the high share down to where the first curve to stop stops, each to a whole
    ``step`` (0.05: 5% steps of the way from the floor) inside what they cover; a band the curves
    cover already is returned unchanged. ``None`` when no band is left: a curve that is not one (fewer
    than two efficient points), an uncompressed metric at or below the floor, or ends that would meet.

    This is a *secondary* reading for a comparison whose band a curve does not cover (heavy coding
    leaves some curves short of the band's low end; a recipe that costs accuracy never reaches its
    top): a band chosen from the curves is a choice made after seeing data, so its result is never a
    primary verdict, and the report must say so.
    """
    lo, hi = metric_band(1.0, fractions)  # on the unit scale the band is its shares: checks 0 < lo < hi ≤ 1
    if not 0.0 < step < 1.0:
        raise ConfigError(f"band step {step!r}: expected a share in (0, 1)")
    starts, stops = [], []
    for (ra, ma), (rt, mt), reference in pairs:
        try:
            ref, bottom = _scale(reference, floor)
            curves = _log_rate(ra, ma, "anchor"), _log_rate(rt, mt, "test")
        except ConfigError:
            return None
        starts.append((max(_range(c)[0] for c in curves) - bottom) / (ref - bottom))
        stops.append((min(_range(c)[1] for c in curves) - bottom) / (ref - bottom))
    if starts and max(starts) > lo:
        lo = _on_grid(max(starts), step, up=True)
    if stops and min(stops) < hi:
        hi = _on_grid(min(stops), step, up=False)
    return (lo, hi) if lo < hi else None


def _on_grid(share: float, step: float, up: bool) -> float:
    """The nearest multiple of ``step`` at or above (``up``) or at or below ``share``, rounded to 9 digits.

    Rounded so a band reads 0.65, not 0.6500000000000001; stepped on when the rounding crossed
    ``share``, so the band never claims the last 1e-10 of a curve's range that is not there.
    """
    k = math.ceil(share / step) if up else math.floor(share / step)
    while (round(k * step, 9) < share) if up else (round(k * step, 9) > share):
        k += 1 if up else -1
    return round(k * step, 9)


@dataclass(frozen=True)
class CurveMeeting:
    """Where two curves meet in accuracy, for curves that share no band of the fixed scale.

    ``kind``: ``overlap`` — both curves cover ``band`` (their common metric range) and ``log_ratio`` is
    the BD-rate over it, exact; ``test above`` — the test curve's least accurate point is at least as
    accurate as the anchor's most accurate one, with fewer bits, and ``log_ratio`` is the log ratio of
    those two points' rates, an *upper bound* on the log rate ratio at equal accuracy (the anchor needs
    at least its top point's bits to reach the test's accuracy: the test saves at least that); ``test
    below`` — the mirror image, a *lower bound* (the test costs at least that); ``apart`` — neither:
    one curve is more accurate but also dearer everywhere, so no rate at equal accuracy follows without
    extrapolating, and ``log_ratio`` is ``None``. ``band`` is the common range for ``overlap``, else
    ``(top of the less accurate curve, bottom of the more accurate one)``.
    """

    kind: str
    log_ratio: float | None
    band: tuple[float, float]

    KINDS = ("overlap", "test above", "test below", "apart")

    def __post_init__(self) -> None:
        if self.kind not in self.KINDS or (self.log_ratio is None) != (self.kind == "apart"):
            raise ConfigError(f"curve meeting {self.kind!r} with log ratio {self.log_ratio!r}: expected one of "
                              f"{self.KINDS}, with a log ratio unless 'apart'")

    @property
    def bound(self) -> bool:
        """Whether ``log_ratio`` is a bound, not a value at equal accuracy."""
        return self.kind in ("test above", "test below")


def meet_curves(anchor_rates, anchor_metric, test_rates, test_metric) -> CurveMeeting:
    """The :class:`CurveMeeting` of two curves (efficient points, PCHIP of ln R as for :func:`bd_log_rate`).

    For curves that do not both reach a fixed band — a learned codec whose every operating point is
    more accurate than 95% of the anchor's uncompressed model, say — this is what can still be said
    without extrapolating: the BD-rate where their accuracies overlap, or, where they do not, how far
    apart in rate their nearest points are.
    """
    anchor = _log_rate(anchor_rates, anchor_metric, "anchor")
    test = _log_rate(test_rates, test_metric, "test")
    (a0, a1), (t0, t1) = _range(anchor), _range(test)
    lo, hi = max(a0, t0), min(a1, t1)
    if lo < hi:
        return CurveMeeting("overlap", bd_log_rate(anchor_rates, anchor_metric, test_rates, test_metric, (lo, hi)),
                            (lo, hi))
    if t0 >= a1:  # the test curve lies wholly at or above the anchor's accuracy
        bound = float(test(t0) - anchor(a1))
        return CurveMeeting("test above", bound, (a1, t0)) if bound < 0 else CurveMeeting("apart", None, (a1, t0))
    bound = float(test(t1) - anchor(a0))  # wholly at or below
    return CurveMeeting("test below", bound, (t1, a0)) if bound > 0 else CurveMeeting("apart", None, (t1, a0))


@dataclass(frozen=True)
class RateAtLevel:
    """The log rate ratio at one accuracy level: test rate over anchor rate where both reach ``metric``.

    ``metric = floor + level·(reference − floor)``. ``log_ratio`` is ``None`` when a curve does not
    reach the level within its measured points; ``note`` then says which.
    """

    level: float
    metric: float
    log_ratio: float | None
    note: str = ""

    def __post_init__(self) -> None:
        if not 0.0 < self.level <= 1.0 or not math.isfinite(self.metric):
            raise ConfigError(f"rate at level {self.level!r} (metric {self.metric!r}): expected a level in (0, 1] "
                              "and a finite metric")
        if self.log_ratio is None:
            if not self.note:
                raise ConfigError(f"rate at level {self.level}: no log ratio and no note saying which curve misses it")
        elif not math.isfinite(self.log_ratio) or self.note:
            raise ConfigError(f"rate at level {self.level}: log_ratio={self.log_ratio!r} with note {self.note!r}; "
                              "expected a finite value and no note, or None and a note")

    @property
    def percent(self) -> float | None:
        return None if self.log_ratio is None else percent(self.log_ratio)


def _reaches(curve: PchipInterpolator, target: float, which: str) -> str:
    first, last = _range(curve)
    if target > last:
        return f"the {which} curve does not reach {target:.6g} (its best point scores {last:.6g})"
    if target < first:
        return f"the {which} curve starts above {target:.6g} (its fewest-bits point scores {first:.6g})"
    return ""


def log_rate_at_levels(anchor_rates, anchor_metric, test_rates, test_metric, reference: float,
                       levels: Sequence[float] = LEVELS, floor: float = 0.0) -> tuple[RateAtLevel, ...]:
    """``ln R_test(m) − ln R_anchor(m)`` at ``m = floor + ℓ·(reference − floor)`` for each level ℓ.

    Each curve's rate at ``m`` is read from the same PCHIP as :func:`bd_log_rate` (log rate over
    the metric on its efficient points), so between measured points it is the PCHIP inverse of the
    metric–rate curve. A level outside a curve's measured metric range is not extrapolated: its
    entry has ``log_ratio=None`` and a note naming the curve (the anchor, the test, or both).
    """
    reference, floor = _scale(reference, floor)
    values = _check_fractions(levels, "levels")
    anchor = _log_rate(anchor_rates, anchor_metric, "anchor")
    test = _log_rate(test_rates, test_metric, "test")
    result = []
    for level in values:
        target = floor + level * (reference - floor)
        notes = [n for n in (_reaches(anchor, target, "anchor"), _reaches(test, target, "test")) if n]
        value = None if notes else float(test(target) - anchor(target))
        result.append(RateAtLevel(level, target, value, "; ".join(notes)))
    return tuple(result)


# --------------------------------------------------------------------------- over pairs
@dataclass(frozen=True)
class PairedInterval:
    """The mean of per-pair log rate ratios with its paired t-interval and two-sided t-test against 0.

    ``sd`` is the sample standard deviation, ``lo``/``hi`` the ends of the ``confidence`` interval
    ``mean ± t_{(1+c)/2, n−1}·sd/√n``, ``p`` the p-value of the one-sample t-test of mean 0. With one
    pair there is no spread to estimate, so ``sd``, ``lo``, ``hi`` and ``p`` are ``None`` (an interval
    of "± 0" would claim a certainty one pair cannot give). Values are natural-log rate ratios; the
    ``*_percent`` properties are the same in percent of rate.
    """

    n: int
    mean: float
    sd: float | None
    lo: float | None
    hi: float | None
    p: float | None
    confidence: float = 0.95

    def __post_init__(self) -> None:
        if not isinstance(self.n, int) or isinstance(self.n, bool) or self.n < 1:
            raise ConfigError(f"paired interval over n={self.n!r} pairs: expected an integer ≥ 1")
        if not math.isfinite(self.mean) or not 0.0 < self.confidence < 1.0:
            raise ConfigError(f"paired interval: mean={self.mean!r}, confidence={self.confidence!r}; expected a finite "
                              "mean and a confidence in (0, 1)")
        spread = (self.sd, self.lo, self.hi, self.p)
        if self.n == 1:
            if any(v is not None for v in spread):
                raise ConfigError(f"paired interval over one pair with sd, lo, hi, p = {spread}; one pair has no "
                                  "interval: expected None for each")
            return
        if any(v is None or not math.isfinite(v) for v in spread):
            raise ConfigError(f"paired interval over {self.n} pairs with sd, lo, hi, p = {spread}; expected finite values")
        tolerance = 1e-12 * max(1.0, abs(self.mean))
        if self.sd < 0 or not self.lo - tolerance <= self.mean <= self.hi + tolerance or not 0.0 <= self.p <= 1.0:
            raise ConfigError(f"paired interval over {self.n} pairs: sd={self.sd}, lo={self.lo}, mean={self.mean}, "
                              f"hi={self.hi}, p={self.p}; expected sd ≥ 0, lo ≤ mean ≤ hi and p in [0, 1]")

    @property
    def has_interval(self) -> bool:
        return self.n > 1

    @property
    def percent(self) -> float:
        return percent(self.mean)

    @property
    def lo_percent(self) -> float | None:
        return None if self.lo is None else percent(self.lo)

    @property
    def hi_percent(self) -> float | None:
        return None if self.hi is None else percent(self.hi)

    def __str__(self) -> str:
        if not self.has_interval:
            return f"{self.percent:+.1f}% (n = 1: no interval)"
        return (f"{self.percent:+.1f}% [{self.lo_percent:+.1f}%, {self.hi_percent:+.1f}%] "
                f"(n = {self.n}, {100 * self.confidence:g}% CI, p = {self.p:.3g})")

    def as_dict(self) -> dict:
        return {"n": self.n, "mean": self.mean, "sd": self.sd, "lo": self.lo, "hi": self.hi, "p": self.p,
                "confidence": self.confidence, "percent": self.percent, "lo_percent": self.lo_percent,
                "hi_percent": self.hi_percent}


def paired_interval(values: Sequence[float], confidence: float = 0.95) -> PairedInterval:
    """The paired t-interval of per-pair values (log rate ratios) and the two-sided t-test of mean 0.

    Student's t with ``n − 1`` degrees of freedom (``scipy.stats.t``); the same numbers as
    ``scipy.stats.t.interval`` and ``scipy.stats.ttest_1samp``. With identical values (sd = 0) the
    interval is the point itself and ``p`` is 0 (or 1 when the values are all 0). With one value:
    no interval (:class:`PairedInterval`).
    """
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1 or array.size == 0:
        raise ConfigError(f"paired values of shape {array.shape}: expected one value per pair, at least one")
    if not np.all(np.isfinite(array)):
        raise ConfigError(f"paired values {array.tolist()}: expected finite values")
    if not 0.0 < confidence < 1.0:
        raise ConfigError(f"confidence={confidence!r}: expected a share in (0, 1), e.g. 0.95")
    n, mean = int(array.size), float(array.mean())
    if n == 1:
        return PairedInterval(1, mean, None, None, None, None, confidence)
    sd = float(array.std(ddof=1))
    se = sd / math.sqrt(n)
    if se == 0.0:
        return PairedInterval(n, mean, 0.0, mean, mean, 1.0 if mean == 0.0 else 0.0, confidence)
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1)) * se
    p = float(2.0 * stats.t.sf(abs(mean) / se, n - 1))
    return PairedInterval(n, mean, sd, mean - half, mean + half, min(p, 1.0), confidence)


def holm(p_values: Sequence[float]) -> tuple[float, ...]:
    """Holm–Bonferroni adjusted p-values, in the order given (Holm, Scand. J. Statist., 1979).

    With the ``m`` p-values sorted, ``p_(1) ≤ … ≤ p_(m)``, the adjusted ``p̃_(i) = max_{j ≤ i}
    min(1, (m − j + 1)·p_(j))``: monotone in the raw p-values and capped at 1. Rejecting every
    hypothesis with ``p̃ ≤ α`` is Holm's step-down procedure, which keeps the family-wise error
    rate at ``α`` whatever the dependence between the tests (here: the tasks of one model).
    """
    array = np.asarray(p_values, dtype=np.float64)
    if array.ndim != 1 or not np.all((array >= 0) & (array <= 1)):  # NaN fails both
        raise ConfigError(f"p-values {list(p_values)!r}: expected a list of numbers in [0, 1]")
    m = array.size
    order = np.argsort(array, kind="stable")
    stepped = np.minimum(1.0, (m - np.arange(m)) * array[order])
    adjusted = np.empty(m)
    adjusted[order] = np.maximum.accumulate(stepped)
    return tuple(float(v) for v in adjusted)


def verdict(interval: PairedInterval, p_adjusted: float | None, alpha: float = 0.05, precision: float = 5.0) -> str:
    """The decision in words, in percent of rate (negative rate change = a saving).

    With ``lo%``, ``hi%`` the interval's ends and ``X%`` its mean as rate changes
    (``100·expm1``), the first rule that holds decides:

    1. one pair (no interval) → ``inconclusive (n = 1: no interval; rate change +X%)``;
    2. ``hi% < 0`` and ``p_adjusted < alpha`` → ``saves S% [S_lo%, S_hi%]`` with the saving
       ``S = −X`` and its interval ``[−hi%, −lo%]``;
    3. ``lo% > 0`` and ``p_adjusted < alpha`` → ``costs X% [lo%, hi%]``;
    4. otherwise (the interval contains 0, or excludes it only before the Holm adjustment), when
       ``lo% ≥ −precision`` → ``no saving larger than B%`` with ``B = max(0, −lo%)``: the interval
       rules out any saving larger than B, which is within ``precision`` points of percent (it says
       nothing about costs: the rate change interval is written beside it; B is the task's own bound,
       not adjusted across tasks as ``p_adjusted`` is);
    5. otherwise → ``inconclusive`` (the interval still allows a saving larger than ``precision``).

    Args:
        interval: the paired interval of the per-pair log rate ratios.
        p_adjusted: its p-value adjusted across the tasks of the comparison (:func:`holm`);
            ignored, and may be ``None``, for one pair.
        alpha: the family-wise significance level.
        precision: the largest saving, in percent of rate, that "no saving" may leave open.
    """
    if not 0.0 < alpha < 1.0 or not (math.isfinite(precision) and precision >= 0):
        raise ConfigError(f"alpha={alpha!r}, precision={precision!r}: expected alpha in (0, 1) and a precision ≥ 0 "
                          "(percent of rate)")
    if not interval.has_interval:
        return f"inconclusive (n = 1: no interval; rate change {interval.percent:+.1f}%)"
    if p_adjusted is None or not 0.0 <= p_adjusted <= 1.0:
        raise ConfigError(f"p_adjusted={p_adjusted!r} for an interval over {interval.n} pairs: expected the "
                          "Holm-adjusted p-value in [0, 1]")
    lo, hi, mean = interval.lo_percent, interval.hi_percent, interval.percent
    change = f"rate change {lo:+.1f}% to {hi:+.1f}%"
    if hi < 0 and p_adjusted < alpha:
        return f"saves {-mean:.1f}% [{-hi:.1f}%, {-lo:.1f}%]"
    if lo > 0 and p_adjusted < alpha:
        return f"costs {mean:.1f}% [{lo:.1f}%, {hi:.1f}%]"
    if lo >= -precision:
        return f"no saving larger than {max(0.0, -lo):.1f}% ({change})"
    return f"inconclusive ({change})"


# --------------------------------------------------------------------------- two lists of curves
@dataclass(frozen=True)
class LevelComparison:
    """The rate at equal accuracy at one level, per pair and over the pairs where both curves reach it.

    ``log_ratios`` and ``notes`` have one entry per pair (``None`` and a note where a curve of the
    pair does not reach the level); ``interval`` is over the pairs that reach it (``None`` if none).
    """

    level: float
    log_ratios: tuple[float | None, ...]
    notes: tuple[str, ...]
    interval: PairedInterval | None

    def __post_init__(self) -> None:
        object.__setattr__(self, "log_ratios", tuple(self.log_ratios))
        object.__setattr__(self, "notes", tuple(self.notes))
        if not 0.0 < self.level <= 1.0:
            raise ConfigError(f"level {self.level!r}: expected a share of the way to the uncompressed metric, in (0, 1]")
        reached = sum(v is not None for v in self.log_ratios)
        if len(self.notes) != len(self.log_ratios) or (self.interval.n if self.interval else 0) != reached:
            raise ConfigError(f"level {self.level}: {len(self.log_ratios)} values, {len(self.notes)} notes, "
                              f"{reached} reached and an interval over {self.interval.n if self.interval else 0}; "
                              "expected one value and note per pair and the interval over the pairs reached")

    def as_dict(self) -> dict:
        return {"level": self.level, "log_ratios": list(self.log_ratios),
                "percent": [None if v is None else percent(v) for v in self.log_ratios], "notes": list(self.notes),
                "interval": self.interval.as_dict() if self.interval else None}


@dataclass(frozen=True)
class PairedComparison:
    """The test arm against the anchor arm for one task along one curve family, over pairs.

    ``bands`` (the metric band of each pair, from its anchor's reference) and ``log_ratios`` (each
    pair's :func:`bd_log_rate`) are in the order of ``labels``; ``interval`` is their paired
    t-interval, ``p_adjusted`` its p-value Holm-adjusted across the tasks of the comparison
    (``None`` with one pair); ``levels`` the rate at equal accuracy at fixed levels. The verdict
    follows from these and ``alpha``/``precision`` (:func:`verdict`).
    """

    task: str
    family: str
    metric: str
    labels: tuple[str, ...]
    bands: tuple[tuple[float, float], ...]
    log_ratios: tuple[float, ...]
    interval: PairedInterval
    p_adjusted: float | None
    levels: tuple[LevelComparison, ...] = ()
    alpha: float = 0.05
    precision: float = 5.0
    anchor_family: str | None = None  # the anchor arm's family, where it is not ``family`` (remote inference)

    def __post_init__(self) -> None:
        for name in ("labels", "log_ratios", "levels"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        object.__setattr__(self, "bands", tuple((float(lo), float(hi)) for lo, hi in self.bands))
        where = f"comparison of task {self.task!r}, family {self.family!r}"
        n = self.interval.n
        if not len(self.labels) == len(self.bands) == len(self.log_ratios) == n:
            raise ConfigError(f"{where}: {len(self.labels)} labels, {len(self.bands)} bands and {len(self.log_ratios)} "
                              f"log ratios for an interval over {n} pairs; expected one of each per pair")
        if any(len(level.log_ratios) != n for level in self.levels):
            raise ConfigError(f"{where}: a level with a value count other than the {n} pairs")
        if (self.p_adjusted is None) != (self.interval.p is None):
            raise ConfigError(f"{where}: p={self.interval.p!r} but p_adjusted={self.p_adjusted!r}; expected both or neither")
        if self.p_adjusted is not None and not self.interval.p <= self.p_adjusted <= 1.0:
            raise ConfigError(f"{where}: p_adjusted={self.p_adjusted!r} below p={self.interval.p!r} or above 1; a Holm "
                              "adjustment never lowers a p-value")
        verdict(self.interval, self.p_adjusted, self.alpha, self.precision)  # checks alpha and precision

    @property
    def n(self) -> int:
        return self.interval.n

    @property
    def p(self) -> float | None:
        return self.interval.p

    @property
    def verdict(self) -> str:
        return verdict(self.interval, self.p_adjusted, self.alpha, self.precision)

    def as_dict(self) -> dict:
        """Everything, JSON-ready (log values and the same in percent; the verdict written out)."""
        return {"task": self.task, "family": self.family, "anchor_family": self.anchor_family or self.family,
                "metric": self.metric, "n": self.n, "labels": list(self.labels),
                "bands": [list(b) for b in self.bands], "log_ratios": list(self.log_ratios),
                "percent": [percent(v) for v in self.log_ratios], "interval": self.interval.as_dict(), "p": self.p,
                "p_adjusted": self.p_adjusted, "alpha": self.alpha, "precision": self.precision,
                "verdict": self.verdict, "levels": [level.as_dict() for level in self.levels]}


def _check_arms(anchors: Sequence[RateAccuracyCurves], tests: Sequence[RateAccuracyCurves], family: str,
                labels: Sequence[str] | None, anchor_family: str) -> tuple[str, ...]:
    if len(anchors) != len(tests) or not anchors:
        raise ConfigError(f"{len(anchors)} anchor and {len(tests)} test curves: expected one of each per pair, "
                          "at least one pair")
    labels = tuple(str(label) for label in labels) if labels is not None else tuple(
        f"pair {i + 1}" for i in range(len(anchors)))
    if len(labels) != len(anchors) or len(set(labels)) != len(labels):
        raise ConfigError(f"labels {list(labels)} for {len(anchors)} pairs: expected one distinct label per pair")
    first = anchors[0]
    for label, anchor, test in zip(labels, anchors, tests):
        for arm, curves, measured in (("anchor", anchor, anchor_family), ("test", test, family)):
            if curves.tasks != first.tasks or curves.images != first.images:
                raise ConfigError(f"{label!r}: the {arm} curves have tasks {curves.tasks} on {curves.images} images, "
                                  f"{labels[0]!r}'s anchor {first.tasks} on {first.images}; expected the same tasks "
                                  "and test images throughout")
            if measured not in curves.families:
                raise ConfigError(f"{label!r}: the {arm} curves were not measured on curve family {measured!r} "
                                  f"(have {', '.join(curves.families)})")
    return labels


def compare_pairs(anchors: Sequence[RateAccuracyCurves], tests: Sequence[RateAccuracyCurves], family: str, *,
                  fractions: Sequence[float] = FRACTIONS, floors: Mapping[str, float] = MappingProxyType({}),
                  levels: Sequence[float] = LEVELS, alpha: float = 0.05, labels: Sequence[str] | None = None,
                  confidence: float = 0.95, precision: float = 5.0,
                  anchor_family: str | None = None) -> tuple[PairedComparison, ...]:
    """The test arm against the anchor arm along one curve family: one :class:`PairedComparison` per task.

    Args:
        anchors, tests: the curves of each pair, in pair order (``tests[i]`` against ``anchors[i]``):
            the same tasks and test images throughout, each measured on ``family``.
        family: the curve family to compare (:attr:`RateAccuracyCurves.families`).
        fractions: the metric band of each pair, shares of the way from the floor to its anchor's
            uncompressed metric (:func:`metric_band`); fixed before looking at the results.
        floors: metric key → the floor of its scale (the trivial predictor's PSNR for
            reconstruction); 0 for keys not given. Keys must be metrics of the curves.
        levels: the accuracy levels of the rate at equal accuracy (:func:`log_rate_at_levels`).
        alpha: the family-wise level of the verdicts; the p-values are Holm-adjusted across tasks.
        labels: a name per pair for the errors and the table (default ``pair 1``, ``pair 2`` …).
        confidence, precision: of the intervals, and of :func:`verdict`.
        anchor_family: the anchor curves' family, if not ``family``: the test arm's feature curves against
            the anchor model's remote-inference curves (its input image coded), for example.

    Raises:
        ConfigError: unequal numbers of anchors and tests, other tasks or image counts, a family
            not measured, an unknown floor key, or a band a curve of a pair does not cover (naming
            the pair, the task, the band and the curve's range).
    """
    labels = _check_arms(anchors, tests, family, labels, anchor_family or family)
    unknown = sorted(set(floors) - set(anchors[0].reference))
    if unknown:
        raise ConfigError(f"floors for {unknown}: not metrics of these curves (have {', '.join(sorted(anchors[0].reference))})")
    _check_fractions(levels, "levels")
    columns = []
    for task, key in anchors[0].tasks.items():
        floor = float(floors.get(key, 0.0))
        bands, values, at_levels = [], [], []
        for label, anchor, test in zip(labels, anchors, tests):
            (ra, ma), (rt, mt) = anchor.curve(task, anchor_family or family), test.curve(task, family)
            try:
                band = metric_band(anchor.reference[key], fractions, floor)
                values.append(bd_log_rate(ra, ma, rt, mt, band))
                at_levels.append(log_rate_at_levels(ra, ma, rt, mt, anchor.reference[key], levels, floor))
            except ConfigError as err:
                raise ConfigError(f"{label!r}, task {task!r} ({key}), family {family!r}: {err}") from None
            bands.append(band)
        level_rows = []
        for j, level in enumerate(float(v) for v in levels):
            ratios = [pair[j].log_ratio for pair in at_levels]
            reached = [v for v in ratios if v is not None]
            level_rows.append(LevelComparison(level, ratios, [pair[j].note for pair in at_levels],
                                              paired_interval(reached, confidence) if reached else None))
        columns.append((task, key, bands, values, paired_interval(values, confidence), level_rows))
    tested = [i for i, column in enumerate(columns) if column[4].p is not None]
    adjusted = dict(zip(tested, holm([columns[i][4].p for i in tested])))
    return tuple(PairedComparison(task, family, key, labels, bands, values, interval, adjusted.get(i), level_rows,
                                  alpha, precision, anchor_family if anchor_family not in (None, family) else None)
                 for i, (task, key, bands, values, interval, level_rows) in enumerate(columns))


# --------------------------------------------------------------------------- task by task, and read again
def compare_tasks(anchors: Sequence[RateAccuracyCurves], tests: Sequence[RateAccuracyCurves], family: str,
                  **options) -> dict[str, PairedComparison | str]:
    """:func:`compare_pairs` one task at a time: task → its comparison, or its refusal in one line.

    A task whose band a curve of a pair does not cover is refused and leaves the other tasks their
    BD-rates; the p-values are Holm-adjusted across *all* the tasks, a refused one counting as a test
    with p = 1, so a refusal never makes the others' adjustment milder. ``options`` are
    :func:`compare_pairs`'s; errors that are not about one task (unequal arms, other tasks or images,
    a family not measured) still raise.
    """
    _check_arms(anchors, tests, family, options.get("labels"), options.get("anchor_family") or family)
    outcome: dict[str, PairedComparison | str] = {}
    for task, key in anchors[0].tasks.items():
        alone = [replace(c, tasks={task: key}) for c in anchors], [replace(c, tasks={task: key}) for c in tests]
        try:
            (outcome[task],) = compare_pairs(*alone, family, **options)
        except ConfigError as err:
            outcome[task] = str(err)
    return _holm_across(outcome, {})


def _holm_across(outcome: Mapping[str, PairedComparison | str], fixed: Mapping[str, float]) -> dict:
    """Every comparison of ``outcome`` with its p Holm-adjusted across all of its tasks: the measured p, a
    refused task's p = 1, and the p of a task in ``fixed`` (one already counted elsewhere, left as it is)."""
    tested = {t: v.p for t, v in outcome.items() if isinstance(v, PairedComparison) and v.p is not None}
    if not tested:
        return dict(outcome)
    family_p = [fixed.get(t, tested.get(t, 1.0)) for t in outcome]
    adjusted = dict(zip(outcome, holm(family_p)))
    return {t: replace(v, p_adjusted=adjusted[t]) if t in tested and t not in fixed else v for t, v in outcome.items()}


@dataclass(frozen=True)
class PostHocReading:
    """A refused task read again, over a band or a meeting chosen after seeing the curves: never a primary verdict.

    ``band`` (shares of the way to the anchor's uncompressed metric, :func:`covered_band`) for a reading
    over the band every pair's curves cover; else ``meetings``, each pair's :attr:`CurveMeeting.kind`,
    for a reading where the curves meet (:func:`meet_curves`), whose ``comparison.bands`` are the
    meetings' metric ranges and whose verdict says only what bounds support.
    """

    comparison: PairedComparison
    band: tuple[float, float] | None = None
    meetings: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "meetings", tuple(self.meetings))
        if (self.band is None) == (not self.meetings) or (self.meetings and len(self.meetings) != self.comparison.n):
            raise ConfigError(f"post-hoc reading of task {self.comparison.task!r} with band {self.band!r} and meetings "
                              f"{list(self.meetings)}: expected a band, or one meeting per pair ({self.comparison.n})")

    @property
    def where(self) -> str:
        """Where the reading was taken, in words: ``over 50–85%`` or ``where the curves meet``."""
        if self.band is None:
            return "where the curves meet"
        return f"over {100 * self.band[0]:.0f}–{100 * self.band[1]:.0f}%"

    @property
    def verdict(self) -> str:
        """:func:`verdict` where every pair is read at equal accuracy; where a pair's curves share no accuracy,
        only what its bound supports (*saves at least*, *costs at least*, else *inconclusive*)."""
        value = self.comparison
        bounds = sum(kind != "overlap" for kind in self.meetings)
        interval = value.interval
        if not bounds or not interval.has_interval:
            return value.verdict
        lo, hi, mean = interval.lo_percent, interval.hi_percent, interval.percent
        why = f"{bounds} of {len(self.meetings)} pairs' curves share no accuracy: bounds from their nearest points"
        if set(self.meetings) <= {"overlap", "test above"} and hi < 0 and value.p_adjusted < value.alpha:
            return f"saves at least {-hi:.1f}% ({why}; mean {-mean:.1f}%)"
        if set(self.meetings) <= {"overlap", "test below"} and lo > 0 and value.p_adjusted < value.alpha:
            return f"costs at least {lo:.1f}% ({why}; mean {mean:.1f}%)"
        return f"inconclusive ({why}; rate change {lo:+.1f}% to {hi:+.1f}%)"

    def as_dict(self) -> dict:
        """:meth:`PairedComparison.as_dict` with this verdict and the ``band`` or the ``meetings``."""
        where = {"band": list(self.band)} if self.band is not None else {"meetings": list(self.meetings)}
        return {**self.comparison.as_dict(), "verdict": self.verdict, **where}


def _meeting(anchors, tests, task: str, key: str, family: str, anchor_family: str, labels, alpha: float,
             confidence: float, precision: float) -> PostHocReading | None:
    try:
        meetings = [meet_curves(*a.curve(task, anchor_family), *t.curve(task, family)) for a, t in zip(anchors, tests)]
    except ConfigError:
        return None
    if any(m.log_ratio is None for m in meetings):
        return None
    values = [m.log_ratio for m in meetings]
    interval = paired_interval(values, confidence)
    value = PairedComparison(task, family, key, labels, [m.band for m in meetings], values, interval, interval.p, (),
                             alpha, precision, anchor_family if anchor_family != family else None)
    return PostHocReading(value, meetings=[m.kind for m in meetings])


def read_refused(anchors: Sequence[RateAccuracyCurves], tests: Sequence[RateAccuracyCurves], family: str,
                 outcome: Mapping[str, PairedComparison | str], *, fractions: Sequence[float] = FRACTIONS,
                 floors: Mapping[str, float] = MappingProxyType({}), levels: Sequence[float] = LEVELS,
                 alpha: float = 0.05, labels: Sequence[str] | None = None, confidence: float = 0.95,
                 precision: float = 5.0, anchor_family: str | None = None) -> dict[str, PostHocReading]:
    """Each task :func:`compare_tasks` refused, read again where the curves allow: task → its reading.

    Over the widest band inside ``fractions`` that every pair's curves cover (:func:`covered_band`, on
    the same top: a band the curves already cover is not a new one); else where the curves meet
    (:func:`meet_curves`); else the task gets no reading (a pair's curves apart, or one not a curve).
    The p-values are Holm-adjusted across *every* task of ``outcome``, as if the refused ones had been
    measured: the measured tasks' p (left as they were), each reading's p, p = 1 for a task that
    stays refused. Both readings are choices made after seeing data: report them apart, as such.
    """
    labels = _check_arms(anchors, tests, family, labels, anchor_family or family)
    anchor_family = anchor_family or family
    options = {"floors": floors, "levels": levels, "alpha": alpha, "labels": labels, "confidence": confidence,
               "precision": precision, "anchor_family": anchor_family}
    readings: dict[str, PostHocReading | None] = {}
    for task, value in outcome.items():
        if isinstance(value, PairedComparison):
            continue
        key = anchors[0].tasks[task]
        floor = float(floors.get(key, 0.0))
        pairs = [(a.curve(task, anchor_family), t.curve(task, family), a.reference[key]) for a, t in zip(anchors, tests)]
        band = covered_band(pairs, fractions, floor)
        if band is None or band == tuple(fractions):
            readings[task] = _meeting(anchors, tests, task, key, family, anchor_family, labels, alpha, confidence,
                                      precision)
            continue
        alone = [replace(c, tasks={task: key}) for c in anchors], [replace(c, tasks={task: key}) for c in tests]
        (comparison,) = compare_pairs(*alone, family, fractions=band, **options)
        readings[task] = PostHocReading(comparison, band=band)
    measured = {t: v.p for t, v in outcome.items() if isinstance(v, PairedComparison) and v.p is not None}
    pooled = {t: readings[t].comparison if readings.get(t) else "refused" for t in outcome if t not in measured}
    adjusted = _holm_across({**{t: outcome[t] for t in measured}, **pooled}, measured)
    return {t: replace(r, comparison=adjusted[t]) for t, r in readings.items() if r is not None}


__all__ = ["FRACTIONS", "LEVELS", "MIN_POINTS", "CurveMeeting", "LevelComparison", "PairedComparison", "PairedInterval",
           "PostHocReading", "RateAtLevel", "bd_log_rate", "compare_pairs", "compare_tasks", "covered_band", "holm",
           "log_rate_at_levels", "meet_curves", "metric_band", "paired_interval", "percent", "read_refused", "verdict"]
