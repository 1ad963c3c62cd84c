"""Training callbacks of the multi-task model: the Fig. 3-style sample grid.

After every validation epoch (never during the sanity check, rank 0 only) the grid shows, per
sample, the input image, the ground truth of every task that has one, and every task's
prediction — the columns of Fig. 3 of Alvar & Bajić, ICIP 2019 (input, ground-truth
segmentation and disparity, reconstruction, predicted segmentation and disparity). Each task
colours its own columns (:attr:`~cilight.ci_models.tasks.Task.render`). The grid is logged to
the experiment logger when that logger can show images (W&B) and always written as a PNG in
the run folder.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
from lightning.pytorch.loggers import WandbLogger
from PIL import Image
from torch import Tensor

from cilight.ci_models.tasks import Task, TaskContext, image_to_rgb


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


__all__ = ["PredictionGrid", "grid_columns", "sample_grid"]
