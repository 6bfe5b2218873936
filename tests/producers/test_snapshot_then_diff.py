"""A full snapshot, then a diff, end in a replica equal (by digest) to one rebuilt by replay.

The same scenario as the million-resident benchmark, at a size the suite can run every time.
"""

from __future__ import annotations

from pathlib import Path

from pipeline.catchup import refresh
from pipeline.commands.workload import write_rows
from pipeline.database import connect
from pipeline.digest import projection_digest
from pipeline.projection import load_projection
from pipeline.replay import replay
from pipeline.settings import Settings
from producers.workload import resident_changes, resident_register
from tests.producers.push_helpers import YOKOHAMA, register, signed_push

RESIDENTS = 3_000
CHANGES = 300


async def test_snapshot_then_diff_equals_the_replayed_replica(
    platform: Settings, tmp_path: Path
) -> None:
    key = await register(platform, YOKOHAMA)
    snapshot = tmp_path / "register.csv"
    diff = tmp_path / "changes.jsonl"
    write_rows(resident_register(YOKOHAMA, RESIDENTS), snapshot, RESIDENTS)
    write_rows(resident_changes(resident_register(YOKOHAMA, RESIDENTS), CHANGES), diff, CHANGES)

    first = await signed_push(platform, key, snapshot, 1, municipality=YOKOHAMA, full=True)
    second = await signed_push(platform, key, diff, 2, municipality=YOKOHAMA)
    replica = load_projection("replica", platform)
    await refresh(platform, replica)

    assert first.outcome == "accepted", first.message
    assert first.events_published == RESIDENTS
    assert second.outcome == "accepted", second.message
    async with connect(platform) as connection:
        counts = await connection.fetchrow(
            "SELECT count(*) FILTER (WHERE active) AS active, count(*) AS residents, "
            "(SELECT count(*) FROM replica.changes) AS changes FROM replica.residents"
        )
        live = await projection_digest(connection, replica)
    removed = sum(
        1
        for row in resident_changes(resident_register(YOKOHAMA, RESIDENTS), CHANGES)
        if row["reason"] in ("move_out", "death")
    )
    assert counts["residents"] == RESIDENTS
    assert counts["active"] == RESIDENTS - removed
    assert counts["changes"] == RESIDENTS + CHANGES

    # The old register pushed again as a full snapshot: exactly the changed residents differ.
    reverted = await signed_push(platform, key, snapshot, 3, municipality=YOKOHAMA, full=True)
    assert reverted.outcome == "accepted", reverted.message
    assert reverted.events_published == CHANGES

    await replay(platform, replica)
    async with connect(platform) as connection:
        rebuilt = await projection_digest(connection, replica)
    await refresh(platform, replica)
    async with connect(platform) as connection:
        live_after = await projection_digest(connection, replica)
    assert rebuilt.sha256 == live_after.sha256
    assert live.rows < live_after.rows
