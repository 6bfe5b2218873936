"""The signed content of an issued certificate: what the electronic seal (電子契印) covers.

Its canonical bytes (``canonical_content``: sorted keys, UTF-8, no spaces) are what the issuer
signs with the municipality's ECDSA key, what the PDF embeds as ``certificate.json``, and what
anyone checks with ``openssl dgst -sha256 -verify``. The front side of the PDF is drawn from this
content alone, so a verifier can redraw it and compare.
"""

from datetime import date
from typing import Annotated, Literal
from uuid import UUID

import orjson
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

from schemas.codes import MunicipalityCode
from schemas.events.disaster import DamageCategory, DisasterKind
from schemas.events.issuance import CertificateType

_FROZEN = ConfigDict(frozen=True, extra="forbid")

Sex = Annotated[str, StringConstraints(pattern=r"^(male|female)$")]


class ResidentEntry(BaseModel):
    """One person on a 住民票の写し."""

    model_config = _FROZEN

    name: str
    name_kana: str | None = None
    birth_date: date
    sex: Sex
    relationship: str = Field(description="続柄 as printed, e.g. 世帯主, 妻, 子.")
    resident_since: date | None = Field(default=None, description="住民となった年月日")
    address_since: date | None = Field(default=None, description="住所を定めた年月日")
    notified_on: date | None = Field(default=None, description="届出年月日")
    previous_address: str | None = Field(default=None, description="前住所 (…から転入)")


class ResidentRecordCopy(BaseModel):
    """住民票の写し: the requester alone or the whole household."""

    model_config = _FROZEN

    kind: Literal["juminhyo"] = "juminhyo"
    address: str
    head_of_household: str
    members: tuple[ResidentEntry, ...] = Field(min_length=1)


class SealCertificate(BaseModel):
    """印鑑登録証明書."""

    model_config = _FROZEN

    kind: Literal["inkan"] = "inkan"
    registration_number: str
    name: str
    birth_date: date
    sex: Sex
    address: str


class TaxCertificate(BaseModel):
    """所得 / 課税(非課税) / 納税 証明書 for one fiscal year (amounts in yen)."""

    model_config = _FROZEN

    kind: Literal["tax"] = "tax"
    fiscal_year: int
    name: str
    birth_date: date
    address: str
    income_yen: int
    assessed_yen: int
    paid_yen: int


class DisasterCertificate(BaseModel):
    """罹災証明書 / 被災証明書: the assessed damage to a victim's dwelling in a disaster."""

    model_config = _FROZEN

    kind: Literal["disaster"] = "disaster"
    disaster_id: str
    disaster_name: str
    disaster_kind: DisasterKind
    occurred_on: date = Field(description="災害発生日")
    name: str
    birth_date: date
    address: str = Field(description="被災住家の所在地, as the victim ledger holds it.")
    damage: DamageCategory = Field(description="住家の被害の程度")


CertificateBody = Annotated[
    ResidentRecordCopy | SealCertificate | TaxCertificate | DisasterCertificate,
    Field(discriminator="kind"),
]


class CertificateContent(BaseModel):
    """Everything the seal covers: who certifies what, for whom, when, and with which key."""

    model_config = _FROZEN

    format: Literal["bcl-certificate/1"] = "bcl-certificate/1"
    document_id: UUID
    verification_id: str = Field(
        pattern=r"^[0-9A-Z]{4}(-[0-9A-Z]{4}){3}$",
        description="Printed on the back; looks the document up at a verification service.",
    )
    request_id: UUID
    certificate_type: CertificateType
    municipality: MunicipalityCode
    municipality_name: str
    mayor: str
    issued_at: AwareDatetime
    seal_key_id: str = Field(pattern=r"^[0-9a-f]{16}$")
    body: CertificateBody


def canonical_content(content: CertificateContent) -> bytes:
    """The exact bytes that are signed and embedded."""
    return orjson.dumps(content.model_dump(mode="json"), option=orjson.OPT_SORT_KEYS)


def parse_content(data: bytes) -> CertificateContent:
    """The content from its canonical bytes (raises pydantic's ValidationError or ValueError)."""
    return CertificateContent.model_validate_json(data)
