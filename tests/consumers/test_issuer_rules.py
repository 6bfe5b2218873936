"""Unit tests of the pure issuance rules (``consumers/issuer/rules.py``): every rejection code at
its boundaries, the order of the checks, the choice of seal key and the fee quote."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from uuid import UUID

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from consumers.issuer.rules import (
    ANSWER_WINDOW,
    CertificateFacts,
    Registration,
    Rejection,
    ResidentFacts,
    VictimFacts,
    fifteenth_birthday,
    is_year_end_closure,
    refusal,
    signing_key,
    victim_for,
)
from pipeline.seals import generate_seal_key, public_seal_pem
from schemas.calendar import JST
from schemas.events.disaster import DamageCategory, DisasterKind
from schemas.events.issuance import (
    CertificateType,
    IssuanceRequested,
    RejectionReason,
    StoreOperator,
)
from schemas.events.municipalities import (
    MaintenanceWindow,
    MunicipalityProfile,
    SealKey,
    TimeWindow,
)
from tests.helpers import jst, utc

SECOND = timedelta(seconds=1)

MUNICIPALITY = "131016"  # 千代田区
OTHER_MUNICIPALITY = "131024"  # 中央区
RESIDENT_CODE = "13101000001"
SERIAL = "00000000000000A1"
ORIGIN = "east"
SOURCE = "center:east"

NOW = datetime(2026, 6, 10, 10, 0, tzinfo=JST)  # a Wednesday morning in Japan
SATURDAY = date(2026, 6, 13)
HOLIDAY = date(2026, 7, 20)  # 海の日, a Monday
OFFERED = (
    CertificateType.JUMINHYO,
    CertificateType.INKAN,
    CertificateType.TAX_INCOME,
    CertificateType.TAX_ASSESSMENT,
    CertificateType.TAX_PAYMENT,
)
SEAL_PEM = public_seal_pem(generate_seal_key())


# ---------------------------------------------------------------------------- builders


def request(**overrides: Any) -> IssuanceRequested:
    """A valid request for one copy of a 住民票 of a 千代田区 resident."""
    fields: dict[str, Any] = {
        "request_id": UUID(int=1),
        "store_operator": StoreOperator.SEVEN_ELEVEN,
        "store_id": "0001",
        "store_municipality": OTHER_MUNICIPALITY,
        "resident_municipality": MUNICIPALITY,
        "auth_serial": SERIAL,
        "certificate_type": CertificateType.JUMINHYO,
        "copies": 1,
    }
    fields.update(overrides)
    return IssuanceRequested.model_validate(fields)


def profile(**overrides: Any) -> MunicipalityProfile:
    """On BCL, offering 住民票, 印鑑 and the tax types in the default 6:30–23:00 window."""
    fields: dict[str, Any] = {"name": "千代田区", "uses_bcl": True, "offered_types": OFFERED}
    fields.update(overrides)
    return MunicipalityProfile.model_validate(fields)


def registration(joined_on: date | None = date(2020, 4, 1), **overrides: Any) -> Registration:
    return Registration(code=MUNICIPALITY, joined_on=joined_on, profile=profile(**overrides))


def certificate(**overrides: Any) -> CertificateFacts:
    """An active user-authentication certificate valid from April 2024 to April 2029."""
    facts = CertificateFacts(
        kind="user_authentication",
        status="active",
        changed_at=jst(2024, 4, 2, 10, 0),
        reason=None,
        municipality=MUNICIPALITY,
        resident_code=RESIDENT_CODE,
        not_before=jst(2024, 4, 2, 10, 0),
        not_after=jst(2029, 4, 2, 23, 59, 59),
    )
    return dataclasses.replace(facts, **overrides)


def resident(**overrides: Any) -> ResidentFacts:
    """An active adult resident with a registered seal and tax facts of 2024 and 2025."""
    facts = ResidentFacts(
        municipality=MUNICIPALITY,
        resident_code=RESIDENT_CODE,
        active=True,
        birth_date=date(1990, 4, 2),
        seal_registered=True,
        tax_years=frozenset({2024, 2025}),
    )
    return dataclasses.replace(facts, **overrides)


def victim(**overrides: Any) -> VictimFacts:
    """An adult in the ledger of a storm declared the day before, their dwelling half destroyed."""
    facts = VictimFacts(
        disaster_id="2026-storm-10",
        disaster_name="令和8年台風第10号",
        disaster_kind=DisasterKind.STORM,
        occurred_on=date(2026, 6, 9),
        declared_at=jst(2026, 6, 9, 8, 0),
        municipality=MUNICIPALITY,
        resident_code=RESIDENT_CODE,
        name="千代田 花子",
        birth_date=date(1990, 4, 2),
        address="東京都千代田区一番町1-1",
        damage=DamageCategory.HALF,
    )
    return dataclasses.replace(facts, **overrides)


KEYS_ADDED_AT = jst(2020, 4, 1, 9, 0)


def seal_key(
    key_id: str = "0123456789abcdef",
    added_at: datetime = KEYS_ADDED_AT,
    revoked_at: datetime | None = None,
) -> SealKey:
    return SealKey(key_id=key_id, public_key=SEAL_PEM, added_at=added_at, revoked_at=revoked_at)


REGISTRATION = registration()
CERTIFICATE = certificate()
RESIDENT = resident()
SEAL_KEY = seal_key()


def decide(
    req: IssuanceRequested | None = None,
    *,
    at: datetime = NOW,
    origin: str = ORIGIN,
    source: str = SOURCE,
    registration: Registration | None = REGISTRATION,
    certificate: CertificateFacts | None = CERTIFICATE,
    resident: ResidentFacts | None = RESIDENT,
    victim: VictimFacts | None = None,
    seal_key: SealKey | None = SEAL_KEY,
    waited: timedelta = timedelta(seconds=1),
) -> Rejection | None:
    """``refusal`` with every fact valid unless overridden."""
    return refusal(
        req if req is not None else request(),
        at=at,
        origin=origin,
        source=source,
        registration=registration,
        certificate=certificate,
        resident=resident,
        victim=victim,
        seal_key=seal_key,
        waited=waited,
        answer_window=ANSWER_WINDOW,
    )


def assert_sentence(rejection: Rejection) -> None:
    message = rejection.message
    assert message.strip() == message
    assert len(message.split()) >= 4, message
    assert "None" not in message, message


def outcome(req: IssuanceRequested | None = None, **facts: Any) -> RejectionReason | None:
    """The reason given, or None when issued; a rejection's message must be a sentence."""
    rejection = decide(req, **facts)
    if rejection is None:
        return None
    assert_sentence(rejection)
    return rejection.reason


