"""A synthetic nation (DOMAIN §8): municipalities of every class with their populations, profiles
and fee schedules, calibrated to the published national figures (``synthetic_nation``)."""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import NamedTuple

from producers.workload.sample import CERTIFICATE_MIX, TAX_TYPES
from schemas.codes import municipality_check_digit
from schemas.events.issuance import (
    CertificateType,
)
from schemas.events.municipalities import (
    FeeEntry,
    MunicipalityClass,
    MunicipalityProfile,
    SealKey,
)

NATIONAL_POPULATION = 125_000_000
NATIONAL_MUNICIPALITIES = 1_741

# Certificates issued nationally per month, Feb 2023 – Mar 2024 (DOMAIN §8).
MONTHLY_CERTIFICATES: dict[tuple[int, int], int] = {
    (2023, 2): 2_160_677, (2023, 3): 2_927_497, (2023, 4): 2_512_400, (2023, 5): 2_203_050,
    (2023, 6): 2_988_607, (2023, 7): 2_503_537, (2023, 8): 2_452_279, (2023, 9): 2_568_518,
    (2023, 10): 2_589_633, (2023, 11): 2_521_785, (2023, 12): 2_392_275, (2024, 1): 2_657_621,
    (2024, 2): 2_860_947, (2024, 3): 3_645_435,
}  # fmt: skip
REFERENCE_MONTH = (2024, 3)  # the month the operator and per-city figures come from

OUTSIDE_COUNTER_HOURS_SHARE = 0.493
OTHER_MUNICIPALITY_STORE_SHARE = 0.211


@dataclass(frozen=True, slots=True)
class NamedMunicipality:
    code: str
    name: str
    municipality_class: MunicipalityClass
    population: int  # resident register, early 2024 (public, rounded)
    monthly_certificates: int | None = None  # March 2024, DOMAIN §8
    outside_share: float | None = None
    other_store_share: float | None = None


NAMED_MUNICIPALITIES: tuple[NamedMunicipality, ...] = (
    NamedMunicipality("141003", "横浜市", MunicipalityClass.DESIGNATED_CITY, 3_752_000,
                      109_786, 0.489, 0.153),
    NamedMunicipality("401307", "福岡市", MunicipalityClass.DESIGNATED_CITY, 1_612_000,
                      112_469, 0.371, 0.094),
    NamedMunicipality("271004", "大阪市", MunicipalityClass.DESIGNATED_CITY, 2_757_000,
                      97_493, 0.494, 0.135),
    NamedMunicipality("011002", "札幌市", MunicipalityClass.DESIGNATED_CITY, 1_955_000),
    NamedMunicipality("131016", "千代田区", MunicipalityClass.SPECIAL_WARD, 68_000),
)  # fmt: skip

# How many of the nation's 1,741 municipalities each class has (the named ones included), the
# third digit of their codes, and their populations: (median, spread of the log-normal, floor).
_CLASSES: dict[MunicipalityClass, tuple[int, str, tuple[int, float, int]]] = {
    MunicipalityClass.DESIGNATED_CITY: (20, "1", (900_000, 0.35, 690_000)),
    MunicipalityClass.SPECIAL_WARD: (23, "1", (330_000, 0.6, 60_000)),
    MunicipalityClass.CITY: (772, "2", (60_000, 1.0, 5_000)),
    MunicipalityClass.TOWN: (743, "3", (9_000, 0.9, 1_000)),
    MunicipalityClass.VILLAGE: (183, "4", (3_000, 0.8, 200)),
}
_CLASS_SUFFIX = {
    MunicipalityClass.DESIGNATED_CITY: "市",
    MunicipalityClass.SPECIAL_WARD: "区",
    MunicipalityClass.CITY: "市",
    MunicipalityClass.TOWN: "町",
    MunicipalityClass.VILLAGE: "村",
}
_PLACE_PARTS = tuple("青赤北南東西大小高新本石川山田野松竹梅桜宮森浜沢原島岡崎")


