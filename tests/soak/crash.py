"""`make soak`: the crash soak of the embedded durable pipeline.

One center on services of its own, under a private BCL_HOME in a temporary folder: the S3 store,
tansu over it, Postgres, and the worker's two processes. A paced sample stream
(``producers.workload.platform_sample``) goes through the project's producer path
(``pipeline.kafka`` and ``pipeline.publish.publish_many``) while, at seeded random moments, one
part is killed with SIGKILL (a worker process, the broker, the store or Postgres) and started
again as an operator would: `bcl up` for a service, `bcl worker --detach --role ROLE` for a
worker. A part that dies without being killed is a finding: it is restarted, counted and
reported. At the end, with everything back and caught up, the whole log is read with a plain
reader and compared with what the broker acknowledged and with the journal.

Sending again. tansu 0.6 has no idempotent producer, so a send that failed may still have landed
(its acknowledgement was lost with the broker). The project's producer path settles such a send
from the log (``pipeline.publish``): only the events not found there are sent again. The ones
found are counted as "found on the log after a failed send": each is a duplicate a blind resend
would have written. A publish call that gives up (``Unconfirmed``) has its events handed to the
next call with their floors. Every duplicate the audit still finds is reported with its cause:
whose event it is (the soak's or a processor's) and how it was written twice, told apart by the
record timestamps: a producer that sends a batch again keeps its bytes, timestamps included,
while a new send (a processor publishing its outbox again) stamps the time anew.

The publisher keeps a pace that spreads the stream over the kills, so that every kill falls
while events are being published; each kill waits for the pipeline to have recovered from the
one before (an event acknowledged after the restart is in the journal).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from uuid import UUID

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import asyncpg
import orjson
import psutil  # type: ignore[import-untyped]
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError
from rich.console import Console
from rich.table import Table

from infra.processes import pid_alive, read_pid_file, stop_pid
from infra.services import down, status
from pipeline.agents import WORKER_ROLES
from pipeline.database import connect
from pipeline.kafka import high_watermarks, partitions_of, reader, start_producer
from pipeline.projection import PROJECTION_MODULES, load_projection
from pipeline.publish import Appender, Outgoing, Unconfirmed, proven_by_their_edges, publish_many
from pipeline.settings import PROJECT_ROOT, Settings
from pipeline.status import dead_letter_counts, log_ends, wait_until_applied
from pipeline.topics import SOURCE_TOPICS
from producers.workload import platform_sample

console = Console()

KINDS = ("worker", "broker", "storage", "postgres")
SERVICE_PARTS = ("storage", "broker", "postgres")  # labels of infra.services.status
WORKER_PARTS = tuple(role.file_stem for role in WORKER_ROLES)
KILL_GAP = (2.0, 8.0)  # seconds between recovering from one kill and the next kill
RECOVERY_TIMEOUT = 300.0
# `bcl up` may rebuild a projection by replay before it returns (REBUILT), which takes minutes
# once the log is long.
COMMAND_TIMEOUT = 3600.0
REBUILT = re.compile(r"rebuilt (\S+) by replay")
SETTLE_TIMEOUT = 1800.0
FIRST_CYCLE_GUESS = 10.0  # seconds from one kill to the next, before two kills are measured

SEND_ERRORS = (KafkaError, OSError, TimeoutError)
DATABASE_ERRORS = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)


@dataclass(frozen=True)
class Copy:
    """One record of an event in the log."""

    topic: str
    partition: int
    offset: int
    written_at: float  # the record's timestamp (seconds since the epoch): when it was produced


def current_settings() -> Settings:
    """Settings read afresh: one made earlier keeps the addresses services.json had then."""
    return Settings()


def since(start: float) -> float:
    return round(time.monotonic() - start, 3)


@dataclass
class Kill:
    number: int
    kind: str
    part: str
    pid: int
    at: float  # seconds since the soak started
    wall: float  # seconds since the epoch, to compare with record timestamps
    restarted_after: float | None = None
    recovered_after: float | None = None
    # Parts restarted along with the victim, or found dead after it, before the next kill.
    collateral: list[str] = field(default_factory=list)


@dataclass
class Death:
    """A part found dead that nobody killed."""

    part: str
    at: float
    after_kill: int | None  # the number of the last kill before it


@dataclass
class Rebuild:
    """A projection `bcl up` rebuilt by replay, having found it ahead of the log."""

    projection: str
    at: float
    after_kill: int | None


@dataclass
class SendFailure:
    at: float
    error: str
    unacknowledged: int  # events handed to the producer and not confirmed


class CommandFailed(RuntimeError):
    """A `bcl` command exited with an error; the message is what it said."""


def bcl(*arguments: str) -> str:
    """`bcl ARGUMENTS` as an operator runs it (a process of its own, so the services it starts
    outlive it), its output kept in the soak's home; returns what it printed."""
    command = f"bcl {' '.join(arguments)}"
    try:
        done = subprocess.run(
            [sys.executable, "-m", "pipeline.cli", *arguments],
            capture_output=True, text=True, timeout=COMMAND_TIMEOUT, check=False,
        )  # fmt: skip
    except subprocess.TimeoutExpired as timeout:
        raise CommandFailed(f"{command}: still running after {timeout.timeout:g}s") from None
    with (current_settings().home / "bcl-commands.log").open("a") as log:
        log.write(f"$ {command} (exit {done.returncode})\n{done.stdout}{done.stderr}")
    if done.returncode != 0:
        said = [line for line in (done.stderr or done.stdout).splitlines() if line.strip()]
        # The first line says what failed; a service's failure ends with its log's last line.
        gist = " … ".join(dict.fromkeys([said[0], said[-1]])) if said else done.returncode
        raise CommandFailed(f"{command}: {gist}")
    return done.stdout


