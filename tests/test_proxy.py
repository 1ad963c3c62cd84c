"""The differentiable JPEG2000 proxy (ci_models/proxy.py): pipeline, sweep, gradients, rate, errors."""

import dataclasses
import math

import numpy as np
import pytest
import torch

from cilight.ci_models.proxy import RATE_FEATURES, Jpeg2000Proxy, ProxyCalibration
from cilight.codecs.errors import CodecError
from cilight.codecs.jpeg2000 import decode_codestream, encode_codestream, resolutions
from cilight.codecs.quantizers import MinMaxQuantizer
from cilight.codecs.tiling import TileLayout, tile, untile
from cilight.errors import ConfigError


def activations(*shape, seed=0, smooth=2):
    """ReLU of smoothed noise: activation-like test tensors."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(*shape, generator=g)
    for _ in range(smooth):
        x = (x + x.roll(1, -1) + x.roll(1, -2)) / 3
    return torch.relu(x + 0.2)


def eight_bit(x):
    """The real pipeline's 8-bit min–max round trip of each sample (no codec)."""
    q = MinMaxQuantizer(bits=8)
    return torch.stack([torch.from_numpy(q.dequantize(*dataclasses.astuple(q.quantize(s)))) for s in x])


@pytest.fixture(scope="module")
def proxy():
    return Jpeg2000Proxy().eval()


def test_tiny_step_reconstruction_is_the_8bit_quantization(proxy):
    x = activations(2, 12, 8, 16)  # 12 channels: a 4×3 grid → no padding; 13 below: padding
    rec, bits = proxy(x, 1e-3)
    torch.testing.assert_close(rec, eight_bit(x), rtol=0, atol=1e-6)
    x13 = activations(1, 13, 8, 8, seed=1)
    torch.testing.assert_close(proxy(x13, 1e-3)[0], eight_bit(x13), rtol=0, atol=1e-6)
    assert bits.shape == (2,) and bool((bits > 0).all())


def test_transform_reproduces_the_tiled_uint8_image(proxy):
    x = activations(1, 13, 8, 8, seed=2)
    t = proxy.transform(x)
    q = MinMaxQuantizer(bits=8).quantize(x[0])
    expected = torch.from_numpy(tile(q.codes, TileLayout.square(13, 8, 8))).float()
    torch.testing.assert_close(t.image[0], expected, rtol=0, atol=0)
    assert t.image.shape == (1, 32, 32) and t.coefficients.levels == resolutions(32, 32) - 1 == 5


def test_step_as_tensor_per_sample(proxy):
    x = activations(2, 16, 8, 8, seed=3)
    rec, bits = proxy(x, torch.tensor([1.0, 30.0]))
    rec0, bits0 = proxy(x[:1], 1.0)
    rec1, bits1 = proxy(x[1:], 30.0)
    torch.testing.assert_close(rec, torch.cat([rec0, rec1]))
    torch.testing.assert_close(bits, torch.cat([bits0, bits1]))


def test_bits_and_distortion_move_the_right_way(proxy):
    x = activations(1, 32, 16, 16, seed=4)
    mse, bits = proxy.sweep(proxy.transform(x), [0.5, 2.0, 8.0, 32.0, 128.0])
    assert bool((bits[0, 1:] < bits[0, :-1]).all())
    assert bool((mse[0, 1:] > mse[0, :-1]).all())


def test_sweep_equals_repeated_forward(proxy):
    x = activations(2, 16, 8, 16, seed=5)
    steps = [0.7, 3.0, 20.0]
    t = proxy.transform(x)
    mse, bits = proxy.sweep(t, steps)
    recs, bits2 = proxy.sweep(t, torch.tensor([steps, steps]), reconstructions=True)
    assert recs.shape == (2, 3, 16, 8, 16)
    for j, s in enumerate(steps):
        rec, b = proxy(x, s)
        torch.testing.assert_close(bits[:, j], b)
        torch.testing.assert_close(recs[:, j], rec)
        torch.testing.assert_close(mse[:, j], (rec - x).pow(2).flatten(1).mean(1))
    torch.testing.assert_close(bits, bits2)


def test_step_for_bits_inverts_bits(proxy):
    x = activations(2, 16, 16, 16, seed=6)
    t = proxy.transform(x)
    target = proxy.bits(t, torch.tensor([2.0, 9.0]))
    step = proxy.step_for_bits(t, target)
    torch.testing.assert_close(proxy.bits(t, step), target, rtol=2e-3, atol=0)


@pytest.mark.parametrize("relaxation", ["straight_through", "noise"])
def test_gradients_flow_to_input_and_step(relaxation):
    proxy = Jpeg2000Proxy(relaxation=relaxation).train()
    x = activations(2, 8, 8, 16, seed=7).requires_grad_(True)
    step = torch.tensor([2.0, 5.0], requires_grad=True)
    rec, bits = proxy(x, step)
    ((rec - x.detach()).pow(2).mean() + 1e-6 * bits.sum()).backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    assert step.grad is not None and torch.isfinite(step.grad).all() and step.grad.abs().sum() > 0
    # the rate alone reaches the features (through the Laplacian scales)
    x.grad = None
    proxy(x, 3.0)[1].sum().backward()
    assert x.grad.abs().sum() > 0


