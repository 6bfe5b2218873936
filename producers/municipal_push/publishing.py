"""A batch's rows become proven resident events on the log; a full snapshot is compared with
the replica first."""

from __future__ import annotations

import asyncio
import base64
import multiprocessing
import os
import uuid
from collections.abc import AsyncIterator, Callable, Generator
from concurrent.futures import ProcessPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from multiprocessing.sharedctypes import Synchronized
from pathlib import Path
from typing import IO, Any

import asyncpg
import orjson
from aiokafka import AIOKafkaProducer

from pipeline.catchup import Share, refresh
from pipeline.collection import collect_seldom
from pipeline.database import Connection, create_pool
from pipeline.kafka import producer
from pipeline.partitioning import partition_for
from pipeline.projection import load_projection
from pipeline.proofs import EdgeKeys
from pipeline.publish import Outgoing, proven_fields, publish, publish_many
from pipeline.sealed_files import SealedLines
from pipeline.settings import Settings
from pipeline.topics import RESIDENT_CHANGES
from pipeline.vault import DataKey, SealedDataError, Vault, load_kek, open_sealed, seal
from producers.municipal_push.batch import (
    AMOUNT_FIELDS,
    CHANGES_FILE,
    LINES_PER_BATCH,
    MAX_LINE,
    PERSONAL_FIELDS,
    RECEIPT_LINE,
    ROWS_FILE,
    Batch,
    PushInterrupted,
)
from schemas.calendar import JST
from schemas.events.residents import (
    REMOVAL_REASONS,
    BatchAccepted,
    ChangeReason,
    change_event_type,
)
from schemas.ids import derived_event_id
from schemas.registry import REGISTRY
from schemas.sealed import Sealed, sealed_context

# Rows whose data keys are fetched with one vault call, and whose replica state one query reads.
CHUNK_ROWS = 5_000
# A batch of at least this many events is published from two processes (``_on_both_cores``).
# The second takes about 1.5 s to start, in which one process publishes some 10,000.
SECOND_PROCESS_FROM = 50_000
_Keys = dict[tuple[str, str], DataKey | None]

_REMOVALS = frozenset(reason.value for reason in REMOVAL_REASONS)


