"""The failover drill: kiosk traffic through both centers, one center taken down mid-stream,
served by the other, brought back and levelled, then the centers compared.

Two scenarios (DESIGN §6):

- ``outage``: the center crashes: its broker, the store holding its log and its worker are
  killed at once (SIGKILL). They restart from their data (`bcl up`, the workers) and catch up;
  nothing acknowledged may be lost.
- ``lost``: the center's broker is killed and its log destroyed with the store's data, as a
  lost disk would. An empty broker starts, the center's own
  topics are restored from the survivor's mirrored copies (``restore_from_copies``), the mirrors
  restart, and every projection is rebuilt by replay. What the mirror had not copied when the
  broker died is gone: the drill lists exactly those events (the recovery point). To list them
  exactly, the failure is made at a quiet instant: the kiosks' sends to the center are held (a
  few milliseconds), its worker and the mirror out of it are stopped, the tail the mirror had not
  copied is read, and only then is the broker killed.

The drill works on the centers ``bcl up --centers east,west`` started, through their PID files.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Literal
from uuid import UUID

from aiokafka import ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError

from infra import services
from infra.mirror import (
    CENTER_HEADER,
    OFFSET_HEADER,
    Mirror,
    mirror_lag,
    positions_reached,
    source_offset,
)
from infra.processes import read_pid_file, stop_pid, stop_pids
from pipeline.database import connect
from pipeline.digest import projection_digest
from pipeline.kafka import create_topics, high_watermarks, partitions_of, reader, start_producer
from pipeline.migrations import migrate_all
from pipeline.projection import PROJECTION_MODULES, load_projection
from pipeline.replay import replay
from pipeline.runner import discard_undelivered_decisions
from pipeline.settings import Settings
from pipeline.status import projection_lag, wait_until_applied
from pipeline.topics import ISSUANCE_OUTCOMES
from producers.center import CenterError, CenterRouter, Outcome, Routed
from producers.kiosk_day import KioskDayReport, card_holders, report_notice
from producers.workload import Traffic, Visit
from schemas.codec import EventDecodeError, decode_event
from schemas.codes import Origin
from schemas.events.issuance import IssuanceIssued, IssuanceRejected

log = logging.getLogger("bcl.failover")

Scenario = Literal["outage", "lost"]
COMPARED = ("replica", "certificates", "fees", "usage")  # projections whose rows name no topic
Progress = Callable[[str], None]


class DrillError(RuntimeError):
    """The drill cannot run or its centers did not level; the message says what to do."""


@dataclass(frozen=True)
class LoggedEvent:
    topic: str
    partition: int
    offset: int
    type: str
    event_id: str


@dataclass
class DrillReport:
    scenario: Scenario
    failed: Origin
    kiosks: KioskDayReport
    visits: int = 0
    served: int = 0
    served_during_outage: int = 0
    rerouted: int = 0  # visits started again at the other center
    unanswered: int = 0  # visits no center answered
    takeover_seconds: float = 0.0  # failure → first visit of the failed center's kiosks served
    outage_seconds: float = 0.0
    catch_up_seconds: float = 0.0  # the center back → every projection of both centers level
    catch_up_events: int = 0
    mirror_lag_at_failure: int | None = None  # read at a lost center's failure only
    lost: list[LoggedEvent] = field(default_factory=list)
    # Kiosk notices (delivered, cancelled) of decisions that were lost with a center's log.
    notices_of_lost_decisions: int = 0
    expired: int = 0  # requests the failed center accepted, answered nobody, expired on return
    cancelled_after_giving_up: int = 0
    duplicate_outcomes: int = 0
    double_charges: list[list[str]] = field(default_factory=list)  # each visit's request ids
    digests: dict[str, dict[Origin, str]] = field(default_factory=dict)

    @property
    def catch_up_events_per_second(self) -> float:
        return self.catch_up_events / self.catch_up_seconds if self.catch_up_seconds else 0.0

    @property
    def digests_equal(self) -> bool:
        return all(len(set(by_center.values())) == 1 for by_center in self.digests.values())


@dataclass
class _Visited:
    visit: Visit
    routed: Routed
    answered_at: float


async def run_drill(
    east: Settings,
    west: Settings,
    codes: Sequence[str],
    day: date,
    *,
    scenario: Scenario,
    failed: Origin = "east",
    scale: float = 1.0,
    kiosks: int = 8,
    fail_after: float = 0.3,
    outage_seconds: float = 15.0,
    mirror_stall: float = 2.0,
    seed: int = 7,
    level_timeout: float = 600.0,
    progress: Progress | None = None,
) -> DrillReport:
    """Run the drill on the two running centers; ``codes``' card holders come to the kiosks on
    ``day``. The center ``failed`` fails once ``fail_after`` of the visits are answered, stays
    down ``outage_seconds``, and is brought back."""
    say = progress or (lambda line: None)
    centers: dict[Origin, Settings] = {east.center: east, west.center: west}
    down, survivor = centers[failed], next(c for n, c in centers.items() if n != failed)
    report = DrillReport(scenario, failed, KioskDayReport(day))
    held: list[LoggedEvent] = []
    nation, holders = await card_holders(survivor, codes, day)
    visits = Traffic(nation, scale=scale, seed=seed, holders=holders).day(day)
    report.visits = len(visits)
    if not visits:
        raise DrillError("the day has no kiosk visits; raise --scale")
    say(f"{len(visits):,} kiosk visits on {day}; {failed} fails after {fail_after:.0%} of them")
    kiosk_wait = down.answer_window + 2.0
    done: list[_Visited] = []
    # Notices a kiosk could not send (the center went down after answering): sent on its return.
    unsent: list[tuple[Origin, Visit, Outcome]] = []
    async with CenterRouter(centers, kiosk_wait=kiosk_wait) as router:
        pending = iter(visits)
        reached = asyncio.Event()

        async def kiosk() -> None:
            for visit in pending:
                routed = await router.submit(visit.request, visit.center, at=visit.at)
                done.append(_Visited(visit, routed, time.monotonic()))
                if routed.outcome is not None and routed.center is not None:
                    try:
                        await asyncio.wait_for(
                            report_notice(
                                router.gateways[routed.center], visit, routed.outcome,
                                report.kiosks,
                            ),
                            kiosk_wait,
                        )  # fmt: skip
                    except (TimeoutError, KafkaError, OSError, CenterError):
                        unsent.append((routed.center, visit, routed.outcome))
                if len(done) >= fail_after * len(visits):
                    reached.set()

        traffic = [asyncio.create_task(kiosk()) for _ in range(kiosks)]
        await _first_of(reached, traffic)
        # The failure.
        failed_at = time.monotonic()
        if scenario == "outage":
            _crash(down)
            say(f"{failed}: broker, its log's store and its worker killed (SIGKILL)")
        else:
            report.mirror_lag_at_failure, held = await _lose(down, survivor, router, mirror_stall)
            say(
                f"{failed}: broker and its log gone; the mirror lagged "
                f"{report.mirror_lag_at_failure:,} events behind"
            )
        await asyncio.sleep(outage_seconds)
        # The return.
        back_at = time.monotonic()
        if scenario == "outage":
            services.up(down)
            say(f"{failed}: broker and store restarted from their data")
        else:
            down, replayed = await _rebuild(down, survivor, say)
            centers[failed] = down
            await router.reconnect(failed, down)
            report.catch_up_events += replayed
        report.catch_up_events += await _behind(down)
        workers = services.start_workers(down)
        say(
            f"{failed}: workers started (pids {', '.join(str(w.pid) for w in workers)}); "
            f"{report.catch_up_events:,} events to catch up"
        )
        await asyncio.gather(*traffic)
        if not await _level(centers, level_timeout):
            raise DrillError(f"the centers were not level after {level_timeout:g} s")
        report.catch_up_seconds = time.monotonic() - back_at
        report.outage_seconds = back_at - failed_at
        report.cancelled_after_giving_up = await router.settle_abandoned()
        for center, visit, outcome in unsent:
            gateway = router.gateways[center]
            try:
                await report_notice(gateway, visit, outcome, report.kiosks)
            except CenterError as error:
                if scenario == "lost" and await gateway.outcome(outcome.request_id) is None:
                    # The decision went with the lost log before the mirror copied it (it is
                    # among the lost events): the kiosk's notice has nothing left to settle.
                    report.notices_of_lost_decisions += 1
                    continue
                raise DrillError(
                    f"a kiosk's notice was refused on the center's return: {error}"
                ) from None
        # When the kiosks found the failed center ready again (the router's probe).
        reopened = min(
            (ready for center, _, ready in router.outages if center == failed and ready > back_at),
            default=time.monotonic(),
        )
    if (report.cancelled_after_giving_up or unsent) and not await _level(centers, level_timeout):
        raise DrillError(f"the centers were not level after {level_timeout:g} s")
    # What the failed center acknowledged before it failed and no longer holds: for an outage,
    # everything the mirror had copied out of it (and more) must still be there; for a lost
    # center, what it held at the failure.
    before = held if scenario == "lost" else await logged_events(survivor, _copies(down, survivor))
    kept = {e.event_id for e in await logged_events(down, own_topics(down))}
    report.lost = [e for e in before if e.event_id not in kept]
    _tally(report, done, failed_at, reopened)
    await _judge(report, centers, done)
    return report


async def _first_of(reached: asyncio.Event, traffic: Sequence[asyncio.Task[None]]) -> None:
    waiting = asyncio.create_task(reached.wait())
    await asyncio.wait([waiting, *traffic], return_when=asyncio.FIRST_COMPLETED)
    waiting.cancel()
    for task in traffic:
        if task.done() and task.exception() is not None:
            raise DrillError(f"a kiosk failed before the failure: {task.exception()}")


def _copies(source: Settings, target: Settings) -> list[str]:
    return [target.mirrored(source.center, spec.name) for spec in Mirror(source, target).specs]


def _broker_pid(center: Settings) -> int:
    pid = services.status(center)["broker"]["pid"]
    if pid is None:
        raise DrillError(
            f"{center.center} has no embedded broker: run `bcl up --centers east,west`"
        )
    return pid


def _crash(center: Settings) -> None:
    """Kill the center's broker, the store holding its log and its workers at once."""
    store = services.status(center).get("storage")
    if store is None or store["pid"] is None:
        raise DrillError(
            f"{center.center}'s log is not durable (BCL_BROKER_STORAGE=memory): a crash would "
            "lose it; the outage drill needs the default durable log"
        )
    workers = services.worker_pids(center)
    if not workers:
        raise DrillError(f"{center.center} has no worker running: run `bcl up --centers east,west`")
    stop_pids([_broker_pid(center), store["pid"], *workers], grace_seconds=0, sig=signal.SIGKILL)


