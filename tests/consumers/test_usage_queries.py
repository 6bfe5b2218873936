"""`bcl usage` against the real Postgres: the usage projection filled from generated kiosk traffic,
queried through ``consumers.usage.queries`` and the CLI, checked against counts made here from the
same events."""

from __future__ import annotations

import csv
import io
import json
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable, Hashable
from dataclasses import dataclass
from datetime import date, timedelta
from functools import cache
from pathlib import Path

import asyncpg
import pyarrow as pa  # type: ignore[import-untyped]
import pyarrow.parquet as pq  # type: ignore[import-untyped]
import pytest
from typer.testing import CliRunner, Result

from consumers.usage.projection import UsageProjection
from consumers.usage.queries import (
    HOURLY,
    MONTHLY,
    REQUESTS,
    STORES,
    Source,
    UsageFilter,
    dimensions,
    source_for,
    usage_query,
    usage_report,
)
from pipeline.cli import app
from pipeline.projection import ConsumedEvent
from pipeline.settings import Settings
from producers.workload import national_traffic, recorded_traffic, synthetic_nation
from schemas.calendar import JST
from schemas.events.issuance import (
    IssuanceCancelled,
    IssuanceDelivered,
    IssuanceIssued,
    IssuanceRejected,
    IssuanceRequested,
)
from schemas.registry import REGISTRY
from tests.helpers import settings_env

pytestmark = pytest.mark.integration

YOKOHAMA = "141003"
FIRST_DAY = date(2024, 3, 30)  # Saturday, Sunday, then Monday 1 April: two months, both hours
COUNTED = (
    "requests", "issued", "rejected", "delivered", "cancelled", "certificates", "fees_paid_yen",
)  # fmt: skip


@dataclass
class Request:
    """What the events say about one request, gathered here without the projection's rules."""

    requested: bool = False  # its request event is among the events
    municipality: str = ""
    store_municipality: str = ""
    operator: str = ""
    certificate_type: str = ""
    day: date = date.min
    hour: int = 0
    copies: int = 0
    outcome: str | None = None
    reason: str | None = None
    outside: bool | None = None
    notice: str | None = None
    fee_paid: int = 0


@cache
def traffic() -> tuple[tuple[ConsumedEvent, ...], tuple[Request, ...]]:
    """The issuance events of three days of a 20-municipality nation, less the request of a few
    requests (their rows exist without a request facet) and all but the request of a few others
    (undecided), with what the events say per request."""
    visits = national_traffic(synthetic_nation(20), start=FIRST_DAY, days=3, scale=0.05)
    events: list[ConsumedEvent] = []
    requests: dict[uuid.UUID, Request] = {}
    for offset, outgoing in enumerate(recorded_traffic(visits)):
        envelope = outgoing.envelope
        if not envelope.type.startswith("issuance."):
            continue
        payload = REGISTRY.model(envelope.type, envelope.version).model_validate(envelope.payload)
        request_id: uuid.UUID = payload.request_id  # type: ignore[attr-defined]
        requested = isinstance(payload, IssuanceRequested)
        if request_id.int % 97 == (0 if requested else 1):
            continue
        events.append(
            ConsumedEvent(outgoing.topic, 0, offset, outgoing.key.encode(), envelope, payload)
        )
        seen = requests.setdefault(request_id, Request())
        if isinstance(payload, IssuanceRequested):
            moment = envelope.occurred_at.astimezone(JST)
            seen.requested = True
            seen.municipality = payload.resident_municipality
            seen.store_municipality = payload.store_municipality
            seen.operator = payload.store_operator.value
            seen.certificate_type = payload.certificate_type.value
            seen.day, seen.hour, seen.copies = moment.date(), moment.hour, payload.copies
        elif isinstance(payload, IssuanceIssued):
            seen.outcome, seen.outside = "issued", payload.outside_counter_hours
        elif isinstance(payload, IssuanceRejected):
            seen.outcome, seen.outside = "rejected", payload.outside_counter_hours
            seen.reason = payload.reason.value
        elif isinstance(payload, IssuanceDelivered):
            seen.notice, seen.fee_paid = "delivered", payload.fee_paid_yen
        elif isinstance(payload, IssuanceCancelled):
            seen.notice = "cancelled"
    return tuple(events), tuple(r for r in requests.values() if r.requested)


def expected(
    key: Callable[[Request], Hashable], keep: Callable[[Request], bool] = lambda r: True
) -> dict[Hashable, dict[str, int]]:
    """The measures per group, counted from the events."""
    groups: dict[Hashable, Counter[str]] = {}
    for r in traffic()[1]:
        if not keep(r):
            continue
        counts = groups.setdefault(key(r), Counter())
        counts.update(
            requests=1,
            issued=r.outcome == "issued",
            rejected=r.outcome == "rejected",
            delivered=r.notice == "delivered",
            cancelled=r.notice == "cancelled",
            certificates=r.copies if r.notice == "delivered" else 0,
            fees_paid_yen=r.fee_paid,
        )
    return {group: {m: counts[m] for m in COUNTED} for group, counts in groups.items()}


