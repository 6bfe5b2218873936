"""Postgres connections for projections and queries."""

from __future__ import annotations

import contextlib
import itertools
import os
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from functools import partial
from urllib.parse import urlsplit

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from pipeline.settings import Settings

# What projections and migrations are handed: a plain connection or one lent by a pool.
Connection = asyncpg.Connection | PoolConnectionProxy


async def create_pool(
    settings: Settings, *, min_size: int = 1, max_size: int = 4, nice: int | None = None
) -> asyncpg.Pool:
    """A pool of connections to the center's Postgres; with ``nice``, a server on this machine
    serves them at that CPU niceness (`lower_session_priority`)."""
    # Prepared statements are kept: without them every query with arguments is two round trips
    # (prepare, then execute), some forty per issuer batch. Projection SQL names tables through
    # search_path, and a replay swaps schemas under a running worker; Postgres analyses a
    # cached statement again when the search path differs or a schema is renamed, so it follows
    # both (tests/pipeline/test_database.py). A statement whose result shape changed under it
    # fails its transaction with InvalidCachedStatementError, and asyncpg prepares it afresh.
    pool = await asyncpg.create_pool(
        settings.dsn,
        min_size=min_size,
        max_size=max_size,
        statement_cache_size=_STATEMENTS_KEPT,
        server_settings={"application_name": f"bcl-{settings.center}", "timezone": "UTC"},
        reset=_no_session_state,
        init=(
            partial(lower_session_priority, nice)
            if nice is not None and server_on_this_machine(settings.dsn)
            else None
        ),
    )
    assert pool is not None
    return pool


# Enough for every projection's statements in one worker, with room for the statements asyncpg
# prepares for stage tables (a name each, never used again), which age out as they pass.
_STATEMENTS_KEPT = 250


async def _no_session_state(connection: asyncpg.Connection) -> None:
    """What a pooled connection needs on release beyond asyncpg's rollback of an open
    transaction: nothing. Pooled work keeps no session state (settings are ``SET LOCAL``, locks
    transaction-scoped, cursors inside transactions), so the default reset query (``RESET ALL``,
    ``UNLISTEN *``, ...) would only cost a round trip on every release, several per batch."""


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


async def lower_session_priority(niceness: int, connection: asyncpg.Connection) -> None:
    """Serve ``connection`` at ``niceness`` at least (the server runs on this machine).

    Postgres serves each session in a process of its own. A background worker's writes (every
    event into the journal, usage, fees) would otherwise take the CPU at the server's priority
    while kiosks wait; at its niceness, they wait for the kiosks' instead. Only a process
    working in the server's data directory is touched (not another server's process of the same
    id, as in a container), and only where this process may see and renice it.
    """
    try:
        data_directory = await connection.fetchval("SHOW data_directory")
    except asyncpg.InsufficientPrivilegeError:
        return
    _renice_postgres(connection.get_server_pid(), data_directory, niceness)


def server_on_this_machine(dsn: str) -> bool:
    """Whether the server's process ids are this machine's (a loopback or socket address)."""
    host = urlsplit(dsn).hostname or ""
    return host in ("localhost", "127.0.0.1", "::1") or host.startswith("/")


def _renice_postgres(pid: int, data_directory: str, niceness: int) -> None:
    with contextlib.suppress(OSError):  # gone, or another user's
        if os.readlink(f"/proc/{pid}/cwd") != data_directory:
            return
        if niceness > os.getpriority(os.PRIO_PROCESS, pid):
            os.setpriority(os.PRIO_PROCESS, pid, niceness)


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


async def insert_new_rows(
    connection: Connection, table: str, columns: Sequence[str], rows: Sequence[Sequence[object]]
) -> int:
    """Insert rows, keeping the rows already there for any key that exists; returns how many
    were inserted.

    Fast path: one COPY. A key that exists fails the COPY as a whole (a redelivery, a mirrored
    copy of an event); then the rows go through a stage and one INSERT that skips those keys.
    """
    if not rows:
        return 0
    try:
        async with connection.transaction():
            return _count(
                await connection.copy_records_to_table(table, records=rows, columns=columns)
            )
    except asyncpg.UniqueViolationError:
        pass
    stage = await stage_rows(connection, table, columns, rows)
    names = ", ".join(quote_ident(c) for c in columns)
    return _count(
        await connection.execute(
            f"INSERT INTO {quote_ident(table)} ({names}) SELECT {names} FROM {stage} "
            "ON CONFLICT DO NOTHING"
        )
    )


def _count(status: str) -> int:
    """The row count of a command's status ("INSERT 0 12", "COPY 12")."""
    return int(status.rpartition(" ")[2])


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
