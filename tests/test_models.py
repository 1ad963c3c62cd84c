"""Split models: stream shapes for single and multi-stream splits, halves, weights, errors."""

import pytest
import torch
import torchvision

from cilight.ci_models import MultiTaskCI, QLayerTransmission, ResNetEncoder, stream_layouts
from cilight.ci_models.multitask import RATE_TERM
from cilight.errors import ConfigError

H, W = 64, 128


@pytest.mark.parametrize(
    "backbone,split_points,shapes",
    [
        ("resnet18", ["layer3"], [(256, 4, 8)]),
        ("resnet34", ["layer4"], [(512, 2, 4)]),
        ("resnet18", ["layer3", "layer2"], [(128, 8, 16), (256, 4, 8)]),
        ("resnet18", ["layer1", "layer2", "layer4"], [(64, 16, 32), (128, 8, 16), (512, 2, 4)]),
    ],
)
def test_streams_and_outputs(backbone, split_points, shapes):
    torch.manual_seed(0)
    model = MultiTaskCI(backbone=backbone, split_points=split_points, num_classes=9, decoder_width=16).eval()
    images = torch.rand(2, 3, H, W)
    streams = model.edge(images)
    assert [tuple(codes.shape[1:]) for codes, _, _ in streams] == shapes
    assert [layout.shape(H, W) for layout in model.layouts] == shapes
    assert all(codes.dtype == torch.uint8 and minimum.shape == (2,) for codes, minimum, _ in streams)
    out = model(images)
    assert set(out) == {"segmentation", "disparity", "reconstruction"}
    assert out["segmentation"].shape == (2, 9, H, W)
    assert out["disparity"].shape == (2, H, W)
    assert out["reconstruction"].shape == (2, 3, H, W)
    assert 0 <= out["reconstruction"].min() and out["reconstruction"].max() <= 1
    # the two halves chained give exactly the evaluation forward pass
    split = model.cloud(streams)
    for key in out:
        torch.testing.assert_close(split[key], out[key])


def test_encoder_matches_torchvision_resnet(tmp_path):
    """Weights loaded from a local state dict; stream tensors equal torchvision's stage outputs."""
    torch.manual_seed(0)
    net = torchvision.models.resnet34(weights=None).eval()
    torch.save(net.state_dict(), tmp_path / "r34.pth")
    enc = ResNetEncoder("resnet34", ["layer2", "layer4"], weights=str(tmp_path / "r34.pth")).eval()
    x = torch.rand(1, 3, H, W)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    with torch.no_grad():
        y = net.maxpool(net.relu(net.bn1(net.conv1((x - mean) / std))))
        l2 = net.layer2(net.layer1(y))
        l4 = net.layer4(net.layer3(l2))
        s2, s4 = enc(x)
    torch.testing.assert_close(s2, l2)
    torch.testing.assert_close(s4, l4)


