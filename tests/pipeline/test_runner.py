"""The projection runner against the real broker and Postgres: skip, gap fill, dead letters."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

import asyncpg
import pytest
from aiokafka import TopicPartition

from consumers.journal.projection import JournalProjection
from pipeline.catchup import LogGapReader, catch_up
from pipeline.database import create_pool
from pipeline.deadletters import DeadLetterSink
from pipeline.kafka import producer, reader
from pipeline.projection import ConsumedEvent
from pipeline.proofs import EdgeKeys
from pipeline.publish import Outgoing, proven_by_their_edges, publish_many
from pipeline.runner import ProjectionRunner
from pipeline.settings import Settings
from pipeline.topics import DEAD_LETTERS, ISSUANCE_REQUESTS
from producers.workload import platform_sample
from schemas.codec import encode_event
from schemas.envelope import Envelope
from schemas.ids import new_event_id
from schemas.rights import edge_of


async def read_all(settings: Settings, topic: str) -> list[object]:
    async with reader(settings) as client:
        tps = [TopicPartition(topic, p) for p in range(settings.partitions)]
        client.assign(tps)
        for tp in tps:
            client.seek(tp, 0)
        found: list[object] = []
        while True:
            batch = await client.getmany(timeout_ms=1500)
            if not batch:
                return found
            for records in batch.values():
                found.extend(records)


def proven_sample(settings: Settings, count: int) -> list[Outgoing]:
    """``platform_sample(count)``, each event proven by its edge."""
    return list(proven_by_their_edges(settings, platform_sample(count)))


async def journal_count(pool: asyncpg.Pool) -> int:
    count: int = await pool.fetchval("SELECT count(*) FROM journal.events")
    return count


@pytest.fixture
async def pool(platform: Settings) -> asyncpg.Pool:
    created = await create_pool(platform)
    yield created
    await created.close()


class JournalThen:
    """The journal projection, then ``then`` in the batch's transaction."""

    def __init__(self, then: Callable[[asyncpg.Connection], Awaitable[None]]) -> None:
        self.journal = JournalProjection()
        self.name = self.journal.name
        self.topics = self.journal.topics
        self.digest_order = self.journal.digest_order
        self.then = then

    async def apply(self, connection: asyncpg.Connection, events: Sequence[ConsumedEvent]) -> None:
        await self.journal.apply(connection, events)
        await self.then(connection)


def runner_for(
    settings: Settings, pool: asyncpg.Pool, projection: object | None = None
) -> ProjectionRunner:
    return ProjectionRunner(
        projection or JournalProjection(),  # type: ignore[arg-type]
        pool,
        cluster=settings.center,
        dead_letters=DeadLetterSink(None),
        keys=EdgeKeys.of(settings),
        gap_reader=LogGapReader(settings),
    )


async def test_redelivered_records_are_skipped(platform: Settings, pool: asyncpg.Pool) -> None:
    async with producer(platform) as client:
        await publish_many(platform, client, proven_sample(platform, 300))
    records = await read_all(platform, platform.topic(ISSUANCE_REQUESTS.name))
    runner = runner_for(platform, pool)

    first = await runner.apply_records(records)  # type: ignore[arg-type]
    again = await runner.apply_records(records)  # type: ignore[arg-type]

    assert first.applied == len(records)
    assert again.applied == 0
    assert again.skipped == len(records)
    assert await journal_count(pool) == len(records)


