"""Publishing events: the one way an edge puts an envelope on a topic."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, Callable, Iterable
from dataclasses import dataclass

from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.producer.message_accumulator import BatchBuilder

from pipeline.settings import Settings
from schemas.codec import encode_event, headers_for
from schemas.envelope import Envelope


@dataclass(frozen=True, slots=True)
class Outgoing:
    topic: str  # the catalog name; the settings give the physical one
    key: str
    envelope: Envelope


async def publish(
    settings: Settings, producer: AIOKafkaProducer[bytes, bytes], message: Outgoing
) -> None:
    await producer.send_and_wait(
        settings.topic(message.topic),
        key=message.key.encode(),
        value=encode_event(message.envelope),
        headers=headers_for(message.envelope),
    )


async def publish_many(
    settings: Settings,
    producer: AIOKafkaProducer[bytes, bytes],
    messages: Iterable[Outgoing] | AsyncIterable[Outgoing],
    *,
    in_flight: int = 20_000,
    on_sent: Callable[[int], None] | None = None,
) -> int:
    """Send a stream of events with bounded buffering; returns how many the broker acknowledged.

    Events are packed into one record batch per partition (the partition chosen by the key with
    Kafka's default murmur2 partitioner, as any other producer would), which costs a third of
    sending them one by one. Every batch is awaited before returning, so a caller that gets the
    count back knows the broker holds all of them.
    """
    partitioner = DefaultPartitioner()
    partitions: dict[str, list[int]] = {}
    open_batches: dict[tuple[str, int], tuple[BatchBuilder, int]] = {}
    pending: list[tuple[asyncio.Future[object], int]] = []
    buffered = 0
    sent = 0

    async def ship(topic: str, partition: int) -> None:
        nonlocal buffered
        batch, count = open_batches.pop((topic, partition))
        batch.close()
        pending.append((await producer.send_batch(batch, topic, partition=partition), count))
        buffered -= count

    async def settle() -> None:
        nonlocal sent
        for topic, partition in list(open_batches):
            await ship(topic, partition)
        for future, count in pending:
            await future
            sent += count
        pending.clear()
        if on_sent:
            on_sent(sent)

    async def one(message: Outgoing) -> None:
        nonlocal buffered
        topic = settings.topic(message.topic)
        if topic not in partitions:
            partitions[topic] = sorted(await producer.partitions_for(topic))
        key = message.key.encode()
        partition = partitioner(key, partitions[topic], partitions[topic])
        value = encode_event(message.envelope)
        headers = headers_for(message.envelope)
        for _ in range(2):
            batch, count = open_batches.get((topic, partition)) or (producer.create_batch(), 0)
            if batch.append(key=key, value=value, timestamp=None, headers=headers) is not None:
                open_batches[(topic, partition)] = (batch, count + 1)
                buffered += 1
                break
            if count == 0:
                raise ValueError(f"an event of {len(value):,} bytes does not fit in a batch")
            open_batches[(topic, partition)] = (batch, count)
            await ship(topic, partition)
        if buffered + sum(count for _, count in pending) >= in_flight:
            await settle()

    if isinstance(messages, AsyncIterable):
        async for message in messages:
            await one(message)
    else:
        for message in messages:
            await one(message)
    await settle()
    return sent
