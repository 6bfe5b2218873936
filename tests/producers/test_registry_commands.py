"""`bcl municipality add/show/list/update` through the real command line and services."""

from __future__ import annotations

import subprocess
import sys

from pipeline.settings import Settings
from tests.helpers import settings_env


def bcl(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pipeline.cli", *args],
        env={**settings_env(settings), "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_a_municipality_joins_changes_and_is_listed(platform: Settings) -> None:
    added = bcl(
        platform, "municipality", "add", "141305", "--name", "川崎市", "--class",
        "designated_city", "--population", "1540000", "--joined", "2023-04-01",
        "--fee", "juminhyo=300@2023-04-01",
    )  # fmt: skip
    assert added.returncode == 0, added.stderr + added.stdout
    assert (platform.home / "keys" / "141305.key.pem").exists()

    again = bcl(platform, "municipality", "add", "141305", "--name", "川崎市")
    assert again.returncode == 2
    assert "already registered" in again.stderr
    assert "Traceback" not in again.stderr

    updated = bcl(
        platform, "municipality", "update", "141305",
        "--fee", "juminhyo=300@2023-04-01", "--fee", "juminhyo=200@2024-04-01",
        "--window", "06:30-22:00",
    )  # fmt: skip
    assert updated.returncode == 0, updated.stderr
    shown = bcl(platform, "municipality", "show", "141305", "--json")
    assert shown.returncode == 0, shown.stderr
    assert '"fee_yen": 200' in shown.stdout
    assert '"closes": "22:00:00"' in shown.stdout
    listed = bcl(platform, "municipality", "list")
    assert "川崎市" in listed.stdout
    assert "designated_city" in listed.stdout


def test_invalid_profiles_are_refused_with_what_to_fix(platform: Settings) -> None:
    outside = bcl(platform, "municipality", "add", "131016", "--name", "千代田区",
                  "--window", "05:00-23:00")  # fmt: skip
    assert outside.returncode == 2
    assert "must lie inside 06:30–23:00" in outside.stderr
    koseki = bcl(platform, "municipality", "add", "131016", "--name", "千代田区",
                 "--offers", "juminhyo,koseki")  # fmt: skip
    assert koseki.returncode == 2
    assert "BCL issues only" in koseki.stderr
    unknown = bcl(platform, "municipality", "update", "131032", "--population", "1")
    assert unknown.returncode == 2
    assert "not registered" in unknown.stderr
    for result in (outside, koseki, unknown):
        assert "Traceback" not in result.stderr
