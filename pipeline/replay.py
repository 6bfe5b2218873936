"""``bcl replay``: rebuild a projection from the log into a shadow schema and swap it in.

Queries keep reading the live schema for the whole rebuild; the swap is two schema renames in
one short transaction.

From the beginning, the shadow starts empty. From a time, it starts as a copy of the live tables
whose tracking is moved back to the first record at or after that time, so the events since are
read again onto what the live tables hold. Every projection's ``apply`` is idempotent (an event
applied twice changes nothing), so the events the live tables already hold change nothing and
those they missed are added. It cannot take out what an event no longer in the log put there:
after a center's log is lost, replay from the beginning.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime

from pipeline.catchup import CatchUpReport, Progress, catch_up, catch_up_in_bulk, runners
from pipeline.database import Connection, quote_ident
from pipeline.kafka import offsets_at, reader
from pipeline.migrations import migrate
from pipeline.projection import BulkReplay, Projection, bulk_replay_of
from pipeline.runner import ProjectionRunner
from pipeline.settings import Settings
from pipeline.status import log_ends

# What each index build may sort in memory: the journal's indexes over a million events fit.
INDEX_BUILD_MEMORY = "256MB"


@dataclass
class ReplayReport:
    projection: str
    rebuild: CatchUpReport
    after_swap: CatchUpReport

    @property
    def events(self) -> int:
        return self.rebuild.events + self.after_swap.events


async def replay(
    settings: Settings,
    projection: Projection,
    *,
    since: datetime | None = None,
    progress: Progress | None = None,
) -> ReplayReport:
    """Rebuild ``projection`` from the beginning of the log, or read it again ``since`` a time.

    1. Create the shadow schema ``<name>__rebuild`` from the projection's migrations; from a
       time, copy the live tables into it and move its tracking back to ``since``. From the
       beginning, where the projection allows it (``BulkReplay``), its secondary indexes are
       dropped from the shadow: Postgres takes rows in about twice as fast without them, and
       builds an index faster from the whole table than row by row.
    2. Read every partition from its tracked offset (from the beginning: 0) to its high
       watermark into the shadow; where the projection allows it and much is to be read, half
       the partitions in a second process (``catch_up_in_bulk``).
    3. Build the dropped indexes again, then read once more up to the newer watermark, to
       shrink what the swap must wait for.
    4. Swap: lock the live tracking table (waiting out a live batch in flight), rename the live
       schema away and the shadow into its place, carry the migration records, commit.
    5. Drop the retired schema.
    6. Catch the new live schema up to the log: a live worker may have applied events to the
       retired schema between steps 3 and 4; its own gap filling would also repair this.
    """
    shadow = f"{projection.name}__rebuild"
    async with runners(settings) as runner:
        building = runner(projection, schema=shadow)
        # 1.
        async with building.pool.acquire() as connection:
            await connection.execute(f"DROP SCHEMA IF EXISTS {quote_ident(shadow)} CASCADE")
            await connection.execute(
                "DELETE FROM platform.schema_migrations WHERE target_schema = $1", shadow
            )
            await migrate(connection, projection.name, shadow)
            if since is not None:
                await copy_tables(connection, projection.name, shadow)
            bulk = bulk_replay_of(projection) if since is None else BulkReplay()
            deferred = (
                await drop_secondary_indexes(connection, shadow) if bulk.indexes_after_load else []
            )
        if since is not None:
            await rewind(building, settings, since)
        # 2.
        rebuild = await catch_up_in_bulk(building, settings, progress=progress)
        # 3.
        if deferred:
            started = time.perf_counter()
            async with building.pool.acquire() as connection:
                await connection.execute(f"SET maintenance_work_mem TO '{INDEX_BUILD_MEMORY}'")
                for definition in deferred:
                    await connection.execute(definition)
            rebuild.seconds += time.perf_counter() - started
        tail = await catch_up(building, settings)
        rebuild.events += tail.events
        rebuild.applied += tail.applied
        rebuild.seconds += tail.seconds
        # 4. and 5.
        async with building.pool.acquire() as connection:
            await swap_schemas(connection, projection.name, shadow)
        # 6.
        after_swap = await catch_up(runner(projection), settings)
    return ReplayReport(projection.name, rebuild, after_swap)


async def drop_secondary_indexes(connection: Connection, schema: str) -> list[str]:
    """Drop the indexes of ``schema`` that no key or constraint stands on; returns the
    statements that create them again. Keys stay: a projection's ``apply`` relies on them to
    keep an event applied twice from landing twice."""
    rows = await connection.fetch(
        "SELECT i.indexrelid::regclass::text AS name, pg_get_indexdef(i.indexrelid) AS definition "
        "FROM pg_index i JOIN pg_class t ON t.oid = i.indrelid "
        "WHERE t.relnamespace = $1::regnamespace AND NOT i.indisunique AND NOT i.indisprimary "
        "AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid) "
        "ORDER BY 1",
        quote_ident(schema),
    )
    for row in rows:
        await connection.execute(f"DROP INDEX {row['name']}")
    return [row["definition"] for row in rows]


async def copy_tables(connection: Connection, live: str, shadow: str) -> None:
    """Copy every table of ``live`` into the same table of ``shadow`` as one snapshot, with the
    sequences where they stood. Nothing to copy when the live schema does not exist yet."""
    async with connection.transaction(isolation="repeatable_read"):
        if not await connection.fetchval(
            "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)", live
        ):
            return
        for table in await _relations_in_both(connection, "r", live, shadow):
            columns = await connection.fetchval(
                "SELECT string_agg(quote_ident(attname), ', ' ORDER BY attnum) FROM pg_attribute "
                "WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped",
                f"{quote_ident(shadow)}.{table}",
            )
            await connection.execute(
                f"INSERT INTO {quote_ident(shadow)}.{table} ({columns}) "
                f"SELECT {columns} FROM {quote_ident(live)}.{table}"
            )
        for sequence in await _relations_in_both(connection, "S", live, shadow):
            await connection.execute(
                "SELECT setval($1::regclass, last_value, is_called) "
                f"FROM {quote_ident(live)}.{sequence}",
                f"{quote_ident(shadow)}.{sequence}",
            )


async def _relations_in_both(
    connection: Connection, kind: str, live: str, shadow: str
) -> list[str]:
    """The quoted names of the relations of ``kind`` ('r' tables, 'S' sequences) that both
    schemas hold."""
    rows = await connection.fetch(
        "SELECT quote_ident(s.relname) AS name FROM pg_class s "
        "JOIN pg_class l USING (relname, relkind) "
        "WHERE s.relnamespace = $1::regnamespace AND l.relnamespace = $2::regnamespace "
        "AND s.relkind::text = $3 ORDER BY s.relname",
        quote_ident(shadow),
        quote_ident(live),
        kind,
    )
    return [row["name"] for row in rows]


async def rewind(runner: ProjectionRunner, settings: Settings, since: datetime) -> None:
    """Move the runner's tracking back to the first record of each partition at or after
    ``since``; a partition tracked to an earlier offset stays where it is."""
    ends = await log_ends(settings, runner.projection)
    async with reader(settings) as client:
        starts = await offsets_at(client, ends, since)
    await runner.track_at_most({tp: start - 1 for tp, start in starts.items()})


async def swap_schemas(connection: Connection, live: str, shadow: str) -> None:
    retired = f"{live}__retired"
    async with connection.transaction():
        exists = await connection.fetchval(
            "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)", live
        )
        if exists:
            await connection.execute(
                f"LOCK TABLE {quote_ident(live)}.projection_offsets IN ACCESS EXCLUSIVE MODE"
            )
            await connection.execute(f"DROP SCHEMA IF EXISTS {quote_ident(retired)} CASCADE")
            await connection.execute(
                f"ALTER SCHEMA {quote_ident(live)} RENAME TO {quote_ident(retired)}"
            )
        await connection.execute(
            f"ALTER SCHEMA {quote_ident(shadow)} RENAME TO {quote_ident(live)}"
        )
        await connection.execute(
            "DELETE FROM platform.schema_migrations WHERE target_schema = $1", live
        )
        await connection.execute(
            "UPDATE platform.schema_migrations SET target_schema = $1 WHERE target_schema = $2",
            live,
            shadow,
        )
    await connection.execute(f"DROP SCHEMA IF EXISTS {quote_ident(retired)} CASCADE")
