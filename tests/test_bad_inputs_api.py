"""Every mistake in the Python API is one clear line, and nothing wrong is silently sent from the edge.

The cases ``a01``–``a47`` (and ``a10b``, ``a15b``, ``a31b``, ``a31c``) are the bad-input probe's Python
API section, as a new and careless user tries them; ``o01``… are more of the same kind. Each case
states what is expected: an exception class (a :class:`~cilight.errors.CilightError`) whose message is
one line naming the offending value, or ``accepted`` with a check that the result is right.

The halves are exported once per module (the untrained tiny model of ``tests/helpers``, one stream,
64×96, png); a BaF export (for a frame from other halves) only when a case asks for it.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from helpers import smooth_images, tiny_model

from cilight.ci_models import BaFPredictor
from cilight.codecs import CodecError, decode, get_codec
from cilight.codecs import container as containers
from cilight.deploy import CloudRuntime, EdgeRuntime
from cilight.deploy.wire import FILE_DIGEST, save_sealed
from cilight.errors import CilightError, ConfigError
from cilight.onnx_export import export_halves

HEIGHT, WIDTH = 64, 96
ACCEPTED = "accepted"


class Api:
    """The probe's setting: ``edge``/``cloud`` runtimes on the exported halves, ``good`` a valid float32
    batch, its ``frames`` and ``packets``, and broken files beside them."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.folder = root / "export"
        export_halves(tiny_model(["layer3"]), self.folder, HEIGHT, WIDTH, smooth_images(3, HEIGHT, WIDTH), codec="png")
        self.edge_path, self.cloud_path = self.folder / "edge.onnx", self.folder / "cloud.onnx"
        self.edge, self.cloud = EdgeRuntime(self.edge_path, "png"), CloudRuntime(self.cloud_path)
        self.j2k = EdgeRuntime(self.edge_path, "jpeg2000:bpe=1")
        self.good = smooth_images(2, HEIGHT, WIDTH, seed=1).numpy()
        self.frames = self.edge.encode(self.good)
        self.packets = self.edge.packets(self.good, mss=300)  # per frame
        self.reference = self.cloud.infer(self.frames)
        broken = root / "broken"
        broken.mkdir()
        edge_bytes, cloud_bytes = self.edge_path.read_bytes(), bytearray(self.cloud_path.read_bytes())
        (broken / "TRUNCATED.onnx").write_bytes(edge_bytes[: len(edge_bytes) // 2])
        cloud_bytes[:8] = bytes(b ^ 0xFF for b in cloud_bytes[:8])
        (broken / "BYTE_FLIPPED.onnx").write_bytes(bytes(cloud_bytes))
        weights = bytearray(self.cloud_path.read_bytes())
        weights[len(weights) // 2] ^= 0x10  # one bit of one weight: ONNX Runtime loads it and computes something else
        (broken / "WEIGHT_BIT_FLIPPED.onnx").write_bytes(bytes(weights))
        (broken / "TEXT_FILE.onnx").write_text("this is not a model\n")
        (broken / "EMPTY.onnx").write_bytes(b"")
        self.broken = broken

    @property
    def all_packets(self) -> list[bytes]:
        return [p for frame in self.packets for p in frame]

    @cached_property
    def baf_folder(self) -> Path:
        """Halves of an untrained BaF predictor (16 of the 256 channels at 6 bits) on the same tiny model."""
        model = tiny_model()
        torch.manual_seed(1)
        baf = BaFPredictor(task_hparams=dict(model.hparams), split="layer3.0", num_channels=16, bits=6)
        baf.task_model.load_state_dict(model.state_dict())
        baf.eval()
        images = smooth_images(2, HEIGHT, WIDTH, seed=7)
        baf.calibrate([{"image": images, "segmentation": torch.zeros(2, HEIGHT, WIDTH, dtype=torch.int64),
                        "disparity": torch.ones(2, HEIGHT, WIDTH),
                        "disparity_mask": torch.ones(2, HEIGHT, WIDTH, dtype=torch.bool)}])
        out = self.root / "baf"
        export_halves(baf, out, HEIGHT, WIDTH, images)
        return out

    def nan_side_frame(self) -> bytes:
        """A frame as the edge once wrote it for an all-NaN image: valid codes, NaN side information."""
        header, _, payload = containers.parse(self.frames[0])
        return containers.pack(header, np.full(2, np.nan, np.float32), payload)

    def with_metadata(self, name: str, **props: str) -> Path:
        """A copy of ``cloud.onnx`` with some metadata values replaced."""
        proto = onnx.load(self.cloud_path)
        for prop in proto.metadata_props:
            if prop.key in props:
                prop.value = props[prop.key]
        path = self.root / name
        save_sealed(proto, path)  # as a file written with these values would be: sealed, so the metadata is read
        return path

    def unsealed(self) -> Path:
        """``cloud.onnx`` as exporters before the file digest wrote it: no ``file_sha256`` entry."""
        proto = onnx.load(self.cloud_path)
        (entry,) = [p for p in proto.metadata_props if p.key == FILE_DIGEST]
        proto.metadata_props.remove(entry)
        path = self.root / "unsealed.onnx"
        onnx.save(proto, path)
        return path

    def foreign_onnx(self) -> Path:
        """A valid ONNX model that export.py did not write (no cilight metadata)."""
        x = onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1])
        y = onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1])
        graph = onnx.helper.make_graph([onnx.helper.make_node("Identity", ["x"], ["y"])], "g", [x], [y])
        path = self.root / "identity.onnx"
        onnx.save(onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 17)]), path)
        return path


