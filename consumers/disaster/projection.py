"""The disaster processor: the victim ledger seeded from the replica, shelters and who is in
them, applications and their automatic match, damage assessments, and notifications.

``apply`` records what ``disaster.events`` says; ``decide`` (live only) seeds the ledger on a
declaration and matches taps and applications, and writes the notifications staff and applicants
would be e-mailed. Every table ends the same whatever the order the topic's partitions are read
in: peacetime facts (dwellings, the support roster) travel under other keys than a disaster's.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from consumers.disaster.rules import (
    ADDRESS_KEY_SQL,
    Assessment,
    Holder,
    LedgerEntry,
    address_key,
    assessed_damage,
    decide_tap,
    in_affected_area,
    inside,
    match_application,
)
from pipeline.database import Connection, insert_new_rows, upsert_rows
from pipeline.projection import ConsumedEvent, load_projection
from pipeline.proofs import EdgeKeys
from pipeline.publish import Outgoing
from pipeline.settings import Settings
from pipeline.status import wait_until_applied
from pipeline.topics import DISASTER_EVENTS
from schemas.envelope import Envelope
from schemas.events.disaster import (
    APPLICATION_LABELS,
    ApplicationAccepted,
    ApplicationKind,
    ApplicationMatched,
    ApplicationReady,
    ApplicationRefused,
    ApplicationRejected,
    ApplicationSubmitted,
    Area,
    DamageAssessed,
    DamageAssessedInArea,
    DamageCategory,
    DisasterDeclared,
    DwellingLocated,
    LedgerSeeded,
    NotificationSent,
    Point,
    ShelterClosed,
    ShelterOpened,
    ShelterTapped,
    SupportNeedsRegistered,
    SupportPaid,
    TapMatched,
    TapRefused,
    VictimUpdated,
)
from schemas.events.residents import REMOVAL_REASONS
from schemas.ids import derived_event_id

log = logging.getLogger(__name__)
SOURCES_TIMEOUT = 120.0  # seconds a declaration waits for the replica and the certificates

ASSESSMENT_COLUMNS = ("disaster_id", "address_key", "event_id", "category", "individual", "staff")
VICTIM_COLUMNS = (
    "disaster_id", "municipality", "resident_code", "household_number", "relationship", "name",
    "name_kana", "birth_date", "sex", "address", "address_key", "auth_serial", "personal",
)  # fmt: skip
APPLICATION_STEPS: Mapping[type, str] = {
    ApplicationMatched: "matched",
    ApplicationRefused: "refused",
    ApplicationAccepted: "accepted",
    ApplicationRejected: "rejected",
    ApplicationReady: "ready",
    SupportPaid: "paid",
}


class DisasterProcessor:
    """``settings`` reach the log, to wait for the replica and the certificates to be level with
    it before a ledger is seeded from them."""

    name = "disaster"
    topics: Sequence[str] = (DISASTER_EVENTS.name,)
    digest_order: Mapping[str, str] = {
        "dwellings": "municipality, address_key",
        "support_needs": "municipality, resident_code",
        "disasters": "disaster_id",
        "area_dwellings": "disaster_id, address_key",
        "victims": "disaster_id, resident_code",
        "shelters": "disaster_id, shelter_id",
        "taps": "event_id",
        "evacuees": "disaster_id, municipality, resident_code",
        "applications": "application_id",
        "assessments": "disaster_id, address_key, event_id",
        "area_assessments": "event_id",
        "dwelling_damage": "disaster_id, address_key",
        "notifications": "event_id",
    }

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.keys = EdgeKeys.of(settings)

    # ------------------------------------------------------------------------------ recording

    async def apply(self, connection: Connection, events: Sequence[ConsumedEvent]) -> None:
        """Record each event in log order: a disaster's events share a partition, so a tap
        follows the shelter's opening and a decision follows what it decided."""
        for event in events:
            payload, envelope = event.payload, event.envelope
            handler = _RECORDERS.get(type(payload))
            if handler is not None:
                await handler(connection, payload, envelope)

    # -------------------------------------------------------------------------------- deciding

    async def decide(
        self, connection: Connection, events: Sequence[ConsumedEvent]
    ) -> Sequence[Outgoing]:
        decided: list[Outgoing] = []
        for event in events:
            payload, envelope = event.payload, event.envelope
            key = event.key.decode() if event.key else f"{envelope.municipality}:"
            made: list[tuple[str, Any]] = []
            if isinstance(payload, DisasterDeclared):
                made.append(("disaster.ledger_seeded", await _seed(connection, payload, envelope)))
            elif isinstance(payload, ShelterTapped):
                made.append(await _decide_tap(connection, payload, envelope))
            elif isinstance(payload, ApplicationSubmitted):
                made += await _decide_application(connection, payload, envelope)
            elif isinstance(payload, ApplicationAccepted | ApplicationRejected | ApplicationReady):
                made.append(("notification.sent", _applicant_notice(payload)))
            for number, (event_type, decision) in enumerate(made):
                outgoing = _outgoing(self.keys, key, event_type, decision, envelope, number)
                # Recorded here too, so the next event of the same batch sees it.
                await _RECORDERS[type(decision)](connection, decision, outgoing.envelope)
                decided.append(outgoing)
        return decided

    async def wait_for_sources(self, events: Sequence[ConsumedEvent]) -> None:
        """The ledger is seeded from what the replica and the certificates recorded up to the
        declaration; a replay sees all of it, so the live seeding must too: before a batch with
        a declaration, wait until both have applied the log as it ends now."""
        if not any(isinstance(event.payload, DisasterDeclared) for event in events):
            return
        sources = [load_projection(name, self.settings) for name in ("replica", "certificates")]
        if not await wait_until_applied(self.settings, sources, SOURCES_TIMEOUT):
            log.warning(
                "the replica or the certificates are still behind after %ss: the ledger is "
                "seeded from what they hold, and a replay may seed more",
                SOURCES_TIMEOUT,
            )


