"""``bcl replay``: rebuild a projection from the log into a shadow schema and swap it in.

Queries keep reading the live schema for the whole rebuild; the swap is two schema renames in
one short transaction.
"""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.catchup import CatchUpReport, Progress, catch_up, runners
from pipeline.database import Connection, quote_ident
from pipeline.migrations import migrate
from pipeline.projection import Projection
from pipeline.settings import Settings


@dataclass
class ReplayReport:
    projection: str
    rebuild: CatchUpReport
    after_swap: CatchUpReport

    @property
    def events(self) -> int:
        return self.rebuild.events + self.after_swap.events


async def replay(
    settings: Settings, projection: Projection, *, progress: Progress | None = None
) -> ReplayReport:
    """Rebuild ``projection`` from the beginning of the log.

    1. Create the shadow schema ``<name>__rebuild`` from the projection's migrations.
    2. Read every partition from offset 0 to its high watermark into the shadow.
    3. Read once more up to the newer watermark, to shrink what the swap must wait for.
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
        # 2.
        rebuild = await catch_up(building, settings, progress=progress)
        # 3.
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
