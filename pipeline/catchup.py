"""Reading the log straight into a projection: the live follower, start-up catch-up, replay and
gap filling.

Every path reads with a group-less aiokafka client from each partition's tracked offset: catch-up
and replay in large batches up to the high watermark seen when they start, the live follower
whatever arrives. All feed the same ``ProjectionRunner``, so they can run beside each other.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from aiokafka import TopicPartition

from pipeline.collection import collect_seldom
from pipeline.database import create_pool
from pipeline.deadletters import DeadLetterSink
from pipeline.kafka import high_watermarks, partitions_of, producer, reader
from pipeline.projection import Projection, RawRecord, bulk_replay_of, load_projection
from pipeline.proofs import EdgeKeys
from pipeline.publish import Appender
from pipeline.runner import BatchResult, Decoded, ProjectionRunner, decode_records
from pipeline.settings import Settings
from pipeline.topics import DEAD_LETTERS

# A catch-up starts a second process (`catch_up_in_bulk`) for at least this many events: the
# process takes about 1.5 s to start, in which one process applies some 30,000.
SECOND_PROCESS_FROM = 100_000
# Fetches in a row that find nothing below the targets before a catch-up stops short of them.
QUIET_FETCHES = 3
# The most a catch-up batch holds of encoded events. Decoded, an event takes about ten times its
# bytes, and three batches are in memory at once (fetched, decoded, applied): a replay of the
# replica's 1,100-byte events in batches of 20,000 peaked near 800 MiB, at 4 MiB each of its
# two processes near 240 MiB, as fast.
BATCH_BYTES = 4 << 20
# What one fetch brings at most: the reader holds a fetch's bytes while the one before is
# decoded. 16 MiB reads as fast as 64 MiB here (`make bench`), in a quarter of the memory.
FETCH_BYTES = 16 << 20

Progress = Callable[[int, int], None]
"""Called with (events read so far, events to read in all)."""


class LogBehindProjection(RuntimeError):
    """The projection has applied offsets the log does not have: the log was reset or replaced."""

    def __init__(
        self,
        projection: str,
        schema: str,
        partitions: list[TopicPartition],
        applied: dict[TopicPartition, int],
        log_end: dict[TopicPartition, int],
    ) -> None:
        where = ", ".join(
            f"{tp.topic}[{tp.partition}] applied to {applied[tp]:,}, log ends at {log_end[tp]:,}"
            for tp in partitions[:3]
        )
        super().__init__(
            f"projection {projection!r} (schema {schema}) is ahead of the log: {where}. The log "
            f"was reset or this database belongs to another cluster; rebuild it from the log with "
            f"`bcl replay {projection}`"
        )


@dataclass(frozen=True)
class Share:
    """Share ``index`` of ``count`` of a projection's partitions, for readers side by side."""

    index: int
    count: int

    def of(self, partitions: list[TopicPartition]) -> list[TopicPartition]:
        return [tp for i, tp in enumerate(partitions) if i % self.count == self.index]

    def holds(self, partition: int) -> bool:
        """Whether partition number ``partition`` of a topic is in this share (as in ``of``)."""
        return partition % self.count == self.index