def _outgoing(
    keys: EdgeKeys, key: str, event_type: str, payload: Any, cause: Envelope, number: int
) -> Outgoing:
    at = datetime.now(UTC)
    return Outgoing(
        DISASTER_EVENTS.name,
        key,
        keys.prove(
            "disaster",
            Envelope.new(
                event_type,
                payload,
                origin=cause.origin,
                source="disaster",
                occurred_at=at,
                municipality=cause.municipality,
                causation_id=cause.event_id,
                event_id=derived_event_id(at, event_type, str(cause.event_id), str(number)),
            ),
        ),
    )


# ---------------------------------------------------------------------------------- recorders


async def _dwelling(connection: Connection, payload: DwellingLocated, envelope: Envelope) -> None:
    key = address_key(payload.address)
    await connection.execute(
        """
        INSERT INTO dwellings AS w (municipality, address_key, address, lat, lon, event_id)
        VALUES ($1, $2, $3, $4, $5, $6)
        ON CONFLICT (municipality, address_key) DO UPDATE SET address = EXCLUDED.address,
            lat = EXCLUDED.lat, lon = EXCLUDED.lon, event_id = EXCLUDED.event_id
        WHERE EXCLUDED.event_id > w.event_id
        """,
        payload.municipality, key, payload.address, payload.location.lat, payload.location.lon,
        envelope.event_id,
    )  # fmt: skip
    # Its place in every disaster of the municipality with an area, and the bulk assessments
    # of areas it lies in: the same rows whether the disaster or the dwelling came first.
    for row in await connection.fetch(
        "SELECT disaster_id, area FROM disasters WHERE municipality = $1 AND area IS NOT NULL",
        payload.municipality,
    ):
        area = Area.model_validate_json(row["area"])
        await _place(connection, row["disaster_id"], [(key, payload.location)], area)
    for row in await connection.fetch(
        "SELECT a.* FROM area_assessments a JOIN disasters d USING (disaster_id) "
        "WHERE d.municipality = $1",
        payload.municipality,
    ):
        if inside(payload.location, Area.model_validate_json(row["area"])):
            await _record_assessments(
                connection,
                [(row["disaster_id"], key, row["event_id"], row["category"], False, row["staff"])],
            )


