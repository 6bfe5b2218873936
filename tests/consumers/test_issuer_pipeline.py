"""The issuer through the real broker and Postgres: kiosk requests at both centers become one
recorded decision each, with a sealed certificate anyone can verify, and the kiosks' notices."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import UUID

import pytest
from pypdf import PdfReader

from consumers.issuer.verification import Verdict, verify_document
from pipeline.catchup import LogGapReader, refresh, runners
from pipeline.database import connect
from pipeline.digest import projection_digest
from pipeline.kafka import high_watermarks, partitions_of, producer, reader
from pipeline.projection import load_projection
from pipeline.publish import Outgoing, proven_by_their_edges, publish_many
from pipeline.replay import replay
from pipeline.settings import Settings
from pipeline.topics import ISSUANCE_OUTCOMES, ISSUANCE_REQUESTS
from producers.center import CenterError, CenterGateway, Outcome
from producers.jpki import issue_cards, residents_to_issue
from producers.registry import create_seal_key, find_seal_key, update
from schemas.envelope import Envelope
from schemas.events.certificates import CertificateIssued, CertificateKind
from schemas.events.issuance import (
    CertificateType,
    IssuanceRejected,
    IssuanceRequested,
    RejectionReason,
    StoreOperator,
)
from schemas.ids import new_event_id
from tests.helpers import jpki_ca, settings_env, start_worker
from tests.producers.push_helpers import CHIYODA, SAMPLE_CSV, register, signed_push

pytestmark = pytest.mark.integration

ICHIRO = "13101600011"  # 神田 一郎: adult, seal S2024-0101, tax facts of FY2023
YOKO = "13101600012"  # 神田 陽子: his wife, no seal
SAKURA = "13101600014"  # 神田 さくら: born 2024
MAYOR = "千代田区長 樋口 高顕"
# A Wednesday morning in Japan, inside every window.
MORNING = datetime(2026, 11, 18, 10, 0, tzinfo=UTC) - timedelta(hours=9)


async def project(settings: Settings, *names: str) -> None:
    for name in names:
        await refresh(settings, load_projection(name, settings))


async def chiyoda_with_cards(
    settings: Settings, *, issued_at: datetime = MORNING - timedelta(days=30)
) -> dict[str, str]:
    """Chiyoda registered with its sample register, a seal key, and a card for every active
    resident issued at ``issued_at`` (valid to the holder's 5th birthday after it): before
    ``MORNING`` by default; returns each resident's user-authentication serial."""
    key = await register(settings)
    await update(
        settings,
        CHIYODA,
        {"offered_types": ["juminhyo", "inkan", "tax_income", "tax_assessment"], "mayor": MAYOR},
    )
    await signed_push(settings, key, SAMPLE_CSV, 1)
    await project(settings, "replica")
    await create_seal_key(settings, CHIYODA)
    holders = await residents_to_issue(settings, CHIYODA)
    issued = await issue_cards(settings, jpki_ca(settings), holders, issued_at=issued_at)
    await project(settings, "registry", "certificates")
    return {c.resident_code: c.serial for c in issued if _authentication(c)}


def _authentication(certificate: CertificateIssued) -> bool:
    return certificate.kind is CertificateKind.USER_AUTHENTICATION


def request(
    serial: str, kind: CertificateType = CertificateType.JUMINHYO, **extra: object
) -> IssuanceRequested:
    fields: dict[str, object] = {
        "request_id": new_event_id(),
        "store_operator": StoreOperator.SEVEN_ELEVEN,
        "store_id": "711-0001",
        "store_municipality": "141003",
        "resident_municipality": CHIYODA,
        "auth_serial": serial,
        "certificate_type": kind,
        "copies": 1,
        **extra,
    }
    return IssuanceRequested.model_validate(fields)


def at_center(settings: Settings, center: str) -> Settings:
    return settings.model_copy(update={"center": center})


async def outcome_events(settings: Settings) -> int:
    async with reader(settings) as client:
        partitions = await partitions_of(client, [settings.topic(ISSUANCE_OUTCOMES.name)])
        return sum((await high_watermarks(client, partitions)).values())


async def test_requests_at_both_centers_are_served_once_each_with_a_verifiable_certificate(
    platform: Settings, tmp_path: Path
) -> None:
    serials = await chiyoda_with_cards(platform)
    household = request(serials[ICHIRO], print_options={"scope": "household"})
    seal = request(serials[ICHIRO], CertificateType.INKAN, copies=2)
    async with CenterGateway(at_center(platform, "east")) as east:
        await east.submit(household, at=MORNING, wait=False)
    async with CenterGateway(at_center(platform, "west")) as west:
        await west.submit(seal, at=MORNING, wait=False)
        # The resident retries the first request at a kiosk of the other chain.
        await west.submit(household, at=MORNING + timedelta(seconds=20), wait=False)
    await project(platform, "issuer")
    await project(platform, "issuer")  # the outcomes come back and change nothing

    assert await outcome_events(platform) == 2
    async with connect(platform) as connection:
        decided = await connection.fetch("SELECT request_id, outcome FROM issuer.outcomes")
        duplicates = await connection.fetch(
            "SELECT request_id, origin FROM issuer.duplicate_requests"
        )
        origins = dict(await connection.fetch("SELECT request_id, origin FROM issuer.requests"))
        fee = await connection.fetchrow(
            "SELECT fee_per_copy_yen, copies, fee_total_yen FROM issuer.outcomes "
            "WHERE request_id = $1",
            seal.request_id,
        )
        pdf_row = await connection.fetchrow(
            "SELECT f.pdf, d.digest, d.pages FROM issuer.documents d "
            "JOIN issuer.document_files f USING (document_id) WHERE d.request_id = $1",
            household.request_id,
        )
    assert {(r["request_id"], r["outcome"]) for r in decided} == {
        (household.request_id, "issued"),
        (seal.request_id, "issued"),
    }
    assert [(r["request_id"], r["origin"]) for r in duplicates] == [(household.request_id, "west")]
    assert origins == {household.request_id: "east", seal.request_id: "west"}
    assert tuple(fee) == (300, 2, 600)

    pdf = bytes(pdf_row["pdf"])
    assert pdf_row["pages"] == 1  # the household's four members fit on one page
    text = "".join(page.extract_text() for page in PdfReader(_file(tmp_path, pdf)).pages)
    for expected in (
        "住民票の写し",
        "神田 一郎",
        "神田 陽子",
        "神田 蓮",
        "神田 さくら",
        "世帯主",
        MAYOR,
    ):
        assert expected in text
    key = await find_seal_key(platform, CHIYODA, _key_id(platform))
    verdict = verify_document(pdf, lambda m, k: key if k == key.key_id else None, at=MORNING)  # type: ignore[union-attr]
    assert verdict.verdict is Verdict.VALID
    assert verdict.digest == pdf_row["digest"]

    # Usage counts each request once, at the center it first entered, with the issuer's stamp:
    # Wednesday 10:00 in Japan is inside Chiyoda's counter hours.
    await project(platform, "usage")
    async with connect(platform) as connection:
        usage = await connection.fetch(
            "SELECT request_id, center, outcome, outside_counter_hours, fee_quoted_yen, hour "
            "FROM usage.requests ORDER BY center"
        )
    assert [tuple(r) for r in usage] == [
        (household.request_id, "east", "issued", False, 300, 10),
        (seal.request_id, "west", "issued", False, 600, 10),
    ]


async def test_rejections_carry_their_reason(platform: Settings) -> None:
    serials = await chiyoda_with_cards(platform)
    cases = {
        "under_15": request(serials[SAKURA]),
        "seal_not_registered": request(serials[YOKO], CertificateType.INKAN),
        "tax_facts_missing": request(serials[ICHIRO], CertificateType.TAX_INCOME, fiscal_year=2024),
        "certificate_unknown": request("7FFFFFFFFFFFFFFF"),
        "type_not_offered": request(serials[ICHIRO], CertificateType.KOSEKI),
    }
    closed = request(serials[ICHIRO])
    issued = request(serials[ICHIRO], CertificateType.TAX_INCOME, fiscal_year=2023)
    async with CenterGateway(platform) as center:
        for case in cases.values():
            await center.submit(case, at=MORNING, wait=False)
        await center.submit(closed, at=datetime(2026, 12, 29, 1, 0, tzinfo=UTC), wait=False)
        await center.submit(issued, at=MORNING, wait=False)
        await project(platform, "issuer")
        reasons = {code: await center.outcome(case.request_id) for code, case in cases.items()}
        at_year_end = await center.outcome(closed.request_id)
        tax = await center.outcome(issued.request_id)
    for code, outcome in reasons.items():
        assert outcome is not None
        assert (outcome.status, outcome.reason) == ("rejected", code)
        assert outcome.message
    assert at_year_end is not None
    assert at_year_end.reason == "closed_day"
    assert tax is not None
    assert tax.status == "issued"


async def test_an_outcome_decided_elsewhere_first_on_the_log_is_the_decision_live_too(
    platform: Settings,
) -> None:
    """Another decider's outcome (a recorded day, a copy of the other center's decisions) reaches
    the log before this issuer's own decision of the same request comes back: the first on the
    log wins, so the live projection drops its decision and document and ends as a replay does."""
    serials = await chiyoda_with_cards(platform)
    asked = request(serials[ICHIRO])
    async with CenterGateway(platform) as center:
        await center.submit(asked, at=MORNING, wait=False)
    elsewhere = Envelope.new(
        "issuance.rejected",
        IssuanceRejected(
            request_id=asked.request_id,
            municipality=CHIYODA,
            certificate_type=asked.certificate_type,
            reason=RejectionReason.REQUEST_EXPIRED,
            message="decided by another issuer",
        ),
        origin=platform.center,
        source="issuer",
        occurred_at=MORNING + timedelta(seconds=1),
        municipality=CHIYODA,
    )
    async with producer(platform) as client:
        await publish_many(
            platform,
            client,
            proven_by_their_edges(
                platform, [Outgoing(ISSUANCE_OUTCOMES.name, str(asked.request_id), elsewhere)]
            ),
        )
    # The issuer applies the request alone, decides it (issued) and publishes its decision,
    # which lands behind the other outcome.
    async with reader(platform) as client:
        partitions = await partitions_of(client, [platform.topic(ISSUANCE_REQUESTS.name)])
        ends = await high_watermarks(client, partitions)
    issuer = load_projection("issuer", platform)
    async with runners(platform) as runner:
        for partition, end in ends.items():
            if not end:
                continue
            records = await LogGapReader(platform).read_range(partition, 0, end)
            await runner(issuer).apply_records(records)
    async with connect(platform) as connection:
        assert await connection.fetchval("SELECT outcome FROM issuer.outcomes") == "issued"
    await project(platform, "issuer")

    async with connect(platform) as connection:
        decided = await connection.fetchrow("SELECT event_id, outcome, reason FROM issuer.outcomes")
        documents = await connection.fetchval("SELECT count(*) FROM issuer.documents")
        files = await connection.fetchval("SELECT count(*) FROM issuer.document_files")
        in_flight = await connection.fetchval("SELECT count(*) FROM issuer.decisions_in_flight")
        live = await projection_digest(connection, issuer)
    assert tuple(decided) == (elsewhere.event_id, "rejected", "request_expired")
    assert (documents, files, in_flight) == (0, 0, 0)
    assert await outcome_events(platform) == 2
    await replay(platform, issuer)
    async with connect(platform) as connection:
        assert await projection_digest(connection, issuer) == live


async def test_delivered_and_cancelled_bookkeeping(platform: Settings) -> None:
    serials = await chiyoda_with_cards(platform)
    delivered, cancelled = request(serials[ICHIRO]), request(serials[ICHIRO], copies=3)
    rejected = request(serials[SAKURA])
    async with CenterGateway(platform) as center:
        for one in (delivered, cancelled, rejected):
            await center.submit(one, at=MORNING, wait=False)
        await project(platform, "issuer")

        with pytest.raises(CenterError, match=r"quoted .* is 300 yen"):
            await center.deliver(delivered.request_id, 200)
        await center.deliver(delivered.request_id, 300, MORNING + timedelta(seconds=40))
        await center.cancel(cancelled.request_id, "not paid", MORNING + timedelta(seconds=50))
        with pytest.raises(CenterError, match=r"rejected .*under_15"):
            await center.deliver(rejected.request_id, 300)
        with pytest.raises(CenterError, match="no decision is recorded"):
            await center.cancel(UUID(int=7), "never asked")
        await project(platform, "issuer")

        # A kiosk repeating its notice changes nothing; the opposite notice is refused.
        await center.deliver(delivered.request_id, 300, MORNING + timedelta(seconds=45))
        with pytest.raises(CenterError, match="was delivered"):
            await center.cancel(delivered.request_id, "too late")
        with pytest.raises(CenterError, match="was cancelled"):
            await center.deliver(cancelled.request_id, 900)
        await project(platform, "issuer")
        paid = await center.outcome(delivered.request_id)
        dropped = await center.outcome(cancelled.request_id)
    assert paid is not None
    assert dropped is not None
    assert (paid.status, paid.fee_paid_yen, paid.delivered_at) == (
        "delivered",
        300,
        MORNING + timedelta(seconds=40),
    )
    assert (dropped.status, dropped.cancel_reason) == ("cancelled", "not paid")
    async with connect(platform) as connection:
        notices = await connection.fetchval("SELECT count(*) FROM issuer.notices")
    assert notices == 2


async def test_a_running_worker_answers_the_kiosk(platform: Settings, tmp_path: Path) -> None:
    serials = await chiyoda_with_cards(platform)
    worker = start_worker(platform, tmp_path / "worker.log")
    try:
        async with CenterGateway(platform, answer_timeout=60) as center:
            # Asked in the morning: at the wall clock's hour the window may be closed.
            asked = request(serials[ICHIRO])
            first = await center.submit(asked, at=MORNING)
            retried, refused = request(serials[YOKO]), request(serials[SAKURA])
            answers = await asyncio.gather(
                center.submit(retried, at=MORNING),
                center.submit(retried, at=MORNING),
                center.submit(refused, at=MORNING),
            )
            # Kiosks asking again about requests decided before: no new outcome comes, the
            # recorded ones are looked up (together) and returned.
            again = await asyncio.gather(
                center.submit(asked, at=MORNING), center.submit(refused, at=MORNING)
            )
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=30)
    assert isinstance(first, Outcome)
    assert first.status == "issued"
    assert [a.status if a else None for a in answers] == ["issued", "issued", "rejected"]
    assert answers[0] == answers[1]  # the same recorded decision, not a second one
    assert again == [first, answers[2]]


