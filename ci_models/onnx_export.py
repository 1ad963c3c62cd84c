"""Export a trained :class:`MultiTaskCI` as two ONNX files, and check them against PyTorch.

Ulhaq, B.A.Sc. thesis, SFU 2020, §4.1.2 (Fig. 4.3): the device runs the client model with its
quantizer (``edge.onnx``), the server the dequantizer and the rest (``cloud.onnx``);
:mod:`cilight.deploy` runs them with ONNX Runtime around the byte codecs.

* Static image size (``height × width``, the size the model is deployed at: phones and
  accelerators want static shapes), dynamic batch axis ``batch``.
* Single self-contained files (no external-data sidecar), ``onnx.checker`` full check.
* ``metadata_props`` (:func:`metadata`, a :class:`~cilight.codecs.wire.HalfMetadata`):
  everything a runtime needs — split points, stream shapes, tensor names, output names (one
  per task), quantizer, the default operating point, model and cilight versions.
* :func:`verify_halves` runs both files on real samples and compares with the PyTorch model in
  eval mode; :func:`export_halves` refuses to leave files behind that fail it.
* A learned bottleneck (codec ``learned``) exports ``edge.onnx`` (image → symbols),
  ``hyper.onnx`` for a hyperprior (``z`` symbols → ``y`` rows), ``cloud.onnx`` (``y`` symbols →
  outputs) and ``entropy_tables.npz``; the same checks, with symbols and rows for codes.
* :func:`stream_means` — each stream's mean tensor ``μ(y, x, c)`` over training images as the
  cloud receives them (dequantized codes), written beside the halves for error concealment
  (Ulhaq, B.A.Sc. thesis, SFU 2020, §3.2).
"""

from __future__ import annotations

import hashlib
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

import cilight
from cilight.ci_models.halves import CloudHalf, EdgeHalf, HyperHalf, LearnedCloudHalf, LearnedEdgeHalf
from cilight.codecs.concealment import DatasetMean
from cilight.codecs.learned import tables_digest
from cilight.codecs.operating_point import parse_operating_point
from cilight.codecs.quantizers import get_quantizer
from cilight.codecs.wire import (
    IMAGE,
    STREAM_FIELDS,
    SYNTHESIS_LATENT,
    HalfMetadata,
    latent_tensor_names,
    onnx_session,
    stream_side,
    stream_tensor_names,
    write_entropy_tables,
)
from cilight.errors import CilightError, ConfigError

DEFAULT_OPSET = 18
# Codes may differ by one level where float rounding of ONNX Runtime and PyTorch kernels puts
# a value on the other side of a rounding boundary; anything else is a bug.
MIN_CODE_AGREEMENT = 0.999
# Cloud half on identical inputs: max |ONNX − PyTorch| ≤ CLOUD_TOLERANCE · (1 + max |PyTorch|).
CLOUD_TOLERANCE = 1e-4
# Chained edge → cloud against the PyTorch model: labels of every classification task (segmentation)
# agree on ≥ 99% of pixels.
MIN_LABEL_AGREEMENT = 0.99


class ParityError(CilightError, RuntimeError):
    """The exported halves do not reproduce the PyTorch model within the stated tolerances."""


def model_version(model: torch.nn.Module) -> str:
    """``sha256:<12 hex>`` of the parameters and buffers: names the exact weights exported."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return "sha256:" + digest.hexdigest()[:12]


def metadata(model, height: int, width: int, codec: str = "png", half: str = "edge", palette=()) -> HalfMetadata:
    """The metadata both files carry; ``codec`` is the default operating point (``jpeg2000:bpe=1``;
    ``learned`` for a learned bottleneck, whatever is asked); ``palette`` the training data's class colours."""
    learned = getattr(model, "bottlenecks", None) is not None
    if learned:
        codec = "learned"
        tables = dict(zip(model.split_points, model.entropy_tables))
        order = dict(zip(model.split_points, (b.coding_order for b in model.bottlenecks)))
    return HalfMetadata(
        half=half,
        split_points=tuple(model.split_points),
        stream_shapes=model.stream_shapes(height, width),
        input_shape=(3, height, width),
        outputs=tuple(task.output_name for task in model.tasks),
        bits=model.bits,
        codec=str(parse_operating_point(codec)),
        num_classes=model.task_context.num_classes,
        backbone=model.backbone,
        model_version=model_version(model),
        cilight_version=cilight.__version__,
        quantizer=model.quantizer,
        extra=model.wire_extra(),
        latents=model.latent_shapes(height, width) if learned else {},
        hyper_rows=tuple(sorted({r for b in model.bottlenecks for r in b.hyper_rows})) if learned else (),
        tables_digest={s: tables_digest(t, order[s]).hex() for s, t in tables.items()} if learned else {},
        palette=tuple(tuple(int(v) for v in c) for c in palette),
    )


