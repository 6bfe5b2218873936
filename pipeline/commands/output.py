"""How `bcl` commands print rows: a terminal table that never cuts digits, CSV, JSON."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping, Sequence
from datetime import date
from enum import StrEnum

from rich.measure import Measurement
from rich.table import Table

from pipeline.commands.common import console


class OutputFormat(StrEnum):
    TABLE = "table"
    CSV = "csv"
    JSON = "json"


def cell(column: str, value: object) -> str:
    """A value as the terminal shows it: thousands separated, months as YYYY-MM, — for none."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.2f}"
    if column == "month" and isinstance(value, date):
        return f"{value:%Y-%m}"
    return str(value)


def print_table(table: Table) -> None:
    """Wider than the terminal, the table keeps its natural width (the terminal wraps the lines)
    rather than cutting digits short."""
    natural = Measurement.get(console, console.options.update_width(10_000), table).maximum
    if natural > console.width:
        table.width = natural
    console.print(table, crop=False)


def csv_text(columns: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    def text(value: object) -> object:
        if isinstance(value, bool):
            return "true" if value else "false"
        return "" if value is None else value

    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows([text(v) for v in row] for row in rows)
    return buffer.getvalue()


def json_text(value: Sequence[Mapping[str, object]] | Mapping[str, object]) -> str:
    def plain(value: object) -> str:
        if isinstance(value, date):
            return value.isoformat()
        raise TypeError(f"{type(value).__name__} is not JSON")

    return json.dumps(value, ensure_ascii=False, indent=2, default=plain) + "\n"
