"""The remote-inference anchor: ``image:`` curve families code the input image, and the whole model runs on
the decoded image — parsing, bits against Pillow, lossless PNG, falling quality, the original image as the
reconstruction target, a learned bottleneck beside it, BD-rate against it, the WebP codec, the CLI."""

from __future__ import annotations

import io
import json
import shutil

import numpy as np
import pytest
import torch
from helpers import smooth_images, tiny_model
from PIL import Image
from torchmetrics.image import PeakSignalNoiseRatio

from cilight.ci_models import BottleneckTransmission, MultiTaskCI
from cilight.codecs import CODECS, CodecError, codec_of, decode, get_codec, parse_operating_points
from cilight.datamodules import SyntheticStreets
from cilight.errors import ConfigError
from cilight.evaluation import (
    CurvePoint,
    ImagePoint,
    RateAccuracyCurves,
    bd_rate_rows,
    camera_pixels,
    code_pictures,
    family_bd_rate_rows,
    measure_curves,
    parse_families,
)


@pytest.fixture(scope="module")
def batches():
    data = SyntheticStreets(height=64, width=128, num_train=4, num_val=2, num_test=6, batch_size=4)
    data.setup("test")
    return list(data.test_dataloader())  # two batches: 4 + 2 images


@pytest.fixture(scope="module")
def camera_batches(batches):
    """The same batches with 8-bit images (k/255), as a camera's images are: PNG codes them exactly."""
    return [{**b, "image": torch.round(b["image"] * 255) / 255} for b in batches]


@pytest.fixture(scope="module")
def model():
    return tiny_model(["layer3"], num_classes=10)


def pillow_jpeg(rgb: np.ndarray, quality: int) -> bytes:
    out = io.BytesIO()
    Image.fromarray(rgb).save(out, format="JPEG", quality=quality)
    return out.getvalue()


# --------------------------------------------------------------------------- parsing
def test_image_families_parse_name_and_print_back():
    unnamed, remote, paper = parse_families(["image:jpeg:quality=90,50", "remote=image:png+image:jpeg2000:bpe=1,0.5",
                                             "paper=png+jpeg:quality=90"])
    assert unnamed.name == "image-jpeg" and unnamed.codes_image and len(unnamed.points) == 2
    assert all(isinstance(p, ImagePoint) for p in unnamed.points)
    assert [str(p) for p in unnamed.points] == ["image:jpeg:quality=90", "image:jpeg:quality=50"]
    assert [p.point.rate for p in unnamed.points] == [90, 50]
    assert str(remote) == "remote=image:png+image:jpeg2000:bpe=1+image:jpeg2000:bpe=0.5"
    assert parse_families(str(remote)) == (remote,)  # what a curves file records parses back to the same family
    assert not paper.codes_image and parse_families("image:webp:quality=75")[0].name == "image-webp"


@pytest.mark.parametrize("text,expected", [
    ("mixed=png+image:jpeg:quality=90", r"mixes points that code the input image \(image:jpeg:quality=90\) with "
                                        r"points that code the features \(png\)"),
    ("image:jpg:quality=90", r"'jpg' is not an image codec; expected one of png, jpeg, jpeg2000, webp.*did you mean "
                             r"'image:jpeg'"),
    ("image:wepb:quality=90", "did you mean 'image:webp'"),
    ("image:learned", "'learned' is not an image codec"),
    ("image:proxy", "'proxy' is not an image codec"),
    ("image:jpeg:quality=90:quantizer=clip", "quantizer is an option of feature coding"),
    ("image:webp:quality=101", r"webp quality=101: expected an integer from 0 to 100"),
    ("image:png:quality=9", "codec 'png' takes no 'quality'"),
])
def test_bad_image_points_are_one_line(text, expected):
    with pytest.raises(ConfigError, match=expected) as err:
        parse_families(text)
    assert "\n" not in str(err.value)


