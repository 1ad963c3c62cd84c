"""The multi-task collaborative-intelligence model (Alvar & Bajić, "Multi-task learning with
compressible features for collaborative intelligence", IEEE ICIP 2019).

::

            edge (device)                               │            cloud
    image ─► ResNet to split point(s) ─► Q-layer ───────┼──► fuse ─┬─► Model 1 ─► segmentation
                         │               (noise in      │          ├─► Model 2 ─► disparity
                         │                training)     │          └─► Model 3 ─► reconstruction
                         └─► rate term on each stream               (one branch per task)
                             (L_r of eq 1–5, or the JPEG2000 proxy's bits)
    loss = UncertaintyWeighting(L_task for every task, rate term)   (eq 6)

    with a learned bottleneck (--model.bottleneck factorized|hyperprior) in place of the Q-layer:
    image ─► ResNet ─► g_a ─► ŷ (+ ẑ) ─► range coder │ ─► g_s ─► fuse ─► task branches
    loss = UncertaintyWeighting(L_task for every task) + λ · Σ_streams −log₂ p(ŷ)  (bits per image)

The tasks are data (:mod:`cilight.ci_models.tasks`): ``tasks=[segmentation, disparity]`` trains
the 2-task systems of the Pareto paper's §VI-C, and every loss, metric and output follows the
list. The rate term is chosen by name (:mod:`cilight.ci_models.rate`): the paper's L_r
(``dpcm_dct``), the differentiable JPEG2000 proxy's predicted bits (``proxy_bits``) or none; the
proxy can also replace the Q-layer's noise by the codec's own distortion (``codec_noise``).

Two choices go beyond the paper's text, both for reasons of correctness:

* L_r is evaluated on each stream *in the Q-layer's normalized range* ``(F − min)/(max − min)``.
  Min–max quantization makes the transmitted codes, and hence the rate, invariant to the scale
  of ``F``; on raw features L_r (and, through the ``log`` of eq 6, its weighted form) can be
  driven down just by shrinking every feature, without changing one transmitted code.
* The weights of eq 6 are updated by the same Adam optimizer as the network, every step,
  as in Kendall et al.; the paper updates them once per epoch.

A learned bottleneck (:mod:`cilight.ci_models.bottleneck`; Ballé et al., ICLR 2018) replaces the
Q-layer and the rate term by an entropy model trained with the task: the trade-off is a fixed
``rate_lambda`` on the rate in bits per image (the mean over the batch, so it does not depend on
the batch size or the number of DDP processes), and the entropy bottlenecks' auxiliary loss
trains their quantiles with its own Adam optimizer (manual optimization: one backward of both
losses, whose parameters are disjoint, then both steps). Every checkpoint stores the integer CDF
tables of its weights (``entropy_tables``), which the codec, the export and the runtimes read.

The factorized priors' densities learn at ``entropy_lr`` (default 10× the network's ``lr``).
CompressAI initialises them for latents of scale ~10 (``init_scale``); here ``g_a``'s latents
start near 0.3, so the initial density is far too wide and the rate is set by how fast the
density sharpens, not by λ: at the network's learning rate, 2-epoch runs of the default model
coded 9.73, 9.66, 9.63 and 9.60 kbit per image for λ = 1e-5, 1e-4, 1e-3 and 1e-2 (a rate term of
93 against task terms near 1 did not move the bits); with the densities at 10× the same runs
coded 3.40, 1.33, 0.74 and 0.70 kbit per image (the last two at the floor of the container).
"""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
import torch
from torch import Tensor

from cilight.ci_models.backbone import ResNetEncoder
from cilight.ci_models.bottleneck import BottleneckOutput, make_bottleneck
from cilight.ci_models.heads import CloudDecoder
from cilight.ci_models.losses import UncertaintyWeighting
from cilight.ci_models.quantization import QuantizationLayer, QuantizedStream
from cilight.ci_models.rate import (
    PROXY_RATE_LOSSES,
    RATE_TERMS,
    ProxyCoding,
    ProxyOperatingRange,
    StreamProxy,
    check_rate_options,
)
from cilight.ci_models.tasks import TaskContext, TaskMetrics, resolve_tasks
from cilight.codecs import EntropyTables, LearnedCodec
from cilight.errors import ConfigError