async def test_a_gap_is_filled_from_the_log(platform: Settings, pool: asyncpg.Pool) -> None:
    async with producer(platform) as client:
        await publish_many(platform, client, proven_sample(platform, 300))
    records = await read_all(platform, platform.topic(ISSUANCE_REQUESTS.name))
    by_partition: dict[int, list[object]] = {}
    for record in records:
        by_partition.setdefault(record.partition, []).append(record)  # type: ignore[attr-defined]
    # The runner is handed only the second half of each partition, as after a faust commit that
    # ran ahead of Postgres: it must read the first half itself.
    tail = [r for rs in by_partition.values() for r in rs[len(rs) // 2 :]]
    runner = runner_for(platform, pool)

    result = await runner.apply_records(tail)  # type: ignore[arg-type]

    assert result.gap_filled == len(records) - len(tail)
    assert await journal_count(pool) == len(records)


async def test_a_failing_batch_leaves_nothing_behind(
    platform: Settings, pool: asyncpg.Pool
) -> None:
    async def explode(connection: asyncpg.Connection) -> None:
        raise RuntimeError("disk on fire")

    exploding = JournalThen(explode)
    async with producer(platform) as client:
        await publish_many(platform, client, proven_sample(platform, 50))
    records = await read_all(platform, platform.topic(ISSUANCE_REQUESTS.name))

    with pytest.raises(RuntimeError, match="disk on fire"):
        await runner_for(platform, pool, exploding).apply_records(records)  # type: ignore[arg-type]

    assert await journal_count(pool) == 0
    tracked = await runner_for(platform, pool).tracked_offsets()
    assert all(offset == -1 for offset in tracked.values())
    result = await runner_for(platform, pool).apply_records(records)  # type: ignore[arg-type]
    assert result.applied == len(records)


async def test_a_batch_goes_again_when_a_kept_statement_meets_tables_of_another_shape(
    platform: Settings, pool: asyncpg.Pool
) -> None:
    """A replay may swap in tables whose rows have another shape under a running worker: the
    pool's kept statement then fails the batch's transaction, and the batch goes again."""
    shapes: list[int] = []

    async def read_a_row(connection: asyncpg.Connection) -> None:
        shapes.append(len(await connection.fetchrow("SELECT * FROM events LIMIT 1")))

    async with producer(platform) as client:
        await publish_many(platform, client, proven_sample(platform, 40))
    records = await read_all(platform, platform.topic(ISSUANCE_REQUESTS.name))
    runner = runner_for(platform, pool, JournalThen(read_a_row))
    half = len(records) // 2
    await runner.apply_records(records[:half])  # type: ignore[arg-type]
    await runner.apply_records(records[half : half + 1])  # type: ignore[arg-type]
    async with pool.acquire() as connection:
        await connection.execute("ALTER TABLE journal.events ADD COLUMN noted text")

    result = await runner.apply_records(records[half + 1 :])  # type: ignore[arg-type]

    assert result.applied == len(records) - half - 1
    assert await journal_count(pool) == len(records)
    assert shapes[-1] == shapes[-2] + 1


class DecidingJournal(JournalThen):
    """The journal as a processor that decides nothing: its batches are a processor's."""

    async def decide(
        self, connection: asyncpg.Connection, events: Sequence[ConsumedEvent]
    ) -> Sequence[object]:
        return []


async def test_only_a_batch_that_decides_nothing_commits_without_waiting_for_its_flush(
    platform: Settings, pool: asyncpg.Pool
) -> None:
    """A projection's batch can be read again from the log if a crash loses it; a processor's
    decisions exist once, so its batch waits for the WAL flush like the vault's writes."""
    settings: list[str] = []

    async def note_commit_setting(connection: asyncpg.Connection) -> None:
        settings.append(await connection.fetchval("SELECT current_setting('synchronous_commit')"))

    async with producer(platform) as client:
        await publish_many(platform, client, proven_sample(platform, 20))
    records = await read_all(platform, platform.topic(ISSUANCE_REQUESTS.name))
    await runner_for(platform, pool, JournalThen(note_commit_setting)).apply_records(
        records[:10]  # type: ignore[arg-type]
    )
    deciding = runner_for(platform, pool, DecidingJournal(note_commit_setting))

    async def publish_nothing(messages: object) -> None:
        return None

    deciding.publisher = publish_nothing  # type: ignore[assignment]
    assert deciding.deciding
    await deciding.apply_records(records[10:])  # type: ignore[arg-type]

    assert settings == ["off", "on"]
    async with pool.acquire() as connection:
        assert await connection.fetchval("SHOW synchronous_commit") == "on", "server-wide"


class WaitingJournal(DecidingJournal):
    """A processor that reads other projections: ``waiting`` runs where it waits for them."""

    def __init__(self, waiting: Callable[[], Awaitable[None]]) -> None:
        super().__init__(_nothing)
        self.waiting = waiting

    async def wait_for_sources(self, events: Sequence[ConsumedEvent]) -> None:
        await self.waiting()


async def _nothing(connection: asyncpg.Connection) -> None:
    return None


async def test_a_processor_waits_for_its_sources_with_no_tracking_row_locked(
    platform: Settings, pool: asyncpg.Pool
) -> None:
    """The disaster desk waits up to two minutes for the replica before seeding a ledger: a
    feeder of the same projection (a refresh from the command line) must not wait behind it."""
    async with producer(platform) as client:
        await publish_many(platform, client, proven_sample(platform, 20))
    records = await read_all(platform, platform.topic(ISSUANCE_REQUESTS.name))
    await runner_for(platform, pool).apply_records(records[:10])  # type: ignore[arg-type]
    locked_while_waiting: list[int] = []

    async def try_the_tracking_rows() -> None:
        async with pool.acquire() as connection, connection.transaction():
            rows = await connection.fetch(
                "SELECT partition FROM journal.projection_offsets FOR UPDATE SKIP LOCKED"
            )
            total = await connection.fetchval("SELECT count(*) FROM journal.projection_offsets")
            locked_while_waiting.append(total - len(rows))

    waiting = runner_for(platform, pool, WaitingJournal(try_the_tracking_rows))

    async def publish_nothing(messages: object) -> None:
        return None

    waiting.publisher = publish_nothing  # type: ignore[assignment]
    result = await waiting.apply_records(records[10:])  # type: ignore[arg-type]

    assert result.applied == len(records) - 10
    assert locked_while_waiting == [0]


async def test_bad_messages_become_dead_letters_and_the_rest_applies(
    platform: Settings, pool: asyncpg.Pool
) -> None:
    topic = platform.topic(ISSUANCE_REQUESTS.name)
    sample = proven_sample(platform, 40)
    bad = [
        (b"not json at all \xff", "not_json"),
        (b'{"event_id": "nope"}', "invalid_envelope"),
        (_with_type(sample[10].envelope, "issuance.teleported"), "unknown_type"),
        (_with_payload(sample[10].envelope, {"request_id": "x"}), "invalid_payload"),
    ]
    async with producer(platform) as client:
        await publish_many(platform, client, sample[:20])
        for value, _ in bad:
            await client.send_and_wait(topic, key=b"bad", value=value)
        await publish_many(platform, client, sample[20:])

    runner = runner_for(platform, pool)
    async with producer(platform) as client:
        runner.dead_letters = DeadLetterSink(client, platform.topic(DEAD_LETTERS.name))
        report = await catch_up(runner, platform)

    assert report.dead_lettered == len(bad)
    letters = await pool.fetch(
        "SELECT reason, detail, value FROM platform.dead_letters ORDER BY reason"
    )
    assert sorted(r["reason"] for r in letters) == sorted(reason for _, reason in bad)
    assert all(r["detail"] for r in letters)
    assert {bytes(r["value"]) for r in letters} == {value for value, _ in bad}
    published = await read_all(platform, platform.topic(DEAD_LETTERS.name))
    assert len(published) == len(bad)
    assert await journal_count(pool) == len(sample)


async def test_events_the_database_refuses_become_dead_letters_and_the_rest_applies(
    platform: Settings, pool: asyncpg.Pool
) -> None:
    """Valid envelopes Postgres will not store (a NUL byte in a text): the batch is split down
    to them, they are dead letters with the database's reason, and every other event applies."""
    topic = platform.topic(ISSUANCE_REQUESTS.name)
    proven = proven_sample(platform, 120)
    sample = [o for o in proven if o.envelope.type == "issuance.requested"][:60]
    poisoned = [_with_print_option(platform, sample[i].envelope, "a\u0000b") for i in (7, 31, 32)]
    async with producer(platform) as client:
        await publish_many(platform, client, sample)
        for value in poisoned:
            await client.send_and_wait(topic, key=b"poison", value=value)

    runner = runner_for(platform, pool)
    report = await catch_up(runner, platform)

    assert report.dead_lettered == len(poisoned)
    letters = await pool.fetch("SELECT reason, detail FROM platform.dead_letters")
    assert [r["reason"] for r in letters] == ["refused_by_database"] * len(poisoned)
    assert all(r["detail"].startswith("22P05: unsupported Unicode escape") for r in letters)
    assert await journal_count(pool) == len(sample)
    ends = await runner.tracked_offsets()
    assert sum(offset + 1 for offset in ends.values()) == len(sample) + len(poisoned)


def _with_print_option(settings: Settings, envelope: Envelope, value: str) -> bytes:
    """A copy of ``envelope`` under a new id with ``value`` as a print option, proven by its
    edge: an event that passes every check before the database's."""
    payload = {**envelope.payload, "print_options": {"note": value}}
    changed = envelope.model_copy(update={"event_id": new_event_id(), "payload": payload})
    return encode_event(EdgeKeys.of(settings).prove(edge_of(changed), changed))


def _with_type(envelope: object, new_type: str) -> bytes:
    import orjson

    data = orjson.loads(encode_event(envelope))  # type: ignore[arg-type]
    data["type"] = new_type
    return orjson.dumps(data)


def _with_payload(envelope: object, payload: dict[str, object]) -> bytes:
    import orjson

    data = orjson.loads(encode_event(envelope))  # type: ignore[arg-type]
    data["payload"] = payload
    return orjson.dumps(data)
