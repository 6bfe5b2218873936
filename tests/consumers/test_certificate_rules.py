"""Unit tests of the pure JPKI certificate rules (``consumers/certificates/rules.py``)."""

from __future__ import annotations

import calendar
from datetime import UTC, date, datetime, time, timedelta

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from consumers.certificates.rules import (
    CertificateState,
    Check,
    HolderEvent,
    LifecycleEvent,
    Status,
    Step,
    Validity,
    basic_four,
    birthday_in,
    check,
    expiry_date,
    holder_event,
    revocation_due,
    step,
    validity_period,
)
from schemas.calendar import JST
from schemas.events.certificates import (
    CertificateIssued,
    CertificateKind,
    CertificateRevoked,
    CertificateSuspended,
    RevocationReason,
    SuspensionLifted,
)
from schemas.events.residents import REMOVAL_REASONS, ChangeReason, PersonalData

MICROSECOND = timedelta(microseconds=1)

SERIAL = "00000000000000A1"
MUNICIPALITY = "131016"  # 千代田区
OTHER_MUNICIPALITY = "131024"  # 中央区
RESIDENT = "13101000001"
OTHER_RESIDENT = "13101000002"
ISSUER = "CN=Signature CA for JPKI,OU=JPKI,O=J-LIS,C=JP"

# Holder born 1990-04-02, card issued 2024-04-02 10:00 JST: expires at the end of 2029-04-02 JST.
BIRTH = date(1990, 4, 2)
NOT_BEFORE = datetime(2024, 4, 2, 1, 0, tzinfo=UTC)
NOT_AFTER = datetime(2029, 4, 2, 14, 59, 59, tzinfo=UTC)


# ---------------------------------------------------------------------------- builders


def issued(**overrides: object) -> CertificateIssued:
    fields: dict[str, object] = {
        "serial": SERIAL,
        "kind": CertificateKind.SIGNATURE,
        "municipality": MUNICIPALITY,
        "resident_code": RESIDENT,
        "not_before": NOT_BEFORE,
        "not_after": NOT_AFTER,
        "issuer": ISSUER,
    }
    fields.update(overrides)
    return CertificateIssued.model_validate(fields)


def suspended(at: datetime, serial: str = SERIAL) -> CertificateSuspended:
    return CertificateSuspended(serial=serial, suspended_at=at)


def lifted(
    at: datetime, municipality: str = MUNICIPALITY, serial: str = SERIAL
) -> SuspensionLifted:
    return SuspensionLifted(serial=serial, municipality=municipality, lifted_at=at)


def revoked(
    at: datetime,
    reason: RevocationReason = RevocationReason.HOLDER_REQUEST,
    kind: CertificateKind | None = CertificateKind.SIGNATURE,
    serial: str = SERIAL,
) -> CertificateRevoked:
    return CertificateRevoked(serial=serial, kind=kind, reason=reason, revoked_at=at)


def run(*events: LifecycleEvent, state: CertificateState | None = None) -> CertificateState:
    """Apply events that must all be accepted; the resulting state."""
    for event in events:
        result = step(state, event)
        assert result.refusal is None, result.refusal
        state = result.state
    assert state is not None
    return state


def active() -> CertificateState:
    return run(issued())


def days(n: float) -> timedelta:
    return timedelta(days=n)


def birthday(year: int, birth: date) -> date:
    """The birthday in ``year``, computed independently of the module under test."""
    if (birth.month, birth.day) == (2, 29) and not calendar.isleap(year):
        return date(year, 2, 28)
    return birth.replace(year=year)


# ---------------------------------------------------------------------------- validity period


def test_birthday_in_is_the_same_day_in_another_year() -> None:
    assert birthday_in(2030, date(1985, 11, 3)) == date(2030, 11, 3)


@pytest.mark.parametrize(
    ("year", "expected"),
    [(2023, date(2023, 2, 28)), (2024, date(2024, 2, 29)), (2100, date(2100, 2, 28))],
)
def test_birthday_in_of_29_february_falls_on_28_february_in_common_years(
    year: int, expected: date
) -> None:
    assert birthday_in(year, date(2000, 2, 29)) == expected