async def _place(
    connection: Connection, disaster_id: str, dwellings: Iterable[tuple[str, Point]], area: Area
) -> None:
    await upsert_rows(
        connection,
        "area_dwellings",
        ("disaster_id", "address_key", "inside"),
        [(disaster_id, key, inside(point, area)) for key, point in dwellings],
        key=("disaster_id", "address_key"),
    )


async def _support_needs(
    connection: Connection, payload: SupportNeedsRegistered, envelope: Envelope
) -> None:
    await upsert_rows(
        connection,
        "support_needs",
        ("municipality", "resident_code", "needs", "plan", "supporter", "event_id"),
        [(payload.municipality, payload.resident_code, list(payload.needs), payload.plan,
          payload.supporter, envelope.event_id)],
        key=("municipality", "resident_code"),
        newer="event_id",
    )  # fmt: skip


async def _declared(connection: Connection, payload: DisasterDeclared, envelope: Envelope) -> None:
    area = payload.area.model_dump_json() if payload.area else None
    await insert_new_rows(
        connection,
        "disasters",
        ("disaster_id", "municipality", "name", "kind", "occurred_on", "area", "declared_event",
         "declared_at"),
        [(payload.disaster_id, payload.municipality, payload.name, payload.kind.value,
          payload.occurred_on, area, envelope.event_id, envelope.recorded_at)],
    )  # fmt: skip
    if payload.area is not None:
        located = await connection.fetch(
            "SELECT address_key, lat, lon FROM dwellings WHERE municipality = $1",
            payload.municipality,
        )
        await _place(
            connection,
            payload.disaster_id,
            ((r["address_key"], Point(lat=r["lat"], lon=r["lon"])) for r in located),
            payload.area,
        )


async def _seeded(connection: Connection, payload: LedgerSeeded, envelope: Envelope) -> None:
    """On replay (or from another center's log): seed as the live processor did; live, the
    ledger is already seeded and nothing changes."""
    disaster = await connection.fetchrow(
        "SELECT * FROM disasters WHERE disaster_id = $1", payload.disaster_id
    )
    if disaster is not None:
        await _fill_ledger(connection, disaster, payload.as_of)


async def _seed(
    connection: Connection, payload: DisasterDeclared, envelope: Envelope
) -> LedgerSeeded:
    """Seed the ledger from the replica as recorded up to the declaration."""
    disaster = await connection.fetchrow(
        "SELECT * FROM disasters WHERE disaster_id = $1", payload.disaster_id
    )
    assert disaster is not None  # recorded by apply
    as_of = disaster["declared_at"]
    victims, households = await _fill_ledger(connection, disaster, as_of)
    return LedgerSeeded(
        disaster_id=payload.disaster_id,
        municipality=payload.municipality,
        as_of=as_of,
        victims=victims,
        households=households,
    )


async def _fill_ledger(connection: Connection, disaster: Any, as_of: datetime) -> tuple[int, int]:
    """Every resident in force on the day of the disaster, as the replica had recorded them by
    ``as_of`` (the latest effective change, the later-recorded on equal dates), with the newest
    user-authentication card issued by then."""
    disaster_id, municipality = disaster["disaster_id"], disaster["municipality"]
    if disaster["seeded_as_of"] is not None:
        return disaster["victims"], disaster["households"]
    columns = ", ".join(VICTIM_COLUMNS)
    await connection.execute(
        f"""
        INSERT INTO victims ({columns})
        SELECT $5, c.municipality, c.resident_code, c.household_number, c.relationship, c.name,
               c.name_kana, c.birth_date, c.sex, c.address, {ADDRESS_KEY_SQL.format("c.address")},
               (SELECT serial FROM certificates.certificates k
                WHERE k.municipality = c.municipality AND k.resident_code = c.resident_code
                  AND k.kind = 'user_authentication' AND k.not_before <= $3
                ORDER BY k.not_before DESC, k.serial DESC LIMIT 1),
               c.personal
        FROM (
            SELECT DISTINCT ON (resident_code) *
            FROM replica.changes
            WHERE municipality = $1 AND recorded_at <= $3 AND effective_date <= $2
            ORDER BY resident_code, effective_date DESC, sequence DESC
        ) c
        WHERE c.reason <> ALL($4::text[])
        """,
        municipality,
        disaster["occurred_on"],
        as_of,
        [reason.value for reason in REMOVAL_REASONS],
        disaster_id,
    )
    counted = await connection.fetchrow(
        "SELECT count(*) AS victims, count(DISTINCT household_number) AS households "
        "FROM victims WHERE disaster_id = $1",
        disaster_id,
    )
    assert counted is not None  # an aggregate always has its row
    victims, households = counted["victims"], counted["households"]
    await connection.execute(
        "UPDATE disasters SET seeded_as_of = $2, victims = $3, households = $4 "
        "WHERE disaster_id = $1",
        disaster_id,
        as_of,
        victims,
        households,
    )
    return victims, households