def measured(rows: list[dict[str, object]], *keys: str) -> dict[Hashable, dict[str, object]]:
    """The measures per group of a report's rows, keyed like ``expected``."""
    return {
        (row[keys[0]] if len(keys) == 1 else tuple(row[k] for k in keys)): {
            m: row[m] for m in COUNTED
        }
        for row in rows
    }


@pytest.fixture
async def usage_db(platform: Settings) -> Settings:
    """The platform's database with the traffic projected and Yokohama (only) in the registry."""
    connection = await asyncpg.connect(platform.dsn)
    try:
        async with connection.transaction():
            await connection.execute("SET LOCAL search_path TO usage")
            await UsageProjection().apply(connection, traffic()[0])
        await connection.execute(
            "INSERT INTO registry.municipalities (code, name, uses_bcl, municipality_class, "
            "population, profile, last_event_id, updated_at) "
            "VALUES ($1, '横浜市', false, 'designated_city', 3752000, '{}', $2, now())",
            YOKOHAMA,
            uuid.uuid4(),
        )
    finally:
        await connection.close()
    return platform


@pytest.fixture
async def db(usage_db: Settings) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(usage_db.dsn)
    try:
        yield connection
    finally:
        await connection.close()


def test_the_traffic_is_varied_enough_to_test_with() -> None:
    requests = traffic()[1]
    assert len(requests) > 1000
    assert {r.day for r in requests} == {FIRST_DAY + timedelta(days=n) for n in range(3)}
    assert {r.outcome for r in requests} == {"issued", "rejected", None}
    assert {r.outside for r in requests} == {True, False, None}
    assert {r.notice for r in requests} == {"delivered", "cancelled", None}


async def test_the_total_row_counts_every_request_that_arrived(db: asyncpg.Connection) -> None:
    report = await usage_report(db, UsageFilter(), [])
    orphans = await db.fetchval("SELECT count(*) FROM usage.requests WHERE requested_at IS NULL")

    assert orphans > 0  # decisions and notices whose request is missing: not counted
    assert report.group_by == ()
    [total] = report.records()
    assert {m: total[m] for m in COUNTED} == expected(lambda r: "all")["all"]
    assert total["share_pct"] == 100.0


async def test_operators_of_one_municipality_over_some_days(db: asyncpg.Connection) -> None:
    chosen = UsageFilter(
        municipalities=(YOKOHAMA,), first_day=FIRST_DAY, last_day=FIRST_DAY + timedelta(days=1)
    )
    report = await usage_report(db, chosen, ["operator"])

    assert report.columns[0] == "store_operator"
    rows = report.records()
    assert [r["store_operator"] for r in rows] == sorted(str(r["store_operator"]) for r in rows)
    assert measured(rows, "store_operator") == expected(
        lambda r: r.operator,
        lambda r: r.municipality == YOKOHAMA and r.day < date(2024, 4, 1),
    )
    issued = [int(str(r["issued"])) for r in rows]
    for row, count in zip(rows, issued, strict=True):
        assert row["share_pct"] == pytest.approx(100 * count / sum(issued), abs=0.0051)


async def test_months_split_at_the_japan_date(db: asyncpg.Connection) -> None:
    report = await usage_report(db, UsageFilter(certificate_types=("juminhyo", "inkan")), ["month"])

    rows = report.records()
    assert [r["month"] for r in rows] == [date(2024, 3, 1), date(2024, 4, 1)]
    assert measured(rows, "month") == expected(
        lambda r: r.day.replace(day=1),
        lambda r: r.certificate_type in ("juminhyo", "inkan"),
    )


@pytest.mark.parametrize("outside", [True, False, None])
async def test_hours_inside_and_outside_counter_hours(
    db: asyncpg.Connection, outside: bool | None
) -> None:
    report = await usage_report(db, UsageFilter(outside_counter_hours=outside), ["hour"])

    rows = report.records()
    assert {r["hour"] for r in rows} <= set(range(6, 23))
    assert measured(rows, "hour") == expected(
        lambda r: r.hour, lambda r: outside is None or r.outside is outside
    )


async def test_inside_outside_and_undecided_make_up_the_whole(db: asyncpg.Connection) -> None:
    report = await usage_report(db, UsageFilter(), ["outside_counter_hours", "outcome"])
    undecided = await usage_report(db, UsageFilter(outcome="undecided"), [])

    rows = report.records()
    assert measured(rows, "outside_counter_hours", "outcome") == expected(
        lambda r: (r.outside, r.outcome)
    )
    assert (rows[-1]["outside_counter_hours"], rows[-1]["outcome"]) == (None, None)  # nulls last
    assert rows[-1]["requests"] == undecided.records()[0]["requests"]
    assert expected(lambda r: r.outcome)[None]["requests"] > 0


