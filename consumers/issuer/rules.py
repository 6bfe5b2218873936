"""Issuance rules (DOMAIN §2, §3, §6): may this request be issued at that instant, and for what fee.

Pure: the issuer gathers the facts (the municipality's registration, the certificate's state,
the resident's record) and these rules decide. The checks run in the order a center and the
issuing server would make them, and the first that fails is the reason given, so that one
request always gets the same, most basic, reason:

    0. still awaited: answered in time         request_expired
    1. sent by the center it claims            unauthenticated_source
    2. municipality participates, on BCL       municipality_not_participating, not_on_bcl
    3. offers the type                         type_not_offered
    4. open: not 29 Dec–3 Jan, no maintenance, closed_day, maintenance,
       inside the service window, weekday-only outside_service_window, weekday_only
    5. certificate valid at that instant       certificate_unknown, ..._not_for_authentication,
                                               ..._revoked, ..._suspended, ..._expired
    6. resident found and active               resident_not_found, resident_not_active
       (罹災/被災証明書: in a victim ledger)   not_a_victim
    7. age 15 or over                          under_15
    8. seal registered / tax facts present     seal_not_registered, tax_facts_missing
       (罹災/被災証明書: damage assessed)      damage_not_assessed, no_damage
    9. an electronic seal to sign with         no_seal_key

A request its center accepted but could not answer in time (the center went down with it) is
never decided afterwards: the kiosk gave up and the resident retried, at the other center if need
be. When the center returns it is expired, so nothing is issued or charged twice.

A disaster certificate is issued from the victim ledger (被災者台帳), not the replica: it is for
whoever lived in the affected area on the day, even one who has moved out since.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from schemas.calendar import JST, is_year_end_closure
from schemas.events.disaster import DamageCategory, DisasterKind
from schemas.events.issuance import (
    TAX_CERTIFICATE_TYPES,
    CertificateType,
    IssuanceRequested,
    RejectionReason,
)
from schemas.events.municipalities import (
    BCL_CERTIFICATE_TYPES,
    MunicipalityProfile,
    SealKey,
)
from schemas.fees import DISASTER_TYPES

MINIMUM_AGE = 15  # DOMAIN §2: residents under 15 cannot use the service
# How long a kiosk waits for the answer before it tells the resident to try again (assumption:
# generous against the few seconds an answer takes, short against a center's outage).
ANSWER_WINDOW = timedelta(minutes=2)


@dataclass(frozen=True, slots=True)
class Registration:
    """The municipality as the registry holds it."""

    code: str
    joined_on: date | None
    profile: MunicipalityProfile


@dataclass(frozen=True, slots=True)
class CertificateFacts:
    """The user-authentication certificate as the certificates projection holds it."""

    kind: str | None  # signature | user_authentication; None if only a CRL named it
    status: str  # active | suspended | revoked
    changed_at: datetime
    reason: str | None
    municipality: str | None
    resident_code: str | None
    not_before: datetime | None
    not_after: datetime | None


@dataclass(frozen=True, slots=True)
class ResidentFacts:
    municipality: str
    resident_code: str
    active: bool
    birth_date: date
    seal_registered: bool
    tax_years: frozenset[int]


@dataclass(frozen=True, slots=True)
class VictimFacts:
    """A person in a disaster's victim ledger, as the disaster projection holds it."""

    disaster_id: str
    disaster_name: str
    disaster_kind: DisasterKind
    occurred_on: date
    declared_at: datetime
    municipality: str
    resident_code: str
    name: str
    birth_date: date
    address: str
    damage: DamageCategory | None  # the dwelling's assessed damage; None until assessed


@dataclass(frozen=True, slots=True)
class Rejection:
    reason: RejectionReason
    message: str


def local_time(at: datetime) -> datetime:
    return at.astimezone(JST)


# ----------------------------------------------------------------------------------- the checks


