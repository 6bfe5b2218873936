"""The embedded log is durable: what the broker acknowledged survives `bcl down` and `bcl up`, and
the death of any process, or of all of them at once."""

from __future__ import annotations

import json
import os
import signal
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import psutil  # type: ignore[import-untyped]
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from infra import storage
from infra.services import Services, down, up
from pipeline.settings import Settings
from tests.helpers import create_topic

TOPIC = "durable.records"
PARTITIONS = 3


def center(home: Path) -> Settings:
    # Explicit values, so a BCL_* variable of the shell running the tests cannot point them away.
    return Settings(
        home=home, center="east", kafka_bootstrap=None, database_url=None, broker_storage="s3"
    )


@pytest.fixture
def home(scratch: Path) -> Iterator[Path]:
    yield scratch
    down(center(scratch))


async def publish(bootstrap: str, values: list[bytes]) -> dict[bytes, tuple[int, int]]:
    """Send each value (keyed by itself) with acks=all; where the broker put each one."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=2)
    await producer.start()
    try:
        sent = [await producer.send(TOPIC, value, key=value) for value in values]
        placed = [await future for future in sent]
    finally:
        await producer.stop()
    return {
        value: (meta.partition, meta.offset) for value, meta in zip(values, placed, strict=True)
    }


async def read_back(bootstrap: str) -> dict[bytes, tuple[int, int]]:
    """Every record of the topic, from the beginning, with where it is."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    found: dict[bytes, tuple[int, int]] = {}
    try:
        partitions = [TopicPartition(TOPIC, p) for p in range(PARTITIONS)]
        consumer.assign(partitions)
        for tp in partitions:
            consumer.seek(tp, 0)
        quiet = 0
        while quiet < 3:
            batches = await consumer.getmany(timeout_ms=500)
            quiet = 0 if batches else quiet + 1
            for tp, records in batches.items():
                for record in records:
                    assert record.value is not None
                    assert record.value not in found, f"{record.value!r} is in the log twice"
                    found[record.value] = (tp.partition, record.offset)
    finally:
        await consumer.stop()
    return found


def kill(*pids: int | None) -> None:
    processes = [psutil.Process(pid) for pid in pids if pid is not None]
    for process in processes:
        os.kill(process.pid, signal.SIGKILL)
    psutil.wait_procs(processes, timeout=10)


async def test_acknowledged_records_survive_down_and_up(home: Path) -> None:
    first = up(center(home))
    assert first.storage_pid is not None
    await create_topic(first.kafka_bootstrap, TOPIC, PARTITIONS)
    acknowledged = await publish(first.kafka_bootstrap, [f"r{i}".encode() for i in range(300)])

    down(center(home))
    second = up(center(home))

    assert second.broker_pid != first.broker_pid
    assert await read_back(second.kafka_bootstrap) == acknowledged


async def test_acknowledged_records_and_commits_survive_every_process_killed_at_once(
    home: Path,
) -> None:
    import asyncpg

    first = up(center(home))
    await create_topic(first.kafka_bootstrap, TOPIC, PARTITIONS)
    acknowledged = await publish(first.kafka_bootstrap, [f"a{i}".encode() for i in range(200)])
    connection = await asyncpg.connect(first.database_url)
    try:
        await connection.execute("CREATE TABLE kept (value text)")
        await connection.execute("INSERT INTO kept VALUES ('committed before the crash')")
    finally:
        await connection.close()

    kill(first.broker_pid, first.storage_pid, first.postgres_pid)
    second = up(center(home))

    # The same addresses: processes that kept them (a worker) find the services again.
    assert (second.kafka_bootstrap, second.database_url) == (
        first.kafka_bootstrap,
        first.database_url,
    )

    assert await read_back(second.kafka_bootstrap) == acknowledged
    connection = await asyncpg.connect(second.database_url)
    try:
        assert await connection.fetchval("SELECT value FROM kept") == "committed before the crash"
    finally:
        await connection.close()
    more = await publish(second.kafka_bootstrap, [f"b{i}".encode() for i in range(50)])
    assert await read_back(second.kafka_bootstrap) == acknowledged | more


async def test_a_store_killed_alone_comes_back_where_the_broker_finds_it(home: Path) -> None:
    first: Services = up(center(home))
    await create_topic(first.kafka_bootstrap, TOPIC, PARTITIONS)
    acknowledged = await publish(first.kafka_bootstrap, [f"s{i}".encode() for i in range(100)])

    kill(first.storage_pid)
    second = up(center(home))

    assert second.storage_pid != first.storage_pid
    assert second.storage_endpoint == first.storage_endpoint
    more = await publish(second.kafka_bootstrap, [f"t{i}".encode() for i in range(100)])
    assert await read_back(second.kafka_bootstrap) == acknowledged | more


def test_memory_storage_starts_no_store(home: Path) -> None:
    settings = center(home).model_copy(update={"broker_storage": "memory"})
    services = up(settings)
    assert services.storage_pid is None
    assert not (settings.center_home / "storage").exists()


async def test_offsets_a_killed_broker_claimed_but_never_wrote_are_given_back(home: Path) -> None:
    """tansu moves a partition's watermark before it writes the batch: killed in between, it
    leaves offsets that will never hold a record, which readers would wait for forever."""
    first = up(center(home))
    await create_topic(first.kafka_bootstrap, TOPIC, PARTITIONS)
    acknowledged = await publish(first.kafka_bootstrap, [f"c{i}".encode() for i in range(30)])
    kill(first.broker_pid)
    assert first.storage_endpoint is not None
    watermark = f"clusters/east/topics/{TOPIC}/partitions/0000000001/watermark.json"
    url = f"{first.storage_endpoint}/{storage.BUCKET}/{watermark}"
    with urllib.request.urlopen(url) as answer:
        state = json.loads(answer.read())
    written = state["high"]
    # What a broker killed between its two steps leaves: five offsets claimed, no batch.
    claimed = urllib.request.Request(
        url, data=json.dumps(state | {"high": written + 5}).encode(), method="PUT"
    )
    urllib.request.urlopen(claimed).close()

    second = up(center(home))

    with urllib.request.urlopen(url) as answer:
        assert json.loads(answer.read())["high"] == written
    more = await publish(second.kafka_bootstrap, [f"d{i}".encode() for i in range(30)])
    found = await read_back(second.kafka_bootstrap)
    assert found == acknowledged | more
    offsets = sorted(offset for partition, offset in found.values() if partition == 1)
    assert offsets == list(range(len(offsets))), "no hole in the offsets"
