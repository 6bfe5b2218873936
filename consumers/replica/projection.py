"""The BCL replica (副本): each municipality's resident register, rebuilt from its pushes.

Every change is kept, effective-dated (``changes``); the current record (``residents``) is the
change the replica rules pick. Seal registrations, tax facts and batch receipts ride along.
Personal data arrives sealed; it is opened here with the resident's data key, and a resident
whose key was destroyed (purged after the retention) is skipped, live or in a replay.
"""

from __future__ import annotations

import logging
import operator
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date
from typing import Any

from consumers.replica.rules import RecordedChange, current_change, effective_date_of, status_of
from pipeline.database import Connection, insert_new_rows, upsert_rows
from pipeline.projection import BulkReplay, ConsumedEvent
from pipeline.settings import Settings
from pipeline.topics import RESIDENT_CHANGES
from pipeline.vault import DataKey, SealedDataError, Vault, batch_vault, open_sealed
from schemas.codes import Resident
from schemas.envelope import Envelope
from schemas.events.residents import (
    BatchAccepted,
    ChangeReason,
    PersonalData,
    ResidentPurged,
    ResidentRecord,
    SealChanged,
    TaxAmounts,
    TaxRecorded,
)
from schemas.sealed import carried_by

log = logging.getLogger("bcl.replica")


# The columns a change and a current record share, in table order.
CHANGE_COLUMNS = (
    "municipality", "resident_code", "sequence", "reason", "effective_date",
    "death_date_unknown", "household_number", "relationship", "name", "name_kana",
    "birth_date", "sex", "address", "previous_address", "head_of_household", "resident_since",
    "address_since", "notified_on", "personal", "batch", "line", "event_id", "recorded_at",
)  # fmt: skip
RESIDENT_COLUMNS = (
    *CHANGE_COLUMNS, "active", "removed_on", "purge_after", "last_sequence",
    "latest_effective_date",
)  # fmt: skip


@dataclass(frozen=True)
class _Current:
    """What the replica keeps of a resident between batches."""

    change: RecordedChange  # dated: its effective date resolved
    last_sequence: int
    latest_effective_date: date