def rejected(req: IssuanceRequested | None = None, **facts: Any) -> Rejection:
    rejection = decide(req, **facts)
    assert rejection is not None
    assert_sentence(rejection)
    return rejection


# ---------------------------------------------------------------------------- every code once


def test_a_valid_request_is_issued() -> None:
    assert decide() is None


@pytest.mark.parametrize(
    "req",
    [
        request(certificate_type=CertificateType.INKAN),
        request(certificate_type=CertificateType.TAX_INCOME, fiscal_year=2025),
        request(certificate_type=CertificateType.TAX_ASSESSMENT, fiscal_year=2024),
        request(certificate_type=CertificateType.TAX_PAYMENT, fiscal_year=2025, copies=10),
    ],
    ids=["inkan", "tax_income", "tax_assessment", "tax_payment"],
)
def test_every_offered_type_is_issued_when_the_records_are_there(req: IssuanceRequested) -> None:
    assert decide(req) is None


# A municipality on the cloud disaster system since April 2024, offering the disaster certificates.
DISASTER_SYSTEM = registration(
    offered_types=(*OFFERED, CertificateType.RISAI, CertificateType.HISAI),
    disaster_system_since=date(2024, 4, 1),
)
RISAI = request(certificate_type=CertificateType.RISAI)
HISAI = request(certificate_type=CertificateType.HISAI)

ONE_CASE_PER_CODE: dict[RejectionReason, dict[str, Any]] = {
    RejectionReason.REQUEST_EXPIRED: {"waited": timedelta(minutes=10)},
    RejectionReason.UNAUTHENTICATED_SOURCE: {"source": "center:west"},
    RejectionReason.MUNICIPALITY_NOT_PARTICIPATING: {"registration": None},
    RejectionReason.NOT_ON_BCL: {
        "registration": registration(uses_bcl=False, offered_types=(CertificateType.KOSEKI,))
    },
    RejectionReason.TYPE_NOT_OFFERED: {"req": request(certificate_type=CertificateType.KOSEKI)},
    RejectionReason.CLOSED_DAY: {"at": jst(2026, 12, 30, 10, 0)},
    RejectionReason.MAINTENANCE: {
        "registration": registration(
            maintenance=(
                MaintenanceWindow(
                    starts_at=NOW - SECOND, ends_at=NOW + SECOND, reason="replica upgrade"
                ),
            )
        )
    },
    RejectionReason.OUTSIDE_SERVICE_WINDOW: {"at": jst(2026, 6, 10, 23, 30)},
    RejectionReason.WEEKDAY_ONLY: {
        "registration": registration(weekday_only_types=(CertificateType.JUMINHYO,)),
        "at": jst(2026, 6, 13, 10, 0),
    },
    RejectionReason.CERTIFICATE_UNKNOWN: {"certificate": None},
    RejectionReason.CERTIFICATE_NOT_FOR_AUTHENTICATION: {
        "certificate": certificate(kind="signature")
    },
    RejectionReason.CERTIFICATE_REVOKED: {
        "certificate": certificate(status="revoked", changed_at=NOW - SECOND, reason="loss")
    },
    RejectionReason.CERTIFICATE_SUSPENDED: {
        "certificate": certificate(status="suspended", changed_at=NOW - SECOND, reason="loss")
    },
    RejectionReason.CERTIFICATE_EXPIRED: {"at": jst(2029, 4, 3, 10, 0)},
    RejectionReason.RESIDENT_NOT_FOUND: {"resident": None},
    RejectionReason.RESIDENT_NOT_ACTIVE: {"resident": resident(active=False)},
    RejectionReason.UNDER_15: {"resident": resident(birth_date=date(2012, 1, 1))},
    RejectionReason.SEAL_NOT_REGISTERED: {
        "req": request(certificate_type=CertificateType.INKAN),
        "resident": resident(seal_registered=False),
    },
    RejectionReason.TAX_FACTS_MISSING: {
        "req": request(certificate_type=CertificateType.TAX_INCOME, fiscal_year=2023)
    },
    RejectionReason.NOT_A_VICTIM: {"req": RISAI, "registration": DISASTER_SYSTEM},
    RejectionReason.DAMAGE_NOT_ASSESSED: {
        "req": RISAI,
        "registration": DISASTER_SYSTEM,
        "victim": victim(damage=None),
    },
    RejectionReason.NO_DAMAGE: {
        "req": RISAI,
        "registration": DISASTER_SYSTEM,
        "victim": victim(damage=DamageCategory.NONE),
    },
    RejectionReason.NO_SEAL_KEY: {"seal_key": None},
}


def test_the_table_covers_every_rejection_code() -> None:
    """A new code must come with a case here, so none goes untested."""
    assert set(ONE_CASE_PER_CODE) == set(RejectionReason)


@pytest.mark.parametrize(
    ("reason", "facts"), list(ONE_CASE_PER_CODE.items()), ids=[r.value for r in ONE_CASE_PER_CODE]
)
def test_each_code_is_given_with_a_sentence(reason: RejectionReason, facts: dict[str, Any]) -> None:
    assert outcome(**facts) is reason


# ---------------------------------------------------------------------------- 1. the sender


def test_a_request_from_another_center_than_its_origin_is_unauthenticated() -> None:
    rejection = rejected(origin="east", source="center:west")

    assert rejection.reason is RejectionReason.UNAUTHENTICATED_SOURCE
    assert "'center:east'" in rejection.message  # what the source must be


