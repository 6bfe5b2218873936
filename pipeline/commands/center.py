"""`bcl center ...`, a certificate center's gateway, and `bcl verify`: is this certificate real?"""

from __future__ import annotations

import hashlib
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any
from uuid import UUID

import typer
from pydantic import ValidationError
from rich.table import Table

from pipeline.commands.common import (
    CommandError,
    aware_time,
    clean_errors,
    console,
    run_async,
    settings,
    validation_problems,
)

if TYPE_CHECKING:
    from producers.center import Outcome

app = typer.Typer(
    help="The certificate center's gateway: kiosk requests, outcomes, delivery notices.",
    no_args_is_help=True,
)


def _request_id(text: str) -> UUID:
    try:
        return UUID(text)
    except ValueError:
        raise CommandError(f"{text!r} is not a request id (a UUID)") from None


def _options(pairs: list[str] | None) -> dict[str, str]:
    """The print options, each one a kiosk offers (``PRINT_OPTIONS``) with a value it takes."""
    from schemas.events.issuance import PRINT_OPTIONS

    options: dict[str, str] = {}
    for pair in pairs or []:
        name, sep, value = pair.partition("=")
        if not sep or not name or not value:
            raise CommandError(f"--option {pair!r} must be NAME=VALUE, e.g. scope=household")
        if name not in PRINT_OPTIONS:
            known = ", ".join(sorted(PRINT_OPTIONS))
            raise CommandError(f"--option {name!r} is not a print option; the options are {known}")
        allowed = PRINT_OPTIONS[name]
        if allowed is not None and value not in allowed:
            raise CommandError(
                f"--option {name}={value!r} is not offered; {name} is one of "
                f"{', '.join(sorted(allowed))}"
            )
        options[name] = value
    return options


def _show(outcome: Outcome) -> None:
    table = Table(title=f"request {outcome.request_id}", show_header=False)
    table.add_row("outcome", outcome.status)
    table.add_row("municipality", outcome.municipality)
    table.add_row("certificate", outcome.certificate_type)
    if outcome.issued:
        table.add_row("document", str(outcome.document_id))
        schedule = (
            f"schedule from {outcome.fee_schedule_from}"
            if outcome.fee_schedule_from
            else "standard fee"
        )
        table.add_row(
            "fee",
            f"{outcome.fee_total_yen:,} yen ({outcome.copies} × {outcome.fee_per_copy_yen:,}; "
            f"{schedule})",
        )
    else:
        table.add_row("reason", f"[red]{outcome.reason}[/red]")
        table.add_row("why", outcome.message or "")
    if outcome.decided_at:
        table.add_row("decided", f"{outcome.decided_at:%Y-%m-%d %H:%M:%S%z}")
    if outcome.delivered_at:
        table.add_row(
            "delivered",
            f"{outcome.delivered_at:%Y-%m-%d %H:%M:%S%z}, paid {outcome.fee_paid_yen:,} yen",
        )
    if outcome.cancelled_at:
        table.add_row(
            "cancelled", f"{outcome.cancelled_at:%Y-%m-%d %H:%M:%S%z} ({outcome.cancel_reason})"
        )
    console.print(table)


def _save_pdf(request_id: UUID, path: Path) -> None:
    from pipeline.database import connect

    async def fetch() -> bytes | None:
        async with connect(settings()) as connection:
            return await document_pdf(connection, request_id)

    pdf = run_async(fetch())
    if pdf is None:
        raise CommandError(f"request {request_id} has no issued document to save")
    path.write_bytes(pdf)
    console.print(f"certificate written to {path} ({len(pdf):,} bytes)")


async def document_pdf(connection: Any, request_id: UUID) -> bytes | None:
    """The PDF issued for ``request_id``; drawn again (identically) from the stored document when
    only the document survived, as after a replay, and kept."""
    from consumers.issuer.document import render_document

    row = await connection.fetchrow(
        "SELECT d.document_id, d.content, d.signature, f.pdf FROM issuer.documents d "
        "LEFT JOIN issuer.document_files f USING (document_id) WHERE d.request_id = $1",
        request_id,
    )
    if row is None:
        return None
    if row["pdf"] is not None:
        return bytes(row["pdf"])
    pdf = render_document(bytes(row["content"]), bytes(row["signature"]))
    await connection.execute(
        "INSERT INTO issuer.document_files (document_id, pdf, sha256) VALUES ($1, $2, $3) "
        "ON CONFLICT DO NOTHING",
        row["document_id"],
        pdf,
        hashlib.sha256(pdf).hexdigest(),
    )
    return pdf


