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

The fees projection keeps one row per kiosk request, assembled from its facets (the request, the
issuer's decision, the kiosk's notice: ``pipeline.facets``), and a cube by municipality, month,
certificate type, store operator and center. A request is charged once it was issued and the
kiosk reported it delivered; cancelled and rejected requests are counted, never charged; the row
is keyed by request id, so a redelivery, a mirrored copy or a replay never charges twice.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from uuid import UUID

from pipeline.facets import NOTICE_COLUMNS, Cubes, FacetedRows, FacetValue, KioskFacets
from schemas.calendar import japan_day
from schemas.events.issuance import (
    CertificateType,
    IssuanceIssued,
    IssuanceRejected,
    IssuanceRequested,
    StoreOperator,
)
from schemas.events.municipalities import MunicipalityClass
from schemas.fees import DISASTER_TYPES

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


def settle(
    fee_paid_yen: int,
    copies: int,
    day: date,
    *,
    through_bcl: bool,
    store_operator: StoreOperator,
    certificate_type: CertificateType,
) -> Settlement:
    """Settle a delivered request of ``copies`` certificates; the fee is what the kiosk collected.

    The commission is per certificate and owed to a store operator: a municipality's own kiosk
    (自治体設置端末) has none. The BCL fee is per certificate issued from the BCL replica;
    disaster certificates come from the cloud disaster system, paid for by its yearly fee.
    """
    owes_commission = store_operator is not StoreOperator.MUNICIPAL_KIOSK
    owes_bcl_fee = through_bcl and certificate_type not in DISASTER_TYPES
    return Settlement(
        fee_yen=fee_paid_yen,
        commission_yen=commission(day) * copies if owes_commission else 0,
        bcl_fee_yen=BCL_ISSUANCE_FEE * copies if owes_bcl_fee else 0,
    )


# ------------------------------------------------------------- requests, and the monthly cube

FACET_COLUMNS: Mapping[str, tuple[str, ...]] = {
    "request": (
        "day", "municipality", "certificate_type", "store_operator", "center", "copies",
    ),
    "outcome": ("outcome", "through_bcl", "fee_quoted_yen"),
    "notice": NOTICE_COLUMNS,
}  # fmt: skip
ROWS = FacetedRows("request_id", FACET_COLUMNS)

MONTHLY_KEY = ("month", "municipality", "certificate_type", "store_operator", "center")
MEASURES = (
    "requests",
    "issued",
    "rejected",
    "delivered",
    "cancelled",
    "certificates",
    "fees_collected_yen",
    "commission_yen",
    "bcl_fee_yen",
)


def request_facet(
    event_id: UUID, payload: IssuanceRequested, *, at: datetime, center: str
) -> FacetValue:
    """The request's Japan day settles it: the service window closes at 23:00, so a certificate
    prints the day it was asked for."""
    values = (
        japan_day(at),
        payload.resident_municipality,
        payload.certificate_type.value,
        payload.store_operator.value,
        center,
        payload.copies,
    )
    return FacetValue(payload.request_id, "request", event_id, values)


def outcome_facet(event_id: UUID, payload: IssuanceIssued | IssuanceRejected) -> FacetValue:
    if isinstance(payload, IssuanceIssued):
        values: tuple[object, ...] = ("issued", payload.through_bcl, payload.fee.total_yen)
    else:
        values = ("rejected", None, None)
    return FacetValue(payload.request_id, "outcome", event_id, values)


FACETS = KioskFacets(request_facet, outcome_facet)


def measures(row: tuple[object, ...]) -> tuple[int, ...] | None:
    """The row's counts and yen, or None while its request is unknown (it counts nowhere yet).
    Only an issued request the kiosk delivered is charged."""
    if ROWS.get(row, "request_event") is None:
        return None
    outcome, notice = ROWS.get(row, "outcome"), ROWS.get(row, "notice")
    charged = outcome == "issued" and notice == "delivered"
    money = (0, 0, 0, 0)
    if charged:
        copies = ROWS.number(row, "copies")
        settlement = settle(
            ROWS.number(row, "fee_paid_yen"),
            copies,
            ROWS.day(row, "day"),
            through_bcl=bool(ROWS.get(row, "through_bcl")),
            store_operator=StoreOperator(str(ROWS.get(row, "store_operator"))),
            certificate_type=CertificateType(str(ROWS.get(row, "certificate_type"))),
        )
        money = (
            copies, settlement.fee_yen, settlement.commission_yen, settlement.bcl_fee_yen
        )  # fmt: skip
    return (
        1,
        int(outcome == "issued"),
        int(outcome == "rejected"),
        int(charged),
        int(notice == "cancelled"),
        *money,
    )


def cells(row: tuple[object, ...]) -> tuple[tuple[object, ...], ...]:
    """The row's cell: "month" is the first day of its Japan month."""
    month = ROWS.day(row, "day").replace(day=1)
    return (tuple(month if c == "month" else ROWS.get(row, c) for c in MONTHLY_KEY),)


CUBES = Cubes({"monthly": MONTHLY_KEY}, MEASURES, measures, cells)


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


# ---------------------------------------------------------------------- the year's statement


@dataclass(frozen=True, slots=True)
class Member:
    """A municipality as the registry describes it, for its yearly charges."""

    code: str
    name: str
    municipality_class: MunicipalityClass
    population: int
    uses_bcl: bool
    joined_on: date | None
    disaster_system_since: date | None


@dataclass(frozen=True, slots=True)
class StoreTotals:
    """The year's (or month's) delivered certificates and their money, summed from the cube."""

    certificates: int = 0
    fees_collected_yen: int = 0
    commission_yen: int = 0
    bcl_fee_yen: int = 0


@dataclass(frozen=True, slots=True)
class YearStatement:
    """What a municipality collected and owes for fiscal year ``year``."""

    year: int
    contribution_months: int
    contribution_yen: int
    bcl_fee_yen: int
    disaster_system_fee_yen: int
    store: StoreTotals

    @property
    def owed_yen(self) -> int:
        """Owed to J-LIS at the year's end: contribution, BCL fee and disaster system fee."""
        return self.contribution_yen + self.bcl_fee_yen + self.disaster_system_fee_yen

    @property
    def net_yen(self) -> int:
        """Fees collected, less the stores' commission and everything owed."""
        return self.store.fees_collected_yen - self.store.commission_yen - self.owed_yen


def year_statement(member: Member, year: int, store: StoreTotals) -> YearStatement:
    """The year's statement: the contribution from the joining date (none before it), the BCL
    fee on the certificates issued through BCL, the disaster system fee from its introduction."""
    months = months_from(member.joined_on, year) if member.joined_on else 0
    contributed = (
        contribution(
            member.municipality_class,
            member.population,
            uses_bcl=member.uses_bcl,
            joined_on=member.joined_on,
            year=year,
        )
        if member.joined_on
        else 0
    )
    disaster = (
        disaster_system_fee(
            member.population, introduced_on=member.disaster_system_since, year=year
        )
        if member.disaster_system_since
        else 0
    )
    return YearStatement(
        year=year,
        contribution_months=months,
        contribution_yen=contributed,
        bcl_fee_yen=store.bcl_fee_yen,
        disaster_system_fee_yen=disaster,
        store=store,
    )
