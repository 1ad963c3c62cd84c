"""L_r (eq 1–5) against an independent numpy/scipy computation, and eq 6 with fixed weights."""

import math

import numpy as np
import pytest
import scipy.fft
import torch

from cilight.ci_models import UncertaintyWeighting, compressibility_loss, disparity_loss
from cilight.errors import ConfigError


def reference_lr(features: np.ndarray) -> float:
    """Eq 1–5 written directly: neighbour differences, scipy's orthonormal DCT-II, mean |T|."""
    f = features.astype(np.float64)
    fx = f.copy()
    fx[..., :, 1:] -= f[..., :, :-1]  # F D_W: column j minus column j-1
    fy = f.copy()
    fy[..., 1:, :] -= f[..., :-1, :]  # D_Hᵀ F: row i minus row i-1
    z = 0.5 * (fx + fy)
    t = scipy.fft.dctn(z, type=2, norm="ortho", axes=(-2, -1))
    per_sample = np.abs(t).sum(axis=(1, 2, 3)) / np.prod(f.shape[1:])
    return float(per_sample.mean())


@pytest.mark.parametrize("shape", [(2, 3, 8, 16), (1, 1, 1, 1), (3, 5, 1, 7), (2, 4, 9, 1), (1, 256, 8, 16), (2, 2, 13, 11)])
def test_compressibility_loss_matches_numpy(shape):
    rng = np.random.default_rng(sum(shape))
    x = rng.normal(size=shape)
    got = compressibility_loss(torch.from_numpy(x)).item()
    assert got == pytest.approx(reference_lr(x), rel=1e-10)
    got32 = compressibility_loss(torch.from_numpy(x).float()).item()
    assert got32 == pytest.approx(reference_lr(x), rel=1e-4)


def test_compressibility_loss_smooth_is_cheaper_than_noise():
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:16, 0:32]
    smooth = np.sin(xx / 6.0 + yy / 9.0)[None, None]
    noise = rng.normal(size=smooth.shape) * smooth.std()
    assert reference_lr(smooth) < 0.5 * reference_lr(noise)
    assert compressibility_loss(torch.from_numpy(smooth)) < 0.5 * compressibility_loss(torch.from_numpy(noise))


def test_compressibility_loss_gradient_is_adjoint_of_sign():
    """dL/dF = L*(sign(T)) / (B·C·H·W), with the paper's convention sign(0) = 1."""
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2, 3, 6, 5))
    x[1] = 0.0  # all-zero sample: T = 0 everywhere, derivative of |·| taken as 1
    xt = torch.from_numpy(x).requires_grad_(True)
    compressibility_loss(xt).backward()

    z = 0.5 * (np.diff(x, axis=-1, prepend=0) + np.diff(x, axis=-2, prepend=0))
    t = scipy.fft.dctn(z, type=2, norm="ortho", axes=(-2, -1))
    s = np.where(t >= 0, 1.0, -1.0) / (x.shape[0] * np.prod(x.shape[1:]))
    g = scipy.fft.idctn(s, type=2, norm="ortho", axes=(-2, -1))  # adjoint of the orthonormal DCT
    # adjoint of the two differences: g_j - g_{j+1}
    gx = g.copy()
    gx[..., :, :-1] -= g[..., :, 1:]
    gy = g.copy()
    gy[..., :-1, :] -= g[..., 1:, :]
    expected = 0.5 * (gx + gy)
    np.testing.assert_allclose(xt.grad.numpy(), expected, rtol=1e-9, atol=1e-12)
    assert np.abs(xt.grad.numpy()[1]).sum() > 0  # zeros still get a gradient


def test_compressibility_loss_rejects_wrong_rank():
    with pytest.raises(ValueError, match=r"\[B, C, H, W\]"):
        compressibility_loss(torch.zeros(3, 4, 5))


def test_uncertainty_weighting_matches_eq6_with_fixed_weights():
    types = {"segmentation": "classification", "disparity": "regression", "reconstruction": "regression",
             "compressibility": "regression"}
    w = {"segmentation": 0.7, "disparity": 0.2, "reconstruction": 1.9, "compressibility": 0.05}
    losses = {"segmentation": 1.3, "disparity": 4.2, "reconstruction": 0.11, "compressibility": 0.6}
    weighting = UncertaintyWeighting(types)
    with torch.no_grad():
        # w = e^{-s} (classification) or e^{-s}/2 (regression)
        for i, name in enumerate(weighting.names):
            scale = 1.0 if types[name] == "classification" else 0.5
            weighting.log_variances[i] = -math.log(w[name] / scale)
    total = weighting({k: torch.tensor(v, dtype=torch.float32) for k, v in losses.items()}).item()
    eq6 = (
        sum(w[k] * losses[k] for k in losses)
        + math.log(math.sqrt(1 / w["segmentation"]))
        + math.log(math.sqrt(1 / (2 * w["disparity"])))
        + math.log(math.sqrt(1 / (2 * w["reconstruction"])))
        + math.log(math.sqrt(1 / (2 * w["compressibility"])))
    )
    assert total == pytest.approx(eq6, rel=1e-6)
    got_w = {k: v.item() for k, v in weighting.weights().items()}
    assert got_w == pytest.approx(w, rel=1e-6)


def test_uncertainty_weighting_learns_the_optimal_weight():
    """For a fixed regression loss L the eq-6 optimum is w = 1/(2L)."""
    weighting = UncertaintyWeighting({"disparity": "regression"})
    opt = torch.optim.Adam(weighting.parameters(), lr=0.05)
    for _ in range(800):
        opt.zero_grad()
        weighting({"disparity": torch.tensor(2.5)}).backward()
        opt.step()
    assert weighting.weights()["disparity"].item() == pytest.approx(1 / (2 * 2.5), rel=1e-3)


def test_uncertainty_weighting_errors():
    with pytest.raises(ConfigError, match="expected one of"):
        UncertaintyWeighting({"a": "ranking"})
    weighting = UncertaintyWeighting({"a": "regression"})
    with pytest.raises(ValueError, match="expected losses"):
        weighting({"b": torch.tensor(1.0)})


def test_disparity_loss_ignores_invalid_pixels():
    pred = torch.tensor([[1.0, 2.0], [3.0, 100.0]])
    target = torch.tensor([[1.5, 2.0], [1.0, 0.0]])
    valid = torch.tensor([[True, True], [True, False]])
    assert disparity_loss(pred, target, valid).item() == pytest.approx((0.25 + 0 + 4) / 3)
    assert disparity_loss(pred, target, torch.zeros_like(valid)).item() == 0.0
