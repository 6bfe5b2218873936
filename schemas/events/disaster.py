"""Cloud disaster victim support (クラウド型被災者支援システム, DOMAIN §7): ``disaster.events``.

Keyed ``municipality:disaster_id``, so everything about one disaster is in one partition, in the
order staff and the system recorded it. Peacetime facts (dwellings located by the municipality's
GIS, the evacuation-support roster) are keyed ``municipality:peacetime``.

Three kinds of events share the topic: what staff and residents do (declare, open a shelter, tap a
card, apply, assess), what the disaster processor decides from the replica and the certificates
(the ledger seeded, a tap matched to a resident, an application matched or refused), and the
notifications a real deployment would e-mail, recorded so that they can be shown and audited.
"""

from __future__ import annotations

from datetime import date
from enum import StrEnum
from typing import Annotated, Literal
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

from schemas.codes import CertificateSerial, MunicipalityCode, PlainText, Prose
from schemas.events.residents import ResidentCode
from schemas.registry import REGISTRY

_FROZEN = ConfigDict(frozen=True, extra="forbid")

DisasterId = Annotated[str, StringConstraints(pattern=r"^[0-9a-z][0-9a-z-]{2,39}$")]
ShelterId = Annotated[str, StringConstraints(pattern=r"^[0-9A-Za-z-]{1,40}$")]
Staff = Annotated[PlainText, StringConstraints(min_length=1, max_length=100)]  # who recorded it


class DisasterKind(StrEnum):
    EARTHQUAKE = "earthquake"
    TSUNAMI = "tsunami"
    FLOOD = "flood"
    LANDSLIDE = "landslide"
    STORM = "storm"
    SNOW = "snow"
    VOLCANO = "volcano"
    FIRE = "fire"
    OTHER = "other"


DISASTER_KIND_LABELS: dict[DisasterKind, str] = {
    DisasterKind.EARTHQUAKE: "地震",
    DisasterKind.TSUNAMI: "津波",
    DisasterKind.FLOOD: "洪水・浸水",
    DisasterKind.LANDSLIDE: "土砂災害",
    DisasterKind.STORM: "台風・暴風",
    DisasterKind.SNOW: "豪雪",
    DisasterKind.VOLCANO: "噴火",
    DisasterKind.FIRE: "大規模火災",
    DisasterKind.OTHER: "その他",
}


class DamageCategory(StrEnum):
    """The damage to a dwelling, most severe first (the categories of 罹災証明書)."""

    TOTAL = "total"  # 全壊
    LARGE_SCALE_HALF = "large_scale_half"  # 大規模半壊
    MEDIUM_SCALE_HALF = "medium_scale_half"  # 中規模半壊
    HALF = "half"  # 半壊
    QUASI_HALF = "quasi_half"  # 準半壊
    PARTIAL = "partial"  # 一部損壊
    NONE = "none"  # 被害なし


DAMAGE_LABELS: dict[DamageCategory, str] = {
    DamageCategory.TOTAL: "全壊",
    DamageCategory.LARGE_SCALE_HALF: "大規模半壊",
    DamageCategory.MEDIUM_SCALE_HALF: "中規模半壊",
    DamageCategory.HALF: "半壊",
    DamageCategory.QUASI_HALF: "準半壊",
    DamageCategory.PARTIAL: "一部損壊",
    DamageCategory.NONE: "被害なし",
}


class ApplicationKind(StrEnum):
    RISAI_CERTIFICATE = "risai_certificate"  # 罹災証明書
    HISAI_CERTIFICATE = "hisai_certificate"  # 被災証明書
    LIVELIHOOD_SUPPORT = "livelihood_support"  # 被災者生活再建支援金
    CONDOLENCE = "condolence"  # 災害弔慰金
    DISABILITY_GRANT = "disability_grant"  # 災害障害見舞金
    RELIEF_LOAN = "relief_loan"  # 災害援護資金


APPLICATION_LABELS: dict[ApplicationKind, str] = {
    ApplicationKind.RISAI_CERTIFICATE: "罹災証明書",
    ApplicationKind.HISAI_CERTIFICATE: "被災証明書",
    ApplicationKind.LIVELIHOOD_SUPPORT: "被災者生活再建支援金",
    ApplicationKind.CONDOLENCE: "災害弔慰金",
    ApplicationKind.DISABILITY_GRANT: "災害障害見舞金",
    ApplicationKind.RELIEF_LOAN: "災害援護資金",
}


class Point(BaseModel):
    """A place in Japan, WGS 84 degrees."""

    model_config = _FROZEN

    lat: float = Field(ge=20.0, le=46.0, description="Latitude, degrees north (Japan: 20–46).")
    lon: float = Field(ge=122.0, le=154.0, description="Longitude, degrees east (Japan: 122–154).")


