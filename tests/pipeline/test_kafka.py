"""`pipeline.kafka` against the real broker: finding offsets by time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from aiokafka import AIOKafkaProducer, TopicPartition

from pipeline.kafka import high_watermarks, offsets_at, producer, reader, start_producer
from pipeline.settings import Settings
from pipeline.topics import ISSUANCE_OUTCOMES

START = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)


async def test_offsets_at_finds_the_first_record_at_or_after_a_time(platform: Settings) -> None:
    # A record a second, minutes 0–39 of the hour, on partition 0; partition 1 stays empty (no
    # consumer runs: the values need not be events).
    topic = platform.topic(ISSUANCE_OUTCOMES.name)
    async with producer(platform) as client:
        for second in range(40 * 60):
            moment = START + timedelta(seconds=second)
            await client.send(topic, b"x", partition=0, timestamp_ms=_ms(moment))
        await client.flush()
    full, empty = TopicPartition(topic, 0), TopicPartition(topic, 1)

    async with reader(platform) as client:
        marks = await high_watermarks(client, [full, empty])
        asked = {
            "before": START - timedelta(days=1),
            "first": START,
            "between": START + timedelta(seconds=600, milliseconds=500),
            "last": START + timedelta(seconds=2399),
            "after": START + timedelta(hours=1),
        }
        found = {name: await offsets_at(client, marks, at) for name, at in asked.items()}

    assert marks[full] == 2400
    assert {name: offsets[full] for name, offsets in found.items()} == {
        "before": 0, "first": 0, "between": 601, "last": 2399, "after": 2400,
    }  # fmt: skip
    assert all(offsets[empty] == 0 for offsets in found.values())


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


async def test_a_producer_whose_start_fails_in_any_way_is_closed(
    platform: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A start that times out or is cancelled must not leave a connected client behind.
    stopped: list[AIOKafkaProducer[bytes, bytes]] = []
    stop = AIOKafkaProducer.stop

    async def timing_out(client: AIOKafkaProducer[bytes, bytes]) -> None:
        raise TimeoutError("the broker did not answer the metadata request")

    async def recorded_stop(client: AIOKafkaProducer[bytes, bytes]) -> None:
        stopped.append(client)
        await stop(client)

    monkeypatch.setattr(AIOKafkaProducer, "start", timing_out)
    monkeypatch.setattr(AIOKafkaProducer, "stop", recorded_stop)
    with pytest.raises(TimeoutError):
        await start_producer(platform)
    assert len(stopped) == 1
