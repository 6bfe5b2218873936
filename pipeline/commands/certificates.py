"""`bcl certificate ...` and `bcl crl ...`: JPKI certificates for operations and municipal staff."""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from pipeline.commands.common import (
    CommandError,
    aware_time,
    clean_errors,
    console,
    print_error,
    run_async,
    settings,
)
from schemas.events.certificates import RevocationReason

certificate_app = typer.Typer(
    help="JPKI electronic certificates on My Number Cards.", no_args_is_help=True
)
crl_app = typer.Typer(
    help="Certificate revocation lists from the JPKI center.", no_args_is_help=True
)


@contextmanager
def _refusals() -> Iterator[None]:
    """A lifecycle or CRL refusal is a message for the user, not a crash."""
    from producers.crl import CrlRefused
    from producers.jpki import CertificateCommandError
    from producers.jpki_ca import CaFileError

    try:
        yield
    except CrlRefused as refusal:
        raise CommandError(f"CRL refused ({refusal.code}): {refusal.message}") from None
    except (CertificateCommandError, CaFileError) as error:
        raise CommandError(str(error)) from None


def _serial(text: str) -> str:
    from schemas.codes import canonical_serial

    try:
        return canonical_serial(text)
    except ValueError as error:
        raise CommandError(str(error)) from None


@certificate_app.command("ca")
@clean_errors
def make_ca() -> None:
    """Create the project's test CA in $BCL_HOME/jpki (kept if it exists): it signs the
    certificates `issue --pem` writes and the CRLs `bcl crl make` writes."""
    from producers.jpki_ca import CertificateAuthority

    home = settings().jpki_home
    with _refusals():
        authority = CertificateAuthority.load_or_create(home)
    console.print(f"test CA [bold]{authority.name}[/bold] in {home}")


@certificate_app.command()
@clean_errors
def issue(
    municipality: Annotated[str, typer.Argument(help="The holders' municipality code.")],
    resident_codes: Annotated[
        list[str] | None, typer.Argument(help="住民票コード of the holders (default: --all).")
    ] = None,
    all_residents: Annotated[
        bool, typer.Option("--all", help="Issue a card to every active resident.")
    ] = False,
    pem: Annotated[
        bool, typer.Option(help="Also write the X.509 certificates to $BCL_HOME/jpki/issued.")
    ] = False,
) -> None:
    """Issue My Number Card certificates (signature + user authentication) to replica residents,
    valid to each holder's 5th birthday after today."""
    from producers.jpki import issue_cards, residents_to_issue, write_certificates
    from producers.jpki_ca import CertificateAuthority

    if not resident_codes and not all_residents:
        raise CommandError("name the residents to issue cards to, or pass --all")
    current = settings()
    with _refusals():
        authority = CertificateAuthority.load_or_create(current.jpki_home)
        holders = run_async(residents_to_issue(current, municipality, resident_codes or None))
        issued = run_async(issue_cards(current, authority, holders))
        if pem:
            write_certificates(issued, current.jpki_home / "issued")
    table = Table(title=f"{len(holders):,} cards issued in {municipality}")
    for column in ("resident", "kind", "serial", "valid until"):
        table.add_column(column)
    for c in issued[:40]:
        table.add_row(c.resident_code, c.kind.value, c.serial, c.not_after.isoformat())
    console.print(table)
    if len(issued) > 40:
        console.print(f"... and {len(issued) - 40:,} more certificates")


@certificate_app.command()
@clean_errors
def suspend(
    serial: Annotated[str, typer.Argument(help="Certificate serial (hex).")],
    at: Annotated[str | None, typer.Option(help="When (ISO date-time); default now.")] = None,
) -> None:
    """一時保留: suspend a certificate of a card reported lost."""
    from producers.jpki import suspend as suspend_certificate

    with _refusals():
        run_async(suspend_certificate(settings(), _serial(serial), aware_time(at)))
    console.print(f"certificate {_serial(serial)} suspended")


@certificate_app.command()
@clean_errors
def lift(
    serial: Annotated[str, typer.Argument(help="Certificate serial (hex).")],
    municipality: Annotated[
        str, typer.Option(help="The municipality lifting it: only the holder's residence may.")
    ],
    at: Annotated[str | None, typer.Option(help="When (ISO date-time); default now.")] = None,
) -> None:
    """Lift the suspension of a certificate whose card was found."""
    from producers.jpki import lift as lift_suspension

    with _refusals():
        run_async(lift_suspension(settings(), _serial(serial), municipality, aware_time(at)))
    console.print(f"suspension of certificate {_serial(serial)} lifted by {municipality}")


