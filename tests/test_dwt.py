"""The CDF 9/7 DWT of JPEG2000 (ci_models/dwt.py) against an independent numpy reference."""

import numpy as np
import pytest
import torch

from cilight.ci_models.dwt import Pyramid, analyze, dwt2, idwt2, synthesis_norm, synthesize
from cilight.codecs.errors import CodecError

# Analysis filter taps of the 9-7 irreversible transform (ISO/IEC 15444-1 Annex F),
# h0 centred on an even sample (low pass), h1 centred on an odd sample (high pass).
H0 = {0: 0.602949018236358, 1: 0.266864118442872, 2: -0.078223266528988, 3: -0.016864118442875, 4: 0.026748757410810}
H1 = {0: 1.115087052456994, 1: -0.591271763114247, 2: -0.057543526228500, 3: 0.091271763114249}
# OpenJPEG's opj_dwt_norms_real (level 1…5), for its own band scaling: ×1 LL, ×2 HL/LH, ×4 HH
OPENJPEG_NORMS = {
    "LL": (1.965, 4.177, 8.403, 16.90, 33.84),
    "HL": (2.022, 3.989, 8.355, 17.04, 34.27),
    "HH": (2.080, 3.865, 8.307, 17.18, 34.71),
}


def symmetric(x: np.ndarray, i: int) -> float:
    """Whole-sample symmetric extension (Annex F.3.7): mirror without repeating the edge."""
    n = len(x)
    if n == 1:
        return x[0]
    period = 2 * (n - 1)
    i %= period
    return x[period - i] if i >= n else x[i]