@dataclass(frozen=True, slots=True)
class SyntheticMunicipality:
    """A municipality of the generated nation, with the traffic it draws."""

    code: str
    name: str
    municipality_class: MunicipalityClass
    population: int
    uses_bcl: bool
    offered_types: tuple[CertificateType, ...]
    monthly_requests: float  # expected requests in the reference month, at scale 1
    outside_share: float
    other_store_share: float
    campaign_from: date | None  # a 200-yen campaign for 住民票 and 印鑑 from that day
    disaster_system_since: date | None = None  # the cloud disaster victim support system

    @classmethod
    def registered(cls, code: str, profile: MunicipalityProfile) -> SyntheticMunicipality:
        """A registered municipality drawing the nation's average traffic for its population."""
        return cls(
            code=code,
            name=profile.name,
            municipality_class=profile.municipality_class,
            population=profile.population,
            uses_bcl=profile.uses_bcl,
            offered_types=tuple(k for k in profile.offered_types if k in CERTIFICATE_MIX),
            monthly_requests=profile.population
            * MONTHLY_CERTIFICATES[REFERENCE_MONTH]
            / NATIONAL_POPULATION,
            outside_share=OUTSIDE_COUNTER_HOURS_SHARE,
            other_store_share=OTHER_MUNICIPALITY_STORE_SHARE,
            campaign_from=None,
            disaster_system_since=profile.disaster_system_since,
        )

    def fee_schedule(self) -> tuple[FeeEntry, ...]:
        """300 yen, 450 for a family register, and the campaign where there is one."""
        entries = [
            FeeEntry(
                certificate_type=kind,
                fee_yen=450 if kind is CertificateType.KOSEKI else 300,
                effective_from=date(2016, 1, 1),
            )
            for kind in self.offered_types
        ]
        if self.campaign_from is not None:
            entries += [
                FeeEntry(certificate_type=kind, fee_yen=200, effective_from=self.campaign_from)
                for kind in (CertificateType.JUMINHYO, CertificateType.INKAN)
            ]
        return tuple(entries)

    def profile(
        self, holidays: Sequence[date] = (), seal_key: SealKey | None = None
    ) -> MunicipalityProfile:
        return MunicipalityProfile(
            name=self.name,
            uses_bcl=self.uses_bcl,
            municipality_class=self.municipality_class,
            population=self.population,
            offered_types=self.offered_types,
            holidays=tuple(holidays),
            fees=self.fee_schedule(),
            disaster_system_since=self.disaster_system_since,
            seal_keys=(seal_key,) if seal_key else (),
        )


