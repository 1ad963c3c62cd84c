"""Rate–accuracy curves measured with real bytes, and the BD-rate table between models.

Alvar & Bajić, "Multi-task learning with compressible features for collaborative intelligence",
IEEE ICIP 2019, §3: every stream of every test image is coded at a set of operating points
(PNG, then JPEG at quality 95, 90, 85, 80), the cloud half runs on the decoded tensors, and each
task's metric is plotted against the bits sent (Fig. 4); the BD-rate between two such curves is
Table 1.

::

    test images ─► edge ─► features_s ─► codec at operating point p ─► bytes ─► decode ─► cloud ─► metrics(p)
                                     └──► Q-layer only (no codec) ──────────────────────► cloud ─► reference
    curves of model A, model B ─► per task and curve family: bd_rate / bd_metric / overlap ─► table, plots

Rates are the real container sizes (header and min–max side information included), summed
over the streams of an image: **bits per image**, and the same divided by the elements of all
streams (**bits per element**). The proxy (``proxy:step=…``) writes no bytes; its points carry
the bits it predicts for the same container.

A *curve family* is a named list of operating points that form one curve, written
``[name=]point+point+…`` with each point in the operating-point syntax, e.g.
``paper=png+jpeg:quality=95,90,85,80`` (:func:`parse_families`). Each family gets its own BD-rate.

A family whose points are prefixed ``image:`` (``remote=image:jpeg:quality=95,75,50``) is the
remote-inference anchor (:mod:`cilight.evaluation.remote`): the input image is coded instead of the
features and the whole model runs on the decoded image. Its rates are the bytes of the image file,
its bits per element are over the image's 3·H·W elements; a family is one kind or the other.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

from cilight.codecs import CodecError, OperatingPoint, point_coder
from cilight.codecs.learned import LearnedCodec
from cilight.codecs.registry import CODECS, codec_class
from cilight.errors import ConfigError
from cilight.evaluation.bdrate import MIN_OVERLAP, bd_metric, bd_rate, efficient_points, metric_overlap
from cilight.evaluation.defaults import DEFAULT_FAMILIES, PAPER_FAMILY
from cilight.evaluation.remote import ImagePoint, code_pictures, is_image_point, parse_points
from cilight.evaluation.sweep import cloud_outputs

LEARNED = LearnedCodec.name  # the learned bottleneck's own codec (its one operating point)


@dataclass(frozen=True)
class Family:
    """One curve: a name and its operating points, in the order given — all of them coding the
    features, or all coding the input image (:class:`~cilight.evaluation.remote.ImagePoint`)."""

    name: str
    points: tuple[OperatingPoint | ImagePoint, ...]

    def __post_init__(self) -> None:
        if not self.name or any(c in self.name for c in "+:/ "):
            raise ConfigError(f"curve family name {self.name!r}: expected a short name without '+', ':', '/' or spaces")
        if not self.points:
            raise ConfigError(f"curve family {self.name!r} has no operating points")
        texts = [str(p) for p in self.points]
        if len(set(texts)) != len(texts):
            raise ConfigError(f"curve family {self.name!r} lists an operating point twice: {texts}")
        images = [str(p) for p in self.points if isinstance(p, ImagePoint)]
        if images and len(images) != len(texts):
            features = [t for t in texts if t not in images]
            raise ConfigError(f"curve family {self.name!r} mixes points that code the input image ({', '.join(images)}) "
                              f"with points that code the features ({', '.join(features)}); give each kind a family "
                              f"of its own")

    @property
    def codes_image(self) -> bool:
        """Whether the points code the input image (remote inference) rather than the features."""
        return isinstance(self.points[0], ImagePoint)

    def __str__(self) -> str:
        return f"{self.name}=" + "+".join(str(p) for p in self.points)


def parse_families(texts: str | Iterable[str]) -> tuple[Family, ...]:
    """Curve families from ``[name=]point+point+…`` strings; unnamed ones are named by their codecs
    (``image-jpeg`` for ``image:jpeg:…``). Points prefixed ``image:`` code the input image
    (:func:`~cilight.evaluation.remote.parse_points`)."""
    texts = [texts] if isinstance(texts, str) else list(texts)
    if not texts:
        raise ConfigError("no curve families: expected e.g. 'paper=png+jpeg:quality=95,90,85,80'")
    families = []
    for text in texts:
        head = text.split(":", 1)[0].split("+", 1)[0]
        name, points_text = (text.split("=", 1) if "=" in head else ("", text))
        pieces = [p for p in points_text.split("+") if p.strip()]
        if not pieces:
            raise ConfigError(f"curve family {text!r}: expected operating points, e.g. 'png+jpeg:quality=95,90'")
        points = parse_points(pieces)
        codecs = "-".join(dict.fromkeys(p.codec for p in points))
        name = name.strip() or (f"image-{codecs}" if any(isinstance(p, ImagePoint) for p in points) else codecs)
        families.append(Family(name, points))
    names = [f.name for f in families]
    if len(set(names)) != len(names):
        raise ConfigError(f"curve families {names} share a name; name them, e.g. 'wide=jpeg:quality=95,…'")
    return tuple(families)


@dataclass(frozen=True)
class CurvePoint:
    """One operating point measured on the test images: mean bits and every task metric.

    For a point that codes the input image (``image:…``, remote inference) ``bits_per_image`` is the
    image file's bytes × 8, ``bits_per_element`` is over the image's 3·H·W elements (bits per pixel
    per channel), and ``stream_bits`` has the one image "stream".
    """

    family: str
    point: str
    bits_per_image: float  # all streams of an image, containers included
    bits_per_element: float  # the same over the elements of all streams (image:… points: of the image)
    stream_bits: tuple[float, ...]  # mean bits per image of each stream
    metrics: dict[str, float]


@dataclass(frozen=True)
class RateAccuracyCurves:
    """The curves of one model: measured points, the uncompressed reference, and how to redo them.

    ``tasks`` maps each task to the metric key its curve and BD-rate use
    (:attr:`cilight.ci_models.Task.rate_accuracy`: IRMSE for disparity). ``elements`` counts the
    streams' elements, also when image families are measured beside them (whose points count the image's).
    """

    points: tuple[CurvePoint, ...]
    reference: dict[str, float]  # Q-layer only, no codec
    tasks: dict[str, str]
    elements: int  # elements of all streams of one image
    images: int
    provenance: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        for task, key in self.tasks.items():
            missing = [p.point for p in self.points if key not in p.metrics]
            if missing or key not in self.reference:
                raise ConfigError(f"curves of task {task!r} have no {key!r} at {missing or ['the reference']}")

    @property
    def families(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(p.family for p in self.points))

    def codes_image(self, family: str) -> bool:
        """Whether ``family``'s points coded the input image (remote inference) rather than the features."""
        return all(is_image_point(p.point) for p in self.family(family))

    def family(self, name: str) -> list[CurvePoint]:
        points = [p for p in self.points if p.family == name]
        if not points:
            raise ConfigError(f"no curve family {name!r}; measured {', '.join(self.families)}")
        return points

    def restrict(self, *families: str) -> RateAccuracyCurves:
        """The same measurement with only the points of ``families`` (each must have been measured)."""
        points = tuple(p for name in families for p in self.family(name))
        return type(self)(points, dict(self.reference), dict(self.tasks), self.elements, self.images, dict(self.provenance))

    def curve(self, task: str, family: str) -> tuple[np.ndarray, np.ndarray]:
        """``(bits per image, metric)`` of ``task`` along ``family``, in measurement order."""
        if task not in self.tasks:
            raise ConfigError(f"task {task!r}: these curves have {', '.join(self.tasks)}")
        points = self.family(family)
        key = self.tasks[task]
        return (np.array([p.bits_per_image for p in points]), np.array([p.metrics[key] for p in points]))

    @classmethod
    def merge(cls, parts: Sequence[RateAccuracyCurves]) -> RateAccuracyCurves:
        """One model's curves from several measurements of it — a learned codec's curve is one
        checkpoint per λ — with each family's points in order of rate. The reference (uncompressed)
        metrics are those of the part with the most bits; the parts' provenance is kept in order."""
        if not parts:
            raise ConfigError("no curves to merge")
        first = parts[0]
        for part in parts[1:]:
            if part.tasks != first.tasks or part.images != first.images or part.elements != first.elements:
                raise ConfigError(f"curves measured on different tasks, images or stream sizes cannot form one "
                                  f"curve: {first.tasks}/{first.images}/{first.elements} against "
                                  f"{part.tasks}/{part.images}/{part.elements}")
        points = sorted((p for part in parts for p in part.points), key=lambda p: p.bits_per_image)
        families = list(dict.fromkeys(p.family for part in parts for p in part.points))
        richest = max(parts, key=lambda c: max(p.bits_per_image for p in c.points))
        return cls(tuple(p for f in families for p in points if p.family == f), dict(richest.reference),
                   dict(first.tasks), first.elements, first.images, {"parts": [c.provenance for c in parts]})

    # -- files ---------------------------------------------------------------------------
    def as_dict(self) -> dict:
        return {"points": [asdict(p) for p in self.points], "reference": self.reference, "tasks": self.tasks,
                "elements": self.elements, "images": self.images, "provenance": self.provenance}

    @classmethod
    def from_dict(cls, data: dict) -> RateAccuracyCurves:
        try:
            points = tuple(CurvePoint(**{**p, "stream_bits": tuple(p["stream_bits"])}) for p in data["points"])
            return cls(points, dict(data["reference"]), dict(data["tasks"]), int(data["elements"]),
                       int(data["images"]), dict(data.get("provenance", {})))
        except (KeyError, TypeError) as err:
            raise ConfigError(f"not a curves file written by evaluate.py curves ({type(err).__name__}: {err})") from None

    def write(self, folder: Path, stem: str = "curves") -> list[Path]:
        """``<stem>.json`` (everything, re-readable by :meth:`read`) and ``<stem>.csv`` (one row per point)."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        json_path, csv_path = folder / f"{stem}.json", folder / f"{stem}.csv"
        json_path.write_text(json.dumps(self.as_dict(), indent=1))
        keys = sorted(self.reference)
        with csv_path.open("w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["family", "point", "bits_per_image", "bits_per_element", *keys])
            writer.writerow(["uncompressed", "q-layer", "", "", *(self.reference[k] for k in keys)])
            for p in self.points:
                writer.writerow([p.family, p.point, p.bits_per_image, p.bits_per_element, *(p.metrics[k] for k in keys)])
        return [json_path, csv_path]

    @classmethod
    def read(cls, path: Path) -> RateAccuracyCurves:
        path = Path(path)
        try:
            return cls.from_dict(json.loads(path.read_text()))
        except (OSError, json.JSONDecodeError) as err:
            raise ConfigError(f"{path}: cannot read curves ({type(err).__name__}: {err})") from None


def own_codec_family(curves: RateAccuracyCurves) -> str | None:
    """The one feature family of curves measured with a transmission's own codec (a codec bound to its
    model, such as ``learned``), or ``None`` for curves measured with codecs that code any tensor.
    Image families (remote inference) measured beside it do not count."""
    features = [f for f in curves.families if not curves.codes_image(f)]
    if len(features) != 1:
        return None
    codecs = {p.point.split(":", 1)[0] for p in curves.family(features[0])}  # each point names its codec first
    bound = codecs <= set(CODECS) and all(getattr(codec_class(c), "model_bound", False) for c in codecs)
    return features[0] if bound else None


def curve_tasks(tasks) -> dict[str, str]:
    """Task name → the metric key of its curve, for the tasks that have a metric rising with accuracy
    (a task with only falling ones, such as an error, has no BD-rate; its metrics are still recorded)."""
    return {t.name: t.rate_accuracy_key for t in tasks if any(m.higher_is_better for m in t.metrics)}


@torch.no_grad()
def measure_curves(model, batches: Sequence[dict[str, Tensor]], families: Sequence[Family], progress: bool = True,
                   provenance: dict | None = None) -> RateAccuracyCurves:
    """Code every stream of every image at every operating point of ``families`` and measure the tasks.

    ``model``: a :class:`~cilight.ci_models.MultiTaskCI`. Each stream's transmission says what a codec
    codes (``model.features``) and what the cloud makes of the decoded tensor (``model.receive``); a
    transmission with its own codec (a learned bottleneck) is measured at that codec's one operating
    point, bytes and all. A point that codes the input image (``image:…``, remote inference) runs the
    whole model on the decoded image (:func:`~cilight.evaluation.remote.code_pictures`) as the reference
    runs it on the original, whatever codec the streams have. The reference is the model in evaluation
    mode on the original image, without a codec; every point's ground truth is the original batch (the
    original image is the reconstruction target). The edge runs once per batch; each codec's
    per-stream preparation once per batch and codec; the cloud half once per batch and operating point.
    """
    model = model.eval()
    points = [(family.name, point) for family in families for point in family.points]
    if not points:
        raise ConfigError("no curve families to measure: expected e.g. 'paper=png+jpeg:quality=95,90,85,80'")
    own = _own_codecs(model, [p for _, p in points if not isinstance(p, ImagePoint)])
    coders = {str(p): point_coder(p) for _, p in points if own is None and not isinstance(p, ImagePoint)}
    reference = model.task_metrics(sync=False)
    measured = [model.task_metrics(sync=False) for _ in points]
    bits = [np.zeros(1 if isinstance(p, ImagePoint) else len(model.split_points)) for _, p in points]
    images = _count_images(batches)
    bar = tqdm(total=images * len(points), desc="rate–accuracy curves", unit="image", disable=not progress)
    elements = image_elements = 0
    for batch in batches:
        reference.update(_reference_outputs(model, batch["image"]), batch)
        features = model.features(batch["image"])
        elements = sum(int(f[0].numel()) for f in features)
        image_elements = int(batch["image"][0].numel())
        prepared: dict[str, list] = {}
        for i, (family_name, point) in enumerate(points):
            if own is not None and not isinstance(point, ImagePoint):
                outputs, coded_bits = _own_codec_outputs(model, own, features)
            else:
                try:
                    if isinstance(point, ImagePoint):
                        decoded, sizes = code_pictures(point, batch["image"])
                        outputs, coded_bits = _reference_outputs(model, decoded), [float(sizes.sum())]
                    else:
                        coder, rate = coders[str(point)]
                        key = str(point.with_rate(None))
                        if key not in prepared:
                            prepared[key] = [coder.prepare(f) for f in features]
                        coded = [coder.code_at(state, **rate) for state in prepared[key]]
                        outputs = cloud_outputs(model, [torch.as_tensor(c[0]).to(f) for c, f in zip(coded, features)])
                        coded_bits = [float(c[1].sum()) for c in coded]
                except CodecError as err:  # e.g. a rate below the smallest stream the codec can write
                    raise ConfigError(f"operating point {point} of curve family {family_name!r}: {err}") from None
            measured[i].update(outputs, batch)  # the original batch: a decoded image is never the target
            bits[i] += coded_bits
            bar.update(len(batch["image"]))
    bar.close()
    result = []
    for (family, point), metrics, stream_bits in zip(points, measured, bits):
        stream_bits = stream_bits / images
        total = float(stream_bits.sum())
        per = image_elements if isinstance(point, ImagePoint) else elements
        result.append(CurvePoint(family, str(point), total, total / per, tuple(stream_bits.tolist()),
                                 {k: float(v) for k, v in metrics.compute().items()}))
    provenance = dict(provenance or {})
    if any(isinstance(p, ImagePoint) for _, p in points):
        provenance["image_elements"] = image_elements  # what the bits per element of image:… points are over
    return RateAccuracyCurves(tuple(result), {k: float(v) for k, v in reference.compute().items()},
                              curve_tasks(model.tasks), elements, images, provenance)


def _count_images(batches: Sequence[dict[str, Tensor]]) -> int:
    images = sum(len(b["image"]) for b in batches)
    if images == 0:
        raise ConfigError("no test images to measure curves on")
    return images


def _reference_outputs(model, images: Tensor) -> dict[str, Tensor]:
    """The cloud half on every stream as its transmission delivers it in evaluation, without a codec."""
    delivered = [t(f, rate=False).features for t, f in zip(model.transmissions, model.encoder(images))]
    return cloud_outputs(model, delivered, received=True)


def _own_codecs(model, points: Sequence[OperatingPoint]) -> list | None:
    """Each stream's own codec when the transmissions write their own bytes (a learned bottleneck, whose
    rate is set by training, so a curve over its trade-off is a curve over checkpoints), after checking
    that the feature ``points`` asked for are that codec's one operating point; ``None`` for streams that
    any codec codes (then no point may name a codec bound to a model)."""
    if not any(t.own_codec_name() for t in model.transmissions):
        bound = sorted({str(p) for p in points if getattr(codec_class(p.codec), "model_bound", False)})
        if bound:
            raise ConfigError(f"operating points {bound} code with a transmission's own codec; this model's streams "
                              f"have none ({', '.join(sorted({type(t).__name__ for t in model.transmissions}))})")
        return None
    names = sorted({str(t.own_codec_name()) for t in model.transmissions})
    asked = sorted({str(p) for p in points})
    if len(names) != 1 or (asked and asked != names):
        raise ConfigError(f"this model's streams code with their transmission's own codec ({', '.join(names)}) and are "
                          f"measured at that one operating point (their features are not a stream for an image "
                          f"codec), got {asked}; image:… families (remote inference) may be measured beside it")
    return [t.own_codec() for t in model.transmissions]


def _own_codec_outputs(model, codecs: list, features: list[Tensor]) -> tuple[dict[str, Tensor], list[float]]:
    """Task outputs and each stream's bits with every stream of every image through its own codec."""
    decoded, bits = [], []
    for codec, f in zip(codecs, features):
        data = [codec.encode(sample) for sample in f]
        bits.append(8.0 * sum(len(d) for d in data))
        decoded.append(torch.as_tensor(np.stack([codec.decode(d) for d in data])).to(f))
    return cloud_outputs(model, decoded), bits


