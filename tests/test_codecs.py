"""Feature codecs: quantizers and tiling against numpy, the container, round trips, rate control,
golden streams, and a fuzz corpus of bad bytes.

The byte path is numpy (the edge install has no torch): features go in as numpy arrays, and codes,
side information and decoded features come back as numpy arrays. Torch tensors are still accepted as
input (training calls the same code); the tests that pass tensors check that, and
:func:`test_numpy_and_torch_inputs_give_the_same_stream` that either input gives the same bytes."""

from __future__ import annotations

import math
import struct
import zlib

import numpy as np
import pytest
import torch

from cilight.codecs import (
    CODECS,
    HEADER_BYTES,
    CodecError,
    TileLayout,
    container,
    decode,
    get_codec,
    get_quantizer,
    jpeg2000,
    tile,
    untile,
)
from cilight.errors import ConfigError


def smooth_features(channels=24, height=12, width=20, seed=0, dtype="float32") -> np.ndarray:
    """Spatially correlated activations with per-channel scale and offset, like a ReLU-free split.

    A numpy array of ``dtype`` (by name); drawn from torch's generator so the values, and the margins
    the rate and error thresholds below were set on, are those of the tensors these tests used to code."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(channels, height, width, generator=g, dtype=torch.float64)
    x = x.cumsum(-1).cumsum(-2) / math.sqrt(height * width)
    x = x * torch.rand(channels, 1, 1, generator=g, dtype=torch.float64) * 3 + torch.randn(channels, 1, 1, generator=g)
    return x.numpy().astype(dtype)


# -- quantizers ------------------------------------------------------------------------------


def numpy_codes(x: np.ndarray, low, high, levels):
    return np.clip(np.round((x - low) / ((high - low) / levels)), 0, levels)


@pytest.mark.parametrize("bits", [1, 4, 8, 12])
def test_minmax_quantizer_matches_numpy(bits):
    x = smooth_features(dtype="float64")
    q = get_quantizer("minmax", bits=bits).quantize(x)
    levels = 2**bits - 1
    expected = numpy_codes(x, x.min(), x.max(), levels)
    assert isinstance(q.codes, np.ndarray) and q.codes.shape == x.shape
    assert np.mean(q.codes == expected) > 0.999  # float32 vs float64 ties may differ
    assert q.codes.dtype == (np.uint8 if bits <= 8 else np.int32)
    np.testing.assert_allclose(q.side, [x.min(), x.max()], rtol=1e-6)


def test_channel_quantizer_is_baf_eq4_with_float16_bounds_that_cover_the_data():
    x = smooth_features(seed=1, dtype="float64")
    q = get_quantizer("channel", bits=8)
    out = q.quantize(torch.from_numpy(x))  # a tensor is accepted (training quantizes tensors)
    low, high = out.side[:24].astype(np.float64), out.side[24:].astype(np.float64)
    assert out.side.dtype == np.float16 and out.side.nbytes == 24 * 4  # C·32 bits of side info
    assert (low <= x.reshape(24, -1).min(1)).all() and (high >= x.reshape(24, -1).max(1)).all()
    expected = numpy_codes(x, low[:, None, None], high[:, None, None], 255)
    assert out.codes.dtype == np.uint8 and np.mean(out.codes == expected) > 0.999
    step = (high - low) / 255
    values = q.dequantize(out.codes, out.side)
    assert isinstance(values, np.ndarray) and values.dtype == np.float32
    err = np.abs(values - x)
    assert (err <= step[:, None, None] / 2 + 1e-5).all()


def test_clip_quantizer_uses_thesis_bins_with_midpoint_reconstruction():
    x = np.random.default_rng(2).standard_normal((8, 16, 16))
    q = get_quantizer("clip", bits=2, width=1.5)  # 4 bins over μ ± 1.5σ
    out = q.quantize(x)
    mu, sigma = x.mean(), x.std()
    edges = mu - 1.5 * sigma + np.arange(5) * 3 * sigma / 4
    expected_codes = np.clip(np.digitize(x, edges[1:-1]), 0, 3)
    assert np.mean(out.codes == expected_codes) > 0.999
    midpoints = (edges[:-1] + edges[1:]) / 2
    np.testing.assert_allclose(q.dequantize(out.codes, out.side), midpoints[out.codes], atol=1e-5)


def test_quantizers_reject_bad_input():
    with pytest.raises(ConfigError, match="bits=0"):
        get_quantizer("minmax", bits=0)
    with pytest.raises(ConfigError, match="expected one of minmax, channel, clip"):
        get_quantizer("lloyd")
    with pytest.raises(ConfigError, match="width=-1"):
        get_quantizer("clip", width=-1)
    with pytest.raises(CodecError, match=r"shape \[C, H, W\]"):
        get_quantizer().quantize(torch.zeros(2, 3, 4, 5))
    with pytest.raises(CodecError, match="NaN or infinite"):
        get_quantizer().quantize(torch.tensor([[[float("nan")]]]))
    with pytest.raises(CodecError, match="float16"):
        get_quantizer("channel").quantize(torch.full((1, 2, 2), 1e6))
    # the same checks on numpy input, and input that is no array at all
    with pytest.raises(CodecError, match=r"shape \[C, H, W\]"):
        get_quantizer().quantize(np.zeros((2, 3, 4, 5), np.float32))
    with pytest.raises(CodecError, match="NaN or infinite"):
        get_quantizer().quantize(np.full((1, 2, 2), np.inf, np.float32))
    with pytest.raises(CodecError, match="floating point"):
        get_quantizer().quantize(np.zeros((1, 2, 2), np.uint8))
    with pytest.raises(CodecError, match="float16"):
        get_quantizer("channel").quantize(np.full((1, 2, 2), 1e6))
    with pytest.raises(CodecError, match=r"array of shape \[C, H, W\] \(numpy or torch\), got list"):
        get_quantizer().quantize([[[1.0]]])


def test_constant_tensor_round_trips():
    x = np.full((3, 4, 4), 2.5, np.float32)
    for kind in ("minmax", "channel", "clip"):
        q = get_quantizer(kind)
        out = q.quantize(x)
        values = q.dequantize(out.codes, out.side)
        assert values.dtype == np.float32 and np.isfinite(values).all()
        np.testing.assert_allclose(values, x, atol=1e-3, rtol=0)


# -- tiling ----------------------------------------------------------------------------------


def numpy_tile(x: np.ndarray, rows: int, cols: int) -> np.ndarray:
    c, h, w = x.shape
    image = np.full((rows * h, cols * w), x.mean(), dtype=x.dtype)
    for k in range(c):
        r, col = divmod(k, cols)
        image[r * h : (r + 1) * h, col * w : (col + 1) * w] = x[k]
    return image


@pytest.mark.parametrize("kind", ["numpy", "torch"])
@pytest.mark.parametrize("channels", [1, 3, 16, 37, 64, 512])
@pytest.mark.parametrize("tiling", ["square", "power_of_two"])
def test_tiling_matches_numpy_and_inverts(channels, tiling, kind):
    """One definition of the grid for numpy (the byte path) and torch (the proxy): the same kind comes out."""
    rng = np.random.default_rng(channels)
    x, batch = rng.standard_normal((channels, 5, 7)), rng.standard_normal((2, 3, channels, 5, 7)).astype(np.float32)
    wrap = torch.from_numpy if kind == "torch" else np.asarray
    array_type = torch.Tensor if kind == "torch" else np.ndarray
    layout = TileLayout.named(tiling, channels, 5, 7)
    image = tile(wrap(x), layout)
    assert isinstance(image, array_type) and image.dtype == wrap(x).dtype
    np.testing.assert_allclose(np.asarray(image), numpy_tile(x, layout.rows, layout.cols))
    back = untile(image, layout)
    assert isinstance(back, array_type)
    np.testing.assert_array_equal(np.asarray(back), x)
    again = untile(tile(wrap(batch), layout), layout)
    assert isinstance(again, array_type)
    np.testing.assert_array_equal(np.asarray(again), batch)


@pytest.mark.parametrize("kind", ["numpy", "torch"])
def test_tiling_integer_codes_pads_with_the_rounded_mean(kind):
    """Codes are tiled as they are coded: padding cells hold the rounded per-sample mean, in the codes' dtype."""
    codes = (np.arange(3 * 2 * 2).reshape(3, 2, 2) * 20).astype(np.uint8)
    codes[0, 0, 0] = 3
    assert codes.mean() == 110.25
    layout = TileLayout.square(3, 2, 2)
    assert layout.padding == 1
    image = tile(torch.from_numpy(codes) if kind == "torch" else codes, layout)
    assert str(image.dtype).removeprefix("torch.") == "uint8"
    expected = numpy_tile(codes.astype(np.float64), layout.rows, layout.cols)
    assert (expected == 110.25).sum() == 4  # the one empty 2×2 cell
    expected[expected == 110.25] = 110
    np.testing.assert_array_equal(np.asarray(image), expected.astype(np.uint8))


