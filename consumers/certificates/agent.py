"""How the live worker hosts the certificates: the lifecycle projection and the revoker."""

from __future__ import annotations

from consumers.certificates import projection, revoker
from pipeline.worker import Worker


def install(worker: Worker) -> None:
    worker.add_projection(projection.make(worker.settings))
    worker.add_projection(revoker.make(worker.settings))
