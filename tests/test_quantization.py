"""The Q-layer (§2.1): noise in training, rounding in evaluation, range, gradient, side info."""

import numpy as np
import pytest
import torch

from cilight.ci_models import QuantizationLayer
from cilight.errors import ConfigError


def numpy_quantize(x: np.ndarray, bits: int) -> np.ndarray:
    out = np.empty_like(x)
    for i, s in enumerate(x):
        lo, hi = s.min(), s.max()
        step = (hi - lo) / (2**bits - 1)
        out[i] = lo + np.round((s - lo) / step) * step
    return out


@pytest.mark.parametrize("bits", [2, 4, 8])
def test_eval_rounds_like_numpy(bits):
    x = torch.randn(3, 4, 5, 6, dtype=torch.float64) * torch.tensor([1.0, 10.0, 0.01]).view(3, 1, 1, 1).double()
    q = QuantizationLayer(bits).eval()
    np.testing.assert_allclose(q(x).numpy(), numpy_quantize(x.numpy(), bits), rtol=0, atol=1e-9)


def test_training_adds_bounded_noise_not_rounding():
    torch.manual_seed(0)
    x = torch.randn(2, 8, 16, 16, dtype=torch.float64)
    q = QuantizationLayer(8).train()
    y = q(x)
    step = ((x.flatten(1).max(1).values - x.flatten(1).min(1).values) / 255).view(-1, 1, 1, 1)
    err = (y - x) / step
    assert err.abs().max() <= 0.5 + 1e-9
    assert err.mean().abs() < 0.02  # zero-mean
    assert err.std().item() == pytest.approx(1 / np.sqrt(12), rel=0.05)  # uniform on one step
    assert not torch.allclose(y, torch.from_numpy(numpy_quantize(x.numpy(), 8)))


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_gradient_passes_straight_through(mode):
    x = torch.randn(2, 3, 4, 4, requires_grad=True)
    q = QuantizationLayer(8)
    q.train(mode == "train")
    (q(x) * torch.arange(96.0).view(2, 3, 4, 4)).sum().backward()
    torch.testing.assert_close(x.grad, torch.arange(96.0).view(2, 3, 4, 4))


def test_encode_covers_full_range_and_decodes_within_half_step():
    x = torch.randn(4, 16, 8, 8) * 3 + 1
    q = QuantizationLayer(8)
    stream = q.encode(x)
    assert stream.codes.dtype == torch.uint8
    flat = stream.codes.flatten(1)
    assert (flat.min(1).values == 0).all() and (flat.max(1).values == 255).all()
    step = (stream.maximum - stream.minimum) / 255
    err = (q.decode(stream) - x).abs().flatten(1).max(1).values
    assert (err <= step / 2 + 1e-5).all()
    torch.testing.assert_close(q.eval()(x), q.decode(stream))


def test_constant_stream_is_finite():
    x = torch.full((2, 3, 4, 4), 7.5)
    q = QuantizationLayer(8)
    assert torch.isfinite(q.train()(x)).all()
    torch.testing.assert_close(q.eval()(x), x)
    torch.testing.assert_close(q.decode(q.encode(x)), x)


def test_more_than_8_bits_uses_wider_codes():
    stream = QuantizationLayer(10).encode(torch.randn(1, 2, 3, 3))
    assert stream.codes.dtype == torch.int32 and int(stream.codes.max()) == 1023


@pytest.mark.parametrize("bits", [0, 17, 8.0])
def test_bad_bits(bits):
    with pytest.raises(ConfigError, match="bits"):
        QuantizationLayer(bits)
