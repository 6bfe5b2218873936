from __future__ import annotations

import random
import string
from collections.abc import Mapping
from datetime import date, datetime, time, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import TypeAdapter

from consumers.replica.rules import (
    REGISTRATIONS,
    RELATIONSHIP_TERMS,
    REMOVALS,
    RETENTION_YEARS,
    ChangeReason,
    ConnectionHours,
    RecordedChange,
    ReplicaRuleError,
    ResidentStatus,
    current_change,
    effective_date_of,
    head_of_household,
    is_removal,
    normalize_household_number,
    parse_relationship_code,
    purge_due,
    state_on,
    status_of,
    transmission_time,
    validate_resident_code,
)
from schemas.events.residents import HouseholdNumber

HOUSEHOLD_NUMBER: TypeAdapter[str] = TypeAdapter(HouseholdNumber)
JST = timezone(timedelta(hours=9), "JST")


def change(
    sequence: int,
    reason: ChangeReason,
    effective: str | None,
    *,
    unknown_death: bool = False,
    state: Mapping[str, object] | None = None,
) -> RecordedChange:
    return RecordedChange(
        sequence=sequence,
        reason=reason,
        effective_date=None if effective is None else date.fromisoformat(effective),
        death_date_unknown=unknown_death,
        state={} if state is None else state,
    )


def unknown_death(sequence: int) -> RecordedChange:
    return change(sequence, ChangeReason.DEATH, None, unknown_death=True)


def removal_status(removed_on: date) -> ResidentStatus:
    return status_of([RecordedChange(1, ChangeReason.MOVE_OUT, removed_on)])


# --- change reasons ---------------------------------------------------------------------------


def test_registrations_and_removals_are_the_documented_reasons() -> None:
    assert {reason.value for reason in REGISTRATIONS} == {"move_in", "special_move_in", "birth"}
    assert {reason.value for reason in REMOVALS} == {"move_out", "death", "ex_officio_removal"}
    assert not REGISTRATIONS & REMOVALS


@pytest.mark.parametrize("reason", list(ChangeReason))
def test_is_removal_matches_the_removal_set(reason: ChangeReason) -> None:
    assert is_removal(reason) == (reason in REMOVALS)


def test_reasons_are_their_string_values() -> None:
    assert ChangeReason("ex_officio_correction") is ChangeReason.EX_OFFICIO_CORRECTION
    assert str(ChangeReason.SPECIAL_MOVE_IN) == "special_move_in"
    assert len(ChangeReason) == 10


# --- recorded changes -------------------------------------------------------------------------


@pytest.mark.parametrize("reason", [r for r in ChangeReason if r is not ChangeReason.DEATH])
def test_only_a_death_may_have_an_unknown_date(reason: ChangeReason) -> None:
    with pytest.raises(ReplicaRuleError, match="death_date_unknown is only allowed on a death"):
        change(1, reason, None, unknown_death=True)
    with pytest.raises(ReplicaRuleError, match="has no effective date"):
        change(1, reason, None)


def test_a_death_without_a_date_must_say_its_date_is_unknown() -> None:
    with pytest.raises(ReplicaRuleError, match="death of sequence 4 has no effective date"):
        change(4, ChangeReason.DEATH, None)


def test_an_unknown_date_death_cannot_also_carry_a_date() -> None:
    with pytest.raises(ReplicaRuleError, match="drop one of the two"):
        change(1, ChangeReason.DEATH, "2024-01-01", unknown_death=True)


@pytest.mark.parametrize("sequence", [-1, True])
def test_sequence_must_be_a_non_negative_int(sequence: int) -> None:
    with pytest.raises(ReplicaRuleError, match="sequence must be"):
        RecordedChange(sequence, ChangeReason.BIRTH, date(2024, 1, 1))


def test_sequence_zero_is_allowed() -> None:
    assert RecordedChange(0, ChangeReason.BIRTH, date(2024, 1, 1)).sequence == 0


def test_effective_date_is_a_calendar_day_not_a_datetime() -> None:
    with pytest.raises(ReplicaRuleError, match="must be a date, not a datetime"):
        RecordedChange(1, ChangeReason.BIRTH, datetime(2024, 1, 1, tzinfo=JST))


def test_reason_must_be_a_change_reason() -> None:
    with pytest.raises(ReplicaRuleError, match="reason must be a ChangeReason"):
        RecordedChange(1, "birth", date(2024, 1, 1))  # type: ignore[arg-type]


