"""Comparing two training recipes ("arms") over seeds: paired BD-rates, a paired t-interval, Holm, a verdict.

A claim such as "the compressibility loss saves 20% of the bits" (Alvar & Bajić, "Multi-task learning
with compressible features for collaborative intelligence", IEEE ICIP 2019, §3, Table 1) compares two
models; with one model per arm it cannot tell a saving from the difference between two seeds of the
same recipe. cilight's from-scratch benchmarks train every arm with the same seeds, measure the effect
of the recipe within each seed and decide from the spread of those within-seed effects:

::

    anchor arm {seed: curves} ─┬─ seed s vs seed s ─► BD-rate_s in % (VCEG-M33) ─► d_s = ln(1 + BD-rate_s / 100)
    test arm   {seed: curves} ─┘     (refused below min_overlap: "refused for k of n seeds (reason)", no verdict)
    d_1 … d_n ─► paired 95% t-interval and t-test (n, mean, lo, hi, p) ─► Holm across the tasks of a family
              ─► verdict in % of rate: saves / costs / no saving larger than / inconclusive

* :func:`paired_bd_rates` — each seed's test curves against the anchor of the same seed
  (:func:`~cilight.evaluation.curves.bd_rate_rows`, so every BD-rate is Bjøntegaard's, VCEG-M33,
  over the metric range the two curves share);
* :class:`ArmComparison` — one family and task: the per-seed BD-rates, their log rate ratios, the
  paired interval (:func:`~cilight.evaluation.paired.paired_interval`), the Holm-adjusted p-value and
  the verdict (:func:`~cilight.evaluation.paired.verdict`), written to and read from the results JSON;
* :func:`holm_by_family` — the Holm adjustment (:func:`~cilight.evaluation.paired.holm`) across the
  tasks of each curve family of one table (a task without a test counting as p = 1), used by
  :func:`compare_arms` and again when a table is read back from an old results file that has no
  adjusted p-values;
* :func:`compare_arms` — all of it per curve family and task, once under the overlap rule (a BD-rate
  over less than ``min_overlap`` of the two metric ranges is refused) and once over any overlap
  (reported beside a refusal, never as the headline);
* :class:`Spread` — mean ± sample standard deviation over seeds, the JSON layout the benchmarks
  write (``{"mean", "std", "values"}``).

These verdicts were first decided by a "noise floor", the largest |BD-rate| between anchor models of
different seeds, a saving counting only beyond it with every seed negative. That rule was retired
because the effect of a recipe is measured within one seed while the floor compares different seeds,
whose spread overstates the noise a within-seed effect carries; the decision is now the paired interval
of :mod:`~cilight.evaluation.paired`.

Unlike :func:`~cilight.evaluation.paired.bd_log_rate`, which reads every pair over one metric band fixed
in advance, each BD-rate here integrates over the metric range its two curves share, which differs from
seed to seed. Everything here is measured on :class:`~cilight.evaluation.curves.RateAccuracyCurves` and
trains nothing; ``benchmarks/arms.py`` trains the arms.
"""

from __future__ import annotations

import math
import re
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

from cilight.evaluation.bdrate import MIN_OVERLAP
from cilight.evaluation.curves import BdRateRow, Family, RateAccuracyCurves, bd_rate_rows
from cilight.evaluation.defaults import ALPHA, CONFIDENCE, PRECISION
from cilight.evaluation.paired import PairedInterval, holm, paired_interval, verdict

Key = tuple[str, str]  # (curve family, task)


@dataclass(frozen=True)
class Spread:
    """Values measured once per seed (or seed pair): their mean and sample standard deviation (0 for one value)."""

    values: tuple[float, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "values", tuple(self.values))
        if not self.values:
            raise ValueError("a spread of no values: expected at least one value per seed")

    @property
    def mean(self) -> float:
        return statistics.fmean(self.values)

    @property
    def std(self) -> float:
        return statistics.stdev(self.values) if len(self.values) > 1 else 0.0

    def as_dict(self) -> dict:
        return {"mean": self.mean, "std": self.std, "values": list(self.values)}

    @classmethod
    def from_dict(cls, data: Mapping) -> Spread:
        return cls(tuple(data["values"]))


