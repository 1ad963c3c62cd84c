"""Which strategy wins at which bandwidth: the thesis' latency model on measured times.

Ulhaq, B.A.Sc. thesis, SFU 2020, §4.2, eq 4.1–4.6. For each strategy it measures, on
this machine, at 256×512 and batch 1 (medians of ``--repeats`` runs):

* shared inference at each split (``layer2``, ``layer3``, ``layer4`` and the 2-stream
  ``layer2+layer3``): ``I_c`` = edge.onnx, ``E_c`` = jpeg2000 encode of every stream at
  ``--bits-per-element``, ``E_s`` = decode, ``I_s`` = cloud.onnx, ``D`` = the bytes;
* server-only: ``E_c``/``E_s`` = JPEG (quality ``--jpeg-quality``) of the image, ``I_s`` = the
  whole model, ``D`` = the JPEG bytes;
* client-only: ``I_c`` = the whole model on the device, nothing sent.

The edge is a phone, not this CPU: client-side times are multiplied by ``--client-slowdown``
and server-side times divided by ``--server-speedup``. Every strategy runs the same network
(ResNet-18 encoder weights of the benchmark model in :mod:`activations`), so only where it is
cut differs. Prints the winning bandwidth ranges, writes a plot and the raw numbers.

    python -m benchmarks.latency_model [--client-slowdown 10] [--server-speedup 1] [--rtt-ms 5]

Writes ``benchmarks/results/latency_model.json`` and ``latency_model.png`` naming the machine.
"""

from __future__ import annotations

import argparse
import io
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from benchmarks.activations import trained_model
from benchmarks.report import RESULTS, write_result
from cilight.ci_models import MultiTaskCI
from cilight.datamodules import generate_sample
from cilight.deploy import CloudRuntime, EdgeRuntime, LatencyModel, Strategy
from cilight.onnx_export import export_halves

HEIGHT, WIDTH = 256, 512
SPLITS = {"layer2": ["layer2"], "layer3": ["layer3"], "layer4": ["layer4"], "layer2+layer3": ["layer2", "layer3"]}


def median_seconds(fn, repeats: int) -> tuple[float, object]:
    result = fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def split_model(split_points: list[str], encoder_state: dict) -> MultiTaskCI:
    model = MultiTaskCI(backbone="resnet18", split_points=split_points, num_classes=10)
    model.encoder.load_state_dict({k: v for k, v in encoder_state.items() if k in model.encoder.state_dict()})
    return model.eval()


def measure_split(name: str, model: MultiTaskCI, image: np.ndarray, bpe: float, repeats: int, tmp: Path) -> dict:
    out = tmp / name
    export_halves(model, out, HEIGHT, WIDTH, torch.from_numpy(image))
    edge, cloud = EdgeRuntime(out / "edge.onnx", "jpeg2000", target_bits=1.0), CloudRuntime(out / "cloud.onnx")
    rates = {s: {"target_bits": bpe * int(np.prod(shape))} for s, shape in edge.meta.stream_shapes.items()}
    edge_s, feats = median_seconds(lambda: edge.features(image), repeats)
    total_s, frames = median_seconds(lambda: edge.encode(image, rates), repeats)
    decode_s, inputs = median_seconds(lambda: cloud.decode(frames[0]), repeats)
    cloud_s, _ = median_seconds(lambda: cloud.session.run(None, inputs), repeats)
    return {"client_inference": edge_s, "client_encode": max(total_s - edge_s, 0.0), "server_decode": decode_s,
            "server_inference": cloud_s, "data_bytes": len(frames[0]), "full_model": edge_s + cloud_s}


def measure_image_jpeg(image: np.ndarray, quality: int, repeats: int) -> dict:
    pixels = (image[0].transpose(1, 2, 0) * 255).round().astype(np.uint8)

    def encode():
        buf = io.BytesIO()
        Image.fromarray(pixels).save(buf, format="JPEG", quality=quality)
        return buf.getvalue()

    encode_s, data = median_seconds(encode, repeats)
    decode_s, _ = median_seconds(lambda: np.asarray(Image.open(io.BytesIO(data)).convert("RGB")), repeats)
    return {"client_encode": encode_s, "server_decode": decode_s, "data_bytes": len(data)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--client-slowdown", type=float, default=10.0, help="device time / this machine's time")
    parser.add_argument("--server-speedup", type=float, default=1.0, help="this machine's time / server time")
    parser.add_argument("--rtt-ms", type=float, default=5.0, help="round-trip time (thesis: 5 ms)")
    parser.add_argument("--bits-per-element", type=float, default=0.5, help="jpeg2000 rate of every stream")
    parser.add_argument("--jpeg-quality", type=int, default=90, help="server-only: JPEG quality of the image")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--out", default=str(RESULTS / "latency_model.json"))
    args = parser.parse_args()
    torch.manual_seed(0)

    encoder_state = trained_model().encoder.state_dict()
    image = (generate_sample(0, "test", 0, HEIGHT, WIDTH)["image"].astype(np.float32) / 255)[None]
    measured = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, splits in SPLITS.items():
            measured[name] = measure_split(name, split_model(splits, encoder_state), image, args.bits_per_element,
                                           args.repeats, Path(tmp))
            print(f"{name:14s} " + "  ".join(f"{k} {v * 1e3:.1f} ms" if k != "data_bytes" else f"D {v} B"
                                              for k, v in measured[name].items()), flush=True)
    full_model = measured["layer4"]["full_model"]  # the deepest split runs the most of the encoder on the edge
    measured["server-only (JPEG image)"] = {**measure_image_jpeg(image, args.jpeg_quality, args.repeats),
                                            "client_inference": 0.0, "server_inference": full_model}
    measured["client-only"] = {"client_inference": full_model}

    strategies = tuple(
        Strategy(name, **{k: v for k, v in m.items() if k != "full_model"}).scaled(args.client_slowdown, args.server_speedup)
        for name, m in measured.items()
    )
    model = LatencyModel(strategies, rtt=args.rtt_ms / 1e3)
    low, high = 1e4, 1e9
    ranges = model.winning_ranges(low, high)
    print(f"\nclient {args.client_slowdown:g}× slower than this machine, server {args.server_speedup:g}× faster, "
          f"RTT {args.rtt_ms:g} ms, streams at {args.bits_per_element:g} bits/element:")
    print(f"{'strategy':26s} {'b = I_c+E_c+E_s+I_s(+RTT)':>26s} {'D (bytes)':>10s}")
    for s in strategies:
        print(f"{s.name:26s} {s.base(model.rtt) * 1e3:23.1f} ms {s.data_bytes:10.0f}")
    print("fastest by upload bandwidth:")
    for name, lo, hi in ranges:
        print(f"  {lo / 1e6:10.4f} – {hi / 1e6:10.4f} MB/s  {name}")
    plot = Path(args.out).with_suffix(".png")
    model.plot(plot, low, high, title=f"thesis eq 4.1–4.6 on measured times; client {args.client_slowdown:g}× slower, "
                                      f"RTT {args.rtt_ms:g} ms")
    write_result(Path(args.out), {
        "benchmark": "latency_model", "height": HEIGHT, "width": WIDTH, "batch": 1, "settings": vars(args),
        "measured_seconds_on_this_machine": measured,
        "strategies": [s.__dict__ for s in strategies],
        "winning_ranges_bytes_per_s": [{"strategy": n, "from": lo, "to": hi} for n, lo, hi in ranges],
        "plot": plot.name,
    })


if __name__ == "__main__":
    main()