async def _victim_updated(
    connection: Connection, payload: VictimUpdated, envelope: Envelope
) -> None:
    await connection.execute(
        """
        UPDATE victims SET contact = coalesce($3, contact), care_needs = coalesce($4, care_needs),
            notes = coalesce($5, notes), updated_event = $6
        WHERE disaster_id = $1 AND resident_code = $2
          AND (updated_event IS NULL OR updated_event < $6)
        """,
        payload.disaster_id, payload.resident_code, payload.contact, payload.care_needs,
        payload.notes, envelope.event_id,
    )  # fmt: skip


async def _shelter_opened(
    connection: Connection, payload: ShelterOpened, envelope: Envelope
) -> None:
    await insert_new_rows(
        connection,
        "shelters",
        ("disaster_id", "shelter_id", "name", "lat", "lon", "capacity", "opened_event"),
        [(payload.disaster_id, payload.shelter_id, payload.name, payload.location.lat,
          payload.location.lon, payload.capacity, envelope.event_id)],
    )  # fmt: skip


async def _shelter_closed(
    connection: Connection, payload: ShelterClosed, envelope: Envelope
) -> None:
    await connection.execute(
        "UPDATE shelters SET closed_event = $3 WHERE disaster_id = $1 AND shelter_id = $2 "
        "AND closed_event IS NULL",
        payload.disaster_id,
        payload.shelter_id,
        envelope.event_id,
    )


async def _tapped(connection: Connection, payload: ShelterTapped, envelope: Envelope) -> None:
    await insert_new_rows(
        connection,
        "taps",
        ("event_id", "disaster_id", "shelter_id", "auth_serial", "direction", "tapped_at"),
        [(envelope.event_id, payload.disaster_id, payload.shelter_id, payload.auth_serial,
          payload.direction, envelope.occurred_at)],
    )  # fmt: skip


async def _tap_matched(connection: Connection, payload: TapMatched, envelope: Envelope) -> None:
    if not await _first_decision_of_tap(connection, payload.tap_event_id, envelope.event_id):
        return
    await connection.execute(
        "UPDATE taps SET outcome = 'matched', municipality = $2, resident_code = $3, "
        "wide_area = $4 WHERE event_id = $1",
        payload.tap_event_id, payload.municipality, payload.resident_code, payload.wide_area,
    )  # fmt: skip
    tapped_at = await connection.fetchval(
        "SELECT tapped_at FROM taps WHERE event_id = $1", payload.tap_event_id
    )
    await connection.execute(
        """
        INSERT INTO evacuees AS e (disaster_id, municipality, resident_code, shelter_id, present,
            wide_area, since, tap_event)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
        ON CONFLICT (disaster_id, municipality, resident_code) DO UPDATE SET
            shelter_id = EXCLUDED.shelter_id, present = EXCLUDED.present,
            wide_area = EXCLUDED.wide_area, since = EXCLUDED.since, tap_event = EXCLUDED.tap_event
        WHERE EXCLUDED.tap_event > e.tap_event
        """,
        payload.disaster_id, payload.municipality, payload.resident_code, payload.shelter_id,
        payload.direction == "in", payload.wide_area, tapped_at, payload.tap_event_id,
    )  # fmt: skip


