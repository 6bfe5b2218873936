"""Fees rows and statements, free of I/O: only an issued and delivered request is charged, in any
arrival order; the commission of the request's day; a mid-month resident-fee change; the year's
contribution, BCL fee and disaster system fee put together."""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from consumers.fees.rules import (
    CUBES,
    MEASURES,
    ROWS,
    Member,
    StoreTotals,
    outcome_facet,
    request_facet,
    year_statement,
)
from pipeline.facets import FacetValue, notice_facet
from schemas.events.issuance import (
    CertificateType,
    FeeQuote,
    IssuanceCancelled,
    IssuanceDelivered,
    IssuanceIssued,
    IssuanceRejected,
    IssuanceRequested,
    RejectionReason,
    StoreOperator,
)
from schemas.events.municipalities import MunicipalityClass
from schemas.sealed import Sealed

JAPAN_NOON = timedelta(hours=3)  # 12:00 in Japan is 03:00 UTC


def at(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC) + JAPAN_NOON


def requested(
    request_id: uuid.UUID,
    day: date,
    copies: int = 1,
    operator: StoreOperator = StoreOperator.SEVEN_ELEVEN,
    kind: CertificateType = CertificateType.JUMINHYO,
) -> FacetValue:
    payload = IssuanceRequested(
        request_id=request_id,
        store_operator=operator,
        store_id="S-1",
        store_municipality="131016",
        resident_municipality="131016",
        auth_serial="0A",
        certificate_type=kind,
        copies=copies,
    )
    return request_facet(uuid.uuid4(), payload, at=at(day), center="east")


def issued(
    request_id: uuid.UUID,
    per_copy: int,
    copies: int = 1,
    *,
    through_bcl: bool = True,
    kind: CertificateType = CertificateType.JUMINHYO,
) -> FacetValue:
    payload = IssuanceIssued(
        request_id=request_id,
        municipality="131016",
        resident_code="13101600011",
        certificate_type=kind,
        document_id=uuid.uuid4(),
        verification_id="ABCD-EFGH-IJKL-MNOP",
        digest="0" * 64,
        signature="c2ln",
        seal_key_id="0" * 16,
        pages=1,
        fee=FeeQuote(
            per_copy_yen=per_copy, copies=copies, total_yen=per_copy * copies, schedule_from=None
        ),
        through_bcl=through_bcl,
        content=Sealed(key_id=uuid.uuid4(), nonce="A" * 16, ciphertext="A" * 24),
    )
    return outcome_facet(uuid.uuid4(), payload)


def rejected(request_id: uuid.UUID) -> FacetValue:
    payload = IssuanceRejected(
        request_id=request_id,
        municipality="131016",
        certificate_type=CertificateType.INKAN,
        reason=RejectionReason.SEAL_NOT_REGISTERED,
        message="no seal",
    )
    return outcome_facet(uuid.uuid4(), payload)


def delivered(request_id: uuid.UUID, fee: int, day: date) -> FacetValue:
    return notice_facet(
        uuid.uuid4(), IssuanceDelivered(request_id=request_id, fee_paid_yen=fee, printed_at=at(day))
    )


def cancelled(request_id: uuid.UUID) -> FacetValue:
    return notice_facet(uuid.uuid4(), IssuanceCancelled(request_id=request_id, reason="left"))


def measured(*facets: FacetValue) -> dict[str, int]:
    measures = CUBES.measure(ROWS.merged(None, facets))
    assert measures is not None
    return dict(zip(MEASURES, measures, strict=True))


def month_cells(*requests: list[FacetValue]) -> dict[tuple[object, ...], dict[str, int]]:
    """The monthly cube after each request's facets arrive one by one."""
    cube: Counter[tuple[object, ...]] = Counter()
    for facets in requests:
        row = None
        for facet in facets:
            new = ROWS.merged(row, [facet])
            (moved,) = CUBES.deltas([(row, new)])
            for key, delta in moved.items():
                for measure, value in zip(MEASURES, delta, strict=True):
                    cube[(*key, measure)] += value
            row = new
    cells: dict[tuple[object, ...], dict[str, int]] = {}
    for (*key, measure), value in cube.items():
        cells.setdefault(tuple(key), {})[measure] = value
    return {key: values for key, values in cells.items() if values["requests"]}


DAY = date(2024, 3, 4)


def test_only_an_issued_and_delivered_request_is_charged() -> None:
    one = uuid.uuid4()
    charged = measured(requested(one, DAY, 2), issued(one, 300, 2), delivered(one, 600, DAY))
    assert charged == {
        "requests": 1, "issued": 1, "rejected": 0, "delivered": 1, "cancelled": 0,
        "certificates": 2, "fees_collected_yen": 600, "commission_yen": 234, "bcl_fee_yen": 360,
    }  # fmt: skip
    waiting = measured(requested(one, DAY), issued(one, 300))
    assert (waiting["issued"], waiting["fees_collected_yen"], waiting["commission_yen"]) == (
        1,
        0,
        0,
    )
    left = measured(requested(one, DAY), issued(one, 300), cancelled(one))
    assert (left["cancelled"], left["certificates"], left["fees_collected_yen"]) == (1, 0, 0)
    refused = measured(requested(one, DAY), rejected(one))
    assert (refused["rejected"], refused["commission_yen"], refused["bcl_fee_yen"]) == (1, 0, 0)


