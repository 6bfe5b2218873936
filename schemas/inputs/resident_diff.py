"""The rows of a municipality's resident-data push (diff or full snapshot), CSV or JSON Lines.

One row is one fact: a resident's record after a change, a seal registration change, or a
year's tax facts, told apart by the ``record`` column. In CSV every value is text and an empty
cell means "not given"; JSON Lines takes the same names as keys.
"""

from datetime import date
from typing import Annotated, Any, Literal, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)

from schemas.codes import MAX_YEN, MunicipalityCode
from schemas.events.residents import (
    REMOVAL_REASONS,
    Address,
    ChangeReason,
    HeadOfHousehold,
    MyNumber,
    PersonName,
    PersonNameKana,
    PreviousAddress,
    RelationshipCode,
    ResidentCode,
    SealStatus,
    Sex,
)

_ROW = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)

# Column → what it holds; the documented format (README, `bcl push --help`) is generated from it.
COLUMNS: dict[str, str] = {
    "municipality": "全国地方公共団体コード of the pushing municipality (6 digits, check digit)",
    "record": "resident, seal or tax",
    "resident_code": "住民票コード, 11 digits",
    "household_number": "世帯番号, up to 15 letters or digits (padded with spaces to 15)",
    "relationship": "続柄コード: 1 to 4 generations of 2 digits (02 head of household)",
    "reason": "異動事由: " + ", ".join(r.value for r in ChangeReason),
    "effective_date": "異動年月日 YYYY-MM-DD (empty only for a death whose date is unknown)",
    "death_date_unknown": "true for a death whose date is unknown",
    "name": "氏名",
    "name_kana": "氏名 (カナ)",
    "birth_date": "生年月日 YYYY-MM-DD",
    "sex": "male or female (男/女 accepted)",
    "address": "住所",
    "previous_address": "前住所 (moved in from)",
    "head_of_household": "世帯主の氏名",
    "resident_since": "住民となった日 YYYY-MM-DD",
    "address_since": "住所を定めた日 YYYY-MM-DD",
    "notified_on": "届出日 YYYY-MM-DD",
    "my_number": "個人番号, 12 digits with its check digit (sealed, never stored in clear)",
    "seal_number": "印鑑登録番号 (seal rows)",
    "seal_status": "registered or abolished (seal rows)",
    "fiscal_year": "fiscal year (April-March) of the tax facts (tax rows)",
    "income_yen": "所得 in yen (tax rows)",
    "assessed_yen": "課税額 in yen (tax rows)",
    "paid_yen": "納税額 in yen (tax rows)",
}
REQUIRED_COLUMNS = ("municipality", "record", "resident_code")


def my_number_check_digit(first11: str) -> int:
    """個人番号の検査用数字 (order on check digits of My Number, art. 5)."""
    total = 0
    for n, digit in enumerate(reversed(first11), start=1):
        weight = n + 1 if n <= 6 else n - 5
        total += int(digit) * weight
    remainder = total % 11
    return 0 if remainder <= 1 else 11 - remainder


class _RowBase(BaseModel):
    model_config = _ROW

    municipality: MunicipalityCode
    resident_code: ResidentCode


class ResidentRow(_RowBase):
    record: Literal["resident"]
    household_number: str = Field(pattern=r"^[0-9A-Za-z]{1,15}$")
    relationship: RelationshipCode
    reason: ChangeReason
    effective_date: date | None = None
    death_date_unknown: bool = False
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

    @field_validator("sex", mode="before")
    @classmethod
    def _japanese_sex(cls, value: Any) -> Any:
        return {"男": "male", "女": "female"}.get(value, value)

    @field_validator("my_number")
    @classmethod
    def _my_number_check_digit(cls, value: str | None) -> str | None:
        if value is not None and my_number_check_digit(value[:11]) != int(value[11]):
            raise ValueError(
                f"check digit is {value[11]}, expected {my_number_check_digit(value[:11])}"
            )
        return value

    @model_validator(mode="after")
    def _dates_fit_the_reason(self) -> Self:
        if self.effective_date is None and not (
            self.reason is ChangeReason.DEATH and self.death_date_unknown
        ):
            raise ValueError(
                "effective_date is required (it may be empty only for a death with "
                "death_date_unknown=true)"
            )
        if self.death_date_unknown and self.reason is not ChangeReason.DEATH:
            raise ValueError("death_date_unknown applies only to reason death")
        if self.effective_date and self.effective_date < self.birth_date:
            raise ValueError("effective_date is before birth_date")
        return self

    @property
    def is_removal(self) -> bool:
        return self.reason in REMOVAL_REASONS


class SealRow(_RowBase):
    record: Literal["seal"]
    seal_number: str = Field(pattern=r"^[0-9A-Za-z-]{1,20}$")
    seal_status: SealStatus
    effective_date: date


class TaxRow(_RowBase):
    record: Literal["tax"]
    fiscal_year: int = Field(ge=2000, le=2100)
    income_yen: int = Field(ge=0, le=MAX_YEN)
    assessed_yen: int = Field(ge=0, le=MAX_YEN)
    paid_yen: int = Field(ge=0, le=MAX_YEN)


DiffRow = Annotated[ResidentRow | SealRow | TaxRow, Field(discriminator="record")]
_DIFF_ROW: TypeAdapter[ResidentRow | SealRow | TaxRow] = TypeAdapter(DiffRow)


class RowProblem(BaseModel):
    """One reason a row was refused, in terms the sender can act on."""

    model_config = ConfigDict(frozen=True)

    line: int
    field: str
    value: str
    reason: str


def parse_row(
    values: dict[str, Any], line: int
) -> ResidentRow | SealRow | TaxRow | list[RowProblem]:
    """The typed row, or every problem found in it. Empty cells count as not given."""
    given = {k: v for k, v in values.items() if v not in ("", None)}
    try:
        return _DIFF_ROW.validate_python(given)
    except ValidationError as error:
        problems = []
        for detail in error.errors(include_url=False):
            location = [str(part) for part in detail["loc"]]
            # The discriminator's own name appears in the location; the column is what matters.
            field = next((p for p in reversed(location) if p in COLUMNS), ".".join(location))
            value = given.get(field, "")
            message = detail["msg"].removeprefix("Value error, ")
            problems.append(
                RowProblem(line=line, field=field or "(row)", value=str(value), reason=message)
            )
        return problems
