"""Faust wiring of the disaster processor: small batches, since an evacuee waits at the
shelter's reader for each tap."""

from __future__ import annotations

from consumers.disaster import projection
from pipeline.worker import Worker


def install(worker: Worker) -> None:
    worker.add_projection(
        projection.make(worker.settings), within=worker.settings.issuer_batch_within
    )
