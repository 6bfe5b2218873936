"""The municipality registry: each municipality's current profile (topic ``municipalities``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from pipeline.database import Connection
from pipeline.projection import ConsumedEvent
from pipeline.settings import Settings
from pipeline.topics import MUNICIPALITIES
from schemas.events.municipalities import MunicipalityJoined, MunicipalityUpdated


class RegistryProjection:
    name = "registry"
    topics: Sequence[str] = (MUNICIPALITIES.name,)
    digest_order: Mapping[str, str] = {"municipalities": "code"}

    async def apply(self, connection: Connection, events: Sequence[ConsumedEvent]) -> None:
        rows = []
        for event in events:
            payload = event.payload
            if not isinstance(payload, MunicipalityJoined | MunicipalityUpdated):
                continue
            profile = payload.profile
            rows.append(
                (
                    payload.code,
                    profile.name,
                    profile.uses_bcl,
                    profile.municipality_class.value,
                    profile.population,
                    payload.joined_on if isinstance(payload, MunicipalityJoined) else None,
                    profile.model_dump_json(),
                    profile.push_public_key,
                    event.envelope.event_id,
                    event.envelope.recorded_at,
                )
            )
        if not rows:
            return
        # A later event (by its time-ordered id) replaces the profile; an earlier or repeated one
        # changes nothing, so replays, mirrors and redeliveries all end in the same row.
        await connection.executemany(
            """
            INSERT INTO municipalities AS m (code, name, uses_bcl, municipality_class, population,
                joined_on, profile, push_public_key, last_event_id, updated_at)
            VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8, $9, $10)
            ON CONFLICT (code) DO UPDATE SET
                name = EXCLUDED.name,
                uses_bcl = EXCLUDED.uses_bcl,
                municipality_class = EXCLUDED.municipality_class,
                population = EXCLUDED.population,
                joined_on = COALESCE(m.joined_on, EXCLUDED.joined_on),
                profile = EXCLUDED.profile,
                push_public_key = EXCLUDED.push_public_key,
                last_event_id = EXCLUDED.last_event_id,
                updated_at = EXCLUDED.updated_at
            WHERE EXCLUDED.last_event_id > m.last_event_id
            """,
            rows,
        )
        # The joining date holds whatever order the joined and updated events arrive in.
        joined = [(row[0], row[5]) for row in rows if row[5] is not None]
        if joined:
            await connection.executemany(
                "UPDATE municipalities SET joined_on = $2 WHERE code = $1 AND joined_on IS NULL",
                joined,
            )


def make(settings: Settings) -> RegistryProjection:
    return RegistryProjection()
