"""Writing projection rows against the real Postgres: ``insert_new_rows`` keeps what is there."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from uuid import uuid4

import asyncpg
import pytest

from pipeline.database import create_pool, insert_new_rows, server_on_this_machine
from pipeline.settings import Settings

pytestmark = pytest.mark.integration

COLUMNS = ("id", "label", "at", "body")


async def table_rows(db: asyncpg.Connection, table: str) -> dict[object, str]:
    return {row["id"]: row["label"] for row in await db.fetch(f"SELECT id, label FROM {table}")}


@pytest.mark.parametrize("count", [3, 250], ids=["live batch", "catch-up batch"])
async def test_rows_whose_key_exists_are_kept_and_the_others_added(
    db: asyncpg.Connection, count: int
) -> None:
    await db.execute(
        "CREATE TABLE items (id uuid PRIMARY KEY, label text NOT NULL, "
        "at timestamptz NOT NULL, body bytea)"
    )
    at = datetime(2026, 11, 23, tzinfo=UTC)
    first = [(uuid4(), f"first {i}", at, bytes([i % 256]) * 10) for i in range(count)]
    async with db.transaction():
        await insert_new_rows(db, "items", COLUMNS, first)
    # A redelivery: the same keys with other values, and new keys among them.
    again = [(key, "again", at, None) for key, *_ in first[::2]]
    new = [(uuid4(), "new", at, None) for _ in range(count)]
    async with db.transaction():
        await insert_new_rows(db, "items", COLUMNS, again + new)

    stored = await table_rows(db, "items")
    assert len(stored) == 2 * count
    assert all(stored[key] == label for key, label, *_ in first)
    assert all(stored[key] == "new" for key, *_ in new)
    body = await db.fetchval("SELECT body FROM items WHERE id = $1", first[1][0])
    assert body == first[1][3]


async def test_an_array_column_and_a_table_of_the_same_name_elsewhere(
    db: asyncpg.Connection,
) -> None:
    """An array column, and a table of the same name in another schema with other columns:
    each row lands as its own table says."""
    await db.execute("CREATE SCHEMA one; CREATE SCHEMA two")
    await db.execute("CREATE TABLE one.tags (id int PRIMARY KEY, label text, tags text[])")
    await db.execute("CREATE TABLE two.tags (id text PRIMARY KEY, label text)")
    async with db.transaction():
        await db.execute("SET LOCAL search_path TO one")
        await insert_new_rows(
            db, "tags", ("id", "label", "tags"), [(1, "a", ["x", "y"]), (2, "b", [])]
        )
    async with db.transaction():
        await db.execute("SET LOCAL search_path TO two")
        await insert_new_rows(db, "tags", ("id", "label"), [("k", "c")])

    assert [tuple(r) for r in await db.fetch("SELECT * FROM one.tags ORDER BY id")] == [
        (1, "a", ["x", "y"]),
        (2, "b", []),
    ]
    assert [tuple(r) for r in await db.fetch("SELECT * FROM two.tags")] == [("k", "c")]


async def test_a_value_too_long_for_its_column_is_refused_not_cut(
    db: asyncpg.Connection,
) -> None:
    await db.execute("CREATE TABLE codes (id int PRIMARY KEY, code varchar(6))")
    with pytest.raises(asyncpg.StringDataRightTruncationError):
        async with db.transaction():
            await insert_new_rows(db, "codes", ("id", "code"), [(1, "1310160")])
    assert await db.fetchval("SELECT count(*) FROM codes") == 0


async def test_a_background_pool_is_served_at_its_niceness(platform: Settings) -> None:
    background = await create_pool(platform, nice=19)
    kiosks = await create_pool(platform)
    try:
        async with background.acquire() as slow, kiosks.acquire() as fast:
            slow_pid, fast_pid = slow.get_server_pid(), fast.get_server_pid()
            if not server_on_this_machine(platform.dsn):
                pytest.skip("Postgres runs on another machine (BCL_DATABASE_URL)")
            server = Path(f"/proc/{slow_pid}")
            if server.stat().st_uid != os.geteuid() and os.geteuid() != 0:
                pytest.skip("Postgres runs as another user, whose processes this one cannot renice")
            assert os.getpriority(os.PRIO_PROCESS, slow_pid) == 19
            assert os.getpriority(os.PRIO_PROCESS, fast_pid) == 0
    finally:
        await background.close()
        await kiosks.close()


async def test_kept_statements_follow_the_search_path_and_a_schema_swap(
    platform: Settings, db: asyncpg.Connection
) -> None:
    """What keeping prepared statements in the pools rests on: the same statement text, run
    under another search path or after a replay's swap, reaches the tables the names mean now."""
    await db.execute(
        "CREATE SCHEMA live; CREATE TABLE live.t (v text); "
        "CREATE SCHEMA shadow; CREATE TABLE shadow.t (v text)"
    )
    pool = await create_pool(platform, max_size=1)

    async def write(schema: str, value: str) -> None:
        async with pool.acquire() as connection, connection.transaction():
            await connection.execute(f"SET LOCAL search_path TO {schema}, public")
            await connection.execute("INSERT INTO t (v) VALUES ($1)", value)

    try:
        await write("live", "live 1")
        await write("shadow", "shadow 1")
        await write("live", "live 2")
        await db.execute(
            "BEGIN; ALTER SCHEMA live RENAME TO retired; ALTER SCHEMA shadow RENAME TO live; COMMIT"
        )
        await write("live", "after the swap")
    finally:
        await pool.close()
    values = {
        schema: [r["v"] for r in await db.fetch(f"SELECT v FROM {schema}.t ORDER BY v")]
        for schema in ("live", "retired")
    }
    assert values == {"live": ["after the swap", "shadow 1"], "retired": ["live 1", "live 2"]}
