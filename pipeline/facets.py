"""Rows assembled from facets, and cubes summed from them: the shape usage and fees share.

A kiosk request is seen several times in the log — the center's request, the issuer's decision,
the kiosk's notice — and in any order (partitions, redeliveries, mirrored copies, the same request
id sent again at the other center). Each sighting is a *facet* of the request's row, tagged with
its event id; when a facet is seen twice, the event with the smallest id is kept, so a row does
not depend on arrival order and a replay rebuilds it exactly.

Beside the rows sit *cubes*: the rows' measures summed by a few key columns, kept in step in the
same transaction. When a facet changes a row, the row's old measures leave their cells and its new
measures enter theirs; a cell left with no rows goes, so a cube built live and one built by replay
hold the same cells.

``FacetedRows`` and ``Cubes`` are pure; ``FacetedProjection`` holds the SQL.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Protocol
from uuid import UUID

from pipeline.database import Connection, stage_rows
from pipeline.projection import ConsumedEvent
from schemas.events.issuance import (
    IssuanceCancelled,
    IssuanceDelivered,
    IssuanceIssued,
    IssuanceRejected,
    IssuanceRequested,
)

Row = tuple[object, ...]
Cells = dict[tuple[object, ...], list[int]]


@dataclass(frozen=True, slots=True)
class FacetValue:
    """One facet of one row: the event it came from and its column values."""

    key: UUID
    facet: str
    event_id: UUID
    values: tuple[object, ...]


class FacetedRows:
    """The layout of a row: its key column, then for each facet ``<facet>_event`` (the id of the
    event the facet was taken from) and the facet's columns."""

    def __init__(self, key: str, facets: Mapping[str, tuple[str, ...]]) -> None:
        self.facets = facets
        self.columns: tuple[str, ...] = (
            key,
            *(column for f, names in facets.items() for column in (f"{f}_event", *names)),
        )
        self._at = {column: position for position, column in enumerate(self.columns)}

    def get(self, row: Row, column: str) -> object:
        return row[self._at[column]]

    def number(self, row: Row, column: str) -> int:
        """``column``'s value, an integer (0 while its facet is missing)."""
        value = row[self._at[column]]
        if value is None:
            return 0
        if not isinstance(value, int):
            raise TypeError(f"{column} holds {value!r}, not an integer")
        return value

    def day(self, row: Row, column: str) -> date:
        """``column``'s value, a date."""
        value = row[self._at[column]]
        if not isinstance(value, date):
            raise TypeError(f"{column} holds {value!r}, not a date")
        return value

    def merged(self, row: Row | None, facets: Iterable[FacetValue]) -> Row:
        """``row`` (or an empty one) with each facet taken where its event id is smaller."""
        values: list[object] = list(row) if row else [None] * len(self.columns)
        for facet in facets:
            values[0] = facet.key
            event = self._at[f"{facet.facet}_event"]
            kept_id = values[event]
            if kept_id is None or facet.event_id < kept_id:  # type: ignore[operator]
                values[event] = facet.event_id
                for column, value in zip(self.facets[facet.facet], facet.values, strict=True):
                    values[self._at[column]] = value
        return tuple(values)


@dataclass(frozen=True, slots=True)
class Cubes:
    """Cubes summed from rows: each cube's key columns, the measures every cell holds, what a
    row measures (None: it counts nowhere yet) and the row's cell in each cube."""

    keys: Mapping[str, tuple[str, ...]]
    measures: tuple[str, ...]
    measure: Callable[[Row], tuple[int, ...] | None]
    cells: Callable[[Row], tuple[tuple[object, ...], ...]]

    def deltas(self, changes: Iterable[tuple[Row | None, Row]]) -> tuple[Cells, ...]:
        """What ``(old row, new row)`` changes add to each cell of each cube (negative: leave),
        in the order of ``keys``."""
        cubes: tuple[Cells, ...] = tuple({} for _ in self.keys)
        for old, new in changes:
            for row, sign in ((old, -1), (new, 1)):
                measured = self.measure(row) if row else None
                if measured is None or row is None:
                    continue
                for cube, key in zip(cubes, self.cells(row), strict=True):
                    cell = cube.setdefault(key, [0] * len(self.measures))
                    for position, value in enumerate(measured):
                        cell[position] += sign * value
        return cubes


class RequestFacet(Protocol):
    def __call__(
        self, event_id: UUID, payload: IssuanceRequested, *, at: datetime, center: str
    ) -> FacetValue: ...


# The kiosk's notice, as usage and fees both take it.
NOTICE_COLUMNS = ("notice", "fee_paid_yen")


def notice_facet(event_id: UUID, payload: IssuanceDelivered | IssuanceCancelled) -> FacetValue:
    if isinstance(payload, IssuanceDelivered):
        values: tuple[object, ...] = ("delivered", payload.fee_paid_yen)
    else:
        values = ("cancelled", None)
    return FacetValue(payload.request_id, "notice", event_id, values)


