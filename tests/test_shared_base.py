"""``python -m benchmarks.shared_base``: the shared-base protocol as one resumable command.

A tiny comparison runs end to end (base, convergence check, a chunk of further base training, fine-tunes of
both arms from the base, curves, paired statistics, the report), a second invocation reuses everything, and
untrained models' flat curves are refused per task in one line; the statistics of one row group are checked
on made-up curves.
"""

from __future__ import annotations

import importlib
import json
import math
import sys

import numpy as np
import pytest
from helpers import ROOT, TINY

from cilight.evaluation.curves import CurvePoint, RateAccuracyCurves
from cilight.evaluation.paired import holm


@pytest.fixture(scope="module")
def shared_base():
    """The script's module (``benchmarks`` is a folder of the checkout, not of the installed package)."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    return importlib.import_module("benchmarks.shared_base")


# -- one row group on made-up curves -----------------------------------------------------------------
TASKS = {"segmentation": "segmentation_miou", "disparity": "disparity_irmse", "reconstruction": "reconstruction_psnr"}
RATES = np.array([1000.0, 2000.0, 4000.0, 8000.0])
METRICS = {"segmentation_miou": np.array([0.20, 0.32, 0.40, 0.44]), "disparity_irmse": np.array([0.2, 0.3, 0.36, 0.40]),
           "reconstruction_psnr": np.array([18.0, 20.0, 21.5, 22.8])}
REFERENCE = {"segmentation_miou": 0.45, "disparity_irmse": 0.41, "reconstruction_psnr": 23.0}


def curves(scale: float, flat: str | None = None, families=("j2k",), png: float | None = None,
           short: str | tuple[str, ...] | None = None) -> RateAccuracyCurves:
    """``families`` each the made-up curve at ``scale`` times its rates (the metric ``flat`` does not move, the metric
    ``short`` (one or several) starts at 68% of its uncompressed value, short of the band's low end), and a lossless
    point ``png`` at ``png`` bits if given."""
    metrics = {k: np.full(4, v[-1]) if k == flat else v for k, v in METRICS.items()}
    for key in (short,) if isinstance(short, str) else short or ():
        metrics[key] = np.array([0.68 * REFERENCE[key], *metrics[key][1:]])
    points = tuple(CurvePoint(f, f"{f}@{i}", float(r), r / 8192, (float(r),), {k: float(v[i]) for k, v in metrics.items()})
                   for f in families for i, r in enumerate(RATES * scale))
    if png is not None:
        points += (CurvePoint("png", "png", png, png / 8192, (png,), dict(REFERENCE)),)
    return RateAccuracyCurves(points, dict(REFERENCE), dict(TASKS), 8192, 16)


def test_a_task_the_curves_cannot_compare_is_refused_in_one_line_and_counts_in_holm(shared_base):
    anchors = [curves(1.0), curves(1.1), curves(0.95)]
    tests = [curves(0.80), curves(0.86), curves(0.78, flat="disparity_irmse")]
    rows, _ = shared_base.compare_group(anchors, tests, "j2k", "j2k", ["seed 0", "seed 1", "seed 2"],
                                        {"reconstruction_psnr": 14.0})
    by_task = {r["task"]: r for r in rows}
    assert list(by_task) == list(TASKS)
    refused = by_task["disparity"]
    assert refused["refused"] and "\n" not in refused["refused"] and refused["refused"].startswith("'seed 2'")
    assert refused["verdict"] == f"refused: {refused['refused']}"
    assert [level["level"] for level in refused["levels"]] == [0.8, 0.9, 0.95]  # recorded beside, never a headline
    for task in ("segmentation", "reconstruction"):
        row = by_task[task]
        assert row["refused"] is None and row["n"] == 3 and row["verdict"].startswith("saves")
        expected = [math.log(t / a) for a, t in ((1.0, 0.80), (1.1, 0.86), (0.95, 0.78))]
        assert row["log_ratios"] == pytest.approx(expected, abs=1e-9)  # equal metrics at scaled rates
    # Holm across all three tasks, the refused one counting as p = 1
    adjusted = holm([by_task["segmentation"]["p"], 1.0, by_task["reconstruction"]["p"]])
    assert by_task["segmentation"]["p_adjusted"] == pytest.approx(adjusted[0])
    assert by_task["reconstruction"]["p_adjusted"] == pytest.approx(adjusted[2])
    rule = shared_base.pair_rule([{**r, "test": "lr", "anchor": "benchmark"} for r in rows], 3, 10)
    assert rule["widest"] == pytest.approx(max(shared_base.half_width(by_task[t]) for t in ("segmentation", "reconstruction")))
    assert rule["asks_for_more"] == (rule["widest"] > shared_base.HALF_WIDTH)
    # the same rule read on post-hoc rows, in words: every row over the limit named, none when inside
    wide = {**rule, "wider_than_limit": ["lr j2k vs benchmark j2k, segmentation"], "widest": 7.04}
    assert shared_base.post_hoc_precision(wide).endswith("wider than ±5: lr j2k vs benchmark j2k, segmentation.")
    assert "±7.0 points at 3 pairs" in shared_base.post_hoc_precision(wide)
    assert shared_base.post_hoc_precision({**rule, "wider_than_limit": [], "widest": 1.25}).endswith("±1.2 points, inside ±5.")
    assert shared_base.post_hoc_precision(None) == "No post-hoc JPEG2000 interval was measured."


def lr_experiment(shared_base, tmp_path, options) -> tuple:
    """``(args, result)`` of an ``lr`` comparison of three pairs on made-up curves, its statistics computed: the test
    arm's curves are the anchor's at 0.80, 0.78 and 0.82 of its rates; ``options(arm, seed)`` more :func:`curves`
    options."""
    args = shared_base.parse_args(["--comparison", "lr", "--pairs", "3", "--out", str(tmp_path / "shared_base_lr.json"),
                                   "--docs", str(tmp_path / "docs")])
    experiment = shared_base.Experiment(args)
    result = experiment.result
    for seed, (anchor, test) in enumerate(((1.0, 0.80), (1.1, 0.86), (0.95, 0.78))):
        for arm, scale in (("benchmark", anchor), ("lr", test)):
            result["curves"][f"{arm}_s{seed}"] = curves(scale, families=("j2k", "jpeg"), **options(arm, seed)).as_dict()
            result["arms"].setdefault(arm, {})[str(seed)] = [f"{arm}_s{seed}"]
    result["floors"] = {"reconstruction_psnr": 14.0}
    experiment.statistics([0, 1, 2])
    return args, result


def test_post_hoc_readings_share_one_holm_family_with_every_task_of_their_group(shared_base, tmp_path):
    # two tasks refused in each group: each post-hoc p is adjusted over all three tasks, never over fewer
    both = ("segmentation_miou", "disparity_irmse")
    _, result = lr_experiment(shared_base, tmp_path, lambda arm, seed: {"png": 5e4, "short": both if (arm, seed) ==
                                                                        ("benchmark", 1) else None})
    for family in ("j2k", "jpeg"):
        rows = [r for r in result["rows"] if r["family"] == family]
        assert [r["task"] for r in rows if r["refused"]] == ["segmentation", "disparity"]
        post_hoc = [r for r in result["post_hoc_rows"] if r["family"] == family]
        assert [(r["task"], r["band"]) for r in post_hoc] == [("segmentation", [0.7, 0.95]), ("disparity", [0.7, 0.95])]
        (measured,) = [r["p"] for r in rows if not r["refused"]]
        expected = holm([measured, *(r["p"] for r in post_hoc)])[1:]
        assert [r["p_adjusted"] for r in post_hoc] == pytest.approx(expected)


def test_statistics_dose_and_the_report_of_a_comparison_that_concludes(shared_base, tmp_path):
    from benchmarks.report import machine

    args, result = lr_experiment(shared_base, tmp_path, lambda arm, seed: {"png": 60e3 if arm == "benchmark" else
                                                                          45e3 + 1e3 * seed})
    assert [r["verdict"][:5] for r in result["rows"]] == ["saves"] * 6
    assert result["dose"]["lr"]["reached"] is True and result["dose"]["lr"]["percent"][0] == pytest.approx(-25.0)
    assert result["pair_rule"]["asks_for_more"] == (result["pair_rule"]["widest"] > 5.0)
    result.update(status="done", wall_seconds=3600.0, machine=machine())
    page = shared_base.write_report(result, args.docs).read_text()
    assert "| lr | j2k | benchmark | j2k | segmentation (miou) | 3 | -" in page and "## Every pair" in page
    assert "the dose check (≤ -15%) is **reached**" in page and "| seed 0 | seed 1 | seed 2 |" in page
    assert (args.docs / "lr" / "lr_vs_benchmark" / "compare_jpeg_vs_jpeg_disparity.png").is_file()
    args.out.write_text(json.dumps(result))
    index = shared_base.write_index(args.docs, tmp_path).read_text()
    assert "done, 3 pairs: segmentation: saves" in index and "| [remote](remote.md) |" in index


def test_a_refused_task_is_read_again_over_the_band_its_curves_cover_and_labelled_post_hoc(shared_base, tmp_path):
    # one anchor curve (seed 1) starts at 68% of the uncompressed IRMSE
    args, result = lr_experiment(shared_base, tmp_path, lambda arm, seed: {
        "png": 5e4, "short": "disparity_irmse" if (arm, seed) == ("benchmark", 1) else None})
    refused = [r["task"] for r in result["rows"] if r["refused"]]
    assert refused == ["disparity", "disparity"]  # j2k and jpeg: the protocol's band stays refused
    j2k, jpeg = result["post_hoc_rows"]
    assert j2k["task"] == "disparity" and j2k["band"] == [0.7, 0.95] and j2k["family"] == "j2k" and jpeg["family"] == "jpeg"
    assert j2k["bands"][0] == pytest.approx((0.7 * 0.41, 0.95 * 0.41))
    assert j2k["verdict"].startswith("saves")  # the test curves are the anchors' at lower rates
    assert [j2k["log_ratios"][i] for i in (0, 2)] == pytest.approx([math.log(0.80), math.log(0.78 / 0.95)], abs=1e-9)
    measured = [r["p"] for r in result["rows"] if r["family"] == "j2k" and not r["refused"]]
    assert j2k["p_adjusted"] == pytest.approx(holm([*measured, j2k["p"]])[-1])
    assert shared_base.POST_HOC_BAND in result["changes_after_seeing_data"]
    # the report lists them apart, and --table recomputes them from the saved curves alone
    result.update(status="done", wall_seconds=60.0, post_hoc_rows=[], rows=[])
    args.out.write_text(json.dumps({**result, "machine": {"cpu": "test", "cores": 2, "gpu": None, "torch": "x",
                                                          "cilight": "y"}}))
    assert shared_base.main(["--comparison", "lr", "--table", "--out", str(args.out), "--docs", str(args.docs)]) == 0
    saved = json.loads(args.out.read_text())
    assert [r["band"] for r in saved["post_hoc_rows"]] == [[0.7, 0.95], [0.7, 0.95]] and saved["machine"]["cpu"] == "test"
    page = (args.docs / "lr.md").read_text()
    assert "## Secondary: refused tasks read again (chosen after seeing data)" in page
    assert "| disparity (irmse), band 70–95% |" in page
    assert "disparity: refused (post hoc over 70–95%: saves" in (args.docs / "README.md").read_text()


def test_a_comparison_measured_on_some_arms_first_says_which_are_missing(shared_base, tmp_path, capsys):
    remote = shared_base.COMPARISONS["remote"].restricted(["benchmark", "lr"])
    assert remote.arms == ("benchmark", "lr") and not remote.complete
    assert {g[0] for g in remote.groups()} == {"benchmark", "lr"} and {g[3] for g in remote.groups()} == {"image-j2k",
                                                                                                          "image-jpeg"}
    learned = shared_base.COMPARISONS["learned"].restricted(["benchmark", "lr", "learned"])
    assert learned.groups() == [("learned", "learned", "benchmark", "j2k"), ("learned", "learned", "lr", "j2k")]
    assert shared_base.COMPARISONS["lr"].restricted(None).complete
    for comparison, arms in (("learned", ["benchmark", "lr"]), ("remote", ["lr", "codec_noise"]), ("lr", ["lr"])):
        with pytest.raises(SystemExit):
            shared_base.parse_args(["--comparison", comparison, "--arms", *arms])
        assert "--arms" in capsys.readouterr().err
    result = {"comparison": "remote", "arms_measured": ["benchmark", "lr", "proxy_bits", "codec_noise"]}
    assert "**not yet: learned**" in shared_base.missing_arms(result)[0]
    assert shared_base.missing_arms({"comparison": "lr", "arms_measured": ["benchmark", "lr"]}) == []


def test_the_learned_headline_is_the_anchor_least_favourable_to_it(shared_base):
    rows = [{"task": "segmentation", "anchor": a, "refused": None if mean is not None else "no band",
             "interval": {"mean": mean}, "verdict": f"verdict {a}"}
            for a, mean in (("benchmark", -0.4), ("lr", -0.1), ("proxy_bits", None), ("codec_noise", -0.3))]
    (headline,) = shared_base.learned_headlines(rows)
    assert headline == {"task": "segmentation", "anchor": "lr", "verdict": "verdict lr", "refused_anchors": ["proxy_bits"],
                        "post_hoc": False}
    # refused against every anchor: the same rule over the post-hoc readings, labelled so
    refused = [{**r, "refused": "no band"} for r in rows]
    post_hoc = [{"task": "segmentation", "anchor": a, "interval": {"mean": mean}, "verdict": f"at least {a}",
                 "meetings": ["test above"]} for a, mean in (("benchmark", -2.0), ("codec_noise", -1.5))]
    (headline,) = shared_base.learned_headlines(refused, post_hoc)
    assert headline["anchor"] == "codec_noise" and headline["post_hoc"] is True
    assert headline["verdict"] == "refused against every anchor (post hoc where the curves meet: at least codec_noise)"
    assert shared_base.learned_headlines(refused)[0]["verdict"] == "refused against every anchor"


def learned_like(scale: float, above: bool = True) -> RateAccuracyCurves:
    """A learned codec's curve: four points at 1,000–4,000 bits times ``scale`` whose metrics all lie above (or, with
    ``above`` False, below) the made-up anchor's, for every task."""
    top = {k: v[-1] for k, v in METRICS.items()}
    metrics = {k: (top[k] + (0.001 if k != "reconstruction_psnr" else 0.05) * np.arange(1, 5)) if above else
               (METRICS[k][0] - (0.04 if k != "reconstruction_psnr" else 1.0) * np.arange(4, 0, -1)) for k in METRICS}
    rates = np.array([1000.0, 2000.0, 3000.0, 4000.0]) * scale * (1 if above else 0.1)
    points = tuple(CurvePoint("learned", f"learned@{i}", float(r), r / 8192, (float(r),),
                              {k: float(v[i]) for k, v in metrics.items()}) for i, r in enumerate(rates))
    return RateAccuracyCurves(points, dict(REFERENCE), dict(TASKS), 8192, 16)


