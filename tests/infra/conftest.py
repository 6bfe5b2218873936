"""Scratch folders for service data, and a Postgres server with a fresh database per test."""

from __future__ import annotations

import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from infra.postgres import PostgresHandle, start_postgres, stop_postgres


@contextmanager
def _scratch_folder() -> Iterator[Path]:
    # Not pytest's tmp_path: every pytest session that starts resets /tmp/pytest-of-<user> to mode
    # 0700, and under root that locks the unprivileged Postgres account out of a data folder below
    # it, breaking a server that is starting in another session at that moment.
    path = Path(tempfile.mkdtemp(prefix="bcl-infra-test-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def scratch() -> Iterator[Path]:
    """An empty folder for a test's service data, removed afterwards."""
    with _scratch_folder() as path:
        yield path


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresHandle]:
    with _scratch_folder() as folder:
        handle = start_postgres(folder / "postgres")
        try:
            yield handle
        finally:
            stop_postgres(handle.pid)


def with_database(dsn: str, database: str) -> str:
    return urlunsplit(urlsplit(dsn)._replace(path=f"/{database}"))


@pytest.fixture
async def db(postgres_server: PostgresHandle) -> AsyncIterator[asyncpg.Connection]:
    """A connection to a database of its own, so each test starts with no schema applied."""
    name = f"test_{uuid.uuid4().hex}"
    admin = await asyncpg.connect(postgres_server.dsn)
    try:
        await admin.execute(f"CREATE DATABASE {name}")
        conn = await asyncpg.connect(with_database(postgres_server.dsn, name))
        try:
            yield conn
        finally:
            await conn.close()
        await admin.execute(f"DROP DATABASE {name} WITH (FORCE)")
    finally:
        await admin.close()
