"""Certificates through the real broker and Postgres: automatic revocation from resident changes,
suspension and its lifting, CRL imports (idempotent, refused when stale, tampered or foreign) and
the validity cache."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from consumers.certificates.cache import CertificateCache
from consumers.certificates.rules import Validity
from pipeline.catchup import catch_up, refresh
from pipeline.database import connect, create_pool
from pipeline.deadletters import DeadLetterSink
from pipeline.kafka import high_watermarks, partitions_of, producer, reader
from pipeline.projection import load_projection
from pipeline.proofs import EdgeKeys, prove
from pipeline.publish import Outgoing, publish
from pipeline.runner import ProjectionRunner
from pipeline.settings import Settings
from pipeline.topics import JPKI_CERTIFICATES
from producers.crl import CrlRefused
from producers.jpki import (
    CertificateCommandError,
    import_crl,
    issue_cards,
    lift,
    residents_to_issue,
    revoke,
    suspend,
)
from producers.jpki_ca import CertificateAuthority, RevokedEntry
from schemas.codec import DecodedEvent, decode_event
from schemas.codes import serial_number
from schemas.envelope import Envelope
from schemas.events.certificates import (
    CertificateKind,
    RevocationReason,
    SuspensionLifted,
)
from tests.helpers import PowerCut, jpki_ca
from tests.producers.push_helpers import (
    CHIYODA,
    SAMPLE_CSV,
    YOKOHAMA,
    register,
    sample_rows,
    signed_push,
    write_csv,
)

pytestmark = pytest.mark.integration

NOW = datetime.now(UTC)


async def project(settings: Settings, *names: str) -> None:
    for name in names:
        await refresh(settings, load_projection(name, settings))


async def states(settings: Settings) -> dict[tuple[str, str], tuple[str, str | None]]:
    """(resident, kind) → (status, reason) of every certificate with a known holder."""
    async with connect(settings) as connection:
        rows = await connection.fetch(
            "SELECT resident_code, kind, status, reason FROM certificates.certificates"
        )
    return {(r["resident_code"], r["kind"]): (r["status"], r["reason"]) for r in rows}


async def certificate_events(settings: Settings) -> int:
    async with reader(settings) as client:
        partitions = await partitions_of(client, [settings.topic(JPKI_CERTIFICATES.name)])
        return sum((await high_watermarks(client, partitions)).values())


def resident_rows() -> list[dict[str, str]]:
    return [row for row in sample_rows() if row["record"] == "resident"]


async def registered_with_sample(settings: Settings) -> Ed25519PrivateKey:
    key = await register(settings)
    await signed_push(settings, key, SAMPLE_CSV, 1)
    await project(settings, "replica")
    return key


def diff(tmp_path: Path, *rows: dict[str, str]) -> Path:
    return write_csv(tmp_path / f"diff-{len(list(tmp_path.iterdir()))}.csv", rows)


async def test_basic_four_changes_death_and_removal_revoke_automatically(
    platform: Settings, tmp_path: Path
) -> None:
    key = await registered_with_sample(platform)
    mover, deceased, regrouped, *_ = resident_rows()
    holders = await residents_to_issue(
        platform, CHIYODA, [r["resident_code"] for r in (mover, deceased, regrouped)]
    )
    await issue_cards(platform, jpki_ca(platform), holders, issued_at=NOW - timedelta(days=30))
    await project(platform, "revocations", "certificates")
    assert {status for status, _ in (await states(platform)).values()} == {"active"}

    changes = diff(
        tmp_path,
        {**mover, "reason": "move_within", "effective_date": "2026-10-01",
         "address": "東京都千代田区九段南1丁目2番1号", "previous_address": mover["address"]},
        {**deceased, "reason": "death", "effective_date": "2026-10-02"},
        {**regrouped, "reason": "household_change", "effective_date": "2026-10-03",
         "household_number": "131016009999"},
    )  # fmt: skip
    await signed_push(platform, key, changes, 2)
    await project(platform, "revocations", "certificates")

    found = await states(platform)
    signature, authentication = CertificateKind.SIGNATURE, CertificateKind.USER_AUTHENTICATION
    assert found[(mover["resident_code"], signature)] == ("revoked", "basic_info_changed")
    assert found[(mover["resident_code"], authentication)] == ("active", None)
    assert found[(deceased["resident_code"], signature)] == ("revoked", "death")
    assert found[(deceased["resident_code"], authentication)] == ("revoked", "death")
    assert found[(regrouped["resident_code"], signature)] == ("active", None)
    assert found[(regrouped["resident_code"], authentication)] == ("active", None)

    # Driving the revoker again decides nothing new: the three revocations stay three events.
    published = await certificate_events(platform)
    await project(platform, "revocations", "certificates")
    assert await certificate_events(platform) == published


async def test_a_certificate_that_arrives_after_the_change_is_revoked_all_the_same(
    platform: Settings, tmp_path: Path
) -> None:
    key = await registered_with_sample(platform)
    renamed = resident_rows()[0]
    renaming = {**renamed, "reason": "name_change", "effective_date": "2026-10-01"}
    await signed_push(platform, key, diff(tmp_path, {**renaming, "name": "九段 一郎"}), 2)
    await project(platform, "revocations")  # the change is seen before any certificate
    holder = await residents_to_issue(platform, CHIYODA, [renamed["resident_code"]])
    before_change = await issue_cards(
        platform, jpki_ca(platform), holder, issued_at=NOW - timedelta(days=9)
    )
    after_change = await issue_cards(
        platform, jpki_ca(platform), holder, issued_at=NOW + timedelta(hours=1)
    )
    await project(platform, "revocations", "certificates")

    async with connect(platform) as connection:
        rows = await connection.fetch(
            "SELECT serial, status, reason FROM certificates.certificates"
        )
    status = {r["serial"]: (r["status"], r["reason"]) for r in rows}
    old_signature, old_authentication = before_change
    assert status[old_signature.serial] == ("revoked", "basic_info_changed")
    assert status[old_authentication.serial] == ("active", None)
    assert {status[c.serial] for c in after_change} == {("active", None)}


async def test_only_the_municipality_of_residence_lifts_a_suspension(platform: Settings) -> None:
    await registered_with_sample(platform)
    holder = await residents_to_issue(platform, CHIYODA, [resident_rows()[0]["resident_code"]])
    _, authentication = await issue_cards(platform, jpki_ca(platform), holder)
    serial = authentication.serial

    await suspend(platform, serial)
    with pytest.raises(CertificateCommandError, match="only the holder's municipality"):
        await lift(platform, serial, YOKOHAMA)
    with pytest.raises(CertificateCommandError, match="suspended already"):
        await suspend(platform, serial)

    # Published anyway (by a JPKI edge that skipped the check, within its rights to publish
    # lifts for any municipality): the projection refuses it too.
    forged = prove(
        platform,
        "jpki",
        Envelope.new(
            "certificate.suspension_lifted",
            SuspensionLifted(serial=serial, municipality=YOKOHAMA, lifted_at=datetime.now(UTC)),
            origin="east",
            source=f"municipality:{YOKOHAMA}",
            occurred_at=datetime.now(UTC),
        ),
    )
    async with producer(platform) as kafka:
        await publish(platform, kafka, Outgoing(JPKI_CERTIFICATES.name, serial, forged))
    await project(platform, "certificates")
    async with connect(platform) as connection:
        refusal = await connection.fetchrow(
            "SELECT code, message FROM certificates.refusals WHERE serial = $1", serial
        )
        status = await connection.fetchval(
            "SELECT status FROM certificates.certificates WHERE serial = $1", serial
        )
    assert refusal["code"] == "not_municipality_of_residence"
    assert status == "suspended"

    await lift(platform, serial, CHIYODA)
    await revoke(platform, serial, RevocationReason.LOSS)
    with pytest.raises(CertificateCommandError, match="was revoked"):
        await lift(platform, serial, CHIYODA)


def _crl(
    authority: CertificateAuthority,
    entries: list[RevokedEntry],
    this_update: datetime,
    number: int,
) -> bytes:
    return authority.crl(
        entries, this_update=this_update, next_update=this_update + timedelta(days=1),
        crl_number=number,
    )  # fmt: skip


async def test_crl_imports_are_idempotent_and_refusals_apply_nothing(
    platform: Settings,
) -> None:
    await registered_with_sample(platform)
    authority = CertificateAuthority.load_or_create(platform.jpki_home)
    holders = await residents_to_issue(platform, CHIYODA)
    issued = await issue_cards(platform, authority, holders[:3])
    lost, compromised, later = (serial_number(c.serial) for c in issued[:3])
    await project(platform, "certificates")

    first_entries = [
        RevokedEntry(compromised, NOW, RevocationReason.KEY_COMPROMISE),
        RevokedEntry(lost, NOW, None),  # certificateHold: a card reported lost
    ]
    first = _crl(authority, first_entries, NOW, 1)
    report = await import_crl(platform, first, authority.certificate)
    assert (report.outcome, report.revocations, report.suspensions) == ("imported", 1, 1)
    await project(platform, "certificates")
    async with connect(platform) as connection:
        status = dict(
            await connection.fetch("SELECT serial, status FROM certificates.certificates")
        )
    assert status[issued[1].serial] == "revoked"
    assert status[issued[0].serial] == "suspended"

    published = await certificate_events(platform)
    again = await import_crl(platform, first, authority.certificate)
    assert again.outcome == "already_imported"
    assert await certificate_events(platform) == published

    second = _crl(
        authority,
        [*first_entries, RevokedEntry(later, NOW, RevocationReason.HOLDER_REQUEST)],
        NOW + timedelta(hours=1),
        2,
    )
    report = await import_crl(platform, second, authority.certificate)
    assert (report.revocations, report.suspensions, report.already_known) == (1, 0, 2)
    published = await certificate_events(platform)

    stale = _crl(authority, [RevokedEntry(lost, NOW, RevocationReason.LOSS)], NOW, 3)
    tampered = bytearray(second)
    # The last digit of thisUpdate's seconds (UTCTime "YYMMDDHHMMSSZ"): still valid DER.
    seconds_digit = tampered.index(b"\x17\x0d") + 2 + 11
    tampered[seconds_digit] = ord("0") + (tampered[seconds_digit] - ord("0") + 1) % 10
    impostor = CertificateAuthority.create(name="JPKI Test CA")
    stranger = CertificateAuthority.create(name="Some Other CA")
    refused = {
        "stale_crl": stale,
        "bad_signature": bytes(tampered),
        "wrong_issuer": _crl(stranger, first_entries, NOW + timedelta(hours=2), 4),
    }
    for code, data in refused.items():
        with pytest.raises(CrlRefused) as refusal:
            await import_crl(platform, data, authority.certificate)
        assert refusal.value.code == code, refusal.value.message
    with pytest.raises(CrlRefused) as refusal:
        await import_crl(
            platform,
            _crl(impostor, first_entries, NOW + timedelta(hours=2), 5),
            authority.certificate,
        )
    assert refusal.value.code == "bad_signature"
    assert await certificate_events(platform) == published

    await project(platform, "certificates")
    async with connect(platform) as connection:
        imported = await connection.fetchval("SELECT count(*) FROM certificates.crl_imports")
    assert imported == 2


async def test_the_cache_follows_the_log_and_falls_back_to_the_database(
    platform: Settings,
) -> None:
    await registered_with_sample(platform)
    holders = await residents_to_issue(platform, CHIYODA)
    first = await issue_cards(platform, jpki_ca(platform), holders[:1])
    await project(platform, "certificates")
    cache = CertificateCache(platform)
    await cache.load()
    serial = first[0].serial
    assert cache.check(serial, datetime.now(UTC)).status is Validity.VALID

    stop = asyncio.Event()
    following = asyncio.create_task(cache.follow(stop))
    try:
        await revoke(platform, serial, RevocationReason.HOLDER_REQUEST)
        for _ in range(100):
            if cache.check(serial, datetime.now(UTC)).status is Validity.REVOKED:
                break
            await asyncio.sleep(0.05)
        result = cache.check(serial, datetime.now(UTC))
        assert (result.status, result.reason) == (Validity.REVOKED, "holder_request")
    finally:
        stop.set()
        await following

    # Issued and projected while the cache was not following: the database answers.
    later = await issue_cards(platform, jpki_ca(platform), holders[1:2])
    await project(platform, "certificates")
    assert cache.check(later[0].serial, datetime.now(UTC)).status is Validity.UNKNOWN
    fetched = await cache.check_or_fetch(later[0].serial, datetime.now(UTC))
    assert fetched.status is Validity.VALID
    assert cache.fallbacks == 1


@pytest.mark.parametrize("sent_before_the_crash", [False, True])
async def test_a_revoker_crash_before_its_outbox_is_emptied_revokes_once(
    platform: Settings, tmp_path: Path, sent_before_the_crash: bool
) -> None:
    """The power fails after the batch committed, before (or after) its decisions are sent: the
    restart sends them from the outbox unless the log has them, decides nothing again, and the
    log holds each once."""
    key = await registered_with_sample(platform)
    deceased = resident_rows()[1]
    holder = await residents_to_issue(platform, CHIYODA, [deceased["resident_code"]])
    await issue_cards(platform, jpki_ca(platform), holder, issued_at=NOW - timedelta(days=3))
    await signed_push(
        platform,
        key,
        diff(tmp_path, {**deceased, "reason": "death", "effective_date": "2026-11-01"}),
        2,
    )
    pool = await create_pool(platform)
    try:
        async with producer(platform) as kafka:
            power_cut = PowerCut(platform, kafka, sends=sent_before_the_crash)
            runner = ProjectionRunner(
                load_projection("revocations", platform),
                pool,
                cluster=platform.center,
                dead_letters=DeadLetterSink(None),
                keys=EdgeKeys.of(platform),
                publisher=power_cut,
            )
            with pytest.raises(RuntimeError, match="power cut"):
                await catch_up(runner, platform)
    finally:
        await pool.close()
    assert power_cut.cuts == 1

    await project(platform, "revocations", "certificates")  # the restart

    revocations = [e for e in await logged(platform) if _revoked(e)]
    ids = {e.envelope.event_id for e in revocations}
    assert len(ids) == 2  # both certificates of the deceased, each under one event id
    # Sent before the crash, the restart finds them on the log from their floors.
    assert len(revocations) == 2
    assert {e.payload.reason for e in revocations} == {RevocationReason.DEATH}  # type: ignore[attr-defined]
    async with connect(platform) as connection:
        revoked = await connection.fetchval(
            "SELECT count(*) FROM certificates.transitions WHERE status = 'revoked' "
            "AND event_id = ANY($1::uuid[])",
            list(ids),
        )
        left = await connection.fetchval(
            "SELECT count(*) FROM platform.outbox WHERE processor = 'revocations'"
        )
    assert revoked == 2
    assert left == 0


def _revoked(event: DecodedEvent) -> bool:
    return event.envelope.type == "certificate.revoked"


async def logged(settings: Settings) -> list[DecodedEvent]:
    async with reader(settings) as client:
        partitions = await partitions_of(client, [settings.topic(JPKI_CERTIFICATES.name)])
        marks = await high_watermarks(client, partitions)
        client.assign([tp for tp in partitions if marks[tp] > 0])
        found: list[DecodedEvent] = []
        for tp in partitions:
            if marks[tp] > 0:
                client.seek(tp, 0)
        pending = {tp for tp in partitions if marks[tp] > 0}
        while pending:
            for tp, records in (await client.getmany(*pending, timeout_ms=1000)).items():
                found.extend(decode_event(r.value or b"") for r in records if r.offset < marks[tp])
                if await client.position(tp) >= marks[tp]:
                    pending.discard(tp)
    return found
