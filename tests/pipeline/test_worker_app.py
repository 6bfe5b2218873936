"""The worker's faust app: its consumer fetches with the configured wait, not faust's 1.5 s, and
its logging stays at the level asked for."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from pipeline.settings import Settings
from pipeline.worker import faust_worker, new_app


async def test_the_live_consumer_waits_at_most_the_configured_fetch_wait(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, kafka_bootstrap="127.0.0.1:9", fetch_wait=0.025)
    app = new_app(settings)
    consumer = app.consumer._thread._create_consumer(asyncio.get_running_loop())

    assert consumer._fetch_max_wait_ms == 25
    assert consumer._group_id == "bcl-east"


def test_the_worker_leaves_the_root_logger_at_its_level(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, kafka_bootstrap="127.0.0.1:9")
    worker = faust_worker(new_app(settings), "warn")
    root = logging.Logger("root-under-test", logging.WARNING)
    root.addHandler(logging.StreamHandler())

    # What mode calls once it has configured the root logger.
    worker.on_setup_root_logger(root, logging.WARNING)

    assert root.level == logging.WARNING  # faust's spinner would have put it at DEBUG
    assert not root.isEnabledFor(logging.DEBUG)
