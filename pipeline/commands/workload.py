"""`bcl workload ...`: files from the workload generator, for pushes, tests and benchmarks."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import orjson
import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from pipeline.commands.common import CommandError, clean_errors, console, run_async, settings
from schemas.calendar import JST

if TYPE_CHECKING:
    from pipeline.publish import Outgoing

app = typer.Typer(help="Generate realistic input files (deterministic from a seed).")


def write_rows(rows: object, out: Path, total: int) -> int:
    """Write diff rows as CSV (header from the documented columns) or JSON Lines."""
    from schemas.inputs.resident_diff import COLUMNS

    out.parent.mkdir(parents=True, exist_ok=True)
    written = 0
    with (
        Progress(
            TextColumn(f"writing {out.name}"), BarColumn(), MofNCompleteColumn(), console=console
        ) as bar,
        out.open("w", encoding="utf-8", newline="") as file,
    ):
        task = bar.add_task("rows", total=total)
        writer = csv.DictWriter(file, fieldnames=list(COLUMNS)) if out.suffix == ".csv" else None
        if writer:
            writer.writeheader()
        for row in rows:  # type: ignore[attr-defined]
            if writer:
                writer.writerow(row)
            else:
                file.write(orjson.dumps(row).decode() + "\n")
            written += 1
            if written % 10_000 == 0:
                bar.update(task, completed=written)
        bar.update(task, completed=written)
    return written


@app.command()
@clean_errors
def register(
    municipality: Annotated[str, typer.Argument(help="Municipality code.")],
    out: Annotated[Path, typer.Option(help="File to write: .csv or .jsonl.")],
    residents: Annotated[int, typer.Option(min=1, help="How many residents.")] = 1000,
    seed: Annotated[int, typer.Option(help="Seed of the generator.")] = 7,
    seals: Annotated[
        bool, typer.Option("--seals", help="Register a seal for about two adults in three.")
    ] = False,
    tax_year: Annotated[
        list[int] | None,
        typer.Option(min=2000, max=2100, help="Tax facts of adults for this fiscal year."),
    ] = None,
) -> None:
    """A whole resident register (for `bcl push --full`), in households.

    Example: bcl workload register 131032 --residents 2000 --seals --tax-year 2026 --out r.csv
    """
    from producers.workload import resident_register

    rows = resident_register(
        municipality, residents, seed=seed, seals=seals, tax_years=tax_year or ()
    )
    written = write_rows(rows, out, residents)
    console.print(f"wrote {written:,} rows for {residents:,} residents of {municipality} to {out}")


@app.command()
@clean_errors
def changes(
    municipality: Annotated[str, typer.Argument(help="Municipality code.")],
    out: Annotated[Path, typer.Option(help="File to write: .csv or .jsonl.")],
    count: Annotated[int, typer.Option(min=1, help="How many changes.")] = 100,
    residents: Annotated[
        int, typer.Option(min=1, help="Size of the register they apply to.")
    ] = 1000,
    seed: Annotated[int, typer.Option(help="Seed of the register the changes apply to.")] = 7,
) -> None:
    """A diff of moves, moves out and deaths against a generated register."""
    from producers.workload import resident_changes, resident_register

    rows = resident_changes(resident_register(municipality, residents, seed=seed), count)
    written = write_rows(rows, out, count)
    console.print(f"wrote {written:,} changes of {municipality} to {out}")


@app.command()
@clean_errors
def traffic(
    municipalities: Annotated[
        int, typer.Option(min=1, max=5000, help="How many municipalities (1,741 is Japan).")
    ] = 1741,
    start: Annotated[
        datetime, typer.Option(formats=["%Y-%m-%d"], help="First day (Japan date).")
    ] = datetime(2024, 3, 1),
    days: Annotated[int, typer.Option(min=1, max=3660, help="How many days.")] = 31,
    scale: Annotated[
        float, typer.Option(min=0.0, max=10.0, help="Share of Japan's volume (1.0: ~3.6M a month).")
    ] = 0.01,
    seed: Annotated[int, typer.Option(help="Seed of the generator.")] = 7,
    registry: Annotated[
        bool, typer.Option(help="Publish the municipalities joining first.")
    ] = True,
) -> None:
    """Publish recorded national traffic: requests, the issuer's decisions and the kiosks' notices.

    Shaped by DOMAIN §8 (operators, certificate types, ~49% outside counter hours, ~21% from
    another municipality's store); the decisions stand in for the issuer, so usage and fees can
    be fed months of traffic. Example: bcl workload traffic --municipalities 200 --days 7
    """
    from pipeline.kafka import producer
    from pipeline.publish import proven_by_their_edges, publish_many
    from producers.workload import (
        national_holidays,
        national_traffic,
        recorded_traffic,
        registry_events,
        synthetic_nation,
    )

    first = start.date()
    nation = synthetic_nation(municipalities, seed=seed)
    holidays = national_holidays(first - timedelta(days=31), first + timedelta(days=days + 31))

    def events() -> Iterator[Outgoing]:
        if registry:
            yield from registry_events(nation, holidays=holidays, seed=seed)
        visits = national_traffic(nation, start=first, days=days, scale=scale, seed=seed)
        yield from recorded_traffic(visits, seed=seed)

    async def send() -> int:
        async with producer(settings()) as client:
            with Progress(
                TextColumn("publishing national traffic"),
                SpinnerColumn(),
                TextColumn("{task.completed:,} events"),
                TimeElapsedColumn(),
                console=console,
            ) as bar:
                task = bar.add_task("publish", total=None)
                return await publish_many(
                    settings(),
                    client,
                    proven_by_their_edges(settings(), events()),
                    on_sent=lambda n: bar.update(task, completed=n),
                )

    sent = run_async(send())
    console.print(
        f"published {sent:,} events: {municipalities:,} municipalities, {days} days from {first}"
    )


@app.command()
@clean_errors
def day(
    municipalities: Annotated[
        list[str], typer.Argument(help="Registered municipalities whose card holders come.")
    ],
    on: Annotated[
        datetime | None,
        typer.Option(formats=["%Y-%m-%d"], help="The Japan day (default: tomorrow)."),
    ] = None,
    scale: Annotated[
        float, typer.Option(min=0.0, max=100.0, help="Multiple of the expected volume.")
    ] = 1.0,
    seed: Annotated[int, typer.Option(help="Seed of the generator.")] = 7,
    sample_pdf: Annotated[
        Path | None, typer.Option(help="Write the first certificate issued here (PDF).")
    ] = None,
) -> None:
    """Run a day of kiosk traffic through both centers, decided by the running issuer.

    Card holders of MUNICIPALITIES come at the hours residents do (DOMAIN §8 shapes); each
    request enters at its store operator's center, and once decided the kiosk reports it
    delivered (the quoted fee paid) or cancelled. Needs `bcl worker` running.
    Example: bcl workload day 131032 --on 2026-11-24
    """
    from producers.kiosk_day import KioskDayError, run_kiosk_day

    the_day = on.date() if on else datetime.now(JST).date() + timedelta(days=1)
    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), console=console
    ) as bar:
        tasks: dict[str, TaskID] = {}

        def show(step: str, done: int, total: int) -> None:
            if step not in tasks:
                tasks[step] = bar.add_task(step, total=total)
            bar.update(tasks[step], completed=done, total=total)

        try:
            report = run_async(
                run_kiosk_day(settings(), municipalities, the_day, scale=scale, seed=seed,
                              progress=show)
            )  # fmt: skip
        except KioskDayError as error:
            raise CommandError(str(error)) from None
    table = Table(title=f"kiosk traffic on {the_day} ({', '.join(municipalities)})")
    table.add_column("")
    table.add_column("requests", justify="right")
    rows = [
        ("sent (east / west)", f"{report.by_center['east']:,} / {report.by_center['west']:,}"),
        ("issued", f"{report.issued:,}"),
        ("  delivered", f"{report.delivered:,}"),
        ("  cancelled at the kiosk", f"{report.cancelled:,}"),
        *((f"rejected: {reason}", f"{n:,}") for reason, n in report.rejected.most_common()),
        ("fees paid", f"{report.fees_paid_yen:,} yen"),
    ]
    for row in rows:
        table.add_row(*row)
    console.print(table)
    first = report.first_document
    if first is None:
        return
    console.print(f"first certificate issued: request {first.request_id}")
    if sample_pdf is not None:
        from pipeline.commands.center import document_pdf
        from pipeline.database import connect

        async def fetch() -> bytes | None:
            async with connect(settings()) as connection:
                return await document_pdf(connection, first.request_id)

        pdf = run_async(fetch())
        if pdf is not None:
            sample_pdf.parent.mkdir(parents=True, exist_ok=True)
            sample_pdf.write_bytes(pdf)
            console.print(f"its PDF: {sample_pdf} ({len(pdf):,} bytes)")
