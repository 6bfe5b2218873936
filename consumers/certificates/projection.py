"""The ``certificates`` projection: every JPKI certificate's lifecycle state, its transitions, the
events that could not apply and the CRLs imported (topic ``jpki.certificates``)."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from consumers.certificates.authorities import TrustedAuthorities, checked_step
from consumers.certificates.rules import (
    LIFECYCLE_EVENTS,
    CertificateState,
    LifecycleEvent,
    Status,
)
from pipeline.database import Connection, insert_new_rows, upsert_rows
from pipeline.projection import ConsumedEvent
from pipeline.settings import Settings
from pipeline.topics import JPKI_CERTIFICATES
from schemas.events.certificates import (
    CertificateKind,
    CrlImported,
    RevocationReason,
)

log = logging.getLogger("bcl.certificates")

STATE_COLUMNS = (
    "serial", "status", "changed_at", "reason", "kind", "municipality", "resident_code",
    "issuer", "not_before", "not_after",
)  # fmt: skip


class CertificatesProjection:
    name = "certificates"
    topics: Sequence[str] = (JPKI_CERTIFICATES.name,)
    digest_order: Mapping[str, str] = {
        "certificates": "serial",
        "transitions": "event_id",
        "refusals": "event_id",
        "crl_imports": "sha256",
    }

    def __init__(self, authorities: TrustedAuthorities) -> None:
        self.authorities = authorities

    async def apply(self, connection: Connection, events: Sequence[ConsumedEvent]) -> None:
        lifecycle = [e for e in events if isinstance(e.payload, LIFECYCLE_EVENTS)]
        if lifecycle:
            await self._apply_lifecycle(connection, lifecycle)
        await insert_new_rows(
            connection,
            "crl_imports",
            ("sha256", "issuer", "crl_number", "this_update", "next_update", "entries",
             "revocations", "suspensions", "imported_at"),
            [
                (p.sha256, p.issuer, p.crl_number, p.this_update, p.next_update, p.entries,
                 p.revocations, p.suspensions, e.envelope.recorded_at)
                for e in events
                if isinstance(p := e.payload, CrlImported)
            ],
        )  # fmt: skip

    async def _apply_lifecycle(
        self, connection: Connection, events: Sequence[ConsumedEvent]
    ) -> None:
        payloads = [_lifecycle(e) for e in events]
        serials = list({payload.serial for payload in payloads})
        states = await load_states(connection, serials)
        # The same event twice (a processor republishing after a crash) changes nothing again.
        seen = {
            row["event_id"]
            for row in await connection.fetch(
                "SELECT event_id FROM transitions WHERE event_id = ANY($1::uuid[]) UNION ALL "
                "SELECT event_id FROM refusals WHERE event_id = ANY($1::uuid[])",
                [e.envelope.event_id for e in events],
            )
        }
        changed: set[str] = set()
        transitions: list[tuple[object, ...]] = []
        refusals: list[tuple[object, ...]] = []
        for event, payload in zip(events, payloads, strict=True):
            envelope = event.envelope
            if envelope.event_id in seen:
                continue
            seen.add(envelope.event_id)
            before = states.get(payload.serial)
            result = checked_step(self.authorities, before, payload)
            if result.refusal is not None:
                log.warning("%s %s refused: %s", envelope.type, payload.serial, result.refusal)
                refusals.append(
                    (envelope.event_id, payload.serial, envelope.type, result.refusal.code,
                     result.refusal.message, envelope.source, envelope.recorded_at)
                )  # fmt: skip
                continue
            if result.state is not None and result.state != before:
                states[payload.serial] = result.state
                changed.add(payload.serial)
            if result.transition is not None and result.state is not None:
                transitions.append(
                    (envelope.event_id, payload.serial, result.transition.value,
                     _text(result.state.reason), result.state.changed_at, envelope.source)
                )  # fmt: skip
        await upsert_rows(
            connection,
            "certificates",
            STATE_COLUMNS,
            [_state_row(states[serial]) for serial in sorted(changed)],
            ("serial",),
        )
        await insert_new_rows(
            connection,
            "transitions",
            ("event_id", "serial", "status", "reason", "at", "source"),
            transitions,
        )
        await insert_new_rows(
            connection,
            "refusals",
            ("event_id", "serial", "event_type", "code", "message", "source", "recorded_at"),
            refusals,
        )


async def load_states(
    connection: Connection, serials: Sequence[str]
) -> dict[str, CertificateState]:
    """The stored state of each of ``serials`` that the projection knows."""
    rows = await connection.fetch(
        f"SELECT {', '.join(STATE_COLUMNS)} FROM certificates WHERE serial = ANY($1::text[])",
        serials,
    )
    return {row["serial"]: state_of(row) for row in rows}


def state_of(row: Any) -> CertificateState:
    return CertificateState(
        serial=row["serial"],
        status=Status(row["status"]),
        changed_at=row["changed_at"],
        reason=RevocationReason(row["reason"]) if row["reason"] else None,
        kind=CertificateKind(row["kind"]) if row["kind"] else None,
        municipality=row["municipality"],
        resident_code=row["resident_code"],
        issuer=row["issuer"],
        not_before=row["not_before"],
        not_after=row["not_after"],
    )


def _state_row(state: CertificateState) -> tuple[object, ...]:
    return (
        state.serial, state.status.value, state.changed_at, _text(state.reason),
        _text(state.kind), state.municipality, state.resident_code, state.issuer,
        state.not_before, state.not_after,
    )  # fmt: skip


def _text(value: RevocationReason | CertificateKind | None) -> str | None:
    return None if value is None else value.value


def make(settings: Settings) -> CertificatesProjection:
    return CertificatesProjection(TrustedAuthorities.of(settings))


def _lifecycle(event: ConsumedEvent) -> LifecycleEvent:
    payload = event.payload
    if not isinstance(payload, LIFECYCLE_EVENTS):
        raise TypeError(f"{event.envelope.type} is not a certificate's lifecycle event")
    return payload
