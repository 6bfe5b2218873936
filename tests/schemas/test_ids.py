import threading
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas.ids import event_id_time, new_event_id


def test_event_ids_are_stdlib_uuid7() -> None:
    event_id = new_event_id()
    assert type(event_id) is uuid.UUID
    assert event_id.version == 7
    assert event_id.variant == uuid.RFC_4122


def test_event_id_time_is_the_creation_time() -> None:
    before = datetime.now(UTC)
    event_id = new_event_id()
    after = datetime.now(UTC)
    created = event_id_time(event_id)
    assert created.tzinfo is UTC
    assert before - timedelta(milliseconds=1) <= created <= after


def test_a_burst_of_ids_is_ordered_unique_and_keeps_the_clock() -> None:
    # Many ids per millisecond must neither collide, nor go out of order, nor run ahead of time.
    ids = [new_event_id() for _ in range(50_000)]
    after = datetime.now(UTC)
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
    assert event_id_time(ids[-1]) <= after


def test_ids_from_several_threads_are_unique() -> None:
    made: list[list[uuid.UUID]] = [[] for _ in range(4)]

    def make(into: list[uuid.UUID]) -> None:
        into.extend(new_event_id() for _ in range(5_000))

    threads = [threading.Thread(target=make, args=(ids,)) for ids in made]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    every = [event_id for ids in made for event_id in ids]
    assert len(set(every)) == len(every)
    for ids in made:
        assert ids == sorted(ids)


# The largest timestamp a datetime can hold, 9999-12-31T23:59:59.999Z, is below 2**48 ms.
@given(st.integers(0, 253_402_300_799_999), st.integers(0, 2**74 - 1))
def test_event_id_time_reads_the_millisecond_field(timestamp_ms: int, rest: int) -> None:
    event_id = uuid.UUID(
        int=timestamp_ms << 80 | 0x7 << 76 | (rest >> 62) << 64 | 0b10 << 62 | rest & (2**62 - 1)
    )
    expected = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=timestamp_ms)
    assert event_id_time(event_id) == expected


def test_event_id_time_rejects_other_versions() -> None:
    with pytest.raises(ValueError, match="version 4 UUID, expected version 7"):
        event_id_time(uuid.uuid4())
