"""Kafka client factory: every producer, reader and admin client is made here from the settings."""

from __future__ import annotations

import asyncio
import logging
import ssl
import weakref
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import (
    KafkaConnectionError,
    KafkaError,
    RequestTimedOutError,
    UnknownError,
)
from aiokafka.producer.message_accumulator import BatchBuilder
from aiokafka.producer.sender import SendProduceReqHandler

from pipeline.settings import Settings
from pipeline.topics import CATALOG, TopicSpec

log = logging.getLogger("bcl.kafka")


_SENT_ONCE: weakref.WeakSet[object] = weakref.WeakSet()  # batches, and producers' senders
# A request that fails in these ways may have been written: sending it again could write twice.
_MAY_HAVE_LANDED = (KafkaConnectionError, RequestTimedOutError)


def send_once(sent: BatchBuilder | AIOKafkaProducer[bytes, bytes]) -> None:
    """Let aiokafka fail this batch, or every batch of this producer, rather than send it again
    when it may have landed; the caller settles it from the log (``pipeline.publish``)."""
    _SENT_ONCE.add(sent if isinstance(sent, BatchBuilder) else sent._sender)


def _retry_produce_as_told() -> None:
    """Decide, for every producer in this process, when aiokafka sends a
    failed batch again within its delivery timeout.

    - Again after UNKNOWN_SERVER_ERROR. tansu 0.6.0 over S3 writes a batch as an object named by
      its first offset, created only if absent; when two producers write one partition at once,
      the one that loses the race gets that error, and nothing of its batch was written, so
      sending it again is exact. aiokafka takes the code for final and failed the send.
    - Never after a lost connection or a timeout for a batch marked ``send_once``: without an
      idempotent producer that resend is how an event gets into the log twice.
    """
    decides = SendProduceReqHandler._can_retry

    def can_retry(handler: SendProduceReqHandler, error: Exception, batch: Any) -> bool:
        once = batch._builder in _SENT_ONCE or handler._sender in _SENT_ONCE
        if isinstance(error, _MAY_HAVE_LANDED) and once:
            return False
        if isinstance(error, UnknownError) and not batch.expired():
            return True
        return bool(decides(handler, error, batch))

    SendProduceReqHandler._can_retry = can_retry


_retry_produce_as_told()


def connection_options(settings: Settings) -> dict[str, Any]:
    """Security options shared by every client (TLS/SASL for real clusters)."""
    options: dict[str, Any] = {
        "bootstrap_servers": settings.bootstrap,
        "security_protocol": settings.kafka_security_protocol,
    }
    if settings.kafka_security_protocol in ("SSL", "SASL_SSL"):
        options["ssl_context"] = ssl.create_default_context(
            cafile=str(settings.kafka_ssl_cafile) if settings.kafka_ssl_cafile else None
        )
    if settings.kafka_sasl_mechanism:
        options["sasl_mechanism"] = settings.kafka_sasl_mechanism
        options["sasl_plain_username"] = settings.kafka_sasl_username
        options["sasl_plain_password"] = settings.kafka_sasl_password
    return options


def new_producer(
    settings: Settings, *, idempotent: bool, **overrides: Any
) -> AIOKafkaProducer[bytes, bytes]:
    options: dict[str, Any] = {
        **connection_options(settings),
        "acks": "all",
        "enable_idempotence": idempotent,
        "linger_ms": 5,
        "max_batch_size": 1 << 20,
        "max_request_size": 8 << 20,
    }
    options.update(overrides)
    return AIOKafkaProducer(**options)


async def start_producer(settings: Settings, **overrides: Any) -> AIOKafkaProducer[bytes, bytes]:
    """A started producer, idempotent where the cluster supports it.

    ``BCL_KAFKA_IDEMPOTENCE`` unset means: ask for it and fall back when the broker refuses to
    hand out a producer id (tansu 0.6.0 does), so the same settings serve both kinds of cluster.
    """
    wanted = settings.kafka_idempotence
    client = new_producer(settings, idempotent=wanted is not False, **overrides)
    sender_log = logging.getLogger("aiokafka.producer.sender")
    level = sender_log.level
    if wanted is None:
        sender_log.setLevel(logging.CRITICAL)  # the probe's refusal is expected, not an error
    try:
        await _started(client)
    except KafkaError as error:
        if wanted is not None:
            raise
        log.info("broker refused an idempotent producer (%s); using acks=all without it", error)
        client = new_producer(settings, idempotent=False, **overrides)
        await _started(client)
    finally:
        sender_log.setLevel(level)
    return client


async def _started(client: AIOKafkaProducer[bytes, bytes]) -> None:
    """Start ``client``; if the start fails in any way (a refusal, a timeout, a cancellation),
    leave nothing of it connected."""
    try:
        await client.start()
    except BaseException:
        await client.stop()
        raise


