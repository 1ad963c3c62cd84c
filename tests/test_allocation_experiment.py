"""The §VI-A experiment: rate-tuple sampling, sweeps through the cloud half, the callback, evaluate.py."""

from __future__ import annotations

import json
import warnings

import lightning.pytorch as pl
import numpy as np
import pytest
import torch

from cilight.ci_models import MultiTaskCI
from cilight.ci_models.proxy import ProxyCoder
from cilight.codecs import CodecCoder, get_codec, stream_coder
from cilight.datamodules import SyntheticStreets
from cilight.errors import ConfigError
from cilight.evaluation import RateAccuracyCurves
from cilight.evaluation.callbacks import RateDistortionCallback
from cilight.evaluation.experiment import METHODS, UNREFINED, run_allocation, scan_budget_line, split_batches
from cilight.evaluation.sweep import LOCAL_SPREAD, RateSweep, local_rate_tuples, rate_sweep, sample_rate_tuples


def test_rate_tuples_cover_every_budget_window_and_respect_floors():
    floors, budgets = [1700.0, 1600.0], [8000.0, 16000.0, 32000.0]
    tuples = sample_rate_tuples(60, floors, budgets, seed=1)
    totals = tuples.sum(1)
    assert tuples.shape == (60, 2) and (tuples >= np.array(floors) - 1e-9).all()
    assert totals.min() >= 0.5 * budgets[0] - 1e-6 and totals.max() <= 1.5 * budgets[-1] + 1e-6
    for b in budgets:  # at least count / (2 × budgets) points in each fitting window
        assert ((totals >= 0.75 * b) & (totals <= 1.25 * b)).sum() >= 10
    assert np.array_equal(tuples, sample_rate_tuples(60, floors, budgets, seed=1))
    with pytest.raises(ConfigError, match="too small.*use budgets above 4400"):
        sample_rate_tuples(10, floors, [3000.0])
    with pytest.raises(ConfigError, match="use at least 30 tuples"):
        sample_rate_tuples(20, floors, budgets)


def test_local_rate_tuples_stay_near_the_allocation():
    floors, allocation = np.array([500.0, 400.0, 300.0]), np.array([8000.0, 6000.0, 4000.0])
    tuples = local_rate_tuples(200, allocation, floors, seed=3)
    totals = tuples.sum(1)
    assert tuples.shape == (200, 3) and (tuples >= floors).all()
    assert totals.min() >= 0.75 * 18000 - 1e-6 and totals.max() <= 1.25 * 18000 + 1e-6
    offsets = tuples / totals[:, None] - allocation / allocation.sum()
    assert np.abs(offsets).max() <= LOCAL_SPREAD + 1e-9 and np.abs(offsets).max() > 0.8 * LOCAL_SPREAD
    assert np.array_equal(tuples, local_rate_tuples(200, allocation, floors, seed=3))
    # a stream the first allocation starves is kept at its floor
    assert (local_rate_tuples(50, [18000.0, 0.0, 0.0], floors)[:, 1:] >= floors[1:]).all()
    with pytest.raises(ConfigError, match="3 finite rates"):
        local_rate_tuples(10, [1.0, np.nan, 1.0], floors)


def test_local_fit_uses_the_window_near_the_allocation():
    rates = np.array([[5000.0, 5000.0], [9000.0, 1000.0], [5500.0, 4500.0], [2000.0, 2000.0], [3000.0, 7600.0]])
    sweep = RateSweep(rates, rates, {m: np.arange(5.0) for m in ("segmentation_miou", "disparity_rmse",
                                                                     "reconstruction_psnr")}, {})
    assert sweep.near(10000.0).tolist() == [True, True, True, False, True]
    # shares 0.5, 0.9, 0.55, 0.28 against 0.5 ± 0.15
    assert sweep.near(10000.0, around=[5000.0, 5000.0]).tolist() == [True, False, True, False, False]
    both = sweep.merged(sweep)
    assert len(both.rates) == 10 and both.metrics["disparity_rmse"].tolist() == [0, 1, 2, 3, 4] * 2


