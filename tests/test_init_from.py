"""Training from a base (``--model.init_from CKPT``): the base's weights, a fresh optimizer and schedule,
and one line for a base of another architecture."""

from __future__ import annotations

import torch
from helpers import TINY, train

from cilight.ci_models import MultiTaskCI
from cilight.ci_models.checkpoints import initialise_from, load_task_model
from cilight.errors import ConfigError


def test_the_model_starts_from_the_base_weights_only_when_fitting(tiny_checkpoint):
    base = load_task_model(tiny_checkpoint)
    arguments = {k: v for k, v in base.hparams.items() if not k.startswith("_")}
    model = MultiTaskCI(**{**arguments, "init_from": str(tiny_checkpoint)})  # its own random initialisation
    differs = [k for k, v in model.state_dict().items() if not torch.equal(v, base.state_dict()[k])]
    assert differs  # a fresh model: its own initialisation
    model.setup("validate")
    assert not torch.equal(model.state_dict()[differs[0]], base.state_dict()[differs[0]])
    model.setup("fit")
    for key, value in base.state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key


def test_a_base_of_another_architecture_is_one_line(tiny_checkpoint):
    base = load_task_model(tiny_checkpoint)
    arguments = {k: v for k, v in base.hparams.items() if not k.startswith("_")}
    other = MultiTaskCI(**{**arguments, "split_points": ["layer2", "layer3"]})
    try:
        initialise_from(other, tiny_checkpoint, "--model.init_from")
    except ConfigError as err:
        message = str(err)
    else:
        raise AssertionError("a base with another split was accepted")
    assert len(message.splitlines()) == 1
    assert message.startswith(f"--model.init_from {tiny_checkpoint} holds another MultiTaskCI: saved with ")
    assert "split_points=['layer3'] (configured: ['layer2', 'layer3'])" in message
    assert "expected a checkpoint of the configured architecture" in message


def test_train_py_fine_tunes_with_a_fresh_optimizer_and_schedule(tiny_checkpoint, tmp_path, quick_callbacks):
    base = torch.load(tiny_checkpoint, map_location="cpu", weights_only=True)
    proc = train([*TINY, "--config", quick_callbacks, "--model.init_from", tiny_checkpoint, "--trainer.max_steps", "1",
                  "--trainer.default_root_dir", tmp_path / "runs", "--run_name", "fine"], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    tuned = torch.load(tmp_path / "runs" / "fine" / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert base["global_step"] > 1 and tuned["global_step"] == 1 and tuned["epoch"] == 0  # the count starts again
    assert tuned["optimizer_states"][0]["state"][0]["step"].item() == 1  # Adam's moments too
    assert tuned["hyper_parameters"]["init_from"] == str(tiny_checkpoint)
    # one Adam step away from the base, not from a fresh initialisation
    key = "encoder.stem.0.weight" if "encoder.stem.0.weight" in base["state_dict"] else next(iter(base["state_dict"]))
    drift = (tuned["state_dict"][key] - base["state_dict"][key]).abs().max().item()
    assert drift < 0.01, drift


def test_train_py_refuses_a_base_of_another_backbone(tiny_checkpoint, tmp_path):
    proc = train([*TINY, "--model.backbone", "resnet34", "--model.init_from", tiny_checkpoint,
                  "--trainer.default_root_dir", tmp_path / "runs"], tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"error: --model.init_from {tiny_checkpoint} holds another MultiTaskCI: saved with backbone=resnet18 "
        "(configured: resnet34); expected a checkpoint of the configured architecture to start from"]
    assert not (tmp_path / "runs").exists()


def test_a_fine_tune_that_adds_or_drops_the_rate_term_starts_it_afresh(tiny_checkpoint, tmp_path):
    """A benchmark base (no rate term in eq 6) fine-tuned with L_r, and the reverse: every weight from the base,
    the rate term's log-variance at 0 as from scratch, or left out."""
    base = load_task_model(tiny_checkpoint)  # TINY: L_r, so eq 6 weights the three tasks and the rate term
    arguments = {k: v for k, v in base.hparams.items() if not k.startswith("_")}
    assert base.loss_weighting.names[-1] == "rate"
    with torch.no_grad():
        base.loss_weighting.log_variances.copy_(torch.tensor([0.1, 0.2, 0.3, 0.4]))
    with_rate = tmp_path / "with_rate.ckpt"
    torch.save({"state_dict": base.state_dict(), "hyper_parameters": dict(base.hparams)}, with_rate)
    benchmark = MultiTaskCI(**{**arguments, "transmission": {"class_path": "QLayerTransmission",
                                                             "init_args": {"compressibility_weight": 0.0}}})
    assert benchmark.loss_weighting.names == ("segmentation", "disparity", "reconstruction")
    initialise_from(benchmark, with_rate)  # drops the base's rate term
    torch.testing.assert_close(benchmark.loss_weighting.log_variances, torch.tensor([0.1, 0.2, 0.3]))
    without_rate = tmp_path / "without_rate.ckpt"
    torch.save({"state_dict": benchmark.state_dict(), "hyper_parameters": dict(benchmark.hparams)}, without_rate)
    tuned = MultiTaskCI(**arguments)
    initialise_from(tuned, without_rate)  # adds it, at 0
    torch.testing.assert_close(tuned.loss_weighting.log_variances, torch.tensor([0.1, 0.2, 0.3, 0.0]))
    for key, value in benchmark.state_dict().items():
        if key != "loss_weighting.log_variances":
            assert torch.equal(tuned.state_dict()[key], value), key