@dataclass
class Publisher:
    settings: Settings
    pool: asyncpg.Pool
    vault: Vault
    client: AIOKafkaProducer[bytes, bytes]
    # Held, not looked up per row: the push intake proves every event it publishes.
    keys: EdgeKeys = field(init=False)

    def __post_init__(self) -> None:
        self.keys = EdgeKeys.of(self.settings)

    async def publish(
        self, batch: Batch, changes: Path, count: int, sent: Callable[[int], None]
    ) -> int:
        """Publish the ``count`` events of ``changes``, then the batch's receipt."""
        if count >= SECOND_PROCESS_FROM:
            events = await self._on_both_cores(batch, changes, sent)
        else:
            events = await publish_many(
                self.settings, self.client, self._events(batch, changes), on_sent=sent
            )
        receipt = BatchAccepted(
            municipality=batch.municipality,
            sequence=batch.sequence,
            file_sha256=batch.file_sha256,
            signature=base64.b64encode(batch.signature).decode("ascii"),
            rows=batch.rows,
            events=events,
            full=batch.full,
        )
        await publish(
            self.settings,
            self.client,
            self._outgoing(
                batch,
                RECEIPT_LINE,
                _event_id(batch, RECEIPT_LINE, "receipt"),
                "resident.batch_accepted",
                receipt.model_dump(mode="json"),
                batch.received_at,
                key=f"{batch.municipality}:batch",
            ),
        )
        return events

    def _outgoing(
        self,
        batch: Batch,
        line: int,
        event_id: uuid.UUID,
        event_type: str,
        payload: dict[str, Any],
        occurred_at: datetime,
        *,
        key: str | None = None,
    ) -> Outgoing:
        """The event of ``line`` proven by the municipality's edge, keyed by its resident (or
        ``key``)."""
        edge = f"municipality:{batch.municipality}"
        return proven_fields(
            self.keys,
            edge,
            RESIDENT_CHANGES.name,
            key or f"{batch.municipality}:{payload['resident_code']}",
            {
                "event_id": event_id,
                "type": event_type,
                "version": REGISTRY.current_version(event_type),
                "occurred_at": occurred_at,
                "recorded_at": datetime.now(UTC),
                "origin": self.settings.center,
                "source": edge,
                "municipality": batch.municipality,
                "sequence": _sequence(batch, line),
                "correlation_id": None,
                "causation_id": None,
                "payload": payload,
            },
        )

    async def _on_both_cores(self, batch: Batch, changes: Path, sent: Callable[[int], None]) -> int:
        """Publish the events of half the partitions from here and the other half from a
        second process; returns how many both published.

        Building events is most of a push's CPU, and the halves need no order between them: a
        resident's events share a key, so a partition, so a process, which sends them in the
        file's order.
        """
        spawn = multiprocessing.get_context("spawn")
        theirs_sent: Synchronized[int] = spawn.Value("q", 0)
        mine_sent = 0

        def mine(n: int) -> None:
            nonlocal mine_sent
            mine_sent = n
            sent(mine_sent + theirs_sent.value)

        with ProcessPoolExecutor(
            1, mp_context=spawn, initializer=_count_sent_in, initargs=(theirs_sent,)
        ) as other_process:
            theirs = asyncio.get_running_loop().run_in_executor(
                other_process, _publish_share, self.settings, batch, changes, Share(1, 2)
            )
            try:
                ours = await publish_many(
                    self.settings,
                    self.client,
                    self._events(batch, changes, Share(0, 2)),
                    on_sent=mine,
                )
            except BaseException:
                # Never leave the other half running: it stops here, whatever its outcome.
                await asyncio.gather(theirs, return_exceptions=True)
                raise
            while not theirs.done():
                sent(mine_sent + theirs_sent.value)
                await asyncio.wait([theirs], timeout=0.5)
            events = ours + await theirs
            sent(events)
            return events

    async def _events(
        self, batch: Batch, changes: Path, share: Share | None = None
    ) -> AsyncIterator[Outgoing]:
        """The events of ``changes``, or of those whose partitions are in ``share``."""
        chunks = _entry_chunks(changes, sealed_rows(self.settings, batch.municipality, changes))
        partitions = (
            len(await self.client.partitions_for(self.settings.topic(RESIDENT_CHANGES.name)))
            if share
            else 0
        )

        async def next_chunk() -> tuple[list[dict[str, Any]] | None, _Keys]:
            chunk = await asyncio.to_thread(next, chunks, None)
            if chunk and share:
                chunk = [
                    entry
                    for entry in chunk
                    if share.holds(partition_for(_key(batch, entry).encode(), partitions))
                ]
            # A removal's sealed data is sealed again for the event that carries it.
            sealed_for = [
                (batch.municipality, entry["removal"]["resident_code"])
                if "removal" in entry
                else (batch.municipality, entry["row"]["resident_code"])
                for entry in chunk or ()
                if "removal" in entry or entry["row"]["record"] != "seal"
            ]
            if not sealed_for:
                return chunk, {}
            return chunk, await self.vault.data_keys_for(None, sealed_for, create=True)

        # The next chunk's data keys come from Postgres while this chunk's events are built.
        upcoming = asyncio.create_task(next_chunk())
        try:
            while True:
                chunk, keys = await upcoming
                if chunk is None:
                    return
                upcoming = asyncio.create_task(next_chunk())
                for entry in chunk:
                    yield self._event(batch, entry, keys)
        finally:
            # Let a read in flight finish: the file cannot be closed under a running read.
            await asyncio.gather(upcoming, return_exceptions=True)
            chunks.close()

    def _event(self, batch: Batch, entry: dict[str, Any], keys: _Keys) -> Outgoing:
        # Payloads are built as the JSON they become, not as models dumped back to JSON: that
        # round trip cost a third of the publishing time, and the rows were validated against
        # the same constraints already. Every envelope is still validated, and the tests decode
        # every event published through the codec.
        line: int = entry["line"]
        municipality = batch.municipality
        pushed = {"batch": batch.sequence, "line": line}
        if "removal" in entry:
            removal = entry["removal"]
            key = self._data_key(batch, keys, removal["resident_code"])
            try:
                personal = open_sealed(
                    key, Sealed.model_validate(removal["personal"]), removal["sealed_in"].encode()
                )
            except SealedDataError as error:
                raise PushInterrupted(
                    f"the replica's record of resident {removal['resident_code']} of "
                    f"{municipality} cannot be opened ({error}); rebuild it with "
                    f"`bcl replay replica` and push batch {batch.sequence} again"
                ) from None
            event_id = _event_id(batch, line, "removal")
            carrier = _carrier(batch, line, event_id, "resident.removed", removal["resident_code"])
            payload = {
                "municipality": municipality,
                "resident_code": removal["resident_code"],
                "household_number": removal["household_number"],
                "relationship": removal["relationship"],
                "reason": ChangeReason.EX_OFFICIO_REMOVAL.value,
                "effective_date": removal["effective_date"],
                "death_date_unknown": False,
                "pushed": pushed,
                "personal": _sealed_json(seal(key, personal, carrier)),
            }
            return self._outgoing(
                batch,
                line,
                event_id,
                "resident.removed",
                payload,
                _day_start(date.fromisoformat(removal["effective_date"])),
            )
        row: dict[str, Any] = entry["row"]
        code: str = row["resident_code"]
        if row["record"] == "seal":
            payload = {
                "municipality": municipality,
                "resident_code": code,
                "registration_number": row["seal_number"],
                "status": row["seal_status"],
                "effective_date": row["effective_date"],
                "pushed": pushed,
            }
            return self._outgoing(
                batch,
                line,
                _event_id(batch, line, "seal"),
                "seal.changed",
                payload,
                _day_start(date.fromisoformat(row["effective_date"])),
            )
        key = self._data_key(batch, keys, code)
        if row["record"] == "tax":
            event_id = _event_id(batch, line, "tax")
            aad = _carrier(batch, line, event_id, "tax.recorded", code)
            amounts = {name: row[name] for name in AMOUNT_FIELDS}
            payload = {
                "municipality": municipality,
                "resident_code": code,
                "fiscal_year": row["fiscal_year"],
                "pushed": pushed,
                "amounts": _sealed_json(seal(key, amounts, aad)),
            }
            return self._outgoing(batch, line, event_id, "tax.recorded", payload, batch.received_at)
        effective = row["effective_date"]
        event_type = change_event_type(ChangeReason(row["reason"]))
        event_id = _event_id(batch, line, "resident")
        aad = _carrier(batch, line, event_id, event_type, code)
        payload = {
            "municipality": municipality,
            "resident_code": code,
            "household_number": row["household_number"].ljust(15),
            "relationship": row["relationship"],
            "reason": row["reason"],
            "effective_date": effective,
            "death_date_unknown": row["death_date_unknown"],
            "pushed": pushed,
            "personal": _sealed_json(seal(key, {name: row[name] for name in PERSONAL_FIELDS}, aad)),
        }
        return self._outgoing(
            batch,
            line,
            event_id,
            event_type,
            payload,
            # A death of unknown date happened, as far as anyone knows, when it was received.
            _day_start(date.fromisoformat(effective)) if effective else batch.received_at,
        )

    @staticmethod
    def _data_key(batch: Batch, keys: _Keys, code: str) -> DataKey:
        key = keys.get((batch.municipality, code))
        if key is None:
            raise PushInterrupted(
                f"resident {code} of {batch.municipality} had their data key destroyed "
                f"(retention ended) while batch {batch.sequence} was being published; leave "
                f"their rows out and push the corrected file as batch {batch.sequence}"
            )
        return key

    async def snapshot_changes(self, batch: Batch) -> tuple[Path, int]:
        """The rows of a full snapshot that differ from the replica, then the removals.

        Decided once and kept (``changes.jsonl``): a snapshot interrupted mid-publish must
        publish the same changes again, not a new comparison with a replica that has applied
        part of them.
        """
        changes = batch.folder / CHANGES_FILE
        if changes.exists():
            return changes, await asyncio.to_thread(_count_lines, changes)
        await refresh(self.settings, load_projection("replica", self.settings))
        partial = changes.with_suffix(".partial")
        rows = batch.folder / ROWS_FILE
        file: IO[bytes] = await asyncio.to_thread(partial.open, "wb")
        out = sealed_rows(self.settings, batch.municipality, changes).writer(file)
        count = 0
        last_line = 0
        try:
            async with self.pool.acquire() as connection, connection.transaction():
                replica = _Replica(connection, self.vault, batch.municipality)
                await replica.start()
                chunks = _entry_chunks(rows, sealed_rows(self.settings, batch.municipality, rows))
                try:
                    while (chunk := await asyncio.to_thread(next, chunks, None)) is not None:
                        differing = await replica.differing(chunk)
                        last_line = max(last_line, chunk[-1]["line"])
                        count += len(differing)
                        await asyncio.to_thread(out.writelines, map(_json_line, differing))
                finally:
                    chunks.close()
                assert batch.as_of is not None  # a full snapshot's date
                async for removals in replica.removals(last_line, batch.as_of):
                    if removals[-1]["line"] > MAX_LINE:
                        raise PushInterrupted(
                            f"snapshot batch {batch.sequence} and its removals need more than "
                            f"{MAX_LINE:,} lines; split the register into smaller files"
                        )
                    count += len(removals)
                    await asyncio.to_thread(out.writelines, map(_json_line, removals))
        finally:
            await asyncio.to_thread(file.close)
        await asyncio.to_thread(os.replace, partial, changes)
        return changes, count