class Area(BaseModel):
    """A map area: a simple polygon, its vertices in order (closed implicitly)."""

    model_config = _FROZEN

    vertices: tuple[Point, ...] = Field(min_length=3, max_length=10_000)


# ------------------------------------------------------------------------------- peacetime


@REGISTRY.event("dwelling.located", 1)
class DwellingLocated(BaseModel):
    """Where an address is, from the municipality's GIS (住居表示・地番図)."""

    model_config = _FROZEN

    municipality: MunicipalityCode
    address: PlainText = Field(min_length=1, max_length=200)
    location: Point


@REGISTRY.event("support_needs.registered", 1)
class SupportNeedsRegistered(BaseModel):
    """A resident on the evacuation-support roster (避難行動要支援者名簿), with the individual
    evacuation plan made in peacetime (個別避難計画)."""

    model_config = _FROZEN

    municipality: MunicipalityCode
    resident_code: ResidentCode
    needs: tuple[Annotated[PlainText, StringConstraints(max_length=100)], ...] = Field(
        min_length=1, max_length=50, description="e.g. wheelchair, dialysis, hearing, dementia."
    )
    plan: Prose = Field(default="", max_length=2_000, description="The individual evacuation plan.")
    supporter: PlainText = Field(default="", max_length=200, description="Who helps them evacuate.")


# ------------------------------------------------------------------------------ the disaster


@REGISTRY.event("disaster.declared", 1)
class DisasterDeclared(BaseModel):
    model_config = _FROZEN

    disaster_id: DisasterId = Field(description="e.g. 131032-2026-flood-1.")
    municipality: MunicipalityCode
    name: PlainText = Field(min_length=1, max_length=200, description="e.g. 令和8年台風第10号.")
    kind: DisasterKind
    occurred_on: date
    area: Area | None = Field(
        default=None,
        description="The affected area; none for the whole municipality. Residents whose "
        "dwelling lies inside (or is not located) enter the victim ledger.",
    )


@REGISTRY.event("disaster.ledger_seeded", 1)
class LedgerSeeded(BaseModel):
    """Decided on a declaration: the victim ledger is the replica as it stood at ``as_of``.

    The projection fills the ledger from the replica's recorded history up to ``as_of`` (live and
    on replay alike), so a replay seeds exactly the residents the live ledger was seeded with.
    """

    model_config = _FROZEN

    disaster_id: DisasterId
    municipality: MunicipalityCode
    as_of: AwareDatetime = Field(description="The replica's history up to this recording time.")
    victims: int = Field(ge=0)
    households: int = Field(ge=0)


@REGISTRY.event("victim.updated", 1)
class VictimUpdated(BaseModel):
    """Staff fields of a ledger entry (None: unchanged)."""

    model_config = _FROZEN

    disaster_id: DisasterId
    resident_code: ResidentCode
    contact: PlainText | None = Field(default=None, max_length=200)
    care_needs: Prose | None = Field(default=None, max_length=2_000)
    notes: Prose | None = Field(default=None, max_length=2_000)


@REGISTRY.event("shelter.opened", 1)
class ShelterOpened(BaseModel):
    model_config = _FROZEN

    disaster_id: DisasterId
    shelter_id: ShelterId
    name: PlainText = Field(min_length=1, max_length=200)
    location: Point
    capacity: int = Field(ge=1, le=100_000)


@REGISTRY.event("shelter.closed", 1)
class ShelterClosed(BaseModel):
    model_config = _FROZEN

    disaster_id: DisasterId
    shelter_id: ShelterId


@REGISTRY.event("shelter.tapped", 1)
class ShelterTapped(BaseModel):
    """A card tapped on a shelter's reader, without PIN: only the user-authentication serial."""

    model_config = _FROZEN

    disaster_id: DisasterId
    shelter_id: ShelterId
    auth_serial: CertificateSerial
    direction: Literal["in", "out"]


class TapRefusal(StrEnum):
    UNKNOWN_SHELTER = "unknown_shelter"  # not opened for this disaster, or closed
    CERTIFICATE_UNKNOWN = "certificate_unknown"
    CERTIFICATE_NOT_ACTIVE = "certificate_not_active"  # revoked or suspended
    RESIDENT_NOT_FOUND = "resident_not_found"  # no active record in its municipality's replica
    NOT_CHECKED_IN = "not_checked_in"  # a check-out without a check-in


