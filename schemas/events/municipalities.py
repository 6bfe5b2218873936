"""Municipalities joining the service."""

from datetime import date

from pydantic import BaseModel, ConfigDict, Field

from schemas.codes import MunicipalityCode
from schemas.registry import REGISTRY


@REGISTRY.event("municipality.joined", 1)
class MunicipalityJoined(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    code: MunicipalityCode
    name: str = Field(min_length=1)
    joined_on: date = Field(
        description="First day of participation; contributions prorate from it."
    )
    uses_bcl: bool = Field(
        description="Pushes its resident data to BCL rather than running its own server."
    )