@certificate_app.command()
@clean_errors
def revoke(
    serial: Annotated[str, typer.Argument(help="Certificate serial (hex).")],
    reason: Annotated[RevocationReason, typer.Option(help="Why it is revoked.")],
    at: Annotated[str | None, typer.Option(help="When (ISO date-time); default now.")] = None,
) -> None:
    """Revoke a certificate."""
    from producers.jpki import revoke as revoke_certificate

    with _refusals():
        run_async(revoke_certificate(settings(), _serial(serial), reason, aware_time(at)))
    console.print(f"certificate {_serial(serial)} revoked ({reason.value})")


@certificate_app.command()
@clean_errors
def check(
    serial: Annotated[str, typer.Argument(help="Certificate serial (hex).")],
    at: Annotated[str | None, typer.Option(help="The instant to judge (default now).")] = None,
) -> None:
    """Is the certificate valid at that instant: valid, revoked, suspended, expired or unknown."""
    from consumers.certificates.rules import Validity
    from consumers.certificates.rules import check as validity
    from producers.jpki import certificate_state

    state = run_async(certificate_state(settings(), _serial(serial)))
    result = validity(state, _serial(serial), aware_time(at) or datetime.now(UTC))
    colour = "green" if result.status is Validity.VALID else "red"
    since = f" since {result.since.isoformat()}" if result.since else ""
    reason = f" ({result.reason})" if result.reason else ""
    console.print(f"{result.serial}: [{colour}]{result.status.value}[/{colour}]{reason}{since}")
    if result.status is not Validity.VALID:
        raise typer.Exit(1)


@certificate_app.command()
@clean_errors
def show(serial: Annotated[str, typer.Argument(help="Certificate serial (hex).")]) -> None:
    """A certificate's state, its transitions and any refused lifecycle events."""
    from pipeline.database import connect
    from producers.jpki import certificate_state

    current = settings()
    state = run_async(certificate_state(current, _serial(serial)))
    if state is None:
        raise CommandError(f"no certificate {_serial(serial)} is known")

    async def history() -> tuple[list[Any], list[Any]]:
        async with connect(current) as connection:
            moves = await connection.fetch(
                "SELECT at, status, reason, source FROM certificates.transitions "
                "WHERE serial = $1 ORDER BY at, event_id",
                state.serial,
            )
            refused = await connection.fetch(
                "SELECT recorded_at, event_type, code, message, source FROM certificates.refusals "
                "WHERE serial = $1 ORDER BY recorded_at",
                state.serial,
            )
        return list(moves), list(refused)

    table = Table(title=f"certificate {state.serial}", show_header=False)
    for field in ("status", "reason", "changed_at", "kind", "municipality", "resident_code",
                  "issuer", "not_before", "not_after"):  # fmt: skip
        value = getattr(state, field)
        table.add_row(field, "" if value is None else str(value))
    console.print(table)
    moves, refused = run_async(history())
    _rows("transitions", ("at", "status", "reason", "source"), [tuple(row) for row in moves])
    _rows(
        "refused events",
        ("recorded at", "event", "code", "message", "source"),
        [tuple(row) for row in refused],
    )


@certificate_app.command("list")
@clean_errors
def list_certificates(
    municipality: Annotated[str, typer.Argument(help="The holders' municipality code.")],
    kind: Annotated[
        str | None, typer.Option(help="signature or user_authentication (default: both).")
    ] = None,
    status: Annotated[str | None, typer.Option(help="active, suspended or revoked.")] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many, by serial.")] = 50,
    serials_only: Annotated[
        bool, typer.Option("--serials-only", help="Print bare serials, one a line (for scripts).")
    ] = False,
) -> None:
    """Certificates held by a municipality's residents, as the certificates projection knows them.

    Example: bcl certificate list 131032 --kind user_authentication --limit 5
    """
    from pipeline.database import connect

    if kind not in (None, "signature", "user_authentication"):
        raise CommandError(f"--kind must be signature or user_authentication, got {kind!r}")
    if status not in (None, "active", "suspended", "revoked"):
        raise CommandError(f"--status must be active, suspended or revoked, got {status!r}")

    async def fetch() -> list[Any]:
        async with connect(settings()) as connection:
            return list(
                await connection.fetch(
                    "SELECT serial, kind, status, resident_code, not_after "
                    "FROM certificates.certificates WHERE municipality = $1 "
                    "AND ($2::text IS NULL OR kind = $2) AND ($3::text IS NULL OR status = $3) "
                    "ORDER BY serial LIMIT $4",
                    municipality, kind, status, limit,
                )
            )  # fmt: skip

    found = run_async(fetch())
    if serials_only:
        for row in found:
            print(row["serial"])
        return
    if not found:
        console.print(f"no certificates known for municipality {municipality}")
        return
    _rows(
        f"certificates of {municipality}",
        ("serial", "kind", "status", "resident", "valid until"),
        [tuple(row) for row in found],
    )


def _rows(title: str, columns: tuple[str, ...], rows: list[tuple[Any, ...]]) -> None:
    if not rows:
        return
    table = Table(title=title)
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*("" if v is None else str(v) for v in row))
    console.print(table)


