"""The journal: an append-only archive of every event, for analysts to query with SQL."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import asyncpg
import orjson

from pipeline.database import Connection
from pipeline.projection import ConsumedEvent
from pipeline.settings import Settings
from pipeline.topics import SOURCE_TOPICS

_COLUMNS = (
    "event_id",
    "type",
    "version",
    "origin",
    "source",
    "topic",
    "partition",
    "offset",
    "occurred_at",
    "recorded_at",
    "municipality",
    "sequence",
    "correlation_id",
    "causation_id",
    "payload",
)


class JournalProjection:
    name = "journal"
    topics: Sequence[str] = SOURCE_TOPICS
    digest_order: Mapping[str, str] = {"events": "event_id"}

    async def apply(self, connection: Connection, events: Sequence[ConsumedEvent]) -> None:
        rows = [_row(e) for e in events]
        # Fast path: COPY straight into the archive. An event id already archived (a producer
        # retry can put one event in the log twice) fails the COPY as a whole; then the batch
        # goes through a stage and one INSERT that skips the ids already there.
        try:
            async with connection.transaction():
                await connection.copy_records_to_table("events", records=rows, columns=_COLUMNS)
            return
        except asyncpg.UniqueViolationError:
            pass
        await connection.execute(
            "CREATE TEMP TABLE IF NOT EXISTS journal_stage (LIKE events) ON COMMIT DELETE ROWS"
        )
        await connection.copy_records_to_table("journal_stage", records=rows, columns=_COLUMNS)
        await connection.execute(
            'INSERT INTO events SELECT * FROM journal_stage ORDER BY topic, partition, "offset" '
            "ON CONFLICT (event_id) DO NOTHING"
        )


def _row(event: ConsumedEvent) -> tuple[object, ...]:
    envelope = event.envelope
    return (
        envelope.event_id,
        envelope.type,
        envelope.version,
        envelope.origin,
        envelope.source,
        event.topic,
        event.partition,
        event.offset,
        envelope.occurred_at,
        envelope.recorded_at,
        envelope.municipality,
        envelope.sequence,
        envelope.correlation_id,
        envelope.causation_id,
        orjson.dumps(envelope.payload).decode(),
    )


def make(settings: Settings) -> JournalProjection:
    return JournalProjection()
