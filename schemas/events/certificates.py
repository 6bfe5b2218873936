"""JPKI electronic certificate lifecycle (topic ``jpki.certificates``)."""

from enum import StrEnum

from pydantic import AwareDatetime, BaseModel, ConfigDict

from schemas.codes import CertificateSerial
from schemas.registry import REGISTRY


class CertificateKind(StrEnum):
    SIGNATURE = "signature"
    USER_AUTHENTICATION = "user_authentication"


class RevocationReason(StrEnum):
    HOLDER_REQUEST = "holder_request"
    LOSS = "loss"
    KEY_COMPROMISE = "key_compromise"
    # A change to any basic-4 item revokes the signature certificate automatically.
    BASIC_INFO_CHANGED = "basic_info_changed"
    DEATH = "death"
    EX_OFFICIO = "ex_officio"
    EXPIRY = "expiry"
    REMOVAL = "removal"


@REGISTRY.event("certificate.revoked", 1)
class CertificateRevoked(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    serial: CertificateSerial
    kind: CertificateKind
    reason: RevocationReason
    revoked_at: AwareDatetime
