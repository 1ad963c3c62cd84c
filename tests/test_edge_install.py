"""The edge install proves itself: a fresh venv with only ``cilight-edge`` runs the runtime tests against halves
and golden frames from this (full) install, torch absent there; its frames decode here bit-exactly (both ways).

This file is the full install's side. It exports halves — one stream (jpeg2000) and two (png) of quantized
codes, BaF's per-channel codes (png), a hyperprior bottleneck (the learned codec's range coder) — writes the
images, frames, packets with a loss pattern and the cloud's outputs for every concealment, builds the edge
venv (:func:`benchmarks.edge_install.build_edge_venv`: ``pip install ./edge`` and pytest, nothing else),
runs ``edge/tests`` there, and decodes what the edge wrote: the same bytes, the same outputs, and for the
learned codec the PyTorch model's own codec reads the edge's bytes and writes the bytes the edge reads.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import ROOT, smooth_images, tiny_model

from cilight.ci_models.checkpoints import load_task_model
from cilight.codecs import CONCEALMENT_METHODS, CodecError
from cilight.deploy import CloudRuntime, EdgeRuntime, Packet
from cilight.deploy.wire import write_dataset_mean
from cilight.export_cli import main as export
from cilight.onnx_export import export_halves, stream_means

if str(ROOT) not in sys.path:  # benchmarks/ is a folder of the checkout, not of the installed package
    sys.path.insert(0, str(ROOT))
from benchmarks.edge_install import TRAINING_STACK, build_edge_venv  # noqa: E402

sys.path.insert(0, str(ROOT / "edge" / "tests"))  # the byte-list file both installs exchange, defined once there
from byte_lists import load_bytes, save_bytes  # noqa: E402

pytestmark = pytest.mark.slow
MSS = 300  # small packets: a stream spans several, so a lost one loses some channels, not all


def lost_pattern(cloud: CloudRuntime, packets: list[bytes]) -> list[int]:
    """Every k-th packet from an offset, the first k (3, 4, …) that loses some channels of some frame and leaves
    every frame some codes (a frame with none cannot be inferred from, whatever the concealment)."""
    for step in range(3, len(packets) + 1):
        for first in range(step):
            lost = set(range(first, len(packets), step))
            try:
                reception, _ = cloud.receive([p for i, p in enumerate(packets) if i not in lost], conceal="zero")
            except CodecError:
                continue
            if len(reception.frames) == len({Packet.from_bytes(p).frame for p in packets}) and reception.lost_fraction > 0:
                return sorted(lost)
    raise AssertionError(f"no loss pattern over {len(packets)} packets loses channels and keeps codes of every frame")


def write_case(folder: Path, images: np.ndarray, learned: bool) -> None:
    """What the edge venv checks against: images, frames, outputs; packets, the loss and each concealment's outputs."""
    edge, cloud = EdgeRuntime(folder / "edge.onnx"), CloudRuntime(folder / "cloud.onnx")
    np.save(folder / "images.npy", images)
    frames = edge.encode(images)
    save_bytes(folder / "frames.npz", frames)
    np.savez(folder / "outputs.npz", **cloud.infer(frames))
    spec = {"learned": learned, "packets": not learned, "mss": MSS, "lost": []}
    if not learned:
        packets = [p for per_image in EdgeRuntime(folder / "edge.onnx").packets(images, mss=MSS, channel_means=True)
                   for p in per_image]
        save_bytes(folder / "packets.npz", packets)
        spec["lost"] = lost_pattern(cloud, packets)
        kept = [p for i, p in enumerate(packets) if i not in set(spec["lost"])]
        for method in CONCEALMENT_METHODS:
            np.savez(folder / f"outputs_{method}.npz", **cloud.infer(kept, conceal=method))
    (folder / "spec.json").write_text(json.dumps(spec))


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory, learned_checkpoint, baf_checkpoint) -> Path:
    root = tmp_path_factory.mktemp("edge_artifacts")
    for name, splits, codec in (("single", ["layer3"], "jpeg2000:bpe=4"), ("multi", ["layer2", "layer3"], "png")):
        model, images = tiny_model(splits), smooth_images(3, 64, 96, seed=3)
        export_halves(model, root / name, 64, 96, images, codec=codec)
        means, count = stream_means(model, [images])
        write_dataset_mean(root / name, means, count)
        write_case(root / name, images.numpy(), learned=False)
    for name, ckpt in (("baf", baf_checkpoint), ("learned", learned_checkpoint)):
        assert export(["--ckpt", str(ckpt), "--out", str(root / name), "--samples", "2", "--mean-images", "8"]) == 0
        write_case(root / name, smooth_images(2, 64, 128, seed=4).numpy(), learned=name == "learned")
    return root


@pytest.fixture(scope="module")
def edge_python(tmp_path_factory) -> Path:
    return build_edge_venv(tmp_path_factory.mktemp("edge_venv"), extra=("pytest",))


def test_the_edge_install_runs_the_runtimes_and_its_bytes_decode_here(edge_python, artifacts, learned_checkpoint, tmp_path):
    out = tmp_path / "edge_out"
    probe = subprocess.run([str(edge_python), "-c", "import importlib.util as u, json; print(json.dumps("
                            f"[m for m in {list(TRAINING_STACK)!r} if u.find_spec(m)]))"],
                           capture_output=True, text=True, timeout=120)
    assert probe.returncode == 0 and json.loads(probe.stdout) == [], probe.stdout + probe.stderr
    env = {**os.environ, "CILIGHT_EDGE_ARTIFACTS": str(artifacts), "CILIGHT_EDGE_OUT": str(out), "PYTHONPATH": ""}
    proc = subprocess.run([str(edge_python), "-m", "pytest", "-q", "-p", "no:cacheprovider", "-c", os.devnull,
                           "--rootdir", str(ROOT / "edge" / "tests"), str(ROOT / "edge" / "tests")],
                          capture_output=True, text=True, timeout=900, cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert " passed" in proc.stdout and "skipped" not in proc.stdout, proc.stdout[-2000:]

    for case in sorted(p for p in artifacts.iterdir() if (p / "edge.onnx").is_file()):
        written_there = load_bytes(out / case.name / "frames.npz")
        assert written_there == load_bytes(case / "frames.npz")  # the edge's bytes are this install's bytes
        cloud = CloudRuntime(case / "cloud.onnx")
        with np.load(case / "outputs.npz") as expected:
            got = cloud.infer(written_there)
            for name in expected.files:
                np.testing.assert_array_equal(got[name], expected[name])

    # the learned codec both ways, with the PyTorch model's own codec on this side
    model = load_task_model(learned_checkpoint)
    codec = model.transmissions[0].own_codec()
    images = torch.from_numpy(np.load(artifacts / "learned" / "images.npy"))
    with torch.no_grad():
        features = model.features(images)[0]
        delivered = model.transmissions[0](features).features
    for frame, x, y in zip(load_bytes(out / "learned" / "frames.npz"), features, delivered):
        assert codec.encode(x) == frame  # training-install bytes = the edge's (which the edge decoded above)
        header, symbols = codec.decode_symbols(frame)  # edge bytes → the training install, symbol for symbol
        with torch.no_grad():
            expected = model.transmissions[0].bottleneck.symbols(x[None], codec.tables)
        for latent, values in symbols.items():
            np.testing.assert_array_equal(values, expected[latent][0].numpy())
        # one image through the synthesis, against the batch of three: equal to float rounding
        np.testing.assert_allclose(codec.decode(frame), y.numpy(), rtol=1e-5, atol=1e-6)
