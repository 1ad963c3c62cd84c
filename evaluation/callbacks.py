"""Training callbacks, configured by class path in ``configs/`` (never named in code).

* :class:`RateDistortionCallback` — the allocation experiment after validation epochs;
* :class:`PredictionGrid` — the Fig. 3-style sample grid after every validation epoch.

``RateDistortionCallback``: the allocation experiment after validation epochs.

Alvar & Bajić, IEEE TIP 2021, §VI-A, run on the model being trained, so a researcher sees in
W&B how the distortion–rate surfaces and the best allocation move while the features learn to
compress. With one stream it logs the rate–accuracy curve (in the format of ``evaluate.py
curves``); with ≥ 2 streams it fits surfaces per budget on ``images`` validation images,
allocates (eq 15) and evaluates every allocation and Methods 1–3 on ``eval_images`` *other*
validation images (a Table III per epoch), and for 2 streams logs the Pareto segment
(Theorem 2) and a 3-D surface plot.

DDP: the sweep uses the first validation batches seen by rank 0 (a fixed subset), runs on rank
0 only, and every rank meets at a barrier before and after it, so no collective is skipped.
Results are written under ``<run>/rate_distortion/`` and logged to W&B as a table and images.

The sample grid (``PredictionGrid``): after every validation epoch (never during the sanity check, rank 0
only) it shows, per sample, the input image, the ground truth of every task that has one, and every task's
prediction — the columns of Fig. 3 of Alvar & Bajić, ICIP 2019. Each task colours its own columns
(:attr:`~cilight.ci_models.tasks.Task.render`). The grid is logged to the experiment logger when that logger
can show images (W&B) and always written as a PNG in the run folder.
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from lightning.pytorch.loggers import WandbLogger
from lightning.pytorch.utilities import rank_zero_warn
from PIL import Image
from torch import Tensor

from cilight.allocation.distortion import check_weights
from cilight.ci_models.tasks import Task, TaskContext, image_to_rgb
from cilight.codecs import stream_coder
from cilight.errors import CilightError, ConfigError
from cilight.evaluation.curves import curves_from_sweep
from cilight.evaluation.experiment import rows_as_dicts, run_allocation
from cilight.evaluation.report import log_allocation_table, log_to_wandb, plot_curve, plot_surface
from cilight.evaluation.sweep import least_budget, rate_sweep, sample_rate_tuples


class RateDistortionCallback(pl.Callback):
    """Rate sweep, surface fits and allocations after validation, every ``every_n_epochs``.

    ``configs/default.yaml`` lists it among the callbacks of every ``python train.py`` run, after
    every epoch. One run costs about ``(tuples + refine_tuples × budgets) × images + (5 ×
    budgets + 1) × eval_images`` cloud-half passes plus the proxy; ``python
    benchmarks/callback_cost.py`` measures it against the training time of the default and the
    2-stream model.

    Args:
        budgets_bpe: budgets as bits per element of all streams together (resolution-free);
            each becomes ``R_t = bpe × Σ numel`` bits per image.
        tuples: rate tuples per sweep (the paper uses 100; ``evaluate.py allocate`` too). The
            default, 20, is the least two budgets of a 2-stream model need: 5 tuples drawn
            inside each budget's window (a fit needs ``2N + 1 = 5``) besides the uniform ones;
            the default budgets are the steep and the flat end of the surfaces.
        refine_tuples: tuples per budget of the local sweep around the first allocation, after
            which the surface is refitted there (:mod:`~cilight.evaluation.sweep`); 0 (default
            here, unlike ``evaluate.py allocate``'s ``REFINE_TUPLES``) turns it off — it would
            double the callback's cost; other values are raised to the ``2(2N + 1)`` the local
            fit of N streams needs.
        images: validation images the sweep and the fits use (the first ones seen).
        eval_images: further validation images every allocation is evaluated on (≥ 2 streams).
        coder: the codec of the sweep, any registered codec without a rate value (``proxy``,
            ``jpeg2000``, ``jpeg`` …).
        weights: task weights of eq 17 (``equal``, ``inverse-mean`` or a list).
        every_n_epochs: run after every n-th validation epoch; 0 turns the callback off.
    """

    def __init__(self, budgets_bpe: list[float] = [0.25, 1.0], tuples: int = 20, images: int = 8,  # noqa: B006
                 coder: str = "proxy", weights: str | list[float] = "equal", every_n_epochs: int = 1,
                 refine_tuples: int = 0, eval_images: int = 6) -> None:
        super().__init__()
        if not budgets_bpe or any(not b > 0 for b in budgets_bpe):
            raise ConfigError(f"budgets_bpe={budgets_bpe!r}: expected positive bits per element")
        if tuples < 10 or images < 1 or eval_images < 1 or every_n_epochs < 0 or refine_tuples < 0:
            raise ConfigError(f"tuples={tuples} (expected ≥ 10), images={images} (≥ 1), eval_images={eval_images} "
                              f"(≥ 1), every_n_epochs={every_n_epochs} (≥ 0; 0 turns the callback off), "
                              f"refine_tuples={refine_tuples} (≥ 0; 0 turns the refinement off)")
        stream_coder(coder)  # typos fail now, not after the first epoch
        check_weights(weights)
        self.budgets_bpe, self.tuples, self.images, self.eval_images = list(budgets_bpe), tuples, images, eval_images
        self.coder_name, self.weights, self.every_n_epochs = coder, weights, every_n_epochs
        self.refine_tuples = refine_tuples
        self._batches: list[dict[str, Tensor]] = []
        self._floors: dict[tuple[int, ...], float] = {}
        self.last_seconds: float | None = None

    def _due(self, trainer: pl.Trainer) -> bool:
        return (not trainer.sanity_checking and self.every_n_epochs > 0
                and (trainer.current_epoch + 1) % self.every_n_epochs == 0)

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # a transmission with its own codec (a learned bottleneck) has its rate set by training, not by a
        # codec's knob: nothing to sweep
        own = sorted({type(t).__name__ for t in pl_module.transmissions if t.own_codec_name() is not None})
        if own and self.every_n_epochs > 0:
            rank_zero_warn(f"RateDistortionCallback is off for a model whose streams code with their transmission's own "
                           f"codec ({', '.join(own)}): its rate is set by training (val/bits_per_image is logged every "
                           "epoch); compare models trained at several trade-offs with evaluate.py bdrate")
            self.every_n_epochs = 0

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        if not trainer.is_global_zero or not self._due(trainer):
            return
        have = sum(len(b["image"]) for b in self._batches)
        wanted = self.images + (self.eval_images if len(pl_module.split_points) > 1 else 0)
        if have < wanted:
            keep = wanted - have
            self._batches.append({k: v[:keep].detach().cpu() for k, v in batch.items() if isinstance(v, Tensor)})

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not self._due(trainer):
            return
        trainer.strategy.barrier("rate_distortion_start")
        if trainer.is_global_zero and self._batches:
            start = time.perf_counter()
            was_training = pl_module.training
            model = pl_module.eval()
            try:
                with torch.no_grad():
                    batches = [{k: v.to(pl_module.device) for k, v in b.items()} for b in self._batches]
                    self._run(trainer, model, batches)
            except CilightError as err:  # a failed fit must not end hours of training
                rank_zero_warn(f"RateDistortionCallback skipped epoch {trainer.current_epoch}: {err}")
            finally:
                pl_module.train(was_training)
                self._batches = []
            self.last_seconds = time.perf_counter() - start
            log_to_wandb(trainer, {"rate_distortion/seconds": self.last_seconds})
        trainer.strategy.barrier("rate_distortion_end")

    def _split(self, batches: list[dict[str, Tensor]]) -> tuple[list[dict[str, Tensor]], list[dict[str, Tensor]]]:
        """The first ``images`` validation images to fit, the ones after them to evaluate."""
        images = {k: torch.cat([b[k] for b in batches]) for k in batches[0]}
        fit = {k: v[: self.images] for k, v in images.items()}
        held_out = {k: v[self.images :] for k, v in images.items()}
        return [fit], ([held_out] if len(held_out["image"]) else [])

    def _floor(self, coder, features: Tensor) -> float:
        """The coder's floor for a stream of this shape, measured at the first run and kept: it is the
        smallest stream the real codec writes (header, side information, the first coding pass),
        which depends on the tensor's layout, and measuring it costs real encodes every epoch."""
        key = tuple(features.shape)
        if key not in self._floors:
            self._floors[key] = coder.floor(features)
        return self._floors[key]

    def _run(self, trainer, model, batches) -> None:
        coder = stream_coder(self.coder_name)
        fit, held_out = self._split(batches)
        first = model.features(fit[0]["image"])
        numel = sum(int(f[0].numel()) for f in first)
        floors = [self._floor(coder, f) for f in first]
        # A budget the codec cannot reach (small tensors at low bits per element) is raised to the
        # least one whose fitting window lies above the floors, instead of failing every epoch.
        least = 1.05 * least_budget(floors)
        budgets = sorted({max(b * numel, least) for b in self.budgets_bpe})
        folder = Path(trainer.default_root_dir) / "rate_distortion"
        folder.mkdir(parents=True, exist_ok=True)
        epoch = trainer.current_epoch
        fitted_on = len(fit[0]["image"])
        if len(model.split_points) == 1:
            clock = time.perf_counter()
            sweep = rate_sweep(model, fit, coder, sample_rate_tuples(self.tuples, floors, budgets), progress=False,
                               features=[first])
            seconds = {"sweep": time.perf_counter() - clock}
            curves = curves_from_sweep(sweep, model.tasks, numel, fitted_on,
                                       {"coder": coder.name, "epoch": epoch, "split_point": model.split_points[0],
                                        "reference": "unquantized features"})
            curves.write(folder, f"epoch_{epoch:03d}_curves")
            result = {"epoch": epoch, "images": fitted_on, **sweep.as_dict(), "seconds": seconds}
            plot = plot_curve(sweep, folder / f"epoch_{epoch:03d}.png")
            log_to_wandb(trainer, {"rate_distortion/curve": plot})
        else:
            if not held_out:
                raise ConfigError(f"no validation images left to evaluate on after the {fitted_on} fitted on; "
                                  f"the validation split needs more than images={self.images}")
            refine = max(self.refine_tuples, 2 * (2 * len(floors) + 1)) if self.refine_tuples else 0
            sweep, rows, extras = run_allocation(model, fit, held_out, coder, budgets, tuples=self.tuples,
                                                 refine_tuples=refine, weights=self.weights, progress=False,
                                                 floors=floors)
            evaluated_on = len(held_out[0]["image"])
            result = {"epoch": epoch, "budgets_bits": budgets, "fit_images": fitted_on, "eval_images": evaluated_on,
                      "rows": rows_as_dicts(rows), **extras, "sweep": sweep.as_dict()}
            scalars = {f"rate_distortion/r2@{r.budget:.0f}": r.r2 for r in rows if r.method == "proposed"}
            for r in rows:
                scalars[f"rate_distortion/{r.method}_total_distortion@{r.budget:.0f}"] = r.total_distortion
            log_to_wandb(trainer, scalars)
            log_allocation_table(trainer, rows, f"fit on {fitted_on} validation images, evaluated on "
                                                f"{evaluated_on} others")
            if len(model.split_points) == 2:
                clock = time.perf_counter()
                middle = budgets[len(budgets) // 2]
                plot = plot_surface(sweep, middle, extras["surfaces"][str(middle)], list(extras["weights"].values()),
                                    folder / f"epoch_{epoch:03d}.png")
                log_to_wandb(trainer, {"rate_distortion/surface": plot})
                extras["seconds"]["plots"] = time.perf_counter() - clock
        (folder / f"epoch_{epoch:03d}.json").write_text(json.dumps(result, indent=1, default=float))




def grid_columns(tasks: tuple[Task, ...]) -> list[str]:
    """Column titles of :func:`sample_grid`: the input, the targets, then the predictions."""
    return ["input", *(f"gt {t.name}" for t in tasks if t.render_target), *(t.name for t in tasks)]


def sample_grid(batch: dict[str, Tensor], outputs: dict[str, Tensor], tasks: tuple[Task, ...],
                context: TaskContext) -> np.ndarray:
    """One row per sample, the columns of :func:`grid_columns`, as a uint8 RGB image."""
    rows = []
    for i in range(batch["image"].shape[0]):
        sample = {k: v[i] for k, v in batch.items()}
        cells = [image_to_rgb(sample["image"])]
        cells += [t.render_target(sample, context) for t in tasks if t.render_target]
        cells += [t.render(outputs[t.name][i], sample, context) for t in tasks]
        rows.append(np.concatenate(_with_gaps(cells, axis=1), axis=1))
    return np.concatenate(_with_gaps(rows, axis=0), axis=0)


def _with_gaps(images: list[np.ndarray], axis: int, gap: int = 2) -> list[np.ndarray]:
    out: list[np.ndarray] = []
    for k, img in enumerate(images):
        if k:
            shape = list(img.shape)
            shape[axis] = gap
            out.append(np.full(shape, 255, dtype=np.uint8))
        out.append(img)
    return out


class PredictionGrid(pl.Callback):
    """Logs a Fig. 3-style grid of the first validation batch after every validation epoch.

    Args:
        num_samples: rows of the grid (samples from the first validation batch).
    """

    def __init__(self, num_samples: int = 4) -> None:
        super().__init__()
        self.num_samples = num_samples
        self._batch: dict[str, Tensor] | None = None
        self._outputs: dict[str, Tensor] | None = None

    def on_validation_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if batch_idx != 0 or trainer.sanity_checking or not trainer.is_global_zero or not isinstance(outputs, dict):
            return
        n = self.num_samples
        self._batch = {k: v[:n].detach().cpu() for k, v in batch.items() if isinstance(v, Tensor)}
        self._outputs = {k: v[:n].detach().cpu() for k, v in outputs.items()}

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero or self._batch is None:
            return
        palette = getattr(trainer.datamodule, "class_colors", None) or None
        context = replace(pl_module.task_context, palette=tuple(map(tuple, palette)) if palette else None)
        grid = sample_grid(self._batch, self._outputs, pl_module.tasks, context)
        self._batch = self._outputs = None
        # not trainer.log_dir: under DDP it is a broadcast, and only rank 0 gets here
        folder = Path(trainer.default_root_dir) / "samples"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(grid).save(folder / f"epoch_{trainer.current_epoch:03d}.png")
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                logger.log_image("val/samples", [grid], step=trainer.global_step,
                                 caption=[" | ".join(grid_columns(pl_module.tasks))])


__all__ = ["PredictionGrid", "RateDistortionCallback", "grid_columns", "sample_grid"]
