"""Convenience-store issuance: requests and the kiosks' notices (topic ``issuance.requests``) and
the issuer's decisions (topic ``issuance.outcomes``)."""

from datetime import date
from enum import StrEnum
from typing import Self
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

from schemas.codes import BASE64, CertificateSerial, MunicipalityCode, PlainText
from schemas.registry import REGISTRY
from schemas.sealed import Sealed


class StoreOperator(StrEnum):
    SEVEN_ELEVEN = "seven_eleven"
    FAMILYMART = "familymart"
    LAWSON = "lawson"
    MINISTOP = "ministop"
    SEICOMART = "seicomart"
    AEON_RETAIL = "aeon_retail"
    MUNICIPAL_KIOSK = "municipal_kiosk"
    OTHER = "other"


class CertificateType(StrEnum):
    JUMINHYO = "juminhyo"
    JUMINHYO_KISAI = "juminhyo_kisai"
    INKAN = "inkan"
    TAX_INCOME = "tax_income"
    TAX_ASSESSMENT = "tax_assessment"
    TAX_PAYMENT = "tax_payment"
    KOSEKI = "koseki"
    KOSEKI_FUHYO = "koseki_fuhyo"
    RISAI = "risai"
    HISAI = "hisai"


TAX_CERTIFICATE_TYPES = frozenset(
    {CertificateType.TAX_INCOME, CertificateType.TAX_ASSESSMENT, CertificateType.TAX_PAYMENT}
)


# The print options a kiosk offers (`bcl center submit --option NAME=VALUE`), each with the
# values it takes; None: any value (a disaster's id is checked against the declared disasters).
PRINT_OPTIONS: dict[str, frozenset[str] | None] = {
    "scope": frozenset({"individual", "household"}),  # 本人のみ, or 世帯全員 on a 住民票
    "disaster_id": None,
}