def check_image_size(model, height: int, width: int) -> None:
    stride = model.stride
    for name, value in (("height", height), ("width", width)):
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0 or value % stride:
            raise ConfigError(f"{name}={value!r}: expected a positive multiple of {stride} (the stride of "
                              f"split point {model.split_points[-1]!r})")


def _export(module: torch.nn.Module, args: tuple, path: Path, input_names, output_names, opset: int,
            meta: HalfMetadata, variadic: bool = True) -> None:
    batch = torch.export.Dim("batch", min=1, max=1024)
    # a cloud half's forward(*tensors) is one variadic argument for torch.export: nest its shapes
    per_tensor = tuple({0: batch} for _ in args)
    dynamic = (per_tensor,) if variadic else per_tensor
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=UserWarning, module=r"torch\.onnx")
        warnings.filterwarnings("ignore", category=FutureWarning)
        program = torch.onnx.export(
            module.eval(), args, None, dynamo=True, input_names=list(input_names), output_names=list(output_names),
            dynamic_shapes=dynamic, opset_version=opset, verbose=False,
        )
    import onnx

    proto = program.model_proto
    for key, value in meta.props().items():
        proto.metadata_props.add(key=key, value=value)
    onnx.save_model(proto, str(path), save_as_external_data=False)
    onnx.checker.check_model(str(path), full_check=True)


@dataclass
class ParityReport:
    """What :func:`verify_halves` measured; :meth:`table` prints it."""

    samples: int
    code_agreement: dict[str, float] = field(default_factory=dict)
    max_code_difference: dict[str, int] = field(default_factory=dict)
    cloud_max_error: dict[str, float] = field(default_factory=dict)  # relative to 1 + max |ref|
    chained_label_agreement: float = 1.0
    chained_mean_abs_difference: dict[str, float] = field(default_factory=dict)

    @property
    def failures(self) -> list[str]:
        out = [f"codes of {s}: {a:.4%} identical < {MIN_CODE_AGREEMENT:.1%}"
               for s, a in self.code_agreement.items() if a < MIN_CODE_AGREEMENT]
        out += [f"codes of {s} differ by {d} levels" for s, d in self.max_code_difference.items() if d > 1]
        out += [f"cloud {t}: max error {e:.2e} > {CLOUD_TOLERANCE:.0e}" for t, e in self.cloud_max_error.items()
                if not e <= CLOUD_TOLERANCE]
        if self.chained_label_agreement < MIN_LABEL_AGREEMENT:
            out.append(f"chained labels agree on {self.chained_label_agreement:.2%} < {MIN_LABEL_AGREEMENT:.0%}")
        return out

    def compare_codes(self, name: str, got: np.ndarray, expected: np.ndarray) -> None:
        """Integer tensors of the edge (codes, symbols, rows): the share identical and the largest difference."""
        a, b = got.astype(np.int64), expected.astype(np.int64)
        self.code_agreement[name] = float(np.mean(a == b))
        self.max_code_difference[name] = int(np.abs(a - b).max())

    def compare_cloud(self, session, half: torch.nn.Module, inputs: list[str], feed: dict[str, np.ndarray],
                      outputs: list[str]) -> None:
        """The ONNX cloud half against the PyTorch one on identical inputs."""
        got = dict(zip(outputs, session.run(outputs, {n: feed[n] for n in inputs})))
        reference = half(*(torch.from_numpy(feed[n]) for n in inputs))
        for name, ref in zip(outputs, (t.numpy() for t in reference)):
            self.cloud_max_error[name] = float(np.abs(got[name] - ref).max() / (1 + np.abs(ref).max()))

    def compare_chained(self, model, images: torch.Tensor, chained: dict[str, np.ndarray]) -> None:
        """Edge → cloud (both ONNX) against the PyTorch model in eval mode."""
        reference = model(images)
        for task in model.tasks:
            got, ref = chained[task.output_name], reference[task.name].numpy()
            if task.kind == "classification":  # labels: the argmax over classes, as a user reads them
                self.chained_label_agreement = min(self.chained_label_agreement,
                                                   float(np.mean(got.argmax(1) == ref.argmax(1))))
            else:
                self.chained_mean_abs_difference[task.name] = float(np.abs(got - ref).mean())

    def table(self) -> str:
        lines = [f"parity of the ONNX halves with PyTorch (eval mode), {self.samples} samples:"]
        for s, a in self.code_agreement.items():
            label = s if "_" in s else f"codes {s}"  # a split point's codes, or a latent's symbols or rows
            lines.append(f"  edge  {label:<18} identical {a:9.4%}   max |Δ| {self.max_code_difference[s]} level(s)"
                         f"   (need ≥ {MIN_CODE_AGREEMENT:.1%}, ≤ 1)")
        for t, e in self.cloud_max_error.items():
            lines.append(f"  cloud {t:<16} max |Δ|/(1+max|ref|) {e:.2e}   (need ≤ {CLOUD_TOLERANCE:.0e})")
        lines.append(f"  edge→cloud labels agree {self.chained_label_agreement:.3%}"
                     f"   (need ≥ {MIN_LABEL_AGREEMENT:.0%})")
        for t, d in self.chained_mean_abs_difference.items():
            lines.append(f"  edge→cloud {t:<14} mean |Δ| {d:.2e}")
        lines.append("  PASSED" if not self.failures else "  FAILED: " + "; ".join(self.failures))
        return "\n".join(lines)


