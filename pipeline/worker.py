"""The live worker: one faust app hosting some or all of the consumers' agents.

Each projection gets one agent (``concurrency=1``) that takes batches from faust and hands them
to the projection runner. Before an agent's first batch, the projection is caught up from the log
with the fast plain reader, so faust starts from wherever its consumer group committed and the
runner's tracking rows decide what still needs applying.

A center deploys its agents as the roles of ``pipeline.agents.WORKER_ROLES``, one process each;
`bcl worker` in the foreground hosts every agent in one process.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import importlib
import logging
import os
from collections.abc import AsyncGenerator, AsyncIterable, Sequence
from pathlib import Path
from typing import Any, TypeVar, cast

import asyncpg
import faust
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from faust.transport.drivers import aiokafka as faust_kafka

from pipeline.agents import AGENT_MODULES, role_of
from pipeline.catchup import LogGapReader, catch_up
from pipeline.database import create_pool
from pipeline.deadletters import DeadLetterSink
from pipeline.kafka import start_producer
from pipeline.projection import Projection
from pipeline.proofs import EdgeKeys
from pipeline.publish import Appender
from pipeline.runner import ProjectionRunner
from pipeline.settings import Settings
from pipeline.topics import DEAD_LETTERS

log = logging.getLogger("bcl.worker")

T = TypeVar("T")

# A background worker's fetch returns once this much waits, or after BCL_BATCH_WITHIN.
BACKGROUND_FETCH_MIN_BYTES = 1 << 20


class Worker:
    def __init__(self, settings: Settings, agents: Sequence[str] | None = None) -> None:
        self.settings = settings
        self.role = role_of(agents)
        center_group = f"{settings.topic_prefix}bcl-{settings.center}"
        self.app = new_app(
            settings,
            self.role.group(center_group),
            # Its batches wait BCL_BATCH_WITHIN for more events anyway: fetching in between
            # would only cost the worker and the broker CPU that the kiosks' path needs.
            fetch_wait=settings.batch_within if self.role.background else settings.fetch_wait,
            fetch_min_bytes=BACKGROUND_FETCH_MIN_BYTES if self.role.background else 1,
        )
        self.runners: dict[str, ProjectionRunner] = {}
        self._projections: list[Projection] = []
        self._pool: asyncpg.Pool | None = None
        self._producer: AIOKafkaProducer[bytes, bytes] | None = None
        self._ready: asyncio.Task[None] | None = None
        self._locks: dict[str, asyncio.Lock] = {}
        for name in self.role.agents:
            importlib.import_module(AGENT_MODULES[name]).install(self)
        self.app.task(self._start)

    def add_projection(self, projection: Projection, *, waited_on: bool = False) -> None:
        """Run ``projection`` live. A batch waits up to ``BCL_BATCH_WITHIN`` for more events
        before it is applied; a projection someone is ``waited_on`` for (a resident at a kiosk,
        at a shelter's reader) starts each batch as soon as an event is there."""
        self._projections.append(projection)
        self._locks[projection.name] = asyncio.Lock()
        channel = self.app.topic(
            *self.settings.subscribed(*projection.topics),
            key_type=bytes,
            value_type=bytes,
            key_serializer="raw",
            value_serializer="raw",
        )

        async def project(stream: Any) -> None:
            await self.ready()
            runner = self.runners[projection.name]
            lock = self._locks[projection.name]
            batches = (
                ready_batches(stream.events(), self.settings.batch_size)
                if waited_on
                else stream.take_events(self.settings.batch_size, within=self.settings.batch_within)
            )
            # Closed however the loop ends: a batch that raises must not leave the batches'
            # reader behind, still taking events from the stream faust hands the next actor.
            async with contextlib.aclosing(batches):
                async for events in batches:
                    async with lock:
                        await runner.apply_records([event.message for event in events])

        self.app.agent(channel, name=f"project-{projection.name}", concurrency=1)(project)

    async def ready(self) -> None:
        if self._ready is None:
            self._ready = asyncio.ensure_future(self._prepare())
        await asyncio.shield(self._ready)

    async def _start(self) -> None:
        try:
            await self.ready()
        except Exception as error:
            # A worker that cannot catch up must stop and say why, not idle with agents waiting.
            log.critical("cannot start: %s", error)
            await self.app.crash(error)
            return
        # What the worker holds from now on (modules, faust, pydantic's validators: about 100,000
        # objects) is never garbage: out of the collector's sight, a full collection takes a few
        # milliseconds instead of stopping the loop for 60-120 ms while kiosks wait.
        gc.collect()
        gc.freeze()
        log.warning("ready; %d objects set aside from garbage collection", gc.get_freeze_count())

    async def _prepare(self) -> None:
        self._pool = await create_pool(
            self.settings,
            max_size=len(self._projections) + 2,
            nice=self.settings.background_nice if self.role.background else None,
        )
        self._producer = await start_producer(self.settings)
        producer = self._producer
        sink = DeadLetterSink(producer, self.settings.topic(DEAD_LETTERS.name))
        gaps = LogGapReader(self.settings)

        for projection in self._projections:
            runner = ProjectionRunner(
                projection,
                self._pool,
                cluster=self.settings.center,
                dead_letters=sink,
                keys=EdgeKeys.of(self.settings),
                gap_reader=gaps,
                publisher=Appender.of(self.settings, producer),
                is_local=self.settings.is_local,
            )
            self.runners[projection.name] = runner
            async with self._locks[projection.name]:
                report = await catch_up(runner, self.settings)
            log.warning(
                "%s caught up from the log: %d events in %.1fs",
                projection.name,
                report.events,
                report.seconds,
            )

    def run(self, loglevel: str = "warn") -> None:
        """Run in the foreground until SIGTERM/SIGINT."""
        if self.role.background:
            lower_priority(self.settings.background_nice)
        pid_file = self.settings.center_home / self.role.pid_file_name
        pid_file.parent.mkdir(parents=True, exist_ok=True)
        pid_file.write_text(str(os.getpid()))
        try:
            faust_worker(self.app, loglevel).execute_from_commandline()
        finally:
            if pid_file.exists() and pid_file.read_text() == str(os.getpid()):
                pid_file.unlink()


async def ready_batches(events: AsyncIterable[T], most: int) -> AsyncGenerator[list[T], None]:
    """Batches of at most ``most`` events, each yielded as soon as an event is there: what
    arrived while the previous batch was being applied makes up the next one.

    faust's ``take_events`` waits out its ``within`` after every batch, even when events are
    already waiting; at 100 kiosk requests a second that added 10 ms to every request's answer.
    Events are pulled (and acknowledged to faust) ahead of being applied, at most ``most`` of
    them: what a projection has applied is its tracking row, not faust's commit.
    """
    waiting: asyncio.Queue[T] = asyncio.Queue(maxsize=most)

    async def pull() -> None:
        async for event in events:
            await waiting.put(event)

    puller = asyncio.ensure_future(pull())
    getting: asyncio.Future[T] | None = None
    try:
        while True:
            getting = asyncio.ensure_future(waiting.get())
            await asyncio.wait((getting, puller), return_when=asyncio.FIRST_COMPLETED)
            if not getting.done():
                puller.result()  # the events' error, if they ended with one
                return
            batch = [getting.result()]
            # Let the puller move in what is there already, before cutting the batch.
            seen = -1
            while waiting.qsize() != seen and len(batch) + waiting.qsize() < most:
                seen = waiting.qsize()
                await asyncio.sleep(0)
            while len(batch) < most and not waiting.empty():
                batch.append(waiting.get_nowait())
            yield batch
    finally:
        # Closed, or the agent crashed: nothing may go on pulling events nobody will apply.
        pending = [task for task in (puller, getting) if task is not None]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)


