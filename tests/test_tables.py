"""The markdown table renderer and its cell formatters (cilight.evaluation.tables): golden strings."""

from __future__ import annotations

import math

import numpy as np
import pytest

from cilight.evaluation.comparison import Spread
from cilight.evaluation.paired import PairedInterval, paired_interval
from cilight.evaluation.tables import MISSING, interval_cell, markdown_table, mean_sd, share_range, yes_no

GOLDEN = """\
| arm | family | BD-rate %, mean ± sd | overlap | BD-rate % mean [95% interval] (n) | meets target |
| --- | --- | --- | --- | --- | --- |
| proxy_bits | j2k | -29.7 ± 1.5 | 40–100% | -29.7 [-33.4, -25.8] (n = 3) | **yes** |
| codec_noise | j2k | refused | 0–3% | — | no |
| none | — |  | 7 | -50.0 (n = 1 of 3) | False |"""


def test_a_table_renders_as_the_readme_shows_it():
    rows = [["proxy_bits", "j2k", mean_sd(Spread([-30.0, -28.0, -31.0])), share_range([0.4, 1.0]),
             interval_cell(paired_interval(np.log([0.70, 0.72, 0.69]))), yes_no(True)],
            ("codec_noise", "j2k", "refused", share_range([0.0, 0.03]), interval_cell(None), yes_no(False)),
            ["none", MISSING, "", 7, interval_cell(paired_interval([math.log(0.5)]), 3), False]]
    header = ["arm", "family", "BD-rate %, mean ± sd", "overlap", "BD-rate % mean [95% interval] (n)", "meets target"]
    assert markdown_table(header, rows) == GOLDEN
    assert markdown_table(header, iter(rows)) == GOLDEN  # any iterable of rows


def test_a_table_without_rows_is_its_header():
    assert markdown_table(["a", "b"], []) == "| a | b |\n| --- | --- |"


def test_a_pipe_in_a_cell_is_escaped():
    assert markdown_table(["x|y"], [["a | b"]]).splitlines() == ["| x\\|y |", "| --- |", "| a \\| b |"]


@pytest.mark.parametrize(("header", "rows", "message"), [
    (["a", "b"], [["1", "2"], ["3"]], r"row 1 has 1 cells \(\['3'\]\); expected 2"),
    (["a"], [["one\ntwo"]], "row 0: cell 'one\\\\ntwo' has a line break"),
    ([], [], "no columns"),
])
def test_a_malformed_table_is_refused(header, rows, message):
    with pytest.raises(ValueError, match=message):
        markdown_table(header, rows)


@pytest.mark.parametrize(("spread", "spec", "text"), [
    (Spread([-30.0, -28.0, -31.0]), "+.1f", "-29.7 ± 1.5"),
    ({"mean": 4.75, "std": 0.0, "values": [4.75]}, "+.1f", "+4.8 ± 0.0"),
    ({"mean": 0.41234, "std": 0.00567, "values": []}, ".3f", "0.412 ± 0.006"),
    (Spread([2.0, 4.0]), ".2f", "3.00 ± 1.41"),
    (None, "+.1f", MISSING),
])
def test_mean_sd(spread, spec, text):
    assert mean_sd(spread, spec) == text


@pytest.mark.parametrize(("interval", "of", "text"), [
    (PairedInterval(3, math.log(0.8), 0.05, math.log(0.7), math.log(0.9), 0.01), None, "-20.0 [-30.0, -10.0] (n = 3)"),
    (PairedInterval(3, math.log(0.8), 0.05, math.log(0.7), math.log(0.9), 0.01), 3, "-20.0 [-30.0, -10.0] (n = 3)"),
    (PairedInterval(2, math.log(1.5), 0.05, math.log(0.75), math.log(3.0), 0.2), 4, "+50.0 [-25.0, +200.0] (n = 2 of 4)"),
    (PairedInterval(1, math.log(1.25), None, None, None, None), 2, "+25.0 (n = 1 of 2)"),
    (PairedInterval(2, 20.0, 1.0, 10.0, 30.0, 0.1), None, "+4.85e+10 [+2.20e+06, +1.07e+15] (n = 2)"),  # a diverged fit
    (None, 3, MISSING),
])
def test_interval_cell(interval, of, text):
    assert interval_cell(interval, of) == text
    if interval is not None:
        assert interval_cell(interval.as_dict(), of) == text  # the results file's dict reads the same


def test_small_cells():
    assert interval_cell(None, missing="refused") == "refused"
    assert share_range([0.59, 0.4, 0.5]) == "40–59%"
    assert (yes_no(True), yes_no(False)) == ("**yes**", "no")
