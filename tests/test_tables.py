"""The markdown table renderer and its cell formatters (cilight.evaluation.tables): golden strings."""

from __future__ import annotations

import pytest

from cilight.evaluation.comparison import Spread
from cilight.evaluation.tables import MISSING, markdown_table, mean_sd, optional, share_range, yes_no

GOLDEN = """\
| arm | family | BD-rate %, mean ± sd | overlap | beyond noise |
| --- | --- | --- | --- | --- |
| proxy_bits | j2k | -29.7 ± 1.5 | 40–100% | **yes** |
| codec_noise | j2k | refused | 0–3% | no |
| none | — |  | 7 | False |"""


def test_a_table_renders_as_the_readme_shows_it():
    rows = [["proxy_bits", "j2k", mean_sd(Spread([-30.0, -28.0, -31.0])), share_range([0.4, 1.0]), yes_no(True)],
            ("codec_noise", "j2k", "refused", share_range([0.0, 0.03]), yes_no(False)),
            ["none", optional(None), "", 7, False]]
    header = ["arm", "family", "BD-rate %, mean ± sd", "overlap", "beyond noise"]
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


def test_small_cells():
    assert optional(None) == "—" and optional(7.345) == "7.3" and optional(0.5, ".0%") == "50%"
    assert optional(None, missing="refused") == "refused"
    assert share_range([0.59, 0.4, 0.5]) == "40–59%"
    assert (yes_no(True), yes_no(False)) == ("**yes**", "no")
