"""`bcl retention run`: purged residents become unreadable in the log; the others do not."""

from __future__ import annotations

from datetime import date

from aiokafka import TopicPartition

from pipeline.database import connect, create_pool
from pipeline.kafka import reader
from pipeline.settings import Settings
from pipeline.topics import RESIDENT_CHANGES
from pipeline.vault import Vault, load_kek, open_sealed
from producers.retention import run_retention
from schemas.codec import decode_event
from schemas.envelope import Envelope
from schemas.events.residents import ChangeReason, ResidentRecord
from schemas.sealed import carried_by
from tests.consumers.test_replica_projection import CHIYODA, resident_event, send

GONE = "11111111111"
KEPT = "22222222222"
RECENT = "33333333333"


async def log_records(settings: Settings) -> list[tuple[Envelope, ResidentRecord]]:
    async with reader(settings) as client:
        tps = [
            TopicPartition(settings.topic(RESIDENT_CHANGES.name), p)
            for p in range(settings.partitions)
        ]
        client.assign(tps)
        for tp in tps:
            client.seek(tp, 0)
        found = []
        while batch := await client.getmany(timeout_ms=1500):
            for records in batch.values():
                for record in records:
                    event = decode_event(record.value)  # type: ignore[arg-type]
                    if isinstance(event.payload, ResidentRecord):
                        found.append((event.envelope, event.payload))
        return found


async def test_retention_shreds_exactly_the_residents_removed_over_five_years_ago(
    platform: Settings,
) -> None:
    await send(
        platform,
        await resident_event(platform, 1, ChangeReason.MOVE_IN, date(2010, 4, 1), resident=GONE),
        await resident_event(platform, 2, ChangeReason.MOVE_OUT, date(2018, 6, 30), resident=GONE),
        await resident_event(platform, 3, ChangeReason.MOVE_IN, date(2012, 4, 1), resident=KEPT),
        await resident_event(platform, 4, ChangeReason.MOVE_IN, date(2015, 4, 1), resident=RECENT),
        # Removed on 1 July 2018: kept through 1 July 2023, the day of the run below.
        await resident_event(platform, 5, ChangeReason.DEATH, date(2018, 7, 1), resident=RECENT),
    )

    purged = await run_retention(platform, as_of=date(2023, 7, 1))
    again = await run_retention(platform, as_of=date(2023, 7, 1))

    assert [p.resident_code for p in purged] == [GONE]
    assert again == []
    pool = await create_pool(platform, max_size=1)
    try:
        vault = Vault(pool, load_kek(platform))
        readable = {}
        for envelope, record in await log_records(platform):
            key = (
                await vault.data_keys_for(None, [(CHIYODA, record.resident_code)], create=False)
            )[(CHIYODA, record.resident_code)]
            aad = carried_by(envelope, CHIYODA, record.resident_code)
            readable[record.resident_code] = key is not None and bool(
                open_sealed(key, record.personal, aad)
            )
    finally:
        await pool.close()
    assert readable == {GONE: False, KEPT: True, RECENT: True}
    async with connect(platform) as connection:
        left = {
            r["resident_code"] for r in await connection.fetch("SELECT * FROM replica.residents")
        }
        recorded = await connection.fetchval("SELECT count(*) FROM replica.purged")
    assert left == {KEPT, RECENT}
    assert recorded == 1
