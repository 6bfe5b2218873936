"""One center's embedded services: start them, find them again, stop them.

Everything lives under `settings.center_home`: `storage/` (the log's objects), `broker/` and
`postgres/` hold each service's data, log and PID file, and `services.json` records the addresses
every other command reads through `Settings`. A service configured externally
(`BCL_KAFKA_BOOTSTRAP`, `BCL_DATABASE_URL`) is never started here.

A service that died is started again on the port it had, when that port is free, so the
processes that kept its address (a worker, the broker for its store) find it again.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypedDict

from infra import broker, postgres, storage
from infra.processes import (
    ManagedProcess,
    pid_alive,
    pid_file,
    read_pid_file,
    start_bcl,
    stop_pid,
    stop_pids,
)
from pipeline.agents import WORKER_ROLES, WorkerRole, role_of
from pipeline.settings import Settings

WORKER_PID_FILES = ("worker.pid", "worker-*.pid")  # written by `bcl worker`, one per process
MIRROR_PID_FILE = "mirror-from-{source}.pid"  # written by `bcl mirror run`, in the target's home


@dataclass(frozen=True)
class Services:
    kafka_bootstrap: str
    database_url: str
    # None where the service is external.
    broker_pid: int | None
    postgres_pid: int | None
    # The embedded store under the broker's log; None for an external broker or memory storage.
    storage_pid: int | None = None
    storage_endpoint: str | None = None


class ServiceStatus(TypedDict):
    pid: int | None
    # None for an external service: it is not ours to watch.
    alive: bool | None
    address: str | None


@dataclass(frozen=True)
class _Embedded:
    """How one embedded service is recorded in services.json and recognised among processes."""

    label: str
    address_key: str
    pid_key: str
    process_name: str
    stop: Callable[[int], bool]

    def data_dir(self, settings: Settings) -> Path:
        return settings.center_home / self.label

    def recorded(self, record: dict[str, object]) -> tuple[str, int] | None:
        """The recorded address and PID if that process is still running."""
        address, pid = record.get(self.address_key), record.get(self.pid_key)
        if (
            isinstance(address, str)
            and isinstance(pid, int)
            and pid_alive(pid, name=self.process_name)
        ):
            return address, pid
        return None

    def running_pids(self, settings: Settings, record: dict[str, object]) -> set[int]:
        """Every live process of this service the records know of: the PID file covers a launch
        interrupted before services.json was written."""
        candidates = {
            record.get(self.pid_key),
            read_pid_file(pid_file(self.data_dir(settings), self.label)),
        }
        return {
            pid
            for pid in candidates
            if isinstance(pid, int) and pid_alive(pid, name=self.process_name)
        }


_BROKER = _Embedded(
    broker.SERVICE_NAME, "kafka_bootstrap", "broker_pid", broker.PROCESS_NAME, broker.stop_broker
)
_STORAGE = _Embedded(
    storage.SERVICE_NAME,
    "storage_endpoint",
    "storage_pid",
    storage.PROCESS_NAME,
    storage.stop_storage,
)
_POSTGRES = _Embedded(
    postgres.SERVICE_NAME,
    "database_url",
    "postgres_pid",
    postgres.PROCESS_NAME,
    postgres.stop_postgres,
)


def up(settings: Settings) -> Services:
    """Start whatever embedded service is not already running and record it; idempotent.

    A service that is still up is kept, never restarted. The broker is started again only when
    it died or its store now answers at another address."""
    settings.center_home.mkdir(parents=True, exist_ok=True)
    with _exclusive(settings):
        record = _read_record(settings)
        started: list[tuple[_Embedded, int]] = []
        try:
            store: tuple[str, int] | tuple[None, None] = (None, None)
            if settings.kafka_bootstrap is not None:
                bootstrap, broker_pid = settings.kafka_bootstrap, None
            else:
                if settings.broker_storage == "s3":
                    store = _STORAGE.recorded(record) or _start(
                        _STORAGE, settings, record, started, _start_storage
                    )
                kept = _BROKER.recorded(record)
                if kept is not None and record.get("broker_store") == store[0]:
                    bootstrap, broker_pid = kept
                else:
                    bootstrap, broker_pid = _start(
                        _BROKER,
                        settings,
                        record,
                        started,
                        lambda folder, port: _start_broker(settings, folder, port, store[0]),
                    )

            if settings.database_url is not None:
                dsn, postgres_pid = settings.database_url, None
            else:
                dsn, postgres_pid = _POSTGRES.recorded(record) or _start(
                    _POSTGRES, settings, record, started, _start_postgres
                )
        except BaseException:
            for service, pid in started:
                service.stop(pid)
            raise
        services = Services(bootstrap, dsn, broker_pid, postgres_pid, store[1], store[0])
        _write_record(settings, services)
        return services


def _start(
    service: _Embedded,
    settings: Settings,
    record: dict[str, object],
    started: list[tuple[_Embedded, int]],
    launch: Callable[[Path, int | None], tuple[str, int]],
) -> tuple[str, int]:
    """Stop what is left of ``service``, launch it on its recorded port if it had one, note it."""
    _stop_leftovers(service, settings, record)
    address, pid = launch(service.data_dir(settings), _recorded_port(record, service))
    started.append((service, pid))
    return address, pid


def _start_storage(folder: Path, port: int | None) -> tuple[str, int]:
    handle = storage.start_storage(folder, port=port)
    return handle.endpoint, handle.pid


def _start_broker(
    settings: Settings, folder: Path, port: int | None, store: str | None
) -> tuple[str, int]:
    if store is not None:
        # The broker that ran before may have died mid-produce (it is not running now).
        storage.release_unwritten_claims(store, settings.center)
    handle = broker.start_broker(folder, cluster_id=settings.center, store=store, port=port)
    return handle.bootstrap, handle.pid


def _start_postgres(folder: Path, port: int | None) -> tuple[str, int]:
    handle = postgres.start_postgres(folder, port=port)
    return handle.dsn, handle.pid


def _recorded_port(record: dict[str, object], service: _Embedded) -> int | None:
    """The port of the service's last recorded address (host:port, a URL or a DSN)."""
    address = record.get(service.address_key)
    if not isinstance(address, str):
        return None
    port = address.rsplit(":", 1)[-1].split("/", 1)[0]
    return int(port) if port.isdigit() else None


