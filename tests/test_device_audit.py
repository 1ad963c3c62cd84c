"""Device assumptions of the training path: nothing is created on the CPU inside a step and then mixed
with tensors on the accelerator, no ``.numpy()`` on a tensor that may live on an accelerator, and no
float64 on a device (MPS has none).

The tests that need a device run on every device this machine has (``DEVICES``): the CPU always, and
``cuda`` and ``mps`` where one exists — so the accelerator cases run on a GPU machine (for instance
before ``python -m benchmarks.gpu_check``) and are absent from a CPU-only run. The source audit at
the end runs everywhere: it reads the modules of the training path and fails on a ``.double()`` or a
``.numpy()`` not preceded by ``.cpu()``, unless the line is in :data:`CPU_BY_CONSTRUCTION` with the
reason its tensor is on the CPU already.
"""

from __future__ import annotations

import json
import re
import sys

import pytest
import torch
from helpers import ROOT, smooth_images, tiny_model

from cilight.ci_models import BottleneckTransmission, MultiTaskCI, TaskContext, compressibility_loss
from cilight.ci_models.losses import _operators_on
from cilight.ci_models.proxy import Jpeg2000Proxy, ProxyCoder, calibration_weights
from cilight.ci_models.tasks import MajorityClass, MeanDisparity, MeanImage

DEVICES = ["cpu", *(["cuda"] if torch.cuda.is_available() else []),
           *(["mps"] if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available() else [])]


def split_features(device: str) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return (torch.rand(2, 16, 8, 16, generator=g) * 3).to(device)


@pytest.mark.parametrize("device", DEVICES)
def test_compressibility_operators_are_float32_and_kept_on_the_device(device):
    """The DCT and DPCM operators (built in float64 on the CPU) reach the device converted to float32 already,
    and once: not copied in every training step."""
    first = _operators_on(8, 16, torch.device(device), torch.float32)
    assert all(op.dtype == torch.float32 and op.device.type == device for op in first)
    assert all(a is b for a, b in zip(first, _operators_on(8, 16, torch.device(device), torch.float32)))
    x = split_features(device)
    assert compressibility_loss(x).device.type == device


@pytest.mark.parametrize("device", DEVICES)
def test_the_proxys_rate_weights_are_made_once_per_device(device):
    proxy = Jpeg2000Proxy()
    transformed = proxy.transform(split_features(device))
    proxy.bits(transformed, 4.0)
    weights = calibration_weights(proxy.calibration.weights, torch.device(device), torch.float32)
    assert weights.device.type == device and weights.dtype == torch.float32
    proxy.bits(transformed, 2.0)
    assert calibration_weights(proxy.calibration.weights, torch.device(device), torch.float32) is weights


@pytest.mark.parametrize("device", DEVICES)
def test_the_proxy_coders_rate_table_lives_on_the_cpu(device):
    """The rate sweep reads the proxy's table with numpy: float64 on the CPU, whatever the features' device."""
    coder = ProxyCoder()
    prepared = coder.prepare(split_features(device))
    assert prepared[2].device.type == "cpu" and prepared[2].dtype == torch.float64
    reconstruction, bits = coder.code(prepared, 2000.0)
    assert reconstruction.device.type == device
    assert bits.device.type == "cpu" and bits.dtype == torch.float64
    _, at_step = coder.code_at(prepared, 4.0)
    assert at_step.device.type == "cpu" and at_step.dtype == torch.float64


@pytest.mark.parametrize("device", DEVICES)
def test_fresh_task_metrics_are_on_the_models_device(device):
    """The rate sweep (and the per-epoch callback) updates fresh metrics with outputs on the model's device."""
    model = tiny_model().to(device)
    metrics = model.task_metrics(sync=False)
    states = [getattr(m, name) for m in metrics.metrics.values() for name in m._defaults]
    assert states and all(s.device.type == device for s in states if isinstance(s, torch.Tensor))
    images = smooth_images(2, 64, 64).to(device)
    batch = {"image": images, "segmentation": torch.zeros(2, 64, 64, dtype=torch.long, device=device),
             "disparity": torch.ones(2, 64, 64, device=device),
             "disparity_mask": torch.ones(2, 64, 64, dtype=torch.bool, device=device)}
    with torch.no_grad():
        metrics.update(model(images), batch)
    assert all(torch.isfinite(torch.as_tensor(v)) for v in metrics.compute().values())


