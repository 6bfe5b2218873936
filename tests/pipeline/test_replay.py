"""`bcl replay journal` rebuilds from the log while queries keep working; digests agree."""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import asyncpg

from pipeline.database import connect
from pipeline.kafka import producer
from pipeline.publish import Outgoing, proven_by_their_edges, publish_many
from pipeline.settings import Settings
from producers.workload import platform_sample
from tests.helpers import settings_env, start_worker, wait_for_journal


def proven_sample(settings: Settings, count: int, *, seed: int) -> list[Outgoing]:
    """``platform_sample(count, seed=seed)``, each event proven by its edge."""
    return list(proven_by_their_edges(settings, platform_sample(count, seed=seed)))


async def bcl(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "pipeline.cli",
        *args,
        env=settings_env(settings),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    out, _ = await process.communicate()
    return subprocess.CompletedProcess(args, process.returncode or 0, out.decode(), "")


async def test_replay_rebuilds_while_queries_and_the_worker_keep_going(
    platform: Settings, tmp_path: Path
) -> None:
    # The journal alone: with the issuer running, its decisions would join the log too.
    worker = start_worker(platform, tmp_path / "worker.log", agents="journal")
    try:
        async with producer(platform) as client:
            await publish_many(platform, client, proven_sample(platform, 20_000, seed=3))
        assert await wait_for_journal(platform, 20_000, timeout=180) == 20_000

        # Queries run all through the rebuild; more events arrive meanwhile.
        seen: list[int] = []
        stop = asyncio.Event()

        async def query_constantly() -> None:
            connection = await asyncpg.connect(platform.dsn)
            try:
                while not stop.is_set():
                    seen.append(await connection.fetchval("SELECT count(*) FROM journal.events"))
                    await asyncio.sleep(0.02)
            finally:
                await connection.close()

        async def publish_more() -> int:
            async with producer(platform) as client:
                return await publish_many(platform, client, proven_sample(platform, 3_000, seed=4))

        querying = asyncio.create_task(query_constantly())
        more = asyncio.create_task(publish_more())
        replayed = await bcl(platform, "replay", "journal")
        await more
        assert await wait_for_journal(platform, 23_000, timeout=180) == 23_000
        stop.set()
        await querying
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(30)

    assert replayed.returncode == 0, replayed.stdout
    assert "events/s" in replayed.stdout
    assert len(seen) > 10
    # The journal never lost rows from a reader's point of view during the rebuild.
    assert all(a <= b for a, b in itertools.pairwise(seen)), seen
    async with connect(platform) as connection:
        distinct = await connection.fetchval("SELECT count(DISTINCT event_id) FROM journal.events")
    assert distinct == 23_000


async def test_replayed_digest_equals_the_live_one(platform: Settings, tmp_path: Path) -> None:
    # The journal alone, so the log stops growing when the publishing stops.
    worker = start_worker(platform, tmp_path / "worker.log", agents="journal")
    try:
        async with producer(platform) as client:
            await publish_many(platform, client, proven_sample(platform, 10_000, seed=5))
        assert await wait_for_journal(platform, 10_000, timeout=180) == 10_000
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(30)
    live = await bcl(platform, "digest", "journal")
    replayed = await bcl(platform, "replay", "journal")
    rebuilt = await bcl(platform, "digest", "journal")

    assert replayed.returncode == 0, replayed.stdout
    assert live.returncode == 0, live.stdout
    live_line = [line for line in live.stdout.splitlines() if line.startswith("journal ")]
    rebuilt_line = [line for line in rebuilt.stdout.splitlines() if line.startswith("journal ")]
    assert live_line
    assert live_line == rebuilt_line


async def test_replay_since_a_time_reads_only_what_came_after_onto_the_live_rows(
    platform: Settings, tmp_path: Path
) -> None:
    before = proven_sample(platform, 6_000, seed=5)
    after = proven_sample(platform, 4_000, seed=6)
    worker = start_worker(platform, tmp_path / "worker.log", agents="journal")
    try:
        async with producer(platform) as client:
            await publish_many(platform, client, before)
            await asyncio.sleep(1.5)
            since = datetime.now(UTC)
            await asyncio.sleep(1.5)
            await publish_many(platform, client, after)
        assert await wait_for_journal(platform, 10_000, timeout=180) == 10_000
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(30)
    live = await bcl(platform, "digest", "journal")
    # Rows gone from the live table on both sides of the time, as a faulty release might lose
    # them while its tracking moved on.
    lost_before = [o.envelope.event_id for o in before[::60]]
    lost_after = [o.envelope.event_id for o in after[::40]]
    async with connect(platform) as connection:
        await connection.execute(
            "DELETE FROM journal.events WHERE event_id = ANY($1::uuid[])", lost_before + lost_after
        )

    replayed = await bcl(platform, "replay", "journal", "--since", since.isoformat())

    assert replayed.returncode == 0, replayed.stdout
    assert "replayed 4,000 events since" in replayed.stdout, replayed.stdout
    async with connect(platform) as connection:
        back = await connection.fetch(
            "SELECT event_id FROM journal.events WHERE event_id = ANY($1::uuid[])",
            lost_before + lost_after,
        )
    # What came after the time is whole again; what came before was not read.
    assert {row["event_id"] for row in back} == set(lost_after)
    rebuilt = await bcl(platform, "replay", "journal")
    assert rebuilt.returncode == 0, rebuilt.stdout
    assert (await bcl(platform, "digest", "journal")).stdout == live.stdout


async def test_replay_since_needs_a_time_with_its_zone(platform: Settings) -> None:
    replayed = await bcl(platform, "replay", "journal", "--since", "2026-11-22T09:00")

    assert replayed.returncode != 0
    assert "--since '2026-11-22T09:00' needs a time zone" in replayed.stdout, replayed.stdout
    assert "Traceback" not in replayed.stdout
