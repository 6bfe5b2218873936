"""A deterministic digest of a projection: a hash over its rows in a fixed order.

Two projections built from the same log, live or replayed, here or in the other center, hold
the same rows and so the same digest. Rows are rendered by Postgres in UTC.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from pipeline.database import Connection, quote_ident
from pipeline.projection import Projection


@dataclass(frozen=True)
class TableDigest:
    table: str
    rows: int
    sha256: str


@dataclass(frozen=True)
class ProjectionDigest:
    projection: str
    tables: tuple[TableDigest, ...]

    @property
    def sha256(self) -> str:
        combined = hashlib.sha256()
        for table in self.tables:
            combined.update(f"{table.table}:{table.rows}:{table.sha256}\n".encode())
        return combined.hexdigest()

    @property
    def rows(self) -> int:
        return sum(t.rows for t in self.tables)


async def projection_digest(
    connection: Connection, projection: Projection, schema: str | None = None
) -> ProjectionDigest:
    schema = schema or projection.name
    tables = []
    async with connection.transaction(isolation="repeatable_read", readonly=True):
        await connection.execute("SET LOCAL timezone TO 'UTC'")
        for table, order in sorted(projection.digest_order.items()):
            digest = hashlib.sha256()
            rows = 0
            query = (
                f"SELECT t::text FROM {quote_ident(schema)}.{quote_ident(table)} t ORDER BY {order}"
            )
            async for row in connection.cursor(query, prefetch=10_000):
                digest.update(row[0].encode())
                digest.update(b"\n")
                rows += 1
            tables.append(TableDigest(table, rows, digest.hexdigest()))
    return ProjectionDigest(projection.name, tuple(tables))
