from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict, ValidationError

from schemas.envelope import Envelope
from schemas.ids import new_event_id
from schemas.registry import (
    REGISTRY,
    EventRegistry,
    SchemaError,
    UnknownEventType,
    UnsupportedVersion,
    UpcastError,
)


class ShelterOpenedV1(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str


class ShelterOpenedV3(BaseModel):
    """v2 renamed ``name`` to ``shelter_name``; v3 added ``capacity``."""

    model_config = ConfigDict(extra="forbid")
    shelter_name: str
    capacity: int


def chain_registry() -> EventRegistry:
    """A history where only v1 and v3 kept their models; v2 survives as upcasters."""
    registry = EventRegistry()
    registry.register("shelter.opened", 1, ShelterOpenedV1)
    registry.register("shelter.opened", 3, ShelterOpenedV3)

    @registry.upcaster("shelter.opened", 1)
    def rename_name(payload: dict[str, Any]) -> dict[str, Any]:
        payload["shelter_name"] = payload.pop("name")
        return payload

    @registry.upcaster("shelter.opened", 2)
    def add_capacity(payload: dict[str, Any]) -> dict[str, Any]:
        return {**payload, "capacity": payload.get("capacity", 0)}

    return registry


def envelope(version: int, payload: dict[str, Any], type: str = "shelter.opened") -> Envelope:
    return Envelope(
        event_id=new_event_id(),
        type=type,
        version=version,
        occurred_at=datetime(2024, 1, 1, 16, 10, tzinfo=UTC),
        recorded_at=datetime(2024, 1, 1, 16, 11, tzinfo=UTC),
        origin="west",
        source="municipality:172014",
        payload=payload,
    )


@pytest.mark.parametrize(
    ("version", "payload", "expected"),
    [
        (1, {"name": "Kanazawa Elementary"}, ("Kanazawa Elementary", 0)),
        (2, {"shelter_name": "Kanazawa Elementary"}, ("Kanazawa Elementary", 0)),
        (2, {"shelter_name": "Kanazawa Elementary", "capacity": 300}, ("Kanazawa Elementary", 300)),
        (3, {"shelter_name": "Kanazawa Elementary", "capacity": 300}, ("Kanazawa Elementary", 300)),
    ],
)
def test_old_versions_are_upcast_step_by_step(
    version: int, payload: dict[str, Any], expected: tuple[str, int]
) -> None:
    parsed = chain_registry().parse_payload(envelope(version, payload))
    assert isinstance(parsed, ShelterOpenedV3)
    assert (parsed.shelter_name, parsed.capacity) == expected


def test_upcasting_leaves_the_stored_payload_alone() -> None:
    event = envelope(1, {"name": "Kanazawa Elementary"})
    chain_registry().parse_payload(event)
    assert event.payload == {"name": "Kanazawa Elementary"}


def test_registry_reports_its_contents() -> None:
    registry = chain_registry()
    assert registry.known("shelter.opened")
    assert not registry.known("shelter.closed")
    assert registry.types() == ["shelter.opened"]
    assert registry.versions("shelter.opened") == [1, 3]
    assert registry.current_version("shelter.opened") == 3
    assert registry.model("shelter.opened") is ShelterOpenedV3
    assert registry.model("shelter.opened", 1) is ShelterOpenedV1


def test_missing_upcaster_is_unsupported() -> None:
    registry = EventRegistry()
    registry.register("shelter.opened", 1, ShelterOpenedV1)
    registry.register("shelter.opened", 3, ShelterOpenedV3)
    registry.upcaster("shelter.opened", 1)(lambda payload: payload)
    with pytest.raises(UnsupportedVersion) as caught:
        registry.parse_payload(envelope(1, {"name": "x"}))
    assert str(caught.value) == (
        "shelter.opened v1: cannot be upcast to the current v3: "
        "no upcaster from v2 to v3 is registered"
    )
    assert (caught.value.type, caught.value.version) == ("shelter.opened", 1)


def test_newer_version_than_known_is_unsupported() -> None:
    with pytest.raises(UnsupportedVersion, match=r"shelter.opened v4: newer than .* \(v3\)"):
        chain_registry().parse_payload(envelope(4, {"shelter_name": "x", "capacity": 1}))


def test_unknown_type() -> None:
    with pytest.raises(UnknownEventType) as caught:
        chain_registry().parse_payload(envelope(1, {}, type="shelter.closed"))
    assert caught.value.type == "shelter.closed"
    assert "unknown event type 'shelter.closed'" in str(caught.value)


def test_type_with_only_upcasters_is_unknown() -> None:
    registry = EventRegistry()
    registry.upcaster("shelter.closed", 1)(lambda payload: payload)
    assert not registry.known("shelter.closed")
    assert registry.types() == []
    with pytest.raises(UnknownEventType):
        registry.current_version("shelter.closed")


def test_failing_upcaster_is_an_upcast_error() -> None:
    with pytest.raises(UpcastError, match=r"upcasting shelter\.opened v1 to v2 failed: KeyError"):
        chain_registry().parse_payload(envelope(1, {"title": "x"}))


def test_upcast_payload_is_validated_by_the_current_model() -> None:
    with pytest.raises(ValidationError):
        chain_registry().parse_payload(envelope(2, {"shelter_name": "x", "capacity": "many"}))


def test_decorator_registers_and_returns_the_class() -> None:
    registry = EventRegistry()

    @registry.event("shelter.opened", 1)
    class Opened(BaseModel):
        name: str

    assert registry.model("shelter.opened") is Opened


@pytest.mark.parametrize(
    ("type", "version", "message"),
    [
        ("shelter.opened", 1, "already registered to ShelterOpenedV1"),
        ("ShelterOpened", 2, "must be dotted lowercase words"),
        ("shelter", 2, "must be dotted lowercase words"),
        ("shelter.opened", 0, "versions start at 1"),
    ],
)
def test_bad_registrations_are_refused(type: str, version: int, message: str) -> None:
    registry = chain_registry()
    with pytest.raises(SchemaError, match=message):
        registry.register(type, version, ShelterOpenedV1)


def test_duplicate_upcaster_is_refused() -> None:
    registry = chain_registry()
    with pytest.raises(SchemaError, match="upcaster from v1 to v2 is already registered"):
        registry.upcaster("shelter.opened", 1)(lambda payload: payload)


def test_errors_are_value_errors() -> None:
    for error in (SchemaError, UnknownEventType, UnsupportedVersion, UpcastError):
        assert issubclass(error, SchemaError)
    assert issubclass(SchemaError, ValueError)


def test_default_registry_knows_the_first_event_types() -> None:
    assert {
        "issuance.requested",
        "issuance.delivered",
        "issuance.cancelled",
        "certificate.revoked",
        "municipality.joined",
    } <= set(REGISTRY.types())