def test_square_tiling_is_near_square_and_power_of_two_follows_baf():
    for c, h, w in [(512, 8, 16), (256, 16, 32), (128, 32, 64), (64, 64, 128), (37, 5, 7)]:
        rows, cols = TileLayout.square(c, h, w).image_shape
        assert 0.5 <= rows / cols <= 2, (c, h, w, rows, cols)
    assert (TileLayout.power_of_two(512, 8, 8).rows, TileLayout.power_of_two(512, 8, 8).cols) == (16, 32)
    assert (TileLayout.power_of_two(256, 8, 8).rows, TileLayout.power_of_two(256, 8, 8).cols) == (16, 16)
    assert (TileLayout.power_of_two(100, 8, 8).rows, TileLayout.power_of_two(100, 8, 8).cols) == (8, 16)


def test_tile_layout_validates():
    with pytest.raises(ConfigError, match="fewer than channels=10"):
        TileLayout(10, 2, 2, 3, 3)
    with pytest.raises(ConfigError, match="tiling='hilbert'"):
        TileLayout.named("hilbert", 4, 2, 2)
    with pytest.raises(ConfigError, match="do not match the tile layout"):
        tile(np.zeros((4, 2, 3)), TileLayout.square(4, 2, 2))
    with pytest.raises(ConfigError, match="do not match the tile layout"):
        tile(torch.zeros(4, 2, 3), TileLayout.square(4, 2, 2))