def wait_gone(pid: int) -> None:
    """Until ``pid`` has died: a signal is delivered at once but acted on a moment later."""
    while pid_alive(pid):
        time.sleep(0.01)


class Center:
    """The center's parts: which run, killing one, and starting again whatever is down."""

    def __init__(self, started: float) -> None:
        self.started = started
        self.lock = asyncio.Lock()  # one kill or restart at a time
        self.kills: list[Kill] = []
        self.deaths: list[Death] = []
        self.restarts: Counter[str] = Counter()
        self.restart_errors: list[str] = []
        self.rebuilds: list[Rebuild] = []

    def pids(self) -> dict[str, int | None]:
        """Each part's running process, None where it is down."""
        settings = current_settings()
        report = status(settings)
        pids: dict[str, int | None] = {
            part: report[part]["pid"] if report[part]["alive"] else None for part in SERVICE_PARTS
        }
        for role in WORKER_ROLES:
            pids[role.file_stem] = read_pid_file(settings.center_home / role.pid_file_name)
        return pids

    async def restart_what_is_down(self) -> list[str]:
        """Start every part that is not running (services first: the workers need them), until
        all run; returns the parts whose process changed."""
        before = self.pids()
        deadline = time.monotonic() + RECOVERY_TIMEOUT
        while down_parts := [part for part, pid in self.pids().items() if pid is None]:
            try:
                if any(part in SERVICE_PARTS for part in down_parts):
                    said = await asyncio.to_thread(bcl, "up")
                    last = self.kills[-1].number if self.kills else None
                    self.rebuilds += [
                        Rebuild(name, since(self.started), last) for name in REBUILT.findall(said)
                    ]
                for role in WORKER_ROLES:
                    if role.file_stem in down_parts:
                        await asyncio.to_thread(bcl, "worker", "--detach", "--role", role.name)
            except CommandFailed as error:
                self.restart_errors.append(f"{since(self.started)}s {down_parts}: {error}")
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(1.0)
        after = self.pids()
        restarted = [part for part in after if after[part] != before[part]]
        self.restarts.update(restarted)
        return restarted

    async def kill(self, number: int, kind: str, part: str) -> tuple[Kill, float]:
        """SIGKILL ``part`` and start it again; returns the kill and when the restart ended."""
        async with self.lock:
            await self.restart_what_is_down()  # a victim must be running to be killed
            pid = self.pids()[part]
            assert pid is not None, part
            os.kill(pid, signal.SIGKILL)
            killed_at = time.monotonic()
            kill = Kill(number, kind, part, pid, since(self.started), time.time())
            self.kills.append(kill)
            await asyncio.to_thread(wait_gone, pid)
            restarted = await self.restart_what_is_down()
            kill.restarted_after = round(time.monotonic() - killed_at, 3)
            kill.collateral += [p for p in restarted if p != part]
            return kill, time.monotonic()

    async def watch(self, stop: asyncio.Event) -> None:
        """Notice parts that die on their own (a worker whose broker went away) and restart
        them, as an operator's supervisor would."""
        while not stop.is_set():
            await asyncio.sleep(1.0)
            async with self.lock:
                found = [part for part, pid in self.pids().items() if pid is None]
                if not found:
                    continue
                last = self.kills[-1] if self.kills else None
                for part in found:
                    self.deaths.append(
                        Death(part, since(self.started), last.number if last else None)
                    )
                    if last:
                        last.collateral.append(part)
                console.print(f"  [yellow]found dead without a kill: {', '.join(found)}[/yellow]")
                await self.restart_what_is_down()

    def mean_cycle(self) -> float:
        """Seconds from one kill to the next, as measured so far."""
        if len(self.kills) < 2:
            return FIRST_CYCLE_GUESS
        return (self.kills[-1].at - self.kills[0].at) / (len(self.kills) - 1)


