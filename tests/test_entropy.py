"""Entropy coding with fixed integer tables: the bits the tables allow, round trips, other processes, bad tables."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
from compressai.entropy_models import EntropyBottleneck, GaussianConditional

from cilight.codecs import CodecError
from cilight.codecs.entropy import EntropyTables, range_decode, range_encode
from cilight.errors import ConfigError


@pytest.fixture(scope="module")
def bottleneck():
    torch.manual_seed(0)
    model = EntropyBottleneck(4, init_scale=10)  # an untrained prior spans about ±10: ~20 symbols per row
    model.update(force=True)
    return model


def latent(seed: int = 0, shape=(2, 4, 6, 5)) -> torch.Tensor:
    """A Laplacian latent, scale 3: symbols over a dozen values, a few in the tails."""
    return torch.from_numpy(np.random.default_rng(seed).laplace(0.0, 3.0, shape).astype(np.float32))


def ideal_bits(symbols: np.ndarray, indexes: np.ndarray, tables: EntropyTables) -> float:
    """−Σ log₂ p of ``symbols`` under the integer tables, escapes at their 4-bit chunks: an independent
    account of what an ideal entropy coder would spend (numpy only)."""
    total = 0.0
    for symbol, row in zip(symbols.ravel().tolist(), indexes.ravel().tolist()):
        cdf, n = tables.quantized_cdf[row], int(tables.cdf_length[row])
        value, escape = symbol - int(tables.offset[row]), n - 2
        raw = None if 0 <= value < escape else (-2 * value - 1 if value < 0 else 2 * (value - escape))
        value = escape if raw is not None else value
        total -= np.log2((int(cdf[value + 1]) - int(cdf[value])) / 2**16)
        if raw is not None:
            total += 4 * (1 + (raw.bit_length() + 3) // 4)
    return total


def test_range_coder_spends_the_tables_bits_and_round_trips_exactly(bottleneck):
    tables = EntropyTables.of(bottleneck)
    y = latent(1)
    medians = bottleneck.quantiles[:, 0, 1].detach().view(1, -1, 1, 1)
    symbols = torch.round(y - medians).int().numpy()
    indexes = np.broadcast_to(np.arange(4)[None, :, None, None], symbols.shape)
    strings = bottleneck.compress(y)  # CompressAI's rANS on the same tables: the rate to match
    for i in range(len(y)):
        data = range_encode(symbols[i], indexes[i], tables)
        np.testing.assert_array_equal(range_decode(data, indexes[i], tables), symbols[i])
        ideal = ideal_bits(symbols[i], indexes[i], tables)
        assert ideal <= 8 * len(data) <= ideal * 1.01 + 64  # within 1% + two 32-bit words of the ideal
        assert abs(len(data) - len(strings[i])) <= 0.02 * len(strings[i]) + 8
    far = symbols[0].copy()
    far[0, 0, 0], far[1, 2, 3] = 5000, -70000  # outside every table: the escape, coded in 4-bit chunks
    np.testing.assert_array_equal(range_decode(range_encode(far, indexes[0], tables), indexes[0], tables), far)
    assert range_encode(far[:, :0], indexes[0][:, :0], tables) == b""  # nothing to code: no bytes
    with pytest.raises(CodecError, match="whole 32-bit words"):
        range_decode(range_encode(far, indexes[0], tables)[:-1], indexes[0], tables)


def test_gaussian_conditional_tables():
    model = GaussianConditional(None)
    model.update_scale_table(torch.exp(torch.linspace(np.log(0.11), np.log(64), 16)), force=True)
    tables = EntropyTables.of(model)
    assert tables.rows == 16
    scales = torch.rand(3, 5, 7) * 10 + 0.2
    indexes = model.build_indexes(scales).numpy()
    symbols = torch.round(torch.randn(3, 5, 7) * scales).int().numpy()
    data = range_encode(symbols, indexes, tables)
    ideal = ideal_bits(symbols, indexes, tables)
    assert ideal <= 8 * len(data) <= ideal * 1.01 + 64
    np.testing.assert_array_equal(range_decode(data, indexes, tables), symbols)


def test_probabilities_are_the_integer_steps_exactly(bottleneck):
    tables = EntropyTables.of(bottleneck)
    for row in range(tables.rows):
        n = int(tables.cdf_length[row])
        steps = np.diff(tables.quantized_cdf[row, :n].astype(np.int64))
        np.testing.assert_array_equal(tables.probabilities[row, : n - 1] * 2**16, steps)  # exact in float64
        assert (tables.probabilities[row, n - 1 :] == 0).all()


def test_bytes_from_another_process_decode_bit_exactly(bottleneck, tmp_path):
    """Tables stored once, read by a separate interpreter that encodes: identical bytes, exact decode."""
    tables = EntropyTables.of(bottleneck)
    symbols = torch.round(latent(2)[0]).int().numpy()
    indexes = np.broadcast_to(np.arange(4)[:, None, None], symbols.shape).copy()
    np.savez(tmp_path / "tables.npz", symbols=symbols, indexes=indexes, **tables.arrays())
    script = (
        "import numpy as np, sys\n"
        "from cilight.codecs.entropy import EntropyTables, range_encode\n"
        f"d = np.load({str(tmp_path / 'tables.npz')!r})\n"
        "t = EntropyTables.from_arrays(d)\n"
        f"open({str(tmp_path / 'stream.bin')!r}, 'wb').write(range_encode(d['symbols'], d['indexes'], t))\n"
        "print(t.digest)\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == tables.digest
    data = (tmp_path / "stream.bin").read_bytes()
    assert data == range_encode(symbols, indexes, tables)
    np.testing.assert_array_equal(range_decode(data, indexes, tables), symbols)


def test_tables_are_validated_and_compared_by_content(bottleneck):
    tables = EntropyTables.of(bottleneck)
    assert EntropyTables.from_arrays(tables.arrays("y_"), "y_") == tables
    with pytest.raises(ValueError):
        tables.quantized_cdf[0, 0] = 1  # read-only: a table never changes once fixed
    cdf = tables.quantized_cdf.copy()
    cdf[0, 1] = cdf[0, 2] + 1  # not monotone
    bad = [
        ((cdf, tables.cdf_length, tables.offset), "row 0 is not a CDF"),
        ((tables.quantized_cdf, tables.cdf_length[:2], tables.offset), "one length and one offset per row"),
        ((tables.quantized_cdf.astype(float), tables.cdf_length, tables.offset), "integer array"),
        ((tables.quantized_cdf, tables.cdf_length + 1000, tables.offset), "CDF lengths must lie"),
    ]
    for args, match in bad:
        with pytest.raises(ConfigError, match=match):
            EntropyTables(*args)
    assert tables.medians is not None and tables.medians.shape == (tables.rows,)  # a factorized prior's medians
    for medians in (tables.medians[:2], np.full(tables.rows, np.nan, np.float32), np.zeros(tables.rows, int)):
        with pytest.raises(ConfigError, match="medians must be"):
            EntropyTables(tables.quantized_cdf, tables.cdf_length, tables.offset, medians=medians)
    shifted = EntropyTables(tables.quantized_cdf, tables.cdf_length, tables.offset, medians=tables.medians + 1)
    assert shifted != tables  # the medians are part of what edge and cloud must agree on
    with pytest.raises(ConfigError, match="missing array"):
        EntropyTables.from_arrays({"quantized_cdf": cdf})
    with pytest.raises(ConfigError, match="no CDF tables yet"):
        EntropyTables.of(EntropyBottleneck(2))
    symbols = np.zeros((4, 2, 2), np.int32)
    for indexes, match in ((np.full((4, 2, 2), 4), "indexes must lie in 0–3"), (np.zeros((4, 2)), "same shape"),
                           (np.zeros((4, 2, 2), float), "must be integers")):
        with pytest.raises(CodecError, match=match):
            range_encode(symbols, indexes, tables)
