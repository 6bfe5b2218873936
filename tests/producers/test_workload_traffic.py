"""The national traffic generator: deterministic, day by day, shaped like DOMAIN §8, and its
recorded decisions equal to what the issuer's rules decide."""

from __future__ import annotations

import base64
import hashlib
import itertools
import types
import uuid
from collections import Counter
from datetime import date, timedelta

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from pipeline.seals import load_seal_public_key, seal_holds
from producers.workload import (
    CERTIFICATE_MIX,
    NATIONAL_MUNICIPALITIES,
    OPERATORS,
    Traffic,
    national_holidays,
    national_traffic,
    recorded_traffic,
    registry_events,
    synthetic_nation,
)
from schemas.codes import is_valid_municipality_code
from schemas.events.municipalities import MunicipalityClass
from schemas.fees import fee_quote

MARCH = date(2024, 3, 1)


@pytest.fixture(scope="module")
def nation() -> list:  # type: ignore[type-arg]
    return synthetic_nation(NATIONAL_MUNICIPALITIES)


@pytest.fixture(scope="module")
def month(nation: list) -> list:  # type: ignore[type-arg]
    return list(national_traffic(nation, start=MARCH, days=31, scale=0.008))


def test_the_nation_has_every_class_valid_unique_codes_and_japans_population(nation: list) -> None:  # type: ignore[type-arg]
    codes = [m.code for m in nation]
    assert len(set(codes)) == len(codes) == NATIONAL_MUNICIPALITIES
    assert all(is_valid_municipality_code(code) for code in codes)
    classes = Counter(m.municipality_class for m in nation)
    assert classes[MunicipalityClass.DESIGNATED_CITY] == 20
    assert classes[MunicipalityClass.SPECIAL_WARD] == 23
    assert {m.code: m.population for m in nation[:3]} == {
        "141003": 3_752_000,
        "401307": 1_612_000,
        "271004": 2_757_000,
    }
    assert 110_000_000 < sum(m.population for m in nation) < 140_000_000
    on_bcl = [m for m in nation if m.uses_bcl]
    assert 120 < len(on_bcl) < 260  # ~180 in DOMAIN §1, mostly under 30,000 people
    assert sum(m.population < 30_000 for m in on_bcl) > 0.8 * len(on_bcl)


def test_the_same_seed_gives_the_same_traffic_and_days_stand_alone(nation: list) -> None:  # type: ignore[type-arg]
    small = nation[:50]
    first = list(national_traffic(small, start=MARCH, days=3, scale=0.05))
    again = list(national_traffic(small, start=MARCH, days=3, scale=0.05))
    assert first == again
    assert len(first) > 100
    third_day = Traffic(small, scale=0.05).day(MARCH + timedelta(days=2))
    assert third_day == [v for v in first if v.at.date() == MARCH + timedelta(days=2)]
    assert [v.at for v in first] == sorted(v.at for v in first)
    other_seed = list(national_traffic(small, start=MARCH, days=3, scale=0.05, seed=8))
    assert other_seed != first


def test_traffic_streams_a_day_at_a_time(nation: list) -> None:  # type: ignore[type-arg]
    stream = national_traffic(nation, start=MARCH, days=10_000, scale=0.2)
    assert isinstance(stream, types.GeneratorType)
    # Japan's first day arrives without the 27 years after it being made.
    first_day = list(itertools.islice(stream, 1_000))
    assert {v.at.date() for v in first_day} == {MARCH}


def test_a_village_alone_gets_its_own_traffic_and_stores() -> None:
    village = [
        next(m for m in synthetic_nation(100) if m.municipality_class is MunicipalityClass.VILLAGE)
    ]
    visits = list(national_traffic(village, start=MARCH, days=31))
    # 2.5–5% of the people a month, as DOMAIN §8 says of a municipality.
    assert 0.015 * village[0].population < len(visits) < 0.05 * village[0].population
    assert {v.request.store_municipality for v in visits} == {village[0].code}


def shares(counter: Counter[object], total: int) -> dict[object, float]:
    return {key: 100 * count / total for key, count in counter.items()}