async def _tap_refused(connection: Connection, payload: TapRefused, envelope: Envelope) -> None:
    if not await _first_decision_of_tap(connection, payload.tap_event_id, envelope.event_id):
        return
    await connection.execute(
        "UPDATE taps SET outcome = 'refused', reason = $2, message = $3 WHERE event_id = $1",
        payload.tap_event_id,
        payload.reason.value,
        payload.message,
    )


async def _first_decision_of_tap(connection: Connection, tap: UUID, decision: UUID) -> bool:
    """Claim the tap for this decision; a second decision of the same tap changes nothing."""
    claimed = await connection.fetchval(
        "UPDATE taps SET decided_event = $2 WHERE event_id = $1 AND decided_event IS NULL "
        "RETURNING true",
        tap,
        decision,
    )
    return bool(claimed)


async def _submitted(
    connection: Connection, payload: ApplicationSubmitted, envelope: Envelope
) -> None:
    await insert_new_rows(
        connection,
        "applications",
        ("application_id", "disaster_id", "kind", "auth_serial", "dwelling_address",
         "attachments", "submitted_event", "submitted_at", "status", "status_event"),
        [(payload.application_id, payload.disaster_id, payload.kind.value, payload.auth_serial,
          payload.dwelling_address, list(payload.attachments), envelope.event_id,
          envelope.occurred_at, "submitted", envelope.event_id)],
    )  # fmt: skip


async def _application_step(connection: Connection, payload: Any, envelope: Envelope) -> None:
    """A later step of an application; an older or repeated one changes nothing."""
    step = APPLICATION_STEPS[type(payload)]
    person: tuple[object, ...] = (None, None, None)
    reason = message = staff = None
    paid = None
    if isinstance(payload, ApplicationMatched):
        person = (payload.municipality, payload.resident_code, payload.household_number)
    elif isinstance(payload, ApplicationRefused):
        reason, message = payload.reason.value, payload.message
    elif isinstance(payload, ApplicationRejected):
        reason, staff = payload.reason, payload.staff
    elif isinstance(payload, ApplicationAccepted):
        staff = payload.staff
    elif isinstance(payload, SupportPaid):
        paid = payload.amount_yen
    await connection.execute(
        """
        UPDATE applications SET status = $2, status_event = $3,
            municipality = coalesce($4, municipality), resident_code = coalesce($5, resident_code),
            household_number = coalesce($6, household_number), reason = coalesce($7, reason),
            message = coalesce($8, message), staff = coalesce($9, staff),
            paid_yen = coalesce($10, paid_yen)
        WHERE application_id = $1 AND status_event < $3
        """,
        payload.application_id, step, envelope.event_id, *person, reason, message, staff, paid,
    )  # fmt: skip


async def _assessed(connection: Connection, payload: DamageAssessed, envelope: Envelope) -> None:
    await _record_assessments(
        connection,
        [(payload.disaster_id, address_key(payload.dwelling_address), envelope.event_id,
          payload.category.value, True, payload.staff)],
    )  # fmt: skip


async def _assessed_in_area(
    connection: Connection, payload: DamageAssessedInArea, envelope: Envelope
) -> None:
    await insert_new_rows(
        connection,
        "area_assessments",
        ("event_id", "disaster_id", "area", "category", "staff"),
        [(envelope.event_id, payload.disaster_id, payload.area.model_dump_json(),
          payload.category.value, payload.staff)],
    )  # fmt: skip
    located = await connection.fetch(
        "SELECT w.address_key, w.lat, w.lon FROM dwellings w "
        "JOIN disasters d ON d.municipality = w.municipality WHERE d.disaster_id = $1",
        payload.disaster_id,
    )
    await _record_assessments(
        connection,
        [
            (payload.disaster_id, r["address_key"], envelope.event_id, payload.category.value,
             False, payload.staff)
            for r in located
            if inside(Point(lat=r["lat"], lon=r["lon"]), payload.area)
        ],
    )  # fmt: skip