def test_backbone_weights_errors(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        ResNetEncoder("resnet18", ["layer3"], weights=str(tmp_path / "missing.pth"))
    bad = tmp_path / "bad.pth"
    torch.save({"conv1.weight": torch.zeros(1)}, bad)
    with pytest.raises(ConfigError, match="does not fit"):
        ResNetEncoder("resnet18", ["layer3"], weights=str(bad))
    with pytest.raises(ConfigError, match="neither a file nor a torchvision weight name"):
        ResNetEncoder("resnet18", ["layer3"], weights="NOT_A_WEIGHT")


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"backbone": "resnet50"}, "unknown backbone"),
        ({"split_points": ["layer5"]}, "unknown split point"),
        ({"split_points": []}, "empty"),
        ({"split_points": ["layer3", "layer3"]}, "twice"),
        ({"transmission": QLayerTransmission.spec(compressibility_weight=-1.0)}, "compressibility_weight"),
        ({"transmission": "NoSuchTransmission"}, "expected one of QLayerTransmission"),
        ({"transmission": {"class_path": "QLayerTransmission", "init_args": {"bitz": 8}}}, "unexpected keyword"),
        ({"num_classes": 1}, "num_classes"),
    ],
)
def test_config_errors(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        MultiTaskCI(**kwargs)


def test_wrong_image_shape():
    model = MultiTaskCI(num_classes=4, decoder_width=16)
    with pytest.raises(ValueError, match=r"\[B, 3, H, W\]"):
        model(torch.rand(2, 1, H, W))
    with pytest.raises(ValueError, match="multiples of 16"):
        model(torch.rand(1, 3, 60, 128))


def test_layouts_are_ordered_shallow_to_deep():
    assert [s.split_point for s in stream_layouts(["layer4", "layer1"])] == ["layer1", "layer4"]


def test_benchmark_mode_has_no_compressibility_term():
    model = MultiTaskCI(num_classes=4, transmission=QLayerTransmission.spec(compressibility_weight=0.0), decoder_width=16)
    assert RATE_TERM not in model.loss_weighting.names and model.transmissions[0].rate_term is None
    batch = {
        "image": torch.rand(2, 3, H, W),
        "segmentation": torch.randint(0, 4, (2, H, W)),
        "disparity": torch.rand(2, H, W),
        "disparity_mask": torch.ones(2, H, W, dtype=torch.bool),
    }
    losses, _, _ = model.losses(batch)
    assert set(losses) == {"segmentation", "disparity", "reconstruction"}
    with_lr = MultiTaskCI(num_classes=4, decoder_width=16)
    assert RATE_TERM in with_lr.losses(batch)[0]


def test_compressibility_term_is_scale_invariant():
    """Scaling the features changes no quantized code, so it must not change L_r either."""
    torch.manual_seed(0)
    model = MultiTaskCI(num_classes=4, decoder_width=16)
    from cilight.ci_models import compressibility_loss
    from cilight.ci_models.rate import normalized_stream

    f = torch.rand(2, 8, 4, 8)
    a = compressibility_loss(normalized_stream(f))
    b = compressibility_loss(normalized_stream(0.01 * f))
    torch.testing.assert_close(a, b)
    del model


def test_rate_weighting_and_features_options():
    """fixed λ: eq 6 over the tasks plus λ·L_r; raw: L_r on F itself (eq 5 as printed)."""
    from cilight.ci_models import compressibility_loss

    batch = {
        "image": torch.rand(2, 3, H, W),
        "segmentation": torch.randint(0, 4, (2, H, W)),
        "disparity": torch.rand(2, H, W),
        "disparity_mask": torch.ones(2, H, W, dtype=torch.bool),
    }
    torch.manual_seed(0)
    fixed = MultiTaskCI(num_classes=4, decoder_width=16,
                        transmission=QLayerTransmission.spec(rate_weighting="fixed", compressibility_weight=3.0)).eval()
    assert RATE_TERM not in fixed.loss_weighting.names
    losses, _, _ = fixed.losses(batch)
    tasks_only = fixed.loss_weighting({k: v for k, v in losses.items() if k != RATE_TERM})
    torch.testing.assert_close(fixed.total_loss(losses), tasks_only + losses[RATE_TERM])
    torch.manual_seed(0)
    raw = MultiTaskCI(num_classes=4, decoder_width=16, transmission=QLayerTransmission.spec(rate_features="raw")).eval()
    with torch.no_grad():
        losses, _, _ = raw.losses(batch)
        expected = compressibility_loss(raw.features(batch["image"])[0])
    torch.testing.assert_close(losses[RATE_TERM], expected)
    for bad, name in (({"rate_weighting": "fix"}, "rate_weighting='fix'"), ({"rate_features": "rw"}, "rate_features")):
        with pytest.raises(ConfigError, match=name):
            MultiTaskCI(num_classes=4, decoder_width=16, transmission=QLayerTransmission.spec(**bad))
