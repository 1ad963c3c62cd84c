"""Deployment: ONNX export of both halves, parity, metadata, the runtimes over bytes, the latency model."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import onnx
import pytest
import torch
from helpers import smooth_images, tiny_model

from cilight.ci_models.halves import CloudHalf, EdgeHalf
from cilight.codecs import CodecError
from cilight.deploy import CloudRuntime, EdgeRuntime, LatencyModel, Strategy
from cilight.deploy.wire import FILE_DIGEST, HalfMetadata, save_sealed, stream_tensor_names
from cilight.errors import ConfigError
from cilight.onnx_export import export_halves, model_version

HEIGHT, WIDTH = 64, 96


def scenes(n: int, seed: int = 0) -> torch.Tensor:
    return smooth_images(n, HEIGHT, WIDTH, seed)


@pytest.fixture
def exported(tiny_halves):
    """(model, folder, parity report) of the tiny model's halves at HEIGHT×WIDTH, exported once per session."""
    return tiny_halves


def test_files_are_single_checked_and_carry_metadata(exported):
    model, out, report = exported
    assert sorted(p.name for p in out.iterdir()) == ["cloud.onnx", "edge.onnx"]  # no external-data sidecar
    for half in ("edge", "cloud"):
        proto = onnx.load(out / f"{half}.onnx")
        onnx.checker.check_model(proto, full_check=True)
        meta = {p.key: p.value for p in proto.metadata_props}
        assert meta["half"] == half
        assert json.loads(meta["split_points"]) == list(model.split_points)
        assert json.loads(meta["stream_shapes"]) == {
            lay.split_point: list(lay.shape(HEIGHT, WIDTH)) for lay in model.layouts}
        assert json.loads(meta["quantizer"])["bits"] == 8
        assert meta["model_version"] == model_version(model)
        assert json.loads(meta["outputs"]) == [t.output_name for t in model.tasks]
        digest = meta.pop(FILE_DIGEST)  # the file's own, beside the half's metadata
        assert len(digest) == 64 and int(digest, 16) >= 0
        parsed = HalfMetadata.from_props(meta)  # the runtimes' reader of what the exporter wrote
        assert parsed.props() == meta and parsed.codec == "png"
    edge = onnx.load(out / "edge.onnx")
    assert [o.name for o in edge.graph.output] == stream_tensor_names(model.split_points)
    assert edge.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.UINT8
    assert not report.failures


