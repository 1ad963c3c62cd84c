"""Training throughput of MultiTaskCI under Lightning against a plain PyTorch loop, and the
cost of each rate option.

Both loops train the same model (same initial weights), with the same Adam + polynomial
decay, on the same pre-generated SyntheticStreets batches; they alternate ``--repeats`` times
and the ratio is taken per pair, so both see the same machine state. Also measured: the share
of a training step spent in the compressibility loss L_r (forward + backward, eq 1–5), and the
time of a plain-loop training step under every rate option (``rate_loss`` × ``codec_noise``,
:data:`RATE_OPTIONS`) against ``dpcm_dct``: the options run one after another inside each
repeat, in an order that rotates between repeats, and each ratio is the median over repeats.

    python -m benchmarks.train_step [--steps 30] [--warmup 5] [--repeats 5] [--parts lightning rate] [--out FILE]

Writes JSON (default ``benchmarks/results/train_step.json``) naming the machine.
"""

from __future__ import annotations

import argparse
import copy
import inspect
import json
import logging
import statistics
import time
from pathlib import Path

import lightning.pytorch as pl
import torch
from torch.utils.data import DataLoader

from benchmarks.report import RESULTS, write_result
from cilight.ci_models import MultiTaskCI, QLayerTransmission, compressibility_loss
from cilight.ci_models.rate import normalized_stream
from cilight.datamodules import SyntheticStreets


class _Timer(pl.Callback):
    """Wall time from the start of batch ``warmup`` to the end of the last batch."""

    def __init__(self, warmup: int) -> None:
        self.warmup = warmup
        self.start = self.end = 0.0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if batch_idx == self.warmup:
            self.start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.end = time.perf_counter()


def plain_loop(model: MultiTaskCI, batches: list[dict], warmup: int) -> float:
    """Seconds for ``len(batches) - warmup`` steps of a hand-written loop."""
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=model.hparams.lr)
    scheduler = torch.optim.lr_scheduler.PolynomialLR(optimizer, total_iters=len(batches), power=0.9)
    start = 0.0
    for i, batch in enumerate(batches):
        if i == warmup:
            start = time.perf_counter()
        losses, _ = model.losses(batch)
        loss = model.total_loss(losses)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
    return time.perf_counter() - start


def lightning_loop(model: MultiTaskCI, batches: list[dict], warmup: int) -> float:
    timer = _Timer(warmup)
    trainer = pl.Trainer(
        accelerator="cpu", devices=1, max_steps=len(batches), logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0, callbacks=[timer],
        num_sanity_val_steps=0,
    )
    loader = DataLoader(batches, batch_size=None, shuffle=False)
    trainer.fit(model, train_dataloaders=loader)
    return timer.end - timer.start


def compressibility_share(model: MultiTaskCI, batches: list[dict], reps: int = 10) -> dict:
    """Time of L_r forward+backward on real stream tensors against a whole training step."""
    model.train()
    with torch.no_grad():
        feats = model.features(batches[0]["image"])
    def lr_step():
        fs = [f.clone().requires_grad_(True) for f in feats]
        sum(compressibility_loss(normalized_stream(f)) for f in fs).backward()
    def full_step():
        losses, _ = model.losses(batches[0])
        model.zero_grad(set_to_none=True)
        model.loss_weighting(losses).backward()
    for fn in (lr_step, full_step):
        fn()
    t_lr = min(_timeit(lr_step) for _ in range(reps))
    t_step = min(_timeit(full_step) for _ in range(3))
    return {"compressibility_ms": 1e3 * t_lr, "train_step_ms": 1e3 * t_step, "share": t_lr / t_step}


RATE_OPTIONS = {  # name: MultiTaskCI arguments; the first is the reference of the ratios
    "dpcm_dct": {"rate_loss": "dpcm_dct"},
    "none": {"rate_loss": "none"},
    "proxy_bits": {"rate_loss": "proxy_bits"},
    "codec_noise": {"rate_loss": "dpcm_dct", "codec_noise": "proxy"},
    "proxy_bits+codec_noise": {"rate_loss": "proxy_bits", "codec_noise": "proxy"},
}