def _mirror_pid(source: Settings, target: Settings) -> int | None:
    return read_pid_file(services.mirror_pid_file(source, target))


async def _lose(
    down: Settings, survivor: Settings, router: CenterRouter, mirror_stall: float
) -> tuple[int, list[LoggedEvent]]:
    """Kill ``down``'s broker at a quiet instant; returns the mirror's lag at that instant and
    every event the broker held.

    0. Stall the mirror out of the center for ``mirror_stall`` seconds (SIGSTOP) while traffic
       goes on, as over a slow link: the failure finds the copy behind, as a real one may.
    1. Hold the kiosks' sends to the center until each one in flight is acknowledged.
    2. Stop the center's worker (SIGSTOP) and kill the mirror copying out of it (SIGKILL), then
       give the broker a moment to finish what they had sent: nobody writes to its topics now.
    3. Read the mirror's lag (what the copy in the survivor lacks: the recovery point) and
       every event of the center's own topics.
    4. Kill the broker and the worker and destroy the log (``services.destroy_log``); let the
       kiosks send again (to the survivor: the center does not answer).
    """
    gateway = router.gateways[down.center]
    mirror = _mirror_pid(down, survivor)
    # 0.
    if mirror is not None and mirror_stall > 0:
        os.kill(mirror, signal.SIGSTOP)
        await asyncio.sleep(mirror_stall)
    # 1.
    await gateway.hold()
    try:
        # 2.
        workers = services.worker_pids(down)
        for worker in workers:
            os.kill(worker, signal.SIGSTOP)
        if mirror is not None:
            stop_pid(mirror, grace_seconds=0, sig=signal.SIGKILL)
        await asyncio.sleep(1.0)
        # 3.
        lag = sum((await mirror_lag(down, survivor)).values())
        held = await logged_events(down, own_topics(down))
        # 4.
        stop_pid(_broker_pid(down), grace_seconds=0, sig=signal.SIGKILL)
        stop_pids(workers, grace_seconds=0, sig=signal.SIGKILL)
        services.destroy_log(down)
    finally:
        gateway.release()
    return lag, held


