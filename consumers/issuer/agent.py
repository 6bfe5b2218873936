"""Faust wiring of the issuer: small batches, since a resident stands at the kiosk for each."""

from __future__ import annotations

from consumers.issuer import projection
from pipeline.worker import Worker


def install(worker: Worker) -> None:
    worker.add_projection(
        projection.make(worker.settings), within=worker.settings.issuer_batch_within
    )