@dataclass(frozen=True, slots=True)
class KioskFacets:
    """How a projection takes the three sightings of a kiosk request: the center's request (at
    the instant and center it entered), the issuer's decision and the kiosk's notice."""

    request: RequestFacet
    outcome: Callable[[UUID, IssuanceIssued | IssuanceRejected], FacetValue]
    notice: Callable[[UUID, IssuanceDelivered | IssuanceCancelled], FacetValue] = notice_facet

    def of(self, events: Iterable[ConsumedEvent]) -> Iterator[FacetValue]:
        """The facets of the kiosk requests in a batch."""
        for event in events:
            payload, envelope = event.payload, event.envelope
            if isinstance(payload, IssuanceRequested):
                yield self.request(
                    envelope.event_id, payload, at=envelope.occurred_at, center=envelope.origin
                )
            elif isinstance(payload, IssuanceIssued | IssuanceRejected):
                yield self.outcome(envelope.event_id, payload)
            elif isinstance(payload, IssuanceDelivered | IssuanceCancelled):
                yield self.notice(envelope.event_id, payload)


class FacetedProjection:
    """A projection of faceted rows in ``table`` and their cubes. Subclasses name the projection,
    its topics, its layout and how it takes each facet."""

    name: str
    topics: Sequence[str]
    table: str
    rows: FacetedRows
    cubes: Cubes
    facets: KioskFacets

    @property
    def digest_order(self) -> Mapping[str, str]:
        return {
            self.table: self.rows.columns[0],
            **{cube: ", ".join(key) for cube, key in self.cubes.keys.items()},
        }

    async def apply(self, connection: Connection, events: Sequence[ConsumedEvent]) -> None:
        """1. Make sure every row the batch touches exists, and lock those rows in one order
           (another runner touching the same rows waits, and cannot deadlock).
        2. Merge the batch's facets into them.
        3. Write the rows that changed, and move their measures in the cubes.
        """
        facets: dict[UUID, list[FacetValue]] = {}
        for facet in self.facets.of(events):
            facets.setdefault(facet.key, []).append(facet)
        if not facets:
            return
        keys = sorted(facets)
        key_column = self.rows.columns[0]
        # 1.
        await connection.execute(
            f"INSERT INTO {self.table} ({key_column}) SELECT unnest($1::uuid[]) "
            "ON CONFLICT DO NOTHING",
            keys,
        )
        current = {
            row[key_column]: tuple(row.values())
            for row in await connection.fetch(
                f"SELECT {', '.join(self.rows.columns)} FROM {self.table} "
                f"WHERE {key_column} = ANY($1::uuid[]) ORDER BY {key_column} FOR UPDATE",
                keys,
            )
        }
        # 2.
        changes = []
        for key in keys:
            old = current[key]
            new = self.rows.merged(old, facets[key])
            if new != old:
                changes.append((old, new))
        if not changes:
            return
        # 3.
        await self._replace_rows(connection, [new for _, new in changes])
        deltas = self.cubes.deltas(changes)
        for (cube, key_columns), cells in zip(self.cubes.keys.items(), deltas, strict=True):
            await self._add_to_cube(connection, cube, key_columns, cells)

    async def _replace_rows(self, connection: Connection, rows: Sequence[Row]) -> None:
        columns = self.rows.columns
        stage = await stage_rows(connection, self.table, columns, rows)
        updates = ", ".join(f"{c} = s.{c}" for c in columns[1:])
        await connection.execute(
            f"UPDATE {self.table} r SET {updates} FROM {stage} s "
            f"WHERE r.{columns[0]} = s.{columns[0]}"
        )

    async def _add_to_cube(
        self, connection: Connection, cube: str, key: Sequence[str], cells: Cells
    ) -> None:
        """Add each cell's delta; a cell whose rows fall to none goes (its first measure counts
        the rows)."""
        moved = [(*cell, *delta) for cell, delta in cells.items() if any(delta)]
        if not moved:
            return
        measures = self.cubes.measures
        columns = (*key, *measures)
        stage = await stage_rows(connection, cube, columns, moved)
        names = ", ".join(columns)
        sums = ", ".join(f"{m} = c.{m} + EXCLUDED.{m}" for m in measures)
        await connection.execute(
            f"INSERT INTO {cube} AS c ({names}) SELECT {names} FROM {stage} "
            f"ON CONFLICT ({', '.join(key)}) DO UPDATE SET {sums}"
        )
        # Through a partial index of empty cells (`WHERE <first measure> = 0`): a join on
        # IS NOT DISTINCT FROM cannot use an index, and made a replay scan the cube per cell.
        await connection.execute(f"DELETE FROM {cube} WHERE {measures[0]} = 0")