def test_expiry_is_the_5th_birthday_after_issuance() -> None:
    # Issued 2024-06-01; birthdays after it: 2024-10-10, 2025, 2026, 2027, 2028-10-10.
    assert expiry_date(date(1980, 10, 10), date(2024, 6, 1)) == date(2028, 10, 10)


def test_issuance_on_the_birthday_does_not_count_that_birthday() -> None:
    assert expiry_date(date(1980, 10, 10), date(2024, 10, 10)) == date(2029, 10, 10)


def test_issuance_the_day_before_the_birthday_counts_that_birthday() -> None:
    assert expiry_date(date(1980, 10, 10), date(2024, 10, 9)) == date(2028, 10, 10)


def test_issuance_the_day_after_the_birthday_waits_for_next_years() -> None:
    assert expiry_date(date(1980, 10, 10), date(2024, 10, 11)) == date(2029, 10, 10)


def test_29_february_birth_expires_on_28_february_in_a_common_year() -> None:
    # Birthdays after 2022-03-01: 2023-02-28, 2024-02-29, 2025-02-28, 2026-02-28, 2027-02-28.
    assert expiry_date(date(2000, 2, 29), date(2022, 3, 1)) == date(2027, 2, 28)


def test_29_february_birth_expires_on_29_february_in_a_leap_year() -> None:
    # Birthdays after 2023-03-01: 2024-02-29, 2025, 2026, 2027, 2028-02-29.
    assert expiry_date(date(2000, 2, 29), date(2023, 3, 1)) == date(2028, 2, 29)


def test_29_february_birth_issued_on_28_february_of_a_common_year_skips_that_birthday() -> None:
    # 2023-02-28 is the birthday in 2023, so it is not counted.
    assert expiry_date(date(2000, 2, 29), date(2023, 2, 28)) == date(2028, 2, 29)


def test_29_february_birth_issued_on_28_february_of_a_leap_year_counts_the_29th() -> None:
    assert expiry_date(date(2000, 2, 29), date(2024, 2, 28)) == date(2028, 2, 29)


@given(
    birth=st.dates(min_value=date(1900, 1, 1), max_value=date(2020, 12, 31)),
    age_in_days=st.integers(min_value=1, max_value=120 * 366),
)
@example(birth=date(2000, 2, 29), age_in_days=(date(2023, 2, 28) - date(2000, 2, 29)).days)
@example(birth=date(2000, 2, 29), age_in_days=(date(2024, 2, 29) - date(2000, 2, 29)).days)
@example(birth=date(2000, 2, 29), age_in_days=(date(2024, 2, 28) - date(2000, 2, 29)).days)
@example(birth=date(1999, 12, 31), age_in_days=(date(2024, 12, 31) - date(1999, 12, 31)).days)
def test_expiry_is_a_birthday_and_exactly_the_5th_after_issuance(
    birth: date, age_in_days: int
) -> None:
    issued_on = birth + days(age_in_days)
    expiry = expiry_date(birth, issued_on)

    assert expiry == birthday(expiry.year, birth)
    assert expiry > issued_on
    assert expiry.year - issued_on.year in (4, 5)
    birthdays = [
        birthday(year, birth)
        for year in range(issued_on.year, expiry.year + 1)
        if issued_on < birthday(year, birth) <= expiry
    ]
    assert len(birthdays) == 5


def test_validity_period_runs_from_issuance_to_the_end_of_the_5th_birthday_in_japan() -> None:
    issued_at = datetime(2024, 4, 2, 10, 0, tzinfo=JST)
    not_before, not_after = validity_period(BIRTH, issued_at)

    assert not_before == issued_at
    assert not_before.tzinfo is UTC
    assert not_after.tzinfo is UTC
    assert not_after == datetime(2029, 4, 2, 23, 59, 59, tzinfo=JST)
    assert not_after == datetime(2029, 4, 2, 14, 59, 59, tzinfo=UTC)


def test_validity_period_uses_the_japanese_date_of_a_late_evening_utc_issuance() -> None:
    # 2024-04-01 16:30 UTC is already 2024-04-02 01:30 in Japan: issued on the birthday itself,
    # so that birthday does not count (with the UTC date the expiry would be 2028-04-02).
    issued_at = datetime(2024, 4, 1, 16, 30, tzinfo=UTC)
    not_before, not_after = validity_period(BIRTH, issued_at)

    assert not_before == issued_at
    assert not_after.astimezone(JST).date() == date(2029, 4, 2)


