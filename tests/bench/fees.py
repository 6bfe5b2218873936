"""Fees (issue 6): the fees projection live and on replay, and a fiscal year of generated traffic
for 200 municipalities made into every statement.

The year's rows are made by the fees projection's own facet rules from the generator's visits, in
two processes, and loaded by COPY (tests/bench/kiosk_facets.py says why); the statements are then
read by the same queries `bcl fees` uses, and their totals checked against the rows.
"""

from __future__ import annotations

import asyncio
import functools
import os
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from datetime import date, timedelta

from consumers.fees.queries import month_report, month_settlement, year_report, year_statement_of
from consumers.fees.rules import (
    CUBES,
    FACETS,
    MEASURES,
    MONTHLY_KEY,
    ROWS,
)
from pipeline.database import connect
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

MUNICIPALITIES = int(os.environ.get("BCL_BENCH_FEES_MUNICIPALITIES", "200"))
STREAM_DAYS = int(os.environ.get("BCL_BENCH_FEES_DAYS", "2"))
YEAR_SCALE = float(os.environ.get("BCL_BENCH_FEES_YEAR_SCALE", "1.0"))
FISCAL_YEAR = 2023  # April 2023 – March 2024: inside the generator's national series


async def bench_fees(settings: Settings) -> Sequence[tuple[str, float, str]]:
    figures: list[tuple[str, float, str]] = []
    nation = synthetic_nation(MUNICIPALITIES)

    # 1. Live: a worker running fees alone, two working days of the 200 municipalities.
    visits = national_traffic(nation, start=date(2023, 4, 3), days=STREAM_DAYS)
    events = [*registry_events(nation), *recorded_traffic(visits)]
    live = await live_seconds(settings, "fees", events)
    figures.append(("fees live (publish → rows, worker)", len(events) / live, "events/s"))

    # 2. Replay.
    report = await replay(settings, load_projection("fees", settings))
    figures.append(("replay fees", report.rebuild.events_per_second, "events/s"))

    # 3. The fiscal year, then every statement.
    started = time.perf_counter()
    requests, delivered = await load_year(settings)
    figures.append(
        (f"FY{FISCAL_YEAR}, {MUNICIPALITIES} municipalities: requests", requests, "requests")
    )
    figures.append(("  of which delivered certificates", delivered, "certificates"))
    figures.append(("  made by the fees rules and loaded", time.perf_counter() - started, "s"))
    for name, value, unit in await all_statements(settings, [m.code for m in nation], delivered):
        figures.append((name, value, unit))
    return figures


@functools.cache
def _traffic() -> Traffic:
    return Traffic(synthetic_nation(MUNICIPALITIES), scale=YEAR_SCALE)


def year_day(day: date) -> tuple[list[tuple[object, ...]], Cells]:
    """One day of the year as fees rows and monthly cells, by the projection's rules."""
    rows, (cells,) = rows_by_rules(_traffic().day(day), ROWS, CUBES, FACETS)
    return rows, cells


async def load_year(settings: Settings) -> tuple[int, int]:
    first = date(FISCAL_YEAR, 4, 1)
    days = [first + timedelta(days=n) for n in range((date(FISCAL_YEAR + 1, 4, 1) - first).days)]
    loop = asyncio.get_running_loop()
    requests = 0
    cube: Cells = {}
    async with connect(settings) as connection:
        await connection.execute("TRUNCATE fees.requests, fees.monthly")
        with ProcessPoolExecutor(max_workers=2) as pool:
            for made in [loop.run_in_executor(pool, year_day, day) for day in days]:
                rows, cells = await made
                await connection.copy_records_to_table(
                    "requests", schema_name="fees", records=rows, columns=ROWS.columns
                )
                for cell, values in cells.items():
                    into = cube.setdefault(cell, [0] * len(values))
                    cube[cell] = [a + b for a, b in zip(into, values, strict=True)]
                requests += len(rows)
        await connection.copy_records_to_table(
            "monthly",
            schema_name="fees",
            records=[(*cell, *values) for cell, values in cube.items()],
            columns=[*MONTHLY_KEY, *MEASURES],
        )
        await connection.execute("VACUUM ANALYZE fees.requests")
        await connection.execute("VACUUM ANALYZE fees.monthly")
    delivered = sum(values[MEASURES.index("certificates")] for values in cube.values())
    return requests, delivered


async def all_statements(
    settings: Settings, codes: Sequence[str], delivered: int
) -> list[tuple[str, float, str]]:
    """Every municipality's twelve months and its year, and the two all-municipality reports;
    the statements' certificates must add up to the rows'."""
    months = [date(FISCAL_YEAR + (m < 4), m, 1) for m in (*range(4, 13), 1, 2, 3)]
    figures: list[tuple[str, float, str]] = []
    async with connect(settings) as connection:
        started = time.perf_counter()
        year = await year_report(connection, FISCAL_YEAR)
        figures.append(("bcl fees report --fiscal-year (all municipalities)", _ms(started), "ms"))
        certificates = year.columns.index("certificates")
        assert sum(int(row[certificates]) for row in year.rows) == delivered  # type: ignore[call-overload]
        started = time.perf_counter()
        reports = [await month_report(connection, month) for month in months]
        figures.append(("bcl fees report --month (each month)", _ms(started) / 12, "ms"))
        column = reports[0].columns.index("certificates")
        assert sum(int(r[column]) for report in reports for r in report.rows) == delivered  # type: ignore[call-overload]
        started = time.perf_counter()
        count = 0
        for code in codes:
            assert await year_statement_of(connection, code, FISCAL_YEAR) is not None
            for month in months:
                await month_settlement(connection, code, month)
            count += 1 + len(months)
        seconds = time.perf_counter() - started
    figures.append((f"every statement ({count:,}: 12 months and the year of each)", seconds, "s"))
    figures.append(("  one statement", seconds / count * 1000, "ms"))
    return figures


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000
