"""The durable log against the memory log: the same events produced to and consumed from tansu
over the embedded S3 store and tansu in memory, one after the other, nothing else running on
either broker; and each broker's peak memory (the store's counted with its broker)."""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import psutil  # type: ignore[import-untyped]
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from infra.broker import start_broker, stop_broker
from infra.storage import start_storage, stop_storage
from producers.workload import platform_sample
from schemas.codec import encode_event
from tests.helpers import create_topic

TOPIC = "bench.log"
PARTITIONS = 6


@dataclass(frozen=True)
class LogRun:
    produced_per_second: float
    consumed_per_second: float
    megabytes_per_second: float
    peak_megabytes: float


@asynccontextmanager
async def broker_on(storage: str) -> AsyncIterator[tuple[str, list[int]]]:
    """A broker keeping its log in ``storage`` ("memory" or "s3"): its address and the pids
    whose memory counts."""
    with tempfile.TemporaryDirectory(prefix="bcl-bench-log-") as folder:
        store = start_storage(Path(folder) / "storage") if storage == "s3" else None
        try:
            broker = start_broker(Path(folder) / "broker", store=store.endpoint if store else None)
            try:
                yield broker.bootstrap, [broker.pid, *([store.pid] if store else [])]
            finally:
                stop_broker(broker.pid)
        finally:
            if store is not None:
                stop_storage(store.pid)


async def sample_peak_memory(pids: Sequence[int], peak: list[float]) -> None:
    processes = [psutil.Process(pid) for pid in pids]
    while True:
        peak[0] = max(peak[0], sum(p.memory_info().rss for p in processes) / (1 << 20))
        await asyncio.sleep(0.1)


async def run_on(storage: str, values: Sequence[tuple[bytes, bytes]]) -> LogRun:
    async with broker_on(storage) as (bootstrap, pids):
        await create_topic(bootstrap, TOPIC, PARTITIONS)
        peak = [0.0]
        sampler = asyncio.create_task(sample_peak_memory(pids, peak))
        try:
            produced = await timed(lambda: produce(bootstrap, values))
            consumed = await timed(lambda: consume(bootstrap, len(values)))
        finally:
            sampler.cancel()
    size = sum(len(key) + len(value) for key, value in values) / (1 << 20)
    return LogRun(len(values) / produced, len(values) / consumed, size / consumed, peak[0])


async def timed(work: Callable[[], object]) -> float:
    started = time.perf_counter()
    await work()  # type: ignore[misc]
    return time.perf_counter() - started


async def produce(bootstrap: str, values: Sequence[tuple[bytes, bytes]]) -> None:
    # As the pipeline's producers send (pipeline.kafka.new_producer): acks=all, 1 MB batches.
    client = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", linger_ms=5, max_batch_size=1 << 20
    )
    await client.start()
    try:
        sent = [await client.send(TOPIC, value, key=key) for key, value in values]
        await asyncio.gather(*sent)
    finally:
        await client.stop()


async def consume(bootstrap: str, expected: int) -> None:
    # The tuned fetch of the pipeline's readers (pipeline.kafka.new_reader).
    client = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        fetch_max_bytes=64 << 20,
        max_partition_fetch_bytes=16 << 20,
        fetch_max_wait_ms=100,
    )
    await client.start()
    try:
        partitions = [TopicPartition(TOPIC, p) for p in range(PARTITIONS)]
        client.assign(partitions)
        for tp in partitions:
            client.seek(tp, 0)
        seen = 0
        while seen < expected:
            fetched = await client.getmany(timeout_ms=1000, max_records=50_000)
            seen += sum(len(records) for records in fetched.values())
    finally:
        await client.stop()


async def bench_log_storage(events: int) -> list[tuple[str, float, str, str]]:
    """(figure, value, unit, ratio) rows: each measure on the memory log, then on the durable
    log as a ratio to it."""
    values = [(o.key.encode(), encode_event(o.envelope)) for o in platform_sample(events, seed=3)]
    memory = await run_on("memory", values)
    durable = await run_on("s3", values)
    rows: list[tuple[str, float, str, str]] = []
    for what, unit, kept, on_disk in (
        ("produce (acks=all)", "events/s", memory.produced_per_second, durable.produced_per_second),
        ("consume", "events/s", memory.consumed_per_second, durable.consumed_per_second),
        ("consume", "MB/s", memory.megabytes_per_second, durable.megabytes_per_second),
        ("peak broker memory", "MB", memory.peak_megabytes, durable.peak_megabytes),
    ):
        rows.append((f"log {what}, memory", kept, unit, ""))
        rows.append((f"log {what}, durable", on_disk, unit, f"({on_disk / kept:.0%} of memory)"))
    return rows
