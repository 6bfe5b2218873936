"""Recorded traffic: the log as the issuer leaves it (``recorded_traffic``).

The real issuer draws and seals a PDF per certificate, ~100 a second on this machine; usage and
fees need months of decisions. Recorded traffic stands in for the issuer: each visit becomes the
request, the decision the issuer would record (same schema, a real ECDSA seal by the
municipality's generated key over the document's facts, sealed with a data key no vault holds,
as if shredded) and the kiosk's notice. A contract test keeps its decisions equal to the rules'.
"""

from __future__ import annotations

import base64
import hashlib
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

import orjson
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from pipeline.publish import Outgoing
from pipeline.seals import public_seal_pem, seal_key_id
from pipeline.topics import ISSUANCE_OUTCOMES, ISSUANCE_REQUESTS, JPKI_CERTIFICATES, MUNICIPALITIES
from producers.workload.nation import SyntheticMunicipality
from producers.workload.traffic import REJECTION_MESSAGES, Visit
from schemas.calendar import JST
from schemas.envelope import Envelope
from schemas.events.certificates import CertificateKind, CertificateRevoked, RevocationReason
from schemas.events.issuance import (
    IssuanceCancelled,
    IssuanceDelivered,
    IssuanceIssued,
    IssuanceRejected,
    RejectionReason,
)
from schemas.events.municipalities import (
    MunicipalityJoined,
    SealKey,
)
from schemas.ids import derived_event_id
from schemas.sealed import Sealed


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
