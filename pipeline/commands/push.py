"""`bcl push MUNICIPALITY FILE`: a municipality's signed resident-data push.

The intake itself is ``producers.municipal_push``; this module signs (when given the key), shows
progress and the outcome, and turns a refusal into a table the sender can work through.
"""

from __future__ import annotations

import binascii
import time
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, cast

import orjson
import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from pipeline.commands.common import CommandError, clean_errors, console, run_async, settings
from pipeline.settings import Settings
from schemas.inputs.resident_diff import COLUMNS, REQUIRED_COLUMNS

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from producers.municipal_push import FileFormat, PushReport

# The terminal shows this many problems; report.json holds all of them.
SHOWN_PROBLEMS = 50
_SIGNATURE_SIZE = 64


def _columns_help() -> str:
    rows = "\n".join(
        f"- {name}{' (required)' if name in REQUIRED_COLUMNS else ''}: {meaning}"
        for name, meaning in COLUMNS.items()
    )
    return (
        "Columns (CSV header names; JSON Lines keys). A row is a resident's record after a change "
        "(record=resident), a seal registration change (record=seal) or a year's tax facts "
        "(record=tax); an empty cell means not given.\n\n" + rows
    )


Municipality = Annotated[
    str, typer.Argument(help="The pushing municipality's 6-digit code, e.g. 131016.")
]
File = Annotated[Path, typer.Argument(help="The diff (or --full register): .csv or .jsonl.")]
Sequence = Annotated[
    int | None,
    typer.Option(min=1, help="Batch sequence (default: the next one the intake expects)."),
]
Key = Annotated[
    Path | None,
    typer.Option(
        help="Sign with this Ed25519 private key (PEM). Default: $BCL_HOME/keys/MUNICIPALITY"
        ".key.pem when it exists."
    ),
]
Signature = Annotated[
    Path | None,
    typer.Option(help="A detached signature made elsewhere (raw 64 bytes or base64)."),
]
Unsigned = Annotated[
    bool,
    typer.Option(
        "--unsigned", help="Send without a signature (the intake refuses it: a demonstration)."
    ),
]
Full = Annotated[
    bool,
    typer.Option(
        "--full",
        help="FILE is the whole register: publish only its differences from the replica, and "
        "remove residents missing from it.",
    ),
]
AsOf = Annotated[
    str | None, typer.Option(help="Date of a --full register, YYYY-MM-DD (default: today).")
]
Encoding = Annotated[str, typer.Option(help="Text encoding of FILE, e.g. utf-8 or cp932.")]
Format = Annotated[
    str | None, typer.Option("--format", help="csv or jsonl (default: from the file name).")
]
ReportJson = Annotated[
    Path | None, typer.Option(help="Also write the push report as JSON to this file.")
]


@clean_errors
def push(
    municipality: Municipality,
    file: File,
    sequence: Sequence = None,
    key: Key = None,
    signature: Signature = None,
    unsigned: Unsigned = False,
    full: Full = False,
    as_of: AsOf = None,
    encoding: Encoding = "utf-8",
    file_format: Format = None,
    report_json: ReportJson = None,
) -> None:
    from pipeline.catchup import LogBehindProjection
    from pipeline.vault import KeyEncryptionKeyError
    from producers.municipal_push import PushInterrupted, next_sequence, push_file, sign_push

    if sum(option is not None for option in (key, signature)) + unsigned > 1:
        raise CommandError("give only one of --key, --signature and --unsigned")
    if file_format not in (None, "csv", "jsonl"):
        raise CommandError(f"--format {file_format!r}: use csv or jsonl")
    if as_of is not None and not full:
        raise CommandError("--as-of dates a full register: use it with --full")
    try:
        snapshot_date = date.fromisoformat(as_of) if as_of else None
    except ValueError:
        raise CommandError(f"--as-of {as_of!r}: write the date as YYYY-MM-DD") from None
    current = settings()
    detached = _read_signature(signature) if signature else None
    signing_key = (
        None if unsigned or signature is not None else _signing_key(current, municipality, key)
    )
    # The intake refuses a missing or oversized file before it looks at signatures; signing one
    # would read a 2 GB file only to hear it is too large.
    signable = file.is_file() and file.stat().st_size <= current.push_max_bytes

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeRemainingColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,
    ) as bar:
        task = bar.add_task(f"checking {file.name}", total=None, rate="")
        started: list[float] = []

        def progress(done: int, total: int) -> None:
            if not started:
                started.append(time.perf_counter())
            rate = done / max(time.perf_counter() - started[0], 1e-9)
            bar.update(
                task,
                description="publishing",
                completed=done,
                total=total,
                rate=f"{rate:,.0f} events/s",
            )

        async def send() -> PushReport:
            number, signed = sequence, detached
            if signing_key is not None and signable:
                number = number or await next_sequence(current, municipality)
                try:
                    signed = sign_push(signing_key, municipality, number, file)
                except OSError as error:
                    raise CommandError(f"cannot read {file}: {error.strerror}") from None
            return await push_file(
                current,
                municipality,
                file,
                sequence=number,
                signature=signed,
                full=full,
                as_of=snapshot_date,
                encoding=encoding,
                file_format=cast("FileFormat | None", file_format),
                progress=progress,
            )

        try:
            report = run_async(send())
        except (PushInterrupted, LogBehindProjection, KeyEncryptionKeyError) as error:
            raise CommandError(str(error)) from None

    _show(report)
    if report_json is not None:
        try:
            report_json.write_bytes(orjson.dumps(report.to_json(), option=orjson.OPT_INDENT_2))
        except OSError as error:
            raise CommandError(f"cannot write the report to {report_json}: {error}") from None
    if report.outcome == "refused":
        raise typer.Exit(1)


