"""Publishing events: the one way an edge puts an envelope on a topic, and exactly once.

tansu 0.6 has no idempotent producer, so a send whose acknowledgement was lost (the broker died
after writing, or the connection dropped) may or may not have landed, and a producer that simply
sends it again writes it twice. Every send here is therefore made once by aiokafka
(``pipeline.kafka.send_once``), and a send that fails is settled by reading the log:

1. Before a partition's first batch, take its *floor*: where its log ends. Nothing sent
   afterwards can land below it. Each acknowledgement moves the floor to the end of what it
   acknowledged.
2. Send the batch; keep at most one batch per partition in flight, so events keep their order.
3. A batch that failed in a way that may have landed keeps its partition's floor where it was.
   When the broker answers again, read the partition from the floor to its end and look for the
   batch's event ids; send again only the events not found there, and repeat from 3 until every
   event is acknowledged or found.
4. If the broker does not answer within ``RECOVERY_SECONDS``, raise ``Unconfirmed`` with each
   event's floor; ``publish_many(..., landed_from=error.floors)`` later settles them exactly.

A caller that kept events of its own across a crash (a processor's outbox) stores each event's
floor with it (``Appender.floors_of``) and passes them as ``landed_from`` when it sends them
again, since a previous process may have sent them already.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import AsyncIterable, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import orjson
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaConnectionError, KafkaError, KafkaTimeoutError
from aiokafka.producer.message_accumulator import BatchBuilder
from aiokafka.structs import RecordMetadata

from pipeline.kafka import high_watermarks, reader, send_once
from pipeline.partitioning import partition_for
from pipeline.proofs import EdgeKeys, Unauthenticated
from pipeline.settings import Settings
from schemas.codec import MAX_EVENT_BYTES, EventDecodeError, decode_event, encode_event, headers_for
from schemas.envelope import Envelope
from schemas.rights import edge_of

log = logging.getLogger("bcl.publish")

RECOVERY_SECONDS = 300.0  # how long a failed send waits for the broker to answer again
_RETRY_PAUSE = 0.5
_STALL_SECONDS = 30.0  # a partition read that long without a record is read again later


@dataclass(frozen=True, slots=True)
class Outgoing:
    topic: str  # the catalog name; the settings give the physical one
    key: str
    envelope: Envelope
    # The envelope's bytes, where they are at hand (an edge proving it encodes it,
    # ``proven``; an outbox stores them): the publisher then need not encode it again.
    value: bytes | None = None

    def encoded(self) -> bytes:
        """The event's bytes on the log: those at hand, else the envelope encoded."""
        return self.value if self.value is not None else encode_event(self.envelope)


def proven(keys: EdgeKeys, edge: str, topic: str, key: str, envelope: Envelope) -> Outgoing:
    """``envelope`` proven by ``edge``, to be published on ``topic`` under ``key``."""
    envelope, value = keys.prove_encoded(edge, envelope)
    return Outgoing(topic, key, envelope, value)


def proven_fields(
    keys: EdgeKeys, edge: str, topic: str, key: str, fields: dict[str, Any]
) -> Outgoing:
    """``proven``, of an envelope given as its fields, validated once (``prove_fields``)."""
    envelope, value = keys.prove_fields(edge, fields)
    return Outgoing(topic, key, envelope, value)


class Unconfirmed(KafkaError):  # type: ignore[misc]
    """Events neither acknowledged by the broker nor found in its log in time.

    ``floors`` maps each event id to the offset of its partition from which it may lie in the
    log; pass it as ``publish_many(..., landed_from=...)`` to send them again exactly once."""

    retriable = True

    def __init__(self, reason: str, floors: dict[UUID, int]) -> None:
        super().__init__(
            f"{len(floors):,} events are not confirmed on the log ({reason}); send them again "
            "with their floors once the broker answers"
        )
        self.reason = reason
        self.floors = floors

    def __reduce__(self) -> tuple[type[Unconfirmed], tuple[str, dict[UUID, int]]]:
        # Raised in a second process (a push on both cores), it comes back pickled.
        return Unconfirmed, (self.reason, self.floors)


@dataclass(slots=True)
class _Record:
    event_id: UUID
    key: bytes
    value: bytes
    headers: list[tuple[str, bytes]]


@dataclass
class _Shipment:
    """One batch sent to one partition, and what it holds."""

    tp: TopicPartition
    records: list[_Record]
    future: asyncio.Future[RecordMetadata]
    floor: int  # the partition's floor when it was sent


