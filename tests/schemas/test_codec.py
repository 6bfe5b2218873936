import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import orjson
import pytest
import uuid6
from hypothesis import given
from hypothesis import strategies as st

from schemas.codec import (
    MAX_EVENT_BYTES,
    DecodedEvent,
    EventDecodeError,
    decode_event,
    encode_event,
    headers_for,
)
from schemas.codes import municipality_check_digit
from schemas.envelope import Envelope
from schemas.events.issuance import (
    TAX_CERTIFICATE_TYPES,
    CertificateType,
    IssuanceCancelled,
    IssuanceRequested,
    StoreOperator,
)
from schemas.registry import REGISTRY, EventRegistry

JST = timezone(timedelta(hours=9))

municipality_codes = st.builds(
    lambda prefecture, municipality: (
        f"{prefecture:02d}{municipality:03d}"
        + str(municipality_check_digit(f"{prefecture:02d}{municipality:03d}"))
    ),
    st.integers(1, 47),
    st.integers(0, 999),
)
# Whole-minute offsets: what real zones use, and what ISO 8601 offsets in the JSON carry.
offsets = st.integers(-(23 * 60 + 59), 23 * 60 + 59).map(
    lambda minutes: timezone(timedelta(minutes=minutes))
)
aware_datetimes = st.datetimes(
    min_value=datetime(1970, 1, 2), max_value=datetime(2200, 1, 1), timezones=offsets
)


@st.composite
def issuance_requests(draw: st.DrawFn) -> IssuanceRequested:
    certificate_type = draw(st.sampled_from(CertificateType))
    is_tax = certificate_type in TAX_CERTIFICATE_TYPES
    return IssuanceRequested(
        request_id=draw(st.uuids()),
        store_operator=draw(st.sampled_from(StoreOperator)),
        store_id=draw(
            st.text(st.characters(exclude_categories=("Cc", "Cs")), min_size=1, max_size=32)
        ),
        store_municipality=draw(municipality_codes),
        resident_municipality=draw(municipality_codes),
        auth_serial=draw(st.from_regex(r"[0-9A-Za-z]{1,40}", fullmatch=True)),
        certificate_type=certificate_type,
        fiscal_year=draw(st.integers(1989, 2100)) if is_tax else None,
        domicile_differs=draw(st.booleans()),
        copies=draw(st.integers(1, 10)),
        print_options=draw(st.dictionaries(st.text(), st.text(), max_size=3)),
    )


def cancelled_event(**changes: Any) -> Envelope:
    fields: dict[str, Any] = {
        "origin": "east",
        "source": "center:east",
        "occurred_at": datetime(2024, 4, 1, 9, tzinfo=JST),
    }
    fields.update(changes)
    return Envelope.new(
        "issuance.cancelled", IssuanceCancelled(request_id=uuid.uuid4(), reason="timeout"), **fields
    )


@given(
    issuance_requests(),
    aware_datetimes,
    st.sampled_from(["east", "west"]),
    st.none() | municipality_codes,
    st.none() | st.integers(0, 2**63 - 1),
    st.none() | st.uuids(),
)
def test_round_trip(
    payload: IssuanceRequested,
    occurred_at: datetime,
    origin: str,
    municipality: str | None,
    sequence: int | None,
    correlation_id: uuid.UUID | None,
) -> None:
    envelope = Envelope.new(
        "issuance.requested",
        payload,
        origin="east" if origin == "east" else "west",
        source=f"center:{origin}",
        occurred_at=occurred_at,
        municipality=municipality,
        sequence=sequence,
        correlation_id=correlation_id,
        causation_id=correlation_id,
    )
    decoded = decode_event(encode_event(envelope))
    assert decoded == DecodedEvent(envelope, payload)
    assert decoded.envelope.occurred_at.utcoffset() == occurred_at.utcoffset()


def test_wire_format() -> None:
    correlation_id = uuid6.uuid7()  # a uuid.UUID subclass, which orjson does not take natively
    envelope = cancelled_event(municipality="011002", sequence=7, correlation_id=correlation_id)
    wire = orjson.loads(encode_event(envelope))
    assert list(wire) == [
        "event_id",
        "type",
        "version",
        "occurred_at",
        "recorded_at",
        "origin",
        "source",
        "municipality",
        "sequence",
        "correlation_id",
        "causation_id",
        "payload",
    ]
    assert wire["event_id"] == str(envelope.event_id)
    assert wire["type"] == "issuance.cancelled"
    assert wire["version"] == 1
    assert wire["occurred_at"] == "2024-04-01T09:00:00+09:00"
    assert wire["recorded_at"].endswith("+00:00")
    assert wire["municipality"] == "011002"
    assert wire["sequence"] == 7
    assert wire["correlation_id"] == str(correlation_id)
    assert wire["causation_id"] is None
    assert wire["payload"] == envelope.payload