def test_a_certificate_from_a_municipality_s_own_server_owes_no_bcl_fee() -> None:
    one = uuid.uuid4()
    own = measured(
        requested(one, DAY), issued(one, 300, through_bcl=False), delivered(one, 300, DAY)
    )
    assert (own["commission_yen"], own["bcl_fee_yen"]) == (117, 0)


def test_a_row_without_its_request_counts_nowhere() -> None:
    one = uuid.uuid4()
    row = ROWS.merged(None, [issued(one, 300), delivered(one, 300, DAY)])
    assert CUBES.measure(row) is None
    assert CUBES.deltas([(None, row)]) == ({},)


@pytest.mark.parametrize(
    ("day", "commission"),
    [(date(2017, 3, 31), 123), (date(2017, 4, 1), 115), (date(2019, 9, 30), 115),
     (date(2019, 10, 1), 117)],
)  # fmt: skip
def test_the_commission_is_the_one_of_the_request_s_japan_day(day: date, commission: int) -> None:
    one = uuid.uuid4()
    settled = measured(requested(one, day), issued(one, 300), delivered(one, 300, day))
    assert settled["commission_yen"] == commission


def test_a_resident_fee_change_in_the_middle_of_a_month_settles_each_at_its_own_fee() -> None:
    """300 yen until the 15th, 200 from the 16th: the month's cell holds what each paid."""
    before, after = uuid.uuid4(), uuid.uuid4()
    cells = month_cells(
        [requested(before, date(2026, 11, 15)), issued(before, 300),
         delivered(before, 300, date(2026, 11, 15))],
        [requested(after, date(2026, 11, 16)), issued(after, 200),
         delivered(after, 200, date(2026, 11, 16))],
    )  # fmt: skip
    [(key, values)] = cells.items()
    assert key == (date(2026, 11, 1), "131016", "juminhyo", "seven_eleven", "east")
    assert (values["certificates"], values["fees_collected_yen"]) == (2, 500)
    assert values["commission_yen"] == 2 * 117


FACETS = st.permutations(range(5))


@given(FACETS)
def test_any_arrival_order_and_any_repetition_charges_once(order: list[int]) -> None:
    one = uuid.uuid4()
    facets = [
        requested(one, DAY, 2),
        issued(one, 300, 2),
        delivered(one, 600, DAY),
        delivered(one, 600, DAY),  # the kiosk's notice sent twice
        requested(one, DAY, 2, StoreOperator.LAWSON),  # resent at another chain later
    ]
    expected = month_cells(facets[:3])
    assert month_cells([facets[i] for i in order]).keys() <= {
        *expected,
        (date(2024, 3, 1), "131016", "juminhyo", "lawson", "east"),
    }
    [values] = month_cells([facets[i] for i in order]).values()
    [charged] = expected.values()
    assert values == charged


# ------------------------------------------------------------------------------ the year


def member(**overrides: object) -> Member:
    fields: dict[str, object] = {
        "code": "131016",
        "name": "千代田区",
        "municipality_class": MunicipalityClass.SPECIAL_WARD,
        "population": 68_000,
        "uses_bcl": True,
        "joined_on": date(2022, 1, 1),
        "disaster_system_since": None,
    }
    fields.update(overrides)
    return Member(**fields)  # type: ignore[arg-type]


STORE = StoreTotals(
    certificates=10, fees_collected_yen=3_000, commission_yen=1_170, bcl_fee_yen=1_800
)


def test_a_full_year_on_bcl() -> None:
    statement = year_statement(member(), 2024, STORE)
    assert (statement.contribution_months, statement.contribution_yen) == (12, 2_728_000)
    assert statement.bcl_fee_yen == 1_800
    assert statement.disaster_system_fee_yen == 0
    assert statement.owed_yen == 2_728_000 + 1_800
    assert statement.net_yen == 3_000 - 1_170 - statement.owed_yen


def test_the_joining_year_is_prorated_and_the_years_before_owe_nothing() -> None:
    joined = member(municipality_class=MunicipalityClass.TOWN, population=8_000,
                    joined_on=date(2024, 10, 15))  # fmt: skip
    assert year_statement(joined, 2024, StoreTotals()).contribution_yen == 345_481 // 12 * 6
    assert year_statement(joined, 2024, StoreTotals()).contribution_months == 6
    assert year_statement(joined, 2023, StoreTotals()).contribution_yen == 0
    assert year_statement(joined, 2025, StoreTotals()).contribution_yen == 345_481
    never = member(joined_on=None)
    assert year_statement(never, 2024, StoreTotals()).contribution_yen == 0


def test_the_disaster_system_fee_runs_from_its_introduction() -> None:
    introduced = member(disaster_system_since=date(2024, 6, 20))
    annual = 185_000 + 10 * 68_000
    assert year_statement(introduced, 2024, StoreTotals()).disaster_system_fee_yen == (
        annual // 12 * 10
    )
    assert year_statement(introduced, 2025, StoreTotals()).disaster_system_fee_yen == annual
    assert year_statement(introduced, 2023, StoreTotals()).disaster_system_fee_yen == 0
