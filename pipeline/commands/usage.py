"""`bcl usage` and `bcl usage chart`: what the kiosks issued, where, when and in which chains."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from pipeline.commands.common import (
    CommandError,
    clean_errors,
    console,
    run_async,
    settings,
    with_options,
)
from pipeline.commands.output import cell, csv_text, json_text, print_table
from pipeline.commands.usage_charts import CHART_GROUPS, ChartKind

if TYPE_CHECKING:
    from consumers.usage.queries import UsageFilter, UsageReport

app = typer.Typer(invoke_without_command=True)


class UsageFormat(StrEnum):
    TABLE = "table"
    CSV = "csv"
    JSON = "json"
    PARQUET = "parquet"


# The filter options, shared by `bcl usage` and `bcl usage chart`.
Municipalities = Annotated[
    list[str] | None,
    typer.Option(
        "--municipality", "-m", help="The residents' municipality code, e.g. 141003 (repeatable)."
    ),
]
Month = Annotated[str | None, typer.Option(help="A Japan month, YYYY-MM, e.g. 2024-03.")]
FirstDay = Annotated[
    str | None, typer.Option("--from", help="First Japan date, YYYY-MM-DD (included).")
]
LastDay = Annotated[
    str | None, typer.Option("--to", help="Last Japan date, YYYY-MM-DD (included).")
]
Types = Annotated[
    list[str] | None,
    typer.Option("--type", help="Certificate type, e.g. juminhyo, inkan, koseki (repeatable)."),
]
Operators = Annotated[
    list[str] | None,
    typer.Option("--operator", help="Store operator, e.g. seven_eleven, lawson (repeatable)."),
]
Centers = Annotated[
    list[str] | None, typer.Option("--center", help="east or west: where requests entered.")
]
Outcome = Annotated[str | None, typer.Option(help="issued, rejected or undecided.")]
Reason = Annotated[
    str | None, typer.Option(help="A rejection reason code, e.g. certificate_expired.")
]
OutsideHours = Annotated[
    bool | None,
    typer.Option(
        "--outside-hours/--inside-hours",
        help="Only requests decided outside (or inside) the town hall's counter hours.",
    ),
]
OtherMunicipality = Annotated[
    bool | None,
    typer.Option(
        "--other-municipality/--own-municipality",
        help="Only requests made at a store in another (or the resident's own) municipality.",
    ),
]


@dataclass(frozen=True)
class UsageFilters:
    """The filters `bcl usage` and `bcl usage chart` share, as given (None: not given)."""

    municipality: Municipalities = None
    month: Month = None
    first: FirstDay = None
    last: LastDay = None
    certificate_type: Types = None
    operator: Operators = None
    center: Centers = None
    outcome: Outcome = None
    reason: Reason = None
    outside_hours: OutsideHours = None
    other_municipality: OtherMunicipality = None


def _day(text: str | None, option: str) -> date | None:
    if text is None:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise CommandError(f"{option} {text!r}: write the date as YYYY-MM-DD") from None


def _filter(given: UsageFilters) -> UsageFilter:
    from consumers.usage.queries import UsageFilter
    from schemas.calendar import month_days

    first_day, last_day = _day(given.first, "--from"), _day(given.last, "--to")
    month = given.month
    if month is not None:
        if first_day or last_day:
            raise CommandError("give either --month or --from/--to, not both")
        try:
            first_day, last_day = month_days(month)
        except ValueError as error:
            raise CommandError(f"--month: {error}") from None
    elif first_day and last_day and first_day > last_day:
        raise CommandError(f"--from {first_day} is after --to {last_day}")
    try:
        return UsageFilter(
            municipalities=tuple(given.municipality or ()),
            store_operators=tuple(given.operator or ()),
            certificate_types=tuple(given.certificate_type or ()),
            centers=tuple(given.center or ()),
            outcome=given.outcome,
            reason=given.reason,
            outside_counter_hours=given.outside_hours,
            other_municipality=given.other_municipality,
            first_day=first_day,
            last_day=last_day,
        )
    except ValueError as error:
        raise CommandError(str(error)) from None


def _dimensions(by: str | None) -> tuple[str, ...]:
    from consumers.usage.queries import dimensions

    try:
        return dimensions(name.strip() for name in by.split(",")) if by else ()
    except ValueError as error:
        raise CommandError(f"--by: {error}") from None


def _fetch(usage: UsageFilter, group_by: Sequence[str]) -> tuple[UsageReport, dict[str, str]]:
    """The report and the registry's names of the municipalities the filter picks."""
    from consumers.usage.queries import municipality_names, usage_report
    from pipeline.database import connect

    async def query() -> tuple[UsageReport, dict[str, str]]:
        async with connect(settings()) as connection:
            report = await usage_report(connection, usage, group_by)
            return report, await municipality_names(connection, usage.municipalities)

    return run_async(query())