def own_topics(center: Settings) -> list[str]:
    """The center's own source topics (not the copies of the other's)."""
    return [center.topic(spec.name) for spec in Mirror(center, center).specs]


async def whole_log(
    settings: Settings, topics: Sequence[str]
) -> AsyncIterator[tuple[TopicPartition, list[ConsumerRecord[bytes, bytes]]]]:
    """The records of the physical ``topics`` from their start to their end as of now, in
    batches per partition."""
    async with reader(settings) as client:
        partitions = await partitions_of(client, list(topics))
        ends = await high_watermarks(client, partitions)
        holding = [tp for tp in partitions if ends[tp] > 0]
        client.assign(holding)
        for tp in holding:
            client.seek(tp, 0)
        while not all(await positions_reached(client, holding, ends)):
            for tp, records in (await client.getmany(timeout_ms=1000)).items():
                yield tp, [r for r in records if r.offset < ends[tp]]


async def logged_events(settings: Settings, topics: Sequence[str]) -> list[LoggedEvent]:
    """Every record of the physical ``topics`` in ``settings``' cluster, as far as they go now."""
    found: list[LoggedEvent] = []
    async for tp, records in whole_log(settings, topics):
        found.extend(_logged(tp, r.offset, r.value) for r in records)
    return sorted(found, key=lambda e: (e.topic, e.partition, e.offset))


