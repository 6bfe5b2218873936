"""Pure rules of the BCL replica (副本) of a municipality's resident register (住民基本台帳).

Everything here works on values the caller hands in: no clock, no storage, no network. The history
of one resident is a sequence of ``RecordedChange``; the rules decide which change is in force,
whether the resident is removed and when the tombstone may be purged, and when a change may be
sent to BCL. Where DOMAIN.md is silent the choice is stated next to the code that makes it.
"""

from __future__ import annotations

import string
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from types import MappingProxyType

from schemas.calendar import is_year_end_closure
from schemas.events.residents import REGISTRATION_REASONS, REMOVAL_REASONS, ChangeReason


class ReplicaRuleError(ValueError):
    """A value or a history that the replica rules cannot accept; the message says what to fix."""


# The schema owns the change reasons; the rules name the two groups that decide status.
REGISTRATIONS = REGISTRATION_REASONS
REMOVALS = REMOVAL_REASONS


def is_removal(reason: ChangeReason) -> bool:
    """Whether a change of this reason leaves the resident's record as a tombstone (消除)."""
    return reason in REMOVALS


def _empty_state() -> Mapping[str, object]:
    return MappingProxyType({})


@dataclass(frozen=True)
class RecordedChange:
    """One change to one resident, as recorded by the source and seen by the replica.

    ``sequence`` is the source's monotonic sequence per municipality, so among the changes of one
    resident a larger sequence means recorded later. ``effective_date`` is the actual change date
    (異動年月日); it is ``None`` only for a death whose date is unknown, which must then say so with
    ``death_date_unknown``. ``state`` is the resident's full record after the change; the rules
    never look inside it.
    """

    sequence: int
    reason: ChangeReason
    effective_date: date | None
    death_date_unknown: bool = False
    state: Mapping[str, object] = field(default_factory=_empty_state)

    def __post_init__(self) -> None:
        # bool is an int subclass; True as a sequence number is a caller's mistake, not 1.
        if isinstance(self.sequence, bool) or not isinstance(self.sequence, int):
            raise ReplicaRuleError(f"sequence must be an int, got {self.sequence!r}")
        if self.sequence < 0:
            raise ReplicaRuleError(f"sequence must be >= 0, got {self.sequence}")
        if not isinstance(self.reason, ChangeReason):
            raise ReplicaRuleError(f"reason must be a ChangeReason, got {self.reason!r}")
        # A datetime is a date subclass; accepting one would compare wrongly with plain dates.
        if isinstance(self.effective_date, datetime):
            raise ReplicaRuleError(
                f"effective_date must be a date, not a datetime ({self.effective_date!r}), "
                "since 異動年月日 is a calendar day"
            )
        if self.death_date_unknown and self.reason is not ChangeReason.DEATH:
            raise ReplicaRuleError(
                f"death_date_unknown is only allowed on a death, not on {self.reason.value} "
                f"(sequence {self.sequence})"
            )
        if self.death_date_unknown and self.effective_date is not None:
            raise ReplicaRuleError(
                f"death of sequence {self.sequence} says its date is unknown but carries "
                f"effective_date {self.effective_date.isoformat()}; drop one of the two"
            )
        if self.effective_date is None and not self.death_date_unknown:
            raise ReplicaRuleError(_missing_date_message(self))
        # A read-only copy: the caller mutating its dict afterwards must not rewrite history.
        object.__setattr__(self, "state", MappingProxyType(dict(self.state)))


def _missing_date_message(change: RecordedChange) -> str:
    return (
        f"{change.reason.value} of sequence {change.sequence} has no effective date "
        "(異動年月日); only a death with death_date_unknown=True may omit it"
    )


def _distinct(history: Iterable[RecordedChange]) -> list[RecordedChange]:
    """The history with repeated deliveries removed, in recording order (by sequence)."""
    by_sequence: dict[int, RecordedChange] = {}
    for change in history:
        seen = by_sequence.setdefault(change.sequence, change)
        if seen != change:
            raise ReplicaRuleError(
                f"two different changes share sequence {change.sequence} "
                f"({seen.reason.value} and {change.reason.value}); a sequence identifies one "
                "recorded change, so the source history is inconsistent"
            )
    return [by_sequence[sequence] for sequence in sorted(by_sequence)]


