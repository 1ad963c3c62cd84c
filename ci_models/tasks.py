"""Tasks as data: everything about a task of the cloud half, defined once.

Alvar & Bajić, "Multi-task learning with compressible features for collaborative
intelligence", IEEE ICIP 2019, §2.1–2.2: the cloud runs one branch per task on the decoded
features — semantic segmentation (Model 1), disparity (Model 2) and input reconstruction
(Model 3) — each with its own loss, combined by eq 6. A :class:`Task` holds all of it:

* the head's output channels and the transform of its raw output (softmax logits, a squeezed
  disparity map, a sigmoid image);
* the loss and its eq 6 type (``classification`` or ``regression``);
* the metrics, each with its direction (higher or lower is better; eq 1 of Alvar & Bajić,
  IEEE TIP 2021, needs it), the first one being the task's *primary* metric;
* the trivial predictor that ignores the image (the floor a trained model must clear);
* how a prediction and its target are coloured in a sample grid (Fig. 3 of the ICIP paper);
* the ONNX output name of the cloud half.

Every consumer — the heads, the losses, validation and test metrics, the rate sweeps, the
comparison table, the trivial baselines, the sample grid, the ONNX export — loops over a
model's tasks. A new task is one :func:`register_task` call; ``MultiTaskCI(tasks=[...])`` trains
any subset, and a task defined outside the package can be named by its import path
(``--model.tasks [segmentation,my_package.tasks.EDGES]``).
"""

from __future__ import annotations

import difflib
import importlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from matplotlib import colormaps
from torch import Tensor, nn
from torchmetrics import MeanSquaredError, Metric
from torchmetrics.classification import MulticlassJaccardIndex
from torchmetrics.image import PeakSignalNoiseRatio

from cilight.ci_models.losses import TASK_TYPES, disparity_loss, reconstruction_loss, segmentation_loss
from cilight.errors import ConfigError

Batch = dict[str, Tensor]


@dataclass(frozen=True)
class TaskContext:
    """What a task's parts need to know about the data: classes, the ignored label, class colours."""

    num_classes: int
    ignore_index: int = 255
    palette: tuple[tuple[int, int, int], ...] | None = None

    def colors(self) -> np.ndarray:
        """``[num_classes, 3]`` uint8 class colours (the datamodule's, or a fixed random palette)."""
        if self.palette is not None and len(self.palette) >= self.num_classes:
            return np.asarray(self.palette, dtype=np.uint8)
        return np.random.default_rng(0).integers(0, 256, size=(self.num_classes, 3)).astype(np.uint8)


@dataclass(frozen=True)
class TaskMetric:
    """One metric of a task.

    Attributes:
        name: short name; the metric's key is ``<task>_<name>`` (``segmentation_miou``).
        label: what a table prints (``mIoU``, ``RMSE px``).
        higher_is_better: the direction (eq 1 of the Pareto paper).
        make: ``make(context, **metric_options)`` → a fresh torchmetrics ``Metric``.
        update: ``update(metric, prediction, batch)`` adds one batch.
        zero_is_trivial: the metric has no natural zero (PSNR): shares of it, such as the metric band of
            a paired comparison (:func:`cilight.evaluation.paired.metric_band`), count from the trivial
            predictor's score instead of from 0.
    """

    name: str
    label: str
    higher_is_better: bool
    make: Callable[..., Metric]
    update: Callable[[Metric, Tensor, Batch], None]
    zero_is_trivial: bool = False


class Baseline(ABC):
    """A trivial predictor: statistics of the training split, a prediction that ignores the image."""

    description: str = "trivial predictor"

    @abstractmethod
    def observe(self, batch: Batch) -> None:
        """Add one training batch to the statistics."""

    @abstractmethod
    def predict(self, batch: Batch) -> Tensor:
        """The prediction for ``batch``, shaped like the task's output."""


