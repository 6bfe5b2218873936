"""The municipality registry's edge: joining and profile updates become events.

Both commands bring the registry projection up to date before they return, so whoever runs them
(a municipality's staff, operations) sees the result at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec

from pipeline.catchup import refresh
from pipeline.database import connect
from pipeline.kafka import producer
from pipeline.projection import load_projection
from pipeline.proofs import prove
from pipeline.publish import Outgoing, publish
from pipeline.seals import (
    generate_seal_key,
    keep_seal_key,
    public_seal_pem,
    seal_key_id,
    write_seal_key,
)
from pipeline.settings import Settings
from pipeline.topics import MUNICIPALITIES
from schemas.envelope import Envelope
from schemas.events.municipalities import (
    MunicipalityJoined,
    MunicipalityProfile,
    MunicipalityUpdated,
    SealKey,
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
    envelope = prove(
        settings,
        "registry",
        Envelope.new(
            "municipality.joined",
            MunicipalityJoined(code=code, joined_on=joined_on, profile=profile),
            origin=settings.center,
            source="registry",
            occurred_at=datetime.now(UTC),
            municipality=code,
        ),
    )
    await _publish(settings, code, envelope)
    return envelope


async def update(settings: Settings, code: str, changes: dict[str, Any]) -> MunicipalityProfile:
    """Apply ``changes`` (profile field → new value) to the registered profile and publish it."""
    return await _replace(settings, code, await _current(settings, code), changes)


async def _current(settings: Settings, code: str) -> MunicipalityProfile:
    """The registered profile, once the registry has caught up with the log."""
    profile = await registered_profile(settings, code, refresh_first=True)
    if profile is None:
        raise RegistryError(
            f"municipality {code} is not registered; add it with `bcl municipality add`"
        )
    return profile


async def _replace(
    settings: Settings, code: str, current: MunicipalityProfile, changes: dict[str, Any]
) -> MunicipalityProfile:
    profile = MunicipalityProfile.model_validate({**current.model_dump(), **changes})
    envelope = prove(
        settings,
        "registry",
        Envelope.new(
            "municipality.updated",
            MunicipalityUpdated(code=code, profile=profile),
            origin=settings.center,
            source="registry",
            occurred_at=datetime.now(UTC),
            municipality=code,
        ),
    )
    await _publish(settings, code, envelope)
    return profile


async def _publish(settings: Settings, code: str, envelope: Envelope) -> None:
    async with producer(settings) as client:
        await publish(settings, client, Outgoing(MUNICIPALITIES.name, code, envelope))
    await refresh(settings, load_projection("registry", settings))


async def create_seal_key(settings: Settings, code: str) -> SealKey:
    """A new electronic seal key for ``code``: the private half kept by BCL under
    ``$BCL_HOME/seals``, the public half added to the registry; it seals from now on."""
    profile = await _current(settings, code)
    key = generate_seal_key()
    write_seal_key(settings, code, key)
    return await _list_seal_key(settings, code, profile, key)


@dataclass(frozen=True)
class ImportedSealKey:
    """What importing did: the key as listed, where BCL keeps its private half, and which of
    the two (listing, storing) happened now rather than before."""

    key: SealKey
    private_path: Path
    newly_listed: bool
    newly_stored: bool


async def import_seal_key(
    settings: Settings, code: str, key: ec.EllipticCurvePrivateKey
) -> ImportedSealKey:
    """An existing seal key of ``code`` kept and listed as `create_seal_key` keeps and lists a new
    one. A key the registry already lists (re-registered after a restore) is not listed twice;
    only its private half is stored. A revoked key is refused: it must never seal again."""
    profile = await _current(settings, code)
    key_id = seal_key_id(key)
    listed = next((entry for entry in profile.seal_keys if entry.key_id == key_id), None)
    if listed is not None and listed.revoked_at is not None:
        raise RegistryError(
            f"seal key {key_id} of {code} was revoked at {listed.revoked_at} and must never seal "
            f"again; make a new one with `bcl municipality seal-key create {code}`"
        )
    private_path, newly_stored = keep_seal_key(settings, code, key)
    entry = listed or await _list_seal_key(settings, code, profile, key)
    return ImportedSealKey(entry, private_path, listed is None, newly_stored)


async def _list_seal_key(
    settings: Settings, code: str, profile: MunicipalityProfile, key: ec.EllipticCurvePrivateKey
) -> SealKey:
    """Add ``key``'s public half to the registry; being the newest, it seals from now on."""
    entry = SealKey(
        key_id=seal_key_id(key), public_key=public_seal_pem(key), added_at=datetime.now(UTC)
    )
    await _replace(settings, code, profile, {"seal_keys": (*profile.seal_keys, entry)})
    return entry


async def revoke_seal_key(settings: Settings, code: str, key_id: str, at: datetime) -> SealKey:
    """Mark a seal key compromised from ``at``: nothing it sealed is trusted any more."""
    profile = await _current(settings, code)
    keys = {key.key_id: key for key in profile.seal_keys}
    if key_id not in keys:
        listed = ", ".join(keys) or "none"
        raise RegistryError(f"{code} has no seal key {key_id} (its keys: {listed})")
    if keys[key_id].revoked_at is not None:
        raise RegistryError(f"seal key {key_id} was already revoked at {keys[key_id].revoked_at}")
    revoked = keys[key_id].model_copy(update={"revoked_at": at})
    await _replace(
        settings,
        code,
        profile,
        {"seal_keys": tuple(revoked if k.key_id == key_id else k for k in profile.seal_keys)},
    )
    return revoked


async def seal_key(settings: Settings, code: str, key_id: str | None = None) -> SealKey:
    """A registered seal key of ``code``: ``key_id``, or the newest."""
    profile = await _current(settings, code)
    for key in reversed(profile.seal_keys):
        if key_id is None or key.key_id == key_id:
            return key
    if key_id is None:
        raise RegistryError(
            f"{code} has no seal key yet; create one with `bcl municipality seal-key create {code}`"
        )
    raise RegistryError(f"{code} has no seal key {key_id}")


async def find_seal_key(settings: Settings, code: str, key_id: str) -> SealKey | None:
    """The registry's seal key ``key_id`` of ``code``, for verifiers; None if unknown."""
    profile = await registered_profile(settings, code)
    if profile is None:
        return None
    return next((key for key in profile.seal_keys if key.key_id == key_id), None)
