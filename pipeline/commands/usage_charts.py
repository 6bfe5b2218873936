"""The charts of `bcl usage chart`: a usage report drawn to a PNG, with Japanese labels.

Drawn with matplotlib's Agg canvas on a bare Figure (no pyplot, so no GUI backend and no global
figure registry) in IPAexGothic, the font matplotlib-fontja ships: matplotlib's default DejaVu
has no kana or kanji and would draw them as empty boxes. matplotlib is imported only to draw:
it takes a good part of a second, and every `bcl` command imports this module.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping
from datetime import date
from enum import StrEnum
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from consumers.usage.queries import UsageReport

DPI = 150


class ChartKind(StrEnum):
    MONTHLY = "monthly"
    OPERATORS = "operators"
    HOURS = "hours"


# What each chart groups the report by.
CHART_GROUPS: Mapping[ChartKind, tuple[str, ...]] = {
    ChartKind.MONTHLY: ("month",),
    ChartKind.OPERATORS: ("store_operator",),
    ChartKind.HOURS: ("hour", "outside_counter_hours"),
}

OPERATOR_NAMES: Mapping[str, str] = {
    "seven_eleven": "セブン-イレブン",
    "familymart": "ファミリーマート",
    "lawson": "ローソン",
    "municipal_kiosk": "市区町村キオスク",
    "ministop": "ミニストップ",
    "seicomart": "セイコーマート",
    "aeon_retail": "イオンリテール",
    "other": "その他",
}

MIN_MONTH_SLOTS = 6
SERVICE_HOURS = range(6, 23)  # kiosks serve from 6:30 to 23:00
INSIDE_COLOUR = "#4c78a8"
OUTSIDE_COLOUR = "#f58518"


@cache
def japanese_font() -> str:
    """Register IPAexGothic with matplotlib, make it the default family, and return its name."""
    from matplotlib import font_manager, rcParams

    # Found without importing matplotlib_fontja: importing it changes rcParams on its own terms.
    spec = importlib.util.find_spec("matplotlib_fontja")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("matplotlib-fontja is not installed: it ships the Japanese font")
    path = Path(next(iter(spec.submodule_search_locations))) / "fonts" / "ipaexg.ttf"
    font_manager.fontManager.addfont(str(path))
    name = font_manager.FontProperties(fname=path).get_name()
    rcParams["font.family"] = name
    return name


def draw_chart(kind: ChartKind, report: UsageReport, path: Path, subtitle: str = "") -> None:
    """Write the chart of ``kind`` for ``report`` (grouped by ``CHART_GROUPS[kind]``) as a PNG."""
    if report.group_by != CHART_GROUPS[kind]:
        raise ValueError(f"a {kind} chart needs the report grouped by {CHART_GROUPS[kind]}")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    japanese_font()
    figure = Figure(figsize=(10, 5.6), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    records = report.records()
    if kind is ChartKind.MONTHLY:
        _monthly(axes, records)
    elif kind is ChartKind.OPERATORS:
        _operators(axes, records)
    else:
        _hours(axes, records)
    if subtitle:
        figure.suptitle(subtitle, fontsize=9, color="#555555", x=0.99, ha="right")
    axes.spines[["top", "right"]].set_visible(False)
    figure.savefig(path, dpi=DPI, format="png")


def _count(record: Mapping[str, object], column: str) -> int:
    value = record[column]
    return value if isinstance(value, int) else 0


def _monthly(axes: Axes, records: list[dict[str, object]]) -> None:
    months = [(r["month"], _count(r, "certificates")) for r in records]
    labels = [f"{m.year}年{m.month}月" for m, _ in months if isinstance(m, date)]
    counts = [count for m, count in months if isinstance(m, date)]
    bars = axes.bar(labels, counts, color=INSIDE_COLOUR, width=0.7)
    axes.bar_label(bars, labels=[f"{c:,}" for c in counts], fontsize=8, padding=2)
    # Room for at least six months, so that one or two are not drawn as walls.
    margin = max(0, MIN_MONTH_SLOTS - len(labels)) / 2
    axes.set_xlim(-0.5 - margin, len(labels) - 0.5 + margin)
    axes.set_title("月別交付通数")
    axes.set_ylabel("交付通数（通）")
    axes.yaxis.set_major_formatter("{x:,.0f}")
    if len(labels) > 8:
        for label in axes.get_xticklabels():
            label.set(rotation=45, horizontalalignment="right", rotation_mode="anchor")


def _operators(axes: Axes, records: list[dict[str, object]]) -> None:
    shares = sorted(
        (
            float(share) if isinstance(share := r["share_pct"], int | float) else 0.0,
            OPERATOR_NAMES.get(operator := str(r["store_operator"]), operator),
        )
        for r in records
    )
    values = [share for share, _ in shares]
    # Smallest first: barh draws upwards, so the leader ends on top.
    bars = axes.barh([name for _, name in shares], values, color=INSIDE_COLOUR)
    axes.bar_label(bars, labels=[f"{v:.1f}%" for v in values], fontsize=9, padding=3)
    axes.set_title("事業者別シェア（交付件数）")
    axes.set_xlabel("シェア（%）")
    axes.set_xlim(0, max([*values, 1.0]) * 1.15)


def _hours(axes: Axes, records: list[dict[str, object]]) -> None:
    inside = dict.fromkeys(SERVICE_HOURS, 0)
    outside = dict.fromkeys(SERVICE_HOURS, 0)
    for r in records:
        hour = r["hour"]
        # Requests not decided yet are neither inside nor outside counter hours.
        if r["outside_counter_hours"] is None or not isinstance(hour, int) or hour not in inside:
            continue
        counted = outside if r["outside_counter_hours"] else inside
        counted[hour] += _count(r, "issued")
    total = sum(inside.values()) + sum(outside.values())
    outside_share = 100 * sum(outside.values()) / total if total else 0.0
    hours = list(SERVICE_HOURS)
    below = [inside[h] for h in hours]
    axes.bar(hours, below, color=INSIDE_COLOUR, label="窓口時間内")
    axes.bar(
        hours,
        [outside[h] for h in hours],
        bottom=below,
        color=OUTSIDE_COLOUR,
        label=f"窓口時間外（{outside_share:.1f}%）",
    )
    axes.set_xticks(hours, [f"{h}時" for h in hours])
    axes.set_title("時間帯別（窓口時間外）")
    axes.set_ylabel("交付件数")
    axes.yaxis.set_major_formatter("{x:,.0f}")
    axes.legend(frameon=False)