async def test_shares_add_up_to_100_over_a_full_grouping(db: asyncpg.Connection) -> None:
    report = await usage_report(db, UsageFilter(), ["municipality", "type", "center"])

    shares = [float(str(r["share_pct"])) for r in report.records()]
    assert len(shares) > 20
    # Each share is rounded to 0.01: the sum is off by at most half a hundredth per group.
    assert sum(shares) == pytest.approx(100, abs=0.005 * len(shares))


async def test_municipalities_are_named_from_the_registry(db: asyncpg.Connection) -> None:
    report = await usage_report(db, UsageFilter(), ["municipality"])

    assert report.columns[:2] == ("municipality", "name")
    names = {r["municipality"]: r["name"] for r in report.records()}
    assert names[YOKOHAMA] == "横浜市"
    assert len(names) == len({r.municipality for r in traffic()[1]})
    assert {name for code, name in names.items() if code != YOKOHAMA} == {None}


async def test_rejections_by_reason(db: asyncpg.Connection) -> None:
    report = await usage_report(db, UsageFilter(outcome="rejected"), ["reason"])
    one = str(report.records()[0]["reason"])
    only = await usage_report(db, UsageFilter(reason=one), ["reason"])

    assert measured(report.records(), "reason") == expected(
        lambda r: r.reason, lambda r: r.outcome == "rejected"
    )
    assert [r["reason"] for r in only.records()] == [one]


async def test_a_filter_matching_nothing_gives_a_zero_total(db: asyncpg.Connection) -> None:
    report = await usage_report(db, UsageFilter(first_day=date(2030, 1, 1)), [])

    [total] = report.records()
    assert total["requests"] == total["fees_paid_yen"] == 0
    assert total["share_pct"] is None
    assert (await usage_report(db, UsageFilter(first_day=date(2030, 1, 1)), ["day"])).rows == ()


def test_values_reach_the_sql_only_as_parameters() -> None:
    sql, values = usage_query(
        UsageFilter(municipalities=(YOKOHAMA,), store_operators=("lawson",), reason="under_15"),
        ["operator"],
    )
    for value in (YOKOHAMA, "lawson", "under_15"):
        assert value not in sql
    assert values == [[YOKOHAMA], ["lawson"], "under_15"]


