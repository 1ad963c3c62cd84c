"""The segmentation palette travels with the exported halves: metadata round trip, export, demo."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from PIL import Image

from cilight.ci_models import MultiTaskCI
from cilight.ci_models.tasks import TaskContext
from cilight.datamodules import Cityscapes, SyntheticStreets
from cilight.datamodules.cityscapes import CLASS_COLORS as CITYSCAPES_COLORS
from cilight.datamodules.synthetic import CLASS_COLORS as SYNTHETIC_COLORS
from cilight.demo import run_demo
from cilight.deploy.wire import HalfMetadata
from cilight.errors import ConfigError
from cilight.export_command import training_palette
from cilight.onnx_export import export_halves, metadata

HEIGHT, WIDTH = 64, 96
# 4 classes: neither SyntheticStreets (10) nor Cityscapes (19), colours in neither palette
PALETTE = ((1, 2, 3), (250, 4, 5), (6, 251, 7), (8, 9, 252))


def four_class_model() -> MultiTaskCI:
    torch.manual_seed(0)
    return MultiTaskCI(backbone="resnet18", split_points=["layer3"], tasks=["segmentation"], num_classes=len(PALETTE),
                       decoder_width=8).eval()


def images(n: int) -> torch.Tensor:
    low = torch.rand(n, 3, HEIGHT // 8, WIDTH // 8, generator=torch.Generator().manual_seed(0))
    return torch.nn.functional.interpolate(low, size=(HEIGHT, WIDTH), mode="bilinear", align_corners=False)


def colours_of(path) -> set[tuple[int, int, int]]:
    return set(map(tuple, np.asarray(Image.open(path).convert("RGB")).reshape(-1, 3).tolist()))


def test_palette_round_trips_through_the_metadata_and_older_files_have_none():
    meta = metadata(four_class_model(), HEIGHT, WIDTH, half="cloud", palette=np.array(PALETTE))
    assert meta.palette == PALETTE
    props = meta.props()
    assert HalfMetadata.from_props(props) == meta
    older = {k: v for k, v in props.items() if k != "palette"}  # a file exported before the field existed
    assert HalfMetadata.from_props(older).palette == ()
    for bad in (PALETTE[:3], ((1, 2, 3, 4),) * 4, ((0, 0, 256),) * 4, ((0.5, 0, 0),) * 4):
        with pytest.raises(ConfigError, match="palette"):
            dataclasses.replace(meta, palette=bad)


def test_the_datamodule_palette_is_known_without_the_data():
    assert Cityscapes.class_colors == CITYSCAPES_COLORS and SyntheticStreets().class_colors == SYNTHETIC_COLORS
    # Cityscapes needs its folder to be built; its colours do not
    assert training_palette({"_class_path": "cilight.datamodules.Cityscapes", "root": "/nowhere"}, 19) == CITYSCAPES_COLORS
    assert training_palette({"_class_path": "cilight.datamodules.SyntheticStreets"}, 10) == SYNTHETIC_COLORS
    assert training_palette({"_class_path": "cilight.datamodules.SyntheticStreets"}, 19) == ()  # too few colours
    assert training_palette({}, 10) == ()  # no datamodule recorded: no guess
    assert training_palette({"_class_path": "os.path.join"}, 10) == ()


def test_demo_colours_segmentation_with_the_metadata_palette(tmp_path):
    model = four_class_model()
    picture = tmp_path / "street.png"
    Image.fromarray((images(1)[0].permute(1, 2, 0).numpy() * 255).astype(np.uint8)).save(picture)
    with_palette, without = tmp_path / "with", tmp_path / "without"
    export_halves(model, with_palette, HEIGHT, WIDTH, images(2), palette=PALETTE)
    result = run_demo(model, picture, with_palette, HEIGHT, WIDTH)
    assert result["palette"] == "metadata"
    assert colours_of(with_palette / "demo_segmentation.png") <= set(PALETTE)

    export_halves(model, without, HEIGHT, WIDTH, images(2))
    result = run_demo(model, picture, without, HEIGHT, WIDTH)
    assert result["palette"].startswith("default")
    default = set(map(tuple, TaskContext(len(PALETTE)).colors().tolist()))
    assert colours_of(without / "demo_segmentation.png") <= default