def test_curves_that_share_no_band_are_read_where_they_meet_with_verdicts_only_bounds_support(shared_base):
    anchors = [curves(1.0), curves(1.1), curves(0.95)]
    tests = [learned_like(0.9), learned_like(1.0), learned_like(1.2)]  # cheaper than the anchor's top, more accurate
    labels = ["seed 0", "seed 1", "seed 2"]
    rows, post_hoc = shared_base.compare_group(anchors, tests, "learned", "j2k", labels, {"reconstruction_psnr": 14.0})
    assert all(r["refused"] for r in rows)  # above 95% of the uncompressed metric: the fixed band is not reached
    assert [r["task"] for r in post_hoc] == list(TASKS) and all(r["meetings"] == ["test above"] * 3 for r in post_hoc)
    # the bound: the test's least accurate point against the anchor's most accurate one, both read off the points
    expected = [math.log(1000.0 * t / (8000.0 * a)) for a, t in ((1.0, 0.9), (1.1, 1.0), (0.95, 1.2))]
    for row in post_hoc:
        assert row["log_ratios"] == pytest.approx(expected, abs=1e-9)
        assert row["verdict"].startswith(f"saves at least {-row['interval']['hi_percent']:.1f}% (3 of 3 pairs")
    assert [r["p_adjusted"] for r in post_hoc] == pytest.approx(holm([r["p"] for r in post_hoc]))
    named = [{**r, "test": "learned", "anchor": "benchmark"} for r in post_hoc]
    assert "where the curves meet" in shared_base.rows_table(named) and "≤ -" in shared_base.pairs_table(named)
    # wholly below and dearer: costs at least; below and cheaper ("apart"): no reading at all
    below = [learned_like(s, above=False) for s in (1.0, 1.1, 1.2)]
    cheap_anchors = [curves(0.01 * s) for s in (1.0, 1.1, 0.95)]
    _, costs = shared_base.compare_group(cheap_anchors, below, "learned", "j2k", labels, {"reconstruction_psnr": 14.0})
    assert costs and all(r["meetings"] == ["test below"] * 3 and r["verdict"].startswith("costs at least") for r in costs)
    assert shared_base.compare_group(anchors, below, "learned", "j2k", labels, {"reconstruction_psnr": 14.0})[1] == []


