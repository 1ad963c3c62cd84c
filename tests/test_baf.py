"""Back-and-Forth prediction (Choi et al., ICASSP 2020): eq 2–3 against numpy, eq 6 by hand, the
frozen task network, training, the CLI, evaluation and the exported halves."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torchvision
from helpers import smooth_images, tiny_model

from cilight.ci_models import BaFPredictor, consolidate, resnet_split, select_channels
from cilight.ci_models.baf import charbonnier, dequantize_channels, find_layer, quantize_channels
from cilight.codecs import get_codec
from cilight.codecs.quantizers import float16_bounds
from cilight.deploy import CloudRuntime, EdgeRuntime
from cilight.deploy.wire import stream_range, stream_side
from cilight.errors import ConfigError
from cilight.evaluate_cli import main as evaluate_main
from cilight.evaluation.baf import image_bits, measure_baf
from cilight.export_cli import main as export_main
from cilight.onnx_export import export_halves


def baf_on(model, **options) -> BaFPredictor:
    """A BaF predictor on the weights of ``model`` (an untrained tiny MultiTaskCI)."""
    torch.manual_seed(1)
    baf = BaFPredictor(task_hparams=dict(model.hparams), **options)
    baf.task_model.load_state_dict(model.state_dict())
    return baf


def numpy_rho(z: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Eq 2 with np.corrcoef, pair by pair."""
    p, q = z.shape[1], x.shape[1]
    rho = np.zeros((p, q))
    for i in range(p):
        zp = z[:, i].ravel()
        for j in range(q):
            rho[i, j] = np.mean([abs(np.corrcoef(zp, x[:, j, a::2, b::2].ravel())[0, 1])
                                 for a, b in ((0, 0), (0, 1), (1, 0), (1, 1))])
    return rho


def test_channel_selection_matches_numpy():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 5, 8, 6, generator=g, dtype=torch.float64)
    mixing = torch.randn(7, 5, generator=g, dtype=torch.float64) * torch.linspace(0.1, 3, 7)[:, None]
    z = torch.einsum("pq,bqhw->bphw", mixing, x[:, :, ::2, ::2]) + torch.randn(3, 7, 4, 3, generator=g, dtype=torch.float64)
    expected = np.argsort(-numpy_rho(z.numpy(), x.numpy()).sum(1), kind="stable")
    np.testing.assert_array_equal(select_channels(z, x, 7).numpy(), expected)
    np.testing.assert_array_equal(select_channels(z, x, 3).numpy(), expected[:3])
    with pytest.raises(ConfigError, match="num_channels=8: expected 1 to 7"):
        select_channels(z, x, 8)
    with pytest.raises(ConfigError, match="twice the height and width"):
        select_channels(z, x[..., :6, :], 2)


def test_channel_selection_accumulates_batches_exactly():
    from cilight.ci_models.baf import ChannelCorrelation

    g = torch.Generator().manual_seed(3)
    z, x = torch.randn(6, 4, 2, 3, generator=g), torch.randn(6, 2, 4, 6, generator=g)
    whole = ChannelCorrelation().update(z, x).rho()
    parts = ChannelCorrelation().update(z[:2], x[:2]).update(z[2:], x[2:]).rho()
    torch.testing.assert_close(whole, parts)
    np.testing.assert_allclose(whole.numpy(), numpy_rho(z.double().numpy(), x.double().numpy()), atol=1e-6)


def test_consolidation_by_hand():
    # bins of step 1 from low 0 with 4 levels: the range is [0, 4]
    low, step, levels = torch.tensor(0.0), torch.tensor(1.0), 4
    decoded = torch.tensor([2.0, 2.0, 2.0, 2.0, 2.0, 0.0, 4.0])
    prediction = torch.tensor([2.3, 3.1, 0.4, 2.5, 1.5, -0.7, 4.9])
    # same bin → kept; above → upper boundary 2.5; below → lower 1.5; on a boundary → itself;
    # below the range in the lowest bin → m; above it in the highest → M
    expected = torch.tensor([2.3, 2.5, 1.5, 2.5, 1.5, 0.0, 4.0])
    torch.testing.assert_close(consolidate(prediction, decoded, low, step, levels), expected)