@dataclass
class _Open:
    builder: BatchBuilder
    records: list[_Record] = field(default_factory=list)


class Appender:
    """A producer's floors and its exactly-once sends (see the module's steps)."""

    def __init__(self, settings: Settings, producer: AIOKafkaProducer[bytes, bytes]) -> None:
        self.settings = settings
        self.keys = EdgeKeys.of(settings)
        self.producer = producer
        self.floors: dict[TopicPartition, int] = {}
        # After failed sends: events found on the log (a blind resend's duplicates), and sent again.
        self.found_on_log = 0
        self.sent_again = 0
        self._partitions: dict[str, list[TopicPartition]] = {}
        # Single sends that failed, waiting to be settled from the log together (``send_one``).
        self._unsettled: dict[UUID, tuple[TopicPartition, _Record, int, asyncio.Future[None]]] = {}
        self._settler: asyncio.Task[None] | None = None

    @classmethod
    def of(cls, settings: Settings, producer: AIOKafkaProducer[bytes, bytes]) -> Appender:
        """The producer's appender: floors live as long as the producer."""
        appender = _APPENDERS.get(producer)
        if appender is None:
            appender = _APPENDERS[producer] = cls(settings, producer)
        return appender

    async def partition_of(self, message: Outgoing) -> TopicPartition:
        """The partition Kafka's default (murmur2) partitioner gives the message's key."""
        partitions = self._partitions.get(message.topic)
        if partitions is None:
            topic = self.settings.topic(message.topic)
            partitions = self._partitions[message.topic] = [
                TopicPartition(topic, partition)
                for partition in sorted(await self.producer.partitions_for(topic))
            ]
        return partitions[partition_for(message.key.encode(), len(partitions))]

    async def floors_of(self, messages: Iterable[Outgoing]) -> list[int]:
        """Each message's floor: its partition's offset at or after which it will land."""
        tps = [await self.partition_of(message) for message in messages]
        await self._take_floors(tps)
        return [self.floors[tp] for tp in tps]

    async def append(
        self,
        messages: Iterable[Outgoing] | AsyncIterable[Outgoing],
        *,
        landed_from: Mapping[UUID, int] | None = None,
        in_flight: int = 20_000,
        on_sent: Callable[[int], None] | None = None,
    ) -> int:
        """Send a stream of events exactly once; returns how many are on the log.

        Events are packed into one record batch per partition, which costs a third of sending
        them one by one. Every batch is settled before returning, so a caller that gets the
        count back knows the log holds each event once. ``landed_from`` names events a previous
        send may have written, with their floors: they are looked for first, and only those
        not found are sent. ``on_sent`` hears the running count each time every event handed
        so far is settled.

        A failure raises ``Unconfirmed`` once nothing is in flight any more: its floors cover
        every event handed since the last ``on_sent`` count; the events after those were never
        sent.
        """
        sent = 0
        if landed_from:
            if isinstance(messages, AsyncIterable):
                raise TypeError("landed_from needs the messages as a list")
            messages = list(messages)
            earlier = {
                m.envelope.event_id: m for m in messages if m.envelope.event_id in landed_from
            }
            await self._look_for_first(earlier, landed_from)
            sent += len(earlier)
            messages = [m for m in messages if m.envelope.event_id not in landed_from]

        open_batches: dict[TopicPartition, _Open] = {}
        in_flight_at: dict[TopicPartition, _Shipment] = {}  # step 2: one per partition
        handed: dict[UUID, TopicPartition] = {}  # since the last count
        shipped_at: dict[UUID, int] = {}  # the floor each handed event was sent above

        async def ship(tp: TopicPartition) -> None:
            batch = open_batches.pop(tp)
            previous = in_flight_at.pop(tp, None)
            if previous is not None:
                await self._settle([previous])
            shipment = in_flight_at[tp] = await self._send(tp, batch)
            shipped_at.update((record.event_id, shipment.floor) for record in batch.records)

        async def settle() -> None:
            nonlocal sent
            for tp in list(open_batches):
                await ship(tp)
            shipments = list(in_flight_at.values())
            in_flight_at.clear()
            await self._settle(shipments)
            sent += len(handed)
            handed.clear()
            shipped_at.clear()
            if on_sent:
                on_sent(sent)

        async def one(message: Outgoing) -> None:
            tp = await self.partition_of(message)
            record = _record(message)
            handed[record.event_id] = tp
            for _ in range(2):
                batch = open_batches.get(tp) or _Open(self.producer.create_batch())
                appended = batch.builder.append(
                    key=record.key, value=record.value, timestamp=None, headers=record.headers
                )
                if appended is not None:
                    batch.records.append(record)
                    open_batches[tp] = batch
                    break
                if not batch.records:
                    del handed[record.event_id]
                    raise ValueError(f"an event of {len(record.value):,} bytes does not fit")
                open_batches[tp] = batch
                await ship(tp)
            if len(handed) >= in_flight:
                await settle()

        try:
            if isinstance(messages, AsyncIterable):
                async for message in messages:
                    await one(message)
            else:
                for message in messages:
                    await one(message)
            await settle()
        except Exception as error:
            # Whatever aiokafka still holds must be done before anyone reads the log for it.
            await asyncio.gather(*(s.future for s in in_flight_at.values()), return_exceptions=True)
            if not _may_succeed_later(error):
                raise
            floors = {
                event_id: shipped_at.get(event_id, self.floors.get(tp, 0))
                for event_id, tp in handed.items()
            }
            if isinstance(error, Unconfirmed):
                floors |= error.floors
            raise Unconfirmed(f"{error!r}", floors) from error
        return sent

    async def send_one(self, message: Outgoing) -> None:
        """Send one event exactly once, through aiokafka's own batching.

        Kiosk requests are published one at a time, each from its own task. aiokafka appends
        those that arrive while a request is in flight to one open batch per partition, which
        the next request carries whole; batches of their own would each wait for a round trip.
        The producer is marked ``send_once`` whole, so a batch of such events that may have
        landed fails instead of being sent again, and each of its events is settled from the
        log, all of them in one read (``_settle_alone``)."""
        tp = await self.partition_of(message)
        record = _record(message)
        # 1.
        await self._take_floors([tp])
        floor = self.floors[tp]
        send_once(self.producer)
        try:
            # 2.
            sent = await self.producer.send(
                tp.topic,
                record.value,
                key=record.key,
                headers=record.headers,
                partition=tp.partition,
            )
            metadata = await sent
        except Exception as error:
            if not _may_succeed_later(error):
                raise
            # 3. and 4.
            await self._settle_alone(tp, record, floor)
            return
        self.floors[tp] = max(self.floors[tp], metadata.offset + 1)

    async def _settle_alone(self, tp: TopicPartition, record: _Record, floor: int) -> None:
        """Settle a failed single send with every other one that failed meanwhile: after a
        broker crash, hundreds of kiosk requests share one read of the log."""
        settled: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._unsettled[record.event_id] = (tp, record, floor, settled)
        if self._settler is None or self._settler.done():
            self._settler = asyncio.create_task(self._settle_unsettled())
        await settled

    async def _settle_unsettled(self) -> None:
        while self._unsettled:
            lot, self._unsettled = self._unsettled, {}
            floors: dict[TopicPartition, int] = {}
            for tp, _, floor, _ in lot.values():
                floors[tp] = min(floors.get(tp, floor), floor)
            try:
                await self._recover({e: (tp, r) for e, (tp, r, _, _) in lot.items()}, floors)
            except Exception as error:  # every sender of the lot hears it
                outcome: BaseException | None = error
            else:
                outcome = None
            for _, _, _, settled in lot.values():
                if settled.done():
                    continue
                if outcome is None:
                    settled.set_result(None)
                else:
                    settled.set_exception(outcome)

    async def _look_for_first(
        self, earlier: Mapping[UUID, Outgoing], landed_from: Mapping[UUID, int]
    ) -> None:
        waiting = {
            event_id: (await self.partition_of(message), _record(message))
            for event_id, message in earlier.items()
        }
        floors: dict[TopicPartition, int] = {}
        for event_id, (tp, _) in waiting.items():
            floors[tp] = min(floors.get(tp, landed_from[event_id]), landed_from[event_id])
        try:
            await self._recover(waiting, floors)
        except Unconfirmed as error:
            raise Unconfirmed(str(error), {e: landed_from[e] for e in earlier}) from error

    async def _send(self, tp: TopicPartition, batch: _Open) -> _Shipment:
        # 1.
        await self._take_floors([tp])
        floor = self.floors[tp]
        batch.builder.close()
        send_once(batch.builder)
        # 2.
        future = await self.producer.send_batch(batch.builder, tp.topic, partition=tp.partition)
        return _Shipment(tp, batch.records, future, floor)

    async def _settle(self, shipments: list[_Shipment]) -> None:
        """Wait for the shipments; recover the ones that failed (step 3)."""
        if not shipments:
            return
        outcomes = await asyncio.gather(*(s.future for s in shipments), return_exceptions=True)
        failed: dict[UUID, tuple[TopicPartition, _Record]] = {}
        floors: dict[TopicPartition, int] = {}  # the lowest floor of a failed batch
        for shipment, outcome in zip(shipments, outcomes, strict=True):
            if isinstance(outcome, BaseException):
                if not _may_succeed_later(outcome):
                    raise outcome
                failed.update((r.event_id, (shipment.tp, r)) for r in shipment.records)
                floors[shipment.tp] = min(floors.get(shipment.tp, shipment.floor), shipment.floor)
            else:
                self._acknowledged(shipment, outcome)
        if failed:
            await self._recover(failed, floors)

    async def _recover(
        self,
        waiting: dict[UUID, tuple[TopicPartition, _Record]],
        floors: dict[TopicPartition, int],
    ) -> None:
        """Steps 3 and 4: settle events that may have landed, from their partitions' floors."""
        deadline = time.monotonic() + RECOVERY_SECONDS
        last_error: BaseException | None = None
        while waiting:
            if time.monotonic() > deadline:
                raise Unconfirmed(
                    f"the broker did not answer for {RECOVERY_SECONDS:g}s: {last_error!r}",
                    {event_id: floors[tp] for event_id, (tp, _) in waiting.items()},
                )
            shipments: list[_Shipment] = []
            try:
                found = await self._look_for(set(waiting), floors)
                self.found_on_log += len(found)
                for event_id in found:
                    del waiting[event_id]
                if not waiting:
                    break
                log.warning(
                    "a failed send: %d events found on the log, %d sent again",
                    len(found),
                    len(waiting),
                )
                by_partition: dict[TopicPartition, list[_Record]] = {}
                for tp, record in waiting.values():
                    by_partition.setdefault(tp, []).append(record)
                for tp, records in by_partition.items():
                    shipments.append(await self._send(tp, _batch_of(self.producer, records)))
            except (KafkaError, OSError, TimeoutError) as error:
                if not _may_succeed_later(error):
                    raise
                last_error = error
                await asyncio.sleep(_RETRY_PAUSE)
            # Even after an error: what was sent must have settled before the log is read again.
            outcomes = await asyncio.gather(*(s.future for s in shipments), return_exceptions=True)
            for shipment, outcome in zip(shipments, outcomes, strict=True):
                if isinstance(outcome, RecordMetadata):
                    for record in shipment.records:
                        del waiting[record.event_id]
                    self.sent_again += len(shipment.records)
                    self._acknowledged(shipment, outcome)
                elif not _may_succeed_later(outcome):
                    raise outcome
                else:
                    last_error = outcome

    def _acknowledged(self, shipment: _Shipment, metadata: RecordMetadata) -> None:
        """Step 1's move: what is sent from now on lands after what was acknowledged."""
        end = metadata.offset + len(shipment.records)
        self.floors[shipment.tp] = max(self.floors[shipment.tp], end)

    async def _take_floors(self, tps: Iterable[TopicPartition]) -> None:
        missing = {tp.topic for tp in tps if tp not in self.floors}
        if not missing:
            return
        # Every topic this producer has partitioned for, in one read: a stream of several
        # topics would otherwise start a reader for each.
        known = {partitions[0].topic: partitions for partitions in self._partitions.values()}
        missing |= {
            topic for topic, partitions in known.items() if partitions[0] not in self.floors
        }
        everything = [
            tp
            for topic in sorted(missing)
            for tp in known.get(topic)
            or [TopicPartition(topic, p) for p in sorted(await self.producer.partitions_for(topic))]
        ]
        async with reader(self.settings) as client:
            for tp, end in (await high_watermarks(client, everything)).items():
                self.floors.setdefault(tp, end)

    def _authentic(self, value: bytes | None) -> bool:
        """Whether a record is a proven event: a record that merely bears the id of an event
        not yet sent (ids can be foreseen) must not pass for it, or the event would be lost."""
        try:
            event = decode_event(value or b"")
            self.keys.check(value or b"", event.envelope)
        except (EventDecodeError, Unauthenticated):
            return False
        return True

    async def _look_for(self, wanted: set[UUID], floors: Mapping[TopicPartition, int]) -> set[UUID]:
        """Which of ``wanted`` the log holds, proven, from each partition's floor to its end."""
        found: set[UUID] = set()
        async with reader(self.settings) as client:
            ends = await high_watermarks(client, list(floors))
            spans = {tp: (floors[tp], ends[tp]) for tp in floors if floors[tp] < ends[tp]}
            if not spans:
                return found
            client.assign(list(spans))
            for tp, (start, _) in spans.items():
                client.seek(tp, start)
            progress = time.monotonic()
            while spans:
                if time.monotonic() - progress > _STALL_SECONDS:
                    raise TimeoutError(f"no records for {_STALL_SECONDS:g}s from {sorted(spans)}")
                fetched = await client.getmany(*spans, timeout_ms=1000)
                for tp, records in fetched.items():
                    if records:
                        progress = time.monotonic()
                    for record in records:
                        event_id = _event_id(record.value)
                        if event_id in wanted and self._authentic(record.value):
                            found.add(event_id)
                    if records and records[-1].offset + 1 >= spans[tp][1]:
                        del spans[tp]
        return found