@pytest.fixture(scope="module")
def tiny():
    """A briefly trained 2-stream model and a few validation images (64×128)."""
    pl.seed_everything(0, verbose=False)
    model = MultiTaskCI(split_points=["layer2", "layer3"], num_classes=10, decoder_width=16)
    data = SyntheticStreets(num_train=32, num_val=8, num_test=8, batch_size=8)
    trainer = pl.Trainer(max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, default_root_dir="/tmp")
    trainer.fit(model, data)
    data.setup("test")
    batch = next(iter(data.test_dataloader()))
    return model.eval(), [batch]


def test_real_codec_sweep_measures_its_rates_and_loses_accuracy_at_low_rate(tiny):
    model, batches = tiny
    coder = CodecCoder(get_codec("jpeg2000"))
    with torch.no_grad():
        floors = [coder.floor(f) for f in model.features(batches[0]["image"])]
    tuples = np.array([[f + 200 for f in floors], [40000.0, 20000.0]])
    sweep = rate_sweep(model, batches, coder, tuples, progress=False)
    np.testing.assert_allclose(sweep.rates[1], tuples[1], rtol=0.02)  # measured bits, not targets
    assert sweep.distortions.shape == (2, 3)
    assert sweep.distortions[0].sum() > sweep.distortions[1].sum()  # coarser is worse
    with pytest.raises(ConfigError, match=r"shape \(M, 2\)"):
        rate_sweep(model, batches, coder, np.ones((3, 3)), progress=False)


def test_proxy_coder_tracks_the_real_codec(tiny):
    model, batches = tiny
    with torch.no_grad():
        features = model.features(batches[0]["image"])[1]
    proxy, real = ProxyCoder(), CodecCoder(get_codec("jpeg2000"))
    for bits in (6000.0, 12000.0):
        rec_p, bits_p = proxy.code(proxy.prepare(features), bits)
        rec_r, bits_r = real.code(real.prepare(features), bits)
        assert abs(bits_p.mean().item() / bits - 1) < 0.05
        rec_r = torch.as_tensor(rec_r)  # a byte codec decodes to numpy
        mse_p, mse_r = (rec_p - features).pow(2).mean().item(), (rec_r - features).pow(2).mean().item()
        assert 0.5 < mse_p / mse_r < 2.0


def test_proxy_coder_hits_targets_and_reports_the_rate_model_bits(tiny):
    model, batches = tiny
    with torch.no_grad():
        features = model.features(batches[0]["image"])[0]
    coder = ProxyCoder()
    state = coder.prepare(features)
    for bits in (5000.0, 20000.0, 60000.0):
        reconstruction, reported = coder.code(state, bits)
        steps = [float(np.exp(np.interp(np.log(bits - coder.overhead_bits), lb.flip(0).numpy(),
                                        state[1].flip(0).numpy()))) for lb in state[2]]
        expected, predicted = coder.proxy.quantize(state[0], torch.tensor(steps))
        assert torch.equal(reconstruction, expected)
        np.testing.assert_allclose(reported.numpy(), predicted.double().numpy() + coder.overhead_bits, rtol=1e-12)
        np.testing.assert_allclose(reported.numpy(), bits, rtol=0.1)  # the table's step lands near the target


def test_allocation_experiment_compares_four_methods(tiny):
    model, batches = tiny
    budgets = [8000.0, 16000.0]
    sweep, rows, extras = run_allocation(model, batches, batches, ProxyCoder(), budgets, tuples=30, refine_tuples=0,
                                         progress=False)
    assert [(r.budget, r.method) for r in rows] == [(b, m) for b in budgets for m in METHODS]
    for r in rows:
        assert sum(r.rates) == pytest.approx(r.budget) and min(r.rates) >= 0
        assert sum(r.bits_used) <= r.budget * 1.1
        assert r.r2 is not None and np.isfinite(r.total_distortion)
    assert set(extras["pareto"]) == {str(b) for b in budgets}
    with pytest.raises(ConfigError, match="codec='lossless'"):
        stream_coder("lossless")
    with pytest.raises(ConfigError, match="a rate sweep sets every stream's rate"):
        stream_coder("jpeg:quality=90")