def test_headers_repeat_type_and_version() -> None:
    assert headers_for(cancelled_event()) == [("type", b"issuance.cancelled"), ("version", b"1")]


def valid_wire() -> dict[str, Any]:
    wire: dict[str, Any] = orjson.loads(encode_event(cancelled_event()))
    return wire


def decode_error(raw: bytes, registry: EventRegistry = REGISTRY) -> EventDecodeError:
    with pytest.raises(EventDecodeError) as caught:
        decode_event(raw, registry)
    assert str(caught.value) == f"{caught.value.reason}: {caught.value.detail}"
    return caught.value


@pytest.mark.parametrize("raw", [b"", b"{", b"not json", b'{"type": "\xff"}', b"\x80\x81"])
def test_not_json(raw: bytes) -> None:
    assert decode_error(raw).reason == "not_json"


@pytest.mark.parametrize(
    ("raw", "kind"),
    [
        (b"[]", "an array"),
        (b'"x"', "a string"),
        (b"1", "a number"),
        (b"null", "null"),
        (b"true", "a boolean"),
    ],
)
def test_json_that_is_not_an_object(raw: bytes, kind: str) -> None:
    error = decode_error(raw)
    assert (error.reason, error.detail) == (
        "invalid_envelope",
        f"expected a JSON object, got {kind}",
    )


def test_invalid_envelope_lists_field_errors() -> None:
    wire = valid_wire()
    wire.update(origin="north", occurred_at="2024-04-01T09:00:00")
    error = decode_error(orjson.dumps(wire))
    assert error.reason == "invalid_envelope"
    assert error.detail == (
        "occurred_at: Input should have timezone info; origin: Input should be 'east' or 'west'"
    )


def test_unknown_type() -> None:
    error = decode_error(orjson.dumps({**valid_wire(), "type": "issuance.teleported"}))
    assert error.reason == "unknown_type"
    assert "'issuance.teleported'" in error.detail


def test_unsupported_version() -> None:
    error = decode_error(orjson.dumps({**valid_wire(), "version": 2}))
    assert error.reason == "unsupported_version"
    assert error.detail.startswith("issuance.cancelled v2: newer than")


def test_invalid_payload_names_the_payload_fields() -> None:
    wire = valid_wire()
    wire["payload"] = {"reason": "", "extra": 1}
    error = decode_error(orjson.dumps(wire))
    assert error.reason == "invalid_payload"
    assert error.detail == (
        "issuance.cancelled v1: payload.request_id: Field required; payload.reason: String should "
        "have at least 1 character; payload.extra: Extra inputs are not permitted"
    )


def test_an_event_larger_than_the_limit_is_refused_unread() -> None:
    wire = valid_wire()
    wire["payload"]["reason"] = "x" * (5 << 20)
    error = decode_error(orjson.dumps(wire))
    assert error.reason == "too_large"
    assert error.detail.endswith(f"bytes; an event may take at most {MAX_EVENT_BYTES:,} encoded")


def test_long_error_lists_are_cut_short() -> None:
    wire = valid_wire()
    wire["type"] = "issuance.requested"
    wire["payload"] = {}
    error = decode_error(orjson.dumps(wire))
    assert error.reason == "invalid_payload"
    assert error.detail.count("Field required") == 5
    assert error.detail.endswith("; and 3 more")


def test_upcasting_is_applied_and_its_failures_are_invalid_payloads() -> None:
    registry = EventRegistry()
    registry.register("issuance.cancelled", 2, IssuanceCancelled)

    @registry.upcaster("issuance.cancelled", 1)
    def reason_became_required(payload: dict[str, Any]) -> dict[str, Any]:
        return {"request_id": payload["request_id"], "reason": payload.get("why", "unknown")}

    wire = valid_wire()
    wire["payload"] = {"request_id": str(uuid.uuid4())}
    decoded = decode_event(orjson.dumps(wire), registry)
    assert decoded.payload == IssuanceCancelled(
        request_id=wire["payload"]["request_id"], reason="unknown"
    )

    wire["payload"] = {}
    error = decode_error(orjson.dumps(wire), registry)
    assert error.reason == "invalid_payload"
    assert error.detail.startswith("upcasting issuance.cancelled v1 to v2 failed: KeyError")

    wire["payload"] = {"request_id": "nope"}
    error = decode_error(orjson.dumps(wire), registry)
    assert error.reason == "invalid_payload"
    assert error.detail.startswith("issuance.cancelled v1 (upcast to v2): payload.request_id:")


def test_decode_accepts_what_other_encoders_write() -> None:
    wire = valid_wire()
    wire["occurred_at"] = "2024-04-01T00:00:00Z"
    decoded = decode_event(orjson.dumps(wire))
    assert decoded.envelope.occurred_at == datetime(2024, 4, 1, tzinfo=UTC)
