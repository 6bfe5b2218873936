"""Every projection applied live by the worker and rebuilt from the beginning of the log by
a replay from the beginning has the same digest: the bulk paths of a replay (indexes after the load,
partitions in two processes, proven events built without validation) change no row."""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
from datetime import date
from pathlib import Path

import pytest

from pipeline import catchup
from pipeline.database import connect
from pipeline.digest import projection_digest
from pipeline.kafka import producer
from pipeline.projection import PROJECTION_MODULES, load_projection
from pipeline.publish import proven_by_their_edges, publish_many
from pipeline.replay import replay
from pipeline.settings import Settings
from pipeline.status import log_ends, wait_until_applied
from producers.workload import national_traffic, platform_sample, recorded_traffic, synthetic_nation
from tests.helpers import start_worker, wait_for_log_line
from tests.producers.push_helpers import SAMPLE_CSV, register, signed_push


async def digests(settings: Settings) -> dict[str, str]:
    found = {}
    async with connect(settings) as connection:
        for name in PROJECTION_MODULES:
            digest = await projection_digest(connection, load_projection(name, settings))
            found[name] = digest.sha256
    return found


async def publish_for_every_projection(settings: Settings, *, sample: int, recorded: int) -> None:
    """Residents pushed by a municipality, ``sample`` events of kiosk traffic and revocations,
    ``recorded`` of a small nation's day of recorded decisions: something for every projection
    to hold (the disaster desk's acts aside)."""
    key = await register(settings)
    assert (await signed_push(settings, key, SAMPLE_CSV, 1)).outcome == "accepted"
    nation = synthetic_nation(30, seed=4)
    traffic = national_traffic(nation, start=date(2024, 3, 1), days=1, scale=0.02, seed=4)
    messages = [
        *platform_sample(sample, seed=4),
        *itertools.islice(recorded_traffic(traffic, seed=4), recorded),
    ]
    async with producer(settings) as client:
        await publish_many(settings, client, proven_by_their_edges(settings, messages))


async def settled(settings: Settings) -> None:
    """Until every projection has applied the log and the log has stopped growing: the issuer
    and the revoker publish decisions on what they apply, which the others then apply."""
    projections = [load_projection(name, settings) for name in PROJECTION_MODULES]
    journal = load_projection("journal", settings)
    ends = None
    while ends != (ends := await log_ends(settings, journal)):
        assert await wait_until_applied(settings, projections, 240)
        await asyncio.sleep(1)


async def test_every_projection_replayed_from_the_beginning_equals_the_live_one(
    platform: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = tmp_path / "worker.log"
    worker = start_worker(platform, log)
    try:
        await wait_for_log_line(log, "ready;")
        await publish_for_every_projection(platform, sample=3000, recorded=1000)
        await settled(platform)
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(60)
    live = await digests(platform)
    async with connect(platform) as connection:
        held = await connection.fetchval("SELECT count(*) FROM journal.events")
        residents = await connection.fetchval("SELECT count(*) FROM replica.residents")
    assert held > 3000
    assert residents > 0

    # However small the log, the projections that allow it are read on both cores.
    monkeypatch.setattr(catchup, "SECOND_PROCESS_FROM", 0)
    for name in PROJECTION_MODULES:
        await replay(platform, load_projection(name, platform))

    assert await digests(platform) == live
