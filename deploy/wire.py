"""The wire format between the edge and the cloud halves, defined once.

What the exporter writes and both runtimes read (Ulhaq, B.A.Sc. thesis, SFU 2020, §4.1.2,
Fig. 4.3: the device runs the client model with its quantizer, the server the dequantizer and
the rest; the codec in between belongs to neither):

::

    edge.onnx   image [batch, 3, H, W] in [0, 1]  ─►  per stream s, in split-point order:
                                                       codes_s uint8 [batch, C, h, w], minimum_s, maximum_s
                minimum_s / maximum_s: [batch] for the ``minmax`` quantizer (one range per tensor),
                [batch, C] for ``channel`` (fp16 bounds per channel: Choi et al., ICASSP 2020, eq 4)
    bytes       one cilight.codecs container per stream, concatenated in split-point order;
                side information = stream_side(minimum_s, maximum_s, quantizer)
    cloud.onnx  codes_s, minimum_s, maximum_s (every s)  ─►  one output per task, named by the task

    with a learned bottleneck (Ballé et al., ICLR 2018; codec ``learned``):
    edge.onnx   image  ─►  per stream s, per latent l in coding order: symbols_l_s int32 [batch, N, h, w]
    hyper.onnx  symbols_z_s (every s)  ─►  rows_y_s int32: the table row of every y symbol (hyperprior only;
                both sides run it, the edge to encode y, the cloud to decode it)
    bytes       one learned-codec container per stream (tables digest, strings), split-point order
    cloud.onnx  symbols_y_s (every s)  ─►  one output per task
    entropy_tables.npz beside them: the fixed integer CDF tables (``<split>.<latent>.<array>``)

* :func:`stream_tensor_names` — the ONNX input/output names of the streams;
* :class:`HalfMetadata` — the ``metadata_props`` both files carry, written (:meth:`HalfMetadata.props`)
  and read (:meth:`HalfMetadata.from_props`) by this one class;
* :func:`onnx_session` / :func:`open_half` — the one ONNX Runtime session factory, which checks the
  SHA-256 every exported file carries of its own bytes (:func:`save_sealed`, :func:`check_sealed`);
* :func:`group_side` — the side information of a channel group (a packet that decodes alone);
* :func:`latent_tensor_names`, :data:`ENTROPY_TABLES` (:func:`write_entropy_tables`,
  :func:`read_entropy_tables`) — the same for a learned bottleneck;
* :data:`DATASET_MEAN` — the file beside the halves with each stream's mean tensor ``μ(y, x, c)``
  over training images, for error concealment (:func:`write_dataset_mean`, :func:`read_dataset_mean`).

Packets (how a frame is cut into datagrams) are :mod:`cilight.deploy.packets`, which only the
runtimes use.

Only numpy, the codecs and (lazily) ONNX Runtime are used, so the runtimes stay free of
training code.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cilight.codecs.entropy import EntropyTables
from cilight.codecs.learned import tables_digest
from cilight.codecs.operating_point import OperatingPoint, parse_operating_point
from cilight.codecs.quantizers import WIRE_QUANTIZERS, wire_quantizer
from cilight.errors import ConfigError

IMAGE = "image"
STREAM_FIELDS = ("codes", "minimum", "maximum")
HALVES = ("edge", "cloud", "hyper")
NO_QUANTIZER = "none"  # a learned bottleneck quantizes its own latents
SYNTHESIS_LATENT = "y"  # the latent the cloud half synthesises the features from


def stream_tensor_names(split_points) -> list[str]:
    """``codes_<split>``, ``minimum_<split>``, ``maximum_<split>`` for each split point, in order."""
    return [f"{field}_{split}" for split in split_points for field in STREAM_FIELDS]


def latent_tensor_names(latents: dict[str, dict], names: str = "symbols", only: str | None = None) -> list[str]:
    """``symbols_<latent>_<split>`` of every latent of every stream (``latents``: split → {latent: shape},
    in split-point and coding order); ``only``: one latent of each stream; ``names="rows"``: its rows."""
    return [f"{names}_{latent}_{split}" for split, shapes in latents.items() for latent in shapes
            if only is None or latent == only]


ENTROPY_TABLES = "entropy_tables.npz"  # beside the halves of a learned bottleneck, written by export.py


def write_entropy_tables(folder: str | Path, tables: dict[str, dict[str, EntropyTables]]) -> Path:
    """Write every stream's tables (split → latent → :class:`EntropyTables`) to ``folder/entropy_tables.npz``."""
    path = Path(folder) / ENTROPY_TABLES
    np.savez_compressed(path, **{k: v for split, latents in tables.items() for latent, t in latents.items()
                      for k, v in t.arrays(f"{split}.{latent}.").items()})
    return path


