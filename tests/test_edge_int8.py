"""The int8 edge half: ONNX Runtime static quantization of ``edge.onnx``, its metadata, its wire tensors, the
runtimes over its bytes, its check against the float chain, and ``export.py --edge-int8``."""

from __future__ import annotations

import json
import shutil

import numpy as np
import onnx
import pytest
from helpers import smooth_images

import cilight.edge_int8 as edge_int8
from cilight.deploy import CloudRuntime, EdgeRuntime
from cilight.edge_int8 import EDGE_INT8, PRECISION_KEY, Int8ParityError, export_edge_int8, quantize_edge, read_metadata
from cilight.errors import ConfigError

HEIGHT, WIDTH = 64, 96


def calibration(count: int = 2):
    """Batches of smooth images standing in for training images."""
    return (smooth_images(4, HEIGHT, WIDTH, seed=20 + s).numpy() for s in range(count))


@pytest.fixture
def halves(tiny_halves, tmp_path):
    """The session's tiny halves (one stream or two), copied so an int8 half can be written beside them."""
    model, folder, _ = tiny_halves
    for name in ("edge.onnx", "cloud.onnx"):
        shutil.copy(folder / name, tmp_path)
    return model, tmp_path


def test_int8_half_keeps_the_metadata_and_the_wire(halves):
    model, out = halves
    path = quantize_edge(out, calibration(), count=6)
    assert path == out / EDGE_INT8 and (out / "edge.onnx").is_file()
    assert path.stat().st_size < 0.4 * (out / "edge.onnx").stat().st_size  # int8 weights: about a quarter
    props, meta = read_metadata(path)
    assert meta == read_metadata(out / "edge.onnx")[1]  # what the runtimes read is unchanged
    precision = json.loads(props[PRECISION_KEY])
    assert precision["weights"].startswith("int8") and precision["calibration_images"] == 6
    ops = {n.op_type for n in onnx.load(path).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear", "Round", "ReduceMax"} <= ops  # int8 convolutions, float Q-layer
    edge = EdgeRuntime(path)
    wire = edge.features(smooth_images(3, HEIGHT, WIDTH, seed=7).numpy())
    for split in model.split_points:
        assert wire[f"codes_{split}"].dtype == np.uint8
        low, high = wire[f"minimum_{split}"], wire[f"maximum_{split}"]
        assert np.isfinite(low).all() and np.isfinite(high).all() and (high >= low).all()
    frames = edge.encode(smooth_images(2, HEIGHT, WIDTH, seed=8).numpy())
    outputs = CloudRuntime(out / "cloud.onnx").infer(frames)
    assert list(outputs) == [t.output_name for t in model.tasks]
    assert outputs["segmentation"].shape == (2, 5, HEIGHT, WIDTH) and all(np.isfinite(v).all() for v in outputs.values())


def test_int8_check_against_the_float_chain(halves, monkeypatch):
    model, out = halves
    images = smooth_images(3, HEIGHT, WIDTH, seed=9).numpy()
    report = export_edge_int8(out, calibration(), images, ["segmentation"], count=8)
    assert not report.failures and report.samples == 3 and report.calibration_images == 8
    assert set(report.label_agreement) == {"segmentation"}
    assert set(report.relative_error) == {"disparity", "reconstruction"}
    assert all(report.codes_in_range.values()) and all(report.side_finite.values())
    assert "PASSED" in report.table()
    monkeypatch.setattr(edge_int8, "INT8_MAX_RELATIVE_ERROR", -1.0)  # a tolerance nothing meets
    with pytest.raises(Int8ParityError) as caught:
        export_edge_int8(out, calibration(), images, ["segmentation"], count=8)
    message = str(caught.value)
    assert len(message.splitlines()) == 1 and message.startswith("edge_int8.onnx removed, the float halves kept")
    assert "disparity relative RMS difference" in message and "FAILED" in caught.value.report.table()
    assert not (out / EDGE_INT8).exists() and (out / "edge.onnx").is_file()


def test_int8_refuses_bad_input(halves):
    _, out = halves
    for count in (0, -3, 2.5, True):
        with pytest.raises(ConfigError, match=r"calibration images .*: expected a whole number ≥ 1"):
            quantize_edge(out, calibration(), count=count)
    with pytest.raises(ConfigError, match="no training images to calibrate"):
        quantize_edge(out, iter(()), count=4)
    assert not (out / EDGE_INT8).exists()


@pytest.mark.parametrize("args, expected", [
    (["--edge-int8", "--int8-calibration-images", "0"], "error: --int8-calibration-images 0: expected at least 1"),
    (["--int8-calibration-images", "16"], "error: --int8-calibration-images 16: calibrates the int8 edge half; "
                                          "add --edge-int8"),
    (["--edge-int8", "--int8-calibration-images", "many"], "error: argument --int8-calibration-images: invalid int"),
], ids=["zero", "without-edge-int8", "not-a-number"])
def test_export_cli_rejects_bad_int8_options(tmp_path, capsys, args, expected):
    from cilight.export_cli import main

    assert main(["--ckpt", str(tmp_path / "model.ckpt"), "--out", str(tmp_path / "out"), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith(expected), err


def test_export_cli_edge_int8(tiny_checkpoint, tmp_path, capsys):
    from cilight.export_cli import main

    out = tmp_path / "onnx"
    assert main(["--ckpt", str(tiny_checkpoint), "--out", str(out), "--samples", "2", "--mean-images", "0",
                 "--edge-int8", "--int8-calibration-images", "4"]) == 0
    stdout = capsys.readouterr().out
    assert "int8 edge half → cloud against the float chain, 2 samples" in stdout
    assert "calibrated on 4 training images" in stdout and stdout.count("PASSED") == 2
    frames = EdgeRuntime(out / EDGE_INT8).encode(smooth_images(1, 64, 128).numpy())
    assert CloudRuntime(out / "cloud.onnx").infer(frames)["disparity"].shape == (1, 64, 128)
    assert main(["--ckpt", str(tiny_checkpoint), "--out", str(out), "--samples", "2", "--mean-images", "0"]) == 0
    assert "edge_int8.onnx of an earlier export removed" in capsys.readouterr().out
    assert not (out / EDGE_INT8).exists()  # new float halves never sit beside an int8 half of other weights