@pytest.mark.parametrize("device", DEVICES)
def test_trivial_baselines_sum_on_the_cpu_and_predict_on_the_batch_device(device):
    context = TaskContext(num_classes=5)
    g = torch.Generator().manual_seed(0)
    batch = {"image": torch.rand(2, 3, 8, 8, generator=g), "segmentation": torch.randint(0, 5, (2, 8, 8), generator=g),
             "disparity": torch.rand(2, 8, 8, generator=g), "disparity_mask": torch.ones(2, 8, 8, dtype=torch.bool)}
    on_device = {k: v.to(device) for k, v in batch.items()}
    baselines = [MajorityClass(context), MeanDisparity(context), MeanImage(context)]
    for baseline in baselines:
        baseline.observe(on_device)
    assert baselines[2].total.device.type == "cpu" and baselines[2].total.dtype == torch.float64
    for baseline, key in zip(baselines, ("segmentation", "disparity", "image")):
        prediction = baseline.predict(on_device)
        assert prediction.device.type == device and prediction.dtype == torch.float32, type(baseline).__name__
        assert prediction.shape[-2:] == on_device[key].shape[-2:]
    torch.testing.assert_close(baselines[2].predict(on_device).cpu(), batch["image"].mean(0).expand(2, -1, -1, -1))


@pytest.mark.parametrize("device", DEVICES)
def test_a_learned_bottleneck_checkpoint_loads_onto_a_device(device, tmp_path):
    """Its entropy tables are read with numpy, wherever ``map_location`` puts the checkpoint's tensors."""
    torch.manual_seed(0)
    model = MultiTaskCI(num_classes=5, decoder_width=8, transmission=BottleneckTransmission.spec(channels=8))
    checkpoint = {"state_dict": model.state_dict(), "hyper_parameters": dict(model.hparams),
                  "pytorch-lightning_version": "2.6.0"}
    model.on_save_checkpoint(checkpoint)
    path = tmp_path / "learned.ckpt"
    torch.save(checkpoint, path)
    loaded = MultiTaskCI.load_from_checkpoint(path, map_location=device)
    assert loaded.device.type == device
    got, saved = loaded.transmissions[0].require_tables()["y"].arrays(), model.transmissions[0].tables["y"].arrays()
    assert got.keys() == saved.keys() and all((got[k] == saved[k]).all() for k in saved)


# --------------------------------------------------------------------------- the source audit
AUDITED = ("ci_models/losses.py", "ci_models/rate.py", "ci_models/proxy.py", "ci_models/dwt.py",
           "ci_models/bottleneck.py", "ci_models/tasks.py", "ci_models/multitask.py", "ci_models/precision.py",
           "evaluation/callbacks.py")
# (module, text of the line): why its tensor is on the CPU already
CPU_BY_CONSTRUCTION = {
    ("ci_models/proxy.py", "lb.flip(0).numpy()"): "ProxyCoder.prepare builds the table on the CPU",
}
DEVICE_BOUND = re.compile(r"\.(double|numpy)\(\)")


def test_no_float64_or_numpy_on_a_tensor_that_may_be_on_an_accelerator():
    found = []
    for module in AUDITED:
        for number, line in enumerate((ROOT / module).read_text().splitlines(), 1):
            for match in DEVICE_BOUND.finditer(line):
                if ".cpu()" in line[: match.start()]:
                    continue
                if any(m == module and text in line for m, text in CPU_BY_CONSTRUCTION):
                    continue
                found.append(f"{module}:{number}: {line.strip()}")
    assert not found, "move to the CPU first (.detach().cpu()), or say why it is there already:\n" + "\n".join(found)


# --------------------------------------------------------------------------- benchmarks/gpu_check.py on the CPU
@pytest.mark.slow
def test_gpu_check_runs_on_the_cpu_and_resumes(tmp_path, capsys):
    """The GPU check's smoke test: a bf16-mixed run of two steps, its export and its curves, on the CPU;
    run again, every part is read from the JSON instead."""
    if str(ROOT) not in sys.path:  # benchmarks/ is a folder of the checkout, not of the installed package
        sys.path.insert(0, str(ROOT))
    from benchmarks.gpu_check import main

    out = tmp_path / "gpu_check.json"
    argv = ["--accelerator", "cpu", "--steps", "2", "--kinds", "default", "--precisions", "bf16-mixed",
            "--batch-size", "4", "--num-val", "4", "--num-test", "4", "--curve-images", "4", "--codecs", "png",
            "--work", str(tmp_path / "work"), "--out", str(out)]
    assert main(argv) == 0, capsys.readouterr().out
    result = json.loads(out.read_text())
    assert set(result["parts"]) == {"train/default/bf16-mixed", "export/default/bf16-mixed", "curves/default/bf16-mixed"}
    train = result["parts"]["train/default/bf16-mixed"]
    assert train["precision"] == "bf16-mixed" and train["steps"] == 2 and train["steps_per_s"] > 0
    assert train["peak_memory_mb"] > 0 and train["callback_seconds"]["RateDistortionCallback"] > 0
    assert result["machine"]["torch"] == torch.__version__ and "cpu" in result["machine"]
    assert set(result["parts"]["export/default/bf16-mixed"]["files_mb"]) >= {"edge.onnx", "cloud.onnx"}
    assert result["parts"]["curves/default/bf16-mixed"]["curves"]
    capsys.readouterr()
    assert main(argv) == 0
    assert capsys.readouterr().out.count("done before, skipped") == 3
