"""Comparing two training recipes ("arms") over seeds: paired BD-rates against the seed-to-seed noise floor.

A claim such as "the compressibility loss saves 20% of the bits" (Alvar & Bajić, "Multi-task learning
with compressible features for collaborative intelligence", IEEE ICIP 2019, §3, Table 1) compares two
models; with one model per arm it cannot tell a saving from the difference between two seeds of the
same recipe. cilight's benchmarks train every arm with the same seeds and decide like this:

::

    anchor arm  {seed: curves} ─┬─ seed s vs seed s ──► paired BD-rates (one per seed) ─► Spread (mean ± sd)
    test arm    {seed: curves} ─┘                                                                 │
    anchor arm, seeds a < b ────── seed b vs seed a ──► noise BD-rates ─► noise floor = max |BD-rate|
                                                                                                  ▼
                saving beyond noise ⇔ a BD-rate for every seed, all negative, and mean < −floor

* :func:`paired_bd_rates` — each seed's test curves against the anchor of the same seed
  (:func:`~cilight.evaluation.curves.bd_rate_rows`, so every BD-rate is Bjøntegaard's, VCEG-M33);
* :func:`seed_noise` and :func:`noise_floor` — the BD-rates between curves of one arm and
  different seeds, and the largest of their magnitudes;
* :func:`compare_arms` — both, per curve family and task, as :class:`ArmComparison` rows, once
  under the overlap rule (a BD-rate over less than ``min_overlap`` of the two metric ranges is
  refused) and once over any overlap (reported beside a refusal, never as the headline);
* :class:`Spread` — mean ± sample standard deviation over seeds, the JSON layout the benchmarks
  write (``{"mean", "std", "values"}``).

Everything here is measured on :class:`~cilight.evaluation.curves.RateAccuracyCurves` and trains
nothing; ``benchmarks/arms.py`` trains the arms.
"""

from __future__ import annotations

import itertools
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

from cilight.evaluation.bdrate import MIN_OVERLAP
from cilight.evaluation.curves import BdRateRow, Family, RateAccuracyCurves, bd_rate_rows

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


