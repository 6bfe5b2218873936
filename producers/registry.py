"""The municipality registry's edge: joining and profile updates become events.

Both commands bring the registry projection up to date before they return, so whoever runs them
(a municipality's staff, operations) sees the result at once.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from pipeline.catchup import refresh
from pipeline.database import connect
from pipeline.kafka import producer
from pipeline.projection import load_projection
from pipeline.publish import Outgoing, publish
from pipeline.settings import Settings
from pipeline.topics import MUNICIPALITIES
from schemas.envelope import Envelope
from schemas.events.municipalities import (
    MunicipalityJoined,
    MunicipalityProfile,
    MunicipalityUpdated,
)


class RegistryError(ValueError):
    """A registry request that cannot be carried out; the message says why."""


async def registered_profile(
    settings: Settings, code: str, *, refresh_first: bool = False
) -> MunicipalityProfile | None:
    """The profile the registry holds for ``code``, after bringing the registry up to date with
    the log if ``refresh_first``."""
    if refresh_first:
        await refresh(settings, load_projection("registry", settings))
    async with connect(settings) as connection:
        profile = await connection.fetchval(
            "SELECT profile FROM registry.municipalities WHERE code = $1", code
        )
    return None if profile is None else MunicipalityProfile.model_validate_json(profile)


async def join(
    settings: Settings, code: str, joined_on: date, profile: MunicipalityProfile
) -> Envelope:
    await refresh(settings, load_projection("registry", settings))
    if await registered_profile(settings, code) is not None:
        raise RegistryError(
            f"municipality {code} is already registered; change it with `bcl municipality update`"
        )
    envelope = Envelope.new(
        "municipality.joined",
        MunicipalityJoined(code=code, joined_on=joined_on, profile=profile),
        origin=settings.center,
        source="registry",
        occurred_at=datetime.now(UTC),
        municipality=code,
    )
    await _publish(settings, code, envelope)
    return envelope


async def update(settings: Settings, code: str, changes: dict[str, Any]) -> MunicipalityProfile:
    """Apply ``changes`` (profile field → new value) to the registered profile and publish it."""
    await refresh(settings, load_projection("registry", settings))
    current = await registered_profile(settings, code)
    if current is None:
        raise RegistryError(
            f"municipality {code} is not registered; add it with `bcl municipality add`"
        )
    profile = MunicipalityProfile.model_validate({**current.model_dump(), **changes})
    envelope = Envelope.new(
        "municipality.updated",
        MunicipalityUpdated(code=code, profile=profile),
        origin=settings.center,
        source="registry",
        occurred_at=datetime.now(UTC),
        municipality=code,
    )
    await _publish(settings, code, envelope)
    return profile


async def _publish(settings: Settings, code: str, envelope: Envelope) -> None:
    async with producer(settings) as client:
        await publish(settings, client, Outgoing(MUNICIPALITIES.name, code, envelope))
    await refresh(settings, load_projection("registry", settings))
