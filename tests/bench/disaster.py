"""Disaster victim support (issue 7): a declaration for a municipality of 300,000 residents seeds
its victim ledger from the replica; then evacuees tap in at shelters; then `bcl replay disaster`.

The register is pushed and projected by a live worker (replica, certificates, disaster), as in
production; the declaration and the taps go through the same worker.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta

from pipeline.database import connect
from pipeline.digest import projection_digest
from pipeline.projection import load_projection
from pipeline.replay import replay
from pipeline.settings import Settings
from producers.disaster import DisasterDesk
from producers.jpki import issue_cards, residents_to_issue
from schemas.codes import municipality_check_digit
from schemas.events.certificates import CertificateKind
from schemas.events.disaster import (
    DisasterDeclared,
    DisasterKind,
    Point,
    ShelterOpened,
    ShelterTapped,
)
from tests.bench.replica import bcl, wait_for
from tests.helpers import jpki_ca, start_worker, wait_for_log_line

RESIDENTS = int(os.environ.get("BCL_BENCH_DISASTER_RESIDENTS", "300000"))
TAPS = int(os.environ.get("BCL_BENCH_DISASTER_TAPS", "3000"))
SAKAI = "27140" + str(municipality_check_digit("27140"))  # 堺市堺区: not used by other sections
DISASTER = f"{SAKAI}-2026-earthquake-1"
SHELTERS = 10


async def bench_disaster(settings: Settings) -> Sequence[tuple[str, float, str]]:
    work = settings.home / "bench-files"
    register = work / "disaster-register.csv"
    bcl(settings, "municipality", "add", SAKAI, "--name", "堺市堺区", "--class", "city",
        "--population", str(RESIDENTS), "--joined", "2022-01-04")  # fmt: skip
    bcl(settings, "workload", "register", SAKAI, "--residents", str(RESIDENTS), "--out",
        str(register))  # fmt: skip
    log = settings.center_home / "bench-disaster-worker.log"
    worker = start_worker(settings, log, agents="registry,replica,certificates,disaster")
    figures: list[tuple[str, float, str]] = []
    disaster = load_projection("disaster", settings)
    try:
        await wait_for_log_line(log, "caught up from the log")
        bcl(settings, "push", SAKAI, str(register), "--full")
        await wait_for(settings, "SELECT count(*) FROM replica.residents", RESIDENTS)
        holders = (await residents_to_issue(settings, SAKAI))[:TAPS]
        issued = await issue_cards(
            settings, jpki_ca(settings), holders, issued_at=datetime.now(UTC) - timedelta(days=1)
        )
        serials = [c.serial for c in issued if c.kind is CertificateKind.USER_AUTHENTICATION]
        await wait_for(
            settings,
            f"SELECT count(*) FROM certificates.certificates WHERE municipality = '{SAKAI}'",
            len(issued),
        )

        # 1. The declaration: how long until the ledger holds every resident.
        async with DisasterDesk(settings) as desk:
            started = time.perf_counter()
            await desk.send(
                SAKAI,
                DisasterDeclared(
                    disaster_id=DISASTER, municipality=SAKAI, name="ベンチ地震",
                    kind=DisasterKind.EARTHQUAKE, occurred_on=date.today(),
                ),
            )  # fmt: skip
            seeded = await wait_for(
                settings, "SELECT coalesce(max(victims), 0) FROM disaster.disasters", 1
            )
        seconds = seeded - started
        async with connect(settings) as connection:
            victims = await connection.fetchval("SELECT count(*) FROM disaster.victims")
        figures.append(
            (f"ledger seeded ({victims:,} residents): declaration → ledger", seconds, "s")
        )
        figures.append(("  seeding rate", victims / seconds, "residents/s"))

        # 2. Check-ins: every card holder taps in at one of the shelters.
        async with DisasterDesk(settings) as desk:
            for number in range(SHELTERS):
                await desk.send(
                    SAKAI,
                    ShelterOpened(
                        disaster_id=DISASTER, shelter_id=f"S{number}", name=f"避難所{number}",
                        location=Point(lat=34.57, lon=135.48), capacity=1_000,
                    ),
                )  # fmt: skip
            started = time.perf_counter()
            for number, serial in enumerate(serials):
                await desk.send(
                    SAKAI,
                    ShelterTapped.model_validate(
                        {"disaster_id": DISASTER, "shelter_id": f"S{number % SHELTERS}",
                         "auth_serial": serial, "direction": "in"}
                    ),
                )  # fmt: skip
            decided = await wait_for(
                settings,
                "SELECT count(*) FROM disaster.taps WHERE outcome IS NOT NULL",
                len(serials),
            )
        figures.append(
            ("check-ins (tap → matched, live worker)", len(serials) / (decided - started), "taps/s")
        )
        async with connect(settings) as connection:
            live = await projection_digest(connection, disaster)
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(60)

    # 3. Replay: the ledger seeded again from the replica's history, the taps re-applied.
    report = await replay(settings, disaster)
    async with connect(settings) as connection:
        rebuilt = await projection_digest(connection, disaster)
    if rebuilt != live:
        differing = [
            f"{a.table} ({a.rows} rows live, {b.rows} replayed)"
            for a, b in zip(live.tables, rebuilt.tables, strict=True)
            if a != b
        ]
        raise AssertionError(f"disaster digest differs after replay: {', '.join(differing)}")
    figures.append(("replay disaster (ledger re-seeded, taps)", report.rebuild.seconds, "s"))
    return figures
