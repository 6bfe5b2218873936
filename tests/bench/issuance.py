"""Convenience-store issuance (issue 5): request-to-outcome latency at a steady arrival rate, PDF
drawing included, and the most requests per second this machine sustains.

A municipality with a generated register and a card for every resident; running workers (every
agent, as deployed); a center gateway in this process sending kiosk requests from the shared
workload generator on an open-loop schedule (each request leaves at its planned instant whether
or not earlier ones were answered, as kiosks do), timing each from sending to its outcome.

The workers run as a center deploys them (`bcl worker --detach`): the issuance role (the issuer
and its renderers) and the projections role (every other agent, in the background).
"""

from __future__ import annotations

import asyncio
import gc
import statistics
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta
from datetime import time as dt_time

from infra.processes import stop_pids
from infra.services import start_workers
from pipeline.database import connect
from pipeline.settings import Settings
from producers.center import CenterGateway, Outcome
from producers.workload import kiosk_requests
from schemas.calendar import JST, is_year_end_closure
from schemas.codes import Origin
from schemas.events.issuance import CertificateType, IssuanceRequested
from tests.bench.replica import PeakMemory, bcl, wait_for

SETAGAYA = "131121"  # 世田谷区
RESIDENTS = 5_000
RATES = (50, 100, 200)
SECONDS_PER_RATE = 20
# What a BCL municipality issues at stores: 住民票 and 印鑑 mostly (DOMAIN §8 mix).
Requests = Iterator[tuple[IssuanceRequested, Origin]]
TYPES = {CertificateType.JUMINHYO: 15_300_371, CertificateType.INKAN: 10_687_923}


async def bench_issuance(settings: Settings) -> Sequence[tuple[str, float, str]]:
    work = settings.home / "bench-files"
    register = work / "issuance-register.csv"
    bcl(settings, "municipality", "add", SETAGAYA, "--name", "世田谷区", "--class",
        "special_ward", "--population", "940000", "--joined", "2022-01-04", "--bcl",
        "--offers", "juminhyo,inkan", "--fee", "juminhyo=300@2022-01-04",
        "--fee", "inkan=300@2022-01-04", "--mayor", "世田谷区長 保坂 展人")  # fmt: skip
    bcl(settings, "municipality", "seal-key", "create", SETAGAYA)
    # With seals registered: 印鑑 requests must be issued (and drawn) as often as in life.
    bcl(settings, "workload", "register", SETAGAYA, "--residents", str(RESIDENTS), "--seals",
        "--out", str(register))  # fmt: skip
    workers = start_workers(settings)
    memory = PeakMemory(*(worker.pid for worker in workers))
    rows: list[tuple[str, float, str]] = []
    try:
        bcl(settings, "push", SETAGAYA, str(register), "--full")
        await wait_for(
            settings,
            f"SELECT count(*) FROM replica.residents WHERE municipality = '{SETAGAYA}'",
            RESIDENTS,
        )
        bcl(settings, "certificate", "issue", SETAGAYA, "--all")
        holders = await _holders(settings)
        requests = kiosk_requests(holders, seed=5, types=TYPES)
        outcomes: list[Outcome] = []
        async with CenterGateway(settings, answer_timeout=120) as center:
            await _run(center, requests, [], rate=20, seconds=5)  # warm up: pools, renderers
            # As the workers do once ready: the register and the generator's state are not
            # garbage, and a full collection over them would stall the kiosks' clock.
            gc.collect()
            gc.freeze()
            for rate in RATES:
                latencies = await _run(
                    center, requests, outcomes, rate=rate, seconds=SECONDS_PER_RATE
                )
                p50, p95, p99 = _percentiles(latencies)
                rows += [
                    (f"request → outcome at {rate}/s: p50", p50, "ms"),
                    (f"request → outcome at {rate}/s: p95", p95, "ms"),
                    (f"request → outcome at {rate}/s: p99", p99, "ms"),
                ]
            sustained = await _most_sustained(center, requests, outcomes)
            rows.append(("most requests/s sustained (answered)", sustained, "requests/s"))
            share = 100 * statistics.mean(outcome.issued for outcome in outcomes)
            if share < 50:
                refusals = Counter(outcome.reason for outcome in outcomes if not outcome.issued)
                raise RuntimeError(f"only {share:.0f}% issued; refused: {dict(refusals)}")
            rows.append(("requests issued, PDF drawn (the rest refused)", share, "%"))
    finally:
        stop_pids([worker.pid for worker in workers], grace_seconds=60)
    rows.append(("peak memory: workers with PDF renderers", memory.mib, "MiB"))
    return rows


async def _holders(settings: Settings) -> list[tuple[str, str]]:
    deadline = time.monotonic() + 600
    async with connect(settings) as connection:
        while True:
            rows = await connection.fetch(
                "SELECT municipality, serial FROM certificates.certificates "
                "WHERE municipality = $1 AND kind = 'user_authentication' AND status = 'active' "
                "ORDER BY serial",
                SETAGAYA,
            )
            # Residents of 15 and over hold usable cards; the rest are rejected, as in life.
            if len(rows) >= RESIDENTS * 0.9 or time.monotonic() > deadline:
                return [(r["municipality"], r["serial"]) for r in rows]
            await asyncio.sleep(0.5)


async def _run(
    center: CenterGateway,
    requests: Requests,
    outcomes: list[Outcome],
    *,
    rate: float,
    seconds: float,
) -> list[float]:
    """Send ``rate`` requests a second for ``seconds``; the latencies in ms. The outcomes go to
    ``outcomes``."""
    count = int(rate * seconds)
    latencies: list[float] = []
    started = time.perf_counter()

    async def one(planned: float) -> None:
        delay = planned - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        request, _ = next(requests)
        sent = time.perf_counter()
        outcome = await center.submit(request, at=kiosk_time())
        assert outcome is not None
        latencies.append((time.perf_counter() - sent) * 1000)
        outcomes.append(outcome)

    await asyncio.gather(*(one(started + i / rate) for i in range(count)))
    return latencies


async def _most_sustained(
    center: CenterGateway, requests: Requests, outcomes: list[Outcome]
) -> float:
    """Requests answered per second with far more offered than the machine can take: the
    throughput once the pipeline is saturated, over a window that excludes the ramp."""
    answered: list[float] = []
    stop = time.perf_counter() + 30

    async def kiosk() -> None:
        while time.perf_counter() < stop:
            request, _ = next(requests)
            outcome = await center.submit(request, at=kiosk_time())
            assert outcome is not None
            answered.append(time.perf_counter())
            outcomes.append(outcome)

    await asyncio.gather(*(kiosk() for _ in range(100)))
    window = [t for t in answered if t >= answered[0] + 10]
    return len(window) / (window[-1] - window[0]) if len(window) > 1 else 0.0


def kiosk_time() -> datetime:
    """When the resident asks, as the issuer judges it: the bench's elapsed time from 10:00 of
    the next open day in Japan, inside the service window whenever the bench runs (the issuer
    times a request's wait from when the center received it, not from this instant)."""
    day = datetime.now(JST).date() + timedelta(days=1)
    while is_year_end_closure(day):
        day += timedelta(days=1)
    return datetime.combine(day, dt_time(10), JST) + timedelta(seconds=time.monotonic() - _T0)


_T0 = time.monotonic()


def _percentiles(latencies: list[float]) -> tuple[float, float, float]:
    cuts = statistics.quantiles(latencies, n=100, method="inclusive")
    return cuts[49], cuts[94], cuts[98]
