"""`bcl usage chart`'s drawings, with no database: PNGs at 150 dpi in a font that has Japanese."""

from __future__ import annotations

import warnings
from datetime import date
from pathlib import Path

import pytest
from matplotlib import font_manager, image, rcParams

from consumers.usage.queries import UsageReport, report_columns
from pipeline.commands.usage_charts import (
    CHART_GROUPS,
    OPERATOR_NAMES,
    ChartKind,
    draw_chart,
    japanese_font,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def report(kind: ChartKind) -> UsageReport:
    """A report grouped as the chart wants it, with made-up but plausible counts."""
    keys = CHART_GROUPS[kind]
    if kind is ChartKind.MONTHLY:
        groups: list[tuple[object, ...]] = [(date(2023, month, 1),) for month in range(4, 13)]
    elif kind is ChartKind.OPERATORS:
        groups = [(operator,) for operator in OPERATOR_NAMES]
    else:
        groups = [(hour, outside) for hour in range(6, 23) for outside in (False, True, None)]
    issued = [1000 + 137 * number % 900 for number in range(len(groups))]
    rows = [
        (*group, n + 30, n, 30, n - 10, 10, n, n * 300, round(100 * n / sum(issued), 2))
        for group, n in zip(groups, issued, strict=True)
    ]
    return UsageReport(keys, report_columns(keys), tuple(rows))


@pytest.mark.parametrize("kind", list(ChartKind))
def test_each_chart_is_a_png_at_150_dpi(kind: ChartKind, tmp_path: Path) -> None:
    path = tmp_path / f"{kind}.png"
    # matplotlib warns of each glyph the font lacks (drawn as an empty box): none may be missing.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        draw_chart(kind, report(kind), path, subtitle="横浜市 (141003) · 2024-03")

    data = path.read_bytes()
    assert data.startswith(PNG_SIGNATURE)
    assert len(data) > 20_000
    height, width = image.imread(path).shape[:2]
    assert (width, height) == (10 * 150, round(5.6 * 150))


def test_the_japanese_font_is_the_one_in_use() -> None:
    name = japanese_font()

    assert name == "IPAexGothic"
    assert rcParams["font.family"] == [name]
    found = font_manager.findfont(
        font_manager.FontProperties(family=name), fallback_to_default=False
    )
    assert Path(found).name == "ipaexg.ttf"


def test_a_report_grouped_otherwise_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="grouped by"):
        draw_chart(ChartKind.HOURS, report(ChartKind.MONTHLY), tmp_path / "hours.png")
