"""Certificates (issue 4): a CRL of a million entries imported, the projection built from it, and
validity checks per second against the in-memory cache.

The import runs as `bcl crl import`, in its own process, so its peak memory is its own.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import subprocess
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psutil  # type: ignore[import-untyped]

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from consumers.certificates.cache import CertificateCache
from pipeline.catchup import refresh
from pipeline.projection import load_projection
from pipeline.settings import Settings, load_settings
from producers.jpki_ca import CertificateAuthority, RevokedEntry
from schemas.codes import certificate_serial
from schemas.events.certificates import RevocationReason
from tests.bench.replica import bcl
from tests.helpers import settings_env

# The JPKI center's revocation reasons, roughly as a year of them would mix.
REASONS = (
    (RevocationReason.BASIC_INFO_CHANGED, 55),
    (RevocationReason.REMOVAL, 20),
    (RevocationReason.DEATH, 10),
    (RevocationReason.HOLDER_REQUEST, 8),
    (RevocationReason.KEY_COMPROMISE, 5),
    (RevocationReason.EX_OFFICIO, 2),
)
CHECKS = 1_000_000


def revocations(count: int, seed: int = 4) -> list[RevokedEntry]:
    rng = random.Random(seed)
    reasons = [r for r, _ in REASONS]
    weights = [w for _, w in REASONS]
    start = datetime(2026, 1, 1, tzinfo=UTC)
    return [
        RevokedEntry(
            serial=rng.getrandbits(63) | 1 << 62,
            revoked_at=start + timedelta(seconds=rng.randrange(300 * 86400)),
            reason=rng.choices(reasons, weights)[0] if rng.random() > 0.01 else None,
        )
        for _ in range(count)
    ]


async def bench_certificates(settings: Settings, entries: int) -> Sequence[tuple[str, float, str]]:
    figures: list[tuple[str, float, str]] = []
    authority = CertificateAuthority.load_or_create(settings.jpki_home)
    listed = revocations(entries)
    started = time.perf_counter()
    now = datetime.now(UTC)
    der = authority.crl(listed, this_update=now, next_update=now + timedelta(days=1), crl_number=1)
    figures.append(
        (
            "CRL signed by the test CA (entries/s)",
            entries / (time.perf_counter() - started),
            "entries/s",
        )
    )
    path = settings.home / "bench.crl"
    path.write_bytes(der)
    figures.append((f"CRL size ({entries:,} entries)", len(der) / (1 << 20), "MiB"))

    seconds, peak, _ = bcl(settings, "crl", "import", str(path))
    figures.append(("`bcl crl import` (verify, diff, publish)", entries / seconds, "entries/s"))
    figures.append(("`bcl crl import` peak memory", peak, "MiB"))

    report = await refresh(settings, load_projection("certificates", settings))
    figures.append(("certificates projection (catch-up)", report.events_per_second, "events/s"))

    probe = subprocess.run(
        [sys.executable, __file__, str(CHECKS)],
        env=settings_env(settings),
        capture_output=True,
        text=True,
        check=True,
    )
    cache = json.loads(probe.stdout)
    figures.append(("validity cache load", cache["loaded_per_second"], "certificates/s"))
    figures.append(("validity cache memory (process RSS growth)", cache["mib"], "MiB"))
    figures.append(("validity checks against the cache", cache["checks_per_second"], "checks/s"))
    return figures


async def probe_cache(checks: int) -> dict[str, float]:
    """Load the cache in this (fresh) process and check serials against it, half of them listed."""
    process = psutil.Process(os.getpid())
    before = process.memory_info().rss
    started = time.perf_counter()
    cache = CertificateCache(load_settings())
    await cache.load()
    loaded = time.perf_counter() - started
    grown = process.memory_info().rss - before
    rng = random.Random(5)
    listed = rng.sample(sorted(cache.states), min(len(cache.states), 50_000))
    unknown = [certificate_serial(rng.getrandbits(63) | 1 << 62) for _ in range(50_000)]
    probes = [rng.choice(listed if rng.random() < 0.5 else unknown) for _ in range(checks)]
    at = datetime.now(UTC)
    check = cache.check
    started = time.perf_counter()
    for serial in probes:
        check(serial, at)
    return {
        "loaded_per_second": len(cache.states) / loaded,
        "mib": grown / (1 << 20),
        "checks_per_second": checks / (time.perf_counter() - started),
    }


if __name__ == "__main__":
    print(json.dumps(asyncio.run(probe_cache(int(sys.argv[1])))))