def _describe(usage: UsageFilter, names: Mapping[str, str]) -> str:
    """The filter in a line, for titles."""
    from schemas.calendar import month_days

    parts = [
        ", ".join(f"{names[c]} ({c})" if c in names else c for c in usage.municipalities),
        ", ".join(usage.certificate_types),
        ", ".join(usage.store_operators),
        ", ".join(f"{c} center" for c in usage.centers),
        usage.outcome or "",
        f"reason {usage.reason}" if usage.reason else "",
    ]
    first, last = usage.first_day, usage.last_day
    if first and last:
        whole_month = first.day == 1 and month_days(f"{first:%Y-%m}")[1] == last
        parts.append(f"{first:%Y-%m}" if whole_month else f"{first} – {last}")
    elif first or last:
        parts.append(f"from {first}" if first else f"until {last}")
    if usage.outside_counter_hours is not None:
        parts.append(f"{'outside' if usage.outside_counter_hours else 'inside'} counter hours")
    if usage.other_municipality is not None:
        parts.append(
            "at another municipality's store"
            if usage.other_municipality
            else "at the own municipality's store"
        )
    return " · ".join(part for part in parts if part) or "all requests"


# Shorter headers for the terminal, where width is scarce; files keep the catalog names.
HEADERS = {
    "certificate_type": "type",
    "store_operator": "operator",
    "outside_counter_hours": "outside hours",
    "other_municipality": "other municipality",
    "fees_paid_yen": "fees (yen)",
    "share_pct": "share %",
}


def _show_table(report: UsageReport, title: str) -> None:
    from consumers.usage.queries import COLUMN_KINDS, MEASURES, SHARE

    table = Table(title=title)
    for column in report.columns:
        numeric = COLUMN_KINDS[column] in ("int", "float")
        table.add_column(
            HEADERS.get(column, column.replace("_", " ")), justify="right" if numeric else "left"
        )
    for row in report.rows:
        table.add_row(*(cell(c, v) for c, v in zip(report.columns, row, strict=True)))
    if len(report.rows) > 1:
        records = report.records()
        totals: dict[str, object] = {
            m: sum(n for r in records if isinstance(n := r[m], int)) for m in MEASURES
        }
        totals[SHARE] = 100.0 if totals["issued"] else None
        table.add_section()
        table.add_row(
            *(
                cell(c, totals[c]) if c in totals else ("total" if i == 0 else "")
                for i, c in enumerate(report.columns)
            )
        )
    print_table(table)


def _write_parquet(report: UsageReport, path: Path) -> None:
    import pyarrow as pa  # type: ignore[import-untyped]
    import pyarrow.parquet as pq  # type: ignore[import-untyped]

    from consumers.usage.queries import COLUMN_KINDS

    types = {
        "text": pa.string(),
        "date": pa.date32(),
        "int": pa.int64(),
        "bool": pa.bool_(),
        "float": pa.float64(),
    }
    schema = pa.schema([(c, types[COLUMN_KINDS[c]]) for c in report.columns])
    pq.write_table(pa.Table.from_pylist(report.records(), schema=schema), path)


