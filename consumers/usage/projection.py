"""The usage projection: one row per kiosk request in ``usage.requests``, for `bcl usage`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import chain
from uuid import UUID

from consumers.usage.rules import (
    FACET_COLUMNS,
    FACET_EVENT,
    Facet,
    FacetValue,
    kept,
    notice_facet,
    outcome_facet,
    request_facet,
)
from pipeline.database import Connection, quote_ident
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

COLUMNS: tuple[str, ...] = (
    "request_id",
    *chain.from_iterable((FACET_EVENT[f], *FACET_COLUMNS[f]) for f in FACET_COLUMNS),
)


def _upsert_statement(stage: str) -> str:
    """Insert new requests; for a known one, each facet takes the incoming value only where the
    incoming event id is smaller than the one kept (or none is kept yet)."""
    names = ", ".join(quote_ident(c) for c in COLUMNS)
    updates = []
    for facet, columns in FACET_COLUMNS.items():
        event = quote_ident(FACET_EVENT[facet])
        take = (
            f"EXCLUDED.{event} IS NOT NULL AND (r.{event} IS NULL OR EXCLUDED.{event} < r.{event})"
        )
        for column in map(quote_ident, (FACET_EVENT[facet], *columns)):
            updates.append(
                f"{column} = CASE WHEN {take} THEN EXCLUDED.{column} ELSE r.{column} END"
            )
    return (
        f"INSERT INTO requests AS r ({names}) SELECT {names} FROM {stage} "
        f"ON CONFLICT (request_id) DO UPDATE SET {', '.join(updates)}"
    )


def rows(facets: Mapping[tuple[UUID, Facet], FacetValue]) -> list[tuple[object, ...]]:
    """One full row per request, with the facets the batch has and nulls for the others."""
    by_request: dict[UUID, dict[Facet, FacetValue]] = {}
    for (request_id, facet), value in facets.items():
        by_request.setdefault(request_id, {})[facet] = value
    result = []
    for request_id, present in by_request.items():
        row: list[object] = [request_id]
        for facet, columns in FACET_COLUMNS.items():
            found = present.get(facet)
            row += [found.event_id, *found.values] if found else [None] * (1 + len(columns))
        result.append(tuple(row))
    return result


class UsageProjection:
    name = "usage"
    topics: Sequence[str] = (ISSUANCE_REQUESTS.name, ISSUANCE_OUTCOMES.name)
    digest_order: Mapping[str, str] = {"requests": "request_id"}

    async def apply(self, connection: Connection, events: Sequence[ConsumedEvent]) -> None:
        facets = []
        for event in events:
            payload = event.payload
            event_id = event.envelope.event_id
            if isinstance(payload, IssuanceRequested):
                facets.append(
                    request_facet(
                        event_id,
                        payload,
                        at=event.envelope.occurred_at,
                        center=event.envelope.origin,
                    )
                )
            elif isinstance(payload, IssuanceIssued | IssuanceRejected):
                facets.append(outcome_facet(event_id, payload))
            elif isinstance(payload, IssuanceDelivered | IssuanceCancelled):
                facets.append(notice_facet(event_id, payload))
        await upsert_usage(connection, rows(kept(facets)))


async def upsert_usage(connection: Connection, batch: Sequence[tuple[object, ...]]) -> None:
    if not batch:
        return
    stage = f"stage_usage_{id(batch)}"
    await connection.execute(f"CREATE TEMP TABLE {stage} (LIKE requests) ON COMMIT DROP")
    await connection.copy_records_to_table(stage, records=batch, columns=COLUMNS)
    await connection.execute(_upsert_statement(stage))
    await connection.execute(f"DROP TABLE {stage}")


def make(settings: Settings) -> UsageProjection:
    return UsageProjection()
