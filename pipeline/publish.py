"""Publishing events: the one way an edge puts an envelope on a topic."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, Callable, Iterable
from dataclasses import dataclass

from aiokafka import AIOKafkaProducer

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
    in_flight: int = 5000,
    on_sent: Callable[[int], None] | None = None,
) -> int:
    """Send a stream of events with bounded buffering; returns how many the broker acknowledged.

    Every send is awaited before returning, so a caller that gets the count back knows the broker
    holds all of them.
    """
    pending: list[asyncio.Future[object]] = []
    sent = 0

    async def settle() -> None:
        nonlocal sent
        await asyncio.gather(*pending)
        sent += len(pending)
        if on_sent:
            on_sent(sent)
        pending.clear()

    async def one(message: Outgoing) -> None:
        pending.append(
            await producer.send(
                settings.topic(message.topic),
                key=message.key.encode(),
                value=encode_event(message.envelope),
                headers=headers_for(message.envelope),
            )
        )
        if len(pending) >= in_flight:
            await settle()

    if isinstance(messages, AsyncIterable):
        async for message in messages:
            await one(message)
    else:
        for message in messages:
            await one(message)
    await settle()
    return sent
