"""Comparing two arms over seeds (cilight.evaluation.comparison): paired BD-rates, the noise floor and the
decision rule, against BD-rates computed by hand or directly with ``bd_rate`` on made-up curves."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

from cilight.evaluation.bdrate import bd_metric, bd_rate, efficient_points, metric_overlap
from cilight.evaluation.comparison import ArmComparison, Spread, compare_arms, noise_floor, paired_bd_rates, seed_noise
from cilight.evaluation.curves import CurvePoint, RateAccuracyCurves

TASKS = {"segmentation": "segmentation_miou", "reconstruction": "reconstruction_psnr"}
BASE_RATES = np.array([800.0, 1500.0, 2600.0, 4200.0, 7000.0])
BASE_METRICS = {"segmentation_miou": np.array([0.20, 0.31, 0.40, 0.46, 0.50]),
                "reconstruction_psnr": np.array([18.0, 21.5, 24.0, 26.0, 27.2])}
FAMILIES = ("j2k", "paper")
ANCHOR_SCALE = {0: 1.0, 1: 1.05, 2: 0.97}  # seed-to-seed differences of the anchor arm's rates


def curves(rates: dict[str, np.ndarray], metrics: dict[str, dict[str, np.ndarray]]) -> RateAccuracyCurves:
    """Curves of families ``rates`` (bits per image) and ``metrics`` (family → metric key → values)."""
    points = tuple(CurvePoint(family, f"{family}@{i}", float(r), float(r) / 1024, (float(r),),
                              {k: float(v[i]) for k, v in metrics[family].items()})
                   for family, family_rates in rates.items() for i, r in enumerate(family_rates))
    return RateAccuracyCurves(points, {k: float(v[-1]) for k, v in BASE_METRICS.items()}, dict(TASKS), 1024, 8)


def scaled(scale: float, metrics: dict[str, np.ndarray] | None = None) -> RateAccuracyCurves:
    """Every family: the base curve with its rates multiplied by ``scale``."""
    metrics = metrics or BASE_METRICS
    return curves(dict.fromkeys(FAMILIES, BASE_RATES * scale), dict.fromkeys(FAMILIES, metrics))


def arms(test_scale: dict[int, float]) -> tuple[dict, dict]:
    """``(anchor, test)``: seed s of the test arm spends ``test_scale[s]`` of the anchor's bits at every metric."""
    anchor = {s: scaled(c) for s, c in ANCHOR_SCALE.items()}
    test = {s: scaled(ANCHOR_SCALE[s] * k) for s, k in test_scale.items()}
    return anchor, test


# Equal metrics at k times the rate: log-rate shifts by log10 k everywhere, so BD-rate = 100 (k − 1) exactly.
HAND_FLOOR = max(abs(100 * (ANCHOR_SCALE[b] / ANCHOR_SCALE[a] - 1)) for a, b in itertools.combinations(ANCHOR_SCALE, 2))


@pytest.mark.parametrize("method", ["cubic", "pchip"])
def test_bd_rates_noise_floor_and_spread_by_hand(method):
    k = {0: 0.70, 1: 0.72, 2: 0.69}
    anchor, test = arms(k)
    table = compare_arms(anchor, test, FAMILIES, method=method)
    assert [(c.family, c.task) for c in table] == [(f, t) for f in FAMILIES for t in TASKS]
    expected = [100 * (k[s] - 1) for s in sorted(k)]
    assert HAND_FLOOR == pytest.approx(100 * (1 - 0.97 / 1.05))  # the pair of seeds 1 and 2
    for c in table:
        assert c.metric == TASKS[c.task]
        assert c.bd_rate.values == pytest.approx(expected, abs=1e-9)
        assert c.bd_rate.mean == pytest.approx(np.mean(expected), abs=1e-9)
        assert c.bd_rate.std == pytest.approx(np.std(expected, ddof=1), abs=1e-9)
        assert c.noise_bd_rates == pytest.approx([5.0, -3.0, 100 * (0.97 / 1.05 - 1)], abs=1e-9)  # pairs 0–1, 0–2, 1–2
        assert c.noise_floor == pytest.approx(HAND_FLOOR, abs=1e-9)
        assert c.overlap == (1.0, 1.0, 1.0) and c.refused == () and c.noise_refused == ()
        assert c.any_overlap_bd_rate.values == pytest.approx(expected, abs=1e-9)
        assert c.any_overlap_noise_floor == pytest.approx(HAND_FLOOR, abs=1e-9)
        assert c.seeds == 3 and c.every_seed and c.saving_beyond_noise


