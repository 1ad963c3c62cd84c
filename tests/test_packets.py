"""Features over a lossy link: packets, reassembly, concealment in the cloud runtime, the loss models."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
from helpers import smooth_images

from cilight.ci_models.halves import EdgeHalf
from cilight.codecs import CodecError, MinMaxQuantizer, get_quantizer
from cilight.deploy import CloudRuntime, EdgeRuntime, GilbertElliottLoss, IidLoss, Packet, reassemble
from cilight.deploy.packets import PACKET_HEADER_BYTES, is_packet
from cilight.deploy.wire import DATASET_MEAN, read_dataset_mean, stream_side, write_dataset_mean
from cilight.errors import ConfigError
from cilight.onnx_export import stream_means

HEIGHT, WIDTH = 64, 96
STRATEGIES = ("zero", "channel_mean", "dataset_mean", "hybrid")


@pytest.fixture(scope="module")
def exported(tiny_halves, tmp_path_factory):
    """The session's tiny halves (64×96, one stream or two), copied beside their dataset mean."""
    model, halves, _ = tiny_halves
    out = tmp_path_factory.mktemp("onnx")
    for name in ("edge.onnx", "cloud.onnx"):
        shutil.copy(halves / name, out)
    means, count = stream_means(model, [smooth_images(6, HEIGHT, WIDTH, seed=s) for s in (10, 11)])
    write_dataset_mean(out, means, count)
    return model, out


def runtimes(out, codec="png", **rate):
    return EdgeRuntime(out / "edge.onnx", codec, **rate), CloudRuntime(out / "cloud.onnx")


# -- the packet format ----------------------------------------------------------------------------


def test_packet_round_trip_and_every_corruption_is_rejected():
    packet = Packet("codes", frame=7, stream=1, first_channel=16, channels=8, stream_channels=64,
                    payload=bytes(range(40)), fragment=1, fragments=3)
    data = packet.to_bytes()
    assert len(data) == PACKET_HEADER_BYTES + 40 and is_packet(data)
    assert Packet.from_bytes(data) == packet
    for i in range(len(data)):  # every single-byte change is caught before anything is decoded
        bad = bytearray(data)
        bad[i] ^= 0x5A
        with pytest.raises(CodecError):
            Packet.from_bytes(bytes(bad))
    for cut in (0, 5, PACKET_HEADER_BYTES, len(data) - 1):
        with pytest.raises(CodecError, match="shorter|truncated"):
            Packet.from_bytes(data[:cut])
    with pytest.raises(CodecError, match="outside a stream"):
        Packet("codes", 0, 0, 60, 8, 64, b"")
    with pytest.raises(CodecError, match="must be bytes"):
        Packet.from_bytes("not bytes")


def test_packets_fit_the_mss_and_decode_exactly_like_the_frame(exported):
    model, out = exported
    edge, cloud = runtimes(out)
    images = smooth_images(2, HEIGHT, WIDTH, seed=3).numpy()
    frames = edge.encode(images)
    for mss in (300, 1400):
        packets = edge.packets(images, mss=mss)
        assert all(len(p) <= mss for frame in packets for p in frame)
        assert len(packets[0]) > 1  # streams larger than one packet are cut into groups
        reception, inputs = cloud.receive([p for frame in packets for p in frame], conceal=None)
        assert reception.lost_fraction == 0 and len(reception.frames) == 2
        strict = {k: np.concatenate([d[k] for d in map(cloud.decode, frames)]) for k in inputs}
        for name, value in inputs.items():
            np.testing.assert_array_equal(value, strict[name], err_msg=name)
        # the cost of independent groups: a few container headers per stream, measured in the benchmark
        assert sum(map(len, packets[0])) < (3 if mss == 300 else 1.3) * len(frames[0])


@pytest.mark.parametrize("codec,rate", [("png", {}), ("jpeg2000", {"target_bits": 6000}), ("jpeg:quality=80", {})])
def test_every_codec_packetizes(exported, codec, rate):
    _, out = exported
    edge, cloud = runtimes(out, codec, **rate)
    images = smooth_images(1, HEIGHT, WIDTH, seed=4).numpy()
    packets = edge.packets(images, mss=600)[0]
    outputs = cloud.infer(packets[1:], conceal="dataset_mean")
    assert {k: v.shape[0] for k, v in outputs.items()} == dict.fromkeys(cloud.meta.outputs, 1)


