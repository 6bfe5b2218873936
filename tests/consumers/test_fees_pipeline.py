"""Fees through the real pipeline: certificates requested at kiosks of both centers, decided by
the live issuer, delivered or cancelled, settled by the live fees agent; the statements `bcl
fees` prints, and a `bcl replay fees` that ends in the same digest."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pytest

from pipeline.database import connect
from pipeline.digest import projection_digest
from pipeline.kafka import producer
from pipeline.projection import load_projection
from pipeline.proofs import prove
from pipeline.publish import Outgoing, publish_many
from pipeline.settings import Settings
from pipeline.topics import ISSUANCE_REQUESTS
from producers.center import CenterGateway
from producers.registry import update
from schemas.calendar import JST, fiscal_year, is_year_end_closure
from schemas.envelope import Envelope
from schemas.events.issuance import CertificateType, IssuanceDelivered, StoreOperator
from tests.consumers.test_issuer_pipeline import (
    ICHIRO,
    YOKO,
    at_center,
    chiyoda_with_cards,
    project,
    request,
)
from tests.consumers.test_usage_pipeline import wait_caught_up
from tests.helpers import settings_env, start_worker
from tests.producers.push_helpers import CHIYODA

pytestmark = pytest.mark.integration

JUMINHYO, INKAN = CertificateType.JUMINHYO, CertificateType.INKAN


def kiosk_sunday() -> date:
    """The next Sunday after today whose Monday falls in the same month, both outside the year-end
    closure. Chiyoda's profile is recorded as the test runs, and a fiscal year's statement bills
    the registry as it stood at the year's end: the kiosk days' year must not have ended yet."""
    day = datetime.now(JST).date() + timedelta(days=1)
    while not (
        day.weekday() == 6
        and (monday := day + timedelta(days=1)).month == day.month
        and not is_year_end_closure(day)
        and not is_year_end_closure(monday)
    ):
        day += timedelta(days=1)
    return day


def bcl(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pipeline.cli", *args],
        env=settings_env(settings),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def bcl_json(settings: Settings, *args: str) -> Any:
    done = bcl(settings, *args, "--format", "json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


async def test_kiosk_certificates_are_settled_once_and_replay_to_the_same_yen(
    platform: Settings, tmp_path: Path
) -> None:
    the_sunday = kiosk_sunday()
    the_monday = the_sunday + timedelta(days=1)
    year, month = fiscal_year(the_sunday), f"{the_sunday:%Y-%m}"

    def japan(day: date, hour: int) -> datetime:
        return datetime.combine(day, time(hour), JST)

    # Cards valid on the kiosk days, whichever day the test runs.
    serials = await chiyoda_with_cards(platform, issued_at=datetime.now(UTC) - timedelta(days=1))
    await update(
        platform,
        CHIYODA,
        {
            "municipality_class": "special_ward",
            "population": 68_000,
            "disaster_system_since": date(year, 6, 1).isoformat(),
            # 住民票 drops from 300 to 200 yen on the Monday, in the middle of the month.
            "fees": [
                {"certificate_type": "juminhyo", "fee_yen": 300, "effective_from": "2024-04-01"},
                {"certificate_type": "juminhyo", "fee_yen": 200, "effective_from": str(the_monday)},
                {"certificate_type": "inkan", "fee_yen": 300, "effective_from": "2024-04-01"},
            ],
        },
    )
    await project(platform, "registry")
    ichiro, yoko = serials[ICHIRO], serials[YOKO]
    sunday = request(ichiro, JUMINHYO)
    two_copies = request(ichiro, JUMINHYO, copies=2, store_operator=StoreOperator.LAWSON)
    town_hall_kiosk = request(ichiro, INKAN, store_operator=StoreOperator.MUNICIPAL_KIOSK)
    left = request(ichiro, JUMINHYO, store_operator=StoreOperator.FAMILYMART)
    no_seal = request(yoko, INKAN)

    worker = start_worker(platform, tmp_path / "worker.log", agents="issuer,fees")
    try:
        async with (
            CenterGateway(at_center(platform, "east")) as east,
            CenterGateway(at_center(platform, "west")) as west,
        ):
            first = await east.submit(sunday, at=japan(the_sunday, 10))
            second = await west.submit(two_copies, at=japan(the_monday, 10))
            # The resident retries at a kiosk of the other center: one decision, one charge.
            assert await east.submit(two_copies, at=japan(the_monday, 10) + timedelta(seconds=30))
            third = await east.submit(town_hall_kiosk, at=japan(the_monday, 11))
            fourth = await east.submit(left, at=japan(the_monday, 12))
            rejected = await east.submit(no_seal, at=japan(the_monday, 12))
            assert first
            assert second
            assert third
            assert fourth
            assert rejected
            assert (first.fee_total_yen, second.fee_total_yen) == (300, 400)
            assert rejected.reason == "seal_not_registered"
            await east.deliver(sunday.request_id, 300, japan(the_sunday, 10) + timedelta(minutes=1))
            await west.deliver(
                two_copies.request_id, 400, japan(the_monday, 10) + timedelta(minutes=1)
            )
            await east.deliver(town_hall_kiosk.request_id, 300, japan(the_monday, 11))
            await east.cancel(left.request_id, "resident left the kiosk", japan(the_monday, 12))
        async with producer(platform) as client:
            # The kiosk's notice sent again (a new event for the same request): never charged twice.
            printed = japan(the_monday, 10) + timedelta(minutes=2)
            again = IssuanceDelivered(
                request_id=two_copies.request_id, fee_paid_yen=400, printed_at=printed
            )
            await publish_many(
                platform,
                client,
                [
                    Outgoing(
                        ISSUANCE_REQUESTS.name,
                        str(two_copies.request_id),
                        prove(
                            platform,
                            "center:west",
                            Envelope.new(
                                "issuance.delivered",
                                again,
                                origin="west",
                                source="center:west",
                                occurred_at=printed,
                                municipality=CHIYODA,
                            ),
                        ),
                    )
                ],
            )
        await wait_caught_up(platform, "fees", timeout=120)
    finally:
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait()

    statement = bcl_json(platform, "fees", "statement", CHIYODA, "--month", month)
    settled = {
        (r["store_operator"], r["certificate_type"]): (
            r["requests"], r["rejected"], r["cancelled"], r["delivered"], r["certificates"],
            r["fees_collected_yen"], r["commission_yen"], r["net_income_yen"], r["bcl_fee_yen"],
        )
        for r in statement
    }  # fmt: skip
    assert settled == {
        ("familymart", "juminhyo"): (1, 0, 1, 0, 0, 0, 0, 0, 0),
        ("lawson", "juminhyo"): (1, 0, 0, 1, 2, 400, 2 * 117, 400 - 234, 2 * 180),
        ("municipal_kiosk", "inkan"): (1, 0, 0, 1, 1, 300, 0, 300, 180),  # no store, no commission
        ("seven_eleven", "inkan"): (1, 1, 0, 0, 0, 0, 0, 0, 0),
        ("seven_eleven", "juminhyo"): (1, 0, 0, 1, 1, 300, 117, 183, 180),
    }

    [charges] = bcl_json(platform, "fees", "statement", CHIYODA, "--fiscal-year", str(year))
    disaster = (185_000 + 10 * 68_000) // 12 * 10  # introduced in June: June to March
    assert charges == {
        "municipality": CHIYODA,
        "name": "千代田区",
        "class": "special_ward",
        "population": 68_000,
        "on_bcl": True,
        "joined_on": "2024-01-01",
        "contribution_months": 12,
        "contribution_yen": 2_728_000,
        "certificates": 4,
        "bcl_fee_yen": 720,
        "disaster_system_fee_yen": disaster,
        "owed_yen": 2_728_000 + 720 + disaster,
        "fees_collected_yen": 1_000,
        "commission_yen": 351,
        "net_yen": 1_000 - 351 - (2_728_000 + 720 + disaster),
    }
    assert bcl_json(platform, "fees", "report", "--fiscal-year", str(year)) == [charges]
    [monthly] = bcl_json(platform, "fees", "report", "--month", month)
    assert (monthly["municipality"], monthly["certificates"], monthly["net_income_yen"]) == (
        CHIYODA, 4, 1_000 - 351,
    )  # fmt: skip
    table = bcl(platform, "fees", "statement", CHIYODA, "--fiscal-year", str(year))
    assert table.returncode == 0, table.stderr
    assert "owed to J-LIS" in table.stdout
    assert "3,449,550" in table.stdout

    fees = load_projection("fees", platform)
    async with connect(platform) as connection:
        live = await projection_digest(connection, fees)
    replayed = bcl(platform, "replay", "fees")
    assert replayed.returncode == 0, replayed.stderr
    async with connect(platform) as connection:
        assert await projection_digest(connection, fees) == live


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("statement", CHIYODA), "give either --month YYYY-MM or --fiscal-year YYYY"),
        (("statement", CHIYODA, "--month", "2026-13"), "--month: month '2026-13' must be"),
        (("statement", "999999", "--fiscal-year", "2026"), "999999 is not in the registry"),
        (("report", "--month", "2026-11", "--fiscal-year", "2026"), "give either"),
        (("report", "--fiscal-year", "1999"), "give a year such as 2024"),
        (("report", "--month", "2026-11", "--out", "x.csv"), "--out is for --format csv"),
    ],
)
async def test_bad_requests_get_one_clear_line(
    platform: Settings, args: tuple[str, ...], message: str
) -> None:
    done = bcl(platform, "fees", *args)
    assert done.returncode == 2
    assert message in done.stderr
    assert "Traceback" not in done.stderr


async def test_statement_of_a_month_without_traffic_says_so(platform: Settings) -> None:
    done = bcl(
        platform, "fees", "statement", CHIYODA, "--month", date(2020, 1, 1).strftime("%Y-%m")
    )
    assert done.returncode == 0, done.stderr
    assert "nothing recorded for this period" in done.stdout