@pytest.mark.parametrize(("k", "beyond"), [
    ({0: 0.70, 1: 0.72, 2: 0.69}, True),   # −29.7% on average, floor 7.6
    ({0: 0.97, 1: 0.96, 2: 0.98}, False),  # −3% on average: inside the floor
    ({0: 0.50, 1: 0.50, 2: 1.20}, False),  # −26.7% on average, but one seed spends more
    ({0: 0.93, 1: 0.93, 2: 0.925}, False),  # −7.2% on average: just inside the floor of 7.6
    ({0: 0.92, 1: 0.93, 2: 0.92}, True),  # −7.7%: just beyond it
])
def test_a_saving_counts_only_beyond_the_noise_floor_with_every_seed_negative(k, beyond):
    anchor, test = arms(k)
    mean = 100 * (np.mean(list(k.values())) - 1)
    for c in compare_arms(anchor, test, FAMILIES):
        assert c.bd_rate.mean == pytest.approx(mean, abs=1e-9)
        assert c.saving_beyond_noise is beyond
        assert c.as_dict()["saving_beyond_noise"] is beyond


def test_against_bd_rate_called_directly_on_curves_with_dominated_points():
    rng = np.random.default_rng(3)
    families = ("j2k",)

    def noisy(scale: float) -> RateAccuracyCurves:
        rates = BASE_RATES * scale * rng.uniform(0.9, 1.1, BASE_RATES.size)
        metrics = {k: v + rng.normal(0, 0.01 * np.ptp(v), v.size) for k, v in BASE_METRICS.items()}
        rates = np.append(rates, rates[-1] * 1.3)  # a sixth point that spends more for less: dominated
        metrics = {k: np.append(v, v[-1] - 0.02 * np.ptp(v)) for k, v in metrics.items()}
        return curves({"j2k": rates}, {"j2k": metrics})

    seeds = (0, 1, 2, 3)
    anchor = {s: noisy(1.0) for s in seeds}
    test = {s: noisy(0.8) for s in seeds}
    options = {"method": "pchip", "min_overlap": 0.5, "dominated": "drop"}
    table = compare_arms(anchor, test, families, **options)

    def direct(a: RateAccuracyCurves, t: RateAccuracyCurves, task: str, delta=bd_rate, **overrides):
        (ra, ma), (rt, mt) = a.curve(task, "j2k"), t.curve(task, "j2k")
        return delta(ra, ma, rt, mt, **{**options, **overrides})

    for c in table:
        rates = [direct(anchor[s], test[s], c.task) for s in seeds]
        metrics = [direct(anchor[s], test[s], c.task, bd_metric) for s in seeds]
        noise = [direct(anchor[a], anchor[b], c.task) for a, b in itertools.combinations(seeds, 2)]
        assert c.bd_rate.values == pytest.approx(rates, rel=1e-12)
        assert c.bd_rate.mean == pytest.approx(np.mean(rates), rel=1e-12)
        assert c.bd_rate.std == pytest.approx(np.std(rates, ddof=1), rel=1e-12)
        assert c.bd_metric.values == pytest.approx(metrics, rel=1e-12)
        assert c.noise_bd_rates == pytest.approx(noise, rel=1e-12)
        assert c.noise_floor == pytest.approx(np.max(np.abs(noise)), rel=1e-12)
        # the overlap reported is that of the efficient points, over which BD-rate integrates
        for s, share in zip(seeds, c.overlap):
            (ra, ma), (rt, mt) = anchor[s].curve(c.task, "j2k"), test[s].curve(c.task, "j2k")
            assert share == pytest.approx(metric_overlap(ma[efficient_points(ra, ma)], mt[efficient_points(rt, mt)]))
        assert c.saving_beyond_noise == (all(r < 0 for r in rates) and np.mean(rates) < -np.max(np.abs(noise)))


