"""JPKI certificate rules (DOMAIN §5): validity period, lifecycle, validity at an instant, and
which resident-record changes revoke which certificates. Pure: no I/O.

Lifecycle of one certificate, in the order its events reach the log (they share the serial key,
so one partition keeps them in order):

    issued ──► active ──suspend──► suspended ──lift (municipality of residence)──► active
                 │                     │
                 └──────revoke─────────┴──► revoked (terminal)

Expiry is not an event: a certificate is expired from the instant after ``not_after``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time
from enum import StrEnum
from typing import Any

from schemas.calendar import JST
from schemas.events.certificates import (
    CertificateIssued,
    CertificateKind,
    CertificateRevoked,
    CertificateSuspended,
    RevocationReason,
    SuspensionLifted,
)
from schemas.events.residents import ChangeReason

VALID_BIRTHDAYS = 5  # both certificates on a card are valid to the 5th birthday after issuance


# ---------------------------------------------------------------------------- validity period


def birthday_in(year: int, birth_date: date) -> date:
    """The birthday in ``year``; 29 February falls on 28 February in common years."""
    try:
        return birth_date.replace(year=year)
    except ValueError:
        return date(year, 2, 28)


def expiry_date(birth_date: date, issued_on: date) -> date:
    """The holder's 5th birthday after the day of issuance (a birthday on that day not counted)."""
    first = (
        issued_on.year
        if birthday_in(issued_on.year, birth_date) > issued_on
        else issued_on.year + 1
    )
    return birthday_in(first + VALID_BIRTHDAYS - 1, birth_date)


def validity_period(birth_date: date, issued_at: datetime) -> tuple[datetime, datetime]:
    """``(not_before, not_after)``: from issuance to the end (Japan time) of the 5th birthday."""
    issued_on = issued_at.astimezone(JST).date()
    last_day = expiry_date(birth_date, issued_on)
    end = datetime.combine(last_day, time(23, 59, 59), JST)
    return issued_at.astimezone(UTC), end.astimezone(UTC)


# ---------------------------------------------------------------------------- lifecycle


class Status(StrEnum):
    ACTIVE = "active"
    SUSPENDED = "suspended"
    REVOKED = "revoked"


@dataclass(frozen=True, slots=True)
class CertificateState:
    """What the pipeline knows of one certificate. A serial first seen revoked (listed by a CRL
    before its issuance reached this center) has no holder or period until ``issued`` arrives."""

    serial: str
    status: Status
    changed_at: datetime  # when it entered ``status`` (for an active one: issued or lifted)
    kind: CertificateKind | None = None
    municipality: str | None = None
    resident_code: str | None = None
    issuer: str | None = None
    not_before: datetime | None = None
    not_after: datetime | None = None
    reason: RevocationReason | None = None

    @property
    def holder_known(self) -> bool:
        return self.municipality is not None


@dataclass(frozen=True, slots=True)
class Refusal:
    """A lifecycle event that cannot apply: recorded with its code, never silently dropped."""

    code: str
    message: str


@dataclass(frozen=True, slots=True)
class Step:
    """The result of one event: the new state (unchanged for a no-op) or a refusal."""

    state: CertificateState | None
    transition: Status | None = None  # the status entered, when the event changed something
    refusal: Refusal | None = None


LifecycleEvent = CertificateIssued | CertificateSuspended | SuspensionLifted | CertificateRevoked
LIFECYCLE_EVENTS = (CertificateIssued, CertificateSuspended, SuspensionLifted, CertificateRevoked)


def step(state: CertificateState | None, event: LifecycleEvent) -> Step:
    """Apply one lifecycle event to a certificate's state."""
    if isinstance(event, CertificateIssued):
        return _issue(state, event)
    if isinstance(event, CertificateRevoked):
        return _revoke(state, event)
    if state is None:
        return Step(None, refusal=_unknown(event.serial))
    if isinstance(event, CertificateSuspended):
        return _suspend(state, event)
    return _lift(state, event)