@dataclass
class CatchUpReport:
    events: int = 0
    applied: int = 0
    dead_lettered: int = 0
    seconds: float = 0.0
    targets: dict[TopicPartition, int] = field(default_factory=dict)

    @property
    def events_per_second(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0

    def beside(self, other: CatchUpReport) -> CatchUpReport:
        """This report and ``other``'s, of a reader side by side with this one, as one."""
        return CatchUpReport(
            events=self.events + other.events,
            applied=self.applied + other.applied,
            dead_lettered=self.dead_lettered + other.dead_lettered,
            seconds=max(self.seconds, other.seconds),
            targets=self.targets | other.targets,
        )


async def catch_up(
    runner: ProjectionRunner,
    settings: Settings,
    *,
    progress: Progress | None = None,
    batch_size: int | None = None,
    share: Share | None = None,
) -> CatchUpReport:
    """Apply everything between each partition's tracked offset and its current high watermark;
    with a ``share``, only that share of the partitions.

    A processor first sends the decisions a crash left in its outbox, so they precede new ones.
    """
    report = CatchUpReport()
    started = time.perf_counter()
    await runner.flush_outbox()
    size = batch_size or settings.replay_batch_size
    async with reader(
        settings, fetch_max_bytes=FETCH_BYTES, max_partition_fetch_bytes=FETCH_BYTES // 4
    ) as client:
        partitions = await partitions_of(client, settings.subscribed(*runner.projection.topics))
        if share is not None:
            partitions = share.of(partitions)
        report.targets = await high_watermarks(client, partitions)
        tracked = await runner.tracked_offsets()
        start = {tp: tracked.get(tp, -1) + 1 for tp in partitions}
        ahead = [tp for tp in partitions if start[tp] > report.targets[tp]]
        if ahead:
            raise LogBehindProjection(
                runner.projection.name, runner.schema, ahead, start, report.targets
            )
        pending = {tp for tp in partitions if start[tp] < report.targets[tp]}
        total = sum(report.targets[tp] - start[tp] for tp in pending)
        if progress:
            progress(0, total)
        if pending:
            # (aiokafka's stop() hangs on an empty assignment, so only assign real work.)
            client.assign(sorted(pending))
        for tp in pending:
            client.seek(tp, start[tp])

        async def fetch_and_decode() -> AsyncIterator[list[Decoded]]:
            idle = 0
            while pending:
                fetched = await client.getmany(*pending, timeout_ms=1000, max_records=size)
                idle = 0 if fetched else idle + 1
                if idle == QUIET_FETCHES:
                    # Nothing to read for that long: what is left below the targets holds no
                    # record (offsets a broker claimed and died before writing, transaction
                    # markers); the live follower takes whatever comes after them.
                    break
                records: list[RawRecord] = []
                for tp, found in fetched.items():
                    records.extend(r for r in found if r.offset < report.targets[tp])
                for batch in _by_size(records):
                    yield decode_records(batch, runner.projection.name, runner.keys)
                for tp in list(pending):
                    if await client.position(tp) >= report.targets[tp]:
                        pending.discard(tp)

        async for batch, result in _applied_ahead(runner, fetch_and_decode()):
            report.events += len(batch)
            report.applied += result.applied
            report.dead_lettered += result.dead_lettered
            if progress:
                progress(report.events, total)
    report.seconds = time.perf_counter() - started
    return report


def _by_size(records: list[RawRecord]) -> Iterator[list[RawRecord]]:
    """``records`` in batches of at most ``BATCH_BYTES`` (and at least one record)."""
    batch: list[RawRecord] = []
    size = 0
    for record in records:
        length = len(record.value or b"")
        if batch and size + length > BATCH_BYTES:
            yield batch
            batch, size = [], 0
        batch.append(record)
        size += length
    if batch:
        yield batch


@dataclass(frozen=True)
class Fetching:
    """How a live follower fetches: each fetch waits ``wait`` seconds at most for ``min_bytes``
    to be there; a batch holds at most ``batch_size`` events."""

    wait: float
    min_bytes: int
    batch_size: int


async def follow(
    runners: Sequence[ProjectionRunner], settings: Settings, fetching: Fetching
) -> None:
    """Apply what arrives on the projections' topics, each a batch at a time, until cancelled.

    One reader fetches for all of them, starting each partition at the lowest offset any of
    them still needs (the runner skips what a projection has applied). A fetcher per projection
    made the broker look for new records in every partition for each of them: with the log's
    store, eight background followers took a core while idle, and kiosks waited behind them.

    A projection's batch is whatever has arrived for it when its previous one is applied: one
    event when one came, thousands when they pour in. A slow projection holds the reader back,
    at most two fetches behind. If one fails, all stop; the worker starts them again from their
    tracked offsets.
    """
    async with reader(
        settings,
        fetch_max_wait_ms=int(fetching.wait * 1000),
        fetch_min_bytes=fetching.min_bytes,
    ) as client:
        topics_of = [set(settings.subscribed(*r.projection.topics)) for r in runners]
        partitions = await partitions_of(client, sorted(set().union(*topics_of)))
        start: dict[TopicPartition, int] = {}
        for runner, topics in zip(runners, topics_of, strict=True):
            tracked = await runner.tracked_offsets()
            for tp in partitions:
                if tp.topic in topics:
                    needed = tracked.get(tp, -1) + 1
                    start[tp] = min(start.get(tp, needed), needed)
        client.assign(partitions)
        for tp in partitions:
            client.seek(tp, start[tp])
        arrived: list[asyncio.Queue[list[Decoded]]] = [asyncio.Queue(maxsize=2) for _ in runners]

        async def fetch() -> None:
            # Batches are decoded here, not where they are applied: the next batch's decoding
            # (this process's CPU) then overlaps the database applying the one before.
            while True:
                fetched = await client.getmany(timeout_ms=1000, max_records=fetching.batch_size)
                for runner, topics, queue in zip(runners, topics_of, arrived, strict=True):
                    records = [
                        r for tp, found in fetched.items() if tp.topic in topics for r in found
                    ]
                    if records:
                        await queue.put(runner.decode(records))

        async def apply(runner: ProjectionRunner, queue: asyncio.Queue[list[Decoded]]) -> None:
            while True:
                batch = await queue.get()
                while not queue.empty():
                    batch += queue.get_nowait()
                await runner.apply_decoded(batch)

        tasks = [
            asyncio.create_task(fetch()),
            *(asyncio.create_task(apply(r, q)) for r, q in zip(runners, arrived, strict=True)),
        ]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            for task in done:
                task.result()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


async def _applied_ahead(
    runner: ProjectionRunner, batches: AsyncIterator[list[Decoded]]
) -> AsyncIterator[tuple[list[Decoded], BatchResult]]:
    """Apply ``batches`` in order, each with its result. Fetching and decoding (this process's
    CPU) run one batch ahead of applying (mostly Postgres's CPU), so on two cores they overlap."""
    ahead: asyncio.Queue[list[Decoded] | BaseException | None] = asyncio.Queue(maxsize=1)

    async def read_ahead() -> None:
        try:
            async for batch in batches:
                await ahead.put(batch)
        except Exception as error:  # handed over to be raised where batches are applied
            await ahead.put(error)
        else:
            await ahead.put(None)

    reading = asyncio.create_task(read_ahead())
    try:
        while (batch := await ahead.get()) is not None:
            if isinstance(batch, BaseException):
                raise batch
            yield batch, await runner.apply_decoded(batch)
        await reading
    finally:
        reading.cancel()
        await asyncio.gather(reading, return_exceptions=True)


async def catch_up_in_bulk(
    runner: ProjectionRunner, settings: Settings, *, progress: Progress | None = None
) -> CatchUpReport:
    """``catch_up``, on both cores where the projection allows it (``BulkReplay``) and at least
    ``SECOND_PROCESS_FROM`` events wait: a replay, a worker starting after an outage."""
    if bulk_replay_of(runner.projection).partitions_apart and (
        await _backlog(runner, settings) >= SECOND_PROCESS_FROM
    ):
        return await _on_both_cores(runner, settings, progress)
    return await catch_up(runner, settings, progress=progress)


async def _backlog(runner: ProjectionRunner, settings: Settings) -> int:
    """How many offsets of the projection's partitions lie beyond what it has applied."""
    async with reader(settings) as client:
        partitions = await partitions_of(client, settings.subscribed(*runner.projection.topics))
        ends = await high_watermarks(client, partitions)
    tracked = await runner.tracked_offsets()
    return sum(max(0, end - tracked.get(tp, -1) - 1) for tp, end in ends.items())


async def _on_both_cores(
    runner: ProjectionRunner, settings: Settings, progress: Progress | None
) -> CatchUpReport:
    """Catch up with half the partitions read here and half in a second process: decoding is
    most of a catch-up's CPU, and the projection's events of different partitions touch no
    common row (``BulkReplay.partitions_apart``)."""
    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(1, mp_context=spawn) as other_process:
        theirs = asyncio.get_running_loop().run_in_executor(
            other_process,
            _catch_up_share,
            settings,
            runner.projection.name,
            runner.schema,
            Share(1, 2),
        )
        try:
            mine = await catch_up(runner, settings, progress=progress, share=Share(0, 2))
        finally:
            # Never leave the other half running: its report or its error comes back here.
            other = await theirs
    return mine.beside(other)


def _catch_up_share(settings: Settings, name: str, schema: str, share: Share) -> CatchUpReport:
    """In the second process of ``_on_both_cores``: catch ``share`` of ``name``'s partitions up
    into ``schema``. It publishes no decision: a projection read on both cores decides none."""
    collect_seldom()

    async def caught_up() -> CatchUpReport:
        async with runners(settings) as runner:
            building = runner(load_projection(name, settings), schema=schema)
            return await catch_up(building, settings, share=share)

    return asyncio.run(caught_up())


class LogGapReader:
    """Reads a missing offset range of one partition for the runner's gap filling."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    async def read_range(self, tp: TopicPartition, start: int, end: int) -> list[RawRecord]:
        found: list[RawRecord] = []
        async with reader(self.settings) as client:
            client.assign([tp])
            client.seek(tp, start)
            while await client.position(tp) < end:
                fetched = await client.getmany(tp, timeout_ms=1000, max_records=10_000)
                found.extend(r for r in fetched.get(tp, ()) if r.offset < end)
        return found


@asynccontextmanager
async def runners(settings: Settings) -> AsyncIterator[Callable[..., ProjectionRunner]]:
    """Runners for commands that drive projections from their own process (refresh, replay).

    Yields ``runner(projection, schema=None)``; the pool and the producer they share are closed
    on the way out. A runner into a shadow schema (a replay) publishes no decisions: they are in
    the log already.
    """
    pool = await create_pool(settings, max_size=2)
    try:
        async with producer(settings) as shared_producer:
            sink = DeadLetterSink(shared_producer, settings.topic(DEAD_LETTERS.name))
            gaps = LogGapReader(settings)
            publisher = Appender.of(settings, shared_producer)

            def runner(projection: Projection, schema: str | None = None) -> ProjectionRunner:
                return ProjectionRunner(
                    projection,
                    pool,
                    cluster=settings.center,
                    dead_letters=sink,
                    keys=EdgeKeys.of(settings),
                    gap_reader=gaps,
                    schema=schema,
                    publisher=publisher if schema is None else None,
                    is_local=settings.is_local,
                )

            yield runner
    finally:
        await pool.close()


async def refresh(settings: Settings, projection: Projection) -> CatchUpReport:
    """Bring one projection up to the log now, from this process.

    A command that must read a projection right after publishing (the registry after
    `bcl municipality add`, say) drives it itself instead of waiting for the worker; the tracking
    rows make this safe while the worker runs too.
    """
    async with runners(settings) as runner:
        return await catch_up(runner(projection), settings)
