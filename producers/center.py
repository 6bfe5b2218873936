"""The certificate issuance center's gateway (証明書交付センター, east or west).

Kiosks send their requests to their operator's preferred center; the gateway stamps each with
its center as ``origin`` (and ``center:<origin>`` as source: a center may submit only its own
requests), puts it on ``issuance.requests`` and waits for the issuer's decision on
``issuance.outcomes``. Later the kiosk tells the center what became of an issued certificate:
delivered (the fee paid, the paper printed) or cancelled; the gateway checks such a notice
against the recorded outcome before it accepts it.

A request id sent again (a kiosk retry, or the same request at the other center) is published
like any request, so the log shows it, and answered with the outcome already recorded: the
issuer never decides a request twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from types import TracebackType
from typing import Any, Self
from uuid import UUID

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import KafkaError

from pipeline.database import create_pool
from pipeline.kafka import high_watermarks, new_reader, partitions_of, reader, start_producer
from pipeline.proofs import EdgeKeys, Unauthenticated
from pipeline.publish import Outgoing, publish
from pipeline.settings import Settings
from pipeline.topics import ISSUANCE_OUTCOMES, ISSUANCE_REQUESTS
from schemas.codec import EventDecodeError, decode_event
from schemas.codes import Origin
from schemas.envelope import Envelope
from schemas.events.issuance import (
    IssuanceCancelled,
    IssuanceDelivered,
    IssuanceIssued,
    IssuanceRejected,
    IssuanceRequested,
    RejectionReason,
)
from schemas.ids import derived_event_id, new_event_id

_RETRY_CHECK_AFTER = 1.0  # seconds before a request unanswered is looked up as a retry
_LOOKUP_GATHER = 0.1  # seconds the look-ups of unanswered requests are gathered into one query


class CenterError(ValueError):
    """A notice or request the center cannot accept; the message says why and what to do."""


class OutcomeTimeout(TimeoutError):
    """No decision arrived in time: the issuer is down or behind. The request stays on the log
    and is decided when the issuer catches up; ask again with `bcl center outcome`."""


@dataclass(frozen=True, slots=True)
class Outcome:
    """The recorded decision on a request, and what the kiosk reported since."""

    request_id: UUID
    issued: bool
    municipality: str
    certificate_type: str
    reason: str | None = None
    message: str | None = None
    document_id: UUID | None = None
    fee_total_yen: int | None = None
    fee_per_copy_yen: int | None = None
    copies: int | None = None
    fee_schedule_from: date | None = None
    decided_at: datetime | None = None
    delivered_at: datetime | None = None
    fee_paid_yen: int | None = None
    cancelled_at: datetime | None = None
    cancel_reason: str | None = None

    @property
    def status(self) -> str:
        if not self.issued:
            return "rejected"
        if self.delivered_at is not None:
            return "delivered"
        if self.cancelled_at is not None:
            return "cancelled"
        return "issued"


def outcome_of(payload: IssuanceIssued | IssuanceRejected, decided_at: datetime) -> Outcome:
    if isinstance(payload, IssuanceRejected):
        return Outcome(
            payload.request_id,
            False,
            payload.municipality,
            payload.certificate_type.value,
            reason=payload.reason.value,
            message=payload.message,
            decided_at=decided_at,
        )
    return Outcome(
        payload.request_id,
        True,
        payload.municipality,
        payload.certificate_type.value,
        document_id=payload.document_id,
        fee_total_yen=payload.fee.total_yen,
        fee_per_copy_yen=payload.fee.per_copy_yen,
        copies=payload.fee.copies,
        fee_schedule_from=payload.fee.schedule_from,
        decided_at=decided_at,
    )


_OUTCOME_QUERY = """
SELECT o.request_id, o.outcome, o.municipality, o.certificate_type, o.reason, o.message,
       o.document_id, o.fee_total_yen, o.fee_per_copy_yen, o.copies, o.fee_schedule_from,
       o.decided_at, d.at AS delivered_at, d.fee_paid_yen, c.at AS cancelled_at,
       c.reason AS cancel_reason
