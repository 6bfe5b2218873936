"""A faust worker whose agent does nothing: the ceiling of any faust-hosted live projection.

Run by the benchmark as `python tests/bench/faust_noop.py EXPECTED RESULT_FILE`, with the same
BCL_* settings as the worker, the same app configuration and the same batching; it writes the
events/s it reached to RESULT_FILE and exits.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import faust

from pipeline.settings import load_settings
from pipeline.topics import SOURCE_TOPICS
from pipeline.worker import new_app


def main() -> None:
    expected, result = int(sys.argv[1]), Path(sys.argv[2])
    settings = load_settings()
    app = new_app(
        settings, f"{settings.topic_prefix}bench-faust-noop", fetch_wait=settings.fetch_wait
    )
    channel = app.topic(
        *[settings.topic(t) for t in SOURCE_TOPICS],
        key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw",
    )  # fmt: skip
    seen = 0
    started = 0.0

    async def count(stream: Any) -> None:
        nonlocal seen, started
        async for events in stream.take_events(settings.batch_size, within=settings.batch_within):
            if not started:
                started = time.perf_counter()
            seen += len(events)
            if seen >= expected:
                # The benchmark stops this process once the file is there.
                result.write_text(f"{seen / (time.perf_counter() - started):.1f}\n")

    app.agent(channel, name="noop", concurrency=1)(count)
    faust.Worker(
        app, loglevel="warn", quiet=True, redirect_stdouts=False
    ).execute_from_commandline()


if __name__ == "__main__":
    main()
