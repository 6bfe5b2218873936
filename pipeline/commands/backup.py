"""`bcl backup DIR` and `bcl restore DIR`: the state the log cannot rebuild (pipeline.backup)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from pipeline.commands.common import CommandError, clean_errors, console, run_async, settings

if TYPE_CHECKING:
    from pipeline.backup import Count


@contextmanager
def _refusals() -> Iterator[None]:
    """A refused backup or restore is a message for the operator, not a crash."""
    from pipeline.backup import BackupError

    try:
        yield
    except BackupError as error:
        raise CommandError(str(error)) from None


def _summary(title: str, counts: Sequence[Count]) -> Table:
    table = Table(title=title)
    table.add_column("what")
    table.add_column("where")
    for unit in ("rows", "files"):
        table.add_column(unit, justify="right")
    for count in counts:
        number = f"{count.count:,}"
        table.add_row(
            count.what,
            count.where,
            *(number if unit == count.unit else "" for unit in ("rows", "files")),
        )
    return table


@clean_errors
def backup(
    folder: Annotated[Path, typer.Argument(help="A new or empty folder to write the backup into.")],
) -> None:
    """Back up what the log cannot rebuild: the vault's data keys (still wrapped), the push
    intake ledger, decisions not yet published (the outbox), and the key files under
    $BCL_HOME (push keys, seal keys, the JPKI test CA). Never the key-encryption key: keep it
    apart. Projections need no backup: `bcl replay --all` rebuilds them from the log."""
    from pipeline.backup import back_up

    with console.status("backing up") as status, _refusals():
        report = run_async(
            back_up(settings(), folder, step=lambda what: status.update(f"backing up {what}"))
        )
    console.print(_summary(f"backup in {report.folder}", report.counts))
    console.print(
        f"{report.files:,} files, {report.size:,} bytes, each with its SHA-256 in "
        f"{report.folder / 'manifest.json'}"
    )
    for path in report.left_out:
        console.print(f"left out {path}: it is the key-encryption key file")
    console.print(
        "[bold]The key-encryption key is not in this backup.[/bold] Keep BCL_KEK (or the KEK "
        "file) apart from it: a restore needs the same key, and without it the data keys, and "
        "every resident's sealed data, cannot be opened."
    )


@clean_errors
def restore(
    folder: Annotated[Path, typer.Argument(help="The folder `bcl backup` wrote.")],
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Replace this center's rows in the backed-up tables and its key files of the "
            "same names (other key files stay).",
        ),
    ] = False,
) -> None:
    """Restore a backup onto a fresh center (`bcl up` on an empty BCL_HOME and database, the
    worker stopped), then rebuild the projections with `bcl replay --all`.

    The backup's checksums are verified first; live data is refused unless --force; the KEK
    (BCL_KEK or BCL_KEK_FILE) must be the one the backed-up center used. Tables are restored in
    one transaction: a refusal changes nothing."""
    from pipeline.backup import restore as restore_backup

    with console.status("restoring") as status, _refusals():
        counts = run_async(
            restore_backup(
                settings(),
                folder,
                force=force,
                step=lambda what: status.update(f"restoring {what}"),
            )
        )
    console.print(_summary(f"restored from {folder}", counts))
    console.print(
        "Next: `bcl replay --all` rebuilds every projection from the log, then start the worker."
    )