@REGISTRY.event("shelter.tap_matched", 1)
class TapMatched(BaseModel):
    """Decided: the card belongs to this resident, of the affected municipality or (a wide-area
    evacuee, 広域避難者) of another one, matched in their own municipality's replica."""

    model_config = _FROZEN

    disaster_id: DisasterId
    shelter_id: ShelterId
    tap_event_id: UUID
    direction: Literal["in", "out"]
    municipality: MunicipalityCode
    resident_code: ResidentCode
    wide_area: bool


@REGISTRY.event("shelter.tap_refused", 1)
class TapRefused(BaseModel):
    model_config = _FROZEN

    disaster_id: DisasterId
    shelter_id: ShelterId
    tap_event_id: UUID
    reason: TapRefusal
    message: PlainText = Field(min_length=1, max_length=2_000)


@REGISTRY.event("application.submitted", 1)
class ApplicationSubmitted(BaseModel):
    """An online application, authenticated with the card."""

    model_config = _FROZEN

    application_id: UUID
    disaster_id: DisasterId
    kind: ApplicationKind
    auth_serial: CertificateSerial
    dwelling_address: PlainText = Field(min_length=1, max_length=200)
    attachments: tuple[Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")], ...] = Field(
        default=(), max_length=20, description="SHA-256 (hex) of each attached file."
    )


class ApplicationRefusal(StrEnum):
    """Why the automatic match refused an application before staff saw it."""

    DISASTER_UNKNOWN = "disaster_unknown"
    CERTIFICATE_UNKNOWN = "certificate_unknown"
    NOT_IN_LEDGER = "not_in_ledger"  # not a resident of the affected area
    DWELLING_MISMATCH = "dwelling_mismatch"  # the ledger has them at another address
    DUPLICATE = "duplicate"  # the same person already applied for the same kind


@REGISTRY.event("application.matched", 1)
class ApplicationMatched(BaseModel):
    """Decided: the applicant is this victim, at this dwelling, applying for the first time."""

    model_config = _FROZEN

    application_id: UUID
    disaster_id: DisasterId
    municipality: MunicipalityCode
    resident_code: ResidentCode
    # As the ledger holds it: the register's, padded to 15 or not.
    household_number: Annotated[
        str, StringConstraints(pattern=r"^[0-9A-Za-z]+ *$", min_length=1, max_length=15)
    ]


@REGISTRY.event("application.refused", 1)
class ApplicationRefused(BaseModel):
    model_config = _FROZEN

    application_id: UUID
    disaster_id: DisasterId
    reason: ApplicationRefusal
    message: PlainText = Field(min_length=1, max_length=2_000)


@REGISTRY.event("application.accepted", 1)
class ApplicationAccepted(BaseModel):
    """Staff accepted a matched application (受理)."""

    model_config = _FROZEN

    application_id: UUID
    disaster_id: DisasterId
    staff: Staff


@REGISTRY.event("application.rejected", 1)
class ApplicationRejected(BaseModel):
    model_config = _FROZEN

    application_id: UUID
    disaster_id: DisasterId
    staff: Staff
    reason: PlainText = Field(min_length=1, max_length=500)


@REGISTRY.event("damage.assessed", 1)
class DamageAssessed(BaseModel):
    """Staff's assessment of one dwelling (住家被害認定)."""

    model_config = _FROZEN

    disaster_id: DisasterId
    dwelling_address: PlainText = Field(min_length=1, max_length=200)
    category: DamageCategory
    staff: Staff


@REGISTRY.event("damage.assessed_in_area", 1)
class DamageAssessedInArea(BaseModel):
    """Every located dwelling inside ``area`` at once (GIS bulk assessment); a dwelling
    assessed one by one keeps that assessment."""

    model_config = _FROZEN

    disaster_id: DisasterId
    area: Area
    category: DamageCategory
    staff: Staff


@REGISTRY.event("application.ready", 1)
class ApplicationReady(BaseModel):
    """The certificate can be issued (交付準備完了): at the counter or any convenience store."""

    model_config = _FROZEN

    application_id: UUID
    disaster_id: DisasterId


@REGISTRY.event("support.paid", 1)
class SupportPaid(BaseModel):
    model_config = _FROZEN

    application_id: UUID
    disaster_id: DisasterId
    amount_yen: int = Field(ge=1)
    paid_on: date


@REGISTRY.event("notification.sent", 1)
class NotificationSent(BaseModel):
    """A message a real deployment would e-mail: to staff of the municipality, or to the
    applicant at the address their card's application gave."""

    model_config = _FROZEN

    disaster_id: DisasterId
    application_id: UUID | None = None
    recipient: Literal["staff", "applicant"]
    subject: PlainText = Field(min_length=1, max_length=200)
    body: Prose = Field(min_length=1, max_length=4_000)
