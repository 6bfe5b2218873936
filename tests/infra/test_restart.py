"""A restart finds everything as it was: after `bcl down` and `bcl up`, and after every process
was killed at once, the journal, replica and fees digests are unchanged, the vault still opens
the residents' data (the replica rebuilt from the log's sealed payloads is the same), and a
certificate printed before still verifies."""

from __future__ import annotations

import asyncio
import csv
import json
import os
import re
import signal
import stat
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime, time
from pathlib import Path

import asyncpg
import psutil  # type: ignore[import-untyped]
import pytest

from schemas.calendar import JST
from tests.helpers import bcl_succeeds, scratch_folder, working_days_ahead

CHIYODA = "131016"
DIGESTED = ("journal", "replica", "fees")


@pytest.fixture(scope="module")
def home() -> Iterator[Path]:
    with scratch_folder() as path:
        try:
            yield path
        finally:
            subprocess.run(
                [sys.executable, "-m", "pipeline.cli", "down"],
                env=environment(path),
                capture_output=True,
                timeout=120,
            )


def environment(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BCL_")}
    return env | {"BCL_HOME": str(home), "COLUMNS": "200"} | extra


def digests(env: dict[str, str]) -> dict[str, str]:
    found = {}
    for name in DIGESTED:
        last = bcl_succeeds(env, "digest", name).strip().splitlines()[-1]
        label, digest = last.split()
        assert label == name
        found[name] = digest
    return found


def journal_events(env: dict[str, str]) -> int:
    shown = bcl_succeeds(env, "digest", "journal")
    match = re.search(r"events\s*│\s*([\d,]+)", shown)
    assert match, shown
    return int(match.group(1).replace(",", ""))


def every_process(home: Path) -> list[int]:
    east = home / "east"
    record = json.loads((east / "services.json").read_text())
    pids = [record["broker_pid"], record["storage_pid"], record["postgres_pid"]]
    pids += [int(path.read_text()) for path in east.glob("worker*.pid")]
    return pids


@pytest.fixture(scope="module")
def before(home: Path) -> dict[str, object]:
    """A center with a municipality, its pushed register, cards, two kiosk requests (one
    delivered) and a certificate saved; what it holds, as digests and readings."""
    env = environment(home)
    bcl_succeeds(env, "up", "--worker")
    bcl_succeeds(env, "municipality", "add", CHIYODA, "--name", "千代田区", "--class",
         "special_ward", "--population", "68000", "--bcl", "--offers", "juminhyo,inkan",
         "--fee", "juminhyo=300@2022-01-04", "--mayor", "千代田区長 樋口 高顕")  # fmt: skip
    bcl_succeeds(env, "municipality", "seal-key", "create", CHIYODA)
    register = home / "register.csv"
    bcl_succeeds(env, "workload", "register", CHIYODA, "--residents", "60", "--out", str(register))
    bcl_succeeds(env, "push", CHIYODA, str(register), "--full")
    bcl_succeeds(env, "wait", "registry", "replica")
    bcl_succeeds(env, "certificate", "ca")
    bcl_succeeds(env, "certificate", "issue", CHIYODA, "--all")
    bcl_succeeds(env, "wait")
    listed = ["--kind", "user_authentication", "--status", "active", "--limit", "40"]
    serials = bcl_succeeds(env, "certificate", "list", CHIYODA, *listed, "--serials-only").split()
    pdf = home / "juminhyo.pdf"
    # Asked at 10:00 on a working day after the cards' issuance, not at the wall clock's instant:
    # at night or in the year-end closure the issuer would refuse every card.
    asked_at = datetime.combine(working_days_ahead(1)[0], time(10), JST).isoformat()
    requests = []
    for serial in serials:
        sent = subprocess.run(
            [sys.executable, "-m", "pipeline.cli", "center", "submit", "--municipality", CHIYODA,
             "--serial", serial, "--type", "juminhyo", "--at", asked_at, "--save", str(pdf)],
            env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        if sent.returncode == 0 and pdf.exists():  # an adult's card: issued
            requests += re.findall(r"request ([0-9a-f-]{36})", sent.stdout)[:1]
            break
    assert requests, "no card among the first ones was an adult's"
    bcl_succeeds(env, "center", "deliver", requests[0], "--fee-paid", "300")
    bcl_succeeds(env, "wait")
    assert "valid" in bcl_succeeds(env, "verify", str(pdf))
    return {"digests": digests(env), "pdf": pdf}


def assert_as_before(home: Path, before: dict[str, object]) -> None:
    env = environment(home)
    bcl_succeeds(env, "wait")
    assert digests(env) == before["digests"]
    # Every resident's payload on the log is sealed under a data key the vault holds wrapped.
    bcl_succeeds(env, "replay", "replica")
    assert digests(env) == before["digests"]
    verified = bcl_succeeds(env, "verify", str(before["pdf"]))
    assert "valid" in verified
    assert "unknown_key" not in verified


def test_down_and_up_find_everything_as_it_was(home: Path, before: dict[str, object]) -> None:
    env = environment(home)
    bcl_succeeds(env, "down")
    restarted = bcl_succeeds(env, "up", "--worker")
    assert "rebuilt" not in restarted, "nothing was ahead of the log"
    assert_as_before(home, before)


def test_every_process_killed_at_once_finds_everything_as_it_was(
    home: Path, before: dict[str, object]
) -> None:
    victims = [psutil.Process(pid) for pid in every_process(home)]
    for victim in victims:
        os.kill(victim.pid, signal.SIGKILL)
    psutil.wait_procs(victims, timeout=10)
    bcl_succeeds(environment(home), "up", "--worker")
    assert_as_before(home, before)


def test_a_memory_log_lost_at_a_restart_rebuilds_the_projections_it_had_fed() -> None:
    with scratch_folder() as home:
        env = environment(home, BCL_BROKER_STORAGE="memory")
        try:
            bcl_succeeds(env, "up")
            bcl_succeeds(env, "sample", "--count", "500")
            bcl_succeeds(env, "replay", "journal")
            assert journal_events(env) == 500
            bcl_succeeds(env, "down")
            restarted = bcl_succeeds(env, "up")
            assert "rebuilt journal by replay" in " ".join(restarted.split())
            assert journal_events(env) == 0
        finally:
            subprocess.run(
                [sys.executable, "-m", "pipeline.cli", "down"],
                env=env,
                capture_output=True,
                timeout=120,
            )


def test_nothing_personal_is_in_clear_at_rest_and_every_file_is_private(
    home: Path, before: dict[str, object]
) -> None:
    """DESIGN §7: outside Postgres' own tables, no resident's name, address or My Number is on
    disk in clear (not in the log's store, the push folders, the reports, the logs), nor in the
    journal's copy of the log; and everything under $BCL_HOME is its owner's alone."""
    register = home / "register.csv"
    with register.open(encoding="utf-8") as rows:
        residents = [row for row in csv.DictReader(rows) if row["record"] == "resident"]
    secrets = {
        value
        for row in residents
        for value in (row["name"], row["name_kana"], row["address"], row["my_number"])
        if len(value.encode()) >= 9  # long enough that no ciphertext holds it by chance
    }
    assert len(secrets) > 100
    # What the search looks for is what a file in clear holds: the register pushed holds it all.
    assert all(secret.encode() in register.read_bytes() for secret in secrets)
    # The operator's own files: the register they pushed and the certificate they printed.
    theirs = {register, before["pdf"]}
    postgres_data = home / "east" / "postgres" / "data"
    found: list[str] = []
    for folder, folders, files in os.walk(home):
        path = Path(folder)
        if path == postgres_data:
            folders.clear()  # Postgres' own tables, private to its account (checked below)
            continue
        assert path.stat().st_mode & 0o076 == 0, f"{path} is {oct(path.stat().st_mode)}"
        for name in files:
            file = path / name
            if file in theirs or file.is_symlink():
                continue
            mode = file.stat().st_mode
            assert mode & 0o077 == 0, f"{file} is {oct(mode)}"
            if not stat.S_ISREG(mode):
                continue  # Postgres' socket
            data = file.read_bytes()
            found += [f"{file}: {s}" for s in secrets if s.encode() in data]
    assert found == []
    assert postgres_data.stat().st_mode & 0o077 == 0

    async def journal_text() -> str:
        services = json.loads((home / "east" / "services.json").read_text())
        connection = await asyncpg.connect(services["database_url"])
        try:
            return str(
                await connection.fetchval(
                    "SELECT string_agg(payload::text, ' ') FROM journal.events"
                )
            )
        finally:
            await connection.close()

    journal = asyncio.run(journal_text())
    assert [s for s in secrets if s in journal] == []