# This process's scheduling group and its niceness ("/autogroup-123 nice 0"), where the kernel
# groups by session.
AUTOGROUP = Path("/proc/self/autogroup")


def lower_priority(niceness: int) -> None:
    """Run this process at ``niceness`` at least: when the machine is busy, the kiosks' path
    (the issuance worker, its renderers, the broker, Postgres) gets the CPU first. Only ever
    raised: lowering it back would need privileges.

    With autogroup scheduling (Linux's default), the CPU is shared between sessions first and a
    process's niceness counts only within its session. A worker that leads a session of its own
    (`bcl worker --detach` starts each so) therefore sets its session's niceness as well.
    """
    if niceness > os.getpriority(os.PRIO_PROCESS, 0):
        os.setpriority(os.PRIO_PROCESS, 0, niceness)
    if os.getsid(0) != os.getpid():
        return  # the session is the terminal's: its other processes are none of ours
    group = autogroup_niceness()
    if group is not None and niceness > group:
        with contextlib.suppress(OSError):  # a /proc mounted read-only: the process's own suffices
            AUTOGROUP.write_text(str(niceness))


def autogroup_niceness() -> int | None:
    """The niceness of this process's session group; None where the kernel groups it with no
    session: no autogroup support, or the boot session's default group, whose file reads empty."""
    try:
        text = AUTOGROUP.read_text()
    except OSError:
        return None
    _, found, niceness = text.rpartition(" nice ")
    return int(niceness) if found else None