# The second process's running count of events sent, for the first to report progress.
_sent_here: Synchronized[int] | None = None


def _count_sent_in(counter: Synchronized[int]) -> None:
    global _sent_here
    _sent_here = counter


def _publish_share(settings: Settings, batch: Batch, changes: Path, share: Share) -> int:
    """In the second process of ``Publisher._on_both_cores``: publish ``share`` of the events."""
    collect_seldom()

    def sent(n: int) -> None:
        if _sent_here is not None:
            _sent_here.value = n

    async def published() -> int:
        async with open_publisher(settings) as publisher:
            events = publisher._events(batch, changes, share)
            return await publish_many(settings, publisher.client, events, on_sent=sent)

    return asyncio.run(published())


@asynccontextmanager
async def open_publisher(settings: Settings) -> AsyncIterator[Publisher]:
    pool = await create_pool(settings, max_size=2)
    try:
        async with producer(settings) as client:
            # A push meets each resident once: the keys of the chunk being built and the one
            # read ahead are all it needs kept (a cached key holds its cipher, some 2.6 KB).
            vault = Vault(pool, load_kek(settings), cache_size=2 * CHUNK_ROWS)
            yield Publisher(settings, pool, vault, client)
    finally:
        await pool.close()


def _key(batch: Batch, entry: dict[str, Any]) -> str:
    """The key of the event of a row or a removal: its resident's."""
    resident = entry["removal"] if "removal" in entry else entry["row"]
    return f"{batch.municipality}:{resident['resident_code']}"


