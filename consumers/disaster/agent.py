"""How the live worker hosts the disaster processor: an evacuee waits at the shelter's reader for
each tap, and a batch starts as soon as one is there."""

from __future__ import annotations

from consumers.disaster import projection
from pipeline.worker import Worker


def install(worker: Worker) -> None:
    worker.add_projection(projection.make(worker.settings))
