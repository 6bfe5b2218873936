"""Event ids: UUIDv7 (RFC 9562), so ids sort by creation time and carry it.

Not ``uuid6.uuid7()``: it keeps ids monotonic by adding a millisecond to the timestamp for every id
made within the same millisecond, so a producer making 100,000 ids a second stamps them minutes
into the future. Here a counter in the random bits keeps them monotonic instead (RFC 9562 §6.2,
method 1) and the timestamp stays the clock's.
"""

import hashlib
import secrets
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# 12 bits of rand_a and the top 30 of rand_b; the other 32 bits of rand_b stay random so that ids
# made in the same millisecond by different processes do not collide.
_COUNTER_BITS = 42
_COUNTER_LOW_BITS = 30
_RANDOM_BITS = 32

_lock = threading.Lock()
_last_ms = 0
_counter = 0


def _next_timestamp_and_counter() -> tuple[int, int]:
    global _last_ms, _counter
    with _lock:
        now_ms = time.time_ns() // 1_000_000
        if now_ms > _last_ms:
            _last_ms = now_ms
            # A random start with the top bit clear leaves 2**41 increments before it overflows.
            _counter = secrets.randbits(_COUNTER_BITS - 1)
        else:
            # Same millisecond, or the clock stepped back: count on from the last id.
            _counter += 1
            if _counter >> _COUNTER_BITS:
                _last_ms += 1
                _counter = secrets.randbits(_COUNTER_BITS - 1)
        return _last_ms, _counter


def new_event_id() -> uuid.UUID:
    timestamp_ms, counter = _next_timestamp_and_counter()
    return uuid.UUID(
        int=(timestamp_ms & 0xFFFF_FFFF_FFFF) << 80
        | 0x7 << 76
        | (counter >> _COUNTER_LOW_BITS) << 64
        | 0b10 << 62
        | (counter & ((1 << _COUNTER_LOW_BITS) - 1)) << _RANDOM_BITS
        | secrets.randbits(_RANDOM_BITS)
    )


def event_id_time(event_id: uuid.UUID) -> datetime:
    """The creation time (millisecond precision, UTC) embedded in a UUIDv7."""
    if event_id.version != 7:
        raise ValueError(f"{event_id} is a version {event_id.version} UUID, expected version 7")
    # Integer milliseconds and timedelta avoid the float rounding of datetime.fromtimestamp.
    return _EPOCH + timedelta(milliseconds=event_id.int >> 80)


def derived_event_id(at: datetime, *identity: str) -> uuid.UUID:
    """A UUIDv7 fixed by ``at`` (its timestamp) and ``identity`` (its other 74 bits).

    For events an edge may have to publish again after a crash (a municipal batch half sent):
    the second attempt carries the same ids, so every reader sees one event, not two.
    """
    digest = int.from_bytes(hashlib.sha256("\x1f".join(identity).encode()).digest()[:10], "big")
    timestamp_ms = (at - _EPOCH) // timedelta(milliseconds=1)
    return uuid.UUID(
        int=(timestamp_ms & 0xFFFF_FFFF_FFFF) << 80
        | 0x7 << 76
        | (digest >> 62 & 0xFFF) << 64
        | 0b10 << 62
        | (digest & ((1 << 62) - 1))
    )
