"""How the live worker hosts the BCL replica."""

from __future__ import annotations

from consumers.replica.projection import make
from pipeline.worker import Worker


def install(worker: Worker) -> None:
    worker.add_projection(make(worker.settings))
