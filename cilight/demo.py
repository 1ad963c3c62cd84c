"""``export.py --demo IMAGE``: one image edge → bytes → cloud through the exported halves.

Each task colours its own output (:attr:`~cilight.ci_models.tasks.Task.render`), so the demo
writes one PNG per task of the model, plus the input, the frame of bytes and its size. Class
colours come from the halves' metadata (:attr:`~cilight.deploy.wire.HalfMetadata.palette`, the
training data's ``class_colors`` written by ``export.py``); halves without one are coloured with
:meth:`~cilight.ci_models.tasks.TaskContext.colors`' fixed default palette, and the result says so.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from cilight.ci_models.tasks import TaskContext, image_to_rgb
from cilight.deploy import CloudRuntime, EdgeRuntime
from cilight.errors import ConfigError


def read_image(path: Path, height: int, width: int) -> np.ndarray:
    """``[1, 3, height, width]`` float32 in [0, 1] from any image Pillow reads."""
    if not path.is_file():
        raise ConfigError(f"--demo {path}: no such image")
    try:
        with Image.open(path) as img:
            rgb = img.convert("RGB").resize((width, height), Image.Resampling.BILINEAR)
    except OSError as err:
        raise ConfigError(f"--demo {path}: not an image Pillow can read ({err})") from None
    return (np.asarray(rgb, dtype=np.float32) / 255).transpose(2, 0, 1)[None]


def run_demo(model, image_path: Path, out: Path, height: int, width: int) -> dict:
    """Send the image through ``out/edge.onnx`` and ``out/cloud.onnx`` (the metadata's codec) and
    write ``demo_input.png``, ``demo_<task>.png`` for every task and ``demo_frame.bin``."""
    image = read_image(image_path, height, width)
    edge, cloud = EdgeRuntime(out / "edge.onnx"), CloudRuntime(out / "cloud.onnx")
    start = time.perf_counter()
    (frame,) = edge.encode(image)
    outputs = cloud.infer(frame)
    seconds = time.perf_counter() - start
    palette = cloud.meta.palette or None
    context = TaskContext(model.task_context.num_classes, model.task_context.ignore_index, palette)
    files = {"input": image_to_rgb(torch.from_numpy(image[0]))}
    for task in model.tasks:
        files[task.name] = task.render(torch.from_numpy(outputs[task.output_name][0]), None, context)
    for name, pixels in files.items():
        Image.fromarray(pixels).save(out / f"demo_{name}.png")
    (out / "demo_frame.bin").write_bytes(frame)
    return {"bytes": len(frame), "seconds": seconds, "codec": edge.meta.codec,
            "palette": "metadata" if palette else "default (no palette in the metadata)",
            "files": [f"demo_{n}.png" for n in files] + ["demo_frame.bin"]}


__all__ = ["read_image", "run_demo"]
