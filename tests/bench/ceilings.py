"""The ceilings every figure is compared with, measured in the same run on the same machine.

- raw consume: a plain aiokafka reader taking the same events off the broker, doing nothing else;
- COPY: asyncpg's binary COPY of rows shaped like the journal's into an empty table;
- faust: a faust agent that does nothing, the ceiling of any projection faust hosts live.
"""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import orjson

from pipeline.database import connect
from pipeline.kafka import high_watermarks, partitions_of, reader
from pipeline.settings import Settings
from tests.helpers import settings_env


async def raw_consume_rate(settings: Settings, topics: list[str]) -> tuple[int, float]:
    """(events, events per second) reading every partition of ``topics`` from the beginning."""
    async with reader(settings) as client:
        partitions = await partitions_of(client, [settings.topic(t) for t in topics])
        marks = await high_watermarks(client, partitions)
        wanted = {tp for tp, end in marks.items() if end > 0}
        client.assign(sorted(wanted))
        for tp in wanted:
            client.seek(tp, 0)
        started = time.perf_counter()
        events = 0
        while wanted:
            fetched = await client.getmany(*wanted, timeout_ms=1000, max_records=20_000)
            for tp, records in fetched.items():
                events += len(records)
                if records[-1].offset >= marks[tp] - 1:
                    wanted.discard(tp)
        seconds = time.perf_counter() - started
    return events, events / seconds


async def copy_rate(settings: Settings, rows: int = 200_000) -> float:
    """Rows per second COPYed into an empty table shaped like ``journal.events``."""
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
    async with connect(settings) as connection:
        await connection.execute("DROP TABLE IF EXISTS bench_copy_ceiling")
        await connection.execute(
            "CREATE TABLE bench_copy_ceiling (LIKE journal.events INCLUDING ALL)"
        )
        try:
            started = time.perf_counter()
            async with connection.transaction():
                await connection.copy_records_to_table("bench_copy_ceiling", records=records)
            seconds = time.perf_counter() - started
        finally:
            await connection.execute("DROP TABLE bench_copy_ceiling")
    return rows / seconds


def faust_noop_rate(settings: Settings, expected: int) -> float:
    """Events/s of a faust agent that does nothing, over the events already in the log."""
    result = settings.center_home / "faust-noop.rate"
    result.unlink(missing_ok=True)
    process = subprocess.Popen(
        [
            sys.executable,
            str(Path(__file__).with_name("faust_noop.py")),
            str(expected),
            str(result),
        ],
        env=settings_env(settings),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 1800
        while not result.exists() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        process.terminate()
        process.wait(60)
    return float(result.read_text())
