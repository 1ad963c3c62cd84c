"""ONNX Runtime against PyTorch eager for the same edge and cloud halves.

Exports the default model (ResNet-18 split at layer3) and the 3-stream benchmark model at
64×128 and 256×512, then times edge and cloud halves with ONNX Runtime (CPU provider) and with
PyTorch eager (``torch.inference_mode``), batch 1 and 8, alternating the two in one run so
machine load hits both alike. Ratio = ONNX time / PyTorch time (≤ 1: ONNX is not slower).
Also records export time and file sizes.

    python -m benchmarks.onnx_speed [--repeats 20]

Writes ``benchmarks/results/onnx_speed.json`` naming the machine.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks.activations import trained_model
from benchmarks.report import RESULTS, write_result
from cilight.ci_models import MultiTaskCI
from cilight.ci_models.halves import CloudHalf, EdgeHalf, wire_tensor_names
from cilight.datamodules import generate_sample
from cilight.deploy.wire import onnx_session
from cilight.onnx_export import export_halves


def images(n: int, height: int, width: int) -> torch.Tensor:
    return torch.stack([torch.from_numpy(generate_sample(0, "test", i, height, width)["image"]).float() / 255
                        for i in range(n)])


def time_pair(run_a, run_b, repeats: int) -> tuple[list[float], list[float]]:
    """Median-friendly timings of two callables, alternated, after one warm-up each."""
    run_a(), run_b()
    a, b = [], []
    for _ in range(repeats):
        for fn, out in ((run_a, a), (run_b, b)):
            start = time.perf_counter()
            fn()
            out.append(time.perf_counter() - start)
    return a, b


def measure(name: str, model: MultiTaskCI, height: int, width: int, repeats: int) -> dict:
    model = model.eval()
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        export_halves(model, Path(tmp), height, width, images(2, height, width))
        export_s = time.perf_counter() - start
        sizes = {half: (Path(tmp) / f"{half}.onnx").stat().st_size for half in ("edge", "cloud")}
        edge_ort, cloud_ort = onnx_session(Path(tmp) / "edge.onnx"), onnx_session(Path(tmp) / "cloud.onnx")
        names = wire_tensor_names(model)
        edge_pt, cloud_pt = EdgeHalf(model), CloudHalf(model)
        result = {"model": name, "split_points": list(model.split_points), "height": height, "width": width,
                  "export_and_check_seconds": export_s, "file_bytes": sizes, "batches": {}}
        for batch in (1, 8):
            x = images(batch, height, width)
            feed = {"image": x.numpy()}
            with torch.inference_mode():
                streams_pt = edge_pt(x)
            streams_np = dict(zip(names, (t.numpy() for t in streams_pt)))
            row = {}
            for half, ort_fn, pt_fn in (
                ("edge", lambda: edge_ort.run(None, feed), lambda: edge_pt(x)),
                ("cloud", lambda: cloud_ort.run(None, streams_np), lambda: cloud_pt(*streams_pt)),
            ):
                with torch.inference_mode():
                    onnx_s, torch_s = time_pair(ort_fn, pt_fn, repeats)
                row[half] = {"onnxruntime_ms": 1e3 * statistics.median(onnx_s),
                             "pytorch_ms": 1e3 * statistics.median(torch_s),
                             "ratio_onnx_over_pytorch": statistics.median(onnx_s) / statistics.median(torch_s)}
            row["edge+cloud_ratio"] = ((row["edge"]["onnxruntime_ms"] + row["cloud"]["onnxruntime_ms"])
                                       / (row["edge"]["pytorch_ms"] + row["cloud"]["pytorch_ms"]))
            result["batches"][str(batch)] = row
            print(f"{name} {height}×{width} batch {batch}: edge {row['edge']['onnxruntime_ms']:.1f} ms ONNX vs "
                  f"{row['edge']['pytorch_ms']:.1f} ms PyTorch, cloud {row['cloud']['onnxruntime_ms']:.1f} vs "
                  f"{row['cloud']['pytorch_ms']:.1f} ms, ratio {row['edge+cloud_ratio']:.3f}", flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--out", default=str(RESULTS / "onnx_speed.json"))
    args = parser.parse_args()
    torch.manual_seed(0)
    models = {"default (resnet18, layer3)": MultiTaskCI(num_classes=10), "3-stream (resnet18, layer2+3+4)": trained_model()}
    rows = [measure(name, model, h, w, args.repeats) for name, model in models.items() for h, w in ((64, 128), (256, 512))]
    write_result(Path(args.out), {"benchmark": "onnx_speed", "repeats": args.repeats,
                                  "onnxruntime_threads": "default (all cores)", "results": rows})


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    main()
