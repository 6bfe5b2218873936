from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import asyncpg
import psutil  # type: ignore[import-untyped]
import pytest

from infra.postgres import (
    APPLICATION_ROLE,
    CREDENTIALS_FILE,
    PROCESS_NAME,
    SYSTEM_USER,
    start_postgres,
    stop_postgres,
)
from infra.processes import ServiceStartError, pid_alive
from pipeline.settings import PROJECT_ROOT


async def fetch(dsn: str, query: str) -> object:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetchval(query)
    finally:
        await conn.close()


async def test_postgres_serves_the_bcl_database_on_localhost_only(scratch: Path) -> None:
    handle = start_postgres(scratch / "postgres")
    try:
        assert pid_alive(handle.pid, name=PROCESS_NAME)
        assert await fetch(handle.dsn, "SELECT current_database()") == "bcl"
        # Durable: the vault, the intake ledger and the outboxes cannot be rebuilt.
        assert await fetch(handle.dsn, "SHOW fsync") == "on"
        assert await fetch(handle.dsn, "SHOW full_page_writes") == "on"
        assert await fetch(handle.dsn, "SHOW synchronous_commit") == "on"
        assert await fetch(handle.dsn, "SHOW default_statistics_target") == "10"
        sockets = await fetch(handle.admin_dsn, "SHOW unix_socket_directories")
        assert sockets == str(scratch / "postgres" / "run")
        server = psutil.Process(handle.pid)
        listening = {
            conn.laddr.ip
            for conn in server.net_connections(kind="inet")
            if conn.status == psutil.CONN_LISTEN
        }
        assert listening == {"127.0.0.1"}
        if os.geteuid() == 0:
            assert server.username() == SYSTEM_USER
    finally:
        assert stop_postgres(handle.pid)
    assert not pid_alive(handle.pid)


async def test_a_restart_reuses_the_data_folder(scratch: Path) -> None:
    data_dir = scratch / "postgres"
    first = start_postgres(data_dir)
    try:
        conn = await asyncpg.connect(first.dsn)
        try:
            await conn.execute("CREATE TABLE kept (n int); INSERT INTO kept VALUES (42)")
        finally:
            await conn.close()
    finally:
        stop_postgres(first.pid)
    cluster_made = (data_dir / "data" / "PG_VERSION").stat().st_mtime_ns

    second = start_postgres(data_dir)
    try:
        assert await fetch(second.dsn, "SELECT n FROM kept") == 42
    finally:
        stop_postgres(second.pid)
    assert (data_dir / "data" / "PG_VERSION").stat().st_mtime_ns == cluster_made


async def test_a_killed_server_is_cleaned_up_at_the_next_start(scratch: Path) -> None:
    data_dir = scratch / "postgres"
    first = start_postgres(data_dir)
    backends = psutil.Process(first.pid).children()
    os.kill(first.pid, signal.SIGKILL)

    second = start_postgres(data_dir)
    try:
        assert await fetch(second.dsn, "SELECT 1") == 1
    finally:
        stop_postgres(second.pid)
    assert not any(pid_alive(backend.pid) for backend in backends)


# Starts a server and never reaps it: killed, it stays a zombie, as it does for a while when its
# launcher has exited and PID 1 adopted it.
LAUNCHER = """
import signal, sys
from pathlib import Path
from infra.postgres import start_postgres
print(start_postgres(Path(sys.argv[1])).pid, flush=True)
signal.pause()
"""


async def test_a_killed_server_left_a_zombie_by_its_parent_does_not_block_the_next_start(
    scratch: Path,
) -> None:
    data_dir = scratch / "postgres"
    launcher = subprocess.Popen(
        [sys.executable, "-c", LAUNCHER, str(data_dir)],
        cwd=PROJECT_ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert launcher.stdout is not None
        postmaster = int(launcher.stdout.readline())
        os.kill(postmaster, signal.SIGKILL)
        while psutil.Process(postmaster).status() != psutil.STATUS_ZOMBIE:  # noqa: ASYNC110
            await asyncio.sleep(0.05)

        second = start_postgres(data_dir)
        try:
            assert await fetch(second.dsn, "SELECT 1") == 1
        finally:
            stop_postgres(second.pid)
    finally:
        launcher.kill()
        launcher.wait()


async def test_every_login_needs_a_password_and_the_pipeline_is_no_superuser(
    scratch: Path,
) -> None:
    handle = start_postgres(scratch / "postgres")
    try:
        role = await fetch(
            handle.dsn,
            "SELECT row(rolsuper, rolcreaterole, rolcreatedb)::text FROM pg_roles "
            "WHERE rolname = current_user",
        )
        assert role == "(f,f,f)"
        owner = await fetch(
            handle.dsn,
            "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = current_database()",
        )
        assert owner == APPLICATION_ROLE
        # Who reaches the port without the password gets nothing, the superuser included.
        address = handle.dsn.split("@", 1)[1]
        for dsn in (
            f"postgresql://{APPLICATION_ROLE}@{address}",
            f"postgresql://{APPLICATION_ROLE}:wrong@{address}",
            f"postgresql://postgres@{address}",
        ):
            with pytest.raises(
                (asyncpg.InvalidPasswordError, asyncpg.InvalidAuthorizationSpecificationError)
            ):
                await fetch(dsn, "SELECT 1")
        # Another role that can log in may not even connect to the pipeline's database.
        admin = await asyncpg.connect(handle.admin_dsn)
        try:
            await admin.execute("CREATE ROLE stranger LOGIN PASSWORD 'stranger'")
        finally:
            await admin.close()
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await fetch(f"postgresql://stranger:stranger@{address}", "SELECT 1")
        kept = scratch / "postgres" / CREDENTIALS_FILE
        assert kept.stat().st_mode & 0o777 == 0o600
    finally:
        stop_postgres(handle.pid)


def test_a_cluster_made_without_passwords_is_refused_with_what_to_do(scratch: Path) -> None:
    data_dir = scratch / "postgres"
    stop_postgres(start_postgres(data_dir).pid)
    (data_dir / CREDENTIALS_FILE).unlink()
    with pytest.raises(ServiceStartError, match="made before BCL required passwords"):
        start_postgres(data_dir)


def test_a_failed_start_reports_the_server_log(scratch: Path) -> None:
    data_dir = scratch / "postgres"
    stop_postgres(start_postgres(data_dir).pid)
    with (data_dir / "data" / "postgresql.conf").open("a") as conf:
        conf.write("\nno_such_setting = 1\n")
    with pytest.raises(ServiceStartError, match="no_such_setting"):
        start_postgres(data_dir)


async def test_a_data_folder_too_deep_for_a_socket_path_serves_tcp_only(scratch: Path) -> None:
    handle = start_postgres(scratch / ("deep" * 20) / "postgres")
    try:
        assert await fetch(handle.admin_dsn, "SHOW unix_socket_directories") == ""
    finally:
        stop_postgres(handle.pid)
