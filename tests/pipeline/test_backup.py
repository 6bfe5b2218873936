"""`bcl backup` and `bcl restore` against the real broker and Postgres: a center restored from its
backup onto a fresh database and home, then replayed from the same log, is the center it was."""

from __future__ import annotations

import base64
import os
import re
import shutil
import stat
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from pipeline.backup import (
    BACKED_UP_FOLDERS,
    BACKED_UP_TABLES,
    NOT_BACKED_UP,
    back_up,
    copy_key_folders,
    restore,
)
from pipeline.catchup import catch_up, refresh
from pipeline.database import connect, create_pool
from pipeline.deadletters import DeadLetterSink
from pipeline.digest import ProjectionDigest, projection_digest
from pipeline.kafka import producer
from pipeline.migrations import migrate_all
from pipeline.projection import PROJECTION_MODULES, load_projection
from pipeline.proofs import EdgeKeys
from pipeline.replay import replay
from pipeline.runner import ProjectionRunner
from pipeline.settings import Settings
from pipeline.signing import write_key_pair
from pipeline.vault import Vault, load_kek, open_sealed
from producers.center import CenterGateway
from producers.jpki import issue_cards, residents_to_issue, write_certificates
from producers.jpki_ca import CertificateAuthority
from producers.municipal_push import next_sequence
from producers.registry import create_seal_key, update
from producers.retention import run_retention
from schemas.events.residents import PersonalData, ResidentRecord
from schemas.sealed import carried_by
from tests.conftest import Endpoints
from tests.consumers.test_issuer_pipeline import ICHIRO, MAYOR, MORNING, request
from tests.helpers import PowerCut, jpki_ca, settings_env
from tests.producers.push_helpers import (
    CHIYODA,
    SAMPLE_CSV,
    logged_events,
    register,
    sample_rows,
    signed_push,
    write_csv,
)

pytestmark = pytest.mark.integration


# --- the centers ---------------------------------------------------------------------------


@pytest.fixture
async def fresh(
    endpoints: Endpoints, platform: Settings, tmp_path: Path
) -> AsyncIterator[Settings]:
    """A second center as `bcl up` leaves a new one: its own migrated, empty database and an
    empty home, on the same log as ``platform``; the original KEK handed over apart, as the
    operator keeps it (BCL_KEK_FILE)."""
    name, dsn = await endpoints.create_database()
    settings = Settings(
        home=tmp_path / "restored",
        kafka_bootstrap=platform.kafka_bootstrap,
        database_url=dsn,
        topic_prefix=platform.topic_prefix,
        partitions=platform.partitions,
        kek_file=platform.home / "kek",
    )
    async with connect(settings) as connection:
        await migrate_all(connection)
    yield settings
    await endpoints.drop_database(name)