def _spread(values: Sequence[float]) -> Spread | None:
    return Spread(tuple(values)) if values else None


def log_ratio(bd_rate: float) -> float | None:
    """A BD-rate in percent as a natural-log rate ratio, ``ln(1 + bd_rate / 100)``; ``None`` when it is not
    a finite rate ratio (a diverged fit's BD-rate of −100% or less, or not finite)."""
    return math.log1p(bd_rate / 100.0) if math.isfinite(bd_rate) and bd_rate > -100.0 else None


def _reason(note: str) -> str:
    """The BD-rate's part of a refusal note, up to its first ``": "`` (the explanation after it is dropped), with
    no ``"; "`` of its own (the verdict separates reasons with it)."""
    text = note.split("; bd_metric: ", 1)[0].removeprefix("bd_rate: ")
    return text.split(": ", 1)[0].replace("; ", ", ") or "refused"


@dataclass(frozen=True)
class ArmComparison:
    """The test arm against the anchor arm on one curve family and task, over the seeds both were trained with.

    ``bd_rate`` / ``bd_metric`` spread over the seeds whose BD-rate was not refused (percent, and the
    metric's unit); ``overlap`` and ``refused`` (the reason of each refusal) have one entry per seed;
    ``any_overlap_bd_rate`` is the BD-rate computed with no overlap rule. ``interval`` is the paired
    t-interval of the measured seeds' log rate ratios; ``p_adjusted`` its p-value Holm-adjusted across
    the tasks of the family (:func:`holm_by_family`), set only when every seed has a BD-rate and there
    are at least two (:attr:`tested`). The verdict follows from these and ``alpha`` / ``precision``.
    """

    family: str
    task: str
    metric: str
    bd_rate: Spread | None
    bd_metric: Spread | None
    overlap: tuple[float, ...]
    refused: tuple[str, ...]
    any_overlap_bd_rate: Spread | None = None
    p_adjusted: float | None = None
    alpha: float = ALPHA
    precision: float = PRECISION

    def __post_init__(self) -> None:
        for name in ("overlap", "refused"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        where = f"comparison {self.family}/{self.task}"
        measured = len(self.bd_rate.values) if self.bd_rate else 0
        if measured + len(self.refused) != len(self.overlap):
            raise ValueError(f"{where}: {measured} BD-rates and {len(self.refused)} refusals for {len(self.overlap)} "
                             "seeds; expected one or the other per seed")
        if not 0.0 < self.alpha < 1.0 or not (math.isfinite(self.precision) and self.precision >= 0):
            raise ValueError(f"{where}: alpha={self.alpha!r}, precision={self.precision!r}; expected alpha in (0, 1) "
                             "and a precision ≥ 0 (percent of rate)")
        if self.p_adjusted is not None:
            if not self.tested:
                raise ValueError(f"{where}: p_adjusted={self.p_adjusted!r} without a test (BD-rates of {measured} of "
                                 f"{self.seeds} seeds); expected None unless every seed, at least two, has one")
            if not self.interval.p - 1e-12 <= self.p_adjusted <= 1.0:
                raise ValueError(f"{where}: p_adjusted={self.p_adjusted!r} below p={self.interval.p!r} or above 1; "
                                 "a Holm adjustment never lowers a p-value")

    @property
    def seeds(self) -> int:
        return len(self.overlap)

    @property
    def every_seed(self) -> bool:
        """Whether every seed has a BD-rate (none refused)."""
        return self.bd_rate is not None and len(self.bd_rate.values) == self.seeds

    @property
    def log_ratios(self) -> tuple[float | None, ...]:
        """The measured seeds' BD-rates as log rate ratios (:func:`log_ratio`)."""
        return tuple(log_ratio(v) for v in self.bd_rate.values) if self.bd_rate else ()

    @property
    def interval(self) -> PairedInterval | None:
        """The paired t-interval over the measured seeds' log rate ratios; ``None`` if no seed has a BD-rate
        or one is not a finite rate ratio."""
        ratios = self.log_ratios
        if not ratios or any(v is None for v in ratios):
            return None
        return paired_interval(ratios, CONFIDENCE)

    @property
    def tested(self) -> bool:
        """Whether this comparison has a p-value that enters Holm: every seed measured, at least two, all finite."""
        interval = self.interval
        return self.every_seed and interval is not None and interval.p is not None

    @property
    def verdict(self) -> str:
        """:func:`~cilight.evaluation.paired.verdict` when every seed has a BD-rate, else why there is none."""
        if not self.every_seed:
            reasons = [_reason(note) for note in self.refused]
            kinds = {}
            for reason in reasons:  # one reason of each kind: numbers aside, the overlap column has them
                kinds.setdefault(re.sub(r"\d+(\.\d+)?", "#", reason), reason)
            shown = "; ".join(kinds.values())
            prefix = "e.g. " if len(set(reasons)) > len(kinds) else ""
            return f"refused for {len(self.refused)} of {self.seeds} seeds ({prefix}{shown})"
        interval = self.interval
        if interval is None:
            shown = ", ".join(f"{v:+.3g}%" for v in self.bd_rate.values)
            return f"refused: BD-rates {shown} are not all finite rate ratios (a diverged fit)"
        if interval.has_interval and self.p_adjusted is None:
            return f"untested: no Holm-adjusted p-value (rate change {interval.lo_percent:+.1f}% to " \
                   f"{interval.hi_percent:+.1f}%)"
        return verdict(interval, self.p_adjusted, self.alpha, self.precision)

    @property
    def saves(self) -> bool:
        """Whether the verdict is a saving: the interval's upper end below 0 and the Holm-adjusted p below alpha."""
        return self.p_adjusted is not None and self.interval.hi < 0 and self.p_adjusted < self.alpha

    def as_dict(self) -> dict:
        """The JSON layout of the benchmarks' results files (the interval and the verdict written out)."""
        interval = self.interval
        return {
            "family": self.family, "task": self.task, "metric": self.metric,
            "bd_rate": self.bd_rate.as_dict() if self.bd_rate else None,
            "bd_metric": self.bd_metric.as_dict() if self.bd_metric else None,
            "overlap": list(self.overlap), "refused": list(self.refused),
            "any_overlap": {"bd_rate": self.any_overlap_bd_rate.as_dict() if self.any_overlap_bd_rate else None},
            "log_ratios": list(self.log_ratios), "interval": interval.as_dict() if interval else None,
            "p_adjusted": self.p_adjusted, "alpha": self.alpha, "precision": self.precision, "verdict": self.verdict,
        }

    @classmethod
    def from_dict(cls, data: Mapping) -> ArmComparison:
        """Read :meth:`as_dict`'s layout, or the older one of the retired noise floor (its ``noise_*`` keys, and
        any other key a benchmark wrote beside them, are ignored). The interval and the verdict are derived
        again, not read; an old file has no ``p_adjusted``: :func:`holm_by_family` sets it."""
        def spread(value: Mapping | None) -> Spread | None:
            return Spread.from_dict(value) if value else None

        try:
            return cls(data["family"], data["task"], data["metric"], spread(data["bd_rate"]), spread(data["bd_metric"]),
                       data["overlap"], data["refused"], spread((data.get("any_overlap") or {}).get("bd_rate")),
                       data.get("p_adjusted"), data.get("alpha", ALPHA), data.get("precision", PRECISION))
        except KeyError as err:
            raise ValueError(f"not an arm comparison written by ArmComparison.as_dict: no key {err}") from None


def holm_by_family(table: Iterable[ArmComparison]) -> list[ArmComparison]:
    """``table`` (one comparison of two arms) with ``p_adjusted`` Holm-adjusted across the tasks of each family.

    Every task of a family counts in the adjustment; one without a test (:attr:`ArmComparison.tested`: a
    refused seed, or one seed) counts as p = 1 and gets ``None``, so a refusal never makes the others'
    adjustment milder (as ``benchmarks.shared_base`` does). Used by :func:`compare_arms`, and by the
    benchmarks on tables read back from results files.
    """
    table = list(table)
    out = [replace(c, p_adjusted=None) for c in table]
    for family in dict.fromkeys(c.family for c in table):
        members = [i for i, c in enumerate(table) if c.family == family]
        if not any(table[i].tested for i in members):
            continue
        adjusted = holm([table[i].interval.p if table[i].tested else 1.0 for i in members])
        for i, p in zip(members, adjusted):
            if table[i].tested:
                out[i] = replace(table[i], p_adjusted=p)
    return out


def _by_key(rows: Iterable[BdRateRow], into: dict[Key, list[BdRateRow]]) -> dict[Key, list[BdRateRow]]:
    for row in rows:
        into.setdefault((row.family, row.task), []).append(row)
    return into


def paired_bd_rates(anchor: Mapping[int, RateAccuracyCurves], test: Mapping[int, RateAccuracyCurves], *,
                    method: str = "cubic", min_overlap: float = MIN_OVERLAP,
                    dominated: str = "refuse") -> dict[Key, list[BdRateRow]]:
    """Per (family, task): the BD-rate row of each seed's ``test`` curves against the ``anchor`` of the same
    seed, in order of seed. Both arms must have been trained with the same seeds."""
    if set(anchor) != set(test):
        raise ValueError(f"anchor seeds {sorted(anchor)} and test seeds {sorted(test)}: expected the same seeds in "
                         "both arms (BD-rates are paired by seed)")
    rows: dict[Key, list[BdRateRow]] = {}
    for seed in sorted(anchor):
        _by_key(bd_rate_rows(anchor[seed], {"test": test[seed]}, method=method, min_overlap=min_overlap,
                             dominated=dominated), rows)
    return rows


def compare_arms(anchor: Mapping[int, RateAccuracyCurves], test: Mapping[int, RateAccuracyCurves],
                 families: Sequence[Family | str], *, method: str = "cubic", min_overlap: float = MIN_OVERLAP,
                 dominated: str = "refuse", alpha: float = ALPHA, precision: float = PRECISION) -> list[ArmComparison]:
    """One :class:`ArmComparison` per family (in the order given) and task (the anchor's order), Holm-adjusted
    across the tasks of each family (:func:`holm_by_family`).

    Args:
        anchor, test: ``{seed: curves}`` of each arm, the same seeds in both.
        families: the curve families to compare (:class:`~cilight.evaluation.curves.Family` or names);
            each must have been measured on the anchor.
        method, min_overlap, dominated: as :func:`~cilight.evaluation.bdrate.bd_rate` (the
            ``any_overlap_bd_rate`` is computed with ``min_overlap=0``).
        alpha, precision: of the verdicts (:func:`~cilight.evaluation.paired.verdict`).
    """
    if not anchor:
        raise ValueError("no anchor curves: expected {seed: curves} of at least one seed")
    options = {"method": method, "dominated": dominated}
    effect = paired_bd_rates(anchor, test, min_overlap=min_overlap, **options)
    effect_any = paired_bd_rates(anchor, test, min_overlap=0.0, **options)
    first = anchor[min(anchor)]
    table = []
    for family in (f if isinstance(f, str) else f.name for f in families):
        for task in first.tasks:
            key = (family, task)
            if key not in effect:
                raise ValueError(f"no BD-rate of family {family!r}, task {task!r}: the anchor was measured on "
                                 f"{', '.join(first.families)}, the test arm on tasks {', '.join(test[min(test)].tasks)}")
            rows = effect[key]
            table.append(ArmComparison(
                family, task, rows[0].metric,
                bd_rate=_spread([r.bd_rate for r in rows if r.bd_rate is not None]),
                bd_metric=_spread([r.bd_metric for r in rows if r.bd_metric is not None]),
                overlap=[r.overlap for r in rows], refused=[r.note for r in rows if r.bd_rate is None],
                any_overlap_bd_rate=_spread([r.bd_rate for r in effect_any[key] if r.bd_rate is not None]),
                alpha=alpha, precision=precision))
    return holm_by_family(table)


__all__ = ["ALPHA", "CONFIDENCE", "PRECISION", "ArmComparison", "Spread", "compare_arms", "holm_by_family", "log_ratio",
           "paired_bd_rates"]
