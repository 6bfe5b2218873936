"""Stopping processes by PID: all at once, the stubborn ones killed with their children."""

from __future__ import annotations

import subprocess
import sys
import time

import psutil  # type: ignore[import-untyped]

from infra.processes import stop_pids


def stubborn(with_child: bool) -> tuple[subprocess.Popen[str], list[int]]:
    """A process ignoring SIGTERM, with a child ignoring it too if ``with_child``."""
    script = (
        "import signal, subprocess, sys, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "if sys.argv[1] == 'parent':\n"
        "    subprocess.Popen([sys.executable, '-c', sys.argv[2], 'child', sys.argv[2]])\n"
        "print('ready', flush=True)\n"
        "time.sleep(120)\n"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", script, "parent" if with_child else "child", script],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    assert process.stdout.readline() == "ready\n"
    deadline = time.monotonic() + 10
    children: list[int] = []
    while with_child and not children and time.monotonic() < deadline:
        children = [c.pid for c in psutil.Process(process.pid).children()]
        time.sleep(0.05)
    return process, children


def test_stubborn_processes_are_stopped_together_with_their_children() -> None:
    first, children = stubborn(with_child=True)
    second, _ = stubborn(with_child=False)
    started = time.monotonic()

    stopped = stop_pids([first.pid, second.pid, 2**22 + 1], grace_seconds=1.0)

    # One grace for both, not one each; the pid nobody has is not reported.
    assert time.monotonic() - started < 1.9
    assert stopped == [first.pid, second.pid]
    assert first.wait(5) == -9
    assert second.wait(5) == -9
    assert children
    for child in children:
        assert not psutil.pid_exists(child) or psutil.Process(child).status() == "zombie"


def test_a_process_that_ends_at_once_is_not_waited_for() -> None:
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    started = time.monotonic()

    assert stop_pids([sleeper.pid], grace_seconds=30.0) == [sleeper.pid]
    assert time.monotonic() - started < 5
    assert sleeper.poll() is not None