def test_the_protocol_is_in_the_docstring_and_the_families_follow_it(shared_base):
    assert shared_base.PROTOCOL.startswith("1. **Base.**") and "7. **Dose.**" in shared_base.PROTOCOL
    families = shared_base.families(12)
    assert families["j2k"] == "j2k=jpeg2000:bpe=0.25,0.313,0.393,0.492,0.617,0.774,0.97,1.22,1.52,1.91,2.39,3"
    assert families["jpeg"] == "jpeg=jpeg:quality=95,87,79,70,62,54,46,38,30,21,13,5"
    assert families["image-jpeg"] == "image-jpeg=image:jpeg:quality=95,87,79,70,62,54,46,38,30,21,13,5"
    assert families["image-j2k"].startswith("image-j2k=image:jpeg2000:bpe=0.1,") and families["image-j2k"].endswith(",2")
    # the changes made after seeing data, the same in every comparison: secondary, labelled readings
    common = (shared_base.POST_HOC_BAND, shared_base.WHERE_CURVES_MEET, shared_base.POST_HOC_PAIRS)
    assert all(shared_base.CHANGES[name][:3] == common for name in shared_base.COMPARISONS)
    # the wider λ grid only where the learned arm is measured, and its runs named as the first grid's
    assert [n for n in shared_base.COMPARISONS if shared_base.CHANGES[n][3:] == (shared_base.WIDER_LAMBDA_GRID,)] == [
        "learned", "remote"]
    assert shared_base.LAMBDAS == (1e-6, 3e-6, 1e-5, 3e-5, 1e-4, 1e-3, 1e-2, 1e-1)


