"""Disaster rules, free of I/O: the affected area, taps at shelters (wide-area evacuees too),
the automatic match of applications, and which damage assessment holds."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from consumers.disaster.rules import (
    Assessment,
    Holder,
    LedgerEntry,
    assessed_damage,
    decide_tap,
    in_affected_area,
    inside,
    match_application,
    same_address,
)
from schemas.events.disaster import (
    ApplicationKind,
    ApplicationMatched,
    ApplicationRefusal,
    ApplicationRefused,
    ApplicationSubmitted,
    Area,
    DamageCategory,
    Point,
    ShelterTapped,
    TapMatched,
    TapRefusal,
    TapRefused,
)
from schemas.ids import new_event_id

BUNKYO = "131032"
# A square around 文京区's centre, and an L-shaped area (concave) for the ray test.
SQUARE = Area(
    vertices=(
        Point(lat=35.70, lon=139.74),
        Point(lat=35.70, lon=139.76),
        Point(lat=35.72, lon=139.76),
        Point(lat=35.72, lon=139.74),
    )
)
ELL = Area(
    vertices=(
        Point(lat=35.70, lon=139.74),
        Point(lat=35.70, lon=139.78),
        Point(lat=35.71, lon=139.78),
        Point(lat=35.71, lon=139.75),
        Point(lat=35.73, lon=139.75),
        Point(lat=35.73, lon=139.74),
    )
)


@pytest.mark.parametrize(
    ("lat", "lon", "expected"),
    [
        (35.71, 139.75, True),  # the middle
        (35.70, 139.75, True),  # on an edge
        (35.72, 139.76, True),  # a corner
        (35.6999, 139.75, False),  # just south
        (35.71, 139.7601, False),  # just east
        (35.80, 139.75, False),
    ],
)
def test_a_point_in_a_square(lat: float, lon: float, expected: bool) -> None:
    assert inside(Point(lat=lat, lon=lon), SQUARE) is expected


@pytest.mark.parametrize(
    ("lat", "lon", "expected"),
    [
        (35.705, 139.77, True),  # the foot of the L
        (35.72, 139.745, True),  # its upright
        (35.72, 139.77, False),  # the notch a convex test would wrongly take in
        (35.71, 139.76, True),  # on the inner edge
    ],
)
def test_a_point_in_a_concave_area(lat: float, lon: float, expected: bool) -> None:
    assert inside(Point(lat=lat, lon=lon), ELL) is expected


@given(st.floats(35.7001, 35.7199), st.floats(139.7401, 139.7599))
def test_every_point_strictly_inside_the_square_is_inside(lat: float, lon: float) -> None:
    assert inside(Point(lat=lat, lon=lon), SQUARE)


def test_the_whole_municipality_and_unlocated_dwellings_are_affected() -> None:
    far = Point(lat=35.9, lon=139.9)
    assert in_affected_area(far, None)
    assert in_affected_area(None, SQUARE)
    assert not in_affected_area(far, SQUARE)


@pytest.mark.parametrize(
    ("first", "second", "same"),
    [
        ("東京都文京区本郷1-2-3", "東京都文京区本郷１－２－３", True),
        ("東京都文京区本郷1-2-3", "東京都文京区 本郷1ー2ー3", True),
        ("東京都文京区本郷1-2-3", "東京都文京区本郷1-2-4", False),
    ],
)
def test_addresses_compare_as_written_on_forms(first: str, second: str, same: bool) -> None:
    assert same_address(first, second) is same


# ---------------------------------------------------------------------------------- taps

ACTIVE = Holder("active", BUNKYO, "13103200011", resident_active=True)


def tap(direction: str = "in") -> ShelterTapped:
    return ShelterTapped.model_validate(
        {"disaster_id": "131032-2026-flood-1", "shelter_id": "S1", "auth_serial": "0A1B",
         "direction": direction}
    )  # fmt: skip


def decided(holder: Holder | None, *, direction: str = "in", **facts: bool) -> object:
    options = {"shelter_open": True, "checked_in": False, **facts}
    return decide_tap(
        tap(direction), new_event_id(), affected_municipality=BUNKYO, holder=holder, **options
    )


def test_a_resident_of_the_affected_municipality_checks_in() -> None:
    matched = decided(ACTIVE)
    assert isinstance(matched, TapMatched)
    assert (matched.resident_code, matched.wide_area) == ("13103200011", False)


def test_an_evacuee_from_another_municipality_is_matched_in_their_own_register() -> None:
    matched = decided(Holder("active", "133086", "13308600007", resident_active=True))
    assert isinstance(matched, TapMatched)
    assert (matched.municipality, matched.wide_area) == ("133086", True)


@pytest.mark.parametrize(
    ("holder", "facts", "direction", "reason"),
    [
        (ACTIVE, {"shelter_open": False}, "in", TapRefusal.UNKNOWN_SHELTER),
        (None, {}, "in", TapRefusal.CERTIFICATE_UNKNOWN),
        (Holder("revoked", BUNKYO, "13103200011", True), {}, "in",
         TapRefusal.CERTIFICATE_NOT_ACTIVE),
        (Holder("active", BUNKYO, "13103200011", False), {}, "in",
         TapRefusal.RESIDENT_NOT_FOUND),
        (ACTIVE, {"checked_in": False}, "out", TapRefusal.NOT_CHECKED_IN),
    ],
)  # fmt: skip
def test_taps_refused_with_a_reason(
    holder: Holder | None, facts: dict[str, bool], direction: str, reason: TapRefusal
) -> None:
    refused = decided(holder, direction=direction, **facts)
    assert isinstance(refused, TapRefused)
    assert refused.reason is reason
    assert refused.message


def test_a_check_out_after_a_check_in_is_matched() -> None:
    assert isinstance(decided(ACTIVE, direction="out", checked_in=True), TapMatched)


# -------------------------------------------------------------------------- applications

VICTIM = LedgerEntry(BUNKYO, "13103200011", "H0001", "東京都文京区本郷1-2-3")


def application(kind: ApplicationKind = ApplicationKind.RISAI_CERTIFICATE) -> ApplicationSubmitted:
    return ApplicationSubmitted(
        application_id=uuid.uuid4(),
        disaster_id="131032-2026-flood-1",
        kind=kind,
        auth_serial="0A1B",
        dwelling_address="東京都文京区本郷１－２－３",
        attachments=("a" * 64,),
    )


def matched(**facts: object) -> ApplicationMatched | ApplicationRefused:
    options: dict[str, object] = {
        "disaster_known": True, "holder": ACTIVE, "victim": VICTIM, "applied_before": (),
    }  # fmt: skip
    options.update(facts)
    return match_application(application(), **options)  # type: ignore[arg-type]


def test_an_application_of_a_victim_for_their_dwelling_is_matched() -> None:
    result = matched()
    assert isinstance(result, ApplicationMatched)
    assert (result.resident_code, result.household_number) == ("13103200011", "H0001")


def test_another_kind_after_a_first_application_is_matched() -> None:
    assert isinstance(
        matched(applied_before=[ApplicationKind.LIVELIHOOD_SUPPORT]), ApplicationMatched
    )


@pytest.mark.parametrize(
    ("facts", "reason"),
    [
        ({"disaster_known": False}, ApplicationRefusal.DISASTER_UNKNOWN),
        ({"holder": None}, ApplicationRefusal.CERTIFICATE_UNKNOWN),
        ({"holder": Holder("suspended", BUNKYO, "13103200011", True)},
         ApplicationRefusal.CERTIFICATE_UNKNOWN),
        ({"victim": None}, ApplicationRefusal.NOT_IN_LEDGER),
        ({"victim": LedgerEntry(BUNKYO, "13103200011", "H0001", "東京都文京区本郷9-9-9")},
         ApplicationRefusal.DWELLING_MISMATCH),
        ({"applied_before": [ApplicationKind.RISAI_CERTIFICATE]}, ApplicationRefusal.DUPLICATE),
    ],
)  # fmt: skip
def test_applications_refused_with_a_reason(
    facts: dict[str, object], reason: ApplicationRefusal
) -> None:
    result = matched(**facts)
    assert isinstance(result, ApplicationRefused)
    assert result.reason is reason
    assert result.message


# -------------------------------------------------------------------------------- damage


def test_the_dwelling_s_own_assessment_outranks_a_later_bulk_one() -> None:
    first, second, third = sorted(new_event_id() for _ in range(3))
    own = Assessment(first, DamageCategory.HALF, individual=True)
    bulk = Assessment(second, DamageCategory.TOTAL, individual=False)
    assert assessed_damage([bulk, own]) is DamageCategory.HALF
    revised = Assessment(third, DamageCategory.LARGE_SCALE_HALF, individual=True)
    assert assessed_damage([own, bulk, revised]) is DamageCategory.LARGE_SCALE_HALF
    assert assessed_damage([bulk]) is DamageCategory.TOTAL
    assert assessed_damage([]) is None
