"""The mirror: one center's source topics copied into the other center's cluster.

Named as MirrorMaker 2 names them (its DefaultReplicationPolicy): east's ``issuance.requests``
becomes ``east.issuance.requests`` in the west cluster, in the same partition, with the same key,
value, headers and timestamp. The other center's consumers read the copy beside their own topic
(``BCL_PEERS``), so a projection tracks offsets of its own cluster only; identity across centers
is the event id.

Exactly once in effect, without Kafka transactions (the embedded broker has none): every copy
carries its source coordinates in two headers, ``bcl.mirror.center`` and ``bcl.mirror.offset``,
so the target itself records how far the copy has gone. A mirror killed at any moment resumes
after the last copy the target holds: nothing is skipped and nothing is copied twice.

Offset checkpoints go to ``<source>.checkpoints.internal`` in the target cluster: after each
batch, per partition, the last source offset copied and the target offset it got (MirrorMaker 2
keeps the same pairs in its offset-syncs and checkpoints topics). ``translate`` turns a consumer
group's committed offsets in the source cluster into offsets of the copy, for consumers outside
the pipeline that move to the other center.

Residents' data keys travel beside their data: before a batch of ``resident.changes`` is copied,
the keys of the residents it names are carried from the source center's vault to the target's
(``copy_data_keys``; wrapped, both centers hold the same KEK), so the other center can open every
record it receives, and a key destroyed by the retention run (its ``resident.purged`` follows)
is destroyed there too. On a real deployment the key vault is replicated by its own means (an
HSM/KMS cluster spanning both centers) and this step goes.

On a real deployment MirrorMaker 2 replaces this module: one ``MirrorSourceConnector`` per
direction (``east->west.enabled = true``, ``topics = municipalities|resident\\..*|jpki\\..*|
issuance\\..*|disaster\\..*``, ``sync.group.offsets.enabled = true``) gives the same topic names,
and its ``RemoteClusterUtils.translateOffsets`` replaces ``translate``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import asyncpg
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from pipeline.database import create_pool
from pipeline.kafka import (
    connection_options,
    high_watermarks,
    partitions_of,
    reader,
    start_producer,
)
from pipeline.settings import ServicesNotRunning, Settings
from pipeline.topics import CATALOG, RESIDENT_CHANGES, UNLIMITED_RETENTION, TopicSpec
from pipeline.vault import copy_data_keys
from schemas.codes import Resident

log = logging.getLogger("bcl.mirror")

CENTER_HEADER = "bcl.mirror.center"
OFFSET_HEADER = "bcl.mirror.offset"
BATCH_RECORDS = 5_000


def checkpoints_topic(source: Settings, target: Settings) -> str:
    return target.topic(f"{source.center}.checkpoints.internal")


@dataclass(frozen=True)
class Checkpoint:
    """Source offset ``upstream`` of a partition was copied to target offset ``downstream``."""

    topic: str  # the catalog name, e.g. issuance.requests
    partition: int
    upstream: int
    downstream: int


@dataclass
class MirrorReport:
    copied: int = 0
    seconds: float = 0.0
    restarted: list[str] = field(default_factory=list)  # partitions whose source was replaced

    @property
    def records_per_second(self) -> float:
        return self.copied / self.seconds if self.seconds > 0 else 0.0


class Mirror:
    """Copies ``source``'s source topics into ``target``'s cluster."""

    def __init__(
        self, source: Settings, target: Settings, specs: Sequence[TopicSpec] = CATALOG
    ) -> None:
        self.source = source
        self.target = target
        self.specs = [spec for spec in specs if spec.source]
        self._vaults: tuple[asyncpg.Pool, asyncpg.Pool] | None = None

    def copy_of(self, name: str) -> str:
        return self.target.mirrored(self.source.center, name)

    async def run(
        self, *, stop: asyncio.Event | None = None, until_end: bool = False
    ) -> MirrorReport:
        """Copy until ``stop`` is set, or with ``until_end`` until the source's end as it was
        when the pass began.

        1. Make the copies' topics, each with its source topic's partition count.
        2. Find where each partition resumes: after the source offset named by the last copy
           in the target partition (an empty copy: from the source's beginning). A source log
           now shorter than that was replaced (a lost cluster rebuilt empty): it is copied from
           its beginning again, after what the copy already holds, and the restart is reported.
        3. Read a batch from the source.
        4. Send each record to the same partition of its copy with its key, value, headers and
           timestamp plus its source coordinates, and wait until all are acknowledged by every
           replica (acks=all). One partition's records go in order on one connection.
        5. Write checkpoints (source → target offset) of the first and last record the batch
           copied in each partition: the copy is contiguous between them.
        6. Go on from 3.
        """
        report = MirrorReport()
        started = time.perf_counter()
        async with reader(self.source) as client:
            # 1.
            sources = await partitions_of(client, [self.source.topic(s.name) for s in self.specs])
            await self._make_copies(sources)
            # 2.
            ends = await high_watermarks(client, sources)
            resume = await self._resume_points(sources, ends, report)
            client.assign(sources)
            for tp in sources:
                client.seek(tp, resume[tp])
            producer = await start_producer(self.target, linger_ms=2)
            if (
                _has_vault(self.source)
                and _has_vault(self.target)
                and (self.source.dsn != self.target.dsn)
            ):
                self._vaults = (
                    await create_pool(self.source, max_size=1),
                    await create_pool(self.target, max_size=1),
                )
            try:
                while not (stop is not None and stop.is_set()):
                    if until_end and all(await positions_reached(client, sources, ends)):
                        break
                    # 3.
                    fetched = await client.getmany(timeout_ms=200, max_records=BATCH_RECORDS)
                    # 4.
                    copied = [
                        checkpoint
                        for tp, records in fetched.items()
                        for checkpoint in await self._copy(producer, tp, records)
                    ]
                    report.copied += len(copied)
                    # 5.
                    if copied:
                        await self._checkpoint(producer, _first_and_last(copied))
                    # 6.
            finally:
                await producer.stop()
                for pool in self._vaults or ():
                    await pool.close()
        report.seconds = time.perf_counter() - started
        return report

    async def _copy(
        self,
        producer: AIOKafkaProducer[bytes, bytes],
        tp: TopicPartition,
        records: Sequence[ConsumerRecord[bytes, bytes]],
    ) -> list[Checkpoint]:
        """Copy one partition's records in order; returns where each landed, once all have."""
        name = self._catalog_name(tp.topic)
        if name == RESIDENT_CHANGES.name:
            await self._carry_keys(records)
        futures = [
            await producer.send(
                self.copy_of(name),
                record.value,
                key=record.key,
                partition=tp.partition,
                timestamp_ms=record.timestamp,
                headers=[
                    *(record.headers or ()),
                    (CENTER_HEADER, self.source.center.encode()),
                    (OFFSET_HEADER, str(record.offset).encode()),
                ],
            )
            for record in records
        ]
        landed = await asyncio.gather(*futures)
        return [
            Checkpoint(name, tp.partition, record.offset, metadata.offset)
            for record, metadata in zip(records, landed, strict=True)
        ]

    async def _carry_keys(self, records: Sequence[ConsumerRecord[bytes, bytes]]) -> None:
        """The data keys of the residents these records name (key ``municipality:resident``),
        into the target's vault before the records themselves."""
        if self._vaults is None:
            return  # one database serves both centers (one vault), or the topics go alone
        residents: list[Resident] = []
        for record in records:
            municipality, _, resident = (record.key or b"").decode().partition(":")
            if resident:
                residents.append((municipality, resident))
        source, target = self._vaults
        async with source.acquire() as reading, target.acquire() as writing:
            conflicts = await copy_data_keys(reading, writing, residents)
        for municipality, resident in conflicts:
            log.error(
                "resident %s of %s has a different data key in %s than in %s: their data was "
                "pushed to both centers, and %s cannot open what %s sealed",
                resident, municipality, self.target.center, self.source.center,
                self.target.center, self.source.center,
            )  # fmt: skip

    def _catalog_name(self, physical: str) -> str:
        return physical.removeprefix(self.source.topic_prefix)

    async def _make_copies(self, sources: Sequence[TopicPartition]) -> None:
        counts: dict[str, int] = {}
        for tp in sources:
            counts[self._catalog_name(tp.topic)] = max(
                counts.get(self._catalog_name(tp.topic), 0), tp.partition + 1
            )
        configs = {spec.name: spec.config for spec in self.specs}
        wanted = {self.copy_of(name): (count, configs[name]) for name, count in counts.items()}
        wanted[checkpoints_topic(self.source, self.target)] = (1, UNLIMITED_RETENTION)
        admin = AIOKafkaAdminClient(**connection_options(self.target))
        await admin.start()
        try:
            existing = set(await admin.list_topics())
            missing = [
                NewTopic(name, count, 1, topic_configs=dict(config))
                for name, (count, config) in wanted.items()
                if name not in existing
            ]
            if missing:
                await admin.create_topics(missing)
        finally:
            await admin.close()

    async def _resume_points(
        self,
        sources: Sequence[TopicPartition],
        ends: Mapping[TopicPartition, int],
        report: MirrorReport,
    ) -> dict[TopicPartition, int]:
        copied = await last_copied(self.target, [self.copy_partition(tp) for tp in sources])
        resume: dict[TopicPartition, int] = {}
        for tp in sources:
            after = copied.get(self.copy_partition(tp))
            start = 0 if after is None else after + 1
            if start > ends[tp]:
                where = f"{tp.topic}[{tp.partition}]"
                log.warning(
                    "%s in %s ends at %d but %d records were copied: the source log was replaced; "
                    "copying it again from its beginning",
                    where, self.source.center, ends[tp], start,
                )  # fmt: skip
                report.restarted.append(where)
                start = 0
            resume[tp] = start
        return resume

    def copy_partition(self, tp: TopicPartition) -> TopicPartition:
        return TopicPartition(self.copy_of(self._catalog_name(tp.topic)), tp.partition)

    async def _checkpoint(
        self, producer: AIOKafkaProducer[bytes, bytes], checkpoints: Iterable[Checkpoint]
    ) -> None:
        topic = checkpoints_topic(self.source, self.target)
        at = datetime.now(UTC).isoformat()
        futures = [
            await producer.send(
                topic,
                orjson.dumps(
                    {"topic": c.topic, "partition": c.partition, "upstream": c.upstream,
                     "downstream": c.downstream, "at": at}
                ),
                key=f"{c.topic}:{c.partition}".encode(),
                partition=0,
            )
            for c in checkpoints
        ]  # fmt: skip
        await asyncio.gather(*futures)


def _has_vault(center: Settings) -> bool:
    """Whether the center has a database (a mirror of the topics alone runs without)."""
    try:
        return bool(center.dsn)
    except ServicesNotRunning:
        return False


def _first_and_last(copied: Sequence[Checkpoint]) -> list[Checkpoint]:
    """Per partition, the first and the last copy of a batch: the copy is contiguous between."""
    ends: dict[tuple[str, int], list[Checkpoint]] = {}
    for checkpoint in copied:
        pair = ends.setdefault((checkpoint.topic, checkpoint.partition), [checkpoint])
        pair[1:] = [checkpoint]
    return [c for pair in ends.values() for c in dict.fromkeys(pair)]


async def positions_reached(
    client: AIOKafkaConsumer[bytes, bytes],
    sources: Sequence[TopicPartition],
    ends: Mapping[TopicPartition, int],
) -> list[bool]:
    return [await client.position(tp) >= ends[tp] for tp in sources]


async def last_copied(
    target: Settings, copies: Sequence[TopicPartition]
) -> dict[TopicPartition, int]:
    """The source offset named by the last copy in each target partition (absent: none yet)."""
    found: dict[TopicPartition, int] = {}
    async with reader(target) as client:
        ends = await high_watermarks(client, copies)
        holding = [tp for tp in copies if ends[tp] > 0]
        if not holding:
            return found
        client.assign(holding)
        for tp in holding:
            client.seek(tp, ends[tp] - 1)
        while len(found) < len(holding):
            fetched = await client.getmany(*holding, timeout_ms=1000)
            for tp, records in fetched.items():
                for record in records:
                    if record.offset == ends[tp] - 1:
                        found[tp] = source_offset(record.headers)
    return found


def source_offset(headers: Sequence[tuple[str, bytes]] | None) -> int:
    for name, value in headers or ():
        if name == OFFSET_HEADER:
            return int(value)
    raise ValueError(
        f"a record in a mirrored topic has no {OFFSET_HEADER} header: the topic was written by "
        "something other than the mirror"
    )


async def mirror_lag(source: Settings, target: Settings) -> dict[str, int]:
    """Records of each source topic not yet in the target cluster (the recovery point were the
    source lost now)."""
    mirror = Mirror(source, target)
    async with reader(source) as client:
        sources = await partitions_of(client, [source.topic(s.name) for s in mirror.specs])
        ends = await high_watermarks(client, sources)
    copied = await last_copied(target, [mirror.copy_partition(tp) for tp in sources])
    lag: dict[str, int] = {}
    for tp in sources:
        after = copied.get(mirror.copy_partition(tp))
        name = mirror._catalog_name(tp.topic)
        lag[name] = lag.get(name, 0) + max(0, ends[tp] - (0 if after is None else after + 1))
    return lag


async def read_checkpoints(source: Settings, target: Settings) -> list[Checkpoint]:
    topic = checkpoints_topic(source, target)
    found: list[Checkpoint] = []
    async with reader(target) as client:
        [tp] = await partitions_of(client, [topic])
        end = (await high_watermarks(client, [tp]))[tp]
        client.assign([tp])
        client.seek(tp, 0)
        while await client.position(tp) < end:
            for record in (await client.getmany(tp, timeout_ms=1000)).get(tp, ()):
                data = orjson.loads(record.value or b"{}")
                found.append(
                    Checkpoint(data["topic"], data["partition"], data["upstream"],
                               data["downstream"])
                )  # fmt: skip
    return found


async def committed_offsets(source: Settings, group: str) -> dict[tuple[str, int], int]:
    """What consumer group ``group`` has committed on the source topics (catalog name,
    partition → next offset)."""
    specs = [spec for spec in CATALOG if spec.source]
    async with reader(source, group_id=group) as client:
        partitions = await partitions_of(client, [source.topic(s.name) for s in specs])
        found: dict[tuple[str, int], int] = {}
        for tp in partitions:
            offset = await client.committed(tp)
            if offset is not None:
                found[(tp.topic.removeprefix(source.topic_prefix), tp.partition)] = offset
    return found


def translate(
    committed: Mapping[tuple[str, int], int], checkpoints: Sequence[Checkpoint]
) -> dict[tuple[str, int], int]:
    """A consumer group's committed offsets in the source cluster (catalog topic, partition →
    next offset to read) as offsets of the copy: from the latest checkpoint at or below each,
    counting on (the mirror copies every record in order, so the copy is contiguous after a
    checkpoint); a group before every checkpoint starts at the copy's beginning."""
    latest: dict[tuple[str, int], list[Checkpoint]] = {}
    for checkpoint in checkpoints:
        latest.setdefault((checkpoint.topic, checkpoint.partition), []).append(checkpoint)
    translated: dict[tuple[str, int], int] = {}
    for key, offset in committed.items():
        below = [c for c in latest.get(key, []) if c.upstream <= offset]
        if not below:
            translated[key] = 0
            continue
        best = max(below, key=lambda c: c.upstream)
        translated[key] = best.downstream + (offset - best.upstream)
    return translated
