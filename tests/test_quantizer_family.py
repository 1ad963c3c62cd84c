"""One quantizer family: the min–max step, the side-information layouts and the tiling rule,
each defined once in ``cilight.codecs.quantizers`` and checked here against numpy by hand.

The arithmetic (:func:`uniform_step`, :func:`channel_bounds` …) is one definition for torch tensors (the
Q-layer, BaF, the proxy) and numpy arrays (the codecs' byte path); the codec quantizers return numpy."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cilight.ci_models.baf import dequantize_channels, quantize_channels
from cilight.ci_models.proxy import Jpeg2000Proxy
from cilight.ci_models.quantization import QuantizationLayer
from cilight.codecs import TileLayout, get_codec
from cilight.codecs.errors import CodecError
from cilight.codecs.quantizers import (
    MIN_STEP,
    QUANTIZERS,
    WIRE_QUANTIZERS,
    ChannelQuantizer,
    MinMaxQuantizer,
    NeuronQuantizer,
    NeuronStatistics,
    channel_bounds,
    get_quantizer,
    uniform_step,
    wire_quantizer,
)
from cilight.codecs.tiling import DEFAULT_TILING
from cilight.deploy.wire import group_side, stream_range, stream_side
from cilight.errors import ConfigError


def _features(seed: int, shape=(3, 6, 5, 7)) -> torch.Tensor:
    """Channels of very different scales and offsets, and one constant sample."""
    g = torch.Generator().manual_seed(seed)
    scales = torch.tensor([1e-3, 0.1, 1.0, 10.0, 300.0, 0.0])[: shape[1]].view(1, -1, 1, 1)
    x = torch.randn(*shape, generator=g) * scales + torch.randn(shape[0], shape[1], 1, 1, generator=g)
    x[-1] = 1.25
    return x


def _np_step(low: np.ndarray, high: np.ndarray, levels: int) -> np.ndarray:
    """``max((high − low) / levels, MIN_STEP)`` in float32, by hand."""
    low, high = np.asarray(low, np.float32), np.asarray(high, np.float32)
    return np.maximum((high - low) / np.float32(levels), np.float32(MIN_STEP))


def _np_codes(x: np.ndarray, low: np.ndarray, step: np.ndarray, levels: int) -> np.ndarray:
    return np.clip(np.round((x - low) / step), 0, levels)  # np.round and torch.round both round half to even


def _np_float16_bounds(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel bounds of ``[B, C, H, W]`` rounded to float16 outwards (BaF eq 4), by hand."""
    low, high = x.min(axis=(-1, -2)), x.max(axis=(-1, -2))
    margin, tiny = np.float32(2.0**-10), np.float32(2.0**-24)
    low16 = (low - np.abs(low) * margin - tiny).astype(np.float16).astype(np.float32)
    high16 = (high + np.abs(high) * margin + tiny).astype(np.float16).astype(np.float32)
    return low16, high16


@pytest.mark.parametrize("kind", ["torch", "numpy"])
@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("levels", [1, 15, 255, 65535])
def test_uniform_step_is_the_min_max_step_in_float32(seed, levels, kind):
    g = torch.Generator().manual_seed(seed)
    low = torch.randn(17, generator=g) * 10
    high = low + torch.rand(17, generator=g) * torch.tensor([0.0, 1e-9, 1.0, 1e3]).repeat(5)[:17]
    expected = _np_step(low.numpy(), high.numpy(), levels)
    if kind == "numpy":
        step = uniform_step(low.numpy(), high.numpy(), levels)
        assert isinstance(step, np.ndarray) and step.dtype == np.float32
    else:
        step = uniform_step(low, high, levels)
        assert isinstance(step, torch.Tensor) and step.dtype == torch.float32
    np.testing.assert_array_equal(np.asarray(step), expected)
    assert (np.asarray(step) >= np.float32(MIN_STEP)).all()


