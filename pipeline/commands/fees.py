"""`bcl fees statement` and `bcl fees report`: what municipalities collected and owe, in yen."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from pipeline.commands.common import CommandError, clean_errors, read_projection
from pipeline.commands.output import Format, Out, OutputFormat, cell, emit, print_table

if TYPE_CHECKING:
    from consumers.fees.rules import Member, YearStatement
    from pipeline.tables import Table as Rows

app = typer.Typer(no_args_is_help=True)

Month = Annotated[
    str | None, typer.Option(help="A Japan month, YYYY-MM: the store settlement of that month.")
]
FiscalYear = Annotated[
    int | None,
    typer.Option(
        "--fiscal-year",
        help="A fiscal year (April–March, named by the year it starts): the yearly charges.",
    ),
]

HEADERS = {
    "store_operator": "operator",
    "certificate_type": "type",
    "fees_collected_yen": "fees collected",
    "commission_yen": "commission",
    "net_income_yen": "net income",
    "bcl_fee_yen": "BCL fee (accrued)",
}
TEXT_COLUMNS = {"store_operator", "certificate_type", "municipality", "name", "class", "on_bcl"}


def _period(month: str | None, year: int | None) -> tuple[date | None, int | None]:
    from schemas.calendar import month_days

    if (month is None) == (year is None):
        raise CommandError("give either --month YYYY-MM or --fiscal-year YYYY")
    if month is None:
        assert year is not None
        if not 2010 <= year <= 2100:
            raise CommandError(
                f"--fiscal-year {year}: give a year such as 2024 (April 2024–March 2025)"
            )
        return None, year
    try:
        return month_days(month)[0], None
    except ValueError as error:
        raise CommandError(f"--month: {error}") from None


def _emit(rows: Rows, title: str, output: OutputFormat, out: Path | None) -> None:
    emit(
        rows,
        title,
        output,
        out,
        headers=HEADERS,
        text_columns=TEXT_COLUMNS,
        totals=frozenset(rows.columns)
        - TEXT_COLUMNS
        - {"population", "joined_on", "contribution_months"},
        empty="nothing recorded for this period",
    )


@app.command()
@clean_errors
def statement(
    municipality: Annotated[str, typer.Argument(help="Municipality code, e.g. 131059.")],
    month: Month = None,
    fiscal_year: FiscalYear = None,
    output: Format = OutputFormat.TABLE,
    out: Out = None,
) -> None:
    """A municipality's statement.

    --month: the store settlement, by store operator and certificate type — certificates
    delivered, fees collected, the stores' commission, net income, and the BCL fee accrued.
    Cancelled and rejected requests are counted, never charged.

    --fiscal-year: the yearly charges — operating contribution (prorated in the joining year),
    BCL issuance fee, cloud disaster system fee — beside the year's fees and commission.

        bcl fees statement 131059 --month 2024-03
        bcl fees statement 131059 --fiscal-year 2023 --format json
    """
    from consumers.fees.queries import month_settlement, year_statement_of

    first_day, year = _period(month, fiscal_year)
    if first_day is not None:
        rows = read_projection(
            "fees", lambda connection: month_settlement(connection, municipality, first_day)
        )
        _emit(rows, f"fees: {municipality} · store settlement {first_day:%Y-%m}", output, out)
        return
    assert year is not None
    found = read_projection(
        "fees", lambda connection: year_statement_of(connection, municipality, year)
    )
    if found is None:
        raise CommandError(
            f"municipality {municipality} is not in the registry; see `bcl municipality list`"
        )
    _emit_year(*found, output, out)


def _emit_year(
    member: Member, statement: YearStatement, output: OutputFormat, out: Path | None
) -> None:
    from consumers.fees.queries import YEAR_COLUMNS, year_row
    from consumers.fees.rules import BCL_ISSUANCE_FEE

    if output is not OutputFormat.TABLE:
        from pipeline.tables import Table as Rows

        _emit(Rows(YEAR_COLUMNS, (year_row(member, statement),)), "", output, out)
        return
    if out is not None:
        raise CommandError("--out is for --format csv or json; a table prints here")
    year = statement.year
    bcl = "on BCL" if member.uses_bcl else "own server"
    table = Table(
        title=f"fees: {member.code} {member.name} · fiscal year {year} ({year}-04 – {year + 1}-03)",
        caption=f"{member.municipality_class.value}, population {member.population:,}, {bcl}, "
        f"joined {member.joined_on or '—'}",
    )
    table.add_column("item")
    table.add_column("yen", justify="right")
    months = statement.contribution_months
    contribution = "operating contribution (運営負担金)" + (
        f", {months} of 12 months" if 0 < months < 12 else ""
    )
    table.add_row(contribution, cell("", statement.contribution_yen))
    table.add_row(
        f"BCL issuance fee, {statement.bcl_fee_yen // BCL_ISSUANCE_FEE:,} certificates × "
        f"{BCL_ISSUANCE_FEE}",
        cell("", statement.bcl_fee_yen),
    )
    table.add_row("cloud disaster system fee", cell("", statement.disaster_system_fee_yen))
    table.add_section()
    table.add_row("owed to J-LIS", cell("", statement.owed_yen))
    table.add_section()
    table.add_row(
        f"fees collected at stores ({statement.store.certificates:,} certificates)",
        cell("", statement.store.fees_collected_yen),
    )
    table.add_row("store commission", cell("", -statement.store.commission_yen))
    table.add_row("owed to J-LIS", cell("", -statement.owed_yen))
    table.add_section()
    table.add_row("net", cell("", statement.net_yen))
    print_table(table)


@app.command()
@clean_errors
def report(
    month: Month = None,
    fiscal_year: FiscalYear = None,
    output: Format = OutputFormat.TABLE,
    out: Out = None,
) -> None:
    """Every municipality in one table: a month's store settlement (--month) or a fiscal year's
    charges (--fiscal-year), one row each.

        bcl fees report --month 2024-03 --format csv --out fees-2024-03.csv
    """
    from consumers.fees.queries import month_report, year_report

    first_day, year = _period(month, fiscal_year)
    if first_day is not None:
        rows = read_projection("fees", lambda connection: month_report(connection, first_day))
        _emit(rows, f"fees: every municipality · store settlement {first_day:%Y-%m}", output, out)
        return
    assert year is not None
    rows = read_projection("fees", lambda connection: year_report(connection, year))
    _emit(rows, f"fees: every municipality · fiscal year {year}", output, out)