def test_a_month_reproduces_the_national_shares_within_one_point(month: list) -> None:  # type: ignore[type-arg]
    issued = [v for v in month if v.rejection is None]
    total = len(issued)
    assert total > 25_000
    operators = shares(Counter(v.request.store_operator for v in issued), total)
    operator_total = sum(share for share, _ in OPERATORS.values())
    for operator, (count, _) in OPERATORS.items():
        assert operators[operator] == pytest.approx(100 * count / operator_total, abs=1.0)
    kinds = shares(Counter(v.request.certificate_type for v in issued), total)
    mix_total = sum(CERTIFICATE_MIX.values())
    for kind, count in CERTIFICATE_MIX.items():
        assert kinds[kind] == pytest.approx(100 * count / mix_total, abs=1.0)
    assert 100 * sum(v.outside_counter_hours for v in issued) / total == pytest.approx(49.3, abs=1)
    other = sum(v.request.store_municipality != v.request.resident_municipality for v in issued)
    assert 100 * other / total == pytest.approx(21.1, abs=1)
    rejected = len(month) - total
    assert 2 < 100 * rejected / len(month) < 4


def test_named_cities_keep_their_own_shares(month: list) -> None:  # type: ignore[type-arg]
    fukuoka = [v for v in month if v.request.resident_municipality == "401307"]
    assert len(fukuoka) == pytest.approx(112_469 * 0.008, rel=0.1)
    outside = 100 * sum(v.outside_counter_hours for v in fukuoka) / len(fukuoka)
    assert outside == pytest.approx(37.1, abs=4)


def test_recorded_decisions_are_the_ones_the_issuer_rules_make(nation: list, month: list) -> None:  # type: ignore[type-arg]
    """The contract that lets recorded traffic stand in for the issuer: the counter-hours stamp
    and the fee quote are what the profile and the issuer's fee rule give."""
    holidays = national_holidays(date(2024, 2, 1), date(2024, 4, 30))
    profiles = {m.code: m.profile(holidays) for m in nation}
    by_code = {m.code: m for m in nation}
    for visit in month[::7]:
        profile = profiles[visit.request.resident_municipality]
        assert profile.counter_open(visit.at) is not visit.outside_counter_hours
        assert (
            visit.request.certificate_type
            in by_code[visit.request.resident_municipality].offered_types
        )
        if visit.rejection is None:
            expected = fee_quote(
                profile.fees, visit.request.certificate_type, visit.request.copies, visit.at
            )
            assert visit.fee == expected


def test_recorded_documents_carry_a_seal_that_verifies(nation: list) -> None:  # type: ignore[type-arg]
    small = nation[:5]
    joined = {e.key: e.envelope.payload for e in registry_events(small)}
    visits = list(national_traffic(small, start=MARCH, days=1, scale=0.01))
    events = list(recorded_traffic(visits))
    assert events == list(recorded_traffic(visits))  # the same log, byte for byte (ids, seals)
    issued = [e for e in events if e.envelope.type == "issuance.issued"]
    assert issued
    # The generator seals content under a key of its own, derived from the seed.
    content_key = AESGCM(hashlib.sha256(b"content:7").digest())
    for event in issued[:20]:
        payload = event.envelope.payload
        key = joined[payload["municipality"]]["profile"]["seal_keys"][0]
        assert key["key_id"] == payload["seal_key_id"]
        raw = content_key.decrypt(
            base64.b64decode(payload["content"]["nonce"]),
            base64.b64decode(payload["content"]["ciphertext"]),
            uuid.UUID(payload["document_id"]).bytes,
        )
        assert hashlib.sha256(raw).hexdigest() == payload["digest"]
        signature = base64.b64decode(payload["signature"])
        assert seal_holds(load_seal_public_key(key["public_key"]), raw, signature)
        assert not seal_holds(load_seal_public_key(key["public_key"]), raw + b" ", signature)
    types_seen = Counter(e.envelope.type for e in events)
    assert types_seen["issuance.requested"] == len(visits)
    assert types_seen["issuance.issued"] + types_seen["issuance.rejected"] == len(visits)
