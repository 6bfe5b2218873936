"""`bcl disaster`: declare a disaster, follow it, and record what staff, shelters and applicants
do — the victim ledger, shelters with live vacancy, applications."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import TYPE_CHECKING, Annotated
from uuid import UUID

import typer
from pydantic import BaseModel, ValidationError

from pipeline.commands.common import (
    CommandError,
    clean_errors,
    console,
    read_projection,
    run_async,
    settings,
    validation_problems,
)
from pipeline.commands.output import Format, Out, OutputFormat, emit

if TYPE_CHECKING:
    from asyncpg import Record

    from schemas.events.disaster import Area

app = typer.Typer(no_args_is_help=True)

DisasterId = Annotated[str, typer.Argument(help="The disaster, e.g. 131032-2026-flood-1.")]
Staff = Annotated[str, typer.Option(help="Who records it, e.g. 'BUNKYO 防災課 佐藤'.")]
Wait = Annotated[bool, typer.Option(help="Wait for the processor's decision and show it.")]
DECISION_TIMEOUT = 30.0  # seconds

TEXT = {
    "resident_code", "household_number", "relationship", "name", "name_kana", "sex", "address",
    "damage", "shelter", "support_needs", "care_needs", "contact", "applications",
    "auth_serial", "shelter_id", "application_id", "kind", "status", "dwelling_address",
    "reason", "message", "staff", "disaster_id", "municipality", "birth_date", "open",
    "submitted_at", "occurred_on",
}  # fmt: skip


def _send(municipality: str, payload: BaseModel) -> UUID:
    """Put the act on the log; returns its event id."""
    from producers.disaster import DisasterDesk

    async def send() -> UUID:
        async with DisasterDesk(settings()) as desk:
            envelope = await desk.send(municipality, payload)
            console.print(f"recorded {envelope.type} ({envelope.event_id})")
            return envelope.event_id

    return run_async(send())


def _decision(what: str, query: str, key: UUID, timeout: float = DECISION_TIMEOUT) -> Record:
    """The disaster processor's decision on an act, once recorded (a shelter reader and the
    online portal show it at once)."""
    import asyncio
    import time

    from pipeline.database import connect

    async def poll() -> Record | None:
        deadline = time.monotonic() + timeout
        async with connect(settings()) as connection:
            while time.monotonic() < deadline:
                found = await connection.fetchrow(query, key)
                if found is not None:
                    return found
                await asyncio.sleep(0.2)
        return None

    decided = run_async(poll())
    if decided is None:
        raise CommandError(
            f"no decision on the {what} within {timeout:g}s: is the worker running (`bcl worker`)? "
            "It is on the log and will be decided; see `bcl disaster status`"
        )
    return decided


def _payload(model: type[BaseModel], **fields: object) -> BaseModel:
    try:
        return model.model_validate(fields)
    except ValidationError as error:
        raise CommandError(validation_problems(error)) from None


def _area(text: str | None) -> Area | None:
    """``lat,lon;lat,lon;...`` (three points at least), or a GeoJSON file with one Polygon."""
    from schemas.events.disaster import Area

    if text is None:
        return None
    try:
        if Path(text).is_file():
            import orjson

            geometry = orjson.loads(Path(text).read_bytes())
            geometry = geometry.get("geometry", geometry)
            points = [{"lat": lat, "lon": lon} for lon, lat in geometry["coordinates"][0]]
        else:
            points = [
                {"lat": float(lat), "lon": float(lon)}
                for lat, lon in (pair.split(",") for pair in text.split(";"))
            ]
        return Area.model_validate({"vertices": points})
    except (ValueError, KeyError, TypeError, ValidationError) as error:
        raise CommandError(
            f"--area: give 'lat,lon;lat,lon;lat,lon' (3 points or more, in Japan) or a GeoJSON "
            f"Polygon file ({error.__class__.__name__})"
        ) from None


async def _municipality_of(disaster_id: str) -> str:
    from pipeline.database import connect

    async with connect(settings()) as connection:
        found = await connection.fetchval(
            "SELECT municipality FROM disaster.disasters WHERE disaster_id = $1", disaster_id
        )
    if found is None:
        raise CommandError(f"no disaster {disaster_id} is declared; see `bcl disaster status`")
    return str(found)


# ----------------------------------------------------------------------------------- staff


@app.command()
@clean_errors
def declare(
    municipality: Annotated[str, typer.Argument(help="The affected municipality's code.")],
    disaster_id: DisasterId,
    name: Annotated[str, typer.Option(help="e.g. 令和8年台風第10号.")],
    kind: Annotated[str, typer.Option(help="earthquake, tsunami, flood, landslide, storm, ...")],
    on: Annotated[str, typer.Option(help="The day it struck, YYYY-MM-DD.")],
    area: Annotated[
        str | None,
        typer.Option(
            help="The affected area: 'lat,lon;lat,lon;...' or a GeoJSON Polygon file. "
            "Default: the whole municipality."
        ),
    ] = None,
) -> None:
    """Declare a disaster: the victim ledger is seeded at once from the BCL replica."""
    from schemas.events.disaster import DisasterDeclared

    payload = _payload(
        DisasterDeclared, disaster_id=disaster_id, municipality=municipality, name=name,
        kind=kind, occurred_on=on, area=_area(area),
    )  # fmt: skip
    _send(municipality, payload)


@app.command()
@clean_errors
def locate(
    municipality: Annotated[str, typer.Argument(help="The municipality the addresses are in.")],
    file: Annotated[Path, typer.Argument(help="CSV with columns address, lat, lon (UTF-8).")],
) -> None:
    """Load dwelling locations from the municipality's GIS (peacetime)."""
    from producers.disaster import DisasterDesk
    from schemas.events.disaster import DwellingLocated

    try:
        with file.open(encoding="utf-8", newline="") as handle:
            rows = list(csv.DictReader(handle))
    except (OSError, UnicodeDecodeError) as error:
        raise CommandError(f"cannot read {file}: {error}") from None
    payloads = [
        _payload(
            DwellingLocated, municipality=municipality, address=row.get("address"),
            location={"lat": row.get("lat"), "lon": row.get("lon")},
        )
        for row in rows
    ]  # fmt: skip

    async def send() -> None:
        async with DisasterDesk(settings()) as desk:
            for payload in payloads:
                await desk.send(municipality, payload)

    run_async(send())
    console.print(f"located {len(payloads):,} dwellings of {municipality}")


