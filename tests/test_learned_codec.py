"""The learned codec: bytes through the codec contract, fixed tables in the checkpoint, another process, DDP."""

from __future__ import annotations

import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import TINY, smooth_images, train_subprocess

from cilight.ci_models import BottleneckTransmission, MultiTaskCI, QLayerTransmission
from cilight.ci_models.bottleneck import BOTTLENECKS, make_bottleneck
from cilight.ci_models.checkpoints import load_task_model
from cilight.ci_models.multitask import TRANSMISSIONS_KEY
from cilight.ci_models.transmission import AUX_LR, ENTROPY_LR, BottleneckLatents
from cilight.codecs import CodecError, decode, get_codec, split_streams, stream_coder
from cilight.errors import ConfigError


def toy(name: str, seed: int = 0):
    """A bottleneck as the learned codec's latent model (numpy in and out) and its fixed tables."""
    torch.manual_seed(seed)
    model = make_bottleneck(name, 16, 4).eval()
    return BottleneckLatents(model), model.fix_tables()


def stream(seed: int = 0, shape=(16, 5, 7)) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed)) * 3


@pytest.mark.parametrize("name", list(BOTTLENECKS))
def test_round_trip_is_the_models_own_eval_forward(name):
    model, tables = toy(name)
    codec = get_codec("learned", model=model, tables=tables)
    x = stream()
    data = codec.encode(x)
    header, symbols = codec.decode_symbols(data)
    with torch.no_grad():
        expected = model.bottleneck.symbols(x[None], tables)
        forward = model.bottleneck(x[None]).features[0]
    assert set(symbols) == set(model.coding_order)
    for key in model.coding_order:
        np.testing.assert_array_equal(symbols[key], expected[key][0].numpy())  # bit-exact through the bytes
    assert header.shape == tuple(x.shape) and header.quantizer == "none" and data[5] == 4 and data[4] == 2
    np.testing.assert_array_equal(codec.decode(data), forward.numpy())  # the cloud sees what validation measured
    assert codec.decode(codec.encode(x.half())).dtype == np.float16
    assert codec.encode(x.numpy()) == data  # a numpy array or the equal tensor: the same bytes
    assert split_streams(data + data) == [data, data]
    assert codec.encode(x) == data  # deterministic
    fields = data[:4] + b"\x01" + data[5:20]  # container version 1: a learned stream coded with CompressAI's rANS
    version_1 = fields + zlib.crc32(data[24:], zlib.crc32(fields)).to_bytes(4, "little") + data[24:]
    with pytest.raises(CodecError, match="version 1 learned stream was range-coded with CompressAI"):
        codec.decode(version_1)


def test_fuzzed_truncated_and_padded_bytes_are_refused():
    model, tables = toy("hyperprior")
    codec = get_codec("learned", model=model, tables=tables)
    data = codec.encode(stream())
    rng = np.random.default_rng(0)
    for _ in range(300):
        corrupt = bytearray(data)
        corrupt[rng.integers(len(data))] ^= 1 << int(rng.integers(8))
        with pytest.raises(CodecError):
            codec.decode(bytes(corrupt))
    for bad in (data[:0], data[:10], data[:-1], data + b"\0"):
        with pytest.raises(CodecError):
            codec.decode(bad)


def test_other_models_codecs_and_options_are_refused():
    model, tables = toy("factorized")
    codec = get_codec("learned", model=model, tables=tables)
    data = codec.encode(stream())
    other = get_codec("learned", model=toy("factorized", seed=1)[0], tables=toy("factorized", seed=1)[1])
    with pytest.raises(CodecError, match="coded with other entropy tables"):
        other.decode(data)
    with pytest.raises(CodecError, match="written by the 'png' codec"):
        codec.decode(get_codec("png").encode(stream()))
    with pytest.raises(CodecError, match="decodes only with the model that wrote it"):
        decode(data)
    with pytest.raises(CodecError, match="12 channels, the model's stream has 16"):
        codec.encode(stream(shape=(12, 4, 4)))
    with pytest.raises(CodecError, match=r"floating-point \[C, H, W\]"):
        codec.encode(stream()[None])
    with pytest.raises(ConfigError, match="no rate options"):
        codec.encode(stream(), quality=90)
    with pytest.raises(ConfigError, match="bound to a trained model"):
        get_codec("learned")
    with pytest.raises(ConfigError, match="tables for latents"):
        get_codec("learned", model=model, tables={})
    with pytest.raises(ConfigError, match="no rate knob to sweep"):
        stream_coder("learned")


