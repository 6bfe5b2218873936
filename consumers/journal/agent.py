"""How the live worker hosts the journal: batched over every source topic."""

from __future__ import annotations

from consumers.journal.projection import make
from pipeline.worker import Worker


def install(worker: Worker) -> None:
    worker.add_projection(make(worker.settings))