@pytest.mark.parametrize("method", STRATEGIES)
def test_lost_channels_are_filled_exactly_and_nothing_else_changes(exported, method):
    model, out = exported
    edge, cloud = runtimes(out)
    images = smooth_images(1, HEIGHT, WIDTH, seed=5).numpy()
    packets = edge.packets(images, mss=300, channel_means=True)[0]
    _, whole = cloud.receive(packets, conceal=None)
    mean = read_dataset_mean(out / DATASET_MEAN, cloud.meta)
    rng = np.random.default_rng(0)
    for _ in range(6):
        keep = [p for p in packets if rng.random() > 0.3 or Packet.from_bytes(p).kind == "channel_means"]
        try:
            reception, inputs = cloud.receive(keep, conceal=method)
        except CodecError as err:  # every codes packet of the frame lost: allowed, and said
            assert "nothing to infer" in str(err)
            continue
        for split, received in zip(cloud.meta.split_points, reception.streams[0]):
            codes, low, high = (inputs[f"{f}_{split}"][0] for f in ("codes", "minimum", "maximum"))
            assert codes.shape == tuple(cloud.meta.stream_shapes[split])
            arrived = received.channels
            np.testing.assert_array_equal(codes[arrived], whole[f"codes_{split}"][0][arrived])
            if arrived.all():
                continue
            # the fill of a lost channel, computed independently in numpy on the received range
            if arrived.any():  # the range of the groups that arrived, not of the filled tensor
                assert (low, high) == (whole[f"minimum_{split}"][0], whole[f"maximum_{split}"][0])
            lo, hi = float(low), float(high)
            step = max((hi - lo) / 255, 1e-8)
            t_mu = received.channel_means
            mu = mean[split]
            expected = {"zero": np.zeros_like(mu), "channel_mean": np.broadcast_to(t_mu[:, None, None], mu.shape),
                        "dataset_mean": mu,
                        "hybrid": mu + (t_mu - mu.mean(axis=(1, 2)))[:, None, None]}[method]
            codes_expected = np.clip(np.round((expected - lo) / step), 0, 255)
            assert np.abs(codes[~arrived].astype(int) - codes_expected[~arrived]).max() <= 1


def test_strict_mode_and_nothing_usable_are_clear_errors(exported):
    _, out = exported
    edge, cloud = runtimes(out)
    packets = edge.packets(smooth_images(1, HEIGHT, WIDTH).numpy(), mss=300)[0]
    with pytest.raises(CodecError, match="conceal=None"):
        cloud.infer(packets[1:])
    with pytest.raises(CodecError, match="nothing"):
        cloud.infer([])
    with pytest.raises(ConfigError, match="conceal='median'"):
        cloud.infer(packets, conceal="median")
    bad = bytearray(packets[0])
    bad[-1] ^= 1
    with pytest.raises(CodecError, match="packet 0: packet CRC-32 mismatch"):
        cloud.infer([bytes(bad), *packets[1:]], conceal="zero")
    reception, _ = cloud.receive([bytes(bad), *packets[1:]], conceal="zero", drop_corrupt=True)
    assert reception.corrupt == 1 and reception.lost_fraction > 0
    other = CloudRuntime(out / "cloud.onnx", dataset_mean=out / "missing.npz")
    with pytest.raises(ConfigError, match="missing.npz does not exist"):
        other.infer(packets[1:], conceal="dataset_mean")


@pytest.mark.slow
def test_fuzzed_packets_never_crash_the_runtime(exported):
    """Lost, duplicated, reordered, truncated and corrupted packets: outputs of the right shape or one CodecError."""
    _, out = exported
    edge, cloud = runtimes(out)
    frames = edge.packets(smooth_images(3, HEIGHT, WIDTH, seed=6).numpy(), mss=300, channel_means=True)
    packets = [p for f in frames for p in f]
    rng = np.random.default_rng(1)
    outcomes = {"outputs": 0, "error": 0}
    for _ in range(60):
        batch = [p for p in packets if rng.random() > rng.uniform(0, 0.6)]
        for _ in range(rng.integers(0, 4)):
            if not batch:
                break
            i = int(rng.integers(len(batch)))
            action = rng.integers(4)
            if action == 0:
                batch.append(batch[i])  # duplicate
            elif action == 1:
                batch[i] = batch[i][: int(rng.integers(len(batch[i])))]  # truncate
            elif action == 2:
                b = bytearray(batch[i])
                b[int(rng.integers(len(b)))] ^= int(rng.integers(1, 256))  # corrupt
                batch[i] = bytes(b)
            else:
                batch.insert(int(rng.integers(len(batch) + 1)), bytes(rng.integers(0, 256, 40, dtype=np.uint8)))
        rng.shuffle(batch)
        for drop in (False, True):
            try:
                reception, inputs = cloud.receive(batch, conceal="hybrid", drop_corrupt=drop)
            except CodecError:
                outcomes["error"] += 1
                continue
            outputs = cloud.run(inputs)
            assert all(v.shape[0] == len(reception.frames) for v in outputs.values())
            for split in cloud.meta.split_points:
                assert inputs[f"codes_{split}"].shape[1:] == tuple(cloud.meta.stream_shapes[split])
            outcomes["outputs"] += 1
    assert outcomes["outputs"] > 10 and outcomes["error"] > 10