def read_entropy_tables(path: str | Path, meta: HalfMetadata) -> dict[str, dict[str, EntropyTables]]:
    """The tables in ``path`` by split point and latent, checked against the digests in ``meta``."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path} does not exist; export.py writes it beside the halves of a learned bottleneck")
    try:
        with np.load(path, allow_pickle=False) as data:
            tables = {split: {latent: EntropyTables.from_arrays(data, f"{split}.{latent}.") for latent in shapes}
                      for split, shapes in meta.latents.items()}
    except (ValueError, OSError) as err:
        raise ConfigError(f"{path} is not the entropy tables of this model: {type(err).__name__}: {err}") from None
    for split, latents in tables.items():
        digest = tables_digest(latents, tuple(meta.latents[split])).hex()
        if digest != meta.tables_digest.get(split):
            raise ConfigError(f"{path}: the tables of stream {split} (digest {digest}) are not the ones the halves "
                              f"were exported with ({meta.tables_digest.get(split)}); export again")
    return tables




@dataclass(frozen=True)
class StreamWire:
    """How one stream crosses the network, as a transmission declares it (``Transmission.wire``).

    ``shape``: the transmitted tensor ``[C, h, w]`` (what a container header names); ``quantizer``
    and ``bits``: the edge's quantizer (``minmax``, ``channel``) or ``none`` for a learned
    bottleneck's symbols, which then has ``latents`` (name → ``(N, h, w)``, in coding order),
    ``hyper_rows`` (the latents whose table rows ``hyper.onnx`` computes) and its ``tables``
    (latent → :class:`EntropyTables`); ``codec``: the codec that writes its bytes when the transmission
    has its own (``learned``), ``None`` when any registered codec may, at the operating point chosen;
    ``extra``: entries for the halves' metadata (BaF's channels).
    """

    shape: tuple[int, int, int]
    quantizer: str = "minmax"
    codec: str | None = None
    bits: int = 8
    latents: dict[str, tuple[int, int, int]] = field(default_factory=dict)
    hyper_rows: tuple[str, ...] = ()
    tables: dict[str, EntropyTables] | None = field(default=None, compare=False)
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if len(self.shape) != 3 or any(not isinstance(v, int) or v < 1 for v in self.shape):
            raise ConfigError(f"stream wire shape {self.shape!r}: expected positive [C, h, w]")
        if self.quantizer == NO_QUANTIZER:
            if not self.latents or self.tables is None or SYNTHESIS_LATENT not in self.latents:
                raise ConfigError(f"a stream without a quantizer sends a learned bottleneck's symbols: it needs latents "
                                  f"(with {SYNTHESIS_LATENT!r}) and their tables, got {sorted(self.latents)}")
        else:
            _check_quantizer(self.quantizer)
            if self.latents:
                raise ConfigError(f"quantizer {self.quantizer!r} with latents {sorted(self.latents)}: latents belong to a "
                                  "learned bottleneck (quantizer 'none')")


def _check_quantizer(quantizer: str) -> str:
    wire_quantizer(quantizer)
    return quantizer


def stream_side(minimum, maximum, quantizer: str = "minmax") -> np.ndarray:
    """The container's side information of one stream of one image, from the edge half's
    ``minimum_s``/``maximum_s`` (scalars for ``minmax``, ``[C]`` for ``channel``): the quantizer's layout."""
    return wire_quantizer(quantizer).side_of(minimum, maximum)


def stream_range(side: np.ndarray, quantizer: str = "minmax") -> tuple[np.ndarray, np.ndarray]:
    """``(minimum_s, maximum_s)`` as the cloud half's float32 inputs for a batch of one (``[1]`` for
    ``minmax``, ``[1, C]`` for ``channel``), from the side information."""
    return wire_quantizer(quantizer).range_of(side)


