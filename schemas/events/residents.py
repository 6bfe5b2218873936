"""Resident-register changes pushed by municipalities (topic ``resident.changes``).

Keyed ``municipality:resident_code``, so every change of one resident is in one partition, in
the order the municipality sent it. Personal data (name, address, birth date, sex, My Number,
tax amounts) travels only inside ``personal``/``amounts``, sealed with the resident's data key.
"""

from datetime import date
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from schemas.codes import BASE64, MAX_YEN, MunicipalityCode, PlainText
from schemas.registry import REGISTRY
from schemas.sealed import Sealed

_FROZEN = ConfigDict(frozen=True, extra="forbid")

# 住民票コード: 11 digits. Its check digit algorithm is not public in our sources, so only the
# form is checked.
ResidentCode = Annotated[str, StringConstraints(pattern=r"^[0-9]{11}$")]
# 世帯番号: 15 characters, left-justified, space-padded.
HouseholdNumber = Annotated[
    str, StringConstraints(pattern=r"^[0-9A-Za-z]+ *$", min_length=15, max_length=15)
]
# 続柄コード: up to 4 generations of 2 digits.
RelationshipCode = Annotated[str, StringConstraints(pattern=r"^([0-9]{2}){1,4}$")]

# The personal fields, as a municipality pushes them (``schemas.inputs.resident_diff``) and as
# they are sealed (``PersonalData``): defined once, so the two cannot drift apart.
PersonName = Annotated[PlainText, Field(min_length=1, max_length=100)]
PersonNameKana = Annotated[PlainText, Field(max_length=200)]
Address = Annotated[PlainText, Field(min_length=1, max_length=300)]
PreviousAddress = Annotated[PlainText, Field(max_length=300)]
HeadOfHousehold = Annotated[PlainText, Field(max_length=100)]
Sex = Literal["male", "female"]
# 個人番号 (My Number): 12 digits, the last a check digit (checked where a row is pushed).
MyNumber = Annotated[str, StringConstraints(pattern=r"^[0-9]{12}$")]


class ChangeReason(StrEnum):
    MOVE_IN = "move_in"  # 転入
    SPECIAL_MOVE_IN = "special_move_in"  # 特例転入
    BIRTH = "birth"  # 出生
    MOVE_WITHIN = "move_within"  # 転居
    MOVE_OUT = "move_out"  # 転出
    DEATH = "death"  # 死亡
    EX_OFFICIO_CORRECTION = "ex_officio_correction"  # 職権修正
    EX_OFFICIO_REMOVAL = "ex_officio_removal"  # 職権消除
    NAME_CHANGE = "name_change"  # 氏名変更
    HOUSEHOLD_CHANGE = "household_change"  # 世帯変更


REGISTRATION_REASONS = frozenset(
    {ChangeReason.MOVE_IN, ChangeReason.SPECIAL_MOVE_IN, ChangeReason.BIRTH}
)
REMOVAL_REASONS = frozenset(
    {ChangeReason.MOVE_OUT, ChangeReason.DEATH, ChangeReason.EX_OFFICIO_REMOVAL}
)


def change_event_type(reason: ChangeReason) -> str:
    """``resident.registered``, ``resident.removed`` (a tombstone) or ``resident.changed``."""
    if reason in REGISTRATION_REASONS:
        return "resident.registered"
    if reason in REMOVAL_REASONS:
        return "resident.removed"
    return "resident.changed"


class PushPosition(BaseModel):
    """Where a change came from: the municipality's batch and the line in the pushed file."""

    model_config = _FROZEN

    batch: int = Field(ge=1)
    line: int = Field(ge=1)


class ResidentRecord(BaseModel):
    """A resident's whole record after a change (転入, 転居, 死亡, ...)."""

    model_config = _FROZEN

    municipality: MunicipalityCode
    resident_code: ResidentCode
    household_number: HouseholdNumber
    relationship: RelationshipCode
    reason: ChangeReason
    effective_date: date | None = Field(
        description="異動年月日: the change takes effect on this day. Null only for a death "
        "whose date is unknown."
    )
    death_date_unknown: bool = False
    pushed: PushPosition
    personal: Sealed = Field(
        description="Sealed PersonalData: name, kana, birth date, sex, address, previous address, "
        "head of household, dates, My Number."
    )


for _type in ("resident.registered", "resident.changed", "resident.removed"):
    REGISTRY.register(_type, 1, ResidentRecord)


class PersonalData(BaseModel):
    """What ``ResidentRecord.personal`` holds once opened. Never put on the log in clear."""

    model_config = _FROZEN

    name: PersonName
    name_kana: PersonNameKana | None = None
    birth_date: date
    sex: Sex
    address: Address
    previous_address: PreviousAddress | None = None
    head_of_household: HeadOfHousehold | None = None
    resident_since: date | None = None
    address_since: date | None = None
    notified_on: date | None = None
    my_number: MyNumber | None = None


class SealStatus(StrEnum):
    REGISTERED = "registered"
    ABOLISHED = "abolished"


@REGISTRY.event("seal.changed", 1)
class SealChanged(BaseModel):
    """印鑑登録: a seal registered for a resident, or its registration abolished."""

    model_config = _FROZEN

    municipality: MunicipalityCode
    resident_code: ResidentCode
    registration_number: Annotated[str, StringConstraints(pattern=r"^[0-9A-Za-z-]{1,20}$")]
    status: SealStatus
    effective_date: date
    pushed: PushPosition


@REGISTRY.event("tax.recorded", 1)
class TaxRecorded(BaseModel):
    """A resident's tax facts for one fiscal year (April–March), for tax certificates."""

    model_config = _FROZEN

    municipality: MunicipalityCode
    resident_code: ResidentCode
    fiscal_year: int = Field(ge=2000, le=2100)
    pushed: PushPosition
    amounts: Sealed = Field(description="Sealed TaxAmounts.")


class TaxAmounts(BaseModel):
    model_config = _FROZEN

    income_yen: int = Field(ge=0, le=MAX_YEN)
    assessed_yen: int = Field(ge=0, le=MAX_YEN)
    paid_yen: int = Field(ge=0, le=MAX_YEN)


@REGISTRY.event("resident.purged", 1)
class ResidentPurged(BaseModel):
    """The 5-year retention of a removed resident ended; their data key is destroyed."""

    model_config = _FROZEN

    municipality: MunicipalityCode
    resident_code: ResidentCode
    removed_on: date
    purged_on: date


@REGISTRY.event("resident.batch_accepted", 1)
class BatchAccepted(BaseModel):
    """The receipt of an accepted push: after its rows, so the log says what the batch held."""

    model_config = _FROZEN

    municipality: MunicipalityCode
    sequence: int = Field(ge=1)
    file_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    signature: str = Field(
        pattern=BASE64,
        max_length=200,
        description="base64 Ed25519 signature of the push statement's digest",
    )
    rows: int = Field(ge=0, description="Rows of the file (for a full snapshot: of the register).")
    events: int = Field(ge=0, description="Events the batch became (a snapshot: its differences).")
    full: bool = False
