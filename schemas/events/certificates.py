"""JPKI electronic certificate lifecycle (topic ``jpki.certificates``, keyed by serial).

A My Number Card carries two certificates: the signature certificate (署名用) and the
user-authentication certificate (利用者証明用). Each lives from ``certificate.issued`` until it
expires at the holder's 5th birthday after issuance or is revoked; a lost card's certificates are
suspended first (一時保留) and only the municipality of residence lifts the suspension.
"""

from enum import StrEnum
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from schemas.codes import BASE64, CertificateSerial, MunicipalityCode, PlainText
from schemas.events.residents import ResidentCode
from schemas.ids import derived_event_id
from schemas.registry import REGISTRY

_FROZEN = ConfigDict(frozen=True, extra="forbid")


class CertificateKind(StrEnum):
    SIGNATURE = "signature"  # 署名用電子証明書
    USER_AUTHENTICATION = "user_authentication"  # 利用者証明用電子証明書


class RevocationReason(StrEnum):
    UNSPECIFIED = "unspecified"
    HOLDER_REQUEST = "holder_request"
    LOSS = "loss"
    KEY_COMPROMISE = "key_compromise"
    # A change to any basic-4 item revokes the signature certificate automatically.
    BASIC_INFO_CHANGED = "basic_info_changed"
    DEATH = "death"
    EX_OFFICIO = "ex_officio"
    EXPIRY = "expiry"
    REMOVAL = "removal"


@REGISTRY.event("certificate.issued", 1)
class CertificateIssued(BaseModel):
    """A certificate written to a resident's card (at the municipal counter)."""

    model_config = _FROZEN

    serial: CertificateSerial
    kind: CertificateKind
    municipality: MunicipalityCode = Field(description="The holder's municipality of residence.")
    resident_code: ResidentCode
    not_before: AwareDatetime
    not_after: AwareDatetime = Field(
        description="End of validity: the end of the holder's 5th birthday after issuance."
    )
    issuer: PlainText = Field(
        min_length=1, max_length=1_000, description="The issuing CA's name (RFC 4514)."
    )
    # Optional in the schema so that older events still read; consumers admit no certificate
    # without it (consumers.certificates.authorities).
    certificate: str | None = Field(
        default=None,
        pattern=BASE64,
        max_length=8_000,
        description="base64 of the X.509 certificate (DER), signed by the issuing CA.",
    )


@REGISTRY.event("certificate.suspended", 1)
class CertificateSuspended(BaseModel):
    """一時保留: a card reported lost is suspended at once, 24/365."""

    model_config = _FROZEN

    serial: CertificateSerial
    reason: RevocationReason = RevocationReason.LOSS
    suspended_at: AwareDatetime


@REGISTRY.event("certificate.suspension_lifted", 1)
class SuspensionLifted(BaseModel):
    """The card was found: only the holder's municipality of residence may lift a suspension."""

    model_config = _FROZEN

    serial: CertificateSerial
    municipality: MunicipalityCode = Field(description="The municipality lifting it.")
    lifted_at: AwareDatetime


@REGISTRY.event("certificate.revoked", 1)
class CertificateRevoked(BaseModel):
    model_config = _FROZEN

    serial: CertificateSerial
    kind: CertificateKind | None = Field(
        default=None, description="Null when a CRL lists a serial the pipeline never saw issued."
    )
    reason: RevocationReason
    revoked_at: AwareDatetime


def revocation_event_id(revocation: CertificateRevoked) -> UUID:
    """The id of a revocation, fixed by what it says: the automatic revoker and a CRL import that
    revoke one certificate at one instant for one reason publish one event, not two."""
    return derived_event_id(
        revocation.revoked_at, "certificate.revoked", revocation.serial, revocation.reason.value
    )


@REGISTRY.event("certificate.crl_imported", 1)
class CrlImported(BaseModel):
    """A CRL whose signature verified and whose new entries were published before this event."""

    model_config = _FROZEN

    issuer: PlainText = Field(
        min_length=1, max_length=1_000, description="The CRL's issuer (RFC 4514)."
    )
    crl_number: int | None = Field(default=None, ge=0)
    this_update: AwareDatetime
    next_update: AwareDatetime | None = None
    sha256: str = Field(
        pattern=r"^[0-9a-f]{64}$", description="SHA-256 of the CRL's DER (a PEM copy has the same)."
    )
    entries: int = Field(ge=0, description="Entries the CRL lists.")
    revocations: int = Field(ge=0, description="Revocation events this import published.")
    suspensions: int = Field(ge=0, description="Suspension events (certificateHold) published.")
