"""Where the replay and the live journal spend their time: py-spy profiles for BENCHMARKS.md.

`.venv/bin/python tests/bench/profiles.py` starts its own services on the durable log, publishes
200,000 sample events, records `bcl replay journal` (both its processes), then the journal's worker
while 100,000 more are published to it. It prints each profile's share of samples by the parts
BENCHMARKS.md names. The raw stacks are kept in .bcl/bench/ for flame graphs.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from infra.services import down, up
from pipeline.database import connect
from pipeline.kafka import create_topics, producer
from pipeline.migrations import migrate_all
from pipeline.publish import proven_by_their_edges, publish_many
from pipeline.settings import PROJECT_ROOT, Settings
from producers.workload import platform_sample
from tests.bench.run import wait_for_rows
from tests.helpers import settings_env, start_worker, wait_for_log_line

PY_SPY = str(Path(sys.executable).with_name("py-spy"))
OUT = PROJECT_ROOT / ".bcl" / "bench"
# The parts of a profile, by a function each stack passes through (the first that matches).
PARTS = (
    ("building proven envelopes", "trusted_envelope"),
    ("checking proofs", "EdgeKeys.check"),
    ("journal rows", "_row ("),
    ("COPY", "copy_records_to_table"),
    ("fetching and unpacking records", "getmany"),
)


def shares(raw: Path) -> Counter[str]:
    """Each part's share of the samples of a raw py-spy profile."""
    parts: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        total += int(count)
        part = next((name for name, mark in PARTS if mark in stack), "the rest")
        parts[part] += int(count)
    return Counter({name: n / total for name, n in parts.items()})


async def profile(settings: Settings) -> tuple[Path, Path]:
    async with connect(settings) as connection:
        await migrate_all(connection)
    await create_topics(settings)
    proven = list(proven_by_their_edges(settings, platform_sample(300_000, seed=1)))
    async with producer(settings) as client:
        await publish_many(settings, client, proven[:200_000])
    replay, live = OUT / "profile-replay-journal.txt", OUT / "profile-live-journal.txt"
    subprocess.run(
        [PY_SPY, "record", "--subprocesses", "-r", "100", "-f", "raw", "-o", str(replay), "--",
         sys.executable, "-m", "pipeline.cli", "replay", "journal"],
        env=settings_env(settings), check=True,
    )  # fmt: skip
    log = settings.center_home / "profile-worker.log"
    worker = start_worker(settings, log, agents="journal")
    try:
        await wait_for_log_line(log, "ready;", timeout=600)
        spy = subprocess.Popen(
            [PY_SPY, "record", "-p", str(worker.pid), "-r", "100", "-f", "raw", "-o", str(live)]
        )
        async with producer(settings) as client:
            await publish_many(settings, client, proven[200_000:])
        await wait_for_rows(settings, len(proven))
        spy.send_signal(signal.SIGINT)
        spy.wait(60)
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(60)
    return replay, live


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    home = Path(tempfile.mkdtemp(prefix="bcl-profile-"))
    up(Settings(home=home))
    try:
        replay, live = asyncio.run(profile(Settings(home=home)))
    finally:
        down(Settings(home=home))
    print("| share of samples | replay journal (both processes) | live journal (worker) |")
    print("|---|---:|---:|")
    replayed, followed = shares(replay), shares(live)
    for name in [*(name for name, _ in PARTS), "the rest"]:
        print(f"| {name} | {replayed[name]:.0%} | {followed[name]:.0%} |")


if __name__ == "__main__":
    main()