@pytest.mark.parametrize("seed", range(3))
def test_channel_bounds_are_one_definition_for_numpy_and_torch(seed):
    z = _features(seed)
    low, high = _np_float16_bounds(z.numpy())
    for x in (z, z.numpy()):
        got_low, got_high = channel_bounds(x)
        assert type(got_low) is type(x) and str(got_low.dtype).removeprefix("torch.") == "float32"
        np.testing.assert_array_equal(np.asarray(got_low), low)
        np.testing.assert_array_equal(np.asarray(got_high), high)
    assert (low <= z.numpy().min(axis=(-1, -2))).all() and (high >= z.numpy().max(axis=(-1, -2))).all()


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("bits", [1, 4, 8, 12])
def test_q_layer_codes_and_values_match_numpy(seed, bits):
    x = _features(seed)
    layer = QuantizationLayer(bits).eval()
    stream = layer.encode(x)
    xn = x.numpy()
    low, high = xn.reshape(len(xn), -1).min(1), xn.reshape(len(xn), -1).max(1)
    step = _np_step(low, high, 2**bits - 1)[:, None, None, None]
    codes = _np_codes(xn, low[:, None, None, None], step, 2**bits - 1)
    np.testing.assert_array_equal(stream.codes.numpy(), codes.astype(stream.codes.numpy().dtype))
    np.testing.assert_array_equal(layer.step(stream.minimum, stream.maximum).numpy(), step.ravel())
    rounded = low[:, None, None, None] + codes * step
    np.testing.assert_array_equal(layer.decode(stream).numpy(), rounded)
    np.testing.assert_array_equal(layer(x).numpy(), xn + (rounded - xn))  # straight-through: x + (q − x)


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("bits", [2, 6, 8, 10])
def test_baf_codes_and_steps_match_numpy(seed, bits):
    z = _features(seed)
    stream = quantize_channels(z, bits)
    low, high = _np_float16_bounds(z.numpy())
    step = _np_step(low, high, 2**bits - 1)[..., None, None]
    codes = _np_codes(z.numpy(), low[..., None, None], step, 2**bits - 1)
    np.testing.assert_array_equal(stream.minimum.numpy(), low)
    np.testing.assert_array_equal(stream.maximum.numpy(), high)
    np.testing.assert_array_equal(stream.codes.numpy(), codes.astype(stream.codes.numpy().dtype))
    assert stream.codes.dtype == (torch.uint8 if bits <= 8 else torch.int32)
    values, got_low, got_step = dequantize_channels(stream, bits)
    np.testing.assert_array_equal(got_step.numpy(), step)
    np.testing.assert_array_equal(values.numpy(), low[..., None, None] + codes * step)


@pytest.mark.parametrize("seed", range(3))
def test_channel_quantizer_and_baf_agree_and_minmax_matches_numpy(seed):
    z = _features(seed)
    baf = quantize_channels(z, 8)
    for b in range(len(z)):
        quantized = ChannelQuantizer(bits=8).quantize(z[b].numpy())  # the byte path (numpy) against BaF (torch)
        assert quantized.codes.dtype == np.uint8 and baf.codes.dtype == torch.uint8
        np.testing.assert_array_equal(quantized.codes, baf.codes[b].numpy())
        np.testing.assert_array_equal(quantized.side, ChannelQuantizer.side_of(baf.minimum[b], baf.maximum[b]))
        from_tensor = ChannelQuantizer(bits=8).quantize(z[b])  # a tensor is accepted, with the same result
        np.testing.assert_array_equal(from_tensor.codes, quantized.codes)
        assert from_tensor.side.tobytes() == quantized.side.tobytes()
        minmax = MinMaxQuantizer(bits=8).quantize(z[b])
        xn = z[b].numpy()
        step = _np_step(xn.min(), xn.max(), 255)
        assert minmax.codes.dtype == np.uint8
        np.testing.assert_array_equal(minmax.codes, _np_codes(xn, xn.min(), step, 255).astype(np.uint8))


@pytest.mark.parametrize("seed", range(2))
def test_proxy_8_bit_step_is_the_min_max_step(seed):
    x = _features(seed, (2, 5, 8, 8))[:, :5]
    transformed = Jpeg2000Proxy().eval().transform(x)
    flat = x.numpy().reshape(len(x), -1)
    np.testing.assert_array_equal(transformed.step8.numpy(), _np_step(flat.min(1), flat.max(1), 255))
    assert transformed.layout == TileLayout.named(MinMaxQuantizer.tiling, 5, 8, 8)


@pytest.mark.parametrize("kind", ["clip", "neuron"])
def test_bin_quantizers_step_is_their_width_over_2_to_the_n(kind):
    x = _features(0, (4, 6, 5, 7))
    if kind == "neuron":
        stats = NeuronStatistics.from_samples([x])
        quantizer = NeuronQuantizer(bits=4, width=2.0, statistics=stats)
        half = stats.std * np.float32(2.0)
        step = _np_step(-half, half, 16)
        low, got_step = quantizer._bins(stats)
    else:
        quantizer = get_quantizer("clip", bits=4, width=2.0)
        side = quantizer.quantize(x[0]).side.astype(np.float64)
        half = np.float32(side[1])
        step = _np_step(-half, half, 16)
        low, got_step = quantizer._dequantization(side, tuple(x[0].shape))
    assert isinstance(got_step, np.ndarray | np.float32) and got_step.dtype == np.float32
    np.testing.assert_array_equal(got_step, np.maximum(np.float32(2) * half / np.float32(16), np.float32(MIN_STEP)))
    np.testing.assert_array_equal(got_step, step)


# ----------------------------------------------------------------------------- side information
def test_wire_quantizers_are_the_bounds_quantizers_and_others_have_no_layout():
    assert WIRE_QUANTIZERS == ("minmax", "channel")
    assert wire_quantizer("channel") is ChannelQuantizer and wire_quantizer("minmax") is MinMaxQuantizer
    for kind in ("clip", "neuron", "none"):
        with pytest.raises(ConfigError, match=f"quantizer '{kind}' has no wire layout; expected one of minmax, channel"):
            wire_quantizer(kind)


