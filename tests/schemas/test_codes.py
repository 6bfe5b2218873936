import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from schemas.codes import (
    MunicipalityCode,
    Source,
    is_valid_municipality_code,
    municipality_check_digit,
)

MUNICIPALITY_CODE = TypeAdapter(MunicipalityCode)
SOURCE = TypeAdapter(Source)

prefixes = st.builds(
    lambda prefecture, municipality: f"{prefecture:02d}{municipality:03d}",
    st.integers(1, 47),
    st.integers(0, 999),
)


def validation_message(adapter: TypeAdapter[str], value: str) -> str:
    with pytest.raises(ValidationError) as caught:
        adapter.validate_python(value)
    errors = caught.value.errors()
    assert len(errors) == 1
    return errors[0]["msg"]


@pytest.mark.parametrize(
    "code",
    [
        "131016",  # Chiyoda
        "141003",  # Yokohama
        "011002",  # Sapporo
        "401307",  # Fukuoka
        "271004",  # Osaka
    ],
)
def test_known_codes_are_valid(code: str) -> None:
    assert municipality_check_digit(code[:5]) == int(code[5])
    assert is_valid_municipality_code(code)
    assert MUNICIPALITY_CODE.validate_python(code) == code


@given(prefixes)
def test_every_prefix_has_exactly_one_check_digit(prefix: str) -> None:
    valid = [digit for digit in "0123456789" if is_valid_municipality_code(prefix + digit)]
    assert valid == [str(municipality_check_digit(prefix))]
    code = prefix + valid[0]
    assert MUNICIPALITY_CODE.validate_python(code) == code


def test_wrong_check_digit_says_which_digit_is_expected() -> None:
    assert validation_message(MUNICIPALITY_CODE, "131015") == (
        "municipality code '131015' has check digit 5, expected 6 (全国地方公共団体コード: "
        "2-digit prefecture + 3-digit municipality + check digit)"
    )


@pytest.mark.parametrize("code", ["001008", "481001", "991000"])
def test_prefecture_outside_01_to_47_is_rejected(code: str) -> None:
    assert f"has prefecture {code[:2]}, expected 01..47" in validation_message(
        MUNICIPALITY_CODE, code
    )


@pytest.mark.parametrize(
    "code", ["13101", "1310160", "", "13101a", "１３１０１６", " 131016", "131016\n", "13-016"]
)
def test_malformed_codes_are_rejected(code: str) -> None:
    assert not is_valid_municipality_code(code)
    assert "must be exactly 6 ASCII digits" in validation_message(MUNICIPALITY_CODE, code)


def test_codes_are_not_taken_from_integers() -> None:
    # 011002 as a number would lose its leading zero.
    with pytest.raises(ValidationError):
        MUNICIPALITY_CODE.validate_python(11002)


@pytest.mark.parametrize("first5", ["1310", "131016", "1310a", "１３１０１"])
def test_check_digit_needs_five_ascii_digits(first5: str) -> None:
    with pytest.raises(ValueError, match="first 5 ASCII digits"):
        municipality_check_digit(first5)


@pytest.mark.parametrize(
    "source",
    [
        "municipality:131016",
        "center:east",
        "center:west",
        "jpki",
        "staff:tanaka.h",
        "staff:u-0042@city.chiyoda",
        "registry",
        "generator:workload",
        "retention",
        "disaster",
        "shelter:S1",
        "portal",
    ],
)
def test_accepted_source_forms(source: str) -> None:
    assert SOURCE.validate_python(source) == source


@pytest.mark.parametrize(
    "source",
    [
        "",
        "municipality",
        "municipality:13101",
        "center:north",
        "center:",
        "JPKI",
        "jpki ",
        "staff:",
        "staff:tanaka h",
        "generator:",
        "retention:5y",
        "kiosk:123",
        "shelter:",
    ],
)
def test_rejected_source_lists_the_accepted_forms(source: str) -> None:
    message = validation_message(SOURCE, source)
    assert message == (
        f"source {source!r} is not an accepted form; use one of: municipality:<6-digit "
        "municipality code>, center:east, center:west, jpki, staff:<id>, registry, issuer, "
        "disaster, shelter:<id>, portal, generator:<name>, retention"
    )


def test_municipality_source_needs_a_valid_code() -> None:
    assert validation_message(SOURCE, "municipality:131015") == (
        "source 'municipality:131015': municipality code '131015' has check digit 5, expected 6 "
        "(全国地方公共団体コード: 2-digit prefecture + 3-digit municipality + check digit)"
    )
