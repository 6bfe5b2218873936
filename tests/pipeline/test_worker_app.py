"""The worker's faust app: its consumer fetches with the configured wait, not faust's 1.5 s."""

from __future__ import annotations

import asyncio
from pathlib import Path

from pipeline.settings import Settings
from pipeline.worker import new_app


async def test_the_live_consumer_waits_at_most_the_configured_fetch_wait(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, kafka_bootstrap="127.0.0.1:9", fetch_wait=0.025)
    app = new_app(settings)
    consumer = app.consumer._thread._create_consumer(asyncio.get_running_loop())

    assert consumer._fetch_max_wait_ms == 25
    assert consumer._group_id == "bcl-east"
