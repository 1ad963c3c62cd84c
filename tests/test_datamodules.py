"""Datamodules against independent numpy computations: SyntheticStreets geometry, Cityscapes on a fake tree."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cilight.ci_models import DEFAULT_TASKS, TaskContext, resolve_tasks, trivial_baselines
from cilight.datamodules import Cityscapes, SyntheticStreets, generate_sample
from cilight.datamodules.synthetic import BASELINE, CAMERA_HEIGHT, CLASS_NAMES, GROUND_CLASSES, HORIZON_RANGE, SKY
from cilight.errors import ConfigError, DatasetError

H, W = 64, 128
KEYS = {"image", "segmentation", "disparity", "disparity_mask"}


def tiny_synthetic(**overrides) -> SyntheticStreets:
    options = {"height": H, "width": W, "num_train": 6, "num_val": 3, "num_test": 4, "batch_size": 4, "seed": 0}
    return SyntheticStreets(**{**options, **overrides})


def assert_item_contract(item: dict, height: int, width: int, num_classes: int) -> None:
    assert set(item) == KEYS
    assert item["image"].dtype == torch.float32 and item["image"].shape == (3, height, width)
    assert item["segmentation"].dtype == torch.int64 and item["segmentation"].shape == (height, width)
    assert item["disparity"].dtype == torch.float32 and item["disparity"].shape == (height, width)
    assert item["disparity_mask"].dtype == torch.bool and item["disparity_mask"].shape == (height, width)
    assert 0.0 <= item["image"].min() and item["image"].max() <= 1.0
    labels = item["segmentation"].unique().tolist()
    assert all(0 <= c < num_classes or c == 255 for c in labels), labels
    mask, disparity = item["disparity_mask"], item["disparity"]
    assert torch.all(disparity[~mask] == 0) and torch.all(disparity[mask] >= 0)


# --------------------------------------------------------------------------------------
# SyntheticStreets
# --------------------------------------------------------------------------------------


def test_generate_sample_is_deterministic_and_seeded():
    a, b = generate_sample(7, "train", 3, H, W), generate_sample(7, "train", 3, H, W)
    for key in KEYS:
        np.testing.assert_array_equal(a[key], b[key])
    other_seed = generate_sample(8, "train", 3, H, W)
    other_split = generate_sample(7, "val", 3, H, W)
    other_index = generate_sample(7, "train", 4, H, W)
    for other in (other_seed, other_split, other_index):
        assert not np.array_equal(a["image"], other["image"])
        assert not np.array_equal(a["segmentation"], other["segmentation"])


def test_sample_independent_of_split_size_and_matches_generator():
    small = tiny_synthetic(num_train=3).dataset("train")
    large = tiny_synthetic(num_train=7).dataset("train")
    for i in range(3):
        x, y = small[i], large[i]
        for key in KEYS:
            assert torch.equal(x[key], y[key]), (i, key)
    raw = generate_sample(0, "train", 2, H, W)
    item = small[2]
    np.testing.assert_allclose(item["image"].numpy(), raw["image"] / 255.0, atol=1e-7)
    np.testing.assert_array_equal(item["segmentation"].numpy(), raw["segmentation"])
    np.testing.assert_array_equal(item["disparity_mask"].numpy(), raw["disparity_mask"])
    # stored as float16: relative error below 2^-11
    np.testing.assert_allclose(item["disparity"].numpy(), raw["disparity"], rtol=2**-11, atol=0)


def test_item_contract_and_class_coverage():
    dm = tiny_synthetic(num_train=16)
    assert dm.num_classes == len(CLASS_NAMES) == len(dm.class_names) == len(dm.class_colors) == 10
    seen = set()
    for i in range(16):
        item = dm.dataset("train")[i]
        assert_item_contract(item, H, W, dm.num_classes)
        seen |= set(item["segmentation"].unique().tolist()) - {255}
    assert len(seen) >= 8, seen


def ground_fit(sample: dict) -> tuple[float, float, np.ndarray]:
    """Least-squares line through the per-row disparity of ground pixels: (slope, horizon row, rows)."""
    seg, disparity = sample["segmentation"], sample["disparity"]
    ground = np.isin(seg, GROUND_CLASSES)
    rows = np.flatnonzero(ground.any(axis=1))
    per_row = [disparity[r][ground[r]] for r in rows]
    # a ground row is one depth, hence one disparity
    assert max(float(v.max() - v.min()) for v in per_row) < 1e-4
    centres = rows + 0.5
    means = np.array([v.mean() for v in per_row], np.float64)
    slope, intercept = np.polyfit(centres, means, 1)
    residual = np.abs(slope * centres + intercept - means).max()
    assert residual < 1e-3, residual
    return float(slope), float(-intercept / slope), rows


@pytest.mark.parametrize("index", range(6))
def test_ground_disparity_is_linear_in_row(index):
    sample = generate_sample(1, "test", index, H, W)
    slope, horizon, rows = ground_fit(sample)
    assert slope == pytest.approx(BASELINE / CAMERA_HEIGHT, rel=1e-4)
    assert HORIZON_RANGE[0] * H - 1e-3 <= horizon <= HORIZON_RANGE[1] * H + 1e-3
    assert rows.min() + 0.5 > horizon  # the ground lies below the horizon only

    seg, disparity, mask = sample["segmentation"], sample["disparity"], sample["disparity_mask"]
    sky = seg == SKY
    assert sky.any()
    assert np.all(disparity[sky] == 0) and not mask[sky].any()
    row_centres = np.arange(H)[:, None] + 0.5
    assert np.all(np.broadcast_to(row_centres, seg.shape)[sky] < horizon + 1e-3)
    # invalid exactly on sky and the ego car's bonnet (ignore label)
    np.testing.assert_array_equal(~mask, sky | (seg == 255))
    # d = f·B/Z and Y = h − (v − v0)·Z/f ≥ 0 for every visible point: nothing lies under the road,
    # i.e. no pixel is farther than the ground line at its row.
    ground_line = BASELINE * (row_centres - horizon) / CAMERA_HEIGHT
    assert np.all(disparity[mask] >= np.broadcast_to(ground_line, seg.shape)[mask] - 1e-3)


def test_disparity_scales_with_resolution():
    # f = FOCAL_PER_WIDTH·width: the same scene at twice the size has twice the disparity.
    lo, hi = generate_sample(3, "val", 1, H, W), generate_sample(3, "val", 1, 2 * H, 2 * W)
    _, horizon_lo, _ = ground_fit(lo)
    _, horizon_hi, _ = ground_fit(hi)
    assert horizon_hi == pytest.approx(2 * horizon_lo, abs=1e-3)
    block = hi["disparity"].reshape(H, 2, W, 2).mean(axis=(1, 3))
    ground_hi = np.isin(hi["segmentation"], GROUND_CLASSES).reshape(H, 2, W, 2).all(axis=(1, 3))
    ground = ground_hi & np.isin(lo["segmentation"], GROUND_CLASSES)
    assert ground.sum() > 1000
    # ground disparity is linear in the row, so a 2×2 block mean samples the low-res pixel centre
    np.testing.assert_allclose(block[ground], 2 * lo["disparity"][ground], rtol=1e-4)
    both = lo["disparity_mask"] & hi["disparity_mask"].reshape(H, 2, W, 2).all(axis=(1, 3))
    assert np.median(block[both] / lo["disparity"][both]) == pytest.approx(2.0, rel=1e-3)


@pytest.mark.parametrize(
    "kwargs,needle",
    [
        ({"height": 100}, "height=100"),
        ({"width": 130}, "width=130"),
        ({"batch_size": 0}, "batch_size=0"),
        ({"height": True}, "height=True"),
        ({"seed": -1}, "seed=-1"),
        ({"num_train": 0}, "num_train=0"),
        ({"num_workers": 1.5}, "num_workers=1.5"),
    ],
)
def test_synthetic_config_errors(kwargs, needle):
    with pytest.raises(ConfigError) as info:
        SyntheticStreets(**kwargs)
    assert needle in str(info.value)
    assert isinstance(info.value, ValueError)


def _identify(batch_images: torch.Tensor, dataset_images: list[torch.Tensor]) -> list[int]:
    return [next(i for i, ref in enumerate(dataset_images) if torch.equal(img, ref)) for img in batch_images]


def _epoch_order(loader, dataset_images) -> list[int]:
    return [i for batch in loader for i in _identify(batch["image"], dataset_images)]


def test_train_loader_shuffles_reproducibly_and_drops_last():
    dm = tiny_synthetic(num_train=8, batch_size=3, seed=5)
    images = [dm.dataset("train")[i]["image"] for i in range(8)]
    loader = dm.train_dataloader()
    first, second = _epoch_order(loader, images), _epoch_order(loader, images)
    # 8 samples, batches of 3: the ragged batch of 2 is dropped
    assert [len(b["image"]) for b in loader] == [3, 3]
    assert len(first) == len(set(first)) == 6
    assert first != list(range(6)) and first != second
    again = tiny_synthetic(num_train=8, batch_size=3, seed=5).train_dataloader()
    assert _epoch_order(again, images) == first and _epoch_order(again, images) == second
    # the seed also draws the samples, so identify them within their own datamodule
    other = tiny_synthetic(num_train=8, batch_size=3, seed=6)
    other_images = [other.dataset("train")[i]["image"] for i in range(8)]
    assert _epoch_order(other.train_dataloader(), other_images) != first


def test_loaders_keep_small_splits_whole():
    dm = tiny_synthetic(num_train=4, num_val=5, batch_size=4)
    # a train split no larger than one batch keeps its only batch
    assert [len(b["image"]) for b in dm.train_dataloader()] == [4]
    val_images = [dm.dataset("val")[i]["image"] for i in range(5)]
    assert [len(b["image"]) for b in dm.val_dataloader()] == [4, 1]
    assert _epoch_order(dm.val_dataloader(), val_images) == list(range(5))
    assert sum(len(b["image"]) for b in dm.test_dataloader()) == 4


def reference_baselines(train: list[dict], test: list[dict], num_classes: int) -> dict[str, float]:
    """Trivial predictors written out with numpy, one sample at a time."""
    seg = np.concatenate([s["segmentation"].numpy().ravel() for s in train])
    majority = int(np.bincount(seg[seg != 255], minlength=num_classes).argmax())
    valid_train = [s["disparity"].numpy()[s["disparity_mask"].numpy()] for s in train]
    mean_disp = np.concatenate(valid_train).astype(np.float64).mean()
    mean_image = np.mean([s["image"].numpy().astype(np.float64) for s in train], axis=0)

    target = np.concatenate([s["segmentation"].numpy().ravel() for s in test])
    target = target[target != 255]
    # prediction = majority everywhere: IoU(majority) = its share, IoU(other present class) = 0
    present = set(np.unique(target).tolist()) | {majority}
    miou = np.mean([(target == majority).mean() if c == majority else 0.0 for c in present])
    errors = np.concatenate([s["disparity"].numpy()[s["disparity_mask"].numpy()] - mean_disp for s in test])
    psnr = [10 * math.log10(1.0 / np.mean((s["image"].numpy() - mean_image) ** 2)) for s in test]
    rmse = math.sqrt(np.mean(errors**2))
    return {"segmentation_miou": miou, "disparity_rmse": rmse, "reconstruction_psnr": np.mean(psnr)}


def test_trivial_baselines_match_numpy():
    """Every task's trivial predictor, scored by the task's own metrics, against a numpy computation."""
    dm = tiny_synthetic(num_train=5, num_test=3, batch_size=2)
    context = TaskContext(dm.num_classes, dm.ignore_index)
    got = trivial_baselines(resolve_tasks(DEFAULT_TASKS), context, dm.sequential_loader("train", 2),
                            dm.sequential_loader("test", 2))
    train = [dm.dataset("train")[i] for i in range(5)]
    test = [dm.dataset("test")[i] for i in range(3)]
    want = reference_baselines(train, test, dm.num_classes)
    want["disparity_irmse"] = 1 / want["disparity_rmse"]
    assert set(got) == set(want)
    for key in want:
        assert got[key] == pytest.approx(want[key], rel=1e-5), key
    assert 0 < got["segmentation_miou"] < 1 and got["disparity_rmse"] > 0


# --------------------------------------------------------------------------------------
# Cityscapes on a fake tree
# --------------------------------------------------------------------------------------

# cityscapesScripts labels.py: label id → train id of the 19 evaluated classes
OFFICIAL_TRAIN_IDS = {7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9, 23: 10,
                      24: 11, 25: 12, 26: 13, 27: 14, 28: 15, 31: 16, 32: 17, 33: 18}
SRC_H, SRC_W = 40, 100  # not a multiple of the output size, so nearest resampling is not trivial
OUT_H, OUT_W = 32, 64
TREE = {"train": {"aachen": 3, "bochum": 2}, "val": {"frankfurt": 2}}


def write_tree(root: Path, src_h: int = SRC_H, src_w: int = SRC_W) -> dict[str, dict]:
    """Fake Cityscapes tree; returns the source arrays of each image by stem (its tag is in the red channel)."""
    rng = np.random.default_rng(123)
    ids = np.array([0, 1, 7, 8, 9, 11, 21, 23, 24, 26, 33, 255])
    # 0 = invalid, 1 = valid zero disparity, then arbitrary values up to the 16-bit maximum
    raw_values = np.array([0, 1, 257, 1000, 5121, 25601, 65535], np.uint16)
    sources, tag = {}, 0
    for split, cities in TREE.items():
        for city, count in cities.items():
            for k in range(count):
                stem = f"{city}_{k:06d}_000019"
                tag += 1
                image = np.zeros((src_h, src_w, 3), np.uint8)
                image[:, : src_w // 2] = (10 * tag, 200, 30)
                image[:, src_w // 2 :] = (10 * tag, 40, 250)
                labels = rng.choice(ids, size=(src_h, src_w)).astype(np.uint8)
                raw = rng.choice(raw_values, size=(src_h, src_w)).astype(np.uint16)
                paths = {
                    "leftImg8bit": f"{stem}_leftImg8bit.png",
                    "gtFine": f"{stem}_gtFine_labelIds.png",
                    "disparity": f"{stem}_disparity.png",
                }
                for kind, array in (("leftImg8bit", image), ("gtFine", labels), ("disparity", raw)):
                    folder = root / kind / split / city
                    folder.mkdir(parents=True, exist_ok=True)
                    Image.fromarray(array).save(folder / paths[kind])
                sources[stem] = {"split": split, "tag": tag, "image": image, "labels": labels, "raw": raw}
    return sources


@pytest.fixture(scope="module")
def fake_tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("cityscapes")
    return root, write_tree(root)


def nearest_indices(size_in: int, size_out: int) -> np.ndarray:
    return np.floor((np.arange(size_out) + 0.5) * size_in / size_out).astype(np.int64)


def tag_of(item: dict) -> int:
    return round(float(item["image"][0, 0, 0]) * 255 / 10)


def test_cityscapes_items_map_labels_and_scale_disparity(fake_tree):
    root, sources = fake_tree
    dm = Cityscapes(root=str(root), height=OUT_H, width=OUT_W, val_fraction=0.4, batch_size=2, num_workers=0)
    assert dm.num_classes == 19 and len(dm.class_names) == len(dm.class_colors) == 19
    assert dm.class_names[0] == "road" and dm.class_names[13] == "car" and dm.class_colors[13] == (0, 0, 142)
    assert dm.hparams.root == str(root) and dm.hparams.val_fraction == 0.4
    lut = np.full(256, 255, np.int64)
    lut[list(OFFICIAL_TRAIN_IDS)] = list(OFFICIAL_TRAIN_IDS.values())
    rows, cols = nearest_indices(SRC_H, OUT_H), nearest_indices(SRC_W, OUT_W)
    by_tag = {s["tag"]: s for s in sources.values()}
    checked = 0
    for split in ("train", "val", "test"):
        for item in dm.dataset(split):
            assert_item_contract(item, OUT_H, OUT_W, 19)
            src = by_tag[tag_of(item)]
            np.testing.assert_array_equal(item["segmentation"].numpy(), lut[src["labels"][rows][:, cols]])
            raw = src["raw"][rows][:, cols].astype(np.float64)
            np.testing.assert_array_equal(item["disparity_mask"].numpy(), raw > 0)
            want = np.where(raw > 0, (raw - 1) / 256 * OUT_W / SRC_W, 0.0)
            np.testing.assert_allclose(item["disparity"].numpy(), want, rtol=1e-6, atol=1e-6)
            # bilinear image: the two flat halves keep their colours away from the seam
            image = item["image"].numpy() * 255
            left, right = src["image"][0, 0].reshape(3, 1, 1), src["image"][0, -1].reshape(3, 1, 1)
            np.testing.assert_allclose(image[:, :, :28], np.broadcast_to(left, (3, OUT_H, 28)), atol=0.5)
            np.testing.assert_allclose(image[:, :, 36:], np.broadcast_to(right, (3, OUT_H, 28)), atol=0.5)
            checked += 1
    assert checked == 7
    batch = next(iter(dm.val_dataloader()))
    assert batch["image"].shape == (2, 3, OUT_H, OUT_W)


def test_cityscapes_label_table_spot_checks(tmp_path):
    write_tree(tmp_path, src_h=OUT_H, src_w=OUT_W)
    labels = np.array([[7, 26, 0, 9, 33, 255, 24, 23]], np.uint8).repeat(OUT_H, 0).repeat(OUT_W // 8, 1)
    raw = np.array([[0, 1, 257, 513, 65535, 0, 1, 129]], np.uint16).repeat(OUT_H, 0).repeat(OUT_W // 8, 1)
    Image.fromarray(labels).save(tmp_path / "gtFine/val/frankfurt/frankfurt_000000_000019_gtFine_labelIds.png")
    Image.fromarray(raw).save(tmp_path / "disparity/val/frankfurt/frankfurt_000000_000019_disparity.png")
    dm = Cityscapes(root=str(tmp_path), height=OUT_H, width=OUT_W, num_workers=0)
    item = dm.dataset("test")[0]  # same size: no resampling, scale 1
    assert item["segmentation"][0, :: OUT_W // 8].tolist() == [0, 13, 255, 255, 18, 255, 11, 10]
    assert item["disparity"][0, :: OUT_W // 8].tolist() == [0.0, 0.0, 1.0, 2.0, 65534 / 256, 0.0, 0.0, 0.5]
    assert item["disparity_mask"][0, :: OUT_W // 8].tolist() == [False, True, True, True, True, False, True, True]


def split_tags(dm: Cityscapes) -> dict[str, list[int]]:
    return {split: [tag_of(item) for item in dm.dataset(split)] for split in ("train", "val", "test")}


def test_cityscapes_splits(fake_tree):
    root, sources = fake_tree
    official = {split: sorted(s["tag"] for s in sources.values() if s["split"] == split) for split in TREE}
    dm = Cityscapes(root=str(root), height=32, width=32, val_fraction=0.4, seed=0, num_workers=0)
    tags = split_tags(dm)
    assert len(tags["val"]) == 2 and len(tags["train"]) == 3  # round(0.4 · 5)
    assert not set(tags["val"]) & set(tags["train"])
    assert sorted(tags["train"] + tags["val"]) == official["train"]
    assert tags["test"] == official["val"]  # the official val split is the test split, in sorted order
    assert split_tags(Cityscapes(root=str(root), height=32, width=32, val_fraction=0.4, seed=0, num_workers=0)) == tags
    other_seeds = [
        split_tags(Cityscapes(root=str(root), height=32, width=32, val_fraction=0.4, seed=s, num_workers=0))["val"]
        for s in range(1, 6)
    ]
    assert any(sorted(v) != sorted(tags["val"]) for v in other_seeds)
    # a tiny fraction still holds out one image, a large one still trains on one
    assert len(Cityscapes(root=str(root), val_fraction=0.01, num_workers=0).dataset("val")) == 1
    assert len(Cityscapes(root=str(root), val_fraction=0.99, num_workers=0).dataset("train")) == 1


def test_cityscapes_bad_arguments(fake_tree):
    root, _ = fake_tree
    for value in (0, 1, 1.5, True):
        with pytest.raises(ConfigError, match=f"val_fraction={value!r}"):
            Cityscapes(root=str(root), val_fraction=value)
    with pytest.raises(ConfigError, match="height=100"):
        Cityscapes(root=str(root), height=100)


def test_cityscapes_missing_root(tmp_path):
    missing = tmp_path / "nope"
    with pytest.raises(DatasetError) as info:
        Cityscapes(root=str(missing))
    message = str(info.value)
    assert str(missing) in message
    assert "leftImg8bit" in message and "gtFine_labelIds.png" in message and "_disparity.png" in message
    assert isinstance(info.value, FileNotFoundError)


@pytest.mark.parametrize(
    "remove,needle",
    [
        ("disparity/train/bochum/bochum_000001_000019_disparity.png", None),
        ("gtFine/val/frankfurt/frankfurt_000000_000019_gtFine_labelIds.png", None),
        ("leftImg8bit/val", "leftImg8bit/val"),
    ],
)
def test_cityscapes_incomplete_tree(tmp_path, remove, needle):
    write_tree(tmp_path, src_h=8, src_w=16)
    path = tmp_path / remove
    if path.is_dir():
        for file in sorted(path.rglob("*"), reverse=True):
            file.unlink() if file.is_file() else file.rmdir()
        path.rmdir()
    else:
        path.unlink()
    with pytest.raises(DatasetError) as info:
        Cityscapes(root=str(tmp_path))
    assert str(tmp_path / (needle or remove)) in str(info.value)


def test_cityscapes_without_images(tmp_path):
    (tmp_path / "leftImg8bit" / "train" / "aachen").mkdir(parents=True)
    (tmp_path / "leftImg8bit" / "val").mkdir(parents=True)
    with pytest.raises(DatasetError, match="no \\*_leftImg8bit.png images"):
        Cityscapes(root=str(tmp_path))
