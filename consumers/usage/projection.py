"""The usage projection: one row per kiosk request in ``usage.requests`` and the cubes summed
from them (``usage.hourly``, ``usage.monthly``, ``usage.stores``), for `bcl usage`."""

from __future__ import annotations

from consumers.usage.rules import CUBES, FACETS, ROWS
from pipeline.facets import FacetedProjection
from pipeline.settings import Settings
from pipeline.topics import ISSUANCE_OUTCOMES, ISSUANCE_REQUESTS


class UsageProjection(FacetedProjection):
    name = "usage"
    topics = (ISSUANCE_REQUESTS.name, ISSUANCE_OUTCOMES.name)
    table = "requests"
    rows = ROWS
    cubes = CUBES
    facets = FACETS


def make(settings: Settings) -> UsageProjection:
    return UsageProjection()