def _logged(tp: TopicPartition, offset: int, value: bytes | None) -> LoggedEvent:
    try:
        envelope = decode_event(value or b"").envelope
        kind, event_id = envelope.type, str(envelope.event_id)
    except EventDecodeError:
        kind, event_id = "(undecodable)", ""
    return LoggedEvent(tp.topic, tp.partition, offset, kind, event_id)


async def _rebuild(down: Settings, survivor: Settings, say: Progress) -> tuple[Settings, int]:
    """Bring a lost center back: an empty broker, its own topics restored from the survivor's
    copies, the mirrors restarted, every projection replayed (the worker is not running).
    Returns its settings (its new broker) and how many events the projections replayed."""
    back_in = _mirror_pid(survivor, down)
    if back_in is not None:
        # It was copying into the broker that died, and would write into the new one, on the
        # same address, before the center's own topics are restored.
        stop_pid(back_in, grace_seconds=2)
    services.up(down)
    fresh = Settings(**dict(down))  # the new broker's address, from services.json
    async with connect(fresh) as connection:
        await migrate_all(connection)
        # Decisions committed but never published belong to the log that was lost: their
        # requests are lost or expired with it, and the kiosks went to the other center.
        discarded = await discard_undelivered_decisions(connection)
    if discarded:
        say(f"{down.center}: {discarded:,} undelivered decisions discarded with the lost log")
    await create_topics(fresh)
    restored = await restore_from_copies(survivor, fresh)
    say(f"{down.center}: new broker; {restored:,} events restored from {survivor.center}'s copies")
    services.start_mirror(survivor, fresh)
    services.start_mirror(fresh, survivor)
    while True:  # the survivor's own topics copied into the rebuilt center before the replay
        if not sum((await mirror_lag(survivor, fresh)).values()):
            break
        await asyncio.sleep(0.5)
    replayed = 0
    for name in PROJECTION_MODULES:
        result = await replay(fresh, load_projection(name, fresh))
        replayed += result.events
        say(f"{down.center}: replayed {name} ({result.events:,} events)")
    return fresh, replayed


async def restore_from_copies(survivor: Settings, rebuilt: Settings) -> int:
    """Write the survivor's copies of ``rebuilt``'s source topics back into ``rebuilt``'s
    emptied cluster, each record at the offset it had (the copy names it), without the
    mirror's headers; returns how many."""
    copier = Mirror(rebuilt, survivor)
    restored = 0
    producer = await start_producer(rebuilt, linger_ms=2)
    try:
        copies = [copier.copy_of(s.name) for s in copier.specs]
        async for tp, records in whole_log(survivor, copies):
            target = rebuilt.topic(tp.topic.removeprefix(survivor.topic(f"{rebuilt.center}.")))
            futures = [
                await producer.send(
                    target,
                    record.value,
                    key=record.key,
                    partition=tp.partition,
                    timestamp_ms=record.timestamp,
                    headers=[
                        (k, v)
                        for k, v in record.headers or ()
                        if k not in (CENTER_HEADER, OFFSET_HEADER)
                    ],
                )
                for record in records
            ]
            landed = await asyncio.gather(*futures)
            for record, metadata in zip(records, landed, strict=True):
                if metadata.offset != source_offset(record.headers):
                    raise DrillError(
                        f"{target}[{tp.partition}]: the copy of offset "
                        f"{source_offset(record.headers)} landed at {metadata.offset}; "
                        "the copy is not contiguous from the log's start"
                    )
            restored += len(landed)
    finally:
        await producer.stop()
    return restored


