"""`bcl workload ...`: files from the workload generator, for pushes, tests and benchmarks."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Annotated

import orjson
import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from pipeline.commands.common import clean_errors, console

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
) -> None:
    """A whole resident register (for `bcl push --full`), in households."""
    from producers.workload import resident_register

    written = write_rows(resident_register(municipality, residents, seed=seed), out, residents)
    console.print(f"wrote {written:,} residents of {municipality} to {out}")


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
