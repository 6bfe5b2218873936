"""Fee rules (DOMAIN §6): every class bound on both sides, every column of the contribution
table, proration for every joining month, the disaster fee's mid-year rule, commission changes
across their effective dates."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from consumers.fees.rules import (
    BCL_ISSUANCE_FEE,
    commission,
    contribution,
    contribution_row,
    disaster_system_fee,
    months_from,
    prorated,
    settle,
)
from schemas.calendar import fiscal_year, japan_day
from schemas.events.issuance import CertificateType, StoreOperator
from schemas.events.municipalities import MunicipalityClass as Class

CITY, WARD, DESIGNATED = Class.CITY, Class.SPECIAL_WARD, Class.DESIGNATED_CITY


@pytest.mark.parametrize(
    ("kind", "population", "row"),
    [
        (DESIGNATED, 999_999, (7_842_593, 7_842_593, 7_842_593)),
        (DESIGNATED, 1_000_000, (9_879_630, 9_879_630, 9_879_630)),
        (CITY, 149_999, (2_728_000, 2_728_000, 2_728_000)),
        (CITY, 150_000, (4_787_037, 4_787_037, 4_787_037)),
        (WARD, 149_999, (2_728_000, 2_728_000, 2_728_000)),
        (WARD, 150_000, (4_787_037, 4_787_037, 4_787_037)),
        (CITY, 49_999, (2_218_741, 2_218_741, 2_218_741)),
        (CITY, 50_000, (2_728_000, 2_728_000, 2_728_000)),
        (CITY, 29_999, (2_218_741, 1_527_778, 1_873_259)),
        (CITY, 30_000, (2_218_741, 2_218_741, 2_218_741)),
        (CITY, 0, (2_218_741, 1_527_778, 1_873_259)),
        (Class.TOWN, 150_000, (690_963, 0, 345_481)),  # a town is a town, however large
        (Class.VILLAGE, 500, (690_963, 0, 345_481)),
    ],
)
def test_class_bounds_are_at_least_and_less_than(
    kind: Class, population: int, row: tuple[int, int, int]
) -> None:
    assert contribution_row(kind, population) == row


FULL_YEAR_JOIN = date(2015, 4, 1)


@pytest.mark.parametrize(
    ("kind", "population", "uses_bcl", "year", "yen"),
    [
        (CITY, 20_000, False, 2023, 2_218_741),  # not on BCL
        (CITY, 20_000, True, 2021, 1_527_778),  # BCL, FY2021–FY2022
        (CITY, 20_000, True, 2022, 1_527_778),
        (CITY, 20_000, True, 2023, 1_873_259),  # BCL, FY2023 on
        (CITY, 20_000, True, 2030, 1_873_259),
        (CITY, 20_000, True, 2020, 2_218_741),  # before BCL existed
        (Class.TOWN, 8_000, False, 2022, 690_963),
        (Class.TOWN, 8_000, True, 2022, 0),
        (Class.TOWN, 8_000, True, 2023, 345_481),
        (DESIGNATED, 3_752_000, True, 2023, 9_879_630),
    ],
)
def test_each_column_of_the_contribution_table(
    kind: Class, population: int, uses_bcl: bool, year: int, yen: int
) -> None:
    assert (
        contribution(kind, population, uses_bcl=uses_bcl, joined_on=FULL_YEAR_JOIN, year=year)
        == yen
    )


@pytest.mark.parametrize(
    ("joined_on", "months"),
    [
        (date(2023, 4, 1), 12), (date(2023, 4, 30), 12), (date(2023, 5, 1), 11),
        (date(2023, 6, 15), 10), (date(2023, 7, 1), 9), (date(2023, 8, 31), 8),
        (date(2023, 9, 1), 7), (date(2023, 10, 1), 6), (date(2023, 11, 30), 5),
        (date(2023, 12, 1), 4), (date(2024, 1, 4), 3), (date(2024, 2, 29), 2),
        (date(2024, 3, 31), 1), (date(2024, 4, 1), 0), (date(2022, 1, 4), 12),
    ],
)  # fmt: skip
def test_proration_counts_the_joining_month(joined_on: date, months: int) -> None:
    assert months_from(joined_on, 2023) == months
    annual = 1_873_259
    expected = annual if months == 12 else annual // 12 * months
    assert contribution(CITY, 20_000, uses_bcl=True, joined_on=joined_on, year=2023) == expected


@pytest.mark.parametrize(
    ("introduced_on", "yen"),
    [
        (date(2023, 4, 1), 185_000 + 10 * 4_700),  # a whole year: 232,000
        (date(2023, 10, 1), 232_000 // 12 * 6),  # six months left, October counted
        (date(2024, 3, 31), 232_000 // 12),  # introduced in the last month: one month
        (date(2024, 4, 1), 0),  # introduced after the year
        (date(2021, 6, 1), 232_000),  # introduced in an earlier year
    ],
)
def test_disaster_system_fee_mid_year(introduced_on: date, yen: int) -> None:
    assert disaster_system_fee(4_700, introduced_on=introduced_on, year=2023) == yen


@pytest.mark.parametrize(
    ("day", "yen"),
    [
        (date(2016, 4, 1), 123),
        (date(2017, 3, 31), 123),  # the last day of FY2016
        (date(2017, 4, 1), 115),  # FY2017
        (date(2019, 9, 30), 115),
        (date(2019, 10, 1), 117),  # the consumption-tax change
        (date(2024, 3, 31), 117),
    ],
)
def test_commission_changes_on_its_effective_dates(day: date, yen: int) -> None:
    assert commission(day) == yen


def test_commission_before_the_table_is_an_error() -> None:
    with pytest.raises(ValueError, match="no store commission"):
        commission(date(2009, 12, 31))


def test_fiscal_years_start_on_1_april_japan_time() -> None:
    assert fiscal_year(date(2024, 3, 31)) == 2023
    assert fiscal_year(date(2024, 4, 1)) == 2024
    # 31 March 15:00 UTC is already 1 April in Japan.
    assert fiscal_year(japan_day(datetime(2024, 3, 31, 15, 0, tzinfo=UTC))) == 2024
    assert fiscal_year(japan_day(datetime(2024, 3, 31, 14, 59, 59, tzinfo=UTC))) == 2023


SEVEN, KIOSK = StoreOperator.SEVEN_ELEVEN, StoreOperator.MUNICIPAL_KIOSK
JUMINHYO, RISAI = CertificateType.JUMINHYO, CertificateType.RISAI


def test_settlement_per_certificate() -> None:
    through_bcl = settle(
        600, 2, date(2024, 3, 1), through_bcl=True, store_operator=SEVEN, certificate_type=JUMINHYO
    )
    assert (through_bcl.commission_yen, through_bcl.bcl_fee_yen) == (234, 2 * BCL_ISSUANCE_FEE)
    assert through_bcl.net_yen == 600 - 234 - 360
    own_server = settle(
        300,
        1,
        date(2017, 3, 31),
        through_bcl=False,
        store_operator=SEVEN,
        certificate_type=JUMINHYO,
    )
    assert (own_server.commission_yen, own_server.bcl_fee_yen, own_server.net_yen) == (123, 0, 177)


def test_a_municipal_kiosk_owes_no_commission() -> None:
    """The commission is the store operator's; the town hall's own terminal has none."""
    own = settle(
        300, 1, date(2024, 3, 1), through_bcl=True, store_operator=KIOSK, certificate_type=JUMINHYO
    )
    assert (own.commission_yen, own.bcl_fee_yen, own.net_yen) == (0, 180, 120)


def test_a_disaster_certificate_owes_commission_but_no_bcl_fee() -> None:
    """10 yen at the store; the store keeps its commission, and the cloud disaster system is
    paid for by its yearly fee rather than per certificate."""
    risai = settle(
        10, 1, date(2024, 3, 1), through_bcl=True, store_operator=SEVEN, certificate_type=RISAI
    )
    assert (risai.commission_yen, risai.bcl_fee_yen, risai.net_yen) == (117, 0, 10 - 117)


@given(
    st.integers(min_value=0, max_value=20_000_000),
    st.dates(min_value=date(2022, 1, 1), max_value=date(2025, 12, 31)),
)
def test_proration_never_exceeds_the_year_and_grows_with_the_months(
    annual: int, start: date
) -> None:
    year = 2023
    owed = prorated(annual, start, year)
    assert 0 <= owed <= annual
    assert owed == (
        annual if months_from(start, year) == 12 else annual // 12 * months_from(start, year)
    )
    earlier = date(start.year - 1, start.month, 1)
    assert prorated(annual, earlier, year) >= owed