@app.command("shelter-open")
@clean_errors
def shelter_open(
    disaster_id: DisasterId,
    shelter_id: Annotated[str, typer.Argument(help="e.g. S1.")],
    name: Annotated[str, typer.Option(help="e.g. 文京区立第一中学校.")],
    capacity: Annotated[int, typer.Option(help="How many people it can hold.")],
    lat: Annotated[float, typer.Option(help="Latitude.")],
    lon: Annotated[float, typer.Option(help="Longitude.")],
) -> None:
    """Open a shelter (避難所)."""
    from schemas.events.disaster import ShelterOpened

    payload = _payload(
        ShelterOpened, disaster_id=disaster_id, shelter_id=shelter_id, name=name,
        location={"lat": lat, "lon": lon}, capacity=capacity,
    )  # fmt: skip
    _send(run_async(_municipality_of(disaster_id)), payload)


@app.command()
@clean_errors
def tap(
    disaster_id: DisasterId,
    shelter_id: Annotated[str, typer.Argument(help="The shelter whose reader was tapped.")],
    serial: Annotated[str, typer.Argument(help="The card's user-authentication serial.")],
    out: Annotated[bool, typer.Option("--out", help="A check-out (default: check-in).")] = False,
    wait: Wait = True,
) -> None:
    """A card tapped at a shelter's reader (no PIN)."""
    from schemas.events.disaster import ShelterTapped

    payload = _payload(
        ShelterTapped, disaster_id=disaster_id, shelter_id=shelter_id, auth_serial=serial,
        direction="out" if out else "in",
    )  # fmt: skip
    event_id = _send(run_async(_municipality_of(disaster_id)), payload)
    if not wait:
        return
    tapped = _decision(
        "tap",
        "SELECT * FROM disaster.taps WHERE event_id = $1 AND outcome IS NOT NULL",
        event_id,
    )
    if tapped["outcome"] == "refused":
        console.print(f"refused: {tapped['reason']} — {tapped['message']}")
        return
    where = " (wide-area evacuee)" if tapped["wide_area"] else ""
    direction = "checked out of" if out else "checked in at"
    console.print(
        f"{direction} {shelter_id}: {tapped['municipality']} {tapped['resident_code']}{where}"
    )


@app.command("apply")
@clean_errors
def apply_online(
    disaster_id: DisasterId,
    serial: Annotated[str, typer.Argument(help="The applicant's card serial.")],
    kind: Annotated[
        str,
        typer.Option(
            help="risai_certificate, hisai_certificate, livelihood_support, condolence, ..."
        ),
    ],
    dwelling: Annotated[str, typer.Option(help="The damaged dwelling's address.")],
    attachment: Annotated[
        list[Path] | None, typer.Option(help="A photo or document (repeatable): its digest.")
    ] = None,
    wait: Wait = True,
) -> None:
    """An online application made with the card; matched against the ledger at once."""
    import hashlib
    import uuid

    from schemas.events.disaster import ApplicationSubmitted

    try:
        digests = [hashlib.sha256(p.read_bytes()).hexdigest() for p in attachment or []]
    except OSError as error:
        raise CommandError(f"cannot read an attachment: {error}") from None
    application_id = uuid.uuid4()
    payload = _payload(
        ApplicationSubmitted, application_id=application_id, disaster_id=disaster_id, kind=kind,
        auth_serial=serial, dwelling_address=dwelling, attachments=digests,
    )  # fmt: skip
    _send(run_async(_municipality_of(disaster_id)), payload)
    console.print(f"application {application_id}")
    if not wait:
        return
    matched = _decision(
        "application",
        "SELECT * FROM disaster.applications WHERE application_id = $1 AND status <> 'submitted'",
        application_id,
    )
    if matched["status"] == "refused":
        console.print(f"refused: {matched['reason']} — {matched['message']}")
    else:
        console.print(
            f"{matched['status']}: {matched['municipality']} {matched['resident_code']}, "
            "waiting for staff to accept it"
        )


