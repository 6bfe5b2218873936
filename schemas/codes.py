"""Codes of the Japanese public administration and the pipeline's own identifiers.

Validators raise ``PydanticCustomError`` so that a rejected value reaches the sender as one plain
sentence saying what to fix, without pydantic's "Value error, " prefix.
"""

import re
import unicodedata
from functools import lru_cache
from typing import Annotated, Literal

from pydantic import AfterValidator, StringConstraints
from pydantic.json_schema import WithJsonSchema
from pydantic_core import PydanticCustomError

_CHECK_WEIGHTS = (6, 5, 4, 3, 2)
_MUNICIPALITY_CODE_FORMAT = (
    "全国地方公共団体コード: 2-digit prefecture + 3-digit municipality + check digit"
)
# [0-9] rather than \d: \d also matches full-width and other Unicode digits.
_SIX_DIGITS = re.compile(r"[0-9]{6}")


def municipality_check_digit(first5: str) -> int:
    """Check digit of a municipality code from its first five digits (prefecture + municipality)."""
    if len(first5) != 5 or not first5.isascii() or not first5.isdigit():
        raise ValueError(
            f"expected the first 5 ASCII digits of a municipality code, got {first5!r}"
        )
    total = sum(int(digit) * weight for digit, weight in zip(first5, _CHECK_WEIGHTS, strict=True))
    return (11 - total % 11) % 10


# Every event carries one or more codes from a universe of under 2,000, and the arithmetic costs
# more than the rest of an envelope's validation.
@lru_cache(maxsize=4096)
def _municipality_code_problem(code: str) -> str | None:
    if _SIX_DIGITS.fullmatch(code) is None:
        return (
            f"municipality code {code!r} must be exactly 6 ASCII digits "
            f"({_MUNICIPALITY_CODE_FORMAT})"
        )
    prefecture = int(code[:2])
    if not 1 <= prefecture <= 47:
        return (
            f"municipality code {code!r} has prefecture {code[:2]}, expected 01..47 "
            f"({_MUNICIPALITY_CODE_FORMAT})"
        )
    expected = municipality_check_digit(code[:5])
    if int(code[5]) != expected:
        return (
            f"municipality code {code!r} has check digit {code[5]}, expected {expected} "
            f"({_MUNICIPALITY_CODE_FORMAT})"
        )
    return None


def is_valid_municipality_code(code: str) -> bool:
    return _municipality_code_problem(code) is None


def _check_municipality_code(code: str) -> str:
    problem = _municipality_code_problem(code)
    if problem is not None:
        raise PydanticCustomError("municipality_code", problem)
    return code


MunicipalityCode = Annotated[
    str,
    AfterValidator(_check_municipality_code),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": "^(0[1-9]|[1-3][0-9]|4[0-7])[0-9]{4}$",
            "description": f"Municipality code ({_MUNICIPALITY_CODE_FORMAT}); "
            "the check digit is (11 - sum(d_i * w_i) mod 11) mod 10 with weights 6,5,4,3,2.",
        }
    ),
]

Origin = Literal["east", "west"]

# (municipality code, resident code): a resident, unique across the nation.
Resident = tuple[str, str]

_SOURCE_FORMS = (
    "municipality:<6-digit municipality code>, center:east, center:west, jpki, staff:<id>, "
    "registry, issuer, disaster, shelter:<id>, portal, generator:<name>, retention"
)
_SOURCE = re.compile(
    r"municipality:(?P<municipality>[0-9]{6})|center:(?:east|west)|jpki|staff:\S+|registry"
    r"|issuer|disaster|shelter:\S+|portal|generator:\S+|retention"
)


def _check_source(source: str) -> str:
    match = _SOURCE.fullmatch(source)
    if match is None:
        raise PydanticCustomError(
            "event_source",
            f"source {source!r} is not an accepted form; use one of: {_SOURCE_FORMS}",
        )
    # A municipality may push only its own residents (DESIGN §7), so its code must be a real one.
    code = match["municipality"]
    if code is not None:
        problem = _municipality_code_problem(code)
        if problem is not None:
            raise PydanticCustomError("event_source", f"source {source!r}: {problem}")
    return source


Source = Annotated[
    str,
    AfterValidator(_check_source),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": "^(municipality:[0-9]{6}|center:(east|west)|jpki|staff:\\S+|registry"
            "|issuer|disaster|shelter:\\S+|portal|generator:\\S+|retention)$",
            "description": f"Who sent the event: {_SOURCE_FORMS}.",
        }
    ),
]

# JPKI serials are carried as printed by the issuer (hex or alphanumeric); one type for both the
# kiosk's authentication serial and the CRL's serial so the two can be joined.
CertificateSerial = Annotated[str, StringConstraints(pattern=r"^[0-9A-Za-z]{1,40}$")]


def certificate_serial(number: int) -> str:
    """The serial text of an X.509 serial number: upper-case hex, at least 16 digits."""
    if number < 0:
        raise ValueError(f"an X.509 serial number is positive, got {number}")
    return f"{number:016X}"


def serial_number(serial: str) -> int:
    """The X.509 serial number a serial text names (the inverse of ``certificate_serial``)."""
    try:
        return int(serial, 16)
    except ValueError:
        raise ValueError(
            f"certificate serial {serial!r} is not hexadecimal (like 4F3A09B2C1D0E7F6)"
        ) from None


def canonical_serial(serial: str) -> str:
    """A serial as typed (any case, leading zeros or not) in the form events carry."""
    return certificate_serial(serial_number(serial.strip()))


def _check_plain_text(text: str, allowed: str = "") -> str:
    for position, character in enumerate(text, start=1):
        category = unicodedata.category(character)
        if category in ("Cc", "Cs") and character not in allowed:
            what = "a lone surrogate" if category == "Cs" else "a control character"
            raise PydanticCustomError(
                "control_character",
                f"has {what} (U+{ord(character):04X}) at character {position}; names, "
                "addresses and other text are plain text: remove it",
            )
    return text


# The largest amount of yen any field holds: 1,000 trillion, within the bigint columns it lands in
# and beyond any tax fact.
MAX_YEN = 10**15

# Standard base64 with padding, as signatures travel in events.
BASE64 = r"^[A-Za-z0-9+/]*={0,2}$"

# Names and addresses: no control characters (a NUL, a line break, an escape) and no lone
# surrogates. Postgres refuses a NUL in text, and the rest breaks the printed certificate.
PlainText = Annotated[str, AfterValidator(_check_plain_text)]
# Text of several lines (a notice's body, a plan): line breaks and tabs, no other control.
Prose = Annotated[str, AfterValidator(lambda text: _check_plain_text(text, "\n\r\t"))]
