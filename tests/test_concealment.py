"""Error concealment (thesis §3.2): the four fills against numpy, loss masks, bad input."""

import numpy as np
import pytest
import torch

from cilight.codecs import DatasetMean, channel_means, conceal, loss_mask
from cilight.errors import ConfigError


@pytest.fixture
def data():
    g = torch.Generator().manual_seed(0)
    samples = torch.randn(50, 4, 5, 6, generator=g) + torch.arange(4.0).view(4, 1, 1)
    return samples, samples[0] * 2 + 1


def test_dataset_mean_accumulates_in_batches(data):
    samples, _ = data
    running = DatasetMean()
    for chunk in samples.split(7):
        running.update(chunk)
    np.testing.assert_allclose(running.compute().numpy(), samples.numpy().astype(np.float64).mean(0), atol=1e-6)


@pytest.mark.parametrize("unit", ["element", "channel"])
def test_loss_mask_drops_the_exact_fraction(unit):
    mask = loss_mask((3, 8, 4, 4), 0.25, unit, torch.Generator().manual_seed(1))
    assert mask.shape == (3, 8, 4, 4) and mask.dtype == torch.bool
    lost = (~mask).flatten(1).sum(1)
    assert (lost == 32).all()  # 25% of 128 elements, or 2 of 8 whole channels
    if unit == "channel":
        per_channel = (~mask).flatten(2).all(2) | mask.flatten(2).all(2)
        assert per_channel.all()  # channels are lost whole


def test_each_method_fills_like_the_thesis(data):
    samples, tensor = data
    mu = samples.mean(0)
    mask = loss_mask(tensor.shape, 0.3, generator=torch.Generator().manual_seed(2))
    t_mu = channel_means(tensor)
    t, m, mu_np = tensor.numpy(), mask.numpy(), mu.numpy()
    expected = {
        "zero": np.zeros_like(t),
        "channel_mean": np.broadcast_to(t.mean((1, 2))[:, None, None], t.shape),
        "dataset_mean": mu_np,
        "hybrid": mu_np + (t.mean((1, 2)) - mu_np.mean((1, 2)))[:, None, None],
    }
    for method, fill in expected.items():
        out = conceal(tensor * mask, mask, method, channel_mean=t_mu, dataset_mean=mu)
        np.testing.assert_allclose(out.numpy(), np.where(m, t, fill), atol=1e-5)


def test_mean_fills_beat_zero_on_shifted_channels(data):
    samples, _ = data
    mu = samples.mean(0)
    tensor = torch.randn(4, 5, 6, generator=torch.Generator().manual_seed(3)) + torch.arange(4.0).view(4, 1, 1)
    mask = loss_mask(tensor.shape, 0.5, "channel", torch.Generator().manual_seed(4))
    err = {
        m: (conceal(tensor, mask, m, channel_mean=channel_means(tensor), dataset_mean=mu) - tensor).pow(2).mean().item()
        for m in ("zero", "channel_mean", "dataset_mean", "hybrid")
    }
    assert max(err["channel_mean"], err["dataset_mean"], err["hybrid"]) < err["zero"]


def test_bad_input_is_named():
    x = torch.zeros(2, 3, 3)
    mask = torch.ones(2, 3, 3, dtype=torch.bool)
    with pytest.raises(ConfigError, match="method='median'"):
        conceal(x, mask, "median")
    with pytest.raises(ConfigError, match=r"needs dataset_mean of shape \(2, 3, 3\)"):
        conceal(x, mask, "dataset_mean")
    with pytest.raises(ConfigError, match=r"needs channel_mean of shape \(2,\)"):
        conceal(x, mask, "hybrid", dataset_mean=x)
    with pytest.raises(ConfigError, match="bool tensor"):
        conceal(x, mask.float(), "zero")
    with pytest.raises(ConfigError, match="fraction=1.5"):
        loss_mask((2, 3, 3), 1.5)
    with pytest.raises(ConfigError, match="unit='row'"):
        loss_mask((2, 3, 3), 0.1, "row")
    with pytest.raises(ConfigError, match="seen no batches"):
        DatasetMean().compute()
