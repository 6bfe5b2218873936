"""The fees projection: one row per kiosk request in ``fees.requests``, the monthly cube summed
from them (``fees.monthly``), and the registry's versions of each municipality
(``fees.members``, ``fees.joinings``) for the yearly charges; `bcl fees` reads them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from consumers.fees.rules import CUBES, FACETS, ROWS
from pipeline.database import Connection, insert_new_rows
from pipeline.facets import FacetedProjection
from pipeline.projection import ConsumedEvent
from pipeline.settings import Settings
from pipeline.topics import ISSUANCE_OUTCOMES, ISSUANCE_REQUESTS, MUNICIPALITIES
from schemas.events.municipalities import MunicipalityJoined, MunicipalityUpdated

MEMBER_COLUMNS = (
    "code", "event_id", "in_force_from", "name", "municipality_class", "population", "uses_bcl",
    "disaster_system_since",
)  # fmt: skip


class FeesProjection(FacetedProjection):
    name = "fees"
    topics = (ISSUANCE_REQUESTS.name, ISSUANCE_OUTCOMES.name, MUNICIPALITIES.name)
    table = "requests"
    rows = ROWS
    cubes = CUBES
    facets = FACETS

    @property
    def digest_order(self) -> Mapping[str, str]:
        return {**super().digest_order, "members": "code, event_id", "joinings": "code"}

    async def apply(self, connection: Connection, events: Sequence[ConsumedEvent]) -> None:
        """1. Keep every registry version of a municipality, and its joining date.
        2. Merge the requests' facets and move the cube (``FacetedProjection.apply``).
        """
        # 1.
        members, joinings = [], []
        for event in events:
            payload, envelope = event.payload, event.envelope
            if not isinstance(payload, MunicipalityJoined | MunicipalityUpdated):
                continue
            profile = payload.profile
            members.append(
                (
                    payload.code, envelope.event_id, envelope.occurred_at, profile.name,
                    profile.municipality_class.value, profile.population, profile.uses_bcl,
                    profile.disaster_system_since,
                )
            )  # fmt: skip
            if isinstance(payload, MunicipalityJoined):
                joinings.append((payload.code, payload.joined_on))
        await insert_new_rows(connection, "members", MEMBER_COLUMNS, members)
        await insert_new_rows(connection, "joinings", ("code", "joined_on"), joinings)
        # 2.
        await super().apply(connection, events)


def make(settings: Settings) -> FeesProjection:
    return FeesProjection()