@app.command()
@clean_errors
def submit(
    municipality: Annotated[str, typer.Option(help="The resident's municipality (6 digits).")],
    serial: Annotated[str, typer.Option(help="User-authentication certificate serial (hex).")],
    certificate_type: Annotated[
        str, typer.Option("--type", help="juminhyo, inkan, tax_income, tax_assessment, ...")
    ],
    operator: Annotated[str, typer.Option(help="Store operator, e.g. seven_eleven.")] = (
        "seven_eleven"
    ),
    store: Annotated[str, typer.Option(help="Store id.")] = "kiosk-0001",
    store_municipality: Annotated[
        str | None, typer.Option(help="The store's municipality (default: the resident's).")
    ] = None,
    fiscal_year: Annotated[int | None, typer.Option(help="Fiscal year, tax types only.")] = None,
    domicile_differs: Annotated[
        bool, typer.Option(help="住≠本: registered domicile differs (family-register types).")
    ] = False,
    copies: Annotated[int, typer.Option(help="Copies, 1 to 10.")] = 1,
    option: Annotated[
        list[str] | None,
        typer.Option(
            help="Print option NAME=VALUE (repeatable): scope=household for a whole household's "
            "住民票 (scope=individual, the default, for the holder's own); disaster_id=ID for the "
            "disaster certificate of one disaster (default: the latest declared).",
        ),
    ] = None,
    request_id: Annotated[
        str | None, typer.Option(help="Reuse a request id (a retry); default: a new one.")
    ] = None,
    at: Annotated[
        str | None, typer.Option(help="When the resident asked, ISO time (default: now).")
    ] = None,
    save: Annotated[Path | None, typer.Option(help="Write the issued certificate's PDF here.")] = (
        None
    ),
    wait: Annotated[bool, typer.Option(help="Wait for the issuer's decision.")] = True,
) -> None:
    """Send a kiosk request through this center (BCL_CENTER) and show the decision."""
    from producers.center import CenterGateway, OutcomeTimeout
    from schemas.codes import canonical_serial
    from schemas.events.issuance import IssuanceRequested
    from schemas.ids import new_event_id

    try:
        request = IssuanceRequested(
            request_id=_request_id(request_id) if request_id else new_event_id(),
            store_operator=operator,
            store_id=store,
            store_municipality=store_municipality or municipality,
            resident_municipality=municipality,
            auth_serial=canonical_serial(serial),
            certificate_type=certificate_type,
            fiscal_year=fiscal_year,
            domicile_differs=domicile_differs,
            copies=copies,
            print_options=_options(option),
        )
    except ValidationError as error:
        problems = validation_problems(error, "request")
        raise CommandError(f"the request is not valid: {problems}") from None
    except ValueError as error:
        raise CommandError(str(error)) from None

    async def send() -> Outcome | None:
        async with CenterGateway(settings()) as center:
            return await center.submit(request, at=aware_time(at), wait=wait)

    try:
        outcome = run_async(send())
    except OutcomeTimeout as error:
        raise CommandError(str(error)) from None
    if outcome is None:
        console.print(f"request {request.request_id} sent")
        return
    _show(outcome)
    if save is not None and outcome.issued:
        _save_pdf(request.request_id, save)


@app.command()
@clean_errors
def outcome(
    request_id: Annotated[str, typer.Argument(help="The request id.")],
    save: Annotated[Path | None, typer.Option(help="Write the issued certificate's PDF here.")] = (
        None
    ),
) -> None:
    """The recorded decision on a request and what the kiosk reported since."""
    from pipeline.database import connect
    from producers.center import recorded_outcome

    wanted = _request_id(request_id)

    async def fetch() -> Outcome | None:
        async with connect(settings()) as connection:
            return await recorded_outcome(connection, wanted)

    found = run_async(fetch())
    if found is None:
        raise CommandError(
            f"no decision is recorded for request {wanted}: never submitted, or not decided yet "
            "(is the worker running?)"
        )
    _show(found)
    if save is not None and found.issued:
        _save_pdf(wanted, save)


