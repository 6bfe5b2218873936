"""The workload generator every test, benchmark and the demo share.

Deterministic from a seed and streamed (a generator, never a list), so the same call gives the
same events whether it makes a hundred or millions: kiosk requests with their delivery or
cancellation and certificate revocations (``platform_sample``), and municipal resident registers
and their changes as push files (``resident_register``, ``resident_changes``).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import itertools
import math
import random
import uuid
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Literal, NamedTuple

import jpholiday
import orjson
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from pipeline.publish import Outgoing
from pipeline.seals import public_seal_pem, seal_key_id
from pipeline.topics import ISSUANCE_OUTCOMES, ISSUANCE_REQUESTS, JPKI_CERTIFICATES, MUNICIPALITIES
from schemas.calendar import JST, fiscal_year, is_year_end_closure
from schemas.codes import Origin, municipality_check_digit
from schemas.envelope import Envelope
from schemas.events.certificates import CertificateKind, CertificateRevoked, RevocationReason
from schemas.events.issuance import (
    CertificateType,
    FeeQuote,
    IssuanceCancelled,
    IssuanceDelivered,
    IssuanceIssued,
    IssuanceRejected,
    IssuanceRequested,
    RejectionReason,
    StoreOperator,
)
from schemas.events.municipalities import (
    FeeEntry,
    MunicipalityClass,
    MunicipalityJoined,
    MunicipalityProfile,
    SealKey,
)
from schemas.fees import fee_quote
from schemas.ids import derived_event_id
from schemas.inputs.resident_diff import my_number_check_digit
from schemas.sealed import Sealed

# Municipalities named in DOMAIN.md, with valid check digits.
SAMPLE_MUNICIPALITIES: tuple[tuple[str, str], ...] = (
    ("131016", "千代田区"),
    ("141003", "横浜市"),
    ("011002", "札幌市"),
    ("401307", "福岡市"),
    ("271004", "大阪市"),
)

# Operator → (share of March 2024 certificates, preferred center). DOMAIN.md §8; the centers are
# an assumption in the spirit of "operator A → East, B and C → West".
OPERATORS: dict[StoreOperator, tuple[float, Origin]] = {
    StoreOperator.SEVEN_ELEVEN: (1_889_138, "east"),
    StoreOperator.FAMILYMART: (818_698, "west"),
    StoreOperator.LAWSON: (712_360, "west"),
    StoreOperator.MUNICIPAL_KIOSK: (150_868, "east"),
    StoreOperator.MINISTOP: (45_668, "east"),
    StoreOperator.SEICOMART: (11_444, "east"),
    StoreOperator.AEON_RETAIL: (7_539, "west"),
    StoreOperator.OTHER: (9_720, "west"),  # the national total less the operators named
}

# FY2023 mix of the types counted in DOMAIN.md §8 (tax certificates split evenly).
CERTIFICATE_MIX: dict[CertificateType, float] = {
    CertificateType.JUMINHYO: 15_300_371,
    CertificateType.JUMINHYO_KISAI: 248_270,
    CertificateType.INKAN: 10_687_923,
    CertificateType.TAX_INCOME: 2_146_003 / 3,
    CertificateType.TAX_ASSESSMENT: 2_146_003 / 3,
    CertificateType.TAX_PAYMENT: 2_146_003 / 3,
    CertificateType.KOSEKI: 3_288_104,
    CertificateType.KOSEKI_FUHYO: 225_416,
}

TAX_TYPES = frozenset(
    {CertificateType.TAX_INCOME, CertificateType.TAX_ASSESSMENT, CertificateType.TAX_PAYMENT}
)


def platform_sample(
    count: int, *, seed: int = 7, start: datetime | None = None
) -> Iterator[Outgoing]:
    """``count`` events of kiosk traffic and certificate revocations for the sample municipalities.

    Registry events are left to `bcl municipality add`, so a sample stream never replaces a
    profile (and its push key) that a user registered.

    Each request is followed (later in the stream) by its delivery or, one time in twenty, its
    cancellation; about one event in fifty is a certificate revocation.
    """
    rng = random.Random(seed)
    clock = start or datetime(2024, 3, 1, 6, 30, tzinfo=UTC)
    emitted = 0
    open_requests: list[tuple[uuid.UUID, Origin, str]] = []
    while emitted < count:
        clock += timedelta(milliseconds=rng.randint(1, 400))
        roll = rng.random()
        if roll < 0.02:
            serial = f"{rng.getrandbits(64):016X}"
            yield Outgoing(
                JPKI_CERTIFICATES.name,
                serial,
                Envelope.new(
                    "certificate.revoked",
                    CertificateRevoked(
                        serial=serial,
                        kind=rng.choice(list(CertificateKind)),
                        reason=rng.choice(list(RevocationReason)),
                        revoked_at=clock,
                    ),
                    origin="east",
                    source="jpki",
                    occurred_at=clock,
                ),
            )
        elif open_requests and roll < 0.48:
            request_id, origin, municipality = open_requests.pop(rng.randrange(len(open_requests)))
            notice: IssuanceDelivered | IssuanceCancelled
            if rng.random() < 0.05:
                kind, notice = (
                    "issuance.cancelled",
                    IssuanceCancelled(request_id=request_id, reason="resident left the kiosk"),
                )
            else:
                kind, notice = (
                    "issuance.delivered",
                    IssuanceDelivered(request_id=request_id, fee_paid_yen=300, printed_at=clock),
                )
            yield Outgoing(
                ISSUANCE_REQUESTS.name,
                str(request_id),
                Envelope.new(
                    kind,
                    notice,
                    origin=origin,
                    source=f"center:{origin}",
                    occurred_at=clock,
                    municipality=municipality,
                ),
            )
        else:
            request, origin = kiosk_request(
                rng,
                rng.choice(SAMPLE_MUNICIPALITIES)[0],
                f"{rng.getrandbits(64):016X}",
                [code for code, _ in SAMPLE_MUNICIPALITIES],
            )
            open_requests.append((request.request_id, origin, request.resident_municipality))
            yield Outgoing(
                ISSUANCE_REQUESTS.name,
                str(request.request_id),
                Envelope.new(
                    "issuance.requested",
                    request,
                    origin=origin,
                    source=f"center:{origin}",
                    occurred_at=clock,
                    municipality=request.resident_municipality,
                ),
            )
        emitted += 1


def kiosk_request(
    rng: random.Random,
    resident_municipality: str,
    auth_serial: str,
    store_municipalities: Sequence[str],
    types: Mapping[CertificateType, float] = CERTIFICATE_MIX,
) -> tuple[IssuanceRequested, Origin]:
    """One resident's request at a kiosk, with the operator's preferred center: operators and
    types in their national shares, 21% of requests from a store of another municipality."""
    operator = rng.choices(list(OPERATORS), [share for share, _ in OPERATORS.values()])[0]
    certificate_type = rng.choices(list(types), list(types.values()))[0]
    others = [m for m in store_municipalities if m != resident_municipality]
    store_municipality = (
        rng.choice(others) if others and rng.random() < 0.21 else resident_municipality
    )
    request = IssuanceRequested(
        request_id=uuid.UUID(int=rng.getrandbits(128), version=4),
        store_operator=operator,
        store_id=f"{operator.value[:3].upper()}-{rng.randrange(100000):05d}",
        store_municipality=store_municipality,
        resident_municipality=resident_municipality,
        auth_serial=auth_serial,
        certificate_type=certificate_type,
        fiscal_year=2023 if certificate_type in TAX_TYPES else None,
        copies=1 if rng.random() < 0.9 else 2,
    )
    return request, OPERATORS[operator][1]


def kiosk_requests(
    holders: Sequence[tuple[str, str]],
    *,
    seed: int = 7,
    types: Mapping[CertificateType, float] = CERTIFICATE_MIX,
) -> Iterator[tuple[IssuanceRequested, Origin]]:
    """Endless requests of real card holders ``(municipality, user-authentication serial)``, for
    the center gateway: each with the center its store's operator sends to."""
    rng = random.Random(seed)
    municipalities = sorted({m for m, _ in holders})
    while True:
        municipality, serial = rng.choice(holders)
        yield kiosk_request(rng, municipality, serial, municipalities, types)