_APPENDERS: weakref.WeakKeyDictionary[AIOKafkaProducer[bytes, bytes], Appender] = (
    weakref.WeakKeyDictionary()
)


def _record(message: Outgoing) -> _Record:
    if message.envelope.proof is None:
        raise ValueError(
            f"{message.envelope.type} {message.envelope.event_id} has no proof of origin; its "
            "edge proves it first (pipeline.proofs.prove), or every consumer would refuse it"
        )
    value = message.encoded()
    if len(value) > MAX_EVENT_BYTES:
        raise ValueError(
            f"{message.envelope.type} {message.envelope.event_id} takes {len(value):,} bytes; "
            f"an event may take at most {MAX_EVENT_BYTES:,} (its readers would refuse it)"
        )
    return _Record(
        message.envelope.event_id, message.key.encode(), value, headers_for(message.envelope)
    )


def _batch_of(producer: AIOKafkaProducer[bytes, bytes], records: list[_Record]) -> _Open:
    batch = _Open(producer.create_batch())
    for record in records:
        if (
            batch.builder.append(
                key=record.key, value=record.value, timestamp=None, headers=record.headers
            )
            is None
        ):
            break
        batch.records.append(record)
    return batch


def _event_id(value: bytes | None) -> UUID | None:
    try:
        return UUID(orjson.loads(value or b"")["event_id"])
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return None  # not an envelope: a hostile or broken record is not what we look for


