"""Usage analytics (issue 8): the generator's rate, the usage projection live and on replay, and
`bcl usage` queries over a national month (March 2024: ~3.6 million requests).

The month in the query table is made by the projection's own facet rules from the generator's
visits, in two processes, and loaded by COPY: sending 11 million events through Kafka for it would
measure the pipeline again (that is the live and replay figures) and take most of an hour here.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from datetime import date, timedelta

from consumers.usage.queries import UsageFilter, source_for, usage_report
from consumers.usage.rules import (
    COLUMNS,
    CUBE_KEYS,
    CUBES,
    FACETS,
    MEASURES,
    ROWS,
)
from pipeline.database import Connection, connect
from pipeline.facets import Cells
from pipeline.projection import load_projection
from pipeline.replay import replay
from pipeline.settings import Settings
from producers.workload import (
    Traffic,
    national_traffic,
    recorded_traffic,
    registry_events,
    synthetic_nation,
)
from tests.bench.kiosk_facets import rows_by_rules
from tests.bench.live import live_seconds

MARCH = date(2024, 3, 1)
STREAM_DAYS = int(os.environ.get("BCL_BENCH_USAGE_DAYS", "7"))
STREAM_SCALE = float(os.environ.get("BCL_BENCH_USAGE_SCALE", "0.05"))  # ~130k visits a week
MONTH_SCALE = float(os.environ.get("BCL_BENCH_USAGE_MONTH_SCALE", "1.0"))  # Japan


async def bench_usage(settings: Settings) -> Sequence[tuple[str, float, str]]:
    figures: list[tuple[str, float, str]] = []
    nation = synthetic_nation()

    # 1. The generator alone: visits, then the events they leave in the log.
    started = time.perf_counter()
    visits = list(national_traffic(nation, start=MARCH, days=STREAM_DAYS, scale=STREAM_SCALE))
    visit_seconds = time.perf_counter() - started
    started = time.perf_counter()
    events = [*registry_events(nation), *recorded_traffic(visits)]
    event_seconds = time.perf_counter() - started
    figures.append(("generator: kiosk visits", len(visits) / visit_seconds, "visits/s"))
    figures.append(("generator: recorded events (sealed)", len(events) / event_seconds, "events/s"))

    # 2. Live: a worker running usage alone, the stream published to it.
    live = await live_seconds(settings, "usage", events)
    usage_events = sum(1 for e in events if e.topic.startswith("issuance."))
    figures.append(("usage live (publish → rows, worker)", usage_events / live, "events/s"))

    # 3. Replay.
    report = await replay(settings, load_projection("usage", settings))
    figures.append(("replay usage", report.rebuild.events_per_second, "events/s"))

    # 4. A national month in the table, then the analysts' questions.
    loaded = await load_month(settings)
    figures.append(("national month loaded for queries", loaded, "requests"))
    for name, seconds in await time_queries(settings):
        figures.append((f"query: {name}", seconds * 1000, "ms"))
    return figures


def month_day(day: date) -> tuple[list[tuple[object, ...]], tuple[Cells, ...]]:
    """One day of the national month as usage rows and cube cells, by the projection's rules."""
    traffic = Traffic(synthetic_nation(), scale=MONTH_SCALE)
    return rows_by_rules(traffic.day(day), ROWS, CUBES, FACETS)


async def load_month(settings: Settings) -> float:
    days = [MARCH + timedelta(days=n) for n in range(31)]
    loop = asyncio.get_running_loop()
    total = 0
    cubes: dict[str, Cells] = {cube: {} for cube in CUBE_KEYS}
    async with connect(settings) as connection:
        await connection.execute(
            f"TRUNCATE usage.requests, {', '.join(f'usage.{cube}' for cube in CUBE_KEYS)}"
        )
        with ProcessPoolExecutor(max_workers=2) as pool:
            for made in [loop.run_in_executor(pool, month_day, day) for day in days]:
                rows, day_cubes = await made
                await connection.copy_records_to_table(
                    "requests", schema_name="usage", records=rows, columns=COLUMNS
                )
                for cube, cells in zip(CUBE_KEYS, day_cubes, strict=True):
                    for cell, counts in cells.items():
                        into = cubes[cube].setdefault(cell, [0] * len(counts))
                        cubes[cube][cell] = [a + b for a, b in zip(into, counts, strict=True)]
                total += len(rows)
        for cube, key in CUBE_KEYS.items():
            await copy_cells(connection, cube, key, cubes[cube])
        await connection.execute("VACUUM ANALYZE usage.requests")
        for cube in CUBE_KEYS:
            await connection.execute(f"VACUUM ANALYZE usage.{cube}")
    return total


async def copy_cells(connection: Connection, cube: str, key: Sequence[str], cells: Cells) -> None:
    await connection.copy_records_to_table(
        cube,
        schema_name="usage",
        records=[(*cell, *counts) for cell, counts in cells.items()],
        columns=[*key, *MEASURES],
    )


YOKOHAMA = "141003"
QUERIES: dict[str, tuple[UsageFilter, tuple[str, ...]]] = {
    "national total, March": (UsageFilter(first_day=MARCH, last_day=date(2024, 3, 31)), ()),
    "by operator, March": (
        UsageFilter(first_day=MARCH, last_day=date(2024, 3, 31)),
        ("store_operator",),
    ),
    "by municipality (1,741 rows)": (UsageFilter(), ("municipality",)),
    "by hour and outside counter hours": (UsageFilter(), ("hour", "outside_counter_hours")),
    "by day and certificate type": (UsageFilter(), ("day", "certificate_type")),
    "Yokohama outside counter hours, by operator": (
        UsageFilter(
            municipalities=(YOKOHAMA,),
            first_day=MARCH,
            last_day=date(2024, 3, 31),
            outside_counter_hours=True,
        ),
        ("store_operator",),
    ),
    "rejections by reason and center": (UsageFilter(outcome="rejected"), ("reason", "center")),
    "Yokohama by day and hour": (UsageFilter(municipalities=(YOKOHAMA,)), ("day", "hour")),
    "by store municipality": (UsageFilter(), ("store_municipality",)),
    "by store municipality and hour (the rows)": (UsageFilter(), ("store_municipality", "hour")),
}


async def time_queries(settings: Settings) -> list[tuple[str, float]]:
    timings = []
    async with connect(settings) as connection:
        for name, (usage_filter, group_by) in QUERIES.items():
            source = source_for(usage_filter, group_by).table
            started = time.perf_counter()
            await usage_report(connection, usage_filter, group_by)
            timings.append((f"{name} [{source}]", time.perf_counter() - started))
    return timings
