"""The replica projection against the real broker and Postgres: DOMAIN §4's rules end to end."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest

from consumers.replica.projection import make
from pipeline.catchup import refresh
from pipeline.database import connect, create_pool
from pipeline.digest import projection_digest
from pipeline.kafka import producer
from pipeline.publish import Outgoing, proven_by_their_edges, publish_many
from pipeline.replay import replay
from pipeline.settings import Settings
from pipeline.topics import RESIDENT_CHANGES
from pipeline.vault import DataKey, Vault, load_kek, seal
from schemas.envelope import Envelope
from schemas.events.residents import (
    ChangeReason,
    PersonalData,
    PushPosition,
    ResidentPurged,
    ResidentRecord,
    change_event_type,
)
from schemas.ids import new_event_id
from schemas.sealed import sealed_context

CHIYODA = "131016"
ALICE = "12345678901"


async def resident_event(
    settings: Settings,
    sequence: int,
    reason: ChangeReason,
    effective: date | None,
    *,
    resident: str = ALICE,
    **change: Any,
) -> Outgoing:
    """``sealed_change`` (``change``: its address, death_date_unknown), sealed under the
    resident's data key in ``settings``' vault."""
    pool = await create_pool(settings, max_size=1)
    try:
        vault = Vault(pool, load_kek(settings))
        key = (await vault.data_keys_for(None, [(CHIYODA, resident)], create=True))[
            (CHIYODA, resident)
        ]
    finally:
        await pool.close()
    assert key is not None
    return sealed_change(key, sequence, reason, effective, resident=resident, **change)


def sealed_change(
    key: DataKey,
    sequence: int,
    reason: ChangeReason,
    effective: date | None,
    *,
    resident: str = ALICE,
    address: str = "東京都千代田区千代田1-1",
    death_date_unknown: bool = False,
) -> Outgoing:
    """A change of a Chiyoda resident, its personal data sealed under ``key`` for the event."""
    personal = PersonalData(
        name="千代田 花子", birth_date=date(1980, 4, 1), sex="female", address=address
    )
    # The sealed data is bound to the event that carries it (``schemas.sealed``).
    event_type, event_id = change_event_type(reason), new_event_id()
    record = ResidentRecord(
        municipality=CHIYODA,
        resident_code=resident,
        household_number="100000000000001",
        relationship="02",
        reason=reason,
        effective_date=effective,
        death_date_unknown=death_date_unknown,
        pushed=PushPosition(batch=1, line=sequence),
        personal=seal(
            key,
            personal.model_dump(mode="json"),
            sealed_context(CHIYODA, resident, event_type, event_id, sequence),
        ),
    )
    envelope = Envelope.new(
        event_type,
        record,
        origin="east",
        source=f"municipality:{CHIYODA}",
        occurred_at=datetime(2024, 3, 1, tzinfo=UTC),
        municipality=CHIYODA,
        sequence=sequence,
        event_id=event_id,
    )
    return Outgoing(RESIDENT_CHANGES.name, f"{CHIYODA}:{resident}", envelope)


async def send(settings: Settings, *messages: Outgoing) -> None:
    """Publish ``messages``, each proven by its edge, and project them."""
    async with producer(settings) as client:
        await publish_many(settings, client, proven_by_their_edges(settings, messages))
    await refresh(settings, make(settings))


async def current(settings: Settings, resident: str = ALICE) -> dict[str, Any]:
    async with connect(settings) as connection:
        row = await connection.fetchrow(
            "SELECT * FROM replica.residents WHERE municipality = $1 AND resident_code = $2",
            CHIYODA,
            resident,
        )
    assert row is not None
    return dict(row)


@pytest.fixture
async def replica(platform: Settings) -> Settings:
    return platform


async def test_the_actual_change_date_decides_not_the_order_of_recording(
    replica: Settings,
) -> None:
    await send(
        replica,
        await resident_event(replica, 1, ChangeReason.MOVE_IN, date(2024, 3, 1)),
        await resident_event(
            replica, 2, ChangeReason.MOVE_WITHIN, date(2024, 3, 20), address="二番町"
        ),
        # Recorded later, but it took effect before the move of the 20th.
        await resident_event(
            replica, 3, ChangeReason.MOVE_WITHIN, date(2024, 3, 10), address="一番町"
        ),
    )
    row = await current(replica)
    assert row["address"] == "二番町"
    assert row["effective_date"] == date(2024, 3, 20)
    async with connect(replica) as connection:
        assert await connection.fetchval("SELECT count(*) FROM replica.changes") == 3


async def test_on_the_same_date_the_later_recorded_change_wins(replica: Settings) -> None:
    await send(
        replica,
        await resident_event(replica, 1, ChangeReason.MOVE_IN, date(2024, 3, 1), address="一番町"),
        await resident_event(
            replica, 2, ChangeReason.MOVE_WITHIN, date(2024, 3, 1), address="三番町"
        ),
    )
    assert (await current(replica))["address"] == "三番町"


async def test_a_removal_is_a_tombstone_kept_five_years(replica: Settings) -> None:
    await send(
        replica,
        await resident_event(replica, 1, ChangeReason.MOVE_IN, date(2020, 1, 1)),
        await resident_event(replica, 2, ChangeReason.MOVE_OUT, date(2024, 2, 29)),
    )
    row = await current(replica)
    assert row["active"] is False
    assert row["removed_on"] == date(2024, 2, 29)
    assert row["purge_after"] == date(2029, 2, 28)


async def test_a_death_of_unknown_date_takes_effect_the_day_after_the_last_change(
    replica: Settings,
) -> None:
    await send(
        replica,
        await resident_event(replica, 1, ChangeReason.MOVE_IN, date(2023, 5, 1)),
        await resident_event(replica, 2, ChangeReason.MOVE_WITHIN, date(2023, 9, 30)),
    )
    await send(
        replica,
        await resident_event(replica, 3, ChangeReason.DEATH, None, death_date_unknown=True),
    )
    row = await current(replica)
    assert row["reason"] == "death"
    assert row["effective_date"] == date(2023, 10, 1)
    assert row["active"] is False


async def test_changes_applied_out_of_order_end_in_the_same_record(replica: Settings) -> None:
    later = await resident_event(
        replica, 2, ChangeReason.MOVE_WITHIN, date(2024, 4, 1), address="二"
    )
    earlier = await resident_event(replica, 1, ChangeReason.MOVE_IN, date(2024, 1, 1), address="一")
    await send(replica, later)
    await send(replica, earlier)
    row = await current(replica)
    assert row["address"] == "二"
    assert row["last_sequence"] == 2


async def test_purge_erases_the_resident_and_replay_agrees(replica: Settings) -> None:
    await send(
        replica,
        await resident_event(replica, 1, ChangeReason.MOVE_IN, date(2015, 1, 1)),
        await resident_event(replica, 2, ChangeReason.MOVE_OUT, date(2018, 6, 1)),
        await resident_event(
            replica, 3, ChangeReason.MOVE_IN, date(2020, 1, 1), resident="99999999999"
        ),
    )
    pool = await create_pool(replica, max_size=1)
    try:
        await Vault(pool, load_kek(replica)).destroy(None, [(CHIYODA, ALICE)])
    finally:
        await pool.close()
    purge = Envelope.new(
        "resident.purged",
        ResidentPurged(
            municipality=CHIYODA,
            resident_code=ALICE,
            removed_on=date(2018, 6, 1),
            purged_on=date(2023, 6, 2),
        ),
        origin="east",
        source="retention",
        occurred_at=datetime(2023, 6, 2, tzinfo=UTC),
        municipality=CHIYODA,
    )
    await send(replica, Outgoing(RESIDENT_CHANGES.name, f"{CHIYODA}:{ALICE}", purge))

    async with connect(replica) as connection:
        left = await connection.fetch("SELECT resident_code FROM replica.changes")
        live = await projection_digest(connection, make(replica))
    assert [r["resident_code"] for r in left] == ["99999999999"]

    await replay(replica, make(replica))
    async with connect(replica) as connection:
        rebuilt = await projection_digest(connection, make(replica))
    assert rebuilt.sha256 == live.sha256


async def test_the_replica_digest_survives_a_replay(replica: Settings) -> None:
    await send(
        replica,
        await resident_event(replica, 1, ChangeReason.MOVE_IN, date(2024, 3, 1)),
        await resident_event(replica, 2, ChangeReason.NAME_CHANGE, date(2024, 3, 2)),
    )
    async with connect(replica) as connection:
        live = await projection_digest(connection, make(replica))
    await replay(replica, make(replica))
    async with connect(replica) as connection:
        rebuilt = await projection_digest(connection, make(replica))
    assert live.rows == rebuilt.rows == 2 + 1
    assert rebuilt.sha256 == live.sha256
