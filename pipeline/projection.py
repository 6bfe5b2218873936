"""What a projection is to the runner: a name, the topics it reads, and one ``apply`` function.

A projection owns one Postgres schema named after it. Its SQL uses unqualified table names and
the runner points ``search_path`` at the schema it is building, so the same ``apply`` fills the
live tables and, during ``bcl replay``, a fresh shadow schema.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from pydantic import BaseModel

from pipeline.database import Connection
from pipeline.publish import Outgoing
from pipeline.settings import Settings
from schemas.envelope import Envelope


class RawRecord(Protocol):
    """A record as read from the log: aiokafka's ConsumerRecord and faust's Message both fit."""

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


@dataclass(frozen=True, slots=True)
class ConsumedEvent:
    """A decoded event with the log coordinates it was read from."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    envelope: Envelope
    payload: BaseModel


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
