"""Faust wiring of usage: one batching agent over the requests and the outcomes."""

from __future__ import annotations

from consumers.usage.projection import make
from pipeline.worker import Worker


def install(worker: Worker) -> None:
    worker.add_projection(make(worker.settings))