def rate_option_steps(num_classes: int, batches: list[dict], warmup: int, repeats: int) -> dict:
    """Seconds per plain-loop training step under every rate option, and each one's ratio to ``dpcm_dct``."""
    times: dict[str, list[float]] = {name: [] for name in RATE_OPTIONS}
    names = list(RATE_OPTIONS)
    for r in range(repeats):
        for name in names[r % len(names):] + names[:r % len(names)]:  # rotate the order between repeats
            pl.seed_everything(0, verbose=False)
            model = MultiTaskCI(num_classes=num_classes, transmission=QLayerTransmission.spec(**RATE_OPTIONS[name]))
            times[name].append(plain_loop(model, batches, warmup) / (len(batches) - warmup))
        print(f"rate options, repeat {r + 1}/{repeats}: " + ", ".join(
            f"{n} {1e3 * times[n][-1]:.0f} ms" for n in names), flush=True)
    reference = times[names[0]]
    return {name: {"arguments": RATE_OPTIONS[name], "step_seconds": t,
                   "ratio_to_dpcm_dct": statistics.median(a / b for a, b in zip(t, reference))}
            for name, t in times.items()}


def _timeit(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=None, help="default: the datamodule's")
    parser.add_argument("--parts", nargs="+", choices=["lightning", "rate"], default=["lightning", "rate"])
    parser.add_argument("--out", type=Path, default=RESULTS / "train_step.json")
    args = parser.parse_args()
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)  # one line per repeat, not per Trainer

    batch_size = args.batch_size or inspect.signature(SyntheticStreets).parameters["batch_size"].default
    data = SyntheticStreets(num_train=args.steps * batch_size, num_val=8, num_test=8, batch_size=batch_size)
    batches = list(DataLoader(data.dataset("train"), batch_size=batch_size))
    pl.seed_everything(0, verbose=False)
    reference = MultiTaskCI(num_classes=data.num_classes)
    steps = args.steps - args.warmup
    pairs = []
    for r in range(args.repeats if "lightning" in args.parts else 0):
        t_plain = plain_loop(copy.deepcopy(reference), batches, args.warmup)
        t_light = lightning_loop(copy.deepcopy(reference), batches, args.warmup)
        pairs.append({"plain_images_per_s": steps * batch_size / t_plain,
                      "lightning_images_per_s": steps * batch_size / t_light,
                      "ratio_plain_over_lightning": t_light / t_plain})
        print(f"repeat {r + 1}/{args.repeats}: plain {pairs[-1]['plain_images_per_s']:.1f} img/s, "
              f"lightning {pairs[-1]['lightning_images_per_s']:.1f} img/s, "
              f"overhead ratio {pairs[-1]['ratio_plain_over_lightning']:.3f}")
    result = {
        "benchmark": "train_step",
        "config": {"steps": args.steps, "warmup": args.warmup, "batch_size": batch_size,
                   "height": data.height, "width": data.width, "model": dict(reference.hparams)},
    }
    if "lightning" in args.parts:
        share = compressibility_share(copy.deepcopy(reference), batches)
        result |= {"repeats": pairs,
                   "lightning_overhead_ratio": statistics.median(p["ratio_plain_over_lightning"] for p in pairs),
                   "compressibility": share}
        print(f"Lightning/plain time ratio (median): {result['lightning_overhead_ratio']:.3f}")
        print(f"compressibility loss: {share['compressibility_ms']:.2f} ms of a {share['train_step_ms']:.1f} ms step "
              f"({100 * share['share']:.1f}%)")
    if "rate" in args.parts:
        result["rate_options"] = rate_option_steps(data.num_classes, batches, args.warmup, args.repeats)
        for name, entry in result["rate_options"].items():
            print(f"{name:>24}: {1e3 * statistics.median(entry['step_seconds']):.0f} ms per step, "
                  f"ratio to dpcm_dct {entry['ratio_to_dpcm_dct']:.3f}")
    previous = json.loads(args.out.read_text()) if args.out.is_file() else {}
    write_result(args.out, {**{k: v for k, v in previous.items() if k != "machine"}, **result})  # parts not run are kept


if __name__ == "__main__":
    main()
