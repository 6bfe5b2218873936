"""What a projection is to the runner: a name, the topics it reads, and one ``apply`` function.

A projection owns one Postgres schema named after it. Its SQL uses unqualified table names and
the runner points ``search_path`` at the schema it is building, so the same ``apply`` fills the
live tables and, during ``bcl replay``, a fresh shadow schema.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar, runtime_checkable

from pydantic import BaseModel

from pipeline.database import Connection
from pipeline.publish import Outgoing
from pipeline.settings import Settings
from schemas.envelope import Envelope


class RawRecord(Protocol):
    """A record as read from the log, as aiokafka's ConsumerRecord has it."""

    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...


PayloadT = TypeVar("PayloadT", bound=BaseModel)


class ConsumedEvent:
    """A decoded event with the log coordinates it was read from.

    ``payload`` is its typed payload. A proven event may come with ``build_payload`` instead
    (``pipeline.proofs.EdgeKeys.decode_proven``): the payload is built the first time it is
    read, which a projection of envelopes alone (the journal) never does. Its edge validated it
    before proving it, so building it later cannot refuse it.
    """

    __slots__ = ("_build_payload", "_payload", "envelope", "key", "offset", "partition", "topic")

    def __init__(
        self,
        topic: str,
        partition: int,
        offset: int,
        key: bytes | None,
        envelope: Envelope,
        payload: BaseModel | None = None,
        *,
        build_payload: Callable[[Envelope], BaseModel] | None = None,
    ) -> None:
        if (payload is None) == (build_payload is None):
            raise TypeError("a consumed event takes a payload or a way to build it, not both")
        self.topic = topic
        self.partition = partition
        self.offset = offset
        self.key = key
        self.envelope = envelope
        self._payload = payload
        self._build_payload = build_payload

    @property
    def payload(self) -> BaseModel:
        if self._payload is None:
            assert self._build_payload is not None
            self._payload = self._build_payload(self.envelope)
        return self._payload

    def payload_as(self, model: type[PayloadT]) -> PayloadT:
        """The payload as the ``model`` a projection routed this event by; TypeError if it is
        another (the projection's routing is wrong, not the event)."""
        payload = self.payload
        if not isinstance(payload, model):
            raise TypeError(
                f"{self.envelope.type} {self.envelope.event_id} carries a "
                f"{type(payload).__qualname__}, not a {model.__qualname__}"
            )
        return payload

    def _fields(self) -> tuple[object, ...]:
        return (self.topic, self.partition, self.offset, self.key, self.envelope, self.payload)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ConsumedEvent):
            return NotImplemented
        return self._fields() == other._fields()

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return (
            f"ConsumedEvent({self.topic}[{self.partition}]@{self.offset}, "
            f"{self.envelope.type} {self.envelope.event_id})"
        )


class Projection(Protocol):
    @property
    def name(self) -> str:
        """The projection's name, its Postgres schema and its migration folder."""

    @property
    def topics(self) -> Sequence[str]:
        """The topics it is built from."""

    @property
    def digest_order(self) -> Mapping[str, str]:
        """Table → ORDER BY columns: the tables whose rows make up the projection's digest."""

    async def apply(self, connection: Connection, events: Sequence[ConsumedEvent]) -> None:
        """Record a batch inside the runner's transaction. Must be idempotent."""


@runtime_checkable
class Processor(Projection, Protocol):
    """A projection that also decides: the revoker, the issuer.

    ``apply`` records what the log says, decisions included (a processor reads the topic its
    decisions go to, or the facts they change), so a replay rebuilds its tables from recorded
    decisions and never decides again. ``decide`` runs only live, after ``apply``, in the same
    transaction; the runner keeps what it returns in the processor's outbox and publishes it once
    the transaction has committed.
    """

    async def decide(
        self, connection: Connection, events: Sequence[ConsumedEvent]
    ) -> Sequence[Outgoing]:
        """The events this batch's decisions become."""


@runtime_checkable
class WaitsForSources(Protocol):
    """A processor whose decisions read what other projections hold (the disaster desk seeds its
    ledger from the replica and the certificates): before deciding a batch it waits for them to
    reach the log's end. The runner calls it outside any transaction, so no tracking row stays
    locked while it waits."""

    async def wait_for_sources(self, events: Sequence[ConsumedEvent]) -> None:
        """Return once what deciding ``events`` reads is as a replay would see it."""


@dataclass(frozen=True)
class BulkReplay:
    """What a replay from the beginning may do to go faster, as far as a projection allows.

    ``partitions_apart``: events of different partitions never touch the same row (each row
    belongs to one key), so the partitions are read in two processes side by side.
    ``indexes_after_load``: ``apply`` looks rows up by their key alone, so the other indexes
    are built once the load is done.
    """

    partitions_apart: bool = False
    indexes_after_load: bool = False


def bulk_replay_of(projection: Projection) -> BulkReplay:
    """The projection's ``bulk_replay``; a projection that declares none is replayed as it is
    applied live."""
    declared = getattr(projection, "bulk_replay", None)
    return declared if isinstance(declared, BulkReplay) else BulkReplay()


# Every projection the platform knows, by name → the module whose ``make(settings)`` builds it.
# Pipeline code names consumers only here, by string, so that no import runs the other way.
PROJECTION_MODULES: dict[str, str] = {
    "journal": "consumers.journal.projection",
    "registry": "consumers.registry.projection",
    "replica": "consumers.replica.projection",
    "certificates": "consumers.certificates.projection",
    "revocations": "consumers.certificates.revoker",
    "issuer": "consumers.issuer.projection",
    "usage": "consumers.usage.projection",
    "fees": "consumers.fees.projection",
    "disaster": "consumers.disaster.projection",
}


def load_projection(name: str, settings: Settings) -> Projection:
    try:
        module_name = PROJECTION_MODULES[name]
    except KeyError:
        known = ", ".join(sorted(PROJECTION_MODULES))
        raise LookupError(f"unknown projection {name!r}; known projections: {known}") from None
    module = importlib.import_module(module_name)
    projection: Projection = module.make(settings)
    return projection