def refusal(
    request: IssuanceRequested,
    *,
    at: datetime,
    origin: str,
    source: str,
    registration: Registration | None,
    certificate: CertificateFacts | None,
    resident: ResidentFacts | None,
    victim: VictimFacts | None,
    seal_key: SealKey | None,
    waited: timedelta,
    answer_window: timedelta,
) -> Rejection | None:
    """Why ``request``, made at ``at``, cannot be issued; None when it can. ``victim`` is the
    holder's entry in the victim ledger the request names (``victim_for``); ``waited`` is how
    long it has waited since its center accepted it."""
    # Each check runs only if every check before it passed.
    return (
        _awaited(waited, answer_window)
        or _sender(origin, source)
        or _participation(request, registration, at)
        or _opening(request, registration, at)
        or _certificate(request, certificate, at)
        or _person(request, certificate, resident, victim, at)
        or (None if seal_key is not None else _no_seal_key(registration))
    )


def victim_for(
    request: IssuanceRequested, entries: Iterable[VictimFacts], at: datetime
) -> VictimFacts | None:
    """The ledger entry a disaster certificate is asked for: of the disaster named in the print
    options (``disaster_id``), else of the latest disaster declared by ``at``."""
    wanted = request.print_options.get("disaster_id")
    return max(
        (
            entry
            for entry in entries
            if entry.declared_at <= at and wanted in (None, entry.disaster_id)
        ),
        key=lambda entry: (entry.declared_at, entry.disaster_id),
        default=None,
    )


def _awaited(waited: timedelta, answer_window: timedelta) -> Rejection | None:
    if waited > answer_window:
        return Rejection(
            RejectionReason.REQUEST_EXPIRED,
            f"the center accepted the request {int(waited.total_seconds())} s ago and could not "
            f"answer within {int(answer_window.total_seconds())} s; the kiosk has told the "
            "resident to try again, so it is not issued now (nothing is charged)",
        )
    return None


def _sender(origin: str, source: str) -> Rejection | None:
    # DESIGN §7: a center may submit only requests stamped with its own origin.
    if source != f"center:{origin}":
        return Rejection(
            RejectionReason.UNAUTHENTICATED_SOURCE,
            f"a request entering at center {origin!r} must come from 'center:{origin}', not "
            f"{source!r}; requests are accepted only through a center gateway",
        )
    return None


def _participation(
    request: IssuanceRequested, registration: Registration | None, at: datetime
) -> Rejection | None:
    code = request.resident_municipality
    day = local_time(at).date()
    if registration is None or registration.joined_on is None or registration.joined_on > day:
        since = (
            f" (it joins on {registration.joined_on})"
            if registration is not None and registration.joined_on is not None
            else ""
        )
        return Rejection(
            RejectionReason.MUNICIPALITY_NOT_PARTICIPATING,
            f"municipality {code} does not take part in convenience-store issuance{since}",
        )
    profile = registration.profile
    if not profile.uses_bcl:
        return Rejection(
            RejectionReason.NOT_ON_BCL,
            f"{profile.name} issues from its own server; the center forwards its requests there",
        )
    kind = request.certificate_type
    if kind not in profile.offered_types or kind not in BCL_CERTIFICATE_TYPES:
        offered = ", ".join(t.value for t in profile.offered_types)
        return Rejection(
            RejectionReason.TYPE_NOT_OFFERED,
            f"{profile.name} does not offer {kind.value} at stores (it offers {offered})",
        )
    system_since = profile.disaster_system_since
    if kind in DISASTER_TYPES and (system_since is None or system_since > day):
        return Rejection(
            RejectionReason.TYPE_NOT_OFFERED,
            f"{profile.name} does not use the cloud disaster victim support system "
            "(クラウド型被災者支援システム)"
            + (f" before {system_since}" if system_since is not None else "")
            + f", so its {kind.value} certificates are issued at its counter only",
        )
    return None


