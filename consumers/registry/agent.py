"""How the live worker hosts the municipality registry."""

from __future__ import annotations

from consumers.registry.projection import make
from pipeline.worker import Worker


def install(worker: Worker) -> None:
    worker.add_projection(make(worker.settings))
