"""Learned bottlenecks: shapes, the parameter split, and the rate term against the real bytes of a trained toy."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cilight.ci_models.bottleneck import BOTTLENECKS, make_bottleneck
from cilight.codecs.entropy import range_decode, range_encode
from cilight.errors import ConfigError


def features(n: int = 32, channels: int = 16, h: int = 4, w: int = 8, seed: int = 0) -> torch.Tensor:
    """Correlated channels (a few sources mixed), smooth in space: something a bottleneck can compress."""
    g = torch.Generator().manual_seed(seed)
    sources = torch.nn.functional.interpolate(torch.randn(n, 4, h // 2 + 1, w // 2 + 1, generator=g), size=(h, w),
                                              mode="bilinear", align_corners=False)
    mixing = torch.randn(4, channels, generator=torch.Generator().manual_seed(99))  # the same for every sample set
    return torch.einsum("bshw,sc->bchw", sources, mixing) * 2


@pytest.mark.parametrize("name", list(BOTTLENECKS))
@pytest.mark.parametrize("size", [(4, 8), (5, 7)])
def test_shapes_and_parameter_split(name, size):
    torch.manual_seed(0)
    model = make_bottleneck(name, 16, 6)
    out = model(features(3, 16, *size))
    assert out.features.shape == (3, 16, *size)
    assert set(out.likelihoods) == set(model.coding_order)
    assert out.bits().shape == (3,) and (out.bits() > 0).all()
    main, aux = model.main_parameters(), model.aux_parameters()
    assert aux and {id(p) for p in main}.isdisjoint(id(p) for p in aux)
    assert len(main) + len(aux) == len(list(model.parameters()))
    densities = {id(p) for p in model.density_parameters()}
    assert densities and densities <= {id(p) for p in main}  # the factorized prior's (y, or the hyperprior's z)
    assert model.aux_loss().requires_grad


def test_bad_names_and_sizes():
    with pytest.raises(ConfigError, match="bottleneck='gaussian'"):
        make_bottleneck("gaussian", 16, 4)
    with pytest.raises(ConfigError, match="bottleneck_channels=0"):
        make_bottleneck("factorized", 16, 0)


def code(model, x: torch.Tensor) -> tuple[dict[str, list[bytes]], dict[str, torch.Tensor]]:
    """Edge and cloud by hand: per latent, symbols → one string per sample → symbols, in coding order."""
    tables = model.fix_tables()
    strings = {name: [] for name in model.coding_order}
    decoded = {name: [] for name in model.coding_order}
    with torch.no_grad():
        symbols = model.symbols(x, tables)
        for i in range(len(x)):
            got = {}
            for name in model.coding_order:
                shape = symbols[name][i : i + 1].shape
                rows = model.rows(name, {k: v[i : i + 1] for k, v in symbols.items()}, shape, tables)
                piece = range_encode(symbols[name][i].numpy(), rows[0].numpy(), tables[name])
                # the cloud: rows from what it has decoded so far, never from the edge's values
                rows = model.rows(name, got, shape, tables)[0].numpy()
                got[name] = torch.from_numpy(range_decode(piece, rows, tables[name]))[None]
                strings[name].append(piece)
                decoded[name].append(got[name])
    return strings, {k: torch.cat(v) for k, v in decoded.items()}, tables


@pytest.mark.parametrize("name", list(BOTTLENECKS))
def test_rate_term_matches_the_real_bytes_of_a_trained_toy(name):
    torch.manual_seed(1)
    model = make_bottleneck(name, 8, 4)
    main = torch.optim.Adam(model.main_parameters(), lr=1e-2)
    aux = torch.optim.Adam(model.aux_parameters(), lr=1e-2)
    train = features(32, 8, seed=2)
    for _ in range(120):
        out = model(train)
        loss = 20 * torch.nn.functional.mse_loss(out.features, train) + out.bits().mean() / train[0].numel()
        main.zero_grad()
        loss.backward()
        main.step()
        aux.zero_grad()
        model.aux_loss().backward()
        aux.step()
    model.eval()
    test = features(32, 8, seed=3)
    strings, decoded, tables = code(model, test)
    with torch.no_grad():
        out = model(test)
        symbols = model.symbols(test, tables)
        np.testing.assert_allclose(model.reconstruct(decoded, tables).numpy(), out.features.numpy(), rtol=1e-5, atol=1e-5)
    for key in symbols:
        assert torch.equal(decoded[key], symbols[key])  # bit-exact through the bytes
    for key, pieces in strings.items():
        predicted = float(-torch.log2(out.likelihoods[key]).sum())
        real = 8 * sum(map(len, pieces))  # the range coder's strings are whole 32-bit words, its flush included
        if predicted / len(pieces) > 200:  # −log₂ p is the real rate within a few percent
            assert -0.02 < (real - predicted) / predicted < 0.04, (key, real, predicted)
        else:  # a short string (the hyperprior's z): up to two words beyond −log₂ p
            assert real <= predicted + 64 * len(pieces), (key, real, predicted)
    relative = float(((out.features - test) ** 2).mean() / (test**2).mean())
    assert relative < 0.5  # it reconstructs the features, not just a constant
