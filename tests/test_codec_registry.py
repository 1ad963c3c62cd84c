"""One codec contract: a codec registered here, outside the package, works everywhere a codec is named.

Also the operating-point syntax, the per-neuron quantizer, and the golden output of the embedded data.
"""

from __future__ import annotations

import hashlib
import json
import zlib
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pytest
import torch
from helpers import smooth_images, tiny_model

from cilight.codecs import (
    CODECS,
    CodecError,
    FeatureCodec,
    NeuronQuantizer,
    NeuronStatistics,
    RateKnob,
    decode,
    get_codec,
    parse_operating_points,
    register_codec,
    stream_coder,
)
from cilight.deploy import CloudRuntime, EdgeRuntime
from cilight.errors import ConfigError
from cilight.evaluation import rate_sweep
from cilight.onnx_export import export_halves


@register_codec
@dataclass(frozen=True)
class CoarseCodec(FeatureCodec):
    """Drops the ``shift`` lowest bits of every code, then zlib: lossy, with a knob that lowers the rate."""

    shift: int = 0

    name: ClassVar[str] = "coarse"
    container_id: ClassVar[int] = 201
    rate: ClassVar[RateKnob] = RateKnob("shift", True, 0, 7, False, "low bits dropped from each 8-bit code")

    def _encode_image(self, image, *, overhead, shift):
        return bytes([shift]) + zlib.compress((image.astype(np.uint8) >> shift).tobytes(), 9)

    def _decode_image(self, payload, shape, bits):
        try:
            shift, raw = payload[0], zlib.decompress(payload[1:])
        except (IndexError, zlib.error) as err:
            raise CodecError(f"corrupt coarse payload: {err}") from None
        if shift > 7 or len(raw) != shape[0] * shape[1]:
            raise CodecError("corrupt coarse payload: wrong size or shift")
        codes = np.frombuffer(raw, np.uint8).reshape(shape).astype(np.int32) << shift
        return np.minimum(codes + ((1 << shift) >> 1), 255)  # the middle of each coarse bin


def features(seed=0) -> np.ndarray:
    """Smooth ``[16, 16, 32]`` float32 features (nearest-neighbour upsampled noise)."""
    noise = np.random.default_rng(seed).standard_normal((16, 8, 16)).astype(np.float32)
    return noise.repeat(2, axis=1).repeat(2, axis=2)


def test_an_outside_codec_works_with_get_codec_and_decode():
    x = features()
    sizes, errors = [], []
    for shift in (0, 2, 4):
        data = get_codec("coarse").encode(x, shift=shift)
        restored = decode(data)  # the header names the codec by its registered container id
        assert isinstance(restored, np.ndarray) and restored.dtype == np.float32
        assert restored.shape == x.shape and data[5] == 201
        sizes.append(len(data))
        errors.append(float(((restored - x) ** 2).mean()))
    assert get_codec("coarse").encode(torch.from_numpy(x), shift=2) == get_codec("coarse").encode(x, shift=2)
    assert sizes == sorted(sizes, reverse=True) and errors == sorted(errors)
    corrupt = bytearray(get_codec("coarse", shift=1).encode(x))
    corrupt[-3] ^= 0xFF
    with pytest.raises(CodecError, match="CRC-32"):
        decode(bytes(corrupt))
    with pytest.raises(ConfigError, match="shift=9: expected an integer from 0 to 7"):
        get_codec("coarse").encode(x, shift=9)


def test_registration_refuses_clashes():
    @dataclass(frozen=True)
    class Clash(CoarseCodec):
        name: ClassVar[str] = "clash"

    with pytest.raises(ConfigError, match="container id 201 is already used by codec 'coarse'"):
        register_codec(Clash)
    assert "clash" not in CODECS

    class NoName:
        container_id = 202

    with pytest.raises(ConfigError, match="needs a class attribute name"):
        register_codec(NoName)


def test_an_outside_codec_in_a_sweep_by_its_knob():
    model = tiny_model(["layer2", "layer3"], width=8)
    images = smooth_images(2, 64, 128)
    coder = stream_coder("coarse")
    with torch.no_grad():
        floors = [coder.floor(f) for f in model.features(images)]
    tuples = np.array([[f * 1.2 for f in floors], [f * 3 for f in floors]])
    sweep = rate_sweep(model, [{"image": images, "segmentation": torch.zeros(2, 64, 128, dtype=torch.long),
                                "disparity": torch.ones(2, 64, 128), "disparity_mask": torch.ones(2, 64, 128, dtype=bool)}],
                       coder, tuples, progress=False)
    assert (sweep.rates[1] > sweep.rates[0]).all()  # the knob search spends more bits when asked to


@pytest.mark.slow
def test_an_outside_codec_in_the_runtimes(tmp_path):
    model = tiny_model(["layer3"])
    images = smooth_images(2)
    export_halves(model, tmp_path, 64, 96, images, codec="coarse:shift=1")
    edge, cloud = EdgeRuntime(tmp_path / "edge.onnx"), CloudRuntime(tmp_path / "cloud.onnx")
    assert edge.meta.codec == "coarse:shift=1"
    frames = edge.encode(images.numpy())
    outputs = cloud.infer(frames)
    assert outputs["segmentation"].shape == (2, 5, 64, 96)
    lossless = CloudRuntime(tmp_path / "cloud.onnx").infer(EdgeRuntime(tmp_path / "edge.onnx", "coarse:shift=0").encode(
        images.numpy()))
    with torch.no_grad():
        np.testing.assert_allclose(lossless["disparity"], model(images)["disparity"].numpy(), atol=1e-3)


