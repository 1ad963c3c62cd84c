"""The runtimes in the edge install: ``cilight-edge`` alone, no torch — frames, packets under loss, the learned codec.

``tests/test_edge_install.py`` (in the full install) exports halves, writes images, frames, packets and the
cloud's outputs to ``CILIGHT_EDGE_ARTIFACTS``, builds a fresh venv with only the edge distribution (and
pytest) and runs this file there. Everything here must hold without the training stack: the frames and
packets this install writes are byte-identical to the full install's, what it decodes gives the full
install's outputs, and its own frames go to ``CILIGHT_EDGE_OUT`` for the full install to decode (both ways).
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
from byte_lists import load_bytes, save_bytes

from cilight.codecs import CONCEALMENT_METHODS, CodecError
from cilight.deploy import CloudRuntime, EdgeRuntime

ARTIFACTS = Path(os.environ.get("CILIGHT_EDGE_ARTIFACTS", "missing"))
OUT = Path(os.environ.get("CILIGHT_EDGE_OUT", "missing"))
MODELS = sorted(p.name for p in ARTIFACTS.glob("*") if (p / "edge.onnx").is_file())
TRAINING_STACK = ("torch", "torchvision", "lightning", "compressai")


def spec(name: str) -> dict:
    return json.loads((ARTIFACTS / name / "spec.json").read_text())


def assert_outputs(got: dict[str, np.ndarray], path: Path) -> None:
    with np.load(path) as expected:
        assert sorted(got) == sorted(expected.files)
        for name in expected.files:  # one ONNX Runtime, one input: the same numbers up to thread scheduling
            np.testing.assert_allclose(got[name], expected[name], rtol=1e-5, atol=1e-6, err_msg=name)


def test_artifacts_and_no_training_stack():
    assert MODELS, f"no exported halves in CILIGHT_EDGE_ARTIFACTS={ARTIFACTS}"
    for name in TRAINING_STACK:
        assert importlib.util.find_spec(name) is None, f"{name} is importable in the edge install"
        assert name not in sys.modules, f"{name} was imported"


@pytest.mark.parametrize("name", MODELS)
def test_frames_are_the_full_installs_bytes_both_ways(name):
    folder = ARTIFACTS / name
    images = np.load(folder / "images.npy")
    edge, cloud = EdgeRuntime(folder / "edge.onnx"), CloudRuntime(folder / "cloud.onnx")
    frames = edge.encode(images)
    assert frames == load_bytes(folder / "frames.npz")  # byte-identical to what the full install wrote
    assert_outputs(cloud.infer(load_bytes(folder / "frames.npz")), folder / "outputs.npz")
    save_bytes(OUT / name / "frames.npz", frames)  # the full install decodes these next
    with pytest.raises(CodecError, match="CRC-32"):
        cloud.infer(frames[0][:-1] + bytes([frames[0][-1] ^ 1]))
    assert not any(m in sys.modules for m in TRAINING_STACK)


@pytest.mark.parametrize("name", [m for m in MODELS if spec(m)["packets"]])
def test_packets_under_loss_with_each_concealment(name):
    folder, setup = ARTIFACTS / name, spec(name)
    images = np.load(folder / "images.npy")
    edge, cloud = EdgeRuntime(folder / "edge.onnx"), CloudRuntime(folder / "cloud.onnx")
    packets = [p for per_image in edge.packets(images, mss=setup["mss"], channel_means=True) for p in per_image]
    assert packets == load_bytes(folder / "packets.npz")
    kept = [p for i, p in enumerate(packets) if i not in set(setup["lost"])]
    reception, _ = cloud.receive(kept, conceal="zero")
    assert 0 < reception.lost_fraction < 1  # some channels lost, some arrived: concealment has work to do
    for method in CONCEALMENT_METHODS:
        assert_outputs(cloud.infer(kept, conceal=method), folder / f"outputs_{method}.npz")
    with pytest.raises(CodecError, match="conceal=None"):
        cloud.infer(kept)


def test_a_learned_codec_is_among_the_halves():
    assert any(spec(m)["learned"] for m in MODELS), "no learned-codec halves: the range coder went untested here"