def test_eval_mode_is_deterministic_and_straight_through(proxy):
    x = activations(1, 8, 8, 8, seed=8).requires_grad_(True)
    rec, _ = proxy(x, 4.0)
    torch.testing.assert_close(rec, proxy(x, 4.0)[0])
    rec.sum().backward()
    # identity through every rounding, except at the min and max, which move the whole range
    inside = (x > x.min()) & (x < x.max())
    torch.testing.assert_close(x.grad[inside], torch.ones_like(x)[inside])
    # the reconstruction is equivariant to a·x + b, and so is its gradient's action: Σ ∂/∂b = numel, Σ x·∂/∂x = Σ rec
    torch.testing.assert_close(x.grad.sum(), torch.tensor(float(x.numel())))
    torch.testing.assert_close((x.grad * x.detach()).sum(), rec.detach().sum(), rtol=1e-5, atol=1e-3)


def test_training_noise_differs_from_rounding():
    x = activations(1, 8, 8, 8, seed=9)
    noisy = Jpeg2000Proxy(relaxation="noise").train()(x, 8.0)[0]
    hard = Jpeg2000Proxy().eval()(x, 8.0)[0]
    assert not torch.allclose(noisy, hard)


def real_codec(x, bpe):
    """OpenJPEG round trip of one [C, H, W] tensor: (bits, feature-domain MSE)."""
    q = MinMaxQuantizer(bits=8)
    layout = TileLayout.square(*x.shape)
    quantized = q.quantize(x)
    image = tile(quantized.codes, layout)
    data = encode_codestream(image, image.size / (bpe * x.numel() / 8))
    rec = q.dequantize(untile(decode_codestream(data, image.shape), layout), quantized.side)
    return 8 * len(data), float(((rec - x.numpy()) ** 2).mean())


@pytest.mark.parametrize(("shape", "bpe"), [((64, 16, 32), 0.5), ((128, 8, 16), 1.0)])
def test_bits_near_openjpeg_at_equal_distortion(proxy, shape, bpe):
    x = activations(*shape, seed=10)
    bits, mse = real_codec(x, bpe)
    t = proxy.transform(x[None])
    grid = torch.exp(torch.linspace(math.log(0.3), math.log(300.0), 40))
    mse_grid, bits_grid = proxy.sweep(t, grid)
    log_step = np.interp(math.log(mse), np.log(np.maximum.accumulate(mse_grid[0].numpy())), grid.log().numpy())
    predicted = proxy.bits(t, float(np.exp(log_step)))[0].item()
    assert predicted == pytest.approx(bits, rel=0.25)


def test_default_calibration_is_frozen_and_round_trips(tmp_path):
    cal = ProxyCalibration.default()
    assert cal.features == RATE_FEATURES and cal.codeblock == 32
    with pytest.raises(dataclasses.FrozenInstanceError):
        cal.window = 3
    cal.save(tmp_path / "c.json")
    assert ProxyCalibration.load(tmp_path / "c.json") == cal
    assert Jpeg2000Proxy(tmp_path / "c.json").calibration == cal


def test_bad_inputs_raise_clear_errors(proxy, tmp_path):
    x = activations(1, 8, 8, 8)
    with pytest.raises(CodecError, match=r"\[B, C, H, W\].*\(8, 8, 8\)"):
        proxy(x[0], 1.0)
    with pytest.raises(CodecError, match="floating point"):
        proxy(x.to(torch.int32), 1.0)
    with pytest.raises(CodecError, match="NaN"):
        proxy(x * float("nan"), 1.0)
    with pytest.raises(CodecError, match=r"step must be positive and finite, got \[0.0\]"):
        proxy(x, 0.0)
    with pytest.raises(CodecError, match="positive and finite"):
        proxy(x, -2.0)
    with pytest.raises(CodecError, match=r"shape \[1\]"):
        proxy(x, torch.tensor([1.0, 2.0]))
    with pytest.raises(CodecError, match="step must be a positive number"):
        proxy(x, "big")
    with pytest.raises(CodecError, match=r"steps must have shape"):
        proxy.sweep(proxy.transform(x), torch.ones(2, 3))
    with pytest.raises(CodecError, match="bits must be positive"):
        proxy.step_for_bits(proxy.transform(x), -5.0)
    with pytest.raises(ConfigError, match="relaxation='round'"):
        Jpeg2000Proxy(relaxation="round")
    with pytest.raises(ConfigError, match="16×16 code-blocks"):
        ProxyCalibration(weights=(1.0,) * 5, codeblock=16)
    with pytest.raises(ConfigError, match="5 finite numbers"):
        ProxyCalibration(weights=(1.0, 2.0))
    with pytest.raises(ConfigError, match="cannot read proxy calibration"):
        Jpeg2000Proxy(tmp_path / "missing.json")


def test_forward_in_chunks_equals_one_batch(proxy, monkeypatch):
    import cilight.ci_models.proxy as module

    x = activations(3, 8, 8, 8, seed=11)
    step = torch.tensor([1.0, 3.0, 9.0])
    whole = proxy(x, step)
    monkeypatch.setattr(module, "CHUNK_ELEMENTS", 2 * 8 * 8 * 8)  # two samples per chunk
    chunked = proxy(x, step)
    torch.testing.assert_close(chunked[0], whole[0])
    torch.testing.assert_close(chunked[1], whole[1])


def test_transformed_quantization_mse_is_the_8bit_error(proxy):
    x = activations(2, 12, 8, 8, seed=12)
    t = proxy.transform(x)
    expected = (eight_bit(x) - x).pow(2).flatten(1).mean(1)
    torch.testing.assert_close(t.quantization_mse, expected)
    mse, _ = proxy.sweep(t, [1e-3])
    torch.testing.assert_close(mse[:, 0], expected)
