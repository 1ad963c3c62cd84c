"""Mixed precision (``--trainer.precision bf16-mixed``): what must stay float32 stays float32, and the four
model kinds train.

The step-level tests run under ``torch.autocast("cpu", torch.bfloat16)`` — what Lightning's
``bf16-mixed`` plugin wraps every step in — or give bfloat16 tensors to the functions directly; each
compares with the float32 computation on the same inputs (:mod:`cilight.ci_models.precision` says why
each part needs float32). The training tests run ``train.py`` in this process with ``bf16-mixed`` on
the CPU: the default model, the 2-stream model, the learned bottleneck and BaF, with the default
callbacks (sample grid and per-epoch rate–distortion callback) where the model has them.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from helpers import ROOT, TINY, callbacks_config, smooth_images, tiny_model, train

from cilight.ci_models import (
    BottleneckTransmission,
    QLayerTransmission,
    QuantizationLayer,
    UncertaintyWeighting,
    compressibility_loss,
)
from cilight.ci_models.baf import CHARBONNIER_EPSILON, charbonnier
from cilight.ci_models.bottleneck import BottleneckOutput, make_bottleneck
from cilight.ci_models.multitask import RATE_TERM, MultiTaskCI
from cilight.ci_models.proxy import Jpeg2000Proxy, ProxyCoder


def autocast():
    return torch.autocast("cpu", dtype=torch.bfloat16)


def features(seed: int = 0, shape=(2, 16, 8, 16)) -> torch.Tensor:
    """Smooth positive features, as a ReLU network's split-point tensors are."""
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(shape[0], shape[1], shape[2] // 2, shape[3] // 2, generator=g) * 3
    return torch.nn.functional.interpolate(low, size=shape[2:], mode="bilinear", align_corners=False)


def batch_of(images: torch.Tensor, num_classes: int = 5) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    b, _, h, w = images.shape
    return {"image": images, "segmentation": torch.randint(0, num_classes, (b, h, w), generator=g),
            "disparity": torch.rand(b, h, w, generator=g) * 8, "disparity_mask": torch.ones(b, h, w, dtype=torch.bool)}


# --------------------------------------------------------------------------- the Q-layer (ICIP 2019, §2.1)
def test_the_q_layer_alone_adds_its_noise_in_float32_under_autocast():
    layer = QuantizationLayer(8).train()
    conv = torch.nn.Conv2d(16, 16, 1)
    x = features(shape=(4, 16, 16, 32))
    with autocast():
        split = conv(x).detach()  # no gradients needed: the values are what is checked
        assert split.dtype == torch.bfloat16
        torch.manual_seed(0)
        noisy = layer(split)
    assert noisy.dtype == torch.float32
    reference = split.float()
    low, high = reference.flatten(1).min(1).values, reference.flatten(1).max(1).values
    delta = ((high - low) / 255).view(-1, 1, 1, 1)
    noise = (noisy - reference) / delta  # u ~ U(−½, ½) in units of the step, drawn as in float32
    torch.manual_seed(0)
    expected = torch.rand_like(reference) - 0.5
    torch.testing.assert_close(noise, expected, atol=1e-4, rtol=0)
    assert abs(float(noise.std()) - (1 / 12) ** 0.5) < 0.01  # uniform on a unit interval
    # outside autocast a bfloat16 tensor stays bfloat16 (a model cast to bfloat16 as a whole)
    assert layer(split.detach()).dtype == torch.bfloat16
    assert layer.eval()(split.detach()).dtype == torch.bfloat16


# --------------------------------------------------------------------------- the compressibility loss (eq 1–5)
def test_compressibility_loss_of_bfloat16_features_is_computed_in_float32():
    x = features().bfloat16()
    loss = compressibility_loss(x)
    assert loss.dtype == torch.float32
    assert loss.item() == pytest.approx(compressibility_loss(x.float()).item(), rel=1e-6)


def test_compressibility_loss_under_autocast_equals_float32():
    x = features().requires_grad_()
    expected = compressibility_loss(x)
    (grad,) = torch.autograd.grad(expected, x)
    with autocast():
        got = compressibility_loss(x)
        (got_grad,) = torch.autograd.grad(got, x)
    assert got.dtype == torch.float32
    assert got.item() == pytest.approx(expected.item(), rel=1e-6)
    torch.testing.assert_close(got_grad, grad)


def test_baf_charbonnier_of_bfloat16_predictions_is_computed_in_float32():
    """BaF's eq 7 is a mean over every element of σ(Z) and σ(Z̃), both from bfloat16 convolutions under
    ``bf16-mixed``: it is taken in float32."""
    target, prediction = features().bfloat16(), (features() + 0.01 * torch.randn(features().shape)).bfloat16()
    expected = torch.sqrt((target.float() - prediction.float()) ** 2 + CHARBONNIER_EPSILON**2).mean()
    got = charbonnier(target, prediction)
    assert got.dtype == torch.float32
    assert got.item() == pytest.approx(expected.item(), rel=1e-6)


# --------------------------------------------------------------------------- the JPEG2000 proxy
def test_proxy_bits_and_reconstruction_under_autocast_equal_float32():
    proxy = Jpeg2000Proxy().eval()
    x = features()
    reconstruction, bits = proxy(x, 4.0)
    steps = proxy.step_for_bits(proxy.transform(x), 0.9 * bits)
    with autocast():
        got_reconstruction, got_bits = proxy(x, 4.0)
        got_steps = proxy.step_for_bits(proxy.transform(x), 0.9 * bits)
    assert got_bits.dtype == torch.float32 and got_reconstruction.dtype == torch.float32
    torch.testing.assert_close(got_bits, bits, rtol=1e-6, atol=1e-3)
    torch.testing.assert_close(got_reconstruction, reconstruction)
    torch.testing.assert_close(got_steps, steps)


def test_proxy_of_bfloat16_features_works_in_float32():
    proxy = Jpeg2000Proxy().eval()
    x = features().bfloat16()
    transformed = proxy.transform(x)
    assert transformed.flat.dtype == torch.float32 and transformed.features.dtype == torch.float32
    torch.testing.assert_close(proxy.bits(transformed, 4.0), proxy.bits(proxy.transform(x.float()), 4.0))


def test_proxy_coder_tables_are_float64_on_the_cpu_for_bfloat16_features():
    coder = ProxyCoder()
    prepared = coder.prepare(features().bfloat16())
    _, log_steps, log_bits = prepared
    assert log_bits.dtype == torch.float64 and log_bits.device.type == "cpu"
    reconstruction, bits = coder.code(prepared, 2000.0)
    assert reconstruction.dtype == torch.float32 and bits.dtype == torch.float64 and bits.device.type == "cpu"
    expected = coder.code(coder.prepare(features().bfloat16().float()), 2000.0)[1]
    torch.testing.assert_close(bits, expected)


# --------------------------------------------------------------------------- CompressAI entropy models
@pytest.mark.parametrize("prior", ["factorized", "hyperprior"])
def test_entropy_models_aux_loss_under_autocast_equals_float32(prior):
    torch.manual_seed(0)
    bottleneck = make_bottleneck(prior, 16, 8)
    expected = bottleneck.aux_loss()
    with autocast():
        got = bottleneck.aux_loss()
    assert got.dtype == torch.float32
    assert got.item() == pytest.approx(expected.item(), rel=1e-6)


def test_factorized_likelihoods_under_autocast_are_those_of_float32():
    torch.manual_seed(0)
    bottleneck = make_bottleneck("factorized", 16, 8).eval()  # rounding: deterministic
    x = features()
    with autocast():
        y = bottleneck.g_a(x)  # bfloat16, as autocast computes it
        out = bottleneck(x)
    _, expected = bottleneck.entropy_y(y.float())  # the entropy model alone, in float32
    assert out.likelihoods["y"].dtype == torch.float32
    torch.testing.assert_close(out.likelihoods["y"], expected)


def test_hyperprior_likelihoods_under_autocast_are_float32():
    torch.manual_seed(0)
    bottleneck = make_bottleneck("hyperprior", 16, 8).train()
    with autocast():
        out = bottleneck(features())
    assert {k: p.dtype for k, p in out.likelihoods.items()} == {"y": torch.float32, "z": torch.float32}
    assert torch.isfinite(out.bits()).all()


def test_bits_of_bfloat16_likelihoods_are_summed_in_float32():
    p = torch.rand(2, 8, 16, 16, generator=torch.Generator().manual_seed(0)).clamp_min(1e-3)
    bits = BottleneckOutput(torch.zeros(2, 1), {"y": p.bfloat16()}).bits()
    assert bits.dtype == torch.float32
    torch.testing.assert_close(bits, (-torch.log2(p.bfloat16().double())).flatten(1).sum(1).float())


# --------------------------------------------------------------------------- the model's step
@pytest.mark.parametrize("transmission", [
    None,
    QLayerTransmission.spec(rate_loss="proxy_bits", codec_noise="proxy", codec_noise_probability=1.0),
    BottleneckTransmission.spec(channels=8),
], ids=["qlayer", "proxy", "bottleneck"])
def test_transmissions_run_in_float32_under_autocast(transmission):
    torch.manual_seed(0)
    model = MultiTaskCI(split_points=["layer3"], num_classes=5, decoder_width=8, transmission=transmission).train()
    images = smooth_images(2, 64, 64)
    with autocast():
        (split,) = model.encoder(images)
        assert split.dtype == torch.bfloat16
        torch.manual_seed(1)
        _, sent = model.run(images)
    torch.manual_seed(1)
    expected = model.transmissions[0](split.float())  # the same noise draws, in float32 without autocast
    assert sent[0].features.dtype == torch.float32
    torch.testing.assert_close(sent[0].features, expected.features)
    assert sent[0].rate.dtype == torch.float32
    torch.testing.assert_close(sent[0].rate, expected.rate)


def test_losses_and_eq6_under_autocast_are_float32():
    model = tiny_model().train()
    with autocast():
        losses, outputs, _ = model.losses(batch_of(smooth_images(2, 64, 64)))
        total = model.total_loss(losses)
    assert outputs["segmentation"].dtype == torch.bfloat16  # the heads run in bfloat16
    assert {k: v.dtype for k, v in losses.items()} == dict.fromkeys([*outputs, RATE_TERM], torch.float32)
    assert total.dtype == torch.float32 and torch.isfinite(total)
    weighting = UncertaintyWeighting({"a": "classification", "b": "regression"})
    assert weighting({"a": torch.tensor(1.5, dtype=torch.bfloat16), "b": torch.tensor(0.25)}).dtype == torch.float32


# --------------------------------------------------------------------------- train.py --trainer.precision bf16-mixed
BF16 = ["--trainer.precision", "bf16-mixed", "--trainer.max_steps", "2"]


def assert_trained_in_mixed_precision(checkpoint: Path) -> dict:
    """The checkpoint of a bf16-mixed run: float32 weights (autocast never changes them) and a finite val/loss."""
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    floats = {k: v.dtype for k, v in state["state_dict"].items() if v.is_floating_point()}
    assert set(floats.values()) == {torch.float32}, floats
    scores = [s["best_model_score"] for k, s in state["callbacks"].items() if k.startswith("ModelCheckpoint")]
    assert scores and all(torch.isfinite(torch.as_tensor(s)) for s in scores), scores
    return state


@pytest.fixture(scope="module")
def bf16_default_run(tmp_path_factory) -> Path:
    """The default model, bf16-mixed, with the default callbacks (sample grid, rate–distortion sweep)."""
    root = tmp_path_factory.mktemp("bf16_default")
    proc = train([*TINY, *BF16, "--trainer.default_root_dir", root / "runs", "--run_name", "t"], root)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return root / "runs" / "t"


@pytest.mark.slow
def test_bf16_mixed_trains_the_default_model_with_its_callbacks(bf16_default_run):
    assert_trained_in_mixed_precision(bf16_default_run / "checkpoints" / "last.ckpt")
    assert (bf16_default_run / "rate_distortion" / "epoch_000.json").is_file()
    assert (bf16_default_run / "samples" / "epoch_000.png").is_file()
    assert (bf16_default_run / "test_metrics.json").is_file()


@pytest.mark.slow
def test_bf16_mixed_trains_the_two_stream_model_with_its_allocation(tmp_path):
    # 8 validation images: the allocation fits on 4 and is evaluated on the 4 others
    callbacks = callbacks_config(tmp_path / "callbacks.yaml", images=4, eval_images=4)
    proc = train([*TINY, *BF16, "--config", callbacks, "--model.split_points", "[layer2,layer3]",
                  "--data.num_val", "8", "--test_after_fit", "false",
                  "--trainer.default_root_dir", tmp_path / "runs", "--run_name", "t"], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    run = tmp_path / "runs" / "t"
    assert_trained_in_mixed_precision(run / "checkpoints" / "last.ckpt")
    assert (run / "rate_distortion" / "epoch_000.json").is_file(), "the allocation ran (a failed one only warns)"


@pytest.mark.slow
def test_bf16_mixed_trains_the_learned_bottleneck(tmp_path):
    proc = train([*TINY, *BF16, "--config", ROOT / "configs" / "callbacks" / "none.yaml", "--test_after_fit", "false",
                  "--model.transmission", "BottleneckTransmission", "--model.transmission.prior", "hyperprior",
                  "--model.transmission.channels", "16",
                  "--trainer.default_root_dir", tmp_path / "runs", "--run_name", "t"], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    state = assert_trained_in_mixed_precision(tmp_path / "runs" / "t" / "checkpoints" / "last.ckpt")
    assert state["transmissions"][0], "the entropy tables are fixed at every checkpoint"


@pytest.mark.slow
def test_bf16_mixed_trains_baf_on_a_bf16_task_model(bf16_default_run, tmp_path):
    data_and_trainer = [a for i, a in enumerate(TINY) if not (a.startswith("--model.") or TINY[i - 1].startswith("--model."))]
    proc = train(["--config", ROOT / "configs" / "baf.yaml", *data_and_trainer, *BF16, "--test_after_fit", "false",
                  "--model.task_ckpt", bf16_default_run / "checkpoints" / "last.ckpt", "--model.num_channels", "16",
                  "--model.bits", "6", "--model.calibration_images", "8",
                  "--trainer.default_root_dir", tmp_path / "runs", "--run_name", "b"], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert_trained_in_mixed_precision(tmp_path / "runs" / "b" / "checkpoints" / "last.ckpt")