def curves_from_sweep(sweep, tasks, elements: int, images: int, provenance: dict | None = None) -> RateAccuracyCurves:
    """A one-stream rate sweep (:func:`~cilight.evaluation.sweep.rate_sweep`) as rate–accuracy curves,
    one family named by its coder, points in order of rate: what the per-epoch callback logs."""
    if sweep.rates.ndim != 2 or sweep.rates.shape[1] != 1:
        raise ConfigError(f"a rate–accuracy curve comes from a one-stream sweep, got rates of shape {sweep.rates.shape}")
    family = (provenance or {}).get("coder", "sweep")
    order = np.argsort(sweep.rates[:, 0])
    points = tuple(CurvePoint(family, f"{family}@{sweep.targets[i, 0]:.0f}bits", float(sweep.rates[i, 0]),
                              float(sweep.rates[i, 0]) / elements, (float(sweep.rates[i, 0]),),
                              {k: float(v[i]) for k, v in sweep.metrics.items()}) for i in order)
    return RateAccuracyCurves(points, dict(sweep.reference), curve_tasks(tasks), elements,
                              images, dict(provenance or {}))


# --------------------------------------------------------------------------- BD-rate between models
@dataclass(frozen=True)
class BdRateRow:
    """BD-rate and BD-metric of one test model against the anchor, for one task and curve family.

    ``bd_rate`` / ``bd_metric`` are ``None`` when refused; ``note`` then says why (too little
    overlap, a curve that does not rise with rate …). ``overlap`` is the share of the two metric
    ranges both curves cover (BD-rate integrates over it).
    """

    test: str
    task: str
    metric: str
    family: str
    bd_rate: float | None
    bd_metric: float | None
    overlap: float
    note: str = ""


