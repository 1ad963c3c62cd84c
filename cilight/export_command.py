"""What ``export.py`` does once :mod:`cilight.export_cli` has checked its arguments."""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time

import torch

from cilight.ci_models import BaFPredictor, MultiTaskCI
from cilight.ci_models.checkpoints import load_model
from cilight.codecs import get_codec, parse_operating_point
from cilight.datamodules import generate_sample
from cilight.datamodules.from_checkpoint import datamodule_from
from cilight.demo import run_demo
from cilight.deploy.wire import DATASET_MEAN, write_dataset_mean
from cilight.edge_int8 import EDGE_INT8, Int8ParityError, export_edge_int8
from cilight.errors import ConfigError
from cilight.onnx_export import ParityError, export_halves, stream_means

DEFAULT_CODEC = "png"  # the runtimes' default operating point when --codec is not given


def export_checkpoint(args: argparse.Namespace) -> int:
    """Export, check and demo the halves of ``args.ckpt`` (arguments checked by :func:`check_arguments`)."""
    point = parse_operating_point(DEFAULT_CODEC if args.codec is None else args.codec)
    get_codec(point.codec, **point.codec_options).check_rate(**point.rate_options)  # before minutes of export
    model, data = load_model(args.ckpt, accept=(MultiTaskCI, BaFPredictor))
    height = args.height or data.get("height")
    width = args.width or data.get("width")
    if not height or not width:
        raise ConfigError("the checkpoint does not record its image size: pass --height and --width")
    own_codecs = sorted({w.codec for w in model.wires(height, width).values() if w.codec})
    if own_codecs and args.codec is not None:
        raise ConfigError(f"--codec {args.codec}: this checkpoint's streams are coded by their transmission's own codec "
                          f"({', '.join(own_codecs)}; its rate is set by training); leave --codec out")
    if own_codecs and args.edge_int8:
        raise ConfigError(f"--edge-int8: this checkpoint's streams send a learned bottleneck's symbols "
                          f"({', '.join(own_codecs)}); an int8 edge half is made for streams of quantized codes (Q-layer, BaF)")
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
    if (args.out / EDGE_INT8).exists():  # an int8 half of an earlier export does not match these halves
        (args.out / EDGE_INT8).unlink()
        print(f"  {EDGE_INT8} of an earlier export removed{'' if args.edge_int8 else ' (--edge-int8 writes a new one)'}")
    for name in sorted(p.name for p in args.out.iterdir() if p.suffix in (".onnx", ".npz")):
        if name != DATASET_MEAN:
            print(f"  {name}  {(args.out / name).stat().st_size / 1e6:.1f} MB")
    print(f"  export + check: {time.perf_counter() - start:.1f} s")
    if args.edge_int8:
        calibration = training_images(data, args.int8_calibration_images, height, width, args.data_root)
        classification = [t.output_name for t in model.tasks if t.kind == "classification"]
        try:
            report = export_edge_int8(args.out, calibration, images.numpy(), classification, args.int8_calibration_images)
        except Int8ParityError as err:
            print(err.report.table())
            print(f"error: {err}", file=sys.stderr)
            return 1
        print(report.table())
        size, float_size = ((args.out / name).stat().st_size for name in (EDGE_INT8, "edge.onnx"))
        print(f"  {EDGE_INT8}  {size / 1e6:.1f} MB ({size / float_size:.2f} of edge.onnx), calibrated on "
              f"{report.calibration_images} training images")
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