def test_validity_period_just_before_midnight_in_japan_is_still_that_day() -> None:
    # 2024-04-01 14:59:59 UTC is 23:59:59 JST on the day before the birthday: counted.
    issued_at = datetime(2024, 4, 1, 14, 59, 59, tzinfo=UTC)
    _, not_after = validity_period(BIRTH, issued_at)
    assert not_after.astimezone(JST).date() == date(2028, 4, 2)


@given(
    birth=st.dates(min_value=date(1900, 1, 1), max_value=date(2020, 12, 31)),
    issued_at=st.datetimes(
        min_value=datetime(2021, 1, 2), max_value=datetime(2090, 12, 31), timezones=st.just(UTC)
    ),
)
def test_validity_period_ends_at_235959_japan_time_of_the_expiry_date(
    birth: date, issued_at: datetime
) -> None:
    not_before, not_after = validity_period(birth, issued_at)

    assert not_before == issued_at
    assert not_before.tzinfo is UTC
    assert not_after.tzinfo is UTC
    end_in_japan = not_after.astimezone(JST)
    assert end_in_japan.time() == time(23, 59, 59)
    assert end_in_japan.date() == expiry_date(birth, issued_at.astimezone(JST).date())


# ---------------------------------------------------------------------------- lifecycle: issue


def test_issue_makes_an_active_certificate() -> None:
    result = step(None, issued())

    assert result.refusal is None
    assert result.transition is Status.ACTIVE
    assert result.state == CertificateState(
        serial=SERIAL,
        status=Status.ACTIVE,
        changed_at=NOT_BEFORE,
        kind=CertificateKind.SIGNATURE,
        municipality=MUNICIPALITY,
        resident_code=RESIDENT,
        issuer=ISSUER,
        not_before=NOT_BEFORE,
        not_after=NOT_AFTER,
    )


def test_identical_issue_again_changes_nothing_and_is_not_refused() -> None:
    state = active()
    result = step(state, issued())

    assert result == Step(state)  # same state, no transition, no refusal


def test_identical_issue_of_a_suspended_certificate_keeps_it_suspended() -> None:
    state = run(suspended(NOT_BEFORE + days(1)), state=active())
    result = step(state, issued())

    assert result.state == state
    assert result.transition is None
    assert result.refusal is None


@pytest.mark.parametrize(
    "overrides",
    [
        {"resident_code": OTHER_RESIDENT},
        {"municipality": OTHER_MUNICIPALITY},
        {"kind": CertificateKind.USER_AUTHENTICATION},
        {"not_after": NOT_AFTER + days(1)},
        {"not_before": NOT_BEFORE + timedelta(seconds=1)},
        {"issuer": "CN=User Authentication CA for JPKI,OU=JPKI,O=J-LIS,C=JP"},
    ],
    ids=["resident", "municipality", "kind", "not_after", "not_before", "issuer"],
)
def test_issue_of_a_known_serial_with_another_holder_or_period_is_refused_serial_reused(
    overrides: dict[str, object],
) -> None:
    state = active()
    result = step(state, issued(**overrides))

    assert result.refusal is not None
    assert result.refusal.code == "serial_reused"
    assert result.state == state
    assert result.transition is None


# ---------------------------------------------------------------------------- lifecycle: suspend


def test_suspend_an_active_certificate_makes_it_suspended() -> None:
    at = NOT_BEFORE + days(30)
    result = step(active(), suspended(at))

    assert result.refusal is None
    assert result.transition is Status.SUSPENDED
    assert result.state is not None
    assert result.state.status is Status.SUSPENDED
    assert result.state.reason is RevocationReason.LOSS
    assert result.state.changed_at == at


def test_suspend_a_suspended_certificate_is_a_no_op() -> None:
    state = run(suspended(NOT_BEFORE + days(30)), state=active())
    result = step(state, suspended(NOT_BEFORE + days(31)))

    assert result.state == state
    assert result.transition is None
    assert result.refusal is None


