"""``python export.py``: write the edge and cloud ONNX halves of a checkpoint, check them, demo them.

    python export.py --ckpt CKPT --out DIR [--opset 18] [--height H --width W] [--samples 4]
                     [--codec png|jpeg|jpeg2000] [--quality Q] [--bits-per-element R]
                     [--demo IMAGE]

The image size defaults to the one the checkpoint's datamodule trained at. Verification runs
both files with ONNX Runtime on SyntheticStreets scenes rendered at that size and prints the
comparison with PyTorch; a failed check removes the files and exits with status 1. With
``--demo IMAGE`` the image goes edge → bytes → cloud through :mod:`cilight.deploy` and the
predictions are written as PNGs next to the ONNX files, with the byte count printed.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from cilight.checkpoints import load_model
from cilight.errors import CilightError, ConfigError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="export.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--ckpt", required=True, type=Path, help="checkpoint written by train.py")
    parser.add_argument("--out", required=True, type=Path, help="folder for edge.onnx and cloud.onnx")
    parser.add_argument("--opset", type=int, default=18, help="ONNX opset (default 18)")
    parser.add_argument("--height", type=int, help="input height (default: the training size)")
    parser.add_argument("--width", type=int, help="input width (default: the training size)")
    parser.add_argument("--samples", type=int, default=4, help="scenes for the parity check (default 4)")
    parser.add_argument("--codec", default="png", help="default codec written in the metadata: png, jpeg or jpeg2000")
    parser.add_argument("--quality", type=int, help="jpeg quality")
    parser.add_argument("--bits-per-element", type=float, default=1.0,
                        help="jpeg2000 rate per stream, in bits per tensor element (default 1.0)")
    parser.add_argument("--demo", type=Path, help="run this image edge → bytes → cloud and write the predictions")
    return parser


def codec_options(args, stream_shapes: dict[str, list[int]]) -> tuple[dict, dict]:
    """(metadata codec defaults, per-stream rate options) for ``--codec``."""
    if args.codec == "jpeg2000":
        if not args.bits_per_element > 0:
            raise ConfigError(f"--bits-per-element {args.bits_per_element}: expected a positive number")
        rates = {s: {"target_bits": args.bits_per_element * int(np.prod(shape))} for s, shape in stream_shapes.items()}
        return {"name": "jpeg2000", "bits_per_element": args.bits_per_element}, rates
    if args.codec == "jpeg":
        return {"name": "jpeg", **({"quality": args.quality} if args.quality else {})}, {}
    return {"name": args.codec}, {}


def read_image(path: Path, height: int, width: int) -> np.ndarray:
    if not path.is_file():
        raise ConfigError(f"--demo {path}: no such image")
    try:
        with Image.open(path) as img:
            rgb = img.convert("RGB").resize((width, height), Image.Resampling.BILINEAR)
    except OSError as err:
        raise ConfigError(f"--demo {path}: not an image Pillow can read ({err})") from None
    return (np.asarray(rgb, dtype=np.float32) / 255).transpose(2, 0, 1)[None]


def demo(args, out: Path, rates: dict, height: int, width: int, num_classes: int) -> dict:
    from cilight.ci_models.callbacks import colorize_disparity, colorize_labels
    from cilight.datamodules.cityscapes import CLASS_COLORS as CITYSCAPES_COLORS
    from cilight.datamodules.synthetic import CLASS_COLORS as SYNTHETIC_COLORS
    from cilight.deploy import CloudRuntime, EdgeRuntime

    image = read_image(args.demo, height, width)
    edge, cloud = EdgeRuntime(out / "edge.onnx"), CloudRuntime(out / "cloud.onnx")
    start = time.perf_counter()
    (frame,) = edge.encode(image, rates)
    outputs = cloud.infer(frame)
    seconds = time.perf_counter() - start
    palette = next((np.asarray(c, np.uint8) for c in (SYNTHETIC_COLORS, CITYSCAPES_COLORS) if len(c) == num_classes),
                   np.random.default_rng(0).integers(0, 256, (num_classes, 3)).astype(np.uint8))
    disparity = outputs["disparity"][0]
    files = {
        "input": (image[0].transpose(1, 2, 0) * 255).round().astype(np.uint8),
        "segmentation": colorize_labels(outputs["segmentation"][0].argmax(0), palette),
        "disparity": colorize_disparity(disparity, None, float(np.percentile(disparity, 99))),
        "reconstruction": (outputs["reconstruction"][0].clip(0, 1).transpose(1, 2, 0) * 255).round().astype(np.uint8),
    }
    for name, pixels in files.items():
        Image.fromarray(pixels).save(out / f"demo_{name}.png")
    (out / "demo_frame.bin").write_bytes(frame)
    return {"bytes": len(frame), "seconds": seconds, "files": [f"demo_{n}.png" for n in files] + ["demo_frame.bin"]}


def run(argv=None) -> int:
    args = build_parser().parse_args(argv)
    from cilight.ci_models.onnx_export import ParityError, export_halves
    from cilight.datamodules import generate_sample

    model, data = load_model(args.ckpt)
    height = args.height or data.get("height")
    width = args.width or data.get("width")
    if not height or not width:
        raise ConfigError("the checkpoint does not record its image size: pass --height and --width")
    if args.samples < 1:
        raise ConfigError(f"--samples {args.samples}: expected at least 1")
    shapes = {layout.split_point: list(layout.shape(height, width)) for layout in model.layouts}
    codec, rates = codec_options(args, shapes)
    from cilight.codecs import get_codec

    get_codec(codec["name"], **({"quality": codec["quality"]} if "quality" in codec else {}))  # validate early
    images = torch.stack([torch.from_numpy(generate_sample(0, "test", i, height, width)["image"]).float() / 255
                          for i in range(args.samples)])
    print(f"exporting {args.ckpt} ({', '.join(model.split_points)}) at {height}×{width}, opset {args.opset} → {args.out}")
    start = time.perf_counter()
    try:
        report = export_halves(model, args.out, height, width, images, args.opset, codec)
    except ParityError as err:
        print(err, file=sys.stderr)
        return 1
    print(report.table())
    for half in ("edge", "cloud"):
        print(f"  {half}.onnx  {(args.out / f'{half}.onnx').stat().st_size / 1e6:.1f} MB")
    print(f"  export + check: {time.perf_counter() - start:.1f} s")
    if args.demo:
        result = demo(args, args.out, rates, height, width, model.hparams.num_classes)
        print(f"demo: {args.demo} → {result['bytes']} bytes ({codec['name']}) → {', '.join(result['files'])} "
              f"in {args.out} ({result['seconds'] * 1e3:.0f} ms edge + codec + cloud)")
        (args.out / "demo.json").write_text(json.dumps({**result, "codec": codec}, indent=2))
    return 0


def main(argv=None) -> int:
    """Entry point of ``export.py``: a user error prints one line and exits with status 2."""
    try:
        return run(argv)
    except CilightError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