def new_reader(settings: Settings, **overrides: Any) -> AIOKafkaConsumer[bytes, bytes]:
    """A group-less consumer for manual assignment: replay, catch-up and inspection."""
    options: dict[str, Any] = {
        **connection_options(settings),
        "group_id": None,
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "fetch_max_bytes": 64 << 20,
        "max_partition_fetch_bytes": 16 << 20,
        "fetch_max_wait_ms": 100,
    }
    options.update(overrides)
    return AIOKafkaConsumer(**options)


@asynccontextmanager
async def producer(
    settings: Settings, **overrides: Any
) -> AsyncIterator[AIOKafkaProducer[bytes, bytes]]:
    client = await start_producer(settings, **overrides)
    try:
        yield client
    finally:
        await client.stop()


@asynccontextmanager
async def reader(
    settings: Settings, **overrides: Any
) -> AsyncIterator[AIOKafkaConsumer[bytes, bytes]]:
    client = new_reader(settings, **overrides)
    try:
        # Inside the try: a start cancelled or failed half-way still closes its connections.
        await client.start()
        yield client
    finally:
        await client.stop()


async def create_topics(settings: Settings, specs: Iterable[TopicSpec] = CATALOG) -> list[str]:
    """Create the catalog's topics that do not exist yet, with each peer center's mirrored copy
    of the source topics; returns the names created."""
    wanted = {
        name: spec
        for spec in specs
        for name in (settings.subscribed(spec.name) if spec.source else [settings.topic(spec.name)])
    }
    admin = AIOKafkaAdminClient(**connection_options(settings))
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [name for name in wanted if name not in existing]
        if missing:
            await admin.create_topics(
                [
                    NewTopic(name, settings.partitions, 1, topic_configs=dict(wanted[name].config))
                    for name in missing
                ]
            )
        return missing
    finally:
        await admin.close()


async def partitions_of(
    client: AIOKafkaConsumer[bytes, bytes], topics: Iterable[str]
) -> list[TopicPartition]:
    tps: list[TopicPartition] = []
    for name in topics:
        found = client.partitions_for_topic(name)
        if found is None:
            await client._client.force_metadata_update()
            found = client.partitions_for_topic(name)
        tps.extend(TopicPartition(name, p) for p in sorted(found or ()))
    return tps


async def high_watermarks(
    client: AIOKafkaConsumer[bytes, bytes],
    tps: Iterable[TopicPartition],
    timeout: float = 30.0,
) -> dict[TopicPartition, int]:
    """The next offset to be written in each partition, taken from a fetch response.

    tansu 0.6.0 answers ListOffsets (``end_offsets``, ``seek_to_end``) wrongly, so the watermark
    comes from the fetch path, which every Kafka implementation must get right. The client's
    assignment is replaced and positions are left at the beginning.
    """
    wanted = list(tps)
    if not wanted:
        return {}
    client.assign(wanted)
    for tp in wanted:
        client.seek(tp, 0)
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        marks = {tp: client.highwater(tp) for tp in wanted}
        if all(mark is not None for mark in marks.values()):
            return {tp: int(mark) for tp, mark in marks.items() if mark is not None}
        if asyncio.get_running_loop().time() > deadline:
            missing = [f"{tp.topic}[{tp.partition}]" for tp, m in marks.items() if m is None]
            raise TimeoutError(f"no fetch response for {', '.join(missing)} within {timeout}s")
        await client.getmany(*wanted, timeout_ms=200, max_records=1)


async def offsets_at(
    client: AIOKafkaConsumer[bytes, bytes],
    marks: Mapping[TopicPartition, int],
    at: datetime,
) -> dict[TopicPartition, int]:
    """The first offset of each partition whose record timestamp is at or after ``at``, or its
    high watermark (``marks``) when no record is that recent.

    What ``offsets_for_times`` answers on Kafka, found by a binary search over the fetch path:
    tansu 0.6.0 answers ListOffsets by timestamp with offset 0 whatever the time. Like Kafka's
    time index, the search takes timestamps to grow along a partition; producers' clocks that
    disagree by a little move the start by as little. The client's assignment is replaced.
    """
    wanted = sorted(marks)
    client.assign(wanted)
    target = int(at.timestamp() * 1000)
    found: dict[TopicPartition, int] = {}
    for tp in wanted:
        low, high = 0, marks[tp]
        while low < high:
            middle = (low + high) // 2
            record = await _first_record_between(client, tp, middle, high)
            if record is None or record[1] >= target:
                high = middle
            else:
                low = record[0] + 1
        found[tp] = low
    return found


async def _first_record_between(
    client: AIOKafkaConsumer[bytes, bytes], tp: TopicPartition, start: int, end: int
) -> tuple[int, int] | None:
    """The offset and timestamp of the first record of ``tp`` in ``[start, end)``, if any."""
    client.seek(tp, start)
    while await client.position(tp) < end:
        fetched = await client.getmany(tp, timeout_ms=1000, max_records=1)
        if records := fetched.get(tp):
            first = records[0]
            return (first.offset, first.timestamp) if first.offset < end else None
    return None
