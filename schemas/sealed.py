"""Personal data inside an event payload, sealed with the resident's data key (DESIGN §7)."""

from typing import TYPE_CHECKING
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    from schemas.envelope import Envelope


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


def sealed_context(
    municipality: str, resident_code: str, event_type: str, event_id: UUID, sequence: int | None
) -> bytes:
    """The associated data a resident's sealed data is bound to: whose it is and the event that
    carries it. It must be given again to open the data, so a sealed value pasted into another
    resident's event, or into a new event of the same resident (a forged death), does not open.
    """
    return f"{municipality}:{resident_code}|{event_type}|{event_id}|{sequence}".encode()


def carried_by(envelope: "Envelope", municipality: str, resident_code: str) -> bytes:
    """``sealed_context`` of the sealed data that ``envelope`` carries."""
    return sealed_context(
        municipality, resident_code, envelope.type, envelope.event_id, envelope.sequence
    )
