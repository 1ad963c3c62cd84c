"""Comparing two arms over seeds (cilight.evaluation.comparison): paired BD-rates, the paired t-interval of their
log rate ratios, Holm across the tasks of a family and the verdict, against BD-rates computed by hand or directly
with ``bd_rate`` on made-up curves, intervals from ``scipy.stats`` and Holm written out by hand; and the tables
of the from-scratch benchmarks, read from their kept results files."""

from __future__ import annotations

import importlib
import json
import math
import sys

import numpy as np
import pytest
from helpers import ROOT
from scipy import stats

from cilight.evaluation.bdrate import bd_metric, bd_rate, efficient_points, metric_overlap
from cilight.evaluation.comparison import ArmComparison, Spread, compare_arms, holm_by_family, log_ratio, paired_bd_rates
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


# Equal metrics at k times the rate: log-rate shifts by log10 k everywhere, so BD-rate = 100 (k − 1) exactly
# and its log rate ratio is ln k.


def t_interval(log_ratios) -> tuple[float, float, float]:
    """``(lo, hi, p)``: scipy's 95% t-interval of the mean and its one-sample t-test of mean 0."""
    values = np.asarray(log_ratios, dtype=float)
    lo, hi = stats.t.interval(0.95, values.size - 1, loc=values.mean(), scale=stats.sem(values))
    return float(lo), float(hi), float(stats.ttest_1samp(values, 0.0).pvalue)


def holm_by_hand(p_values: list[float]) -> list[float]:
    """Holm's step-down adjustment written out: sort, multiply the i-th smallest by m − i, carry the maximum."""
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted, running = [0.0] * m, 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


@pytest.mark.parametrize("method", ["cubic", "pchip"])
def test_bd_rates_interval_and_holm_by_hand(method):
    k = {0: 0.70, 1: 0.72, 2: 0.69}
    anchor, test = arms(k)
    table = compare_arms(anchor, test, FAMILIES, method=method)
    assert [(c.family, c.task) for c in table] == [(f, t) for f in FAMILIES for t in TASKS]
    expected = [100 * (k[s] - 1) for s in sorted(k)]
    lo, hi, p = t_interval([math.log(k[s]) for s in sorted(k)])
    for c in table:
        assert c.metric == TASKS[c.task]
        assert c.bd_rate.values == pytest.approx(expected, abs=1e-9)
        assert c.bd_rate.mean == pytest.approx(np.mean(expected), abs=1e-9)
        assert c.bd_rate.std == pytest.approx(np.std(expected, ddof=1), abs=1e-9)
        assert c.log_ratios == pytest.approx([math.log(k[s]) for s in sorted(k)], abs=1e-9)
        assert c.overlap == (1.0, 1.0, 1.0) and c.refused == ()
        assert c.any_overlap_bd_rate.values == pytest.approx(expected, abs=1e-9)
        i = c.interval
        assert (i.n, i.lo, i.hi, i.p) == (3, pytest.approx(lo, rel=1e-9), pytest.approx(hi, rel=1e-9),
                                          pytest.approx(p, rel=1e-9))
        assert i.percent == pytest.approx(100 * (np.exp(np.mean(np.log(list(k.values())))) - 1), rel=1e-9)
        # the two tasks of a family have the same p here: Holm doubles it
        assert c.p_adjusted == pytest.approx(holm_by_hand([p, p])[0], rel=1e-9) == pytest.approx(2 * p, rel=1e-9)
        assert c.seeds == 3 and c.every_seed and c.tested and c.saves
        assert c.verdict == f"saves {-i.percent:.1f}% [{-100 * math.expm1(hi):.1f}%, {-100 * math.expm1(lo):.1f}%]"


# The expected words from scipy's interval and p of ln k (see t_interval), doubled by Holm over the two tasks.
@pytest.mark.parametrize(("k", "verdict"), [
    ({0: 0.70, 1: 0.72, 2: 0.69}, "saves 29.7% [25.8%, 33.4%]"),  # p 0.0013, adjusted 0.0025
    ({0: 1.20, 1: 1.25, 2: 1.22}, "costs 22.3% [16.2%, 28.7%]"),
    ({0: 0.99, 1: 1.00, 2: 1.01}, "no saving larger than 2.5% (rate change -2.5% to +2.5%)"),
    ({0: 0.50, 1: 0.90, 2: 1.20}, "inconclusive (rate change -73.1% to +146.7%)"),
    ({0: 0.50, 1: 0.50, 2: 1.20}, "inconclusive (rate change -80.9% to +135.0%)"),  # one seed spends more
    ({0: 0.80, 1: 0.90, 2: 0.85}, "inconclusive (rate change -26.7% to -1.7%)"),  # p 0.041 < 0.05, but 0.081 after Holm
])
def test_the_verdict_is_the_interval_with_holm(k, verdict):
    anchor, test = arms(k)
    lo, hi, p = t_interval([math.log(v) for v in k.values()])
    adjusted = min(1.0, 2 * p)  # two tasks with the same p in each family
    for c in compare_arms(anchor, test, FAMILIES):
        assert c.p_adjusted == pytest.approx(adjusted, rel=1e-9)
        assert c.verdict == verdict
        assert c.saves is (hi < 0 and adjusted < 0.05)
        assert c.as_dict()["verdict"] == verdict


