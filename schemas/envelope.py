"""The envelope every message value carries (DESIGN §3)."""

from datetime import UTC, datetime
from typing import Any, Self
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator
from pydantic_core import PydanticCustomError

from schemas.codes import MunicipalityCode, Origin, Source
from schemas.ids import new_event_id
from schemas.registry import REGISTRY, EventRegistry, EventTypeName, SchemaError


class Envelope(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    event_id: UUID = Field(description="UUIDv7 (time-ordered), unique forever.")
    type: EventTypeName
    version: int = Field(ge=1)
    occurred_at: AwareDatetime = Field(description="When it happened in the world.")
    recorded_at: AwareDatetime = Field(description="When the pipeline accepted it.")
    origin: Origin = Field(description="The center (cluster) where the event entered.")
    source: Source
    municipality: MunicipalityCode | None = None
    # Capped at signed 64 bits: most JSON readers and the bigint columns it lands in hold no more.
    sequence: int | None = Field(
        default=None,
        ge=0,
        le=2**63 - 1,
        description="Monotonic per source stream, where it has one.",
    )
    correlation_id: UUID | None = None
    causation_id: UUID | None = None
    payload: dict[str, Any]
    # Written last by ``encode_event``, over the bytes before it (``pipeline.proofs``).
    proof: str | None = Field(
        default=None,
        max_length=120,
        pattern=r"^[a-z]+(:[0-9A-Za-z_-]+)?#[0-9]+:[A-Za-z0-9_-]{43}$",
        description="The publishing edge's proof of origin: <edge>#<key generation>:<MAC>.",
    )

    @field_validator("event_id")
    @classmethod
    def _time_ordered_id(cls, event_id: UUID) -> UUID:
        # The version nibble read from the integer: UUID.version is slow on a hot path.
        if (event_id.int >> 76) & 0xF != 7:
            raise PydanticCustomError(
                "event_id_version",
                f"event_id {event_id} is a version {event_id.version} UUID; event ids must be "
                "UUIDv7 (time-ordered), as made by schemas.ids.new_event_id()",
            )
        return event_id

    @classmethod
    def new(
        cls,
        type: str,
        payload: BaseModel,
        *,
        origin: Origin,
        source: str,
        occurred_at: datetime,
        municipality: str | None = None,
        sequence: int | None = None,
        correlation_id: UUID | None = None,
        causation_id: UUID | None = None,
        version: int | None = None,
        registry: EventRegistry = REGISTRY,
        event_id: UUID | None = None,
    ) -> Self:
        """A new event, stamped with a fresh id and the time it is recorded.

        ``version`` defaults to the current version of ``type``; the payload must be an instance of
        the model registered for that version, so a producer cannot mislabel what it sends.
        ``event_id`` is for edges that must republish with the same ids (see ``derived_event_id``).
        """
        if version is None:
            version = registry.current_version(type)
        expected = registry.model(type, version)
        if payload.__class__ is not expected:
            raise SchemaError(
                f"{type} v{version} carries a {expected.__qualname__} payload, "
                f"got {payload.__class__.__qualname__}"
            )
        return cls(
            event_id=event_id or new_event_id(),
            type=type,
            version=version,
            occurred_at=occurred_at,
            recorded_at=datetime.now(UTC),
            origin=origin,
            source=source,
            municipality=municipality,
            sequence=sequence,
            correlation_id=correlation_id,
            causation_id=causation_id,
            payload=payload.model_dump(mode="json"),
        )