FROM issuer.outcomes o
LEFT JOIN LATERAL (
    SELECT at, fee_paid_yen FROM issuer.notices n
    WHERE n.request_id = o.request_id AND kind = 'delivered' ORDER BY at, event_id LIMIT 1
) d ON true
LEFT JOIN LATERAL (
    SELECT at, reason FROM issuer.notices n
    WHERE n.request_id = o.request_id AND kind = 'cancelled' ORDER BY at, event_id LIMIT 1
) c ON true
WHERE o.request_id = ANY($1::uuid[])
"""


async def recorded_outcome(connection: Any, request_id: UUID) -> Outcome | None:
    return (await recorded_outcomes(connection, [request_id])).get(request_id)


async def recorded_outcomes(connection: Any, request_ids: Sequence[UUID]) -> dict[UUID, Outcome]:
    """The recorded decisions (and notices) of those of ``request_ids`` that are decided."""
    outcomes = {}
    for row in await connection.fetch(_OUTCOME_QUERY, list(request_ids)):
        values = dict(row)
        outcomes[values["request_id"]] = Outcome(issued=values.pop("outcome") == "issued", **values)
    return outcomes


class CenterGateway:
    """One center's gateway. Use as ``async with CenterGateway(settings) as center: ...``."""

    def __init__(self, settings: Settings, *, answer_timeout: float = 10.0) -> None:
        self.settings = settings
        self._keys = EdgeKeys.of(settings)
        self.origin = settings.center
        self.answer_timeout = answer_timeout
        self._producer: AIOKafkaProducer[bytes, bytes] | None = None
        self._outcomes: AIOKafkaConsumer[bytes, bytes] | None = None
        self._pool: asyncpg.Pool | None = None
        self._listening: asyncio.Task[None] | None = None
        self._waiting: dict[UUID, asyncio.Future[Outcome]] = {}
        self._open = asyncio.Event()
        self._open.set()
        self._sending = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._lookup: asyncio.Future[dict[UUID, Outcome]] | None = None
        self._lookup_ids: set[UUID] = set()

    async def __aenter__(self) -> Self:
        try:
            return await self._open_connections()
        except BaseException:
            await self.__aexit__(None, None, None)  # what was opened before the failure
            raise

    async def _open_connections(self) -> Self:
        self._pool = await create_pool(self.settings, max_size=2)
        # A request the broker has not taken by the time the kiosk gives up is dropped, never
        # delivered later to a center that came back.
        self._producer = await start_producer(
            self.settings, request_timeout_ms=int(self.answer_timeout * 1000)
        )
        # The live consumers' fetch wait: each outcome is a resident waiting at a kiosk, and on
        # tansu, which answers a fetch only when its wait is over, a shorter wait costs the
        # broker and this process a fetch round trip that often.
        self._outcomes = new_reader(
            self.settings, fetch_max_wait_ms=int(self.settings.fetch_wait * 1000)
        )
        await self._outcomes.start()
        topic = self.settings.topic(ISSUANCE_OUTCOMES.name)
        partitions = await partitions_of(self._outcomes, [topic])
        ends = await high_watermarks(self._outcomes, partitions)
        self._outcomes.assign(partitions)
        for tp in partitions:
            self._outcomes.seek(tp, ends[tp])
        self._listening = asyncio.create_task(self._listen())
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if self._listening is not None:
            self._listening.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listening
        if self._outcomes is not None:
            await self._outcomes.stop()
        if self._producer is not None:
            await self._producer.stop()
        if self._pool is not None:
            await self._pool.close()

    async def submit(
        self, request: IssuanceRequested, *, at: datetime | None = None, wait: bool = True
    ) -> Outcome | None:
        """Put a kiosk request on the log; with ``wait``, return its decision.

        ``at`` is when the resident asked at the kiosk (default now): the issuer judges the
        request as of that instant.
        """
        requested_at = at or datetime.now(UTC)
        envelope = self._prove(
            Envelope.new(
                "issuance.requested",
                request,
                origin=self.origin,
                source=f"center:{self.origin}",
                occurred_at=requested_at,
                municipality=request.resident_municipality,
            )
        )
        answer = self._expect(request.request_id) if wait else None
        try:
            await self._publish(Outgoing(ISSUANCE_REQUESTS.name, str(request.request_id), envelope))
            if answer is None:
                return None
            # A new request is answered on the outcomes topic. One decided before (a retry) gets
            # no new outcome: after a moment's wait, the recorded one is the answer.
            with contextlib.suppress(TimeoutError):
                return await asyncio.wait_for(asyncio.shield(answer), _RETRY_CHECK_AFTER)
            recorded = await self._looked_up(request.request_id)
            if recorded is not None:
                return recorded
            try:
                return await asyncio.wait_for(asyncio.shield(answer), self.answer_timeout)
            except TimeoutError:
                raise OutcomeTimeout(
                    f"no decision on request {request.request_id} within "
                    f"{self.answer_timeout:g}s: is the worker running (`bcl worker`)? The request "
                    "is on the log and will be decided; ask with `bcl center outcome`"
                ) from None
        finally:
            self._waiting.pop(request.request_id, None)

    async def outcome(self, request_id: UUID) -> Outcome | None:
        """The recorded decision on ``request_id`` and the kiosk's notices, if decided."""
        return (await self.outcomes([request_id])).get(request_id)

    async def outcomes(self, request_ids: Sequence[UUID]) -> dict[UUID, Outcome]:
        """The recorded decisions of those of ``request_ids`` that are decided."""
        assert self._pool is not None
        async with self._pool.acquire() as connection:
            return await recorded_outcomes(connection, request_ids)

    async def deliver(
        self, request_id: UUID, fee_paid_yen: int, printed_at: datetime | None = None
    ) -> Outcome:
        """The kiosk collected the fee and printed the certificate."""
        outcome = await self._issued(request_id, "delivered")
        if outcome.cancelled_at is not None:
            raise CenterError(
                f"request {request_id} was cancelled at {outcome.cancelled_at:%Y-%m-%d %H:%M:%S} "
                f"({outcome.cancel_reason}); a cancelled certificate cannot be delivered"
            )
        if fee_paid_yen != outcome.fee_total_yen:
            raise CenterError(
                f"the kiosk collected {fee_paid_yen:,} yen but the fee quoted for request "
                f"{request_id} is {outcome.fee_total_yen:,} yen; report the amount the quote said"
            )
        if outcome.delivered_at is None:
            printed = printed_at or datetime.now(UTC)
            notice = IssuanceDelivered(
                request_id=request_id, fee_paid_yen=fee_paid_yen, printed_at=printed
            )
            await self._notify(outcome, "issuance.delivered", notice, printed)
        return outcome

    async def cancel(self, request_id: UUID, reason: str, at: datetime | None = None) -> Outcome:
        """The resident left without paying, or the kiosk could not print."""
        outcome = await self._issued(request_id, "cancelled")
        if outcome.delivered_at is not None:
            raise CenterError(
                f"request {request_id} was delivered at {outcome.delivered_at:%Y-%m-%d %H:%M:%S}; "
                "a printed and paid certificate cannot be cancelled"
            )
        if outcome.cancelled_at is None:
            cancelled = at or datetime.now(UTC)
            notice = IssuanceCancelled(request_id=request_id, reason=reason)
            await self._notify(outcome, "issuance.cancelled", notice, cancelled)
        return outcome

    async def _issued(self, request_id: UUID, notice: str) -> Outcome:
        outcome = await self.outcome(request_id)
        if outcome is None:
            raise CenterError(
                f"no decision is recorded for request {request_id}: it was never submitted, or "
                f"the issuer has not decided it yet; a request can be {notice} only once issued"
            )
        if not outcome.issued:
            raise CenterError(
                f"request {request_id} was rejected ({outcome.reason}): nothing was printed, so "
                f"nothing can be {notice}"
            )
        return outcome

    async def _notify(
        self,
        outcome: Outcome,
        event_type: str,
        notice: IssuanceDelivered | IssuanceCancelled,
        at: datetime,
    ) -> None:
        request_id = str(outcome.request_id)
        assert outcome.decided_at is not None
        envelope = self._prove(
            Envelope.new(
                event_type,
                notice,
                origin=self.origin,
                source=f"center:{self.origin}",
                occurred_at=at,
                municipality=outcome.municipality,
                # One notice of each kind per request: a repeat, even with another time, is the
                # same event, so a kiosk retrying cannot make two deliveries.
                event_id=derived_event_id(outcome.decided_at, event_type, request_id),
            )
        )
        await self._publish(Outgoing(ISSUANCE_REQUESTS.name, request_id, envelope))

    async def hold(self) -> None:
        """Send nothing more until ``release``; returns once every send in flight is
        acknowledged (or given up)."""
        self._open.clear()
        await self._idle.wait()

    def release(self) -> None:
        self._open.set()

    async def _publish(self, message: Outgoing) -> None:
        assert self._producer is not None
        await self._open.wait()
        self._sending += 1
        self._idle.clear()
        try:
            await publish(self.settings, self._producer, message)
        finally:
            self._sending -= 1
            if not self._sending:
                self._idle.set()

    async def _looked_up(self, request_id: UUID) -> Outcome | None:
        """The recorded outcome of ``request_id``, looked up with those of every request that
        asks within the same moment: one query for them all, not one each. When the issuer
        falls behind, every request waits past the retry check, and a query each would load
        Postgres just when it is busiest."""
        if self._lookup is None:
            self._lookup = asyncio.ensure_future(self._look_up())
        self._lookup_ids.add(request_id)
        return (await asyncio.shield(self._lookup)).get(request_id)

    async def _look_up(self) -> dict[UUID, Outcome]:
        await asyncio.sleep(_LOOKUP_GATHER)
        # From here on, a request that asks starts the next look-up.
        request_ids, self._lookup, self._lookup_ids = self._lookup_ids, None, set()
        return await self.outcomes(list(request_ids))

    def _expect(self, request_id: UUID) -> asyncio.Future[Outcome]:
        future = self._waiting.get(request_id)
        if future is None:
            future = self._waiting[request_id] = asyncio.get_running_loop().create_future()
        return future

    async def _listen(self) -> None:
        assert self._outcomes is not None
        while True:
            fetched = await self._outcomes.getmany(timeout_ms=100)
            for records in fetched.values():
                for record in records:
                    self._answer(record.value)

    def _prove(self, envelope: Envelope) -> Envelope:
        return self._keys.prove(f"center:{self.origin}", envelope)

    def _answer(self, value: bytes | None) -> None:
        try:
            event = decode_event(value or b"")
            self._keys.check(value or b"", event.envelope)
        except (EventDecodeError, Unauthenticated):
            # Not an answer to give a resident (a forged outcome, say): the projections reading
            # this topic park it as a dead letter with the reason.
            return
        payload = event.payload
        if not isinstance(payload, IssuanceIssued | IssuanceRejected):
            return
        future = self._waiting.get(payload.request_id)
        if future is not None and not future.done():
            future.set_result(outcome_of(payload, event.envelope.occurred_at))