def group_side(side: np.ndarray, quantizer: str, first: int, count: int) -> np.ndarray:
    """The side information of channels ``first … first + count − 1`` of a stream whose side
    information is ``side``: the same range for ``minmax``, those channels' bounds for ``channel``."""
    return wire_quantizer(quantizer).group_side(side, first, count)


DATASET_MEAN = "dataset_mean.npz"  # beside edge.onnx and cloud.onnx, written by export.py


def write_dataset_mean(folder: str | Path, means: dict[str, np.ndarray], images: int) -> Path:
    """Write each stream's mean tensor ``μ(y, x, c)`` (``mean_<split>``, float32 ``[C, H, W]``) and
    the number of images it was computed on to ``folder/dataset_mean.npz``."""
    path = Path(folder) / DATASET_MEAN
    np.savez(path, images=np.int64(images), **{f"mean_{split}": np.asarray(m, dtype=np.float32) for split, m in means.items()})
    return path


def read_dataset_mean(path: str | Path, meta: HalfMetadata) -> dict[str, np.ndarray]:
    """The mean tensors of ``path`` (a ``dataset_mean.npz``) by split point, checked against ``meta``."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path} does not exist; export.py writes it beside the halves (dataset mean for "
                          "dataset_mean/hybrid concealment)")
    try:
        with np.load(path, allow_pickle=False) as data:
            means = {split: np.asarray(data[f"mean_{split}"], dtype=np.float32) for split in meta.split_points}
    except (KeyError, ValueError, OSError) as err:
        raise ConfigError(f"{path} is not a dataset mean of this model's streams "
                          f"({', '.join(meta.split_points)}): {type(err).__name__}: {err}") from None
    for split, mean in means.items():
        if mean.shape != tuple(meta.stream_shapes[split]) or not np.isfinite(mean).all():
            raise ConfigError(f"{path}: mean_{split} has shape {list(mean.shape)}, expected a finite "
                              f"{list(meta.stream_shapes[split])}")
    return means


@dataclass(frozen=True)
class HalfMetadata:
    """The ``metadata_props`` of an exported half, validated on creation.

    ``codec`` is the default operating point (``png``, ``jpeg:quality=90``, ``jpeg2000:bpe=1``);
    ``outputs`` the cloud half's output names, one per task, in order. A learned bottleneck's
    halves have ``quantizer="none"``, ``bits=0``, codec ``learned`` and ``latents`` (split → latent →
    ``(N, h, w)``, in coding order), ``hyper_rows`` (the latents whose rows ``hyper.onnx`` computes)
    and ``tables_digest`` (split → the learned codec's digest of its tables, hex). ``palette`` is the
    training data's class colours (RGB, one per class, from the datamodule's ``class_colors``) that
    the demo colours segmentation with; ``()`` where none was recorded (files exported before the
    field existed have none), and a reader then uses a fixed default colouring.
    """

    half: str
    split_points: tuple[str, ...]
    stream_shapes: dict[str, tuple[int, int, int]]
    input_shape: tuple[int, int, int]  # (3, H, W)
    outputs: tuple[str, ...]
    bits: int
    codec: str
    num_classes: int
    backbone: str
    model_version: str
    cilight_version: str
    quantizer: str = "minmax"
    extra: dict = field(default_factory=dict)
    latents: dict[str, dict[str, tuple[int, int, int]]] = field(default_factory=dict)
    hyper_rows: tuple[str, ...] = ()
    tables_digest: dict[str, str] = field(default_factory=dict)
    palette: tuple[tuple[int, int, int], ...] = ()

    def __post_init__(self) -> None:
        if self.palette and (len(self.palette) < self.num_classes or any(
                len(c) != 3 or any(isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= 255 for v in c)
                for c in self.palette)):
            raise ConfigError(f"palette {[list(c) for c in self.palette]}: expected an RGB triple of integers in "
                              f"[0, 255] for each of the {self.num_classes} classes, or none")
        if self.quantizer != NO_QUANTIZER:
            _check_quantizer(self.quantizer)
        if (self.quantizer == NO_QUANTIZER) != bool(self.latents):
            raise ConfigError(f"quantizer {self.quantizer!r} with latents {sorted(self.latents)}: a learned bottleneck "
                              f"has quantizer {NO_QUANTIZER!r} and latents, a Q-layer neither")
        if self.latents and (set(self.latents) != set(self.split_points) or set(self.tables_digest) != set(self.latents)
                             or any(SYNTHESIS_LATENT not in v for v in self.latents.values())):
            raise ConfigError(f"latents {sorted(self.latents)} and table digests {sorted(self.tables_digest)} must "
                              f"name every split point {list(self.split_points)}, each with a latent "
                              f"{SYNTHESIS_LATENT!r}")
        if self.half not in HALVES:
            raise ConfigError(f"half={self.half!r}: expected one of {HALVES}")
        if not self.split_points or set(self.stream_shapes) != set(self.split_points):
            raise ConfigError(f"stream shapes {sorted(self.stream_shapes)} do not match split points {list(self.split_points)}")
        if any(len(shape) != 3 for shape in self.stream_shapes.values()) or len(self.input_shape) != 3:
            raise ConfigError("stream and input shapes must be [C, H, W]")
        if not self.outputs:
            raise ConfigError("a cloud half needs at least one output")
        _ = self.operating_point  # validates the codec

    @property
    def operating_point(self) -> OperatingPoint:
        return parse_operating_point(self.codec)

    @property
    def learned(self) -> bool:
        return bool(self.latents)

    @property
    def stream_names(self) -> list[str]:
        """What the edge half outputs: codes and ranges, or every latent's symbols."""
        return latent_tensor_names(self.latents) if self.learned else stream_tensor_names(self.split_points)

    @property
    def cloud_inputs(self) -> list[str]:
        """What the cloud half takes: codes and ranges, or the symbols it synthesises from."""
        return latent_tensor_names(self.latents, only=SYNTHESIS_LATENT) if self.learned else self.stream_names

    def props(self) -> dict[str, str]:
        """As ONNX ``metadata_props``: strings, structures as JSON."""
        return {
            "half": self.half,
            "cilight_version": self.cilight_version,
            "model_version": self.model_version,
            "backbone": self.backbone,
            "split_points": json.dumps(list(self.split_points)),
            "stream_shapes": json.dumps({k: list(v) for k, v in self.stream_shapes.items()}),
            "stream_tensors": json.dumps(self.stream_names),
            "input": json.dumps({"name": IMAGE, "shape": ["batch", *self.input_shape], "dtype": "float32",
                                 "range": [0, 1]}),
            "outputs": json.dumps(list(self.outputs)),
            "num_classes": str(self.num_classes),
            "quantizer": json.dumps({"kind": self.quantizer, "bits": self.bits,
                                     "range": wire_quantizer(self.quantizer).range_layout
                                     if self.quantizer != NO_QUANTIZER else "none: a learned bottleneck's symbols"}),
            "codec": self.codec,
            "extra": json.dumps(self.extra),
            "latents": json.dumps({s: {k: list(v) for k, v in shapes.items()} for s, shapes in self.latents.items()}),
            "hyper_rows": json.dumps(list(self.hyper_rows)),
            "tables_digest": json.dumps(self.tables_digest),
            "palette": json.dumps([list(c) for c in self.palette]),
        }

    @classmethod
    def from_props(cls, props: dict[str, str], where: str | Path = "model") -> HalfMetadata:
        try:
            return cls(
                half=props["half"],
                split_points=tuple(json.loads(props["split_points"])),
                stream_shapes={k: tuple(v) for k, v in json.loads(props["stream_shapes"]).items()},
                input_shape=tuple(json.loads(props["input"])["shape"][1:]),
                outputs=tuple(json.loads(props["outputs"])),
                bits=int(json.loads(props["quantizer"])["bits"]),
                codec=props["codec"],
                num_classes=int(props["num_classes"]),
                backbone=props["backbone"],
                model_version=props["model_version"],
                cilight_version=props["cilight_version"],
                quantizer=json.loads(props["quantizer"]).get("kind", "minmax"),
                extra=json.loads(props.get("extra", "{}")),
                latents={s: {k: tuple(v) for k, v in shapes.items()}
                         for s, shapes in json.loads(props.get("latents", "{}")).items()},
                hyper_rows=tuple(json.loads(props.get("hyper_rows", "[]"))),
                tables_digest=json.loads(props.get("tables_digest", "{}")),
                palette=tuple(tuple(c) for c in json.loads(props.get("palette", "[]"))),
            )
        except (KeyError, ValueError, TypeError) as err:
            raise ConfigError(f"{where} has no valid cilight metadata ({type(err).__name__}: {err}); "
                              "export it with export.py") from None


