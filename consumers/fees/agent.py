"""How the live worker hosts fees: batched over the requests, the outcomes and the registry."""

from __future__ import annotations

from consumers.fees.projection import make
from pipeline.worker import Worker


def install(worker: Worker) -> None:
    worker.add_projection(make(worker.settings))
