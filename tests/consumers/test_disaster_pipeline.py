"""A whole disaster through the real broker and Postgres: the declaration seeds the victim ledger
from the replica; evacuees of this and another municipality tap in at a shelter; applications are
matched, refused as duplicates or from outside the affected area, accepted, assessed and made
ready, each step notified; the disaster certificates print at a store once the dwelling is
assessed and are charged 10 yen plus the municipal fee; `bcl replay disaster` rebuilds the same
digest."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from uuid import uuid4

import pytest
from pypdf import PdfReader

from consumers.disaster.rules import inside
from pipeline.catchup import refresh
from pipeline.commands.workload import write_rows
from pipeline.database import connect
from pipeline.digest import projection_digest
from pipeline.projection import load_projection
from pipeline.replay import replay
from pipeline.settings import Settings
from producers.center import CenterGateway
from producers.disaster import DisasterDesk, located
from producers.jpki import issue_cards, residents_to_issue
from producers.registry import update
from producers.workload import resident_register
from schemas.calendar import JST, is_year_end_closure
from schemas.events.certificates import CertificateKind
from schemas.events.disaster import (
    ApplicationAccepted,
    ApplicationKind,
    ApplicationReady,
    ApplicationSubmitted,
    Area,
    DamageAssessed,
    DamageAssessedInArea,
    DamageCategory,
    DisasterDeclared,
    DisasterKind,
    DwellingLocated,
    Point,
    ShelterOpened,
    ShelterTapped,
    SupportNeedsRegistered,
)
from schemas.events.issuance import CertificateType, StoreOperator
from tests.consumers.test_fees_pipeline import bcl, bcl_json
from tests.consumers.test_issuer_pipeline import (
    ICHIRO,
    YOKO,
    chiyoda_with_cards,
    project,
    request,
)
from tests.helpers import jpki_ca
from tests.producers.push_helpers import CHIYODA, YOKOHAMA, register, signed_push

pytestmark = pytest.mark.integration

DISASTER = "131016-2026-flood-1"
CENTRE = Point(lat=35.694, lon=139.754)  # 千代田区
STAFF = "千代田区 防災課 佐藤"
RISAI, HISAI = CertificateType.RISAI, CertificateType.HISAI


async def yokohama_with_cards(settings: Settings, tmp_path: Path) -> dict[str, str]:
    """Yokohama with ten residents, each with a card: the wide-area evacuees."""
    key = await register(settings, YOKOHAMA)
    path = tmp_path / "yokohama.csv"
    write_rows(resident_register(YOKOHAMA, 10), path, 10)
    assert (
        await signed_push(settings, key, path, 1, municipality=YOKOHAMA, full=True)
    ).outcome == ("accepted")
    await project(settings, "replica")
    holders = await residents_to_issue(settings, YOKOHAMA)
    issued = await issue_cards(
        settings, jpki_ca(settings), holders, issued_at=datetime.now(UTC) - timedelta(days=1)
    )
    await project(settings, "certificates")
    return {
        c.resident_code: c.serial for c in issued if c.kind is CertificateKind.USER_AUTHENTICATION
    }


def square(around: Point, half: float = 0.0005) -> Area:
    return Area(
        vertices=tuple(
            Point(lat=around.lat + dy, lon=around.lon + dx)
            for dx, dy in ((-half, -half), (half, -half), (half, half), (-half, half))
        )
    )


async def test_a_whole_disaster_walks_from_declaration_to_a_ready_certificate(
    platform: Settings, tmp_path: Path
) -> None:
    # Cards issued the day before the run, as Yokohama's are: the shelter taps them now and the
    # kiosks read them after the declaration (made now), so a card issued at a fixed date would
    # expire under a later run.
    chiyoda = await chiyoda_with_cards(platform, issued_at=datetime.now(UTC) - timedelta(days=1))
    await update(
        platform,
        CHIYODA,
        {
            "offered_types": ["juminhyo", "inkan", "tax_income", "risai", "hisai"],
            "disaster_system_since": "2024-10-01",
            "fees": [{"certificate_type": "hisai", "fee_yen": 300, "effective_from": "2024-10-01"}],
        },
    )
    await project(platform, "registry")
    yokohama = await yokohama_with_cards(platform, tmp_path)
    disaster = load_projection("disaster", platform)
    async with connect(platform) as connection:
        residents = {
            r["resident_code"]: r["address"]
            for r in await connection.fetch(
                "SELECT resident_code, address FROM replica.residents "
                "WHERE municipality = $1 AND active",
                CHIYODA,
            )
        }
    home = residents[ICHIRO]
    at_home = located(home, CENTRE)
    area = square(at_home)
    outsider = next(
        code
        for code, address in residents.items()
        if code in chiyoda and address != home and not inside(located(address, CENTRE), area)
    )

    async with DisasterDesk(platform) as desk:
        # Peacetime: the GIS locates every dwelling; Ichiro is on the support roster.
        for address in set(residents.values()):
            await desk.send(
                CHIYODA,
                DwellingLocated(
                    municipality=CHIYODA, address=address, location=located(address, CENTRE)
                ),
            )
        await desk.send(
            CHIYODA,
            SupportNeedsRegistered(
                municipality=CHIYODA, resident_code=ICHIRO, needs=("wheelchair",),
                plan="長男が車で避難所へ", supporter="神田 蓮",
            ),
        )  # fmt: skip
        await desk.send(
            CHIYODA,
            DisasterDeclared(
                disaster_id=DISASTER, municipality=CHIYODA, name="令和8年台風第10号",
                kind=DisasterKind.FLOOD, occurred_on=date(2026, 11, 20), area=area,
            ),
        )  # fmt: skip
    await refresh(platform, disaster)
    async with connect(platform) as connection:
        seeded = await connection.fetchrow(
            "SELECT victims, households, seeded_as_of FROM disaster.disasters"
        )
        ledger = await connection.fetch(
            "SELECT resident_code, auth_serial, personal FROM disaster.victims"
        )
    assert seeded["victims"] == len(residents) == len(ledger)
    assert seeded["seeded_as_of"] is not None
    by_code = {r["resident_code"]: r for r in ledger}
    assert by_code[ICHIRO]["auth_serial"] == chiyoda[ICHIRO]
    assert "my_number" not in str(by_code[ICHIRO]["personal"])  # sealed, never in clear

    wide_area_code, wide_area_serial = next(iter(yokohama.items()))
    ichiro_application, duplicate, from_outside = uuid4(), uuid4(), uuid4()
    async with DisasterDesk(platform) as desk:
        await desk.send(
            CHIYODA,
            ShelterOpened(
                disaster_id=DISASTER, shelter_id="S1", name="千代田区立神田小学校",
                location=CENTRE, capacity=120,
            ),
        )  # fmt: skip
        for serial, direction in (
            (chiyoda[ICHIRO], "in"),
            (wide_area_serial, "in"),
            ("FFFF0000", "in"),
            (chiyoda[ICHIRO], "out"),
        ):
            await desk.send(
                CHIYODA,
                ShelterTapped.model_validate(
                    {"disaster_id": DISASTER, "shelter_id": "S1", "auth_serial": serial,
                     "direction": direction}
                ),
            )  # fmt: skip
        for application_id, serial, address in (
            (ichiro_application, chiyoda[ICHIRO], _full_width(home)),
            (duplicate, chiyoda[ICHIRO], home),
            (from_outside, chiyoda[outsider], residents[outsider]),
        ):
            await desk.send(
                CHIYODA,
                ApplicationSubmitted(
                    application_id=application_id, disaster_id=DISASTER,
                    kind=ApplicationKind.RISAI_CERTIFICATE, auth_serial=serial,
                    dwelling_address=address, attachments=("ab" * 32,),
                ),
            )  # fmt: skip
    await refresh(platform, disaster)

    async with DisasterDesk(platform) as desk:
        await desk.send(
            CHIYODA,
            ApplicationAccepted(
                application_id=ichiro_application, disaster_id=DISASTER, staff=STAFF
            ),
        )
    await refresh(platform, disaster)
    # At a store before the assessment, and for a resident outside the affected area.
    kiosk_at = next_open_morning()
    too_early = request(chiyoda[ICHIRO], RISAI)
    not_a_victim = request(chiyoda[outsider], RISAI)
    async with CenterGateway(platform) as center:
        for early in (too_early, not_a_victim):
            await center.submit(early, at=kiosk_at, wait=False)
        await project(platform, "issuer")
        refusals = [await center.outcome(r.request_id) for r in (too_early, not_a_victim)]
    assert [(r.status, r.reason) for r in refusals if r] == [
        ("rejected", "damage_not_assessed"),
        ("rejected", "not_a_victim"),
    ]

    async with DisasterDesk(platform) as desk:
        await desk.send(
            CHIYODA,
            DamageAssessedInArea(
                disaster_id=DISASTER, area=area, category=DamageCategory.TOTAL, staff=STAFF
            ),
        )
        await desk.send(
            CHIYODA,
            DamageAssessed(
                disaster_id=DISASTER, dwelling_address=home, category=DamageCategory.HALF,
                staff=STAFF,
            ),
        )  # fmt: skip
        await desk.send(
            CHIYODA, ApplicationReady(application_id=ichiro_application, disaster_id=DISASTER)
        )
    await refresh(platform, disaster)

    async with connect(platform) as connection:
        taps = await connection.fetch(
            "SELECT auth_serial, direction, outcome, reason, wide_area FROM disaster.taps "
            "ORDER BY tapped_at, event_id"
        )
        present = await connection.fetch(
            "SELECT municipality, resident_code, wide_area FROM disaster.evacuees WHERE present"
        )
        applications = {
            r["application_id"]: (r["status"], r["reason"])
            for r in await connection.fetch("SELECT * FROM disaster.applications")
        }
        notified = await connection.fetch(
            "SELECT application_id, recipient, subject FROM disaster.notifications "
            "ORDER BY sent_at, event_id"
        )
        damage = await connection.fetch(
            "SELECT category, individual FROM disaster.assessments ORDER BY event_id"
        )
        live = await projection_digest(connection, disaster)

    assert [(t["direction"], t["outcome"], t["reason"], t["wide_area"]) for t in taps] == [
        ("in", "matched", None, False),
        ("in", "matched", None, True),  # matched in Yokohama's own register
        ("in", "refused", "certificate_unknown", None),
        ("out", "matched", None, False),
    ]
    assert [tuple(r) for r in present] == [(YOKOHAMA, wide_area_code, True)]
    assert applications == {
        ichiro_application: ("ready", None),
        duplicate: ("refused", "duplicate"),
        from_outside: ("refused", "not_in_ledger"),
    }
    assert [(n["application_id"], n["recipient"]) for n in notified] == [
        (ichiro_application, "staff"),  # matched: staff review it
        (duplicate, "applicant"),
        (from_outside, "applicant"),
        (ichiro_application, "applicant"),  # accepted
        (ichiro_application, "applicant"),  # ready: print it at a store
    ]
    # The dwelling's own assessment outranks the area's, whatever came first.
    assert {(d["category"], d["individual"]) for d in damage} >= {("total", False), ("half", True)}

    report = await replay(platform, disaster)
    assert report.rebuild.events > 0
    async with connect(platform) as connection:
        assert await projection_digest(connection, disaster) == live

    # What staff read, through `bcl disaster`.
    [status] = bcl_json(platform, "disaster", "status", DISASTER)
    assert (status["victims"], status["sheltered"], status["applications"]) == (
        len(residents), 1, 3,
    )  # fmt: skip
    [shelter] = bcl_json(platform, "disaster", "shelters", DISASTER)
    assert (shelter["evacuees"], shelter["wide_area"], shelter["vacancy"]) == (1, 1, 119)
    refused = bcl_json(platform, "disaster", "applications", DISASTER, "--status", "refused")
    assert {r["reason"] for r in refused} == {"duplicate", "not_in_ledger"}
    exported = tmp_path / "ledger.csv"
    done = bcl(platform, "disaster", "ledger", DISASTER, "--format", "csv", "--out", str(exported))
    assert done.returncode == 0, done.stderr
    with exported.open(encoding="utf-8") as handle:
        rows = {r["resident_code"]: r for r in csv.DictReader(handle)}
    # Only the affected area: Ichiro's household, not the resident who lives outside it.
    assert set(rows) == {code for code, address in residents.items() if address == home}
    assert outsider not in rows
    assert (rows[ICHIRO]["damage"], rows[ICHIRO]["support_needs"]) == ("半壊", "wheelchair")
    assert "my_number" not in exported.read_text(encoding="utf-8")

    # Ready: the 罹災証明書 prints at a store for 10 yen; his wife's 被災証明書, two copies, for
    # Chiyoda's 300 yen plus the 10-yen store fee each. Settled with no BCL issuance fee.
    risai = request(chiyoda[ICHIRO], RISAI)
    hisai = request(chiyoda[YOKO], HISAI, copies=2, store_operator=StoreOperator.LAWSON)
    async with CenterGateway(platform) as center:
        for ready in (risai, hisai):
            await center.submit(ready, at=kiosk_at, wait=False)
        await project(platform, "issuer")
        printed = kiosk_at + timedelta(minutes=1)
        await center.deliver(risai.request_id, 10, printed)
        await center.deliver(hisai.request_id, 620, printed)
    async with connect(platform) as connection:
        pdf = await connection.fetchval(
            "SELECT f.pdf FROM issuer.documents d JOIN issuer.document_files f "
            "USING (document_id) WHERE d.request_id = $1",
            risai.request_id,
        )
    front = PdfReader(io.BytesIO(pdf)).pages[0].extract_text()
    for text in ("罹災証明書", "令和8年台風第10号", "洪水・浸水", "神田 一郎", home, "半壊"):
        assert text in front
    await project(platform, "fees")
    month = f"{kiosk_at.astimezone(JST):%Y-%m}"
    settled = {
        r["certificate_type"]: (
            r["delivered"], r["certificates"], r["fees_collected_yen"], r["commission_yen"],
            r["bcl_fee_yen"],
        )
        for r in bcl_json(platform, "fees", "statement", CHIYODA, "--month", month)
        if r["certificate_type"] in ("risai", "hisai")
    }  # fmt: skip
    assert settled == {"risai": (1, 1, 10, 117, 0), "hisai": (1, 2, 620, 2 * 117, 0)}


def next_open_morning() -> datetime:
    """10:00 in Japan on the next weekday outside the year-end closure: after the declaration,
    inside every service window."""
    day = datetime.now(JST).date() + timedelta(days=1)
    while day.weekday() >= 5 or is_year_end_closure(day):
        day += timedelta(days=1)
    return datetime.combine(day, time(10, 0), tzinfo=JST)


async def test_reading_the_desk_never_decides_and_says_the_worker_is_behind(
    platform: Settings,
) -> None:
    """Whoever applies a processor's events decides them: a read from the command line leaves
    them to the live worker and says how many wait, instead of publishing decisions itself."""
    await chiyoda_with_cards(platform)
    disaster = load_projection("disaster", platform)
    await refresh(platform, disaster)
    async with DisasterDesk(platform) as desk:
        await desk.send(
            CHIYODA,
            DisasterDeclared(
                disaster_id=DISASTER, municipality=CHIYODA, name="令和8年台風第10号",
                kind=DisasterKind.FLOOD, occurred_on=date(2026, 11, 20), area=square(CENTRE),
            ),
        )  # fmt: skip

    read = bcl(platform, "disaster", "status", DISASTER)

    assert read.returncode == 0, read.stderr
    assert "the disaster worker has 1 events still to apply" in " ".join(read.stderr.split())
    async with connect(platform) as connection:
        assert await connection.fetchval("SELECT count(*) FROM disaster.disasters") == 0
    await refresh(platform, disaster)  # the worker's part: it seeds the ledger, once
    async with connect(platform) as connection:
        assert await connection.fetchval("SELECT count(*) FROM disaster.disasters") == 1
    await refresh(platform, disaster)  # and records its decision, which came back on the log
    assert "warning" not in bcl(platform, "disaster", "status", DISASTER).stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("declare", CHIYODA, "x-1", "--name", "n", "--kind", "flood", "--on", "2026-11-20",
          "--area", "35.7,139.7;35.8"), "--area: give 'lat,lon;lat,lon;lat,lon'"),
        (("declare", CHIYODA, "x-1", "--name", "n", "--kind", "meteor", "--on", "2026-11-20"),
         "kind: Input should be"),
        (("accept", "no-such-disaster", str(uuid4()), "--staff", "s"),
         "no disaster no-such-disaster is declared"),
        (("assess", "no-such-disaster", "total", "--staff", "s"), "give either --dwelling"),
    ],
)  # fmt: skip
async def test_bad_staff_input_gets_one_clear_line(
    platform: Settings, args: tuple[str, ...], message: str
) -> None:
    done = bcl(platform, "disaster", *args)
    assert done.returncode == 2, done.stdout
    assert message in done.stderr
    assert "Traceback" not in done.stderr


def _full_width(address: str) -> str:
    """The address as a resident might type it: full-width digits."""
    return address.translate(str.maketrans("0123456789", "０１２３４５６７８９"))