@app.command()
@clean_errors
def deliver(
    request_id: Annotated[str, typer.Argument(help="The request id.")],
    fee_paid: Annotated[int, typer.Option(help="Yen the kiosk collected.")],
    printed_at: Annotated[str | None, typer.Option(help="ISO time (default: now).")] = None,
) -> None:
    """The kiosk collected the fee and printed the certificate."""
    from producers.center import CenterError, CenterGateway

    async def send() -> Outcome:
        async with CenterGateway(settings()) as center:
            return await center.deliver(
                _request_id(request_id), fee_paid, aware_time(printed_at, "--printed-at")
            )

    try:
        run_async(send())
    except CenterError as error:
        raise CommandError(str(error)) from None
    console.print(f"request {request_id}: delivered, {fee_paid:,} yen paid")


@app.command()
@clean_errors
def cancel(
    request_id: Annotated[str, typer.Argument(help="The request id.")],
    reason: Annotated[str, typer.Option(help="Why, e.g. 'not paid', 'printer jam'.")],
) -> None:
    """The issued certificate was not printed: the resident left, or the kiosk failed."""
    from producers.center import CenterError, CenterGateway

    async def send() -> Outcome:
        async with CenterGateway(settings()) as center:
            return await center.cancel(_request_id(request_id), reason)

    try:
        run_async(send())
    except CenterError as error:
        raise CommandError(str(error)) from None
    console.print(f"request {request_id}: cancelled ({reason})")


@clean_errors
def verify(
    file: Annotated[Path, typer.Argument(help="The certificate PDF.")],
    extract: Annotated[
        Path | None,
        typer.Option(
            help="Also write certificate.json, certificate.sig and seal.pub.pem here, for "
            "`openssl dgst -sha256 -verify seal.pub.pem -signature certificate.sig "
            "certificate.json`."
        ),
    ] = None,
) -> None:
    """Check a certificate PDF: valid, tampered, sealed with an unknown or a revoked key.

    Exit status 0 only when valid, 1 otherwise.
    """
    from datetime import UTC

    from consumers.issuer.verification import Verdict, extract_signed, verify_document
    from producers.registry import find_seal_key
    from schemas.events.municipalities import SealKey

    try:
        pdf = file.read_bytes()
    except OSError as error:
        raise CommandError(f"cannot read {file}: {error}") from None
    current = settings()

    async def keys() -> dict[tuple[str, str], SealKey]:
        from consumers.issuer.verification import NotACertificate
        from schemas.documents import parse_content

        try:
            content = parse_content(extract_signed(pdf)[0])
        except (NotACertificate, ValueError):
            return {}
        key = await find_seal_key(current, content.municipality, content.seal_key_id)
        return {} if key is None else {(content.municipality, content.seal_key_id): key}

    known = run_async(keys())
    result = verify_document(pdf, lambda m, k: known.get((m, k)), at=datetime.now(UTC))
    colour = "green" if result.verdict is Verdict.VALID else "red"
    table = Table(
        title=f"{file.name}: [{colour}]{result.verdict.value}[/{colour}]", show_header=False
    )
    for label, value in (
        ("document", result.document_id),
        ("verification id", result.verification_id),
        ("municipality", result.municipality),
        ("certificate", result.certificate_type),
        ("issued", result.issued_at),
        ("seal key", result.seal_key_id),
        ("digest (SHA-256)", result.digest),
    ):
        if value is not None:
            table.add_row(label, str(value))
    table.add_row("finding", result.message)
    console.print(table)
    if extract is not None and result.verdict is not Verdict.NOT_A_CERTIFICATE:
        content, signature = extract_signed(pdf)
        extract.mkdir(parents=True, exist_ok=True)
        (extract / "certificate.json").write_bytes(content)
        (extract / "certificate.sig").write_bytes(signature)
        key = known.get((result.municipality or "", result.seal_key_id or ""))
        if key is not None:
            (extract / "seal.pub.pem").write_text(key.public_key)
        console.print(
            f"extracted to {extract}: openssl dgst -sha256 -verify {extract}/seal.pub.pem "
            f"-signature {extract}/certificate.sig {extract}/certificate.json"
        )
    if result.verdict is not Verdict.VALID:
        raise typer.Exit(1)