def test_state_is_a_read_only_copy() -> None:
    state: dict[str, object] = {"name": "山田太郎"}
    recorded = change(1, ChangeReason.BIRTH, "2024-01-01", state=state)
    state["name"] = "changed afterwards"
    assert recorded.state == {"name": "山田太郎"}
    with pytest.raises(TypeError):
        recorded.state["name"] = "x"  # type: ignore[index]


# --- effective dates --------------------------------------------------------------------------


def test_a_dated_change_takes_effect_on_its_own_date() -> None:
    moved = change(7, ChangeReason.MOVE_WITHIN, "2024-04-01")
    assert effective_date_of(moved, []) == date(2024, 4, 1)


def test_unknown_death_takes_effect_the_day_after_the_latest_earlier_date() -> None:
    history = [
        change(1, ChangeReason.MOVE_IN, "2024-03-10"),
        # Recorded later but back-dated: the latest effective date, not the latest record, anchors.
        change(2, ChangeReason.EX_OFFICIO_CORRECTION, "2024-01-05"),
    ]
    death = unknown_death(3)
    assert effective_date_of(death, history) == date(2024, 3, 11)
    assert effective_date_of(death, [*history, death]) == date(2024, 3, 11)


def test_unknown_death_crosses_month_and_year_ends() -> None:
    history = [change(1, ChangeReason.MOVE_IN, "2023-12-31")]
    assert effective_date_of(unknown_death(2), history) == date(2024, 1, 1)


def test_changes_recorded_after_an_unknown_death_do_not_move_it() -> None:
    death = unknown_death(3)
    history = [
        change(1, ChangeReason.BIRTH, "2020-05-01"),
        change(2, ChangeReason.MOVE_WITHIN, "2022-07-01"),
        death,
        change(4, ChangeReason.EX_OFFICIO_CORRECTION, "2023-01-10"),
    ]
    assert effective_date_of(death, history) == date(2022, 7, 2)


def test_an_earlier_unknown_death_anchors_a_later_one() -> None:
    history = [change(1, ChangeReason.BIRTH, "2020-05-01"), unknown_death(2)]
    assert effective_date_of(unknown_death(3), history) == date(2020, 5, 3)


@pytest.mark.parametrize(
    "history",
    [
        pytest.param([], id="empty"),
        pytest.param([unknown_death(5)], id="only-itself"),
        pytest.param([change(6, ChangeReason.BIRTH, "2020-01-01")], id="only-later-records"),
    ],
)
def test_unknown_death_without_an_earlier_change_is_refused(
    history: list[RecordedChange],
) -> None:
    with pytest.raises(ReplicaRuleError, match="no change of the resident was recorded before it"):
        effective_date_of(unknown_death(5), history)


def test_missing_date_is_refused_even_past_the_constructor() -> None:
    moved = change(1, ChangeReason.MOVE_OUT, "2024-01-01")
    object.__setattr__(moved, "effective_date", None)
    with pytest.raises(ReplicaRuleError, match="move_out of sequence 1 has no effective date"):
        effective_date_of(moved, [])


# --- current change and effective-dated history -----------------------------------------------


def test_empty_history_has_no_current_change() -> None:
    assert current_change([]) is None


def test_the_latest_effective_date_wins_over_the_latest_record() -> None:
    later_date = change(1, ChangeReason.MOVE_WITHIN, "2024-06-01")
    back_dated = change(2, ChangeReason.NAME_CHANGE, "2024-05-01")
    assert current_change([later_date, back_dated]) == later_date


def test_on_the_same_date_the_later_record_wins() -> None:
    first = change(1, ChangeReason.MOVE_WITHIN, "2024-06-01")
    second = change(2, ChangeReason.HOUSEHOLD_CHANGE, "2024-06-01")
    assert current_change([second, first]) == second
    assert current_change([first, second]) == second


def test_an_unknown_date_death_becomes_current() -> None:
    history = [change(1, ChangeReason.MOVE_IN, "2024-03-10"), unknown_death(2)]
    assert current_change(history) == history[1]


def test_a_later_dated_correction_reinstates_after_an_unknown_death() -> None:
    correction = change(3, ChangeReason.EX_OFFICIO_CORRECTION, "2024-04-01")
    history = [change(1, ChangeReason.MOVE_IN, "2024-03-10"), unknown_death(2), correction]
    assert current_change(history) == correction


