"""Fee rules (DOMAIN §6), free of I/O: integer yen, fiscal year April–March in Japan time.

Effective-dated tables and the arithmetic the fees projection and its statements use:

    store commission (委託手数料)      per certificate, by the day it was issued
    BCL issuance fee                   180 yen per certificate issued through BCL
    annual operating contribution      by class, population and BCL status, per fiscal year,
    (運営負担金)                        prorated in the joining year
    cloud disaster system fee          185,000 yen + 10 yen per resident, prorated when
                                       introduced mid-year

Bounds are "at least" (以上) and "less than" (未満). Proration counts the joining (introduction)
month: floor(annual / 12) × months.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from schemas.calendar import JST
from schemas.events.municipalities import MunicipalityClass

BCL_ISSUANCE_FEE = 180  # yen per certificate issued through BCL, settled at fiscal-year end
DISASTER_SYSTEM_BASE = 185_000
DISASTER_SYSTEM_PER_RESIDENT = 10

# (from, yen): 123 until FY2016, 115 from FY2017 (1 April 2017), 117 from 1 October 2019
# (assumption: the consumption-tax change; the 2024 material shows 117).
COMMISSION_HISTORY: tuple[tuple[date, int], ...] = (
    (date(2010, 1, 1), 123),
    (date(2017, 4, 1), 115),
    (date(2019, 10, 1), 117),
)


def japan_day(at: datetime) -> date:
    return at.astimezone(JST).date()


def commission(day: date) -> int:
    """The store commission per certificate issued on ``day`` (Japan date)."""
    rates = [yen for since, yen in COMMISSION_HISTORY if since <= day]
    if not rates:
        raise ValueError(f"no store commission is known before {COMMISSION_HISTORY[0][0]}")
    return rates[-1]


@dataclass(frozen=True, slots=True)
class Settlement:
    """One delivered certificate's money: what the resident paid, what the store keeps, what
    BCL charges, and what is left to the municipality."""

    fee_yen: int
    commission_yen: int
    bcl_fee_yen: int

    @property
    def net_yen(self) -> int:
        """Income less spending: fee − commission − BCL fee."""
        return self.fee_yen - self.commission_yen - self.bcl_fee_yen


def settle(fee_paid_yen: int, copies: int, day: date, *, through_bcl: bool) -> Settlement:
    """Settle a delivered request of ``copies`` certificates: commission and BCL fee are per
    certificate; the fee is what the kiosk collected."""
    return Settlement(
        fee_yen=fee_paid_yen,
        commission_yen=commission(day) * copies,
        bcl_fee_yen=BCL_ISSUANCE_FEE * copies if through_bcl else 0,
    )


# ----------------------------------------------------------- the annual operating contribution

# Rows of DOMAIN §6's table: (not on BCL, BCL FY2021–FY2022, BCL FY2023 on).
DESIGNATED_LARGE = (9_879_630, 9_879_630, 9_879_630)  # designated city, ≥ 1,000,000
DESIGNATED = (7_842_593, 7_842_593, 7_842_593)  # designated city, < 1,000,000
CITY_150K = (4_787_037, 4_787_037, 4_787_037)  # city / special ward ≥ 150,000
CITY_50K = (2_728_000, 2_728_000, 2_728_000)  # 50,000 – < 150,000
CITY_30K = (2_218_741, 2_218_741, 2_218_741)  # 30,000 – < 50,000
CITY_SMALL = (2_218_741, 1_527_778, 1_873_259)  # < 30,000
TOWN_OR_VILLAGE = (690_963, 0, 345_481)  # 町村


def contribution_row(kind: MunicipalityClass, population: int) -> tuple[int, int, int]:
    """The table row of a municipality of that class and population."""
    if kind in (MunicipalityClass.TOWN, MunicipalityClass.VILLAGE):
        return TOWN_OR_VILLAGE
    if kind is MunicipalityClass.DESIGNATED_CITY:
        return DESIGNATED_LARGE if population >= 1_000_000 else DESIGNATED
    if population >= 150_000:
        return CITY_150K
    if population >= 50_000:
        return CITY_50K
    if population >= 30_000:
        return CITY_30K
    return CITY_SMALL


def annual_contribution(
    kind: MunicipalityClass, population: int, *, uses_bcl: bool, year: int
) -> int:
    """The full-year contribution for fiscal year ``year``. BCL began in January 2022 (FY2021):
    before it every municipality pays the not-on-BCL column."""
    not_on_bcl, early_bcl, bcl = contribution_row(kind, population)
    if not uses_bcl or year < 2021:
        return not_on_bcl
    return early_bcl if year <= 2022 else bcl


def months_from(start: date, year: int) -> int:
    """Months of fiscal year ``year`` from ``start``'s month to March, counting that month; 12
    for a start before the year, 0 for one after it."""
    first, last = date(year, 4, 1), date(year + 1, 3, 31)
    if start <= first:
        return 12
    if start > last:
        return 0
    return (year + 1 - start.year) * 12 + 3 - start.month + 1


def prorated(annual: int, start: date, year: int) -> int:
    """floor(annual / 12) × the months from ``start`` (counted) in fiscal year ``year``; the
    whole annual amount for a full year."""
    months = months_from(start, year)
    return annual if months == 12 else annual // 12 * months


def contribution(
    kind: MunicipalityClass, population: int, *, uses_bcl: bool, joined_on: date, year: int
) -> int:
    """The contribution owed for fiscal year ``year``, prorated in the joining year."""
    return prorated(
        annual_contribution(kind, population, uses_bcl=uses_bcl, year=year), joined_on, year
    )


def disaster_system_fee(population: int, *, introduced_on: date, year: int) -> int:
    """The cloud disaster system fee for fiscal year ``year``: 185,000 + 10 yen per resident,
    floor(annual / 12) × the months left when introduced in the middle of the year."""
    annual = DISASTER_SYSTEM_BASE + DISASTER_SYSTEM_PER_RESIDENT * population
    return prorated(annual, introduced_on, year)
