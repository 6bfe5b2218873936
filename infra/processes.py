"""Detached service processes, tracked by PID files so any later command can stop them."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from signal import SIGTERM, Signals

import psutil  # type: ignore[import-untyped]

from pipeline.settings import ServicesNotRunning

LOCALHOST = "127.0.0.1"

# Popen objects of the services this interpreter started. Holding them keeps the garbage collector
# from warning about children still running, and lets `pid_alive` reap a child that died so it does
# not linger as a zombie.
_children: dict[int, subprocess.Popen[bytes]] = {}


class ServiceStartError(ServicesNotRunning):
    """An embedded service exited or never became ready; the message carries its log tail."""


@dataclass(frozen=True)
class ManagedProcess:
    name: str
    pid: int
    log_path: Path

    def failure(self, what: str) -> ServiceStartError:
        return ServiceStartError(
            f"{self.name} (pid {self.pid}) {what}; last lines of {self.log_path}:\n"
            f"{log_tail(self.log_path)}"
        )


def free_port(preferred: int | None = None) -> int:
    """``preferred`` if nothing holds it, else any free port: a service restarted on its old port
    is found again by the clients that kept its address (a worker, a broker's store)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        if preferred is not None:
            # As the servers bind: connections of the service's past life in TIME_WAIT do not
            # keep it from listening there again.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((LOCALHOST, preferred))
                return preferred
            except OSError:
                pass
        sock.bind((LOCALHOST, 0))
        port: int = sock.getsockname()[1]
        return port


def log_tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return "(no log written)"
    return "\n".join(text.splitlines()[-lines:])


def pid_file(data_dir: Path, name: str) -> Path:
    return data_dir / f"{name}.pid"


def start_process(
    name: str,
    argv: Sequence[str | Path],
    data_dir: Path,
    *,
    env: Mapping[str, str] | None = None,
    user: int | None = None,
    group: int | None = None,
) -> ManagedProcess:
    """Start `argv` in its own session, so a Ctrl-C in the launching terminal does not reach it and
    it outlives the command that started it."""
    data_dir.mkdir(parents=True, exist_ok=True)
    log_path = data_dir / f"{name}.log"
    with log_path.open("ab") as log:
        child = subprocess.Popen(
            [str(arg) for arg in argv],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=data_dir,
            env=env,
            start_new_session=True,
            user=user,
            group=group,
            # Dropping to another user must also drop root's supplementary groups.
            extra_groups=[] if user is not None else None,
        )
    _children[child.pid] = child
    pid_file(data_dir, name).write_text(f"{child.pid}\n")
    return ManagedProcess(name=name, pid=child.pid, log_path=log_path)


def start_bcl(
    arguments: Sequence[str],
    log_path: Path,
    pid_file: Path,
    environment: Mapping[str, str] | None = None,
    within: float = 60.0,
) -> ManagedProcess:
    """`bcl ARGUMENTS` in a session of its own, its output appended to ``log_path``, with
    ``environment`` over this one's; it outlives the caller and is stopped by PID. Returns once
    the process has written ``pid_file``, so a `bcl down` right after finds it."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    pid_file.unlink(missing_ok=True)
    with log_path.open("ab") as log:
        child = subprocess.Popen(
            [sys.executable, "-m", "pipeline.cli", *arguments],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env=os.environ | dict(environment or {}),
        )
    _children[child.pid] = child
    process = ManagedProcess(f"bcl {' '.join(arguments)}", child.pid, log_path)
    deadline = time.monotonic() + within
    while not pid_file.exists():
        if child.poll() is not None:
            raise process.failure("exited at start")
        if time.monotonic() > deadline:
            raise process.failure(f"did not start within {within:g} s")
        time.sleep(0.1)
    return process


def pid_alive(pid: int, *, name: str | None = None) -> bool:
    """Whether `pid` runs (zombies count as dead) and, when `name` is given, is that program; the
    name check keeps a PID recorded before a reboot from matching an unrelated process."""
    child = _children.get(pid)
    if child is not None and child.poll() is not None:
        del _children[pid]
        return False
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return False
        return name is None or process.name() == name
    except psutil.NoSuchProcess:
        return False


def read_pid_file(path: Path) -> int | None:
    """The PID in `path` if that process is alive and already ran when the file was written; a
    younger process with the same PID is a stranger that reused it."""
    try:
        pid = int(path.read_text().split()[0])
        written = path.stat().st_mtime
    except (FileNotFoundError, IndexError, ValueError):
        return None
    if not pid_alive(pid):
        return None
    try:
        # create_time has clock-tick resolution, hence the slack.
        if psutil.Process(pid).create_time() > written + 1.0:
            return None
    except psutil.NoSuchProcess:
        return None
    return pid


def stop_pid(pid: int, grace_seconds: float = 10.0, sig: Signals = SIGTERM) -> bool:
    """Send `sig`, wait up to `grace_seconds`, then SIGKILL the process and its descendants.

    Returns whether a live process was stopped."""
    return bool(stop_pids([pid], grace_seconds, sig))


def stop_pids(
    pids: Iterable[int], grace_seconds: float = 10.0, sig: Signals = SIGTERM
) -> list[int]:
    """Send `sig` to every process at once, wait up to `grace_seconds` for all of them, then
    SIGKILL the ones left with their descendants; returns the pids that were alive.

    A process that has exited counts as stopped even while it waits for a parent that is not
    this one to collect it: waiting for it to vanish could take the whole grace."""
    signalled: list[psutil.Process] = []
    for pid in pids:
        try:
            process = psutil.Process(pid)
            if process.status() == psutil.STATUS_ZOMBIE:
                _reap(process)
                continue
            process.send_signal(sig)
        except psutil.NoSuchProcess:
            _forget(pid)
            continue
        signalled.append(process)
    for process in _wait_exited(signalled, grace_seconds):
        _kill_tree(process, grace_seconds)
    for process in signalled:
        _forget(process.pid)
    return [process.pid for process in signalled]


def _wait_exited(processes: Sequence[psutil.Process], timeout: float) -> list[psutil.Process]:
    """Wait up to ``timeout`` for the processes to exit; returns those still running."""
    deadline = time.monotonic() + timeout
    running = list(processes)
    while running:
        for process in running:
            if (child := _children.get(process.pid)) is not None:
                child.poll()  # collects it: a child of this process
        running = [process for process in running if not _exited(process)]
        if not running or time.monotonic() >= deadline:
            break
        time.sleep(0.05)
    return running


def _exited(process: psutil.Process) -> bool:
    try:
        return bool(process.status() == psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return True


def _reap(process: psutil.Process) -> None:
    # Waiting on a zombie child collects it; on anyone else's zombie it returns at once.
    with contextlib.suppress(psutil.NoSuchProcess, psutil.TimeoutExpired):
        process.wait(0)
    _forget(process.pid)


def _forget(pid: int) -> None:
    child = _children.pop(pid, None)
    if child is not None:
        # psutil may have reaped it already; polling then records it as gone, otherwise the Popen
        # object warns on collection that its child is still running.
        child.poll()


def _kill_tree(process: psutil.Process, timeout: float) -> None:
    try:
        victims = [*process.children(recursive=True), process]
    except psutil.NoSuchProcess:
        return
    for victim in victims:
        with contextlib.suppress(psutil.NoSuchProcess):
            victim.kill()
    _wait_exited(victims, timeout)


def wait_for_port(host: str, port: int, timeout: float, proc: ManagedProcess | None = None) -> None:
    """Wait until `host:port` accepts a connection; stop waiting as soon as `proc` dies."""
    deadline = time.monotonic() + timeout
    while True:
        if proc is not None and not pid_alive(proc.pid):
            raise proc.failure(f"exited before listening on {host}:{port}")
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            pass
        if time.monotonic() >= deadline:
            what = f"did not listen on {host}:{port} within {timeout:.0f} s"
            if proc is not None:
                raise proc.failure(what)
            raise ServiceStartError(what)
        time.sleep(0.05)