def _event_id(batch: Batch, line: int, kind: str) -> uuid.UUID:
    return derived_event_id(
        batch.received_at, batch.municipality, str(batch.sequence), str(line), kind
    )


def _sequence(batch: Batch, line: int) -> int:
    return batch.sequence * LINES_PER_BATCH + line


def _carrier(batch: Batch, line: int, event_id: uuid.UUID, event_type: str, code: str) -> bytes:
    """The context of the sealed data of the event ``event_id`` for ``line``
    (``schemas.sealed``)."""
    return sealed_context(batch.municipality, code, event_type, event_id, _sequence(batch, line))


def _stored_context(municipality: str, row: asyncpg.Record) -> bytes:
    """The context of a resident's sealed data as the replica keeps it, from the event that
    carried it there."""
    return sealed_context(
        municipality,
        row["resident_code"],
        change_event_type(ChangeReason(row["reason"])),
        row["event_id"],
        row["sequence"],
    )


def _day_start(day: date) -> datetime:
    """The start of the day a change takes effect, in the municipality's time."""
    return datetime.combine(day, time(0), tzinfo=JST)


def _sealed_json(sealed: Sealed) -> dict[str, str]:
    return {"key_id": str(sealed.key_id), "nonce": sealed.nonce, "ciphertext": sealed.ciphertext}