@dataclass(frozen=True)
class ArmComparison:
    """The test arm against the anchor arm on one curve family and task, over the seeds both were trained with.

    ``bd_rate`` / ``bd_metric`` spread over the seeds whose BD-rate was not refused; ``overlap`` and
    ``refused`` (the reason of each refusal) have one entry per seed, the ``noise_*`` fields one per
    pair of anchor seeds. ``noise_floor`` is ``None`` when every noise BD-rate was refused (or there
    is one seed). The ``any_overlap_*`` fields are the same computed with no overlap rule.
    """

    family: str
    task: str
    metric: str
    bd_rate: Spread | None
    bd_metric: Spread | None
    overlap: tuple[float, ...]
    refused: tuple[str, ...]
    noise_bd_rates: tuple[float | None, ...]
    noise_overlap: tuple[float, ...]
    noise_refused: tuple[str, ...]
    noise_floor: float | None
    any_overlap_bd_rate: Spread | None = None
    any_overlap_noise_floor: float | None = None

    def __post_init__(self) -> None:
        for name in ("overlap", "refused", "noise_bd_rates", "noise_overlap", "noise_refused"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        measured = len(self.bd_rate.values) if self.bd_rate else 0
        if measured + len(self.refused) != len(self.overlap):
            raise ValueError(f"comparison {self.family}/{self.task}: {measured} BD-rates and {len(self.refused)} "
                             f"refusals for {len(self.overlap)} seeds; expected one or the other per seed")
        if len(self.noise_overlap) != len(self.noise_bd_rates):
            raise ValueError(f"comparison {self.family}/{self.task}: {len(self.noise_bd_rates)} noise BD-rates but "
                             f"{len(self.noise_overlap)} overlaps; expected one each per seed pair")
        for name in ("noise_floor", "any_overlap_noise_floor"):
            value = getattr(self, name)
            if value is not None and not value >= 0:
                raise ValueError(f"comparison {self.family}/{self.task}: {name}={value!r}; expected a magnitude ≥ 0")

    @property
    def seeds(self) -> int:
        return len(self.overlap)

    @property
    def every_seed(self) -> bool:
        """Whether every seed has a BD-rate (none refused)."""
        return self.bd_rate is not None and len(self.bd_rate.values) == self.seeds

    @property
    def saving_beyond_noise(self) -> bool:
        """The decision rule: a BD-rate for every seed, every one negative, and the mean below −floor."""
        return bool(self.every_seed and self.noise_floor is not None and self.bd_rate.mean < -self.noise_floor
                    and all(v < 0 for v in self.bd_rate.values))

    def with_floor(self, other: float | None) -> ArmComparison:
        """The same comparison against the larger of its floor and ``other`` (another source of seed noise,
        e.g. the test arm's own); ``None`` stands for a floor that could not be measured."""
        known = [f for f in (self.noise_floor, other) if f is not None]
        return replace(self, noise_floor=max(known) if known else None)

    def as_dict(self) -> dict:
        """The JSON layout of the benchmarks' results files (``saving_beyond_noise`` written out)."""
        return {
            "family": self.family, "task": self.task, "metric": self.metric,
            "bd_rate": self.bd_rate.as_dict() if self.bd_rate else None,
            "bd_metric": self.bd_metric.as_dict() if self.bd_metric else None,
            "overlap": list(self.overlap), "refused": list(self.refused),
            "noise_bd_rates": list(self.noise_bd_rates), "noise_overlap": list(self.noise_overlap),
            "noise_refused": list(self.noise_refused), "noise_floor": self.noise_floor,
            "any_overlap": {"bd_rate": self.any_overlap_bd_rate.as_dict() if self.any_overlap_bd_rate else None,
                            "noise_floor": self.any_overlap_noise_floor},
            "saving_beyond_noise": self.saving_beyond_noise,
        }

    @classmethod
    def from_dict(cls, data: Mapping) -> ArmComparison:
        """Read :meth:`as_dict`'s layout; other keys a benchmark wrote beside it are ignored, and
        ``saving_beyond_noise`` is derived again, not read."""
        def spread(value: Mapping | None) -> Spread | None:
            return Spread.from_dict(value) if value else None

        any_overlap = data.get("any_overlap") or {}
        try:
            return cls(data["family"], data["task"], data["metric"], spread(data["bd_rate"]), spread(data["bd_metric"]),
                       data["overlap"], data["refused"], data["noise_bd_rates"], data["noise_overlap"],
                       data["noise_refused"], data["noise_floor"], spread(any_overlap.get("bd_rate")),
                       any_overlap.get("noise_floor"))
        except KeyError as err:
            raise ValueError(f"not an arm comparison written by ArmComparison.as_dict: no key {err}") from None


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


def seed_noise(curves: Mapping[int, RateAccuracyCurves], *, method: str = "cubic", min_overlap: float = MIN_OVERLAP,
               dominated: str = "refuse") -> dict[Key, list[BdRateRow]]:
    """Per (family, task): the BD-rate rows between curves of one arm and different seeds — for every
    pair of seeds a < b, seed b against seed a. Empty with one seed."""
    rows: dict[Key, list[BdRateRow]] = {}
    for a, b in itertools.combinations(sorted(curves), 2):
        _by_key(bd_rate_rows(curves[a], {"test": curves[b]}, method=method, min_overlap=min_overlap,
                             dominated=dominated), rows)
    return rows


def noise_floor(rows: Iterable[BdRateRow]) -> float | None:
    """The largest |BD-rate| among ``rows`` that were not refused; ``None`` if there is none."""
    magnitudes = [abs(r.bd_rate) for r in rows if r.bd_rate is not None]
    return max(magnitudes) if magnitudes else None


def compare_arms(anchor: Mapping[int, RateAccuracyCurves], test: Mapping[int, RateAccuracyCurves],
                 families: Sequence[Family | str], *, method: str = "cubic", min_overlap: float = MIN_OVERLAP,
                 dominated: str = "refuse") -> list[ArmComparison]:
    """One :class:`ArmComparison` per family (in the order given) and task (the anchor's order).

    Args:
        anchor, test: ``{seed: curves}`` of each arm, the same seeds in both.
        families: the curve families to compare (:class:`~cilight.evaluation.curves.Family` or names);
            each must have been measured on the anchor.
        method, min_overlap, dominated: as :func:`~cilight.evaluation.bdrate.bd_rate` (the
            ``any_overlap_*`` fields are computed with ``min_overlap=0``).
    """
    if not anchor:
        raise ValueError("no anchor curves: expected {seed: curves} of at least one seed")
    options = {"method": method, "dominated": dominated}
    effect = paired_bd_rates(anchor, test, min_overlap=min_overlap, **options)
    noise = seed_noise(anchor, min_overlap=min_overlap, **options)
    effect_any = paired_bd_rates(anchor, test, min_overlap=0.0, **options)
    noise_any = seed_noise(anchor, min_overlap=0.0, **options)
    first = anchor[min(anchor)]
    table = []
    for family in (f if isinstance(f, str) else f.name for f in families):
        for task in first.tasks:
            key = (family, task)
            if key not in effect:
                raise ValueError(f"no BD-rate of family {family!r}, task {task!r}: the anchor was measured on "
                                 f"{', '.join(first.families)}, the test arm on tasks {', '.join(test[min(test)].tasks)}")
            rows, pairs = effect[key], noise.get(key, [])
            table.append(ArmComparison(
                family, task, rows[0].metric,
                bd_rate=_spread([r.bd_rate for r in rows if r.bd_rate is not None]),
                bd_metric=_spread([r.bd_metric for r in rows if r.bd_metric is not None]),
                overlap=[r.overlap for r in rows], refused=[r.note for r in rows if r.bd_rate is None],
                noise_bd_rates=[r.bd_rate for r in pairs], noise_overlap=[r.overlap for r in pairs],
                noise_refused=[r.note for r in pairs if r.bd_rate is None], noise_floor=noise_floor(pairs),
                any_overlap_bd_rate=_spread([r.bd_rate for r in effect_any[key] if r.bd_rate is not None]),
                any_overlap_noise_floor=noise_floor(noise_any.get(key, []))))
    return table


__all__ = ["ArmComparison", "Spread", "compare_arms", "noise_floor", "paired_bd_rates", "seed_noise"]