class Publisher:
    """The sample stream through the project's producer path, at a pace that spreads it over the
    kills, recording what it confirmed. A call that fails hands its unconfirmed events to the
    next one with the floors the failure gave (``pipeline.publish.Unconfirmed``)."""

    def __init__(self, center: Center, events: int, seed: int, ack_every: int, kills: int):
        self.center = center
        # Each event proven by its edge, as the platform's own would publish it.
        self.source: Iterator[Outgoing] = proven_by_their_edges(
            current_settings(), platform_sample(events, seed=seed)
        )
        self.not_yet_handed = events
        self.ack_every = ack_every
        self.kills_planned = kills
        self.acknowledged: set[UUID] = set()
        # Each acknowledgement: when it came and the events it covered.
        self.acknowledgements: list[tuple[float, list[UUID]]] = []
        self.failures: list[SendFailure] = []
        self.unacknowledged: list[Outgoing] = []
        self.to_resend: list[Outgoing] = []
        self.floors: dict[UUID, int] = {}
        self.found_on_log = 0  # after failed sends, found written all the same
        self.sent_again = 0
        self.handed_again = 0
        self.acknowledged_in_call = 0
        self.due = 0.0
        self.finished = asyncio.Event()

    async def run(self) -> None:
        self.due = time.monotonic()
        try:
            while not await self.send():  # noqa: ASYNC110 (a pause before trying again)
                await asyncio.sleep(0.5)
        finally:
            self.finished.set()

    async def send(self) -> bool:
        """Publish what is left; False when a send failed."""
        settings = current_settings()
        try:
            client = await start_producer(settings)
        except SEND_ERRORS as error:
            self.failures.append(SendFailure(since(self.center.started), repr(error), 0))
            return False
        appender = Appender.of(settings, client)
        try:
            if self.to_resend:
                self.unacknowledged, self.to_resend = self.to_resend, []
                self.handed_again += len(self.unacknowledged)
                await publish_many(settings, client, self.unacknowledged, landed_from=self.floors)
                self.acknowledged_in_call = 0
                self.acknowledge(len(self.unacknowledged))
            self.acknowledged_in_call = 0
            await publish_many(
                settings, client, self.paced(), in_flight=self.ack_every, on_sent=self.acknowledge
            )
            return True
        except SEND_ERRORS as error:
            if isinstance(error, Unconfirmed):
                self.floors |= error.floors
            self.failures.append(
                SendFailure(since(self.center.started), repr(error), len(self.unacknowledged))
            )
            self.to_resend, self.unacknowledged = self.unacknowledged, []
            return False
        finally:
            self.found_on_log += appender.found_on_log
            self.sent_again += appender.sent_again
            try:
                await client.stop()
            except SEND_ERRORS as error:
                self.failures.append(
                    SendFailure(since(self.center.started), f"stopping: {error!r}", 0)
                )

    async def paced(self) -> AsyncIterator[Outgoing]:
        while (outgoing := next(self.source, None)) is not None:
            self.not_yet_handed -= 1
            await self.pace()
            self.unacknowledged.append(outgoing)
            yield outgoing

    async def pace(self) -> None:
        """Hold the rate that ends the stream one kill cycle after the last planned kill."""
        kills_left = self.kills_planned - len(self.center.kills)
        if kills_left <= 0:
            return
        seconds_left = (kills_left + 1) * self.center.mean_cycle()
        rate = max(self.not_yet_handed, 1) / seconds_left
        # At most a second of credit: after an outage the stream resumes, it does not flood.
        self.due = max(self.due, time.monotonic() - 1.0) + 1.0 / rate
        delay = self.due - time.monotonic()
        if delay > 0.005:
            await asyncio.sleep(delay)

    def acknowledge(self, sent: int) -> None:
        """``publish_many`` reports the count confirmed so far in this call: every event it
        was handed up to then, in order."""
        newly = sent - self.acknowledged_in_call
        if newly <= 0:
            return
        events = [outgoing.envelope.event_id for outgoing in self.unacknowledged[:newly]]
        del self.unacknowledged[:newly]
        self.acknowledged_in_call = sent
        self.acknowledged.update(events)
        for event_id in events:
            self.floors.pop(event_id, None)
        self.acknowledgements.append((time.monotonic(), events))

    async def first_acknowledged_after(self, moment: float, deadline: float) -> list[UUID] | None:
        """The events of the first acknowledgement after ``moment``; None if the stream ended
        or the deadline passed without one."""
        while True:
            first: list[UUID] | None = None
            for at, events in reversed(self.acknowledgements):  # the latest are the ones asked
                if at < moment:
                    break
                first = events
            if first is not None or self.finished.is_set() or time.monotonic() > deadline:
                return first
            await asyncio.sleep(0.1)