def bd_rate_rows(anchor: RateAccuracyCurves, tests: dict[str, RateAccuracyCurves], method: str = "cubic",
                 min_overlap: float = MIN_OVERLAP, dominated: str = "refuse") -> list[BdRateRow]:
    """Table 1 of the ICIP paper: every test model × task × family the anchor was measured on.

    ``dominated``: ``refuse`` curves whose metric does not rise strictly with rate, or ``drop``
    their dominated points first (:func:`~cilight.evaluation.bdrate.efficient_points`); the
    overlap reported is then that of the efficient points. To compare the families of one model
    (coded features against remote inference) see :func:`family_bd_rate_rows`."""
    rows = []
    for name, test in tests.items():
        for family in anchor.families:
            # a model measured with its transmission's own codec has one feature family, that codec's, and
            # is compared with every feature family of the anchor; an image family only with its namesake
            own = None if anchor.codes_image(family) else own_codec_family(test)
            test_family = own or family
            if test_family not in test.families:
                raise ConfigError(f"test model {name!r} was not measured on curve family {family!r} "
                                  f"(has {', '.join(test.families)})")
            for task, key in anchor.tasks.items():
                if task not in test.tasks:
                    continue
                (ra, ma), (rt, mt) = anchor.curve(task, family), test.curve(task, test_family)
                if dominated == "drop":
                    keep_a, keep_t = efficient_points(ra, ma), efficient_points(rt, mt)
                    ra, ma, rt, mt = ra[keep_a], ma[keep_a], rt[keep_t], mt[keep_t]
                share = metric_overlap(ma, mt)
                values, notes = [], []
                for delta in (bd_rate, bd_metric):
                    try:
                        values.append(delta(ra, ma, rt, mt, method=method, min_overlap=min_overlap,
                                            dominated=dominated))
                    except ValueError as err:
                        values.append(None)
                        notes.append(f"{delta.__name__}: {err}")
                rows.append(BdRateRow(name, task, key, family, values[0], values[1], share, "; ".join(notes)))
    return rows