# ---------------------------------------------------------------------------- CRLs


def _fetch(source: str) -> bytes:
    if "://" not in source:
        path = Path(source)
        if not path.is_file():
            raise CommandError(f"no CRL file at {source}")
        return path.read_bytes()
    if not source.startswith(("http://", "https://", "file://")):
        raise CommandError(f"cannot fetch {source!r}: give a file, or an http(s):// or file:// URL")
    try:
        with urllib.request.urlopen(source, timeout=30) as response:
            data: bytes = response.read()
            return data
    except OSError as error:
        raise CommandError(f"cannot fetch the CRL from {source}: {error}") from None


@crl_app.command("import")
@clean_errors
def import_(
    source: Annotated[str, typer.Argument(help="A CRL file (DER or PEM) or an http(s):// URL.")],
    every: Annotated[
        float | None,
        typer.Option(help="Keep fetching SOURCE every this many seconds (Ctrl-C stops)."),
    ] = None,
) -> None:
    """Verify a CRL against the configured JPKI CA and publish the revocations it adds.

    A CRL older than the last one imported (thisUpdate) is refused, and entries already known
    publish nothing, so importing the same CRL again changes nothing."""
    from producers.jpki import import_crl, load_authority_certificate

    current = settings()
    with _refusals():
        authority = load_authority_certificate(current)
    while True:
        try:
            with _refusals():
                report = run_async(import_crl(current, _fetch(source), authority))
            console.print(
                f"{report.outcome}: CRL #{report.crl_number} of {report.issuer} "
                f"(thisUpdate {report.this_update.isoformat()}), {report.entries:,} entries: "
                f"{report.revocations:,} revocations and {report.suspensions:,} suspensions "
                f"published, {report.already_known:,} already known"
            )
        except CommandError as error:
            if every is None:
                raise
            print_error(str(error))
        if every is None:
            return
        time.sleep(every)


@crl_app.command()
@clean_errors
def make(
    out: Annotated[Path, typer.Argument(help="Where to write the CRL.")],
    revoke: Annotated[
        list[str] | None,
        typer.Option(help="Also list SERIAL or SERIAL:REASON (repeatable)."),
    ] = None,
    number: Annotated[
        int | None, typer.Option(help="CRL number (default: a time-based one).")
    ] = None,
    pem: Annotated[bool, typer.Option(help="Write PEM instead of DER.")] = False,
) -> None:
    """Write a CRL signed by the test CA listing every revoked or suspended certificate the
    pipeline knows, plus --revoke extras: what the JPKI center would publish."""
    from producers.jpki import known_revocations
    from producers.jpki_ca import CertificateAuthority, RevokedEntry
    from schemas.codes import serial_number

    current = settings()
    now = datetime.now(UTC)
    with _refusals():
        authority = CertificateAuthority.load_or_create(current.jpki_home)
    entries = run_async(known_revocations(current))
    listable = [r for r in RevocationReason if r is not RevocationReason.EXPIRY]
    for item in revoke or []:
        serial, _, reason = item.partition(":")
        try:
            entry = RevokedEntry(
                serial_number(serial), now, RevocationReason(reason or "unspecified")
            )
        except ValueError:
            entry = None
        if entry is None or entry.reason not in listable:
            raise CommandError(
                f"--revoke {item!r}: expected HEXSERIAL[:REASON], REASON one of "
                f"{', '.join(r.value for r in listable)}"
            )
        entries.append(entry)
    der = authority.crl(
        entries,
        this_update=now,
        next_update=now + timedelta(days=1),
        crl_number=number if number is not None else int(now.timestamp()),
    )
    if pem:
        from cryptography import x509
        from cryptography.hazmat.primitives.serialization import Encoding

        out.write_bytes(x509.load_der_x509_crl(der).public_bytes(Encoding.PEM))
    else:
        out.write_bytes(der)
    console.print(f"wrote a CRL of {len(entries):,} entries signed by {authority.name} to {out}")


@crl_app.command("list")
@clean_errors
def list_imports() -> None:
    """The CRLs imported so far, newest first."""
    from pipeline.catchup import refresh
    from pipeline.database import connect
    from pipeline.projection import load_projection

    current = settings()

    async def imports() -> list[Any]:
        await refresh(current, load_projection("certificates", current))
        async with connect(current) as connection:
            return list(
                await connection.fetch(
                    "SELECT issuer, crl_number, this_update, entries, revocations, suspensions, "
                    "imported_at FROM certificates.crl_imports ORDER BY this_update DESC"
                )
            )

    _rows(
        "CRLs imported",
        ("issuer", "number", "thisUpdate", "entries", "revocations", "suspensions", "imported"),
        [tuple(row) for row in run_async(imports())],
    )