def test_holm_runs_across_the_tasks_of_each_family_apart():
    def made(family: str, task: str, values) -> ArmComparison:
        return ArmComparison(family, task, f"{task}_metric", Spread(values), None, [1.0] * len(values), [])

    rows = [made("j2k", "a", [-30.0, -28.0, -31.0]), made("j2k", "b", [-5.0, 3.0, -9.0]),
            made("j2k", "c", [-12.0, -10.0, -15.0]), made("paper", "a", [-20.0, -25.0, -10.0]),
            made("paper", "b", [-1.0, -2.0, -4.0])]
    raw = [t_interval([math.log1p(v / 100) for v in c.bd_rate.values])[2] for c in rows]
    expected = holm_by_hand(raw[:3]) + holm_by_hand(raw[3:])
    adjusted = holm_by_family(rows)
    assert [c.p_adjusted for c in adjusted] == pytest.approx(expected, rel=1e-9)
    assert [c.interval.p for c in adjusted] == pytest.approx(raw, rel=1e-9)
    assert holm_by_family(adjusted) == adjusted  # idempotent: reading a new results file back changes nothing
    assert all(c.p_adjusted is None for c in rows)  # the input is not changed


def test_comparisons_without_every_seed_count_as_p_1_in_holm_and_decide_nothing():
    def made(task: str, values, refused=()) -> ArmComparison:
        return ArmComparison("j2k", task, f"{task}_metric", Spread(values) if values else None, None,
                             [1.0] * (len(values) + len(refused)), refused)

    rows = [made("a", [-30.0, -28.0, -31.0]), made("b", [-30.0, -28.0], ["bd_rate: the curves share 2.0% of x: y"]),
            made("c", [-12.0, -10.0, -15.0]), made("d", [-50.0]), made("e", [], ["bd_rate: no: z"] * 3),
            made("f", [-100.0, -10.0, -20.0])]  # a diverged fit's −100%: no rate ratio
    adjusted = holm_by_family(rows)
    raw = [t_interval([math.log1p(v / 100) for v in rows[i].bd_rate.values])[2] for i in (0, 2)]
    by_hand = holm_by_hand([raw[0], 1.0, raw[1], 1.0, 1.0, 1.0])  # a refusal never makes the adjustment milder
    assert [c.p_adjusted for c in adjusted] == [pytest.approx(by_hand[0], rel=1e-9), None,
                                                pytest.approx(by_hand[2], rel=1e-9), None, None, None]
    assert by_hand[0] == pytest.approx(6 * raw[0], rel=1e-9)  # six tasks, the smallest p first
    assert holm_by_family(rows[3:]) == rows[3:]  # no test at all: nothing to adjust
    assert [c.tested for c in adjusted] == [True, False, True, False, False, False]
    assert adjusted[1].verdict == "refused for 1 of 3 seeds (the curves share 2.0% of x)"
    assert adjusted[1].interval.n == 2  # over the measured seeds, shown beside the refusal, never a verdict
    assert adjusted[3].verdict == "inconclusive (n = 1: no interval; rate change -50.0%)"
    assert adjusted[4].verdict == "refused for 3 of 3 seeds (no)" and adjusted[4].interval is None
    assert adjusted[5].interval is None and adjusted[5].verdict.startswith("refused: BD-rates -100%")
    assert not any(c.saves for c in (adjusted[1], *adjusted[3:]))


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

    intervals = {c.task: t_interval([math.log1p(direct(anchor[s], test[s], c.task) / 100) for s in seeds])
                 for c in table}
    adjusted = dict(zip(intervals, holm_by_hand([v[2] for v in intervals.values()])))
    assert len({v[2] for v in intervals.values()}) == 2  # the two tasks' raw p-values differ
    for c in table:
        rates = [direct(anchor[s], test[s], c.task) for s in seeds]
        metrics = [direct(anchor[s], test[s], c.task, bd_metric) for s in seeds]
        assert c.bd_rate.values == pytest.approx(rates, rel=1e-12)
        assert c.bd_rate.std == pytest.approx(np.std(rates, ddof=1), rel=1e-12)
        assert c.bd_metric.values == pytest.approx(metrics, rel=1e-12)
        lo, hi, p = intervals[c.task]
        assert (c.interval.lo, c.interval.hi, c.interval.p) == pytest.approx((lo, hi, p), rel=1e-9)
        assert c.p_adjusted == pytest.approx(adjusted[c.task], rel=1e-9)
        # the overlap reported is that of the efficient points, over which BD-rate integrates
        for s, share in zip(seeds, c.overlap):
            (ra, ma), (rt, mt) = anchor[s].curve(c.task, "j2k"), test[s].curve(c.task, "j2k")
            assert share == pytest.approx(metric_overlap(ma[efficient_points(ra, ma)], mt[efficient_points(rt, mt)]))
        assert c.saves == (hi < 0 and adjusted[c.task] < 0.05)


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
        assert not c.every_seed and not c.tested and not c.saves and c.p_adjusted is None  # some seeds decide nothing
        assert c.verdict == "refused for 1 of 3 seeds (the curves share 20.0% of their metric range, below the minimum of 50%)"
        assert len(c.any_overlap_bd_rate.values) == 3
        assert c.any_overlap_bd_rate.values[2] == pytest.approx(bd_rate(
            BASE_RATES * ANCHOR_SCALE[2], metric, BASE_RATES * ANCHOR_SCALE[2] * 0.7, lifted[c.metric], min_overlap=0))


