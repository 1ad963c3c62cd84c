"""Markdown tables: the one renderer behind every table the benchmarks print for the README.

:func:`markdown_table` turns a header and rows of cells into a GitHub-flavoured markdown table;
the small formatters beside it write the cells every BD-rate table shares (mean ± sd over seeds,
a paired interval, a range of overlaps, a yes/no check) the same way everywhere.

::

    markdown_table(["arm", "BD-rate % mean [95% interval] (n)"], [["none", "—"], ["dpcm_dct", "-7.8 [-9.9, -5.6] (n = 3)"]])

    | arm | BD-rate % mean [95% interval] (n) |
    | --- | --- |
    | none | — |
    | dpcm_dct | -7.8 [-9.9, -5.6] (n = 3) |
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from cilight.evaluation.comparison import Spread
from cilight.evaluation.paired import PairedInterval

MISSING = "—"  # a cell with no value


def markdown_table(header: Sequence[object], rows: Iterable[Sequence[object]]) -> str:
    """``| a | b |`` lines: the header, its ``| --- |`` rule, one line per row; no trailing newline.

    Cells are written with ``str``; a ``|`` inside a cell is escaped (``\\|``). Every row must have
    as many cells as the header, and no cell may contain a line break.
    """
    header = [_cell(c, "header") for c in header]
    if not header:
        raise ValueError("a markdown table with no columns: expected at least one header cell")
    lines = [_line(header), "|" + " --- |" * len(header)]
    for i, row in enumerate(rows):
        cells = [_cell(c, f"row {i}") for c in row]
        if len(cells) != len(header):
            raise ValueError(f"row {i} has {len(cells)} cells ({cells}); expected {len(header)}, one per column "
                             f"of {header}")
        lines.append(_line(cells))
    return "\n".join(lines)


def _cell(value: object, where: str) -> str:
    text = str(value)
    if "\n" in text or "\r" in text:
        raise ValueError(f"{where}: cell {text!r} has a line break; a markdown table cell is one line")
    return text.replace("|", "\\|")


def _line(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def mean_sd(spread: Spread | Mapping | None, spec: str = "+.1f", missing: str = MISSING) -> str:
    """``mean ± sd`` of a :class:`~cilight.evaluation.comparison.Spread` (or its dict), the mean with
    format ``spec`` and the sd with the same precision unsigned; ``missing`` for ``None``."""
    if spread is None:
        return missing
    mean, std = (spread.mean, spread.std) if isinstance(spread, Spread) else (spread["mean"], spread["std"])
    return f"{mean:{spec}} ± {std:{spec.lstrip('+')}}"


def interval_cell(interval: PairedInterval | Mapping | None, of: int | None = None, missing: str = MISSING) -> str:
    """``mean [lo, hi] (n = k)`` of a :class:`~cilight.evaluation.paired.PairedInterval` (or its dict) in percent
    of rate, signed, one decimal (three significant digits from 10⁵%: a diverged fit's values); ``(n = k of m)``
    when ``of`` (the pairs or seeds there were) is larger than ``n``; no brackets with one pair; ``missing``
    for ``None``."""
    if interval is None:
        return missing
    if isinstance(interval, PairedInterval):
        n, mean, lo, hi = interval.n, interval.percent, interval.lo_percent, interval.hi_percent
    else:
        n, mean, lo, hi = interval["n"], interval["percent"], interval["lo_percent"], interval["hi_percent"]
    span = "" if lo is None else f" [{_percent(lo)}, {_percent(hi)}]"
    count = f"{n} of {of}" if of is not None and of > n else f"{n}"
    return f"{_percent(mean)}{span} (n = {count})"


def _percent(value: float) -> str:
    return f"{value:+.1f}" if abs(value) < 1e5 else f"{value:+.2e}"


def share_range(shares: Sequence[float]) -> str:
    """The smallest and largest of some shares in [0, 1] as whole percent: ``40–59%``."""
    return f"{100 * min(shares):.0f}–{100 * max(shares):.0f}%"


def yes_no(flag: bool) -> str:
    """A verdict cell: ``**yes**`` stands out, ``no`` does not."""
    return "**yes**" if flag else "no"


__all__ = ["MISSING", "interval_cell", "markdown_table", "mean_sd", "share_range", "yes_no"]
