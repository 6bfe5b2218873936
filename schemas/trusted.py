"""Building events from JSON this pipeline itself wrote and validated, without validating again.

Every event on the log was validated by ``schemas.codec.decode_event`` when its edge proved it
(``pipeline.proofs``), and its proof covers its exact bytes. A consumer that has checked the proof
can therefore build the models straight from the parsed JSON: each field converted to its type
(a UUID from its string, a datetime from its ISO form, a nested model from its object), no
constraint or validator run again. Validating is most of what decoding costs (``make bench``).

Only types whose conversion is exact are built this way; a model with any other field type has
no builder here and is decoded in full, as is an event of an older version (its upcasters run).
A contract test (tests/schemas/test_trusted.py) holds the built values equal to the validated ones.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Callable, Mapping
from datetime import date, datetime, time
from decimal import Decimal
from enum import Enum
from functools import cache
from typing import Any, Final
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, FutureDate, NaiveDatetime, PastDate

from schemas.envelope import Envelope
from schemas.registry import REGISTRY, EventRegistry

Build = Callable[[Any], Any]


def _same(value: Any) -> Any:
    return value


# JSON gives these as they are; what pydantic makes of a valid value is the value itself.
_AS_JSON_GIVES: Final = (str, int, bool, Any, type(None))
_CONVERTED: Final[Mapping[object, Build]] = {
    float: float,  # a whole number is written without its ".0"
    UUID: UUID,
    datetime: datetime.fromisoformat,
    AwareDatetime: datetime.fromisoformat,
    NaiveDatetime: datetime.fromisoformat,
    date: date.fromisoformat,
    PastDate: date.fromisoformat,
    FutureDate: date.fromisoformat,
    time: time.fromisoformat,
    Decimal: Decimal,
}


def _optional(build: Build) -> Build:
    return lambda value: None if value is None else build(value)


def _list_of(build: Build) -> Build:
    return lambda values: [build(value) for value in values]


def _tuple_of(build: Build) -> Build:
    return lambda values: tuple(build(value) for value in values)


def _dict_of(build: Build) -> Build:
    return lambda values: {key: build(value) for key, value in values.items()}


def _builder(annotation: Any) -> Build | None:
    """How to turn the JSON of a valid ``annotation`` into its value; None if not exactly known."""
    origin = typing.get_origin(annotation)
    arguments = typing.get_args(annotation)
    if origin is typing.Annotated:
        return _builder(arguments[0])
    if annotation in _AS_JSON_GIVES or origin is typing.Literal:
        return _same
    if annotation in _CONVERTED:
        return _CONVERTED[annotation]
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        return annotation
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return model_builder(annotation)
    if origin in (typing.Union, types.UnionType):
        present = [argument for argument in arguments if argument is not type(None)]
        if len(present) != 1:
            # A value of several possible types is told apart by validating it.
            return None
        inner = _builder(present[0])
        return None if inner is None else (inner if inner is _same else _optional(inner))
    if origin is tuple:
        if len(arguments) != 2 or arguments[1] is not ...:
            return None  # a tuple of fixed length: none in the events today
        inner = _builder(arguments[0])
        return None if inner is None else _tuple_of(inner)
    if origin in (list, dict):
        inner = _builder(arguments[-1]) if arguments else _same
        if inner is None:
            return None
        if inner is _same:
            return list if origin is list else dict
        return _list_of(inner) if origin is list else _dict_of(inner)
    return None


@cache
def model_builder(model: type[BaseModel]) -> Build | None:
    """Builds ``model`` from the JSON of a valid instance; None if a field's type is not one
    ``_builder`` knows exactly."""
    converted: list[tuple[str, Build]] = []
    for name, info in model.model_fields.items():
        if info.alias is not None or info.validation_alias is not None:
            return None
        build = _builder(info.annotation)
        if build is None:
            return None
        if build is not _same:
            converted.append((name, build))
    names = frozenset(model.model_fields)
    plain = not model.__private_attributes__ and model.model_config.get("extra") != "allow"
    construct = model.model_construct
    new = model.__new__
    set_attribute = object.__setattr__

    def built(data: Mapping[str, Any]) -> BaseModel:
        values = dict(data)
        for name, build in converted:
            if name in values:
                values[name] = build(values[name])
        if not plain or values.keys() != names:
            # Defaults to fill in: pydantic's own constructor knows them.
            return construct(**values)
        # What model_construct does when every field is given, without its per-field loop.
        instance = new(model)
        set_attribute(instance, "__dict__", values)
        set_attribute(instance, "__pydantic_fields_set__", set(names))
        set_attribute(instance, "__pydantic_extra__", None)
        set_attribute(instance, "__pydantic_private__", None)
        return instance

    return built


_ENVELOPE: Final = model_builder(Envelope)


def trusted_envelope(data: Mapping[str, Any]) -> Envelope:
    """The envelope of a proven event, as ``Envelope.model_validate`` would give it."""
    assert _ENVELOPE is not None, "every envelope field has an exact builder"
    envelope = _ENVELOPE(data)
    assert isinstance(envelope, Envelope)
    return envelope


def payload_builder(
    envelope: Envelope, registry: EventRegistry = REGISTRY
) -> Callable[[Envelope], BaseModel] | None:
    """How to build the payload of a proven event as ``registry.parse_payload`` would; None when
    it must be decoded in full: an older version (its upcasters run) or a model without a
    builder."""
    return _payload_builder(registry, envelope.type, envelope.version)


@cache
def _payload_builder(
    registry: EventRegistry, type: str, version: int
) -> Callable[[Envelope], BaseModel] | None:
    if not registry.known(type) or version != registry.current_version(type):
        return None
    build = model_builder(registry.model(type))
    if build is None:
        return None
    payload_of: Build = build
    return lambda envelope: payload_of(envelope.payload)
