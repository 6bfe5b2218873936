"""The issuer's PDF renderer processes (`consumers/issuer/projection.py`, `renderer_pool`)."""

from __future__ import annotations

import os
from pathlib import Path

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


def test_no_renderer_processes_draw_in_the_worker(tmp_path: Path) -> None:
    assert projection.renderer_pool(Settings(home=tmp_path, render_processes=0)) is None