# -- codecs: round trips, dtypes, rate ------------------------------------------------------


@pytest.mark.parametrize("quantizer", ["minmax", "channel", "clip"])
@pytest.mark.parametrize("bits", [4, 8, 16])
def test_png_is_exact_up_to_quantization(quantizer, bits):
    x = smooth_features(seed=3)
    codec = get_codec("png", quantizer=quantizer, bits=bits)
    q = get_quantizer(quantizer, bits=bits).quantize(x)
    expected = get_quantizer(quantizer, bits=bits).dequantize(q.codes, q.side)
    y = codec.decode(codec.encode(x))
    assert isinstance(y, np.ndarray) and y.dtype == expected.dtype == np.float32
    np.testing.assert_array_equal(y, expected)


@pytest.mark.parametrize("dtype,kind", [("float32", "numpy"), ("float16", "numpy"), ("float64", "numpy"),
                                        ("float32", "torch"), ("float16", "torch"), ("bfloat16", "torch"),
                                        ("float64", "torch")])
@pytest.mark.parametrize("name,options", [("png", {}), ("jpeg", {"quality": 90}), ("jpeg2000", {"target_bits": 4000})])
def test_every_codec_returns_shape_and_dtype(name, options, dtype, kind):
    """Decoding restores the coded dtype by name; bfloat16 (a tensor only: numpy has none) comes back as float32,
    and its header still says bfloat16."""
    wide = smooth_features(seed=4, dtype="float64")
    if kind == "torch":
        x = torch.from_numpy(wide).to(getattr(torch, dtype))
        exact = x.double().numpy()
    else:
        x = wide.astype(dtype)
        exact = x.astype(np.float64)
    codec = get_codec(name, **options)
    data = codec.encode(x)
    y = codec.decode(data)
    assert isinstance(y, np.ndarray) and y.shape == tuple(x.shape)
    assert y.dtype == np.dtype("float32" if dtype == "bfloat16" else dtype)
    assert codec.decode_quantized(data)[0].dtype == dtype
    rel = ((y.astype(np.float64) - exact) ** 2).mean() / exact.var()
    assert rel < 0.05  # lossy codecs stay close at these rates


