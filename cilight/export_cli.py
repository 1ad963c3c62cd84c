"""``python export.py``: write the edge and cloud ONNX halves of a checkpoint, check them, demo them.

    python export.py --ckpt CKPT --out DIR [--opset 18] [--height H --width W] [--samples 4]
                     [--codec png | jpeg:quality=90 | jpeg2000:bpe=1] [--mean-images 256] [--demo IMAGE]

The image size defaults to the one the checkpoint's datamodule trained at. Verification runs
both files with ONNX Runtime on SyntheticStreets scenes rendered at that size and prints the
comparison with PyTorch; a failed check removes the files and exits with status 1. Beside the
halves goes ``dataset_mean.npz``: each stream's mean over the first ``--mean-images`` training
images of the checkpoint's datamodule, what the cloud runtime fills lost packets with
(``dataset_mean``/``hybrid`` concealment; ``--mean-images 0`` skips it). ``--codec``
is the operating point written into the metadata as the runtimes' default. A checkpoint with a
learned bottleneck exports ``edge.onnx`` (image → symbols), ``cloud.onnx`` (symbols → outputs),
``hyper.onnx`` (a hyperprior's rows) and ``entropy_tables.npz``; its codec is ``learned`` and it
has no dataset mean (its streams are sent whole, not in packets). With ``--demo
IMAGE`` the image goes edge → bytes → cloud through :mod:`cilight.deploy` and the predictions
are written as PNGs next to the ONNX files, with the byte count printed.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
from pathlib import Path

import torch

from cilight.ci_models import BaFPredictor, MultiTaskCI
from cilight.ci_models.checkpoints import load_model
from cilight.ci_models.onnx_export import ParityError, export_halves, stream_means
from cilight.codecs import get_codec, parse_operating_point
from cilight.codecs.wire import DATASET_MEAN, write_dataset_mean
from cilight.datamodules import generate_sample
from cilight.datamodules.from_checkpoint import datamodule_from
from cilight.demo import run_demo
from cilight.entrypoint import run_main
from cilight.errors import ConfigError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="export.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--ckpt", required=True, type=Path, help="checkpoint written by train.py")
    parser.add_argument("--out", required=True, type=Path, help="folder for edge.onnx and cloud.onnx")
    parser.add_argument("--opset", type=int, default=18, help="ONNX opset (default 18)")
    parser.add_argument("--height", type=int, help="input height (default: the training size)")
    parser.add_argument("--width", type=int, help="input width (default: the training size)")
    parser.add_argument("--samples", type=int, default=4, help="scenes for the parity check (default 4)")
    parser.add_argument("--codec", default="png",
                        help="default operating point written in the metadata: png, jpeg:quality=90, jpeg2000:bpe=1 …")
    parser.add_argument("--mean-images", type=int, default=256,
                        help="training images for dataset_mean.npz, the concealment fill (default 256; 0: none)")
    parser.add_argument("--data-root", help="the dataset's folder, if it moved since training")
    parser.add_argument("--demo", type=Path, help="run this image edge → bytes → cloud and write the predictions")
    return parser


def export(argv=None) -> int:
    args = build_parser().parse_args(argv)
    point = parse_operating_point(args.codec)
    get_codec(point.codec, **point.codec_options).check_rate(**point.rate_options)  # before minutes of export
    model, data = load_model(args.ckpt, accept=(MultiTaskCI, BaFPredictor))
    height = args.height or data.get("height")
    width = args.width or data.get("width")
    if not height or not width:
        raise ConfigError("the checkpoint does not record its image size: pass --height and --width")
    own_codecs = sorted({w.codec for w in model.wires(height, width).values() if w.codec})
    if own_codecs and args.codec != build_parser().get_default("codec"):
        raise ConfigError(f"--codec {args.codec}: this checkpoint's streams are coded by their transmission's own codec "
                          f"({', '.join(own_codecs)}; its rate is set by training); leave --codec out")
    if args.samples < 1:
        raise ConfigError(f"--samples {args.samples}: expected at least 1")
    if args.mean_images < 0:
        raise ConfigError(f"--mean-images {args.mean_images}: expected 0 (no dataset mean) or more images")
    images = torch.stack([torch.from_numpy(generate_sample(0, "test", i, height, width)["image"]).float() / 255
                          for i in range(args.samples)])
    print(f"exporting {args.ckpt} ({', '.join(model.split_points)}; tasks {', '.join(t.name for t in model.tasks)}) "
          f"at {height}×{width}, opset {args.opset} → {args.out}")
    start = time.perf_counter()
    try:
        report = export_halves(model, args.out, height, width, images, args.opset, str(point),
                               training_palette(data, model.task_context.num_classes))
    except ParityError as err:
        print(err, file=sys.stderr)
        return 1
    print(report.table())
    for name in sorted(p.name for p in args.out.iterdir() if p.suffix in (".onnx", ".npz")):
        if name != DATASET_MEAN:
            print(f"  {name}  {(args.out / name).stat().st_size / 1e6:.1f} MB")
    print(f"  export + check: {time.perf_counter() - start:.1f} s")
    if args.mean_images and not own_codecs:  # an own codec's bytes are sent whole, never in packets
        means, count = stream_means(model, training_images(data, args.mean_images, height, width, args.data_root))
        path = write_dataset_mean(args.out, means, count)
        print(f"  {path.name}: stream means over {count} training images (concealment fill)")
    if args.demo:
        result = run_demo(model, args.demo, args.out, height, width)
        print(f"demo: {args.demo} → {result['bytes']} bytes ({result['codec']}) → {', '.join(result['files'])} "
              f"in {args.out} ({result['seconds'] * 1e3:.0f} ms edge + codec + cloud; colours: {result['palette']})")
        (args.out / "demo.json").write_text(json.dumps(result, indent=2))
    return 0


def training_palette(data: dict, num_classes: int) -> tuple[tuple[int, int, int], ...]:
    """The class colours of the checkpoint's datamodule (its class attribute ``class_colors``: no data
    is read), or ``()`` where the checkpoint names no datamodule or its colours do not cover the classes."""
    module, _, name = data.get("_class_path", "").rpartition(".")
    if not module.startswith("cilight."):
        return ()
    try:
        palette = tuple(getattr(getattr(importlib.import_module(module), name), "class_colors", ()) or ())
    except (ImportError, AttributeError, ValueError):
        return ()
    return palette if len(palette) >= num_classes else ()


def training_images(data: dict, count: int, height: int, width: int, root: str | None = None):
    """The first ``count`` training images of the checkpoint's datamodule at the export size, in batches."""
    datamodule = datamodule_from(data, height=height, width=width, **({"root": root} if root else {}))
    datamodule.setup("fit")
    seen = 0
    for batch in datamodule.sequential_loader("train"):
        images = batch["image"][: count - seen]
        yield images
        seen += len(images)
        if seen >= count:
            return


def main(argv=None) -> int:
    """Entry point of ``export.py``: a user error prints one line and exits with status 2."""
    return run_main(export, argv)
