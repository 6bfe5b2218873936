"""The usage projection: one row per kiosk request in ``usage.requests`` and the cubes summed
from them (``usage.hourly``, ``usage.monthly``, ``usage.stores``), for `bcl usage`."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from consumers.usage.rules import CUBES, ROWS, notice_facet, outcome_facet, request_facet
from pipeline.facets import FacetedProjection, FacetValue, kiosk_request_facets
from pipeline.projection import ConsumedEvent
from pipeline.settings import Settings
from pipeline.topics import ISSUANCE_OUTCOMES, ISSUANCE_REQUESTS


class UsageProjection(FacetedProjection):
    name = "usage"
    topics = (ISSUANCE_REQUESTS.name, ISSUANCE_OUTCOMES.name)
    table = "requests"
    rows = ROWS
    cubes = CUBES

    def facets_of(self, events: Iterable[ConsumedEvent]) -> Iterator[FacetValue]:
        return kiosk_request_facets(
            events, request=request_facet, outcome=outcome_facet, notice=notice_facet
        )


def make(settings: Settings) -> UsageProjection:
    return UsageProjection()
