"""`bcl retention run`: the 5-year retention of removed residents, by crypto-shredding.

A removed resident's record stays in the replica, marked removed, for five years (DOMAIN §4).
When that ends, their data key is destroyed, which leaves every copy of the log (here, in the
other center, in any archive) holding ciphertext nobody can open, and a ``resident.purged``
event tells every projection to drop what it holds of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime

from pipeline.catchup import refresh
from pipeline.database import connect, create_pool
from pipeline.kafka import producer
from pipeline.projection import load_projection
from pipeline.proofs import prove
from pipeline.publish import Outgoing, publish_many
from pipeline.settings import Settings
from pipeline.topics import RESIDENT_CHANGES
from pipeline.vault import Vault, load_kek
from schemas.envelope import Envelope
from schemas.events.residents import ResidentPurged


@dataclass(frozen=True)
class Purged:
    municipality: str
    resident_code: str
    removed_on: date


async def run_retention(settings: Settings, as_of: date) -> list[Purged]:
    """Purge every resident whose retention ended before ``as_of``; safe to run again.

    1. Bring the replica up to date and list removed residents whose tombstone is due.
    2. Destroy their data keys. This comes first: should the run stop before step 3, the next
       run finds them again, whereas a purge published before a key was destroyed would leave
       the key alive with no record left to find it by.
    3. Publish one ``resident.purged`` event per resident, and apply it to the replica.
    """
    replica = load_projection("replica", settings)
    # 1.
    await refresh(settings, replica)
    async with connect(settings) as connection:
        # The replica rules set purge_after (the last day kept); due means after it.
        rows = await connection.fetch(
            "SELECT municipality, resident_code, removed_on FROM replica.residents "
            "WHERE NOT active AND purge_after < $1 ORDER BY municipality, resident_code",
            as_of,
        )
    due = [Purged(row["municipality"], row["resident_code"], row["removed_on"]) for row in rows]
    if not due:
        return []
    # 2.
    pool = await create_pool(settings, max_size=2)
    try:
        await Vault(pool, load_kek(settings)).destroy(
            None, [(p.municipality, p.resident_code) for p in due]
        )
    finally:
        await pool.close()
    # 3.
    now = datetime.now(UTC)
    async with producer(settings) as client:
        await publish_many(
            settings,
            client,
            (
                Outgoing(
                    RESIDENT_CHANGES.name,
                    f"{p.municipality}:{p.resident_code}",
                    prove(
                        settings,
                        "retention",
                        Envelope.new(
                            "resident.purged",
                            ResidentPurged(
                                municipality=p.municipality,
                                resident_code=p.resident_code,
                                removed_on=p.removed_on,
                                purged_on=as_of,
                            ),
                            origin=settings.center,
                            source="retention",
                            occurred_at=now,
                            municipality=p.municipality,
                        ),
                    ),
                )
                for p in due
            ),
        )
    await refresh(settings, replica)
    return due