def synthetic_nation(
    count: int = NATIONAL_MUNICIPALITIES, *, seed: int = 7
) -> list[SyntheticMunicipality]:
    """``count`` municipalities in the nation's proportions of classes (the five named in DOMAIN
    §8 first, with their real populations and figures), ~10% of them on BCL, mostly small.

    Shares of traffic outside counter hours and from other municipalities' stores are set so that
    the whole set reproduces the national ones, whatever its size.
    """
    rng = random.Random(f"nation:{seed}")
    named = NAMED_MUNICIPALITIES[: max(0, count)]
    taken = {m.code for m in named}
    left = count - len(named)
    classes: list[MunicipalityClass] = []
    for kind, (national, _, _) in _CLASSES.items():
        already = sum(1 for m in named if m.municipality_class is kind)
        classes += [kind] * round(max(0, national - already) * left / NATIONAL_MUNICIPALITIES)
    classes = (classes + [MunicipalityClass.CITY] * left)[:left]
    rng.shuffle(classes)
    rate = MONTHLY_CERTIFICATES[REFERENCE_MONTH] / NATIONAL_POPULATION
    drafts = [
        _Draft(
            m.code, m.name, m.municipality_class, m.population,
            m.monthly_certificates or m.population * rate, m.outside_share, m.other_store_share,
        )
        for m in named
    ]  # fmt: skip
    for kind in classes:
        _, digit, (median, spread, floor) = _CLASSES[kind]
        code = _free_code(rng, digit, kind, taken)
        population = max(floor, round(rng.lognormvariate(math.log(median), spread)))
        name = "".join(rng.choices(_PLACE_PARTS, k=2)) + _CLASS_SUFFIX[kind]
        monthly = population * rate * rng.uniform(0.6, 1.4)
        drafts.append(_Draft(code, name, kind, population, monthly, None, None))
    outside = _calibrated([(d.monthly, d.outside) for d in drafts], OUTSIDE_COUNTER_HOURS_SHARE)
    other = _calibrated([(d.monthly, d.other) for d in drafts], OTHER_MUNICIPALITY_STORE_SHARE)
    named_codes = {m.code for m in named}
    nation = []
    for draft in drafts:
        small = draft.population < 30_000 and draft.kind is not MunicipalityClass.SPECIAL_WARD
        uses_bcl = draft.code not in named_codes and rng.random() < (0.17 if small else 0.01)
        nation.append(
            SyntheticMunicipality(
                code=draft.code,
                name=draft.name,
                municipality_class=draft.kind,
                population=draft.population,
                uses_bcl=uses_bcl,
                offered_types=_offered_types(rng, uses_bcl, draft.population),
                monthly_requests=draft.monthly,
                outside_share=draft.outside if draft.outside is not None else outside,
                other_store_share=draft.other if draft.other is not None else other,
                campaign_from=date(2023, 10, 1) if rng.random() < 0.08 else None,
                disaster_system_since=_disaster_system_since(draft.code, seed),
            )
        )
    return nation


def _disaster_system_since(code: str, seed: int) -> date | None:
    """A quarter of municipalities introduced the cloud disaster system, in FY2022–FY2024 (its
    own generator, so the rest of the nation does not depend on it)."""
    rng = random.Random(f"disaster-system:{seed}:{code}")
    if rng.random() >= 0.25:
        return None
    return date(2022, 4, 1) + timedelta(days=rng.randrange(3 * 365))


def _free_code(rng: random.Random, digit: str, kind: MunicipalityClass, taken: set[str]) -> str:
    while True:
        prefecture = 13 if kind is MunicipalityClass.SPECIAL_WARD else rng.randint(1, 47)
        first5 = f"{prefecture:02d}{digit}{rng.randrange(100):02d}"
        code = first5 + str(municipality_check_digit(first5))
        if code not in taken:
            taken.add(code)
            return code


class _Draft(NamedTuple):
    code: str
    name: str
    kind: MunicipalityClass
    population: int
    monthly: float
    outside: float | None
    other: float | None


def _calibrated(volumes_and_shares: Sequence[tuple[float, float | None]], national: float) -> float:
    """The share the municipalities without a published one need for the whole set to reach
    ``national``, weighted by their traffic."""
    volume = sum(v for v, _ in volumes_and_shares)
    known = [(v, s) for v, s in volumes_and_shares if s is not None]
    rest = volume - sum(v for v, _ in known)
    if rest <= 0:
        return national
    return min(0.95, max(0.0, (national * volume - sum(v * s for v, s in known)) / rest))


def _offered_types(
    rng: random.Random, uses_bcl: bool, population: int
) -> tuple[CertificateType, ...]:
    """BCL municipalities issue what BCL can; large ones offer everything; the rest in the
    national participation shares of DOMAIN §3 (tax 71%, family register 58%, 記載事項 18%)."""
    basic = (CertificateType.JUMINHYO, CertificateType.INKAN)
    tax = tuple(sorted(TAX_TYPES))
    if uses_bcl:
        return basic + tax
    if population >= 100_000:
        return tuple(CERTIFICATE_MIX)
    offered = list(basic)
    if rng.random() < 0.71:
        offered += tax
    if rng.random() < 0.58:
        offered += [CertificateType.KOSEKI, CertificateType.KOSEKI_FUHYO]
    if rng.random() < 0.18:
        offered.append(CertificateType.JUMINHYO_KISAI)
    return tuple(offered)
