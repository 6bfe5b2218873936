"""The municipality registry (topic ``municipalities``): who participates, and on what terms.

Each event carries the municipality's whole profile, so the registry's state is always the
profile of its latest event and an update can never half-apply.
"""

from datetime import date, datetime, time
from enum import StrEnum
from typing import Any, Literal, Self

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

from schemas.calendar import JST, is_year_end_closure
from schemas.codes import MunicipalityCode, PlainText
from schemas.events.issuance import TAX_CERTIFICATE_TYPES, CertificateType
from schemas.registry import REGISTRY

_FROZEN = ConfigDict(frozen=True, extra="forbid")

# DOMAIN §2: each municipality sets its window inside 6:30–23:00.
SERVICE_OPENS = time(6, 30)
SERVICE_CLOSES = time(23, 0)

# DOMAIN §3: what a municipality on BCL can issue from its replica; the disaster certificates
# come from the cloud disaster victim support system, which runs on BCL too.
BCL_CERTIFICATE_TYPES = frozenset(
    {
        CertificateType.JUMINHYO,
        CertificateType.INKAN,
        *TAX_CERTIFICATE_TYPES,
        CertificateType.RISAI,
        CertificateType.HISAI,
    }
)

Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class MunicipalityClass(StrEnum):
    DESIGNATED_CITY = "designated_city"  # 政令指定都市
    SPECIAL_WARD = "special_ward"  # 特別区
    CITY = "city"  # 市
    TOWN = "town"  # 町
    VILLAGE = "village"  # 村


class TimeWindow(BaseModel):
    model_config = _FROZEN

    opens: time
    closes: time

    @model_validator(mode="after")
    def _opens_before_closing(self) -> Self:
        if self.opens >= self.closes:
            raise PydanticCustomError(
                "time_window",
                f"opens at {self.opens:%H:%M} but closes at {self.closes:%H:%M}; "
                "the opening time must come first",
            )
        return self


class MaintenanceWindow(BaseModel):
    """An announced stop of the service for one municipality."""

    model_config = _FROZEN

    starts_at: AwareDatetime
    ends_at: AwareDatetime
    reason: PlainText = Field(min_length=1, max_length=500)

    @model_validator(mode="after")
    def _starts_before_ending(self) -> Self:
        if self.starts_at >= self.ends_at:
            raise PydanticCustomError(
                "maintenance_window", "a maintenance window must start before it ends"
            )
        return self


class FeeEntry(BaseModel):
    """The resident-facing fee (交付手数料) of one certificate type from a date on."""

    model_config = _FROZEN

    certificate_type: CertificateType
    fee_yen: int = Field(ge=0, le=100_000)
    effective_from: date


class SealKey(BaseModel):
    """A public key of the municipality's electronic seal (電子契印): ECDSA P-256.

    Certificates issued for the municipality carry a signature by its newest key; older keys stay
    listed so that certificates they sealed still verify, and a compromised key is marked revoked
    so that nothing it sealed is trusted any more.
    """

    model_config = _FROZEN

    key_id: str = Field(
        pattern=r"^[0-9a-f]{16}$",
        description="First 16 hex digits of the SHA-256 of the key's SubjectPublicKeyInfo (DER).",
    )
    public_key: str = Field(
        pattern=r"^-----BEGIN PUBLIC KEY-----\n[A-Za-z0-9+/=\n]+-----END PUBLIC KEY-----\n?$",
        description="PEM (SubjectPublicKeyInfo) ECDSA P-256 public key.",
    )
    added_at: AwareDatetime
    revoked_at: AwareDatetime | None = Field(
        default=None, description="From this instant nothing sealed with the key is trusted."
    )


def _default_counter_hours() -> dict[Weekday, TimeWindow]:
    weekday = TimeWindow(opens=time(8, 30), closes=time(17, 15))
    return {"mon": weekday, "tue": weekday, "wed": weekday, "thu": weekday, "fri": weekday}