def down(settings: Settings) -> list[str]:
    """Stop the center's worker and embedded services by PID; returns what was stopped."""
    if not settings.center_home.is_dir():
        return []
    stopped: list[str] = []
    with _exclusive(settings):
        record = _read_record(settings)
        # The workers and the mirrors copying into this center first: they would only log
        # errors while its broker and database go away.
        # All at once: each may take its whole grace to stop.
        process_files = [
            *worker_pid_files(settings),
            *sorted(settings.center_home.glob(MIRROR_PID_FILE.format(source="*"))),
        ]
        processes = {
            pid: path.stem
            for path in process_files
            if (pid := read_pid_file(path)) is not None and pid != os.getpid()
        }
        stopped += [f"{processes[pid]} (pid {pid})" for pid in stop_pids(processes)]
        for path in process_files:
            path.unlink(missing_ok=True)
        # The broker before its store, so it writes nothing while the store goes away.
        for service in (_BROKER, _STORAGE, _POSTGRES):
            for pid in sorted(service.running_pids(settings, record)):
                if service.stop(pid):
                    stopped.append(f"{service.label} (pid {pid})")
            pid_file(service.data_dir(settings), service.label).unlink(missing_ok=True)
        settings.services_file.unlink(missing_ok=True)
    return stopped


def destroy_log(settings: Settings) -> None:
    """Kill the center's embedded store and delete the log it held, as a lost disk would: what
    the failover drill's lost center suffers. The next `up` starts an empty log on new
    addresses, which the clients of the lost one do not reach before its topics are restored."""
    with _exclusive(settings):
        record = _read_record(settings)
        for pid in _STORAGE.running_pids(settings, record):
            stop_pid(pid, grace_seconds=0, sig=signal.SIGKILL)
        shutil.rmtree(_STORAGE.data_dir(settings), ignore_errors=True)
        lost = {_BROKER.address_key, _STORAGE.address_key, "broker_store"}
        _write_raw_record(settings, {k: v for k, v in record.items() if k not in lost})


def worker_pid_files(settings: Settings) -> list[Path]:
    """The pid files of the center's worker processes, whether or not they still run."""
    return sorted(path for name in WORKER_PID_FILES for path in settings.center_home.glob(name))


def worker_pids(settings: Settings) -> list[int]:
    """The center's running worker processes."""
    return [pid for path in worker_pid_files(settings) if (pid := read_pid_file(path)) is not None]


def mirror_pid_file(source: Settings, target: Settings) -> Path:
    return target.center_home / MIRROR_PID_FILE.format(source=source.center)