def test_jpeg_quality_trades_rate_for_error():
    x = smooth_features(seed=5)
    sizes, errors = [], []
    for quality in (10, 50, 95):
        data = get_codec("jpeg", quality=quality).encode(x)
        sizes.append(len(data))
        errors.append(float(((get_codec("jpeg").decode(data) - x) ** 2).mean()))
    assert sizes == sorted(sizes) and errors == sorted(errors, reverse=True)


def test_jpeg2000_hits_target_bits_including_header_and_side_info():
    x = smooth_features(64, 16, 32, seed=6)
    within = 0
    targets = np.geomspace(0.25, 2, 8) * x.size  # 0.1 bpe is below the floor with 256 B of side info
    for target in targets:
        data = get_codec("jpeg2000", quantizer="channel").encode(x, target_bits=target)
        within += abs(len(data) * 8 / target - 1) <= 0.01
    assert within >= 7


def test_rate_search_needs_few_encodes_and_is_closest_when_unreachable():
    walk = np.random.default_rng(0).normal(size=(64, 128)).cumsum(1)
    image = ((walk - walk.min()) / np.ptp(walk) * 255).astype(np.uint8)
    result = jpeg2000.encode_to_size(image, 1500, 15)
    assert abs(len(result.codestream) - 1500) <= 15 and result.encodes <= 4
    huge = jpeg2000.encode_to_size(image, 10**7, 10)  # more than every pass: the largest stream
    assert len(huge.codestream) == len(jpeg2000.encode_codestream(image, 1.0))


def test_jpeg2000_rate_grows_as_error_falls():
    x = smooth_features(32, 16, 32, seed=7)
    codec = get_codec("jpeg2000")
    errors = [float(((codec.decode(codec.encode(x, target_bits=b)) - x) ** 2).mean()) for b in (3000, 6000, 12000)]
    assert errors == sorted(errors, reverse=True)


def test_impossible_requests_get_one_clear_error():
    x = smooth_features()
    with pytest.raises(CodecError, match=r"target_bits=800 is below the smallest jpeg2000 stream of this tensor: \d+ bits"):
        get_codec("jpeg2000").encode(x, target_bits=800)
    with pytest.raises(ConfigError, match="needs bpe"):
        get_codec("jpeg2000").encode(x)
    with pytest.raises(ConfigError, match="bpe=-1: expected a number"):
        get_codec("jpeg2000").encode(x, bpe=-1)
    with pytest.raises(ConfigError, match="target_bits=-5"):
        get_codec("jpeg2000").encode(x, target_bits=-5)
    with pytest.raises(ConfigError, match="codec='jpg'.*did you mean 'jpeg'"):
        get_codec("jpg")
    with pytest.raises(ConfigError, match="bits=12: expected an integer from 1 to 8"):
        get_codec("jpeg", bits=12)
    with pytest.raises(ConfigError, match="takes no rate options"):
        get_codec("png").encode(x, quality=3)
    with pytest.raises(ConfigError, match="writes no bytes"):
        get_codec("proxy")
    with pytest.raises(ConfigError, match="unknown option 'qualty' for codec png; options: quantizer, bits"):
        get_codec("png", qualty=3)
    with pytest.raises(CodecError, match=r"shape \[C, H, W\]"):
        get_codec("png").encode(x[None])
    with pytest.raises(CodecError, match="written by the 'png' codec, not 'jpeg'"):
        get_codec("jpeg").decode(get_codec("png").encode(x))