@pytest.mark.parametrize("source", ["east", "center:East", "center:east ", "kiosk:east", ""])
def test_only_the_exact_center_source_is_accepted(source: str) -> None:
    """DESIGN §7: a center may submit only requests stamped with its own origin."""
    assert outcome(source=source) is RejectionReason.UNAUTHENTICATED_SOURCE


# ---------------------------------------------------------------------------- 0. in time


@pytest.mark.parametrize(
    ("waited", "expected"),
    [
        (ANSWER_WINDOW, None),
        (ANSWER_WINDOW + timedelta(milliseconds=1), RejectionReason.REQUEST_EXPIRED),
    ],
    ids=["at-the-window", "just-after"],
)
def test_a_request_not_answered_within_the_window_is_expired(
    waited: timedelta, expected: RejectionReason | None
) -> None:
    assert outcome(waited=waited) is expected


def test_an_expired_request_is_not_judged_at_all() -> None:
    """A center back from an outage expires what it held, whatever the request was."""
    assert (
        outcome(waited=timedelta(hours=1), source="kiosk:east", registration=None)
        is RejectionReason.REQUEST_EXPIRED
    )
    assert "try again" in rejected(waited=timedelta(hours=1)).message


# ---------------------------------------------------------------------------- 2. participation


def test_an_unknown_municipality_does_not_participate() -> None:
    assert outcome(registration=None) is RejectionReason.MUNICIPALITY_NOT_PARTICIPATING


def test_a_registration_without_a_joining_date_does_not_participate() -> None:
    assert outcome(registration=registration(joined_on=None)) is (
        RejectionReason.MUNICIPALITY_NOT_PARTICIPATING
    )


@pytest.mark.parametrize(
    ("joined_on", "at", "expected"),
    [
        (
            date(2026, 6, 11),
            jst(2026, 6, 10, 22, 59, 59),
            RejectionReason.MUNICIPALITY_NOT_PARTICIPATING,
        ),
        (date(2026, 6, 10), jst(2026, 6, 10, 6, 30), None),
        # 2026-06-09 21:30 UTC is already 06:30 on 10 June in Japan, the joining day.
        (date(2026, 6, 10), utc(2026, 6, 9, 21, 30), None),
        (date(2026, 6, 9), jst(2026, 6, 10, 10, 0), None),
    ],
    ids=["day-after-request", "on-the-day", "on-the-day-by-japan-date", "day-before"],
)
def test_a_municipality_participates_from_its_joining_day_in_japan(
    joined_on: date, at: datetime, expected: RejectionReason | None
) -> None:
    """The joining day is a Japan date; a municipality takes part on that day itself."""
    assert outcome(registration=registration(joined_on=joined_on), at=at) is expected


def test_a_municipality_joining_later_is_told_when() -> None:
    rejection = rejected(registration=registration(joined_on=date(2026, 6, 11)))

    assert rejection.reason is RejectionReason.MUNICIPALITY_NOT_PARTICIPATING
    assert "2026-06-11" in rejection.message


def test_a_municipality_with_its_own_server_is_not_on_bcl() -> None:
    assert outcome(registration=registration(uses_bcl=False)) is RejectionReason.NOT_ON_BCL


@pytest.mark.parametrize(
    ("req", "offered"),
    [
        (request(certificate_type=CertificateType.KOSEKI), OFFERED),
        (request(certificate_type=CertificateType.KOSEKI_FUHYO), OFFERED),
        (request(certificate_type=CertificateType.JUMINHYO_KISAI), OFFERED),
        (
            request(certificate_type=CertificateType.TAX_PAYMENT, fiscal_year=2025),
            (CertificateType.JUMINHYO, CertificateType.INKAN),
        ),
        (request(certificate_type=CertificateType.RISAI), OFFERED),
    ],
    ids=["koseki", "koseki_fuhyo", "juminhyo_kisai", "tax-not-listed", "risai-not-listed"],
)
def test_a_type_not_offered_is_refused(req: IssuanceRequested, offered: tuple[Any, ...]) -> None:
    rejection = rejected(req, registration=registration(offered_types=offered))

    assert rejection.reason is RejectionReason.TYPE_NOT_OFFERED
    assert req.certificate_type.value in rejection.message
    assert all(kind.value in rejection.message for kind in offered)  # what it does offer


# ----------------------------------------------------------------- 4. opening: closed days


@pytest.mark.parametrize(
    ("at", "expected"),
    [
        (jst(2026, 12, 28, 22, 0), None),
        (jst(2026, 12, 28, 22, 59, 59), None),
        (jst(2026, 12, 29, 10, 0), RejectionReason.CLOSED_DAY),
        (jst(2026, 12, 31, 12, 0), RejectionReason.CLOSED_DAY),
        (jst(2027, 1, 1, 12, 0), RejectionReason.CLOSED_DAY),
        (jst(2027, 1, 3, 10, 0), RejectionReason.CLOSED_DAY),
        (jst(2027, 1, 3, 22, 59, 59), RejectionReason.CLOSED_DAY),
        (jst(2027, 1, 4, 10, 0), None),
        (jst(2027, 1, 4, 6, 30), None),
        # 28 Dec 15:30 UTC is 29 Dec 00:30 in Japan: closed, though still 28 Dec in UTC.
        (utc(2026, 12, 28, 15, 30), RejectionReason.CLOSED_DAY),
        # 3 Jan 21:30 UTC is 4 Jan 06:30 in Japan: open again.
        (utc(2027, 1, 3, 21, 30), None),
    ],
    ids=[
        "28dec-22:00",
        "28dec-22:59:59",
        "29dec-10:00",
        "31dec",
        "1jan",
        "3jan-10:00",
        "3jan-22:59:59",
        "4jan-10:00",
        "4jan-06:30",
        "28dec-15:30utc",
        "3jan-21:30utc",
    ],
)
def test_the_service_is_closed_from_29_december_to_3_january_japan_time(
    at: datetime, expected: RejectionReason | None
) -> None:
    """DOMAIN §2: the closure follows the Japan calendar, not the UTC one."""
    assert outcome(at=at) is expected