async def _behind(center: Settings) -> int:
    """Events the center's projections have yet to apply, summed."""
    total = 0
    for name in PROJECTION_MODULES:
        total += max(0, (await projection_lag(center, load_projection(name, center))).lag)
    return total


async def _level(centers: dict[Origin, Settings], timeout: float) -> bool:
    """Wait until the mirrors have copied everything both ways and every projection of both
    centers has applied its log."""
    deadline = time.monotonic() + timeout
    pairs = [(a, b) for a in centers.values() for b in centers.values() if a is not b]
    while time.monotonic() < deadline:
        lags = [sum((await mirror_lag(a, b)).values()) for a, b in pairs]
        if not any(lags):
            break
        await asyncio.sleep(0.5)
    else:
        return False
    for center in centers.values():
        projections = [load_projection(n, center) for n in PROJECTION_MODULES]
        if not await wait_until_applied(center, projections, max(1.0, deadline - time.monotonic())):
            return False
    return True


def _tally(report: DrillReport, done: list[_Visited], failed_at: float, back_at: float) -> None:
    served_by: Counter[str] = Counter()
    for visited in done:
        routed = visited.routed
        if routed.outcome is None:
            report.unanswered += 1
            continue
        report.served += 1
        served_by[routed.center or ""] += 1
        if len(routed.attempts) > 1:
            report.rerouted += 1
        if failed_at <= visited.answered_at <= back_at:
            report.served_during_outage += 1
    takeovers = [
        v.answered_at - failed_at
        for v in done
        if v.visit.center == report.failed
        and v.routed.center not in (None, report.failed)
        and v.answered_at >= failed_at
    ]
    report.takeover_seconds = min(takeovers, default=0.0)
    report.kiosks.by_center.update(served_by)


async def _judge(
    report: DrillReport, centers: dict[Origin, Settings], done: list[_Visited]
) -> None:
    """Digests of the compared projections in each center; duplicate outcomes; double charges;
    requests expired; for an outage, the answered requests all still in the log."""
    for name in COMPARED:
        report.digests[name] = {}
        for center_name, center in centers.items():
            async with connect(center) as connection:
                digest = await projection_digest(connection, load_projection(name, center))
            report.digests[name][center_name] = digest.sha256
    tried = [a.request_id for v in done for a in v.routed.attempts]
    for center in centers.values():
        decisions = await outcome_decisions(center)
        report.duplicate_outcomes = max(
            report.duplicate_outcomes, sum(1 for ids in decisions.values() if len(ids) > 1)
        )
        async with connect(center) as connection:
            charged = {
                row["request_id"]
                for row in await connection.fetch(
                    "SELECT request_id FROM fees.requests WHERE request_id = ANY($1::uuid[]) "
                    "AND notice = 'delivered'",
                    tried,
                )
            }
            expired = await connection.fetchval(
                "SELECT count(*) FROM issuer.outcomes WHERE reason = 'request_expired' "
                "AND request_id = ANY($1::uuid[])",
                tried,
            )
        report.expired = max(report.expired, expired)
        twice = [
            [f"{a.center}:{a.request_id}" for a in v.routed.attempts if a.request_id in charged]
            for v in done
        ]
        twice = [ids for ids in twice if len(ids) > 1]
        if len(twice) > len(report.double_charges):
            report.double_charges = twice


async def outcome_decisions(center: Settings) -> dict[UUID, set[UUID]]:
    """Every request's decisions in a center's log (its own and the mirrored outcomes): request
    id → the distinct decision events. More than one is a request decided twice."""
    decisions: dict[UUID, set[UUID]] = {}
    async for _, records in whole_log(center, center.subscribed(ISSUANCE_OUTCOMES.name)):
        for record in records:
            with contextlib.suppress(EventDecodeError):
                event = decode_event(record.value or b"")
                if isinstance(event.payload, IssuanceIssued | IssuanceRejected):
                    decisions.setdefault(event.payload.request_id, set()).add(
                        event.envelope.event_id
                    )
    return decisions