def test_refined_allocation_adds_a_local_sweep(tiny):
    model, batches = tiny
    budgets = [8000.0, 16000.0]
    sweep, rows, extras = run_allocation(model, batches, batches, ProxyCoder(), budgets, tuples=30, refine_tuples=10,
                                         progress=False)
    assert len(sweep.rates) == 30 + 2 * 10
    assert [(r.budget, r.method) for r in rows] == [(b, m) for b in budgets for m in (*METHODS, UNREFINED)]
    for b in budgets:
        unrefined = next(r for r in rows if r.budget == b and r.method == UNREFINED)
        near = sweep.near(b, unrefined.rates)
        assert extras["surfaces"][str(b)]["points"] == near.sum() >= 10  # fitted near the first allocation
        assert (sweep.rates[30:].sum(1) >= 0.75 * budgets[0] - 1e-6).all()
    with pytest.raises(ConfigError, match="refine_tuples=4: .* at least 10"):
        run_allocation(model, batches, batches, ProxyCoder(), budgets, tuples=30, refine_tuples=4, progress=False)


def test_budget_line_scan_measures_every_share(tiny):
    model, batches = tiny
    line = scan_budget_line(model, batches, ProxyCoder(), 16000.0, [0.3, 0.5, 0.7], progress=False)
    assert [p["share"] for p in line] == [0.3, 0.5, 0.7]
    for p in line:
        assert sum(p["rates"]) == pytest.approx(16000.0) and np.isfinite(p["total_distortion"])
        assert p["total_distortion"] == pytest.approx(np.mean(list(p["distortions"].values())))  # equal weights
    one_stream = MultiTaskCI(split_points=["layer3"], num_classes=10, decoder_width=8)
    with pytest.raises(ConfigError, match="2 streams"):
        scan_budget_line(one_stream, batches, ProxyCoder(), 16000.0, [0.5], progress=False)


def test_callback_writes_results_and_skips_the_sanity_check(tmp_path):
    pl.seed_everything(0, verbose=False)
    model = MultiTaskCI(split_points=["layer2", "layer3"], num_classes=10, decoder_width=8)
    callback = RateDistortionCallback(tuples=20, images=4, eval_images=3, budgets_bpe=[0.4, 0.8],  # 20: the minimum
                                      refine_tuples=10)
    assert RateDistortionCallback().every_n_epochs == 1 and RateDistortionCallback().refine_tuples == 0
    trainer = pl.Trainer(max_epochs=1, limit_train_batches=2, limit_val_batches=2, num_sanity_val_steps=1,
                         logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, default_root_dir=tmp_path, callbacks=[callback])
    trainer.fit(model, SyntheticStreets(num_train=8, num_val=8, batch_size=4))
    files = sorted((tmp_path / "rate_distortion").glob("epoch_*.json"))
    assert [f.name for f in files] == ["epoch_000.json"]  # one epoch, sanity check skipped
    result = json.loads(files[0].read_text())
    assert {r["method"] for r in result["rows"]} == {*METHODS, UNREFINED}
    assert len(result["sweep"]["rates"]) == 20 + 2 * 10  # refine_tuples 10 per budget
    assert result["fit_images"] == 4 and result["eval_images"] == 3  # evaluated on images it did not fit on
    assert (tmp_path / "rate_distortion" / "epoch_000.png").is_file()
    assert callback.last_seconds is not None
    with pytest.raises(ConfigError, match="budgets_bpe"):
        RateDistortionCallback(budgets_bpe=[-1])
    with pytest.raises(ConfigError, match="weights must be one of"):
        RateDistortionCallback(weights="eqaul")
    with pytest.raises(ConfigError, match="refine_tuples=-1"):
        RateDistortionCallback(refine_tuples=-1)
    with pytest.raises(ConfigError, match="codec='jpg'"):
        RateDistortionCallback(coder="jpg")


def test_callback_defaults_fit_every_budget_of_a_two_stream_model(tmp_path):
    """The defaults (24 tuples, two budgets far apart) leave each budget's fit enough points: no skipped epoch."""
    pl.seed_everything(0, verbose=False)
    model = MultiTaskCI(split_points=["layer2", "layer3"], num_classes=10, decoder_width=8)
    callback = RateDistortionCallback()
    trainer = pl.Trainer(max_epochs=1, limit_train_batches=1, limit_val_batches=2, num_sanity_val_steps=0,
                         logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, default_root_dir=tmp_path, callbacks=[callback])
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # a skipped run is a warning
        warnings.filterwarnings("ignore", message=".*(does not have many workers|LeafSpec|smaller than the logging).*")
        trainer.fit(model, SyntheticStreets(num_train=8, num_val=16, batch_size=8))
    result = json.loads((tmp_path / "rate_distortion" / "epoch_000.json").read_text())
    assert len(result["budgets_bits"]) == 2 and all(s["points"] >= 5 for s in result["surfaces"].values())


