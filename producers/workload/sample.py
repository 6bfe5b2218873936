"""The sample stream: kiosk requests with their delivery or cancellation, and certificate
revocations, for the sample municipalities (``platform_sample``)."""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta

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