def test_every_file_carries_the_sha256_of_its_own_bytes_and_a_changed_bit_is_refused(exported, tmp_path):
    _, out, _ = exported
    for half in ("edge", "cloud"):
        data = (out / f"{half}.onnx").read_bytes()
        proto = onnx.load_from_string(data)
        (entry,) = [p for p in proto.metadata_props if p.key == FILE_DIGEST]
        written = entry.value
        entry.value = "0" * 64  # independently: the onnx package serialises the file with the value zeroed
        assert hashlib.sha256(proto.SerializeToString()).hexdigest() == written
        for offset in (len(data) // 3, len(data) // 2, len(data) - 1):  # weights, and the last byte of the file
            changed = bytearray(data)
            changed[offset] ^= 0x01
            path = tmp_path / f"{half}_{offset}.onnx"
            path.write_bytes(bytes(changed))
            with pytest.raises(ConfigError, match=f"{path.name}: its bytes do not match the SHA-256"):
                (EdgeRuntime if half == "edge" else CloudRuntime)(path)
    # writing it again seals the same bytes (no timestamp, no randomness)
    proto = onnx.load(out / "cloud.onnx")
    assert save_sealed(proto, tmp_path / "again.onnx") == written
    assert (tmp_path / "again.onnx").read_bytes() == (out / "cloud.onnx").read_bytes()


def test_parity_and_dynamic_batch(exported):
    model, out, _ = exported
    edge, cloud = EdgeRuntime(out / "edge.onnx"), CloudRuntime(out / "cloud.onnx")
    for batch in (1, 4):
        images = scenes(batch, seed=batch)
        onnx_streams = edge.features(images.numpy())
        torch_streams = [t.detach().numpy() for t in EdgeHalf(model)(images)]
        for name, ref in zip(stream_tensor_names(model.split_points), torch_streams):
            if name.startswith("codes"):
                diff = np.abs(onnx_streams[name].astype(int) - ref.astype(int))
                assert diff.max() <= 1 and np.mean(diff == 0) >= 0.999
            else:
                np.testing.assert_allclose(onnx_streams[name], ref, rtol=1e-5, atol=1e-6)
        outputs = cloud.session.run(None, onnx_streams)
        reference = CloudHalf(model)(*(torch.from_numpy(onnx_streams[n]) for n in stream_tensor_names(model.split_points)))
        for got, ref in zip(outputs, reference):
            np.testing.assert_allclose(got, ref.detach().numpy(), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("codec,options", [("png", {}), ("jpeg2000", {"target_bits": 6000}), ("jpeg:quality=80", {})])
def test_runtime_end_to_end_over_bytes(exported, codec, options):
    model, out, _ = exported
    edge, cloud = EdgeRuntime(out / "edge.onnx", codec, **options), CloudRuntime(out / "cloud.onnx")
    images = scenes(2, seed=7)
    frames = edge.encode(images.numpy())
    assert len(frames) == 2 and all(isinstance(f, bytes) for f in frames)
    outputs = cloud.infer(frames)
    assert outputs["segmentation"].shape == (2, 5, HEIGHT, WIDTH)
    assert outputs["disparity"].shape == (2, HEIGHT, WIDTH) and outputs["reconstruction"].shape == (2, 3, HEIGHT, WIDTH)
    with torch.no_grad():
        reference = model(images)
    if codec == "png":  # lossless after the 8-bit Q-layer: the runtime reproduces the model
        labels = outputs["segmentation"].argmax(1) == reference["segmentation"].argmax(1).numpy()
        assert labels.mean() > 0.99
        np.testing.assert_allclose(outputs["disparity"], reference["disparity"].numpy(), atol=1e-3)
    elif codec == "jpeg2000":  # every stream at its target (±1%, or the closest pass)
        assert len(frames[0]) <= len(model.split_points) * 6000 / 8 * 1.05


def test_runtime_rejects_bad_bytes_and_sizes(exported):
    model, out, _ = exported
    edge, cloud = EdgeRuntime(out / "edge.onnx"), CloudRuntime(out / "cloud.onnx")
    (frame,) = edge.encode(scenes(1).numpy())
    corrupt = bytearray(frame)
    corrupt[len(frame) // 2] ^= 0xFF
    with pytest.raises(CodecError, match="CRC-32 mismatch"):
        cloud.infer(bytes(corrupt))
    with pytest.raises(CodecError):
        cloud.infer(frame[:-5])
    with pytest.raises(CodecError, match="not a cilight feature stream"):
        cloud.infer(b"GIF89a" + bytes(40))
    with pytest.raises(CodecError, match=r"frame holds \d stream"):
        cloud.infer(frame + frame)
    with pytest.raises(ConfigError, match=rf"\[batch, 3, {HEIGHT}, {WIDTH}\].*got \[1, 3, 32, 32\]"):
        edge.encode(np.zeros((1, 3, 32, 32), np.float32))
    with pytest.raises(ConfigError, match="rates for unknown streams"):
        edge.encode(scenes(1).numpy(), rates={"layer9": {}})
    with pytest.raises(ConfigError, match="is the edge half, expected the cloud half"):
        CloudRuntime(out / "edge.onnx")
    with pytest.raises(ConfigError, match="does not exist"):
        EdgeRuntime(out / "missing.onnx")


def test_export_validates_its_arguments(tmp_path):
    model = tiny_model(["layer3"])
    with pytest.raises(ConfigError, match="did you mean 'jpeg'"):
        export_halves(model, tmp_path, HEIGHT, WIDTH, scenes(1), codec="jpg:quality=3")
    with pytest.raises(ConfigError, match="height=50: expected a positive multiple of 16"):
        export_halves(model, tmp_path, 50, WIDTH, scenes(1))
    with pytest.raises(ConfigError, match="opset=11"):
        export_halves(model, tmp_path, HEIGHT, WIDTH, scenes(1), opset=11)


# -- latency model (thesis eq 4.1–4.6) -----------------------------------------------------------


def test_latency_matches_a_hand_computation():
    split = Strategy("split", client_inference=0.030, client_encode=0.005, server_decode=0.004, server_inference=0.002,
                     data_bytes=20_000)
    server = Strategy("server", client_encode=0.003, server_decode=0.002, server_inference=0.008, data_bytes=150_000)
    client = Strategy("client", client_inference=0.120)
    model = LatencyModel((split, server, client), rtt=0.010)
    # eq 4.2: 0.030+0.005+0.004+0.002+0.010 + 20000/1e6 = 0.071; eq 4.3: 0.003+0.002+0.008+0.010+0.15 = 0.173
    np.testing.assert_allclose(model.totals([1e6])[:, 0], [0.071, 0.173, 0.120])
    # crossings by hand: client = split at 0.12 = 0.051 + 2e4/B → B = 2e4/0.069;
    # split = server at 0.051 + 2e4/B = 0.023 + 1.5e5/B → B = 1.3e5/0.028
    ranges = model.winning_ranges(1e3, 1e9)
    assert [r[0] for r in ranges] == ["client", "split", "server"]
    np.testing.assert_allclose(ranges[0][2], 2e4 / 0.069, rtol=1e-12)
    np.testing.assert_allclose(ranges[1][2], 1.3e5 / 0.028, rtol=1e-12)
    assert ranges[0][1] == 1e3 and ranges[-1][2] == pytest.approx(1e9)
    assert model.best([1e4, 1e6, 1e8]) == ["client", "split", "server"]


def test_latency_scaling_and_errors(tmp_path):
    slow = Strategy("split", client_inference=0.01, server_inference=0.01, data_bytes=1)
    slow = slow.scaled(client_slowdown=8, server_speedup=2)
    assert slow.client_inference == pytest.approx(0.08) and slow.server_inference == pytest.approx(0.005)
    with pytest.raises(ConfigError, match="client_inference=-1"):
        Strategy("x", client_inference=-1)
    with pytest.raises(ConfigError, match="unique"):
        LatencyModel((Strategy("a"), Strategy("a")))
    with pytest.raises(ConfigError, match="bandwidth range"):
        LatencyModel((Strategy("a"),)).winning_ranges(10, 1)
    LatencyModel((slow, Strategy("client", client_inference=0.05))).plot(tmp_path / "latency.png", 1e3, 1e8)
    assert (tmp_path / "latency.png").stat().st_size > 1000


# -- export.py end to end ------------------------------------------------------------------------


@pytest.mark.slow
def test_export_cli_on_a_trained_checkpoint(tiny_checkpoint, tmp_path, capsys):
    from PIL import Image

    from cilight.export_cli import main

    demo = tmp_path / "street.png"
    Image.fromarray((scenes(1)[0].permute(1, 2, 0).numpy() * 255).astype(np.uint8)).save(demo)
    out = tmp_path / "onnx"
    assert main(["--ckpt", str(tiny_checkpoint), "--out", str(out), "--samples", "2", "--demo", str(demo),
                 "--codec", "jpeg2000:bpe=2"]) == 0
    stdout = capsys.readouterr().out
    assert "PASSED" in stdout and "bytes (jpeg2000:bpe=2)" in stdout
    for name in ("edge.onnx", "cloud.onnx", "demo_segmentation.png", "demo_disparity.png", "demo_reconstruction.png"):
        assert (out / name).stat().st_size > 0
    assert Image.open(out / "demo_segmentation.png").size == (128, 64)  # the training size of TINY
    assert "dataset_mean.npz: stream means over 8 training images" in stdout  # TINY renders 8
    edge, cloud = EdgeRuntime(out / "edge.onnx"), CloudRuntime(out / "cloud.onnx")  # its fill, beside the halves
    packets = edge.packets(smooth_images(1, 64, 128).numpy(), mss=500)[0]
    assert cloud.infer(packets[1:], conceal="dataset_mean")["segmentation"].shape[0] == 1
    missing, not_a_checkpoint = tmp_path / "nope.ckpt", tmp_path / "street.ckpt"
    not_a_checkpoint.write_bytes(demo.read_bytes())
    for ckpt, expected in ((missing, f"error: --ckpt {missing}: no such file; expected a checkpoint"),
                           (not_a_checkpoint, f"error: --ckpt {not_a_checkpoint}: not a PyTorch archive")):
        assert main(["--ckpt", str(ckpt), "--out", str(out)]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and err.startswith(expected) and "weights_only" not in err, err
    assert main(["--ckpt", str(tiny_checkpoint), "--out", str(out), "--codec", "jpeg2000"]) == 2
    assert "needs bpe" in capsys.readouterr().err


@pytest.mark.slow
def test_export_cli_on_a_two_stream_two_task_checkpoint(two_task_checkpoint, tmp_path, capsys):
    from cilight.export_cli import main

    out = tmp_path / "onnx"
    assert main(["--ckpt", str(two_task_checkpoint), "--out", str(out), "--samples", "2", "--codec", "jpeg:quality=90"]) == 0
    stdout = capsys.readouterr().out
    assert "PASSED" in stdout and "layer2, layer3" in stdout and "tasks segmentation, disparity" in stdout
    meta = HalfMetadata.from_props({p.key: p.value for p in onnx.load(out / "cloud.onnx").metadata_props})
    assert meta.outputs == ("segmentation", "disparity") and meta.codec == "jpeg:quality=90"
    frames = EdgeRuntime(out / "edge.onnx").encode(smooth_images(2, 64, 128, seed=3).numpy())
    outputs = CloudRuntime(out / "cloud.onnx").infer(frames)
    assert list(outputs) == ["segmentation", "disparity"] and outputs["disparity"].shape == (2, 64, 128)
