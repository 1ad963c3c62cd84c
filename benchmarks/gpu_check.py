"""Training on a GPU: the four model kinds in float32 and in bf16-mixed, then the callback, export and curves.

cilight's users train on GPUs, and the suite runs on CPUs. This check trains, with ``train.py`` as a user
runs it, the default model, the 2-stream model (``layer2`` + ``layer3``), the learned codec (hyperprior
bottleneck) and BaF (on the default model of the same precision) for ``--steps`` steps each in
``32-true`` and ``bf16-mixed`` on ``--accelerator``, with the default callbacks: after the one epoch the
sample grid and the per-epoch rate–distortion callback run on the device. It then exports every
``bf16-mixed`` model (``export.py``: the ONNX halves checked against PyTorch) and measures the rate–accuracy
curves of the default one (``evaluate.py curves``). For a speed against the CPU, the default model also
trains in float32 on the CPU for ``--cpu-steps`` steps.

Recorded per training: steps per second after ``--warmup`` steps (the clock read after a device
synchronisation), the peak memory (``torch.cuda.max_memory_allocated`` on a GPU, the process's peak
resident set on the CPU), the final losses and validation metrics, and the callback's seconds.

    python -m benchmarks.gpu_check                       # on a GPU: --accelerator gpu, 300 steps
    python -m benchmarks.gpu_check --accelerator cpu --steps 2 --kinds default --precisions bf16-mixed

Writes JSON (default ``benchmarks/results/gpu_check.json``) naming the machine (CPU model, GPU name,
torch version) after every part; the runs, logs and ONNX files go under ``--work``
(default ``runs/gpu_check``). Interrupted, it resumes: a part already in the JSON with the same settings
is skipped (``--fresh`` starts over), a failed part is tried again. The suite runs it on the CPU with
two steps (``tests/test_device_audit.py``); CI never needs a GPU for it.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import lightning.pytorch as pl
import torch

from benchmarks.report import RESULTS, ROOT, write_result

KINDS = {
    "default": [],
    "two_stream": ["--model.split_points", "[layer2,layer3]"],
    "learned": ["--model.transmission", "BottleneckTransmission", "--model.transmission.prior", "hyperprior"],
    "baf": None,  # configs/baf.yaml on the default model's checkpoint of the same precision
}
PRECISIONS = ("32-true", "bf16-mixed")
TIMER_FILE = "step_timer.json"


class StepTimer(pl.Callback):
    """Training speed and peak memory of one run, written to ``<run>/step_timer.json`` when fitting ends.

    Added to a run by ``--trainer.callbacks+=benchmarks.gpu_check.StepTimer``. The clock starts at batch
    ``warmup`` and stops at the end of the last training batch, each read after the device has finished
    its queued work.
    """

    def __init__(self, warmup: int = 10) -> None:
        super().__init__()
        self.warmup = warmup
        self.start: float | None = None
        self.end: float | None = None
        self.timed_steps = 0

    @staticmethod
    def _synchronize(pl_module: pl.LightningModule) -> None:
        if pl_module.device.type == "cuda":
            torch.cuda.synchronize(pl_module.device)

    def on_fit_start(self, trainer, pl_module) -> None:
        if pl_module.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(pl_module.device)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.global_step == self.warmup:
            self._synchronize(pl_module)
            self.start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self.start is not None:
            self._synchronize(pl_module)
            self.end = time.perf_counter()
            self.timed_steps = trainer.global_step - self.warmup

    def on_fit_end(self, trainer, pl_module) -> None:
        seconds = (self.end - self.start) if self.start is not None and self.end is not None else None
        cuda = pl_module.device.type == "cuda"
        record = {
            "device": str(pl_module.device),
            "precision": str(trainer.precision),
            "steps": trainer.global_step,
            "timed_steps": self.timed_steps,
            "timed_seconds": seconds,
            "steps_per_s": self.timed_steps / seconds if seconds else None,
            "peak_memory_mb": (torch.cuda.max_memory_allocated(pl_module.device) if cuda
                               else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024) / 2**20,
            "peak_memory_kind": "torch.cuda.max_memory_allocated" if cuda else "process peak resident set (CPU)",
            "metrics": {k: float(v) for k, v in trainer.callback_metrics.items() if v.numel() == 1},
            "callback_seconds": {type(c).__name__: c.last_seconds for c in trainer.callbacks
                                 if getattr(c, "last_seconds", None) is not None},
        }
        (Path(trainer.default_root_dir) / TIMER_FILE).write_text(json.dumps(record, indent=1) + "\n")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accelerator", default="gpu", help="Lightning accelerator: gpu (default), cuda, mps, cpu")
    parser.add_argument("--steps", type=int, default=300, help="training steps of every run (default 300)")
    parser.add_argument("--warmup", type=int, default=20, help="steps before the clock starts (at most steps − 1)")
    parser.add_argument("--cpu-steps", type=int, default=30, help="steps of the float32 run on the CPU (0: none)")
    parser.add_argument("--kinds", nargs="+", default=list(KINDS), choices=list(KINDS))
    parser.add_argument("--precisions", nargs="+", default=list(PRECISIONS), choices=list(PRECISIONS))
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--height", type=int, default=64)
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--num-val", type=int, default=32, help="validation images (the callback uses 8 + 6)")
    parser.add_argument("--num-test", type=int, default=32)
    parser.add_argument("--curve-images", type=int, default=16, help="test images the curves are measured on")
    parser.add_argument("--codecs", default="paper=png+jpeg:quality=95,90,85,80", help="curve family of evaluate.py")
    parser.add_argument("--work", type=Path, default=ROOT / "runs" / "gpu_check", help="runs, logs and ONNX files")
    parser.add_argument("--out", type=Path, default=RESULTS / "gpu_check.json")
    parser.add_argument("--fresh", action="store_true", help="ignore the parts already in --out")
    args = parser.parse_args(argv)
    for name in ("steps", "batch_size", "height", "width", "num_val", "num_test", "curve_images"):
        value = getattr(args, name)
        if value < 1:
            parser.error(f"--{name.replace('_', '-')} {value}: expected a positive integer")
    if args.cpu_steps < 0 or args.warmup < 0:
        parser.error(f"--cpu-steps {args.cpu_steps}, --warmup {args.warmup}: expected integers ≥ 0")
    if args.height % 32 or args.width % 32:
        parser.error(f"--height {args.height} --width {args.width}: expected multiples of 32")
    return args


def accelerator_of() -> dict:
    """The GPU beside the machine record (:func:`benchmarks.report.machine` names it): CUDA, memory, capability."""
    if not torch.cuda.is_available():
        return {"cuda_available": False, "mps_available": bool(torch.backends.mps.is_available())}
    props = torch.cuda.get_device_properties(0)
    return {"cuda_available": True, "name": props.name, "memory_gb": props.total_memory / 2**30,
            "capability": f"{props.major}.{props.minor}", "cuda": torch.version.cuda,
            "bf16_supported": torch.cuda.is_bf16_supported(), "count": torch.cuda.device_count()}


def settings_of(args: argparse.Namespace) -> dict:
    """What makes two results comparable: a saved part is reused only under the same settings."""
    return {"accelerator": args.accelerator, "steps": args.steps, "warmup": min(args.warmup, args.steps - 1),
            "cpu_steps": args.cpu_steps, "batch_size": args.batch_size, "height": args.height, "width": args.width,
            "num_val": args.num_val, "num_test": args.num_test, "curve_images": args.curve_images, "codecs": args.codecs}


def run_name(kind: str, precision: str, accelerator: str) -> str:
    return f"{kind}-{precision}-{accelerator}"


def train_command(args: argparse.Namespace, kind: str, precision: str, accelerator: str, steps: int) -> list[str]:
    warmup = min(args.warmup, steps - 1)
    data = ["--data.height", args.height, "--data.width", args.width, "--data.batch_size", args.batch_size,
            "--data.num_train", steps * args.batch_size, "--data.num_val", args.num_val, "--data.num_test", args.num_test]
    if kind == "baf":
        task = args.work / "runs" / run_name("default", precision, accelerator) / "checkpoints" / "last.ckpt"
        model = ["--config", ROOT / "configs" / "baf.yaml", "--model.task_ckpt", task,
                 "--model.calibration_images", min(256, steps * args.batch_size)]
    else:
        model = KINDS[kind]
    command = [sys.executable, ROOT / "train.py", *model, *data,
               "--trainer.accelerator", accelerator, "--trainer.devices", 1, "--trainer.precision", precision,
               "--trainer.max_epochs", 1, "--trainer.max_steps", steps, "--trainer.enable_model_summary", "false",
               "--trainer.callbacks+=benchmarks.gpu_check.StepTimer", "--trainer.callbacks.init_args.warmup", warmup,
               "--baselines", "false", "--trainer.default_root_dir", args.work / "runs",
               "--run_name", run_name(kind, precision, accelerator)]
    return [str(c) for c in command]


def plan(args: argparse.Namespace) -> list[tuple[str, list[str], str | None]]:
    """Every part, in order: ``(name, command, name of the part it needs or None)``."""
    parts = []
    for precision in args.precisions:
        for kind in args.kinds:
            needs = f"train/default/{precision}" if kind == "baf" else None
            if needs and "default" not in args.kinds:
                needs = None  # the default run of that precision must exist already under --work
            parts.append((f"train/{kind}/{precision}", train_command(args, kind, precision, args.accelerator, args.steps),
                          needs))
    if args.cpu_steps and args.accelerator != "cpu":
        parts.append(("train/default/32-true/cpu", train_command(args, "default", "32-true", "cpu", args.cpu_steps), None))
    last = args.precisions[-1]
    for kind in args.kinds:
        ckpt = args.work / "runs" / run_name(kind, last, args.accelerator) / "checkpoints" / "last.ckpt"
        parts.append((f"export/{kind}/{last}", [sys.executable, str(ROOT / "export.py"), "--ckpt", str(ckpt),
                                               "--out", str(args.work / "onnx" / f"{kind}-{last}")], f"train/{kind}/{last}"))
    if "default" in args.kinds:
        ckpt = args.work / "runs" / run_name("default", last, args.accelerator) / "checkpoints" / "last.ckpt"
        parts.append((f"curves/default/{last}", [sys.executable, str(ROOT / "evaluate.py"), "curves", "--ckpt", str(ckpt),
                                                 "--images", str(args.curve_images), "--codecs", args.codecs,
                                                 "--out", str(args.work / "curves" / f"default-{last}")],
                      f"train/default/{last}"))
    return parts


def run_part(name: str, command: list[str], work: Path) -> dict:
    """Run one part as a process (its output in ``work/logs``); what it measured."""
    log = work / "logs" / (name.replace("/", "_") + ".log")
    log.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    with log.open("w") as out:
        proc = subprocess.run(command, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                              env={**os.environ, "WANDB_MODE": "disabled"})
    entry = {"command": command[1:],
             "ok": proc.returncode == 0, "exit_code": proc.returncode, "seconds": time.perf_counter() - start,
             "log": str(log)}
    if proc.returncode:
        entry["log_tail"] = log.read_text()[-3000:]
    elif name.startswith("train/"):
        run = Path(command[command.index("--trainer.default_root_dir") + 1]) / command[command.index("--run_name") + 1]
        entry.update(json.loads((run / TIMER_FILE).read_text()))
    elif name.startswith("export/"):
        out = Path(command[command.index("--out") + 1])
        entry["files_mb"] = {p.name: p.stat().st_size / 2**20 for p in sorted(out.glob("*.onnx"))}
    elif name.startswith("curves/"):
        out = Path(command[command.index("--out") + 1])
        entry["curves"] = json.loads((out / "curves.json").read_text()) if (out / "curves.json").is_file() else None
    return entry


def summary(parts: dict) -> dict:
    """Steps per second, their ratio to the CPU's float32 run and to float32 on the device, and peak memory."""
    cpu = (parts.get("train/default/32-true/cpu") or {}).get("steps_per_s")
    rows = {}
    for name, entry in parts.items():
        if not name.startswith("train/") or not entry.get("ok") or name.endswith("/cpu"):
            continue
        _, kind, precision = name.split("/")
        fp32 = (parts.get(f"train/{kind}/32-true") or {}).get("steps_per_s")
        speed = entry.get("steps_per_s")
        rows[f"{kind}/{precision}"] = {
            "steps_per_s": speed, "peak_memory_mb": entry.get("peak_memory_mb"),
            "against_cpu_float32": speed / cpu if speed and cpu and kind == "default" else None,
            "against_float32": speed / fp32 if speed and fp32 else None,
            "val_loss": entry.get("metrics", {}).get("val/loss"),
        }
    return {"cpu_float32_steps_per_s": cpu, "runs": rows}


