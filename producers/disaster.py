"""Disaster intake: what municipal staff, shelter card readers and residents applying online do,
as events on ``disaster.events``. A disaster's events are keyed ``municipality:disaster_id`` (one
partition, in order); peacetime facts ``municipality:peacetime``.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from types import TracebackType
from typing import Self

from aiokafka import AIOKafkaProducer
from pydantic import BaseModel

from pipeline.kafka import start_producer
from pipeline.proofs import prove
from pipeline.publish import Outgoing, publish
from pipeline.settings import Settings
from pipeline.topics import DISASTER_EVENTS
from schemas.envelope import Envelope
from schemas.events.disaster import ApplicationSubmitted, Point, ShelterTapped
from schemas.registry import REGISTRY


def disaster_key(municipality: str, payload: BaseModel) -> str:
    disaster_id = getattr(payload, "disaster_id", None)
    return f"{municipality}:{disaster_id or 'peacetime'}"


class DisasterDesk:
    """Publishes staff's, shelter readers' and online applicants' acts."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._producer: AIOKafkaProducer[bytes, bytes] | None = None

    async def __aenter__(self) -> Self:
        self._producer = await start_producer(self.settings)
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if self._producer is not None:
            await self._producer.stop()

    async def send(
        self, municipality: str, payload: BaseModel, *, at: datetime | None = None
    ) -> Envelope:
        """Put one act on the log; returns its envelope (its event id names it)."""
        assert self._producer is not None, "use DisasterDesk as an async context manager"
        envelope = prove(
            self.settings,
            "disaster",
            Envelope.new(
                REGISTRY.type_of(type(payload)),
                payload,
                origin=self.settings.center,
                source=_source(municipality, payload),
                occurred_at=at or datetime.now(UTC),
                municipality=municipality,
            ),
        )
        key = disaster_key(municipality, payload)
        await publish(self.settings, self._producer, Outgoing(DISASTER_EVENTS.name, key, envelope))
        return envelope


def _source(municipality: str, payload: BaseModel) -> str:
    """A tap comes from the shelter's reader, an application from the online portal (マイナ
    ポータル); everything else from the municipality's staff."""
    if isinstance(payload, ShelterTapped):
        return f"shelter:{payload.shelter_id}"
    if isinstance(payload, ApplicationSubmitted):
        return "portal"
    return f"municipality:{municipality}"


def located(address: str, centre: Point, *, spread: float = 0.02) -> Point:
    """A generated GIS location for ``address``: a fixed point within ``spread`` degrees of
    ``centre``, the same for the same address (for the workload, tests and the demo)."""
    digest = hashlib.sha256(address.encode()).digest()
    north = int.from_bytes(digest[:4], "big") / 2**32 * 2 - 1
    east = int.from_bytes(digest[4:8], "big") / 2**32 * 2 - 1
    return Point(lat=centre.lat + north * spread, lon=centre.lon + east * spread)