def _opening(
    request: IssuanceRequested, registration: Registration | None, at: datetime
) -> Rejection | None:
    assert registration is not None  # checked by _participation
    profile = registration.profile
    moment = local_time(at)
    day = moment.date()
    if is_year_end_closure(day):
        return Rejection(
            RejectionReason.CLOSED_DAY,
            f"the service is closed from 29 December to 3 January ({day:%d %b} is closed)",
        )
    for window in profile.maintenance:
        if window.starts_at <= at < window.ends_at:
            return Rejection(
                RejectionReason.MAINTENANCE,
                f"{profile.name} announced maintenance until "
                f"{local_time(window.ends_at):%Y-%m-%d %H:%M} ({window.reason})",
            )
    service = profile.service_window
    if not service.opens <= moment.time() < service.closes:
        return Rejection(
            RejectionReason.OUTSIDE_SERVICE_WINDOW,
            f"{profile.name} issues between {service.opens:%H:%M} and {service.closes:%H:%M} "
            f"Japan time; the request came at {moment:%H:%M:%S}",
        )
    kind = request.certificate_type
    if kind in profile.weekday_only_types and not is_weekday(day, profile.holidays):
        return Rejection(
            RejectionReason.WEEKDAY_ONLY,
            f"{profile.name} issues {kind.value} on weekdays only",
        )
    return None


def is_weekday(day: date, holidays: Collection[date]) -> bool:
    return day.weekday() < 5 and day not in holidays


def _certificate(
    request: IssuanceRequested, certificate: CertificateFacts | None, at: datetime
) -> Rejection | None:
    serial = request.auth_serial
    if certificate is None or certificate.not_before is None or certificate.not_after is None:
        return Rejection(
            RejectionReason.CERTIFICATE_UNKNOWN,
            f"certificate {serial} is not known to have been issued",
        )
    if certificate.kind != "user_authentication":
        return Rejection(
            RejectionReason.CERTIFICATE_NOT_FOR_AUTHENTICATION,
            f"certificate {serial} is a {certificate.kind or 'not a user-authentication'} "
            "certificate; the kiosk must read the "
            "card's user-authentication certificate (利用者証明用)",
        )
    expired = at > certificate.not_after
    # A revocation or suspension counts from its own time; one recorded after it expired does not
    # change that it had expired.
    blocked = certificate.status != "active" and certificate.changed_at <= at
    if blocked and not (expired and certificate.changed_at > certificate.not_after):
        reason = certificate.reason or "unspecified"
        if certificate.status == "revoked":
            return Rejection(
                RejectionReason.CERTIFICATE_REVOKED,
                f"certificate {serial} was revoked at {certificate.changed_at.isoformat()} "
                f"({reason})",
            )
        return Rejection(
            RejectionReason.CERTIFICATE_SUSPENDED,
            f"certificate {serial} is suspended since {certificate.changed_at.isoformat()} "
            f"({reason}); the municipality of residence can lift the suspension",
        )
    if expired:
        return Rejection(
            RejectionReason.CERTIFICATE_EXPIRED,
            f"certificate {serial} expired at {certificate.not_after.isoformat()}",
        )
    if at < certificate.not_before:
        return Rejection(
            RejectionReason.CERTIFICATE_UNKNOWN,
            f"certificate {serial} is valid only from {certificate.not_before.isoformat()}",
        )
    return None


def _person(
    request: IssuanceRequested,
    certificate: CertificateFacts | None,
    resident: ResidentFacts | None,
    victim: VictimFacts | None,
    at: datetime,
) -> Rejection | None:
    """Checks 6–8: the person the certificate is about, and the records it certifies."""
    if request.certificate_type in DISASTER_TYPES:
        if victim is None:
            return _not_a_victim(request)
        return _age(victim.birth_date, at) or _damage(victim)
    rejection = _resident(request, certificate, resident)
    if rejection is not None:
        return rejection
    assert resident is not None
    return _age(resident.birth_date, at) or _records(request, resident)


