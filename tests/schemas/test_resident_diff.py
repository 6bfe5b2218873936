"""Pushed rows: names and addresses are plain text, refused with what to remove otherwise."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from schemas.codes import PlainText
from schemas.events.residents import PersonalData
from schemas.inputs.resident_diff import ResidentRow, RowProblem, parse_row
from tests.producers.push_helpers import sample_rows

PLAIN = TypeAdapter(PlainText)


def a_resident(**changes: str) -> dict[str, str]:
    row = next(r for r in sample_rows() if r["record"] == "resident")
    return {**row, **changes}


@pytest.mark.parametrize(
    ("field", "value", "said"),
    [
        ("name", "山田\x00太郎", "has a control character (U+0000) at character 3"),
        ("address", "千代田区\n千代田1-1", "has a control character (U+000A) at character 5"),
        ("name_kana", "ヤマダ\x1b[2J", "has a control character (U+001B) at character 4"),
    ],
)
def test_a_control_character_in_a_name_or_address_is_refused_saying_where(
    field: str, value: str, said: str
) -> None:
    problems = parse_row(a_resident(**{field: value}), line=2)
    assert isinstance(problems, list)
    [problem] = problems
    assert problem == RowProblem(
        line=2,
        field=field,
        value=value,
        reason=f"{said}; names, addresses and other text are plain text: remove it",
    )


def test_a_lone_surrogate_is_refused() -> None:
    problems = parse_row(a_resident(head_of_household="山田\ud800"), line=2)
    assert isinstance(problems, list)
    assert [p.field for p in problems] == ["head_of_household"]


def test_names_in_any_script_with_ideographic_spaces_are_accepted() -> None:
    row = parse_row(a_resident(name="髙橋　ｱｲ Ōno-Müller", address="千代田区丸の内１丁目"), line=2)
    assert isinstance(row, ResidentRow)
    assert row.name == "髙橋　ｱｲ Ōno-Müller"


@given(st.text())
def test_plain_text_is_exactly_text_without_controls_or_surrogates(text: str) -> None:
    plain = not any(unicodedata.category(c) in ("Cc", "Cs") for c in text)
    try:
        assert PLAIN.validate_python(text) == text
        accepted = True
    except ValidationError:
        accepted = False
    assert accepted == plain


def test_a_pushed_row_holds_its_personal_fields_to_the_sealed_record_s_rules() -> None:
    """A row's personal fields are what the replica opens from the sealed record later: one
    definition for both, so a value the push accepts is never one the replica refuses."""
    for name, sealed in PersonalData.model_fields.items():
        pushed = ResidentRow.model_fields[name]
        assert (pushed.annotation, pushed.metadata, pushed.default) == (
            sealed.annotation,
            sealed.metadata,
            sealed.default,
        ), name
