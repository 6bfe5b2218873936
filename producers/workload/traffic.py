"""The nation's kiosk traffic (DOMAIN §8): when residents come (days and hours), what they ask
for and what happens to each request (``national_traffic``).

A month of Japan's kiosk traffic, shaped by the published figures: municipalities of every class
with their populations, requests by day of week and hour of day, operators, certificate types,
~49% outside counter hours and ~21% from another municipality's store, a few rejections,
deliveries and cancellations. Each day draws from its own seeded generator, so one day can be
made without the days before it, and only one day is ever held in memory.
"""

from __future__ import annotations

import functools
import itertools
import random
import uuid
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Literal

import jpholiday

from producers.workload.nation import MONTHLY_CERTIFICATES, REFERENCE_MONTH, SyntheticMunicipality
from producers.workload.sample import CERTIFICATE_MIX, OPERATORS, TAX_TYPES
from schemas.calendar import JST, fiscal_year, is_year_end_closure
from schemas.codes import Origin
from schemas.events.issuance import (
    CertificateType,
    FeeQuote,
    IssuanceRequested,
    RejectionReason,
    StoreOperator,
)
from schemas.events.municipalities import (
    FeeEntry,
    MunicipalityProfile,
)
from schemas.fees import fee_quote

# Requests per day relative to a weekday, and per hour of the 6:30–23:00 service (assumption:
# lunchtime and evening peaks, the shape kiosk operators report).
DAY_WEIGHTS = {"weekday": 1.0, "saturday": 0.8, "sunday_or_holiday": 0.7}
HOUR_WEIGHTS: dict[int, float] = {
    6: 0.6, 7: 1.2, 8: 2.5, 9: 4.5, 10: 6.5, 11: 7.0, 12: 7.5, 13: 7.0, 14: 6.5, 15: 6.5,
    16: 6.5, 17: 7.0, 18: 7.5, 19: 6.5, 20: 5.0, 21: 3.5, 22: 2.0,
}  # fmt: skip
_SERVICE_MINUTES = range(6 * 60 + 30, 23 * 60)


def national_holidays(first: date, last: date) -> tuple[date, ...]:
    """Japan's national holidays (祝日) from ``first`` to ``last``: counters are closed."""
    return tuple(day for day, _ in jpholiday.between(first, last))


def day_weight(day: date, holidays: Collection[date]) -> float:
    if is_year_end_closure(day):
        return 0.0  # 29 Dec – 3 Jan: the service is closed (DOMAIN §2)
    if day.weekday() == 6 or day in holidays:
        return DAY_WEIGHTS["sunday_or_holiday"]
    if day.weekday() == 5:
        return DAY_WEIGHTS["saturday"]
    return DAY_WEIGHTS["weekday"]


def monthly_national(year: int, month: int) -> int:
    """The month's national certificates; outside the published series, the same month of the
    nearest published year."""
    if (year, month) in MONTHLY_CERTIFICATES:
        return MONTHLY_CERTIFICATES[(year, month)]
    same = [(abs(y - year), n) for (y, m), n in MONTHLY_CERTIFICATES.items() if m == month]
    return min(same)[1]


@dataclass(frozen=True, slots=True)
class _Day:
    """One day's shape: how much of its month it carries, and its minutes inside and outside
    the counter's hours as cumulative weights for drawing."""

    day: date
    share: float  # of its month's requests
    closed_share: float  # of its month's requests that fall on days the counter is closed
    inside: tuple[list[int], list[float]]
    outside: tuple[list[int], list[float]]


