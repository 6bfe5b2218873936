"""How far each projection is behind the log, and what the pipeline has refused."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass

from aiokafka import TopicPartition

from pipeline.database import connect, quote_ident
from pipeline.kafka import high_watermarks, partitions_of, reader
from pipeline.projection import Projection
from pipeline.settings import Settings


@dataclass(frozen=True)
class ProjectionLag:
    projection: str
    applied: int
    log_end: int

    @property
    def lag(self) -> int:
        return self.log_end - self.applied


async def projection_lag(
    settings: Settings, projection: Projection, marks: dict[TopicPartition, int] | None = None
) -> ProjectionLag:
    """Events in the log (as it ends now, or at ``marks``) versus events the projection's
    tracking rows account for."""
    if marks is None:
        marks = await log_ends(settings, projection)
    tracked = await _applied_ends(settings, projection)
    applied = sum(min(tracked.get(tp, 0), end) for tp, end in marks.items())
    return ProjectionLag(projection.name, applied, sum(marks.values()))


async def ahead_of_log(settings: Settings, projection: Projection) -> list[TopicPartition]:
    """The partitions whose tracking says more was applied than the log holds: the log was lost
    or replaced under the projection (a broker with memory storage restarted, a log restored
    from elsewhere), so its tables describe events that are not in the log."""
    # Tracking first: read after the log's ends, a running worker's newer batches would look
    # like offsets the log does not have.
    applied = await _applied_ends(settings, projection)
    marks = await log_ends(settings, projection)
    return [tp for tp, end in applied.items() if end > marks.get(tp, 0)]


async def _applied_ends(settings: Settings, projection: Projection) -> dict[TopicPartition, int]:
    """Each tracked partition's offset after the last event applied, in this center's cluster."""
    async with connect(settings) as connection:
        exists = await connection.fetchval(
            "SELECT to_regclass($1)", f"{projection.name}.projection_offsets"
        )
        rows = (
            await connection.fetch(
                "SELECT topic, partition, last_offset "
                f"FROM {quote_ident(projection.name)}.projection_offsets WHERE cluster = $1",
                settings.center,
            )
            if exists
            else []
        )
    return {TopicPartition(r["topic"], r["partition"]): r["last_offset"] + 1 for r in rows}


async def log_ends(settings: Settings, projection: Projection) -> dict[TopicPartition, int]:
    """Where each partition the projection reads ends now."""
    async with reader(settings) as client:
        return await high_watermarks(
            client,
            await partitions_of(client, settings.subscribed(*projection.topics)),
        )


async def wait_until_applied(
    settings: Settings, projections: Sequence[Projection], timeout: float
) -> bool:
    """Wait until each projection has applied the log as it ends now (later events need not
    be); False if ``timeout`` seconds pass first."""
    deadline = time.monotonic() + timeout
    ends = [(p, await log_ends(settings, p)) for p in projections]
    while True:
        lags = [await projection_lag(settings, p, marks) for p, marks in ends]
        if all(lag.lag <= 0 for lag in lags):
            return True
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.2)


async def dead_letter_counts(settings: Settings) -> list[tuple[str, str, int]]:
    async with connect(settings) as connection:
        rows = await connection.fetch(
            "SELECT topic, reason, count(*) AS n FROM platform.dead_letters "
            "WHERE cluster = $1 GROUP BY topic, reason ORDER BY topic, reason",
            settings.center,
        )
    return [(r["topic"], r["reason"], r["n"]) for r in rows]
