"""An int8 edge half: ``edge.onnx`` quantized by ONNX Runtime's static quantization, and its check.

The device runs the edge half (Ulhaq, B.A.Sc. thesis, SFU 2020, §4.1.2), where 8-bit integer
kernels are what phones and accelerators run fastest. :func:`quantize_edge` calibrates
``onnxruntime.quantization.quantize_static`` on training images and writes ``edge_int8.onnx``
beside ``edge.onnx`` (which stays):

::

    edge.onnx       image ─► Conv … Conv (float32) ─► Q-layer: min/max, round, clip ─► codes_s uint8, minimum_s, maximum_s
    edge_int8.onnx  image ─► Q/DQ ─► Conv … Conv (int8 weights per output channel, uint8 activations)
                          ─► the same Q-layer, in float32 ─► the same wire tensors

Only the network's matrix products (``Conv``, ``MatMul``, ``Gemm``: :data:`QUANTIZED_OPS`) are
quantized, in the QDQ format ONNX Runtime fuses into integer kernels; the Q-layer at the end of the
graph (the min–max range, rounding and clipping to the codes, a BaF stream's float16 bounds per
channel) stays float, so the wire tensors keep their types, range and meaning and the cloud half reads
the bytes unchanged. The cilight ``metadata_props`` are copied over (the runtimes open
``edge_int8.onnx`` like ``edge.onnx``), with one more entry, :data:`PRECISION_KEY`, saying how it was
quantized; the runtimes do not read it.

:func:`verify_int8` chains ``edge_int8.onnx`` → ``cloud.onnx`` and ``edge.onnx`` → ``cloud.onnx``
on the same images (both halves already checked against PyTorch by the exporter) and states what
int8 costs: classification labels must agree on ≥ :data:`INT8_MIN_LABEL_AGREEMENT` of the pixels,
every other output's relative RMS difference ``‖int8 − float‖₂ / ‖float‖₂`` must be ≤
:data:`INT8_MAX_RELATIVE_ERROR`, codes in ``[0, 2^bits − 1]``, side information finite.
:func:`export_edge_int8` removes the file when the check fails.

ONNX Runtime's quantization tools need ``onnx`` (the ``deploy`` extra); they are imported when used.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cilight.deploy.wire import IMAGE, NO_QUANTIZER, HalfMetadata, onnx_session, save_sealed
from cilight.errors import CilightError, ConfigError

EDGE_INT8 = "edge_int8.onnx"  # beside edge.onnx and cloud.onnx
QUANTIZED_OPS = ("Conv", "MatMul", "Gemm")
PRECISION_KEY = "edge_precision"  # metadata_props entry of edge_int8.onnx (JSON)
DEFAULT_CALIBRATION_IMAGES = 64
# Tolerances of the int8 chain against the float chain, set from what the default model measured
# (benchmarks/edge_int8.py, 128 test images; first after 3 epochs, then at the default 8): segmentation
# labels agreed on 99.67% / 99.62% of the pixels, disparity and reconstruction differed by a relative RMS
# of 0.0031 / 0.0034 and 0.0059 / 0.0074, and no task metric moved by more than 0.004. The bounds leave a
# margin of about 1.5 points of labels and 3× the RMS for other models and the few parity scenes; more
# than that is not an int8 rounding effect.
INT8_MIN_LABEL_AGREEMENT = 0.98
INT8_MAX_RELATIVE_ERROR = 0.02


class Int8ParityError(CilightError, RuntimeError):
    """The int8 edge half does not reproduce the float chain within the stated tolerances; ``report`` says
    what was measured."""

    def __init__(self, message: str, report: Int8Report) -> None:
        super().__init__(message)
        self.report = report


class _DropLog(logging.Filter):
    def __init__(self, prefix: str) -> None:
        super().__init__()
        self.prefix = prefix

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.prefix)


def _quantization():
    """``onnxruntime.quantization`` (which needs ``onnx``), or one line naming the extra."""
    try:
        import onnx  # noqa: F401  (onnxruntime.quantization reads and writes ONNX protos)
        from onnxruntime import quantization
    except ImportError as err:
        raise ConfigError(f"int8 quantization needs onnx and ONNX Runtime's quantization tools ({err}): "
                          "pip install 'cilight[deploy]'") from None
    return quantization


def check_calibration_images(count) -> int:
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ConfigError(f"calibration images {count!r}: expected a whole number ≥ 1 of training images")
    return count


def read_metadata(path: Path) -> tuple[dict[str, str], HalfMetadata]:
    """The ``metadata_props`` of an ONNX file and the :class:`HalfMetadata` they hold."""
    _quantization()
    import onnx

    props = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
    return props, HalfMetadata.from_props(props, path)


def _calibration_reader(batches: Iterable, count: int):
    """An ONNX Runtime ``CalibrationDataReader`` over the first ``count`` images of ``batches``
    (``[B, 3, H, W]`` float arrays or tensors in [0, 1])."""
    quantization = _quantization()

    class TrainingImages(quantization.CalibrationDataReader):
        def __init__(self) -> None:
            self.seen = 0
            self.batches = self._feed()
            self.first = next(self.batches, None)  # an empty source is refused before ONNX Runtime sees it

        def _feed(self) -> Iterator[dict[str, np.ndarray]]:
            for batch in batches:
                batch = np.asarray(batch, dtype=np.float32)[: count - self.seen]
                self.seen += len(batch)
                yield {IMAGE: batch}
                if self.seen >= count:
                    return

        def get_next(self) -> dict[str, np.ndarray] | None:
            first, self.first = self.first, None
            return first if first is not None else next(self.batches, None)

    return TrainingImages()


def quantize_edge(folder: Path | str, batches: Iterable, count: int = DEFAULT_CALIBRATION_IMAGES) -> Path:
    """Write ``folder/edge_int8.onnx``: ``folder/edge.onnx`` with int8 weights and uint8 activations in its
    :data:`QUANTIZED_OPS`, calibrated (min–max of every quantized activation) on the first ``count`` images
    of ``batches``. The Q-layer stays float; the metadata is copied and :data:`PRECISION_KEY` added."""
    import onnx

    count = check_calibration_images(count)
    folder = Path(folder)
    source, target = folder / "edge.onnx", folder / EDGE_INT8
    props, meta = read_metadata(source)
    if meta.half != "edge":
        raise ConfigError(f"{source} is the {meta.half} half, expected the edge half")
    if meta.quantizer == NO_QUANTIZER:
        raise ConfigError(f"{source} sends a learned bottleneck's symbols; an int8 edge half is made for streams of "
                          "quantized codes (a Q-layer or BaF), whose quantizer stays float")
    quantization = _quantization()
    reader = _calibration_reader(batches, count)
    if reader.first is None:
        raise ConfigError("no training images to calibrate the int8 edge half on")
    # ONNX Runtime logs a suggestion to pre-process (shape inference, fusions) on every call; the
    # torch.export graph already has its shapes and batch norms folded, so it is quiet here.
    quiet = _DropLog("Please consider")
    logging.getLogger().addFilter(quiet)
    try:
        quantization.quantize_static(
            str(source), str(target), reader, quant_format=quantization.QuantFormat.QDQ,
            op_types_to_quantize=list(QUANTIZED_OPS), per_channel=True,
            activation_type=quantization.QuantType.QUInt8, weight_type=quantization.QuantType.QInt8,
            calibrate_method=quantization.CalibrationMethod.MinMax,
        )
    finally:
        logging.getLogger().removeFilter(quiet)
    proto = onnx.load(str(target))
    present = {p.key for p in proto.metadata_props}
    for key, value in props.items():  # keep what the runtimes read, whatever the quantizer carried over
        if key not in present:
            proto.metadata_props.add(key=key, value=value)
    proto.metadata_props.add(key=PRECISION_KEY, value=json.dumps({
        "weights": "int8, per output channel", "activations": "uint8", "format": "QDQ", "ops": list(QUANTIZED_OPS),
        "calibration": "min-max", "calibration_images": reader.seen, "quantizer": "float32 (unchanged)"}))
    save_sealed(proto, target)  # its own digest: the float file's, copied with the props, is replaced
    onnx.checker.check_model(str(target), full_check=True)
    return target


@dataclass
class Int8Report:
    """What :func:`verify_int8` measured: the int8 chain against the float chain on the same images."""

    samples: int
    bits: int
    calibration_images: int
    code_agreement: dict[str, float] = field(default_factory=dict)
    code_mean_difference: dict[str, float] = field(default_factory=dict)  # mean |Δ| in levels
    codes_in_range: dict[str, bool] = field(default_factory=dict)
    side_finite: dict[str, bool] = field(default_factory=dict)
    label_agreement: dict[str, float] = field(default_factory=dict)  # classification outputs
    relative_error: dict[str, float] = field(default_factory=dict)  # other outputs: ‖Δ‖₂ / ‖float‖₂

    @property
    def failures(self) -> list[str]:
        top = 2 ** self.bits - 1
        out = [f"codes of {s} outside uint8 [0, {top}]" for s, ok in self.codes_in_range.items() if not ok]
        out += [f"side information {s} not finite" for s, ok in self.side_finite.items() if not ok]
        out += [f"{t} labels agree {a:.2%} < {INT8_MIN_LABEL_AGREEMENT:.0%}" for t, a in self.label_agreement.items()
                if not a >= INT8_MIN_LABEL_AGREEMENT]
        out += [f"{t} relative RMS difference {e:.3f} > {INT8_MAX_RELATIVE_ERROR}" for t, e in self.relative_error.items()
                if not e <= INT8_MAX_RELATIVE_ERROR]
        return out

    def table(self) -> str:
        lines = [f"int8 edge half → cloud against the float chain, {self.samples} samples:"]
        for s, a in self.code_agreement.items():
            lines.append(f"  {s:<24} identical {a:8.2%}   mean |Δ| {self.code_mean_difference[s]:.3f} level(s)"
                         f"   in [0, {2 ** self.bits - 1}]: {'yes' if self.codes_in_range[s] else 'NO'}")
        for t, a in self.label_agreement.items():
            lines.append(f"  {t:<24} labels agree {a:8.3%}   (need ≥ {INT8_MIN_LABEL_AGREEMENT:.0%})")
        for t, e in self.relative_error.items():
            lines.append(f"  {t:<24} ‖Δ‖/‖float‖ {e:.4f}   (need ≤ {INT8_MAX_RELATIVE_ERROR})")
        lines.append("  PASSED" if not self.failures else "  FAILED: " + "; ".join(self.failures))
        return "\n".join(lines)


def verify_int8(folder: Path | str, images: np.ndarray, classification: Iterable[str] = ()) -> Int8Report:
    """Chain ``edge_int8.onnx`` → ``cloud.onnx`` and ``edge.onnx`` → ``cloud.onnx`` in ``folder`` on
    ``images`` (``[N, 3, H, W]`` float32 in [0, 1]) and compare; ``classification`` names the outputs
    compared as labels (the argmax over their channel axis)."""
    folder = Path(folder)
    props, meta = read_metadata(folder / EDGE_INT8)
    images = np.asarray(images, dtype=np.float32)
    names, outputs = meta.stream_names, list(meta.outputs)
    cloud = onnx_session(folder / "cloud.onnx")
    chains = {}
    for name in ("edge.onnx", EDGE_INT8):
        wire = dict(zip(names, onnx_session(folder / name).run(names, {IMAGE: images})))
        chains[name] = wire, dict(zip(outputs, cloud.run(outputs, {n: wire[n] for n in meta.cloud_inputs})))
    (float_wire, float_out), (int8_wire, int8_out) = chains["edge.onnx"], chains[EDGE_INT8]
    calibration = json.loads(props.get(PRECISION_KEY, "{}")).get("calibration_images", 0)
    report = Int8Report(samples=len(images), bits=meta.bits, calibration_images=calibration)
    for split in meta.split_points:
        codes, reference = int8_wire[f"codes_{split}"], float_wire[f"codes_{split}"]
        report.codes_in_range[split] = bool(codes.dtype == np.uint8 and codes.max() <= 2 ** meta.bits - 1)
        report.code_agreement[split] = float(np.mean(codes == reference))
        report.code_mean_difference[split] = float(np.abs(codes.astype(np.int64) - reference).mean())
        low, high = int8_wire[f"minimum_{split}"], int8_wire[f"maximum_{split}"]
        report.side_finite[split] = bool(np.isfinite(low).all() and np.isfinite(high).all() and (high >= low).all())
    classification = set(classification)
    for name in outputs:
        got, ref = int8_out[name], float_out[name]
        if name in classification:
            report.label_agreement[name] = float(np.mean(got.argmax(1) == ref.argmax(1)))
        else:
            report.relative_error[name] = float(np.linalg.norm(got - ref) / max(np.linalg.norm(ref), 1e-12))
    return report


def export_edge_int8(folder: Path | str, batches: Iterable, images: np.ndarray, classification: Iterable[str] = (),
                     count: int = DEFAULT_CALIBRATION_IMAGES) -> Int8Report:
    """:func:`quantize_edge`, then :func:`verify_int8` on ``images``; raises :class:`Int8ParityError` (and
    removes ``edge_int8.onnx``, keeping the float halves) when the check fails."""
    path = quantize_edge(folder, batches, count)
    report = verify_int8(folder, images, classification)
    if report.failures:
        path.unlink()
        raise Int8ParityError(f"{path.name} removed, the float halves kept: {'; '.join(report.failures)} against the "
                              "float chain (more --int8-calibration-images may help)", report)
    return report


__all__ = ["DEFAULT_CALIBRATION_IMAGES", "EDGE_INT8", "INT8_MAX_RELATIVE_ERROR", "INT8_MIN_LABEL_AGREEMENT",
           "Int8ParityError", "Int8Report", "PRECISION_KEY", "QUANTIZED_OPS", "check_calibration_images",
           "export_edge_int8", "quantize_edge", "read_metadata", "verify_int8"]