@pytest.fixture(scope="module")
def api(tmp_path_factory) -> Api:
    return Api(tmp_path_factory.mktemp("bad_inputs_api"))


@dataclass(frozen=True)
class Case:
    """``call(api)`` and what it must do: raise ``expected`` with every ``needle`` in its one-line message,
    or (``expected == ACCEPTED``) return what ``check(result, api)`` accepts."""

    id: str
    call: Callable[[Api], object]
    expected: type[Exception] | str
    needles: tuple[str, ...] = ()
    check: Callable[[object, Api], None] | None = None


def fails(id: str, call, expected: type[Exception], *needles: str) -> Case:
    return Case(id, call, expected, needles)


def accepted(id: str, call, check) -> Case:
    return Case(id, call, ACCEPTED, check=check)


def same_frames_as(images: Callable[[Api], np.ndarray]):
    def check(result, api):
        assert result == api.edge.encode(images(api))
    return check


def same_outputs(result, api):
    assert list(result) == list(api.reference)
    for name, value in api.reference.items():
        np.testing.assert_array_equal(result[name][:1], value[:1])


def close_outputs(result, api):
    """Frames of (nearly) the same images: the cloud's labels agree almost everywhere."""
    outputs = api.cloud.infer(result)
    agree = (outputs["segmentation"].argmax(1) == api.reference["segmentation"].argmax(1)).mean()
    assert agree > 0.98, agree


def within_target(bits: float):
    def check(result, api):
        assert all(len(frame) * 8 <= bits * 1.02 for frame in result), [len(f) for f in result]
        assert all(len(frame) * 8 >= bits * 0.8 for frame in result), [len(f) for f in result]
    return check


SHAPE = f"[batch, 3, {HEIGHT}, {WIDTH}]"

