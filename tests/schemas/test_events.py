import uuid
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import pytest
from pydantic import ValidationError

from schemas.events.certificates import CertificateRevoked
from schemas.events.issuance import (
    TAX_CERTIFICATE_TYPES,
    CertificateType,
    IssuanceDelivered,
    IssuanceRequested,
)
from schemas.events.municipalities import (
    MunicipalityJoined,
    MunicipalityJoinedV1,
    MunicipalityProfile,
)

JST = timezone(timedelta(hours=9))


def request(**changes: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "request_id": str(uuid.uuid4()),
        "store_operator": "seven_eleven",
        "store_id": "0123-4567",
        "store_municipality": "131016",
        "resident_municipality": "141003",
        "auth_serial": "00A1B2C3D4",
        "certificate_type": "juminhyo",
        "copies": 1,
    }
    fields.update(changes)
    return fields


def messages(fields: dict[str, Any]) -> list[str]:
    with pytest.raises(ValidationError) as caught:
        IssuanceRequested.model_validate(fields)
    return [err["msg"] for err in caught.value.errors()]


def test_request_defaults() -> None:
    parsed = IssuanceRequested.model_validate(request())
    assert parsed.fiscal_year is None
    assert parsed.domicile_differs is False
    assert parsed.print_options == {}


@pytest.mark.parametrize("certificate_type", sorted(TAX_CERTIFICATE_TYPES))
def test_tax_certificates_need_a_fiscal_year(certificate_type: CertificateType) -> None:
    assert (
        IssuanceRequested.model_validate(
            request(certificate_type=certificate_type, fiscal_year=2023)
        ).fiscal_year
        == 2023
    )
    assert messages(request(certificate_type=certificate_type)) == [
        f"fiscal_year is required for {certificate_type} certificates "
        "(the fiscal year, April-March, the tax certificate covers)"
    ]


@pytest.mark.parametrize("certificate_type", sorted(set(CertificateType) - TAX_CERTIFICATE_TYPES))
def test_other_certificates_refuse_a_fiscal_year(certificate_type: CertificateType) -> None:
    assert messages(request(certificate_type=certificate_type, fiscal_year=2023)) == [
        "fiscal_year is only allowed for tax certificates (tax_assessment, tax_income, "
        f"tax_payment), not {certificate_type}; leave it out"
    ]


def test_koseki_request_with_domicile_elsewhere() -> None:
    parsed = IssuanceRequested.model_validate(
        request(certificate_type="koseki", domicile_differs=True, print_options={"duplex": "no"})
    )
    assert parsed.domicile_differs
    assert parsed.print_options == {"duplex": "no"}


