"""Export a trained :class:`MultiTaskCI` as two ONNX files, and check them against PyTorch.

Ulhaq, B.A.Sc. thesis, SFU 2020, §4.1.2 (Fig. 4.3): the device runs the client model with its
quantizer (``edge.onnx``), the server the dequantizer and the rest (``cloud.onnx``);
:mod:`cilight.deploy` runs them with ONNX Runtime around the byte codecs.

* Static image size (``height × width``, the size the model is deployed at: phones and
  accelerators want static shapes), dynamic batch axis ``batch``.
* Single self-contained files (no external-data sidecar), ``onnx.checker`` full check.
* ``metadata_props`` (:func:`metadata`, a :class:`~cilight.deploy.wire.HalfMetadata`):
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
from cilight.ci_models.halves import CloudHalf, CodingGraph, EdgeHalf, coding_graph_names, wire_tensor_names
from cilight.codecs.concealment import DatasetMean
from cilight.codecs.learned import tables_digest
from cilight.codecs.operating_point import parse_operating_point
from cilight.codecs.quantizers import get_quantizer
from cilight.deploy.wire import (
    IMAGE,
    NO_QUANTIZER,
    HalfMetadata,
    onnx_session,
    save_sealed,
    stream_side,
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
    """The metadata both files carry, from what every stream's transmission says of its wire
    (``model.wires``); ``codec`` is the default operating point (``jpeg2000:bpe=1``; a transmission
    that writes its own bytes, a learned bottleneck, has codec ``learned`` whatever is asked);
    ``palette`` the training data's class colours."""
    wires = model.wires(height, width)
    kinds = {(w.quantizer, w.bits, w.codec) for w in wires.values()}
    if len(kinds) != 1:
        raise ConfigError(f"the streams of one model must share a quantizer, bits and codec on the wire, got {sorted(kinds)}")
    quantizer, bits, own_codec = kinds.pop()
    extra = dict(model.wire_extra())
    for w in wires.values():
        extra.update(w.extra)
    return HalfMetadata(
        half=half,
        split_points=tuple(model.split_points),
        stream_shapes={s: tuple(w.shape) for s, w in wires.items()},
        input_shape=(3, height, width),
        outputs=tuple(task.output_name for task in model.tasks),
        bits=bits,
        codec=own_codec or str(parse_operating_point(codec)),
        num_classes=model.task_context.num_classes,
        backbone=model.backbone,
        model_version=model_version(model),
        cilight_version=cilight.__version__,
        quantizer=quantizer,
        extra=extra,
        latents={s: dict(w.latents) for s, w in wires.items() if w.latents},
        hyper_rows=tuple(sorted({r for w in wires.values() for r in w.hyper_rows})),
        tables_digest={s: tables_digest(w.tables, tuple(w.latents)).hex() for s, w in wires.items() if w.latents},
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
    save_sealed(proto, path)  # with the SHA-256 of its own bytes, which every load checks
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
def verify_halves(model, folder: Path, images: torch.Tensor) -> ParityReport:
    """Run the files in ``folder`` on ``images`` with ONNX Runtime and compare with ``model`` in eval
    mode: every integer wire tensor (codes, symbols) and every coding graph's output (a hyperprior's
    rows) with PyTorch's, the cloud half on identical inputs, and edge → cloud against the model."""
    model = model.eval()
    height, width = images.shape[-2:]
    names, receiving = wire_tensor_names(model), wire_tensor_names(model, "cloud")
    outputs = [task.output_name for task in model.tasks]
    onnx_wire = dict(zip(names, onnx_session(folder / "edge.onnx").run(names, {IMAGE: images.numpy()})))
    torch_wire = dict(zip(names, (t.numpy() for t in EdgeHalf(model)(images))))
    report = ParityReport(samples=len(images))
    for name in names:
        if not np.issubdtype(torch_wire[name].dtype, np.floating):  # side information is checked through the cloud
            report.compare_codes(name, onnx_wire[name], torch_wire[name])
    for graph_name in coding_graph_names(model, height, width):
        graph = CodingGraph(model, graph_name, height, width)
        got = onnx_session(folder / f"{graph_name}.onnx").run(graph.outputs, {n: torch_wire[n] for n in graph.inputs})
        expected = graph(*(torch.from_numpy(torch_wire[n]) for n in graph.inputs))
        for name, a, b in zip(graph.outputs, got, expected):
            report.compare_codes(name, a, b.numpy())
    # The cloud half on identical inputs isolates the cloud graph from edge rounding.
    cloud = onnx_session(folder / "cloud.onnx")
    report.compare_cloud(cloud, CloudHalf(model), receiving, torch_wire, outputs)
    report.compare_chained(model, images, dict(zip(outputs, cloud.run(outputs, {n: onnx_wire[n] for n in receiving}))))
    return report


def export_halves(model, out: Path, height: int, width: int, images: torch.Tensor, opset: int = DEFAULT_OPSET,
                  codec: str = "png", palette=()) -> ParityReport:
    """Write ``out/edge.onnx``, ``out/cloud.onnx`` (and a coding graph such as ``hyper.onnx`` and
    ``entropy_tables.npz`` where a transmission has them), then verify them on ``images``.

    ``codec``: the operating point written as the runtimes' default (``png``, ``jpeg2000:bpe=1``).
    ``palette``: the class colours of the training data (``datamodule.class_colors``), for the demo.

    Raises :class:`ParityError` (and removes every file it wrote) if the check fails.
    """
    check_image_size(model, height, width)
    if not isinstance(opset, int) or opset < DEFAULT_OPSET:
        raise ConfigError(f"opset={opset!r}: expected an integer ≥ {DEFAULT_OPSET} (the torch.export-based exporter's minimum)")
    if images.shape[1:] != (3, height, width):
        raise ConfigError(f"verification images have shape {tuple(images.shape)}, expected [N, 3, {height}, {width}]")
    model = model.eval().cpu()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    meta = metadata(model, height, width, codec, "edge", palette)  # the wire is checked before minutes of export
    names, receiving = wire_tensor_names(model), wire_tensor_names(model, "cloud")
    example = images[:2]
    wire = dict(zip(names, EdgeHalf(model)(example)))  # eagerly first: a model that cannot run yet says why here
    paths = [out / "edge.onnx", out / "cloud.onnx"]
    _export(EdgeHalf(model), (example,), paths[0], [IMAGE], names, opset, meta, variadic=False)
    outputs = [task.output_name for task in model.tasks]
    _export(CloudHalf(model), tuple(wire[n] for n in receiving), paths[1], receiving, outputs, opset,
            metadata(model, height, width, codec, "cloud", palette))
    for graph_name in coding_graph_names(model, height, width):
        graph = CodingGraph(model, graph_name, height, width)
        paths.append(out / f"{graph_name}.onnx")
        _export(graph, tuple(wire[n] for n in graph.inputs), paths[-1], graph.inputs, graph.outputs, opset,
                metadata(model, height, width, codec, graph_name, palette))
    tables = {s: w.tables for s, w in model.wires(height, width).items() if w.tables is not None}
    if tables:
        paths.append(write_entropy_tables(out, tables))
    report = verify_halves(model, out, images)
    if report.failures:
        for path in paths:
            path.unlink()
        raise ParityError(report.table())
    return report


@torch.no_grad()
def stream_means(model, batches) -> tuple[dict[str, np.ndarray], int]:
    """``(μ(y, x, c) per split point, images)``: the mean of each transmitted stream over ``batches`` of
    images (``[B, 3, H, W]`` in [0, 1]) as the cloud sees it — the edge half's codes dequantized with
    the wire's side information, exactly what a received packet holds. Only for streams of quantized
    codes (a learned bottleneck's symbols are not sent in packets)."""
    model = model.eval().cpu()
    means: dict[str, DatasetMean] = {}
    images = 0
    for batch in batches:
        wires = model.wires(*batch.shape[-2:])
        for split, (codes, low, high) in zip(model.split_points, model.edge(batch)):
            wire = wires[split]
            if wire.quantizer == NO_QUANTIZER:
                raise ConfigError(f"stream {split} sends range-coded symbols, not quantized codes: it has no dataset mean")
            quantizer = get_quantizer(wire.quantizer, bits=wire.bits)
            values = [quantizer.dequantize(codes[b], stream_side(low[b].numpy(), high[b].numpy(), wire.quantizer))
                      for b in range(len(codes))]
            means.setdefault(split, DatasetMean()).update(np.stack(values))
        images += len(batch)
    if not images:
        raise ConfigError("no images to compute the dataset mean on")
    return {split: m.compute() for split, m in means.items()}, images
