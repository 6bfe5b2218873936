"""The live worker: the projections it hosts follow the log in batches, straight into their runners.

One plain aiokafka reader per process is assigned every partition of the hosted projections'
topics, from the lowest offset any of them still needs (``pipeline.catchup.follow``). The tracking
rows, not a consumer group, say what each has applied: there is no group to join (tansu makes a
join wait half the session timeout), no rebalance, no commit. A second worker of the same
projection would apply nothing twice, only wait on the tracking lock.

faust-streaming ran these projections until issue 24: its per-message stream (a task, an
``asyncio.wait``, sensors and an acknowledgement per message) capped any projection it hosted near
3,000 events/s here, an eleventh of a plain ``getmany`` loop in the same process.

Before following, each projection is caught up from the log with the same reader in large batches.
A center deploys its projections as the roles of ``pipeline.agents.WORKER_ROLES``, one process
each; `bcl worker` in the foreground hosts every one in one process.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import os
import signal
from collections.abc import Sequence
from pathlib import Path

from pipeline.agents import AGENT_MODULES, role_of
from pipeline.catchup import Fetching, LogGapReader, catch_up_in_bulk, follow
from pipeline.collection import freeze_what_is_alive
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

# A background worker's fetch returns once this much waits, or after BCL_BATCH_WITHIN.
BACKGROUND_FETCH_MIN_BYTES = 1 << 20
# How long a follower that failed (Postgres gone, the broker restarting) waits before it reads
# its tracked offsets again and goes on from there.
RESTART_AFTER = 1.0


class Worker:
    def __init__(self, settings: Settings, agents: Sequence[str] | None = None) -> None:
        self.settings = settings
        self.role = role_of(agents)
        self.hosted: list[Projection] = []
        for name in self.role.agents:
            importlib.import_module(AGENT_MODULES[name]).install(self)

    def add_projection(self, projection: Projection) -> None:
        """Run ``projection`` live: each of its batches is what has arrived when the one before
        is applied, so a resident at a kiosk waits for no batch to fill."""
        self.hosted.append(projection)

    def fetching(self) -> Fetching:
        """How the process's reader fetches. Where no kiosk waits on the process, a fetch waits up
        to BCL_BATCH_WITHIN for a megabyte worth applying: fetching whatever is there every
        BCL_FETCH_WAIT cost a journal worker about a tenth more CPU per event under load (each
        fetch lists the partitions' objects in the log's store, each batch is a transaction),
        and a worker of seven projections three times the CPU while idle, CPU the kiosks' path
        needs."""
        if not self.role.answers_kiosks:
            return Fetching(
                wait=self.settings.batch_within,
                min_bytes=BACKGROUND_FETCH_MIN_BYTES,
                batch_size=self.settings.batch_size,
            )
        return Fetching(
            wait=self.settings.fetch_wait, min_bytes=1, batch_size=self.settings.batch_size
        )

    async def serve(self, stopping: asyncio.Event) -> None:
        """Catch every hosted projection up, then follow the log until ``stopping`` is set.

        1. Open the pool and the producer the runners share.
        2. Catch each projection up from its tracked offsets to the end of the log, in large
           batches, on both cores where it allows it; a processor first sends what its outbox
           holds.
        3. Set aside from garbage collection everything alive now.
        4. Follow the projections' topics with one reader; if it fails, it starts again from
           the tracked offsets after ``RESTART_AFTER``.
        """
        # 1.
        pool = await create_pool(
            self.settings,
            max_size=len(self.hosted) + 2,
            nice=self.settings.background_nice if self.role.background else None,
        )
        producer = await start_producer(self.settings)
        followers: list[asyncio.Task[None]] = []
        try:
            sink = DeadLetterSink(producer, self.settings.topic(DEAD_LETTERS.name))
            gaps = LogGapReader(self.settings)
            runners = [
                ProjectionRunner(
                    projection,
                    pool,
                    cluster=self.settings.center,
                    dead_letters=sink,
                    keys=EdgeKeys.of(self.settings),
                    gap_reader=gaps,
                    publisher=Appender.of(self.settings, producer),
                    is_local=self.settings.is_local,
                )
                for projection in self.hosted
            ]
            # 2.
            for runner in runners:
                report = await catch_up_in_bulk(runner, self.settings)
                log.warning(
                    "%s caught up from the log: %d events in %.2fs",
                    runner.projection.name,
                    report.events,
                    report.seconds,
                )
            # 3. What the worker holds from now on (modules, pydantic's validators: about 100,000
            # objects) is never garbage: out of the collector's sight, a full collection takes a
            # few milliseconds instead of stopping the loop for 60-120 ms while kiosks wait.
            frozen = freeze_what_is_alive()
            log.warning("ready; %d objects set aside from garbage collection", frozen)
            # 4.
            followers = [asyncio.create_task(self._keep_following(runners))]
            await stopping.wait()
        finally:
            for task in followers:
                task.cancel()
            await asyncio.gather(*followers, return_exceptions=True)
            await producer.stop()
            await pool.close()

    async def _keep_following(self, runners: Sequence[ProjectionRunner]) -> None:
        while True:
            try:
                await follow(runners, self.settings, self.fetching())
            except Exception as error:
                log.error(
                    "stopped following the log (%s: %s); going on from the tracked offsets in %gs",
                    type(error).__name__,
                    error,
                    RESTART_AFTER,
                )
                await asyncio.sleep(RESTART_AFTER)

    def run(self, loglevel: str = "warn") -> None:
        """Run in the foreground until SIGTERM or SIGINT; a worker that cannot catch up stops
        with status 1 and says why."""
        logging.basicConfig(
            level=_LEVELS.get(loglevel, loglevel.upper()),
            format="[%(asctime)s] [%(process)d] [%(levelname)s] %(name)s: %(message)s",
        )
        if self.role.background:
            lower_priority(self.settings.background_nice)
        pid_file = self.settings.center_home / self.role.pid_file_name
        pid_file.parent.mkdir(parents=True, exist_ok=True)
        pid_file.write_text(str(os.getpid()))
        try:
            asyncio.run(self._until_stopped())
        except Exception as error:
            log.critical("cannot start: %s", error)
            raise SystemExit(1) from None
        finally:
            if pid_file.exists() and pid_file.read_text() == str(os.getpid()):
                pid_file.unlink()

    async def _until_stopped(self) -> None:
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for stop in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(stop, stopping.set)
        await self.serve(stopping)
        log.warning("stopped")


_LEVELS = {"crit": "CRITICAL", "warn": "WARNING"}


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
