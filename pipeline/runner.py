"""The projection runner: applies a batch of log records to a projection exactly once in effect.

Kafka's committed offsets are only a hint here. The truth about what a projection has applied is
its tracking row ``(cluster, topic, partition) → last_offset``, written in the same Postgres
transaction as the projection rows. Whatever feeds the runner (the live follower, the start-up
catch-up, a replay) can therefore redeliver, skip ahead or restart at any moment.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol
from uuid import UUID, uuid4

import asyncpg
from aiokafka import TopicPartition

from pipeline.database import Connection
from pipeline.database import quote_ident as _q
from pipeline.deadletters import DeadLetter, DeadLetterSink
from pipeline.projection import (
    ConsumedEvent,
    Processor,
    Projection,
    RawRecord,
    WaitsForSources,
)
from pipeline.proofs import EdgeKeys, Unauthenticated
from pipeline.publish import Outgoing
from schemas.codec import EventDecodeError, decode_event, encode_event

Decoded = ConsumedEvent | DeadLetter
# What the database refuses because of the data a batch holds, as opposed to its own state
# (a lost connection, a deadlock): the batch is split to find the events (``_isolate``).
POISON = (
    asyncpg.DataError,
    asyncpg.IntegrityConstraintViolationError,
    asyncpg.ProgramLimitExceededError,
)


class Publisher(Protocol):
    """Where a processor's decisions go: ``pipeline.publish.Appender`` on a real log."""

    async def floors_of(self, messages: Sequence[Outgoing]) -> list[int]:
        """Each message's floor: the offset of its partition at or after which it will land."""

    async def append(
        self, messages: Sequence[Outgoing], *, landed_from: Mapping[UUID, int] | None = None
    ) -> int:
        """Put the messages on the log exactly once; ``landed_from`` names those a previous
        send may have written, with their floors."""


class GapReader(Protocol):
    async def read_range(self, tp: TopicPartition, start: int, end: int) -> list[RawRecord]:
        """Records of ``tp`` with ``start <= offset < end``."""


@dataclass
class BatchResult:
    applied: int = 0
    skipped: int = 0
    dead_lettered: int = 0
    gap_filled: int = 0
    seconds: float = 0.0
    last_offsets: dict[TopicPartition, int] = field(default_factory=dict)

    def then(self, later: BatchResult) -> BatchResult:
        """This batch's result followed by a later one's, as one."""
        return BatchResult(
            applied=self.applied + later.applied,
            skipped=self.skipped + later.skipped,
            dead_lettered=self.dead_lettered + later.dead_lettered,
            gap_filled=self.gap_filled + later.gap_filled,
            seconds=self.seconds + later.seconds,
            last_offsets=self.last_offsets | later.last_offsets,
        )