def test_a_repeated_delivery_counts_once() -> None:
    moved = change(1, ChangeReason.MOVE_IN, "2024-03-10", state={"a": 1})
    again = change(1, ChangeReason.MOVE_IN, "2024-03-10", state={"a": 1})
    assert current_change([moved, again]) == moved


def test_two_different_changes_with_one_sequence_are_refused() -> None:
    history = [
        change(1, ChangeReason.MOVE_IN, "2024-03-10"),
        change(1, ChangeReason.MOVE_OUT, "2024-03-10"),
    ]
    with pytest.raises(ReplicaRuleError, match="two different changes share sequence 1"):
        current_change(history)


def test_state_on_is_inclusive_of_the_effective_date() -> None:
    born = change(1, ChangeReason.BIRTH, "2020-05-01")
    moved = change(2, ChangeReason.MOVE_WITHIN, "2022-07-01")
    renamed_same_day = change(3, ChangeReason.NAME_CHANGE, "2022-07-01")
    history = [renamed_same_day, moved, born]
    assert state_on(history, date(2020, 4, 30)) is None
    assert state_on(history, date(2020, 5, 1)) == born
    assert state_on(history, date(2022, 6, 30)) == born
    assert state_on(history, date(2022, 7, 1)) == renamed_same_day
    assert state_on(history, date(2030, 1, 1)) == renamed_same_day


def test_state_on_places_an_unknown_death_after_its_anchor() -> None:
    death = unknown_death(2)
    history = [change(1, ChangeReason.MOVE_IN, "2024-03-10"), death]
    assert state_on(history, date(2024, 3, 10)) == history[0]
    assert state_on(history, date(2024, 3, 11)) == death


days = st.dates(min_value=date(2000, 1, 1), max_value=date(2040, 12, 31))
reasons = st.sampled_from(list(ChangeReason))


@st.composite
def histories(draw: st.DrawFn) -> list[RecordedChange]:
    """One resident's changes, distinct sequences, some unknown-date deaths after the first."""
    sequences = sorted(draw(st.sets(st.integers(0, 10_000), min_size=1, max_size=12)))
    # Few distinct dates, so equal effective dates (decided by sequence) are common.
    pool = draw(st.lists(days, min_size=1, max_size=4))
    changes = []
    for position, sequence in enumerate(sequences):
        if position > 0 and draw(st.integers(0, 5)) == 0:
            changes.append(unknown_death(sequence))
        else:
            changes.append(RecordedChange(sequence, draw(reasons), draw(st.sampled_from(pool))))
    return changes


def reference_current(history: list[RecordedChange], until: date | None) -> RecordedChange | None:
    candidates = [
        (effective_date_of(c, history), c.sequence, c)
        for c in history
        if until is None or effective_date_of(c, history) <= until
    ]
    return max(candidates, key=lambda candidate: candidate[:2])[2] if candidates else None


@given(histories(), st.randoms(use_true_random=False))
def test_current_change_does_not_depend_on_order(
    history: list[RecordedChange], shuffler: random.Random
) -> None:
    shuffled = list(history)
    shuffler.shuffle(shuffled)
    assert current_change(shuffled) == current_change(history)
    assert current_change(history) == reference_current(history, None)


@given(histories(), st.data())
def test_current_change_is_idempotent_under_repeated_delivery(
    history: list[RecordedChange], data: st.DataObject
) -> None:
    repeats = data.draw(st.lists(st.sampled_from(history), max_size=10))
    delivered = data.draw(st.permutations([*history, *repeats]))
    assert current_change(delivered) == current_change(history)


@given(histories(), days)
def test_state_on_is_the_latest_change_in_force_by_then(
    history: list[RecordedChange], day: date
) -> None:
    in_force = state_on(history, day)
    assert in_force == reference_current(history, day)
    assert state_on(list(reversed(history)), day) == in_force
    if in_force is not None:
        assert effective_date_of(in_force, history) <= day
    assert state_on(history, date(2099, 1, 1)) == current_change(history)


# --- status and purge -------------------------------------------------------------------------


def test_a_registered_resident_is_active() -> None:
    status = status_of([change(1, ChangeReason.BIRTH, "2020-05-01")])
    assert status == ResidentStatus(active=True, removed_on=None, purge_after=None)
    assert not purge_due(status, date(2099, 1, 1))


