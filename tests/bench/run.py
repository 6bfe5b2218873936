"""`make bench`: throughput figures for this machine, each next to the ceilings of the same run.

Starts its own embedded services (the durable log by default, as `bcl up` does; or uses
BCL_KAFKA_BOOTSTRAP / BCL_DATABASE_URL), publishes a workload from the shared generator, and
measures. Prints a table and a Markdown block
for BENCHMARKS.md, and writes the figures to .bcl/bench/results.json.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import re
import signal
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import asyncpg
from rich.console import Console
from rich.table import Table

from infra.services import down, up
from pipeline.collection import collect_seldom
from pipeline.database import connect
from pipeline.kafka import create_topics, producer
from pipeline.migrations import migrate_all
from pipeline.publish import proven_by_their_edges, publish_many
from pipeline.settings import PROJECT_ROOT, Settings
from pipeline.topics import SOURCE_TOPICS
from producers.workload import platform_sample
from schemas.codec import encode_event
from tests.bench.ceilings import Consumed, CopyCeilings, copy_rates, raw_consume, raw_produce
from tests.bench.certificates import bench_certificates
from tests.bench.disaster import bench_disaster
from tests.bench.failover import bench_failover
from tests.bench.fees import bench_fees
from tests.bench.issuance import bench_issuance
from tests.bench.log_storage import bench_log_storage
from tests.bench.proofs import bench_proofs
from tests.bench.replica import PeakMemory, bcl, bench_replica, replayed_rate
from tests.bench.usage import bench_usage
from tests.helpers import start_worker, wait_for_log_line

console = Console()
EVENTS = int(os.environ.get("BCL_BENCH_EVENTS", "100000"))
RESIDENTS = int(os.environ.get("BCL_BENCH_RESIDENTS", "1000000"))
CHANGES = int(os.environ.get("BCL_BENCH_CHANGES", "10000"))
CRL_ENTRIES = int(os.environ.get("BCL_BENCH_CRL_ENTRIES", "1000000"))
SECTIONS = os.environ.get(
    "BCL_BENCH_ONLY",
    "platform,proofs,log,replica,certificates,issuance,usage,fees,disaster,replays,failover",
).split(",")


def shown(value: float) -> str:
    """Large figures whole, small ones (microseconds per event) to a tenth."""
    return f"{value:,.0f}" if value >= 100 else f"{value:.1f}"


@dataclass
class Figures:
    rows: list[tuple[str, float, str, str]] = field(default_factory=list)

    def add(self, name: str, value: float, unit: str, ratio: str = "") -> None:
        self.rows.append((name, value, unit, ratio))
        console.print(f"  {name}: {shown(value)} {unit} {ratio}")


async def wait_for_rows(settings: Settings, expected: int, timeout: float = 900) -> float:
    """When the journal holds ``expected`` events. Polled on its tracking rows, which commit
    with the rows they count: a count(*) of the growing table 20 times a second would take a
    third of a core from the worker it measures. The rows are counted once at the end."""
    connection = await asyncpg.connect(settings.dsn)
    try:
        deadline = time.monotonic() + timeout
        while True:
            applied = await connection.fetchval(
                "SELECT coalesce(sum(last_offset + 1), 0) FROM journal.projection_offsets "
                "WHERE cluster = $1",
                settings.center,
            )
            if applied >= expected:
                finished = time.perf_counter()
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"journal applied {applied} of {expected} after {timeout}s")
            await asyncio.sleep(0.05)
        rows = await connection.fetchval("SELECT count(*) FROM journal.events")
        if rows != expected:
            raise AssertionError(f"the journal holds {rows} events, {expected} were published")
        return finished
    finally:
        await connection.close()


@dataclass(frozen=True)
class Ceilings:
    consume: Consumed
    copy: CopyCeilings

    def versus(self, rate: float, consume: Consumed | None = None) -> str:
        """``rate`` as shares of raw consume (of ``consume``'s events, by default the platform
        sample's) and of COPY into an unindexed table."""
        read = consume or self.consume
        return (
            f"({rate / read.per_second:.1%} of raw consume, {rate / self.copy.staging:.1%} of COPY)"
        )


async def bench_platform(settings: Settings, figures: Figures) -> Ceilings:
    """Publish with no worker (an outage), start the journal's worker (its catch-up), publish as
    much again to it running (live); then the ceilings and a replay over all of it."""
    # Proven as they are generated, as an edge proves what it publishes.
    proven = list(proven_by_their_edges(settings, platform_sample(2 * EVENTS, seed=1)))
    behind, streamed = proven[:EVENTS], proven[EVENTS:]
    console.print(f"[bold]publish[/bold]: {EVENTS:,} events, no worker running")
    started = time.perf_counter()
    async with producer(settings) as client:
        sent = await publish_many(settings, client, behind)
    publish_rate = sent / (time.perf_counter() - started)

    log = settings.center_home / "bench-worker.log"
    worker = start_worker(settings, log, agents="journal")
    memory = PeakMemory(worker.pid)
    try:
        await wait_for_log_line(log, "caught up from the log", timeout=900)
        caught_up = re.search(
            r"caught up from the log: (\d+) events in ([0-9.]+)s", log.read_text()
        )
        assert caught_up is not None
        catch_up_rate = int(caught_up.group(1)) / float(caught_up.group(2))
        console.print(
            f"[bold]live journal[/bold]: publishing {EVENTS:,} events to a running worker"
        )
        started = time.perf_counter()
        async with producer(settings) as client:
            sent += await publish_many(settings, client, streamed)
        applied = await wait_for_rows(settings, sent)
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(60)
    live_rate = len(streamed) / (applied - started)

    console.print("[bold]ceilings[/bold] (same run, same events, nothing else running)")
    consume = await raw_consume(settings, list(SOURCE_TOPICS))
    assert consume.events >= sent, (consume.events, sent)
    copy = await copy_rates(settings)
    produce = await raw_produce(
        settings,
        [(m.key.encode(), encode_event(m.envelope)) for m in streamed],
        partitions=settings.partitions,
    )
    ceilings = Ceilings(consume, copy)
    figures.add("raw aiokafka consume (tuned fetches, best of 3)", consume.per_second, "events/s",
                f"({consume.mb_per_second:,.0f} MB/s, {consume.bytes / consume.events:,.0f} B "
                "an event)")  # fmt: skip
    figures.add("raw aiokafka produce of the same events (1 MiB batches, best of 2)",
                produce.per_second, "events/s",
                f"({produce.mb_per_second:,.0f} MB/s)")  # fmt: skip
    figures.add("Postgres COPY, unindexed staging table", copy.staging, "rows/s")
    figures.add("Postgres COPY, the journal's key and indexes", copy.indexed, "rows/s")

    console.print("[bold]replay journal[/bold] (bcl replay journal)")
    _, replay_mib, output = bcl(settings, "replay", "journal")
    replay_rate = replayed_rate(output)

    figures.add("generator → Kafka publish (no worker running)", publish_rate, "events/s",
                ceilings.versus(publish_rate))  # fmt: skip
    figures.add("catch-up journal (worker started after an outage)", catch_up_rate, "events/s",
                ceilings.versus(catch_up_rate)[:-1]
                + f", {catch_up_rate / replay_rate:.0%} of replay)")  # fmt: skip
    figures.add("live journal (publish → rows, worker)", live_rate, "events/s",
                ceilings.versus(live_rate)[:-1]
                + f", {live_rate / produce.per_second:.1%} of raw produce)")  # fmt: skip
    figures.add("replay journal", replay_rate, "events/s", ceilings.versus(replay_rate))
    figures.add("peak memory: worker (journal)", memory.mib, "MiB")
    figures.add("peak memory: bcl replay journal", replay_mib, "MiB")
    return ceilings


# Issue 24's targets: (what, figure, the ceiling or figure it is set against, at least (a share)
# or at most (a value)).
TARGETS = (
    ("replay journal", "replay journal", "raw aiokafka consume (tuned fetches, best of 3)", 0.30),
    ("replay replica", "replay replica (bcl replay replica)",
     "raw aiokafka consume of resident events (tuned, best of 3)", 0.15),
    ("live journal", "live journal (publish → rows, worker)",
     "raw aiokafka consume (tuned fetches, best of 3)", 0.20),
    ("snapshot end to end", "snapshot end to end (push start → replica rows)",
     "raw aiokafka consume of resident events (tuned, best of 3)", 0.08),
    ("bcl push", "push 1M snapshot → Kafka (bcl push --full)",
     "raw aiokafka consume of resident events (tuned, best of 3)", 0.10),
    ("catch-up after an outage", "catch-up journal (worker started after an outage)",
     "replay journal", 0.50),
)  # fmt: skip
LIMITS = (
    ("peak memory of bcl replay replica", "peak memory: bcl replay replica", 600.0, "MiB"),
    ("takeover, crashed center", "failover outage: takeover", 5000.0, "ms"),
    ("issuance p99 at 100 requests/s", "request → outcome at 100/s: p99", 250.0, "ms"),
)


def target_rows(figures: Figures) -> list[str]:
    """Issue 24's targets as Markdown rows, each figure set against its ceiling of this run."""
    found = {name: value for name, value, _, _ in figures.rows}
    rows = []
    for what, figure, against, share in TARGETS:
        if figure in found and against in found:
            reached = found[figure] / found[against]
            verdict = "met" if reached >= share else "not met"
            rows.append(f"| {what} | {reached:.1%} of {against} | ≥ {share:.0%} | {verdict} |")
    for what, figure, most, unit in LIMITS:
        if figure in found:
            verdict = "met" if found[figure] <= most else "not met"
            rows.append(
                f"| {what} | {shown(found[figure])} {unit} | ≤ {most:,.0f} {unit} | {verdict} |"
            )
    return rows


def machine() -> str:
    return f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"


def loop_seconds() -> float:
    """One core's speed now: 10,000,000 additions in Python. The host can lend this machine
    less than its cores for minutes at a time (the same loop's time varied by half within one
    evening); a run whose loop slowed measured every figure on a slower machine."""
    started = time.perf_counter()
    total = 0
    for number in range(10_000_000):
        total += number
    return time.perf_counter() - started


async def main() -> None:
    collect_seldom()  # as every `bcl` process does: some sections replay in this process
    loop_at_start = loop_seconds()
    home = Path(tempfile.mkdtemp(prefix="bcl-bench-"))
    settings = Settings(home=home)
    services = up(settings)
    try:
        settings = Settings(home=home)
        async with connect(settings) as connection:
            await migrate_all(connection)
        await create_topics(settings)
        console.print(f"bench on {machine()}; broker {services.kafka_bootstrap}")
        figures = Figures()
        ceilings = await bench_platform(settings, figures)

        def add_all(
            rows: Sequence[tuple[str, float, str]], consume: Consumed | None = None
        ) -> None:
            for name, value, unit in rows:
                ratio = (
                    ceilings.versus(value, consume)
                    if unit in ("events/s", "records/s", "entries/s")
                    else ""
                )
                figures.add(name, value, unit, ratio)

        if "proofs" in SECTIONS:
            console.print("[bold]proofs of origin[/bold]: per event, on the platform sample")
            add_all(bench_proofs(settings, min(EVENTS, 20_000)))
        if "log" in SECTIONS:
            console.print(
                f"[bold]log storage[/bold]: {EVENTS:,} events on the durable log and in memory"
            )
            for row in await bench_log_storage(EVENTS):
                figures.add(*row)
        if "replica" in SECTIONS:
            console.print(
                f"[bold]replica[/bold]: {RESIDENTS:,} residents, then {CHANGES:,} changes"
            )
            rows, residents = await bench_replica(settings, RESIDENTS, CHANGES)
            figures.add("raw aiokafka consume of resident events (tuned, best of 3)",
                        residents.per_second, "events/s",
                        f"({residents.mb_per_second:,.0f} MB/s, "
                        f"{residents.bytes / residents.events:,.0f} B an event)")  # fmt: skip
            add_all(rows, residents)
        if "certificates" in SECTIONS:
            console.print(f"[bold]certificates[/bold]: a CRL of {CRL_ENTRIES:,} entries")
            add_all(await bench_certificates(settings, CRL_ENTRIES))
        if "issuance" in SECTIONS:
            console.print("[bold]issuance[/bold]: kiosk requests through a center, PDFs drawn")
            add_all(await bench_issuance(settings))
        if "usage" in SECTIONS:
            console.print("[bold]usage[/bold]: national traffic, live, replay, a month of queries")
            add_all(await bench_usage(settings))
        if "fees" in SECTIONS:
            console.print("[bold]fees[/bold]: live, replay, a fiscal year of 200 municipalities")
            add_all(await bench_fees(settings))
        if "disaster" in SECTIONS:
            console.print("[bold]disaster[/bold]: a 300,000-resident ledger seeded, check-ins")
            add_all(await bench_disaster(settings))
        if "replays" in SECTIONS:
            console.print("[bold]replays[/bold]: the other projections, over all the log holds")
            for name in ("registry", "certificates", "revocations", "issuer"):
                _, mib, output = bcl(settings, "replay", name)
                add_all([(f"replay {name} (bcl replay {name})", replayed_rate(output), "events/s")])
                figures.add(f"peak memory: bcl replay {name}", mib, "MiB")
        if "failover" in SECTIONS:
            console.print(
                "[bold]failover[/bold]: the drill on two centers of its own, both scenarios"
            )
            add_all(await bench_failover())
    finally:
        down(settings)
    loop_at_end = loop_seconds()
    figures.add("one core's speed: 10M Python additions, at the start", loop_at_start * 1e3, "ms")
    figures.add("one core's speed: 10M Python additions, at the end", loop_at_end * 1e3, "ms")

    table = Table(title=f"make bench ({EVENTS:,} events)")
    for column in ("figure", "value", "unit", "versus ceiling"):
        table.add_column(column)
    for name, value, unit, ratio in figures.rows:
        table.add_row(name, shown(value), unit, ratio)
    console.print(table)
    # Plain prints: the terminal's width must not wrap a Markdown row.
    print("\nMarkdown for BENCHMARKS.md:\n")
    print("| figure | value | unit | versus ceiling |\n|---|---:|---|---|")
    for name, value, unit, ratio in figures.rows:
        print(f"| {name} | {shown(value)} | {unit} | {ratio} |")
    print("\nIssue 24's targets, against this run's ceilings:\n")
    print("| target | reached | asked | |\n|---|---:|---|---|")
    for row in target_rows(figures):
        print(row)
    results = PROJECT_ROOT / ".bcl" / "bench" / "results.json"
    results.parent.mkdir(parents=True, exist_ok=True)
    results.write_text(
        json.dumps({"machine": machine(), "events": EVENTS, "figures": figures.rows}, indent=2)
    )


if __name__ == "__main__":
    asyncio.run(main())