def test_per_channel_quantization_is_eq4_with_bounds_that_cover_the_data():
    g = torch.Generator().manual_seed(2)
    z = torch.randn(2, 6, 5, 7, generator=g) * torch.tensor([1e-3, 0.1, 1, 10, 300, 1e4]).view(1, 6, 1, 1)
    stream = quantize_channels(z, 6)
    assert stream.codes.shape == z.shape and stream.minimum.shape == (2, 6) and stream.codes.max() <= 63
    assert (stream.minimum <= z.amin((-1, -2))).all() and (stream.maximum >= z.amax((-1, -2))).all()
    np.testing.assert_array_equal(stream.minimum.numpy(), stream.minimum.numpy().astype(np.float16))  # fp16 values
    values, low, step = dequantize_channels(stream, 6)
    assert ((values - z).abs() <= step / 2 + 1e-6 * z.abs()).all()
    low16, high16 = float16_bounds(torch.tensor([-1e-9, 65000.0]), torch.tensor([0.0, 1.0]))
    assert low16[0] <= -1e-9 and torch.isinf(float16_bounds(torch.tensor([7e4]), torch.tensor([7e4]))[1]).all()
    with pytest.raises(ConfigError, match="does not fit the float16 bounds"):
        quantize_channels(z * 10, 8)


def test_wire_side_information_of_a_channel_stream_round_trips():
    low, high = np.array([-1.5, 0.25], np.float32), np.array([2.0, 0.5], np.float32)
    side = stream_side(low, high, "channel")
    assert side.dtype == np.float16 and side.tolist() == [-1.5, 0.25, 2.0, 0.5]
    got_low, got_high = stream_range(side, "channel")
    assert got_low.shape == (1, 2) and got_high.tolist() == [[2.0, 0.5]]
    with pytest.raises(ConfigError, match="no wire layout"):
        stream_side(low, high, "clip")


def test_charbonnier_is_eq7():
    a, b = torch.tensor([0.0, 1.0, -2.0]), torch.tensor([0.0, 0.5, 1.0])
    expected = np.mean(np.sqrt((a.numpy() - b.numpy()) ** 2 + 1e-6))
    assert charbonnier(a, b).item() == pytest.approx(expected)


def test_split_of_any_torchvision_resnet_reproduces_it_and_refuses_other_layers():
    torch.manual_seed(0)
    net = torchvision.models.resnet18(num_classes=10).eval()
    images = torch.rand(2, 3, 64, 64)
    split = resnet_split(net, "layer2.0")
    with torch.no_grad():
        torch.testing.assert_close(split(images)["classification"], net(images))
        x = split.front(images)
        assert x.shape == (2, 64, 16, 16) and split.layer(x).shape == (2, 128, 8, 8)
    for bad, match in (("layer3.1", "conv1 stride"), ("layer1.0", "conv1 stride"), ("layer5.0", "expected a block"),
                       ("layer2", "expected a block")):
        with pytest.raises(ConfigError, match=match):
            resnet_split(net, bad)
    with pytest.raises(ConfigError, match="conv1 stride"):  # bottleneck blocks put the stride on conv2
        find_layer({"layer2": torchvision.models.resnet50().layer2}, "layer2.0")


def test_baf_shapes_and_refusals():
    model = tiny_model()
    baf = baf_on(model, split="layer3.0", num_channels=16, bits=6)
    images = smooth_images(2, 64, 128)
    with pytest.raises(ConfigError, match="not chosen yet"):
        baf.edge(images)
    chosen = baf.calibrate([{"image": images}])
    assert len(set(chosen.tolist())) == 16 and baf.calibrated
    (stream,) = baf.edge(images)
    assert stream.codes.shape == (2, 16, 4, 8) and stream.codes.dtype == torch.uint8 and int(stream.codes.max()) <= 63
    assert baf.stream_shapes(64, 128) == {"layer3.0": (16, 4, 8)}
    decoded, _, _ = dequantize_channels(stream, 6)
    x_tilde, z_tilde = baf.predict(decoded)
    assert x_tilde.shape == (2, 128, 8, 16) and z_tilde.shape == (2, 256, 4, 8)
    outputs = baf(images)
    assert outputs["segmentation"].shape == (2, 5, 64, 128) and outputs["disparity"].shape == (2, 64, 128)
    for options, match in (({"split": "layer4.0"}, "expected a block of this network"),
                           ({"split": "layer3.1"}, "conv1 stride"), ({"num_channels": 300}, "expected 1 to 256"),
                           ({"bits": 9}, "bits=9"), ({"selection": "best"}, "selection='best'"),
                           ({"num_classes": 7}, "num_classes=7")):
        with pytest.raises(ConfigError, match=match):
            baf_on(model, **options)
    with pytest.raises(ConfigError, match="lies after the model's split point 'layer2'"):
        baf_on(tiny_model(split_points=("layer2", "layer3")), split="layer3.0")
    with pytest.raises(ConfigError, match="needs task_ckpt"):
        BaFPredictor()


