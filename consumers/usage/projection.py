"""The usage projection: one row per kiosk request in ``usage.requests`` and the cubes summed
from them (``usage.hourly``, ``usage.monthly``, ``usage.stores``), for `bcl usage`."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from uuid import UUID

from consumers.usage.rules import (
    COLUMNS,
    CUBE_KEYS,
    MEASURES,
    FacetValue,
    cube_deltas,
    merged,
    notice_facet,
    outcome_facet,
    request_facet,
)
from pipeline.database import Connection, stage_rows
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


def facets_of(events: Iterable[ConsumedEvent]) -> dict[UUID, list[FacetValue]]:
    """The batch's facets, by request."""
    facets: dict[UUID, list[FacetValue]] = {}
    for event in events:
        payload, envelope = event.payload, event.envelope
        if isinstance(payload, IssuanceRequested):
            facet = request_facet(
                envelope.event_id, payload, at=envelope.occurred_at, center=envelope.origin
            )
        elif isinstance(payload, IssuanceIssued | IssuanceRejected):
            facet = outcome_facet(envelope.event_id, payload)
        elif isinstance(payload, IssuanceDelivered | IssuanceCancelled):
            facet = notice_facet(envelope.event_id, payload)
        else:
            continue
        facets.setdefault(facet.request_id, []).append(facet)
    return facets


class UsageProjection:
    name = "usage"
    topics: Sequence[str] = (ISSUANCE_REQUESTS.name, ISSUANCE_OUTCOMES.name)
    digest_order: Mapping[str, str] = {
        "requests": "request_id",
        **{cube: ", ".join(key) for cube, key in CUBE_KEYS.items()},
    }

    async def apply(self, connection: Connection, events: Sequence[ConsumedEvent]) -> None:
        """1. Make sure every request of the batch has a row, and lock those rows in one order
           (another runner of usage touching the same requests waits, and cannot deadlock).
        2. Merge the batch's facets into them.
        3. Write the rows that changed, and move their counts in the cubes.
        """
        facets = facets_of(events)
        if not facets:
            return
        ids = sorted(facets)
        # 1.
        await connection.execute(
            "INSERT INTO requests (request_id) SELECT unnest($1::uuid[]) ON CONFLICT DO NOTHING",
            ids,
        )
        names = ", ".join(COLUMNS)
        current = {
            row["request_id"]: tuple(row.values())
            for row in await connection.fetch(
                f"SELECT {names} FROM requests WHERE request_id = ANY($1::uuid[]) "
                "ORDER BY request_id FOR UPDATE",
                ids,
            )
        }
        # 2.
        changes = []
        for request_id in ids:
            old = current[request_id]
            new = merged(old, facets[request_id])
            if new != old:
                changes.append((old, new))
        if not changes:
            return
        # 3.
        await _replace_rows(connection, [new for _, new in changes])
        for (cube, key), deltas in zip(CUBE_KEYS.items(), cube_deltas(changes), strict=True):
            await _add_to_cube(connection, cube, key, deltas)


async def _replace_rows(connection: Connection, rows: Sequence[tuple[object, ...]]) -> None:
    stage = await stage_rows(connection, "requests", COLUMNS, rows)
    updates = ", ".join(f"{c} = s.{c}" for c in COLUMNS[1:])
    await connection.execute(
        f"UPDATE requests r SET {updates} FROM {stage} s WHERE r.request_id = s.request_id"
    )


async def _add_to_cube(
    connection: Connection,
    cube: str,
    key: Sequence[str],
    deltas: Mapping[tuple[object, ...], list[int]],
) -> None:
    """Add each cell's delta; a cell whose requests fall to nothing goes, so a cube built live
    and one built by replay hold the same cells."""
    moved = [(*cell, *delta) for cell, delta in deltas.items() if any(delta)]
    if not moved:
        return
    columns = (*key, *MEASURES)
    stage = await stage_rows(connection, cube, columns, moved)
    names = ", ".join(columns)
    sums = ", ".join(f"{m} = c.{m} + EXCLUDED.{m}" for m in MEASURES)
    await connection.execute(
        f"INSERT INTO {cube} AS c ({names}) SELECT {names} FROM {stage} "
        f"ON CONFLICT ({', '.join(key)}) DO UPDATE SET {sums}"
    )
    # Through the partial index of empty cells: a join on IS NOT DISTINCT FROM cannot use an
    # index, and made a replay scan the cube once per staged cell.
    await connection.execute(f"DELETE FROM {cube} WHERE requests = 0")


def make(settings: Settings) -> UsageProjection:
    return UsageProjection()