def test_one_seed_has_no_interval_and_decides_nothing():
    anchor, test = arms({0: 0.5})
    (c, *_) = compare_arms({0: anchor[0]}, test, FAMILIES)
    assert c.bd_rate.values == pytest.approx([-50.0]) and c.bd_rate.std == 0.0
    assert c.interval.n == 1 and c.interval.lo is None and c.p_adjusted is None and not c.saves
    assert c.verdict == "inconclusive (n = 1: no interval; rate change -50.0%)"


@pytest.mark.parametrize(("bd_rate_percent", "expected"), [(-50.0, math.log(0.5)), (0.0, 0.0), (100.0, math.log(2.0)),
                                                           (-100.0, None), (-150.0, None), (math.inf, None)])
def test_a_bd_rate_as_a_log_rate_ratio(bd_rate_percent, expected):
    assert log_ratio(bd_rate_percent) == (None if expected is None else pytest.approx(expected, rel=1e-12))


def test_paired_rows_by_family_and_task():
    anchor, test = arms({0: 0.7, 1: 0.8, 2: 0.9})
    paired = paired_bd_rates(anchor, test)
    assert list(paired) == [(f, t) for f in FAMILIES for t in TASKS]
    assert [r.bd_rate for r in paired[("j2k", "segmentation")]] == pytest.approx([-30.0, -20.0, -10.0], abs=1e-9)


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
LAYOUT = ["family", "task", "metric", "bd_rate", "bd_metric", "overlap", "refused", "any_overlap", "log_ratios", "interval",
          "p_adjusted", "alpha", "precision", "verdict"]


def test_the_results_file_layout_round_trips_through_json():
    anchor, test = arms({0: 0.7, 1: 0.72, 2: 0.69})
    test[2] = scaled(0.97 * 0.7, {k: v + 2 / 3 * np.ptp(v) for k, v in BASE_METRICS.items()})  # a refusal
    for c in compare_arms(anchor, test, FAMILIES):
        data = json.loads(json.dumps(c.as_dict()))
        assert list(data) == LAYOUT and list(data["any_overlap"]) == ["bd_rate"]
        assert list(data["bd_rate"]) == ["mean", "std", "values"]
        assert data["interval"] == c.interval.as_dict() and data["verdict"] == c.verdict
        assert ArmComparison.from_dict(data) == c
        assert ArmComparison.from_dict({**data, "learned_noise_floor": 1.0}) == c  # keys added beside it are ignored
        assert ArmComparison.from_dict(data).as_dict() == data