def test_eq6_keeps_the_transmitted_channels_in_their_bins():
    model = tiny_model()
    baf = baf_on(model, split="layer3.0", num_channels=32, bits=3).eval()
    images = smooth_images(2, 64, 128)
    baf.calibrate([{"image": images}])
    (stream,) = baf.edge(images)
    decoded, low, step = dequantize_channels(stream, 3)
    _, z_tilde = baf.predict(decoded)
    merged = baf.transmission._with_channels(z_tilde, consolidate(z_tilde.index_select(1, baf.channels), decoded, low, step, 7))
    sent = merged.index_select(1, baf.channels)
    assert ((sent - decoded).abs() <= step / 2 + 1e-5).all()
    others = baf.transmission.other_channels
    torch.testing.assert_close(merged.index_select(1, others), z_tilde.index_select(1, others))


def test_training_moves_only_the_predictor_and_lowers_eq7():
    model = tiny_model()
    baf = baf_on(model, split="layer3.0", num_channels=64, bits=8, selection="first")
    images = smooth_images(8, 64, 128, seed=4)
    frozen = {k: v.clone() for k, v in baf.task_model.state_dict().items()}
    predictor = {k: v.clone() for k, v in baf.predictor.state_dict().items()}
    optimizer = torch.optim.Adam(baf.predictor.parameters(), lr=1e-3)
    baf.train()
    assert not baf.task_model.training  # batch norm statistics stay frozen
    losses = []
    for _ in range(30):
        loss = baf.loss(images)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0]
    for k, v in baf.task_model.state_dict().items():
        assert torch.equal(v, frozen[k]), k
    assert any(not torch.equal(v, predictor[k]) for k, v in baf.predictor.state_dict().items())
    assert all(not p.requires_grad for p in baf.task_model.parameters())


@pytest.mark.slow
def test_all_channels_at_8_bits_reproduce_the_unmodified_model_closely():
    """C = P, n = 8, lossless: eq 6 puts every channel of Z within half a step of its value; what is
    left is the shortcut's X̃, which a short training brings closer to X."""
    model = tiny_model()
    baf = baf_on(model, split="layer3.0", num_channels=256, bits=8)
    images = smooth_images(8, 64, 128, seed=5)
    baf.calibrate([{"image": images}])
    optimizer = torch.optim.Adam(baf.predictor.parameters(), lr=3e-3)
    baf.train()
    for _ in range(80):
        loss = baf.loss(images)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    baf.eval()
    untrained = baf_on(model, split="layer3.0", num_channels=256, bits=8).eval()
    untrained.set_channels(baf.channels)
    test = smooth_images(2, 64, 128, seed=6)
    with torch.no_grad():
        reference = model(test)
        outputs = baf(test)
        assert (outputs["segmentation"].argmax(1) == reference["segmentation"].argmax(1)).float().mean() > 0.99
        for name, ref in reference.items():
            assert (outputs[name] - ref).abs().mean() < 0.02 * ref.abs().mean(), name
        # an untrained task network's heads barely react to their input, so compare what they receive:
        # the layer3 stream, with the heads taken off
        for predictor in (baf, untrained):
            predictor.network.head = torch.nn.Identity()
        features = model.features(test)[0]
        error = (baf(test)["layer3"] - features).abs().mean() / features.abs().mean()
        far = (untrained(test)["layer3"] - features).abs().mean() / features.abs().mean()
    assert error < 0.5 * far, (error, far)


def test_train_cli_writes_a_checkpoint_that_needs_nothing_else(baf_checkpoint, tiny_checkpoint, tmp_path):
    state = torch.load(baf_checkpoint, map_location="cpu", weights_only=True)
    assert state["hyper_parameters"]["task_hparams"]["split_points"] == ["layer3"]
    moved = tmp_path / "baf.ckpt"
    moved.write_bytes(baf_checkpoint.read_bytes())
    model = BaFPredictor.load_from_checkpoint(moved, map_location="cpu", weights_only=True).eval()
    assert model.calibrated and model.hparams.num_channels == 16
    task = torch.load(tiny_checkpoint, map_location="cpu", weights_only=True)["state_dict"]
    for k, v in model.task_model.state_dict().items():
        assert torch.equal(v, task[k]), k  # the frozen task network is the trained one, unchanged
    assert json.loads((baf_checkpoint.parents[1] / "test_metrics.json").read_text())["metrics"]