@pytest.mark.parametrize("kind", ["minmax", "channel"])
def test_side_of_is_what_the_quantizer_writes_and_range_of_inverts_it(kind):
    x = _features(1)[0]
    quantizer = get_quantizer(kind, bits=8)
    side = quantizer.quantize(x).side
    cls = wire_quantizer(kind)
    minimum, maximum = cls.range_of(side)
    expected_shape = (1, x.shape[0]) if kind == "channel" else (1,)
    assert minimum.shape == maximum.shape == expected_shape and minimum.dtype == np.float32
    again = cls.side_of(minimum[0], maximum[0])  # one image's bounds, as the edge half outputs them
    assert again.dtype == quantizer.side_dtype and again.tobytes() == side.tobytes()
    codes = quantizer.quantize(x).codes
    values = quantizer.dequantize(codes, side)
    assert values.dtype == np.float32
    np.testing.assert_array_equal(quantizer.dequantize(codes, again), values)


def test_side_layouts_by_hand():
    assert MinMaxQuantizer.side_of(np.float32(-1.5), np.float32(2.0)).tolist() == [-1.5, 2.0]
    assert MinMaxQuantizer.side_of(np.float32(-1.5), np.float32(2.0)).dtype == np.dtype("<f4")
    side = ChannelQuantizer.side_of(np.array([-1.5, 0.25]), np.array([[2.0, 0.5]]))
    assert side.dtype == np.dtype("<f2") and side.tolist() == [-1.5, 0.25, 2.0, 0.5]
    low, high = ChannelQuantizer.range_of(side)
    assert low.tolist() == [[-1.5, 0.25]] and high.tolist() == [[2.0, 0.5]]
    assert ChannelQuantizer.group_side(side, 1, 1).tolist() == [0.25, 0.5]
    assert MinMaxQuantizer.group_side(np.array([0.0, 1.0], np.float32), 3, 2).tolist() == [0.0, 1.0]
    with pytest.raises(ConfigError, match="channel group 1\\+2 lies outside a stream of 2 channels"):
        ChannelQuantizer.group_side(side, 1, 2)


@pytest.mark.parametrize(("kind", "minimum", "maximum", "match"), [
    ("minmax", [0.0, 1.0], [2.0, 3.0], "one value each"),
    ("channel", [0.0, 1.0], [2.0], "one value per channel each"),
    ("channel", [], [], "one value per channel each"),
])
def test_side_of_refuses_bounds_of_the_wrong_shape(kind, minimum, maximum, match):
    with pytest.raises(CodecError, match=match):
        wire_quantizer(kind).side_of(np.array(minimum), np.array(maximum))


@pytest.mark.parametrize(("kind", "side"), [("minmax", [0.0, 1.0, 2.0, 3.0]), ("channel", [0.0, 1.0, 2.0]),
                                            ("channel", [[0.0, 1.0]])])
def test_range_of_refuses_side_information_of_the_wrong_shape(kind, side):
    with pytest.raises(CodecError, match="side information must hold"):
        wire_quantizer(kind).range_of(np.array(side))


# ----------------------------------------------------------------------------- tiling
def test_each_quantizer_declares_its_tiling():
    assert ChannelQuantizer.tiling == "power_of_two"  # Choi et al., ICASSP 2020, §3.2
    assert {k: q.tiling for k, q in QUANTIZERS.items() if k != "channel"} == dict.fromkeys(["minmax", "clip", "neuron"],
                                                                                           DEFAULT_TILING)
    x = _features(2)[0]
    codec = get_codec("png", quantizer="channel", bits=8, tiling=ChannelQuantizer.tiling)
    data = codec.encode(x)
    assert get_codec("png").decode(data).shape == x.shape
    assert codec.tiling == "power_of_two"


@pytest.mark.parametrize("kind", WIRE_QUANTIZERS)
def test_wire_format_helpers_are_the_quantizers_layouts(kind):
    """What ``cilight.deploy.wire`` computes is the quantizer's declared layout (the wire can call it)."""
    g = np.random.default_rng(0)
    channels = 5 if kind == "channel" else 1
    low = g.normal(size=channels).astype(np.float32)
    high = low + g.random(channels).astype(np.float32)
    minimum, maximum = (low, high) if kind == "channel" else (low[0], high[0])
    cls = wire_quantizer(kind)
    side = cls.side_of(minimum, maximum)
    assert side.tobytes() == stream_side(minimum, maximum, kind).tobytes()
    for ours, theirs in zip(cls.range_of(side), stream_range(side, kind)):
        assert ours.shape == theirs.shape and ours.tobytes() == theirs.tobytes()
    assert cls.group_side(side, 0, 1).tobytes() == group_side(side, kind, 0, 1).tobytes()