def check_onnx_path(path: str | Path, what: str = "model", name: str | None = None) -> Path:
    """``path`` as a :class:`Path` to an existing file, or one :class:`ConfigError`: not a path, a missing
    path, a folder (naming the ``name`` file in it, or the ``.onnx`` files it holds), an empty file.
    ``what`` names the file in messages (``edge model``)."""
    if not isinstance(path, (str, Path)) or not str(path).strip():
        raise ConfigError(f"{what} path {path!r}: expected the path of an .onnx file written by export.py")
    path = Path(path)
    if path.is_dir():
        inside = sorted(p.name for p in path.glob("*.onnx"))
        if name in inside:
            hint = f" (pass {path / name})"
        else:
            hint = f" (it holds {', '.join(inside[:4])}{', …' if len(inside) > 4 else ''})" if inside else ""
        raise ConfigError(f"{what} {path} is a folder, expected an .onnx file written by export.py{hint}")
    if not path.is_file():
        raise ConfigError(f"{what} {path} does not exist; expected an .onnx file written by export.py")
    if path.stat().st_size == 0:
        raise ConfigError(f"{what} {path} is empty (0 bytes): not a valid ONNX model, truncated or corrupt?")
    return path


def onnx_error(err: Exception) -> str:
    """ONNX Runtime's error message in one short line (its code and reason, without the path it repeats)."""
    text = " ".join(str(err).split())
    match = re.match(r"\[ONNXRuntimeError\] : \d+ : (\w+) : (?:Load model from .*? failed:)?(.*)", text)
    text = f"{match.group(1)}: {match.group(2).strip()}" if match else text
    return text if len(text) <= 200 else text[:197] + "..."


