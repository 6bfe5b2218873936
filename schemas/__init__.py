"""Event envelope, event payloads, input formats and the codes they use.

Importing the package imports ``schemas.events``, so ``REGISTRY`` always knows every event type.
"""

from schemas import events
from schemas.codec import DecodedEvent, EventDecodeError, decode_event, encode_event, headers_for
from schemas.envelope import Envelope
from schemas.registry import (
    REGISTRY,
    EventRegistry,
    SchemaError,
    UnknownEventType,
    UnsupportedVersion,
    UpcastError,
)

__all__ = [
    "REGISTRY",
    "DecodedEvent",
    "Envelope",
    "EventDecodeError",
    "EventRegistry",
    "SchemaError",
    "UnknownEventType",
    "UnsupportedVersion",
    "UpcastError",
    "decode_event",
    "encode_event",
    "events",
    "headers_for",
]