def reference_analyze(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One level by direct convolution with the 9-7 analysis filters on the extended signal."""
    n = len(x)
    if n == 1:
        return x.copy(), x[:0].copy()
    low = [
        sum(c * (symmetric(x, 2 * k + j) + (symmetric(x, 2 * k - j) if j else 0)) for j, c in H0.items())
        for k in range((n + 1) // 2)
    ]
    high = [
        sum(c * (symmetric(x, 2 * k + 1 + j) + (symmetric(x, 2 * k + 1 - j) if j else 0)) for j, c in H1.items())
        for k in range(n // 2)
    ]
    return np.array(low), np.array(high)


def reference_dwt2(x: np.ndarray, levels: int) -> list[np.ndarray]:
    """Bands LL, then (HL, LH, HH) coarsest first, separably with :func:`reference_analyze`."""
    details = []
    ll = x
    for _ in range(levels):
        rows = [reference_analyze(r) for r in ll]  # horizontal
        low = np.array([r[0] for r in rows])
        high = np.array([r[1] for r in rows]).reshape(ll.shape[0], -1)

        def vertical(a):
            cols = [reference_analyze(c) for c in a.T]
            return np.array([c[0] for c in cols]).T, np.array([c[1] for c in cols]).reshape(a.shape[1], -1).T

        ll, lh = vertical(low)
        hl, hh = vertical(high)
        details.append((hl, lh, hh))
    return [ll] + [b for level in reversed(details) for b in level]


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 6, 7, 8, 9, 16, 17, 31, 64])
def test_1d_matches_direct_convolution_with_the_9_7_filters(n):
    x = np.random.default_rng(n).normal(size=n)
    low, high = analyze(torch.from_numpy(x))
    ref_low, ref_high = reference_analyze(x)
    assert low.shape == (-(-n // 2),) and high.shape == (n // 2,)  # ⌈n/2⌉ low, ⌊n/2⌋ high
    np.testing.assert_allclose(low.numpy(), ref_low, atol=1e-9)
    np.testing.assert_allclose(high.numpy(), ref_high, atol=1e-9)


@pytest.mark.parametrize(("shape", "levels"), [((8, 8), 1), ((13, 22), 2), ((32, 19), 3), ((6, 41), 4)])
def test_2d_multilevel_matches_reference(shape, levels):
    x = np.random.default_rng(1).normal(size=shape)
    pyramid = dwt2(torch.from_numpy(x), levels)
    got = [t.numpy() for _, _, t in pyramid.bands()]
    ref = reference_dwt2(x, levels)
    assert [g.shape for g in got] == [r.shape for r in ref]
    for g, r in zip(got, ref):
        np.testing.assert_allclose(g, r, atol=1e-9)


@pytest.mark.parametrize("shape", [(1, 1), (1, 7), (2, 3), (5, 7), (16, 16), (33, 20), (64, 47), (3, 96, 80)])
@pytest.mark.parametrize("levels", [0, 1, 2, 4])
def test_perfect_reconstruction(shape, levels):
    x = torch.randn(*shape, dtype=torch.float64)
    np.testing.assert_allclose(idwt2(dwt2(x, levels)).numpy(), x.numpy(), atol=1e-10)


def test_1d_perfect_reconstruction_and_batching():
    x = torch.randn(4, 3, 37, dtype=torch.float64)
    low, high = analyze(x)
    torch.testing.assert_close(synthesize(low, high), x)
    torch.testing.assert_close(analyze(x[2, 1])[0], low[2, 1])  # batch elements are independent


def test_dc_gain_one_and_constant_signal_has_no_detail():
    x = torch.full((20, 24), 7.0, dtype=torch.float64)
    p = dwt2(x, 2)
    torch.testing.assert_close(p.ll, torch.full_like(p.ll, 7.0))
    for bands in p.details:
        for t in bands:
            assert t.abs().max() < 1e-12


def test_gradients_flow_and_match_finite_differences():
    x = torch.randn(2, 11, 14, dtype=torch.float64, requires_grad=True)
    weights = [torch.randn_like(t) for _, _, t in dwt2(x.detach(), 2).bands()]

    def f(x):
        return sum((w * t).sum() for w, (_, _, t) in zip(weights, dwt2(x, 2).bands()))

    assert torch.autograd.gradcheck(f, (x,))
    y = torch.randn(9, 10, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda y: idwt2(dwt2(y, 2).map(lambda n, l, t: t * 0.5)).sum(), (y,))


def test_synthesis_norms_agree_with_openjpeg_table():
    scale = {"LL": 1, "HL": 2, "HH": 4}  # OpenJPEG keeps HL/LH ×2 and HH ×4 larger (its high band is 2/K)
    for name, norms in OPENJPEG_NORMS.items():
        for level, expected in enumerate(norms, 1):
            assert synthesis_norm(name, level) * scale[name] == pytest.approx(expected, rel=0.015)
    assert synthesis_norm("LH", 3) == synthesis_norm("HL", 3)


def test_synthesis_norm_is_energy_of_the_basis_function():
    p = dwt2(torch.zeros(64, 64, dtype=torch.float64), 3)
    impulse = p.map(lambda n, l, t: torch.zeros_like(t))
    hl = impulse.details[1][0]
    hl[hl.shape[0] // 2, hl.shape[1] // 2] = 1.0
    image = idwt2(impulse)
    assert image.norm().item() == pytest.approx(synthesis_norm("HL", 2), rel=1e-9)


def test_pyramid_map_and_bands_keep_layout():
    p = dwt2(torch.randn(2, 30, 40), 3)
    assert isinstance(p, Pyramid) and p.levels == 3 and p.shape == (30, 40)
    names = [(n, l) for n, l, _ in p.bands()]
    assert names[0] == ("LL", 3) and names[1:4] == [("HL", 3), ("LH", 3), ("HH", 3)] and names[-1] == ("HH", 1)
    doubled = p.map(lambda n, l, t: 2 * t)
    torch.testing.assert_close(idwt2(doubled), 2 * idwt2(p))


def test_bad_inputs_raise_codec_error():
    with pytest.raises(CodecError, match="floating-point"):
        dwt2(torch.zeros(4, 4, dtype=torch.int64), 1)
    with pytest.raises(CodecError, match="levels"):
        dwt2(torch.zeros(4, 4), -1)
    with pytest.raises(CodecError, match=r"\[\.\.\., H, W\]"):
        dwt2(torch.zeros(4), 1)
    with pytest.raises(CodecError, match="low and"):
        synthesize(torch.zeros(5), torch.zeros(2))
    with pytest.raises(CodecError, match="no subband"):
        synthesis_norm("XX", 1)
