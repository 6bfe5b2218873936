"""How a kiosk request is counted in usage (DOMAIN §8), free of I/O.

A request's usage row is assembled from three facets — the center's request, the issuer's
decision, the kiosk's notice — in any order (``pipeline.facets``).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from uuid import UUID

from pipeline.facets import NOTICE_COLUMNS, Cubes, FacetedRows, FacetValue, KioskFacets
from schemas.calendar import JST
from schemas.events.issuance import (
    IssuanceIssued,
    IssuanceRejected,
    IssuanceRequested,
)

# The columns of each facet in ``usage.requests``, after the facet's event id column.
FACET_COLUMNS: Mapping[str, tuple[str, ...]] = {
    "request": (
        "requested_at", "day", "hour", "weekday", "municipality", "store_municipality",
        "other_municipality", "certificate_type", "store_operator", "center", "copies",
    ),
    "outcome": ("outcome", "reason", "outside_counter_hours", "fee_quoted_yen"),
    "notice": NOTICE_COLUMNS,
}  # fmt: skip
ROWS = FacetedRows("request_id", FACET_COLUMNS)


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


FACETS = KioskFacets(request_facet, outcome_facet)


# --- the row and its place in the cubes --------------------------------------------------------
#
# Usage keeps three cubes beside the rows, so that a month of national traffic answers in well
# under a second: by hour (no municipality), by municipality and month (no day or hour), and by
# store municipality and month (where residents of elsewhere print). A row counts in the cubes
# once its request facet is known.

COLUMNS = ROWS.columns

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


def counts(row: tuple[object, ...]) -> tuple[int, ...] | None:
    """The row's measures, or None while its request is unknown (it counts nowhere yet)."""
    if ROWS.get(row, "request_event") is None:
        return None
    outcome, notice = ROWS.get(row, "outcome"), ROWS.get(row, "notice")
    delivered = notice == "delivered"
    return (
        1,
        int(outcome == "issued"),
        int(outcome == "rejected"),
        int(delivered),
        int(notice == "cancelled"),
        ROWS.number(row, "copies") if delivered else 0,
        ROWS.number(row, "fee_paid_yen"),
    )


def cube_keys(row: tuple[object, ...]) -> tuple[tuple[object, ...], ...]:
    """The row's cell in each cube, in the order of ``CUBE_KEYS``."""
    month = ROWS.day(row, "day").replace(day=1)
    return tuple(
        tuple(month if column == "month" else ROWS.get(row, column) for column in key)
        for key in CUBE_KEYS.values()
    )


CUBES = Cubes(CUBE_KEYS, MEASURES, counts, cube_keys)