@given(day=st.dates(min_value=date(2000, 1, 1), max_value=date(2100, 12, 31)))
@example(day=date(2026, 12, 28))
@example(day=date(2026, 12, 29))
@example(day=date(2027, 1, 3))
@example(day=date(2027, 1, 4))
def test_year_end_closure_is_exactly_29_december_to_3_january(day: date) -> None:
    year_end = date(day.year, 12, 29) <= day <= date(day.year, 12, 31)
    new_year = date(day.year, 1, 1) <= day <= date(day.year, 1, 3)
    assert is_year_end_closure(day) == (year_end or new_year)


# ----------------------------------------------------------------- 4. opening: maintenance

MAINTENANCE_STARTS = jst(2026, 6, 10, 12, 0)
MAINTENANCE_ENDS = jst(2026, 6, 10, 14, 0)
UNDER_MAINTENANCE = registration(
    maintenance=(
        MaintenanceWindow(
            starts_at=MAINTENANCE_STARTS, ends_at=MAINTENANCE_ENDS, reason="replica upgrade"
        ),
    )
)


@pytest.mark.parametrize(
    ("at", "expected"),
    [
        (MAINTENANCE_STARTS - SECOND, None),
        (MAINTENANCE_STARTS, RejectionReason.MAINTENANCE),
        (MAINTENANCE_ENDS - SECOND, RejectionReason.MAINTENANCE),
        (MAINTENANCE_ENDS, None),
    ],
    ids=["second-before-start", "at-start", "second-before-end", "at-end"],
)
def test_maintenance_covers_its_start_but_not_its_end(
    at: datetime, expected: RejectionReason | None
) -> None:
    """A window is [starts_at, ends_at): the service is back at the announced end."""
    assert outcome(at=at, registration=UNDER_MAINTENANCE) is expected


def test_maintenance_says_until_when_and_why() -> None:
    rejection = rejected(at=MAINTENANCE_STARTS, registration=UNDER_MAINTENANCE)

    assert rejection.reason is RejectionReason.MAINTENANCE
    assert "2026-06-10 14:00" in rejection.message  # Japan time, as the resident reads it
    assert "replica upgrade" in rejection.message


# ----------------------------------------------------------------- 4. opening: service window


@pytest.mark.parametrize(
    ("at", "expected"),
    [
        (jst(2026, 6, 10, 6, 29, 59), RejectionReason.OUTSIDE_SERVICE_WINDOW),
        (jst(2026, 6, 10, 6, 30), None),
        (jst(2026, 6, 10, 22, 59, 59), None),
        (jst(2026, 6, 10, 23, 0), RejectionReason.OUTSIDE_SERVICE_WINDOW),
        (jst(2026, 6, 10, 0, 0), RejectionReason.OUTSIDE_SERVICE_WINDOW),
        # The window is Japan time: 21:29:59 UTC is 06:29:59 JST, 14:00 UTC is 23:00 JST.
        (utc(2026, 6, 9, 21, 29, 59), RejectionReason.OUTSIDE_SERVICE_WINDOW),
        (utc(2026, 6, 9, 21, 30), None),
        (utc(2026, 6, 10, 14, 0), RejectionReason.OUTSIDE_SERVICE_WINDOW),
    ],
    ids=[
        "06:29:59",
        "06:30:00",
        "22:59:59",
        "23:00:00",
        "midnight",
        "06:29:59-as-utc",
        "06:30:00-as-utc",
        "23:00:00-as-utc",
    ],
)
def test_the_default_service_window_is_0630_to_2300_japan_time(
    at: datetime, expected: RejectionReason | None
) -> None:
    """DOMAIN §2: 6:30 is the first open second, 23:00 the first closed one."""
    assert outcome(at=at) is expected


NARROW = registration(service_window=TimeWindow(opens=time(7, 0), closes=time(20, 0)))


@pytest.mark.parametrize(
    ("at", "expected"),
    [
        (jst(2026, 6, 10, 6, 30), RejectionReason.OUTSIDE_SERVICE_WINDOW),
        (jst(2026, 6, 10, 6, 59, 59), RejectionReason.OUTSIDE_SERVICE_WINDOW),
        (jst(2026, 6, 10, 7, 0), None),
        (jst(2026, 6, 10, 19, 59, 59), None),
        (jst(2026, 6, 10, 20, 0), RejectionReason.OUTSIDE_SERVICE_WINDOW),
        (jst(2026, 6, 10, 22, 0), RejectionReason.OUTSIDE_SERVICE_WINDOW),
    ],
    ids=["06:30", "06:59:59", "07:00", "19:59:59", "20:00", "22:00"],
)
def test_a_narrower_municipal_window_applies(
    at: datetime, expected: RejectionReason | None
) -> None:
    assert outcome(at=at, registration=NARROW) is expected


def test_outside_the_window_the_message_gives_the_hours() -> None:
    rejection = rejected(at=jst(2026, 6, 10, 20, 0), registration=NARROW)

    assert rejection.reason is RejectionReason.OUTSIDE_SERVICE_WINDOW
    assert "07:00" in rejection.message
    assert "20:00" in rejection.message
    assert "20:00:00" in rejection.message  # when the request came, Japan time


@given(
    at=st.datetimes(
        min_value=datetime(2025, 1, 1), max_value=datetime(2028, 12, 31), timezones=st.just(UTC)
    )
)
@example(at=utc(2026, 12, 28, 15, 30))
@example(at=utc(2026, 6, 9, 21, 30))
@example(at=utc(2026, 6, 10, 14, 0))
def test_an_otherwise_valid_request_is_refused_only_on_closed_days_and_outside_the_window(
    at: datetime,
) -> None:
    """Nothing but the calendar and the clock refuses a request valid in every other way."""
    local = at.astimezone(JST)
    if is_year_end_closure(local.date()):
        expected: RejectionReason | None = RejectionReason.CLOSED_DAY
    elif not time(6, 30) <= local.time() < time(23, 0):
        expected = RejectionReason.OUTSIDE_SERVICE_WINDOW
    else:
        expected = None
    assert outcome(at=at) is expected


# ----------------------------------------------------------------- 4. opening: weekdays

INKAN_ON_WEEKDAYS = registration(weekday_only_types=(CertificateType.INKAN,), holidays=(HOLIDAY,))