def _resolved_dates(changes: Sequence[RecordedChange]) -> list[date]:
    """Effective dates of ``changes`` (distinct, in recording order), unknown death dates filled."""
    dates: list[date] = []
    latest: date | None = None
    for change in changes:
        own = change.effective_date
        if own is None:
            own = _day_after_anchor(change, latest)
        dates.append(own)
        latest = own if latest is None else max(latest, own)
    return dates


def _day_after_anchor(change: RecordedChange, anchor: date | None) -> date:
    if not change.death_date_unknown:
        raise ReplicaRuleError(_missing_date_message(change))
    if anchor is None:
        raise ReplicaRuleError(
            f"death of sequence {change.sequence} has an unknown date and no change of the "
            "resident was recorded before it, so there is no date to place it after; record "
            "the death with its date or load the resident's earlier history first"
        )
    try:
        return anchor + timedelta(days=1)
    except OverflowError:
        raise ReplicaRuleError(
            f"death of sequence {change.sequence} would fall after {anchor.isoformat()}, "
            "beyond the last representable date"
        ) from None


def effective_date_of(change: RecordedChange, history: Sequence[RecordedChange]) -> date:
    """The day ``change`` takes effect, given the resident's ``history``.

    A change with a date takes effect on it. A death of unknown date takes effect the day after
    the latest effective date among the resident's changes recorded before it (smaller sequence);
    ``history`` may or may not include ``change`` itself.

    Only changes recorded earlier anchor the death (DOMAIN says "the day after the last recorded
    change"; it does not say which changes count): a change recorded afterwards must not move a
    date already in force, and a later correction that reinstates the resident (a death recorded
    in error) would otherwise push the death past itself and never take effect.
    """
    if change.effective_date is not None:
        return change.effective_date
    if not change.death_date_unknown:
        # Unreachable through the constructor; kept for instances built around it.
        raise ReplicaRuleError(_missing_date_message(change))
    earlier = _distinct(c for c in history if c.sequence < change.sequence)
    dates = _resolved_dates(earlier)
    return _day_after_anchor(change, max(dates, default=None))


def _in_force(history: Sequence[RecordedChange], until: date | None) -> RecordedChange | None:
    changes = _distinct(history)
    best: RecordedChange | None = None
    best_key: tuple[date, int] | None = None
    for change, effective in zip(changes, _resolved_dates(changes), strict=True):
        if until is not None and effective > until:
            continue
        # The actual change date decides; on the same day the later-recorded change wins.
        key = (effective, change.sequence)
        if best_key is None or key > best_key:
            best, best_key = change, key
    return best


def current_change(history: Sequence[RecordedChange]) -> RecordedChange | None:
    """The change that defines the resident's current record, or None for an empty history.

    It is the change with the latest effective date; on equal dates the later-recorded one
    (larger sequence) wins. The order of ``history`` does not matter, and a change delivered more
    than once (same sequence, same content) counts once; two different changes with one sequence
    raise ``ReplicaRuleError``.
    """
    return _in_force(history, None)


def state_on(history: Sequence[RecordedChange], day: date) -> RecordedChange | None:
    """The change in force on ``day``: as ``current_change``, among changes effective by then.

    None if no change had taken effect yet. A change recorded later but back-dated is in force
    from its effective date, so the answer for a past day can change as history arrives.
    """
    return _in_force(history, day)


RETENTION_YEARS = 5


def _years_later(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year + years)
    except ValueError:
        if (day.month, day.day) != (2, 29):
            raise ReplicaRuleError(
                f"{day.isoformat()} plus {years} years is beyond the last representable date"
            ) from None
        # No 29 Feb in the target year: the anniversary falls on the last day of February, as
        # 民法143条 ends a period whose final month lacks the corresponding day.
        return _years_later(day.replace(day=28), years)


@dataclass(frozen=True)
class ResidentStatus:
    """Whether a resident is on the register, and for a removed one, the tombstone's lifetime.

    ``removed_on`` is the effective date of the removal; ``purge_after`` is the last day the
    tombstone must still be kept (see ``purge_due``).
    """

    active: bool
    removed_on: date | None
    purge_after: date | None

    def __post_init__(self) -> None:
        if self.active and (self.removed_on is not None or self.purge_after is not None):
            raise ReplicaRuleError("an active resident has no removal date and no purge date")
        if not self.active and (self.removed_on is None or self.purge_after is None):
            raise ReplicaRuleError("a removed resident needs both removed_on and purge_after")
        if (
            self.removed_on is not None
            and self.purge_after is not None
            and self.purge_after <= self.removed_on
        ):
            raise ReplicaRuleError(
                f"purge_after {self.purge_after.isoformat()} must be later than removed_on "
                f"{self.removed_on.isoformat()}"
            )