class _Replica:
    """The replica's current state of one municipality, read a chunk of rows at a time."""

    def __init__(self, connection: Connection, vault: Vault, municipality: str) -> None:
        self.connection = connection
        self.vault = vault
        self.municipality = municipality
        self.exists = False

    async def start(self) -> None:
        # Before the first push of all, the replica may not even have its tables: empty.
        self.exists = bool(
            await self.connection.fetchval("SELECT to_regclass('replica.residents') IS NOT NULL")
        )
        if self.exists:
            await self.connection.execute(
                "CREATE TEMP TABLE snapshot_residents (resident_code text NOT NULL) ON COMMIT DROP"
            )

    async def differing(self, chunk: list[dict[str, Any]]) -> list[dict[str, Any]]:
        rows = [entry["row"] for entry in chunk]
        if not self.exists:
            return chunk
        residents = [row["resident_code"] for row in rows if row["record"] == "resident"]
        # Who the snapshot holds, for the removals: in Postgres, not in this process's memory.
        await self.connection.copy_records_to_table(
            "snapshot_residents", records=[(code,) for code in residents]
        )
        stored = await self._residents(residents)
        keys = await self.vault.data_keys_for(
            self.connection, [(self.municipality, code) for code in stored], create=False
        )
        seals = await self._seals([r["seal_number"] for r in rows if r["record"] == "seal"])
        taxes = await self._taxes(
            [r["resident_code"] for r in rows if r["record"] == "tax"],
            [r["fiscal_year"] for r in rows if r["record"] == "tax"],
        )
        differing = []
        for entry in chunk:
            row = entry["row"]
            code = row["resident_code"]
            if row["record"] == "resident":
                same = self._same_resident(
                    row, stored.get(code), keys.get((self.municipality, code))
                )
            elif row["record"] == "seal":
                same = seals.get(row["seal_number"]) == (
                    code,
                    row["seal_status"],
                    date.fromisoformat(row["effective_date"]),
                )
            else:
                same = taxes.get((code, row["fiscal_year"])) == (
                    row["income_yen"],
                    row["assessed_yen"],
                    row["paid_yen"],
                )
            if not same:
                differing.append(entry)
        return differing

    def _same_resident(
        self, row: dict[str, Any], stored: asyncpg.Record | None, key: DataKey | None
    ) -> bool:
        if stored is None or key is None:
            return False
        if stored["active"] == (row["reason"] in _REMOVALS):
            return False
        if (stored["household_number"], stored["relationship"]) != (
            row["household_number"].ljust(15),
            row["relationship"],
        ):
            return False
        try:
            personal = open_sealed(
                key,
                Sealed.model_validate_json(stored["personal"]),
                _stored_context(self.municipality, stored),
            )
        except SealedDataError:
            return False
        return _given(personal) == _given({name: row[name] for name in PERSONAL_FIELDS})

    async def _residents(self, codes: list[str]) -> dict[str, asyncpg.Record]:
        if not codes:
            return {}
        found = await self.connection.fetch(
            "SELECT resident_code, household_number, relationship, active, personal, reason, "
            "event_id, sequence FROM replica.residents "
            "WHERE municipality = $1 AND resident_code = ANY($2::text[])",
            self.municipality,
            codes,
        )
        return {row["resident_code"]: row for row in found}

    async def _seals(self, numbers: list[str]) -> dict[str, tuple[str, str, date]]:
        if not numbers:
            return {}
        found = await self.connection.fetch(
            "SELECT registration_number, resident_code, status, effective_date "
            "FROM replica.seals WHERE municipality = $1 AND registration_number = ANY($2::text[])",
            self.municipality,
            numbers,
        )
        return {
            row["registration_number"]: (row["resident_code"], row["status"], row["effective_date"])
            for row in found
        }

    async def _taxes(
        self, codes: list[str], years: list[int]
    ) -> dict[tuple[str, int], tuple[int, int, int]]:
        if not codes:
            return {}
        found = await self.connection.fetch(
            "SELECT t.resident_code, t.fiscal_year, t.income_yen, t.assessed_yen, t.paid_yen "
            "FROM replica.tax_facts t JOIN unnest($2::text[], $3::int[]) AS x(code, year) "
            "ON t.resident_code = x.code AND t.fiscal_year = x.year WHERE t.municipality = $1",
            self.municipality,
            codes,
            years,
        )
        return {
            (row["resident_code"], row["fiscal_year"]): (
                row["income_yen"],
                row["assessed_yen"],
                row["paid_yen"],
            )
            for row in found
        }

    async def removals(self, last_line: int, as_of: date) -> AsyncIterator[list[dict[str, Any]]]:
        """Residents active in the replica and absent from the snapshot, removed ``as_of`` and
        numbered after its last line, in chunks."""
        if not self.exists:
            return
        line = last_line
        chunk: list[dict[str, Any]] = []
        cursor = self.connection.cursor(
            """
            SELECT r.resident_code, r.household_number, r.relationship, r.personal, r.reason,
                   r.event_id, r.sequence
            FROM replica.residents r
            WHERE r.municipality = $1 AND r.active
              AND NOT EXISTS (SELECT 1 FROM snapshot_residents s
                              WHERE s.resident_code = r.resident_code)
            ORDER BY r.resident_code
            """,
            self.municipality,
        )
        async for row in cursor:
            line += 1
            chunk.append(
                {
                    "line": line,
                    "removal": {
                        "resident_code": row["resident_code"],
                        "household_number": row["household_number"],
                        "relationship": row["relationship"],
                        "effective_date": as_of.isoformat(),
                        "personal": orjson.loads(row["personal"]),
                        "sealed_in": _stored_context(self.municipality, row).decode(),
                    },
                }
            )
            if len(chunk) == CHUNK_ROWS:
                yield chunk
                chunk = []
        if chunk:
            yield chunk


def _given(values: dict[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in values.items() if value is not None}


def _json_line(entry: dict[str, Any]) -> bytes:
    return orjson.dumps(entry) + b"\n"


def _entry_chunks(path: Path, sealed: SealedLines) -> Generator[list[dict[str, Any]], None, None]:
    chunk: list[dict[str, Any]] = []
    for line in sealed.lines(path):
        chunk.append(orjson.loads(line))
        if len(chunk) == CHUNK_ROWS:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def sealed_rows(settings: Settings, municipality: str, file: Path) -> SealedLines:
    """How a batch's rows or changes are kept at rest: sealed under a key of that file."""
    return SealedLines(load_kek(settings), f"push:{municipality}:{file.parent.name}/{file.name}")


def _count_lines(path: Path) -> int:
    with path.open("rb") as entries:
        return sum(1 for _ in entries)
