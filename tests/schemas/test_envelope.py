import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from pydantic import ValidationError

from schemas.envelope import Envelope
from schemas.events.certificates import CertificateKind, CertificateRevoked, RevocationReason
from schemas.events.issuance import IssuanceCancelled
from schemas.ids import new_event_id
from schemas.registry import REGISTRY, SchemaError, UnknownEventType, UnsupportedVersion

JST = timezone(timedelta(hours=9))


def envelope_fields(**changes: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "event_id": str(new_event_id()),
        "type": "issuance.cancelled",
        "version": 1,
        "occurred_at": "2024-04-01T09:00:00+09:00",
        "recorded_at": "2024-04-01T00:00:01+00:00",
        "origin": "east",
        "source": "center:east",
        "payload": {"request_id": str(uuid.uuid4()), "reason": "resident walked away"},
    }
    fields.update(changes)
    return fields


def errors_of(fields: dict[str, Any]) -> list[tuple[tuple[str | int, ...], str]]:
    with pytest.raises(ValidationError) as caught:
        Envelope.model_validate(fields)
    return [(err["loc"], err["msg"]) for err in caught.value.errors()]


def test_minimal_envelope_is_valid() -> None:
    envelope = Envelope.model_validate(envelope_fields())
    assert envelope.municipality is None
    assert envelope.sequence is None
    assert envelope.occurred_at == datetime(2024, 4, 1, tzinfo=UTC)


def test_event_id_must_be_uuid7() -> None:
    event_id = uuid.uuid4()
    assert errors_of(envelope_fields(event_id=str(event_id))) == [
        (
            ("event_id",),
            f"event_id {event_id} is a version 4 UUID; event ids must be UUIDv7 (time-ordered), "
            "as made by schemas.ids.new_event_id()",
        )
    ]


@pytest.mark.parametrize("field", ["occurred_at", "recorded_at"])
def test_naive_datetimes_are_rejected(field: str) -> None:
    assert errors_of(envelope_fields(**{field: "2024-04-01T09:00:00"})) == [
        ((field,), "Input should have timezone info")
    ]


def test_origin_is_east_or_west() -> None:
    assert errors_of(envelope_fields(origin="north")) == [
        (("origin",), "Input should be 'east' or 'west'")
    ]


@pytest.mark.parametrize(
    ("changes", "loc"),
    [
        ({"version": 0}, ("version",)),
        ({"sequence": -1}, ("sequence",)),
        ({"sequence": 2**63}, ("sequence",)),
        ({"type": "Issuance.Cancelled"}, ("type",)),
        ({"type": "cancelled"}, ("type",)),
        ({"source": "kiosk"}, ("source",)),
        ({"municipality": "131015"}, ("municipality",)),
        ({"payload": ["not", "an", "object"]}, ("payload",)),
        ({"tenant": "x"}, ("tenant",)),
        ({"correlation_id": "not-a-uuid"}, ("correlation_id",)),
    ],
)
def test_each_field_is_checked(changes: dict[str, Any], loc: tuple[str, ...]) -> None:
    assert [found for found, _ in errors_of(envelope_fields(**changes))] == [loc]


def test_missing_fields_are_all_reported() -> None:
    assert {loc for loc, _ in errors_of({"type": "issuance.cancelled"})} == {
        ("event_id",),
        ("version",),
        ("occurred_at",),
        ("recorded_at",),
        ("origin",),
        ("source",),
        ("payload",),
    }


def test_envelope_is_frozen() -> None:
    envelope = Envelope.model_validate(envelope_fields())
    with pytest.raises(ValidationError):
        envelope.origin = "west"  # type: ignore[misc]


def revoked() -> CertificateRevoked:
    return CertificateRevoked(
        serial="0A1B2C",
        kind=CertificateKind.SIGNATURE,
        reason=RevocationReason.BASIC_INFO_CHANGED,
        revoked_at=datetime(2024, 5, 1, 10, 30, tzinfo=JST),
    )


def test_new_stamps_id_time_version_and_json_payload() -> None:
    occurred_at = datetime(2024, 5, 1, 10, 30, tzinfo=JST)
    correlation_id = uuid.uuid4()
    before = datetime.now(UTC)
    envelope = Envelope.new(
        "certificate.revoked",
        revoked(),
        origin="west",
        source="jpki",
        occurred_at=occurred_at,
        municipality="271004",
        correlation_id=correlation_id,
    )
    assert envelope.event_id.version == 7
    assert before <= envelope.recorded_at <= datetime.now(UTC)
    assert envelope.version == REGISTRY.current_version("certificate.revoked")
    assert envelope.occurred_at == occurred_at
    assert envelope.municipality == "271004"
    assert envelope.correlation_id == correlation_id
    assert envelope.payload == {
        "serial": "0A1B2C",
        "kind": "signature",
        "reason": "basic_info_changed",
        "revoked_at": "2024-05-01T10:30:00+09:00",
    }


def test_new_validates_the_envelope_fields() -> None:
    with pytest.raises(ValidationError, match="check digit"):
        Envelope.new(
            "certificate.revoked",
            revoked(),
            origin="west",
            source="jpki",
            occurred_at=datetime(2024, 5, 1, tzinfo=UTC),
            municipality="271005",
        )


def test_new_rejects_a_payload_of_another_type() -> None:
    payload = IssuanceCancelled(request_id=uuid.uuid4(), reason="x")
    with pytest.raises(
        SchemaError,
        match=r"certificate\.revoked v1 carries a CertificateRevoked payload, got IssuanceCanc",
    ):
        Envelope.new(
            "certificate.revoked",
            payload,
            origin="east",
            source="jpki",
            occurred_at=datetime.now(UTC),
        )


def test_new_rejects_unknown_types_and_versions() -> None:
    with pytest.raises(UnknownEventType):
        Envelope.new(
            "certificate.exploded",
            revoked(),
            origin="east",
            source="jpki",
            occurred_at=datetime.now(UTC),
        )
    with pytest.raises(UnsupportedVersion, match="no payload model is registered"):
        Envelope.new(
            "certificate.revoked",
            revoked(),
            origin="east",
            source="jpki",
            occurred_at=datetime.now(UTC),
            version=9,
        )