def is_onnx_runtime_error(err: Exception) -> bool:
    """Whether ``err`` is one of ONNX Runtime's own exceptions (its C++ errors, not a Python bug)."""
    return type(err).__module__.startswith("onnxruntime")


# -- the file's own digest ---------------------------------------------------------------------------------
# A flipped bit in a weight leaves a loadable model that computes something else. Every file the exporter
# writes carries the SHA-256 of its own bytes in ``metadata_props[file_sha256]``, computed with that value
# set to 64 zeros; the entry's serialized form (key, then a 64-byte value) is found by its bytes, so checking
# needs neither the onnx package nor a protobuf parser.
FILE_DIGEST = "file_sha256"
_UNSEALED = b"0" * 64
_DIGEST_ENTRY = b"\x0a" + bytes([len(FILE_DIGEST)]) + FILE_DIGEST.encode() + b"\x12" + bytes([len(_UNSEALED)])


def _digest_slot(data: bytes | bytearray) -> int | None:
    """Where the 64 bytes of the digest value start, or ``None`` for a file without one (an older export)."""
    at = data.find(_DIGEST_ENTRY)
    return None if at < 0 else at + len(_DIGEST_ENTRY)


def save_sealed(proto, path: str | Path) -> str:
    """Write the ONNX ``ModelProto`` ``proto`` to ``path`` with the SHA-256 of its own bytes in its metadata
    (replacing any digest it carried, e.g. a copy's); returns the digest (hex)."""
    for prop in [p for p in proto.metadata_props if p.key == FILE_DIGEST]:
        proto.metadata_props.remove(prop)
    proto.metadata_props.add(key=FILE_DIGEST, value=_UNSEALED.decode())
    data = bytearray(proto.SerializeToString())
    at = _digest_slot(data)
    if at is None or data.find(_DIGEST_ENTRY, at) >= 0:
        raise ConfigError(f"{path}: the model's bytes hold {FILE_DIGEST!r} other than in its metadata; cannot seal it")
    digest = hashlib.sha256(data).hexdigest()
    data[at:at + len(_UNSEALED)] = digest.encode()
    Path(path).write_bytes(data)
    return digest


