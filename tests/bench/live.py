"""Timing a projection in the live worker: a worker hosting it alone, a stream published to it."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Sequence

from pipeline.kafka import producer
from pipeline.projection import load_projection
from pipeline.publish import Outgoing, proven_by_their_edges, publish_many
from pipeline.settings import Settings
from pipeline.status import wait_until_applied
from tests.helpers import start_worker, wait_for_log_line

TIMEOUT = 3600.0  # seconds


async def live_seconds(settings: Settings, name: str, events: Sequence[Outgoing]) -> float:
    """Seconds from publishing ``events`` until projection ``name``, running alone in a live
    worker, has applied them (the worker's start is not in the figure, nor proving each event
    by its edge, which is done first, as generating them was)."""
    proven = list(proven_by_their_edges(settings, events))
    log = settings.center_home / f"bench-{name}-worker.log"
    worker = start_worker(settings, log, agents=name)
    try:
        await wait_for_log_line(log, "caught up from the log")
        started = time.perf_counter()
        async with producer(settings) as client:
            await publish_many(settings, client, proven)
        if not await wait_until_applied(settings, [load_projection(name, settings)], TIMEOUT):
            raise TimeoutError(f"{name} had not applied the stream after {TIMEOUT:g} s")
        return time.perf_counter() - started
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(60)
