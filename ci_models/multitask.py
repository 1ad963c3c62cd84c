"""The multi-task collaborative-intelligence model (``multitask-compressible-features-ci.md``).

::

            edge (device)                               │            cloud
    image ─► ResNet to split point(s) ─► Q-layer ───────┼──► fuse ─┬─► Model 1 ─► segmentation
                         │               (noise in      │          ├─► Model 2 ─► disparity
                         │                training)     │          └─► Model 3 ─► reconstruction
                         └─► L_r (eq 1–5) on each stream
    loss = UncertaintyWeighting(L_seg, L_disp, L_rec, L_r)   (eq 6)

Two choices go beyond the paper's text, both for reasons of correctness:

* L_r is evaluated on each stream *in the Q-layer's normalized range* ``(F − min)/(max − min)``.
  Min–max quantization makes the transmitted codes, and hence the rate, invariant to the scale
  of ``F``; on raw features L_r (and, through the ``log`` of eq 6, its weighted form) can be
  driven down just by shrinking every feature, without changing one transmitted code.
* The weights of eq 6 are updated by the same Adam optimizer as the network, every step,
  as in Kendall et al.; the paper updates them once per epoch.
"""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
import torch
from torch import Tensor, nn
from torchmetrics import MeanSquaredError
from torchmetrics.classification import MulticlassJaccardIndex
from torchmetrics.image import PeakSignalNoiseRatio

from cilight.ci_models.backbone import ResNetEncoder
from cilight.ci_models.heads import TASKS, CloudDecoder
from cilight.ci_models.losses import (
    UncertaintyWeighting,
    compressibility_loss,
    disparity_loss,
    reconstruction_loss,
    segmentation_loss,
)
from cilight.ci_models.quantization import QuantizationLayer, QuantizedStream
from cilight.errors import ConfigError


def normalized_stream(x: Tensor) -> Tensor:
    """``(F − min) / (max − min)`` per sample: the stream as the min–max quantizer sees it."""
    flat = x.flatten(1)
    lo = flat.min(dim=1).values.view(-1, 1, 1, 1)
    hi = flat.max(dim=1).values.view(-1, 1, 1, 1)
    return (x - lo) / (hi - lo).clamp_min(1e-12)


def task_metrics(num_classes: int, ignore_index: int = 255, sync: bool = True) -> nn.ModuleDict:
    """The three task metrics: mIoU (ignoring ``ignore_index``), disparity RMSE on valid pixels, PSNR.

    ``sync=False`` computes on this process's data only: under DDP, ``compute()`` otherwise
    gathers from every rank, and a metric computed on one rank alone (the rate–distortion
    callback's) would wait forever for the others.
    """
    options = {"sync_on_compute": sync}
    return nn.ModuleDict(
        {
            "segmentation_miou": MulticlassJaccardIndex(num_classes, ignore_index=ignore_index, validate_args=False,
                                                        **options),
            "disparity_rmse": MeanSquaredError(squared=False, **options),
            "reconstruction_psnr": PeakSignalNoiseRatio(data_range=1.0, reduction="elementwise_mean", dim=(1, 2, 3),
                                                        **options),
        }
    )


def update_task_metrics(metrics: nn.ModuleDict, outputs: dict[str, Tensor], batch: dict[str, Tensor]) -> None:
    """Add one batch of task outputs and targets to :func:`task_metrics`."""
    metrics["segmentation_miou"].update(outputs["segmentation"].argmax(1), batch["segmentation"])
    mask = batch["disparity_mask"]
    if mask.any():
        metrics["disparity_rmse"].update(outputs["disparity"][mask], batch["disparity"][mask])
    metrics["reconstruction_psnr"].update(outputs["reconstruction"].clamp(0, 1), batch["image"])


