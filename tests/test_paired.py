"""Paired comparisons (cilight.evaluation.paired): the log BD-rate against closed forms and an independent
integration, the intervals and p-values against scipy, Holm against hand cases and its definition, the verdict
rule case by case, compare_pairs on made-up curves, and the coverage of the intervals in a simulation."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest
from scipy import integrate, stats
from scipy.interpolate import PchipInterpolator

from cilight.errors import ConfigError
from cilight.evaluation.bdrate import efficient_points
from cilight.evaluation.curves import CurvePoint, RateAccuracyCurves
from cilight.evaluation.paired import (
    PairedComparison,
    PairedInterval,
    PostHocReading,
    RateAtLevel,
    bd_log_rate,
    compare_pairs,
    compare_tasks,
    covered_band,
    holm,
    log_rate_at_levels,
    meet_curves,
    metric_band,
    paired_interval,
    percent,
    read_refused,
    verdict,
)

# a concave curve, measured at rates that are not a grid, with one dominated point (the 5th: more bits, worse metric)
RATES = np.array([900.0, 1700.0, 3000.0, 5200.0, 6000.0, 9000.0, 15000.0])
MIOU = np.array([0.18, 0.30, 0.39, 0.45, 0.44, 0.49, 0.515])


# --------------------------------------------------------------------------- one pair of curves
def test_half_the_rate_everywhere_is_minus_50_percent_and_reading_it_back_is_plus_100():
    value = bd_log_rate(RATES, MIOU, RATES / 2, MIOU, (0.25, 0.5))
    assert value == pytest.approx(math.log(0.5), abs=1e-12)
    assert percent(value) == pytest.approx(-50.0, abs=1e-9)
    back = bd_log_rate(RATES / 2, MIOU, RATES, MIOU, (0.25, 0.5))
    assert back == pytest.approx(-value, abs=1e-12) and percent(back) == pytest.approx(100.0, abs=1e-9)
    # percent is asymmetric, the log value is not: +43.7% one way is −30.4% the other
    assert percent(math.log(1.437)) == pytest.approx(43.7) and percent(-math.log(1.437)) == pytest.approx(-30.4, abs=0.05)


def test_swapping_anchor_and_test_negates_the_log_value():
    rng = np.random.default_rng(3)
    test_rates = np.sort(rng.uniform(700, 20000, 9))
    test_metric = np.sort(rng.uniform(0.15, 0.53, 9))
    band = (0.26, 0.48)
    forward = bd_log_rate(RATES, MIOU, test_rates, test_metric, band)
    assert bd_log_rate(test_rates, test_metric, RATES, MIOU, band) == pytest.approx(-forward, abs=1e-12)


def test_the_integral_agrees_with_quad_on_an_independent_pchip_of_the_efficient_points():
    test_rates = np.array([600.0, 1200.0, 2500.0, 2600.0, 4000.0, 8000.0, 11000.0])
    test_metric = np.array([0.17, 0.33, 0.41, 0.40, 0.47, 0.50, 0.53])  # its 4th point is dominated
    band = (0.23, 0.49)

    def log_rate(rates, metric):
        keep = [i for i in range(len(rates)) if not any(
            rates[j] <= rates[i] and metric[j] >= metric[i] and j != i for j in range(len(rates)))]
        assert list(keep) == sorted(efficient_points(rates, metric).tolist())
        return PchipInterpolator(metric[keep], np.log(rates[keep]))

    anchor, test = log_rate(RATES, MIOU), log_rate(test_rates, test_metric)
    expected = integrate.quad(lambda m: test(m) - anchor(m), *band, points=[*anchor.x, *test.x], epsabs=1e-13)[0]
    assert bd_log_rate(RATES, MIOU, test_rates, test_metric, band) == pytest.approx(expected / (band[1] - band[0]),
                                                                                    abs=1e-10)
    # the dominated points change nothing: the same curves without them
    kept = efficient_points(RATES, MIOU)
    assert bd_log_rate(RATES[kept], MIOU[kept], test_rates, test_metric, band) == pytest.approx(
        bd_log_rate(RATES, MIOU, test_rates, test_metric, band), abs=1e-14)


@pytest.mark.parametrize(("delta", "slope"), [(-0.3, 6.0), (0.1, 6.0), (-0.2, 7.5), (0.0, 4.0)])
def test_exponential_curves_have_the_closed_form(delta, slope):
    """ln R_anchor = 5 + 6 m and ln R_test = 5 + δ + s·m: PCHIP reproduces lines, so the mean over the band
    of their difference is δ + (s − 6)·(lo + hi)/2 exactly, whatever points the two curves were measured at."""
    anchor_metric = np.array([0.1, 0.25, 0.3, 0.55, 0.7, 0.9])
    test_metric = np.array([0.05, 0.2, 0.45, 0.6, 0.95])
    lo, hi = 0.3, 0.85
    value = bd_log_rate(np.exp(5 + 6 * anchor_metric), anchor_metric, np.exp(5 + delta + slope * test_metric),
                        test_metric, (lo, hi))
    assert value == pytest.approx(delta + (slope - 6.0) * (lo + hi) / 2, abs=1e-12)


@pytest.mark.parametrize(("band", "which", "expected_range"), [
    ((0.1, 0.5), "anchor", "from 0.18 to 0.515"),
    ((0.3, 0.52), "anchor", "from 0.18 to 0.515"),
    ((0.2, 0.45), "test", "from 0.25 to 0.5"),
])
def test_a_band_a_curve_does_not_cover_is_refused_naming_band_and_range(band, which, expected_range):
    test_metric = np.array([0.25, 0.35, 0.42, 0.47, 0.5])
    with pytest.raises(ConfigError, match=rf"the {which} curve's metric runs {expected_range} .* "
                                          rf"does not cover the band {band[0]:g}–{band[1]:g}") as err:
        bd_log_rate(RATES, MIOU, RATES[:5], test_metric, band)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(("rates", "metric", "expected"), [
    ([1.0, 2.0, 3.0], [0.1, 0.2], "shape"),
    ([1.0, np.nan, 3.0], [0.1, 0.2, 0.3], "non-finite"),
    ([0.0, 2.0, 3.0], [0.1, 0.2, 0.3], "rates ≤ 0"),
    ([1.0, 2.0, 3.0], [0.3, 0.2, 0.1], "1 efficient point"),
])
def test_a_curve_that_is_not_one_is_refused(rates, metric, expected):
    with pytest.raises(ConfigError, match=expected):
        bd_log_rate(rates, metric, RATES, MIOU, (0.3, 0.4))
    for band in ((0.4, 0.3), (0.3, np.inf), (0.3,)):
        with pytest.raises(ConfigError, match="metric band"):
            bd_log_rate(RATES, MIOU, RATES, MIOU, band)


def test_metric_band_by_hand():
    assert metric_band(0.6) == pytest.approx((0.3, 0.57))
    assert metric_band(30.0, floor=12.0) == pytest.approx((21.0, 29.1))  # PSNR over the trivial predictor's
    assert metric_band(2.0, (0.25, 1.0)) == pytest.approx((0.5, 2.0))
    for fractions in ((0.9, 0.5), (0.5,), (0.0, 0.5), (0.5, 1.2)):
        with pytest.raises(ConfigError, match="band fractions"):
            metric_band(0.6, fractions)
    with pytest.raises(ConfigError, match="reference above the floor"):
        metric_band(10.0, floor=12.0)


def test_curves_that_share_no_band_meet_where_their_accuracies_overlap_or_are_bounded_by_their_nearest_points():
    anchor = (np.array([1000.0, 2000.0, 4000.0, 8000.0]), np.array([0.20, 0.32, 0.40, 0.44]))
    # overlap: the BD-rate over the accuracies both reach, by quad on independent PCHIPs
    test = (np.array([500.0, 900.0, 3000.0]), np.array([0.36, 0.42, 0.47]))
    meeting = meet_curves(*anchor, *test)
    a, t = (PchipInterpolator(m, np.log(r)) for r, m in (anchor, test))
    expected = integrate.quad(lambda m: t(m) - a(m), 0.36, 0.44, points=[*a.x, *t.x], epsabs=1e-13)[0] / 0.08
    assert meeting.kind == "overlap" and meeting.band == (0.36, 0.44) and not meeting.bound
    assert meeting.log_ratio == pytest.approx(expected, abs=1e-10)
    # wholly above with fewer bits: the log ratio of the nearest points, an upper bound (the test saves at least that)
    above = (np.array([900.0, 1500.0, 2600.0, 5000.0]), np.array([0.45, 0.455, 0.46, 0.40]))  # the last is dominated
    meeting = meet_curves(*anchor, *above)
    assert meeting.kind == "test above" and meeting.bound and meeting.band == (0.44, 0.45)
    assert meeting.log_ratio == pytest.approx(math.log(900.0 / 8000.0), abs=1e-12)
    # the mirror image, read the other way round: the negative of the same bound
    mirror = meet_curves(*above, *anchor)
    assert mirror.kind == "test below" and mirror.log_ratio == pytest.approx(-meeting.log_ratio, abs=1e-12)
    # more accurate and dearer everywhere: nothing follows without extrapolating
    dear = (np.array([9000.0, 12000.0]), np.array([0.45, 0.47]))
    assert meet_curves(*anchor, *dear).kind == "apart" and meet_curves(*anchor, *dear).log_ratio is None
    assert meet_curves(*dear, *anchor).kind == "apart"
    with pytest.raises(ConfigError, match="efficient point"):
        meet_curves(*anchor, np.array([1.0, 2.0]), np.array([0.5, 0.5]))
    with pytest.raises(ConfigError, match="curve meeting"):
        type(meeting)("overlap", None, (0.1, 0.2))


def test_covered_band_moves_each_end_to_the_next_step_every_pair_covers():
    steps = np.array([1.0, 2.0, 4.0, 8.0, 16.0])
    short = (steps, np.array([0.63, 0.7, 0.8, 0.9, 0.99]))  # starts at 63% of the way: the band 50–95% is not covered
    full = (steps, np.array([0.40, 0.7, 0.8, 0.9, 0.99]))
    assert covered_band([(full, full, 1.0)]) == (0.5, 0.95)  # covered already: the band stays
    assert covered_band([(full, full, 1.0), (full, short, 1.0)]) == (0.65, 0.95)  # the test curve of pair 2 sets it
    with pytest.raises(ConfigError, match="does not cover"):
        bd_log_rate(*full, *short, metric_band(1.0))
    bd_log_rate(*full, *short, metric_band(1.0, covered_band([(full, short, 1.0)])))  # and the new band is read
    # on a floor's scale: PSNR over a trivial 10 dB, uncompressed 30 dB, the first point at 22 dB is 60% of the way
    psnr = (steps, np.array([22.0, 24.0, 26.0, 28.0, 29.5]))
    assert covered_band([(psnr, psnr, 30.0)], floor=10.0) == (0.6, 0.95)
    assert covered_band([(psnr, psnr, 30.0)], floor=10.0, step=0.25) == (0.75, 0.95)
    low_top = (steps, np.array([0.4, 0.5, 0.6, 0.7, 0.83]))  # never reaches 95%: the top comes down to 80%
    assert covered_band([(full, low_top, 1.0)]) == (0.5, 0.8)
    assert covered_band([(full, low_top, 1.0), (full, short, 1.0)]) == (0.65, 0.8)  # both ends move
    assert covered_band([(full, (steps, np.array([0.2, 0.3, 0.4, 0.45, 0.52])), 1.0)]) is None  # stops at 52%
    assert covered_band([(full, (steps, np.full(5, 0.5)), 1.0)]) is None  # one efficient point is no curve
    assert covered_band([(full, (steps, np.array([0.94, 0.95, 0.96, 0.97, 0.99])), 1.0)]) is None  # lo would meet hi
    assert covered_band([(psnr, psnr, 9.0)], floor=10.0) is None  # an uncompressed model worse than the trivial one
    # a curve that starts a hair above a step: the band moves on to the next step, which the curve covers
    hair = (steps, np.array([0.65 + 3e-12, 0.7, 0.8, 0.9, 0.99]))
    assert covered_band([(full, hair, 1.0)]) == (0.7, 0.95)
    bd_log_rate(*full, *hair, metric_band(1.0, covered_band([(full, hair, 1.0)])))
    assert covered_band([(full, (steps, np.array([0.40, 0.5, 0.6, 0.7, 0.8 - 3e-12])), 1.0)]) == (0.5, 0.75)
    with pytest.raises(ConfigError, match="band step"):
        covered_band([(full, full, 1.0)], step=0.0)
    with pytest.raises(ConfigError, match="band fractions"):
        covered_band([(full, full, 1.0)], fractions=(0.9, 0.5))


def test_rate_at_levels_and_the_levels_a_curve_does_not_reach():
    levels = log_rate_at_levels(RATES, MIOU, RATES / 2, MIOU, reference=0.52, levels=(0.8, 0.9, 0.95))
    assert [r.metric for r in levels] == pytest.approx([0.416, 0.468, 0.494])
    assert all(r.log_ratio == pytest.approx(math.log(0.5), abs=1e-12) and not r.note for r in levels)
    assert levels[0].percent == pytest.approx(-50.0)
    # the test curve tops out at 0.47: 0.95 of 0.52 is out of its reach; 0.3 of 0.52 below the anchor's first point
    test_metric = np.array([0.15, 0.25, 0.33, 0.40, 0.47])
    low, mid, high = log_rate_at_levels(RATES, MIOU, RATES[:5], test_metric, 0.52, levels=(0.3, 0.8, 0.95))
    assert low.log_ratio is None and low.note.startswith("the anchor curve starts above 0.156")
    kept = efficient_points(RATES, MIOU)
    anchor, test = PchipInterpolator(MIOU[kept], np.log(RATES[kept])), PchipInterpolator(test_metric, np.log(RATES[:5]))
    assert mid.log_ratio == pytest.approx(float(test(0.416) - anchor(0.416)), abs=1e-12) and not mid.note
    assert high.log_ratio is None and high.note == "the test curve does not reach 0.494 (its best point scores 0.47)"
    both, = log_rate_at_levels(RATES, MIOU, RATES[:5], test_metric, 0.6, levels=(0.9,))
    assert both.log_ratio is None and "anchor curve does not reach" in both.note and "test curve does not" in both.note
    with pytest.raises(ConfigError, match="no note"):
        RateAtLevel(0.9, 0.5, None)


# --------------------------------------------------------------------------- over pairs
@pytest.mark.parametrize("n", [2, 3, 6, 11])
@pytest.mark.parametrize("confidence", [0.9, 0.95, 0.99])
def test_the_interval_and_p_agree_with_scipy(n, confidence):
    values = np.random.default_rng(n).normal(-0.1, 0.12, n)
    interval = paired_interval(values, confidence)
    lo, hi = stats.t.interval(confidence, n - 1, loc=values.mean(), scale=stats.sem(values))
    assert (interval.n, interval.confidence) == (n, confidence)
    assert interval.mean == pytest.approx(values.mean(), abs=1e-15)
    assert interval.sd == pytest.approx(values.std(ddof=1), rel=1e-12)
    assert (interval.lo, interval.hi) == pytest.approx((lo, hi), rel=1e-10, abs=1e-14)
    assert interval.p == pytest.approx(stats.ttest_1samp(values, 0.0).pvalue, rel=1e-9)
    assert interval.lo_percent == pytest.approx(100 * math.expm1(lo)) and interval.percent < 0


def test_one_pair_has_no_interval_and_equal_values_a_point_interval():
    one = paired_interval([-0.2])
    assert (one.n, one.sd, one.lo, one.hi, one.p) == (1, None, None, None, None) and not one.has_interval
    assert str(one) == "-18.1% (n = 1: no interval)" and "±" not in str(one)
    assert verdict(one, None) == "inconclusive (n = 1: no interval; rate change -18.1%)"
    same = paired_interval([math.log(0.5)] * 4)
    assert (same.sd, same.lo, same.hi, same.p) == (0.0, same.mean, same.mean, 0.0)
    assert paired_interval([0.0, 0.0]).p == 1.0
    for bad, expected in (([], "at least one"), ([0.1, np.nan], "finite"), ([[0.1, 0.2]], "one value per pair")):
        with pytest.raises(ConfigError, match=expected):
            paired_interval(bad)
    with pytest.raises(ConfigError, match="confidence"):
        paired_interval([0.1, 0.2], confidence=95)
    with pytest.raises(ConfigError, match="one pair has no interval"):
        PairedInterval(1, 0.1, 0.0, 0.1, 0.1, 1.0)
    with pytest.raises(ConfigError, match="lo ≤ mean ≤ hi"):
        PairedInterval(3, 0.1, 0.05, 0.2, 0.3, 0.5)


@pytest.mark.parametrize(("p", "expected"), [
    ([0.01, 0.04, 0.03], [0.03, 0.06, 0.06]),
    ([0.01, 0.04, 0.03, 0.005], [0.03, 0.06, 0.06, 0.02]),  # Holm's method, the textbook example: H1 and H4 fall
    ([0.5, 0.6], [1.0, 1.0]),  # capped at 1
    ([0.02, 0.02, 0.5], [0.06, 0.06, 0.5]),  # ties
    ([0.2], [0.2]),
    ([], []),
])
def test_holm_by_hand(p, expected):
    assert holm(p) == pytest.approx(tuple(expected), abs=1e-15)


def test_holm_is_the_step_down_procedure_at_every_level():
    """Adjusted p ≤ α exactly for the hypotheses Holm's procedure rejects at α: sorted p_(1) ≤ … ≤ p_(m),
    reject while p_(k) ≤ α / (m − k + 1), stop at the first that is not."""
    rng = np.random.default_rng(7)
    for _ in range(50):
        p = rng.uniform(0, 0.2, rng.integers(1, 8))
        adjusted = np.array(holm(p))
        assert np.all(adjusted >= p) and np.all(adjusted <= 1)
        for alpha in (0.01, 0.025, 0.05, 0.1):
            rejected = set()
            for k, i in enumerate(np.argsort(p)):
                if p[i] > alpha / (len(p) - k):
                    break
                rejected.add(int(i))
            assert {int(i) for i in np.flatnonzero(adjusted <= alpha)} == rejected
    for bad in ([0.1, 1.2], [np.nan], [[0.1]]):
        with pytest.raises(ConfigError, match="p-values"):
            holm(bad)


def test_holm_agrees_with_statsmodels_where_installed():
    multitest = pytest.importorskip("statsmodels.stats.multitest")
    p = np.random.default_rng(11).uniform(0, 0.1, 9)
    assert holm(p) == pytest.approx(tuple(multitest.multipletests(p, method="holm")[1]), abs=1e-15)


def interval(percent_mean: float, percent_lo: float, percent_hi: float, p: float = 0.01, n: int = 6) -> PairedInterval:
    """A paired interval with the given mean and ends in percent of rate."""
    mean, lo, hi = (math.log1p(v / 100) for v in (percent_mean, percent_lo, percent_hi))
    return PairedInterval(n, mean, 0.1, lo, hi, p)


@pytest.mark.parametrize(("case", "p_adjusted", "expected"), [
    ((-12.0, -18.0, -6.0), 0.01, "saves 12.0% [6.0%, 18.0%]"),
    ((8.0, 2.0, 14.0), 0.02, "costs 8.0% [2.0%, 14.0%]"),
    ((-0.5, -3.2, 2.4), 0.6, "no saving larger than 3.2% (rate change -3.2% to +2.4%)"),
    ((-0.5, -4.99, 4.0), 0.8, "no saving larger than 5.0% (rate change -5.0% to +4.0%)"),  # just within precision
    ((10.0, -1.0, 40.0), 0.3, "no saving larger than 1.0% (rate change -1.0% to +40.0%)"),  # says nothing of costs
    ((-2.0, -9.0, 5.5), 0.5, "inconclusive (rate change -9.0% to +5.5%)"),
    ((-5.0, -8.0, -1.0), 0.08, "inconclusive (rate change -8.0% to -1.0%)"),  # below 0, but not after Holm
    ((-2.5, -4.0, -1.0), 0.08, "no saving larger than 4.0% (rate change -4.0% to -1.0%)"),
    ((4.0, 1.0, 7.0), 0.08, "no saving larger than 0.0% (rate change +1.0% to +7.0%)"),  # above 0, not after Holm
])
def test_verdict_cases(case, p_adjusted, expected):
    assert verdict(interval(*case), p_adjusted) == expected


def test_verdict_precision_alpha_and_bad_arguments():
    wide = interval(-2.0, -9.0, 5.5, p=0.5)
    assert verdict(wide, 0.5, precision=10.0).startswith("no saving larger than 9.0%")
    assert verdict(interval(-12.0, -18.0, -6.0), 0.03, alpha=0.01).startswith("inconclusive")
    for kwargs in ({"alpha": 0.0}, {"alpha": 1.5}, {"precision": -1.0}):
        with pytest.raises(ConfigError, match="alpha="):
            verdict(wide, 0.5, **kwargs)
    with pytest.raises(ConfigError, match="Holm-adjusted"):
        verdict(wide, None)


# --------------------------------------------------------------------------- two lists of curves
TASKS = {"segmentation": "segmentation_miou", "reconstruction": "reconstruction_psnr"}
BASE = {"segmentation_miou": np.array([0.20, 0.31, 0.40, 0.46, 0.50, 0.52]),
        "reconstruction_psnr": np.array([18.0, 21.5, 24.0, 26.0, 27.2, 28.0])}
BASE_RATES = np.array([800.0, 1500.0, 2600.0, 4200.0, 7000.0, 12000.0])
REFERENCE = {"segmentation_miou": 0.53, "reconstruction_psnr": 28.5, "disparity_rmse": 3.0}
FLOORS = {"reconstruction_psnr": 12.0}


def curves(rates, psnr_shift: float = 0.0, family: str = "paper", images: int = 8, tasks=None) -> RateAccuracyCurves:
    metrics = {"segmentation_miou": BASE["segmentation_miou"], "reconstruction_psnr": BASE["reconstruction_psnr"] + psnr_shift,
               "disparity_rmse": np.linspace(4, 3, len(rates))}
    points = tuple(CurvePoint(family, f"{family}@{i}", float(r), float(r) / 1024, (float(r),),
                              {k: float(v[i]) for k, v in metrics.items()}) for i, r in enumerate(rates))
    return RateAccuracyCurves(points, dict(REFERENCE), dict(tasks or TASKS), 1024, images)


SEED = (1.0, 1.07, 0.95)  # each pair's seed moves both of its curves
SAVING = (0.80, 0.86, 0.77)


def pairs():
    anchors = [curves(BASE_RATES * s) for s in SEED]
    tests = [curves(BASE_RATES * s * k, psnr_shift=0.2 * i) for i, (s, k) in enumerate(zip(SEED, SAVING))]
    return anchors, tests


def test_compare_pairs_by_hand():
    anchors, tests = pairs()
    rows = compare_pairs(anchors, tests, "paper", floors=FLOORS, labels=["s0", "s1", "s2"])
    assert [(r.task, r.family, r.metric, r.n, r.labels) for r in rows] == [
        (t, "paper", k, 3, ("s0", "s1", "s2")) for t, k in TASKS.items()]
    seg, rec = rows
    assert np.allclose(seg.bands, [(0.265, 0.5035)] * 3)  # 0 to 0.53: the anchor's reference
    assert np.allclose(rec.bands, [(20.25, 27.675)] * 3)  # 12 (the floor) to 28.5
    assert seg.log_ratios == pytest.approx(np.log(SAVING), abs=1e-12)
    for i, (anchor, test) in enumerate(zip(anchors, tests)):
        expected = bd_log_rate(*anchor.curve("reconstruction", "paper"), *test.curve("reconstruction", "paper"),
                               (20.25, 27.675))
        assert rec.log_ratios[i] == pytest.approx(expected, abs=1e-15)
        assert expected < math.log(SAVING[i]) - 1e-3 or i == 0  # a better PSNR at the same rate saves more
    expected = paired_interval(np.log(SAVING))
    assert [getattr(seg.interval, f) for f in ("n", "mean", "sd", "lo", "hi", "p")] == pytest.approx(
        [getattr(expected, f) for f in ("n", "mean", "sd", "lo", "hi", "p")], rel=1e-10)
    assert rec.interval == paired_interval(rec.log_ratios)
    assert (seg.p_adjusted, rec.p_adjusted) == pytest.approx(holm([seg.p, rec.p]))
    assert seg.verdict == verdict(seg.interval, seg.p_adjusted)
    assert seg.verdict == "saves 19.1% [7.0%, 29.6%]"  # 1 − (0.80·0.86·0.77)^(1/3); Holm p = 2·0.023
    first = seg.levels[0]
    assert [level.level for level in seg.levels] == [0.8, 0.9, 0.95]
    assert first.log_ratios == pytest.approx(np.log(SAVING), abs=1e-12) and first.interval.n == 3
    data = json.loads(json.dumps([r.as_dict() for r in rows]))
    assert data[0]["verdict"] == seg.verdict and data[0]["p_adjusted"] == seg.p_adjusted
    assert data[0]["percent"] == pytest.approx([100 * (k - 1) for k in SAVING])
    assert data[1]["bands"] == [list(b) for b in rec.bands] and data[0]["levels"][0]["interval"]["n"] == 3


def test_compare_pairs_with_one_pair_and_unreached_levels():
    anchors, tests = pairs()
    row, _ = compare_pairs(anchors[:1], tests[:1], "paper", floors=FLOORS, levels=(0.9, 1.0))
    assert row.n == 1 and row.p is None and row.p_adjusted is None and row.labels == ("pair 1",)
    assert row.verdict == "inconclusive (n = 1: no interval; rate change -20.0%)"
    reached, unreached = row.levels
    assert reached.interval.n == 1 and not reached.notes[0]
    assert unreached.log_ratios == (None,) and unreached.interval is None
    assert unreached.notes[0].startswith("the anchor curve does not reach 0.53")
    with pytest.raises(ConfigError, match="below p"):
        PairedComparison("segmentation", "paper", "segmentation_miou", ("a", "b"), [(0.1, 0.2)] * 2, (0.1, 0.2),
                         paired_interval([0.1, 0.2]), 0.01)


def test_compare_pairs_refusals_are_one_line_naming_the_value():
    anchors, tests = pairs()
    other_tasks = curves(BASE_RATES, tasks={"segmentation": "segmentation_miou"})
    cases = [
        ((anchors, tests[:2]), {}, "3 anchor and 2 test curves"),
        (([], []), {}, "at least one pair"),
        ((anchors, [tests[0], other_tasks, tests[2]]), {}, r"'pair 2': the test curves have tasks"),
        ((anchors, [*tests[:2], curves(BASE_RATES, images=9)]), {}, r"'pair 3': the test curves .* on 9 images"),
        ((anchors, [*tests[:2], curves(BASE_RATES, family="j2k")]), {}, r"'pair 3': the test curves were not measured "
                                                                         r"on curve family 'paper' \(have j2k\)"),
        ((anchors, tests), {"floors": {"psnr": 12.0}}, r"floors for \['psnr'\]"),
        ((anchors, tests), {"labels": ["a", "a", "b"]}, "one distinct label per pair"),
        ((anchors, tests), {"levels": (0.9, 1.5)}, "levels"),
        # without the PSNR floor the band starts at 14.25 dB, below every curve's first point
        ((anchors, tests), {"floors": {}, "labels": ["s0", "s1", "s2"]},
         r"'s0', task 'reconstruction' \(reconstruction_psnr\), family 'paper': the anchor curve's metric runs from 18 "
         r"to 28 .* band 14.25–27.075"),
    ]
    for args, kwargs, expected in cases:
        with pytest.raises(ConfigError, match=expected) as err:
            compare_pairs(*args, "paper", **{"floors": FLOORS, **kwargs})
        assert "\n" not in str(err.value)
    # with the band from 40% of the way, a test curve whose PSNR starts at 19 dB does not reach down to 18.6 dB
    with pytest.raises(ConfigError, match=r"'s1', task 'reconstruction'.*the test curve's metric runs from 19 .* "
                                          r"band 18.6–27.675"):
        shifted = [tests[0], curves(BASE_RATES, psnr_shift=1.0), tests[2]]
        compare_pairs(anchors, shifted, "paper", floors=FLOORS, fractions=(0.4, 0.95), labels=["s0", "s1", "s2"])


def test_compare_tasks_refuses_one_task_alone_and_read_refused_reads_it_over_the_band_every_pair_covers():
    anchors, tests = pairs()
    labels = ["s0", "s1", "s2"]
    # no PSNR floor: reconstruction's band starts at 14.25 dB, below every curve; segmentation is unaffected
    outcome = compare_tasks(anchors, tests, "paper", floors={}, labels=labels)
    seg, rec = outcome["segmentation"], outcome["reconstruction"]
    assert isinstance(rec, str) and "band 14.25–27.075" in rec and "\n" not in rec
    (alone,) = compare_pairs([replace_tasks(c) for c in anchors], [replace_tasks(c) for c in tests], "paper",
                             labels=labels)
    assert seg.log_ratios == alone.log_ratios and seg.p_adjusted == pytest.approx(holm([seg.p, 1.0])[0])
    readings = read_refused(anchors, tests, "paper", outcome, floors={}, labels=labels)
    assert list(readings) == ["reconstruction"]
    reading = readings["reconstruction"]
    # the band by hand: every curve starts at 18 dB or above (shifts 0, 0.2, 0.4) of the way 0 → 28.5: 18.4/28.5
    # = 64.6%, so 65% on the 5% grid; the top 95% = 27.075 dB lies under every curve's end
    expected_band = covered_band([(a.curve("reconstruction", "paper"), t.curve("reconstruction", "paper"), 28.5)
                                  for a, t in zip(anchors, tests)])
    assert reading.band == expected_band == (0.65, 0.95) and reading.where == "over 65–95%" and not reading.meetings
    expected = [bd_log_rate(*a.curve("reconstruction", "paper"), *t.curve("reconstruction", "paper"),
                            (0.65 * 28.5, 0.95 * 28.5)) for a, t in zip(anchors, tests)]
    assert reading.comparison.log_ratios == pytest.approx(expected, abs=1e-12)
    # Holm across both tasks: the measured one's raw p and the reading's
    assert reading.comparison.p_adjusted == pytest.approx(holm([seg.p, reading.comparison.p])[1])
    data = reading.as_dict()
    assert data["band"] == [0.65, 0.95] and data["verdict"] == reading.verdict == reading.comparison.verdict
    # a reading is over a band or where the curves meet, one kind of meeting per pair
    for band, meetings in ((None, ()), ((0.6, 0.9), ("overlap",) * 3), (None, ("overlap",))):
        with pytest.raises(ConfigError, match="expected a band, or one meeting per pair"):
            PostHocReading(reading.comparison, band, meetings)


def replace_tasks(c: RateAccuracyCurves) -> RateAccuracyCurves:
    return replace(c, tasks={"segmentation": "segmentation_miou"})


def test_the_package_exports_the_names_and_the_module_imports_no_torch():
    import cilight.evaluation as evaluation

    assert evaluation.compare_pairs is compare_pairs and evaluation.holm is holm
    code = "import sys, cilight.evaluation.paired; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], timeout=60).returncode == 0


# --------------------------------------------------------------------------- the intervals' coverage
def test_the_95_percent_intervals_cover_a_known_effect_in_simulated_experiments():
    """400 experiments of 6 pairs with a true effect δ on log rate. Each pair shares a seed effect (a shift and
    a slope of its metric–rate curve); each arm adds its own shift (sd 0.08 in log rate) and every point a
    little noise in rate and metric; the two arms are measured at different metric values. About 95% of the
    paired 95% t-intervals must contain δ (binomial sd over 400: 1.1 points)."""
    rng = np.random.default_rng(20240611)
    experiments, n, points, delta = 400, 6, 12, -0.2
    knob = np.linspace(0.0, 1.0, points)
    shift = rng.normal(0.0, 0.3, (experiments, n, 1))
    slope = rng.normal(1.0, 0.1, (experiments, n, 1))

    def arm(effect: float) -> tuple[np.ndarray, np.ndarray]:
        metric = 0.2 + 0.8 * knob + rng.normal(0.0, 0.004, (experiments, n, points))
        log_rate = (8.0 + shift + slope * (2.5 * metric + 1.5 * metric**2) + effect
                    + rng.normal(0.0, 0.08, (experiments, n, 1)) + rng.normal(0.0, 0.01, (experiments, n, points)))
        return np.exp(log_rate), metric

    (anchor_rates, anchor_metric), (test_rates, test_metric) = arm(0.0), arm(delta)
    band = metric_band(1.0)
    values = np.array([[bd_log_rate(anchor_rates[e, i], anchor_metric[e, i], test_rates[e, i], test_metric[e, i], band)
                        for i in range(n)] for e in range(experiments)])
    intervals = [paired_interval(v) for v in values]
    coverage = np.mean([iv.lo <= delta <= iv.hi for iv in intervals])
    assert 0.92 <= coverage <= 0.98, coverage
    assert values.mean() == pytest.approx(delta, abs=0.01)  # no bias worth the name
    assert values.std() == pytest.approx(0.08 * math.sqrt(2), rel=0.1)  # the arms' noise, the seed's cancelled