class ReplicaProjection:
    name = "replica"
    topics: Sequence[str] = (RESIDENT_CHANGES.name,)
    digest_order: Mapping[str, str] = {
        "changes": "municipality, resident_code, sequence",
        "residents": "municipality, resident_code",
        "seals": "municipality, registration_number",
        "tax_facts": "municipality, resident_code, fiscal_year",
        "batches": "municipality, sequence",
        "purged": "municipality, resident_code",
    }

    # A resident's events share a key, so a partition; every row is a resident's or a push
    # batch's, whose receipt is one event.
    bulk_replay = BulkReplay(partitions_apart=True)

    def __init__(self, vault: Vault) -> None:
        self.vault = vault

    async def apply(self, connection: Connection, events: Sequence[ConsumedEvent]) -> None:
        records = [e for e in events if isinstance(e.payload, ResidentRecord)]
        taxes = [e for e in events if isinstance(e.payload, TaxRecorded)]
        sealed_owners = [
            (p.municipality, p.resident_code)
            for e in [*records, *taxes]
            if isinstance(p := e.payload, ResidentRecord | TaxRecorded)
        ]
        keys = (
            await self.vault.data_keys_for(connection, sealed_owners, create=False)
            if sealed_owners
            else {}
        )
        await self._apply_changes(connection, records, keys)
        await self._apply_seals(
            connection, [e for e in events if isinstance(e.payload, SealChanged)]
        )
        await self._apply_taxes(connection, taxes, keys)
        await insert_new_rows(
            connection,
            "batches",
            ("municipality", "sequence", "file_sha256", "rows", "events", "full_snapshot",
             "accepted_at"),
            [
                (p.municipality, p.sequence, p.file_sha256, p.rows, p.events, p.full,
                 e.envelope.recorded_at)
                for e in events
                if isinstance(p := e.payload, BatchAccepted)
            ],
        )  # fmt: skip
        await self._apply_purges(
            connection, [e for e in events if isinstance(e.payload, ResidentPurged)]
        )

    async def _apply_changes(
        self,
        connection: Connection,
        events: Sequence[ConsumedEvent],
        keys: Mapping[Resident, DataKey | None],
    ) -> None:
        by_resident: dict[Resident, list[RecordedChange]] = defaultdict(list)
        for event in events:
            payload = event.payload_as(ResidentRecord)
            resident = (payload.municipality, payload.resident_code)
            row = _change_row(event, payload, keys.get(resident))
            if row is None:
                continue
            by_resident[resident].append(
                RecordedChange(
                    sequence=event.envelope.sequence or 0,
                    reason=payload.reason,
                    effective_date=payload.effective_date,
                    death_date_unknown=payload.death_date_unknown,
                    state=row,
                )
            )
        if not by_resident:
            return
        stored = await _current_records(connection, list(by_resident))
        history_rows: list[tuple[object, ...]] = []
        resident_rows: list[tuple[object, ...]] = []
        for resident, changes in by_resident.items():
            changes.sort(key=lambda c: c.sequence)
            current = stored.get(resident)
            if current is not None and changes[0].sequence <= current.last_sequence:
                # Out of order or redelivered: decide from the whole stored history instead.
                current, stored_sequences = await _from_history(connection, resident)
                changes = [c for c in changes if c.sequence not in stored_sequences]
                if not changes:
                    continue
            dated, current = _advance(current, changes)
            history_rows.extend(_change_values(c.state) for c in dated)
            resident_rows.append(_resident_values(current))
        await insert_new_rows(connection, "changes", CHANGE_COLUMNS, history_rows)
        await upsert_rows(
            connection,
            "residents",
            RESIDENT_COLUMNS,
            resident_rows,
            ("municipality", "resident_code"),
        )

    async def _apply_seals(self, connection: Connection, events: Sequence[ConsumedEvent]) -> None:
        latest: dict[tuple[str, str], tuple[int, tuple[object, ...]]] = {}
        for event in events:
            p = event.payload_as(SealChanged)
            sequence = event.envelope.sequence or 0
            key = (p.municipality, p.registration_number)
            if key not in latest or sequence > latest[key][0]:
                latest[key] = sequence, (
                    p.municipality, p.registration_number, p.resident_code, p.status.value,
                    p.effective_date, sequence,
                )  # fmt: skip
        await upsert_rows(
            connection,
            "seals",
            ("municipality", "registration_number", "resident_code", "status", "effective_date",
             "sequence"),
            [row for _, row in latest.values()],
            ("municipality", "registration_number"),
            newer="sequence",
        )  # fmt: skip

    async def _apply_taxes(
        self,
        connection: Connection,
        events: Sequence[ConsumedEvent],
        keys: Mapping[Resident, DataKey | None],
    ) -> None:
        latest: dict[tuple[str, str, int], tuple[int, tuple[object, ...]]] = {}
        for event in events:
            p = event.payload_as(TaxRecorded)
            key = keys.get((p.municipality, p.resident_code))
            amounts = _open(
                key, p.amounts, event.envelope, (p.municipality, p.resident_code), TaxAmounts
            )
            if amounts is None:
                continue
            sequence = event.envelope.sequence or 0
            slot = (p.municipality, p.resident_code, p.fiscal_year)
            if slot not in latest or sequence > latest[slot][0]:
                latest[slot] = sequence, (
                    p.municipality, p.resident_code, p.fiscal_year, amounts.income_yen,
                    amounts.assessed_yen, amounts.paid_yen, sequence,
                )  # fmt: skip
        await upsert_rows(
            connection,
            "tax_facts",
            ("municipality", "resident_code", "fiscal_year", "income_yen", "assessed_yen",
             "paid_yen", "sequence"),
            [row for _, row in latest.values()],
            ("municipality", "resident_code", "fiscal_year"),
            newer="sequence",
        )  # fmt: skip

    async def _apply_purges(self, connection: Connection, events: Sequence[ConsumedEvent]) -> None:
        purges = [e.payload_as(ResidentPurged) for e in events]
        if not purges:
            return
        municipalities = [p.municipality for p in purges]
        codes = [p.resident_code for p in purges]
        for table in ("changes", "residents", "tax_facts", "seals"):
            await connection.execute(
                f"DELETE FROM {table} t USING unnest($1::text[], $2::text[]) AS x(m, r) "
                "WHERE t.municipality = x.m AND t.resident_code = x.r",
                municipalities,
                codes,
            )
        await insert_new_rows(
            connection,
            "purged",
            ("municipality", "resident_code", "removed_on", "purged_on"),
            [(p.municipality, p.resident_code, p.removed_on, p.purged_on) for p in purges],
        )