def _resident(
    request: IssuanceRequested,
    certificate: CertificateFacts | None,
    resident: ResidentFacts | None,
) -> Rejection | None:
    assert certificate is not None  # checked by _certificate
    wanted = request.resident_municipality
    if resident is None or certificate.municipality != wanted:
        return Rejection(
            RejectionReason.RESIDENT_NOT_FOUND,
            f"no resident of {wanted} holds certificate {request.auth_serial} in the replica",
        )
    if not resident.active:
        return Rejection(
            RejectionReason.RESIDENT_NOT_ACTIVE,
            f"the holder of certificate {request.auth_serial} is no longer a resident of "
            f"{wanted} (moved out or deceased)",
        )
    return None


def fifteenth_birthday(birth_date: date) -> date:
    """The day from which a person is 15 (年齢計算ニ関スル法律 with 民法 §143: the age goes up at
    the end of the day before the anniversary, so one born on 29 February is 15 from 1 March in a
    common year)."""
    try:
        return birth_date.replace(year=birth_date.year + MINIMUM_AGE)
    except ValueError:
        return date(birth_date.year + MINIMUM_AGE, 3, 1)


def _age(birth_date: date, at: datetime) -> Rejection | None:
    if local_time(at).date() < fifteenth_birthday(birth_date):
        return Rejection(
            RejectionReason.UNDER_15,
            f"residents under {MINIMUM_AGE} cannot use the service; the holder may from "
            f"{fifteenth_birthday(birth_date)}",
        )
    return None


def _records(request: IssuanceRequested, resident: ResidentFacts) -> Rejection | None:
    kind = request.certificate_type
    if kind is CertificateType.INKAN and not resident.seal_registered:
        return Rejection(
            RejectionReason.SEAL_NOT_REGISTERED,
            "the resident has no registered seal (印鑑登録) at the municipality",
        )
    if kind in TAX_CERTIFICATE_TYPES and request.fiscal_year not in resident.tax_years:
        return Rejection(
            RejectionReason.TAX_FACTS_MISSING,
            f"the municipality holds no tax facts of fiscal year {request.fiscal_year} for the "
            "resident",
        )
    return None


def _not_a_victim(request: IssuanceRequested) -> Rejection:
    wanted = request.print_options.get("disaster_id")
    ledger = (
        f"the victim ledger (被災者台帳) of {wanted}"
        if wanted
        else f"any victim ledger (被災者台帳) of {request.resident_municipality}"
    )
    return Rejection(
        RejectionReason.NOT_A_VICTIM,
        f"the holder of certificate {request.auth_serial} is not in {ledger}: "
        f"{request.certificate_type.value} certificates are issued to residents of a declared "
        "disaster's affected area",
    )


def _damage(victim: VictimFacts) -> Rejection | None:
    if victim.damage is None:
        return Rejection(
            RejectionReason.DAMAGE_NOT_ASSESSED,
            f"the damage to the holder's dwelling in {victim.disaster_id} is not assessed yet "
            "(住家被害認定); the certificate can be printed once the municipality records it",
        )
    if victim.damage is DamageCategory.NONE:
        return Rejection(
            RejectionReason.NO_DAMAGE,
            f"the holder's dwelling was assessed as undamaged (被害なし) in {victim.disaster_id}; "
            "the resident may ask the municipality for a second survey (再調査)",
        )
    return None


def _no_seal_key(registration: Registration | None) -> Rejection:
    name = registration.profile.name if registration is not None else "the municipality"
    return Rejection(
        RejectionReason.NO_SEAL_KEY,
        f"{name} has no electronic seal key usable here; its staff must create one "
        "(`bcl municipality seal-key create`)",
    )


def signing_key(
    profile: MunicipalityProfile, at: datetime, held: Collection[str]
) -> SealKey | None:
    """The newest seal key, added by ``at`` and not revoked by then, whose private half is held.

    ``at`` is the instant of signing (the decision), not of the request: a request judged as of
    its own time is still sealed with the key in force when the seal is made.
    """
    usable = [
        key
        for key in profile.seal_keys
        if key.key_id in held
        and key.added_at <= at
        and (key.revoked_at is None or key.revoked_at > at)
    ]
    return max(usable, key=lambda key: key.added_at, default=None)