@dataclass(frozen=True)
class Task:
    """Everything about one task (see the module docstring).

    Attributes:
        name: the key of the model's output dict and of the losses; an identifier.
        kind: the eq 6 type of its loss, ``classification`` or ``regression``.
        channels: output channels of the head, a number or ``channels(context)``.
        output: raw head output ``[B, channels, H, W]`` → the task's prediction.
        loss: ``loss(prediction, batch, context)`` → a scalar.
        metrics: the task's metrics; the first is its primary metric.
        baseline: ``baseline(context)`` → a fresh :class:`Baseline`.
        render: ``render(prediction [one sample], sample | None, context)`` → ``[H, W, 3]`` uint8.
        render_target: ``render_target(sample, context)`` → ``[H, W, 3]`` uint8, or ``None`` when
            the target is the input image (nothing more to show).
        output_name: the ONNX output name (default: ``name``).
    """

    name: str
    kind: str
    channels: int | Callable[[TaskContext], int]
    output: Callable[[Tensor], Tensor]
    loss: Callable[[Tensor, Batch, TaskContext], Tensor]
    metrics: tuple[TaskMetric, ...]
    baseline: Callable[[TaskContext], Baseline]
    render: Callable[[Tensor, Batch | None, TaskContext], np.ndarray]
    render_target: Callable[[Batch, TaskContext], np.ndarray] | None = None
    output_name: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.isidentifier():
            raise ConfigError(f"task name {self.name!r}: expected an identifier")
        if self.kind not in TASK_TYPES:
            raise ConfigError(f"task {self.name!r}: kind={self.kind!r}, expected one of {', '.join(TASK_TYPES)}")
        metrics = tuple(self.metrics)
        if not metrics or not all(isinstance(m, TaskMetric) for m in metrics):
            raise ConfigError(f"task {self.name!r} needs at least one TaskMetric")
        if len({m.name for m in metrics}) != len(metrics):
            raise ConfigError(f"task {self.name!r} names a metric twice: {[m.name for m in metrics]}")
        object.__setattr__(self, "metrics", metrics)
        object.__setattr__(self, "output_name", self.output_name or self.name)

    @property
    def primary(self) -> TaskMetric:
        """The metric that stands for the task (eq 1's A_i, the comparison table, BD-rate)."""
        return self.metrics[0]

    @property
    def rate_accuracy(self) -> TaskMetric:
        """The metric of rate–accuracy curves and BD-rate: the first one that rises with accuracy.

        BD-rate integrates rate over a metric that grows with quality, so a task whose primary
        metric falls (disparity RMSE) is measured by a rising one (IRMSE = 1/RMSE), as in Alvar &
        Bajić, IEEE ICIP 2019, Table 1. A task without a rising metric has no BD-rate.
        """
        for metric in self.metrics:
            if metric.higher_is_better:
                return metric
        raise ConfigError(f"task {self.name!r} has no metric that rises with accuracy "
                          f"({', '.join(m.name for m in self.metrics)}), so no rate–accuracy curve")

    @property
    def rate_accuracy_key(self) -> str:
        return self.key(self.rate_accuracy)

    def key(self, metric: TaskMetric) -> str:
        return f"{self.name}_{metric.name}"

    @property
    def primary_key(self) -> str:
        return self.key(self.primary)

    def out_channels(self, context: TaskContext) -> int:
        channels = self.channels(context) if callable(self.channels) else self.channels
        if isinstance(channels, bool) or not isinstance(channels, int) or channels < 1:
            raise ConfigError(f"task {self.name!r}: head channels={channels!r}, expected a positive integer")
        return channels


# --------------------------------------------------------------------------- registry
TASKS: dict[str, Task] = {}
DEFAULT_TASKS = ("segmentation", "disparity", "reconstruction")


def register_task(task: Task) -> Task:
    """Make ``task`` available by name (``MultiTaskCI(tasks=[task.name])``). Returns it."""
    if not isinstance(task, Task):
        raise ConfigError(f"register_task takes a Task, got {type(task).__name__}")
    previous = TASKS.get(task.name)
    if previous is not None and previous is not task and previous != task:
        raise ConfigError(f"a different task named {task.name!r} is already registered")
    TASKS[task.name] = task
    return task