def status_of(history: Sequence[RecordedChange]) -> ResidentStatus:
    """Status of the resident whose changes are ``history`` (not empty).

    Removed iff the current change is a removal (転出, 死亡, 職権消除), so a resident who moves
    back in after moving out is active again. ``purge_after`` is ``removed_on`` plus
    ``RETENTION_YEARS`` on the same month and day, 29 Feb becoming 28 Feb in a common year.
    """
    changes = _distinct(history)
    if not changes:
        raise ReplicaRuleError(
            "a resident's status needs at least one recorded change; an empty history is no "
            "resident at all"
        )
    current = current_change(changes)
    assert current is not None  # a non-empty history always has a current change
    if not is_removal(current.reason):
        return ResidentStatus(active=True, removed_on=None, purge_after=None)
    removed_on = effective_date_of(current, changes)
    return ResidentStatus(
        active=False,
        removed_on=removed_on,
        purge_after=_years_later(removed_on, RETENTION_YEARS),
    )


def purge_due(status: ResidentStatus, as_of: date) -> bool:
    """Whether a removed resident's tombstone may be purged on ``as_of``.

    DOMAIN: "the record stays, marked removed, for 5 years after removal, then it is purged".
    Read as: kept through the 5th anniversary of the removal (``purge_after``, included), purged
    from the day after. That is also how 民法 counts a period of years from an event (the day of
    the event not counted, ending on the anniversary). An active resident is never due.
    """
    return status.purge_after is not None and as_of > status.purge_after


@dataclass(frozen=True)
class ConnectionHours:
    """When the municipality's link AP (連携AP) may send changes to BCL.

    The window is ``opens`` (inclusive) to ``closes`` (exclusive) in local wall-clock time, on
    business days: Monday to Friday, not one of ``holidays``, and not in the year-end closure
    29 Dec – 3 Jan. National holidays are the caller's to list: their dates move by law and by
    the equinoxes, so no table of them belongs in a pure rule.
    """

    opens: time
    closes: time
    holidays: frozenset[date] = frozenset()

    def __post_init__(self) -> None:
        if self.opens.tzinfo is not None or self.closes.tzinfo is not None:
            raise ReplicaRuleError(
                "connection hours are wall-clock times without a timezone; the timezone is the "
                "one of the change's own timestamp"
            )
        if not self.opens < self.closes:
            # A window across midnight would make "the business day" of a change ambiguous.
            raise ReplicaRuleError(
                f"connection hours must open before they close on the same day, got "
                f"{self.opens.isoformat()}–{self.closes.isoformat()}"
            )
        for holiday in self.holidays:
            if isinstance(holiday, datetime) or not isinstance(holiday, date):
                raise ReplicaRuleError(f"holidays must be dates, got {holiday!r}")

    def is_business_day(self, day: date) -> bool:
        # 年末年始: the same closure as certificate issuance (DOMAIN §2).
        return day.weekday() < 5 and day not in self.holidays and not is_year_end_closure(day)

    def is_open(self, moment: datetime) -> bool:
        """Whether ``moment`` (wall-clock time in its own timezone) falls inside the window."""
        return self.is_business_day(moment.date()) and self.opens <= moment.time() < self.closes


def transmission_time(changed_at: datetime, hours: ConnectionHours) -> datetime:
    """When a change made at ``changed_at`` goes out to BCL.

    Inside the connection window it goes out at once (``changed_at`` itself); otherwise at the
    opening time of the next business day, in the timezone of ``changed_at``. A change made on a
    business day before opening goes out at that day's opening.
    """
    if changed_at.tzinfo is None or changed_at.utcoffset() is None:
        raise ReplicaRuleError(
            f"changed_at must be timezone-aware, got naive {changed_at.isoformat()}; the "
            "connection hours are local time and a naive timestamp has no locality"
        )
    if hours.is_open(changed_at):
        return changed_at
    day = changed_at.date()
    if not (hours.is_business_day(day) and changed_at.time() < hours.opens):
        day += timedelta(days=1)
        # Terminates: holidays is finite and the year-end closure lasts six days.
        while not hours.is_business_day(day):
            day += timedelta(days=1)
    return datetime.combine(day, hours.opens, tzinfo=changed_at.tzinfo)