def faust_worker(app: faust.App, loglevel: str) -> faust.Worker:
    """faust's worker for ``app``, logging at ``loglevel``, without its terminal spinner.

    To spin at every log record, the spinner puts the root logger at DEBUG: every debug call
    of aiokafka and faust (one per partition per fetch) would then build a record only for the
    handler to drop it, a tenth of the worker's time at 100 kiosk requests a second.
    """
    worker = faust.Worker(app, loglevel=loglevel, quiet=True, redirect_stdouts=False)
    worker.spinner = None
    return worker


def new_app(
    settings: Settings, app_id: str, *, fetch_wait: float, fetch_min_bytes: int = 1
) -> faust.App:
    """A faust app of this center whose consumer group is ``app_id``; its fetches wait
    ``fetch_wait`` seconds at most, or until ``fetch_min_bytes`` are there."""
    datadir = Path(settings.center_home) / "worker" / app_id
    datadir.mkdir(parents=True, exist_ok=True)
    return _App(
        app_id,
        fetch_wait=fetch_wait,
        fetch_min_bytes=fetch_min_bytes,
        broker=[f"kafka://{host}" for host in settings.bootstrap.split(",")],
        broker_credentials=_credentials(settings),
        store="memory://",
        datadir=str(datadir),
        autodiscover=False,
        web_enabled=False,
        # Topics come from the catalog (`bcl up`); faust must not create or reconfigure any.
        topic_allow_declare=False,
        topic_disable_leader=True,
        topic_partitions=settings.partitions,
        consumer_auto_offset_reset="earliest",
        # tansu makes a group join wait about half the session timeout.
        broker_session_timeout=6.0,
        broker_heartbeat_interval=1.5,
        broker_max_poll_records=settings.batch_size,
        stream_buffer_maxsize=max(4096, settings.batch_size * 2),
        producer_acks=-1,
        # Shutting down mid-stream must not wait for buffered messages to be acknowledged: a
        # take() buffer cut short never acknowledges them, and what counts as applied is the
        # projection's tracking row, not faust's commit.
        stream_wait_empty=False,
    )


class _App(faust.App):
    """faust's app with a consumer whose fetches wait ``fetch_wait`` seconds at most, or until
    ``fetch_min_bytes`` are there.

    faust fixes the wait at 1.5 s. Kafka answers a waiting fetch as soon as records arrive, but
    tansu only when the wait is over, so a kiosk's request would sit up to 1.5 s in front of the
    issuer.
    """

    def __init__(self, id: str, *, fetch_wait: float, fetch_min_bytes: int, **options: Any) -> None:
        self.fetch_wait = fetch_wait
        self.fetch_min_bytes = fetch_min_bytes
        super().__init__(id, **options)

    def _new_transport(self) -> Any:
        return _Transport(self.conf.broker_consumer, self)


class _ConsumerThread(faust_kafka.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> AIOKafkaConsumer[bytes, bytes]:
        consumer: AIOKafkaConsumer[bytes, bytes] = super()._create_worker_consumer(transport)
        # Read by the consumer's start(), when it builds its fetcher: set before that.
        app = cast(_App, self.app)
        consumer._fetch_max_wait_ms = int(app.fetch_wait * 1000)
        consumer._fetch_min_bytes = app.fetch_min_bytes
        return consumer


class _Consumer(faust_kafka.Consumer):
    def _new_consumer_thread(self) -> _ConsumerThread:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)


class _Transport(faust_kafka.Transport):
    Consumer = _Consumer


def _credentials(settings: Settings) -> Any:
    if settings.kafka_sasl_mechanism:
        return faust.SASLCredentials(
            username=settings.kafka_sasl_username,
            password=settings.kafka_sasl_password,
            mechanism=settings.kafka_sasl_mechanism,
            ssl_context=None,
        )
    if settings.kafka_security_protocol == "SSL":
        import ssl

        cafile = str(settings.kafka_ssl_cafile) if settings.kafka_ssl_cafile else None
        return faust.SSLCredentials(ssl.create_default_context(cafile=cafile))
    return None