@pytest.mark.parametrize(
    ("kind", "at", "expected"),
    [
        (CertificateType.INKAN, jst(2026, 6, 10, 10, 0), None),
        (CertificateType.INKAN, jst(2026, 6, 12, 22, 59, 59), None),
        (CertificateType.INKAN, jst(2026, 6, 13, 10, 0), RejectionReason.WEEKDAY_ONLY),
        (CertificateType.INKAN, jst(2026, 6, 14, 10, 0), RejectionReason.WEEKDAY_ONLY),
        (CertificateType.INKAN, jst(2026, 7, 20, 10, 0), RejectionReason.WEEKDAY_ONLY),
        (CertificateType.INKAN, jst(2026, 7, 21, 10, 0), None),
        # Friday 21:30 UTC is Saturday 06:30 in Japan.
        (CertificateType.INKAN, utc(2026, 6, 12, 21, 30), RejectionReason.WEEKDAY_ONLY),
        (CertificateType.JUMINHYO, jst(2026, 6, 13, 10, 0), None),
        (CertificateType.JUMINHYO, jst(2026, 7, 20, 10, 0), None),
    ],
    ids=[
        "inkan-wednesday",
        "inkan-friday-late",
        "inkan-saturday",
        "inkan-sunday",
        "inkan-holiday",
        "inkan-day-after-holiday",
        "inkan-saturday-by-japan-date",
        "juminhyo-saturday",
        "juminhyo-holiday",
    ],
)
def test_a_weekday_only_type_is_refused_on_weekends_and_listed_holidays(
    kind: CertificateType, at: datetime, expected: RejectionReason | None
) -> None:
    """Weekday-only types follow the Japan date and the municipality's own holidays."""
    assert outcome(request(certificate_type=kind), at=at, registration=INKAN_ON_WEEKDAYS) is (
        expected
    )


# ---------------------------------------------------------------------------- 5. the certificate


@pytest.mark.parametrize(
    "facts",
    [
        None,
        certificate(not_before=None),
        certificate(not_after=None),
        certificate(kind=None, not_before=None, not_after=None, status="revoked"),
    ],
    ids=["none", "no-not-before", "no-not-after", "only-named-by-a-crl"],
)
def test_a_certificate_not_known_to_be_issued_is_unknown(facts: CertificateFacts | None) -> None:
    """Without an issuance record (validity period) the certificate cannot be trusted."""
    assert outcome(certificate=facts) is RejectionReason.CERTIFICATE_UNKNOWN


@pytest.mark.parametrize(
    ("at", "expected"),
    [
        (jst(2026, 6, 10, 9, 59, 59), RejectionReason.CERTIFICATE_UNKNOWN),
        (jst(2026, 6, 10, 10, 0), None),
    ],
    ids=["second-before-not-before", "at-not-before"],
)
def test_a_certificate_is_valid_from_not_before(
    at: datetime, expected: RejectionReason | None
) -> None:
    fresh = certificate(not_before=jst(2026, 6, 10, 10, 0), changed_at=jst(2026, 6, 10, 10, 0))
    assert outcome(certificate=fresh, at=at) is expected


def test_a_signature_certificate_is_not_for_authentication() -> None:
    rejection = rejected(certificate=certificate(kind="signature"))

    assert rejection.reason is RejectionReason.CERTIFICATE_NOT_FOR_AUTHENTICATION
    assert "user-authentication" in rejection.message  # which certificate to read


@pytest.mark.parametrize(
    ("status", "reason"),
    [
        ("revoked", RejectionReason.CERTIFICATE_REVOKED),
        ("suspended", RejectionReason.CERTIFICATE_SUSPENDED),
    ],
)
@pytest.mark.parametrize(
    ("changed_at", "blocks"),
    [(NOW - SECOND, True), (NOW, True), (NOW + SECOND, False)],
    ids=["second-before-request", "at-request", "second-after-request"],
)
def test_a_revocation_or_suspension_counts_from_its_own_instant(
    status: str, reason: RejectionReason, changed_at: datetime, blocks: bool
) -> None:
    """A revocation learned late must not refuse a request made before it took effect."""
    facts = certificate(status=status, changed_at=changed_at, reason="loss")
    assert outcome(certificate=facts) is (reason if blocks else None)


def test_a_suspension_says_who_can_lift_it() -> None:
    facts = certificate(status="suspended", changed_at=NOW - SECOND, reason=None)
    rejection = rejected(certificate=facts)

    assert rejection.reason is RejectionReason.CERTIFICATE_SUSPENDED
    assert "municipality of residence" in rejection.message


# A certificate whose validity ends inside the service hours, to test expiry at the instant.
ENDS_AT_NOON = jst(2026, 6, 10, 12, 0)


@pytest.mark.parametrize(
    ("at", "expected"),
    [
        (ENDS_AT_NOON - SECOND, None),
        (ENDS_AT_NOON, None),
        (ENDS_AT_NOON + SECOND, RejectionReason.CERTIFICATE_EXPIRED),
        (jst(2029, 4, 3, 6, 30), RejectionReason.CERTIFICATE_EXPIRED),
    ],
    ids=["second-before-not-after", "at-not-after", "second-after-not-after", "years-later"],
)
def test_a_certificate_expires_after_not_after(
    at: datetime, expected: RejectionReason | None
) -> None:
    """not_after is the last valid instant (inclusive), as in X.509."""
    assert outcome(certificate=certificate(not_after=ENDS_AT_NOON), at=at) is expected


def test_the_default_certificate_is_still_valid_on_its_last_day() -> None:
    assert outcome(at=jst(2029, 4, 2, 22, 59, 59)) is None
    assert outcome(at=jst(2029, 4, 3, 6, 30)) is RejectionReason.CERTIFICATE_EXPIRED


@pytest.mark.parametrize("status", ["revoked", "suspended"])
def test_a_revocation_recorded_after_expiry_still_reports_expired(status: str) -> None:
    """The more basic fact is that it had expired; the later revocation changes nothing."""
    facts = certificate(
        not_after=ENDS_AT_NOON, status=status, changed_at=ENDS_AT_NOON + timedelta(hours=1)
    )
    rejection = rejected(certificate=facts, at=ENDS_AT_NOON + timedelta(hours=2))

    assert rejection.reason is RejectionReason.CERTIFICATE_EXPIRED
    assert ENDS_AT_NOON.isoformat() in rejection.message


