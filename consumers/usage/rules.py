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


# --- the row and its place in the cubes --------------------------------------------------------
#
# A row is the request id, then each facet's event id and columns (COLUMNS below). Usage keeps
# three cubes beside the rows, so that a month of national traffic answers in well under a
# second: by hour (no municipality), by municipality and month (no day or hour), and by store
# municipality and month (where residents of elsewhere print). A row counts in the cubes once
# its request facet is known; when a facet changes a row, the row's old counts leave
# the cubes and its new counts enter them.

COLUMNS: tuple[str, ...] = (
    "request_id",
    *(column for f in FACET_COLUMNS for column in (FACET_EVENT[f], *FACET_COLUMNS[f])),
)
_AT = {column: position for position, column in enumerate(COLUMNS)}

HOURLY_KEY = (
    "day", "hour", "certificate_type", "store_operator", "center", "outside_counter_hours",
    "other_municipality", "outcome", "reason",
)  # fmt: skip
MONTHLY_KEY = (
    "month", "municipality", "certificate_type", "store_operator", "center",
    "outside_counter_hours", "other_municipality", "outcome", "reason",
)  # fmt: skip
STORES_KEY = (
    "month", "store_municipality", "certificate_type", "store_operator", "center",
    "other_municipality", "outcome",
)  # fmt: skip
# Cube → the columns of its cells; "month" is the first day of the request's Japan month.
CUBE_KEYS: Mapping[str, tuple[str, ...]] = {
    "hourly": HOURLY_KEY,
    "monthly": MONTHLY_KEY,
    "stores": STORES_KEY,
}
MEASURES = (
    "requests",
    "issued",
    "rejected",
    "delivered",
    "cancelled",
    "certificates",
    "fees_paid_yen",
)


def merged(row: tuple[object, ...] | None, facets: Iterable[FacetValue]) -> tuple[object, ...]:
    """``row`` (or an empty one) with each facet taken where its event id is smaller."""
    values: list[object] = list(row) if row else [None] * len(COLUMNS)
    for facet in facets:
        values[0] = facet.request_id
        event = _AT[FACET_EVENT[facet.facet]]
        kept_id = values[event]
        if kept_id is None or facet.event_id < kept_id:  # type: ignore[operator]
            values[event] = facet.event_id
            for column, value in zip(FACET_COLUMNS[facet.facet], facet.values, strict=True):
                values[_AT[column]] = value
    return tuple(values)


def counts(row: tuple[object, ...]) -> tuple[int, ...] | None:
    """The row's measures, or None while its request is unknown (it counts nowhere yet)."""
    if row[_AT["request_event"]] is None:
        return None
    outcome, notice = row[_AT["outcome"]], row[_AT["notice"]]
    delivered = notice == "delivered"
    return (
        1,
        int(outcome == "issued"),
        int(outcome == "rejected"),
        int(delivered),
        int(notice == "cancelled"),
        int(row[_AT["copies"]]) if delivered else 0,  # type: ignore[call-overload]
        int(row[_AT["fee_paid_yen"]] or 0),  # type: ignore[call-overload]
    )


def cube_keys(row: tuple[object, ...]) -> tuple[tuple[object, ...], ...]:
    """The row's cell in each cube, in the order of ``CUBE_KEYS``."""
    day = row[_AT["day"]]
    month = day.replace(day=1)  # type: ignore[attr-defined]
    return tuple(
        tuple(month if column == "month" else row[_AT[column]] for column in key)
        for key in CUBE_KEYS.values()
    )


Cells = dict[tuple[object, ...], list[int]]


def cube_deltas(
    changes: Iterable[tuple[tuple[object, ...] | None, tuple[object, ...]]],
) -> tuple[Cells, ...]:
    """What ``(old row, new row)`` changes add to each cell of each cube (negative: leave), in
    the order of ``CUBE_KEYS``."""
    cubes: tuple[Cells, ...] = tuple({} for _ in CUBE_KEYS)
    for old, new in changes:
        for row, sign in ((old, -1), (new, 1)):
            measured = counts(row) if row else None
            if measured is None or row is None:
                continue
            for cube, key in zip(cubes, cube_keys(row), strict=True):
                cell = cube.setdefault(key, [0] * len(MEASURES))
                for position, value in enumerate(measured):
                    cell[position] += sign * value
    return cubes