# --------------------------------------------------------------------------- measuring
def test_bits_are_the_image_files_bytes_and_the_model_runs_on_the_decoded_image(batches, model):
    families = parse_families(["remote=image:jpeg:quality=90,50", "image:webp:quality=60"])
    curves = measure_curves(model, batches, families, progress=False)
    assert [p.point for p in curves.points] == ["image:jpeg:quality=90", "image:jpeg:quality=50", "image:webp:quality=60"]
    height, width = batches[0]["image"].shape[-2:]
    assert curves.provenance["image_elements"] == 3 * height * width
    reference = model.task_metrics(sync=False)
    with torch.no_grad():
        for point, quality in zip(curves.points[:2], (90, 50)):
            bits, metrics = 0, model.task_metrics(sync=False)
            for batch in batches:
                decoded = []
                for image in batch["image"]:  # independently: Pillow's JPEG of the camera's 8-bit RGB image
                    rgb = (image.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
                    data = pillow_jpeg(rgb, quality)
                    bits += 8 * len(data)
                    decoded.append(torch.from_numpy(np.array(Image.open(io.BytesIO(data)))).permute(2, 0, 1) / 255)
                metrics.update(model(torch.stack(decoded)), batch)
                if quality == 90:
                    reference.update(model(batch["image"]), batch)
            assert point.bits_per_image == bits / 6 and point.stream_bits == (bits / 6,)
            assert point.bits_per_element == pytest.approx(bits / 6 / (3 * height * width), rel=1e-12)
            assert point.metrics == pytest.approx({k: float(v) for k, v in metrics.compute().items()}, rel=1e-5)
    # the reference is the model on the raw image, as for feature curves; the streams' elements stay the streams'
    assert curves.reference == pytest.approx({k: float(v) for k, v in reference.compute().items()}, rel=1e-5)
    assert curves.elements == sum(int(f[0].numel()) for f in model.features(batches[0]["image"][:1]))
    webp = get_codec("webp")  # the registered codec called directly
    expected = sum(8 * len(webp.encode_picture(rgb, quality=60)) for b in batches for rgb in camera_pixels(b["image"]))
    assert curves.points[2].bits_per_image == expected / 6


def test_lossless_png_scores_the_reference(camera_batches, model):
    curves = measure_curves(model, camera_batches, parse_families("image:png"), progress=False)
    (point,) = curves.points
    assert point.metrics == pytest.approx(curves.reference, rel=1e-6, abs=1e-6)
    rgb = camera_pixels(camera_batches[0]["image"])
    assert np.array_equal(rgb[0], np.asarray(Image.open(io.BytesIO(get_codec("png").encode_picture(rgb[0])))))


def test_outputs_drift_from_the_reference_as_jpeg_quality_falls(batches, model):
    """An untrained model's metrics hardly move (it labels every pixel alike), so its outputs are compared:
    every task's output strays further from the model's on the raw image as JPEG quality falls."""
    images = batches[0]["image"]
    with torch.no_grad():
        reference = model(images)
        drift, bits = {}, {}
        for quality in (95, 50, 5):
            (point,) = parse_families(f"image:jpeg:quality={quality}")[0].points
            decoded, sizes = code_pictures(point, images)
            assert decoded.shape == images.shape and decoded.dtype == images.dtype
            outputs = model(decoded)
            drift[quality] = {k: float((outputs[k] - reference[k]).abs().mean()) for k in reference}
            bits[quality] = float(sizes.sum())
    for task in reference:
        assert 0 < drift[95][task] < drift[50][task] < drift[5][task], task
    assert bits[95] > bits[50] > bits[5]


def test_the_reconstruction_target_is_the_original_image(batches, monkeypatch):
    """A model that "reconstructs" exactly the image it was given: against the original it scores a finite PSNR
    on a decoded JPEG (the decoded image as the target would score infinity) and infinity on the original."""
    model, given = tiny_model(["layer3"], num_classes=10), []
    monkeypatch.setattr(model.encoder, "forward", lambda images, forward=model.encoder.forward:
                        given.append(images) or forward(images))
    monkeypatch.setattr(model.decoder, "forward", lambda streams, forward=model.decoder.forward:
                        {**forward(streams), "reconstruction": given.pop()})
    batch = batches[1]
    curves = measure_curves(model, [batch], parse_families("image:jpeg:quality=30"), progress=False)
    (point,) = curves.points
    assert curves.reference["reconstruction_psnr"] == float("inf")
    psnr = PeakSignalNoiseRatio(data_range=1.0, reduction="elementwise_mean", dim=(1, 2, 3))
    decoded = torch.stack([torch.from_numpy(np.array(Image.open(io.BytesIO(pillow_jpeg(rgb, 30))))).permute(2, 0, 1)
                           for rgb in camera_pixels(batch["image"])]) / 255
    expected = float(psnr(decoded, batch["image"]))
    assert 10 < point.metrics["reconstruction_psnr"] < 60
    assert point.metrics["reconstruction_psnr"] == pytest.approx(expected, rel=1e-5)


def test_an_unreachable_image_rate_is_named(batches, model):
    with pytest.raises(ConfigError, match=r"operating point image:jpeg2000:bpe=0.0001 of curve family 'r': "
                                          r"target_bits=\d+ is below the smallest jpeg2000 codestream"):
        measure_curves(model, batches[:1], parse_families("r=image:jpeg2000:bpe=0.0001"), progress=False)


def test_a_learned_bottleneck_is_measured_beside_remote_inference(batches):
    torch.manual_seed(0)
    model = MultiTaskCI(split_points=["layer3"], num_classes=10, decoder_width=8,
                        transmission=BottleneckTransmission.spec(channels=16)).eval()
    model.transmissions[0].fix_tables()
    curves = measure_curves(model, batches[:1], parse_families(["learned", "remote=image:jpeg:quality=80,40"]),
                            progress=False)
    assert curves.families == ("learned", "remote") and curves.codes_image("remote")
    assert not curves.codes_image("learned")
    plain = measure_curves(tiny_model(["layer3"], num_classes=10), batches[:1],
                           parse_families(["remote=image:jpeg:quality=80,40"]), progress=False)
    assert [p.bits_per_image for p in curves.family("remote")] == [p.bits_per_image for p in plain.points]
    # remote inference alone, and a feature codec refused in one line that says what may be measured
    assert measure_curves(model, batches[:1], parse_families("image:png"), progress=False).families == ("image-png",)
    with pytest.raises(ConfigError, match=r"own codec \(learned\).*got \['jpeg:quality=80'\]; image:… families"):
        measure_curves(model, batches[:1], parse_families(["jpeg:quality=80", "image:png"]), progress=False)


# --------------------------------------------------------------------------- BD-rate against it
def synthetic(family: str, prefix: str, scale: float) -> tuple[CurvePoint, ...]:
    rates = np.array([1000.0, 2000, 4000, 8000, 16000])
    miou = np.array([0.30, 0.40, 0.46, 0.49, 0.50])
    return tuple(CurvePoint(family, f"{prefix}p{i}", scale * r, scale * r / 1e4, (scale * r,),
                            {"segmentation_miou": m, "disparity_irmse": 2 * m}) for i, (r, m) in enumerate(zip(rates, miou)))


def curves_of(*points: tuple[CurvePoint, ...]) -> RateAccuracyCurves:
    return RateAccuracyCurves(sum(points, ()), {"segmentation_miou": 0.5, "disparity_irmse": 1.0},
                              {"segmentation": "segmentation_miou", "disparity": "disparity_irmse"}, 10_000, 8)


def test_bd_rate_of_coded_features_against_remote_inference():
    curves = curves_of(synthetic("paper", "jpeg:quality=", 0.5), synthetic("remote", "image:jpeg:quality=", 1.0))
    rows = family_bd_rate_rows(curves, "remote")
    assert [(r.test, r.family, r.task) for r in rows] == [("paper", "remote", "segmentation"),
                                                          ("paper", "remote", "disparity")]
    assert all(r.bd_rate == pytest.approx(-50.0) for r in rows)  # half the bits of sending the image
    with pytest.raises(ConfigError, match="no curve family 'wide'"):
        family_bd_rate_rows(curves, "wide")
    # between models: a learned bottleneck's one feature family meets the anchor's, and remote meets remote
    anchor = curves_of(synthetic("paper", "jpeg:quality=", 1.0), synthetic("remote", "image:jpeg:quality=", 1.0))
    learned = curves_of(synthetic("learned", "learned:", 0.5), synthetic("remote", "image:jpeg:quality=", 2.0))
    rows = bd_rate_rows(anchor, {"bottleneck": learned})
    assert {(r.family, r.task): round(r.bd_rate) for r in rows} == {
        ("paper", "segmentation"): -50, ("paper", "disparity"): -50, ("remote", "segmentation"): 100,
        ("remote", "disparity"): 100}


def test_bd_rate_rows_run_on_measured_feature_and_remote_families(batches, model):
    families = parse_families(["paper=png+jpeg:quality=95,60,30,10", "remote=image:png+image:jpeg:quality=95,50,10"])
    curves = measure_curves(model, batches, families, progress=False)
    rows = family_bd_rate_rows(curves, "remote", min_overlap=0, dominated="drop")
    assert {(r.test, r.family) for r in rows} == {("paper", "remote")}
    assert [r.task for r in rows] == list(curves.tasks)
    assert all((r.bd_rate is None) == ("bd_rate:" in r.note) for r in rows)


# --------------------------------------------------------------------------- the WebP codec
def test_webp_feature_codec_round_trips_in_its_own_container():
    assert CODECS["webp"].container_id == 5 and parse_operating_points("webp:quality=90,30")[1].rate == 30
    x = torch.randn(16, 8, 12, generator=torch.Generator().manual_seed(0))
    sizes = []
    for quality in (100, 60, 10):
        data = get_codec("webp").encode(x, quality=quality)
        assert codec_of(data).name == "webp" and data[5] == 5  # the container's codec byte
        y = decode(data)
        assert y.shape == tuple(x.shape) and y.dtype == x.numpy().dtype
        sizes.append(len(data))
    assert sizes[0] > sizes[1] > sizes[2]
    step = float(x.max() - x.min()) / 255
    assert float(np.abs(decode(get_codec("webp").encode(x, quality=100)) - x.numpy()).mean()) < 2 * step
    with pytest.raises(CodecError):
        decode(get_codec("webp").encode(x)[:-10])
    with pytest.raises(CodecError, match="at most 16383 pixels on a side"):
        get_codec("webp", tiling="power_of_two").encode(torch.zeros(1, 2, 16384))


@pytest.mark.parametrize("name,rate", [("png", {}), ("jpeg", {"quality": 80}), ("webp", {"quality": 80}),
                                       ("jpeg2000", {"bpe": 1.0})])
def test_every_image_codec_codes_a_picture(name, rate):
    rgb = camera_pixels(smooth_images(1, 64, 96))[0]
    codec = get_codec(name)
    data = codec.encode_picture(rgb, **rate)
    back = codec.decode_picture(data, 64, 96)
    assert back.shape == (64, 96, 3) and back.dtype == np.uint8
    assert np.array_equal(back, rgb) if name == "png" else np.abs(back.astype(int) - rgb).mean() < 4
    if name == "jpeg2000":  # a rate per element counts the picture's 3·H·W elements (one encode: a few % off)
        assert 8 * len(data) == pytest.approx(3 * 64 * 96, rel=0.1)
    with pytest.raises(CodecError, match="holds a"):
        codec.decode_picture(data, 32, 96)
    with pytest.raises(CodecError, match=r"uint8 \[H, W, 3\]"):
        codec.encode_picture(rgb[..., 0], **rate)


# --------------------------------------------------------------------------- the CLI
def test_evaluate_curves_and_bdrate_with_a_remote_family(tiny_checkpoint, tmp_path, capsys):
    from cilight.evaluate_cli import main

    codecs = ["paper=png+jpeg:quality=90,50", "remote=image:jpeg:quality=90,50"]
    assert main(["curves", "--ckpt", str(tiny_checkpoint), "--codecs", *codecs, "--images", "2",
                 "--out", str(tmp_path / "curves")]) == 0
    out = capsys.readouterr().out
    assert "image:jpeg:quality=50" in out
    saved = RateAccuracyCurves.read(tmp_path / "curves" / "curves.json")
    assert saved.families == ("paper", "remote") and saved.codes_image("remote")
    assert saved.provenance["families"][1] == "remote=image:jpeg:quality=90+image:jpeg:quality=50"

    runs = []
    for name in ("anchor", "test"):  # copies: bdrate writes the curves beside each checkpoint
        path = tmp_path / name / "checkpoints" / "last.ckpt"
        path.parent.mkdir(parents=True)
        shutil.copy(tiny_checkpoint, path)
        runs.append(str(path))
    assert main(["bdrate", "--anchor", runs[0], "--test", runs[1], "--codecs", *codecs, "--images", "2",
                 "--out", str(tmp_path / "bd"), "--min-overlap", "0"]) == 0
    rows = json.loads((tmp_path / "bd" / "bdrate.json").read_text())["rows"]
    assert {r["family"] for r in rows} == {"paper", "remote"}
