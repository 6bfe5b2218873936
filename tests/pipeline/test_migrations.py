from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import asyncpg
import pytest

from pipeline.migrations import (
    MIGRATIONS_DIR,
    PLATFORM,
    MigrationError,
    migrate,
    migrate_all,
    migration_files,
    migration_groups,
)
from pipeline.projection import PROJECTION_MODULES


def write_group(root: Path, group: str, files: dict[str, str]) -> Path:
    folder = root / group
    folder.mkdir(parents=True, exist_ok=True)
    for name, sql in files.items():
        (folder / name).write_text(sql)
    return folder


async def table_exists(conn: asyncpg.Connection, qualified: str) -> bool:
    return await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", qualified) is True


def test_platform_comes_first_then_the_projections_by_name() -> None:
    groups = migration_groups()
    assert groups[0] == PLATFORM
    assert groups[1:] == sorted(groups[1:])
    assert "journal" in groups


async def test_every_migration_is_applied_once(db: asyncpg.Connection) -> None:
    first = await migrate_all(db)
    assert first[PLATFORM] == [
        "platform/001_dead_letters.sql",
        "platform/002_outbox.sql",
        "platform/003_outbox_floors.sql",
    ]
    assert first["journal"][0] == "journal/001_events.sql"
    assert await migrate_all(db) == {group: [] for group in first}

    assert await table_exists(db, "platform.dead_letters")
    assert await table_exists(db, "platform.outbox")
    assert not await table_exists(db, "issuer.outbox"), "moved to platform.outbox"
    assert await table_exists(db, "journal.events")
    assert await table_exists(db, "journal.projection_offsets")
    recorded = await db.fetch(
        "SELECT target_schema, migration FROM platform.schema_migrations ORDER BY 1, 2"
    )
    assert [tuple(row) for row in recorded] == sorted(
        (group, name) for group, names in first.items() for name in names
    )
    assert {
        ("journal", "journal/001_events.sql"),
        ("platform", "platform/001_dead_letters.sql"),
    } <= {tuple(row) for row in recorded}


async def test_the_journal_builds_again_in_a_shadow_schema(db: asyncpg.Connection) -> None:
    await migrate(db, "journal")
    await db.execute(
        "INSERT INTO journal.projection_offsets (cluster, topic, partition, last_offset)"
        " VALUES ('east', 'resident.changes', 0, 41)"
    )
    assert await migrate(db, "journal", "journal_replay") == [
        "journal/001_events.sql",
        "journal/002_payload_without_statistics.sql",
    ]
    assert await table_exists(db, "journal_replay.events")
    # Every step applies to the shadow's own table: analyzing it skips the payloads too.
    assert (
        await db.fetchval(
            "SELECT attstattarget FROM pg_attribute "
            "WHERE attrelid = 'journal_replay.events'::regclass AND attname = 'payload'"
        )
        == 0
    )
    assert await db.fetchval("SELECT count(*) FROM journal_replay.projection_offsets") == 0
    assert await db.fetchval("SELECT count(*) FROM journal.projection_offsets") == 1
    assert await migrate(db, "journal", "journal_replay") == []


async def test_an_edited_migration_is_refused(db: asyncpg.Connection, tmp_path: Path) -> None:
    folder = write_group(tmp_path, "demo", {"001_things.sql": "CREATE TABLE things (n int);"})
    assert await migrate(db, "demo", directory=tmp_path) == ["demo/001_things.sql"]

    (folder / "001_things.sql").write_text("CREATE TABLE things (n bigint);")
    write_group(tmp_path, "demo", {"002_more.sql": "CREATE TABLE more (n int);"})
    with pytest.raises(MigrationError, match=r"001_things\.sql was changed"):
        await migrate(db, "demo", directory=tmp_path)
    assert not await table_exists(db, "demo.more")


async def test_a_failing_migration_leaves_the_earlier_ones_applied(
    db: asyncpg.Connection, tmp_path: Path
) -> None:
    write_group(
        tmp_path,
        "demo",
        {
            "001_good.sql": "CREATE TABLE good (n int);",
            "002_bad.sql": "CREATE TABLE half (n int); SELECT no_such_function();",
        },
    )
    with pytest.raises(asyncpg.UndefinedFunctionError):
        await migrate(db, "demo", directory=tmp_path)
    assert await table_exists(db, "demo.good")
    assert not await table_exists(db, "demo.half")
    names = await db.fetch("SELECT migration FROM platform.schema_migrations")
    assert [row["migration"] for row in names] == ["demo/001_good.sql"]


async def test_concurrent_migrators_apply_each_file_once(db_dsn: str, tmp_path: Path) -> None:
    write_group(
        tmp_path,
        "demo",
        {f"{n:03}_step.sql": f"CREATE TABLE step_{n} (n int);" for n in range(1, 6)},
    )
    one, other = await asyncpg.connect(db_dsn), await asyncpg.connect(db_dsn)
    try:
        results = await asyncio.gather(
            migrate(one, "demo", directory=tmp_path), migrate(other, "demo", directory=tmp_path)
        )
    finally:
        await one.close()
        await other.close()
    applied = sorted(results[0] + results[1])
    assert applied == [f"demo/{n:03}_step.sql" for n in range(1, 6)]


async def test_malformed_names_are_refused(db: asyncpg.Connection, tmp_path: Path) -> None:
    write_group(tmp_path, "demo", {"1_short.sql": "SELECT 1;"})
    with pytest.raises(MigrationError, match=r"NNN_lowercase_name\.sql"):
        await migrate(db, "demo", directory=tmp_path)
    write_group(tmp_path, "ok", {"001_a.sql": "SELECT 1;"})
    with pytest.raises(MigrationError, match="not a lowercase SQL identifier"):
        await migrate(db, "ok", "Bad-Schema", directory=tmp_path)


@pytest.mark.parametrize("group", sorted(PROJECTION_MODULES))
async def test_each_projection_tracks_its_offsets_from_its_first_migration(
    db: asyncpg.Connection, tmp_path: Path, group: str
) -> None:
    first = migration_files(group)[0]
    shutil.copy(first.path, write_group(tmp_path, group, {}) / first.path.name)
    await migrate(db, group, "first_only", directory=tmp_path)
    columns = await db.fetch(
        "SELECT column_name FROM information_schema.columns"
        " WHERE table_schema = 'first_only' AND table_name = 'projection_offsets'"
    )
    assert {row["column_name"] for row in columns} >= {
        "cluster",
        "topic",
        "partition",
        "last_offset",
        "updated_at",
    }
    assert MIGRATIONS_DIR in first.path.parents