def test_options_that_do_not_go_with_or_without_a_bottleneck():
    with pytest.raises(ConfigError, match="unexpected keyword argument 'rate_lambda'"):
        MultiTaskCI(transmission=QLayerTransmission.spec(rate_lambda=1e-3))
    with pytest.raises(ConfigError, match="rate_lambda=0: expected a positive number"):
        MultiTaskCI(transmission=BottleneckTransmission.spec(rate_lambda=0))
    with pytest.raises(ConfigError, match="unexpected keyword argument 'rate_loss'"):
        MultiTaskCI(transmission=BottleneckTransmission.spec(rate_loss="proxy_bits"))
    with pytest.raises(ConfigError, match="prior='gaussian'"):
        MultiTaskCI(transmission=BottleneckTransmission.spec(prior="gaussian"))
    with pytest.raises(ConfigError, match="entropy_lr=0: expected a positive number"):
        MultiTaskCI(transmission=BottleneckTransmission.spec(entropy_lr=0))
    assert MultiTaskCI().transmissions[0].own_codec() is None
    with pytest.raises(ConfigError, match="no entropy tables"):
        MultiTaskCI(transmission=BottleneckTransmission.spec()).transmissions[0].own_codec()


def test_train_py_stores_the_tables_and_trains_every_parameter_group(learned_checkpoint):
    state = torch.load(learned_checkpoint, map_location="cpu", weights_only=True)
    assert len(state["optimizer_states"]) == 1  # one Adam: the network, the densities, the quantiles
    network, densities, quantile_group = state["optimizer_states"][0]["param_groups"]
    assert densities["initial_lr"] == ENTROPY_LR == 10 * network["initial_lr"]
    assert quantile_group["initial_lr"] == AUX_LR and quantile_group["weight_decay"] == 0.0
    model = load_task_model(learned_checkpoint)
    names = {id(p): n for n, p in model.named_parameters()}
    density_group, quantile_params = model.transmissions[0].parameter_groups()
    density_names = {names[id(p)] for p in density_group["params"]}
    assert len(densities["params"]) == len(density_names) > 0
    assert all(".entropy_z." in n and not n.endswith("quantiles") for n in density_names)
    assert {names[id(p)] for p in quantile_params["params"]} == {"transmissions.0.bottleneck.entropy_z.quantiles"}
    quantiles = state["state_dict"]["transmissions.0.bottleneck.entropy_z.quantiles"]
    assert not torch.allclose(quantiles, torch.tensor([-10.0, 0.0, 10.0]).expand_as(quantiles))  # aux steps ran
    model = load_task_model(learned_checkpoint)
    stored = model.transmissions[0].own_codec().digest
    with torch.no_grad():  # the codec reads the checkpoint's tables; it never recomputes them
        model.transmissions[0].bottleneck.entropy_z.quantiles.add_(0.37)
    assert model.transmissions[0].own_codec().digest == stored
    assert set(state[TRANSMISSIONS_KEY][0]) >= {"z.quantized_cdf", "y.quantized_cdf", "z.medians"}

    model = load_task_model(learned_checkpoint)
    codec = model.transmissions[0].own_codec()
    with torch.no_grad():
        for x in model.features(smooth_images(2, 64, 128))[0]:  # one sample at a time, as the codec runs
            np.testing.assert_array_equal(codec.decode(codec.encode(x)), model.transmissions[0](x[None]).features[0].numpy())


def test_bytes_written_in_another_process_decode_bit_exactly(learned_checkpoint, tmp_path):
    script = (
        "import sys, torch\n"
        "sys.path.insert(0, sys.argv[3])\n"
        "from helpers import smooth_images\n"
        "from cilight.ci_models.checkpoints import load_task_model\n"
        "m = load_task_model(sys.argv[1])\n"
        "with torch.no_grad():\n"
        "    f = m.features(smooth_images(1, 64, 128, seed=5))[0][0]\n"
        "open(sys.argv[2], 'wb').write(m.transmissions[0].own_codec().encode(f))\n"
    )
    out = tmp_path / "stream.bin"
    tests = str(Path(__file__).parent)
    proc = subprocess.run([sys.executable, "-c", script, str(learned_checkpoint), str(out), tests],
                          capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-2000:]
    model = load_task_model(learned_checkpoint)
    with torch.no_grad():
        features = model.features(smooth_images(1, 64, 128, seed=5))[0][0]
        expected = model.transmissions[0](features[None]).features[0]
    codec = model.transmissions[0].own_codec()
    data = out.read_bytes()
    assert data == codec.encode(features)
    np.testing.assert_array_equal(codec.decode(data), expected.numpy())


