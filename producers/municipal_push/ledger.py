"""The intake ledger ``intake.batches``: which batch of a municipality comes next."""

from __future__ import annotations

import hashlib

from pipeline.database import Connection


def lock_key(municipality: str) -> int:
    return int.from_bytes(
        hashlib.sha256(f"bcl-push:{municipality}".encode()).digest()[:8], "big", signed=True
    )


async def ledger_exists(connection: Connection) -> bool:
    return bool(await connection.fetchval("SELECT to_regclass('intake.batches') IS NOT NULL"))


async def next_expected(connection: Connection, municipality: str) -> int:
    latest = await connection.fetchval(
        "SELECT max(sequence) FROM intake.batches WHERE municipality = $1 AND status = 'accepted'",
        municipality,
    )
    return (latest or 0) + 1
