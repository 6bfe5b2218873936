"""Bad messages reach the live worker: each is parked with its reason and the worker goes on."""

from __future__ import annotations

import os
import re
import signal
from pathlib import Path

import asyncpg
import orjson

from pipeline.kafka import producer
from pipeline.publish import proven_by_their_edges, publish_many
from pipeline.settings import Settings
from pipeline.topics import DEAD_LETTERS, ISSUANCE_REQUESTS
from producers.workload import platform_sample
from schemas.codec import encode_event
from tests.helpers import start_worker, wait_for_journal, wait_for_log_line
from tests.pipeline.test_runner import read_all


async def test_the_worker_parks_bad_messages_and_applies_those_around_them(
    platform: Settings, tmp_path: Path
) -> None:
    valid = list(proven_by_their_edges(platform, platform_sample(600, seed=9)))
    template = orjson.loads(encode_event(valid[-1].envelope))
    unknown_type = orjson.dumps({**template, "type": "issuance.teleported"})
    invalid = orjson.dumps({**template, "occurred_at": "yesterday"})
    bad = {
        b"\x89PNG not json": "not_json",
        invalid: "invalid_envelope",
        unknown_type: "unknown_type",
    }
    topic = platform.topic(ISSUANCE_REQUESTS.name)
    worker = start_worker(platform, tmp_path / "worker.log")
    try:
        async with producer(platform) as client:
            await publish_many(platform, client, valid[:300])
            for value in bad:
                await client.send_and_wait(topic, key=b"bad", value=value)
            await publish_many(platform, client, valid[300:])
        applied = await wait_for_journal(platform, len(valid), timeout=120)
        assert worker.poll() is None, "the worker died on bad input"
        await wait_for_log_line(tmp_path / "worker.log", "objects set aside from garbage")
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(30)

    assert applied == len(valid)
    # Once ready, what the worker holds is kept out of the collector's full passes.
    ready = re.search(r"ready; (\d+) objects set aside", (tmp_path / "worker.log").read_text())
    assert ready is not None
    assert int(ready.group(1)) > 10_000
    connection = await asyncpg.connect(platform.dsn)
    try:
        letters = await connection.fetch("SELECT value, reason, detail FROM platform.dead_letters")
    finally:
        await connection.close()
    assert {bytes(r["value"]): r["reason"] for r in letters} == bad
    assert all(r["detail"] for r in letters)
    published = [
        orjson.loads(r.value) for r in await read_all(platform, platform.topic(DEAD_LETTERS.name))
    ]
    assert sorted(p["reason"] for p in published) == sorted(bad.values())
    assert all(p["topic"] == topic and p["value_base64"] for p in published)
