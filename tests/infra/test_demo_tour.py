"""`make demo`'s script, run against services started separately (BCL_* set), ends clean."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import psutil  # type: ignore[import-untyped]

from pipeline.projection import PROJECTION_MODULES
from pipeline.settings import PROJECT_ROOT, Settings
from tests.helpers import settings_env


def test_the_demo_tour_runs_against_external_services(platform: Settings, tmp_path: Path) -> None:
    env = settings_env(platform)
    env["PATH"] = f"{PROJECT_ROOT / '.venv' / 'bin'}:{env.get('PATH', '')}"
    env["BCL_DEMO_RESIDENTS"] = "300"
    env["BCL_DEMO_SCALE"] = "1"
    env["BCL_DEMO_OUT"] = str(tmp_path / "artifacts")
    result = subprocess.run(
        ["bash", str(PROJECT_ROOT / "infra" / "demo.sh")],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "Traceback" not in output
    # Every projection read again onto itself (`replay --since`), and usage, fees and the
    # disaster rebuilt from the beginning, hash as they did live.
    for projection in PROJECTION_MODULES:
        digests = re.findall(rf"^{projection} [0-9a-f]{{64}}$", result.stdout, re.MULTILINE)
        rebuilt = 3 if projection in ("usage", "fees", "disaster") else 2
        assert len(digests) == rebuilt, output
        assert set(digests) == {digests[0]}, digests
    assert "owed to J-LIS" in result.stdout
    assert "valid" in result.stdout
    # The disaster: a wide-area evacuee matched, a revoked card refused, a duplicate application
    # refused, the 罹災証明書 issued at a store for 10 yen.
    assert "certificate_not_active" in result.stdout
    assert "duplicate" in result.stdout
    assert "10 yen paid" in result.stdout
    artifacts = tmp_path / "artifacts"
    assert f"artifacts: {artifacts}" in result.stdout
    for name in ("usage-by-type.csv", "usage-by-hour.json", "usage.parquet", "operators.png",
                 "hours.png", "monthly.png", "certificate-sample.pdf", "risai-sample.pdf",
                 "victim-ledger.csv"):  # fmt: skip
        assert (artifacts / name).stat().st_size > 0, name
    [month_fees] = artifacts.glob("fees-2*.csv")
    assert month_fees.read_text().startswith("municipality,name,requests,")
    [year_fees] = artifacts.glob("fees-FY*.json")
    assert {row["municipality"] for row in json.loads(year_fees.read_text())} == {
        "131032", "133086",
    }  # fmt: skip
    # The tour stopped the workers it started (a process per role); the external services were
    # left alone.
    started = re.findall(r"bcl worker --role \w+ started \(pid (\d+)\)", result.stdout)
    assert len(started) == 2, output
    for pid in map(int, started):
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