def family_bd_rate_rows(curves: RateAccuracyCurves, anchor: str, tests: Sequence[str] | None = None,
                        **options) -> list[BdRateRow]:
    """BD-rate rows of families of one model against its family ``anchor`` — e.g. coded features
    against remote inference (``anchor="remote"``: negative = split inference needs fewer bits than
    sending the image at equal accuracy). ``tests``: the families compared (default: all others);
    each row's ``test`` is the family, its ``family`` the anchor. ``options`` as for :func:`bd_rate_rows`."""
    curves.family(anchor)  # measured, or one line naming those that were
    tests = [f for f in curves.families if f != anchor] if tests is None else list(tests)
    if not tests:
        raise ConfigError(f"no curve family to compare with {anchor!r}: measured only {', '.join(curves.families)}")

    def as_anchor(family: str) -> RateAccuracyCurves:
        points = tuple(replace(p, family=anchor) for p in curves.family(family))
        return RateAccuracyCurves(points, dict(curves.reference), dict(curves.tasks), curves.elements, curves.images,
                                  dict(curves.provenance))

    return bd_rate_rows(curves.restrict(anchor), {family: as_anchor(family) for family in tests}, **options)


__all__ = ["DEFAULT_FAMILIES", "LEARNED", "PAPER_FAMILY", "BdRateRow", "CurvePoint", "Family", "RateAccuracyCurves",
           "bd_rate_rows", "curve_tasks", "curves_from_sweep", "family_bd_rate_rows", "measure_curves",
           "parse_families"]