@REGISTRY.event("issuance.requested", 1)
class IssuanceRequested(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    request_id: UUID
    store_operator: StoreOperator
    store_id: PlainText = Field(min_length=1, max_length=32)
    store_municipality: MunicipalityCode
    resident_municipality: MunicipalityCode
    auth_serial: CertificateSerial = Field(
        description="Serial of the resident's user-authentication certificate (利用者証明用)."
    )
    certificate_type: CertificateType
    fiscal_year: int | None = Field(
        default=None,
        description="Fiscal year (April-March) the tax certificate covers; only for tax_* types.",
    )
    domicile_differs: bool = Field(
        default=False,
        description="Registered domicile differs from the address (住≠本); meaningful for koseki "
        "and koseki_fuhyo only.",
    )
    copies: int = Field(ge=1, le=10)
    print_options: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _fiscal_year_only_for_tax(self) -> Self:
        is_tax = self.certificate_type in TAX_CERTIFICATE_TYPES
        if is_tax and self.fiscal_year is None:
            raise PydanticCustomError(
                "fiscal_year_required",
                f"fiscal_year is required for {self.certificate_type} certificates "
                "(the fiscal year, April-March, the tax certificate covers)",
            )
        if not is_tax and self.fiscal_year is not None:
            raise PydanticCustomError(
                "fiscal_year_forbidden",
                f"fiscal_year is only allowed for tax certificates "
                f"({', '.join(sorted(TAX_CERTIFICATE_TYPES))}), "
                f"not {self.certificate_type}; leave it out",
            )
        return self


@REGISTRY.event("issuance.delivered", 1)
class IssuanceDelivered(BaseModel):
    """The kiosk collected the fee and printed the certificate."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    request_id: UUID
    fee_paid_yen: int = Field(ge=0)
    printed_at: AwareDatetime


@REGISTRY.event("issuance.cancelled", 1)
class IssuanceCancelled(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    request_id: UUID
    reason: PlainText = Field(min_length=1, max_length=500)


# ------------------------------------------------------------------------- issuance.outcomes


class RejectionReason(StrEnum):
    """Why the issuer refused a request: stable codes that usage, fees and kiosks rely on."""

    REQUEST_EXPIRED = "request_expired"  # not answered in time (its center was down): retried
    UNAUTHENTICATED_SOURCE = "unauthenticated_source"  # not sent by the center it claims
    MUNICIPALITY_NOT_PARTICIPATING = "municipality_not_participating"
    NOT_ON_BCL = "not_on_bcl"  # issues from its own server, not from the BCL replica
    TYPE_NOT_OFFERED = "type_not_offered"
    CLOSED_DAY = "closed_day"  # 29 Dec – 3 Jan
    MAINTENANCE = "maintenance"  # inside an announced maintenance window
    OUTSIDE_SERVICE_WINDOW = "outside_service_window"
    WEEKDAY_ONLY = "weekday_only"  # the type is offered on weekdays only
    CERTIFICATE_UNKNOWN = "certificate_unknown"
    CERTIFICATE_NOT_FOR_AUTHENTICATION = "certificate_not_for_authentication"
    CERTIFICATE_REVOKED = "certificate_revoked"
    CERTIFICATE_SUSPENDED = "certificate_suspended"
    CERTIFICATE_EXPIRED = "certificate_expired"
    RESIDENT_NOT_FOUND = "resident_not_found"
    RESIDENT_NOT_ACTIVE = "resident_not_active"  # moved out, died: a tombstone in the replica
    UNDER_15 = "under_15"
    SEAL_NOT_REGISTERED = "seal_not_registered"
    TAX_FACTS_MISSING = "tax_facts_missing"
    NOT_A_VICTIM = "not_a_victim"  # 罹災/被災証明書: in no victim ledger of the municipality
    DAMAGE_NOT_ASSESSED = "damage_not_assessed"  # the dwelling's damage is not assessed yet
    NO_DAMAGE = "no_damage"  # the dwelling was assessed as undamaged (被害なし)
    NO_SEAL_KEY = "no_seal_key"  # the municipality has no electronic seal to sign with here


class FeeQuote(BaseModel):
    """The resident-facing fee (交付手数料) at the instant of the request, for the fees issue."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    per_copy_yen: int = Field(ge=0)
    copies: int = Field(ge=1)
    total_yen: int = Field(ge=0)
    schedule_from: date | None = Field(
        description="Effective date of the municipality's schedule entry used; null when the "
        "municipality set none and the standard fee applied."
    )


@REGISTRY.event("issuance.issued", 1)
class IssuanceIssued(BaseModel):
    """The issuer's decision to issue: the sealed document and its quoted fee."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    request_id: UUID
    municipality: MunicipalityCode
    resident_code: str = Field(
        pattern=r"^[0-9]{11}$", description="住民票コード of the holder: whose data key seals it."
    )
    certificate_type: CertificateType
    document_id: UUID
    verification_id: str = Field(pattern=r"^[0-9A-Z]{4}(-[0-9A-Z]{4}){3}$")
    digest: str = Field(
        pattern=r"^[0-9a-f]{64}$", description="SHA-256 of the signed content (hex)."
    )
    signature: str = Field(
        pattern=BASE64,
        max_length=200,
        description="base64 of the DER ECDSA signature of the content.",
    )
    seal_key_id: str = Field(pattern=r"^[0-9a-f]{16}$")
    pages: int = Field(ge=1)
    fee: FeeQuote
    outside_counter_hours: bool | None = Field(
        default=None,
        description="The request came while the municipality's counter was closed (None: the "
        "municipality is not registered). Stamped at decision time, so replays count it alike.",
    )
    through_bcl: bool = Field(
        default=True,
        description="Issued from the BCL replica, so the BCL issuance fee (180 yen per "
        "certificate) is owed; false for a decision relayed from a municipality's own server. "
        "The issuer here decides only for municipalities on BCL.",
    )
    content: Sealed = Field(
        description="The signed content, sealed with the resident's data key, so the document "
        "can be rebuilt from the log and is shredded with the resident's key."
    )


@REGISTRY.event("issuance.rejected", 1)
class IssuanceRejected(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    request_id: UUID
    municipality: MunicipalityCode
    certificate_type: CertificateType
    reason: RejectionReason
    message: PlainText = Field(
        min_length=1, max_length=2_000, description="What the resident or operator can act on."
    )
    outside_counter_hours: bool | None = Field(
        default=None,
        description="The request came while the municipality's counter was closed (None: the "
        "municipality is not registered). Stamped at decision time, so replays count it alike.",
    )