def test_suspend_a_revoked_certificate_is_refused_already_revoked() -> None:
    state = run(revoked(NOT_BEFORE + days(10)), state=active())
    result = step(state, suspended(NOT_BEFORE + days(11)))

    assert result.refusal is not None
    assert result.refusal.code == "already_revoked"
    assert result.state == state
    assert result.transition is None


def test_suspend_after_not_after_is_refused_expired() -> None:
    state = active()
    result = step(state, suspended(NOT_AFTER + MICROSECOND))

    assert result.refusal is not None
    assert result.refusal.code == "expired"
    assert result.state == state
    assert result.transition is None


def test_suspend_exactly_at_not_after_is_still_accepted() -> None:
    result = step(active(), suspended(NOT_AFTER))

    assert result.refusal is None
    assert result.transition is Status.SUSPENDED


@pytest.mark.parametrize(
    "event",
    [suspended(NOT_BEFORE), lifted(NOT_BEFORE)],
    ids=["suspend", "lift"],
)
def test_suspend_or_lift_of_an_unknown_serial_is_refused_unknown_certificate(
    event: LifecycleEvent,
) -> None:
    result = step(None, event)

    assert result.state is None
    assert result.transition is None
    assert result.refusal is not None
    assert result.refusal.code == "unknown_certificate"


# ---------------------------------------------------------------------------- lifecycle: lift


def test_lift_by_the_municipality_of_residence_makes_it_active_again() -> None:
    lifted_at = NOT_BEFORE + days(40)
    state = run(suspended(NOT_BEFORE + days(30)), state=active())
    result = step(state, lifted(lifted_at))

    assert result.refusal is None
    assert result.transition is Status.ACTIVE
    assert result.state is not None
    assert result.state.status is Status.ACTIVE
    assert result.state.reason is None
    assert result.state.changed_at == lifted_at


def test_lift_by_another_municipality_is_refused_and_leaves_it_suspended() -> None:
    state = run(suspended(NOT_BEFORE + days(30)), state=active())
    result = step(state, lifted(NOT_BEFORE + days(40), municipality=OTHER_MUNICIPALITY))

    assert result.refusal is not None
    assert result.refusal.code == "not_municipality_of_residence"
    assert result.state == state
    assert result.transition is None


def test_lift_of_an_active_certificate_is_refused_not_suspended() -> None:
    state = active()
    result = step(state, lifted(NOT_BEFORE + days(40)))

    assert result.refusal is not None
    assert result.refusal.code == "not_suspended"
    assert result.state == state


def test_lift_of_a_revoked_certificate_is_refused_already_revoked() -> None:
    state = run(suspended(NOT_BEFORE + days(30)), revoked(NOT_BEFORE + days(35)), state=active())
    result = step(state, lifted(NOT_BEFORE + days(40)))

    assert result.refusal is not None
    assert result.refusal.code == "already_revoked"
    assert result.state == state


# ---------------------------------------------------------------------------- lifecycle: revoke


@pytest.mark.parametrize("suspend_first", [False, True], ids=["active", "suspended"])
def test_revoke_an_active_or_suspended_certificate_makes_it_revoked(suspend_first: bool) -> None:
    state = active()
    if suspend_first:
        state = run(suspended(NOT_BEFORE + days(30)), state=state)
    at = NOT_BEFORE + days(50)
    result = step(state, revoked(at, RevocationReason.KEY_COMPROMISE))

    assert result.refusal is None
    assert result.transition is Status.REVOKED
    assert result.state is not None
    assert result.state.status is Status.REVOKED
    assert result.state.reason is RevocationReason.KEY_COMPROMISE
    assert result.state.changed_at == at
    assert result.state.resident_code == RESIDENT


def test_revoke_a_revoked_certificate_with_a_later_revocation_keeps_the_first() -> None:
    first = NOT_BEFORE + days(50)
    state = run(revoked(first, RevocationReason.DEATH), state=active())
    result = step(state, revoked(first + days(1), RevocationReason.LOSS))

    assert result.state == state
    assert result.transition is None
    assert result.refusal is None