async def center_ready(settings: Settings) -> bool:
    """Whether a center answers kiosks: its broker responds and its issuer has decided every
    request the center accepted (a center whose issuer is still catching up, or is down, would
    keep residents waiting)."""
    async with reader(settings, request_timeout_ms=2000) as client:
        partitions = await partitions_of(client, [settings.topic(ISSUANCE_REQUESTS.name)])
        ends = await high_watermarks(client, partitions, timeout=2.0)
    connection = await asyncpg.connect(settings.dsn, timeout=2.0)
    try:
        tracked = {
            row["partition"]: row["last_offset"]
            for row in await connection.fetch(
                "SELECT partition, last_offset FROM issuer.projection_offsets "
                "WHERE cluster = $1 AND topic = $2",
                settings.center,
                settings.topic(ISSUANCE_REQUESTS.name),
            )
        }
    finally:
        await connection.close()
    return all(tracked.get(tp.partition, -1) + 1 >= end for tp, end in ends.items())


@dataclass(frozen=True, slots=True)
class Attempt:
    """One try of a kiosk visit at one center."""

    center: Origin
    request_id: UUID
    answered: bool


@dataclass
class Routed:
    """What became of a kiosk visit: the answer, the center that gave it, and every try."""

    outcome: Outcome | None
    center: Origin | None
    attempts: list[Attempt]


