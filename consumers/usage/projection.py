"""The usage projection: one row per kiosk request in ``usage.requests`` and the cubes summed
from them (``usage.hourly``, ``usage.monthly``, ``usage.stores``), for `bcl usage`."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from consumers.usage.rules import CUBES, ROWS, notice_facet, outcome_facet, request_facet
from pipeline.facets import FacetedProjection, FacetValue
from pipeline.projection import ConsumedEvent
from pipeline.settings import Settings
from pipeline.topics import ISSUANCE_OUTCOMES, ISSUANCE_REQUESTS
from schemas.events.issuance import (
    IssuanceCancelled,
    IssuanceDelivered,
    IssuanceIssued,
    IssuanceRejected,
    IssuanceRequested,
)


class UsageProjection(FacetedProjection):
    name = "usage"
    topics = (ISSUANCE_REQUESTS.name, ISSUANCE_OUTCOMES.name)
    table = "requests"
    rows = ROWS
    cubes = CUBES

    def facets_of(self, events: Iterable[ConsumedEvent]) -> Iterator[FacetValue]:
        for event in events:
            payload, envelope = event.payload, event.envelope
            if isinstance(payload, IssuanceRequested):
                yield request_facet(
                    envelope.event_id, payload, at=envelope.occurred_at, center=envelope.origin
                )
            elif isinstance(payload, IssuanceIssued | IssuanceRejected):
                yield outcome_facet(envelope.event_id, payload)
            elif isinstance(payload, IssuanceDelivered | IssuanceCancelled):
                yield notice_facet(envelope.event_id, payload)


def make(settings: Settings) -> UsageProjection:
    return UsageProjection()