def start_workers(settings: Settings, agents: str | None = None) -> list[ManagedProcess]:
    """The center's live worker in the background (`bcl down` stops it): a process per role of
    ``WORKER_ROLES``, or one process hosting ``agents`` (comma-separated). A role whose worker
    runs already is left to it: two would race for the same partitions, and `bcl down` would
    know only the newer one."""
    running = running_workers(settings, agents)
    return [
        start_bcl(
            ["worker", "--role", role.name]
            if role in WORKER_ROLES
            else ["worker", "--agents", ",".join(role.agents)],
            settings.center_home / f"{role.file_stem}.log",
            settings.center_home / role.pid_file_name,
            center_environment(settings),
        )
        for role in _worker_roles(agents)
        if role.file_stem not in running
    ]


def running_workers(settings: Settings, agents: str | None = None) -> dict[str, int]:
    """The PID of each role's worker that runs now (of ``agents``' role, when given)."""
    running = {
        role.file_stem: read_pid_file(settings.center_home / role.pid_file_name)
        for role in _worker_roles(agents)
    }
    return {name: pid for name, pid in running.items() if pid is not None}


def _worker_roles(agents: str | None) -> tuple[WorkerRole, ...]:
    return WORKER_ROLES if agents is None else (role_of(agents.split(",")),)


def start_mirror(source: Settings, target: Settings) -> ManagedProcess:
    """`bcl mirror run` from ``source`` into ``target`` in the background (`bcl down` of the
    target stops it)."""
    return start_bcl(
        ["mirror", "run", "--from", source.center, "--to", target.center],
        target.center_home / f"mirror-from-{source.center}.log",
        mirror_pid_file(source, target),
        center_environment(target),
    )


def center_environment(settings: Settings) -> dict[str, str]:
    """What makes a process started with this environment that center, with the same home
    and the same answer window (a worker expires requests by it, the kiosks wait by it)."""
    return {
        "BCL_HOME": str(settings.home),
        "BCL_CENTER": settings.center,
        "BCL_PEERS": ",".join(settings.peers),
        "BCL_ANSWER_WINDOW": str(settings.answer_window),
    }


def status(settings: Settings) -> dict[str, ServiceStatus]:
    record = _read_record(settings)
    report: dict[str, ServiceStatus] = {}
    for service, external in (
        (_BROKER, settings.kafka_bootstrap),
        (_STORAGE, settings.kafka_bootstrap),
        (_POSTGRES, settings.database_url),
    ):
        if service is _STORAGE and (external is not None or settings.broker_storage == "memory"):
            continue  # no store of ours under that log
        if external is not None:
            report[service.label] = ServiceStatus(pid=None, alive=None, address=external)
            continue
        pid = record.get(service.pid_key)
        address = record.get(service.address_key)
        report[service.label] = ServiceStatus(
            pid=pid if isinstance(pid, int) else None,
            alive=isinstance(pid, int) and pid_alive(pid, name=service.process_name),
            address=address if isinstance(address, str) else None,
        )
    every_agent = settings.center_home / role_of(None).pid_file_name
    for path in worker_pid_files(settings) or [every_agent]:
        worker = read_pid_file(path)
        report[path.stem] = ServiceStatus(pid=worker, alive=worker is not None, address=None)
    return report


def _stop_leftovers(service: _Embedded, settings: Settings, record: dict[str, object]) -> None:
    # A process whose record was lost or went stale would otherwise run on unseen, holding memory
    # and, for Postgres, its data folder.
    for pid in service.running_pids(settings, record):
        service.stop(pid)


@contextmanager
def _exclusive(settings: Settings) -> Iterator[None]:
    """Serialise `up` and `down` of one center across processes."""
    with (settings.center_home / ".services.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _read_record(settings: Settings) -> dict[str, object]:
    try:
        data = json.loads(settings.services_file.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_record(settings: Settings, services: Services) -> None:
    record: dict[str, object] = {}
    # Only what `up` manages: an external address stays in the environment where it was set.
    if services.storage_pid is not None:
        record |= {
            "storage_endpoint": services.storage_endpoint,
            "storage_pid": services.storage_pid,
        }
    if services.broker_pid is not None:
        record |= {
            "kafka_bootstrap": services.kafka_bootstrap,
            "broker_pid": services.broker_pid,
            "broker_store": services.storage_endpoint,
        }
    if services.postgres_pid is not None:
        record |= {"database_url": services.database_url, "postgres_pid": services.postgres_pid}
    _write_raw_record(settings, record)


def _write_raw_record(settings: Settings, record: dict[str, object]) -> None:
    # Written whole and renamed, so a reader never sees half a file.
    scratch = settings.services_file.with_suffix(".json.tmp")
    scratch.write_text(json.dumps(record, indent=2) + "\n")
    scratch.replace(settings.services_file)
