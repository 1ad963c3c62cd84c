"""BD-rate and BD-metric: against the bjontegaard package, an independent integration, hand cases, refusals."""

from __future__ import annotations

import bjontegaard
import numpy as np
import pytest
from scipy.integrate import quad
from scipy.interpolate import PchipInterpolator

from cilight.evaluation import bd_metric, bd_rate, metric_overlap
from cilight.evaluation.bdrate import METHODS, efficient_points


def random_curve(rng, n=None):
    n = n or int(rng.integers(4, 9))
    rates = np.sort(rng.uniform(50, 5000, n))
    while np.any(np.diff(rates) <= 1):
        rates = np.sort(rng.uniform(50, 5000, n))
    metric = np.sort(rng.uniform(0.2, 0.8, n))
    return rates, metric + np.linspace(0, 1e-3, n)  # strictly rising


@pytest.mark.parametrize("method", METHODS)
def test_agrees_with_the_bjontegaard_package_on_random_monotone_curves(method):
    rng = np.random.default_rng(1)
    checked = 0
    for _ in range(200):
        anchor, test = random_curve(rng), random_curve(rng)
        test = (test[0], 0.5 * test[1] + 0.5 * np.interp(test[1], [0, 1], [anchor[1].min(), anchor[1].max()]))
        if metric_overlap(anchor[1], test[1]) < 0.5:
            continue
        order = rng.permutation(len(test[0]))  # any order in; sorted by rate inside
        ours = bd_rate(*anchor, test[0][order], test[1][order], method=method)
        theirs = bjontegaard.bd_rate(*anchor, *test, method=method, require_matching_points=False, min_overlap=0)
        assert abs(ours - theirs) <= 1e-6 * max(1.0, abs(theirs))
        ours_m = bd_metric(*anchor, *test, method=method, min_overlap=0)
        theirs_m = bjontegaard.bd_psnr(*anchor, *test, method=method, require_matching_points=False, min_overlap=0)
        assert abs(ours_m - theirs_m) <= 1e-9
        checked += 1
    assert checked > 50


def independent_bd_rate(anchor, test, method):
    """VCEG-M33 from its definition: log-rate over metric, integrated over the common metric range."""
    lo, hi = max(anchor[1].min(), test[1].min()), min(anchor[1].max(), test[1].max())
    areas = []
    for rates, metric in (anchor, test):
        if method == "cubic":
            poly = np.polynomial.Polynomial.fit(metric, np.log10(rates), 3)
            areas.append(quad(poly, lo, hi)[0])
        else:
            areas.append(quad(PchipInterpolator(metric, np.log10(rates)), lo, hi)[0])
    return (10 ** ((areas[1] - areas[0]) / (hi - lo)) - 1) * 100


@pytest.mark.parametrize("method", ["cubic", "pchip"])
def test_matches_an_independent_integration(method):
    rng = np.random.default_rng(7)
    for _ in range(20):
        anchor = random_curve(rng, 5)
        test = (anchor[0] * rng.uniform(0.6, 1.1, 5), anchor[1] + rng.uniform(-0.01, 0.01))
        test = (np.sort(test[0]), test[1])
        assert bd_rate(*anchor, *test, method=method) == pytest.approx(independent_bd_rate(anchor, test, method),
                                                                         rel=1e-6, abs=1e-6)


@pytest.mark.parametrize("method", METHODS)
def test_hand_cases(method):
    rates, metric = np.array([100.0, 200, 400, 800, 1600]), np.array([0.30, 0.42, 0.50, 0.55, 0.57])
    assert bd_rate(rates, metric, rates, metric, method=method) == pytest.approx(0.0, abs=1e-9)
    assert bd_rate(rates, metric, rates / 2, metric, method=method) == pytest.approx(-50.0, abs=1e-6)
    assert bd_rate(rates, metric, rates * 1.2, metric, method=method) == pytest.approx(20.0, abs=1e-6)
    assert bd_metric(rates, metric, rates, metric + 0.03, method=method) == pytest.approx(0.03, abs=1e-9)


