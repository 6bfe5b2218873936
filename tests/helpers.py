"""Helpers shared by tests that run the platform's processes."""

from __future__ import annotations

import os
from urllib.parse import urlsplit, urlunsplit

from pipeline.settings import Settings


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
