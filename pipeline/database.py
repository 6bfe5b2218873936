"""Postgres connections for projections and queries."""

from __future__ import annotations

from collections.abc import AsyncIterator
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
