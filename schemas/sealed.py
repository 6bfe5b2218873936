"""Personal data inside an event payload, sealed with the resident's data key (DESIGN §7)."""

from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field


class Sealed(BaseModel):
    """AES-256-GCM ciphertext of a JSON object, under the data key ``key_id``.

    The log never holds personal data in clear; destroying the data key (after the 5-year
    retention) makes every copy of this payload unreadable.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    key_id: UUID
    nonce: str = Field(pattern=r"^[A-Za-z0-9+/]{16}$", description="base64 of 12 random bytes")
    ciphertext: str = Field(
        min_length=24, pattern=r"^[A-Za-z0-9+/]*={0,2}$", description="base64 (ciphertext + tag)"
    )
