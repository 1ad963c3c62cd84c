"""Error concealment (thesis §3.2): the four fills against numpy, loss masks, bad input.

Concealment is numpy in and out (the cloud conceals with the edge install's dependencies); tensors are
accepted as input, which :func:`test_tensors_are_accepted_and_give_the_same_fill` checks."""

import numpy as np
import pytest
import torch

from cilight.codecs import DatasetMean, channel_means, conceal, loss_mask
from cilight.errors import ConfigError


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    samples = (rng.standard_normal((50, 4, 5, 6)) + np.arange(4.0).reshape(4, 1, 1)).astype(np.float32)
    return samples, samples[0] * 2 + 1


def test_dataset_mean_accumulates_in_batches(data):
    samples, _ = data
    running = DatasetMean()
    for start in range(0, len(samples), 7):
        running.update(samples[start : start + 7])
    mean = running.compute()
    assert isinstance(mean, np.ndarray) and mean.dtype == np.float32 and running.count == 50
    np.testing.assert_allclose(mean, samples.astype(np.float64).mean(0), atol=1e-6)
    from_tensors = DatasetMean()  # tensors are accepted batch by batch
    for start in range(0, len(samples), 7):
        from_tensors.update(torch.from_numpy(samples[start : start + 7]))
    np.testing.assert_array_equal(from_tensors.compute(), mean)


@pytest.mark.parametrize("unit", ["element", "channel"])
def test_loss_mask_drops_the_exact_fraction(unit):
    mask = loss_mask((3, 8, 4, 4), 0.25, unit, np.random.default_rng(1))
    assert isinstance(mask, np.ndarray) and mask.shape == (3, 8, 4, 4) and mask.dtype == np.bool_
    lost = (~mask).reshape(3, -1).sum(1)
    assert (lost == 32).all()  # 25% of 128 elements, or 2 of 8 whole channels
    if unit == "channel":
        per_channel = (~mask).reshape(3, 8, -1).all(2) | mask.reshape(3, 8, -1).all(2)
        assert per_channel.all()  # channels are lost whole
    mask[0, 0, 0, 0] = not mask[0, 0, 0, 0]  # a writable copy, not a broadcast view


def test_loss_mask_is_repeatable_and_random():
    def draw(seed):
        return loss_mask((2, 4, 3, 3), 0.5, generator=np.random.default_rng(seed))

    np.testing.assert_array_equal(draw(7), draw(7))
    assert not np.array_equal(draw(7), draw(8))
    counts = sum((~loss_mask((1, 4, 3, 3), 0.25)).astype(int) for _ in range(400))  # no generator: fresh entropy
    assert counts.min() > 0  # every element is lost sometimes


def test_each_method_fills_like_the_thesis(data):
    samples, tensor = data
    mu = samples.mean(0)
    mask = loss_mask(tensor.shape, 0.3, generator=np.random.default_rng(2))
    t_mu = channel_means(tensor)
    np.testing.assert_allclose(t_mu, tensor.mean((1, 2)), rtol=1e-6)
    expected = {
        "zero": np.zeros_like(tensor),
        "channel_mean": np.broadcast_to(tensor.mean((1, 2))[:, None, None], tensor.shape),
        "dataset_mean": mu,
        "hybrid": mu + (tensor.mean((1, 2)) - mu.mean((1, 2)))[:, None, None],
    }
    for method, fill in expected.items():
        out = conceal(tensor * mask, mask, method, channel_mean=t_mu, dataset_mean=mu)
        assert isinstance(out, np.ndarray) and out.dtype == tensor.dtype
        np.testing.assert_allclose(out, np.where(mask, tensor, fill), atol=1e-5)


def test_tensors_are_accepted_and_give_the_same_fill(data):
    samples, tensor = data
    mu = samples.mean(0)
    mask = loss_mask(tensor.shape, 0.3, generator=np.random.default_rng(5))
    t = torch.from_numpy(tensor)
    np.testing.assert_array_equal(channel_means(t), channel_means(tensor))
    for method in ("zero", "channel_mean", "dataset_mean", "hybrid"):
        out = conceal(t * torch.from_numpy(mask), torch.from_numpy(mask), method, channel_mean=channel_means(t),
                      dataset_mean=torch.from_numpy(mu))
        assert isinstance(out, np.ndarray)
        np.testing.assert_array_equal(out, conceal(tensor * mask, mask, method, channel_mean=channel_means(tensor),
                                                   dataset_mean=mu))


def test_mean_fills_beat_zero_on_shifted_channels(data):
    samples, _ = data
    mu = samples.mean(0)
    tensor = (np.random.default_rng(3).standard_normal((4, 5, 6)) + np.arange(4.0).reshape(4, 1, 1)).astype(np.float32)
    mask = loss_mask(tensor.shape, 0.5, "channel", np.random.default_rng(4))
    err = {
        m: float(((conceal(tensor, mask, m, channel_mean=channel_means(tensor), dataset_mean=mu) - tensor) ** 2).mean())
        for m in ("zero", "channel_mean", "dataset_mean", "hybrid")
    }
    assert max(err["channel_mean"], err["dataset_mean"], err["hybrid"]) < err["zero"]


def test_bad_input_is_named():
    x = np.zeros((2, 3, 3), np.float32)
    mask = np.ones((2, 3, 3), dtype=bool)
    with pytest.raises(ConfigError, match="method='median'"):
        conceal(x, mask, "median")
    with pytest.raises(ConfigError, match=r"needs dataset_mean of shape \(2, 3, 3\)"):
        conceal(x, mask, "dataset_mean")
    with pytest.raises(ConfigError, match=r"needs channel_mean of shape \(2,\)"):
        conceal(x, mask, "hybrid", dataset_mean=x)
    with pytest.raises(ConfigError, match="bool tensor"):
        conceal(x, mask.astype(np.float32), "zero")
    with pytest.raises(ConfigError, match="bool tensor"):
        conceal(torch.from_numpy(x), torch.ones(2, 3, 3), "zero")
    with pytest.raises(ConfigError, match="fraction=1.5"):
        loss_mask((2, 3, 3), 1.5)
    with pytest.raises(ConfigError, match="unit='row'"):
        loss_mask((2, 3, 3), 0.1, "row")
    with pytest.raises(ConfigError, match=r"expected a numpy.random.Generator \(np.random.default_rng\(seed\)\), got Generator"):
        loss_mask((2, 3, 3), 0.1, generator=torch.Generator().manual_seed(0))
    with pytest.raises(ConfigError, match="seen no batches"):
        DatasetMean().compute()
    with pytest.raises(ConfigError, match=r"\[B, C, H, W\] batches"):
        DatasetMean().update(x)