def test_refusals_name_the_problem():
    rates, metric = [100, 200, 400, 800], [0.3, 0.4, 0.5, 0.55]
    cases = [
        ((rates[:3], metric[:3], rates, metric), "at least 4"),
        ((rates, metric[:3], rates, metric), "4 rates but 3"),
        ((rates, [0.3, 0.4, np.nan, 0.55], rates, metric), "non-finite"),
        ((rates, metric, [0, 200, 400, 800], metric), "rates ≤ 0"),
        ((rates, [0.3, 0.5, 0.4, 0.55], rates, metric), "does not rise strictly"),
        ((rates, [0.3, 0.4, 0.4, 0.55], rates, metric), "does not rise strictly"),
        ((rates, metric, rates, [0.53, 0.54, 0.56, 0.6]), "share 6.7% of their metric range"),
        ((rates, metric, rates, [0.0, 0.05, 0.1, 0.2]), "do not overlap"),
    ]
    for args, expected in cases:
        with pytest.raises(ValueError, match=expected):
            bd_rate(*args)
    with pytest.raises(ValueError, match="method='linear'"):
        bd_rate(rates, metric, rates, metric, method="linear")
    with pytest.raises(ValueError, match="repeats a rate"):
        bd_metric([100, 100, 400, 800], metric, rates, metric)
    # a sliver is computed when asked, and a non-monotone metric is fine for the metric delta
    assert np.isfinite(bd_rate(rates, metric, rates, [0.53, 0.54, 0.56, 0.6], min_overlap=0))
    with pytest.raises(ValueError, match="do not overlap"):  # even when any overlap is accepted
        bd_rate(rates, metric, rates, [0.0, 0.05, 0.1, 0.2], min_overlap=0)
    assert np.isfinite(bd_metric(rates, [0.3, 0.5, 0.4, 0.55], rates, metric))


def test_overlap():
    assert metric_overlap([0, 1], [0, 1]) == 1.0
    assert metric_overlap([0, 1], [0.5, 1.5]) == pytest.approx(1 / 3)
    assert metric_overlap([0, 1], [2, 3]) == 0.0


def test_dominated_points_are_dropped_when_asked():
    # PNG-like point first: JPEG q95 spends more for the same metric, q90 spends less for more
    rates = np.array([52000.0, 54000, 42000, 36000, 32000, 27000, 23000])
    metric = np.array([0.4366, 0.4365, 0.4366, 0.4363, 0.4359, 0.4344, 0.4316])
    kept = efficient_points(rates, metric)
    assert sorted(rates[kept].tolist()) == [23000, 27000, 32000, 36000, 42000]
    with pytest.raises(ValueError, match="does not rise strictly"):
        bd_rate(rates, metric, rates / 2, metric)
    assert bd_rate(rates, metric, rates / 2, metric, dominated="drop") == pytest.approx(-50.0, abs=1e-4)  # flat: ill-posed cubic
    assert bd_metric(rates, metric, rates, metric + 0.01, dominated="drop") == pytest.approx(0.01, abs=1e-9)
    with pytest.raises(ValueError, match="keeps 3 of its 5 points"):
        bd_rate(rates[:5], metric[:5], rates[:5], metric[:5], dominated="drop")
    with pytest.raises(ValueError, match="dominated='keep'"):
        bd_rate(rates, metric, rates, metric, dominated="keep")
    # against a brute-force definition of domination
    rng = np.random.default_rng(0)
    for _ in range(50):
        r, m = rng.integers(1, 20, 12).astype(float), rng.integers(0, 10, 12).astype(float)
        brute = {i for i in range(12) if not any((r[j] <= r[i] and m[j] >= m[i]) and (r[j], -m[j], j) < (r[i], -m[i], i)
                                                 for j in range(12) if j != i)}
        assert set(efficient_points(r, m).tolist()) == brute
