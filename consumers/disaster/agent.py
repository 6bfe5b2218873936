"""How the live worker hosts the disaster processor: a batch starts as soon as a tap is there,
since an evacuee waits at the shelter's reader for each."""

from __future__ import annotations

from consumers.disaster import projection
from pipeline.worker import Worker


def install(worker: Worker) -> None:
    worker.add_projection(projection.make(worker.settings), waited_on=True)