def test_an_unknown_dimension_names_the_known_ones() -> None:
    with pytest.raises(ValueError, match="unknown dimension 'colour'") as raised:
        dimensions(["month", "colour"])
    assert "store_operator, center" in str(raised.value)
    assert "operator (= store_operator)" in str(raised.value)
    assert dimensions(["type", "operator"]) == ("certificate_type", "store_operator")
    with pytest.raises(ValueError, match="given twice"):
        dimensions(["operator", "store_operator"])


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"municipalities": ("141004",)}, "check digit"),
        ({"store_operators": ("sevenleven",)}, "unknown store operator 'sevenleven'"),
        ({"outcome": "maybe"}, "unknown outcome"),
        ({"first_day": date(2024, 4, 2), "last_day": date(2024, 4, 1)}, "is after"),
    ],
)
def test_a_filter_that_cannot_match_is_refused(given: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        UsageFilter(**given)  # type: ignore[arg-type]


# --- the command line ---------------------------------------------------------------------------


def bcl(settings: Settings, *args: str) -> Result:
    # Wide enough that no line wraps: one error is one line.
    result = CliRunner().invoke(
        app, ["usage", *args], env={**settings_env(settings), "COLUMNS": "400"}
    )
    assert "Traceback" not in result.output
    return result


def test_the_table_is_titled_with_the_filter_and_totalled(usage_db: Settings) -> None:
    result = bcl(
        usage_db, "-m", YOKOHAMA, "--month", "2024-03", "--outside-hours", "--by", "operator"
    )

    assert result.exit_code == 0, result.output
    title = "usage: 横浜市 (141003) · 2024-03 · outside counter hours · by store_operator"
    assert title in result.output
    counts = expected(
        lambda r: "all",
        lambda r: r.municipality == YOKOHAMA and r.outside is True and r.day.month == 3,
    )["all"]
    [total] = [line for line in result.output.splitlines() if "total" in line]
    cells = [cell.strip() for cell in total.split("│")[1:-1]]
    assert cells == ["total", *(f"{counts[m]:,}" for m in COUNTED), "100.00"]
    assert counts["fees_paid_yen"] >= 1000  # so the separator shows
    assert "seven_eleven" in result.output


def test_csv_to_stdout(usage_db: Settings) -> None:
    result = bcl(usage_db, "--by", "month,outside_counter_hours", "--format", "csv")

    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert {
        (r["month"], r["outside_counter_hours"]): {m: int(r[m]) for m in COUNTED} for r in rows
    } == expected(
        lambda r: (f"{r.day:%Y-%m}-01", {True: "true", False: "false", None: ""}[r.outside])
    )


def test_json_to_stdout(usage_db: Settings) -> None:
    result = bcl(usage_db, "--by", "day", "--inside-hours", "--format", "json")

    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert list(rows[0]) == ["day", *COUNTED, "share_pct"]
    assert measured(rows, "day") == expected(lambda r: f"{r.day}", lambda r: r.outside is False)


def test_parquet_keeps_the_column_types(usage_db: Settings, tmp_path: Path) -> None:
    out = tmp_path / "usage.parquet"
    result = bcl(
        usage_db,
        "--by",
        "day,municipality,other_municipality",
        "--format",
        "parquet",
        "--out",
        str(out),
    )

    assert result.exit_code == 0, result.output
    table = pq.read_table(out)
    assert table.schema.field("day").type == pa.date32()
    assert table.schema.field("municipality").type == pa.string()
    assert table.schema.field("name").type == pa.string()
    assert table.schema.field("other_municipality").type == pa.bool_()
    assert table.schema.field("requests").type == pa.int64()
    assert table.schema.field("share_pct").type == pa.float64()
    assert measured(table.to_pylist(), "day", "municipality", "other_municipality") == expected(
        lambda r: (r.day, r.municipality, r.store_municipality != r.municipality)
    )
    names = dict(zip(table["municipality"].to_pylist(), table["name"].to_pylist(), strict=True))
    assert names[YOKOHAMA] == "横浜市"


def test_a_chart_is_drawn_from_the_database(usage_db: Settings, tmp_path: Path) -> None:
    out = tmp_path / "hours.png"
    result = bcl(usage_db, "chart", "hours", "--out", str(out), "-m", YOKOHAMA)

    assert result.exit_code == 0, result.output
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--by", "month,colour"], "--by: unknown dimension 'colour'; known: municipality"),
        (["--month", "2024-13"], "--month: month '2024-13' must be YYYY-MM"),
        (["--from", "2024-04-02", "--to", "2024-03-01"], "--from 2024-04-02 is after --to"),
        (["--from", "1 April"], "--from '1 April': write the date as YYYY-MM-DD"),
        (["--month", "2024-03", "--to", "2024-03-05"], "either --month or --from/--to"),
        (["--format", "parquet"], "give it with --out"),
        (["-m", "141004"], "check digit 4, expected 3"),
        (["--operator", "sevenleven"], "unknown store operator 'sevenleven'; known: seven_eleven"),
        (["-m", YOKOHAMA, "chart", "monthly", "--out", "x.png"], "put --municipality after"),
        (["chart", "monthly", "--out", "x.jpg"], "name it *.png"),
    ],
)
def test_bad_input_gets_one_line_and_status_2(
    usage_db: Settings, args: list[str], message: str
) -> None:
    result = bcl(usage_db, *args)

    assert result.exit_code == 2, result.output
    assert message in result.output
    assert result.output.count("\n") == 1


@pytest.mark.parametrize(
    ("usage", "group_by", "source"),
    [
        (UsageFilter(), ["store_operator"], HOURLY),
        (UsageFilter(), ["weekday", "hour", "outside_counter_hours"], HOURLY),
        (UsageFilter(first_day=date(2024, 3, 31), last_day=date(2024, 4, 1)), ["day"], HOURLY),
        (UsageFilter(outcome="undecided"), ["center"], HOURLY),
        (UsageFilter(municipalities=(YOKOHAMA,)), ["month", "type"], MONTHLY),
        (
            UsageFilter(first_day=date(2024, 3, 1), last_day=date(2024, 3, 31)),
            ["municipality", "reason"],
            MONTHLY,
        ),
        (UsageFilter(first_day=date(2024, 3, 31)), ["municipality"], REQUESTS),
        (UsageFilter(), ["store_municipality", "other_municipality"], STORES),
        (UsageFilter(store_operators=("lawson",)), ["store_municipality", "month"], STORES),
        (UsageFilter(), ["store_municipality", "hour"], REQUESTS),
        (UsageFilter(municipalities=(YOKOHAMA,)), ["hour"], REQUESTS),
    ],
)
async def test_the_cubes_answer_what_they_can_and_agree_with_the_rows(
    db: asyncpg.Connection, usage: UsageFilter, group_by: list[str], source: Source
) -> None:
    assert source_for(usage, dimensions(group_by)) is source
    from_rows = await usage_report(db, usage, group_by, source=REQUESTS)
    assert await usage_report(db, usage, group_by) == from_rows
    assert from_rows.rows