def _may_succeed_later(error: BaseException) -> bool:
    """A failure that a broker answering again may undo, as opposed to a refusal (too large,
    not authorized) that sending again would only repeat."""
    if isinstance(error, (KafkaConnectionError, KafkaTimeoutError, OSError, TimeoutError)):
        return True
    return isinstance(error, KafkaError) and bool(error.retriable)


async def publish(
    settings: Settings, producer: AIOKafkaProducer[bytes, bytes], message: Outgoing
) -> None:
    """Send one event exactly once through ``producer``; see ``Appender.send_one``."""
    await Appender.of(settings, producer).send_one(message)


async def publish_many(
    settings: Settings,
    producer: AIOKafkaProducer[bytes, bytes],
    messages: Iterable[Outgoing] | AsyncIterable[Outgoing],
    *,
    landed_from: Mapping[UUID, int] | None = None,
    in_flight: int = 20_000,
    on_sent: Callable[[int], None] | None = None,
) -> int:
    """Send events exactly once through ``producer``; see ``Appender.append``."""
    return await Appender.of(settings, producer).append(
        messages, landed_from=landed_from, in_flight=in_flight, on_sent=on_sent
    )


def proven_by_their_edges(settings: Settings, messages: Iterable[Outgoing]) -> Iterator[Outgoing]:
    """Each message proven by the edge whose rights cover it (``schemas.rights.edge_of``): for
    the workload generator and the benches, which stand in for every edge of the platform."""
    keys = EdgeKeys.of(settings)
    for message in messages:
        envelope = message.envelope
        yield proven(keys, edge_of(envelope), message.topic, message.key, envelope)
