"""The typed seams between the pipeline and a projection: an event's payload as the model the
projection routed it by, a faceted row's numbers and days. A mistake in routing is a TypeError
naming both sides, never an attribute missing further on."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from pipeline.facets import FacetedRows
from pipeline.projection import ConsumedEvent
from schemas.envelope import Envelope
from schemas.events.residents import ResidentPurged, SealChanged

PURGED = ResidentPurged(
    municipality="131016",
    resident_code="13101600001",
    removed_on=date(2019, 4, 1),
    purged_on=date(2024, 4, 1),
)


def consumed(payload: ResidentPurged) -> ConsumedEvent:
    envelope = Envelope.new(
        "resident.purged",
        payload,
        origin="east",
        source="retention",
        occurred_at=datetime(2024, 4, 1, tzinfo=UTC),
        municipality="131016",
    )
    return ConsumedEvent("resident.changes", 0, 7, b"131016:13101600001", envelope, payload)


def test_a_payload_comes_as_the_model_it_was_routed_by() -> None:
    assert consumed(PURGED).payload_as(ResidentPurged) is PURGED


def test_a_payload_of_another_model_is_refused_naming_both() -> None:
    event = consumed(PURGED)
    with pytest.raises(
        TypeError, match=r"resident\.purged .* carries a ResidentPurged, not a Seal"
    ):
        event.payload_as(SealChanged)


ROWS = FacetedRows("request_id", {"request": ("copies", "day"), "outcome": ("fee_paid_yen",)})


def test_a_row_gives_its_numbers_and_days_typed() -> None:
    row = ("r-1", "e-1", 2, date(2024, 4, 1), None, None)

    assert ROWS.number(row, "copies") == 2
    assert ROWS.number(row, "fee_paid_yen") == 0  # its facet has not arrived yet
    assert ROWS.day(row, "day") == date(2024, 4, 1)


def test_a_row_holding_something_else_is_refused_naming_the_column() -> None:
    row = ("r-1", "e-1", "2", "2024-04-01", None, None)

    with pytest.raises(TypeError, match="copies holds '2', not an integer"):
        ROWS.number(row, "copies")
    with pytest.raises(TypeError, match="day holds '2024-04-01', not a date"):
        ROWS.day(row, "day")
