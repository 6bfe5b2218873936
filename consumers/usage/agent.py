"""How the live worker hosts usage: batched over the requests and the outcomes."""

from __future__ import annotations

from consumers.usage.projection import make
from pipeline.worker import Worker


def install(worker: Worker) -> None:
    worker.add_projection(make(worker.settings))