def test_a_revocation_before_expiry_is_reported_as_revoked_after_expiry_too() -> None:
    facts = certificate(
        not_after=ENDS_AT_NOON, status="revoked", changed_at=ENDS_AT_NOON - timedelta(hours=1)
    )
    assert outcome(certificate=facts, at=ENDS_AT_NOON + timedelta(hours=2)) is (
        RejectionReason.CERTIFICATE_REVOKED
    )


# ---------------------------------------------------------------------------- 6. the resident


@pytest.mark.parametrize(
    "facts",
    [
        {"resident": None},
        {"certificate": certificate(municipality=OTHER_MUNICIPALITY)},
        {"certificate": certificate(municipality=None)},
    ],
    ids=["no-resident", "certificate-of-another-municipality", "certificate-without-one"],
)
def test_a_resident_not_held_for_the_requested_municipality_is_not_found(
    facts: dict[str, Any],
) -> None:
    assert outcome(**facts) is RejectionReason.RESIDENT_NOT_FOUND


def test_a_resident_who_moved_out_or_died_is_not_active() -> None:
    assert outcome(resident=resident(active=False)) is RejectionReason.RESIDENT_NOT_ACTIVE


# ---------------------------------------------------------------------------- 7. age


@pytest.mark.parametrize(
    ("at", "expected"),
    [
        (jst(2026, 6, 9, 22, 59, 59), RejectionReason.UNDER_15),
        (jst(2026, 6, 10, 6, 30), None),
        # 9 June 23:30 UTC is 10 June 08:30 in Japan: already the 15th birthday.
        (utc(2026, 6, 9, 23, 30), None),
        # 9 June 13:59 UTC is 9 June 22:59 in Japan: still the day before.
        (utc(2026, 6, 9, 13, 59), RejectionReason.UNDER_15),
    ],
    ids=["day-before", "on-the-birthday", "birthday-by-japan-date", "day-before-by-japan-date"],
)
def test_a_resident_may_use_the_service_from_the_15th_birthday_in_japan(
    at: datetime, expected: RejectionReason | None
) -> None:
    """DOMAIN §2: the age counts by the Japan date of the request."""
    assert outcome(resident=resident(birth_date=date(2011, 6, 10)), at=at) is expected


LEAPLING = resident(birth_date=date(2008, 2, 29))
CERTIFICATE_OF_2022 = certificate(
    not_before=jst(2022, 3, 1, 10, 0),
    changed_at=jst(2022, 3, 1, 10, 0),
    not_after=jst(2027, 2, 28, 23, 59, 59),
)


@pytest.mark.parametrize(
    ("at", "expected"),
    [
        (jst(2023, 2, 28, 10, 0), RejectionReason.UNDER_15),
        (jst(2023, 3, 1, 10, 0), None),
    ],
    ids=["28-february", "1-march"],
)
def test_one_born_on_29_february_is_15_from_1_march(
    at: datetime, expected: RejectionReason | None
) -> None:
    """民法 §143: with no 29 February the anniversary period ends on the 28th."""
    assert outcome(resident=LEAPLING, certificate=CERTIFICATE_OF_2022, at=at) is expected


def test_under_15_says_from_when_the_holder_may() -> None:
    rejection = rejected(
        resident=LEAPLING, certificate=CERTIFICATE_OF_2022, at=jst(2023, 2, 28, 10)
    )

    assert rejection.reason is RejectionReason.UNDER_15
    assert "2023-03-01" in rejection.message


@pytest.mark.parametrize(
    ("birth", "expected"),
    [
        (date(2008, 2, 29), date(2023, 3, 1)),
        (date(2004, 2, 29), date(2019, 3, 1)),
        (date(2009, 2, 28), date(2024, 2, 28)),
        (date(2009, 3, 1), date(2024, 3, 1)),
        (date(2011, 12, 31), date(2026, 12, 31)),
    ],
)
def test_fifteenth_birthday(birth: date, expected: date) -> None:
    assert fifteenth_birthday(birth) == expected


@given(birth=st.dates(min_value=date(1900, 1, 1), max_value=date(2100, 12, 31)))
@example(birth=date(2009, 2, 28))
@example(birth=date(2008, 3, 1))
def test_fifteenth_birthday_is_the_same_day_15_years_on(birth: date) -> None:
    if (birth.month, birth.day) == (2, 29):
        return  # covered above: 1 March
    assert fifteenth_birthday(birth) == date(birth.year + 15, birth.month, birth.day)


# ---------------------------------------------------------------------------- 8. the records


@pytest.mark.parametrize(
    ("kind", "seal_registered", "expected"),
    [
        (CertificateType.INKAN, False, RejectionReason.SEAL_NOT_REGISTERED),
        (CertificateType.INKAN, True, None),
        (CertificateType.JUMINHYO, False, None),
    ],
)
def test_a_seal_certificate_needs_a_registered_seal(
    kind: CertificateType, seal_registered: bool, expected: RejectionReason | None
) -> None:
    holder = resident(seal_registered=seal_registered)
    assert outcome(request(certificate_type=kind), resident=holder) is expected


@pytest.mark.parametrize(
    "kind",
    [CertificateType.TAX_INCOME, CertificateType.TAX_ASSESSMENT, CertificateType.TAX_PAYMENT],
)
@pytest.mark.parametrize(
    ("fiscal_year", "expected"),
    [
        (2023, RejectionReason.TAX_FACTS_MISSING),
        (2024, None),
        (2025, None),
        (2026, RejectionReason.TAX_FACTS_MISSING),
    ],
)
def test_a_tax_certificate_needs_the_facts_of_its_fiscal_year(
    kind: CertificateType, fiscal_year: int, expected: RejectionReason | None
) -> None:
    assert outcome(request(certificate_type=kind, fiscal_year=fiscal_year)) is expected


