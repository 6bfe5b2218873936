"""The live worker is killed with SIGKILL at random moments; the journal still ends exact."""

from __future__ import annotations

import asyncio
import os
import random
import signal
from pathlib import Path

import asyncpg
from aiokafka import TopicPartition

from pipeline.kafka import high_watermarks, partitions_of, producer, reader
from pipeline.publish import proven_by_their_edges, publish_many
from pipeline.settings import Settings
from pipeline.topics import SOURCE_TOPICS
from producers.workload import platform_sample
from tests.helpers import start_worker, wait_for_journal

EVENTS = 100_000


async def test_sigkill_at_random_moments_loses_and_duplicates_nothing(
    platform: Settings, tmp_path: Path
) -> None:
    rng = random.Random(20261122)
    log = tmp_path / "worker.log"
    # The journal alone: with the issuer running, its decisions would join the log too.
    worker = start_worker(platform, log, agents="journal")
    kills = 0
    try:
        async with producer(platform) as client:
            publishing = asyncio.create_task(
                publish_many(
                    platform,
                    client,
                    proven_by_their_edges(platform, platform_sample(EVENTS, seed=11)),
                )
            )
            # Kill while the log is still growing and while the worker is catching up after a
            # restart, at moments no one chose.
            while kills < 6:
                await asyncio.sleep(rng.uniform(0.5, 6.0))
                os.killpg(worker.pid, signal.SIGKILL)
                worker.wait()
                kills += 1
                worker = start_worker(platform, log, agents="journal")
            assert await publishing == EVENTS

        count = await wait_for_journal(platform, EVENTS, timeout=300)
    finally:
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait()

    assert count == EVENTS, log.read_text()[-3000:]
    connection = await asyncpg.connect(platform.dsn)
    try:
        rows = await connection.fetch(
            'SELECT topic, partition, count(*) AS n, count(DISTINCT "offset") AS distinct_offsets, '
            'max("offset") AS last FROM journal.events GROUP BY topic, partition'
        )
        distinct_ids = await connection.fetchval(
            "SELECT count(DISTINCT event_id) FROM journal.events"
        )
    finally:
        await connection.close()
    assert distinct_ids == EVENTS
    async with reader(platform) as client:
        marks = await high_watermarks(
            client, await partitions_of(client, [platform.topic(t) for t in SOURCE_TOPICS])
        )
    per_partition = {TopicPartition(r["topic"], r["partition"]): r for r in rows}
    for tp, end in marks.items():
        if end == 0:
            continue
        row = per_partition[tp]
        # Every offset from 0 to the end of the partition is there, once.
        assert row["n"] == row["distinct_offsets"] == end
        assert row["last"] == end - 1
