"""A fourth transmission, defined here and nowhere in the package, goes the whole way: it
trains through ``train.py`` by class path, exports with the parity check passing,
runs EdgeRuntime → bytes → CloudRuntime, and is measured by ``evaluate.py curves``.

``TopVariance`` keeps the ``kept`` channels of largest variance (running estimates over training
batches) and sends them at 4 bits; the cloud fills the other channels with their running means.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from helpers import TINY, train

from cilight.ci_models import QuantizedTransmission, Transmitted
from cilight.ci_models.checkpoints import load_task_model
from cilight.deploy import CloudRuntime, EdgeRuntime
from cilight.evaluate_cli import main as evaluate_main
from cilight.export_cli import main as export_main


class TopVariance(QuantizedTransmission):
    """The ``kept`` channels of largest running variance, min–max quantized to ``bits``; the rest are
    their running means at the cloud."""

    def __init__(self, layout, kept: int = 32, bits: int = 4, momentum: float = 0.1) -> None:
        super().__init__(layout, bits)
        self.kept, self.momentum = kept, momentum
        self.register_buffer("mean", torch.zeros(layout.channels))
        self.register_buffer("variance", torch.ones(layout.channels))
        self.register_buffer("channels", torch.arange(kept))

    def forward(self, features, rate: bool = True) -> Transmitted:
        if self.training:
            with torch.no_grad():
                m = self.momentum
                self.mean.mul_(1 - m).add_(m * features.mean(dim=(0, 2, 3)))
                self.variance.mul_(1 - m).add_(m * features.var(dim=(0, 2, 3)))
                self.channels.copy_(torch.topk(self.variance, self.kept).indices.sort().values)
        return Transmitted(self.received(self.quantizer(self.transmitted(features))))

    def transmitted_channels(self) -> int:
        return self.kept

    def transmitted(self, features):
        return features.index_select(1, self.channels)

    def received(self, decoded):
        shape = (decoded.shape[0], self.layout.channels, *decoded.shape[2:])
        filled = self.mean.view(1, -1, 1, 1).expand(shape).clone()
        return filled.index_copy(1, self.channels, decoded)


@pytest.fixture(scope="module")
def custom_run(tmp_path_factory, quick_callbacks):
    root = tmp_path_factory.mktemp("custom_transmission")
    proc = train([*TINY, "--config", quick_callbacks, "--trainer.default_root_dir", root / "runs", "--run_name", "t",
                  "--model.transmission", f"{__name__}.TopVariance", "--model.transmission.kept", "24",
                  "--model.transmission.bits", "4"], root)  # bits, shared with the default Q-layer, carries over
    assert proc.returncode == 0, proc.stderr[-3000:]
    return root


def test_a_transmission_of_ones_own_trains_exports_runs_and_is_measured(custom_run, capsys):
    ckpt = custom_run / "runs" / "t" / "checkpoints" / "last.ckpt"
    model = load_task_model(ckpt)
    assert type(model.transmissions[0]).__name__ == "TopVariance"
    assert model.hparams["transmission"]["init_args"] == {"kept": 24, "bits": 4, "momentum": 0.1}
    chosen = model.transmissions[0].channels
    assert not torch.equal(chosen, torch.arange(24)), "training moved the choice by variance"

    out = custom_run / "halves"
    assert export_main(["--ckpt", str(ckpt), "--out", str(out), "--samples", "2", "--mean-images", "8"]) == 0
    assert "PASSED" in capsys.readouterr().out
    meta = EdgeRuntime(out / "edge.onnx").meta
    assert meta.bits == 4 and meta.stream_shapes["layer3"] == (24, 4, 8)

    images = torch.rand(2, 3, 64, 128, generator=torch.Generator().manual_seed(3))
    edge, cloud = EdgeRuntime(out / "edge.onnx", "png"), CloudRuntime(out / "cloud.onnx")
    frames = edge.encode(images.numpy())
    outputs = cloud.infer(frames)
    with torch.no_grad():
        reference = model(images)
    agreement = (outputs["segmentation"].argmax(1) == reference["segmentation"].argmax(1).numpy()).mean()
    assert agreement > 0.99
    np.testing.assert_allclose(outputs["disparity"], reference["disparity"].numpy(), atol=1e-3)

    curves = custom_run / "curves"
    assert evaluate_main(["curves", "--ckpt", str(ckpt), "--images", "4", "--codecs", "png+jpeg:quality=90,50",
                          "--out", str(curves)]) == 0
    measured = json.loads(next(curves.glob("*.json")).read_text())
    bits = [p["bits_per_image"] for p in measured["points"]]
    assert len(bits) == 3 and min(bits) > 0 and bits[1] > bits[2]  # png, then JPEG quality 90 > quality 50
    assert all(set(p["metrics"]) == set(measured["reference"]) for p in measured["points"])
    assert set(measured["tasks"]) == {"segmentation", "disparity", "reconstruction"}
