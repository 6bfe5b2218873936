"""Helpers shared by tests that run the platform's processes."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import jpholiday
from aiokafka import AIOKafkaProducer

from pipeline.publish import Appender
from pipeline.settings import Settings
from producers.jpki_ca import CertificateAuthority
from schemas.calendar import JST, is_year_end_closure


def jst(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    """A moment in Japan time."""
    return datetime(year, month, day, hour, minute, second, tzinfo=JST)


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def working_days_ahead(count: int) -> list[date]:
    """The next ``count`` working days in Japan after today: weekdays that are neither national
    holidays nor in the 29 Dec – 3 Jan closure, so inside every service window.

    For kiosk traffic against what a test registers and issues as it runs: municipalities join
    today and cards are valid from the moment they are issued, so a day of visits must come
    after today, whatever day the suite runs on."""
    day = datetime.now(JST).date()
    days: list[date] = []
    while len(days) < count:
        day += timedelta(days=1)
        if day.weekday() < 5 and not jpholiday.is_holiday(day) and not is_year_end_closure(day):
            days.append(day)
    return days


async def create_topic(bootstrap: str, topic: str, partitions: int) -> None:
    """A topic on the broker at ``bootstrap``, for tests that talk to a broker of their own."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, partitions, 1)])
    finally:
        await admin.close()


def with_database(dsn: str, database: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path=f"/{database}"))


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment that makes a child process (`bcl ...`) see the same settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BCL_")}
    env.update(
        BCL_HOME=str(settings.home),
        BCL_CENTER=settings.center,
        BCL_KAFKA_BOOTSTRAP=settings.bootstrap,
        BCL_DATABASE_URL=settings.dsn,
        BCL_TOPIC_PREFIX=settings.topic_prefix,
        BCL_PARTITIONS=str(settings.partitions),
    )
    return env


def start_worker(
    settings: Settings, log: Path, agents: str | None = None
) -> subprocess.Popen[bytes]:
    """`bcl worker` in a session of its own; ``agents`` as for `--agents` (default: all)."""
    with log.open("ab") as out:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "pipeline.cli",
                "worker",
                *(["--agents", agents] if agents else []),
            ],
            env=settings_env(settings),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


async def wait_for_journal(settings: Settings, expected: int, timeout: float) -> int:
    connection = await asyncpg.connect(settings.dsn)
    try:
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            count: int = await connection.fetchval("SELECT count(*) FROM journal.events")
            if count >= expected or asyncio.get_running_loop().time() > deadline:
                return count
            await asyncio.sleep(0.5)
    finally:
        await connection.close()


async def wait_for_log_line(path: Path, text: str, timeout: float = 120) -> None:
    """Until ``text`` appears in the log at ``path``."""
    deadline = time.monotonic() + timeout
    while text not in (path.read_text(errors="replace") if path.exists() else ""):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{text!r} not in {path} after {timeout}s")
        await asyncio.sleep(0.1)


@contextmanager
def scratch_folder() -> Iterator[Path]:
    # Not pytest's tmp_path: every pytest session that starts resets /tmp/pytest-of-<user> to mode
    # 0700, and under root that locks the unprivileged Postgres account out of a data folder below
    # it, breaking a server that is starting in another session at that moment.
    path = Path(tempfile.mkdtemp(prefix="bcl-test-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def bcl_succeeds(env: dict[str, str], *args: str, timeout: float = 600) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "pipeline.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, f"bcl {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@contextmanager
def two_centers(
    municipality: str, *, answer_window: float, tax_years: Sequence[int], residents: int = 300
) -> Iterator[tuple[Settings, Settings]]:
    """East and west as `bcl up --centers east,west` starts them (each its broker, Postgres,
    worker and mirror), ``municipality`` (文京区's profile) registered at east with a pushed
    register of ``residents`` (adults with tax facts of ``tax_years``: those the kiosk days ask
    for) and a card for each, level in both centers; stopped by PID after.
    """
    with scratch_folder() as home:
        env = {k: v for k, v in os.environ.items() if not k.startswith("BCL_")}
        env |= {"BCL_HOME": str(home), "BCL_ANSWER_WINDOW": str(answer_window)}
        try:
            bcl_succeeds(env, "up", "--centers", "east,west")
            bcl_succeeds(env, "municipality", "add", municipality, "--name", "文京区", "--class",
                 "special_ward", "--population", "240000", "--bcl", "--offers",
                 "juminhyo,inkan", "--fee", "juminhyo=300@2022-01-04", "--mayor",
                 "文京区長 成澤 廣修")  # fmt: skip
            bcl_succeeds(env, "municipality", "seal-key", "create", municipality)
            register = home / "register.csv"
            years = [arg for year in tax_years for arg in ("--tax-year", str(year))]
            bcl_succeeds(env, "workload", "register", municipality, "--residents", str(residents),
                 "--seals", *years, "--out", str(register))  # fmt: skip
            bcl_succeeds(env, "push", municipality, str(register), "--full")
            bcl_succeeds(env, "wait", "registry", "replica")
            bcl_succeeds(env, "certificate", "ca")
            bcl_succeeds(env, "certificate", "issue", municipality, "--all")
            bcl_succeeds(env, "wait")
            bcl_succeeds(env | {"BCL_CENTER": "west", "BCL_PEERS": "east"}, "wait")
            # The workers the drill restarts get the window from these settings.
            here = Settings(home=home, answer_window=answer_window)
            east, west = here.topology(["east", "west"])
            yield east, west
        finally:
            subprocess.run(
                [sys.executable, "-m", "pipeline.cli", "down", "--centers", "east,west"],
                env=env,
                capture_output=True,
                timeout=120,
            )


class PowerCut(Appender):
    """A processor's publisher in a process that loses power right after its decisions were
    committed: before sending them, or (``sends``) once the broker has them."""

    def __init__(
        self, settings: Settings, producer: AIOKafkaProducer[bytes, bytes], *, sends: bool
    ) -> None:
        super().__init__(settings, producer)
        self.sends = sends
        self.cuts = 0

    async def append(self, messages: Any, **options: Any) -> int:
        if self.sends:
            await super().append(messages, **options)
        self.cuts += 1
        raise RuntimeError("power cut after the commit")


def jpki_ca(settings: Settings) -> CertificateAuthority:
    """The test JPKI CA of ``settings``' home, made on first use: the CA its certificates are
    verified against."""
    return CertificateAuthority.load_or_create(settings.jpki_home)