@pytest.mark.parametrize("reason", sorted(REMOVALS))
def test_a_removal_leaves_a_tombstone_for_five_years(reason: ChangeReason) -> None:
    status = status_of(
        [change(1, ChangeReason.MOVE_IN, "2019-01-01"), change(2, reason, "2024-07-15")]
    )
    assert status == ResidentStatus(
        active=False, removed_on=date(2024, 7, 15), purge_after=date(2029, 7, 15)
    )


def test_an_unknown_date_death_is_removed_on_its_anchored_date() -> None:
    status = status_of([change(1, ChangeReason.MOVE_IN, "2024-03-10"), unknown_death(2)])
    assert status.removed_on == date(2024, 3, 11)
    assert status.purge_after == date(2029, 3, 11)


def test_moving_back_in_makes_the_resident_active_again() -> None:
    history = [
        change(1, ChangeReason.MOVE_IN, "2019-01-01"),
        change(2, ChangeReason.MOVE_OUT, "2021-02-01"),
        change(3, ChangeReason.MOVE_IN, "2023-09-01"),
    ]
    assert status_of(history).active
    assert not status_of(history[:2]).active


def test_a_removal_on_the_same_day_as_a_registration_wins_if_recorded_later() -> None:
    history = [
        change(1, ChangeReason.MOVE_IN, "2024-01-10"),
        change(2, ChangeReason.EX_OFFICIO_REMOVAL, "2024-01-10"),
    ]
    assert not status_of(history).active
    assert status_of([history[1], change(3, ChangeReason.MOVE_IN, "2024-01-10")]).active


def test_status_needs_a_history() -> None:
    with pytest.raises(ReplicaRuleError, match="at least one recorded change"):
        status_of([])


def test_purge_boundary_keeps_the_fifth_anniversary() -> None:
    status = removal_status(date(2024, 7, 15))
    assert not purge_due(status, date(2024, 7, 15))
    assert not purge_due(status, date(2029, 7, 14))
    assert not purge_due(status, date(2029, 7, 15))
    assert purge_due(status, date(2029, 7, 16))


def test_purge_boundary_for_a_removal_on_29_february() -> None:
    status = removal_status(date(2024, 2, 29))
    assert status.purge_after == date(2029, 2, 28)
    assert not purge_due(status, date(2029, 2, 28))
    assert purge_due(status, date(2029, 3, 1))


def test_28_february_keeps_its_day_when_the_target_year_is_leap() -> None:
    # Same month and day, not the day before 1 March: 2028 has a 29 Feb that is not used.
    assert removal_status(date(2023, 2, 28)).purge_after == date(2028, 2, 28)


@given(days)
def test_purge_is_due_exactly_from_the_day_after_the_fifth_anniversary(removed_on: date) -> None:
    status = removal_status(removed_on)
    purge_after = status.purge_after
    assert purge_after is not None
    assert purge_after.year == removed_on.year + RETENTION_YEARS
    if (removed_on.month, removed_on.day) == (2, 29):
        assert (purge_after.month, purge_after.day) == (2, 28)
    else:
        assert (purge_after.month, purge_after.day) == (removed_on.month, removed_on.day)
    assert not purge_due(status, removed_on)
    assert not purge_due(status, purge_after)
    assert purge_due(status, purge_after + timedelta(days=1))


def test_purge_date_beyond_the_calendar_is_refused() -> None:
    with pytest.raises(ReplicaRuleError, match="beyond the last representable date"):
        removal_status(date(9996, 3, 1))


@pytest.mark.parametrize(
    ("active", "removed_on", "purge_after", "message"),
    [
        (True, date(2024, 1, 1), None, "active resident has no removal date"),
        (False, None, None, "needs both removed_on and purge_after"),
        (False, date(2024, 1, 1), date(2024, 1, 1), "must be later than removed_on"),
    ],
)
def test_resident_status_is_consistent(
    active: bool, removed_on: date | None, purge_after: date | None, message: str
) -> None:
    with pytest.raises(ReplicaRuleError, match=message):
        ResidentStatus(active=active, removed_on=removed_on, purge_after=purge_after)


# --- connection hours -------------------------------------------------------------------------

HOURS = ConnectionHours(
    opens=time(8, 30),
    closes=time(22, 0),
    holidays=frozenset({date(2024, 5, 3), date(2024, 5, 6)}),
)


def at(moment: str) -> datetime:
    return datetime.fromisoformat(moment).replace(tzinfo=JST)