@torch.no_grad()
def verify_halves(model, edge_path: Path, cloud_path: Path, images: torch.Tensor) -> ParityReport:
    """Run both files on ``images`` with ONNX Runtime and compare with ``model`` in eval mode."""
    model = model.eval()
    edge, cloud = onnx_session(edge_path), onnx_session(cloud_path)
    names = stream_tensor_names(model.split_points)
    outputs = [task.output_name for task in model.tasks]
    onnx_streams = dict(zip(names, edge.run(names, {IMAGE: images.numpy()})))
    torch_streams = dict(zip(names, (t.numpy() for t in EdgeHalf(model)(images))))
    report = ParityReport(samples=len(images))
    for split in model.split_points:
        report.compare_codes(split, onnx_streams[f"codes_{split}"], torch_streams[f"codes_{split}"])
    # The cloud half on identical inputs isolates the cloud graph from edge rounding.
    report.compare_cloud(cloud, CloudHalf(model), names, torch_streams, outputs)
    report.compare_chained(model, images, dict(zip(outputs, cloud.run(outputs, onnx_streams))))
    return report


@torch.no_grad()
def verify_learned_halves(model, folder: Path, images: torch.Tensor) -> ParityReport:
    """The parity check of a learned bottleneck's halves: every latent's symbols (and, for a
    hyperprior, the rows ``hyper.onnx`` computes) against PyTorch, the cloud on identical symbols,
    and edge → cloud against the model in eval mode."""
    model = model.eval()
    height, width = images.shape[-2:]
    latents = model.latent_shapes(height, width)
    names, ys = latent_tensor_names(latents), latent_tensor_names(latents, only=SYNTHESIS_LATENT)
    outputs = [task.output_name for task in model.tasks]
    onnx_symbols = dict(zip(names, onnx_session(folder / "edge.onnx").run(names, {IMAGE: images.numpy()})))
    torch_symbols = dict(zip(names, (t.numpy() for t in LearnedEdgeHalf(model, height, width)(images))))
    report = ParityReport(samples=len(images))
    for name in names:
        report.compare_codes(name, onnx_symbols[name], torch_symbols[name])
    if (folder / "hyper.onnx").is_file():
        zs, rows = latent_tensor_names(latents, only="z"), latent_tensor_names(latents, "rows", only=SYNTHESIS_LATENT)
        onnx_rows = onnx_session(folder / "hyper.onnx").run(rows, {z: torch_symbols[z] for z in zs})
        torch_rows = HyperHalf(model, height, width)(*(torch.from_numpy(torch_symbols[z]) for z in zs))
        for name, a, b in zip(rows, onnx_rows, torch_rows):
            report.compare_codes(name, a, b.numpy())
    cloud = onnx_session(folder / "cloud.onnx")
    report.compare_cloud(cloud, LearnedCloudHalf(model, height, width), ys, torch_symbols, outputs)
    report.compare_chained(model, images, dict(zip(outputs, cloud.run(outputs, {y: onnx_symbols[y] for y in ys}))))
    return report