def _file(tmp_path: Path, pdf: bytes) -> Path:
    path = tmp_path / "certificate.pdf"
    path.write_bytes(pdf)
    return path


def _key_id(settings: Settings) -> str:
    (key_file,) = (settings.home / "seals" / CHIYODA).glob("*.key.pem")
    return key_file.name.removesuffix(".key.pem")


def bcl(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pipeline.cli", *args],
        env={**settings_env(settings), "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=120,
    )


async def test_bcl_verify_and_openssl_agree_on_an_issued_certificate(
    platform: Settings, tmp_path: Path
) -> None:
    serials = await chiyoda_with_cards(platform)
    wanted = request(serials[ICHIRO], CertificateType.TAX_INCOME, fiscal_year=2023)
    async with CenterGateway(platform) as center:
        await center.submit(wanted, at=MORNING, wait=False)
        await project(platform, "issuer")
    pdf, key, extracted = tmp_path / "tax.pdf", tmp_path / "seal.pub.pem", tmp_path / "signed"
    saved = bcl(platform, "center", "outcome", str(wanted.request_id), "--save", str(pdf))
    assert saved.returncode == 0, saved.stderr
    assert (
        bcl(platform, "municipality", "seal-key", "export", CHIYODA, "-o", str(key)).returncode == 0
    )

    checked = bcl(platform, "verify", str(pdf), "--extract", str(extracted))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "valid" in checked.stdout
    openssl = ["openssl", "dgst", "-sha256", "-verify", str(key), "-signature"]
    signed = [str(extracted / "certificate.sig"), str(extracted / "certificate.json")]
    verified = subprocess.run([*openssl, *signed], capture_output=True, text=True)
    assert verified.stdout.strip() == "Verified OK"

    # One byte of the signed content changed inside the PDF: tampered, for both.
    content = (extracted / "certificate.json").read_bytes()
    data = pdf.read_bytes()
    at = data.index(content) + content.index(b'"income_yen":') + len(b'"income_yen":')
    forged = tmp_path / "forged.pdf"
    forged.write_bytes(data[:at] + (b"9" if data[at : at + 1] != b"9" else b"8") + data[at + 1 :])
    refused = bcl(platform, "verify", str(forged), "--extract", str(tmp_path / "forged"))
    assert refused.returncode == 1
    assert "tampered" in refused.stdout
    rejected = subprocess.run(
        [*openssl, str(tmp_path / "forged" / "certificate.sig"),
         str(tmp_path / "forged" / "certificate.json")],
        capture_output=True, text=True,
    )  # fmt: skip
    assert rejected.stdout.strip() == "Verification failure"

    # The municipality declares its seal key compromised: the same certificate is no longer valid.
    revoked = bcl(platform, "municipality", "seal-key", "revoke", CHIYODA, _key_id(platform))
    assert revoked.returncode == 0, revoked.stderr
    after = bcl(platform, "verify", str(pdf))
    assert after.returncode == 1
    assert "revoked_key" in after.stdout
    garbage = tmp_path / "garbage.pdf"
    garbage.write_bytes(b"%PDF-1.4 not really")
    junk = bcl(platform, "verify", str(garbage))
    assert junk.returncode == 1
    assert "not_a_certificate" in junk.stdout
    assert "Traceback" not in junk.stdout + junk.stderr
