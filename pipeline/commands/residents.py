"""`bcl resident show`, `bcl replica counts` and `bcl retention run`: the replica for staff."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

import typer
from rich.table import Table

from pipeline.commands.common import CommandError, clean_errors, console, run_async, settings

resident_app = typer.Typer(help="Residents in the BCL replica.", no_args_is_help=True)
replica_app = typer.Typer(help="The BCL replica of resident registers.", no_args_is_help=True)
retention_app = typer.Typer(help="The 5-year retention of removed residents.", no_args_is_help=True)

SHOWN = (
    "reason", "effective_date", "active", "removed_on", "purge_after", "household_number",
    "relationship", "name", "name_kana", "birth_date", "sex", "address", "previous_address",
    "head_of_household", "resident_since", "address_since", "notified_on", "batch", "line",
)  # fmt: skip


async def _refreshed(query: str, *args: object) -> list[Any]:
    from pipeline.catchup import refresh
    from pipeline.database import connect
    from pipeline.projection import load_projection

    await refresh(settings(), load_projection("replica", settings()))
    async with connect(settings()) as connection:
        return list(await connection.fetch(query, *args))


@resident_app.command()
@clean_errors
def show(
    municipality: Annotated[str, typer.Argument(help="Municipality code.")],
    resident_code: Annotated[str, typer.Argument(help="住民票コード (11 digits).")],
    history: Annotated[bool, typer.Option(help="Also list every recorded change.")] = False,
) -> None:
    """A resident's current record (My Number is never shown: it is kept sealed)."""
    rows = run_async(
        _refreshed(
            "SELECT * FROM replica.residents WHERE municipality = $1 AND resident_code = $2",
            municipality,
            resident_code,
        )
    )
    if not rows:
        raise CommandError(f"no resident {resident_code} of {municipality} in the replica")
    table = Table(title=f"{municipality}:{resident_code}", show_header=False)
    for field in SHOWN:
        table.add_row(field, "" if rows[0][field] is None else str(rows[0][field]))
    console.print(table)
    if history:
        changes = run_async(
            _refreshed(
                "SELECT sequence, reason, effective_date, address, household_number, batch, line "
                "FROM replica.changes WHERE municipality = $1 AND resident_code = $2 "
                "ORDER BY effective_date, sequence",
                municipality,
                resident_code,
            )
        )
        listing = Table(title="recorded changes (by effective date)")
        for column in ("effective", "reason", "address", "household", "batch:line", "sequence"):
            listing.add_column(column)
        for c in changes:
            listing.add_row(
                str(c["effective_date"]),
                c["reason"],
                c["address"],
                c["household_number"],
                f"{c['batch']}:{c['line']}",
                str(c["sequence"]),
            )
        console.print(listing)


@replica_app.command()
@clean_errors
def counts() -> None:
    """Residents per municipality: active, removed (tombstones), households, purged."""
    rows = run_async(
        _refreshed(
            "SELECT r.municipality, count(*) FILTER (WHERE active) AS active, "
            "count(*) FILTER (WHERE NOT active) AS removed, "
            "count(DISTINCT household_number) FILTER (WHERE active) AS households, "
            "(SELECT count(*) FROM replica.purged p WHERE p.municipality = r.municipality) "
            "AS purged, (SELECT max(sequence) FROM replica.batches b "
            "WHERE b.municipality = r.municipality) AS last_batch "
            "FROM replica.residents r GROUP BY r.municipality ORDER BY r.municipality"
        )
    )
    table = Table(title="BCL replica")
    for column in ("municipality", "active", "removed", "households", "purged", "last batch"):
        table.add_column(column, justify="right")
    for row in rows:
        table.add_row(
            row["municipality"],
            f"{row['active']:,}",
            f"{row['removed']:,}",
            f"{row['households']:,}",
            f"{row['purged']:,}",
            str(row["last_batch"] or ""),
        )
    console.print(table)


@retention_app.command()
@clean_errors
def run(
    as_of: Annotated[str, typer.Option(help="The day to apply the retention on, YYYY-MM-DD.")],
) -> None:
    """Purge residents removed more than 5 years before --as-of, destroying their data keys."""
    from producers.retention import run_retention

    try:
        day = date.fromisoformat(as_of)
    except ValueError:
        raise CommandError(f"--as-of {as_of!r}: write the date as YYYY-MM-DD") from None
    purged = run_async(run_retention(settings(), day))
    for p in purged:
        console.print(f"purged {p.municipality}:{p.resident_code} (removed {p.removed_on})")
    console.print(f"{len(purged)} residents purged as of {day}")
