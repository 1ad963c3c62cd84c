"""Rate–accuracy curves: measurement against a hand loop, files, families, BD-rate rows, the CLI end to end."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from helpers import tiny_model

from cilight.ci_models.proxy import ProxyCoder
from cilight.codecs import get_codec
from cilight.datamodules import SyntheticStreets
from cilight.errors import ConfigError
from cilight.evaluation import CurvePoint, RateAccuracyCurves, bd_rate_rows, measure_curves, parse_families


@pytest.fixture(scope="module")
def batches():
    data = SyntheticStreets(height=64, width=128, num_train=4, num_val=2, num_test=6, batch_size=4)
    data.setup("test")
    return list(data.test_dataloader())  # two batches: 4 + 2 images


def test_families_are_parsed_named_and_checked():
    paper, wide, unnamed = parse_families(["paper=png+jpeg:quality=95,90,85,80", "wide=jpeg:quality=60,40,20",
                                           "jpeg2000:bpe=0.5,1"])
    assert paper.name == "paper" and [str(p) for p in paper.points] == [
        "png", "jpeg:quality=95", "jpeg:quality=90", "jpeg:quality=85", "jpeg:quality=80"]
    assert len(wide.points) == 3 and unnamed.name == "jpeg2000"
    for bad, expected in (("x=", "expected operating points"), ("jpg:quality=9", "did you mean"),
                          (["jpeg:quality=90", "jpeg:quality=80"], "share a name"),
                          ("a=png+png", "twice"), ("a b=png", "name")):
        with pytest.raises(ConfigError, match=expected):
            parse_families(bad)


def test_curves_match_a_hand_loop(batches):
    model = tiny_model(["layer2", "layer3"], num_classes=10)
    families = parse_families(["paper=png+jpeg:quality=90,50", "proxy:step=8,64"])
    curves = measure_curves(model, batches, families, progress=False)
    assert [p.point for p in curves.points] == ["png", "jpeg:quality=90", "jpeg:quality=50", "proxy:step=8",
                                                "proxy:step=64"]
    assert curves.images == 6 and curves.tasks["disparity"] == "disparity_irmse"
    with torch.no_grad():
        feats = [model.features(b["image"]) for b in batches]
        elements = sum(int(f[0].numel()) for f in feats[0])
        assert curves.elements == elements
        for point, quality in zip(curves.points[:3], (None, 90, 50)):
            codec = get_codec("png") if quality is None else get_codec("jpeg", quality=quality)
            metrics, bits = model.task_metrics(sync=False), np.zeros(2)
            for batch, fs in zip(batches, feats):
                decoded = []
                for s, f in enumerate(fs):
                    data = [codec.encode(x) for x in f]
                    bits[s] += sum(8 * len(d) for d in data)
                    decoded.append(torch.stack([torch.from_numpy(codec.decode(d)) for d in data]))
                metrics.update(model.decoder(decoded), batch)
            expected = {k: float(v) for k, v in metrics.compute().items()}
            assert point.stream_bits == pytest.approx(tuple(bits / 6), rel=1e-12)
            assert point.bits_per_image == pytest.approx(bits.sum() / 6) and point.bits_per_element == pytest.approx(
                bits.sum() / 6 / elements)
            assert point.metrics == pytest.approx(expected, rel=1e-6, abs=1e-6)
        # the proxy predicts the bits of the same container: header + side info + codestream
        proxy = ProxyCoder()
        predicted = sum(float(proxy.code_at(proxy.prepare(f), 8)[1].sum()) for fs in feats for f in fs) / 6
        assert curves.points[3].bits_per_image == pytest.approx(predicted)
    # lossless after the 8-bit Q-layer: PNG scores what the Q-layer alone scores
    assert curves.points[0].metrics == pytest.approx(curves.reference, rel=1e-5, abs=1e-5)
    bits = [p.bits_per_image for p in curves.points]
    assert bits[0] > bits[1] > bits[2] and bits[3] > bits[4]


def test_an_unreachable_operating_point_is_named(batches):
    with pytest.raises(ConfigError, match=r"operating point jpeg2000:bpe=0.01 of curve family 'j2k': target_bits="):
        measure_curves(tiny_model(["layer3"], num_classes=10), batches[:1], parse_families("j2k=jpeg2000:bpe=0.01,1"),
                       progress=False)


def test_curves_files_round_trip(batches, tmp_path):
    model = tiny_model(["layer3"], num_classes=10)
    curves = measure_curves(model, batches[:1], parse_families("png+jpeg:quality=80"), progress=False,
                            provenance={"checkpoint": "x.ckpt"})
    json_path, csv_path = curves.write(tmp_path)
    again = RateAccuracyCurves.read(json_path)
    assert again == curves
    rows = csv_path.read_text().splitlines()
    assert len(rows) == 1 + 1 + 2 and rows[1].startswith("uncompressed,q-layer")
    json_path.write_text("{}")
    with pytest.raises(ConfigError, match="not a curves file"):
        RateAccuracyCurves.read(json_path)


def synthetic_curves(scale: float, shift: float = 0.0) -> RateAccuracyCurves:
    rates = np.array([1000.0, 2000, 4000, 8000, 16000])
    miou = np.array([0.30, 0.40, 0.46, 0.49, 0.50]) + shift
    points = tuple(CurvePoint("paper", f"p{i}", scale * r, scale * r / 1e4, (scale * r,),
                              {"segmentation_miou": m, "disparity_irmse": 2 * m})
                   for i, (r, m) in enumerate(zip(rates, miou)))
    return RateAccuracyCurves(points, {"segmentation_miou": 0.5, "disparity_irmse": 1.0},
                              {"segmentation": "segmentation_miou", "disparity": "disparity_irmse"}, 10_000, 8)


def test_bd_rate_rows_per_task_and_family():
    anchor = synthetic_curves(1.0)
    rows = bd_rate_rows(anchor, {"half": synthetic_curves(0.5), "sliver": synthetic_curves(1.0, shift=0.15)})
    half = [r for r in rows if r.test == "half"]
    assert [r.task for r in half] == ["segmentation", "disparity"]
    assert all(r.bd_rate == pytest.approx(-50.0) and r.overlap == pytest.approx(1.0) and not r.note for r in half)
    sliver = [r for r in rows if r.test == "sliver"]
    assert all(r.bd_rate is None and "sliver" in r.note for r in sliver)
    with pytest.raises(ConfigError, match="not measured on curve family 'paper'"):
        other = RateAccuracyCurves(tuple(CurvePoint("wide", p.point, p.bits_per_image, p.bits_per_element,
                                                    p.stream_bits, p.metrics) for p in anchor.points),
                                   anchor.reference, anchor.tasks, anchor.elements, anchor.images)
        bd_rate_rows(anchor, {"other": other})


def test_restrict_keeps_only_the_named_families():
    paper = synthetic_curves(1.0)
    wide = tuple(CurvePoint("wide", p.point, 2 * p.bits_per_image, p.bits_per_element, p.stream_bits, p.metrics)
                 for p in paper.points)
    both = RateAccuracyCurves(paper.points + wide, paper.reference, paper.tasks, paper.elements, paper.images)
    only = both.restrict("wide")
    assert only.families == ("wide",) and only.points == wide
    assert (only.reference, only.tasks, only.elements, only.images) == (both.reference, both.tasks, 10_000, 8)
    assert both.restrict("wide", "paper").points == wide + paper.points
    with pytest.raises(ConfigError, match="no curve family 'j2k'"):
        both.restrict("j2k")


@pytest.mark.slow
def test_evaluate_curves_and_bdrate_end_to_end(tiny_checkpoint, tmp_path, capsys):
    from cilight.evaluate_cli import main

    # a second "model": the same run with its weights nudged, in a run folder of its own
    other = tmp_path / "other" / "checkpoints" / "last.ckpt"
    other.parent.mkdir(parents=True)
    state = torch.load(tiny_checkpoint, map_location="cpu", weights_only=True)
    generator = torch.Generator().manual_seed(0)
    for key, value in state["state_dict"].items():
        if value.is_floating_point() and "decoder" in key and value.numel() > 1:
            value.add_(0.02 * torch.randn(value.shape, generator=generator) * value.std().nan_to_num())
    torch.save(state, other)
    anchor = tmp_path / "anchor" / "checkpoints" / "last.ckpt"
    anchor.parent.mkdir(parents=True)
    shutil.copy(tiny_checkpoint, anchor)

    codecs = ["paper=png+jpeg:quality=95,60,30,10", "j2k=jpeg2000:bpe=0.5,1,2,4"]
    assert main(["curves", "--ckpt", str(anchor), "--codecs", *codecs, "--images", "2"]) == 0
    out = capsys.readouterr()
    assert "wrote" in out.out and "jpeg2000:bpe=1" in out.out and "disparity_irmse" in out.out
    assert "rate–accuracy curves" in out.err  # the progress bar
    saved = json.loads((tmp_path / "anchor" / "curves" / "curves.json").read_text())
    assert saved["provenance"]["checkpoint_sha256"] and saved["provenance"]["families"] == [
        "paper=png+jpeg:quality=95+jpeg:quality=60+jpeg:quality=30+jpeg:quality=10",
        "j2k=jpeg2000:bpe=0.5+jpeg2000:bpe=1+jpeg2000:bpe=2+jpeg2000:bpe=4"]
    assert {"git", "cilight", "data", "images"} <= set(saved["provenance"])

    same = tmp_path / "same" / "checkpoints" / "last.ckpt"
    same.parent.mkdir(parents=True)
    shutil.copy(tiny_checkpoint, same)
    assert main(["bdrate", "--anchor", str(anchor), "--test", str(other), str(same), "--codecs", *codecs,
                 "--images", "2", "--out", str(tmp_path / "bd"), "--min-overlap", "0"]) == 0
    out = capsys.readouterr().out
    assert "reused" in out and "BD-rate against anchor" in out
    table = json.loads((tmp_path / "bd" / "bdrate.json").read_text())
    rows = table["rows"]
    assert {(r["test"], r["family"], r["task"]) for r in rows} == {
        (t, f, k) for t in ("other", "same") for f in ("paper", "j2k") for k in ("segmentation", "disparity",
                                                                                   "reconstruction")}
    for r in rows:
        assert (r["bd_rate"] is None) == ("bd_rate:" in r["note"])
        if r["test"] == "same" and r["bd_rate"] is not None:
            assert r["bd_rate"] == pytest.approx(0.0, abs=1e-9) and r["overlap"] == pytest.approx(1.0)
        if r["test"] == "same":  # identical curves: no metric delta (the rates are distinct, so it is computed)
            assert r["bd_metric"] == pytest.approx(0.0, abs=1e-9)
    # a model trained for one epoch on 8 images has curves that do not rise with rate: refused, and said why
    assert all("does not rise strictly" in r["note"] for r in rows if r["bd_rate"] is None)
    for name in ("bdrate.csv", "rd_segmentation.png", "rd_disparity.png", "rd_reconstruction.png"):
        assert (tmp_path / "bd" / name).stat().st_size > 0
    assert set(table["curves"]) == {"anchor", "other", "same"}


def test_bdrate_cli_refuses_bad_input(tiny_checkpoint, tmp_path):
    from cilight.evaluate_cli import main

    assert main(["bdrate", "--anchor", str(tiny_checkpoint), "--test", str(tmp_path / "none.ckpt")]) == 2
    assert main(["bdrate", "--anchor", str(tiny_checkpoint), "--test", str(tiny_checkpoint), "--min-overlap", "2"]) == 2
    assert main(["curves", "--ckpt", str(tiny_checkpoint), "--codecs", "jpeg:qualty=9"]) == 2


def test_tables_and_plots_go_to_an_active_wandb_run_only(tmp_path, monkeypatch):
    import wandb

    from cilight.evaluation.report import bd_rate_wandb_table, log_to_active_run, plot_rate_accuracy

    rows = bd_rate_rows(synthetic_curves(1.0), {"half": synthetic_curves(0.5)})
    plot = plot_rate_accuracy({"a": synthetic_curves(1.0), "half": synthetic_curves(0.5)}, "segmentation",
                              tmp_path / "rd.png")
    assert plot.stat().st_size > 1000
    assert wandb.run is None and not log_to_active_run({"bdrate/rd": plot}, {"bdrate/table": bd_rate_wandb_table(rows)})
    logged = []
    monkeypatch.setattr(wandb, "run", object())  # a run is active (as inside a W&B-launched job)
    monkeypatch.setattr(wandb, "log", logged.append)
    assert log_to_active_run({"bdrate/rd": plot}, {"bdrate/table": bd_rate_wandb_table(rows)})
    (payload,) = logged
    assert isinstance(payload["bdrate/rd"], wandb.Image) and isinstance(payload["bdrate/table"], wandb.Table)
    assert payload["bdrate/table"].columns[:3] == ["test", "family", "task"] and len(payload["bdrate/table"].data) == 2