def _issue(state: CertificateState | None, event: CertificateIssued) -> Step:
    issued = CertificateState(
        serial=event.serial,
        status=Status.ACTIVE,
        kind=event.kind,
        municipality=event.municipality,
        resident_code=event.resident_code,
        issuer=event.issuer,
        not_before=event.not_before,
        not_after=event.not_after,
        changed_at=event.not_before,
    )
    if state is None:
        return Step(issued, Status.ACTIVE)
    if not state.holder_known:
        # Revoked before its issuance arrived (a CRL, or the other center's copy): keep the
        # revocation, learn the holder and period.
        return Step(
            replace(
                issued,
                status=state.status,
                reason=state.reason,
                changed_at=state.changed_at,
            )
        )
    if _same_issue(state, issued):
        return Step(state)
    return Step(
        state,
        refusal=Refusal(
            "serial_reused",
            f"certificate {event.serial} was issued already to another holder or with another "
            f"period ({state.municipality}:{state.resident_code}, {state.not_before} – "
            f"{state.not_after}); a serial is never reused",
        ),
    )


def _same_issue(a: CertificateState, b: CertificateState) -> bool:
    fields = ("kind", "municipality", "resident_code", "issuer", "not_before", "not_after")
    return all(getattr(a, f) == getattr(b, f) for f in fields)


def _revoke(state: CertificateState | None, event: CertificateRevoked) -> Step:
    if state is None:
        revoked = CertificateState(
            serial=event.serial,
            status=Status.REVOKED,
            kind=event.kind,
            reason=event.reason,
            changed_at=event.revoked_at,
        )
        return Step(revoked, Status.REVOKED)
    if state.status is Status.REVOKED:
        # Revocation is terminal. Two revocations of one certificate (the CRL and the automatic
        # one, or both centers' copies) keep the earliest, whatever order they arrive in, so
        # every center ends in the same state.
        kind = state.kind or event.kind  # a CRL does not say the kind; the revoker does
        if (event.revoked_at, str(event.reason)) < (state.changed_at, str(state.reason)):
            return Step(replace(state, reason=event.reason, changed_at=event.revoked_at, kind=kind))
        return Step(replace(state, kind=kind))
    return Step(
        replace(state, status=Status.REVOKED, reason=event.reason, changed_at=event.revoked_at),
        Status.REVOKED,
    )


def _suspend(state: CertificateState, event: CertificateSuspended) -> Step:
    if state.status is Status.REVOKED:
        return Step(state, refusal=_revoked(state, "suspended"))
    if state.not_after is not None and event.suspended_at > state.not_after:
        return Step(
            state,
            refusal=Refusal(
                "expired",
                f"certificate {state.serial} expired at {state.not_after.isoformat()}; "
                "there is nothing to suspend",
            ),
        )
    if state.status is Status.SUSPENDED:
        return Step(state)  # a card reported lost twice is suspended once
    return Step(
        replace(state, status=Status.SUSPENDED, reason=event.reason, changed_at=event.suspended_at),
        Status.SUSPENDED,
    )


def _lift(state: CertificateState, event: SuspensionLifted) -> Step:
    if state.status is Status.REVOKED:
        return Step(state, refusal=_revoked(state, "lifted from suspension"))
    if state.status is not Status.SUSPENDED:
        return Step(
            state,
            refusal=Refusal(
                "not_suspended", f"certificate {state.serial} is not suspended; nothing to lift"
            ),
        )
    if event.municipality != state.municipality:
        return Step(
            state,
            refusal=Refusal(
                "not_municipality_of_residence",
                f"only the holder's municipality of residence ({state.municipality}) may lift "
                f"the suspension of certificate {state.serial}; {event.municipality} may not",
            ),
        )
    return Step(
        replace(state, status=Status.ACTIVE, reason=None, changed_at=event.lifted_at),
        Status.ACTIVE,
    )


def _unknown(serial: str) -> Refusal:
    return Refusal("unknown_certificate", f"no certificate {serial} has been issued")


def _revoked(state: CertificateState, what: str) -> Refusal:
    return Refusal(
        "already_revoked",
        f"certificate {state.serial} was revoked ({state.reason}) at "
        f"{state.changed_at.isoformat()} and cannot be {what}",
    )