def print_table(result: dict) -> None:
    print("\n| run | steps/s | × CPU float32 | × float32 | peak memory MB | val/loss |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for name, row in result["summary"]["runs"].items():
        cells = [row["steps_per_s"], row["against_cpu_float32"], row["against_float32"], row["peak_memory_mb"],
                 row["val_loss"]]
        print(f"| {name} | " + " | ".join("—" if v is None else f"{v:.3g}" for v in cells) + " |")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.work = args.work.resolve()
    settings = settings_of(args)
    result = {"benchmark": "gpu_check", "settings": settings, "accelerator": accelerator_of(), "parts": {}}
    if args.out.is_file() and not args.fresh:
        saved = json.loads(args.out.read_text())
        if saved.get("settings") == settings:
            result["parts"] = {k: v for k, v in saved.get("parts", {}).items() if v.get("ok")}
        else:
            print(f"{args.out}: other settings ({saved.get('settings')}); starting over", flush=True)
    parts = plan(args)
    failed = []
    for i, (name, command, needs) in enumerate(parts, 1):
        if name in result["parts"]:
            print(f"[{i}/{len(parts)}] {name}: done before, skipped", flush=True)
            continue
        if needs and not result["parts"].get(needs, {}).get("ok"):
            print(f"[{i}/{len(parts)}] {name}: skipped, {needs} did not finish", flush=True)
            failed.append(name)
            continue
        print(f"[{i}/{len(parts)}] {name} ...", flush=True)
        entry = run_part(name, command, args.work)
        speed = f", {entry['steps_per_s']:.2f} steps/s" if entry.get("steps_per_s") else ""
        print(f"[{i}/{len(parts)}] {name}: {'done' if entry['ok'] else 'FAILED'} in {entry['seconds']:.1f} s{speed}"
              + ("" if entry["ok"] else f" (log: {entry['log']})"), flush=True)
        if not entry["ok"]:
            failed.append(name)
        result["parts"][name] = entry
        result["summary"] = summary(result["parts"])
        write_result(args.out, result)
    result["summary"] = summary(result["parts"])
    result["failed"] = failed
    write_result(args.out, result)
    print_table(result)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
