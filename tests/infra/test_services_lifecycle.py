from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import psutil  # type: ignore[import-untyped]
import pytest

from infra.processes import pid_alive
from infra.services import down, running_workers, start_workers, status, up
from pipeline.agents import WORKER_ROLES
from pipeline.settings import Settings


def center(home: Path, kafka_bootstrap: str | None = None) -> Settings:
    # Explicit Nones, so a BCL_* variable of the shell running the tests cannot point them away.
    return Settings(home=home, center="east", kafka_bootstrap=kafka_bootstrap, database_url=None)


def processes_under(folder: Path) -> list[psutil.Process]:
    found = []
    for process in psutil.process_iter(["cwd", "cmdline"]):
        where = [process.info["cwd"] or "", *(process.info["cmdline"] or [])]
        if any(str(folder) in part for part in where):
            found.append(process)
    return found


@pytest.fixture
def home(scratch: Path) -> Iterator[Path]:
    yield scratch
    down(center(scratch))


def test_up_is_idempotent_and_down_leaves_nothing_running(home: Path) -> None:
    settings = center(home)
    services = up(settings)
    assert up(settings) == services

    # Settings caches services.json, so a fresh one sees what `up` wrote.
    fresh = center(home)
    assert fresh.bootstrap == services.kafka_bootstrap
    assert fresh.dsn == services.database_url
    recorded = json.loads(settings.services_file.read_text())
    assert recorded["broker_pid"] == services.broker_pid
    assert recorded["postgres_pid"] == services.postgres_pid
    assert recorded["storage_pid"] == services.storage_pid
    assert recorded["broker_store"] == services.storage_endpoint
    assert all(service["alive"] for name, service in status(settings).items() if name != "worker")

    assert status(settings)["worker"] == {"pid": None, "alive": False, "address": None}
    worker = subprocess.Popen(["sleep", "300"], start_new_session=True)
    issuance = subprocess.Popen(["sleep", "300"], start_new_session=True)
    (settings.center_home / "worker.pid").write_text(f"{worker.pid}\n")
    (settings.center_home / "worker-issuance.pid").write_text(f"{issuance.pid}\n")
    assert status(settings)["worker"] == {"pid": worker.pid, "alive": True, "address": None}
    assert status(settings)["worker-issuance"]["pid"] == issuance.pid

    stopped = down(settings)
    assert stopped == [
        f"worker-issuance (pid {issuance.pid})",
        f"worker (pid {worker.pid})",
        f"broker (pid {services.broker_pid})",
        f"storage (pid {services.storage_pid})",
        f"postgres (pid {services.postgres_pid})",
    ]
    assert worker.wait(timeout=5) is not None
    assert issuance.wait(timeout=5) is not None
    assert not settings.services_file.exists()
    assert processes_under(home) == []
    assert down(settings) == []
    assert status(settings)["broker"]["alive"] is False


def test_up_replaces_a_dead_service_and_keeps_the_live_one(home: Path) -> None:
    settings = center(home)
    before = up(settings)
    assert before.postgres_pid is not None
    os.kill(before.postgres_pid, signal.SIGKILL)
    psutil.Process(before.postgres_pid).wait(timeout=10)

    after = up(settings)
    # Restarting a live broker would cut off every client connected to it.
    assert after.broker_pid == before.broker_pid
    assert after.storage_pid == before.storage_pid
    assert after.kafka_bootstrap == before.kafka_bootstrap
    assert after.postgres_pid != before.postgres_pid
    assert after.postgres_pid is not None
    assert pid_alive(after.postgres_pid)
    # On its old port: a worker that kept the address reconnects to it.
    assert after.database_url == before.database_url
    assert center(home).dsn == after.database_url


def test_an_external_broker_is_not_started(home: Path) -> None:
    settings = center(home, kafka_bootstrap="kafka.example:9092")
    services = up(settings)
    assert services.broker_pid is None
    assert services.kafka_bootstrap == "kafka.example:9092"
    assert services.postgres_pid is not None
    assert "kafka_bootstrap" not in json.loads(settings.services_file.read_text())
    assert status(settings)["broker"] == {
        "pid": None,
        "alive": None,
        "address": "kafka.example:9092",
    }
    assert not (settings.center_home / "broker").exists()
    assert down(settings) == [f"postgres (pid {services.postgres_pid})"]


def test_a_role_whose_worker_runs_is_not_started_twice(scratch: Path) -> None:
    """`bcl worker --detach` run twice: the second finds both roles' workers and starts none.
    This test's own process stands for them, under the pid files they would write."""
    settings = center(scratch)
    settings.center_home.mkdir(parents=True)
    for role in WORKER_ROLES:
        (settings.center_home / role.pid_file_name).write_text(f"{os.getpid()}\n")

    assert start_workers(settings) == []
    assert running_workers(settings) == {role.file_stem: os.getpid() for role in WORKER_ROLES}
    issuer_only = running_workers(settings, agents="issuer")
    assert issuer_only == {"worker-issuance": os.getpid()}