def test_missing_tax_facts_name_the_fiscal_year() -> None:
    req = request(certificate_type=CertificateType.TAX_INCOME, fiscal_year=2023)
    rejection = rejected(req)

    assert rejection.reason is RejectionReason.TAX_FACTS_MISSING
    assert "2023" in rejection.message


# ------------------------------------------------------------- 6–8. disaster certificates


@pytest.mark.parametrize("req", [RISAI, HISAI], ids=["risai", "hisai"])
@pytest.mark.parametrize(
    "damage", [c for c in DamageCategory if c is not DamageCategory.NONE], ids=str
)
def test_a_disaster_certificate_is_issued_for_any_assessed_damage(
    req: IssuanceRequested, damage: DamageCategory
) -> None:
    assert outcome(req, registration=DISASTER_SYSTEM, victim=victim(damage=damage)) is None


@pytest.mark.parametrize(
    "holder", [None, resident(active=False)], ids=["not-in-replica", "moved-out"]
)
def test_a_disaster_certificate_comes_from_the_ledger_not_the_replica(
    holder: ResidentFacts | None,
) -> None:
    """A victim who moved out since the disaster still gets the certificate of it."""
    assert outcome(RISAI, registration=DISASTER_SYSTEM, victim=victim(), resident=holder) is None


def test_a_holder_in_no_ledger_is_not_a_victim_and_is_told_why() -> None:
    rejection = rejected(RISAI, registration=DISASTER_SYSTEM, victim=None)

    assert rejection.reason is RejectionReason.NOT_A_VICTIM
    assert MUNICIPALITY in rejection.message
    named = request(certificate_type=CertificateType.RISAI, print_options={"disaster_id": "x-1"})
    assert "x-1" in rejected(named, registration=DISASTER_SYSTEM).message


def test_a_dwelling_not_yet_assessed_says_the_certificate_follows_the_assessment() -> None:
    rejection = rejected(RISAI, registration=DISASTER_SYSTEM, victim=victim(damage=None))

    assert rejection.reason is RejectionReason.DAMAGE_NOT_ASSESSED
    assert "2026-storm-10" in rejection.message
    assert "東京都" not in rejection.message  # the outcome is not sealed: no address in it


def test_an_undamaged_dwelling_gets_no_certificate_and_a_way_to_ask_again() -> None:
    rejection = rejected(
        HISAI, registration=DISASTER_SYSTEM, victim=victim(damage=DamageCategory.NONE)
    )

    assert rejection.reason is RejectionReason.NO_DAMAGE
    assert "再調査" in rejection.message


def test_a_victim_under_15_cannot_use_the_service() -> None:
    young = victim(birth_date=date(2012, 1, 1), damage=None)
    assert outcome(RISAI, registration=DISASTER_SYSTEM, victim=young) is RejectionReason.UNDER_15


@pytest.mark.parametrize(
    ("since", "expected"),
    [
        (None, RejectionReason.TYPE_NOT_OFFERED),
        (date(2026, 6, 11), RejectionReason.TYPE_NOT_OFFERED),
        (date(2026, 6, 10), None),
    ],
    ids=["never", "from-tomorrow", "from-today"],
)
def test_disaster_certificates_need_the_cloud_disaster_system_on_that_day(
    since: date | None, expected: RejectionReason | None
) -> None:
    offering = registration(
        offered_types=DISASTER_SYSTEM.profile.offered_types, disaster_system_since=since
    )
    assert outcome(RISAI, registration=offering, victim=victim()) is expected


def test_a_disaster_certificate_must_be_offered_like_any_type() -> None:
    assert outcome(RISAI, victim=victim()) is RejectionReason.TYPE_NOT_OFFERED


EARLIER = victim(disaster_id="2025-flood-2", declared_at=jst(2025, 9, 1, 8, 0))
LATER = victim()
NEXT = victim(disaster_id="2026-quake-1", declared_at=NOW + SECOND)


def test_the_ledger_entry_is_of_the_latest_disaster_declared_by_the_request() -> None:
    assert victim_for(RISAI, [LATER, EARLIER, NEXT], NOW) == LATER
    assert victim_for(RISAI, [NEXT], NOW) is None


def test_the_print_options_can_name_the_disaster() -> None:
    named = request(
        certificate_type=CertificateType.RISAI, print_options={"disaster_id": "2025-flood-2"}
    )
    assert victim_for(named, [LATER, EARLIER], NOW) == EARLIER
    assert victim_for(named, [LATER], NOW) is None


# ---------------------------------------------------------------------------- 9. the seal key


def test_without_a_seal_key_the_staff_are_told_to_create_one() -> None:
    rejection = rejected(seal_key=None)

    assert rejection.reason is RejectionReason.NO_SEAL_KEY
    assert "bcl municipality seal-key create" in rejection.message
    assert "千代田区" in rejection.message


OLD_KEY = seal_key("00000000000000aa", added_at=jst(2020, 4, 1, 9, 0))
NEW_KEY = seal_key("0123456789abcdef", added_at=jst(2026, 6, 1, 9, 0))
ALL_HELD = frozenset({OLD_KEY.key_id, NEW_KEY.key_id})


def keys(*listed: SealKey) -> MunicipalityProfile:
    return profile(seal_keys=listed)


def test_signing_key_is_the_newest_usable_key() -> None:
    assert signing_key(keys(OLD_KEY, NEW_KEY), NOW, ALL_HELD) == NEW_KEY


def test_signing_key_does_not_depend_on_the_listing_order() -> None:
    assert signing_key(keys(NEW_KEY, OLD_KEY), NOW, ALL_HELD) == NEW_KEY


@pytest.mark.parametrize(
    ("at", "expected"),
    [
        (NEW_KEY.added_at - SECOND, OLD_KEY),
        (NEW_KEY.added_at, NEW_KEY),
        (NEW_KEY.added_at + SECOND, NEW_KEY),
        (OLD_KEY.added_at - SECOND, None),
    ],
    ids=["second-before-new-key", "as-new-key-is-added", "after-new-key", "before-any-key"],
)
def test_signing_key_uses_only_keys_added_by_then(at: datetime, expected: SealKey | None) -> None:
    assert signing_key(keys(OLD_KEY, NEW_KEY), at, ALL_HELD) == expected