def test_generic_decode_reads_any_codec():
    x = smooth_features(seed=8)
    for name, options in [("png", {"tiling": "power_of_two", "bits": 10}), ("jpeg", {"quantizer": "channel"})]:
        codec = get_codec(name, **options)
        data = codec.encode(x)
        y = decode(data)
        assert y.dtype == np.float32 and y.shape == x.shape
        np.testing.assert_array_equal(y, codec.decode(data))


@pytest.mark.parametrize("name,options", [("png", {"quantizer": "channel"}), ("jpeg", {"quality": 80}),
                                          ("jpeg2000", {"target_bits": 4000})])
def test_numpy_and_torch_inputs_give_the_same_stream(name, options):
    """One definition, either input: a numpy array and the equal tensor (with grad or not) code to the same bytes."""
    x = smooth_features(seed=10)
    codec = get_codec(name, **options)
    data = codec.encode(x)
    assert codec.encode(torch.from_numpy(x.copy())) == data
    assert codec.encode(torch.from_numpy(x.copy()).requires_grad_()) == data
    assert codec.encode_to_bits(torch.from_numpy(x.copy()), 3000) == codec.encode_to_bits(x, 3000)
    q_numpy, q_torch = codec.quantizer_.quantize(x), codec.quantizer_.quantize(torch.from_numpy(x.copy()))
    np.testing.assert_array_equal(q_torch.codes, q_numpy.codes)
    assert q_torch.side.tobytes() == q_numpy.side.tobytes()


# -- golden streams --------------------------------------------------------------------------


def golden_features() -> torch.Tensor:
    """Closed form, no RNG: the golden streams must not depend on a generator's version.

    Computed in torch (a tensor is accepted by every codec): numpy's float32 sin/cos differ from torch's in
    the last bit for a fifth of these values, and the streams were written from these tensors."""
    c, y, x = torch.meshgrid(torch.arange(8.0), torch.arange(6.0), torch.arange(10.0), indexing="ij")
    return torch.sin(0.7 * x + 0.3 * c) * torch.cos(0.5 * y - 0.2 * c) * (1 + c / 4)


# golden_png.cift was written before the channel quantizer's float16 bounds moved into torch (to run
# in the exported BaF edge half); it must still decode, so it is frozen (codec None: never rewritten). It is a
# container version 1 stream: version 1 is still read.
# golden_png_encoder.cift is what the encoder writes now (container version 2); pytest --update-golden
# rewrites it and the JPEG2000 one.
@pytest.mark.parametrize("name,codec,options", [("png", None, {"quantizer": "channel"}),
                                                ("png_encoder", "png", {"quantizer": "channel"}),
                                                ("jpeg2000", "jpeg2000", {"target_bits": 3000})])
def test_golden_streams_decode_to_stored_tensors(name, codec, options, golden):
    data = golden.bytes(f"golden_{name}.cift", codec and (lambda: get_codec(codec, **options).encode(golden_features())))
    expected = golden.array(f"golden_{name}.npy", codec and (lambda: decode(data)))
    decoded = decode(data)
    assert isinstance(decoded, np.ndarray) and decoded.dtype == expected.dtype == np.float32
    np.testing.assert_array_equal(decoded, expected)
    if codec is None:  # frozen: an old stream
        assert data[4] == 1
    if name == "png_encoder":  # lossless: the bytes themselves are reproducible
        assert data[4] == container.VERSION
        assert get_codec("png", **options).encode(golden_features()) == data


# -- fuzzing ---------------------------------------------------------------------------------