def test_evaluate_baf_end_to_end(baf_checkpoint, tmp_path, capsys):
    assert evaluate_main(["baf", "--ckpt", str(baf_checkpoint), "--codecs", "png", "jpeg:quality=90",
                          "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "vs all channels" in out and "unmodified model" in out
    result = json.loads((tmp_path / "baf.json").read_text())
    rows = result["rows"]
    assert len(rows) == 4 and {r["codec"] for r in rows} == {"png", "jpeg:quality=90"}
    png = next(r for r in rows if r["codec"] == "png" and r["consolidation"])
    assert 0 < png["bits_per_image"] < png["all_channel_bits_per_image"]
    assert set(png["metrics"]) == set(png["reference"]) and (tmp_path / "baf.csv").is_file()
    assert any(p.name.startswith("baf_") and p.suffix == ".png" for p in tmp_path.iterdir())
    assert evaluate_main(["baf", "--ckpt", str(baf_checkpoint.parents[3] / "missing.ckpt")]) == 2


def test_measured_sizes_are_the_real_containers(baf_checkpoint):
    from cilight.ci_models.checkpoints import load_model
    from cilight.datamodules.from_checkpoint import test_batches

    model, data = load_model(baf_checkpoint, accept=(BaFPredictor,))
    batches = test_batches(data)
    (row, _) = measure_baf(model, batches, ["png"], progress=False)
    codec = get_codec("png", quantizer="channel", bits=6, tiling="power_of_two")
    total = 0
    for batch in batches:
        (stream,) = model.edge(batch["image"])
        for b in range(len(stream.codes)):
            side = stream_side(stream.minimum[b].numpy(), stream.maximum[b].numpy(), "channel")
            from cilight.codecs import Quantized

            total += 8 * len(codec.encode_quantized(Quantized(stream.codes[b], side)))
    assert row.bits_per_image == pytest.approx(total / row.images)
    assert set(image_bits(batches[0]["image"])) == {"png", "jpeg:quality=90"}


def test_export_and_runtime_of_a_baf_checkpoint(baf_checkpoint, tmp_path, capsys):
    assert export_main(["--ckpt", str(baf_checkpoint), "--out", str(tmp_path), "--samples", "2"]) == 0
    assert "PASSED" in capsys.readouterr().out
    edge, cloud = EdgeRuntime(tmp_path / "edge.onnx"), CloudRuntime(tmp_path / "cloud.onnx")
    assert edge.meta.quantizer == "channel" and edge.meta.stream_shapes == {"layer3.0": (16, 4, 8)}
    assert edge.meta.extra["baf"]["layer_channels"] == 256
    images = smooth_images(2, 64, 128).numpy()
    frames = edge.encode(images)
    outputs = cloud.infer(frames)
    model = BaFPredictor.load_from_checkpoint(baf_checkpoint, map_location="cpu", weights_only=True).eval()
    with torch.no_grad():
        reference = model(torch.from_numpy(images))
    labels = (outputs["segmentation"].argmax(1) == reference["segmentation"].argmax(1).numpy()).mean()
    assert labels > 0.99
    np.testing.assert_allclose(outputs["disparity"], reference["disparity"].numpy(), atol=1e-3)
    # per-channel ranges over a lossy link: what arrived keeps its bounds, lost channels get their fill's
    packets = [p for frame in edge.packets(images, mss=200, channel_means=True) for p in frame]
    reception, inputs = cloud.receive(packets[1:], conceal="hybrid")
    assert reception.streams[0][0].channels.sum() < 16 and inputs["minimum_layer3.0"].shape == (2, 16)
    _, whole = cloud.receive(packets, conceal=None)
    arrived = reception.streams[0][0].channels
    np.testing.assert_array_equal(inputs["minimum_layer3.0"][0, arrived], whole["minimum_layer3.0"][0, arrived])
    np.testing.assert_array_equal(inputs["codes_layer3.0"][0, arrived], whole["codes_layer3.0"][0, arrived])
    with pytest.raises(ConfigError, match="is a BaFPredictor checkpoint"):
        from cilight.ci_models.checkpoints import load_model

        load_model(baf_checkpoint)


def test_export_of_an_uncalibrated_model_is_refused(tmp_path):
    baf = baf_on(tiny_model(), num_channels=8)
    images = smooth_images(2, 64, 128)
    with pytest.raises(ConfigError, match="not chosen yet"):
        export_halves(baf, tmp_path, 64, 128, images)


def test_measure_baf_builds_no_autograd_graph():
    """Issue 29 defect 1: evaluation runs under ``torch.no_grad``, so the trainable predictor's
    outputs carry no graph (``@torch.no_grad()`` once decorated the helper beside ``measure_baf``)."""
    baf = baf_on(tiny_model(), split="layer3.0", num_channels=16, bits=6).eval()
    images = smooth_images(2, 64, 128, seed=7)
    batch = {"image": images, "segmentation": torch.zeros(2, 64, 128, dtype=torch.int64),
             "disparity": torch.ones(2, 64, 128), "disparity_mask": torch.ones(2, 64, 128, dtype=torch.bool)}
    baf.calibrate([batch])
    seen = []
    handle = baf.predictor.register_forward_hook(
        lambda module, inputs, output: seen.append((torch.is_grad_enabled(), output.requires_grad)))
    try:
        measure_baf(baf, [batch], ["png"], progress=False)
    finally:
        handle.remove()
    assert seen and all(state == (False, False) for state in seen), seen