# 続柄コード: DOMAIN gives the shape (up to 4 generations of 2 characters, generation n used only
# when 1..n-1 cannot express the relation) but not the table. This small table is our assumption;
# codes outside it are accepted as long as they have the right shape, since only "head" matters to
# the rules and a real municipality's table is larger.
HEAD_OF_HOUSEHOLD = "02"
RELATIONSHIP_TERMS: Mapping[str, str] = MappingProxyType(
    {
        HEAD_OF_HOUSEHOLD: "head of household (世帯主)",
        "03": "spouse (妻/夫)",
        "04": "child (子)",
        "05": "parent (父母)",
        "99": "other (その他)",
    }
)
_MAX_GENERATIONS = 4
_GENERATION_WIDTH = 2


def parse_relationship_code(code: str) -> tuple[str, ...]:
    """The generations of a relationship code (続柄コード), e.g. "0403" → ("04", "03") (子の妻/夫).

    A code is 1 to 4 generations of 2 ASCII digits, nothing more: the same shape the
    ``resident.*`` event schema accepts, so a record valid on the log is never refused here. Which
    combinations make sense ("0302", a spouse's head?) depends on a code table DOMAIN lacks.
    """
    shape = "1 to 4 generations of 2 ASCII digits (続柄コード)"
    if not _GENERATION_WIDTH <= len(code) <= _MAX_GENERATIONS * _GENERATION_WIDTH:
        raise ReplicaRuleError(
            f"relationship code {code!r} has {len(code)} characters, expected 2 to 8: {shape}"
        )
    if len(code) % _GENERATION_WIDTH:
        raise ReplicaRuleError(
            f"relationship code {code!r} has an odd number of characters, expected {shape}"
        )
    if not all(character in string.digits for character in code):
        raise ReplicaRuleError(f"relationship code {code!r} must be {shape}")
    return tuple(
        code[start : start + _GENERATION_WIDTH] for start in range(0, len(code), _GENERATION_WIDTH)
    )


def head_of_household(relationship_code: str) -> bool:
    """Whether the relationship code marks the head of the household (世帯主)."""
    return parse_relationship_code(relationship_code) == (HEAD_OF_HOUSEHOLD,)


HOUSEHOLD_NUMBER_WIDTH = 15
_ALPHANUMERIC = frozenset(string.ascii_letters + string.digits)


def normalize_household_number(raw: str) -> str:
    """A household number (世帯番号) in its fixed form: 15 characters, left-justified, space-padded.

    Shorter input is padded, and input already padded is returned unchanged; trailing spaces are
    padding, any other character must be an ASCII digit or letter. Letters keep their case: the
    source's numbering is not ours to fold. Messages do not echo the number, which identifies a
    household.
    """
    if len(raw) > HOUSEHOLD_NUMBER_WIDTH:
        raise ReplicaRuleError(
            f"household number has {len(raw)} characters, at most {HOUSEHOLD_NUMBER_WIDTH} "
            "allowed (世帯番号: 15 characters, left-justified, space-padded)"
        )
    number = raw.rstrip(" ")
    if not number:
        raise ReplicaRuleError("household number is empty or blank (世帯番号)")
    if not set(number) <= _ALPHANUMERIC:
        raise ReplicaRuleError(
            "household number may only contain ASCII digits and letters, left-justified and "
            "followed by spaces (世帯番号)"
        )
    return number.ljust(HOUSEHOLD_NUMBER_WIDTH, " ")


RESIDENT_CODE_LENGTH = 11


def validate_resident_code(code: str) -> str:
    """The resident record code (住民票コード) unchanged, if it is exactly 11 ASCII digits.

    The real code ends in a check digit, but DOMAIN does not give its algorithm, so none is
    checked here rather than one guessed. Messages do not echo the code: it identifies a person.
    """
    expected = f"exactly {RESIDENT_CODE_LENGTH} ASCII digits (住民票コード)"
    if len(code) != RESIDENT_CODE_LENGTH:
        raise ReplicaRuleError(
            f"resident record code has {len(code)} characters, expected {expected}"
        )
    if not all(character in string.digits for character in code):
        raise ReplicaRuleError(
            f"resident record code has a character other than an ASCII digit, expected {expected}"
        )
    return code