@pytest.mark.parametrize(
    ("changed", "sent"),
    [
        pytest.param("2024-03-14 12:00", "2024-03-14 12:00", id="inside-the-window"),
        pytest.param("2024-03-14 08:30", "2024-03-14 08:30", id="opening-is-inside"),
        pytest.param(
            "2024-03-14 21:59:59.999999", "2024-03-14 21:59:59.999999", id="last-instant-inside"
        ),
        pytest.param("2024-03-14 22:00", "2024-03-15 08:30", id="closing-is-outside"),
        pytest.param("2024-03-14 08:29:59", "2024-03-14 08:30", id="before-opening-same-day"),
        pytest.param("2024-03-14 00:00", "2024-03-14 08:30", id="midnight-same-day"),
        pytest.param("2024-03-15 22:30", "2024-03-18 08:30", id="friday-evening-to-monday"),
        pytest.param("2024-03-16 12:00", "2024-03-18 08:30", id="saturday-to-monday"),
        pytest.param("2024-03-17 07:00", "2024-03-18 08:30", id="sunday-morning-to-monday"),
        pytest.param("2023-12-28 22:00", "2024-01-04 08:30", id="year-end-to-4-january"),
        pytest.param("2023-12-29 12:00", "2024-01-04 08:30", id="inside-the-closure"),
        pytest.param("2024-01-03 12:00", "2024-01-04 08:30", id="last-day-of-the-closure"),
        pytest.param("2024-12-27 23:00", "2025-01-06 08:30", id="4-january-on-a-saturday"),
        pytest.param("2024-05-02 23:00", "2024-05-07 08:30", id="holidays-around-a-weekend"),
        pytest.param("2024-05-03 12:00", "2024-05-07 08:30", id="inside-hours-on-a-holiday"),
    ],
)
def test_transmission_time(changed: str, sent: str) -> None:
    assert transmission_time(at(changed), HOURS) == at(sent)


def test_transmission_keeps_the_timezone_of_the_change() -> None:
    sent = transmission_time(at("2024-03-15 22:30"), HOURS)
    assert sent.tzinfo is JST
    assert sent.utcoffset() == timedelta(hours=9)


def test_naive_change_time_is_refused() -> None:
    with pytest.raises(ReplicaRuleError, match="must be timezone-aware"):
        transmission_time(datetime(2024, 3, 14, 12, 0), HOURS)


def test_year_end_closure_applies_without_any_listed_holiday() -> None:
    hours = ConnectionHours(opens=time(9), closes=time(17))
    assert not hours.is_business_day(date(2024, 12, 30))
    assert not hours.is_business_day(date(2025, 1, 3))
    assert hours.is_business_day(date(2024, 12, 27))
    assert hours.is_business_day(date(2025, 1, 6))


@pytest.mark.parametrize(
    ("opens", "closes", "holidays", "message"),
    [
        (time(9), time(9), frozenset(), "must open before they close"),
        (time(22), time(6), frozenset(), "must open before they close"),
        (time(9, tzinfo=JST), time(17), frozenset(), "without a timezone"),
        (time(9), time(17), frozenset({datetime(2024, 5, 3)}), "holidays must be dates"),
    ],
)
def test_connection_hours_are_checked(
    opens: time, closes: time, holidays: frozenset[date], message: str
) -> None:
    with pytest.raises(ReplicaRuleError, match=message):
        ConnectionHours(opens=opens, closes=closes, holidays=holidays)


windows = st.tuples(st.times(), st.times()).filter(lambda pair: pair[0] < pair[1])


@given(
    st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2030, 12, 31)),
    windows,
    st.frozensets(st.dates(min_value=date(2020, 1, 1), max_value=date(2031, 1, 31)), max_size=30),
)
def test_transmission_is_the_first_open_instant(
    naive: datetime, window: tuple[time, time], holidays: frozenset[date]
) -> None:
    hours = ConnectionHours(opens=window[0], closes=window[1], holidays=holidays)
    changed = naive.replace(tzinfo=JST)
    sent = transmission_time(changed, hours)
    assert sent >= changed
    assert hours.is_open(sent)
    if sent != changed:
        assert not hours.is_open(changed)
        assert sent.time() == hours.opens
        # No business day was skipped on the way.
        day = changed.date() + timedelta(days=1)
        while day < sent.date():
            assert not hours.is_business_day(day)
            day += timedelta(days=1)
        if sent.date() != changed.date():
            assert not (hours.is_business_day(changed.date()) and changed.time() < hours.opens)