async def journal_partitions(client: AIOKafkaConsumer[bytes, bytes]) -> list[TopicPartition]:
    return await partitions_of(client, current_settings().subscribed(*SOURCE_TOPICS))


async def read_log(
    client: AIOKafkaConsumer[bytes, bytes],
    spans: dict[TopicPartition, tuple[int, int]],
    stall: float = 60.0,
) -> AsyncIterator[tuple[Copy, UUID]]:
    """Every record in each partition's ``[start, end)``, as its position and event id."""
    wanted = {tp: span for tp, span in spans.items() if span[0] < span[1]}
    if not wanted:
        return
    client.assign(list(wanted))
    for tp, (start, _) in wanted.items():
        client.seek(tp, start)
    progress = time.monotonic()
    while wanted:
        fetched = await client.getmany(*wanted, timeout_ms=1000)
        for tp, records in fetched.items():
            end = wanted[tp][1]
            for record in records:
                if record.offset < end and record.value is not None:
                    event_id = UUID(orjson.loads(record.value)["event_id"])
                    copy = Copy(tp.topic, tp.partition, record.offset, record.timestamp / 1000)
                    yield copy, event_id
            if records:
                progress = time.monotonic()
                if records[-1].offset + 1 >= end:
                    del wanted[tp]
        if time.monotonic() - progress > stall:
            raise TimeoutError(f"no records for {stall:g}s from {sorted(map(str, wanted))}")


async def journal_holds(events: list[UUID]) -> bool:
    try:
        async with connect(current_settings()) as connection:
            found = await connection.fetchval(
                "SELECT count(*) FROM journal.events WHERE event_id = ANY($1::uuid[])", events
            )
    except DATABASE_ERRORS:
        return False
    return bool(found == len(events))


async def journal_caught_up(timeout: float) -> bool:
    journal = load_projection("journal", current_settings())
    try:
        return await wait_until_applied(current_settings(), [journal], timeout)
    except (*DATABASE_ERRORS, KafkaError):
        return False


async def recovered(publisher: Publisher, restarted_at: float) -> float | None:
    """When the pipeline flows again after a restart: the first events acknowledged after it
    are in the journal (producer, broker, store, worker and Postgres all took part)."""
    deadline = restarted_at + RECOVERY_TIMEOUT
    events = await publisher.first_acknowledged_after(restarted_at, deadline)
    if events is None:
        if not publisher.finished.is_set():
            return None  # nothing acknowledged in all that time
        # The stream ended first: the journal catching up with the log shows the same.
        left = deadline - time.monotonic()
        return time.monotonic() if left > 0 and await journal_caught_up(left) else None
    while time.monotonic() < deadline:
        if await journal_holds(events):
            return time.monotonic()
        await asyncio.sleep(0.2)
    return None


