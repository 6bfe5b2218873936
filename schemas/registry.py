"""Event-type registry: which payload model each (type, version) has, and how old versions are
upcast on read. Events in the log are never rewritten (DESIGN §3), so every reader upcasts.
"""

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

from pydantic import AfterValidator, BaseModel
from pydantic.json_schema import WithJsonSchema
from pydantic_core import PydanticCustomError

if TYPE_CHECKING:
    from schemas.envelope import Envelope

Upcaster = Callable[[dict[str, Any]], dict[str, Any]]

_M = TypeVar("_M", bound=BaseModel)
# Spelled once out here: inside methods whose parameter is named ``type``, ``type[...]`` would
# subscript that string.
_ModelClass = type[_M]
_U = TypeVar("_U", bound=Upcaster)

_EVENT_TYPE = re.compile(r"[a-z][a-z0-9_]*(?:\.[a-z][a-z0-9_]*)+")


class SchemaError(ValueError):
    """Base of every error this package raises about events and their schemas."""


class UnknownEventType(SchemaError):
    def __init__(self, type: str) -> None:
        self.type = type
        super().__init__(
            f"unknown event type {type!r}: no payload model is registered for it "
            "(is its module under schemas/events/ imported?)"
        )


class UnsupportedVersion(SchemaError):
    def __init__(self, type: str, version: int, reason: str) -> None:
        self.type = type
        self.version = version
        super().__init__(f"{type} v{version}: {reason}")


class UpcastError(SchemaError):
    """An upcaster failed on a stored payload: the old payload is malformed for its version."""

    def __init__(self, type: str, from_version: int, cause: Exception) -> None:
        self.type = type
        self.from_version = from_version
        super().__init__(
            f"upcasting {type} v{from_version} to v{from_version + 1} failed: "
            f"{cause.__class__.__name__}: {cause}"
        )


def _event_type_problem(name: str) -> str | None:
    if _EVENT_TYPE.fullmatch(name) is None:
        return (
            f"event type {name!r} must be dotted lowercase words, like 'resident.changed' "
            "(letters, digits and '_', each word starting with a letter)"
        )
    return None


def _check_event_type(name: str) -> str:
    problem = _event_type_problem(name)
    if problem is not None:
        raise PydanticCustomError("event_type", problem)
    return name


EventTypeName = Annotated[
    str,
    AfterValidator(_check_event_type),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": "^[a-z][a-z0-9_]*(\\.[a-z][a-z0-9_]*)+$",
            "description": "Dotted lowercase event type, e.g. 'resident.changed'.",
        }
    ),
]


@dataclass
class _EventFamily:
    models: dict[int, type[BaseModel]] = field(default_factory=dict)
    upcasters: dict[int, Upcaster] = field(default_factory=dict)


class EventRegistry:
    def __init__(self) -> None:
        self._families: dict[str, _EventFamily] = {}

    def register(self, type: str, version: int, model: type[BaseModel]) -> None:
        problem = _event_type_problem(type)
        if problem is not None:
            raise SchemaError(problem)
        if version < 1:
            raise SchemaError(f"{type}: versions start at 1, got {version}")
        family = self._families.setdefault(type, _EventFamily())
        existing = family.models.get(version)
        if existing is not None:
            raise SchemaError(
                f"{type} v{version} is already registered to {existing.__qualname__}; "
                "a changed payload needs a new version and an upcaster"
            )
        family.models[version] = model

    def event(self, type: str, version: int) -> Callable[[type[_M]], type[_M]]:
        """Class decorator form of :meth:`register`."""

        def register_model(model: _ModelClass[_M]) -> _ModelClass[_M]:
            self.register(type, version, model)
            return model

        return register_model

    def upcaster(self, type: str, from_version: int) -> Callable[[_U], _U]:
        """Register a function turning a ``from_version`` payload dict into a next-version one.

        It receives a copy it may modify; nested values are shared with the envelope, so replace
        them rather than mutate them.
        """

        def register_upcaster(upcast: _U) -> _U:
            if from_version < 1:
                raise SchemaError(f"{type}: versions start at 1, got upcaster from {from_version}")
            family = self._families.setdefault(type, _EventFamily())
            if from_version in family.upcasters:
                raise SchemaError(
                    f"{type}: an upcaster from v{from_version} to v{from_version + 1} "
                    "is already registered"
                )
            family.upcasters[from_version] = upcast
            return upcast

        return register_upcaster

    def _family(self, type: str) -> _EventFamily:
        family = self._families.get(type)
        # Upcasters may be registered before (or without) a model; such a type is still unknown.
        if family is None or not family.models:
            raise UnknownEventType(type)
        return family

    def type_of(self, model: type[BaseModel]) -> str:
        """The event type whose current version ``model`` is."""
        for name, family in self._families.items():
            if family.models and family.models[max(family.models)] is model:
                return name
        raise UnknownEventType(model.__qualname__)

    def known(self, type: str) -> bool:
        family = self._families.get(type)
        return family is not None and bool(family.models)

    def types(self) -> list[str]:
        return sorted(name for name, family in self._families.items() if family.models)

    def versions(self, type: str) -> list[int]:
        """Versions of ``type`` with a registered model (old ones may survive only as upcasters)."""
        return sorted(self._family(type).models)

    def current_version(self, type: str) -> int:
        return max(self._family(type).models)

    def model(self, type: str, version: int | None = None) -> type[BaseModel]:
        """The payload model of ``type`` at ``version``, by default the current one."""
        family = self._family(type)
        if version is None:
            return family.models[max(family.models)]
        model = family.models.get(version)
        if model is None:
            registered = ", ".join(f"v{v}" for v in sorted(family.models))
            raise UnsupportedVersion(
                type, version, f"no payload model is registered for it (registered: {registered})"
            )
        return model

    def parse_payload(self, envelope: "Envelope") -> BaseModel:
        """Upcast the envelope's raw payload to the current version and validate it.

        Raises ``UnknownEventType``, ``UnsupportedVersion``, ``UpcastError``, or pydantic's
        ``ValidationError`` for a payload that does not fit the current model.
        """
        type, version = envelope.type, envelope.version
        family = self._family(type)
        current = max(family.models)
        if version > current:
            raise UnsupportedVersion(
                type,
                version,
                f"newer than the newest version this code knows (v{current}); "
                "deploy the newer schemas before consuming it",
            )
        data = envelope.payload
        if version < current:
            # Upcasters get their own copy so the frozen envelope's payload stays as it was read.
            data = dict(data)
        for step in range(version, current):
            upcast = family.upcasters.get(step)
            if upcast is None:
                raise UnsupportedVersion(
                    type,
                    version,
                    f"cannot be upcast to the current v{current}: "
                    f"no upcaster from v{step} to v{step + 1} is registered",
                )
            try:
                data = upcast(data)
            # Any failure is the stored payload's fault as far as the reader can act on it: it
            # must end up in dead-letters with the reason, not crash the worker.
            except Exception as exc:
                raise UpcastError(type, step, exc) from exc
        return family.models[current].model_validate(data)


REGISTRY = EventRegistry()