def test_callback_follows_its_interval_and_can_be_turned_off(tmp_path):
    model = MultiTaskCI(split_points=["layer3"], num_classes=10, decoder_width=8)
    for every, expected in ((2, ["epoch_001.json", "epoch_001.png", "epoch_001_curves.csv", "epoch_001_curves.json"]),
                            (0, [])):
        callback = RateDistortionCallback(tuples=12, images=2, budgets_bpe=[0.5, 1.0], every_n_epochs=every)
        root = tmp_path / str(every)
        trainer = pl.Trainer(max_epochs=2, limit_train_batches=1, limit_val_batches=1, num_sanity_val_steps=0,
                             logger=False, enable_checkpointing=False, enable_progress_bar=False,
                             enable_model_summary=False, default_root_dir=root, callbacks=[callback])
        trainer.fit(model, SyntheticStreets(num_train=4, num_val=2, batch_size=2))
        folder = root / "rate_distortion"
        assert (sorted(p.name for p in folder.iterdir()) if folder.exists() else []) == expected
    curve = json.loads((tmp_path / "2" / "rate_distortion" / "epoch_001.json").read_text())
    assert len(curve["rates"]) == 12 and set(curve["metrics"]) == set(curve["reference"])
    curves = RateAccuracyCurves.read(tmp_path / "2" / "rate_distortion" / "epoch_001_curves.json")  # evaluate.py's format
    rates, miou = curves.curve("segmentation", "proxy")
    assert len(rates) == 12 and np.all(np.diff(rates) >= 0) and curves.provenance["epoch"] == 1
    assert sorted(miou.tolist()) == sorted(curve["metrics"]["segmentation_miou"])


def test_eq25_weights_come_from_every_tuple_and_score_every_row(tiny):
    """inverse-mean weights (eq 25) by hand: w_i ∝ 1 / mean over all tuples of D_i, the same for every row."""
    model, batches = tiny
    sweep, rows, extras = run_allocation(model, batches, batches, ProxyCoder(), [8000.0, 16000.0], tuples=30,
                                         refine_tuples=0, weights="inverse-mean", progress=False)
    columns = list(sweep.directions)
    by_hand = []
    for m in columns:
        ref, values = sweep.reference[m], sweep.metrics[m]
        drop = (ref - values) if sweep.directions[m] else (values - ref)
        by_hand.append(np.mean(100 * drop / ref))
    w = (1 / np.array(by_hand)) / np.sum(1 / np.array(by_hand))
    np.testing.assert_allclose(list(extras["weights"].values()), w, rtol=1e-12)
    for r in rows:
        assert r.total_distortion == pytest.approx(sum(wi * r.distortions[m] for wi, m in zip(w, columns)), rel=1e-12)