class ProjectionRunner:
    def __init__(
        self,
        projection: Projection,
        pool: asyncpg.Pool,
        *,
        cluster: str,
        dead_letters: DeadLetterSink,
        keys: EdgeKeys,
        gap_reader: GapReader | None = None,
        schema: str | None = None,
        publisher: Publisher | None = None,
        is_local: Callable[[str], bool] = lambda topic: True,
    ) -> None:
        """``keys`` check each event's proof of origin (``pipeline.proofs``).
        ``publisher`` sends a processor's decisions. Without one (a replay into shadow tables,
        whose decisions are in the log already) the processor only records, never decides.
        ``is_local`` tells a topic of this center's own from another center's mirrored copy:
        what entered at another center is decided there, and its decisions arrive mirrored."""
        self.projection = projection
        self.is_local = is_local
        self.pool = pool
        self.cluster = cluster
        self.schema = schema or projection.name
        self.dead_letters = dead_letters
        self.keys = keys
        self.gap_reader = gap_reader
        self.publisher = publisher
        # Who wrote an outbox row: rows of another runner, or of a send of this one that did
        # not commit its end, may be on the log already.
        self.instance = uuid4()
        self._maybe_sent: set[int] = set()

    async def tracked_offsets(self) -> dict[TopicPartition, int]:
        async with self.pool.acquire() as connection:
            rows = await connection.fetch(
                f"SELECT topic, partition, last_offset FROM {_q(self.schema)}.projection_offsets "
                "WHERE cluster = $1",
                self.cluster,
            )
        return {TopicPartition(r["topic"], r["partition"]): r["last_offset"] for r in rows}

    async def track_at_most(self, last: Mapping[TopicPartition, int]) -> None:
        """Move tracking back so that each partition's offsets after ``last`` are read again."""
        async with self.pool.acquire() as connection:
            await self._move_tracking(connection, last, back=True)

    def decode(self, records: Sequence[RawRecord]) -> list[Decoded]:
        """``records`` decoded for this runner's projection (``decode_records``)."""
        return decode_records(records, self.projection.name, self.keys)

    async def apply_records(self, records: Sequence[RawRecord]) -> BatchResult:
        """Decode and apply one batch; see ``apply_decoded``."""
        return await self.apply_decoded(self.decode(records))

    async def apply_decoded(self, items: Sequence[Decoded]) -> BatchResult:
        """Apply one decoded batch in one transaction (`_apply`).

        Once more if a kept prepared statement met tables of another shape (a replay swapped
        them in under this worker; asyncpg has dropped the statement), or if Postgres broke a
        deadlock with another feeder of the projection by ending this transaction: the batch was
        rolled back whole.
        """
        try:
            return await self._apply(items)
        except (asyncpg.InvalidCachedStatementError, asyncpg.DeadlockDetectedError):
            return await self._apply(items)
        except POISON as error:
            return await self._isolate(items, error)

    async def _isolate(self, items: Sequence[Decoded], error: asyncpg.PostgresError) -> BatchResult:
        """Apply a batch that the database refused for what it holds (a NUL byte in a text, a
        value too large for an index) in halves, down to the events it refuses, which become
        dead letters with its reason: one bad event never stops a projection."""
        if len(items) == 1:
            [item] = items
            if isinstance(item, DeadLetter):
                raise error  # even recording it fails: not this event's doing
            letter = DeadLetter(
                topic=item.topic,
                partition=item.partition,
                offset=item.offset,
                key=item.key,
                value=encode_event(item.envelope),
                headers={"type": item.envelope.type},
                reason="refused_by_database",
                detail=f"{error.sqlstate}: {error}",
                projection=self.projection.name,
            )
            return await self._apply([letter])
        half = len(items) // 2
        first = await self.apply_decoded(items[:half])
        return first.then(await self.apply_decoded(items[half:]))

    async def _apply(self, items: Sequence[Decoded]) -> BatchResult:
        """Apply one decoded batch in one transaction.

        Decoding (CPU work) happens before, outside the transaction, so a feeder can decode the
        next batch while Postgres writes this one.

        0. Live, a processor that decides from other projections' tables waits for them to
           reach the log's end (``WaitsForSources``), before any row is locked.
        1. Open a transaction with ``search_path`` on the projection's schema. A batch that
           decides nothing commits without waiting for its WAL flush: what a crash loses of it
           is read from the log again. A processor's batch waits: its decisions exist once.
        2. Lock the tracking rows of the batch's partitions (creating missing ones at -1), so
           two feeders of the same projection serialize here.
        3. Drop items at or below the tracked offset: they were applied before.
        4. Fill any gap between the tracked offset and the batch's first item from the log.
        5. Hand the events to the projection's ``apply``.
        6. Live, a processor decides what entered at this center; its decisions go to its
           outbox, in this transaction, so they exist exactly when the batch counts as applied.
        7. Record the dead letters (undecodable or invalid records) and publish them.
        8. Move each tracking row forward to the last offset seen in its partition.
        9. Commit: rows, decisions, dead letters and tracking land together or not at all.
        10. Publish the outbox and empty it. A crash before this leaves the decisions in the
            outbox, and the next start publishes them (``flush_outbox``): each is decided once
            and on the log once.
        """
        result = BatchResult()
        if not items:
            return result
        started = time.perf_counter()
        partitions = sorted({(i.topic, i.partition) for i in items})
        decided = False
        # 0.
        if self.deciding and isinstance(self.projection, WaitsForSources):
            await self.projection.wait_for_sources(
                [i for i in items if isinstance(i, ConsumedEvent) and self.is_local(i.topic)]
            )
        # 1.
        async with self.pool.acquire() as connection, connection.transaction():
            await connection.execute(
                f"SET LOCAL search_path TO {_q(self.schema)}, public"
                + ("" if self.deciding else "; SET LOCAL synchronous_commit TO off")
            )
            # 2.
            tracked = await self._lock_tracking(connection, partitions)
            # 3.
            fresh = _unseen(items, tracked)
            result.skipped = len(items) - len(fresh)
            # 4.
            fills = decode_records(
                await self._fill_gaps(fresh, tracked), self.projection.name, self.keys
            )
            result.gap_filled = len(fills)
            batch = [*fills, *fresh]
            if not batch:
                return result
            events = [i for i in batch if isinstance(i, ConsumedEvent)]
            letters = [i for i in batch if isinstance(i, DeadLetter)]
            # 5.
            if events:
                await self.projection.apply(connection, events)
            # 6.
            local = [e for e in events if self.is_local(e.topic)]
            if local and self.deciding:
                assert isinstance(self.projection, Processor)
                decided = await self._to_outbox(
                    connection, await self.projection.decide(connection, local)
                )
            # 7.
            if letters:
                await self.dead_letters.record(connection, self.cluster, letters)
            # 8.
            result.last_offsets = _last_offsets(batch)
            await self._move_tracking(connection, result.last_offsets)
        # 9. (leaving the transaction block commits)
        # 10.
        if decided:
            await self.flush_outbox()
        result.applied = len(events)
        result.dead_lettered = len(letters)
        result.seconds = time.perf_counter() - started
        return result

    @property
    def deciding(self) -> bool:
        return self.publisher is not None and isinstance(self.projection, Processor)

    async def flush_outbox(self) -> int:
        """Publish the decisions committed but not yet sent, oldest first; returns how many.

        Rows are locked while they are sent, so two runners of one processor never send the same
        decision at once. A row that an earlier send may have written (another runner's, or
        one whose delete did not commit) is looked for on the log from its floor first, so a
        crash anywhere here sends nothing twice.
        """
        if not self.deciding:
            return 0
        assert self.publisher is not None
        async with self.pool.acquire() as connection, connection.transaction():
            # Deleted as they are taken: the delete commits only once they are published.
            rows = await connection.fetch(
                "DELETE FROM platform.outbox WHERE position IN (SELECT position FROM "
                "platform.outbox WHERE processor = $1 FOR UPDATE SKIP LOCKED) "
                "RETURNING position, topic, key, envelope, floor, writer",
                self.projection.name,
            )
            if not rows:
                return 0
            rows = sorted(rows, key=lambda row: row["position"])
            messages = [
                Outgoing(
                    row["topic"],
                    row["key"],
                    decode_event(row["envelope"]).envelope,
                    row["envelope"],
                )
                for row in rows
            ]
            maybe_sent = {
                message.envelope.event_id: row["floor"]
                for row, message in zip(rows, messages, strict=True)
                if row["writer"] != self.instance or row["position"] in self._maybe_sent
            }
            positions = {row["position"] for row in rows}
            self._maybe_sent |= positions
            await self.publisher.append(messages, landed_from=maybe_sent or None)
        self._maybe_sent -= positions
        return len(rows)

    async def _to_outbox(self, connection: Connection, decided: Sequence[Outgoing]) -> bool:
        if not decided:
            return False
        assert self.publisher is not None
        floors = await self.publisher.floors_of(decided)
        await connection.executemany(
            "INSERT INTO platform.outbox (processor, topic, key, envelope, floor, writer) "
            "VALUES ($1, $2, $3, $4, $5, $6)",
            [
                (
                    self.projection.name,
                    o.topic,
                    o.key,
                    o.encoded(),
                    floor,
                    self.instance,
                )
                for o, floor in zip(decided, floors, strict=True)
            ],
        )
        return True

    async def _lock_tracking(
        self, connection: Connection, partitions: Sequence[tuple[str, int]]
    ) -> dict[tuple[str, int], int]:
        topics = [t for t, _ in partitions]
        numbers = [p for _, p in partitions]
        locking = (
            "SELECT o.topic, o.partition, o.last_offset FROM projection_offsets o "
            "JOIN unnest($2::text[], $3::int[]) AS x(t, p) ON o.topic = x.t AND o.partition = x.p "
            "WHERE o.cluster = $1 ORDER BY o.topic, o.partition FOR UPDATE OF o"
        )
        rows = await connection.fetch(locking, self.cluster, topics, numbers)
        if len(rows) < len(partitions):  # a partition read for the first time
            await connection.execute(
                "INSERT INTO projection_offsets (cluster, topic, partition, last_offset) "
                "SELECT $1, t, p, -1 FROM unnest($2::text[], $3::int[]) AS x(t, p) "
                "ON CONFLICT DO NOTHING",
                self.cluster,
                topics,
                numbers,
            )
            rows = await connection.fetch(locking, self.cluster, topics, numbers)
        return {(r["topic"], r["partition"]): r["last_offset"] for r in rows}

    async def _move_tracking(
        self, connection: Connection, last: Mapping[TopicPartition, int], *, back: bool = False
    ) -> None:
        """Set each partition's tracked offset to ``last``: only forward, or only ``back``."""
        direction = "<" if back else ">"
        await connection.execute(
            f"UPDATE {_q(self.schema)}.projection_offsets o "
            "SET last_offset = x.o, updated_at = now() "
            "FROM unnest($2::text[], $3::int[], $4::bigint[]) AS x(t, p, o) "
            "WHERE o.cluster = $1 AND o.topic = x.t AND o.partition = x.p "
            f"AND x.o {direction} o.last_offset",
            self.cluster,
            [tp.topic for tp in last],
            [tp.partition for tp in last],
            list(last.values()),
        )

    async def _fill_gaps(
        self, fresh: Sequence[Decoded], tracked: Mapping[tuple[str, int], int]
    ) -> list[RawRecord]:
        first: dict[tuple[str, int], int] = {}
        for record in fresh:
            first.setdefault((record.topic, record.partition), record.offset)
        fills: list[RawRecord] = []
        for (topic, partition), offset in first.items():
            expected = tracked[(topic, partition)] + 1
            if offset > expected:
                if self.gap_reader is None:
                    raise RuntimeError(
                        f"{self.projection.name}: {topic}[{partition}] skips from {expected} to "
                        f"{offset} and no gap reader is configured"
                    )
                tp = TopicPartition(topic, partition)
                fills.extend(await self.gap_reader.read_range(tp, expected, offset))
        return fills


