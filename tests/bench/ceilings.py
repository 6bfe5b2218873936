"""The ceilings every figure is compared with, measured in the same run on the same machine.

- raw consume: a plain aiokafka reader taking the same events off the broker, doing nothing else,
  with fetches tuned for throughput, the best of three reads, in events/s and MB/s;
- produce: the same events, encoded, sent in full record batches by a plain producer: what the
  durable log ingests, above which no live projection can go;
- COPY: asyncpg's binary COPY of rows shaped like the journal's into an empty staging table with
  no index, and into one with the journal's key and indexes;
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import orjson
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from pipeline.database import connect
from pipeline.kafka import connection_options, high_watermarks, partitions_of, producer, reader
from pipeline.settings import Settings


@dataclass(frozen=True)
class Consumed:
    """What a plain reader took off the broker: the best of several timed reads."""

    events: int
    bytes: int
    seconds: float

    @property
    def per_second(self) -> float:
        return self.events / self.seconds

    @property
    def mb_per_second(self) -> float:
        return self.bytes / self.seconds / 1e6


async def raw_consume(settings: Settings, topics: list[str], *, tries: int = 3) -> Consumed:
    """The fastest of ``tries`` reads of every partition of ``topics`` from the beginning, with
    fetches tuned for throughput (64 MiB a fetch, 16 MiB a partition, 200,000 records a call),
    doing nothing with the records: the ceiling of any reader of the same events."""
    best: Consumed | None = None
    for _ in range(tries):
        read = await _read_all(settings, topics)
        if best is None or read.seconds < best.seconds:
            best = read
    assert best is not None
    return best


async def _read_all(settings: Settings, topics: list[str]) -> Consumed:
    async with reader(settings) as client:
        partitions = await partitions_of(client, [settings.topic(t) for t in topics])
        marks = await high_watermarks(client, partitions)
        wanted = {tp for tp, end in marks.items() if end > 0}
        client.assign(sorted(wanted))
        for tp in wanted:
            client.seek(tp, 0)
        started = time.perf_counter()
        events = size = 0
        while wanted:
            fetched = await client.getmany(*wanted, timeout_ms=1000, max_records=200_000)
            for tp, records in fetched.items():
                events += len(records)
                size += sum(len(r.value or b"") + len(r.key or b"") for r in records)
                if records[-1].offset >= marks[tp] - 1:
                    wanted.discard(tp)
        seconds = time.perf_counter() - started
    return Consumed(events, size, seconds)


@dataclass(frozen=True)
class CopyCeilings:
    """Rows/s of asyncpg's binary COPY of journal rows: into a staging table with no index (the
    most Postgres takes in) and into a table with the journal's key and indexes."""

    staging: float
    indexed: float


async def copy_rates(settings: Settings, rows: int = 200_000) -> CopyCeilings:
    now = datetime.now(UTC)
    payload = orjson.dumps({"request_id": str(uuid.uuid4()), "store_id": "SEV-00001"}).decode()
    records = [
        (
            uuid.uuid4(),
            "issuance.requested",
            1,
            "east",
            "center:east",
            "issuance.requests",
            i % 6,
            i,
            now,
            now,
            "131016",
            None,
            None,
            None,
            payload,
        )
        for i in range(rows)
    ]
    rates = {}
    async with connect(settings) as connection:
        for shape, like in (("staging", ""), ("indexed", " INCLUDING ALL")):
            best = 0.0
            for _ in range(2):
                await connection.execute("DROP TABLE IF EXISTS bench_copy_ceiling")
                await connection.execute(
                    f"CREATE TABLE bench_copy_ceiling (LIKE journal.events{like})"
                )
                try:
                    started = time.perf_counter()
                    async with connection.transaction():
                        await connection.copy_records_to_table(
                            "bench_copy_ceiling", records=records
                        )
                    best = max(best, rows / (time.perf_counter() - started))
                finally:
                    await connection.execute("DROP TABLE bench_copy_ceiling")
            rates[shape] = best
    return CopyCeilings(**rates)


async def raw_produce(
    settings: Settings, records: list[tuple[bytes, bytes]], *, partitions: int, tries: int = 2
) -> Consumed:
    """The fastest of ``tries`` sends of ``records`` (key, value: events as an edge encodes
    them) into a scratch topic, in record batches of up to 1 MiB per partition, every batch in
    flight at once, acknowledged by all replicas: what the log ingests, the ceiling of any
    publisher and so of any live projection, which cannot apply faster than events arrive."""
    topic = settings.topic("bench.produce-ceiling")
    admin = AIOKafkaAdminClient(**connection_options(settings))
    await admin.start()
    try:
        if topic not in await admin.list_topics():
            await admin.create_topics([NewTopic(topic, partitions, 1)])
    finally:
        await admin.close()
    best: Consumed | None = None
    size = sum(len(key) + len(value) for key, value in records)
    async with producer(settings) as client:
        await client.partitions_for(topic)
        for _ in range(tries):
            started = time.perf_counter()
            sent = []
            batches = [client.create_batch() for _ in range(partitions)]
            for index, (key, value) in enumerate(records):
                partition = index % partitions
                if batches[partition].append(key=key, value=value, timestamp=None) is None:
                    sent.append(
                        await client.send_batch(batches[partition], topic, partition=partition)
                    )
                    batches[partition] = client.create_batch()
                    batches[partition].append(key=key, value=value, timestamp=None)
            for partition, batch in enumerate(batches):
                sent.append(await client.send_batch(batch, topic, partition=partition))
            await asyncio.gather(*sent)
            read = Consumed(len(records), size, time.perf_counter() - started)
            if best is None or read.seconds < best.seconds:
                best = read
    assert best is not None
    return best