async def _record_assessments(connection: Connection, rows: Sequence[tuple[object, ...]]) -> None:
    """Record assessments (disaster, address key, event, category, individual, staff) and set
    each dwelling they touch to the damage that now stands."""
    await insert_new_rows(connection, "assessments", ASSESSMENT_COLUMNS, rows)
    touched = sorted({(str(row[0]), str(row[1])) for row in rows})
    if not touched:
        return
    found: dict[tuple[str, str], list[Assessment]] = defaultdict(list)
    for row in await connection.fetch(
        "SELECT disaster_id, address_key, event_id, category, individual FROM assessments "
        "JOIN unnest($1::text[], $2::text[]) AS x(d, k) ON disaster_id = x.d AND address_key = x.k",
        [d for d, _ in touched],
        [k for _, k in touched],
    ):
        found[(row["disaster_id"], row["address_key"])].append(
            Assessment(row["event_id"], DamageCategory(row["category"]), row["individual"])
        )
    await upsert_rows(
        connection,
        "dwelling_damage",
        ("disaster_id", "address_key", "category"),
        [
            (*place, category.value)
            for place, assessments in found.items()
            if (category := assessed_damage(assessments)) is not None
        ],
        key=("disaster_id", "address_key"),
    )


async def _notified(connection: Connection, payload: NotificationSent, envelope: Envelope) -> None:
    await insert_new_rows(
        connection,
        "notifications",
        ("event_id", "disaster_id", "application_id", "recipient", "subject", "body", "sent_at"),
        [(envelope.event_id, payload.disaster_id, payload.application_id, payload.recipient,
          payload.subject, payload.body, envelope.occurred_at)],
    )  # fmt: skip


_RECORDERS: Mapping[type, Any] = {
    DwellingLocated: _dwelling,
    SupportNeedsRegistered: _support_needs,
    DisasterDeclared: _declared,
    LedgerSeeded: _seeded,
    VictimUpdated: _victim_updated,
    ShelterOpened: _shelter_opened,
    ShelterClosed: _shelter_closed,
    ShelterTapped: _tapped,
    TapMatched: _tap_matched,
    TapRefused: _tap_refused,
    ApplicationSubmitted: _submitted,
    **{step: _application_step for step in APPLICATION_STEPS},
    DamageAssessed: _assessed,
    DamageAssessedInArea: _assessed_in_area,
    NotificationSent: _notified,
}


# ---------------------------------------------------------------------------------- decisions


async def _holder(connection: Connection, serial: str) -> Holder | None:
    row = await connection.fetchrow(
        """
        SELECT k.status, k.municipality, k.resident_code, coalesce(r.active, false) AS active
        FROM certificates.certificates k
        LEFT JOIN replica.residents r
            ON r.municipality = k.municipality AND r.resident_code = k.resident_code
        WHERE k.serial = $1 AND k.kind = 'user_authentication' AND k.municipality IS NOT NULL
        """,
        serial,
    )
    if row is None:
        return None
    return Holder(row["status"], row["municipality"], row["resident_code"], row["active"])


async def _decide_tap(
    connection: Connection, tap: ShelterTapped, envelope: Envelope
) -> tuple[str, TapMatched | TapRefused]:
    shelter = await connection.fetchrow(
        "SELECT s.closed_event, d.municipality FROM shelters s JOIN disasters d "
        "USING (disaster_id) WHERE s.disaster_id = $1 AND s.shelter_id = $2",
        tap.disaster_id,
        tap.shelter_id,
    )
    holder = await _holder(connection, tap.auth_serial)
    checked_in = False
    if holder is not None:
        checked_in = bool(
            await connection.fetchval(
                "SELECT present FROM evacuees WHERE disaster_id = $1 AND municipality = $2 "
                "AND resident_code = $3 AND shelter_id = $4",
                tap.disaster_id,
                holder.municipality,
                holder.resident_code,
                tap.shelter_id,
            )
        )
    decision = decide_tap(
        tap,
        envelope.event_id,
        affected_municipality=shelter["municipality"] if shelter else "",
        shelter_open=shelter is not None and shelter["closed_event"] is None,
        holder=holder,
        checked_in=checked_in,
    )
    event_type = (
        "shelter.tap_matched" if isinstance(decision, TapMatched) else "shelter.tap_refused"
    )
    return event_type, decision