@pytest.mark.slow
def test_an_outside_codec_in_evaluate_py(two_task_checkpoint, tmp_path, capsys):
    from cilight.evaluate_cli import main

    args = ["allocate", "--ckpt", str(two_task_checkpoint), "--budgets", "12", "--tuples", "10", "--refine-tuples", "0",
            "--num-test", "6", "--fit-fraction", "0.5", "--codec", "coarse", "--eval-codec", "coarse", "--out", str(tmp_path)]
    assert main(args) == 0
    assert "with coarse, evaluating on the other 3 with coarse" in capsys.readouterr().out
    result = json.loads((tmp_path / "allocation.json").read_text())
    assert result["fit_codec"] == "coarse" and len(result["rows"]) == 4


@pytest.mark.parametrize("text,expected", [
    ("png", ["png"]),
    ("jpeg:quality=95,90,85", ["jpeg:quality=95", "jpeg:quality=90", "jpeg:quality=85"]),
    ("jpeg2000:bpe=0.5", ["jpeg2000:bpe=0.5"]),
    ("jpeg2000:bpe=1:quantizer=clip", ["jpeg2000:bpe=1:quantizer=clip"]),
    (["png", "coarse:shift=1,3"], ["png", "coarse:shift=1", "coarse:shift=3"]),
])
def test_operating_points_parse_and_print_back(text, expected):
    points = parse_operating_points(text)
    assert [str(p) for p in points] == expected
    assert [str(p) for p in parse_operating_points([str(p) for p in points])] == expected


@pytest.mark.parametrize("text,needle", [
    ("jpg:quality=90", "did you mean 'jpeg'"),
    ("jpeg:quality=0", "quality=0: expected an integer from 1 to 100"),
    ("jpeg:quality=high", "quality='high'"),
    ("png:quality=90", "codec 'png' takes no 'quality'; it has a single rate"),
    ("jpeg2000:target_bits=5000", "its rate knob is 'bpe'"),
    ("jpeg:quality", "'quality' is not key=value"),
    ("jpeg:quality=90:quantizer=clip,minmax", "only the rate (quality) takes a list"),
    (":quality=9", "expected a codec name first"),
])
def test_bad_operating_points_are_one_clear_error(text, needle):
    with pytest.raises(ConfigError, match=None) as info:
        parse_operating_points(text)
    assert needle in str(info.value)


def test_neuron_quantizer_is_the_thesis_per_element_clipping():
    """Thesis §2.1.3 against numpy: N = 2ⁿ bins over μ_i ± wσ_i, midpoint reconstruction, per element."""
    rng = np.random.default_rng(0)
    samples = rng.normal(size=(64, 4, 3, 5)) * rng.uniform(0.5, 2, size=(4, 3, 5)) + rng.normal(size=(4, 3, 5))
    stats = NeuronStatistics.from_samples([torch.from_numpy(samples[:32]), samples[32:]])  # tensors or arrays
    np.testing.assert_allclose(stats.mean, samples.mean(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(stats.std, samples.std(0), rtol=1e-5)
    q = NeuronQuantizer(bits=3, width=2.5, statistics=stats)
    x = samples[0].astype(np.float32)
    quantized = q.quantize(x)
    assert quantized.codes.dtype == np.uint8
    mu, sigma = samples.mean(0), samples.std(0)
    step = 2 * 2.5 * sigma / 8
    codes = np.clip(np.round((samples[0] - (mu - 2.5 * sigma + step / 2)) / step), 0, 7)
    np.testing.assert_array_equal(quantized.codes, codes)
    np.testing.assert_array_equal(q.quantize(torch.from_numpy(x)).codes, quantized.codes)
    np.testing.assert_allclose(q.dequantize(quantized.codes, quantized.side),
                               mu - 2.5 * sigma + (codes + 0.5) * step, rtol=1e-5, atol=1e-5)
    # through a codec and back; the side information is the statistics' fingerprint
    codec = get_codec("png", quantizer=q)
    data = codec.encode(x)
    assert len(data) == len(codec.encode(x)) and decode(data, quantizer=q).shape == x.shape
    with pytest.raises(CodecError, match="pass the NeuronStatistics"):
        decode(data)
    other = NeuronQuantizer(bits=3, width=2.5, statistics=NeuronStatistics(stats.mean + 1, stats.std))
    with pytest.raises(CodecError, match="quantized with neuron statistics"):
        decode(data, quantizer=other)


def test_neuron_statistics_round_trip_and_errors(tmp_path):
    stats = NeuronStatistics(np.zeros((2, 3, 4)), np.ones((2, 3, 4)))
    stats.save(tmp_path / "stats.npz")
    loaded = NeuronStatistics.load(tmp_path / "stats.npz")
    assert loaded.fingerprint == stats.fingerprint
    with pytest.raises(ConfigError, match="one shape"):
        NeuronStatistics(np.zeros((2, 3, 4)), np.ones((2, 3)))
    with pytest.raises(CodecError, match=r"statistics are for tensors of shape \[2, 3, 4\]"):
        NeuronQuantizer(statistics=stats).quantize(torch.zeros(2, 3, 5))


def test_synthetic_rendering_is_bit_identical_to_the_golden_samples(golden):
    from cilight.datamodules import generate_sample

    def digests(case: dict) -> dict:
        sample = generate_sample(case["seed"], case["split"], case["index"], case["height"], case["width"])
        return {k: hashlib.sha256(v.tobytes()).hexdigest() for k, v in sample.items()}

    name = "synthetic_golden.json"  # --update-golden rehashes the same cases
    for case in golden.json(name, lambda: [{**c, "sha256": digests(c)} for c in golden.json(name)]):
        assert digests(case) == case["sha256"], case