class CenterCrashed(Exception):
    """The center's broker refuses connections: it crashed, or its host is gone."""


async def broker_refuses(settings: Settings, timeout: float = 1.0) -> bool:
    """Whether every broker of ``settings``' cluster refuses a connection outright. A broker
    that is slow or unreachable (no answer at all) does not count: only the kiosk's wait tells
    those from a busy one."""
    for address in settings.bootstrap.split(","):
        host, _, port = address.rpartition(":")
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(host, int(port)), timeout)
        except ConnectionRefusedError:
            continue
        except (OSError, TimeoutError):
            return False
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return False
    return True


class CenterRouter:
    """The kiosks' side of the two active centers (DESIGN §6).

    Each request goes to its store operator's preferred center. A center that does not answer
    within the kiosk's wait (its issuer down, its broker hung) is marked down: the kiosk
    starts the request again, under a new request id, at the other center (as it does when the
    answer is ``request_expired``: the center answered too late), and the operator's
    kiosks send there until the down center is ready again (``center_ready``, probed every
    ``probe_every`` seconds). A center whose broker refuses connections (it crashed) is marked
    down as soon as a watch, every ``probe_every`` seconds, finds it so: the kiosks waiting on
    it start again at the other center at once instead of waiting their time out.

    The abandoned request, if its center accepted it, is expired there
    with ``request_expired`` when the center returns; should it have been issued after all (an
    answer that arrived after the kiosk gave up), the kiosk cancels it: it printed nothing.

    Use as ``async with CenterRouter({"east": east, "west": west}, kiosk_wait=...) as router``.
    """

    def __init__(
        self,
        centers: Mapping[Origin, Settings],
        *,
        kiosk_wait: float,
        probe_every: float = 1.0,
    ) -> None:
        self.centers = dict(centers)
        self.kiosk_wait = kiosk_wait
        self.probe_every = probe_every
        self.gateways: dict[Origin, CenterGateway] = {}
        # Center → when it was marked down (monotonic), while it is.
        self.down: dict[Origin, float] = {}
        self.outages: list[tuple[Origin, float, float]] = []  # center, down at, ready again at
        self._retired: list[CenterGateway] = []
        self._probes: dict[Origin, asyncio.Task[None]] = {}
        self._abandoned: dict[Origin, list[UUID]] = {}
        # Set when a center is found crashed; a fresh one once it is ready again.
        self._crashed: dict[Origin, asyncio.Event] = {c: asyncio.Event() for c in centers}
        self._watches: list[asyncio.Task[None]] = []

    async def __aenter__(self) -> Self:
        try:
            for center, settings in self.centers.items():
                self.gateways[center] = await CenterGateway(
                    settings, answer_timeout=self.kiosk_wait
                ).__aenter__()
        except BaseException:
            await self._close_gateways()
            raise
        self._watches = [asyncio.create_task(self._watch(center)) for center in self.centers]
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        tasks = [*self._probes.values(), *self._watches]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._close_gateways()

    async def _close_gateways(self) -> None:
        for gateway in self.gateways.values():
            await gateway.__aexit__(None, None, None)
        for gateway in self._retired:
            # Its clients still point at the lost broker, and aiokafka's close can fail there;
            # nothing it holds matters any more.
            closing = asyncio.create_task(gateway.__aexit__(None, None, None))
            await asyncio.wait([closing], timeout=self.kiosk_wait + 1.0)
            if not closing.done():
                closing.cancel()
            elif not closing.cancelled():
                closing.exception()

    async def reconnect(self, center: Origin, settings: Settings) -> None:
        """A center rebuilt at a new address (its cluster was lost): the kiosks reach it through
        a new gateway. The old one stays open, unused, until the router closes: by then what it
        held for the lost broker has expired, never sent anywhere."""
        self.centers[center] = settings
        self._retired.append(self.gateways[center])
        self.gateways[center] = await CenterGateway(
            settings, answer_timeout=self.kiosk_wait
        ).__aenter__()

    def route(self, preferred: Origin) -> list[Origin]:
        """The centers to try, in order: the preferred first unless it is down."""
        others = [c for c in self.centers if c != preferred]
        return [*others, preferred] if preferred in self.down else [preferred, *others]

    async def submit(
        self, request: IssuanceRequested, preferred: Origin, *, at: datetime | None = None
    ) -> Routed:
        attempts: list[Attempt] = []
        for center in self.route(preferred):
            if attempts:
                request = request.model_copy(update={"request_id": new_event_id()})
            try:
                outcome = await self._answer(center, request, at)
            except (TimeoutError, KafkaError, OSError, CenterCrashed):
                attempts.append(Attempt(center, request.request_id, answered=False))
                self._abandoned.setdefault(center, []).append(request.request_id)
                self._mark_down(center)
                continue
            if outcome is not None and outcome.reason == RejectionReason.REQUEST_EXPIRED:
                # The center answered too late to count (it is catching up): as unanswered.
                attempts.append(Attempt(center, request.request_id, answered=False))
                self._mark_down(center)
                continue
            attempts.append(Attempt(center, request.request_id, answered=True))
            return Routed(outcome, center, attempts)
        return Routed(None, None, attempts)

    async def _answer(
        self, center: Origin, request: IssuanceRequested, at: datetime | None
    ) -> Outcome | None:
        """``center``'s answer within the kiosk's wait; CenterCrashed as soon as the center is
        found crashed, whether before or while it is asked."""
        crashed = self._crashed[center]
        if crashed.is_set():
            raise CenterCrashed(center)
        asking = asyncio.ensure_future(self.gateways[center].submit(request, at=at))
        watching = asyncio.ensure_future(crashed.wait())
        try:
            await asyncio.wait(
                (asking, watching), timeout=self.kiosk_wait, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            watching.cancel()
            if not asking.done():
                asking.cancel()
        if asking.done() and not asking.cancelled():
            return asking.result()
        if crashed.is_set():
            raise CenterCrashed(center)
        raise TimeoutError(f"{center} gave no answer within {self.kiosk_wait:g}s")

    async def _watch(self, center: Origin) -> None:
        """Mark ``center`` down the moment its broker refuses a connection: a crashed process
        answers no more, and its kiosks need not wait their time out to learn it."""
        while True:
            await asyncio.sleep(self.probe_every)
            if center in self.down or not await broker_refuses(self.centers[center]):
                continue
            self._crashed[center].set()
            self._mark_down(center)

    async def settle_abandoned(self) -> int:
        """Cancel what a center issued after its kiosk gave up on it (the resident was served
        at the other center, or left); returns how many. Run once the centers are back."""
        cancelled = 0
        for center, request_ids in self._abandoned.items():
            gateway = self.gateways[center]
            for outcome in (await gateway.outcomes(request_ids)).values():
                if outcome.status == "issued":
                    await gateway.cancel(outcome.request_id, "kiosk gave up waiting")
                    cancelled += 1
        return cancelled

    def _mark_down(self, center: Origin) -> None:
        if center in self.down:
            return
        self.down[center] = time.monotonic()
        self._probes[center] = asyncio.create_task(self._probe(center))

    async def _probe(self, center: Origin) -> None:
        while True:
            await asyncio.sleep(self.probe_every)
            try:
                ready = await asyncio.wait_for(
                    center_ready(self.centers[center]), self.probe_every * 3
                )
            except (TimeoutError, KafkaError, OSError, asyncpg.PostgresError):
                continue
            if ready:
                break
        self._crashed[center] = asyncio.Event()
        self.outages.append((center, self.down.pop(center), time.monotonic()))
        self._probes.pop(center, None)