def test_revoke_a_revoked_certificate_with_an_earlier_revocation_takes_the_earlier() -> None:
    first = NOT_BEFORE + days(50)
    state = run(revoked(first + days(1), RevocationReason.LOSS), state=active())
    result = step(state, revoked(first, RevocationReason.DEATH))

    assert result.refusal is None
    assert result.transition is None  # it was revoked already
    assert result.state is not None
    assert result.state.status is Status.REVOKED
    assert (result.state.changed_at, result.state.reason) == (first, RevocationReason.DEATH)


_INSTANTS = st.integers(min_value=0, max_value=12).map(lambda h: NOT_BEFORE + timedelta(hours=h))
_REVOCATIONS = st.lists(
    st.tuples(_INSTANTS, st.sampled_from(RevocationReason)), min_size=1, max_size=6
)


@given(
    pair=_REVOCATIONS.flatmap(lambda xs: st.tuples(st.just(xs), st.permutations(xs))),
    issued_first=st.booleans(),
)
def test_any_order_of_revocations_ends_in_the_same_state_with_the_earliest(
    pair: tuple[list[tuple[datetime, RevocationReason]], list[tuple[datetime, RevocationReason]]],
    issued_first: bool,
) -> None:
    revocations, permuted = pair
    start = active() if issued_first else None

    def final(order: list[tuple[datetime, RevocationReason]]) -> CertificateState:
        return run(*(revoked(at, reason) for at, reason in order), state=start)

    state = final(revocations)
    assert state == final(permuted)
    assert state.status is Status.REVOKED
    assert (state.changed_at, str(state.reason)) == min((at, str(r)) for at, r in revocations)


def test_revocation_of_an_unknown_serial_creates_a_holderless_revoked_state() -> None:
    at = NOT_BEFORE - days(1)
    result = step(None, revoked(at, RevocationReason.KEY_COMPROMISE, kind=None))

    assert result.refusal is None
    assert result.transition is Status.REVOKED
    assert result.state == CertificateState(
        serial=SERIAL,
        status=Status.REVOKED,
        changed_at=at,
        reason=RevocationReason.KEY_COMPROMISE,
    )
    assert not result.state.holder_known


def test_issue_after_a_holderless_revocation_learns_the_holder_and_stays_revoked() -> None:
    at = NOT_BEFORE + days(3)
    state = run(revoked(at, RevocationReason.KEY_COMPROMISE, kind=None))
    result = step(state, issued())

    assert result.refusal is None
    assert result.transition is None  # the status did not change: still revoked
    assert result.state == CertificateState(
        serial=SERIAL,
        status=Status.REVOKED,
        changed_at=at,
        kind=CertificateKind.SIGNATURE,
        municipality=MUNICIPALITY,
        resident_code=RESIDENT,
        issuer=ISSUER,
        not_before=NOT_BEFORE,
        not_after=NOT_AFTER,
        reason=RevocationReason.KEY_COMPROMISE,
    )
    assert result.state.holder_known


def test_holderless_revocations_in_either_order_end_in_the_same_state() -> None:
    from_crl = revoked(NOT_BEFORE + days(2), RevocationReason.KEY_COMPROMISE, kind=None)
    automatic = revoked(NOT_BEFORE + days(1), RevocationReason.DEATH)

    assert run(from_crl, automatic) == run(automatic, from_crl)


# ---------------------------------------------------------------------------- check


def test_check_of_an_unknown_serial_is_unknown_not_issued() -> None:
    assert check(None, SERIAL, NOT_BEFORE) == Check(SERIAL, Validity.UNKNOWN, "not_issued")


@pytest.mark.parametrize("at", [NOT_BEFORE, NOT_BEFORE + days(700), NOT_AFTER])
def test_check_of_an_active_certificate_within_its_period_is_valid(at: datetime) -> None:
    result = check(active(), SERIAL, at)

    assert result.status is Validity.VALID
    assert result.reason is None
    assert result.since == NOT_BEFORE


def test_check_one_microsecond_after_not_after_is_expired_since_not_after() -> None:
    result = check(active(), SERIAL, NOT_AFTER + MICROSECOND)

    assert result.status is Validity.EXPIRED
    assert result.since == NOT_AFTER


