"""The mirror between two real brokers: copies keep partition, key, value, headers and
timestamp under MirrorMaker 2 names; a second pass copies nothing again; checkpoints translate
offsets; a mirror killed mid-copy and restarted neither loses nor duplicates a record."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
from collections import defaultdict

import pytest

from infra.mirror import (
    CENTER_HEADER,
    OFFSET_HEADER,
    Mirror,
    mirror_lag,
    read_checkpoints,
    translate,
)
from pipeline.kafka import create_topics, high_watermarks, partitions_of, producer, reader
from pipeline.settings import PROJECT_ROOT, Settings
from pipeline.topics import ISSUANCE_REQUESTS, RESIDENT_CHANGES
from tests.helpers import settings_env

pytestmark = pytest.mark.integration

MIRROR_HEADERS = {CENTER_HEADER, OFFSET_HEADER}
Copy = tuple[bytes | None, bytes | None, int, tuple[tuple[str, bytes], ...]]


@pytest.fixture
async def west(platform: Settings, west_bootstrap: str) -> Settings:
    """The west center: its own cluster, reading east's copies."""
    settings = Settings(
        **{**dict(platform), "center": "west", "peers": ("east",),
           "kafka_bootstrap": west_bootstrap}
    )  # fmt: skip
    await create_topics(settings)
    return settings


async def publish(settings: Settings, topic: str, count: int, start_ms: int) -> None:
    async with producer(settings) as client:
        futures = [
            await client.send(
                settings.topic(topic),
                f"event {n}".encode(),
                key=f"key-{n % 17}".encode(),
                timestamp_ms=start_ms + n,
                headers=[("type", b"test.event"), ("n", str(n).encode())],
            )
            for n in range(count)
        ]
        await asyncio.gather(*futures)


async def records(settings: Settings, topic: str) -> dict[int, list[Copy]]:
    """Every record of a physical topic, by partition, in offset order."""
    found: dict[int, list[Copy]] = defaultdict(list)
    async with reader(settings) as client:
        partitions = await partitions_of(client, [topic])
        ends = await high_watermarks(client, partitions)
        pending = {tp for tp in partitions if ends[tp] > 0}
        client.assign(partitions)
        for tp in partitions:
            client.seek(tp, 0)
        while pending:
            for tp, batch in (await client.getmany(timeout_ms=1000)).items():
                for r in batch:
                    found[tp.partition].append((r.key, r.value, r.timestamp, tuple(r.headers)))
                if await client.position(tp) >= ends[tp]:
                    pending.discard(tp)
    return found


def without_mirror_headers(copies: list[Copy]) -> list[Copy]:
    return [
        (key, value, at, tuple(h for h in headers if h[0] not in MIRROR_HEADERS))
        for key, value, at, headers in copies
    ]


def source_offsets(copies: list[Copy]) -> list[int]:
    return [int(dict(headers)[OFFSET_HEADER]) for *_, headers in copies]


async def test_copies_keep_partition_key_value_headers_and_timestamp(
    platform: Settings, west: Settings
) -> None:
    await publish(platform, ISSUANCE_REQUESTS.name, 200, start_ms=1_700_000_000_000)
    mirror = Mirror(platform, west)

    first = await mirror.run(until_end=True)
    again = await mirror.run(until_end=True)

    assert (first.copied, again.copied) == (200, 0)
    source = await records(platform, platform.topic(ISSUANCE_REQUESTS.name))
    copy = await records(west, west.mirrored("east", ISSUANCE_REQUESTS.name))
    assert west.mirrored("east", ISSUANCE_REQUESTS.name).endswith("east.issuance.requests")
    assert set(copy) == set(source)
    for partition, originals in source.items():
        assert without_mirror_headers(copy[partition]) == originals
        assert source_offsets(copy[partition]) == list(range(len(originals)))
    assert await mirror_lag(platform, west) == {
        name: 0 for name in ("municipalities", "resident.changes", "jpki.certificates",
                             "issuance.requests", "issuance.outcomes", "disaster.events")
    }  # fmt: skip

    # A group that read part of east's log resumes at the same records in west's copy.
    checkpoints = await read_checkpoints(platform, west)
    committed = {(ISSUANCE_REQUESTS.name, p): len(r) // 2 for p, r in source.items()}
    assert translate(committed, checkpoints) == committed
    assert translate({(ISSUANCE_REQUESTS.name, 0): 0}, checkpoints) == {
        (ISSUANCE_REQUESTS.name, 0): 0
    }


async def test_the_lag_is_what_a_lost_source_would_lose(platform: Settings, west: Settings) -> None:
    await publish(platform, ISSUANCE_REQUESTS.name, 50, start_ms=1_700_000_000_000)
    await Mirror(platform, west).run(until_end=True)
    await publish(platform, ISSUANCE_REQUESTS.name, 7, start_ms=1_700_000_100_000)

    lag = await mirror_lag(platform, west)

    assert lag[ISSUANCE_REQUESTS.name] == 7
    assert sum(lag.values()) == 7


def bcl_mirror(env: dict[str, str], *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "pipeline.cli", "mirror", "run", "--from", "east", "--to",
         "west", *args],
        env=env,
        cwd=PROJECT_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip


async def copied_so_far(west: Settings) -> int:
    async with reader(west) as client:
        copy = west.mirrored("east", RESIDENT_CHANGES.name)
        return sum((await high_watermarks(client, await partitions_of(client, [copy]))).values())


async def test_a_mirror_killed_mid_copy_resumes_without_loss_or_duplicates(
    platform: Settings, west: Settings
) -> None:
    total = 60_000
    await publish(platform, RESIDENT_CHANGES.name, total, start_ms=1_700_000_000_000)
    # The mirror process finds both clusters where `bcl up` records them.
    for settings in (platform, west):
        settings.center_home.mkdir(parents=True, exist_ok=True)
        settings.services_file.write_text(json.dumps({"kafka_bootstrap": settings.bootstrap}))
    env = settings_env(platform)
    del env["BCL_KAFKA_BOOTSTRAP"]

    killed = bcl_mirror(env)
    deadline = time.monotonic() + 120
    while (done := await copied_so_far(west)) < total // 10:
        assert killed.poll() is None, killed.stdout.read() if killed.stdout else ""
        assert time.monotonic() < deadline, "the mirror copied nothing in 120 s"
        await asyncio.sleep(0.05)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    assert done < total, "the copy finished before the kill: nothing was tested"

    finishing = bcl_mirror(env, "--until-caught-up")
    output, _ = finishing.communicate(timeout=300)
    assert finishing.returncode == 0, output.decode()

    source = await records(platform, platform.topic(RESIDENT_CHANGES.name))
    copy = await records(west, west.mirrored("east", RESIDENT_CHANGES.name))
    assert sum(len(c) for c in copy.values()) == total
    for partition, originals in source.items():
        assert source_offsets(copy[partition]) == list(range(len(originals)))
        assert without_mirror_headers(copy[partition]) == originals
