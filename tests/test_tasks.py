"""Tasks as data: a fourth task defined here alone trains, is measured, sweeps, exports and is drawn."""

from __future__ import annotations

import lightning.pytorch as pl
import numpy as np
import pytest
import torch
from helpers import smooth_images
from torchmetrics import MeanAbsoluteError

from cilight.ci_models import Baseline, MultiTaskCI, Task, TaskContext, TaskMetric, register_task, trivial_baselines
from cilight.ci_models.proxy import ProxyCoder
from cilight.datamodules import SyntheticStreets
from cilight.deploy import CloudRuntime, EdgeRuntime
from cilight.errors import ConfigError
from cilight.evaluation import measure_curves, parse_families, rate_sweep
from cilight.evaluation.callbacks import grid_columns, sample_grid
from cilight.onnx_export import export_halves


class MeanBrightness(Baseline):
    description = "mean brightness"

    def __init__(self, context):
        self.total, self.count = None, 0

    def observe(self, batch):
        summed = batch["image"].mean(1).double().sum(0)
        self.total = summed if self.total is None else self.total + summed
        self.count += len(batch["image"])

    def predict(self, batch):
        return (self.total / self.count).float().expand(len(batch["image"]), -1, -1)


def _gray(prediction, sample, context):
    return np.repeat((prediction.clamp(0, 1).numpy() * 255).astype(np.uint8)[..., None], 3, axis=2)


BRIGHTNESS = register_task(Task(
    name="brightness", kind="regression", channels=1,
    output=lambda x: torch.sigmoid(x).squeeze(1),
    loss=lambda prediction, batch, context: (prediction - batch["image"].mean(1)).abs().mean(),
    metrics=(TaskMetric("mae", "MAE", False, lambda context, **options: MeanAbsoluteError(**options),
                        lambda metric, prediction, batch: metric.update(prediction, batch["image"].mean(1))),),
    baseline=MeanBrightness, render=_gray,
    render_target=lambda sample, context: _gray(sample["image"].mean(0), sample, context),
))
TASKS = ["segmentation", "brightness"]


@pytest.fixture(scope="module")
def trained():
    pl.seed_everything(0, verbose=False)
    model = MultiTaskCI(split_points=["layer2", "layer3"], tasks=TASKS, num_classes=10, decoder_width=8)
    data = SyntheticStreets(num_train=8, num_val=4, num_test=4, batch_size=4)
    trainer = pl.Trainer(max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, default_root_dir="/tmp", limit_train_batches=2)
    trainer.fit(model, data)
    return model.eval(), data, trainer


def test_a_fourth_task_trains_and_is_measured(trained):
    model, data, trainer = trained
    assert set(model.loss_weighting.names) == {"segmentation", "brightness", "rate"}
    assert {"val/segmentation_miou", "val/brightness_mae"} <= set(trainer.callback_metrics)
    assert "val/disparity_rmse" not in trainer.callback_metrics
    data.setup("test")
    batch = next(iter(data.test_dataloader()))
    outputs = model(batch["image"])
    assert set(outputs) == set(TASKS) and outputs["brightness"].shape == batch["image"].shape[:1] + batch["image"].shape[2:]
    baselines = trivial_baselines(model.tasks, model.task_context, data.sequential_loader("train"),
                                  data.sequential_loader("test"))
    assert set(baselines) == {"segmentation_miou", "brightness_mae"} and baselines["brightness_mae"] > 0


def test_a_fourth_task_sweeps(trained):
    model, data, _ = trained
    batch = next(iter(data.test_dataloader()))
    coder = ProxyCoder()
    floors = [coder.floor(f) for f in model.features(batch["image"])]
    sweep = rate_sweep(model, [batch], coder, np.array([[f + 300 for f in floors], [20000.0, 10000.0]]), progress=False)
    assert sweep.directions == {"segmentation_miou": True, "brightness_mae": False}
    assert sweep.distortions.shape == (2, 2) and np.isfinite(sweep.distortions).all()


@pytest.mark.slow
def test_a_fourth_task_exports_and_runs_over_bytes(trained, tmp_path):
    model, _, _ = trained
    images = smooth_images(3, 64, 128)
    report = export_halves(model, tmp_path, 64, 128, images, codec="png")
    assert not report.failures and set(report.cloud_max_error) == set(TASKS)
    (frame,) = EdgeRuntime(tmp_path / "edge.onnx").encode(images[:1].numpy())
    outputs = CloudRuntime(tmp_path / "cloud.onnx").infer(frame)
    assert set(outputs) == set(TASKS) and outputs["brightness"].shape == (1, 64, 128)
    with torch.no_grad():
        np.testing.assert_allclose(outputs["brightness"], model(images[:1])["brightness"].numpy(), atol=1e-3)


def test_the_sample_grid_draws_every_task(trained):
    model, data, _ = trained
    batch = {k: v[:2] for k, v in next(iter(data.val_dataloader())).items()}
    with torch.no_grad():
        outputs = model(batch["image"])
    grid = sample_grid(batch, outputs, model.tasks, TaskContext(10, 255, data.class_colors))
    assert grid_columns(model.tasks) == ["input", "gt segmentation", "gt brightness", "segmentation", "brightness"]
    assert grid.shape == (2 * 64 + 2, 5 * 128 + 4 * 2, 3) and grid.dtype == np.uint8


def test_task_lists_are_checked():
    with pytest.raises(ConfigError, match="did you mean 'disparity'"):
        MultiTaskCI(tasks=["dispartiy"])
    with pytest.raises(ConfigError, match="name a task twice"):
        MultiTaskCI(tasks=["segmentation", "segmentation"])
    with pytest.raises(ConfigError, match="tasks is empty"):
        MultiTaskCI(tasks=[])
    with pytest.raises(ConfigError, match="cannot import"):
        MultiTaskCI(tasks=["no_such_package.TASK"])
    with pytest.raises(ConfigError, match="kind='ranking'"):
        Task("x", "ranking", 1, torch.sigmoid, None, BRIGHTNESS.metrics, MeanBrightness, _gray)
    # a task given by import path is registered on the way
    assert MultiTaskCI(tasks=["test_tasks.BRIGHTNESS"], num_classes=4, decoder_width=8).tasks == (BRIGHTNESS,)


def test_each_task_names_its_rate_accuracy_metric():
    from cilight.ci_models import get_task

    assert [get_task(n).rate_accuracy_key for n in ("segmentation", "disparity", "reconstruction")] == [
        "segmentation_miou", "disparity_irmse", "reconstruction_psnr"]  # IRMSE = 1/RMSE, as in ICIP 2019 Table 1
    with pytest.raises(ConfigError, match="no metric that rises with accuracy"):
        _ = BRIGHTNESS.rate_accuracy  # its only metric is an error


def test_a_task_without_a_rising_metric_has_no_curve_but_is_measured(trained):
    model, data, _ = trained
    data.setup("test")
    curves = measure_curves(model, [next(iter(data.test_dataloader()))], parse_families("png+jpeg:quality=50"),
                            progress=False)
    assert curves.tasks == {"segmentation": "segmentation_miou"} and "brightness_mae" in curves.points[1].metrics
