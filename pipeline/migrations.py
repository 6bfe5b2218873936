"""Numbered plain-SQL migrations, each applied once per target schema.

`migrations/platform/` holds the shared tables (schema `platform`); every other folder is the
tables of one schema: a projection's, or an edge's own state (the vault, the push intake). Files
use unqualified table names and run with the search path set to the target schema, so the same
files build the live schema or a fresh shadow schema for a replay. A projection's first
migration must create its `projection_offsets` table.

An applied file must never change: its checksum is recorded and a mismatch stops the migrator.
Change a schema by adding the next numbered file.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from pipeline.database import Connection
from pipeline.settings import PROJECT_ROOT

# The SQL files are infrastructure; this module only applies them.
MIGRATIONS_DIR = PROJECT_ROOT / "infra" / "migrations"
PLATFORM = "platform"

# One lock for every migrator of the database, whatever the schema: migrations are rare and short,
# and the bootstrap of the record table must be serialised too.
_LOCK_KEY = int.from_bytes(b"bcl-migr", "big", signed=True)
_IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]{0,62}")
_FILE_NAME = re.compile(r"(\d{3})_[a-z0-9_]+\.sql")

_BOOTSTRAP = f"""
CREATE SCHEMA IF NOT EXISTS {PLATFORM};
CREATE TABLE IF NOT EXISTS {PLATFORM}.schema_migrations (
    target_schema text NOT NULL,
    migration text NOT NULL,
    checksum text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (target_schema, migration)
);
"""


class MigrationError(RuntimeError):
    """A migration folder is malformed, or an applied migration was edited."""


@dataclass(frozen=True)
class Migration:
    group: str
    path: Path

    @property
    def name(self) -> str:
        """The name recorded and reported, e.g. ``journal/001_events.sql``."""
        return f"{self.group}/{self.path.name}"

    def read(self) -> tuple[str, str]:
        """The SQL text and its checksum."""
        data = self.path.read_bytes()
        return data.decode(), hashlib.sha256(data).hexdigest()


def migration_groups(directory: Path = MIGRATIONS_DIR) -> list[str]:
    """`platform` first (projections may refer to its tables), then the projections by name."""
    groups = sorted(
        folder.name
        for folder in directory.iterdir()
        if folder.is_dir() and any(folder.glob("*.sql"))
    )
    if PLATFORM in groups:
        groups.remove(PLATFORM)
        groups.insert(0, PLATFORM)
    return groups


def migration_files(group: str, directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    folder = directory / _identifier(group, "migration group")
    if not folder.is_dir():
        raise MigrationError(f"no migration group {group!r} in {directory}")
    numbered: dict[str, Migration] = {}
    for path in sorted(folder.glob("*.sql")):
        match = _FILE_NAME.fullmatch(path.name)
        if match is None:
            raise MigrationError(
                f"{path}: migration files are named NNN_lowercase_name.sql, e.g. 001_events.sql"
            )
        if (clash := numbered.get(match[1])) is not None:
            raise MigrationError(f"{path} and {clash.path} share the number {match[1]}")
        numbered[match[1]] = Migration(group, path)
    return [numbered[number] for number in sorted(numbered)]


async def migrate(
    conn: Connection,
    group: str,
    schema: str | None = None,
    *,
    directory: Path = MIGRATIONS_DIR,
) -> list[str]:
    """Apply `group`'s pending migrations into `schema` (default: the group's name) and return the
    names applied. Each file runs in its own transaction together with its record, so a failure
    leaves every earlier file applied and recorded and nothing of the failing one."""
    target = _identifier(schema or group, "schema")
    pending = migration_files(group, directory)
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _LOCK_KEY)
        await conn.execute(_BOOTSTRAP)
    applied: list[str] = []
    for migration in pending:
        sql, checksum = migration.read()
        async with conn.transaction():
            # Taken per file and re-checked under it: a concurrent migrator may have applied this
            # file while we waited.
            await conn.execute("SELECT pg_advisory_xact_lock($1)", _LOCK_KEY)
            recorded = await conn.fetchval(
                f"SELECT checksum FROM {PLATFORM}.schema_migrations"
                " WHERE target_schema = $1 AND migration = $2",
                target,
                migration.name,
            )
            if recorded is not None:
                if recorded != checksum:
                    raise MigrationError(
                        f"{migration.path} was changed after it was applied to schema {target!r} "
                        f"(checksum {recorded} then, {checksum} now); restore it and add the "
                        "change as a new numbered migration"
                    )
                continue
            await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {target}")
            await conn.execute(f"SET LOCAL search_path TO {target}")
            await conn.execute(sql)
            await conn.execute(
                f"INSERT INTO {PLATFORM}.schema_migrations (target_schema, migration, checksum)"
                " VALUES ($1, $2, $3)",
                target,
                migration.name,
                checksum,
            )
        applied.append(migration.name)
    return applied


async def migrate_all(
    conn: Connection, *, directory: Path = MIGRATIONS_DIR
) -> dict[str, list[str]]:
    """Apply every group into its own schema; returns the names applied per group."""
    return {
        group: await migrate(conn, group, directory=directory)
        for group in migration_groups(directory)
    }


def _identifier(name: str, what: str) -> str:
    # Schema names are spliced into SQL; only plain lowercase identifiers need no quoting.
    if _IDENTIFIER.fullmatch(name) is None:
        raise MigrationError(f"{what} {name!r} is not a lowercase SQL identifier")
    return name