# ---------------------------------------------------------------------------- validity check


class Validity(StrEnum):
    VALID = "valid"
    REVOKED = "revoked"
    SUSPENDED = "suspended"
    EXPIRED = "expired"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class Check:
    """The answer to "may this certificate be relied on at that instant?"."""

    serial: str
    status: Validity
    reason: str | None = None  # the revocation/suspension reason, or why it is unknown
    since: datetime | None = None  # when the certificate entered this state


def check(state: CertificateState | None, serial: str, at: datetime) -> Check:
    """Validity of a certificate at ``at``, from its current state.

    A revocation or suspension counts from its own time, so a request made before a revocation
    reached the pipeline is judged as it stood then. A suspension that was later lifted is not
    remembered: checks are made at (or close after) the instant of the request.
    """
    if state is None:
        return Check(serial, Validity.UNKNOWN, "not_issued")
    changed_at = state.changed_at
    blocked = state.status is not Status.ACTIVE and changed_at <= at
    # Revoked or suspended after it had expired: expiry came first and is the answer.
    if blocked and (state.not_after is None or changed_at <= state.not_after):
        status = Validity.REVOKED if state.status is Status.REVOKED else Validity.SUSPENDED
        return Check(serial, status, state.reason, changed_at)
    if state.not_before is None or state.not_after is None:
        # Known only from a revocation that takes effect later than ``at``.
        return Check(serial, Validity.UNKNOWN, "not_issued")
    if at > state.not_after:
        return Check(serial, Validity.EXPIRED, "validity_ended", state.not_after)
    if at < state.not_before:
        return Check(serial, Validity.UNKNOWN, "not_yet_valid", state.not_before)
    since = state.changed_at if state.status is Status.ACTIVE else state.not_before
    return Check(serial, Validity.VALID, None, since)


# ---------------------------------------------------------------------------- automatic revocation

BASIC_FOUR = ("name", "address", "birth_date", "sex")  # 基本4情報

_REVOKING_REMOVALS: Mapping[ChangeReason, RevocationReason] = {
    ChangeReason.DEATH: RevocationReason.DEATH,
    ChangeReason.MOVE_OUT: RevocationReason.REMOVAL,
    ChangeReason.EX_OFFICIO_REMOVAL: RevocationReason.EX_OFFICIO,
}


def basic_four(personal: Mapping[str, Any]) -> tuple[str, ...]:
    """The basic four items of an opened ``PersonalData``, as comparable text."""
    return tuple(str(personal[item]) for item in BASIC_FOUR)


@dataclass(frozen=True, slots=True, order=True)
class HolderEvent:
    """A resident-record change that revokes certificates issued before it."""

    at: datetime  # when the change was recorded: certificates issued before it are affected
    reason: RevocationReason


def holder_event(
    change: ChangeReason, basic_four_changed: bool, at: datetime
) -> HolderEvent | None:
    """What a change recorded at ``at`` means for the resident's certificates (DOMAIN §5).

    Death or removal revokes both certificates; a change to any basic-four item (whatever the
    reason says: a 職権修正 may or may not touch them) revokes the signature certificate.
    """
    if change in _REVOKING_REMOVALS:
        return HolderEvent(at, _REVOKING_REMOVALS[change])
    if basic_four_changed:
        return HolderEvent(at, RevocationReason.BASIC_INFO_CHANGED)
    return None


def revocation_due(
    kind: CertificateKind, not_before: datetime, history: Iterable[HolderEvent]
) -> HolderEvent | None:
    """The first holder event that revokes a certificate of ``kind`` issued at ``not_before``.

    Decided from the whole history whichever arrives first, the certificate or the change, so a
    certificate whose issuance reaches the pipeline after the change is revoked all the same.
    """
    for event in sorted(history):
        if event.at < not_before:
            continue
        if (
            event.reason is RevocationReason.BASIC_INFO_CHANGED
            and kind is not CertificateKind.SIGNATURE
        ):
            continue
        return event
    return None
