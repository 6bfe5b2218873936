"""How `bcl` commands print rows: a terminal table that never cuts digits, CSV, JSON."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping, Sequence, Set
from datetime import date
from enum import StrEnum
from pathlib import Path
from typing import Annotated
from uuid import UUID

import typer
from rich.measure import Measurement
from rich.table import Table

from pipeline.commands.common import CommandError, console
from pipeline.tables import Table as Rows


class OutputFormat(StrEnum):
    TABLE = "table"
    CSV = "csv"
    JSON = "json"


# The options of every command that prints rows.
Format = Annotated[OutputFormat, typer.Option("--format", help="table, csv or json.")]
Out = Annotated[Path | None, typer.Option(help="Write the CSV or JSON here.")]


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


# A spreadsheet reads a cell starting with one of these as a formula (=HYPERLINK(...) in a
# resident's name, say); OWASP's advice is to make such a cell text with a leading quote.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_text(columns: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """CSV whose text cells a spreadsheet shows as text: one that would start a formula gets a
    leading ``'``. Numbers stay numbers, negative ones included."""

    def text(value: object) -> object:
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, str) and value.startswith(FORMULA_STARTS):
            return "'" + value
        return "" if value is None else value

    buffer = io.StringIO()
    # RFC 4180's CRLF: with a bare LF the writer left a CR inside a cell unquoted, which broke
    # the row in every reader.
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(columns)
    writer.writerows([text(v) for v in row] for row in rows)
    return buffer.getvalue()


def json_text(value: Sequence[Mapping[str, object]] | Mapping[str, object]) -> str:
    def plain(value: object) -> str:
        if isinstance(value, date):
            return value.isoformat()
        if isinstance(value, UUID):
            return str(value)
        raise TypeError(f"{type(value).__name__} is not JSON")

    return json.dumps(value, ensure_ascii=False, indent=2, default=plain) + "\n"


def emit(
    rows: Rows,
    title: str,
    output: OutputFormat,
    out: Path | None,
    *,
    headers: Mapping[str, str] | None = None,
    text_columns: Set[str] = frozenset(),
    totals: Set[str] = frozenset(),
    empty: str = "nothing to show",
) -> None:
    """Rows as a terminal table (with a total row summing ``totals``), or CSV or JSON on
    standard output or into ``out``."""
    if output is OutputFormat.TABLE:
        if out is not None:
            raise CommandError("--out is for --format csv or json; a table prints here")
        table = Table(title=title)
        for column in rows.columns:
            table.add_column(
                (headers or {}).get(column, column.replace("_yen", "").replace("_", " ")),
                justify="left" if column in text_columns else "right",
            )
        for row in rows.rows:
            table.add_row(*(cell(c, v) for c, v in zip(rows.columns, row, strict=True)))
        if len(rows.rows) > 1 and totals:
            table.add_section()
            table.add_row(
                *(
                    "total"
                    if i == 0
                    else cell(c, sum(int(row[i] or 0) for row in rows.rows))  # type: ignore[call-overload]
                    if c in totals
                    else ""
                    for i, c in enumerate(rows.columns)
                )
            )
        print_table(table)
        if not rows.rows:
            console.print(empty)
        return
    text = (
        csv_text(rows.columns, rows.rows)
        if output is OutputFormat.CSV
        else json_text(rows.records())
    )
    if out is None:
        typer.echo(text, nl=False)
        return
    out.write_text(text, "utf-8")
    console.print(f"wrote {len(rows.rows):,} rows to {out}")
