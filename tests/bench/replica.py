"""The million-resident snapshot (issue 3): push, live replica, replay; peak memory of each.

Every step runs as the `bcl` command an operator would type, in its own process, so each
process's peak memory is its own (sampled with psutil while it runs).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence

import psutil  # type: ignore[import-untyped]

from pipeline.database import connect
from pipeline.digest import projection_digest
from pipeline.projection import load_projection
from pipeline.settings import Settings
from pipeline.status import wait_until_applied
from pipeline.topics import RESIDENT_CHANGES
from tests.bench.ceilings import Consumed, raw_consume
from tests.helpers import settings_env

KAWASAKI = "141305"  # 川崎市: not one of the sample stream's municipalities


class PeakMemory:
    """Samples the resident memory of processes (with their children), summed, until they all
    end.

    The process trees are looked up again only every few seconds: finding children reads every
    process's /proc entry, which cost the benchmark a tenth of a core at five samples a second.
    """

    SAMPLE_EVERY = 0.2
    TREES_EVERY = 3.0

    def __init__(self, *pids: int) -> None:
        self.peak = 0
        self._processes = [psutil.Process(pid) for pid in pids]
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _trees(self) -> list[psutil.Process]:
        found = []
        for process in self._processes:
            with contextlib.suppress(psutil.Error):
                found += [process, *process.children(recursive=True)]
        return found

    def _sample(self) -> None:
        trees, looked = self._trees(), time.monotonic()
        while trees:
            total = 0
            for process in trees:
                with contextlib.suppress(psutil.Error):
                    total += process.memory_info().rss
            self.peak = max(self.peak, total)
            time.sleep(self.SAMPLE_EVERY)
            if time.monotonic() - looked > self.TREES_EVERY:
                trees, looked = self._trees(), time.monotonic()

    @property
    def mib(self) -> float:
        return self.peak / (1 << 20)


def bcl(settings: Settings, *args: str) -> tuple[float, float, str]:
    """Run `bcl ARGS` to the end: (seconds, peak MiB, output)."""
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "pipeline.cli", *args],
        env={**settings_env(settings), "COLUMNS": "150"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    memory = PeakMemory(process.pid)
    out, _ = process.communicate()
    seconds = time.perf_counter() - started
    if process.returncode != 0:
        raise RuntimeError(f"bcl {' '.join(args)} failed:\n{out.decode()[-3000:]}")
    return seconds, memory.mib, out.decode()


def replayed_rate(output: str) -> float:
    """The events/s `bcl replay` reports for its rebuild (start-up and swap left out)."""
    found = re.search(r"\(([0-9,]+) events/s\)", output)
    if found is None:
        raise RuntimeError(f"bcl replay reported no rate:\n{output[-2000:]}")
    return float(found.group(1).replace(",", ""))


async def wait_for(settings: Settings, query: str, expected: int, timeout: float = 3600) -> float:
    async with connect(settings) as connection:
        deadline = time.monotonic() + timeout
        while True:
            count = await connection.fetchval(query)
            if count is not None and count >= expected:
                return time.perf_counter()
            if time.monotonic() > deadline:
                raise TimeoutError(f"{query} reached {count} of {expected}")
            await asyncio.sleep(0.25)


async def applied_all(settings: Settings, residents: int, timeout: float = 3600) -> float:
    """When the replica has applied the whole log, polled on its tracking rows: a count(*) of
    a million-row table four times a second would take a core's share from the worker it
    measures. The residents are counted once at the end."""
    if not await wait_until_applied(settings, [load_projection("replica", settings)], timeout):
        raise TimeoutError(f"the replica did not apply the snapshot in {timeout:g}s")
    finished = time.perf_counter()
    async with connect(settings) as connection:
        held = await connection.fetchval("SELECT count(*) FROM replica.residents")
    if held < residents:
        raise AssertionError(f"the replica holds {held} residents of the {residents} pushed")
    return finished


async def replica_digest(settings: Settings) -> str:
    async with connect(settings) as connection:
        digest = await projection_digest(connection, load_projection("replica", settings))
    return digest.sha256


async def bench_replica(
    settings: Settings, residents: int, changes: int
) -> tuple[Sequence[tuple[str, float, str]], Consumed]:
    """(figure, value, unit) rows, and the raw consume of the resident events, against which the
    caller sets them."""
    work = settings.home / "bench-files"
    register, diff = work / "register.csv", work / "changes.csv"
    bcl(settings, "municipality", "add", KAWASAKI, "--name", "川崎市", "--class",
        "designated_city", "--population", "1540000", "--joined", "2022-01-04")  # fmt: skip
    bcl(settings, "workload", "register", KAWASAKI, "--residents", str(residents), "--out",
        str(register))  # fmt: skip
    bcl(settings, "workload", "changes", KAWASAKI, "--count", str(changes), "--residents",
        str(residents), "--out", str(diff))  # fmt: skip

    log = (settings.center_home / "bench-replica-worker.log").open("ab")
    worker = subprocess.Popen(
        [sys.executable, "-m", "pipeline.cli", "worker", "--agents", "replica"],
        env=settings_env(settings), stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    worker_memory = PeakMemory(worker.pid)
    try:
        started = time.perf_counter()
        push_seconds, push_mib, _ = bcl(settings, "push", KAWASAKI, str(register), "--full")
        applied = await applied_all(settings, residents)
        diff_seconds, _, _ = bcl(settings, "push", KAWASAKI, str(diff))
        # Not the batch's receipt: it lies in a partition of its own, which the worker may
        # apply before the changes' partitions, and a digest taken then is not the whole log's.
        if not await wait_until_applied(settings, [load_projection("replica", settings)], 3600):
            raise TimeoutError("the replica did not apply the changes in an hour")
        live_digest = await replica_digest(settings)
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(60)
    consume = await raw_consume(settings, [RESIDENT_CHANGES.name])
    _, replay_mib, output = bcl(settings, "replay", "replica")
    rebuilt_digest = await replica_digest(settings)
    if rebuilt_digest != live_digest:
        raise AssertionError(f"replica digest {live_digest} live, {rebuilt_digest} replayed")
    console_line = f"replica digest {live_digest[:16]}… live and after replay"
    return [
        ("push 1M snapshot → Kafka (bcl push --full)", residents / push_seconds, "records/s"),
        ("snapshot end to end (push start → replica rows)", residents / (applied - started),
         "records/s"),
        ("diff of changes, push → Kafka", changes / diff_seconds, "records/s"),
        ("replay replica (bcl replay replica)", replayed_rate(output), "events/s"),
        ("peak memory: bcl push", push_mib, "MiB"),
        ("peak memory: worker (replica agent)", worker_memory.mib, "MiB"),
        ("peak memory: bcl replay replica", replay_mib, "MiB"),
        # Reached only when the two digests are equal (checked above).
        (console_line, 1.0, "digests equal"),
    ], consume  # fmt: skip
