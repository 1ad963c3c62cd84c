"""What the rate–distortion callback adds to training (target: ≤ 10% of training time at defaults).

Trains the default model (``python train.py``: ResNet-18 split at layer3, SyntheticStreets
1024/128 images at 64×128, batch 16) and the 2-stream model (``--model.split_points
[layer2,layer3]``) for ``--epochs`` epochs each with
:class:`~cilight.evaluation.RateDistortionCallback` at its default settings (after every epoch),
so each epoch gives one measurement. An epoch is timed from ``on_train_epoch_start`` to
``on_train_epoch_end`` (training and validation); the callback's own time is subtracted to get
the epoch without it. Reported per model: the cost of one run as a fraction of an epoch, its
parts (sweep, fits, evaluation of the four methods, plots), and the fraction it adds to
training at the default interval (``every_n_epochs``), all from the same run.

    python -m benchmarks.callback_cost [--epochs 3] [--out FILE]

Writes JSON (default ``benchmarks/results/callback_cost.json``) naming the machine.
"""

from __future__ import annotations

import argparse
import inspect
import json
import statistics
import tempfile
import time
from pathlib import Path

import lightning.pytorch as pl

from benchmarks.report import RESULTS, write_result
from cilight.ci_models import MultiTaskCI
from cilight.datamodules import SyntheticStreets
from cilight.evaluation import RateDistortionCallback


class EpochClock(pl.Callback):
    def __init__(self) -> None:
        self.seconds: list[float] = []

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._start = time.perf_counter()

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self.seconds.append(time.perf_counter() - self._start)


class Recorder(RateDistortionCallback):
    """The callback, keeping each run's duration."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.runs: list[float] = []  # seconds of each run

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        super().on_validation_epoch_end(trainer, pl_module)
        if self._due(trainer):
            self.runs.append(self.last_seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--out", type=Path, default=RESULTS / "callback_cost.json")
    args = parser.parse_args()

    default_interval = inspect.signature(RateDistortionCallback).parameters["every_n_epochs"].default
    result = {"benchmark": "callback_cost", "data": "SyntheticStreets defaults (64x128, 1024 train, 128 val), batch 16",
              "models": {}}
    for split_points in (["layer3"], ["layer2", "layer3"]):
        pl.seed_everything(0, verbose=False)
        model = MultiTaskCI(split_points=split_points)
        clock, callback = EpochClock(), Recorder()
        with tempfile.TemporaryDirectory(prefix="cilight-callback-cost-") as root:
            trainer = pl.Trainer(max_epochs=args.epochs, logger=False, enable_checkpointing=False,
                                 enable_progress_bar=False, enable_model_summary=False, default_root_dir=root,
                                 callbacks=[clock, callback])
            trainer.fit(model, SyntheticStreets())
            parts = [json.loads(p.read_text())["seconds"]
                     for p in sorted(Path(root, "rate_distortion").glob("epoch_???.json"))]
        epochs = [e - c for e, c in zip(clock.seconds, callback.runs)]
        fraction = [c / e for c, e in zip(callback.runs, epochs)]
        run_fraction = statistics.median(fraction)
        name = "resnet18 " + ",".join(split_points)
        result["models"][name] = {
            "callback": {"budgets_bpe": callback.budgets_bpe, "tuples": callback.tuples, "images": callback.images,
                         "eval_images": callback.eval_images, "refine_tuples": callback.refine_tuples,
                         "coder": callback.coder_name, "every_n_epochs": default_interval},
            "epoch_seconds_without_callback": epochs,
            "callback_seconds": callback.runs,
            "callback_parts_seconds": parts,
            "run_fraction_of_epoch": fraction,
            "median_run_fraction": run_fraction,
            "added_fraction_at_default_interval": run_fraction / default_interval,
        }
        print(f"{name}: epoch without the callback {statistics.median(epochs):.1f} s; one callback run "
              f"{statistics.median(callback.runs):.1f} s = {100 * run_fraction:.1f}% of an epoch; "
              f"every {default_interval} epoch(s) (default): +{100 * run_fraction / default_interval:.1f}% training time")
    result["target_met"] = all(m["added_fraction_at_default_interval"] <= 0.10 for m in result["models"].values())
    write_result(args.out, result)


if __name__ == "__main__":
    main()