def test_a_bd_rate_over_too_little_overlap_is_refused_and_shown_over_any_overlap():
    k = {0: 0.7, 1: 0.7, 2: 0.7}
    anchor, test = arms(k)
    # seed 2's test models score higher everywhere: its metric range overlaps the anchor's by 1/3 only
    lifted = {key: v + 2 / 3 * np.ptp(v) for key, v in BASE_METRICS.items()}
    test[2] = scaled(ANCHOR_SCALE[2] * 0.7, lifted)
    table = compare_arms(anchor, test, FAMILIES)
    for c in table:
        metric = BASE_METRICS[c.metric]
        assert c.overlap == pytest.approx((1.0, 1.0, metric_overlap(metric, lifted[c.metric])))
        assert c.overlap[2] == pytest.approx(1 / 5)  # |A ∩ T| / |A ∪ T| = (1/3) / (5/3)
        assert c.bd_rate.values == pytest.approx([-30.0, -30.0], abs=1e-9)
        assert len(c.refused) == 1 and "below the minimum of 50%" in c.refused[0]
        assert not c.every_seed and not c.saving_beyond_noise  # a mean over some seeds decides nothing
        assert len(c.any_overlap_bd_rate.values) == 3
        assert c.any_overlap_bd_rate.values[2] == pytest.approx(bd_rate(
            BASE_RATES * ANCHOR_SCALE[2], metric, BASE_RATES * ANCHOR_SCALE[2] * 0.7, lifted[c.metric], min_overlap=0))


def test_one_seed_has_no_noise_floor_and_decides_nothing():
    anchor, test = arms({0: 0.5})
    anchor = {0: anchor[0]}
    (c, *_) = compare_arms(anchor, test, FAMILIES)
    assert c.bd_rate.values == pytest.approx([-50.0]) and c.bd_rate.std == 0.0
    assert c.noise_bd_rates == () and c.noise_floor is None and not c.saving_beyond_noise
    assert seed_noise(anchor) == {}


def test_paired_and_noise_rows_by_family_and_task():
    anchor, test = arms({0: 0.7, 1: 0.8, 2: 0.9})
    paired = paired_bd_rates(anchor, test)
    noise = seed_noise(anchor)
    assert list(paired) == list(noise) == [(f, t) for f in FAMILIES for t in TASKS]
    assert [r.bd_rate for r in paired[("j2k", "segmentation")]] == pytest.approx([-30.0, -20.0, -10.0], abs=1e-9)
    assert noise_floor(noise[("paper", "reconstruction")]) == pytest.approx(HAND_FLOOR, abs=1e-9)


def test_noise_floor_of_refused_rows_is_none():
    anchor, _ = arms({})
    rows = seed_noise(anchor)[("j2k", "segmentation")]
    assert noise_floor([]) is None
    assert noise_floor([type(r)(r.test, r.task, r.metric, r.family, None, None, r.overlap, "refused") for r in rows]) is None
    assert noise_floor(rows[:2]) == pytest.approx(5.0, abs=1e-9)


def test_families_are_compared_in_the_order_given():
    anchor, test = arms({0: 0.7, 1: 0.7, 2: 0.7})
    assert [c.family for c in compare_arms(anchor, test, ["paper"])] == ["paper", "paper"]
    assert [c.family for c in compare_arms(anchor, test, ["paper", "j2k"])][::2] == ["paper", "j2k"]


@pytest.mark.parametrize(("anchor_seeds", "test_seeds", "message"), [
    ((0, 1, 2), (0, 1), r"anchor seeds \[0, 1, 2\] and test seeds \[0, 1\]"),
    ((0, 1), (1, 2), "expected the same seeds in both arms"),
])
def test_arms_must_share_their_seeds(anchor_seeds, test_seeds, message):
    anchor, test = arms({0: 0.7, 1: 0.7, 2: 0.7})
    with pytest.raises(ValueError, match=message):
        compare_arms({s: anchor[s] for s in anchor_seeds}, {s: test[s] for s in test_seeds}, FAMILIES)


def test_a_family_the_anchor_was_not_measured_on_is_one_line():
    anchor, test = arms({0: 0.7, 1: 0.7, 2: 0.7})
    with pytest.raises(ValueError, match="no BD-rate of family 'wide'.*measured on j2k, paper"):
        compare_arms(anchor, test, ["wide"])
    with pytest.raises(ValueError, match="no anchor curves"):
        compare_arms({}, {}, FAMILIES)