def bcl(settings: Settings, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    variables = settings_env(settings) | {"COLUMNS": "200"}
    if settings.kek_file:
        variables["BCL_KEK_FILE"] = str(settings.kek_file)
    return subprocess.run(
        [sys.executable, "-m", "pipeline.cli", *args],
        env=variables | env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def said(result: subprocess.CompletedProcess[str]) -> str:
    """What a command printed, its table rules and line breaks as single spaces."""
    text = result.stdout + result.stderr
    return " ".join(re.sub("[\u2500-\u257f]", " ", text).split())


def refused(result: subprocess.CompletedProcess[str], *expected: str) -> None:
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("error:"), result.stderr
    for text in expected:
        assert text in said(result), said(result)


# --- state built through the real code paths -------------------------------------------------


async def pushed_chiyoda(settings: Settings) -> Ed25519PrivateKey:
    """Chiyoda registered with its push key pair kept under $BCL_HOME/keys (as `bcl
    municipality add` keeps it), its sample register pushed and projected, and a seal key."""
    key = await register(settings)
    write_key_pair(settings.home / "keys", CHIYODA, key)
    await update(
        settings,
        CHIYODA,
        {"offered_types": ["juminhyo", "inkan", "tax_income", "tax_assessment"], "mayor": MAYOR},
    )
    await signed_push(settings, key, SAMPLE_CSV, 1)
    await refresh(settings, load_projection("replica", settings))
    await create_seal_key(settings, CHIYODA)
    return key


async def chiyoda_in_service(settings: Settings) -> None:
    """``pushed_chiyoda``, with the test CA and a card for every resident (their PEM files
    kept), a certificate issued at a kiosk, and the removed residents purged (destroyed keys)."""
    await pushed_chiyoda(settings)
    authority = CertificateAuthority.load_or_create(settings.jpki_home)
    holders = await residents_to_issue(settings, CHIYODA)
    issued = await issue_cards(settings, authority, holders, issued_at=MORNING - timedelta(days=30))
    write_certificates(issued, settings.jpki_home / "issued")
    await every_projection_caught_up(settings)
    serial = next(
        c.serial
        for c in issued
        if c.resident_code == ICHIRO and c.kind.value == "user_authentication"
    )
    async with CenterGateway(settings) as gateway:
        await gateway.submit(request(serial), at=MORNING, wait=False)
    await run_retention(settings, as_of=date(2030, 1, 1))
    # Twice: a decision the issuer publishes in the first pass reaches the projections listed
    # before it in the second.
    await every_projection_caught_up(settings)
    await every_projection_caught_up(settings)


async def every_projection_caught_up(settings: Settings) -> None:
    for name in PROJECTION_MODULES:
        await refresh(settings, load_projection(name, settings))


async def digests(settings: Settings) -> dict[str, ProjectionDigest]:
    async with connect(settings) as connection:
        return {
            name: await projection_digest(connection, load_projection(name, settings))
            for name in PROJECTION_MODULES
        }


async def kept_rows(settings: Settings) -> dict[str, list[tuple[Any, ...]]]:
    """Every backed-up table's rows, in full, in a fixed order."""
    async with connect(settings) as connection:
        return {
            table.qualified: [
                tuple(row)
                for row in await connection.fetch(f"SELECT * FROM {table.qualified} ORDER BY 1, 2")
            ]
            for table in BACKED_UP_TABLES
        }


def key_files(settings: Settings) -> dict[str, tuple[bytes, int]]:
    """Each file of the backed-up folders: its bytes and mode."""
    found = {}
    for folder in BACKED_UP_FOLDERS:
        root = folder.location(settings)
        for path in sorted(root.rglob("*")):
            if path.is_file():
                key = f"{folder.name}/{path.relative_to(root)}"
                found[key] = (path.read_bytes(), stat.S_IMODE(path.stat().st_mode))
    return found


async def outbox_sequence_next(settings: Settings) -> int:
    async with connect(settings) as connection:
        return int(
            await connection.fetchval(
                "SELECT nextval(pg_get_serial_sequence('platform.outbox', 'position'))"
            )
        )


# --- the round trip --------------------------------------------------------------------------


async def test_a_restored_center_replays_to_the_same_projections_and_opens_residents_data(
    platform: Settings, fresh: Settings, tmp_path: Path
) -> None:
    await chiyoda_in_service(platform)
    before = await digests(platform)
    assert before["issuer"].rows > 0
    assert before["certificates"].rows > 0
    folder = tmp_path / "backup"

    made = bcl(platform, "backup", str(folder))

    assert made.returncode == 0, made.stdout + made.stderr
    summary = said(made)
    data_keys = len((await kept_rows(platform))["vault.data_keys"])
    for line in (f"vault.data_keys table {data_keys}", "intake.batches table 1"):
        assert line in summary, summary
    for source in BACKED_UP_FOLDERS:
        assert str(source.location(platform)) in summary
    assert "The key-encryption key is not in this backup" in summary
    kek = (platform.home / "kek").read_bytes()
    backed_up = [path for path in folder.rglob("*") if path.is_file()]
    assert all(kek not in path.read_bytes() for path in backed_up)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    seal_files = list((folder / "files" / "seals").rglob("*.key.pem"))
    assert seal_files
    assert all(stat.S_IMODE(path.stat().st_mode) == 0o600 for path in seal_files)

    restored = bcl(fresh, "restore", str(folder))

    assert restored.returncode == 0, restored.stdout + restored.stderr
    assert "bcl replay --all" in said(restored)
    assert await kept_rows(fresh) == await kept_rows(platform)
    assert key_files(fresh) == key_files(platform)
    for name in PROJECTION_MODULES:
        await replay(fresh, load_projection(name, fresh))
    assert await digests(fresh) == before

    # The restored vault opens what the log holds sealed ...
    carrier = next(
        e.event
        for e in await logged_events(fresh)
        if isinstance(e.event.payload, ResidentRecord) and e.event.payload.resident_code == ICHIRO
    )
    record = carrier.payload
    assert isinstance(record, ResidentRecord)
    pool = await create_pool(fresh, max_size=1)
    try:
        vault = Vault(pool, load_kek(fresh, create=False))
        keys = await vault.data_keys_for(None, [(CHIYODA, ICHIRO)], create=False)
    finally:
        await pool.close()
    data_key = keys[(CHIYODA, ICHIRO)]
    assert data_key is not None
    personal = PersonalData.model_validate(
        open_sealed(data_key, record.personal, carried_by(carrier.envelope, CHIYODA, ICHIRO))
    )
    assert personal.name == "神田 一郎"
    # ... the intake takes the next batch, and the restored seal key seals new certificates.
    assert await next_sequence(fresh, CHIYODA) == 2
    async with connect(fresh) as connection:
        serial = await connection.fetchval(
            "SELECT serial FROM certificates.certificates WHERE resident_code = $1 "
            "AND kind = 'user_authentication'",
            ICHIRO,
        )
    async with CenterGateway(fresh) as gateway:
        asked = request(serial)
        await gateway.submit(asked, at=MORNING + timedelta(hours=1), wait=False)
    await refresh(fresh, load_projection("issuer", fresh))
    async with connect(fresh) as connection:
        outcome = await connection.fetchval(
            "SELECT outcome FROM issuer.outcomes WHERE request_id = $1", asked.request_id
        )
    assert outcome == "issued"


async def test_decisions_waiting_in_the_outbox_are_restored_and_sent_from_the_restored_center(
    platform: Settings, fresh: Settings, tmp_path: Path
) -> None:
    """The revoker committed two revocations and lost power before sending them; the center is
    backed up so. Restored elsewhere and replayed, the restored center sends them."""
    key = await pushed_chiyoda(platform)
    deceased = sample_rows()[0]
    holder = await residents_to_issue(platform, CHIYODA, [deceased["resident_code"]])
    await issue_cards(
        platform, jpki_ca(platform), holder, issued_at=datetime.now(UTC) - timedelta(days=3)
    )
    death = {**deceased, "reason": "death", "effective_date": "2026-11-01"}
    await signed_push(platform, key, write_csv(tmp_path / "death.csv", [death]), 2)
    pool = await create_pool(platform)
    try:
        async with producer(platform) as kafka:
            runner = ProjectionRunner(
                load_projection("revocations", platform),
                pool,
                cluster=platform.center,
                dead_letters=DeadLetterSink(None),
                keys=EdgeKeys.of(platform),
                publisher=PowerCut(platform, kafka, sends=False),
            )
            with pytest.raises(RuntimeError, match="power cut"):
                await catch_up(runner, platform)
    finally:
        await pool.close()
    waiting = (await kept_rows(platform))["platform.outbox"]
    assert len(waiting) == 2

    report = await back_up(platform, tmp_path / "backup")
    counts = await restore(fresh, tmp_path / "backup")

    assert ("platform.outbox", 2) in {(c.what, c.count) for c in counts}
    assert [(c.what, c.count) for c in counts] == [(c.what, c.count) for c in report.counts]
    assert (await kept_rows(fresh))["platform.outbox"] == waiting
    assert await outbox_sequence_next(fresh) > max(row[0] for row in waiting)
    for name in PROJECTION_MODULES:
        await replay(fresh, load_projection(name, fresh))
    await refresh(fresh, load_projection("certificates", fresh))
    async with connect(fresh) as connection:
        revoked = await connection.fetchval(
            "SELECT count(*) FROM certificates.certificates WHERE status = 'revoked' "
            "AND resident_code = $1",
            deceased["resident_code"],
        )
        left = await connection.fetchval("SELECT count(*) FROM platform.outbox")
    assert (revoked, left) == (2, 0)


# --- refusals --------------------------------------------------------------------------------


async def test_restoring_over_live_data_is_refused_unless_forced(
    platform: Settings, tmp_path: Path
) -> None:
    key = await pushed_chiyoda(platform)
    folder = tmp_path / "backup"
    assert bcl(platform, "backup", str(folder)).returncode == 0
    backed_up_rows, backed_up_files = await kept_rows(platform), key_files(platform)
    # Life goes on after the backup: another batch, a new seal key, a damaged public key.
    moved = {**sample_rows()[0], "reason": "move_within", "effective_date": "2024-05-01"}
    await signed_push(platform, key, write_csv(tmp_path / "more.csv", [moved]), 2)
    await create_seal_key(platform, CHIYODA)
    public = platform.home / "keys" / f"{CHIYODA}.pub.pem"
    public.write_text("damaged")
    changed_rows, changed_files = await kept_rows(platform), key_files(platform)

    over = bcl(platform, "restore", str(folder))

    refused(over, "live data", "intake.batches has 2 rows", "keys holds 2 files", "--force")
    assert (await kept_rows(platform), key_files(platform)) == (changed_rows, changed_files)

    forced = bcl(platform, "restore", str(folder), "--force")

    assert forced.returncode == 0, forced.stdout + forced.stderr
    assert await kept_rows(platform) == backed_up_rows
    now = key_files(platform)
    assert {name: now[name] for name in backed_up_files} == backed_up_files
    # A key made after the backup is kept: a restore never deletes key material.
    assert set(now) - set(backed_up_files) == set(changed_files) - set(backed_up_files) != set()


async def test_a_damaged_or_altered_backup_is_refused_naming_the_file(
    platform: Settings, fresh: Settings, tmp_path: Path
) -> None:
    await pushed_chiyoda(platform)
    good = tmp_path / "backup"
    assert bcl(platform, "backup", str(good)).returncode == 0
    seal_key = next((good / "files" / "seals").rglob("*.key.pem")).relative_to(good).as_posix()

    def altered(name: str) -> Path:
        copy = tmp_path / name
        shutil.copytree(good, copy)
        return copy

    flipped = altered("flipped")
    data = bytearray((flipped / seal_key).read_bytes())
    data[40] ^= 1
    (flipped / seal_key).write_bytes(bytes(data))
    refused(bcl(fresh, "restore", str(flipped)), seal_key, "does not match its checksum")

    added = altered("added")
    (added / "files" / "keys" / "intruder.key.pem").write_text("a key of someone else's")
    refused(bcl(fresh, "restore", str(added)), "files/keys/intruder.key.pem is not in the manifest")

    lost = altered("lost")
    (lost / "tables" / "intake.batches.csv").unlink()
    refused(bcl(fresh, "restore", str(lost)), "tables/intake.batches.csv is missing")

    climbing = altered("climbing")
    manifest = (climbing / "manifest.json").read_text()
    (climbing / "manifest.json").write_text(
        manifest.replace(f'"{seal_key}"', '"files/seals/../../../escaped.pem"')
    )
    refused(bcl(fresh, "restore", str(climbing)), "outside the backup")

    refused(bcl(fresh, "restore", str(tmp_path)), "manifest.json", "not a bcl backup")
    assert not (tmp_path / "escaped.pem").exists()
    assert key_files(fresh) == {}
    assert not any((await kept_rows(fresh)).values())


async def test_a_restore_with_another_kek_or_none_is_refused_and_changes_nothing(
    platform: Settings, fresh: Settings, tmp_path: Path
) -> None:
    await pushed_chiyoda(platform)
    folder = tmp_path / "backup"
    assert bcl(platform, "backup", str(folder)).returncode == 0
    other_kek = base64.b64encode(os.urandom(32)).decode()

    wrong = bcl(fresh, "restore", str(folder), BCL_KEK=other_kek)

    refused(
        wrong,
        "key in use (BCL_KEK) does not unwrap the backed-up data keys",
        "set BCL_KEK or BCL_KEK_FILE to the original",
    )
    # No KEK at all: none is made up (a new one would open nothing).
    without = fresh.model_copy(update={"kek_file": None})
    missing = bcl(without, "restore", str(folder))
    refused(missing, f"{fresh.home / 'kek'} does not exist", "BCL_KEK_FILE")
    assert not (fresh.home / "kek").exists()
    assert not any((await kept_rows(fresh)).values())
    assert key_files(fresh) == {}  # nothing staged was left behind either
    # The key a fresh `bcl up` made for itself, when none was given, is named.
    (fresh.home / "kek").write_bytes(os.urandom(32))
    refused(
        bcl(without, "restore", str(folder)), f"(the file {fresh.home / 'kek'}) does not unwrap"
    )

    right = bcl(fresh, "restore", str(folder))
    assert right.returncode == 0, right.stdout + right.stderr


async def test_a_backup_is_written_only_into_a_new_or_empty_folder(
    platform: Settings, tmp_path: Path
) -> None:
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")

    refused(bcl(platform, "backup", str(busy)), "is not empty")
    assert [p.name for p in busy.iterdir()] == ["notes.txt"]
    refused(bcl(platform, "backup", str(busy / "notes.txt")), "is a file")

    empty = tmp_path / "empty"
    empty.mkdir(mode=0o755)
    done = bcl(platform, "backup", str(empty))
    assert done.returncode == 0, done.stdout + done.stderr
    assert stat.S_IMODE(empty.stat().st_mode) == 0o700


def test_a_kek_file_kept_inside_a_backed_up_folder_is_left_out(tmp_path: Path) -> None:
    home = tmp_path / "home"
    private, public = write_key_pair(home / "keys", CHIYODA)
    kek = home / "keys" / "kek"
    kek.write_bytes(os.urandom(32))
    settings = Settings(home=home, kek_file=kek)

    folders, left_out = copy_key_folders(settings, tmp_path / "backup")

    assert left_out == [kek]
    copied = sorted(p.name for p in (tmp_path / "backup" / "files" / "keys").iterdir())
    assert copied == sorted([private.name, public.name])
    assert {(f.folder, f.files) for f in folders} == {("keys", 2), ("seals", 0), ("jpki", 0)}


async def test_every_table_outside_the_projections_is_backed_up_or_said_why_not(
    db: asyncpg.Connection,
) -> None:
    await migrate_all(db)
    rows = await db.fetch(
        "SELECT table_schema || '.' || table_name AS name FROM information_schema.tables "
        "WHERE table_type = 'BASE TABLE' AND NOT (table_schema = ANY($1::text[])) "
        "AND table_schema NOT IN ('pg_catalog', 'information_schema')",
        list(PROJECTION_MODULES),
    )
    found = {row["name"] for row in rows}
    declared = {t.qualified for t in BACKED_UP_TABLES} | set(NOT_BACKED_UP)
    assert found == declared