def recrc(data: bytearray) -> bytes:
    """Fix the CRC so a mutation reaches the image decoder instead of the checksum."""
    body = bytes(data[HEADER_BYTES:])
    crc = zlib.crc32(body, zlib.crc32(bytes(data[: HEADER_BYTES - 4])))
    data[HEADER_BYTES - 4 : HEADER_BYTES] = struct.pack("<I", crc)
    return bytes(data)


def mutations(stream: bytes, rng: np.random.Generator, count: int):
    """Bit flips, byte overwrites, truncations, extensions, splices and random bytes."""
    for i in range(count):
        data = bytearray(stream)
        kind = i % 6
        if kind == 0:
            pos = rng.integers(len(data))
            data[pos] ^= 1 << int(rng.integers(8))
        elif kind == 1:
            for pos in rng.integers(len(data), size=rng.integers(1, 8)):
                data[pos] = rng.integers(256)
        elif kind == 2:
            data = data[: rng.integers(len(data))]
        elif kind == 3:
            data += rng.bytes(int(rng.integers(1, 64)))
        elif kind == 4:
            data = bytearray(rng.bytes(int(rng.integers(0, 2 * len(stream)))))
        else:
            data[rng.integers(len(data))] = rng.integers(256)
        yield bytes(data)
        if len(data) > HEADER_BYTES and kind in (0, 1, 5):  # also past the CRC, into the payload
            payload_mutation = bytearray(stream)
            start = HEADER_BYTES + (len(stream) - HEADER_BYTES) // 8
            for pos in rng.integers(start, len(stream), size=rng.integers(1, 6)):
                payload_mutation[pos] = rng.integers(256)
            yield recrc(payload_mutation)


@pytest.mark.parametrize("name,options", [("png", {}), ("jpeg", {"quality": 60}), ("jpeg2000", {"target_bits": 3000})])
def test_fuzzed_streams_raise_codec_error_or_decode_to_the_right_shape(name, options):
    x = smooth_features(16, 8, 12, seed=9)
    codec = get_codec(name, **options)
    stream = codec.encode(x)
    rng = np.random.default_rng(abs(hash(name)) % 2**32)
    outcomes = {"rejected": 0, "decoded": 0}
    for data in mutations(stream, rng, 300):
        try:
            y = codec.decode(data)
        except CodecError:
            outcomes["rejected"] += 1
        else:  # a payload mutation the image decoder tolerates must still give a valid tensor
            assert y.shape == x.shape and y.dtype == x.dtype and np.isfinite(y).all()
            outcomes["decoded"] += 1
    assert outcomes["rejected"] >= 250, outcomes


def test_header_fields_are_checked_one_by_one():
    stream = bytearray(get_codec("png").encode(smooth_features()))
    cases = {
        0: (b"X", "not a cilight feature stream"),
        4: (b"\x07", "container version 7"),
        5: (b"\x09", "unknown codec id 9"),
        6: (b"\x09", "unknown dtype id 9"),
        7: (b"\x09", "unknown quantizer id 9"),
        8: (b"\x00", "bits 0 out of range"),
        9: (b"\x09", "unknown tiling id 9"),
        10: (b"\x00\x00", r"tensor shape \(0, 12, 20\)"),
    }
    for offset, (patch, message) in cases.items():
        data = bytearray(stream)
        data[offset : offset + len(patch)] = patch
        with pytest.raises(CodecError, match=message):
            decode(recrc(data))
    with pytest.raises(CodecError, match="CRC-32 mismatch"):
        decode(bytes(stream[:-1]) + bytes([stream[-1] ^ 1]))
    with pytest.raises(CodecError, match="truncated or padded"):
        decode(bytes(stream[:-3]))
    with pytest.raises(CodecError, match="shorter than the 24-byte header"):
        decode(bytes(stream[:10]))
    with pytest.raises(CodecError, match="expected bytes, got str"):
        decode("hello")
    assert {"png", "jpeg", "jpeg2000", "proxy"} <= set(CODECS)