# -- the command, tiny --------------------------------------------------------------------------------
def tiny_train_args() -> str:
    """TINY without the epochs (the script sets them), checkpoints only (no per-epoch sweeps)."""
    options = [a for i, a in enumerate(TINY) if a != "--trainer.max_epochs" and TINY[i - 1] != "--trainer.max_epochs"]
    return " ".join([*options, "--config", str(ROOT / "configs" / "callbacks" / "none.yaml")])


@pytest.mark.slow
def test_a_tiny_comparison_runs_resumes_and_writes_its_report(shared_base, tmp_path):
    out, docs, work = tmp_path / "results" / "shared_base_lr.json", tmp_path / "docs", tmp_path / "work"
    argv = ["--comparison", "lr", "--pairs", "2", "--base-epochs", "1", "--chunk-epochs", "1", "--base-cap", "2",
            "--finetune-epochs", "1", "--num-test", "4", "--rates", "3", "--tolerance", "0", "--work", str(work),
            "--out", str(out), "--docs", str(docs), "--train-args", tiny_train_args()]
    assert shared_base.main(argv) == 0
    result = json.loads(out.read_text())
    assert result["protocol"] == shared_base.PROTOCOL
    assert result["changes_after_seeing_data"] == list(shared_base.CHANGES["lr"])
    assert result["settings"]["pairs"] == 2 and result["machine"]["cores"] >= 1 and result["status"] == "done"
    # tolerance 0: never converged, so one chunk of further training, then the cap
    base = result["bases"]["base"]
    assert base["runs"] == ["base", "base_more1"] and base["epochs"] == 2 and base["converged"] is False
    assert [c["epochs"] for c in base["checks"]] == [[1, 2]] and base["checks"][0]["metric"] == "segmentation_miou"
    assert result["pairs"] == [0, 1] and result["arms"] == {"benchmark": {"0": ["benchmark_s0"], "1": ["benchmark_s1"]},
                                                              "lr": {"0": ["lr_s0"], "1": ["lr_s1"]}}
    assert result["runs"]["lr_s0"]["base"] == result["runs"]["benchmark_s0"]["base"]  # eq 6 gains the rate term: init_from adapts
    assert result["invocations"][0]["trained"] == ["base", "base_more1", "benchmark_s0", "lr_s0", "benchmark_s1", "lr_s1"]
    # every family and task: a paired comparison over both pairs, or one line saying why not
    rows = result["rows"]
    assert sorted((r["family"], r["task"]) for r in rows) == sorted((f, t) for f in ("j2k", "jpeg")
                                                                   for t in ("segmentation", "disparity", "reconstruction"))
    for r in rows:
        assert r["n"] == 2 and r["labels"] == ["seed 0", "seed 1"]
        if r["refused"]:
            assert "\n" not in r["refused"] and r["verdict"] == f"refused: {r['refused']}"
        else:
            assert len(r["log_ratios"]) == 2 and r["interval"]["n"] == 2
    assert len(result["dose"]["lr"]["percent"]) == 2 and "reached" in result["dose"]["lr"]
    assert result["pair_rule"]["pairs"] == 2
    page = (docs / "lr.md").read_text()
    assert "## Protocol (written before any result)" in page and "1. **Base.**" in page and "| test arm |" in page
    assert "NOT converged" in page and (docs / "lr" / "lr_vs_benchmark" / "compare_j2k_vs_j2k_segmentation.png").is_file()
    assert "[lr](lr.md)" in (docs / "README.md").read_text()

    # a second invocation trains nothing, measures nothing and writes no checkpoint
    checkpoints = {p: p.stat().st_mtime_ns for p in work.rglob("*.ckpt")}
    folders = sorted(work.iterdir())
    assert shared_base.main(argv) == 0
    again = json.loads(out.read_text())
    assert again["invocations"][-1]["trained"] == [] and again["invocations"][-1]["measured"] == []
    assert {p: p.stat().st_mtime_ns for p in work.rglob("*.ckpt")} == checkpoints and sorted(work.iterdir()) == folders
    assert again["rows"] == rows and again["wall_seconds"] > result["wall_seconds"]
    page = (docs / "lr.md").read_text()
    assert "over 2 invocation(s)" in page

    # --table: the page again from the JSON alone
    (docs / "lr.md").unlink()
    assert shared_base.main([*argv, "--table"]) == 0
    assert (docs / "lr.md").read_text() == page
