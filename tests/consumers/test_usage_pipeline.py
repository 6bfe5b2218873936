"""Usage through the real broker and Postgres: the live worker, redeliveries, a request sent
again at the other center, a kill in the middle, and a replay that gives the same digest."""

from __future__ import annotations

import asyncio
import os
import signal
from collections import Counter
from datetime import date, timedelta
from pathlib import Path

from pipeline.catchup import refresh
from pipeline.database import connect
from pipeline.digest import projection_digest
from pipeline.kafka import producer
from pipeline.projection import load_projection
from pipeline.publish import Outgoing, proven_by_their_edges, publish_many
from pipeline.replay import replay
from pipeline.settings import Settings
from pipeline.status import wait_until_applied
from producers.workload import national_traffic, recorded_traffic, synthetic_nation
from schemas.ids import derived_event_id
from tests.helpers import start_worker

START = date(2024, 3, 4)


async def wait_caught_up(settings: Settings, name: str, timeout: float) -> None:
    projection = load_projection(name, settings)
    assert await wait_until_applied(settings, [projection], timeout), f"{name} still behind"


async def wait_for_rows(settings: Settings, timeout: float) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    async with connect(settings) as connection:
        while not await connection.fetchval("SELECT count(*) FROM usage.requests"):
            assert asyncio.get_running_loop().time() < deadline, "the worker applied nothing"
            await asyncio.sleep(0.2)


def resent_at_the_other_center(message: Outgoing) -> Outgoing:
    """The same request id entering again at the other center a minute later: a new event."""
    envelope = message.envelope
    later = envelope.occurred_at + timedelta(minutes=1)
    other = "west" if envelope.origin == "east" else "east"
    return Outgoing(
        message.topic,
        message.key,
        envelope.model_copy(
            update={
                "event_id": derived_event_id(later, "resent", message.key),
                "occurred_at": later,
                "origin": other,
                "source": f"center:{other}",
            }
        ),
    )


async def test_live_usage_counts_each_request_once_and_replays_to_the_same_digest(
    platform: Settings, tmp_path: Path
) -> None:
    nation = synthetic_nation(40)
    visits = list(national_traffic(nation, start=START, days=2, scale=0.05))
    events = list(proven_by_their_edges(platform, recorded_traffic(visits)))
    requests = [e for e in events if e.envelope.type == "issuance.requested"]
    again = list(
        proven_by_their_edges(platform, (resent_at_the_other_center(m) for m in requests[:50]))
    )
    redelivered = events[:300]

    worker = start_worker(platform, tmp_path / "worker.log", agents="usage")
    try:
        async with producer(platform) as client:
            half = len(events) // 2
            await publish_many(platform, client, events[:half])
            await wait_for_rows(platform, timeout=60)
            os.killpg(worker.pid, signal.SIGKILL)  # in the middle of the stream
            worker.wait()
            worker = start_worker(platform, tmp_path / "worker.log", agents="usage")
            await publish_many(platform, client, [*events[half:], *again, *redelivered])
        await wait_caught_up(platform, "usage", timeout=180)
    finally:
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait()

    async with connect(platform) as connection:
        rows = await connection.fetch(
            "SELECT request_id, center, outcome, reason, notice, store_operator, "
            "outside_counter_hours FROM usage.requests"
        )
        usage = load_projection("usage", platform)
        live = await projection_digest(connection, usage)

    by_id = {r["request_id"]: r for r in rows}
    assert len(rows) == len(visits)
    for visit in visits:
        row = by_id[visit.request.request_id]
        assert row["center"] == visit.center  # the first entry counts, not the one resent
        assert row["outcome"] == ("rejected" if visit.rejection else "issued")
        assert row["reason"] == (visit.rejection.value if visit.rejection else None)
        assert row["notice"] == visit.notice
        assert row["store_operator"] == visit.request.store_operator.value
        assert row["outside_counter_hours"] is visit.outside_counter_hours
    assert Counter(r["notice"] for r in rows) == Counter(v.notice for v in visits)

    async with connect(platform) as connection:
        # The cubes hold exactly the rows' counts, after a kill and redeliveries.
        for cube, key in (
            ("hourly", "store_operator, outcome"),
            ("monthly", "municipality, reason"),
        ):
            summed = await connection.fetch(
                f"SELECT {key}, sum(requests) AS n, sum(delivered) AS d, sum(fees_paid_yen) AS f "
                f"FROM usage.{cube} GROUP BY {key} ORDER BY {key}"
            )
            counted = await connection.fetch(
                f"SELECT {key}, count(*) AS n, count(*) FILTER (WHERE notice = 'delivered') AS d, "
                f"coalesce(sum(fee_paid_yen), 0) AS f FROM usage.requests GROUP BY {key} "
                f"ORDER BY {key}"
            )
            assert [tuple(r) for r in summed] == [tuple(r) for r in counted]

    report = await replay(platform, load_projection("usage", platform))
    assert report.rebuild.events >= len(events)
    async with connect(platform) as connection:
        assert await projection_digest(connection, load_projection("usage", platform)) == live
    # Applying the log once more, from this process, changes nothing either.
    await refresh(platform, load_projection("usage", platform))
    async with connect(platform) as connection:
        assert await projection_digest(connection, load_projection("usage", platform)) == live


async def test_a_notice_before_its_request_still_lands_on_the_request(platform: Settings) -> None:
    """Order across topics is not guaranteed (mirrors, replays): facets fill in any order."""
    nation = synthetic_nation(3)
    visits = list(national_traffic(nation, start=START, days=1, scale=0.01))[:40]
    events = list(proven_by_their_edges(platform, recorded_traffic(visits)))
    backwards = [e for e in reversed(events) if e.envelope.type != "certificate.revoked"]
    async with producer(platform) as client:
        await publish_many(platform, client, backwards)
    await refresh(platform, load_projection("usage", platform))
    async with connect(platform) as connection:
        rows = await connection.fetch(
            "SELECT request_id, day, outcome, notice FROM usage.requests ORDER BY request_id"
        )
    assert len(rows) == len(visits)
    expected = {v.request.request_id: (v.at.date(), v.notice) for v in visits}
    assert {r["request_id"]: (r["day"], r["notice"]) for r in rows} == expected
