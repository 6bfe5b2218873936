"""The journal: an append-only archive of every event, for analysts to query with SQL."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import orjson

from pipeline.database import Connection, insert_new_rows
from pipeline.projection import BulkReplay, ConsumedEvent
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
    # An event's row is keyed by its id alone; analysts' indexes are never read by ``apply``.
    bulk_replay = BulkReplay(partitions_apart=True, indexes_after_load=True)

    async def apply(self, connection: Connection, events: Sequence[ConsumedEvent]) -> None:
        # A producer retry can put one event in the log twice: the event id decides.
        await insert_new_rows(connection, "events", _COLUMNS, [_row(e) for e in events])


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