def test_the_old_noise_floor_layout_is_read_and_holm_recomputed():
    anchor, test = arms({0: 0.7, 1: 0.72, 2: 0.69})
    table = compare_arms(anchor, test, FAMILIES)
    old = []
    for c in table:  # the layout of the retired rule: noise keys, no interval, no adjusted p-value, no verdict
        data = c.as_dict()
        old.append({**{k: data[k] for k in LAYOUT[:7]}, "noise_bd_rates": [5.0, -3.0, -7.6],
                    "noise_overlap": [1.0, 1.0, 1.0], "noise_refused": [], "noise_floor": 7.6,
                    "any_overlap": {"bd_rate": data["any_overlap"]["bd_rate"], "noise_floor": 7.6},
                    "saving_beyond_noise": True, "anchor_noise_floor": 7.6, "learned_noise_floor": None})
    read = [ArmComparison.from_dict(e) for e in old]
    assert all(c.p_adjusted is None for c in read) and read[0].verdict.startswith("untested")
    assert holm_by_family(read) == table


def test_saving_is_derived_not_read():
    anchor, test = arms({0: 0.7, 1: 0.72, 2: 0.69})
    data = compare_arms(anchor, test, FAMILIES)[0].as_dict()
    c = ArmComparison.from_dict({**data, "verdict": "costs 1%", "interval": None})
    assert c.saves and c.verdict.startswith("saves")
    with pytest.raises(ValueError, match="no key 'overlap'"):
        ArmComparison.from_dict({k: v for k, v in data.items() if k != "overlap"})


@pytest.mark.parametrize(("change", "message"), [
    ({"refused": ("refused",)}, r"3 BD-rates and 1 refusals for 3 seeds"),
    ({"p_adjusted": 1e-9}, r"p_adjusted=1e-09 below p=.*a Holm adjustment never lowers a p-value"),
    ({"p_adjusted": 1.5}, r"p_adjusted=1.5 below p=.* or above 1"),
    ({"alpha": 0.0}, r"alpha=0.0, precision=5.0; expected alpha in \(0, 1\)"),
    ({"precision": -1.0}, r"precision=-1.0; expected .* a precision ≥ 0"),
])
def test_an_inconsistent_comparison_is_refused(change, message):
    anchor, test = arms({0: 0.7, 1: 0.72, 2: 0.69})
    c = compare_arms(anchor, test, FAMILIES)[0]
    fields = {**c.__dict__, **change}
    with pytest.raises(ValueError, match=message):
        ArmComparison(**fields)


def test_an_adjusted_p_value_without_a_test_is_refused():
    anchor, test = arms({0: 0.7})
    c = compare_arms({0: anchor[0]}, test, FAMILIES)[0]
    with pytest.raises(ValueError, match=r"p_adjusted=0.5 without a test \(BD-rates of 1 of 1 seeds\)"):
        ArmComparison(**{**c.__dict__, "p_adjusted": 0.5})


# ------------------------------------------------------ the from-scratch benchmarks' tables, from their kept JSON
@pytest.fixture(scope="module")
def benchmark_module():
    """``benchmarks.<name>`` (a folder of the checkout, not of the installed package)."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    return lambda name: importlib.import_module(f"benchmarks.{name}")


VERDICTS = ("saves ", "costs ", "no saving larger than ", "inconclusive (", "refused for ", "refused: ")


@pytest.mark.parametrize(("name", "tables"), [("compressibility_bdrate", ["bd_rate_table"]),
                                              ("rate_aware_training", ["bd_rate_table"]),
                                              ("learned_codec", ["bd_rate_table", "headline_table"])])
def test_the_old_results_files_print_intervals_and_verdicts(benchmark_module, name, tables):
    module = benchmark_module(name)
    path = ROOT / "benchmarks" / "results" / f"{name}.json"
    text = path.read_text()
    for table in tables:
        lines = getattr(module, table)(json.loads(text)).splitlines()
        header = [cell.strip() for cell in lines[0].strip("|").split("|")]
        assert "verdict" in header and not any("noise" in cell for cell in header)
        column = header.index("verdict")
        cells = [[cell.strip() for cell in line.strip("|").split(" | ")] for line in lines[2:]]
        assert cells and all(row[column].startswith(VERDICTS) or row[column] == "—" for row in cells)
    assert path.read_text() == text  # read, never written


def test_a_printed_comparison_line_has_the_interval_n_and_verdict(benchmark_module, capsys):
    anchor, test = arms({0: 0.70, 1: 0.72, 2: 0.69})
    table = benchmark_module("arms").compare(anchor, test, ["j2k"], "lr", 0.5, "drop")
    line = capsys.readouterr().out.splitlines()[0]
    assert line.endswith(f"j2k    segmentation: BD-rate % -29.7 [-33.4, -25.8] (n = 3) (overlap 100%–100%): {table[0].verdict}")
