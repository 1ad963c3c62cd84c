"""The int8 edge half of the default model: file size, batch-1 speed against the float edge half, task accuracy.

Steps, each kept under ``--work`` and reused when the benchmark runs again (an interrupted run resumes):

1. train the default model, ``python train.py`` with its defaults (ResNet-18 split at layer3,
   SyntheticStreets at 64×128, 8 epochs, or ``--epochs``) and checkpoints as its only callbacks
   (``configs/callbacks/none.yaml``: the per-epoch sample grids and rate–distortion sweeps measure, they
   do not change the weights); a checkpoint of an interrupted training is resumed;
2. ``python export.py --ckpt last.ckpt --out DIR --edge-int8`` as a user runs it: ``edge.onnx``,
   ``cloud.onnx`` and ``edge_int8.onnx`` (:mod:`cilight.edge_int8`, calibrated on 64 training images),
   with both parity checks;
3. file sizes; batch-1 latency of ``edge.onnx`` and ``edge_int8.onnx`` with ONNX Runtime (CPU provider),
   the two alternated ``--repeats`` times in one process so machine load hits both alike, with ONNX
   Runtime's default threads and with one thread; ratio = median int8 time / median float time;
4. every task metric on the checkpoint's test split through the runtimes over bytes
   (``EdgeRuntime`` → ``png`` frames → ``CloudRuntime``; PNG is lossless, so the difference is int8's
   alone) for the float chain and the int8 chain, with the PyTorch model beside them; and how far the
   int8 chain's outputs are from the float chain's (label agreement, relative RMS difference), the
   measures of the export's int8 tolerance.

    python -m benchmarks.edge_int8 [--epochs 8] [--repeats 50] [--work benchmarks/results/cache/edge_int8]

Writes ``benchmarks/results/edge_int8.json`` naming the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import onnxruntime
import torch

from benchmarks.onnx_speed import time_pair
from benchmarks.report import RESULTS, ROOT, write_result
from cilight.ci_models.checkpoints import load_model
from cilight.datamodules.from_checkpoint import test_batches
from cilight.deploy import CloudRuntime, EdgeRuntime
from cilight.deploy.wire import IMAGE, onnx_session
from cilight.edge_int8 import EDGE_INT8, INT8_MAX_RELATIVE_ERROR, INT8_MIN_LABEL_AGREEMENT, PRECISION_KEY, read_metadata

WORK = RESULTS / "cache" / "edge_int8"
RUN = "default"


def shown(path: Path) -> str:
    """``path`` relative to the repository where it lies inside it."""
    return os.path.relpath(path, ROOT) if path.is_relative_to(ROOT) else str(path)


def run(command: list[str], log: Path) -> str:
    """``python command`` from the repository root, W&B off, its output kept in ``log``; fails loudly."""
    print("running: python", " ".join(command), flush=True)
    proc = subprocess.run([sys.executable, *command], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "WANDB_MODE": "disabled"})
    log.write_text(proc.stdout + proc.stderr)
    if proc.returncode:
        raise SystemExit(f"{command[0]} failed with status {proc.returncode}; see {log}")
    return proc.stdout


def trained_checkpoint(work: Path, epochs: int | None) -> tuple[Path, float | None]:
    """``last.ckpt`` of the default training (trained, or resumed from an interrupted run's ``last.ckpt``)
    and its wall time in seconds (``None`` when it was trained by an earlier run of the benchmark)."""
    run_dir = work / RUN
    last = run_dir / "checkpoints" / "last.ckpt"
    if (run_dir / "test_metrics.json").is_file():  # written when training and its test finished
        return last, None
    command = ["train.py", "--config", str(ROOT / "configs" / "callbacks" / "none.yaml"), "--trainer.default_root_dir",
               str(work), "--run_name", RUN, "--trainer.enable_progress_bar", "false"]
    if epochs is not None:
        command += ["--trainer.max_epochs", str(epochs)]
    if last.is_file():
        command += ["--ckpt_path", str(last)]
    work.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    run(command, work / "train.log")
    return last, time.perf_counter() - start


def exported(checkpoint: Path, folder: Path, work: Path) -> dict:
    """The export with ``--edge-int8`` (its printed tables and time), once."""
    record = work / "export.json"
    if record.is_file() and (folder / EDGE_INT8).is_file():
        return json.loads(record.read_text())
    start = time.perf_counter()
    stdout = run(["export.py", "--ckpt", str(checkpoint), "--out", str(folder), "--edge-int8"], work / "export.log")
    result = {"command": f"python export.py --ckpt {shown(checkpoint)} --out DIR --edge-int8",
              "seconds": time.perf_counter() - start, "stdout": stdout.splitlines()}
    record.write_text(json.dumps(result, indent=2))
    return result


def session(path: Path, threads: int | None):
    """ONNX Runtime on the CPU: the runtimes' session (``threads=None``) or one with ``threads`` intra-op threads."""
    if threads is None:
        return onnx_session(path)
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def speed(folder: Path, image: np.ndarray, repeats: int) -> dict:
    """Batch-1 latency of the float and the int8 edge half, alternated in this process."""
    result = {}
    for label, threads in (("default threads", None), ("1 thread", 1)):
        halves = [session(folder / name, threads) for name in ("edge.onnx", EDGE_INT8)]
        float_s, int8_s = time_pair(*(lambda s=s: s.run(None, {IMAGE: image}) for s in halves), repeats)
        result[label] = {"float_ms": 1e3 * statistics.median(float_s), "int8_ms": 1e3 * statistics.median(int8_s),
                         "ratio_int8_over_float": statistics.median(int8_s) / statistics.median(float_s)}
        print(f"edge half, batch 1, {label}: float {result[label]['float_ms']:.2f} ms, int8 "
              f"{result[label]['int8_ms']:.2f} ms, ratio {result[label]['ratio_int8_over_float']:.3f}", flush=True)
    return result


@torch.no_grad()
def accuracy(checkpoint: Path, folder: Path) -> dict:
    """Every task metric on the test split for PyTorch, the float chain and the int8 chain over bytes, and the
    int8 chain's distance from the float chain."""
    model, data = load_model(checkpoint)
    model = model.eval()
    cloud = CloudRuntime(folder / "cloud.onnx")
    edges = {"float": EdgeRuntime(folder / "edge.onnx", "png"), "int8": EdgeRuntime(folder / EDGE_INT8, "png")}
    metrics = {name: model.task_metrics(sync=False) for name in ("pytorch", *edges)}
    agree = {t.name: [0.0, 0] for t in model.tasks if t.kind == "classification"}
    squares = {t.name: [0.0, 0.0] for t in model.tasks if t.kind != "classification"}  # ‖Δ‖², ‖float‖²
    images = frame_bytes = 0
    for batch in test_batches(data):
        metrics["pytorch"].update(model(batch["image"]), batch)
        outputs = {}
        for name, edge in edges.items():
            frames = edge.encode(batch["image"].numpy())
            frame_bytes += sum(len(f) for f in frames) if name == "int8" else 0
            got = cloud.infer(frames)
            outputs[name] = {t.name: torch.from_numpy(np.asarray(got[t.output_name])) for t in model.tasks}
            metrics[name].update(outputs[name], batch)
        for task, counts in agree.items():
            counts[0] += float((outputs["int8"][task].argmax(1) == outputs["float"][task].argmax(1)).sum())
            counts[1] += outputs["float"][task].argmax(1).numel()
        for task, sums in squares.items():
            sums[0] += float(((outputs["int8"][task] - outputs["float"][task]) ** 2).sum())
            sums[1] += float((outputs["float"][task] ** 2).sum())
        images += len(batch["image"])
    computed = {name: {k: float(v) for k, v in m.compute().items()} for name, m in metrics.items()}
    directions = metrics["pytorch"].directions
    return {
        "test_images": images,
        "int8_png_bytes_per_image": frame_bytes / images,
        "metrics": {key: {"higher_is_better": directions[key], **{n: computed[n][key] for n in computed},
                          "int8_minus_float": computed["int8"][key] - computed["float"][key]}
                    for key in computed["pytorch"]},
        "int8_against_float_chain": {
            **{f"{t}_label_agreement": a / n for t, (a, n) in agree.items()},
            **{f"{t}_relative_rms_difference": (d / max(r, 1e-24)) ** 0.5 for t, (d, r) in squares.items()},
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, help="training epochs (default: train.py's, 8)")
    parser.add_argument("--repeats", type=int, default=50, help="timed runs of each edge half per thread setting")
    parser.add_argument("--work", type=Path, default=WORK, help="the training, export and partial results")
    parser.add_argument("--out", type=Path, default=RESULTS / "edge_int8.json")
    args = parser.parse_args()
    work = args.work.resolve()
    state_path = work / "state.json"
    checkpoint, train_seconds = trained_checkpoint(work, args.epochs)
    state = json.loads(state_path.read_text()) if state_path.is_file() else {}
    if train_seconds is not None:
        # a new model: nothing measured or exported before holds
        state = {"train_seconds": train_seconds, "train_epochs": args.epochs or 8}
        (work / "export.json").unlink(missing_ok=True)
    folder = work / "export"
    state["export"] = exported(checkpoint, folder, work)
    sizes = {name: (folder / name).stat().st_size for name in ("edge.onnx", EDGE_INT8, "cloud.onnx")}
    state["file_bytes"] = {**sizes, "ratio_int8_over_float": sizes[EDGE_INT8] / sizes["edge.onnx"]}
    props, meta = read_metadata(folder / EDGE_INT8)
    state["quantization"] = json.loads(props[PRECISION_KEY])
    if "speed" not in state:
        image = next(iter(test_batches(load_model(checkpoint)[1], images=1)))["image"].numpy()
        state["speed"] = {"batch": 1, "height": meta.input_shape[1], "width": meta.input_shape[2],
                          "repeats": args.repeats, **speed(folder, image, args.repeats)}
        state_path.write_text(json.dumps(state, indent=2))
    if "accuracy" not in state:
        state["accuracy"] = accuracy(checkpoint, folder)
        state_path.write_text(json.dumps(state, indent=2))
    for key, row in state["accuracy"]["metrics"].items():
        print(f"{key:<24} pytorch {row['pytorch']:.4f}  float {row['float']:.4f}  int8 {row['int8']:.4f}  "
              f"Δ {row['int8_minus_float']:+.4f}")
    write_result(args.out, {
        "benchmark": "edge_int8", "command": " ".join(["python -m benchmarks.edge_int8", *sys.argv[1:]]),
        "model": f"python train.py defaults (resnet18, layer3, SyntheticStreets 64×128), {state['train_epochs']} epochs",
        "checkpoint": shown(checkpoint), "split_points": list(meta.split_points),
        "export_tolerance": {"min_label_agreement": INT8_MIN_LABEL_AGREEMENT,
                             "max_relative_rms_difference": INT8_MAX_RELATIVE_ERROR},
        "onnxruntime": onnxruntime.__version__, **state,
    })


if __name__ == "__main__":
    main()
