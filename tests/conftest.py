"""Session fixtures: one real broker and one real Postgres for the whole run.

Set BCL_KAFKA_BOOTSTRAP and/or BCL_DATABASE_URL to run the suite against services started
elsewhere; otherwise the embedded ones are started here and stopped by PID at the end. Each test
that needs them gets its own database and its own topic prefix, so tests never see each other.
"""

from __future__ import annotations

import os
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
from tests.helpers import with_database


@dataclass(frozen=True)
class Endpoints:
    bootstrap: str
    dsn: str


@pytest.fixture(scope="session")
def endpoints(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Endpoints]:
    from infra.broker import start_broker, stop_broker
    from infra.postgres import start_postgres, stop_postgres

    bootstrap = os.environ.get("BCL_KAFKA_BOOTSTRAP")
    dsn = os.environ.get("BCL_DATABASE_URL")
    base = tmp_path_factory.mktemp("services")
    stops = []
    try:
        if not bootstrap:
            broker = start_broker(base / "broker")
            stops.append(lambda: stop_broker(broker.pid))
            bootstrap = broker.bootstrap
        if not dsn:
            postgres = start_postgres(base / "postgres")
            stops.append(lambda: stop_postgres(postgres.pid))
            dsn = postgres.dsn
        yield Endpoints(bootstrap, dsn)
    finally:
        for stop in reversed(stops):
            stop()


@pytest.fixture
async def platform(endpoints: Endpoints, tmp_path: Path) -> AsyncIterator[Settings]:
    """Settings for a private slice of the session's services: own database, own topics."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(endpoints.dsn)
    try:
        await admin.execute(f"CREATE DATABASE {name}")
    finally:
        await admin.close()
    settings = Settings(
        home=tmp_path / "bcl",
        kafka_bootstrap=endpoints.bootstrap,
        database_url=with_database(endpoints.dsn, name),
        topic_prefix=f"{name}.",
        partitions=3,
    )
    async with connect(settings) as connection:
        await migrate_all(connection)
    await create_topics(settings)
    yield settings
    admin = await asyncpg.connect(endpoints.dsn)
    try:
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    finally:
        await admin.close()
