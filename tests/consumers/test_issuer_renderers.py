"""The issuer's PDF renderer processes (`consumers/issuer/projection.py`, `renderer_pool`)."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import psutil  # type: ignore[import-untyped]
import pytest

from consumers.issuer import projection
from consumers.issuer.document import certificate_template
from pipeline.settings import Settings


def _template_built() -> tuple[int, int]:
    return os.getpid(), certificate_template.cache_info().currsize


def test_each_renderer_builds_the_template_before_its_first_drawing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first kiosk after a start would otherwise wait for the imports and the font."""
    monkeypatch.setattr(projection, "_renderers", {})
    pool = projection.renderer_pool(Settings(home=tmp_path, render_processes=2))
    assert pool is not None
    try:
        answers = [pool.submit(_template_built).result(timeout=60) for _ in range(6)]
    finally:
        pool.shutdown()

    assert {built for _, built in answers} == {1}
    assert os.getpid() not in {pid for pid, _ in answers}


def test_the_renderers_end_with_a_worker_killed_outright(tmp_path: Path) -> None:
    """A SIGKILLed worker cannot stop its pool: its renderers, and their forkserver, must go."""
    worker = subprocess.Popen(
        [sys.executable, "-c", _WORKER, str(tmp_path)],
        cwd=Path(__file__).resolve().parents[2],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert worker.stdout is not None
        assert worker.stdout.readline() == "ready\n"
        forkserver = next(
            process
            for process in psutil.Process(worker.pid).children()
            if "forkserver" in " ".join(process.cmdline())
        )
        renderers = forkserver.children()
        assert len(renderers) == 2
    finally:
        worker.kill()
        worker.wait()

    _, alive = psutil.wait_procs([*renderers, forkserver], timeout=30)
    for process in alive:
        process.kill()
    assert alive == []


# A worker's part: start the pool, wait for a drawing process to answer, and wait to be killed.
_WORKER = """
import sys, time
from pathlib import Path
from consumers.issuer.projection import renderer_pool
from pipeline.settings import Settings

if __name__ == "__main__":
    pool = renderer_pool(Settings(home=Path(sys.argv[1]), render_processes=2))
    pool.submit(sum, [1]).result()
    print("ready", flush=True)
    time.sleep(600)
"""


def test_a_renderer_that_cannot_watch_its_worker_still_draws(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Without pidfds (an old kernel, a seccomp profile) the watch is lost, not the pool."""

    def no_pidfds(pid: int) -> int:
        raise OSError(errno.ENOSYS, "Function not implemented")

    monkeypatch.setattr(os, "pidfd_open", no_pidfds)
    projection._start_renderer(os.getpid())

    assert "cannot watch worker" in caplog.text


def test_no_renderer_processes_draw_in_the_worker(tmp_path: Path) -> None:
    assert projection.renderer_pool(Settings(home=tmp_path, render_processes=0)) is None
