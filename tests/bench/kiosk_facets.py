"""A generated visit as the facets a projection would take from its three events, without
sealing a document: how the benches fill a month or a year of rows by a projection's own rules
and load them by COPY (sending tens of millions of events through Kafka for that would measure
the pipeline again, which the live and replay figures do, and take hours here)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta

from pipeline.facets import Cells, Cubes, FacetedRows, FacetValue, KioskFacets, Row
from producers.workload import Visit
from schemas.events.issuance import (
    IssuanceCancelled,
    IssuanceDelivered,
    IssuanceIssued,
    IssuanceRejected,
)
from schemas.ids import derived_event_id


def rows_by_rules(
    visits: Iterable[Visit], rows: FacetedRows, cubes: Cubes, facets: KioskFacets
) -> tuple[list[Row], tuple[Cells, ...]]:
    """The visits as a projection's rows and the cube cells they add up to."""
    made = [rows.merged(None, visit_facets(visit, facets)) for visit in visits]
    return made, cubes.deltas((None, row) for row in made)


def visit_facets(visit: Visit, facets: KioskFacets) -> list[FacetValue]:
    """The visit's facets with the event ids `recorded_traffic` gives its events."""
    request = visit.request
    key = str(request.request_id)
    taken: list[FacetValue] = [
        facets.request(
            derived_event_id(visit.at, "request", key), request, at=visit.at, center=visit.center
        )
    ]
    decided_at = visit.at + timedelta(seconds=2)
    outcome_id = derived_event_id(decided_at, "outcome", key)
    # The facets read the decision's kind, stamps and quote; the sealed document is left out.
    decision = (
        IssuanceRejected.model_construct(
            request_id=request.request_id,
            reason=visit.rejection,
            outside_counter_hours=visit.outside_counter_hours,
        )
        if visit.rejection
        else IssuanceIssued.model_construct(
            request_id=request.request_id,
            fee=visit.fee,
            outside_counter_hours=visit.outside_counter_hours,
            through_bcl=visit.through_bcl,
        )
    )
    taken.append(facets.outcome(outcome_id, decision))
    if visit.notice and visit.notice_at:
        notice = (
            IssuanceDelivered.model_construct(
                request_id=request.request_id,
                fee_paid_yen=visit.fee.total_yen if visit.fee else 0,
            )
            if visit.notice == "delivered"
            else IssuanceCancelled.model_construct(request_id=request.request_id)
        )
        taken.append(facets.notice(derived_event_id(visit.notice_at, visit.notice, key), notice))
    return taken