def kill_plan(kills: int, seed: int) -> list[str]:
    """Each kind as often as the others (the remainder drawn), in a seeded random order."""
    rng = random.Random(seed)
    plan = [kind for kind in KINDS for _ in range(kills // len(KINDS))]
    plan += rng.sample(KINDS, kills % len(KINDS))
    rng.shuffle(plan)
    return plan


async def kill_and_restart(
    center: Center, publisher: Publisher, plan: list[str], seed: int
) -> None:
    rng = random.Random(seed + 1)  # apart from the plan's draws
    for number, kind in enumerate(plan, 1):
        await asyncio.sleep(rng.uniform(*KILL_GAP))
        part = rng.choice(WORKER_PARTS) if kind == "worker" else kind
        kill, restarted_at = await center.kill(number, kind, part)
        killed_at = center.started + kill.at
        flowing = await recovered(publisher, restarted_at)
        kill.recovered_after = None if flowing is None else round(flowing - killed_at, 3)
        recovery = "NOT RECOVERED" if flowing is None else f"recovered in {kill.recovered_after}s"
        extra = f", also restarted {', '.join(kill.collateral)}" if kill.collateral else ""
        console.print(
            f"kill {number:>3}/{len(plan)} {part:<18} pid {kill.pid:<7} at {kill.at:7.1f}s: "
            f"restarted in {kill.restarted_after}s, {recovery}{extra}; "
            f"{len(publisher.acknowledged):,} acknowledged"
        )


async def settle() -> bool:
    """Wait until every projection has applied the log and the log stops growing (the issuer
    publishes its decisions after applying the requests)."""
    # Without renderers: loading the issuer would otherwise start its pool of PDF processes here.
    readable = Settings(render_processes=0)
    projections = [load_projection(name, readable) for name in PROJECTION_MODULES]
    journal = load_projection("journal", readable)
    deadline = time.monotonic() + SETTLE_TIMEOUT
    while time.monotonic() < deadline:
        try:
            before = await log_ends(current_settings(), journal)
            left = deadline - time.monotonic()
            if not await wait_until_applied(current_settings(), projections, left):
                return False
            await asyncio.sleep(2.0)
            if await log_ends(current_settings(), journal) == before:
                return await wait_until_applied(current_settings(), [journal], 0)
        except (*DATABASE_ERRORS, KafkaError):
            await asyncio.sleep(1.0)  # a part the watcher is restarting
    return False


@dataclass
class Duplicate:
    event_id: str
    copies: list[Copy]
    cause: str
    # The first kill after the first copy was produced: the one its second copy answers.
    kill: str | None


@dataclass
class Audit:
    log_records: int
    log_events: int
    log_by_topic: dict[str, int]
    journal_rows: int
    journal_events: int
    lost_acknowledged: list[str]
    acknowledged_not_once: list[str]
    published_missing: list[str]
    duplicates: list[Duplicate]
    journal_missing: list[str]
    journal_extra: list[str]
    journal_misplaced: list[str]

    def duplicates_by(self, facet: Callable[[Duplicate], str | None]) -> dict[str, int]:
        return dict(Counter(str(facet(duplicate)) for duplicate in self.duplicates))


async def audit(publisher: Publisher, kills: list[Kill]) -> Audit:
    """The whole log read with a plain reader, against the acknowledgements and the journal."""
    copies: dict[UUID, list[Copy]] = defaultdict(list)
    async with reader(current_settings()) as client:
        ends = await high_watermarks(client, await journal_partitions(client))
        async for copy, event_id in read_log(client, {tp: (0, end) for tp, end in ends.items()}):
            copies[event_id].append(copy)
    async with connect(current_settings()) as connection:
        rows = await connection.fetch(
            'SELECT event_id, topic, partition, "offset" FROM journal.events'
        )
    journal = {row["event_id"]: (row["topic"], row["partition"], row["offset"]) for row in rows}
    published = publisher.acknowledged

    def cause(event_id: UUID) -> str:
        whose = "the soak's event" if event_id in published else "a processor's event"
        if len({copy.written_at for copy in copies[event_id]}) == 1:
            return f"{whose}, its batch sent again by the producer"
        if event_id in published:
            return f"{whose}, sent again after a failed send"
        return f"{whose}, published again (its outbox)"

    def kill_after(moment: float) -> str | None:
        following = next((kill for kill in kills if kill.wall >= moment), None)
        return f"kill {following.number} ({following.part})" if following else None

    def in_log(event_id: UUID, position: tuple[str, int, int]) -> bool:
        return any((c.topic, c.partition, c.offset) == position for c in copies[event_id])

    return Audit(
        log_records=sum(len(found) for found in copies.values()),
        log_events=len(copies),
        log_by_topic=dict(Counter(c.topic for found in copies.values() for c in found)),
        journal_rows=len(rows),
        journal_events=len(journal),
        lost_acknowledged=[str(e) for e in publisher.acknowledged if e not in copies],
        acknowledged_not_once=[
            str(e) for e in publisher.acknowledged if len(copies.get(e, ())) != 1
        ],
        published_missing=[str(e) for e in published if e not in copies],
        duplicates=[
            Duplicate(str(e), found, cause(e), kill_after(found[0].written_at))
            for e, found in copies.items()
            if len(found) > 1
        ],
        journal_missing=[str(e) for e in copies if e not in journal],
        journal_extra=[str(e) for e in journal if e not in copies],
        journal_misplaced=[
            str(e) for e, at in journal.items() if e in copies and not in_log(e, at)
        ],
    )


DUPLICATE_FACETS: dict[str, Callable[[Duplicate], str | None]] = {
    "cause": lambda duplicate: duplicate.cause,
    "topic": lambda duplicate: duplicate.copies[0].topic,
    "kill": lambda duplicate: f"{duplicate.kill}: {duplicate.cause}",
}


@dataclass
class Spread:
    median: float | None
    max: float | None
    unmeasured: int  # kills that never recovered within the timeout

    @classmethod
    def of(cls, values: list[float | None]) -> Spread:
        measured = [v for v in values if v is not None]
        return cls(
            round(statistics.median(measured), 2) if measured else None,
            round(max(measured), 2) if measured else None,
            len(values) - len(measured),
        )


@dataclass
class KindFigures:
    kills: int
    restart_seconds: Spread  # from the SIGKILL until the part runs again
    recover_seconds: Spread  # from the SIGKILL until events flow into the journal again


@dataclass
class Report:
    options: dict[str, object]
    events_published: int
    events_handed_again: int  # by the soak, after a publish call failed
    landed_without_acknowledgement: int
    events_sent_again: int
    send_failures: list[SendFailure]
    kills: list[Kill]
    kills_by_kind: dict[str, KindFigures]
    restarts_by_part: dict[str, int]
    died_without_a_kill: list[Death]
    restart_errors: list[str]
    rebuilt_by_bcl_up: list[Rebuild]
    audit: Audit
    dead_letters: list[tuple[str, str, int]]
    publish_seconds: float
    end_to_end_seconds: float
    checks: dict[str, bool]
    left_running_after_down: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(self.checks.values()) and not self.left_running_after_down

    def as_json(self) -> str:
        figures = asdict(self)
        # The full id lists run to the size of the log; a sample is enough to look them up.
        for name in ("lost_acknowledged", "acknowledged_not_once", "published_missing",
                     "journal_missing", "journal_extra", "journal_misplaced"):  # fmt: skip
            figures["audit"][name] = figures["audit"][name][:50]
        figures["audit"]["duplicates"] = [
            asdict(duplicate)
            for cause in self.audit.duplicates_by(lambda d: d.cause)
            for duplicate in [d for d in self.audit.duplicates if d.cause == cause][:20]
        ]
        figures["audit"] |= {
            f"duplicates_by_{facet}": self.audit.duplicates_by(key)
            for facet, key in DUPLICATE_FACETS.items()
        }
        figures["passed"] = self.passed
        return json.dumps(figures, indent=2, default=str) + "\n"


async def soak(options: argparse.Namespace) -> Report:
    started = time.monotonic()
    center = Center(started)
    publisher = Publisher(center, options.events, options.seed, options.ack_every, options.kills)
    plan = kill_plan(options.kills, options.seed)
    console.print(
        f"soak: {options.events:,} events, {options.kills} kills "
        f"({', '.join(f'{k} {n}' for k, n in Counter(plan).items())}), seed {options.seed}, "
        f"home {current_settings().home}"
    )
    stop_watch = asyncio.Event()
    watcher = asyncio.create_task(center.watch(stop_watch))
    try:
        publishing = asyncio.create_task(publisher.run())
        await kill_and_restart(center, publisher, plan, options.seed)
        await publishing
        published_after = since(started)
        console.print(f"published in {published_after}s; waiting for every projection")
        settled = await settle()
        caught_up_after = since(started)
    finally:
        stop_watch.set()
        await watcher
    console.print(f"caught up after {caught_up_after}s; reading the whole log")
    found = await audit(publisher, center.kills)
    dead_letters = await dead_letter_counts(current_settings())

    checks = {
        "every acknowledged event is in the log exactly once": not found.acknowledged_not_once,
        "no published event is missing from the log": not found.published_missing,
        "no event appears twice in the log": not found.duplicates,
        "the journal holds exactly the log's events": not (
            found.journal_missing or found.journal_extra
        )
        and found.journal_rows == found.journal_events == found.log_events,
        "each journal row points at a log record of its event": not found.journal_misplaced,
        "every kill recovered": all(kill.recovered_after is not None for kill in center.kills),
        "every kill fell while events were being published": all(
            kill.at < published_after for kill in center.kills
        ),
        "every projection caught up": settled,
        "no dead letters": not dead_letters,
    }
    return Report(
        options={name: str(value) for name, value in vars(options).items()},
        events_published=len(publisher.acknowledged),
        events_handed_again=publisher.handed_again,
        landed_without_acknowledgement=publisher.found_on_log,
        events_sent_again=publisher.sent_again,
        send_failures=publisher.failures,
        kills=center.kills,
        kills_by_kind={
            kind: KindFigures(
                len(kills),
                Spread.of([kill.restarted_after for kill in kills]),
                Spread.of([kill.recovered_after for kill in kills]),
            )
            for kind in KINDS
            for kills in [[kill for kill in center.kills if kill.kind == kind]]
        },
        restarts_by_part=dict(center.restarts),
        died_without_a_kill=center.deaths,
        restart_errors=center.restart_errors,
        rebuilt_by_bcl_up=center.rebuilds,
        audit=found,
        dead_letters=dead_letters,
        publish_seconds=published_after,
        end_to_end_seconds=caught_up_after,
        checks=checks,
    )


def stop_leftovers(home: Path) -> list[str]:
    """Processes of this soak's home still running after `bcl down` (an orphan of a killed
    worker, say): reported, then stopped by PID."""
    found = []
    for process in psutil.process_iter(["pid", "name"]):
        if process.pid == os.getpid():
            continue
        try:
            if process.environ().get("BCL_HOME") != str(home):
                continue
        except (psutil.AccessDenied, psutil.NoSuchProcess, psutil.ZombieProcess):
            continue
        found.append(f"{process.info['name']} (pid {process.pid})")
        stop_pid(process.pid)
    return found


def print_report(report: Report, path: Path) -> None:
    found = report.audit
    figures = Table(title="crash soak")
    figures.add_column("figure")
    figures.add_column("value", justify="right")
    for label, value in (
        ("events published (confirmed on the log)", report.events_published),
        ("  found on the log after a failed send", report.landed_without_acknowledgement),
        ("  sent again after a failed send", report.events_sent_again),
        ("  handed again after a publish call failed", report.events_handed_again),
        ("failed sends", len(report.send_failures)),
        ("kills", len(report.kills)),
        ("restarts", sum(report.restarts_by_part.values())),
        ("  restart commands that failed (then retried)", len(report.restart_errors)),
        ("projections `bcl up` rebuilt by replay", len(report.rebuilt_by_bcl_up)),
        ("  of parts that died without a kill", len(report.died_without_a_kill)),
        ("lost (acknowledged, not in the log)", len(found.lost_acknowledged)),
        ("published, not in the log", len(found.published_missing)),
        ("duplicated in the log (event ids)", len(found.duplicates)),
        *(
            (f"  by {facet}: {value}", count)
            for facet, key in DUPLICATE_FACETS.items()
            for value, count in found.duplicates_by(key).items()
        ),
        ("duplicated in the journal", found.journal_rows - found.journal_events),
        ("log records", found.log_records),
        ("log events (distinct ids)", found.log_events),
        ("journal rows", found.journal_rows),
        ("log events not in the journal", len(found.journal_missing)),
        ("journal rows not in the log", len(found.journal_extra)),
        ("publishing, seconds", report.publish_seconds),
        ("end to end, seconds", report.end_to_end_seconds),
    ):
        figures.add_row(label, f"{value:,}")
    console.print(figures)

    kinds = Table(title="kills by kind (seconds from the SIGKILL)")
    for column in ("kind", "kills", "restarted: median", "max", "recovered: median", "max"):
        kinds.add_column(column, justify="right")
    for kind, row in report.kills_by_kind.items():
        restart, recover = row.restart_seconds, row.recover_seconds
        kinds.add_row(
            kind, str(row.kills), str(restart.median), str(restart.max), str(recover.median),
            f"{recover.max}" + (f" ({recover.unmeasured} never)" if recover.unmeasured else ""),
        )  # fmt: skip
    console.print(kinds)
    for death in report.died_without_a_kill:
        console.print(
            f"died without a kill: {death.part} at {death.at}s (after kill {death.after_kill})"
        )
    for rebuild in report.rebuilt_by_bcl_up:
        console.print(
            f"bcl up rebuilt {rebuild.projection} by replay at {rebuild.at}s "
            f"(restarting after kill {rebuild.after_kill})"
        )
    for error in report.restart_errors:
        console.print(f"restart failed: {error}")
    for check, held in report.checks.items():
        console.print(f"{'[green]ok[/green]  ' if held else '[red]FAIL[/red]'} {check}")
    console.print(f"report: {path}")


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=200_000, help="events to publish")
    parser.add_argument("--kills", type=int, default=52, help="SIGKILLs, spread over 4 kinds")
    parser.add_argument("--seed", type=int, default=1, help="seed of the stream and the kills")
    parser.add_argument(
        "--ack-every", type=int, default=200,
        help="events the producer may hold before it waits for their acknowledgement",
    )  # fmt: skip
    parser.add_argument(
        "--report", type=Path, default=PROJECT_ROOT / ".bcl" / "soak" / "crash.json",
        help="where the JSON report goes",
    )  # fmt: skip
    parser.add_argument(
        "--keep", action="store_true",
        help="keep the soak's BCL_HOME (it is kept anyway when a check fails)",
    )  # fmt: skip
    return parser.parse_args()


def main() -> int:
    options = arguments()
    # Only this soak's own services: no address or setting from the caller's environment.
    for name in [name for name in os.environ if name.startswith("BCL_")]:
        del os.environ[name]
    home = Path(tempfile.mkdtemp(prefix="bcl-soak-"))
    os.environ["BCL_HOME"] = str(home)
    # The clients' complaints while a part is down belong with the services' logs.
    logging.basicConfig(filename=home / "soak.log", level=logging.WARNING)
    report: Report | None = None
    try:
        bcl("up")
        bcl("worker", "--detach")
        report = asyncio.run(soak(options))
    finally:
        stopped = down(current_settings())
        leftovers = stop_leftovers(home)
        console.print(f"stopped: {', '.join(stopped) or 'nothing'}")
        if leftovers:
            console.print(
                f"[red]still running after bcl down, stopped: {', '.join(leftovers)}[/red]"
            )
        if report is not None:
            report.left_running_after_down = leftovers
            options.report.parent.mkdir(parents=True, exist_ok=True)
            options.report.write_text(report.as_json())
            print_report(report, options.report)
        if report is not None and report.passed and not options.keep:
            shutil.rmtree(home, ignore_errors=True)
        else:
            console.print(f"kept the soak's home: {home}")
    return 0 if report is not None and report.passed else 1


if __name__ == "__main__":
    sys.exit(main())