def test_dataset_mean_against_a_hand_loop(exported, tmp_path):
    model, out = exported
    batches = [smooth_images(4, HEIGHT, WIDTH, seed=s) for s in (20, 21)]
    means, count = stream_means(model, batches)
    assert count == 8
    quantizer = MinMaxQuantizer(bits=8)
    with torch.no_grad():
        tensors = [EdgeHalf(model)(b) for b in batches]
    for index, split in enumerate(model.split_points):
        values = [quantizer.dequantize(t[3 * index][b], stream_side(t[3 * index + 1][b].numpy(), t[3 * index + 2][b].numpy()))
                  .astype(np.float64) for t in tensors for b in range(4)]
        np.testing.assert_allclose(means[split], np.mean(values, axis=0), rtol=1e-5, atol=1e-6)
    path = write_dataset_mean(tmp_path, means, count)
    meta = CloudRuntime(out / "cloud.onnx").meta
    assert {k: v.shape for k, v in read_dataset_mean(path, meta).items()} == {k: means[k].shape for k in means}
    np.savez(tmp_path / "wrong.npz", mean_layer3=np.zeros((1, 2, 3)))
    with pytest.raises(ConfigError, match="not a dataset mean|has shape"):
        read_dataset_mean(tmp_path / "wrong.npz", meta)


def test_codes_with_a_known_range():
    q = get_quantizer("minmax", bits=8)
    x = torch.linspace(-1, 3, 24).view(2, 3, 4)
    quantized = q.quantize(x)
    np.testing.assert_array_equal(q.codes_with(x, quantized.side), quantized.codes)
    np.testing.assert_array_equal(q.codes_with(x.numpy(), quantized.side), quantized.codes)  # numpy or torch
    codes = q.codes_with(torch.full((2, 3, 4), 10.0), quantized.side)  # clipped to the known range
    assert int(codes.min()) == 255
    with pytest.raises(CodecError, match="side information"):
        q.codes_with(x, np.zeros(3))


# -- the loss models --------------------------------------------------------------------------------


@pytest.mark.parametrize("rate", [0.01, 0.05, 0.2])
def test_iid_loss_rate_matches_its_parameter(rate):
    n = 200_000
    lost = IidLoss(rate, seed=3).lost(n)
    assert abs(lost.mean() - rate) < 5 * np.sqrt(rate * (1 - rate) / n)
    assert IidLoss(rate, seed=3).transmit(list(range(10))) == IidLoss(rate, seed=3).transmit(list(range(10)))


@pytest.mark.parametrize("rate,burst", [(0.05, 4.0), (0.2, 2.0)])
def test_gilbert_elliott_loss_rate_and_burst_length(rate, burst):
    link = GilbertElliottLoss.bursts(rate, burst, seed=4)
    assert link.expected_loss == pytest.approx(rate)
    lost = np.concatenate([link.lost(50_000) for _ in range(4)])  # the state carries across calls
    assert lost.mean() == pytest.approx(rate, rel=0.1)
    edges = np.flatnonzero(np.diff(np.r_[0, lost.astype(int), 0]))
    runs = edges[1::2] - edges[::2]
    assert runs.mean() == pytest.approx(burst, rel=0.1)


def test_loss_models_refuse_bad_parameters():
    for make, match in ((lambda: IidLoss(1.5), "loss rate=1.5"), (lambda: GilbertElliottLoss(0, 0), "p \\+ r = 0"),
                        (lambda: GilbertElliottLoss.bursts(0.5, 0.5), "burst_length=0.5"),
                        (lambda: GilbertElliottLoss.bursts(0.9, 1.0), "needs p")):
        with pytest.raises(ConfigError, match=match):
            make()


def test_reassembly_refuses_conflicting_duplicates(exported):
    _, out = exported
    edge, cloud = runtimes(out)
    packets = edge.packets(smooth_images(1, HEIGHT, WIDTH).numpy(), mss=300, first_frame=5)[0]
    first = Packet.from_bytes(packets[0])
    forged = Packet(first.kind, first.frame, first.stream, first.first_channel, first.channels, first.stream_channels,
                    first.payload[::-1], first.fragment, first.fragments).to_bytes()
    with pytest.raises(CodecError, match="two different packets"):
        reassemble([*packets, forged], cloud.meta)
    reception = reassemble([*packets, packets[0]], cloud.meta)
    assert reception.duplicates == 1 and reception.frames == (5,)


@pytest.mark.parametrize("packets,loss", [(1, 0.1), (5, 0.05), (5, 0.3), (20, 0.1)])
def test_retransmission_delay_against_a_simulation(packets, loss):
    from cilight.deploy import retransmission_delay

    rtt, size, bandwidth = 0.05, 1400, 1e6
    rng = np.random.default_rng(5)
    attempts = rng.geometric(1 - loss, size=(200_000, packets))  # transmissions until each packet arrived
    simulated = rtt * (attempts.max(1) - 1).mean() + size * (attempts.sum(1) - packets).mean() / bandwidth
    assert retransmission_delay(packets, loss, rtt, size, bandwidth) == pytest.approx(simulated, rel=0.02)
    assert retransmission_delay(packets, 0.0, rtt, size, bandwidth) == 0
    with pytest.raises(ConfigError, match="loss=1"):
        retransmission_delay(packets, 1, rtt, size, bandwidth)
