"""The workload generator every test, benchmark and the demo share.

Deterministic from a seed and streamed (a generator, never a list), so the same call gives the
same events whether it makes a hundred or millions: kiosk requests with their delivery or
cancellation and certificate revocations (``platform_sample``), and municipal resident registers
and their changes as push files (``resident_register``, ``resident_changes``).
"""

from __future__ import annotations

import itertools
import random
import uuid
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta

from pipeline.publish import Outgoing
from pipeline.topics import ISSUANCE_REQUESTS, JPKI_CERTIFICATES
from schemas.codes import Origin
from schemas.envelope import Envelope
from schemas.events.certificates import CertificateKind, CertificateRevoked, RevocationReason
from schemas.events.issuance import (
    CertificateType,
    IssuanceCancelled,
    IssuanceDelivered,
    IssuanceRequested,
    StoreOperator,
)
from schemas.inputs.resident_diff import my_number_check_digit

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
) -> Iterator[dict[str, str]]:
    """A municipality's whole register as diff rows (one row per resident), in households.

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