def get_task(name: str | Task) -> Task:
    """The task called ``name``, or importable as ``package.module.ATTRIBUTE`` (then registered)."""
    if isinstance(name, Task):
        return register_task(name)
    if name in TASKS:
        return TASKS[name]
    module, _, attribute = str(name).rpartition(".")
    if module:
        try:
            task = getattr(importlib.import_module(module), attribute)
        except (ImportError, AttributeError) as err:
            raise ConfigError(f"task {name!r}: cannot import it ({err})") from None
        if not isinstance(task, Task):
            raise ConfigError(f"task {name!r} is a {type(task).__name__}, expected a cilight.ci_models.Task")
        return register_task(task)
    close = difflib.get_close_matches(str(name), TASKS, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise ConfigError(f"task={name!r}: expected one of {', '.join(TASKS)} or an import path "
                      f"package.module.TASK{hint}")


def resolve_tasks(names: Sequence[str | Task]) -> tuple[Task, ...]:
    """The tasks named in ``names``, in order; none twice, at least one."""
    if isinstance(names, (str, Task)):
        names = [names]
    tasks = tuple(get_task(n) for n in names)
    if not tasks:
        raise ConfigError(f"tasks is empty; expected one or more of {', '.join(TASKS)}")
    seen = [t.name for t in tasks]
    if len(set(seen)) != len(seen):
        raise ConfigError(f"tasks {seen} name a task twice")
    return tasks


# --------------------------------------------------------------------------- metrics of several tasks
class TaskMetrics(nn.Module):
    """The metrics of ``tasks``, updated from a model's output dict, computed by metric key.

    ``sync=False`` computes on this process's data only: under DDP, ``compute()`` otherwise
    gathers from every rank, and a metric computed on one rank alone (the rate–distortion
    callback's) would wait forever for the others.
    """

    def __init__(self, tasks: Iterable[Task], context: TaskContext, sync: bool = True) -> None:
        super().__init__()
        self.tasks = tuple(tasks)
        self.metrics = nn.ModuleDict({task.key(m): m.make(context, sync_on_compute=sync)
                                      for task in self.tasks for m in task.metrics})

    def update(self, outputs: dict[str, Tensor], batch: Batch) -> None:
        for task in self.tasks:
            for m in task.metrics:
                m.update(self.metrics[task.key(m)], outputs[task.name], batch)

    def compute(self, reset: bool = True) -> dict[str, Tensor]:
        values = {key: metric.compute() for key, metric in self.metrics.items()}
        if reset:
            self.reset()
        return values

    def reset(self) -> None:
        for metric in self.metrics.values():
            metric.reset()

    @property
    def directions(self) -> dict[str, bool]:
        """Metric key → whether higher is better."""
        return {task.key(m): m.higher_is_better for task in self.tasks for m in task.metrics}


def trivial_baselines(tasks: Iterable[Task], context: TaskContext, train_batches: Iterable[Batch],
                      test_batches: Iterable[Batch]) -> dict[str, float]:
    """Test scores of every task's trivial predictor, measured with the task's own metrics.

    Statistics come from ``train_batches`` (each seen once), scores from ``test_batches``.
    """
    tasks = tuple(tasks)
    baselines = {task.name: task.baseline(context) for task in tasks}
    for batch in train_batches:
        for baseline in baselines.values():
            baseline.observe(batch)
    metrics = TaskMetrics(tasks, context, sync=False)
    for batch in test_batches:
        metrics.update({name: b.predict(batch).contiguous() for name, b in baselines.items()}, batch)
    return {key: float(value) for key, value in metrics.compute().items()}


# --------------------------------------------------------------------------- colouring
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


def image_to_rgb(image: Tensor) -> np.ndarray:
    """``[3, H, W]`` in [0, 1] → ``[H, W, 3]`` uint8."""
    return (image.detach().clamp(0, 1).permute(1, 2, 0).float().cpu().numpy() * 255).round().astype(np.uint8)


# --------------------------------------------------------------------------- segmentation (Model 1)
def _identity(x: Tensor) -> Tensor:
    return x


def _num_classes(context: TaskContext) -> int:
    return context.num_classes


def _segmentation_loss(logits: Tensor, batch: Batch, context: TaskContext) -> Tensor:
    return segmentation_loss(logits, batch["segmentation"], context.ignore_index)


def _miou(context: TaskContext, **options: Any) -> Metric:
    return MulticlassJaccardIndex(context.num_classes, ignore_index=context.ignore_index, validate_args=False, **options)


def _update_miou(metric: Metric, logits: Tensor, batch: Batch) -> None:
    # max(1).indices: the same first maximum as argmax(1), about 10× faster on CPU over the channel dim
    metric.update(logits.max(1).indices, batch["segmentation"])


class MajorityClass(Baseline):
    """Predicts the most frequent training class at every pixel."""

    description = "majority class"

    def __init__(self, context: TaskContext) -> None:
        self.context = context
        self.counts = torch.zeros(context.num_classes, dtype=torch.int64)

    def observe(self, batch: Batch) -> None:
        labels = batch["segmentation"]
        labels = labels[(labels != self.context.ignore_index) & (labels < self.context.num_classes)]
        self.counts += torch.bincount(labels.flatten(), minlength=self.context.num_classes).cpu()  # kept on the CPU

    def predict(self, batch: Batch) -> Tensor:
        b, h, w = batch["segmentation"].shape
        logits = torch.zeros(b, self.context.num_classes, h, w, device=batch["segmentation"].device)
        logits[:, int(self.counts.argmax())] = 1.0
        return logits


def _render_labels(logits: Tensor, sample: Batch | None, context: TaskContext) -> np.ndarray:
    return colorize_labels(logits.argmax(0).cpu().numpy(), context.colors(), context.ignore_index)


def _render_label_target(sample: Batch, context: TaskContext) -> np.ndarray:
    return colorize_labels(sample["segmentation"].cpu().numpy(), context.colors(), context.ignore_index)


SEGMENTATION = register_task(Task(
    name="segmentation", kind="classification", channels=_num_classes, output=_identity,
    loss=_segmentation_loss,
    metrics=(TaskMetric("miou", "mIoU", True, _miou, _update_miou),),
    baseline=MajorityClass, render=_render_labels, render_target=_render_label_target,
))


# --------------------------------------------------------------------------- disparity (Model 2)
def _squeeze(x: Tensor) -> Tensor:
    return x.squeeze(1)


def _disparity_loss(prediction: Tensor, batch: Batch, context: TaskContext) -> Tensor:
    return disparity_loss(prediction, batch["disparity"], batch["disparity_mask"])


class InverseRMSE(MeanSquaredError):
    """IRMSE = 1 / RMSE, the ICIP paper's disparity metric for BD-rate (higher is better)."""

    def compute(self) -> Tensor:
        return 1.0 / super().compute().clamp_min(1e-12)


def _rmse(context: TaskContext, **options: Any) -> Metric:
    return MeanSquaredError(squared=False, **options)


def _irmse(context: TaskContext, **options: Any) -> Metric:
    return InverseRMSE(squared=False, **options)


def _update_on_valid(metric: Metric, prediction: Tensor, batch: Batch) -> None:
    mask = batch["disparity_mask"]
    if mask.any():
        metric.update(prediction[mask], batch["disparity"][mask])


class MeanDisparity(Baseline):
    """Predicts the mean valid training disparity everywhere."""

    description = "mean disparity"

    def __init__(self, context: TaskContext) -> None:
        self.total, self.count = 0.0, 0

    def observe(self, batch: Batch) -> None:
        valid = batch["disparity_mask"]
        # summed in float64 on the CPU: some devices have no float64 (MPS)
        self.total += batch["disparity"][valid].detach().cpu().double().sum().item()
        self.count += int(valid.sum())

    def predict(self, batch: Batch) -> Tensor:
        target = batch["disparity"]
        return torch.full(target.shape, self.total / max(self.count, 1), dtype=torch.float32, device=target.device)


def _disparity_scale(sample: Batch | None, prediction: np.ndarray) -> float:
    if sample is not None and "disparity" in sample and bool(sample["disparity_mask"].any()):
        return float(sample["disparity"][sample["disparity_mask"]].max())
    return float(np.percentile(prediction, 99))


def _render_disparity(prediction: Tensor, sample: Batch | None, context: TaskContext) -> np.ndarray:
    values = prediction.detach().float().cpu().numpy()
    return colorize_disparity(values, None, _disparity_scale(sample, values))


def _render_disparity_target(sample: Batch, context: TaskContext) -> np.ndarray:
    values = sample["disparity"].float().cpu().numpy()
    return colorize_disparity(values, sample["disparity_mask"].cpu().numpy(), _disparity_scale(sample, values))


DISPARITY = register_task(Task(
    name="disparity", kind="regression", channels=1, output=_squeeze, loss=_disparity_loss,
    metrics=(TaskMetric("rmse", "RMSE px", False, _rmse, _update_on_valid),
             TaskMetric("irmse", "IRMSE 1/px", True, _irmse, _update_on_valid)),
    baseline=MeanDisparity, render=_render_disparity, render_target=_render_disparity_target,
))


# --------------------------------------------------------------------------- reconstruction (Model 3)
def _reconstruction_loss(prediction: Tensor, batch: Batch, context: TaskContext) -> Tensor:
    return reconstruction_loss(prediction, batch["image"])


def _psnr(context: TaskContext, **options: Any) -> Metric:
    return PeakSignalNoiseRatio(data_range=1.0, reduction="elementwise_mean", dim=(1, 2, 3), **options)


def _update_psnr(metric: Metric, prediction: Tensor, batch: Batch) -> None:
    metric.update(prediction.clamp(0, 1), batch["image"])


class MeanImage(Baseline):
    """Predicts the per-pixel mean training image."""

    description = "mean image"

    def __init__(self, context: TaskContext) -> None:
        self.total: Tensor | None = None
        self.count = 0

    def observe(self, batch: Batch) -> None:
        summed = batch["image"].detach().cpu().double().sum(0)  # float64 on the CPU: some devices have none (MPS)
        self.total = summed if self.total is None else self.total + summed
        self.count += batch["image"].shape[0]

    def predict(self, batch: Batch) -> Tensor:
        image = batch["image"]
        mean = (self.total / max(self.count, 1)).to(dtype=torch.float32).to(image.device)
        return mean.expand_as(image)


def _render_image(prediction: Tensor, sample: Batch | None, context: TaskContext) -> np.ndarray:
    return image_to_rgb(prediction)


RECONSTRUCTION = register_task(Task(
    name="reconstruction", kind="regression", channels=3, output=torch.sigmoid, loss=_reconstruction_loss,
    metrics=(TaskMetric("psnr", "PSNR dB", True, _psnr, _update_psnr, zero_is_trivial=True),),
    baseline=MeanImage, render=_render_image,
))


__all__ = [
    "DEFAULT_TASKS",
    "DISPARITY",
    "RECONSTRUCTION",
    "SEGMENTATION",
    "TASKS",
    "Baseline",
    "InverseRMSE",
    "MajorityClass",
    "MeanDisparity",
    "MeanImage",
    "Task",
    "TaskContext",
    "TaskMetric",
    "TaskMetrics",
    "colorize_disparity",
    "colorize_labels",
    "get_task",
    "image_to_rgb",
    "register_task",
    "resolve_tasks",
    "trivial_baselines",
]
