"""The resident fee (交付手数料): the schedule entry in force on the Japan day of the request, the
standard fee without one, the 10-yen store fee on disaster certificates."""

from datetime import date, datetime

import pytest

from schemas.calendar import JST
from schemas.events.issuance import CertificateType, FeeQuote
from schemas.events.municipalities import FeeEntry
from schemas.fees import fee_quote
from tests.helpers import jst, utc

NOW = datetime(2026, 6, 10, 10, 0, tzinfo=JST)


def fees(*entries: tuple[CertificateType, int, date]) -> tuple[FeeEntry, ...]:
    return tuple(
        FeeEntry(certificate_type=kind, fee_yen=fee, effective_from=since)
        for kind, fee, since in entries
    )


FEE_CHANGE = fees(
    (CertificateType.JUMINHYO, 300, date(2024, 4, 1)),
    (CertificateType.JUMINHYO, 200, date(2026, 11, 16)),
)


@pytest.mark.parametrize(
    ("at", "fee", "since"),
    [
        (jst(2026, 11, 15, 23, 59), 300, date(2024, 4, 1)),
        (jst(2026, 11, 15, 23, 59, 59), 300, date(2024, 4, 1)),
        (jst(2026, 11, 16, 0, 0), 200, date(2026, 11, 16)),
        # 15 Nov 15:30 UTC is 16 Nov 00:30 in Japan: the new fee.
        (utc(2026, 11, 15, 15, 30), 200, date(2026, 11, 16)),
        (utc(2026, 11, 15, 14, 59, 59), 300, date(2024, 4, 1)),
        (jst(2027, 1, 4, 10, 0), 200, date(2026, 11, 16)),
    ],
    ids=[
        "15nov-23:59",
        "15nov-23:59:59",
        "16nov-00:00",
        "15nov-15:30utc",
        "15nov-14:59:59utc",
        "later",
    ],
)
def test_the_fee_in_force_on_the_japan_day_of_the_request_applies(
    at: datetime, fee: int, since: date
) -> None:
    """A fee change takes effect at midnight Japan time, not UTC."""
    assert fee_quote(FEE_CHANGE, CertificateType.JUMINHYO, 1, at) == FeeQuote(
        per_copy_yen=fee, copies=1, total_yen=fee, schedule_from=since
    )


def test_before_the_first_entry_the_standard_fee_applies() -> None:
    quote = fee_quote(FEE_CHANGE, CertificateType.JUMINHYO, 1, jst(2024, 3, 31, 12, 0))
    assert quote == FeeQuote(per_copy_yen=300, copies=1, total_yen=300, schedule_from=None)


@pytest.mark.parametrize(
    ("kind", "fee"),
    [
        (CertificateType.JUMINHYO, 300),
        (CertificateType.INKAN, 300),
        (CertificateType.TAX_INCOME, 300),
        (CertificateType.KOSEKI, 450),
        (CertificateType.KOSEKI_FUHYO, 300),
        (CertificateType.RISAI, 10),
        (CertificateType.HISAI, 10),
    ],
)
def test_without_an_entry_the_standard_fee_applies(kind: CertificateType, fee: int) -> None:
    quote = fee_quote((), kind, 1, NOW)
    assert quote == FeeQuote(per_copy_yen=fee, copies=1, total_yen=fee, schedule_from=None)


@pytest.mark.parametrize("copies", [1, 2, 3, 10])
def test_the_total_is_the_fee_per_copy_times_the_copies(copies: int) -> None:
    quote = fee_quote(FEE_CHANGE, CertificateType.JUMINHYO, copies, jst(2026, 11, 16, 10, 0))

    assert quote.per_copy_yen == 200
    assert quote.copies == copies
    assert quote.total_yen == 200 * copies


@pytest.mark.parametrize("kind", [CertificateType.RISAI, CertificateType.HISAI])
def test_disaster_certificates_add_the_10_yen_store_fee_to_the_municipal_fee(
    kind: CertificateType,
) -> None:
    """DOMAIN §6: the store's 10 yen comes on top of whatever the municipality charges."""
    schedule = fees((kind, 200, date(2025, 4, 1)))
    quote = fee_quote(schedule, kind, 3, NOW)

    assert quote == FeeQuote(
        per_copy_yen=210, copies=3, total_yen=630, schedule_from=date(2025, 4, 1)
    )


def test_entries_of_other_types_are_ignored() -> None:
    schedule = fees(
        (CertificateType.INKAN, 100, date(2025, 4, 1)),
        (CertificateType.TAX_INCOME, 50, date(2025, 4, 1)),
    )
    quote = fee_quote(schedule, CertificateType.JUMINHYO, 2, NOW)

    assert quote == FeeQuote(per_copy_yen=300, copies=2, total_yen=600, schedule_from=None)
    assert fee_quote(schedule, CertificateType.INKAN, 1, NOW).per_copy_yen == 100


def test_an_entry_effective_later_is_not_yet_in_force() -> None:
    schedule = fees((CertificateType.JUMINHYO, 250, date(2026, 6, 11)))

    assert (
        fee_quote(schedule, CertificateType.JUMINHYO, 1, jst(2026, 6, 10, 22, 59)).schedule_from
        is None
    )
    assert (
        fee_quote(schedule, CertificateType.JUMINHYO, 1, jst(2026, 6, 11, 6, 30)).per_copy_yen
        == 250
    )


def test_a_free_municipal_fee_is_quoted_as_zero_not_the_standard_fee() -> None:
    """A 0-yen entry is a fee set, not a missing one."""
    schedule = fees((CertificateType.JUMINHYO, 0, date(2025, 4, 1)))
    quote = fee_quote(schedule, CertificateType.JUMINHYO, 2, NOW)

    assert quote == FeeQuote(per_copy_yen=0, copies=2, total_yen=0, schedule_from=date(2025, 4, 1))