def check_sealed(data: bytes, path: str | Path) -> bool:
    """Whether ``data`` (the bytes of ``path``) carries its digest; a digest that does not match is one
    :class:`ConfigError` (a file without one, exported before digests, is read as it is)."""
    at = _digest_slot(data)
    if at is None:
        return False
    written = bytes(data[at:at + len(_UNSEALED)])
    unsealed = bytearray(data)
    unsealed[at:at + len(_UNSEALED)] = _UNSEALED
    found = hashlib.sha256(unsealed).hexdigest()
    if found.encode() != written:
        raise ConfigError(f"{path}: its bytes do not match the SHA-256 written into it at export (sha256 {found[:12]}…, "
                          f"written {written[:12].decode(errors='replace')}…): corrupted in storage or in transfer; "
                          "copy or export it again")
    return True


def onnx_session(path: str | Path):
    """An ONNX Runtime session on the CPU, quiet, for ``path`` (which must exist); a file whose bytes do not
    match the digest written into it (:func:`save_sealed`), or that ONNX Runtime cannot load (truncated,
    corrupt, not ONNX), is one :class:`ConfigError`."""
    import onnxruntime as ort

    path = check_onnx_path(path)
    data = path.read_bytes()
    check_sealed(data, path)
    options = ort.SessionOptions()
    options.log_severity_level = 3
    try:  # ONNX Runtime prints "EP Error … retrying" on stdout before it gives up on a corrupt file: keep it quiet
        with contextlib.redirect_stdout(io.StringIO()):
            return ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
    except Exception as err:
        if not (is_onnx_runtime_error(err) or isinstance(err, UnicodeDecodeError)):  # corrupt strings in the graph
            raise
        raise ConfigError(f"{path}: not a valid ONNX model, truncated or corrupt? "
                          f"(ONNX Runtime: {onnx_error(err)})") from None


def open_half(path: str | Path, half: str):
    """``(session, HalfMetadata)`` for the ``half`` (``edge`` or ``cloud``) written to ``path``.

    Every mistake is one :class:`ConfigError` naming the path: missing, a folder, not a loadable ONNX
    model, no cilight metadata, or the other half (naming the ``<half>.onnx`` beside it when there is one).
    """
    path = check_onnx_path(path, f"{half} model", f"{half}.onnx")
    session = onnx_session(path)
    try:
        props = session.get_modelmeta().custom_metadata_map
    except UnicodeDecodeError:
        raise ConfigError(f"{path} has no valid cilight metadata (its strings are not UTF-8: corrupt?); "
                          "export it with export.py") from None
    meta = HalfMetadata.from_props(props, path)
    if meta.half != half:
        beside = path.parent / f"{half}.onnx"
        hint = (f"; the {half} half is {beside}, beside it" if beside.is_file() and beside.resolve() != path.resolve()
                else f" (export.py writes it as {half}.onnx)")
        raise ConfigError(f"{path} is the {meta.half} half, expected the {half} half{hint}")
    if half in ("edge", "cloud"):  # what the runtime will feed and fetch must be in the graph
        inputs, outputs = ([IMAGE], meta.stream_names) if half == "edge" else (meta.cloud_inputs, list(meta.outputs))
        graph_inputs, graph_outputs = [i.name for i in session.get_inputs()], [o.name for o in session.get_outputs()]
        for kind, wanted, present in (("input", inputs, graph_inputs), ("output", outputs, graph_outputs)):
            missing = [n for n in wanted if n not in present]
            if missing:
                raise ConfigError(f"{path}: its metadata names the {kind} {missing[0]!r}, which its graph lacks (graph "
                                  f"{kind}s: {', '.join(present)}); corrupt or edited? export it again")
    return session, meta


__all__ = [
    "DATASET_MEAN",
    "ENTROPY_TABLES",
    "FILE_DIGEST",
    "HALVES",
    "IMAGE",
    "STREAM_FIELDS",
    "StreamWire",
    "WIRE_QUANTIZERS",
    "HalfMetadata",
    "check_onnx_path",
    "check_sealed",
    "group_side",
    "is_onnx_runtime_error",
    "onnx_error",
    "latent_tensor_names",
    "read_entropy_tables",
    "onnx_session",
    "open_half",
    "save_sealed",
    "read_dataset_mean",
    "stream_range",
    "stream_side",
    "stream_tensor_names",
    "write_dataset_mean",
    "write_entropy_tables",
]
