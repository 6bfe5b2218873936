"""Postgres connections for projections and queries."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from pipeline.settings import Settings

# What projections and migrations are handed: a plain connection or one lent by a pool.
Connection = asyncpg.Connection | PoolConnectionProxy


async def create_pool(settings: Settings, *, min_size: int = 1, max_size: int = 4) -> asyncpg.Pool:
    # No statement cache: projection SQL names tables through search_path, and a replay swaps
    # schemas under a running worker; a cached plan would keep writing to the retired tables.
    pool = await asyncpg.create_pool(
        settings.dsn,
        min_size=min_size,
        max_size=max_size,
        statement_cache_size=0,
        server_settings={"application_name": f"bcl-{settings.center}", "timezone": "UTC"},
    )
    assert pool is not None
    return pool


@asynccontextmanager
async def connect(settings: Settings) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(
        settings.dsn,
        statement_cache_size=0,
        server_settings={"application_name": f"bcl-{settings.center}", "timezone": "UTC"},
    )
    try:
        yield connection
    finally:
        await connection.close()


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


async def insert_new_rows(
    connection: Connection, table: str, columns: Sequence[str], rows: Sequence[Sequence[object]]
) -> None:
    """Insert rows, keeping the rows already there for any key that exists.

    Fast path: one COPY. A key that exists fails the COPY as a whole (a redelivery, a mirrored
    copy of an event); then the rows go through a stage and one INSERT that skips those keys.
    """
    if not rows:
        return
    try:
        async with connection.transaction():
            await connection.copy_records_to_table(table, records=rows, columns=columns)
        return
    except asyncpg.UniqueViolationError:
        pass
    stage = await stage_rows(connection, table, columns, rows)
    names = ", ".join(quote_ident(c) for c in columns)
    await connection.execute(
        f"INSERT INTO {quote_ident(table)} ({names}) SELECT {names} FROM {stage} "
        "ON CONFLICT DO NOTHING"
    )


async def upsert_rows(
    connection: Connection,
    table: str,
    columns: Sequence[str],
    rows: Sequence[Sequence[object]],
    key: Sequence[str],
    *,
    newer: str | None = None,
) -> None:
    """Insert rows or replace the existing row of the same key, in one statement.

    ``newer`` names a column that only moves forward (a source sequence): an existing row with a
    value at or above the incoming one is kept. Rows must have distinct keys.
    """
    if not rows:
        return
    stage = await stage_rows(connection, table, columns, rows)
    names = ", ".join(quote_ident(c) for c in columns)
    updates = ", ".join(
        f"{quote_ident(c)} = EXCLUDED.{quote_ident(c)}" for c in columns if c not in key
    )
    guard = (
        f" WHERE EXCLUDED.{quote_ident(newer)} > {quote_ident(table)}.{quote_ident(newer)}"
        if newer
        else ""
    )
    await connection.execute(
        f"INSERT INTO {quote_ident(table)} ({names}) SELECT {names} FROM {stage} "
        f"ON CONFLICT ({', '.join(quote_ident(k) for k in key)}) DO UPDATE SET {updates}{guard}"
    )


async def stage_rows(
    connection: Connection, table: str, columns: Sequence[str], rows: Sequence[Sequence[object]]
) -> str:
    # Shaped like the target as the search path resolves it now (live or rebuild schema), and
    # dropped at commit, so two projections' tables of one name never share a stage.
    name = f"stage_{table}_{next(_stages)}"
    await connection.execute(
        f"CREATE TEMP TABLE {quote_ident(name)} (LIKE {quote_ident(table)}) ON COMMIT DROP"
    )
    await connection.copy_records_to_table(name, records=rows, columns=columns)
    return quote_ident(name)


_stages = itertools.count()