@pytest.mark.slow
def test_ddp_with_the_aux_optimizer(tmp_path):
    root = tmp_path / "runs"
    args = [*TINY, "--trainer.default_root_dir", str(root), "--run_name", "ddp", "--trainer.accelerator", "cpu",
            "--trainer.devices", "2", "--trainer.strategy", "ddp", "--model.transmission", "BottleneckTransmission",
            "--model.transmission.channels", "8"]
    proc = train_subprocess(args, tmp_path, timeout=400, extra_env={"OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-4000:]
    model = load_task_model(root / "ddp" / "checkpoints" / "last.ckpt")
    assert model.transmissions[0].own_codec().tables["y"].rows == 8


class DisagreeingRows:
    """A model whose y rows at the decoder are one row off: what two machines' kernels disagreeing looks like."""

    def __init__(self, model):
        self.model = model
        self.channels, self.coding_order = model.channels, model.coding_order

    def __getattr__(self, name):
        return getattr(self.model, name)

    def rows(self, name, decoded, shape, tables):
        rows = self.model.rows(name, decoded, shape, tables)
        return rows if name == "z" else np.minimum(rows + 1, tables[name].rows - 1)


def test_rows_that_differ_from_the_edges_are_caught():
    model, tables = toy("hyperprior")
    data = get_codec("learned", model=model, tables=tables).encode(stream())
    with pytest.raises(CodecError, match="table rows of latent 'y' computed here differ"):
        get_codec("learned", model=DisagreeingRows(model), tables=tables).decode(data)


@pytest.fixture(scope="module")
def exported(learned_checkpoint, tmp_path_factory):
    from cilight.export_cli import main as export

    out = tmp_path_factory.mktemp("learned_onnx")
    assert export(["--ckpt", str(learned_checkpoint), "--out", str(out), "--samples", "2"]) == 0
    return out


def test_export_and_the_runtimes_move_the_learned_bytes(learned_checkpoint, exported):
    from cilight.deploy import CloudRuntime, EdgeRuntime

    assert {p.name for p in exported.iterdir()} == {"edge.onnx", "cloud.onnx", "hyper.onnx", "entropy_tables.npz"}
    model = load_task_model(learned_checkpoint)
    images = smooth_images(3, 64, 128, seed=7)
    edge, cloud = EdgeRuntime(exported / "edge.onnx"), CloudRuntime(exported / "cloud.onnx")
    frames = edge.encode(images.numpy())
    codec = model.transmissions[0].own_codec()
    with torch.no_grad():
        features = model.features(images)[0]
        reference = model(images)
    for frame, x in zip(frames, features):  # the ONNX edge writes the bytes the PyTorch codec writes
        assert frame == codec.encode(x)
    outputs = cloud.infer(frames)
    labels = outputs["segmentation"].argmax(1) == reference["segmentation"].numpy().argmax(1)
    assert labels.mean() >= 0.99
    np.testing.assert_allclose(outputs["disparity"], reference["disparity"].numpy(), atol=1e-3)
    with pytest.raises(ConfigError, match="code with their transmission's own codec"):
        EdgeRuntime(exported / "edge.onnx", codec="jpeg2000:bpe=1")
    with pytest.raises(ConfigError, match="packets of range-coded symbols are not supported"):
        edge.packets(images.numpy())
    with pytest.raises(CodecError, match="CRC-32"):
        cloud.infer(frames[0][:-1] + bytes([frames[0][-1] ^ 1]))


def test_halves_refuse_tables_they_were_not_exported_with(exported, tmp_path):
    import shutil

    from cilight.deploy import CloudRuntime

    for name in ("edge.onnx", "cloud.onnx", "hyper.onnx"):
        shutil.copy(exported / name, tmp_path / name)
    with pytest.raises(ConfigError, match="entropy_tables.npz does not exist"):
        CloudRuntime(tmp_path / "cloud.onnx")
    with np.load(exported / "entropy_tables.npz") as data:
        arrays = dict(data)
    arrays["layer3.z.medians"] = arrays["layer3.z.medians"] + 1
    np.savez(tmp_path / "entropy_tables.npz", **arrays)
    with pytest.raises(ConfigError, match="are not the ones the halves were exported with"):
        CloudRuntime(tmp_path / "cloud.onnx")


def test_edge_runtime_bytes_decode_bit_exactly_in_another_process(exported, tmp_path):
    """The acceptance item: the edge runtime in one interpreter, the cloud runtime in this one."""
    from cilight.deploy import CloudRuntime, EdgeRuntime

    images = smooth_images(2, 64, 128, seed=11).numpy()
    np.save(tmp_path / "images.npy", images)
    script = (
        "import sys, numpy as np\n"
        "from cilight.deploy import EdgeRuntime\n"
        "frames = EdgeRuntime(sys.argv[1]).encode(np.load(sys.argv[2]))\n"
        "open(sys.argv[3], 'wb').write(b''.join(len(f).to_bytes(4, 'little') + f for f in frames))\n"
    )
    out = tmp_path / "frames.bin"
    proc = subprocess.run([sys.executable, "-c", script, str(exported / "edge.onnx"), str(tmp_path / "images.npy"),
                           str(out)], capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-2000:]
    data, frames = out.read_bytes(), []
    while data:
        n = int.from_bytes(data[:4], "little")
        frames.append(data[4 : 4 + n])
        data = data[4 + n :]
    edge, cloud = EdgeRuntime(exported / "edge.onnx"), CloudRuntime(exported / "cloud.onnx")
    assert frames == edge.encode(images)
    symbols = edge.features(images)
    for b, frame in enumerate(frames):
        decoded = cloud.decode(frame)["symbols_y_layer3"]
        np.testing.assert_array_equal(decoded[0], symbols["symbols_y_layer3"][b])  # bit-exact


def test_learned_curve_point_against_a_hand_loop_and_a_curve_over_checkpoints(learned_checkpoint, tiny_checkpoint,
                                                                              tmp_path, capsys):
    import json
    import shutil

    from cilight.ci_models.checkpoints import load_model
    from cilight.datamodules.from_checkpoint import test_batches
    from cilight.evaluate_cli import main
    from cilight.evaluation import RateAccuracyCurves, measure_curves, parse_families

    model, data = load_model(learned_checkpoint)
    batches = test_batches(data, images=3)
    curves = measure_curves(model, batches, parse_families("learned"), progress=False)
    codec, bits, hand = model.transmissions[0].own_codec(), 0, model.task_metrics(sync=False)
    with torch.no_grad():
        for batch in batches:
            decoded = []
            for x in model.features(batch["image"])[0]:
                data_bytes = codec.encode(x)
                bits += 8 * len(data_bytes)
                decoded.append(torch.from_numpy(codec.decode(data_bytes)))
            hand.update(model.decoder([torch.stack(decoded)]), batch)
    (point,) = curves.points
    assert point.family == "learned" and point.bits_per_image == bits / 3
    assert point.metrics == pytest.approx({k: float(v) for k, v in hand.compute().items()}, rel=1e-6)
    assert point.metrics == pytest.approx(curves.reference, rel=1e-6)  # the codec is lossless on the latents
    with pytest.raises(ConfigError, match=r"own codec \(learned\) and are measured at that one operating point"):
        measure_curves(model, batches, parse_families("png"), progress=False)
    plain, plain_data = load_model(tiny_checkpoint)
    with pytest.raises(ConfigError, match="this model's streams have none"):
        measure_curves(plain, test_batches(plain_data, images=2), parse_families("learned"), progress=False)

    # one curve over two checkpoints (as over λ), against a JPEG2000-coded anchor
    groups = []
    for name in ("lam_a", "lam_b"):
        path = tmp_path / name / "checkpoints" / "last.ckpt"
        path.parent.mkdir(parents=True)
        shutil.copy(learned_checkpoint, path)
        groups.append(str(path))
    anchor = tmp_path / "anchor" / "checkpoints" / "last.ckpt"
    anchor.parent.mkdir(parents=True)
    shutil.copy(tiny_checkpoint, anchor)
    assert main(["bdrate", "--anchor", str(anchor), "--test", ",".join(groups), "--codecs",
                 "j2k=jpeg2000:bpe=0.5,1,2,4", "--images", "2", "--out", str(tmp_path / "bd"),
                 "--min-overlap", "0"]) == 0
    assert "BD-rate against anchor" in capsys.readouterr().out
    table = json.loads((tmp_path / "bd" / "bdrate.json").read_text())
    assert {(r["test"], r["family"]) for r in table["rows"]} == {("lam_a+1", "j2k")}
    merged = RateAccuracyCurves.from_dict(table["curves"]["lam_a+1"])
    assert [p.family for p in merged.points] == ["learned", "learned"] and len(merged.provenance["parts"]) == 2