def test_check_before_not_before_is_unknown_not_yet_valid() -> None:
    result = check(active(), SERIAL, NOT_BEFORE - MICROSECOND)

    assert result.status is Validity.UNKNOWN
    assert result.reason == "not_yet_valid"
    assert result.since == NOT_BEFORE


def test_check_of_a_lifted_certificate_is_valid_since_the_lift() -> None:
    lifted_at = NOT_BEFORE + days(40)
    state = run(suspended(NOT_BEFORE + days(30)), lifted(lifted_at), state=active())
    result = check(state, SERIAL, lifted_at + days(1))

    assert result.status is Validity.VALID
    assert result.since == lifted_at


def test_check_of_a_revoked_certificate_from_its_revocation_is_revoked() -> None:
    at = NOT_BEFORE + days(50)
    state = run(revoked(at, RevocationReason.LOSS), state=active())

    for instant in (at, at + MICROSECOND, NOT_AFTER):
        result = check(state, SERIAL, instant)
        assert result.status is Validity.REVOKED
        assert result.reason == RevocationReason.LOSS
        assert result.since == at


def test_check_of_a_revoked_certificate_before_its_revocation_is_valid() -> None:
    at = NOT_BEFORE + days(50)
    state = run(revoked(at, RevocationReason.LOSS), state=active())
    result = check(state, SERIAL, at - MICROSECOND)

    assert result.status is Validity.VALID
    assert result.since == NOT_BEFORE


def test_check_of_a_suspended_certificate_from_its_suspension_is_suspended() -> None:
    at = NOT_BEFORE + days(30)
    state = run(suspended(at), state=active())

    result = check(state, SERIAL, at)
    assert result.status is Validity.SUSPENDED
    assert result.reason == RevocationReason.LOSS
    assert result.since == at

    before = check(state, SERIAL, at - MICROSECOND)
    assert before.status is Validity.VALID
    assert before.since == NOT_BEFORE


def test_check_of_a_revocation_after_expiry_checked_after_both_is_expired() -> None:
    revoked_at = NOT_AFTER + days(1)
    state = run(revoked(revoked_at, RevocationReason.EXPIRY), state=active())
    result = check(state, SERIAL, revoked_at + days(1))

    assert result.status is Validity.EXPIRED
    assert result.since == NOT_AFTER


def test_check_of_a_holderless_revoked_state_before_the_revocation_is_unknown() -> None:
    at = NOT_BEFORE + days(5)
    state = run(revoked(at, RevocationReason.KEY_COMPROMISE, kind=None))

    before = check(state, SERIAL, at - MICROSECOND)
    assert before.status is Validity.UNKNOWN
    assert before.reason == "not_issued"

    after = check(state, SERIAL, at)
    assert after.status is Validity.REVOKED
    assert after.reason == RevocationReason.KEY_COMPROMISE
    assert after.since == at


def test_check_compares_instants_across_time_zones() -> None:
    state = active()
    assert check(state, SERIAL, NOT_AFTER.astimezone(JST)).status is Validity.VALID
    later = (NOT_AFTER + MICROSECOND).astimezone(JST)
    assert check(state, SERIAL, later).status is Validity.EXPIRED


# ---------------------------------------------------------------------------- holder events


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (ChangeReason.DEATH, RevocationReason.DEATH),
        (ChangeReason.MOVE_OUT, RevocationReason.REMOVAL),
        (ChangeReason.EX_OFFICIO_REMOVAL, RevocationReason.EX_OFFICIO),
    ],
)
@pytest.mark.parametrize("kind", list(CertificateKind))
@pytest.mark.parametrize("basic_four_changed", [False, True])
def test_death_or_removal_revokes_both_kinds(
    change: ChangeReason,
    reason: RevocationReason,
    kind: CertificateKind,
    basic_four_changed: bool,
) -> None:
    at = NOT_BEFORE + days(100)
    event = holder_event(change, basic_four_changed, at)

    assert event == HolderEvent(at, reason)
    assert revocation_due(kind, NOT_BEFORE, [event]) == event