# ------------------------------------------------------------------------------------------- Spread
@pytest.mark.parametrize("values", [[-12.5], [-30.0, -28.0, -31.0], [1e-3, 2.5, -7.25, 1e9]])
def test_spread_is_the_mean_and_sample_standard_deviation(values):
    spread = Spread(values)
    assert spread.values == tuple(values)
    assert spread.mean == pytest.approx(np.mean(values), rel=1e-12)
    assert spread.std == pytest.approx(np.std(values, ddof=1) if len(values) > 1 else 0.0, rel=1e-12)
    assert spread.as_dict() == {"mean": spread.mean, "std": spread.std, "values": list(values)}
    assert Spread.from_dict(json.loads(json.dumps(spread.as_dict()))) == spread


def test_spread_of_no_values_is_refused():
    with pytest.raises(ValueError, match="no values"):
        Spread(())


# ------------------------------------------------------------------------------ results-file layout
LAYOUT = ["family", "task", "metric", "bd_rate", "bd_metric", "overlap", "refused", "noise_bd_rates", "noise_overlap",
          "noise_refused", "noise_floor", "any_overlap", "saving_beyond_noise"]


def test_the_results_file_layout_round_trips_through_json():
    anchor, test = arms({0: 0.7, 1: 0.72, 2: 0.69})
    anchor[2] = scaled(0.97, {k: v + 2 / 3 * np.ptp(v) for k, v in BASE_METRICS.items()})  # refusals in the noise
    for c in compare_arms(anchor, test, FAMILIES):
        data = json.loads(json.dumps(c.as_dict()))
        assert list(data) == LAYOUT and list(data["any_overlap"]) == ["bd_rate", "noise_floor"]
        assert list(data["bd_rate"]) == ["mean", "std", "values"]
        assert ArmComparison.from_dict(data) == c
        assert ArmComparison.from_dict({**data, "learned_noise_floor": 1.0}) == c  # keys added beside it are ignored
        assert ArmComparison.from_dict(data).as_dict() == data


def test_saving_beyond_noise_is_derived_not_read():
    anchor, test = arms({0: 0.7, 1: 0.72, 2: 0.69})
    data = compare_arms(anchor, test, FAMILIES)[0].as_dict()
    assert ArmComparison.from_dict({**data, "saving_beyond_noise": False}).saving_beyond_noise
    with pytest.raises(ValueError, match="no key 'noise_floor'"):
        ArmComparison.from_dict({k: v for k, v in data.items() if k != "noise_floor"})


@pytest.mark.parametrize(("other", "floor", "beyond"), [(None, HAND_FLOOR, True), (3.0, HAND_FLOOR, True),
                                                         (40.0, 40.0, False)])
def test_with_floor_takes_the_larger_floor(other, floor, beyond):
    anchor, test = arms({0: 0.7, 1: 0.72, 2: 0.69})
    c = compare_arms(anchor, test, FAMILIES)[0].with_floor(other)
    assert c.noise_floor == pytest.approx(floor) and c.saving_beyond_noise is beyond


def test_a_floor_that_was_never_measured_stays_unknown():
    anchor, test = arms({0: 0.7})
    c = compare_arms({0: anchor[0]}, test, FAMILIES)[0]
    assert c.with_floor(None).noise_floor is None
    assert c.with_floor(2.0).noise_floor == 2.0 and c.with_floor(2.0).saving_beyond_noise


@pytest.mark.parametrize(("change", "message"), [
    ({"refused": ("refused",)}, r"3 BD-rates and 1 refusals for 3 seeds"),
    ({"noise_overlap": (1.0,)}, r"3 noise BD-rates but 1 overlaps"),
    ({"noise_floor": -1.0}, r"noise_floor=-1.0; expected a magnitude ≥ 0"),
])
def test_an_inconsistent_comparison_is_refused(change, message):
    anchor, test = arms({0: 0.7, 1: 0.72, 2: 0.69})
    c = compare_arms(anchor, test, FAMILIES)[0]
    fields = {**c.__dict__, **change}
    with pytest.raises(ValueError, match=message):
        ArmComparison(**fields)