@app.callback()
@clean_errors
@with_options(UsageFilters, into="filters")
def usage(
    context: typer.Context,
    filters: UsageFilters = UsageFilters(),
    by: Annotated[
        str | None,
        typer.Option(
            help="Group by these, comma-separated: municipality, store_municipality, month, day, "
            "weekday, hour, type, operator, center, outside_counter_hours, other_municipality, "
            "outcome, reason. Default: one total row."
        ),
    ] = None,
    output: Annotated[
        UsageFormat, typer.Option("--format", help="table, csv, json or parquet.")
    ] = UsageFormat.TABLE,
    out: Annotated[
        Path | None,
        typer.Option(help="Write CSV, JSON or Parquet here (required for parquet)."),
    ] = None,
) -> None:
    """Kiosk requests counted from the usage projection: requests, issued, rejected, delivered,
    cancelled, certificates (copies printed), fees paid and each group's share of the issued.

    Yokohama's March 2024 requests outside counter hours, by chain:

        bcl usage -m 141003 --month 2024-03 --outside-hours --by operator

    Charts: bcl usage chart --help.
    """
    if context.invoked_subcommand is not None:
        given = [
            parameter.opts[0]
            for parameter in context.command.params
            if parameter.name
            # Click holds () for a repeatable option not given.
            and context.params.get(parameter.name) not in (None, (), parameter.default)
        ]
        if given:
            raise CommandError(
                f"put {', '.join(given)} after `chart KIND`: the chart takes its own filters"
            )
        return
    keys = _dimensions(by)
    chosen = _filter(filters)
    if output is UsageFormat.PARQUET and out is None:
        raise CommandError("--format parquet writes a file: give it with --out FILE.parquet")
    if output is UsageFormat.TABLE and out is not None:
        raise CommandError("--out is for --format csv, json or parquet; a table prints here")
    report, names = _fetch(chosen, keys)
    if output is UsageFormat.TABLE:
        by_text = f" · by {', '.join(keys)}" if keys else ""
        _show_table(report, f"usage: {_describe(chosen, names)}{by_text}")
        return
    if out is None:  # CSV or JSON: parquet without a file was refused above
        typer.echo(
            csv_text(report.columns, report.rows)
            if output is UsageFormat.CSV
            else json_text(report.records()),
            nl=False,
        )
        return
    if output is UsageFormat.PARQUET:
        _write_parquet(report, out)
    else:
        out.write_text(
            csv_text(report.columns, report.rows)
            if output is UsageFormat.CSV
            else json_text(report.records()),
            "utf-8",
        )
    console.print(f"wrote {len(report.rows):,} rows to {out}")


@app.command()
@clean_errors
@with_options(UsageFilters, into="filters")
def chart(
    kind: Annotated[
        ChartKind,
        typer.Argument(
            help="monthly: certificates per month; operators: each chain's share of the issued; "
            "hours: issued per hour of the day, inside and outside counter hours."
        ),
    ],
    out: Annotated[Path, typer.Option(help="The PNG file to write.")],
    *,
    filters: UsageFilters,
) -> None:
    """Draw a usage chart as a PNG (150 dpi), titled in Japanese, with the same filters as
    `bcl usage`.

    Yokohama's chains in March 2024:

        bcl usage chart operators -m 141003 --month 2024-03 --out yokohama-chains.png
    """
    from pipeline.commands.usage_charts import draw_chart

    if out.suffix.lower() != ".png":
        raise CommandError(f"--out {out}: a chart is written as PNG, name it *.png")
    chosen = _filter(filters)
    report, names = _fetch(chosen, CHART_GROUPS[kind])
    draw_chart(kind, report, out, subtitle=_describe(chosen, names))
    console.print(f"wrote the {kind} chart to {out}")