def _step(model_name: str, disaster_id: str, **fields: object) -> None:
    from schemas.events import disaster as events

    payload = _payload(getattr(events, model_name), disaster_id=disaster_id, **fields)
    _send(run_async(_municipality_of(disaster_id)), payload)


Application = Annotated[UUID, typer.Argument(help="The application id.")]


@app.command()
@clean_errors
def accept(disaster_id: DisasterId, application: Application, staff: Staff) -> None:
    """Accept a matched application (受理); the applicant is notified."""
    _step("ApplicationAccepted", disaster_id, application_id=application, staff=staff)


@app.command()
@clean_errors
def reject(
    disaster_id: DisasterId,
    application: Application,
    staff: Staff,
    reason: Annotated[str, typer.Option(help="Why, in words the applicant can act on.")],
) -> None:
    """Reject an application; the applicant is notified with the reason."""
    _step(
        "ApplicationRejected", disaster_id, application_id=application, staff=staff, reason=reason
    )


@app.command()
@clean_errors
def assess(
    disaster_id: DisasterId,
    category: Annotated[
        str,
        typer.Argument(
            help="total, large_scale_half, medium_scale_half, half, quasi_half, partial or none."
        ),
    ],
    staff: Staff,
    dwelling: Annotated[str | None, typer.Option(help="One dwelling's address.")] = None,
    area: Annotated[
        str | None, typer.Option(help="Every dwelling in this area (as declare).")
    ] = None,
) -> None:
    """Record damage (住家被害認定): one dwelling, or every located dwelling in an area."""
    if (dwelling is None) == (area is None):
        raise CommandError("give either --dwelling ADDRESS or --area AREA")
    if dwelling is not None:
        _step("DamageAssessed", disaster_id, dwelling_address=dwelling, category=category,
              staff=staff)  # fmt: skip
    else:
        _step("DamageAssessedInArea", disaster_id, area=_area(area), category=category,
              staff=staff)  # fmt: skip


@app.command()
@clean_errors
def ready(disaster_id: DisasterId, application: Application) -> None:
    """The certificate can be issued, at the counter or any convenience store."""
    _step("ApplicationReady", disaster_id, application_id=application)


# ---------------------------------------------------------------------------------- reading


@app.command()
@clean_errors
def status(
    disaster_id: Annotated[str | None, typer.Argument(help="One disaster (default: all).")] = None,
    output: Format = OutputFormat.TABLE,
    out: Out = None,
) -> None:
    """Disasters at a glance: victims, sheltered, applications awaiting staff, assessments."""
    from consumers.disaster.queries import status as read_status

    rows = read_projection("disaster", lambda connection: read_status(connection, disaster_id))
    emit(rows, "disasters", output, out, text_columns=TEXT, empty="no disaster is declared")


@app.command()
@clean_errors
def ledger(disaster_id: DisasterId, output: Format = OutputFormat.TABLE, out: Out = None) -> None:
    """The victim ledger (被災者台帳) of the affected area; CSV with --format csv --out FILE."""
    from consumers.disaster.queries import ledger as read_ledger

    rows = read_projection("disaster", lambda connection: read_ledger(connection, disaster_id))
    emit(rows, f"victim ledger: {disaster_id}", output, out, text_columns=TEXT,
         empty="the ledger is empty (is the disaster declared?)")  # fmt: skip


@app.command()
@clean_errors
def shelters(disaster_id: DisasterId, output: Format = OutputFormat.TABLE, out: Out = None) -> None:
    """Shelters with evacuees now, wide-area evacuees among them, and vacancy."""
    from consumers.disaster.queries import shelters as read_shelters

    rows = read_projection("disaster", lambda connection: read_shelters(connection, disaster_id))
    emit(rows, f"shelters: {disaster_id}", output, out, text_columns=TEXT,
         totals=frozenset({"capacity", "evacuees", "wide_area", "vacancy"}),
         empty="no shelter is open")  # fmt: skip


@app.command()
@clean_errors
def applications(
    disaster_id: DisasterId,
    status_filter: Annotated[
        str | None,
        typer.Option("--status", help="submitted, matched, refused, accepted, rejected, ready."),
    ] = None,
    output: Format = OutputFormat.TABLE,
    out: Out = None,
) -> None:
    """Applications and where each stands; refused ones with the reason."""
    from consumers.disaster.queries import applications as read_applications

    rows = read_projection(
        "disaster", lambda connection: read_applications(connection, disaster_id, status_filter)
    )
    emit(rows, f"applications: {disaster_id}", output, out, text_columns=TEXT,
         empty="no applications")  # fmt: skip