@pytest.mark.slow
def test_evaluate_allocate_end_to_end_on_a_two_task_model(two_task_checkpoint, tmp_path, capsys):
    from cilight.evaluate_cli import main

    out = tmp_path / "allocation"
    args = ["allocate", "--ckpt", str(two_task_checkpoint), "--budgets", "10", "20", "--tuples", "20",
            "--refine-tuples", "10", "--num-test", "10", "--fit-fraction", "0.4", "--out", str(out)]
    assert main(args) == 0
    stdout = capsys.readouterr().out
    assert "protocol cilight: fitting on a random 4 test images with proxy, evaluating on the other 6 with jpeg2000" in stdout
    assert stdout.count("proposed") == 2 and "Pareto set at R_t = 10.00 kbit" in stdout
    result = json.loads((out / "allocation.json").read_text())
    methods = (*METHODS, UNREFINED)
    assert [(r["budget"], r["method"]) for r in result["rows"]] == [(b, m) for b in (1e4, 2e4) for m in methods]
    for r in result["rows"]:
        assert sum(r["rates"]) == pytest.approx(r["budget"]) and 0 <= r["r2"] <= 1
        assert set(r["distortions"]) == {"segmentation_miou", "disparity_rmse"}  # the model's two tasks
    assert set(result["surfaces"]) == {"10000.0", "20000.0"} and len(result["sweep"]["rates"]) == 20 + 2 * 10
    assert len((out / "allocation.csv").read_text().splitlines()) == 1 + 10
    assert (out / "allocation.png").stat().st_size > 1000
    for bad, needle in ((["--budgets", "-5"], "--budgets -5: expected positive kbit per image"),
                        (["--budgets", "1"], "budget 1000 bits is too small"),
                        (["--weights", "1", "x"], "--weights 1 x: expected 2 numbers"),
                        (["--weights", "1", "1", "1"], "expected 2 numbers (one per task)"),
                        (["--codec", "jpg"], "did you mean 'jpeg'"),
                        (["--num-test", "1"], "--num-test 1: expected at least 2 images"),
                        (["--protocol", "paper"], "--protocol paper runs §VI-A as printed; --tuples 20, "
                                                  "--refine-tuples 10, --fit-fraction 0.4 would change it")):
        assert main([*args, *bad]) == 2
        errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and needle in errors[0], errors


def test_fit_and_evaluation_images_are_a_seeded_random_split():
    batches = [{"image": torch.arange(i, i + 4).float().view(4, 1, 1, 1), "id": torch.arange(i, i + 4)}
               for i in range(0, 20, 4)]
    fit, held_out = split_batches(batches, 0.2, seed=3)
    ids = [torch.cat([b["id"] for b in part]).tolist() for part in (fit, held_out)]
    assert len(ids[0]) == 4 and sorted(ids[0] + ids[1]) == list(range(20)) and ids[0] != [0, 1, 2, 3]
    assert ids[0] == sorted(ids[0]) and all(len(b["id"]) <= 4 for b in fit + held_out)
    assert all(torch.equal(b["image"].flatten().long(), b["id"]) for b in fit + held_out)  # fields stay together
    again = [torch.cat([b["id"] for b in part]).tolist() for part in split_batches(batches, 0.2, seed=3)]
    other = torch.cat([b["id"] for b in split_batches(batches, 0.2, seed=4)[0]]).tolist()
    assert again == ids and other != ids[0]
    with pytest.raises(ConfigError, match="between 0 and 1"):
        split_batches(batches, 1.0)


@pytest.mark.slow
def test_evaluate_allocate_paper_protocol(two_task_checkpoint, tmp_path, capsys):
    from cilight.evaluate_cli import main

    out = tmp_path / "paper"
    assert main(["allocate", "--ckpt", str(two_task_checkpoint), "--budgets", "14", "--num-test", "10",
                 "--protocol", "paper", "--out", str(out)]) == 0
    stdout = capsys.readouterr().out
    assert "protocol paper: fitting on a random 2 test images with jpeg2000, evaluating on the other 8 with jpeg2000" \
        in stdout and UNREFINED not in stdout
    result = json.loads((out / "allocation.json").read_text())
    assert result["protocol"] == "paper" and result["refine_tuples"] == 0 and len(result["sweep"]["rates"]) == 100
    assert result["stratified_tuples"] is False


def test_callback_raises_budgets_the_codec_cannot_reach(tmp_path):
    # one layer3 stream at 64×128 has 8192 elements: 0.1 bpe = 819 bits is below the ≈1.7 kbit floor
    model = MultiTaskCI(split_points=["layer3"], num_classes=10, decoder_width=8)
    callback = RateDistortionCallback(tuples=12, images=2, budgets_bpe=[0.1, 1.0], every_n_epochs=1)
    trainer = pl.Trainer(max_epochs=1, limit_train_batches=1, limit_val_batches=1, num_sanity_val_steps=0,
                         logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, default_root_dir=tmp_path, callbacks=[callback])
    trainer.fit(model, SyntheticStreets(num_train=4, num_val=2, batch_size=2))
    curve = json.loads((tmp_path / "rate_distortion" / "epoch_000.json").read_text())
    assert len(curve["rates"]) == 12 and min(np.sum(curve["rates"], 1)) > 1000