@pytest.mark.parametrize(
    ("revoked_at", "expected_id"),
    [
        (NOW - SECOND, OLD_KEY.key_id),
        (NOW, OLD_KEY.key_id),
        (NOW + SECOND, NEW_KEY.key_id),
    ],
    ids=["revoked-before", "revoked-at-the-instant", "revoked-after"],
)
def test_signing_key_skips_a_key_revoked_by_then(revoked_at: datetime, expected_id: str) -> None:
    """A key revoked after the instant still seals then: a revocation counts from its time."""
    revoked = seal_key(NEW_KEY.key_id, added_at=NEW_KEY.added_at, revoked_at=revoked_at)
    chosen = signing_key(keys(OLD_KEY, revoked), NOW, ALL_HELD)

    assert chosen is not None
    assert chosen.key_id == expected_id


@pytest.mark.parametrize(
    ("held", "expected"),
    [
        (frozenset({OLD_KEY.key_id}), OLD_KEY),
        (frozenset({NEW_KEY.key_id}), NEW_KEY),
        (frozenset(), None),
        (frozenset({"ffffffffffffffff"}), None),
    ],
    ids=["only-old-held", "only-new-held", "none-held", "another-key-held"],
)
def test_signing_key_needs_the_private_half(held: frozenset[str], expected: SealKey | None) -> None:
    assert signing_key(keys(OLD_KEY, NEW_KEY), NOW, held) == expected


def test_signing_key_of_a_municipality_without_keys_is_none() -> None:
    assert signing_key(profile(), NOW, ALL_HELD) is None


# ---------------------------------------------------------------------------- order of the checks


@pytest.mark.parametrize(
    ("facts", "expected"),
    [
        ({"source": "center:west", "registration": None}, RejectionReason.UNAUTHENTICATED_SOURCE),
        (
            {"registration": None, "certificate": None},
            RejectionReason.MUNICIPALITY_NOT_PARTICIPATING,
        ),
        (
            {"registration": registration(uses_bcl=False), "at": jst(2026, 12, 30, 10, 0)},
            RejectionReason.NOT_ON_BCL,
        ),
        (
            {"req": request(certificate_type=CertificateType.KOSEKI), "at": jst(2027, 1, 1, 10)},
            RejectionReason.TYPE_NOT_OFFERED,
        ),
        (
            {
                "at": jst(2026, 12, 30, 10, 0),
                "certificate": certificate(status="revoked", changed_at=jst(2026, 12, 1)),
            },
            RejectionReason.CLOSED_DAY,
        ),
        (
            {"at": jst(2026, 12, 29, 0, 30), "resident": None},
            RejectionReason.CLOSED_DAY,
        ),
        (
            {"at": MAINTENANCE_STARTS, "registration": UNDER_MAINTENANCE, "certificate": None},
            RejectionReason.MAINTENANCE,
        ),
        (
            {
                "at": jst(2026, 6, 13, 23, 30),
                "registration": INKAN_ON_WEEKDAYS,
                "req": request(certificate_type=CertificateType.INKAN),
            },
            RejectionReason.OUTSIDE_SERVICE_WINDOW,
        ),
        (
            {
                "at": jst(2026, 6, 13, 10),
                "registration": INKAN_ON_WEEKDAYS,
                "req": request(certificate_type=CertificateType.INKAN),
                "certificate": None,
            },
            RejectionReason.WEEKDAY_ONLY,
        ),
        (
            {
                "certificate": certificate(kind="signature", status="revoked", changed_at=NOW),
                "resident": None,
            },
            RejectionReason.CERTIFICATE_NOT_FOR_AUTHENTICATION,
        ),
        (
            {"certificate": certificate(status="revoked", changed_at=NOW), "resident": None},
            RejectionReason.CERTIFICATE_REVOKED,
        ),
        (
            {"at": jst(2029, 4, 3, 10), "resident": resident(active=False)},
            RejectionReason.CERTIFICATE_EXPIRED,
        ),
        (
            {"resident": resident(active=False, birth_date=date(2015, 1, 1))},
            RejectionReason.RESIDENT_NOT_ACTIVE,
        ),
        (
            {
                "req": request(certificate_type=CertificateType.INKAN),
                "resident": resident(birth_date=date(2015, 1, 1), seal_registered=False),
                "seal_key": None,
            },
            RejectionReason.UNDER_15,
        ),
        (
            {
                "req": request(certificate_type=CertificateType.INKAN),
                "resident": resident(seal_registered=False),
                "seal_key": None,
            },
            RejectionReason.SEAL_NOT_REGISTERED,
        ),
        (
            {
                "req": request(certificate_type=CertificateType.TAX_INCOME, fiscal_year=2020),
                "seal_key": None,
            },
            RejectionReason.TAX_FACTS_MISSING,
        ),
        (
            {"req": RISAI, "registration": DISASTER_SYSTEM, "seal_key": None},
            RejectionReason.NOT_A_VICTIM,
        ),
        (
            {
                "req": RISAI,
                "registration": DISASTER_SYSTEM,
                "victim": victim(damage=None),
                "seal_key": None,
            },
            RejectionReason.DAMAGE_NOT_ASSESSED,
        ),
    ],
    ids=[
        "source-before-participation",
        "participation-before-certificate",
        "bcl-before-closed-day",
        "type-before-closed-day",
        "closed-day-before-revoked",
        "closed-day-before-window-and-resident",
        "maintenance-before-certificate",
        "window-before-weekday",
        "weekday-before-certificate",
        "kind-before-revoked",
        "revoked-before-resident",
        "expired-before-resident",
        "not-active-before-age",
        "age-before-seal",
        "seal-before-seal-key",
        "tax-before-seal-key",
        "victim-before-seal-key",
        "damage-before-seal-key",
    ],
)
def test_the_first_failing_check_in_the_documented_order_is_reported(
    facts: dict[str, Any], expected: RejectionReason
) -> None:
    """One request always gets the same, most basic reason (the module docstring's order)."""
    assert outcome(**facts) is expected