push.__doc__ = "\n\n".join(
    (
        "Push a resident-data file: a diff, or with --full the whole register.",
        "A push is (municipality, batch sequence, file), signed by the municipality: the "
        "SHA-256 digest of the push statement "
        '"bcl-push-v1\\n{municipality}\\n{sequence}\\n{sha256 hex of the file}\\n" '
        "signed with its Ed25519 key. With --key, or the key `bcl municipality add` made, this "
        "command signs; elsewhere, with openssl: openssl dgst -sha256 -binary statement > "
        "digest; openssl pkeyutl -sign -rawin -inkey key.pem -in digest -out sig; then pass "
        "--signature sig.",
        "Batches count 1, 2, 3, ... per municipality. The whole file is accepted or nothing of "
        "it: every invalid row is reported (line, field, value, reason). Pushing an accepted "
        "batch again publishes nothing; a batch after a gap is held until the gap fills (see "
        "`bcl status`). The file and its report are kept under $BCL_HOME/<center>/pushes/.",
        "Exit status: 0 accepted, already accepted or held; 1 refused; 2 a usage or service error.",
        _columns_help(),
    )
)


def _signing_key(current: Settings, municipality: str, key: Path | None) -> Ed25519PrivateKey:
    from pipeline.signing import SigningKeyError, load_private_key

    path = key or current.home / "keys" / f"{municipality}.key.pem"
    try:
        pem = path.read_bytes()
    except FileNotFoundError:
        if key is not None:
            raise CommandError(f"--key {key}: no such file") from None
        raise CommandError(
            f"no signing key for {municipality} at {path}: give --key KEY.pem, or --signature "
            "SIG made elsewhere (or --unsigned to see the refusal)"
        ) from None
    except OSError as error:
        raise CommandError(f"cannot read the key {path}: {error}") from None
    try:
        return load_private_key(pem)
    except SigningKeyError as error:
        raise CommandError(f"{path}: {error}") from None


def _read_signature(path: Path) -> bytes:
    try:
        data = path.read_bytes()
    except OSError as error:
        raise CommandError(f"cannot read the signature {path}: {error}") from None
    if len(data) == _SIGNATURE_SIZE:
        return data
    # A signature passed through mail or a config system often arrives as base64 text.
    try:
        return binascii.a2b_base64(data.strip(), strict_mode=True)
    except binascii.Error:
        return data


def _show(report: PushReport) -> None:
    if report.outcome == "refused":
        console.print(f"[red]refused[/red] ({report.reason}): {escape(report.message)}")
    else:
        label = {"accepted": "green", "already_accepted": "cyan", "held": "yellow"}[report.outcome]
        console.print(f"[{label}]{report.outcome}[/{label}]: {escape(report.message)}")
    if not report.problems:
        if report.kept_at is not None:
            console.print(f"kept at {report.kept_at}")
        return
    count = len(report.problems)
    table = Table(title=f"{count:,} problem{'s' if count > 1 else ''}")
    for column in ("line", "field", "value", "reason"):
        table.add_column(column, overflow="fold")
    for problem in report.problems[:SHOWN_PROBLEMS]:
        table.add_row(
            str(problem.line), escape(problem.field), escape(problem.value), escape(problem.reason)
        )
    console.print(table)
    more = len(report.problems) - SHOWN_PROBLEMS
    if more > 0:
        console.print(f"{more:,} more in {report.kept_at}/report.json")
    elif report.kept_at is not None:
        console.print(f"report: {report.kept_at}/report.json")
