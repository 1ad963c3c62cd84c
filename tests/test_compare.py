"""``evaluate.py compare``: two arms of paired checkpoints, their curves, the paired statistics, the table,
the files, and one line for each refusal.

The measured run uses the tiny checkpoints, whose flat untrained curves are refused in one line (a
comparison needs curves that rise with rate). The full report is checked on curves of known effect,
saved where ``evaluate.py`` caches each checkpoint's curves (``<run>/curves/curves.json``, reused
when its provenance matches the request), against :func:`compare_pairs` on the same curves.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from helpers import run_entry_point

from cilight.ci_models.checkpoints import datamodule_hparams, read_checkpoint
from cilight.evaluate_cli import main
from cilight.evaluation import CurvePoint, RateAccuracyCurves, compare_pairs, compare_tasks, parse_families, read_refused
from cilight.evaluation.checkpoint_curves import file_sha256

FAMILY = "j=jpeg:quality=95,75,50,25,10"
TRIVIAL_PSNR = 12.0


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_checkpoint) -> dict[str, Path]:
    """Four run folders, anchor and test arm of seeds 0 and 1, each with a copy of the tiny checkpoint."""
    root = tmp_path_factory.mktemp("arms")
    paths = {}
    for arm in ("anchor", "test"):
        for seed in (0, 1):
            run = root / f"{arm}{seed}"
            (run / "checkpoints").mkdir(parents=True)
            shutil.copy(tiny_checkpoint, run / "checkpoints" / "last.ckpt")
            (run / "config.yaml").write_text(yaml.safe_dump({"seed_everything": seed}))
            (run / "test_metrics.json").write_text(json.dumps({"trivial_baselines": {"reconstruction_psnr": TRIVIAL_PSNR}}))
            paths[f"{arm}{seed}"] = run / "checkpoints" / "last.ckpt"
    return paths


def known_curves(ckpt: Path, log_shift: float, seed: int, shares=(0.97, 0.9, 0.75, 0.55, 0.3)) -> RateAccuracyCurves:
    """Curves of the checkpoint's tasks that rise with rate, the rate scaled by ``exp(log_shift)``, each point at
    ``shares`` of the way to the uncompressed metric, saved as the cache ``evaluate.py`` reads for ``FAMILY`` on
    all test images."""
    rng = np.random.default_rng(seed)
    rates = np.array([60_000.0, 30_000, 18_000, 10_000, 5_000]) * np.exp(log_shift + rng.normal(0, 0.02))
    shares = np.asarray(shares)
    reference = {"segmentation_miou": 0.5, "disparity_irmse": 0.4, "reconstruction_psnr": 22.0}
    def metric(key, share):
        floor = TRIVIAL_PSNR if key == "reconstruction_psnr" else 0.0
        return floor + share * (reference[key] - floor)
    family = parse_families(FAMILY)[0]
    points = tuple(CurvePoint(family.name, str(p), float(r), float(r) / 4096, (float(r),),
                              {k: metric(k, s) for k in reference}) for p, r, s in zip(family.points, rates, shares))
    state = read_checkpoint(ckpt)
    provenance = {"checkpoint_sha256": file_sha256(ckpt), "families": [str(family)], "images": None,
                  "num_test": None, "data": json.loads(json.dumps(datamodule_hparams(state), default=str))}
    curves = RateAccuracyCurves(points, reference, {"segmentation": "segmentation_miou", "disparity": "disparity_irmse",
                                                    "reconstruction": "reconstruction_psnr"}, 4096, 4, provenance)
    curves.write(ckpt.resolve().parent.parent / "curves")
    return curves


def test_measured_tiny_checkpoints_are_compared_or_refused_in_one_line(runs, tmp_path):
    proc = run_entry_point(main, "evaluate.py", ["compare", "--anchor", runs["anchor0"], "--test", runs["test0"],
                                                 "--codecs", FAMILY, "--images", "2", "--remeasure",
                                                 "--out", tmp_path / "out"], tmp_path)
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]  # besides the progress bars
    if proc.returncode == 0:  # a checkpoint whose curves happen to rise
        assert (tmp_path / "out" / "compare.json").is_file() and not errors
    else:
        assert proc.returncode == 2 and len(errors) == 1, proc.stderr[-2000:]
        assert errors[0].startswith("error: 'pair 1', task ") and "expected at least 2 whose metric rises" in errors[0]


def test_the_report_is_the_paired_statistics_of_the_curves(runs, tmp_path):
    anchors = [known_curves(runs[f"anchor{s}"], 0.0, s) for s in (0, 1)]
    tests = [known_curves(runs[f"test{s}"], np.log(0.8), 10 + s) for s in (0, 1)]
    out = tmp_path / "out"
    proc = run_entry_point(main, "evaluate.py", ["compare", "--anchor", runs["anchor1"], runs["anchor0"], "--test",
                                                 runs["test0"], runs["test1"], "--pair-by", "seed", "--codecs", FAMILY,
                                                 "--out", out], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    expected = compare_pairs(anchors, tests, "j", floors={"reconstruction_psnr": TRIVIAL_PSNR},
                             labels=["seed 0", "seed 1"])
    saved = json.loads((out / "compare.json").read_text())
    assert [r["task"] for r in saved["rows"]] == ["segmentation", "disparity", "reconstruction"]
    for row, want in zip(saved["rows"], expected):
        assert row["labels"] == ["seed 0", "seed 1"] and row["n"] == 2
        np.testing.assert_allclose(row["log_ratios"], want.log_ratios, rtol=1e-9)
        assert row["verdict"] == want.verdict
        assert -25 < row["interval"]["percent"] < -15  # the known 20% saving, within the rate noise
    assert saved["floors"] == {"reconstruction_psnr": TRIVIAL_PSNR}
    assert saved["pairs"][0] == {"label": "seed 0", "anchor": str(runs["anchor0"]), "test": str(runs["test0"])}
    assert "| j | j | segmentation | segmentation_miou | 2 |" in proc.stdout
    assert sorted(p.name for p in out.glob("*.png")) == [f"compare_j_vs_j_{t}.png"
                                                         for t in sorted(("segmentation", "disparity", "reconstruction"))]
    assert (out / "compare.csv").read_text().count("\n") == 4


def test_post_hoc_refuses_one_task_and_reads_it_again_apart(runs, tmp_path):
    anchors = [known_curves(runs[f"anchor{s}"], 0.0, s) for s in (0, 1)]
    # the test arm's least accurate point sits at 65% of the way: the band 50–95% is not covered
    tests = [known_curves(runs[f"test{s}"], np.log(0.8), 10 + s, shares=(0.97, 0.9, 0.8, 0.72, 0.65)) for s in (0, 1)]
    argv = ["compare", "--anchor", runs["anchor0"], runs["anchor1"], "--test", runs["test0"], runs["test1"],
            "--codecs", FAMILY, "--out", tmp_path / "out"]
    proc = run_entry_point(main, "evaluate.py", argv, tmp_path)
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert proc.returncode == 2 and len(errors) == 1 and "does not cover the band" in errors[0], proc.stderr[-2000:]
    proc = run_entry_point(main, "evaluate.py", [*argv, "--post-hoc"], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "no task compared over the fixed band" in proc.stdout and "read again after seeing the curves" in proc.stdout
    saved = json.loads((tmp_path / "out" / "compare.json").read_text())
    assert saved["rows"] == [] and saved["post_hoc"] and len(saved["refused"]) == 3
    assert saved["refused"][0].startswith("j vs j, segmentation: 'pair 1', task 'segmentation'")
    options = {"floors": {"reconstruction_psnr": TRIVIAL_PSNR}, "labels": ["pair 1", "pair 2"]}
    outcome = compare_tasks(anchors, tests, "j", **options)
    expected = read_refused(anchors, tests, "j", outcome, **options)
    assert [r["task"] for r in saved["post_hoc"]] == list(expected)
    for row, want in zip(saved["post_hoc"], expected.values()):
        assert row["band"] == [0.65, 0.95] == list(want.band)  # moved up to the test curves' first point
        np.testing.assert_allclose(row["log_ratios"], want.comparison.log_ratios, rtol=1e-9)
        assert row["verdict"] == want.verdict and row["p_adjusted"] == pytest.approx(want.comparison.p_adjusted)
    assert "post hoc over 65–95%" in proc.stdout
    csv_rows = (tmp_path / "out" / "compare.csv").read_text().splitlines()
    assert len(csv_rows) == 4 and all(line.endswith("post hoc over 65–95%") for line in csv_rows[1:])


@pytest.mark.parametrize(("argv", "names"), [
    (["--anchor", "A0", "A1", "--test", "B0"], "--anchor has 2 checkpoints and --test 1"),
    (["--anchor", "A0", "A0", "--test", "B0", "B1"], "--anchor lists a checkpoint twice"),
    (["--anchor", "A0", "--test", "B0", "--band", "0.9", "0.5"], "--band 0.9 0.5"),
    (["--anchor", "A0", "--test", "B0", "--levels", "0", "0.9"], "--levels 0 0.9"),
    (["--anchor", "A0", "--test", "B0", "--alpha", "1.5"], "--alpha 1.5"),
    (["--anchor", "A0", "--test", "MISSING.ckpt"], "--test MISSING.ckpt: no such file"),
    (["--anchor", "A0", "--test", "B0", "--codecs", "jpeg:qualty=90"], "did you mean 'quality'"),
    (["--anchor", "A0", "A1", "--test", "B0", "B0COPY", "--pair-by", "seed"], "--test has two runs of seed 0"),
    (["--anchor", "A0", "--test", "B0", "--remote", "jpeg:quality=90"], "--remote jpeg=jpeg:quality=90: expected families"),
], ids=["unequal-arms", "duplicate", "band", "levels", "alpha", "missing", "codec-option", "seed-twice", "remote-features"])
def test_refusals_are_one_line(runs, tmp_path, argv, names):
    copy = tmp_path / "copy" / "checkpoints" / "last.ckpt"
    copy.parent.mkdir(parents=True)
    shutil.copy(runs["test0"], copy)
    shutil.copy(runs["test0"].parents[1] / "config.yaml", copy.parents[1] / "config.yaml")
    shown = {"A0": runs["anchor0"], "A1": runs["anchor1"], "B0": runs["test0"], "B0COPY": copy}
    proc = run_entry_point(main, "evaluate.py", ["compare", *[str(shown.get(a, a)) for a in argv]], tmp_path)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: "), proc.stderr[-2000:]
    assert names in lines[0], lines[0]


def test_a_pair_measured_on_another_test_split_is_refused(runs, tmp_path):
    other = tmp_path / "other" / "checkpoints" / "last.ckpt"
    other.parent.mkdir(parents=True)
    state = torch.load(runs["test0"], map_location="cpu", weights_only=True)
    state["datamodule_hyper_parameters"] = {**state["datamodule_hyper_parameters"], "seed": 7}
    torch.save(state, other)
    known_curves(runs["anchor0"], 0.0, 0)
    known_curves(other, np.log(0.8), 1)
    proc = run_entry_point(main, "evaluate.py", ["compare", "--anchor", runs["anchor0"], "--test", other,
                                                 "--codecs", FAMILY, "--out", tmp_path / "out"], tmp_path)
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert proc.returncode == 2 and len(errors) == 1, proc.stderr[-2000:]
    assert errors[0].startswith("error: pair 1: the test checkpoint's test data") and "'seed': 7" in errors[0]
    assert not (tmp_path / "out").exists()
