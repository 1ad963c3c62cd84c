"""Rate terms by name and the JPEG2000 proxy as a training layer (ci_models/rate.py)."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch
from helpers import smooth_images, train_checkpoint

from cilight.ci_models import MultiTaskCI, QLayerTransmission
from cilight.ci_models.multitask import RATE_TERM
from cilight.ci_models.proxy import Jpeg2000Proxy, ProxyCoder
from cilight.ci_models.rate import ProxyOperatingRange, StreamProxy
from cilight.errors import ConfigError

H, W = 32, 64


def batch_of(n: int = 4, seed: int = 0, classes: int = 4) -> dict:
    g = torch.Generator().manual_seed(seed)
    return {"image": smooth_images(n, H, W, seed), "segmentation": torch.randint(0, classes, (n, H, W), generator=g),
            "disparity": torch.rand(n, H, W, generator=g), "disparity_mask": torch.ones(n, H, W, dtype=torch.bool)}


def features(seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(2, 16, 8, 8, generator=g, dtype=torch.float64).relu()


# -- invariance and the gradient that means rate -------------------------------------------------


@pytest.mark.parametrize(("a", "b"), [(2.0, 0.0), (0.25, 3.0), (7.3, -1.1)])
def test_proxy_bits_are_invariant_to_scale_and_shift(a, b):
    proxy = Jpeg2000Proxy().train()
    x = features()
    for step in (0.7, 3.0, 20.0):
        torch.testing.assert_close(proxy(a * x + b, step)[1], proxy(x, step)[1], rtol=1e-9, atol=1e-6)


@pytest.mark.parametrize("step", [0.7, 3.0, 20.0])
def test_the_bits_gradient_has_no_component_along_the_features_or_the_constant(step):
    """Min–max quantization sends the same codes for a·F + b, so a rate gradient must not be
    met by rescaling or shifting F: ⟨∇bits, F⟩ = ⟨∇bits, 1⟩ = 0 for every sample."""
    proxy = Jpeg2000Proxy().train()
    x = features(1).requires_grad_(True)
    proxy(x, step)[1].sum().backward()
    g, f = x.grad.flatten(1), x.detach().flatten(1)
    assert (g.norm(dim=1) > 0).all()
    along_f = (g * f).sum(1) / (g.norm(dim=1) * f.norm(dim=1))
    along_1 = g.sum(1) / (g.norm(dim=1) * f.shape[1] ** 0.5)
    np.testing.assert_allclose(along_f.numpy(), 0.0, atol=1e-9)
    np.testing.assert_allclose(along_1.numpy(), 0.0, atol=1e-9)


def test_proxy_coding_reuses_one_quantization():
    proxy = StreamProxy(ProxyOperatingRange(step=3.0)).eval()
    x = features(2).float()
    coding = proxy(x)
    rec = coding.reconstruction()
    reference_rec, reference_bits = proxy.proxy(x, 3.0)
    torch.testing.assert_close(rec, reference_rec)
    torch.testing.assert_close(coding.bits(), reference_bits)
    assert coding.elements == 16 * 8 * 8


def test_the_step_meets_the_drawn_rate():
    """The step of a batch is the one at which the proxy predicts the drawn bits per element."""
    torch.manual_seed(0)
    stream = StreamProxy(ProxyOperatingRange(bpe=(0.5, 0.5)))
    x = torch.randn(4, 64, 8, 8).relu()
    transformed = stream.proxy.transform(x)
    step = stream.step(transformed)
    assert step.shape == (4,) and bool((step == step[0]).all())  # one step for the batch
    bpe = (stream.proxy.bits(transformed, step).mean() + ProxyCoder.overhead_bits) / x[0].numel()
    assert float(bpe) == pytest.approx(0.5, rel=0.05)
    # in training the rate is drawn from the range (log-uniform); in evaluation it is its geometric middle
    ranged = StreamProxy(ProxyOperatingRange(bpe=(0.1, 2.0)))
    drawn = {float(ranged.train().step(transformed)[0]) for _ in range(4)}
    assert len(drawn) == 4
    middle = [float(ranged.eval().step(transformed)[0]) for _ in range(2)]
    assert middle[0] == middle[1] and min(drawn) < max(drawn)


# -- the options in the model -------------------------------------------------------------------


OPTIONS = {
    "dpcm_dct": {},
    "proxy_bits": {"rate_loss": "proxy_bits"},
    "dpcm_dct+codec_noise": {"codec_noise": "proxy"},
    "proxy_bits+codec_noise": {"rate_loss": "proxy_bits", "codec_noise": "proxy"},
}


def model_with(**kwargs) -> MultiTaskCI:
    torch.manual_seed(0)
    return MultiTaskCI(num_classes=4, decoder_width=8, transmission=QLayerTransmission.spec(**kwargs))


def proxy_bits_of(model: MultiTaskCI, images: torch.Tensor, step: float) -> float:
    proxy = Jpeg2000Proxy().eval()
    with torch.no_grad():
        return float(sum(proxy(f, step)[1].mean() for f in model.eval().features(images)))


def test_rate_options_lower_the_proxy_bits_against_none():
    """A few steps on one batch with a rate term leave fewer predicted bits than the same steps
    without one (λ fixed). Codec noise alone changes what the cloud sees, not the rate objective,
    so it is tested with the proxy's bits beside it."""
    batch = batch_of(2)

    def trained(**kwargs) -> float:
        model = model_with(rate_weighting="fixed", compressibility_weight=30.0, **kwargs).train()
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
        for _ in range(5):
            losses, _, _ = model.losses(batch)
            optimizer.zero_grad()
            model.total_loss(losses).backward()
            optimizer.step()
        return proxy_bits_of(model, batch["image"], step=4.0)

    none = trained(rate_loss="none")
    for name in ("dpcm_dct", "proxy_bits", "proxy_bits+codec_noise"):
        bits = trained(**OPTIONS[name])
        assert bits < 0.98 * none, (name, bits, none)


