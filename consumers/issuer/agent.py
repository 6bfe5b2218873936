"""How the live worker hosts the issuer: a batch starts as soon as a request is there, since a
resident stands at the kiosk for each answer."""

from __future__ import annotations

from consumers.issuer import projection
from pipeline.worker import Worker


def install(worker: Worker) -> None:
    worker.add_projection(projection.make(worker.settings))
