"""Training callbacks of the multi-task model: the Fig. 3-style sample grid.

After every validation epoch (never during the sanity check, rank 0 only) the grid shows, per
sample, the input image, the ground-truth segmentation and disparity, and the model's
reconstruction, segmentation and disparity — the columns of Fig. 3 of
``multitask-compressible-features-ci.md``. It is logged to the experiment logger when that
logger can show images (W&B) and always written as a PNG in the run folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from lightning.pytorch.loggers import WandbLogger
from matplotlib import colormaps
from PIL import Image
from torch import Tensor

COLUMNS = ("input", "gt segmentation", "gt disparity", "reconstruction", "segmentation", "disparity")


def colorize_labels(labels: np.ndarray, palette: np.ndarray, ignore_index: int = 255) -> np.ndarray:
    """``[H, W]`` class ids → ``[H, W, 3]`` uint8 colours; ignored pixels black."""
    out = np.zeros((*labels.shape, 3), dtype=np.uint8)
    valid = (labels != ignore_index) & (labels < len(palette))
    out[valid] = palette[labels[valid]]
    return out


def colorize_disparity(disparity: np.ndarray, valid: np.ndarray | None, vmax: float) -> np.ndarray:
    """``[H, W]`` disparity → ``[H, W, 3]`` uint8 with the magma colour map; invalid pixels black."""
    rgb = colormaps["magma"](np.clip(disparity / max(vmax, 1e-6), 0.0, 1.0))[..., :3]
    rgb = (rgb * 255).astype(np.uint8)
    if valid is not None:
        rgb[~valid] = 0
    return rgb


def sample_grid(
    batch: dict[str, Tensor], outputs: dict[str, Tensor], palette: np.ndarray, ignore_index: int = 255
) -> np.ndarray:
    """One row per sample, the six columns of :data:`COLUMNS`, as a uint8 RGB image."""
    def to_rgb(image: Tensor) -> np.ndarray:
        return (image.clamp(0, 1).permute(1, 2, 0).float().cpu().numpy() * 255).astype(np.uint8)

    rows = []
    for i in range(batch["image"].shape[0]):
        gt_disp = batch["disparity"][i].float().cpu().numpy()
        mask = batch["disparity_mask"][i].cpu().numpy()
        vmax = float(gt_disp[mask].max()) if mask.any() else 1.0
        cells = [
            to_rgb(batch["image"][i]),
            colorize_labels(batch["segmentation"][i].cpu().numpy(), palette, ignore_index),
            colorize_disparity(gt_disp, mask, vmax),
            to_rgb(outputs["reconstruction"][i]),
            colorize_labels(outputs["segmentation"][i].argmax(0).cpu().numpy(), palette, ignore_index),
            colorize_disparity(outputs["disparity"][i].float().cpu().numpy(), None, vmax),
        ]
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
        datamodule = trainer.datamodule
        palette = np.asarray(getattr(datamodule, "class_colors", _default_palette(pl_module.hparams.num_classes)))
        grid = sample_grid(self._batch, self._outputs, palette.astype(np.uint8), pl_module.hparams.ignore_index)
        self._batch = self._outputs = None
        # not trainer.log_dir: under DDP it is a broadcast, and only rank 0 gets here
        folder = Path(trainer.default_root_dir) / "samples"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(grid).save(folder / f"epoch_{trainer.current_epoch:03d}.png")
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                logger.log_image("val/samples", [grid], step=trainer.global_step, caption=[" | ".join(COLUMNS)])


def _default_palette(num_classes: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, size=(num_classes, 3))


__all__ = ["PredictionGrid", "colorize_disparity", "colorize_labels", "sample_grid"]
