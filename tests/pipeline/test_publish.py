"""`pipeline.publish` against the real broker: a send is on the log exactly once, whatever its
acknowledgement's fate.

Faults are made where they happen in production, in the connection between the producer and
the broker: a produce request the broker writes whose answer is lost with the connection, and
one the connection drops before it is written.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any, Literal
from uuid import UUID

import orjson
import pytest
from aiokafka.conn import AIOKafkaConnection, CloseReason
from aiokafka.errors import KafkaConnectionError

from infra.broker import start_broker, stop_broker
from pipeline import publish as publish_module
from pipeline.kafka import high_watermarks, partitions_of, producer, reader
from pipeline.publish import (
    Appender,
    Outgoing,
    Unconfirmed,
    proven_by_their_edges,
    publish,
    publish_many,
)
from pipeline.settings import Settings
from pipeline.topics import ISSUANCE_REQUESTS
from producers.workload import platform_sample
from schemas.codec import encode_event, headers_for
from schemas.ids import new_event_id
from tests.helpers import create_topic

Fate = Literal["answer lost", "never written"]
PRODUCE = 0  # the Kafka API key of a produce request


@contextmanager
def produce_requests_failing(*fates: Fate) -> Iterator[list[Fate]]:
    """The next produce requests meet ``fates`` in turn, then requests go through again."""
    plan = list(fates)
    real = AIOKafkaConnection.send

    def send(self: AIOKafkaConnection, request: Any, expect_response: bool = True) -> Any:
        if request.API_KEY != PRODUCE or not plan:
            return real(self, request, expect_response)
        fate = plan.pop(0)
        if fate == "never written":
            self.close(reason=CloseReason.CONNECTION_BROKEN)
            raise KafkaConnectionError("the connection dropped before the request went out")
        answer = real(self, request, expect_response)

        async def answer_lost() -> None:
            await answer  # the broker has written the batch and answered
            self.close(reason=CloseReason.CONNECTION_BROKEN)
            raise KafkaConnectionError("the connection dropped before the answer came")

        return answer_lost()

    AIOKafkaConnection.send = send  # type: ignore[method-assign]
    try:
        yield plan
    finally:
        AIOKafkaConnection.send = real  # type: ignore[method-assign]


def decisions(settings: Settings, count: int) -> list[Outgoing]:
    """Kiosk requests, each under a fresh event id (a test may publish more than one lot),
    proven by their edges."""
    requests = [
        Outgoing(
            ISSUANCE_REQUESTS.name,
            message.key,
            message.envelope.model_copy(update={"event_id": new_event_id()}),
        )
        for message in platform_sample(count * 3)
        if message.topic == ISSUANCE_REQUESTS.name
    ][:count]
    return list(proven_by_their_edges(settings, requests))


async def copies_on_log(settings: Settings) -> Counter[UUID]:
    """How many times each event id is on the requests topic."""
    copies: Counter[UUID] = Counter()
    async with reader(settings) as client:
        tps = await partitions_of(client, [settings.topic(ISSUANCE_REQUESTS.name)])
        ends = await high_watermarks(client, tps)
        wanted = {tp for tp in tps if ends[tp] > 0}
        if not wanted:
            return copies
        client.assign(list(wanted))
        for tp in wanted:
            client.seek(tp, 0)
        while wanted:
            for tp, records in (await client.getmany(*wanted, timeout_ms=1000)).items():
                copies.update(UUID(orjson.loads(r.value or b"")["event_id"]) for r in records)
                if records and records[-1].offset + 1 >= ends[tp]:
                    wanted.discard(tp)
    return copies


@pytest.mark.parametrize("fate", ["answer lost", "never written"])
async def test_a_failed_send_puts_each_event_on_the_log_once(
    platform: Settings, fate: Fate
) -> None:
    sent = decisions(platform, 300)
    async with producer(platform) as client:
        with produce_requests_failing(fate) as plan:
            confirmed = await publish_many(platform, client, sent)
    assert plan == []  # the fault was met
    assert confirmed == len(sent)
    assert await copies_on_log(platform) == Counter(o.envelope.event_id for o in sent)


async def test_one_event_published_alone_is_settled_the_same_way(platform: Settings) -> None:
    [decision] = decisions(platform, 1)
    async with producer(platform) as client:
        with produce_requests_failing("answer lost"):
            await publish(platform, client, decision)
    assert await copies_on_log(platform) == Counter([decision.envelope.event_id])


async def test_events_published_one_at_a_time_at_once_go_out_in_a_few_requests(
    platform: Settings,
) -> None:
    """200 kiosk requests, each published by its own task: they share requests, as a group
    commit does, instead of taking one round trip each."""
    sent = decisions(platform, 200)
    requests = 0
    real = AIOKafkaConnection.send

    def counting(self: AIOKafkaConnection, request: Any, expect_response: bool = True) -> Any:
        nonlocal requests
        requests += request.API_KEY == PRODUCE
        return real(self, request, expect_response)

    async with producer(platform) as client:
        await publish(platform, client, sent[0])  # floors taken, connection open
        requests = 0
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(AIOKafkaConnection, "send", counting)
            await asyncio.gather(*(publish(platform, client, message) for message in sent[1:]))
    assert await copies_on_log(platform) == Counter(o.envelope.event_id for o in sent)
    assert requests <= 5


async def test_a_plain_producer_writes_an_event_twice_when_the_answer_is_lost(
    platform: Settings,
) -> None:
    """The fault above is real: aiokafka alone sends the batch again and the log has it twice."""
    [decision] = decisions(platform, 1)
    async with producer(platform) as client:
        with produce_requests_failing("answer lost"):
            await client.send_and_wait(
                platform.topic(decision.topic),
                key=decision.key.encode(),
                value=encode_event(decision.envelope),
                headers=headers_for(decision.envelope),
            )
    assert await copies_on_log(platform) == Counter({decision.envelope.event_id: 2})


async def test_events_a_crashed_sender_may_have_written_are_looked_for_before_sending(
    platform: Settings,
) -> None:
    """An outbox handed to a new process: the first half reached the log before the crash."""
    waiting = decisions(platform, 40)
    async with producer(platform) as client:
        floors = await Appender(platform, client).floors_of(waiting)
        await publish_many(platform, client, waiting[:20])
    async with producer(platform) as client:  # the new process
        landed_from = {o.envelope.event_id: f for o, f in zip(waiting, floors, strict=True)}
        confirmed = await publish_many(platform, client, waiting, landed_from=landed_from)
    assert confirmed == 40
    assert await copies_on_log(platform) == Counter(o.envelope.event_id for o in waiting)


async def test_a_record_that_only_bears_an_events_id_does_not_pass_for_it(
    platform: Settings,
) -> None:
    """Ids can be foreseen: someone who writes a record with a waiting event's id, and no
    proof, must not make the sender skip the real event."""
    waiting = decisions(platform, 2)
    async with producer(platform) as client:
        floors = await Appender(platform, client).floors_of(waiting)
        for decoy in waiting:
            unproven = decoy.envelope.model_copy(update={"proof": None})
            await client.send_and_wait(
                platform.topic(decoy.topic), key=decoy.key.encode(), value=encode_event(unproven)
            )
    async with producer(platform) as client:
        landed_from = {o.envelope.event_id: f for o, f in zip(waiting, floors, strict=True)}
        assert await publish_many(platform, client, waiting, landed_from=landed_from) == 2
    # Each id twice on the log: the decoy, and the real event sent after all.
    assert await copies_on_log(platform) == Counter({o.envelope.event_id: 2 for o in waiting})


async def test_an_event_larger_than_its_readers_take_is_refused_before_sending(
    platform: Settings,
) -> None:
    [decision] = decisions(platform, 1)
    payload = decision.envelope.payload | {"print_options": {"note": "x" * (2 << 20)}}
    huge = Outgoing(
        decision.topic, decision.key, decision.envelope.model_copy(update={"payload": payload})
    )
    async with producer(platform) as client:
        with pytest.raises(
            ValueError, match=r"takes 2,09\d,\d{3} bytes; an event may take at most"
        ):
            await publish(platform, client, huge)
    assert await copies_on_log(platform) == Counter()


async def test_floors_follow_what_the_broker_acknowledged(platform: Settings) -> None:
    first = decisions(platform, 1)
    async with producer(platform) as client:
        appender = Appender.of(platform, client)
        [before] = await appender.floors_of(first)
        await publish_many(platform, client, first)
        [after] = await appender.floors_of(first)
        assert Appender.of(platform, client) is appender
    assert after == before + 1


async def test_a_broker_that_does_not_come_back_leaves_the_events_unconfirmed_with_floors(
    platform: Settings, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    broker = start_broker(tmp_path / "broker")
    settings = platform.model_copy(update={"kafka_bootstrap": broker.bootstrap})
    try:
        await create_topic(broker.bootstrap, settings.topic(ISSUANCE_REQUESTS.name), 3)
        sent = decisions(settings, 10)
        monkeypatch.setattr(publish_module, "RECOVERY_SECONDS", 3.0)
        async with producer(settings, request_timeout_ms=2000) as client:
            floors = await Appender.of(settings, client).floors_of(sent)

            def broker_dies() -> None:
                stop_broker(broker.pid)

            with pytest.raises(Unconfirmed) as refused:
                await _after_fault(publish_many(settings, client, sent), broker_dies)
    finally:
        stop_broker(broker.pid)
    assert refused.value.floors == {
        o.envelope.event_id: f for o, f in zip(sent, floors, strict=True)
    }
    assert "not confirmed on the log" in str(refused.value)


async def _after_fault(sending: Awaitable[int], fault: Callable[[], None]) -> int:
    with produce_requests_failing("never written"):
        fault()
        return await sending
