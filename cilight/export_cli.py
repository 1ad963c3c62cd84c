"""``python export.py``: write the edge and cloud ONNX halves of a checkpoint, check them, demo them.

    python export.py --ckpt CKPT --out DIR [--opset 18] [--height H --width W] [--samples 4]
                     [--codec png | jpeg:quality=90 | jpeg2000:bpe=1] [--mean-images 256] [--demo IMAGE]
                     [--edge-int8 [--int8-calibration-images 64]]

The image size defaults to the one the checkpoint's datamodule trained at. Verification runs
both files with ONNX Runtime on SyntheticStreets scenes rendered at that size and prints the
comparison with PyTorch; a failed check removes the files and exits with status 1. Beside the
halves goes ``dataset_mean.npz``: each stream's mean over the first ``--mean-images`` training
images of the checkpoint's datamodule, what the cloud runtime fills lost packets with
(``dataset_mean``/``hybrid`` concealment; ``--mean-images 0`` skips it). ``--codec``
is the operating point written into the metadata as the runtimes' default. A checkpoint with a
learned bottleneck exports ``edge.onnx`` (image → symbols), ``cloud.onnx`` (symbols → outputs),
``hyper.onnx`` (a hyperprior's rows) and ``entropy_tables.npz``; its codec is ``learned`` and it
has no dataset mean (its streams are sent whole, not in packets). ``--edge-int8`` also writes
``edge_int8.onnx``: the edge half with int8 convolutions calibrated on the first
``--int8-calibration-images`` training images (:mod:`cilight.edge_int8`), its Q-layer float, checked
against the float chain on the parity scenes (a failed check removes it and exits with status 1). With ``--demo
IMAGE`` the image goes edge → bytes → cloud through :mod:`cilight.deploy` and the predictions
are written as PNGs next to the ONNX files, with the byte count printed.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from cilight.entrypoint import ArgumentParser, run_main
from cilight.errors import ConfigError
from cilight.files import check_checkpoint_file, check_input_file, check_output_folder


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(prog="export.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--ckpt", required=True, type=Path, help="checkpoint written by train.py")
    parser.add_argument("--out", required=True, type=Path, help="folder for edge.onnx and cloud.onnx")
    parser.add_argument("--opset", type=int, default=18, help="ONNX opset (default 18)")
    parser.add_argument("--height", type=int, help="input height (default: the training size)")
    parser.add_argument("--width", type=int, help="input width (default: the training size)")
    parser.add_argument("--samples", type=int, default=4, help="scenes for the parity check (default 4)")
    parser.add_argument("--codec",
                        help="default operating point written in the metadata: png (the default), jpeg:quality=90, "
                             "jpeg2000:bpe=1 …")
    parser.add_argument("--mean-images", type=int, default=256,
                        help="training images for dataset_mean.npz, the concealment fill (default 256; 0: none)")
    parser.add_argument("--data-root", help="the dataset's folder, if it moved since training")
    parser.add_argument("--demo", type=Path, help="run this image edge → bytes → cloud and write the predictions")
    parser.add_argument("--edge-int8", action="store_true",
                        help="also write edge_int8.onnx: the edge half quantized to int8 (ONNX Runtime static "
                             "quantization), checked against the float chain")
    parser.add_argument("--int8-calibration-images", type=int, default=64,
                        help="training images that calibrate --edge-int8 (default 64)")
    return parser


def check_arguments(args: argparse.Namespace) -> None:
    """What the command line alone decides, checked before the checkpoint is loaded: counts and sizes,
    an int8 option without ``--edge-int8``, the checkpoint file, the output folder, the demo image."""
    for option, least in (("samples", 1), ("mean_images", 0), ("height", 1), ("width", 1), ("int8_calibration_images", 1)):
        value = getattr(args, option)
        if value is not None and value < least:
            raise ConfigError(f"--{option.replace('_', '-')} {value}: expected at least {least}")
    if not args.edge_int8 and args.int8_calibration_images != build_parser().get_default("int8_calibration_images"):
        raise ConfigError(f"--int8-calibration-images {args.int8_calibration_images}: calibrates the int8 edge half; "
                          "add --edge-int8")
    check_checkpoint_file(args.ckpt, "--ckpt")
    check_output_folder(args.out)
    if args.demo is not None:
        check_input_file(args.demo, "--demo", "an image file (PNG, JPEG, …)")


def export(argv=None) -> int:
    args = build_parser().parse_args(argv)
    check_arguments(args)
    # imported only now: --help and the checks above answer without torch, ONNX and the models
    from cilight.export_command import export_checkpoint

    return export_checkpoint(args)


def main(argv=None) -> int:
    """Entry point of ``export.py``: a user error prints one line and exits with status 2."""
    return run_main(export, argv)