def export_halves(model, out: Path, height: int, width: int, images: torch.Tensor, opset: int = DEFAULT_OPSET,
                  codec: str = "png", palette=()) -> ParityReport:
    """Write ``out/edge.onnx`` and ``out/cloud.onnx``, then verify them on ``images``.

    ``codec``: the operating point written as the runtimes' default (``png``, ``jpeg2000:bpe=1``);
    ``palette``: the class colours of the training data (``datamodule.class_colors``), for the demo.

    Raises :class:`ParityError` (and removes both files) if the check fails.
    """
    check_image_size(model, height, width)
    if not isinstance(opset, int) or opset < DEFAULT_OPSET:
        raise ConfigError(f"opset={opset!r}: expected an integer ≥ {DEFAULT_OPSET} (the torch.export-based exporter's minimum)")
    if images.shape[1:] != (3, height, width):
        raise ConfigError(f"verification images have shape {tuple(images.shape)}, expected [N, 3, {height}, {width}]")
    model = model.eval().cpu()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if getattr(model, "bottlenecks", None) is not None:
        return _export_learned(model, out, height, width, images, opset, palette)
    names = stream_tensor_names(model.split_points)
    example = images[:2]
    edge_path, cloud_path = out / "edge.onnx", out / "cloud.onnx"
    streams = EdgeHalf(model)(example)  # eagerly first: a model that cannot run yet says why here
    _export(EdgeHalf(model), (example,), edge_path, [IMAGE], names, opset, metadata(model, height, width, codec, "edge", palette),
            variadic=False)
    outputs = [task.output_name for task in model.tasks]
    _export(CloudHalf(model), tuple(streams), cloud_path, names, outputs, opset,
            metadata(model, height, width, codec, "cloud", palette))
    report = verify_halves(model, edge_path, cloud_path, images)
    if report.failures:
        edge_path.unlink()
        cloud_path.unlink()
        raise ParityError(report.table())
    return report


def _export_learned(model, out: Path, height: int, width: int, images: torch.Tensor, opset: int,
                    palette=()) -> ParityReport:
    if model.entropy_tables is None:
        raise ConfigError("this model's learned bottleneck has no entropy tables: export a checkpoint written by "
                          "train.py (or call fix_entropy_tables() first)")
    latents = model.latent_shapes(height, width)
    names, ys = latent_tensor_names(latents), latent_tensor_names(latents, only=SYNTHESIS_LATENT)
    outputs = [task.output_name for task in model.tasks]
    edge = LearnedEdgeHalf(model, height, width)
    example = images[:2]
    symbols = dict(zip(names, edge(example)))
    paths = [out / "edge.onnx", out / "cloud.onnx"]
    _export(edge, (example,), paths[0], [IMAGE], names, opset, metadata(model, height, width, half="edge", palette=palette),
            variadic=False)
    _export(LearnedCloudHalf(model, height, width), tuple(symbols[y] for y in ys), paths[1], ys, outputs, opset,
            metadata(model, height, width, half="cloud", palette=palette))
    if any(b.hyper_rows for b in model.bottlenecks):
        zs, rows = latent_tensor_names(latents, only="z"), latent_tensor_names(latents, "rows", only=SYNTHESIS_LATENT)
        paths.append(out / "hyper.onnx")
        _export(HyperHalf(model, height, width), tuple(symbols[z] for z in zs), paths[2], zs, rows, opset,
                metadata(model, height, width, half="hyper", palette=palette))
    paths.append(write_entropy_tables(out, dict(zip(model.split_points, model.entropy_tables))))
    report = verify_learned_halves(model, out, images)
    if report.failures:
        for path in paths:
            path.unlink()
        raise ParityError(report.table())
    return report


@torch.no_grad()
def stream_means(model, batches) -> tuple[dict[str, np.ndarray], int]:
    """``(μ(y, x, c) per split point, images)``: the mean of each stream over ``batches`` of images
    (``[B, 3, H, W]`` in [0, 1]) as the cloud sees it — the edge half's codes dequantized with the
    wire's side information, exactly what a received packet holds."""
    model = model.eval().cpu()
    quantizer = get_quantizer(model.quantizer, bits=model.bits)
    means = {split: DatasetMean() for split in model.split_points}
    images = 0
    for batch in batches:
        tensors = EdgeHalf(model)(batch)
        n = len(STREAM_FIELDS)
        for split, (codes, low, high) in zip(model.split_points, (tensors[i : i + n] for i in range(0, len(tensors), n))):
            values = [quantizer.dequantize(codes[b], stream_side(low[b].numpy(), high[b].numpy(), model.quantizer))
                      for b in range(len(codes))]
            means[split].update(torch.stack(values))
        images += len(batch)
    if not images:
        raise ConfigError("no images to compute the dataset mean on")
    return {split: m.compute().numpy() for split, m in means.items()}, images
