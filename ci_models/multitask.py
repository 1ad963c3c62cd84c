"""The multi-task collaborative-intelligence model (Alvar & Bajić, "Multi-task learning with
compressible features for collaborative intelligence", IEEE ICIP 2019).

::

            edge (device)                                   │            cloud
    image ─► ResNet to split point(s) ─► transmission ──────┼──► fuse ─┬─► Model 1 ─► segmentation
                                          (one per stream:  │          ├─► Model 2 ─► disparity
                                           Q-layer + rate   │          └─► Model 3 ─► reconstruction
                                           term, learned    │             (one branch per task)
                                           bottleneck, …)
    loss = UncertaintyWeighting(L_task for every task [, the rate term])  (eq 6)  [+ a rate term beside it]

The tasks are data (:mod:`cilight.ci_models.tasks`): ``tasks=[segmentation, disparity]`` trains
the 2-task systems of the Pareto paper's §VI-C, and every loss, metric and output follows the
list. What happens to each stream between the split point and the cloud half is a
:class:`~cilight.ci_models.transmission.Transmission` chosen by class path in the config
(``transmission``): the paper's Q-layer with a rate term by name (``QLayerTransmission``,
the default), a learned bottleneck (``BottleneckTransmission``), or one of your own. The model asks
each transmission for the stream the cloud sees, its rate term, its wire tensors and its
parameter groups, and never which kind it is.

The weights of eq 6 are updated by the same Adam optimizer as the network, every step, as in
Kendall et al.; the paper updates them once per epoch. A transmission's own parameter groups
(a learned bottleneck's densities and quantiles) are further groups of that one optimizer, and
its auxiliary loss joins the one backward.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from torch import Tensor

from cilight.ci_models.backbone import ResNetEncoder, StreamLayout
from cilight.ci_models.heads import CloudDecoder
from cilight.ci_models.losses import UncertaintyWeighting
from cilight.ci_models.precision import at_least_float32, float32_region
from cilight.ci_models.tasks import TaskContext, TaskMetrics, resolve_tasks
from cilight.ci_models.transmission import Transmission, Transmitted, build_transmission
from cilight.deploy.wire import StreamWire
from cilight.errors import ConfigError

RATE_TERM = "rate"  # the name of the rate term among the losses of eq 6
TRANSMISSIONS_KEY = "transmissions"  # where a checkpoint keeps each transmission's state beside the weights
# the options of the Q-layer and the learned bottleneck before they became transmissions (checkpoints of
# cilight ≤ 0.1.0 written before the transmission interface): MultiTaskCI.upgrade_checkpoint maps them
LEGACY_QLAYER = {"quantization_bits": "bits", "rate_loss": "rate_loss", "compressibility_weight": "compressibility_weight",
                 "rate_weighting": "rate_weighting", "rate_features": "rate_features", "rate_bpe_range": "rate_bpe_range",
                 "rate_step": "rate_step", "codec_noise": "codec_noise",
                 "codec_noise_probability": "codec_noise_probability"}
LEGACY_BOTTLENECK = {"bottleneck": "prior", "bottleneck_channels": "channels", "rate_lambda": "rate_lambda",
                     "entropy_lr": "entropy_lr"}


class MultiTaskCI(pl.LightningModule):
    """Split multi-task model with compressible features.

    Args:
        backbone: ``"resnet18"`` or ``"resnet34"`` (the paper's encoder).
        split_points: transmitted stage outputs, e.g. ``[layer4]`` (Encoder1), ``[layer3]``
            (Encoder2) or ``[layer2, layer3]`` (two streams).
        tasks: task names (:data:`~cilight.ci_models.tasks.TASKS`) or import paths of
            :class:`~cilight.ci_models.tasks.Task` objects; default all three of the paper.
        backbone_weights: ``None`` (random init), a local state-dict path, or a torchvision
            weight name such as ``IMAGENET1K_V1`` (downloads; needs internet).
        num_classes: segmentation classes (linked from the datamodule by ``train.py``).
        transmission: what each stream goes through (one instance per stream, built with its
            layout): ``None`` (the Q-layer at 8 bits with L_r), a class name, ``{class_path,
            init_args}``, or what LightningCLI builds from ``--model.transmission``
            (:mod:`cilight.ci_models.transmission`).
        decoder_width: channels of the first layer of each cloud branch.
        lr: initial Adam learning rate (polynomial decay to 0 over training, power 0.9).
        weight_decay: Adam weight decay.
        ignore_index: segmentation label to ignore.
        init_from: a checkpoint of the same architecture whose weights training starts from, with a fresh
            optimizer, schedule, epoch and step (a fine-tune from a shared base: both arms of a comparison
            start from the same weights). Read when fitting starts (:meth:`setup`), so a model loaded
            from its own checkpoint never needs the base file again.
    """

    def __init__(
        self,
        backbone: str = "resnet18",
        split_points: list[str] = ["layer3"],  # noqa: B006 (LightningCLI needs a literal default)
        tasks: list[str] = ["segmentation", "disparity", "reconstruction"],  # noqa: B006 (DEFAULT_TASKS)
        backbone_weights: str | None = None,
        num_classes: int = 19,
        transmission: Callable[[StreamLayout], Transmission] | None = None,  # also {class_path, init_args} or a name
        decoder_width: int = 64,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        ignore_index: int = 255,
        init_from: str | None = None,
    ) -> None:
        super().__init__()
        if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not lr > 0:
            raise ConfigError(f"lr={lr!r}: expected a positive learning rate")
        self.save_hyperparameters()
        self.tasks = resolve_tasks(tasks)
        self.task_context = TaskContext(num_classes, ignore_index)
        self.encoder = ResNetEncoder(backbone, split_points, backbone_weights)
        self.layouts = self.encoder.layouts
        self.transmissions = torch.nn.ModuleList(build_transmission(transmission, layout) for layout in self.layouts)
        # a checkpoint rebuilds the transmission from plain values, whatever form it was given in
        self.hparams["transmission"] = self.transmissions[0].config()
        self.decoder = CloudDecoder(self.layouts, self.tasks, self.task_context, decoder_width)
        loss_types = {task.name: task.kind for task in self.tasks}
        if self.transmissions[0].rate_in_eq6:
            loss_types[RATE_TERM] = "regression"
        self.loss_weighting = UncertaintyWeighting(loss_types)
        self.val_metrics = self.task_metrics()
        self.test_metrics = self.task_metrics()

    def setup(self, stage: str) -> None:
        # before Lightning restores a --ckpt_path, which thus wins over the base when a fine-tune is resumed
        if stage == "fit" and self.hparams.get("init_from"):
            # imported here: cilight.ci_models.checkpoints imports this module
            from cilight.ci_models.checkpoints import initialise_from

            initialise_from(self, self.hparams.init_from, "--model.init_from")

    def adapt_base_state(self, state: dict) -> dict:
        """A base checkpoint (``init_from``) as this model's starting point: a fine-tune that adds eq 6's rate
        term (a benchmark base, an arm with ``rate_loss dpcm_dct`` or ``proxy_bits``) starts that term's
        log-variance at 0, as a model trained from scratch does, and one that drops it leaves the base's
        out; every other weight must fit as it is (:func:`~cilight.ci_models.checkpoints.initialise_from`)."""
        key = "loss_weighting.log_variances"
        saved = state["state_dict"].get(key)
        names, tasks = self.loss_weighting.names, [t.name for t in self.tasks]
        if saved is None or saved.shape[0] == len(names) or saved.shape[0] not in (len(tasks), len(tasks) + 1):
            return state
        saved_names = tasks + [RATE_TERM] * (saved.shape[0] - len(tasks))
        values = torch.zeros(len(names), dtype=saved.dtype)
        for i, name in enumerate(names):
            if name in saved_names:
                values[i] = saved[saved_names.index(name)]
        return {**state, "state_dict": {**state["state_dict"], key: values}}

    @property
    def split_points(self) -> tuple[str, ...]:
        return self.encoder.split_points

    @property
    def backbone(self) -> str:
        return self.hparams.backbone

    @property
    def stride(self) -> int:
        """Input sizes must be multiples of this (the deepest split point's stride)."""
        return self.layouts[-1].stride

    def stream_shapes(self, height: int, width: int) -> dict[str, tuple[int, int, int]]:
        """``{split point: (C, h, w)}`` of the tensor at every split point for an input of ``height × width``."""
        return {layout.split_point: layout.shape(height, width) for layout in self.layouts}

    def wires(self, height: int, width: int) -> dict[str, StreamWire]:
        """``{split point: how that stream crosses the network}`` for an input of ``height × width``."""
        return {layout.split_point: t.wire(*layout.shape(height, width)[1:])
                for layout, t in zip(self.layouts, self.transmissions)}

    def wire_extra(self) -> dict:
        """Model-specific entries of the halves' metadata (none for this model)."""
        return {}

    def task_metrics(self, sync: bool = True) -> TaskMetrics:
        """Fresh metrics of this model's tasks (``sync=False``: this process's data only), on the model's
        device: a metric's state is updated in place by the outputs, which live there."""
        return TaskMetrics(self.tasks, self.task_context, sync=sync).to(self.device)

    # ----------------------------------------------------------------- the two halves
    def edge(self, images: Tensor) -> list[tuple[Tensor, ...]]:
        """Edge half: images in [0, 1] → the wire tensors of every stream (``Transmission.edge``)."""
        return [t.edge(f) for t, f in zip(self.transmissions, self.encoder(images))]

    def cloud(self, streams: list[tuple[Tensor, ...]]) -> dict[str, Tensor]:
        """Cloud half: every stream's received wire tensors (``Transmission.cloud_fields``) → task outputs."""
        return self.decoder([t.cloud(*s) for t, s in zip(self.transmissions, streams)])

    def features(self, images: Tensor) -> list[Tensor]:
        """The float tensor an image codec codes for each stream (``Transmission.transmitted``; the
        tensor at the split point for the Q-layer)."""
        return [t.transmitted(f) for t, f in zip(self.transmissions, self.encoder(images))]

    def receive(self, decoded: list[Tensor]) -> dict[str, Tensor]:
        """Task outputs from every stream's decoded :meth:`features` (``Transmission.received``)."""
        return self.decoder([t.received(d) for t, d in zip(self.transmissions, decoded)])

    def forward(self, images: Tensor) -> dict[str, Tensor]:
        """Task outputs for ``images`` ``[B, 3, H, W]`` in [0, 1], keyed by task name
        (``segmentation`` logits ``[B, K, H, W]``, ``disparity`` ``[B, H, W]``,
        ``reconstruction`` ``[B, 3, H, W]``). The transmissions emulate the channel in training
        (the Q-layer's noise) and quantize for real in evaluation."""
        return self.run(images, rate=False)[0]

    def run(self, images: Tensor, rate: bool = True) -> tuple[dict[str, Tensor], list[Transmitted]]:
        """``(task outputs, every stream's Transmitted)`` of one forward pass; ``rate`` asks the
        transmissions for their rate terms."""
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"images must have shape [B, 3, H, W], got {tuple(images.shape)}")
        if images.shape[-2] % self.stride or images.shape[-1] % self.stride:
            raise ValueError(
                f"image height and width must be multiples of {self.stride} for split point "
                f"{self.split_points[-1]!r}, got {tuple(images.shape[-2:])}"
            )
        sent = [self._transmit(t, f, rate) for t, f in zip(self.transmissions, self.encoder(images))]
        return self.decoder([s.features for s in sent]), sent

    @staticmethod
    def _transmit(transmission: Transmission, features: Tensor, rate: bool) -> Transmitted:
        """One stream's transmission in float32, with autocast off, whatever the trainer's precision: the
        Q-layer's noise of one step and the rate terms need it (:mod:`cilight.ci_models.precision`)."""
        with float32_region(features):
            return transmission(at_least_float32(features), rate=rate)

    # ----------------------------------------------------------------- losses
    def losses(self, batch: dict[str, Tensor]) -> tuple[dict[str, Tensor], dict[str, Tensor], list[Transmitted]]:
        """``(losses by name — every task's and the rate term's —, task outputs, every stream's Transmitted)``."""
        outputs, sent = self.run(batch["image"], rate=True)
        losses = {task.name: task.loss(outputs[task.name], batch, self.task_context) for task in self.tasks}
        rates = [s.rate for s in sent if s.rate is not None]
        if rates:
            losses[RATE_TERM] = sum(rates)
        return losses, outputs, sent

    def total_loss(self, losses: dict[str, Tensor]) -> Tensor:
        """Eq 6 over the losses; a rate term without its own eq 6 weight is added beside it."""
        if RATE_TERM in losses and RATE_TERM not in self.loss_weighting.names:
            return self.loss_weighting({k: v for k, v in losses.items() if k != RATE_TERM}) + losses[RATE_TERM]
        return self.loss_weighting(losses)

    def _log_rates(self, stage: str, losses: dict[str, Tensor], sent: list[Transmitted], bs: int) -> None:
        sync = stage != "train"
        if RATE_TERM in losses:
            self.log(f"{stage}/{RATE_TERM}", losses[RATE_TERM].detach(), batch_size=bs, sync_dist=sync)
        bits = [s.bits for s in sent if s.bits is not None]
        if bits:
            self.log(f"{stage}/bits_per_image", sum(b.detach().mean() for b in bits), batch_size=bs, sync_dist=sync)

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        losses, _, sent = self.losses(batch)
        total = self.total_loss(losses)
        bs = batch["image"].shape[0]
        self.log("train/loss", total, prog_bar=True, batch_size=bs)
        self.log_dict({f"train/loss_{k}": v.detach() for k, v in losses.items()}, batch_size=bs)
        self.log_dict({f"weights/{k}": w.detach() for k, w in self.loss_weighting.weights().items()}, batch_size=bs)
        aux = [a for a in (t.aux_loss() for t in self.transmissions) if a is not None]
        if aux:
            aux_total = sum(aux)
            self.log("train/aux_loss", aux_total.detach(), batch_size=bs)
            total = total + aux_total  # its parameters are trained by nothing else: one backward serves both
        return total

    def _eval_step(self, batch: dict[str, Tensor], stage: str) -> dict[str, Tensor]:
        losses, outputs, sent = self.losses(batch)
        bs = batch["image"].shape[0]
        self.log(f"{stage}/loss", self.total_loss(losses), prog_bar=stage == "val", batch_size=bs, sync_dist=True)
        self._log_rates(stage, losses, sent, bs)
        (self.val_metrics if stage == "val" else self.test_metrics).update(outputs, batch)
        return {k: v.detach() for k, v in outputs.items()}

    def _log_epoch_metrics(self, stage: str) -> None:
        values = (self.val_metrics if stage == "val" else self.test_metrics).compute()
        self.log_dict({f"{stage}/{k}": v for k, v in values.items()}, prog_bar=stage == "val")

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
        groups = [g for t in self.transmissions for g in t.parameter_groups() if g["params"]]
        own = {id(p) for g in groups for p in g["params"]}
        main = [p for p in self.parameters() if id(p) not in own]
        optimizer = torch.optim.Adam([{"params": main}, *groups], lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)
        total = max(int(self.trainer.estimated_stepping_batches), 1)
        scheduler = torch.optim.lr_scheduler.PolynomialLR(optimizer, total_iters=total, power=0.9)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    # ----------------------------------------------------------------- checkpoints
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        states = [t.checkpoint_state() for t in self.transmissions]
        if any(states):
            checkpoint[TRANSMISSIONS_KEY] = states

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        _upgrade_state(checkpoint)  # resuming (--ckpt_path) a checkpoint of the legacy layout
        states = checkpoint.get(TRANSMISSIONS_KEY) or [{} for _ in self.transmissions]
        if len(states) != len(self.transmissions):
            raise ConfigError(f"the checkpoint holds the state of {len(states)} transmitted streams, the model has "
                              f"{len(self.transmissions)}")
        for t, state in zip(self.transmissions, states):
            # on the CPU whatever map_location chose: the tables are read with numpy
            t.load_checkpoint_state({k: v.cpu() if isinstance(v, Tensor) else v for k, v in state.items()})

    @classmethod
    def load_from_checkpoint(cls, checkpoint_path, *args, **kwargs) -> MultiTaskCI:
        """Lightning's ``load_from_checkpoint``, for checkpoints of the legacy layout too (upgraded first)."""
        if isinstance(checkpoint_path, (str, Path)):
            state = torch.load(checkpoint_path, map_location="cpu", weights_only=True)
            upgraded = cls.upgrade_checkpoint(state)
            if upgraded is not state:
                checkpoint_path = io.BytesIO()
                torch.save(upgraded, checkpoint_path)
                checkpoint_path.seek(0)
        return super().load_from_checkpoint(checkpoint_path, *args, **kwargs)

    @staticmethod
    def upgrade_checkpoint(state: dict) -> dict:
        """A checkpoint written before the transmission interface, in today's layout: the Q-layer and
        learned-bottleneck options become ``transmission``, ``bottlenecks.i.*`` weights
        ``transmissions.i.bottleneck.*``, ``entropy_tables`` each transmission's state. Today's
        checkpoints pass unchanged."""
        hparams = state.get("hyper_parameters") or {}
        legacy = {k: hparams[k] for k in (*LEGACY_QLAYER, *LEGACY_BOTTLENECK) if k in hparams}
        if not legacy:
            return state
        if "transmission" in hparams:
            raise ConfigError(f"checkpoint hyperparameters mix transmission={hparams['transmission']!r} with the legacy "
                              f"options {sorted(legacy)}; expected one or the other")
        hparams = {k: v for k, v in hparams.items() if k not in legacy}
        if legacy.get("bottleneck"):
            args = {new: legacy[old] for old, new in LEGACY_BOTTLENECK.items() if old in legacy}
            hparams["transmission"] = {"class_path": "cilight.ci_models.transmission.BottleneckTransmission",
                                       "init_args": args}
        else:
            args = {new: legacy[old] for old, new in LEGACY_QLAYER.items() if old in legacy}
            hparams["transmission"] = {"class_path": "cilight.ci_models.transmission.QLayerTransmission",
                                       "init_args": args}
        state = {**state, "hyper_parameters": hparams}
        _upgrade_state(state)
        return state


def _upgrade_state(state: dict) -> None:
    """Rename a legacy checkpoint's learned-bottleneck weights and tables in place (idempotent)."""
    weights = state.get("state_dict")
    if isinstance(weights, dict) and any(k.startswith(("bottlenecks.", "task_model.bottlenecks.")) for k in weights):
        state["state_dict"] = {_renamed(k): v for k, v in weights.items()}
    if "entropy_tables" in state and TRANSMISSIONS_KEY not in state:
        state[TRANSMISSIONS_KEY] = state.pop("entropy_tables")


def _renamed(key: str) -> str:
    """``bottlenecks.i.*`` → ``transmissions.i.bottleneck.*``, also inside a BaF model's ``task_model.``."""
    owner, found, inner = key.rpartition("bottlenecks.")
    if not found or owner not in ("", "task_model."):
        return key
    index, _, rest = inner.partition(".")
    return f"{owner}transmissions.{index}.bottleneck.{rest}"


__all__ = ["RATE_TERM", "TRANSMISSIONS_KEY", "MultiTaskCI"]