def _advance(
    current: _Current | None, changes: Sequence[RecordedChange]
) -> tuple[list[RecordedChange], _Current]:
    """Date each new change, then pick the current record from the old one and the new ones."""
    latest = current.latest_effective_date if current else None
    dated: list[RecordedChange] = []
    for change in changes:
        if change.effective_date is None:
            # A death of unknown date: dated from the latest change recorded before it.
            anchor = (
                [RecordedChange(0, ChangeReason.EX_OFFICIO_CORRECTION, latest)] if latest else []
            )
            effective = effective_date_of(change, anchor)
            change = replace(
                change,
                effective_date=effective,
                death_date_unknown=False,
                state={**change.state, "effective_date": effective},
            )
        assert change.effective_date is not None
        latest = max(latest, change.effective_date) if latest else change.effective_date
        dated.append(change)
    candidates = [current.change, *dated] if current else dated
    winner = current_change(candidates)
    assert winner is not None  # candidates are never empty
    assert latest is not None
    return dated, _Current(
        change=winner,
        last_sequence=max(c.sequence for c in candidates),
        latest_effective_date=latest,
    )


def _resident_values(current: _Current) -> tuple[object, ...]:
    status = status_of([current.change])
    return (
        *_change_values(current.change.state),
        status.active,
        status.removed_on,
        status.purge_after,
        current.last_sequence,
        current.latest_effective_date,
    )


_change_values = operator.itemgetter(*CHANGE_COLUMNS)


def _change_row(
    event: ConsumedEvent, payload: ResidentRecord, key: DataKey | None
) -> dict[str, object] | None:
    personal = _open(
        key,
        payload.personal,
        event.envelope,
        (payload.municipality, payload.resident_code),
        PersonalData,
    )
    if personal is None:
        return None
    return {
        "municipality": payload.municipality,
        "resident_code": payload.resident_code,
        "sequence": event.envelope.sequence or 0,
        "reason": payload.reason.value,
        "effective_date": payload.effective_date,
        "death_date_unknown": payload.death_date_unknown,
        "household_number": payload.household_number,
        "relationship": payload.relationship,
        "name": personal.name,
        "name_kana": personal.name_kana,
        "birth_date": personal.birth_date,
        "sex": personal.sex,
        "address": personal.address,
        "previous_address": personal.previous_address,
        "head_of_household": personal.head_of_household,
        "resident_since": personal.resident_since,
        "address_since": personal.address_since,
        "notified_on": personal.notified_on,
        "personal": payload.personal.model_dump_json(),
        "batch": payload.pushed.batch,
        "line": payload.pushed.line,
        "event_id": event.envelope.event_id,
        "recorded_at": event.envelope.recorded_at,
    }


def _open(
    key: DataKey | None, sealed: Any, envelope: Envelope, resident: Resident, model: Any
) -> Any:
    if key is None:
        # The resident's data key is gone: they were purged, and so is everything of theirs.
        return None
    try:
        return model.model_validate(open_sealed(key, sealed, carried_by(envelope, *resident)))
    except SealedDataError as error:
        log.error(
            "sealed data of a resident of %s in %s %s cannot be opened: %s",
            resident[0],
            envelope.type,
            envelope.event_id,
            error,
        )
        return None


async def _current_records(
    connection: Connection, residents: Sequence[Resident]
) -> dict[Resident, _Current]:
    rows = await connection.fetch(
        f"SELECT {', '.join(RESIDENT_COLUMNS)} FROM residents r "
        "JOIN unnest($1::text[], $2::text[]) AS x(m, c) "
        "ON r.municipality = x.m AND r.resident_code = x.c",
        [m for m, _ in residents],
        [c for _, c in residents],
    )
    return {
        (row["municipality"], row["resident_code"]): _Current(
            change=_stored_change(row),
            last_sequence=row["last_sequence"],
            latest_effective_date=row["latest_effective_date"],
        )
        for row in rows
    }


def _stored_change(row: Any) -> RecordedChange:
    state = {c: row[c] for c in CHANGE_COLUMNS}
    return RecordedChange(
        sequence=row["sequence"],
        reason=ChangeReason(row["reason"]),
        effective_date=row["effective_date"],
        state=state,
    )


async def _from_history(connection: Connection, resident: Resident) -> tuple[_Current, set[int]]:
    """The current record decided from every stored change, and the sequences already stored."""
    rows = await connection.fetch(
        f"SELECT {', '.join(CHANGE_COLUMNS)} FROM changes "
        "WHERE municipality = $1 AND resident_code = $2",
        *resident,
    )
    history = [_stored_change(row) for row in rows]
    winner = current_change(history)
    assert winner is not None
    current = _Current(
        change=winner,
        last_sequence=max(c.sequence for c in history),
        latest_effective_date=max(c.effective_date for c in history if c.effective_date),
    )
    return current, {c.sequence for c in history}


def make(settings: Settings) -> ReplicaProjection:
    return ReplicaProjection(batch_vault(settings))