async def discard_undelivered_decisions(connection: Connection) -> int:
    """Empty every processor's outbox; returns how many decisions it held. For a center whose
    log was lost: what was decided but never published went with it (see infra.failover)."""
    deleted: str = await connection.execute("DELETE FROM platform.outbox")
    return int(deleted.rsplit(" ", 1)[1])


def _unseen(items: Iterable[Decoded], tracked: Mapping[tuple[str, int], int]) -> list[Decoded]:
    high = dict(tracked)
    fresh: list[Decoded] = []
    for record in items:
        coordinates = (record.topic, record.partition)
        if record.offset > high[coordinates]:
            fresh.append(record)
            high[coordinates] = record.offset
    return fresh


def decode_records(records: Iterable[RawRecord], projection: str, keys: EdgeKeys) -> list[Decoded]:
    """Each record as an event proven by an edge with the right to publish it, or as a dead
    letter saying why it is not one. A proven event is built without validating it again
    (``EdgeKeys.decode_proven``); anything else is decoded in full, which finds what is wrong."""
    decoded: list[Decoded] = []
    for record in records:
        if record.value is None:
            decoded.append(
                DeadLetter.of(record, "empty_value", "the message has no value", projection)
            )
            continue
        proven = keys.decode_proven(record.value)
        if proven is not None:
            envelope, build_payload = proven
            decoded.append(
                ConsumedEvent(
                    record.topic,
                    record.partition,
                    record.offset,
                    record.key,
                    envelope,
                    build_payload=build_payload,
                )
            )
            continue
        try:
            event = decode_event(record.value)
        except EventDecodeError as error:
            decoded.append(DeadLetter.of(record, error.reason, error.detail, projection))
            continue
        try:
            keys.check(record.value, event.envelope)
        except Unauthenticated as error:
            decoded.append(DeadLetter.of(record, "unauthenticated", str(error), projection))
            continue
        decoded.append(
            ConsumedEvent(
                topic=record.topic,
                partition=record.partition,
                offset=record.offset,
                key=record.key,
                envelope=event.envelope,
                payload=event.payload,
            )
        )
    return decoded


def _last_offsets(records: Iterable[Decoded]) -> dict[TopicPartition, int]:
    last: dict[TopicPartition, int] = {}
    for record in records:
        tp = TopicPartition(record.topic, record.partition)
        if record.offset > last.get(tp, -1):
            last[tp] = record.offset
    return last
