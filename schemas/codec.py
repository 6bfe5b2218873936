"""Wire format of events: orjson-encoded envelopes, decoded into typed, current-version payloads."""

from dataclasses import dataclass
from typing import Any, Literal
from uuid import UUID

import orjson
from pydantic import BaseModel, ValidationError

from schemas.envelope import Envelope
from schemas.registry import (
    REGISTRY,
    EventRegistry,
    SchemaError,
    UnknownEventType,
    UnsupportedVersion,
    UpcastError,
)

DecodeErrorReason = Literal[
    "not_json",
    "too_large",
    "invalid_envelope",
    "unknown_type",
    "unsupported_version",
    "invalid_payload",
]

# Enough for the sender to fix the first problems; a payload that is wrong everywhere would
# otherwise flood the dead-letter record.
_MAX_LISTED_ERRORS = 5
# The largest encoded event (Kafka's own default record limit): the largest real one, a
# certificate with its X.509 body or a municipality's profile, is a few kilobytes, and a field
# of megabytes would be stored whole by every projection.
MAX_EVENT_BYTES = 1 << 20


class EventDecodeError(SchemaError):
    """Raw bytes that are not a valid event; ``reason`` is a stable code for dead-letter records."""

    def __init__(self, reason: DecodeErrorReason, detail: str) -> None:
        self.reason: DecodeErrorReason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}")


@dataclass(frozen=True, slots=True)
class DecodedEvent:
    envelope: Envelope
    payload: BaseModel


def _json_fallback(value: object) -> object:
    # orjson serialises only the exact uuid.UUID class; uuid6 and others hand out subclasses.
    if isinstance(value, UUID):
        return str(value)
    raise TypeError(f"{value.__class__.__qualname__} is not JSON serialisable")


def encode_event(envelope: Envelope) -> bytes:
    """The event's bytes; its proof, if it has one, is the last field, after the bytes it
    proves (``proof_suffix``)."""
    body = encode_unproven(envelope)
    if envelope.proof is None:
        return body
    return body[:-1] + proof_suffix(envelope.proof)


def proof_suffix(proof: str) -> bytes:
    """What a proof adds to the end of the proven bytes (whose closing brace it replaces)."""
    return b',"proof":' + orjson.dumps(proof) + b"}"


def encode_unproven(envelope: Envelope) -> bytes:
    """The event's bytes without its proof: what the proof is computed over."""
    return encode_fields(unproven_fields(envelope))


def unproven_fields(envelope: Envelope) -> dict[str, Any]:
    """The envelope's fields but its proof, in the order its bytes hold them."""
    return {
        "event_id": envelope.event_id,
        "type": envelope.type,
        "version": envelope.version,
        "occurred_at": envelope.occurred_at,
        "recorded_at": envelope.recorded_at,
        "origin": envelope.origin,
        "source": envelope.source,
        "municipality": envelope.municipality,
        "sequence": envelope.sequence,
        "correlation_id": envelope.correlation_id,
        "causation_id": envelope.causation_id,
        "payload": envelope.payload,
    }


def encode_fields(fields: dict[str, Any]) -> bytes:
    """An unproven event's bytes from its envelope's fields (``unproven_fields``); nothing is
    validated."""
    # Not model_dump: orjson writes UUIDs and aware datetimes (ISO 8601 with offset) natively,
    # and skipping pydantic's serialiser is markedly faster.
    return orjson.dumps(fields, default=_json_fallback)


def headers_for(envelope: Envelope) -> list[tuple[str, bytes]]:
    """Kafka headers repeating type and version, so routers need not parse the value."""
    return [("type", envelope.type.encode()), ("version", str(envelope.version).encode())]


def describe_validation_error(error: ValidationError, prefix: str = "") -> str:
    """``field.path: message`` for the first few errors, in pydantic's words."""
    errors = error.errors(include_url=False, include_context=False, include_input=False)
    parts = [
        f"{prefix}{'.'.join(str(part) for part in err['loc']) or '(value)'}: {err['msg']}"
        for err in errors[:_MAX_LISTED_ERRORS]
    ]
    if len(errors) > _MAX_LISTED_ERRORS:
        parts.append(f"and {len(errors) - _MAX_LISTED_ERRORS} more")
    return "; ".join(parts)


def decode_event(raw: bytes, registry: EventRegistry = REGISTRY) -> DecodedEvent:
    if len(raw) > MAX_EVENT_BYTES:
        raise EventDecodeError(
            "too_large",
            f"{len(raw):,} bytes; an event may take at most {MAX_EVENT_BYTES:,} encoded",
        )
    try:
        # pydantic parses and validates in one pass in Rust, the fast path for valid input;
        # anything it refuses is classified below, where the reason is worth the extra parse.
        envelope = Envelope.model_validate_json(raw)
    except ValidationError:
        envelope = _refused_envelope(raw)
    return DecodedEvent(envelope, _payload(envelope, registry))


def _refused_envelope(raw: bytes) -> Envelope:
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise EventDecodeError("not_json", f"not UTF-8 JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise EventDecodeError(
            "invalid_envelope", f"expected a JSON object, got {_json_kind(data)}"
        )
    try:
        return Envelope.model_validate(data)
    except ValidationError as exc:
        raise EventDecodeError("invalid_envelope", describe_validation_error(exc)) from exc


def _payload(envelope: Envelope, registry: EventRegistry) -> BaseModel:
    try:
        return registry.parse_payload(envelope)
    except UnknownEventType as exc:
        raise EventDecodeError("unknown_type", str(exc)) from exc
    except UnsupportedVersion as exc:
        raise EventDecodeError("unsupported_version", str(exc)) from exc
    except UpcastError as exc:
        raise EventDecodeError("invalid_payload", str(exc)) from exc
    except ValidationError as exc:
        current = registry.current_version(envelope.type)
        upcast = f" (upcast to v{current})" if current != envelope.version else ""
        raise EventDecodeError(
            "invalid_payload",
            f"{envelope.type} v{envelope.version}{upcast}: "
            + describe_validation_error(exc, prefix="payload."),
        ) from exc


def _json_kind(value: object) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if value is None:
        return "null"
    return "a number"