def _day_shape(day: date, profile: MunicipalityProfile, month: tuple[float, float]) -> _Day:
    total, closed = month
    inside: tuple[list[int], list[float]] = ([], [])
    outside: tuple[list[int], list[float]] = ([], [])
    for minute in _SERVICE_MINUTES:
        at = datetime.combine(day, time(minute // 60, minute % 60), JST)
        minutes, cumulative = inside if profile.counter_open(at) else outside
        minutes.append(minute)
        cumulative.append((cumulative[-1] if cumulative else 0.0) + HOUR_WEIGHTS[minute // 60])
    return _Day(
        day,
        day_weight(day, profile.holidays) / total if total else 0.0,
        closed / total if total else 0.0,
        inside,
        outside,
    )


def _month_weights(year: int, month: int, profile: MunicipalityProfile) -> tuple[float, float]:
    """The month's day weights: all days, and the days the counter stays closed."""
    first = date(year, month, 1)
    days = [first + timedelta(days=n) for n in range(31)]
    days = [d for d in days if d.month == month]
    return (
        sum(day_weight(d, profile.holidays) for d in days),
        sum(day_weight(d, profile.holidays) for d in days if not _counter_opens(profile, d)),
    )


def _counter_opens(profile: MunicipalityProfile, day: date) -> bool:
    return any(
        profile.counter_open(datetime.combine(day, time(minute // 60, minute % 60), JST))
        for minute in range(0, 24 * 60, 15)
    )


# --- what happens to each request --------------------------------------------------------------

# A few requests are refused (assumption: 3%), for the reasons a real day brings, weighted; the
# seal and tax reasons only for their types. 1.5% of issued certificates are cancelled at the kiosk.
REJECTED_SHARE = 0.03
REJECTION_MIX: dict[RejectionReason, float] = {
    RejectionReason.CERTIFICATE_REVOKED: 30,
    RejectionReason.CERTIFICATE_EXPIRED: 20,
    RejectionReason.CERTIFICATE_SUSPENDED: 5,
    RejectionReason.RESIDENT_NOT_ACTIVE: 15,
    RejectionReason.UNDER_15: 3,
    RejectionReason.SEAL_NOT_REGISTERED: 20,
    RejectionReason.TAX_FACTS_MISSING: 7,
}
REJECTION_MESSAGES: dict[RejectionReason, str] = {
    RejectionReason.CERTIFICATE_REVOKED: "the card's user-authentication certificate is revoked",
    RejectionReason.CERTIFICATE_EXPIRED: "the card's user-authentication certificate expired",
    RejectionReason.CERTIFICATE_SUSPENDED: "the card is suspended (reported lost)",
    RejectionReason.RESIDENT_NOT_ACTIVE: "the resident has moved out of the municipality",
    RejectionReason.UNDER_15: "residents under 15 cannot use the service",
    RejectionReason.SEAL_NOT_REGISTERED: "no seal is registered for the resident",
    RejectionReason.TAX_FACTS_MISSING: "no tax record for that fiscal year",
}
CANCELLED_SHARE = 0.015


@dataclass(frozen=True, slots=True)
class Visit:
    """One resident at a kiosk: the request, what the issuer decides (for recorded traffic) and
    what the kiosk reports afterwards."""

    request: IssuanceRequested
    at: datetime
    center: Origin
    outside_counter_hours: bool
    rejection: RejectionReason | None
    fee: FeeQuote | None  # quoted when issued
    through_bcl: bool  # decided from the BCL replica, else relayed from the municipality's server
    notice: Literal["delivered", "cancelled"] | None
    notice_at: datetime | None


def national_traffic(
    nation: Sequence[SyntheticMunicipality],
    *,
    start: date = date(2024, 3, 1),
    days: int = 31,
    scale: float = 1.0,
    seed: int = 7,
    holders: Mapping[str, Sequence[str]] | None = None,
) -> Iterator[Visit]:
    """The nation's kiosk visits from ``start`` for ``days`` days, in time order.

    ``scale`` multiplies the published volumes (1.0 is Japan: ~3.6 million requests in March
    2024 over the whole nation). ``holders`` gives real cards' serials per municipality for
    traffic the real issuer decides; without them the serials are made up.
    """
    traffic = Traffic(nation, scale=scale, seed=seed, holders=holders)
    for offset in range(days):
        yield from traffic.day(start + timedelta(days=offset))


class Traffic:
    """The nation's traffic, one day at a time: each day draws from its own seeded generator,
    so days can be made in any order or in parallel processes and still give the same visits."""

    def __init__(
        self,
        nation: Sequence[SyntheticMunicipality],
        *,
        scale: float = 1.0,
        seed: int = 7,
        holders: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        if not nation:
            raise ValueError("the traffic needs at least one municipality")
        self.nation = tuple(nation)
        self.scale = scale
        self.seed = seed
        self.holders = holders
        self._kinds = _type_weights(nation)
        self._stores = [m.code for m in nation]
        self._store_weights = list(itertools.accumulate(m.population for m in nation))
        operators = sum(share for share, _ in OPERATORS.values())
        self._kiosk_share = OPERATORS[StoreOperator.MUNICIPAL_KIOSK][0] / operators
        self._calendars: dict[int, MunicipalityProfile] = {}
        self._months: dict[tuple[int, int], tuple[float, float]] = {}

    def day(self, day: date) -> list[Visit]:
        """The day's visits in time order."""
        calendar = self._calendar(day.year)
        month = (day.year, day.month)
        if month not in self._months:
            self._months[month] = _month_weights(day.year, day.month, calendar)
        shape = _day_shape(day, calendar, self._months[month])
        rng = random.Random(f"traffic:{self.seed}:{day.isoformat()}")
        month_factor = monthly_national(day.year, day.month) / MONTHLY_CERTIFICATES[REFERENCE_MONTH]
        visits: list[Visit] = []
        for municipality in self.nation:
            expected = municipality.monthly_requests * month_factor * self.scale * shape.share
            count = int(expected + rng.random())  # rounded at random: unbiased, day by day
            open_share = (
                (municipality.outside_share - shape.closed_share) / (1 - shape.closed_share)
                if shape.closed_share < 1
                else 1.0
            )
            for _ in range(count):
                outside = not shape.inside[0] or rng.random() < max(0.0, open_share)
                minutes, cumulative = shape.outside if outside else shape.inside
                minute = rng.choices(minutes, cum_weights=cumulative)[0]
                at = datetime.combine(day, time(minute // 60, minute % 60, rng.randrange(60)), JST)
                visits.append(self._visit(rng, municipality, at, outside))
        visits.sort(key=lambda v: (v.at, v.request.request_id))
        return visits

    def _calendar(self, year: int) -> MunicipalityProfile:
        """The counter's calendar every generated municipality keeps: weekdays 8:30–17:15,
        closed on national holidays (the year's and its neighbours', for month edges)."""
        if year not in self._calendars:
            holidays = national_holidays(date(year - 1, 12, 1), date(year + 1, 1, 31))
            self._calendars[year] = MunicipalityProfile(
                name="calendar", uses_bcl=False, holidays=holidays
            )
        return self._calendars[year]

    def _visit(
        self, rng: random.Random, municipality: SyntheticMunicipality, at: datetime, outside: bool
    ) -> Visit:
        operator = rng.choices(_OPERATOR_LIST, cum_weights=_OPERATOR_WEIGHTS)[0]
        store = municipality.code
        # A municipal kiosk stands in its own town hall; the other operators carry the whole share.
        if (
            operator is not StoreOperator.MUNICIPAL_KIOSK
            and len(self._stores) > 1
            and rng.random() < municipality.other_store_share / (1 - self._kiosk_share)
        ):
            while store == municipality.code:
                store = rng.choices(self._stores, cum_weights=self._store_weights)[0]
        kinds, weights = self._kinds[municipality.code]
        kind = rng.choices(kinds, cum_weights=weights)[0]
        held = self.holders.get(municipality.code) if self.holders else None
        request = IssuanceRequested(
            request_id=uuid.UUID(int=rng.getrandbits(128), version=4),
            store_operator=operator,
            store_id=f"{operator.value[:3].upper()}-{rng.randrange(100000):05d}",
            store_municipality=store,
            resident_municipality=municipality.code,
            auth_serial=rng.choice(held) if held else f"{rng.getrandbits(64):016X}",
            certificate_type=kind,
            fiscal_year=tax_year(at.date()) if kind in TAX_TYPES else None,
            copies=1 if rng.random() < 0.9 else 2,
        )
        rejection = _rejection(rng, kind) if rng.random() < REJECTED_SHARE else None
        notice: Literal["delivered", "cancelled"] | None = None
        if rejection is None:
            notice = "cancelled" if rng.random() < CANCELLED_SHARE else "delivered"
        return Visit(
            request=request,
            at=at,
            center=OPERATORS[operator][1],
            outside_counter_hours=outside,
            rejection=rejection,
            fee=None if rejection else _fee(municipality, kind, request.copies, at),
            through_bcl=municipality.uses_bcl,
            notice=notice,
            notice_at=at + timedelta(seconds=rng.randint(20, 180)) if notice else None,
        )


_OPERATOR_LIST = list(OPERATORS)
_OPERATOR_WEIGHTS = list(itertools.accumulate(share for share, _ in OPERATORS.values()))


def tax_year(day: date) -> int:
    """The fiscal year (年度) a resident asks tax certificates for on ``day``: the current one
    from June, when its figures are set, else the one before."""
    current = fiscal_year(day)
    return current if day.month >= 6 or day.month < 4 else current - 1


def _type_weights(
    nation: Sequence[SyntheticMunicipality],
) -> dict[str, tuple[list[CertificateType], list[float]]]:
    """Per municipality, the types it offers weighted by the national mix divided by how much of
    the traffic can ask for each, so that the whole nation reproduces the national mix."""
    volume = sum(m.monthly_requests for m in nation)
    coverage = {
        kind: sum(m.monthly_requests for m in nation if kind in m.offered_types) / volume
        for kind in CERTIFICATE_MIX
    }
    weights = {}
    for municipality in nation:
        kinds = [k for k in CERTIFICATE_MIX if k in municipality.offered_types]
        weights[municipality.code] = (
            kinds,
            list(itertools.accumulate(CERTIFICATE_MIX[k] / coverage[k] for k in kinds)),
        )
    return weights


def _rejection(rng: random.Random, kind: CertificateType) -> RejectionReason:
    reasons = [
        reason
        for reason in REJECTION_MIX
        if not (reason is RejectionReason.SEAL_NOT_REGISTERED and kind is not CertificateType.INKAN)
        and not (reason is RejectionReason.TAX_FACTS_MISSING and kind not in TAX_TYPES)
    ]
    return rng.choices(reasons, [REJECTION_MIX[r] for r in reasons])[0]


def _fee(
    municipality: SyntheticMunicipality, kind: CertificateType, copies: int, at: datetime
) -> FeeQuote:
    return fee_quote(_fee_schedule(municipality), kind, copies, at)


@functools.lru_cache(maxsize=4096)
def _fee_schedule(municipality: SyntheticMunicipality) -> tuple[FeeEntry, ...]:
    return municipality.fee_schedule()
