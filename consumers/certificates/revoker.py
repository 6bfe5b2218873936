"""The automatic revoker: resident-record changes become certificate revocations (DOMAIN §5).

A processor, not a view: it reads ``resident.changes`` and ``jpki.certificates`` and publishes
``certificate.revoked`` for each certificate a change revokes — the signature certificate when a
basic-four item changes, both certificates on death or removal. It remembers, per resident, the
certificates issued and the revoking changes, so whichever of the two reaches it first, the
certificate issued before the change is revoked, once. A revocation's event id is derived from
the certificate and the change, so a batch applied twice publishes the same event again.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections import defaultdict
from collections.abc import Mapping, Sequence

import orjson

from consumers.certificates.rules import HolderEvent, basic_four, holder_event, revocation_due
from pipeline.database import Connection, insert_new_rows, upsert_rows
from pipeline.projection import ConsumedEvent
from pipeline.proofs import EdgeKeys
from pipeline.publish import Outgoing
from pipeline.settings import Settings
from pipeline.topics import JPKI_CERTIFICATES, RESIDENT_CHANGES
from pipeline.vault import DataKey, SealedDataError, Vault, batch_vault, open_sealed
from schemas.codes import Origin, Resident
from schemas.envelope import Envelope
from schemas.events.certificates import (
    CertificateIssued,
    CertificateKind,
    CertificateRevoked,
    RevocationReason,
    revocation_event_id,
)
from schemas.events.residents import ResidentRecord
from schemas.sealed import carried_by

log = logging.getLogger("bcl.revoker")


class RevokerProcessor:
    name = "revocations"
    topics: Sequence[str] = (RESIDENT_CHANGES.name, JPKI_CERTIFICATES.name)
    digest_order: Mapping[str, str] = {
        "holdings": "serial",
        "holder_events": "municipality, resident_code, at, reason",
    }

    def __init__(self, vault: Vault, origin: Origin, keys: EdgeKeys) -> None:
        self.vault = vault
        self.origin = origin
        # Revocations that follow a death or a move away are J-LIS's (the JPKI edge's) to make.
        self.keys = keys

    async def apply(self, connection: Connection, events: Sequence[ConsumedEvent]) -> None:
        """Remember the certificates issued and revoked and the revoking changes."""
        issued = [e.payload for e in events if isinstance(e.payload, CertificateIssued)]
        revoked = {e.payload.serial for e in events if isinstance(e.payload, CertificateRevoked)}
        changes = [e for e in events if isinstance(e.payload, ResidentRecord)]
        await insert_new_rows(
            connection,
            "holdings",
            ("serial", "kind", "municipality", "resident_code", "not_before", "revoked"),
            [
                (c.serial, c.kind.value, c.municipality, c.resident_code, c.not_before, False)
                for c in issued
            ],
        )
        if revoked:
            await connection.execute(
                "UPDATE holdings SET revoked = true WHERE serial = ANY($1::text[])", list(revoked)
            )
        if changes:
            await self._record_changes(connection, changes)

    async def decide(
        self, connection: Connection, events: Sequence[ConsumedEvent]
    ) -> Sequence[Outgoing]:
        """Revoke what the batch made due: certificates of its holders issued before a revoking
        change (whichever of the two this batch brought)."""
        touched = {
            (e.payload.municipality, e.payload.resident_code)
            for e in events
            if isinstance(e.payload, CertificateIssued | ResidentRecord)
        }
        return await self._revoke_due(connection, touched)

    async def _record_changes(
        self, connection: Connection, changes: Sequence[ConsumedEvent]
    ) -> None:
        """Store the basic four (as MACs) and the revoking changes of this batch."""
        records = [e.payload_as(ResidentRecord) for e in changes]
        residents = list({_resident(record) for record in records})
        keys = await self.vault.data_keys_for(connection, residents, create=False)
        stored = {
            (row["municipality"], row["resident_code"]): bytes(row["basic_four"])
            for row in await connection.fetch(
                "SELECT municipality, resident_code, basic_four FROM holders "
                "JOIN unnest($1::text[], $2::text[]) AS x(m, c) "
                "ON municipality = x.m AND resident_code = x.c",
                [m for m, _ in residents],
                [c for _, c in residents],
            )
        }
        latest: dict[Resident, bytes] = {}
        found: list[tuple[object, ...]] = []
        for event, record in zip(changes, records, strict=True):
            resident = _resident(record)
            after = _basic_four_mac(keys.get(resident), record, event.envelope)
            before = latest.get(resident, stored.get(resident))
            # Equal MACs under the resident's one key: equal basic four. No MAC before (a first
            # record) or after (purged data) means no comparison, so no change.
            changed = before is not None and after is not None and before != after
            happened = holder_event(record.reason, changed, event.envelope.recorded_at)
            if after is not None:
                latest[resident] = after
            if happened is not None:
                found.append(
                    (*resident, happened.at, happened.reason.value, event.envelope.event_id)
                )
        await upsert_rows(
            connection,
            "holders",
            ("municipality", "resident_code", "basic_four"),
            [(m, c, mac) for (m, c), mac in latest.items()],
            ("municipality", "resident_code"),
        )
        await insert_new_rows(
            connection,
            "holder_events",
            ("municipality", "resident_code", "at", "reason", "event_id"),
            found,
        )

    async def _revoke_due(self, connection: Connection, residents: set[Resident]) -> list[Outgoing]:
        if not residents:
            return []
        holders = list(residents)
        columns = [m for m, _ in holders], [c for _, c in holders]
        history: dict[Resident, list[HolderEvent]] = defaultdict(list)
        for row in await connection.fetch(
            "SELECT municipality, resident_code, at, reason FROM holder_events "
            "JOIN unnest($1::text[], $2::text[]) AS x(m, c) "
            "ON municipality = x.m AND resident_code = x.c",
            *columns,
        ):
            resident = (row["municipality"], row["resident_code"])
            history[resident].append(HolderEvent(row["at"], RevocationReason(row["reason"])))
        if not history:
            return []
        decided: list[Outgoing] = []
        for row in await connection.fetch(
            "SELECT serial, kind, municipality, resident_code, not_before FROM holdings "
            "JOIN unnest($1::text[], $2::text[]) AS x(m, c) "
            "ON municipality = x.m AND resident_code = x.c WHERE NOT revoked ORDER BY serial",
            *columns,
        ):
            resident = (row["municipality"], row["resident_code"])
            kind = CertificateKind(row["kind"])
            due = revocation_due(kind, row["not_before"], history.get(resident, ()))
            if due is not None:
                decided.append(self._revocation(row["serial"], kind, resident, due))
        await connection.execute(
            "UPDATE holdings SET revoked = true WHERE serial = ANY($1::text[])",
            [o.key for o in decided],
        )
        return decided

    def _revocation(
        self, serial: str, kind: CertificateKind, resident: Resident, due: HolderEvent
    ) -> Outgoing:
        payload = CertificateRevoked(serial=serial, kind=kind, reason=due.reason, revoked_at=due.at)
        envelope = self.keys.prove(
            "jpki",
            Envelope.new(
                "certificate.revoked",
                payload,
                origin=self.origin,
                source="jpki",
                occurred_at=due.at,
                municipality=resident[0],
                event_id=revocation_event_id(payload),
            ),
        )
        return Outgoing(JPKI_CERTIFICATES.name, serial, envelope)


def _resident(record: ResidentRecord) -> Resident:
    return (record.municipality, record.resident_code)


def _basic_four_mac(
    key: DataKey | None, record: ResidentRecord, envelope: Envelope
) -> bytes | None:
    if key is None:
        return None  # purged: nothing of theirs can be read, nor needs revoking any more
    try:
        personal = open_sealed(key, record.personal, carried_by(envelope, *_resident(record)))
    except SealedDataError as error:
        log.error("a change of a resident of %s cannot be opened: %s", record.municipality, error)
        return None
    return hmac.new(key.key, orjson.dumps(basic_four(personal)), hashlib.sha256).digest()


def make(settings: Settings) -> RevokerProcessor:
    return RevokerProcessor(batch_vault(settings), settings.center, EdgeKeys.of(settings))
