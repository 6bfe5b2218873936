"""How a kiosk request is counted in usage (DOMAIN §8), free of I/O.

A request is seen three times in the log: the center's request, the issuer's decision and the
kiosk's notice. Each becomes a *facet* of the request's usage row, tagged with its event id; when
one facet is seen twice (a redelivery, a mirrored copy, the same request id sent at the other
center), the event with the smallest id is kept, so the row does not depend on arrival order.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Literal
from uuid import UUID
from zoneinfo import ZoneInfo

from schemas.events.issuance import (
    IssuanceCancelled,
    IssuanceDelivered,
    IssuanceIssued,
    IssuanceRejected,
    IssuanceRequested,
)

JST = ZoneInfo("Asia/Tokyo")

Facet = Literal["request", "outcome", "notice"]

# The columns of each facet in ``usage.requests``, after the facet's event id column.
FACET_COLUMNS: Mapping[Facet, tuple[str, ...]] = {
    "request": (
        "requested_at", "day", "hour", "weekday", "municipality", "store_municipality",
        "other_municipality", "certificate_type", "store_operator", "center", "copies",
    ),
    "outcome": ("outcome", "reason", "outside_counter_hours", "fee_quoted_yen"),
    "notice": ("notice", "fee_paid_yen"),
}  # fmt: skip
FACET_EVENT: Mapping[Facet, str] = {
    "request": "request_event",
    "outcome": "outcome_event",
    "notice": "notice_event",
}


@dataclass(frozen=True, slots=True)
class FacetValue:
    """One facet of one request: the event it came from and its column values."""

    request_id: UUID
    facet: Facet
    event_id: UUID
    values: tuple[object, ...]


def request_facet(
    event_id: UUID, payload: IssuanceRequested, *, at: datetime, center: str
) -> FacetValue:
    moment = at.astimezone(JST)
    return FacetValue(
        payload.request_id,
        "request",
        event_id,
        (
            at,
            moment.date(),
            moment.hour,
            moment.isoweekday(),
            payload.resident_municipality,
            payload.store_municipality,
            payload.store_municipality != payload.resident_municipality,
            payload.certificate_type.value,
            payload.store_operator.value,
            center,
            payload.copies,
        ),
    )


def outcome_facet(event_id: UUID, payload: IssuanceIssued | IssuanceRejected) -> FacetValue:
    if isinstance(payload, IssuanceIssued):
        values: tuple[object, ...] = (
            "issued", None, payload.outside_counter_hours, payload.fee.total_yen,
        )  # fmt: skip
    else:
        values = ("rejected", payload.reason.value, payload.outside_counter_hours, None)
    return FacetValue(payload.request_id, "outcome", event_id, values)


def notice_facet(event_id: UUID, payload: IssuanceDelivered | IssuanceCancelled) -> FacetValue:
    if isinstance(payload, IssuanceDelivered):
        values: tuple[object, ...] = ("delivered", payload.fee_paid_yen)
    else:
        values = ("cancelled", None)
    return FacetValue(payload.request_id, "notice", event_id, values)


def kept(facets: Iterable[FacetValue]) -> dict[tuple[UUID, Facet], FacetValue]:
    """Per request and facet, the value from the smallest event id."""
    chosen: dict[tuple[UUID, Facet], FacetValue] = {}
    for facet in facets:
        key = (facet.request_id, facet.facet)
        if key not in chosen or facet.event_id < chosen[key].event_id:
            chosen[key] = facet
    return chosen
