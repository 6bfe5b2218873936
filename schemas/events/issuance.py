"""Convenience-store issuance requests and their fate at the kiosk (topic ``issuance.requests``)."""

from enum import StrEnum
from typing import Self
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

from schemas.codes import CertificateSerial, MunicipalityCode
from schemas.registry import REGISTRY


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


@REGISTRY.event("issuance.requested", 1)
class IssuanceRequested(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    request_id: UUID
    store_operator: StoreOperator
    store_id: str = Field(min_length=1, max_length=32)
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
    reason: str = Field(min_length=1)