async def _decide_application(
    connection: Connection, application: ApplicationSubmitted, envelope: Envelope
) -> list[tuple[str, Any]]:
    disaster = await connection.fetchrow(
        "SELECT municipality, area FROM disasters WHERE disaster_id = $1", application.disaster_id
    )
    holder = await _holder(connection, application.auth_serial)
    victim = None
    applied: list[ApplicationKind] = []
    if disaster is not None and holder is not None:
        row = await connection.fetchrow(
            """
            SELECT v.municipality, v.resident_code, v.household_number, v.address,
                   w.lat, w.lon
            FROM victims v
            LEFT JOIN dwellings w ON w.municipality = v.municipality
                AND w.address_key = v.address_key
            WHERE v.disaster_id = $1 AND v.municipality = $2 AND v.resident_code = $3
            """,
            application.disaster_id, holder.municipality, holder.resident_code,
        )  # fmt: skip
        area = Area.model_validate_json(disaster["area"]) if disaster["area"] else None
        located = Point(lat=row["lat"], lon=row["lon"]) if row and row["lat"] is not None else None
        if row is not None and in_affected_area(located, area):
            victim = LedgerEntry(
                row["municipality"], row["resident_code"], row["household_number"], row["address"]
            )
        applied = [
            ApplicationKind(r["kind"])
            for r in await connection.fetch(
                "SELECT kind FROM applications WHERE disaster_id = $1 AND municipality = $2 "
                "AND resident_code = $3 AND status IN ('matched', 'accepted', 'ready', 'paid') "
                "AND application_id <> $4",
                application.disaster_id,
                holder.municipality,
                holder.resident_code,
                application.application_id,
            )
        ]
    decision = match_application(
        application,
        disaster_known=disaster is not None,
        holder=holder,
        victim=victim,
        applied_before=applied,
    )
    label = APPLICATION_LABELS[application.kind]
    if isinstance(decision, ApplicationMatched):
        notice = NotificationSent(
            disaster_id=application.disaster_id,
            application_id=application.application_id,
            recipient="staff",
            subject=f"{label}の申請（照合済み）",
            body=f"申請 {application.application_id} は被災者台帳と照合されました"
            f"（住民 {decision.resident_code}、世帯 {decision.household_number}）。"
            "受理または却下してください。",
        )
        return [("application.matched", decision), ("notification.sent", notice)]
    notice = NotificationSent(
        disaster_id=application.disaster_id,
        application_id=application.application_id,
        recipient="applicant",
        subject=f"{label}の申請を受け付けできませんでした",
        body=f"{decision.message} (reason: {decision.reason.value})",
    )
    return [("application.refused", decision), ("notification.sent", notice)]


def _applicant_notice(
    payload: ApplicationAccepted | ApplicationRejected | ApplicationReady,
) -> NotificationSent:
    if isinstance(payload, ApplicationAccepted):
        subject, body = "申請を受理しました", "申請を受理しました。審査の結果をお知らせします。"
    elif isinstance(payload, ApplicationRejected):
        subject, body = "申請を却下しました", f"申請は却下されました。理由: {payload.reason}"
    else:
        subject = "証明書を交付できます"
        body = (
            "証明書の交付準備ができました。窓口、またはマイナンバーカードで全国のコンビニ"
            "エンスストアで取得できます（手数料 10 円と市区町村の手数料）。"
        )
    return NotificationSent(
        disaster_id=payload.disaster_id,
        application_id=payload.application_id,
        recipient="applicant",
        subject=subject,
        body=body,
    )


def make(settings: Settings) -> DisasterProcessor:
    return DisasterProcessor(settings)