CASES = [
    # -- the probe: loading the halves ---------------------------------------------------------------------
    fails("a01-nonexistent-path", lambda a: EdgeRuntime(a.broken / "MISSING.onnx"), ConfigError,
          "MISSING.onnx", "does not exist"),
    fails("a02-truncated-onnx", lambda a: EdgeRuntime(a.broken / "TRUNCATED.onnx"), ConfigError,
          "TRUNCATED.onnx", "not a valid ONNX model, truncated or corrupt?"),
    fails("a03-byte-flipped-onnx", lambda a: CloudRuntime(a.broken / "BYTE_FLIPPED.onnx"), ConfigError,
          "BYTE_FLIPPED.onnx", "do not match the SHA-256 written into it at export", "copy or export it again"),
    fails("a03b-weight-bit-flipped-onnx", lambda a: CloudRuntime(a.broken / "WEIGHT_BIT_FLIPPED.onnx"), ConfigError,
          "WEIGHT_BIT_FLIPPED.onnx", "do not match the SHA-256 written into it at export", "corrupted"),
    fails("a04-text-file-as-onnx", lambda a: CloudRuntime(a.broken / "TEXT_FILE.onnx"), ConfigError,
          "TEXT_FILE.onnx", "not a valid ONNX model"),
    fails("a05-edge-runtime-given-cloud-onnx", lambda a: EdgeRuntime(a.cloud_path), ConfigError,
          "cloud.onnx is the cloud half, expected the edge half", "the edge half is", "edge.onnx"),
    fails("a06-cloud-runtime-given-edge-onnx", lambda a: CloudRuntime(a.edge_path), ConfigError,
          "edge.onnx is the edge half, expected the cloud half", "the cloud half is", "cloud.onnx"),
    fails("a07-folder", lambda a: EdgeRuntime(a.folder), ConfigError,
          "is a folder, expected an .onnx file", "pass", "edge.onnx"),
    fails("a08-codec-quality-200", lambda a: EdgeRuntime(a.edge_path, "jpeg:quality=200"), ConfigError,
          "quality=200", "from 1 to 100"),
    fails("a09-unknown-codec", lambda a: EdgeRuntime(a.edge_path, "nosuchcodec"), ConfigError,
          "'nosuchcodec'", "png, jpeg, jpeg2000"),
    fails("a10-rate-option-typo", lambda a: EdgeRuntime(a.edge_path, "jpeg2000", target_bitz=100), ConfigError,
          "unknown rate option 'target_bitz' for codec jpeg2000; did you mean 'target_bits'?", "bpe, target_bits"),
    fails("a10b-encode-after-rate-option-typo",  # the runtime is never built, so nothing is encoded
          lambda a: [len(f) for f in EdgeRuntime(a.edge_path, "jpeg2000", target_bitz=100).encode(a.good)],
          ConfigError, "'target_bitz'", "did you mean 'target_bits'"),
    fails("a45-empty-codec", lambda a: EdgeRuntime(a.edge_path, ""), ConfigError,
          "operating point ''", "codecs: png, jpeg, jpeg2000"),
    # -- the probe: images at the edge ----------------------------------------------------------------------
    fails("a11-uint8-image", lambda a: [len(f) for f in a.edge.encode((a.good * 255).astype(np.uint8))], ConfigError,
          "dtype uint8 with values up to 25", "expected float32 in [0, 1] (divide by 255)"),
    fails("a12-2d-array", lambda a: a.edge.encode(np.zeros((HEIGHT, WIDTH), np.float32)), ConfigError,
          SHAPE, f"got [{HEIGHT}, {WIDTH}]"),
    fails("a13-wrong-height", lambda a: a.edge.encode(np.zeros((1, 3, 96, WIDTH), np.float32)), ConfigError,
          SHAPE, "exported at", f"got [1, 3, 96, {WIDTH}]"),
    fails("a14-hwc-layout", lambda a: a.edge.encode(np.zeros((HEIGHT, WIDTH, 3), np.float32)), ConfigError,
          f"[{HEIGHT}, {WIDTH}, 3], channels last", "transpose(2, 0, 1)"),
    fails("a15-nan-image", lambda a: [len(f) for f in a.edge.encode(np.full((1, 3, HEIGHT, WIDTH), np.nan, np.float32))],
          ConfigError, f"{3 * HEIGHT * WIDTH} NaN", "expected finite values"),
    fails("a15b-cloud-on-nan-side-frame",  # what the edge sent for a15 before it checked images
          lambda a: a.cloud.infer(a.nan_side_frame()), CodecError, "side information is not finite", "nan"),
    fails("a16-float64-times-255", lambda a: [len(f) for f in a.edge.encode(a.good.astype(np.float64) * 255)],
          ConfigError, "float64 values from", "expected values in [0, 1]", "divide by 255"),
    fails("a17-empty-batch", lambda a: a.edge.encode(np.zeros((0, 3, HEIGHT, WIDTH), np.float32)), ConfigError,
          "empty batch", f"[0, 3, {HEIGHT}, {WIDTH}]"),
    fails("a18-python-list", lambda a: a.edge.encode([[1, 2], [3, 4]]), ConfigError,
          "got a list", "expected a numpy array"),
    fails("a46-5d-array", lambda a: a.edge.encode(np.zeros((1, 1, 3, HEIGHT, WIDTH), np.float32)), ConfigError,
          SHAPE, f"got [1, 1, 3, {HEIGHT}, {WIDTH}]"),
    fails("a47-inf-image", lambda a: [len(f) for f in a.edge.encode(np.full((1, 3, HEIGHT, WIDTH), np.inf, np.float32))],
          ConfigError, f"{3 * HEIGHT * WIDTH} infinite", "expected finite values"),
    # -- the probe: rates -----------------------------------------------------------------------------------
    fails("a19-rates-for-unknown-stream", lambda a: a.edge.encode(a.good, rates={"layer9": {"target_bits": 1000}}),
          ConfigError, "unknown streams ['layer9']", "['layer3']"),
    fails("a20-j2k-negative-target", lambda a: a.j2k.encode(a.good, rates={"layer3": {"target_bits": -5}}), ConfigError,
          "target_bits=-5", "positive"),
    fails("a21-j2k-target-below-smallest-stream",  # documented: CodecError naming the smallest stream, nothing sent
          lambda a: a.j2k.encode(a.good, rates={"layer3": {"target_bits": 10}}), CodecError,
          "target_bits=10 is below the smallest jpeg2000 stream", "bits"),
    fails("a22-png-given-quality", lambda a: a.edge.encode(a.good, rates={"layer3": {"quality": 5}}), ConfigError,
          "codec png takes no rate options", "'quality'"),
    fails("a42-j2k-target-not-a-number", lambda a: a.j2k.encode(a.good, rates={"layer3": {"target_bits": "abc"}}),
          ConfigError, "target_bits='abc'"),
    # -- the probe: bytes at the cloud ----------------------------------------------------------------------
    fails("a23-empty-bytes", lambda a: a.cloud.infer(b""), CodecError, "empty frame (0 bytes)"),
    fails("a24-random-bytes", lambda a: a.cloud.infer(bytes(np.random.default_rng(0).integers(0, 256, 500, np.uint8))),
          CodecError, "not a cilight feature stream", "magic"),
    fails("a25-truncated-frame", lambda a: a.cloud.infer(a.frames[0][: len(a.frames[0]) // 2]), CodecError,
          "its header announces", "truncated or padded"),
    fails("a26-empty-list", lambda a: a.cloud.infer([]), CodecError, "nothing to infer from: an empty list"),
    fails("a27-str-instead-of-bytes", lambda a: a.cloud.infer("hello"), CodecError, "got a str ('hello')",
          "expected bytes"),
    fails("a28-none", lambda a: a.cloud.infer(None), CodecError, "got None", "expected bytes"),
    fails("a29-one-flipped-byte", lambda a: a.cloud.infer(a.frames[0][:100] + bytes([a.frames[0][100] ^ 1])
                                                         + a.frames[0][101:]),
          CodecError, "CRC-32 mismatch"),
    fails("a30-two-frames-as-one", lambda a: a.cloud.infer(a.frames[0] + a.frames[0]), CodecError,
          "frame holds 2 stream(s)", "expects 1 (layer3)"),
    fails("a31-frames-bad-conceal", lambda a: sorted(a.cloud.infer(a.frames, conceal="bogus")), ConfigError,
          "conceal='bogus'", "zero, channel_mean"),
    fails("a31b-packets-bad-conceal", lambda a: sorted(a.cloud.infer(a.all_packets[1:], conceal="bogus")), ConfigError,
          "conceal='bogus'"),
    fails("a31c-all-packets-bad-conceal", lambda a: sorted(a.cloud.infer(a.all_packets, conceal="bogus")), ConfigError,
          "conceal='bogus'"),
    fails("a43-frame-from-baf-export", lambda a: a.cloud.infer(EdgeRuntime(a.baf_folder / "edge.onnx").encode(a.good)),
          CodecError, "channel 6-bit [16,", "minmax 8-bit [256,", "other halves"),
    fails("a44-missing-dataset-mean", lambda a: CloudRuntime(a.cloud_path, dataset_mean=a.root / "nope.npz").infer(
          a.all_packets[1:], conceal="dataset_mean"), ConfigError, "nope.npz does not exist"),
    # -- the probe: codecs ----------------------------------------------------------------------------------
    fails("a32-get-codec-unknown", lambda a: get_codec("nosuchcodec"), ConfigError, "codec='nosuchcodec'",
          "png, jpeg, jpeg2000"),
    fails("a33-jpeg-quality-200", lambda a: get_codec("jpeg", quality=200), ConfigError, "quality=200"),
    fails("a34-jpeg-option-typo", lambda a: get_codec("jpeg", qualty=90), ConfigError,
          "unknown option 'qualty' for codec jpeg; did you mean 'quality'? options: quality, quantizer"),
    fails("a35-jpeg2000-bogus-quantizer", lambda a: get_codec("jpeg2000", quantizer="bogus"), ConfigError,
          "quantizer='bogus'", "minmax"),
    fails("a36-jpeg2000-negative-bpe", lambda a: get_codec("jpeg2000").encode(torch.randn(8, 4, 4), bpe=-1), ConfigError,
          "bpe=-1"),
    fails("a37-png-2d-tensor", lambda a: get_codec("png").encode(torch.randn(4, 4)), CodecError, "[C, H, W]", "(4, 4)"),
    fails("a38-png-nan-tensor", lambda a: len(get_codec("png").encode(torch.full((4, 4, 4), float("nan")))), CodecError,
          "NaN"),
    fails("a39-decode-zeros", lambda a: decode(b"\x00" * 40), CodecError, "not a cilight feature stream",
          r"b'\x00\x00\x00\x00'"),
    fails("a40-png-nested-list", lambda a: len(get_codec("png").encode([[[0.5] * 4] * 4] * 4)),
          CodecError, "numpy or torch", "got list"),
    fails("a41-jpeg-int64-tensor", lambda a: len(get_codec("jpeg").encode(torch.ones(4, 4, 4, dtype=torch.int64))),
          CodecError, "floating point", "int64"),
    # -- more of the same kind ------------------------------------------------------------------------------
    accepted("o00-half-exported-before-file-digests", lambda a: CloudRuntime(a.unsealed()).infer(a.frames),
             lambda result, a: [np.testing.assert_array_equal(result[k], v) for k, v in a.reference.items()]),
    accepted("o01-float16-image", lambda a: a.edge.encode(a.good.astype(np.float16)), close_outputs),
    accepted("o02-float64-image-in-range", lambda a: a.edge.encode(a.good.astype(np.float64)),
             same_frames_as(lambda a: a.good)),
    accepted("o03-one-image-without-batch-axis", lambda a: a.edge.encode(a.good[0]), same_frames_as(lambda a: a.good[:1])),
    accepted("o04-values-within-tolerance", lambda a: a.edge.encode(np.clip(a.good * 1.02 - 0.0005, -0.0009, 1.0009)
                                                                  .astype(np.float32)), close_outputs),
    fails("o05-slightly-above-one", lambda a: a.edge.encode(a.good * 1.05), ConfigError,
          "values from", "to 1.0", "np.clip(images, 0, 1)"),
    fails("o06-imagenet-normalized", lambda a: a.edge.encode((a.good - 0.45) / 0.225), ConfigError,
          "values from -", "normalized with a mean and std"),
    fails("o07-channels-last-batch", lambda a: a.edge.encode(a.good.transpose(0, 2, 3, 1).copy()), ConfigError,
          f"[2, {HEIGHT}, {WIDTH}, 3], channels last", "transpose(0, 3, 1, 2)"),
    fails("o08-torch-tensor-image", lambda a: a.edge.encode(torch.from_numpy(a.good)), ConfigError,
          "got a torch.Tensor", "tensor.numpy()"),
    fails("o09-bool-image", lambda a: a.edge.encode(a.good > 0.5), ConfigError, "dtype bool"),
    fails("o10-codec-not-a-string", lambda a: EdgeRuntime(a.edge_path, 5), ConfigError, "codec=5",
          "expected an operating point"),
    fails("o11-codec-option-typo-in-point", lambda a: EdgeRuntime(a.edge_path, "jpeg:qualty=90"), ConfigError,
          "'qualty'", "did you mean 'quality'"),
    fails("o12-codec-option-the-halves-fix", lambda a: EdgeRuntime(a.edge_path, "png:quantizer=clip"), ConfigError,
          "quantizer is fixed by the exported halves", "quantizer='minmax'"),
    fails("o13-learned-codec-on-quantized-halves", lambda a: EdgeRuntime(a.edge_path, "learned"), ConfigError,
          "codec 'learned' cannot code", "png, jpeg, jpeg2000"),
    fails("o14-codec-name-in-capitals", lambda a: get_codec("PNG"), ConfigError, "codec='PNG'", "did you mean 'png'"),
    fails("o15-rates-value-not-a-dict", lambda a: a.edge.encode(a.good, rates={"layer3": 5}), ConfigError,
          "rates['layer3']: got an int"),
    accepted("o16-stream-target-over-the-points-bpe", lambda a: a.j2k.encode(a.good, rates={"layer3": {"target_bits": 8000}}),
             within_target(8000)),
    accepted("o17-bytes-subclass-frame", lambda a: a.cloud.infer(type("Frame", (bytes,), {})(a.frames[0])), same_outputs),
    accepted("o18-bytearray-frame", lambda a: a.cloud.infer(bytearray(a.frames[0])), same_outputs),
    fails("o19-none-in-a-list-of-frames", lambda a: a.cloud.infer([a.frames[0], None]), CodecError, "data[1]: got None"),
    fails("o20-numpy-array-of-bytes", lambda a: a.cloud.infer(np.frombuffer(a.frames[0], np.uint8)), CodecError,
          "got a numpy array uint8", "tobytes()"),
    fails("o21-frames-and-packets-mixed", lambda a: a.cloud.infer([a.frames[0], *a.packets[1]]), CodecError,
          "mixes", "whole frame(s) (first at index 0)"),
    fails("o22-packets-from-another-export",
          lambda a: a.cloud.infer([p for f in EdgeRuntime(a.baf_folder / "edge.onnx").packets(a.good, mss=300) for p in f]),
          CodecError, "16 channels", "has 256"),
    fails("o23-conceal-not-a-string", lambda a: a.cloud.infer(a.frames, conceal=1), ConfigError, "conceal=1"),
    fails("o24-drop-corrupt-not-a-bool", lambda a: a.cloud.infer(a.all_packets, drop_corrupt="yes"), ConfigError,
          "drop_corrupt='yes'"),
    fails("o25-empty-onnx-file", lambda a: EdgeRuntime(a.broken / "EMPTY.onnx"), ConfigError, "EMPTY.onnx", "is empty"),
    fails("o26-onnx-without-cilight-metadata", lambda a: CloudRuntime(a.foreign_onnx()), ConfigError,
          "identity.onnx has no valid cilight metadata"),
    fails("o27-metadata-names-an-output-the-graph-lacks",
          lambda a: CloudRuntime(a.with_metadata("renamed.onnx", outputs='["segmentation", "depth", "reconstruction"]')),
          ConfigError, "renamed.onnx", "output 'depth'", "graph lacks"),
    fails("o28-path-not-a-path", lambda a: EdgeRuntime(None), ConfigError, "edge model path None"),
    fails("o29-folder-without-halves", lambda a: CloudRuntime(a.broken), ConfigError, "is a folder", "TEXT_FILE.onnx"),
    fails("o30-get-codec-constructor-option-typo", lambda a: get_codec("jpeg2000", target_bitz=3), ConfigError,
          "unknown option 'target_bitz' for codec jpeg2000; did you mean 'target_bits'?"),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(api, case):
    if case.expected == ACCEPTED:
        case.check(case.call(api), api)
        return
    with pytest.raises(Exception) as info:
        case.call(api)
    err = info.value
    message = str(err)
    assert isinstance(err, CilightError) and type(err) is case.expected, f"{type(err).__name__}: {message}"
    assert "\n" not in message and message.strip(), repr(message)
    for needle in case.needles:
        assert needle in message, f"{needle!r} not in {message!r}"


def test_every_probe_case_is_covered():
    probe = {f"a{i:02d}" for i in range(1, 48)} | {"a10b", "a15b", "a31b", "a31c"}
    ids = [c.id.split("-")[0] for c in CASES]
    assert probe <= set(ids), sorted(probe - set(ids))
    assert len(ids) == len(set(ids))
    assert sum(not i.startswith("a") for i in ids) >= 10


def test_the_other_half_hint_names_only_a_file_that_is_there(api, tmp_path):
    """The other-half hint names the file beside the given one only when it is there."""
    shutil.copy(api.edge_path, tmp_path / "edge.onnx")
    with pytest.raises(ConfigError, match="export.py writes it as cloud.onnx"):
        CloudRuntime(tmp_path / "edge.onnx")