@pytest.mark.parametrize("change", [c for c in ChangeReason if c not in REMOVAL_REASONS], ids=str)
def test_a_basic_four_change_revokes_only_the_signature_certificate(
    change: ChangeReason,
) -> None:
    at = NOT_BEFORE + days(100)
    event = holder_event(change, True, at)

    assert event == HolderEvent(at, RevocationReason.BASIC_INFO_CHANGED)
    assert revocation_due(CertificateKind.SIGNATURE, NOT_BEFORE, [event]) == event
    assert revocation_due(CertificateKind.USER_AUTHENTICATION, NOT_BEFORE, [event]) is None


@pytest.mark.parametrize("change", [c for c in ChangeReason if c not in REMOVAL_REASONS], ids=str)
def test_a_change_without_a_basic_four_change_revokes_nothing(change: ChangeReason) -> None:
    assert holder_event(change, False, NOT_BEFORE + days(100)) is None


def test_household_change_without_a_basic_four_change_revokes_nothing() -> None:
    assert holder_event(ChangeReason.HOUSEHOLD_CHANGE, False, NOT_BEFORE) is None


@pytest.mark.parametrize("kind", list(CertificateKind))
def test_a_change_recorded_before_not_before_does_not_revoke(kind: CertificateKind) -> None:
    event = HolderEvent(NOT_BEFORE - MICROSECOND, RevocationReason.DEATH)
    assert revocation_due(kind, NOT_BEFORE, [event]) is None


@pytest.mark.parametrize("kind", list(CertificateKind))
def test_a_change_recorded_exactly_at_not_before_revokes(kind: CertificateKind) -> None:
    event = HolderEvent(NOT_BEFORE, RevocationReason.DEATH)
    assert revocation_due(kind, NOT_BEFORE, [event]) == event


def test_no_history_revokes_nothing() -> None:
    assert revocation_due(CertificateKind.SIGNATURE, NOT_BEFORE, []) is None


def test_the_first_qualifying_event_after_not_before_is_chosen_from_unsorted_history() -> None:
    earlier_name_change = HolderEvent(NOT_BEFORE - days(10), RevocationReason.BASIC_INFO_CHANGED)
    address_change = HolderEvent(NOT_BEFORE + days(20), RevocationReason.BASIC_INFO_CHANGED)
    move_out = HolderEvent(NOT_BEFORE + days(60), RevocationReason.REMOVAL)
    death = HolderEvent(NOT_BEFORE + days(90), RevocationReason.DEATH)
    history = [death, address_change, earlier_name_change, move_out]

    assert revocation_due(CertificateKind.SIGNATURE, NOT_BEFORE, history) == address_change
    assert revocation_due(CertificateKind.USER_AUTHENTICATION, NOT_BEFORE, history) == move_out


def test_revocation_due_accepts_a_generator_and_mixed_time_zones() -> None:
    in_japan = HolderEvent(
        datetime(2024, 4, 2, 10, 0, 1, tzinfo=JST), RevocationReason.BASIC_INFO_CHANGED
    )
    in_utc = HolderEvent(NOT_BEFORE + days(1), RevocationReason.BASIC_INFO_CHANGED)
    due = revocation_due(CertificateKind.SIGNATURE, NOT_BEFORE, (e for e in [in_utc, in_japan]))
    assert due == in_japan


# ---------------------------------------------------------------------------- basic four


def test_basic_four_picks_name_address_birth_date_and_sex_as_text() -> None:
    personal = {
        "name": "山田 太郎",
        "name_kana": "ヤマダ タロウ",
        "birth_date": BIRTH,
        "sex": "male",
        "address": "東京都千代田区千代田1番1号",
        "my_number": "123456789018",
    }
    assert basic_four(personal) == (
        "山田 太郎",
        "東京都千代田区千代田1番1号",
        "1990-04-02",
        "male",
    )


def test_basic_four_of_personal_data_ignores_the_other_items() -> None:
    personal = PersonalData(
        name="山田 花子",
        birth_date=date(1985, 2, 28),
        sex="female",
        address="東京都中央区築地1丁目1番1号",
    )
    other_kana = personal.model_copy(update={"name_kana": "ヤマダ ハナコ"})
    moved = personal.model_copy(update={"address": "東京都中央区銀座4丁目1番1号"})

    assert basic_four(personal.model_dump()) == basic_four(other_kana.model_dump())
    assert basic_four(personal.model_dump()) != basic_four(moved.model_dump())
