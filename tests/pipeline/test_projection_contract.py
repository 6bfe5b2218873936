"""The contract every projection keeps, fed the shared workload generator's events: applying a
batch twice equals applying it once, and any interleaving of partitions (each partition in its
own order, as Kafka delivers it) gives the same digest. Replay equals live is
``test_replay_every_projection``.

The projections are driven here without the runner, whose tracking rows would hide a second
delivery from them: the contract is each projection's own, so that it holds whatever feeds it.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from datetime import date

from aiokafka import TopicPartition

from pipeline.database import connect, quote_ident
from pipeline.digest import projection_digest
from pipeline.kafka import partitions_of, reader
from pipeline.migrations import migrate
from pipeline.projection import PROJECTION_MODULES, ConsumedEvent, Projection, load_projection
from pipeline.proofs import EdgeKeys
from pipeline.runner import decode_records
from pipeline.settings import Settings
from producers.disaster import DisasterDesk, located
from schemas.events.disaster import DisasterDeclared, DisasterKind, DwellingLocated, Point
from tests.pipeline.test_replay_every_projection import publish_for_every_projection
from tests.producers.push_helpers import CHIYODA

CENTRE = Point(lat=35.694, lon=139.754)  # 千代田区


async def the_log(settings: Settings) -> dict[TopicPartition, list[ConsumedEvent]]:
    """Every event on the log, by partition in offset order: what the replay test publishes for
    every projection, and the disaster desk's acts."""
    await publish_for_every_projection(settings, sample=2000, recorded=600)
    async with DisasterDesk(settings) as desk:
        for n in range(5):
            address = f"東京都千代田区九段南1丁目{n}番"
            await desk.send(
                CHIYODA,
                DwellingLocated(
                    municipality=CHIYODA, address=address, location=located(address, CENTRE)
                ),
            )
        await desk.send(
            CHIYODA,
            DisasterDeclared(
                disaster_id="131016-2026-flood-1", municipality=CHIYODA, name="令和8年台風第10号",
                kind=DisasterKind.FLOOD, occurred_on=date(2026, 11, 20),
            ),
        )  # fmt: skip
    found: dict[TopicPartition, list[ConsumedEvent]] = {}
    keys = EdgeKeys.of(settings)
    async with reader(settings) as client:
        names = sorted({t for name in PROJECTION_MODULES for t in _topics(settings, name)})
        partitions = await partitions_of(client, names)
        client.assign(partitions)
        for tp in partitions:
            client.seek(tp, 0)
        while fetched := await client.getmany(timeout_ms=1500, max_records=10_000):
            for tp, records in fetched.items():
                decoded = decode_records(records, "contract", keys)
                found.setdefault(tp, []).extend(
                    event for event in decoded if isinstance(event, ConsumedEvent)
                )
    return found


def _topics(settings: Settings, name: str) -> list[str]:
    return settings.subscribed(*load_projection(name, settings).topics)


async def digest_after(
    settings: Settings, projection: Projection, batches: Sequence[Sequence[ConsumedEvent]]
) -> str:
    """The projection's digest once ``batches`` are applied, each in its own transaction, to
    tables of its own."""
    schema = f"{projection.name}__contract"
    async with connect(settings) as connection:
        await connection.execute(f"DROP SCHEMA IF EXISTS {quote_ident(schema)} CASCADE")
        await connection.execute(
            "DELETE FROM platform.schema_migrations WHERE target_schema = $1", schema
        )
        await migrate(connection, projection.name, schema)
        for batch in batches:
            async with connection.transaction():
                await connection.execute(f"SET LOCAL search_path TO {quote_ident(schema)}, public")
                await projection.apply(connection, batch)
        return (await projection_digest(connection, projection, schema)).sha256


def interleaved(
    by_partition: Sequence[Sequence[ConsumedEvent]], size: int
) -> list[list[ConsumedEvent]]:
    """Batches of ``size`` events taken from the partitions in turn, the last partition first,
    each partition's events in their own order."""
    chunks = [
        [list(events[i : i + size]) for i in range(0, len(events), size)]
        for events in reversed(by_partition)
    ]
    return [chunk for turn in itertools.zip_longest(*chunks) for chunk in turn if chunk]


async def test_every_projection_applies_a_batch_twice_as_once_and_partitions_in_any_order(
    platform: Settings,
) -> None:
    log = await the_log(platform)
    held: dict[str, int] = {}
    for name in PROJECTION_MODULES:
        projection = load_projection(name, platform)
        topics = set(_topics(platform, name))
        by_partition = [events for tp, events in sorted(log.items()) if tp.topic in topics]
        in_order = [event for events in by_partition for event in events]
        held[name] = len(in_order)

        once = await digest_after(platform, projection, [in_order])

        assert await digest_after(platform, projection, [in_order, in_order]) == once, name
        assert await digest_after(platform, projection, interleaved(by_partition, 7)) == once, name
    # Something for every projection to hold, or the contract says nothing.
    assert all(count > 0 for count in held.values()), sorted(held.items())
