"""Usage rules: a request's row does not depend on the order its facets arrive in, and the cubes
moved by each change always hold exactly the rows' counts."""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from consumers.usage.rules import (
    COLUMNS,
    CUBES,
    ROWS,
    counts,
    cube_keys,
    outcome_facet,
    request_facet,
)
from pipeline.facets import FacetValue, notice_facet
from schemas.events.issuance import (
    IssuanceCancelled,
    IssuanceDelivered,
    IssuanceRejected,
    IssuanceRequested,
    RejectionReason,
    StoreOperator,
)
from schemas.ids import derived_event_id

REQUEST_ID = uuid.UUID("018e0000-0000-7000-8000-000000000001")
AT = datetime(2024, 3, 4, 14, 59, 59, tzinfo=UTC)  # 23:59:59 in Japan, a Monday


def requested(operator: StoreOperator, store: str, minute: int) -> FacetValue:
    at = AT + timedelta(minutes=minute)
    payload = IssuanceRequested(
        request_id=REQUEST_ID,
        store_operator=operator,
        store_id="S-1",
        store_municipality=store,
        resident_municipality="131016",
        auth_serial="0A",
        certificate_type="juminhyo",
        copies=2,
    )
    return request_facet(
        derived_event_id(at, "request", str(minute)), payload, at=at, center="east"
    )


FACETS = [
    requested(StoreOperator.LAWSON, "131016", 0),
    requested(StoreOperator.FAMILYMART, "141003", 1),  # resent later at the other chain
    outcome_facet(
        derived_event_id(AT, "outcome"),
        IssuanceRejected(
            request_id=REQUEST_ID,
            municipality="131016",
            certificate_type="juminhyo",
            reason=RejectionReason.CERTIFICATE_REVOKED,
            message="revoked",
            outside_counter_hours=True,
        ),
    ),
    notice_facet(
        derived_event_id(AT, "delivered"),
        IssuanceDelivered(request_id=REQUEST_ID, fee_paid_yen=600, printed_at=AT),
    ),
    notice_facet(
        derived_event_id(AT + timedelta(seconds=1), "cancelled"),
        IssuanceCancelled(request_id=REQUEST_ID, reason="left"),
    ),
]


def test_the_request_is_dated_and_placed_in_japan_time() -> None:
    row = dict(zip(COLUMNS, ROWS.merged(None, FACETS[:1]), strict=True))
    assert (row["day"].isoformat(), row["hour"], row["weekday"]) == ("2024-03-04", 23, 1)
    assert row["other_municipality"] is False
    assert (row["store_operator"], row["center"], row["copies"]) == ("lawson", "east", 2)


@given(st.permutations(FACETS), st.integers(min_value=0, max_value=len(FACETS)))
def test_any_order_and_any_split_gives_the_same_row(order: list[FacetValue], split: int) -> None:
    at_once = ROWS.merged(None, FACETS)
    in_two = ROWS.merged(ROWS.merged(None, order[:split]), order[split:])
    assert in_two == at_once
    row = dict(zip(COLUMNS, at_once, strict=True))
    assert row["store_operator"] == "lawson"  # the first entry, not the one resent
    assert row["notice"] == "delivered"  # the smaller event id of the two notices


@given(st.permutations(FACETS))
def test_cube_moves_add_up_to_the_final_row(order: list[FacetValue]) -> None:
    row: tuple[object, ...] | None = None
    hourly: Counter[tuple[object, ...]] = Counter()
    for facet in order:
        new = ROWS.merged(row, [facet])
        moved_hourly, *_ = CUBES.deltas([(row, new)])
        for key, delta in moved_hourly.items():
            hourly[key] += delta[0]  # requests
        row = new
    assert row is not None
    final_key, *_ = cube_keys(row)
    assert +hourly == Counter({final_key: 1})
    assert counts(row) == (1, 0, 1, 1, 0, 2, 600)


def test_a_row_without_its_request_counts_nowhere() -> None:
    row = ROWS.merged(None, FACETS[2:])
    assert counts(row) is None
    assert CUBES.deltas([(None, row)]) == ({}, {}, {})