# --- resident registers ------------------------------------------------------------------------

SURNAMES = (
    "佐藤", "鈴木", "高橋", "田中", "伊藤", "渡辺", "山本", "中村", "小林", "加藤", "吉田", "山田",
    "佐々木", "山口", "松本", "井上", "木村", "林", "斎藤", "清水", "山崎", "森", "池田", "橋本",
)  # fmt: skip
GIVEN_NAMES = {
    "male": ("翔太", "大輔", "健太", "拓也", "蓮", "湊", "大翔", "悠真", "誠", "浩", "隆", "勇"),
    "female": ("陽子", "花子", "美咲", "結衣", "葵", "陽菜", "さくら", "恵子", "直美", "由美"),
}
TOWNS = ("本町", "中央", "栄町", "緑町", "旭町", "若葉", "桜台", "青葉台", "港町", "東町")


def resident_code(municipality: str, number: int) -> str:
    """A synthetic 住民票コード, unique per (municipality, number)."""
    return f"{(int(municipality[:5]) * 1_000_000 + number) % 10**11:011d}"


def my_number(rng: random.Random) -> str:
    first11 = f"{rng.randrange(10**11):011d}"
    return first11 + str(my_number_check_digit(first11))


def resident_register(
    municipality: str,
    residents: int,
    *,
    seed: int = 7,
    town: str = "",
    as_of: date = date(2024, 4, 1),
    seals: bool = False,
    tax_years: Sequence[int] = (),
) -> Iterator[dict[str, str]]:
    """A municipality's whole register as diff rows (one row per resident), in households.

    With ``seals``, about two adults in three have a registered seal (印鑑登録), in a seal row
    after their own; with ``tax_years``, every adult has tax facts for those fiscal years.
    Rows are plain dicts of text, the shape of a CSV row, so they can be written to a push file
    as they come; a million residents never sit in memory.
    """
    rng = random.Random(f"{seed}:{municipality}")
    made = 0
    household = 0
    while made < residents:
        household += 1
        surname = rng.choice(SURNAMES)
        block = f"{rng.randint(1, 9)}丁目{rng.randint(1, 30)}番{rng.randint(1, 20)}号"
        address = f"{town}{rng.choice(TOWNS)}{block}"
        head_sex = rng.choice(("male", "female"))
        head_name = f"{surname} {rng.choice(GIVEN_NAMES[head_sex])}"
        size = min(residents - made, rng.choices((1, 2, 3, 4, 5), (35, 28, 18, 14, 5))[0])
        moved_in = date(rng.randint(1990, 2023), rng.randint(1, 12), rng.randint(1, 28))
        for member in range(size):
            made += 1
            if member == 0:
                sex, name, relationship = head_sex, head_name, "02"
                born = date(rng.randint(1940, 1995), rng.randint(1, 12), rng.randint(1, 28))
            elif member == 1:
                sex = "female" if head_sex == "male" else "male"
                name, relationship = f"{surname} {rng.choice(GIVEN_NAMES[sex])}", "03"
                born = date(rng.randint(1940, 1995), rng.randint(1, 12), rng.randint(1, 28))
            else:
                sex = rng.choice(("male", "female"))
                name, relationship = f"{surname} {rng.choice(GIVEN_NAMES[sex])}", "04"
                born = date(rng.randint(2000, 2023), rng.randint(1, 12), rng.randint(1, 28))
            since = max(moved_in, born)
            yield {
                "municipality": municipality,
                "record": "resident",
                "resident_code": resident_code(municipality, made),
                "household_number": f"{household:015d}",
                "relationship": relationship,
                "reason": "birth" if since == born and member >= 2 else "move_in",
                "effective_date": since.isoformat(),
                "name": name,
                "birth_date": born.isoformat(),
                "sex": sex,
                "address": address,
                "head_of_household": head_name,
                "resident_since": since.isoformat(),
                "address_since": since.isoformat(),
                "notified_on": since.isoformat(),
                "my_number": my_number(rng),
            }
            adult = (as_of - born).days >= 18 * 365
            code = resident_code(municipality, made)
            if seals and adult and rng.random() < 0.66:
                yield {
                    "municipality": municipality,
                    "record": "seal",
                    "resident_code": code,
                    "seal_number": f"S{made:08d}",
                    "seal_status": "registered",
                    "effective_date": since.isoformat(),
                }
            for year in tax_years if adult else ():
                income = rng.randrange(0, 8_000_000, 1000)
                yield {
                    "municipality": municipality,
                    "record": "tax",
                    "resident_code": code,
                    "fiscal_year": str(year),
                    "income_yen": str(income),
                    "assessed_yen": str(income // 10),
                    "paid_yen": str(income // 10),
                }


def resident_changes(
    register: Iterator[dict[str, str]], changes: int, *, seed: int = 8, on: date = date(2024, 4, 2)
) -> Iterator[dict[str, str]]:
    """``changes`` diff rows against ``register``: moves within the town, moves out, deaths."""
    rng = random.Random(seed)
    rows = list(itertools.islice(register, changes * 4))
    for row in rng.sample(rows, min(changes, len(rows))):
        roll = rng.random()
        if roll < 0.6:
            yield {
                **row,
                "reason": "move_within",
                "effective_date": on.isoformat(),
                "previous_address": row["address"],
                "address": f"{rng.choice(TOWNS)}{rng.randint(1, 9)}丁目{rng.randint(1, 30)}番",
                "address_since": on.isoformat(),
                "notified_on": on.isoformat(),
            }
        elif roll < 0.85:
            yield {**row, "reason": "move_out", "effective_date": on.isoformat()}
        else:
            yield {**row, "reason": "death", "effective_date": on.isoformat()}


# --- the nation's traffic (DOMAIN §8) ----------------------------------------------------------
#
# A month of Japan's kiosk traffic, shaped by the published figures: municipalities of every class
# with their populations, requests by day of week and hour of day, operators, certificate types,
# ~49% outside counter hours and ~21% from another municipality's store, a few rejections,
# deliveries and cancellations. Each day draws from its own seeded generator, so one day can be
# made without the days before it, and only one day is ever held in memory.

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


# --- when residents come: days and hours -------------------------------------------------------

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


# --- recorded traffic: the log as the issuer leaves it -----------------------------------------
#
# The real issuer draws and seals a PDF per certificate, ~100 a second on this machine; usage and
# fees need months of decisions. Recorded traffic stands in for the issuer: each visit becomes
# the request, the decision the issuer would record (same schema, a real ECDSA seal by the
# municipality's generated key over the document's facts, sealed with a data key no vault holds,
# as if shredded) and the kiosk's notice. A contract test keeps its decisions equal to the rules'.


@dataclass(frozen=True, slots=True)
class GeneratedSeal:
    """A municipality's generated electronic seal key: deterministic from the seed."""

    private_key: ec.EllipticCurvePrivateKey
    key_id: str
    public: SealKey


def generated_seal(code: str, *, seed: int = 7) -> GeneratedSeal:
    secret = int.from_bytes(hashlib.sha256(f"seal:{seed}:{code}".encode()).digest(), "big")
    key = ec.derive_private_key(secret % (_P256_ORDER - 1) + 1, ec.SECP256R1())
    public = SealKey(
        key_id=seal_key_id(key),
        public_key=public_seal_pem(key),
        added_at=datetime(2016, 1, 1, tzinfo=UTC),
    )
    return GeneratedSeal(key, public.key_id, public)


_P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


def registry_events(
    nation: Sequence[SyntheticMunicipality],
    *,
    joined_on: date = date(2022, 1, 4),
    holidays: Sequence[date] = (),
    seed: int = 7,
) -> Iterator[Outgoing]:
    """Each municipality joining, with its fee schedule, holidays and generated seal key."""
    at = datetime.combine(joined_on, time(9), JST)
    for municipality in nation:
        profile = municipality.profile(
            holidays, generated_seal(municipality.code, seed=seed).public
        )
        yield Outgoing(
            MUNICIPALITIES.name,
            municipality.code,
            Envelope.new(
                "municipality.joined",
                MunicipalityJoined(code=municipality.code, joined_on=joined_on, profile=profile),
                origin="east",
                source="registry",
                occurred_at=at,
                municipality=municipality.code,
                event_id=derived_event_id(at, "joined", municipality.code),
            ),
        )


def recorded_traffic(visits: Iterable[Visit], *, seed: int = 7) -> Iterator[Outgoing]:
    """The events each visit leaves in the log: a revocation behind a revoked card, the request,
    the issuer's decision and the kiosk's notice. Event ids derive from the request and each
    event is recorded when it occurred, so the same seed gives the same log, byte for byte."""
    for message in _visit_events(visits, seed):
        envelope = message.envelope
        recorded = envelope.model_copy(update={"recorded_at": envelope.occurred_at})
        yield Outgoing(message.topic, message.key, recorded)


def _visit_events(visits: Iterable[Visit], seed: int) -> Iterator[Outgoing]:
    seals: dict[str, GeneratedSeal] = {}
    for visit in visits:
        request = visit.request
        code = request.resident_municipality
        key = str(request.request_id)
        center = visit.center
        source = f"center:{center}"
        if visit.rejection is RejectionReason.CERTIFICATE_REVOKED:
            revoked_at = visit.at - timedelta(days=1)
            yield Outgoing(
                JPKI_CERTIFICATES.name,
                request.auth_serial,
                Envelope.new(
                    "certificate.revoked",
                    CertificateRevoked(
                        serial=request.auth_serial,
                        kind=CertificateKind.USER_AUTHENTICATION,
                        reason=RevocationReason.HOLDER_REQUEST,
                        revoked_at=revoked_at,
                    ),
                    origin="east",
                    source="jpki",
                    occurred_at=revoked_at,
                    event_id=derived_event_id(revoked_at, "revoked", key),
                ),
            )
        yield Outgoing(
            ISSUANCE_REQUESTS.name,
            key,
            Envelope.new(
                "issuance.requested", request, origin=center, source=source,
                occurred_at=visit.at, municipality=code,
                event_id=derived_event_id(visit.at, "request", key),
            ),
        )  # fmt: skip
        decided_at = visit.at + timedelta(seconds=2)
        decision: IssuanceIssued | IssuanceRejected
        if visit.rejection is not None:
            decision = IssuanceRejected(
                request_id=request.request_id,
                municipality=code,
                certificate_type=request.certificate_type,
                reason=visit.rejection,
                message=REJECTION_MESSAGES[visit.rejection],
                outside_counter_hours=visit.outside_counter_hours,
            )
        else:
            if code not in seals:
                seals[code] = generated_seal(code, seed=seed)
            decision = _recorded_document(visit, seals[code], decided_at, seed)
        yield Outgoing(
            ISSUANCE_OUTCOMES.name,
            key,
            Envelope.new(
                "issuance.rejected" if visit.rejection else "issuance.issued",
                decision, origin=center, source="issuer", occurred_at=decided_at,
                municipality=code, causation_id=derived_event_id(visit.at, "request", key),
                event_id=derived_event_id(decided_at, "outcome", key),
            ),
        )  # fmt: skip
        if visit.notice is not None and visit.notice_at is not None:
            notice: IssuanceDelivered | IssuanceCancelled = (
                IssuanceDelivered(
                    request_id=request.request_id,
                    fee_paid_yen=visit.fee.total_yen if visit.fee else 0,
                    printed_at=visit.notice_at,
                )
                if visit.notice == "delivered"
                else IssuanceCancelled(
                    request_id=request.request_id, reason="resident left the kiosk"
                )
            )
            yield Outgoing(
                ISSUANCE_REQUESTS.name,
                key,
                Envelope.new(
                    f"issuance.{visit.notice}", notice, origin=center, source=source,
                    occurred_at=visit.notice_at, municipality=code,
                    event_id=derived_event_id(visit.notice_at, visit.notice, key),
                ),
            )  # fmt: skip


def _recorded_document(
    visit: Visit, seal: GeneratedSeal, decided_at: datetime, seed: int
) -> IssuanceIssued:
    request = visit.request
    assert visit.fee is not None
    document_id = derived_event_id(decided_at, "document", str(request.request_id))
    raw = orjson.dumps(
        {
            "document_id": str(document_id),
            "request_id": str(request.request_id),
            "municipality": request.resident_municipality,
            "certificate_type": request.certificate_type.value,
            "issued_at": decided_at.isoformat(),
        },
        option=orjson.OPT_SORT_KEYS,
    )
    digest = hashlib.sha256(raw).hexdigest()
    key = AESGCM(hashlib.sha256(f"content:{seed}".encode()).digest())
    nonce = bytes.fromhex(digest[:24])
    # Deterministic ECDSA (RFC 6979): the same seed gives the same log, byte for byte.
    signature = seal.private_key.sign(raw, ec.ECDSA(hashes.SHA256(), deterministic_signing=True))
    return IssuanceIssued(
        request_id=request.request_id,
        municipality=request.resident_municipality,
        resident_code=f"{int(digest[:12], 16) % 10**11:011d}",
        certificate_type=request.certificate_type,
        document_id=document_id,
        verification_id="-".join(digest[i : i + 4].upper() for i in range(0, 16, 4)),
        digest=digest,
        signature=base64.b64encode(signature).decode(),
        seal_key_id=seal.key_id,
        pages=1,
        fee=visit.fee,
        outside_counter_hours=visit.outside_counter_hours,
        through_bcl=visit.through_bcl,
        content=Sealed(
            key_id=uuid.UUID(bytes=hashlib.sha256(f"shredded:{seed}".encode()).digest()[:16]),
            nonce=base64.b64encode(nonce).decode(),
            ciphertext=base64.b64encode(key.encrypt(nonce, raw, document_id.bytes)).decode(),
        ),
    )