# --- relationship codes (続柄コード) ------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "generations"),
    [
        ("02", ("02",)),
        ("03", ("03",)),
        ("0403", ("04", "03")),  # 子の妻/夫
        ("040404", ("04", "04", "04")),
        ("04040405", ("04", "04", "04", "05")),
        ("17", ("17",)),  # outside our table but well-formed
    ],
)
def test_relationship_code_generations(code: str, generations: tuple[str, ...]) -> None:
    assert parse_relationship_code(code) == generations


@pytest.mark.parametrize(
    ("code", "message"),
    [
        ("", "has 0 characters, expected 2 to 8"),
        ("2", "has 1 characters, expected 2 to 8"),
        ("0404040404", "has 10 characters, expected 2 to 8"),
        ("023", "odd number of characters"),
        ("0a", "must be 1 to 4 generations of 2 ASCII digits"),
        ("０２", "must be 1 to 4 generations of 2 ASCII digits"),
        (" 2", "must be 1 to 4 generations of 2 ASCII digits"),
    ],
)
def test_malformed_relationship_codes_are_refused(code: str, message: str) -> None:
    with pytest.raises(ReplicaRuleError, match=message):
        parse_relationship_code(code)


@pytest.mark.parametrize(
    ("code", "is_head"),
    [
        ("02", True),
        ("03", False),
        ("04", False),
        ("05", False),
        ("99", False),
        ("0403", False),
        # Only the code "02" on its own is the head; a multi-generation code containing it is not.
        ("0302", False),
        ("0204", False),
    ],
)
def test_head_of_household(code: str, is_head: bool) -> None:
    assert head_of_household(code) is is_head


def test_head_of_household_refuses_a_malformed_code() -> None:
    with pytest.raises(ReplicaRuleError):
        head_of_household("2")


def test_relationship_table_is_the_documented_one() -> None:
    assert set(RELATIONSHIP_TERMS) == {"02", "03", "04", "05", "99"}
    assert "世帯主" in RELATIONSHIP_TERMS["02"]


# --- household numbers (世帯番号) ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "normalized"),
    [
        ("1", "1" + " " * 14),
        ("123456", "123456         "),
        ("123456789012345", "123456789012345"),
        ("123456         ", "123456         "),
        ("123456   ", "123456         "),
        ("AbC123", "AbC123         "),
    ],
)
def test_household_number_is_left_justified_and_space_padded(raw: str, normalized: str) -> None:
    assert normalize_household_number(raw) == normalized
    assert len(normalized) == 15


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("1234567890123456", "has 16 characters, at most 15"),
        ("123456789012345 ", "has 16 characters, at most 15"),
        ("", "empty or blank"),
        (" " * 15, "empty or blank"),
        (" 123", "only contain ASCII digits and letters"),
        ("12 34", "only contain ASCII digits and letters"),
        ("１２３", "only contain ASCII digits and letters"),
        ("12-34", "only contain ASCII digits and letters"),
        ("1234\t", "only contain ASCII digits and letters"),
    ],
)
def test_malformed_household_numbers_are_refused(raw: str, message: str) -> None:
    with pytest.raises(ReplicaRuleError, match=message) as caught:
        normalize_household_number(raw)
    if raw.strip():
        assert raw.strip() not in str(caught.value)


@given(st.text(alphabet=string.ascii_letters + string.digits, min_size=1, max_size=15))
def test_household_number_normalization_is_idempotent(number: str) -> None:
    normalized = normalize_household_number(number)
    assert len(normalized) == 15
    assert normalized.rstrip(" ") == number
    assert normalize_household_number(normalized) == normalized
    assert HOUSEHOLD_NUMBER.validate_python(normalized) == normalized


# --- resident record codes (住民票コード) -------------------------------------------------------


def test_resident_code_of_eleven_digits_is_returned_unchanged() -> None:
    assert validate_resident_code("01234567890") == "01234567890"


@pytest.mark.parametrize(
    ("code", "message"),
    [
        ("0123456789", "has 10 characters"),
        ("012345678901", "has 12 characters"),
        ("", "has 0 characters"),
        ("0123456789a", "other than an ASCII digit"),
        ("０１２３４５６７８９０", "other than an ASCII digit"),
        ("01234 67890", "other than an ASCII digit"),
    ],
)
def test_malformed_resident_codes_are_refused_without_echoing_them(code: str, message: str) -> None:
    with pytest.raises(ReplicaRuleError, match=message) as caught:
        validate_resident_code(code)
    if code:
        assert code not in str(caught.value)