RATE_TERM = "rate"  # the name of the rate term (L_r or the proxy's bits) among the losses of eq 6
RATE_WEIGHTINGS = ("learned", "fixed")  # the rate term with its own eq 6 weight, or λ · rate term beside eq 6
RATE_LAMBDA = 1e-4  # default trade-off of a learned bottleneck, per bit per image
AUX_LR = 1e-3  # the entropy bottlenecks' quantiles (CompressAI's examples use the same)
ENTROPY_LR = 1e-2  # the factorized priors' densities: see MultiTaskCI's docstring
TABLES_KEY = "entropy_tables"  # where a checkpoint keeps a learned bottleneck's tables


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
        quantization_bits: bits per element of the Q-layer.
        rate_loss: the rate term: ``dpcm_dct`` (L_r, eq 1–5; default), ``proxy_bits`` (the
            JPEG2000 proxy's predicted bits per element) or ``none`` (the benchmark model).
        rate_weighting: ``learned`` (default): the rate term is one more regression-type term of
            eq 6 with its own learned weight; ``fixed``: eq 6 over the tasks plus
            ``compressibility_weight · rate term`` (a fixed λ).
        rate_features: ``normalized`` (default): L_r on ``(F − min)/(max − min)``, see above;
            ``raw``: on ``F`` itself, eq 5 as printed (``dpcm_dct`` only).
        compressibility_weight: multiplier of the rate term; ``0`` drops it and its weight from
            eq 6 (as ``rate_loss="none"``), which trains the paper's benchmark model. With learned
            weights, any value > 0 only changes the start of training, since ``w_r`` adapts.
        rate_bpe_range: ``[low, high]`` bits per element the proxy's step is drawn from, per batch
            (log-uniform; evaluation uses the geometric middle).
        rate_step: a fixed dead-zone step for the proxy instead (``None``: draw from the range).
        codec_noise: ``none`` (default) or ``proxy``: in training, replace each sample's stream
            after the Q-layer, with probability ``codec_noise_probability``, by the proxy's
            reconstruction at the batch's step.
        codec_noise_probability: that probability, in (0, 1].
        bottleneck: ``None`` (default: the Q-layer and ``rate_loss``) or a learned bottleneck per
            stream, ``factorized`` or ``hyperprior``; its rate term replaces ``rate_loss``, whose
            proxy options (``proxy_bits``, ``codec_noise``) it refuses.
        bottleneck_channels: latent channels of each stream's bottleneck (``g_a`` reduces to them).
        rate_lambda: λ of a learned bottleneck: the loss adds ``λ ·`` bits per image (all streams).
        entropy_lr: learning rate of the factorized priors' densities (Adam, the same decay as
            ``lr``); the quantiles of CompressAI's auxiliary loss have their own optimizer.
        decoder_width: channels of the first layer of each cloud branch.
        lr: initial Adam learning rate (polynomial decay to 0 over training, power 0.9).
        weight_decay: Adam weight decay.
        ignore_index: segmentation label to ignore.
    """

    def __init__(
        self,
        backbone: str = "resnet18",
        split_points: list[str] = ["layer3"],  # noqa: B006 (LightningCLI needs a literal default)
        tasks: list[str] = ["segmentation", "disparity", "reconstruction"],  # noqa: B006 (DEFAULT_TASKS)
        backbone_weights: str | None = None,
        num_classes: int = 19,
        quantization_bits: int = 8,
        compressibility_weight: float = 1.0,
        rate_weighting: str = "learned",
        rate_features: str = "normalized",
        rate_loss: str = "dpcm_dct",
        rate_bpe_range: list[float] = [0.1, 2.0],  # noqa: B006 (LightningCLI needs a literal default)
        rate_step: float | None = None,
        codec_noise: str = "none",
        codec_noise_probability: float = 0.5,
        bottleneck: str | None = None,
        bottleneck_channels: int = 64,
        rate_lambda: float = RATE_LAMBDA,
        entropy_lr: float = ENTROPY_LR,
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
        if rate_weighting not in RATE_WEIGHTINGS:
            raise ConfigError(f"rate_weighting={rate_weighting!r}: expected one of {', '.join(RATE_WEIGHTINGS)}")
        check_rate_options(rate_loss, rate_features, codec_noise, codec_noise_probability)
        check_bottleneck_options(bottleneck, rate_lambda, rate_loss, codec_noise, entropy_lr)
        operating = ProxyOperatingRange(rate_bpe_range, rate_step)
        self.save_hyperparameters()
        self.tasks = resolve_tasks(tasks)
        self.task_context = TaskContext(num_classes, ignore_index)
        self.encoder = ResNetEncoder(backbone, split_points, backbone_weights)
        self.layouts = self.encoder.layouts
        self.quantizers = torch.nn.ModuleList(QuantizationLayer(quantization_bits) for _ in self.layouts)
        self.bottlenecks = None if bottleneck is None else torch.nn.ModuleList(
            make_bottleneck(bottleneck, layout.channels, bottleneck_channels) for layout in self.layouts)
        self.entropy_tables: list[dict[str, EntropyTables]] | None = None
        self.automatic_optimization = bottleneck is None
        self.decoder = CloudDecoder(self.layouts, self.tasks, self.task_context, decoder_width)
        self.rate_term = RATE_TERMS.get(rate_loss) if compressibility_weight > 0 and bottleneck is None else None
        needs_proxy = codec_noise == "proxy" or (self.rate_term is not None and rate_loss in PROXY_RATE_LOSSES)
        self.stream_proxy = StreamProxy(operating) if needs_proxy else None
        loss_types = {task.name: task.kind for task in self.tasks}
        if self.rate_term is not None and rate_weighting == "learned" and bottleneck is None:
            loss_types[RATE_TERM] = "regression"
        self.loss_weighting = UncertaintyWeighting(loss_types)
        self.val_metrics = self.task_metrics()
        self.test_metrics = self.task_metrics()

    @property
    def split_points(self) -> tuple[str, ...]:
        return self.encoder.split_points

    # what the wire format and the exporter read from any cilight model
    @property
    def quantizer(self) -> str:
        """``minmax`` (the Q-layer), or ``none`` for a learned bottleneck (it quantizes its latents)."""
        return "minmax" if self.bottlenecks is None else "none"

    @property
    def backbone(self) -> str:
        return self.hparams.backbone

    def wire_extra(self) -> dict:
        """Model-specific entries of the halves' metadata (none for this model)."""
        return {}

    @property
    def bits(self) -> int:
        """Bits per element of the Q-layer (0 with a learned bottleneck)."""
        return self.hparams.quantization_bits if self.bottlenecks is None else 0

    def latent_shapes(self, height: int, width: int) -> dict[str, dict[str, tuple[int, int, int]]]:
        """``{split point: {latent: (N, h, w)}}`` of a learned bottleneck, in coding order (else ``{}``)."""
        if self.bottlenecks is None:
            return {}
        return {layout.split_point: b.latent_shapes(*layout.shape(height, width)[1:])
                for layout, b in zip(self.layouts, self.bottlenecks)}

    @property
    def stride(self) -> int:
        """Input sizes must be multiples of this (the deepest split point's stride)."""
        return self.layouts[-1].stride

    def stream_shapes(self, height: int, width: int) -> dict[str, tuple[int, int, int]]:
        """``{split point: (C, h, w)}`` of every transmitted stream for an input of ``height × width``."""
        return {layout.split_point: layout.shape(height, width) for layout in self.layouts}

    def task_metrics(self, sync: bool = True) -> TaskMetrics:
        """Fresh metrics of this model's tasks (``sync=False``: this process's data only)."""
        return TaskMetrics(self.tasks, self.task_context, sync=sync)

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
        """Task outputs for ``images`` ``[B, 3, H, W]`` in [0, 1], keyed by task name
        (``segmentation`` logits ``[B, K, H, W]``, ``disparity`` ``[B, H, W]``,
        ``reconstruction`` ``[B, 3, H, W]``). The Q-layer adds noise in training and rounds in
        evaluation."""
        return self.run(images)[0]

    def run(self, images: Tensor, rate: bool = False) -> tuple[dict[str, Tensor], list[Tensor],
                                                               list[ProxyCoding | BottleneckOutput | None]]:
        """``(task outputs, unquantized stream tensors, the coding of each stream)`` of one forward
        pass: a learned bottleneck's output (its likelihoods), or the proxy's coding, which is
        ``None`` unless the proxy is in use (``rate`` asks for it for the rate term, the codec noise
        needs it in training)."""
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"images must have shape [B, 3, H, W], got {tuple(images.shape)}")
        stride = self.layouts[-1].stride
        if images.shape[-2] % stride or images.shape[-1] % stride:
            raise ValueError(
                f"image height and width must be multiples of {stride} for split point "
                f"{self.split_points[-1]!r}, got {tuple(images.shape[-2:])}"
            )
        feats = self.encoder(images)
        if self.bottlenecks is not None:
            coded = [b(f) for b, f in zip(self.bottlenecks, feats)]
            return self.decoder([c.features for c in coded]), feats, coded
        streams = [q(f) for q, f in zip(self.quantizers, feats)]
        codec_noise = self.training and self.hparams.codec_noise == "proxy"
        codings: list[ProxyCoding | None] = [None] * len(feats)
        if self.stream_proxy is not None and (codec_noise or (rate and self.rate_term is not None)):
            codings = [self.stream_proxy(f) for f in feats]
        if codec_noise:
            streams = [self._codec_noise(s, c) for s, c in zip(streams, codings)]
        return self.decoder(streams), feats, codings

    def _codec_noise(self, stream: Tensor, coding: ProxyCoding) -> Tensor:
        """Each sample's Q-layer output replaced, with probability p, by the proxy's reconstruction."""
        chosen = torch.rand(stream.shape[0], device=stream.device) < self.hparams.codec_noise_probability
        if not bool(chosen.any()):
            return stream
        return torch.where(chosen.view(-1, 1, 1, 1), coding.reconstruction().to(stream.dtype), stream)

    # ----------------------------------------------------------------- losses
    def losses(self, batch: dict[str, Tensor]) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        """``(losses by name — every task's and the rate term's —, task outputs)`` of one batch."""
        outputs, feats, codings = self.run(batch["image"], rate=True)
        losses = {task.name: task.loss(outputs[task.name], batch, self.task_context) for task in self.tasks}
        if self.bottlenecks is not None:
            losses[RATE_TERM] = self.hparams.rate_lambda * self.bits_per_image(codings)
        elif self.rate_term is not None:
            rate = sum(self.rate_term(f, c, self.hparams.rate_features) for f, c in zip(feats, codings))
            losses[RATE_TERM] = self.hparams.compressibility_weight * rate
        return losses, outputs

    @staticmethod
    def bits_per_image(coded: list[BottleneckOutput]) -> Tensor:
        """``R = Σ −log₂ p`` over every latent of every stream, averaged over the batch."""
        return sum(c.bits() for c in coded).mean()

    def total_loss(self, losses: dict[str, Tensor]) -> Tensor:
        """Eq 6 over the losses; with ``rate_weighting="fixed"`` or a learned bottleneck the rate term is
        added outside it, as λ·rate."""
        fixed = self.hparams.rate_weighting == "fixed" or self.bottlenecks is not None
        if fixed and RATE_TERM in losses:
            return self.loss_weighting({k: v for k, v in losses.items() if k != RATE_TERM}) + losses[RATE_TERM]
        return self.loss_weighting(losses)

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        losses, _ = self.losses(batch)
        total = self.total_loss(losses)
        bs = batch["image"].shape[0]
        if not self.automatic_optimization:
            self._learned_bottleneck_step(total)
            self.log("train/aux_loss", self._last_aux_loss, batch_size=bs)
        self.log("train/loss", total, prog_bar=True, batch_size=bs)
        self.log_dict({f"train/loss_{k}": v.detach() for k, v in losses.items()}, batch_size=bs)
        self.log_dict({f"weights/{k}": w.detach() for k, w in self.loss_weighting.weights().items()}, batch_size=bs)
        return total

    def _eval_step(self, batch: dict[str, Tensor], stage: str) -> dict[str, Tensor]:
        losses, outputs = self.losses(batch)
        bs = batch["image"].shape[0]
        self.log(f"{stage}/loss", self.total_loss(losses), prog_bar=stage == "val", batch_size=bs, sync_dist=True)
        if RATE_TERM in losses:
            self.log(f"{stage}/{RATE_TERM}", losses[RATE_TERM], batch_size=bs, sync_dist=True)
        if self.bottlenecks is not None:
            self.log(f"{stage}/bits_per_image", losses[RATE_TERM] / self.hparams.rate_lambda, batch_size=bs,
                     sync_dist=True)
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
        bottlenecks = [] if self.bottlenecks is None else list(self.bottlenecks)
        aux = [p for b in bottlenecks for p in b.aux_parameters()]
        densities = [p for b in bottlenecks for p in b.density_parameters()]
        main = [p for p in self.parameters() if all(p is not a for a in aux + densities)]
        groups = [{"params": main}] + ([{"params": densities, "lr": self.hparams.entropy_lr}] if densities else [])
        optimizer = torch.optim.Adam(groups, lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)
        total = max(int(self.trainer.estimated_stepping_batches), 1)
        scheduler = torch.optim.lr_scheduler.PolynomialLR(optimizer, total_iters=total, power=0.9)
        if not aux:
            return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
        return [optimizer, torch.optim.Adam(aux, lr=AUX_LR)], [{"scheduler": scheduler, "interval": "step"}]

    def _learned_bottleneck_step(self, total: Tensor) -> None:
        """One step of both optimizers: the task-and-rate loss moves everything but the quantiles,
        CompressAI's auxiliary loss only the quantiles, so one backward of the sum serves both."""
        optimizer, aux_optimizer = self.optimizers()
        aux = sum(b.aux_loss() for b in self.bottlenecks)
        optimizer.zero_grad()
        aux_optimizer.zero_grad()
        self.manual_backward(total + aux)
        optimizer.step()
        aux_optimizer.step()
        self.lr_schedulers().step()
        self._last_aux_loss = aux.detach()

    # ----------------------------------------------------------------- a learned bottleneck's tables
    def fix_entropy_tables(self) -> list[dict[str, EntropyTables]]:
        """The integer CDF tables of every stream's bottleneck for the current weights (kept, and
        written into every checkpoint); the codec and the export read only these."""
        if self.bottlenecks is None:
            raise ConfigError("this model has no learned bottleneck (--model.bottleneck factorized|hyperprior)")
        self.entropy_tables = [b.fix_tables() for b in self.bottlenecks]
        return self.entropy_tables

    def stream_codec(self, stream: int = 0) -> LearnedCodec:
        """The learned codec of stream ``stream`` (its bottleneck and the checkpoint's tables)."""
        if self.bottlenecks is None:
            raise ConfigError("stream_codec: this model has no learned bottleneck; code its streams with any "
                              "registered codec (get_codec)")
        if self.entropy_tables is None:
            raise ConfigError("stream_codec: no entropy tables; load the model from a checkpoint written by "
                              "train.py, or call fix_entropy_tables() once it is trained")
        if not 0 <= stream < len(self.bottlenecks):
            raise ConfigError(f"stream={stream}: this model has {len(self.bottlenecks)} stream(s)")
        return LearnedCodec(self.bottlenecks[stream].eval(), self.entropy_tables[stream])

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        if self.bottlenecks is not None:
            checkpoint[TABLES_KEY] = [
                {f"{latent}.{key}": torch.from_numpy(array.copy()) for latent, tables in stream.items()
                 for key, array in tables.arrays().items()}
                for stream in self.fix_entropy_tables()]

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        if self.bottlenecks is not None and TABLES_KEY in checkpoint:
            streams = checkpoint[TABLES_KEY]
            if len(streams) != len(self.bottlenecks):
                raise ConfigError(f"checkpoint holds entropy tables of {len(streams)} streams, the model has "
                                  f"{len(self.bottlenecks)}")
            self.entropy_tables = [
                {latent: EntropyTables.from_arrays({k: v.numpy() for k, v in arrays.items()}, f"{latent}.")
                 for latent in b.coding_order}
                for b, arrays in zip(self.bottlenecks, streams)]


