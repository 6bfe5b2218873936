"""Session fixtures: one real broker and one real Postgres for the whole run.

Set BCL_KAFKA_BOOTSTRAP and/or BCL_DATABASE_URL to run the suite against services started
elsewhere; otherwise the embedded ones are started here and stopped by PID at the end. Each test
that needs them gets its own database and its own topic prefix, so tests never see each other.
"""

from __future__ import annotations

import os
import signal
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest

from pipeline.database import connect
from pipeline.kafka import create_topics
from pipeline.migrations import migrate_all
from pipeline.settings import Settings
from tests.helpers import scratch_folder, with_database


def pytest_configure(config: pytest.Config) -> None:
    # A run stopped with SIGTERM (a CI timeout, `timeout`, a closed terminal) tears its fixtures
    # down as Ctrl-C does; without this the session's broker and Postgres outlived it.
    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"stopped by signal {signum}")

    signal.signal(signal.SIGTERM, interrupt)


@dataclass(frozen=True)
class Endpoints:
    bootstrap: str
    dsn: str  # the application role's, as the pipeline connects
    admin_dsn: str  # one that may create databases (the embedded server's superuser)
    owner: str | None  # the role that owns the databases made for tests, if not admin_dsn's

    async def create_database(self) -> tuple[str, str]:
        """A new empty database, as `bcl up` makes one: its name and the application's DSN."""
        name = f"t_{uuid.uuid4().hex[:12]}"
        admin = await asyncpg.connect(self.admin_dsn)
        try:
            owner = f" OWNER {self.owner}" if self.owner else ""
            await admin.execute(f"CREATE DATABASE {name}{owner}")
        finally:
            await admin.close()
        return name, with_database(self.dsn, name)

    async def drop_database(self, name: str) -> None:
        admin = await asyncpg.connect(self.admin_dsn)
        try:
            await admin.execute(f"DROP DATABASE {name} WITH (FORCE)")
        finally:
            await admin.close()


@pytest.fixture
def scratch() -> Iterator[Path]:
    """An empty folder for a test's service data, removed afterwards."""
    with scratch_folder() as path:
        yield path


@pytest.fixture(scope="session")
def endpoints() -> Iterator[Endpoints]:
    from infra.broker import start_broker, stop_broker
    from infra.postgres import APPLICATION_ROLE, start_postgres, stop_postgres

    bootstrap = os.environ.get("BCL_KAFKA_BOOTSTRAP")
    dsn = os.environ.get("BCL_DATABASE_URL")
    admin_dsn, owner = dsn, None
    stops = []
    with scratch_folder() as base:
        try:
            if not bootstrap:
                broker = start_broker(base / "broker")
                stops.append(lambda: stop_broker(broker.pid))
                bootstrap = broker.bootstrap
            if not dsn:
                postgres = start_postgres(base / "postgres")
                stops.append(lambda: stop_postgres(postgres.pid))
                dsn, admin_dsn, owner = postgres.dsn, postgres.admin_dsn, APPLICATION_ROLE
            assert admin_dsn is not None
            yield Endpoints(bootstrap, dsn, admin_dsn, owner)
        finally:
            for stop in reversed(stops):
                stop()


@pytest.fixture(scope="session")
def west_bootstrap(endpoints: Endpoints) -> Iterator[str]:
    """A second broker, the west center's cluster, for the tests that run two centers (started
    on first use; BCL_WEST_KAFKA_BOOTSTRAP points at one started elsewhere)."""
    from infra.broker import start_broker, stop_broker

    external = os.environ.get("BCL_WEST_KAFKA_BOOTSTRAP")
    if external:
        yield external
        return
    with scratch_folder() as base:
        broker = start_broker(base / "west-broker", cluster_id="west")
        try:
            yield broker.bootstrap
        finally:
            stop_broker(broker.pid)


@pytest.fixture
async def db_dsn(endpoints: Endpoints) -> AsyncIterator[str]:
    """The address of a database of its own, so each test starts with no schema applied."""
    name, dsn = await endpoints.create_database()
    yield dsn
    await endpoints.drop_database(name)


@pytest.fixture
async def db(db_dsn: str) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(db_dsn)
    try:
        yield connection
    finally:
        await connection.close()


@pytest.fixture
async def platform(endpoints: Endpoints, db_dsn: str, tmp_path: Path) -> Settings:
    """Settings for a private slice of the session's services: own database, own topics."""
    settings = Settings(
        home=tmp_path / "bcl",
        kafka_bootstrap=endpoints.bootstrap,
        database_url=db_dsn,
        topic_prefix=f"{db_dsn.rsplit('/', 1)[-1]}.",
        partitions=3,
    )
    async with connect(settings) as connection:
        await migrate_all(connection)
    await create_topics(settings)
    return settings