class MultiTaskCI(pl.LightningModule):
    """Split multi-task model with compressible features.

    Args:
        backbone: ``"resnet18"`` or ``"resnet34"`` (the paper's encoder).
        split_points: transmitted stage outputs, e.g. ``[layer4]`` (Encoder1), ``[layer3]``
            (Encoder2) or ``[layer2, layer3]`` (two streams).
        backbone_weights: ``None`` (random init), a local state-dict path, or a torchvision
            weight name such as ``IMAGENET1K_V1`` (downloads; needs internet).
        num_classes: segmentation classes (linked from the datamodule by ``train.py``).
        quantization_bits: bits per element of the Q-layer.
        compressibility_weight: multiplier of L_r; ``0`` drops L_r and its weight from eq 6,
            which trains the paper's benchmark model. With learned weights, any value > 0 only
            changes the start of training, since ``w_r`` adapts to the scale of L_r.
        decoder_width: channels of the first layer of each cloud branch.
        lr: initial Adam learning rate (polynomial decay to 0 over training, power 0.9).
        weight_decay: Adam weight decay.
        ignore_index: segmentation label to ignore.
    """

    def __init__(
        self,
        backbone: str = "resnet18",
        split_points: list[str] = ["layer3"],  # noqa: B006 (LightningCLI needs a literal default)
        backbone_weights: str | None = None,
        num_classes: int = 19,
        quantization_bits: int = 8,
        compressibility_weight: float = 1.0,
        decoder_width: int = 64,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        ignore_index: int = 255,
    ) -> None:
        super().__init__()
        if compressibility_weight < 0:
            raise ConfigError(f"compressibility_weight must be ≥ 0, got {compressibility_weight}")
        if lr <= 0:
            raise ConfigError(f"lr must be positive, got {lr}")
        self.save_hyperparameters()
        self.encoder = ResNetEncoder(backbone, split_points, backbone_weights)
        self.layouts = self.encoder.layouts
        self.quantizers = nn.ModuleList(QuantizationLayer(quantization_bits) for _ in self.layouts)
        self.decoder = CloudDecoder(self.layouts, num_classes, decoder_width)
        task_types = {"segmentation": "classification", "disparity": "regression", "reconstruction": "regression"}
        if compressibility_weight > 0:
            task_types["compressibility"] = "regression"
        self.loss_weighting = UncertaintyWeighting(task_types)
        self.val_metrics = task_metrics(num_classes, ignore_index)
        self.test_metrics = task_metrics(num_classes, ignore_index)

    @property
    def split_points(self) -> tuple[str, ...]:
        return self.encoder.split_points

    # ----------------------------------------------------------------- the two halves
    def edge(self, images: Tensor) -> list[QuantizedStream]:
        """Edge half: images in [0, 1] → quantized codes and range of every stream."""
        return [q.encode(f) for q, f in zip(self.quantizers, self.encoder(images))]

    def cloud(self, streams: list[QuantizedStream]) -> dict[str, Tensor]:
        """Cloud half: quantized streams → task outputs."""
        return self.decoder([q.decode(s) for q, s in zip(self.quantizers, streams)])

    def features(self, images: Tensor) -> list[Tensor]:
        """Unquantized stream tensors at the split points."""
        return self.encoder(images)

    def forward(self, images: Tensor) -> dict[str, Tensor]:
        """Task outputs for ``images`` ``[B, 3, H, W]`` in [0, 1]: keys ``segmentation``
        (logits ``[B, K, H, W]``), ``disparity`` (``[B, H, W]``), ``reconstruction``
        (``[B, 3, H, W]``). The Q-layer adds noise in training and rounds in evaluation."""
        return self._run(images)[0]

    def _run(self, images: Tensor) -> tuple[dict[str, Tensor], list[Tensor]]:
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"images must have shape [B, 3, H, W], got {tuple(images.shape)}")
        stride = self.layouts[-1].stride
        if images.shape[-2] % stride or images.shape[-1] % stride:
            raise ValueError(
                f"image height and width must be multiples of {stride} for split point "
                f"{self.split_points[-1]!r}, got {tuple(images.shape[-2:])}"
            )
        feats = self.encoder(images)
        outputs = self.decoder([q(f) for q, f in zip(self.quantizers, feats)])
        return outputs, feats

    # ----------------------------------------------------------------- losses
    def _losses(self, batch: dict[str, Tensor]) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        outputs, feats = self._run(batch["image"])
        losses = {
            "segmentation": segmentation_loss(outputs["segmentation"], batch["segmentation"], self.hparams.ignore_index),
            "disparity": disparity_loss(outputs["disparity"], batch["disparity"], batch["disparity_mask"]),
            "reconstruction": reconstruction_loss(outputs["reconstruction"], batch["image"]),
        }
        if self.hparams.compressibility_weight > 0:
            rate = sum(compressibility_loss(normalized_stream(f)) for f in feats)
            losses["compressibility"] = self.hparams.compressibility_weight * rate
        return losses, outputs

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        losses, _ = self._losses(batch)
        total = self.loss_weighting(losses)
        bs = batch["image"].shape[0]
        self.log("train/loss", total, prog_bar=True, batch_size=bs)
        self.log_dict({f"train/loss_{k}": v.detach() for k, v in losses.items()}, batch_size=bs)
        self.log_dict({f"weights/{k}": w.detach() for k, w in self.loss_weighting.weights().items()}, batch_size=bs)
        return total

    def _eval_step(self, batch: dict[str, Tensor], stage: str) -> dict[str, Tensor]:
        losses, outputs = self._losses(batch)
        bs = batch["image"].shape[0]
        self.log(f"{stage}/loss", self.loss_weighting(losses), prog_bar=stage == "val", batch_size=bs, sync_dist=True)
        if "compressibility" in losses:
            self.log(f"{stage}/compressibility", losses["compressibility"], batch_size=bs, sync_dist=True)
        update_task_metrics(self.val_metrics if stage == "val" else self.test_metrics, outputs, batch)
        return {k: v.detach() for k, v in outputs.items()}

    def _log_epoch_metrics(self, stage: str) -> None:
        metrics = self.val_metrics if stage == "val" else self.test_metrics
        values = {name: m.compute() for name, m in metrics.items()}
        # IRMSE: the paper's "inverse RMSE" (higher is better, like mIoU and PSNR)
        values["disparity_irmse"] = 1.0 / values["disparity_rmse"].clamp_min(1e-12)
        self.log_dict({f"{stage}/{k}": v for k, v in values.items()}, prog_bar=stage == "val")
        for m in metrics.values():
            m.reset()

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> dict[str, Tensor]:
        return self._eval_step(batch, "val")

    def on_validation_epoch_end(self) -> None:
        self._log_epoch_metrics("val")

    def test_step(self, batch: dict[str, Tensor], batch_idx: int) -> dict[str, Tensor]:
        return self._eval_step(batch, "test")

    def on_test_epoch_end(self) -> None:
        self._log_epoch_metrics("test")

    # ----------------------------------------------------------------- optimization
    def configure_optimizers(self) -> Any:
        optimizer = torch.optim.Adam(self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)
        total = max(int(self.trainer.estimated_stepping_batches), 1)
        scheduler = torch.optim.lr_scheduler.PolynomialLR(optimizer, total_iters=total, power=0.9)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


__all__ = ["MultiTaskCI", "TASKS", "normalized_stream", "task_metrics", "update_task_metrics"]