def check_bottleneck_options(bottleneck: str | None, rate_lambda: float, rate_loss: str, codec_noise: str,
                             entropy_lr: float = ENTROPY_LR) -> None:
    """One :class:`ConfigError` for options that do not go with (or without) a learned bottleneck."""
    if bottleneck is None:
        if rate_lambda != RATE_LAMBDA:
            raise ConfigError(f"rate_lambda={rate_lambda!r} is the trade-off of a learned bottleneck; set "
                              "--model.bottleneck factorized|hyperprior, or use compressibility_weight for rate_loss")
        if entropy_lr != ENTROPY_LR:
            raise ConfigError(f"entropy_lr={entropy_lr!r} is the learning rate of a learned bottleneck's entropy "
                              "models; set --model.bottleneck factorized|hyperprior")
        return
    for what, value, meaning in (("rate_lambda", rate_lambda, "the loss adds λ · bits per image"),
                                 ("entropy_lr", entropy_lr, "the densities' learning rate")):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < float("inf"):
            raise ConfigError(f"{what}={value!r}: expected a positive number ({meaning})")
    if rate_loss in PROXY_RATE_LOSSES or codec_noise != "none":
        raise ConfigError(f"bottleneck={bottleneck!r} has its own rate term and quantization: rate_loss={rate_loss!r} "
                          f"and codec_noise={codec_noise!r} are for the Q-layer (use rate_loss none, codec_noise none)")


__all__ = ["ENTROPY_LR", "RATE_LAMBDA", "RATE_TERM", "RATE_WEIGHTINGS", "MultiTaskCI", "check_bottleneck_options"]