def test_rate_loss_names_the_term_and_none_is_the_benchmark():
    batch = batch_of()
    for kwargs, term in (({}, True), ({"rate_loss": "proxy_bits"}, True), ({"rate_loss": "none"}, False),
                         ({"rate_loss": "proxy_bits", "compressibility_weight": 0.0}, False)):
        model = model_with(**kwargs)
        losses, _, _ = model.losses(batch)
        assert (RATE_TERM in losses) == term and (RATE_TERM in model.loss_weighting.names) == term
    model = model_with(rate_loss="proxy_bits").eval()
    losses, _, _ = model.losses(batch)
    with torch.no_grad():
        middle = StreamProxy(ProxyOperatingRange()).eval()
        coding = middle(model.features(batch["image"])[0])
        expected = coding.bits().mean() / coding.elements
    torch.testing.assert_close(losses[RATE_TERM].detach(), expected)  # evaluation: the range's middle
    assert model_with().transmissions[0].proxy is None and model_with(rate_loss="none").transmissions[0].proxy is None


def test_codec_noise_replaces_the_stream_and_reaches_the_edge():
    batch = batch_of()
    model = model_with(codec_noise="proxy", codec_noise_probability=1.0, rate_step=4.0).train()
    seen = []
    model.decoder.register_forward_pre_hook(lambda module, args: seen.append(args[0][0].detach()))
    losses, _, _ = model.losses(batch)
    feats = model.features(batch["image"])[0].detach()
    reconstruction, _ = Jpeg2000Proxy().eval()(feats, 4.0)
    torch.testing.assert_close(seen[0], reconstruction, rtol=0, atol=1e-4)
    model.total_loss(losses).backward()
    assert next(model.encoder.parameters()).grad.abs().sum() > 0
    # in evaluation the Q-layer rounds and the proxy stays out of the forward pass
    seen.clear()
    model.eval()(batch["image"])
    assert not torch.allclose(seen[0], reconstruction, atol=1e-4)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"rate_loss": "bits"}, "rate_loss='bits': expected one of dpcm_dct, proxy_bits, none"),
        ({"rate_loss": "proxy_bits", "rate_features": "raw"}, "applies to rate_loss=dpcm_dct only"),
        ({"codec_noise": "jpeg2000"}, "codec_noise='jpeg2000': expected one of none, proxy"),
        ({"codec_noise": "proxy", "codec_noise_probability": 0.0}, r"codec_noise_probability=0.0: expected a probability"),
        ({"rate_bpe_range": [2.0, 0.1]}, r"rate_bpe_range=\[2.0, 0.1\]: expected \[low, high\]"),
        ({"rate_bpe_range": [0.5]}, "rate_bpe_range"),
        ({"rate_bpe_range": 0.5}, r"rate_bpe_range=0.5: expected \[low, high\]"),
        ({"rate_step": -1.0}, "rate_step=-1.0: expected a dead-zone step"),
    ],
)
def test_rate_option_errors(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        MultiTaskCI(num_classes=4, transmission=QLayerTransmission.spec(**kwargs))


def test_rate_options_are_saved_and_restored(tmp_path):
    model = model_with(rate_loss="proxy_bits", codec_noise="proxy", rate_bpe_range=[0.2, 1.0])
    path = tmp_path / "m.ckpt"
    torch.save({"state_dict": model.state_dict(), "hyper_parameters": dict(model.hparams),
                "pytorch-lightning_version": "2.0.0"}, path)
    restored = MultiTaskCI.load_from_checkpoint(path)
    options = restored.hparams.transmission["init_args"]
    assert options["rate_loss"] == "proxy_bits" and options["codec_noise"] == "proxy"
    proxy = restored.transmissions[0].proxy
    assert proxy is not None and proxy.operating.bpe == (0.2, 1.0)
    assert copy.deepcopy(restored).transmissions[0].proxy.operating == proxy.operating


@pytest.mark.slow
# each option once: dpcm_dct is the default every export test exports, proxy_bits+codec_noise the end-to-end
# test below exports from train.py
@pytest.mark.parametrize("name", ["proxy_bits", "dpcm_dct+codec_noise"])
def test_every_option_exports_with_parity(name, tmp_path):
    """The options change training only: a few steps with each, then both halves export and
    pass the parity check (the proxy is part of neither half)."""
    from cilight.onnx_export import export_halves

    model = model_with(**OPTIONS[name]).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    for _ in range(2):
        losses, _, _ = model.losses(batch_of(2))
        optimizer.zero_grad()
        model.total_loss(losses).backward()
        optimizer.step()
    report = export_halves(model.eval(), tmp_path, H, W, smooth_images(2, H, W, seed=5))
    assert not report.failures
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cloud.onnx", "edge.onnx"]


# -- end to end ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def rate_aware_checkpoint(tmp_path_factory, quick_callbacks):
    """``train.py`` with the proxy's bits as the rate term and the codec in the loop."""
    return train_checkpoint(tmp_path_factory.mktemp("rate_aware"), "--config", quick_callbacks,
                            "--model.transmission.rate_loss", "proxy_bits", "--model.transmission.codec_noise", "proxy",
                            "--model.transmission.rate_bpe_range", "[0.2, 1.5]")


@pytest.mark.slow
def test_rate_aware_training_exports_and_is_evaluated(rate_aware_checkpoint, tiny_checkpoint, tmp_path, capsys):
    from cilight.evaluate_cli import main as evaluate
    from cilight.export_cli import main as export

    model = MultiTaskCI.load_from_checkpoint(rate_aware_checkpoint)
    options = model.hparams.transmission["init_args"]
    assert options["rate_loss"] == "proxy_bits" and options["rate_bpe_range"] == [0.2, 1.5]
    assert export(["--ckpt", str(rate_aware_checkpoint), "--out", str(tmp_path / "onnx"), "--samples", "2"]) == 0
    assert "PASSED" in capsys.readouterr().out
    assert evaluate(["bdrate", "--anchor", str(tiny_checkpoint), "--test", str(rate_aware_checkpoint),
                     "--codecs", "j2k=jpeg2000:bpe=0.5,1,2,4", "--images", "2", "--out", str(tmp_path / "bd"),
                     "--min-overlap", "0"]) == 0
    assert "BD-rate against" in capsys.readouterr().out
    table = json.loads((tmp_path / "bd" / "bdrate.json").read_text())
    assert {(r["family"], r["task"]) for r in table["rows"]} == {
        ("j2k", task) for task in ("segmentation", "disparity", "reconstruction")}