@pytest.mark.parametrize(
    "changes",
    [
        {"store_operator": "daily_yamazaki"},
        {"certificate_type": "passport"},
        {"store_id": ""},
        {"store_id": "x" * 33},
        {"store_municipality": "131015"},
        {"resident_municipality": "480006"},
        {"auth_serial": ""},
        {"auth_serial": "0" * 41},
        {"auth_serial": "00-A1"},
        {"copies": 0},
        {"copies": 11},
        {"print_options": {"duplex": 1}},
        {"pin": "1234"},
    ],
)
def test_bad_request_fields(changes: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        IssuanceRequested.model_validate(request(**changes))


def test_delivery_needs_aware_time_and_non_negative_fee() -> None:
    request_id = uuid.uuid4()
    delivered = IssuanceDelivered(
        request_id=request_id, fee_paid_yen=200, printed_at=datetime(2024, 4, 1, 9, tzinfo=JST)
    )
    assert delivered.fee_paid_yen == 200
    with pytest.raises(ValidationError):
        IssuanceDelivered.model_validate(
            {"request_id": request_id, "fee_paid_yen": -1, "printed_at": "2024-04-01T09:00:00"}
        )


def test_revocation() -> None:
    revoked = CertificateRevoked.model_validate(
        {
            "serial": "0A1B2C",
            "kind": "user_authentication",
            "reason": "loss",
            "revoked_at": "2024-05-01T10:30:00+09:00",
        }
    )
    assert revoked.reason == "loss"
    with pytest.raises(ValidationError):
        CertificateRevoked.model_validate({**revoked.model_dump(), "reason": "bored"})


def test_municipality_joined() -> None:
    joined = MunicipalityJoined.model_validate(
        {
            "code": "401307",
            "joined_on": "2022-01-04",
            "profile": {"name": "福岡市", "uses_bcl": True},
        }
    )
    assert joined.joined_on == date(2022, 1, 4)
    assert joined.profile.service_window.opens.isoformat() == "06:30:00"
    with pytest.raises(ValidationError):
        MunicipalityJoined.model_validate({**joined.model_dump(), "code": "401300"})


def test_a_v1_municipality_joined_is_upcast_to_the_v2_profile() -> None:
    from schemas.envelope import Envelope
    from schemas.registry import REGISTRY

    raw = Envelope.new(
        "municipality.joined",
        MunicipalityJoinedV1(
            code="401307", name="福岡市", joined_on=date(2022, 1, 4), uses_bcl=True
        ),
        origin="east",
        source="registry",
        occurred_at=datetime(2022, 1, 4, tzinfo=UTC),
        version=1,
    )
    upcast = REGISTRY.parse_payload(raw)
    assert isinstance(upcast, MunicipalityJoined)
    assert upcast.profile.name == "福岡市"
    assert upcast.profile.uses_bcl


def test_a_bcl_municipality_cannot_offer_family_register_certificates() -> None:
    with pytest.raises(ValidationError, match="BCL issues only"):
        MunicipalityProfile(name="x", uses_bcl=True, offered_types=("koseki",))


def test_a_service_window_outside_0630_2300_is_refused() -> None:
    with pytest.raises(ValidationError, match="must lie inside 06:30–23:00"):
        MunicipalityProfile(
            name="x", uses_bcl=False, service_window={"opens": "06:00", "closes": "22:00"}
        )


# The default counter: weekdays 8:30–17:15. 2024-03-04 is a Monday.
@pytest.mark.parametrize(
    ("at", "open_"),
    [
        (datetime(2024, 3, 4, 8, 29, 59, tzinfo=JST), False),
        (datetime(2024, 3, 4, 8, 30, tzinfo=JST), True),
        (datetime(2024, 3, 4, 17, 14, 59, tzinfo=JST), True),
        (datetime(2024, 3, 4, 17, 15, tzinfo=JST), False),
        (datetime(2024, 3, 4, 8, 30, tzinfo=UTC), False),  # 17:30 in Japan
        (datetime(2024, 3, 3, 23, 30, tzinfo=UTC), True),  # Monday 8:30 in Japan, Sunday in UTC
        (datetime(2024, 3, 9, 10, 0, tzinfo=JST), False),  # Saturday
        (datetime(2024, 3, 20, 10, 0, tzinfo=JST), False),  # a holiday of the municipality
        (datetime(2024, 12, 27, 10, 0, tzinfo=JST), True),
        (datetime(2024, 12, 30, 10, 0, tzinfo=JST), False),  # 29 Dec – 3 Jan
        (datetime(2025, 1, 3, 10, 0, tzinfo=JST), False),
        (datetime(2025, 1, 6, 10, 0, tzinfo=JST), True),
    ],
)
def test_counter_open_follows_the_weekday_hours_holidays_and_year_end(
    at: datetime, open_: bool
) -> None:
    profile = MunicipalityProfile(name="x", uses_bcl=False, holidays=(date(2024, 3, 20),))
    assert profile.counter_open(at) is open_


def test_counter_open_on_a_saturday_when_the_municipality_opens_then() -> None:
    profile = MunicipalityProfile.model_validate(
        {
            "name": "x",
            "uses_bcl": False,
            "counter_hours": {"sat": {"opens": "09:00", "closes": "12:00"}},
        }
    )
    assert profile.counter_open(datetime(2024, 3, 9, 11, 59, tzinfo=JST))
    assert not profile.counter_open(datetime(2024, 3, 9, 12, 0, tzinfo=JST))
    assert not profile.counter_open(datetime(2024, 3, 4, 10, 0, tzinfo=JST))  # no weekday hours