class MunicipalityProfile(BaseModel):
    model_config = _FROZEN

    name: PlainText = Field(min_length=1, max_length=100)
    uses_bcl: bool = Field(
        description="Pushes its resident data to BCL rather than running its own server."
    )
    municipality_class: MunicipalityClass = MunicipalityClass.CITY
    population: int = Field(
        default=0,
        ge=0,
        description="Resident-register population on 1 January of the previous fiscal year.",
    )
    offered_types: tuple[CertificateType, ...] = (CertificateType.JUMINHYO, CertificateType.INKAN)
    weekday_only_types: tuple[CertificateType, ...] = Field(
        default=(), description="Types offered on weekdays only (some family-register offices)."
    )
    service_window: TimeWindow = TimeWindow(opens=SERVICE_OPENS, closes=SERVICE_CLOSES)
    counter_hours: dict[Weekday, TimeWindow] = Field(
        default_factory=_default_counter_hours,
        description="Opening hours of the municipal counter, to tell issuance outside them.",
    )
    connection_hours: TimeWindow = Field(
        default=TimeWindow(opens=time(8, 0), closes=time(22, 0)),
        description="When the link AP (連携AP) sends diffs; later ones go out next business day.",
    )
    holidays: tuple[date, ...] = ()
    maintenance: tuple[MaintenanceWindow, ...] = ()
    fees: tuple[FeeEntry, ...] = ()
    mayor: PlainText | None = Field(
        default=None,
        max_length=100,
        description="The mayor's title and name as printed under the certifying sentence "
        "(e.g. 千代田区長 樋口 高顕); defaults to the municipality's name + 長.",
    )
    disaster_system_since: date | None = Field(
        default=None,
        description="The day it introduced the cloud disaster victim support system (クラウド型"
        "被災者支援システム); its yearly fee is owed from that month.",
    )
    seal_keys: tuple[SealKey, ...] = Field(
        default=(), description="Electronic seal keys, oldest first; the newest unrevoked seals."
    )
    push_public_key: str | None = Field(
        default=None,
        pattern=r"^-----BEGIN PUBLIC KEY-----\n[A-Za-z0-9+/=\n]+-----END PUBLIC KEY-----\n?$",
        description="PEM (SubjectPublicKeyInfo) Ed25519 key that verifies its resident pushes.",
    )

    def counter_open(self, at: datetime) -> bool:
        """Whether the municipal counter (窓口) is open at ``at``, Japan time.

        Closed outside its hours for that weekday, on the municipality's holidays and from 29
        December to 3 January; opening time included, closing time excluded. Usage counts a
        certificate issued while it is closed as issued "outside counter hours" (DOMAIN §8).
        """
        moment = at.astimezone(JST)
        day = moment.date()
        if day in self.holidays or is_year_end_closure(day):
            return False
        hours = self.counter_hours.get(WEEKDAYS[day.weekday()])
        return hours is not None and hours.opens <= moment.time() < hours.closes

    @model_validator(mode="after")
    def _fits_the_service(self) -> Self:
        window = self.service_window
        if window.opens < SERVICE_OPENS or window.closes > SERVICE_CLOSES:
            raise PydanticCustomError(
                "service_window",
                f"service window {window.opens:%H:%M}–{window.closes:%H:%M} must lie inside "
                f"{SERVICE_OPENS:%H:%M}–{SERVICE_CLOSES:%H:%M}",
            )
        if self.uses_bcl:
            outside = sorted(set(self.offered_types) - BCL_CERTIFICATE_TYPES)
            if outside:
                raise PydanticCustomError(
                    "offered_types",
                    f"a BCL municipality cannot offer {', '.join(outside)}: BCL issues only "
                    f"{', '.join(sorted(BCL_CERTIFICATE_TYPES))}",
                )
        key_ids = [key.key_id for key in self.seal_keys]
        if len(set(key_ids)) != len(key_ids):
            raise PydanticCustomError("seal_keys", "a seal key is listed twice")
        if len(set(self.offered_types)) != len(self.offered_types):
            raise PydanticCustomError("offered_types", "a certificate type is listed twice")
        return self


@REGISTRY.event("municipality.joined", 2)
class MunicipalityJoined(BaseModel):
    model_config = _FROZEN

    code: MunicipalityCode
    joined_on: date = Field(
        description="First day of participation; contributions prorate from it."
    )
    profile: MunicipalityProfile


@REGISTRY.event("municipality.joined", 1)
class MunicipalityJoinedV1(BaseModel):
    """The first registry event: name and BCL status only."""

    model_config = _FROZEN

    code: MunicipalityCode
    name: PlainText = Field(min_length=1, max_length=100)
    joined_on: date
    uses_bcl: bool


@REGISTRY.upcaster("municipality.joined", 1)
def _joined_v1_to_v2(payload: dict[str, Any]) -> dict[str, Any]:
    # v1 knew only the name and BCL status; the rest takes the profile's documented defaults.
    return {
        "code": payload["code"],
        "joined_on": payload["joined_on"],
        "profile": {"name": payload["name"], "uses_bcl": payload["uses_bcl"]},
    }


@REGISTRY.event("municipality.updated", 1)
class MunicipalityUpdated(BaseModel):
    model_config = _FROZEN

    code: MunicipalityCode
    profile: MunicipalityProfile = Field(description="The whole profile as it is from now on.")
