"""`bcl certificate` and `bcl crl` as an operator runs them: the test CA, a CRL made and imported,
checks, and clear refusals instead of tracebacks."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.settings import Settings
from tests.helpers import settings_env

pytestmark = pytest.mark.integration


def bcl(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "pipeline.cli", *args],
        env={**settings_env(settings), "COLUMNS": "200"},
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert "Traceback" not in result.stdout + result.stderr, result.stderr
    return result


def test_a_crl_made_by_the_test_ca_is_imported_once(platform: Settings, tmp_path: Path) -> None:
    crl = tmp_path / "jpki.crl"
    assert bcl(platform, "certificate", "ca").returncode == 0
    made = bcl(platform, "crl", "make", str(crl), "--revoke", "a1:key_compromise", "--revoke", "b2")
    assert made.returncode == 0, made.stderr

    imported = bcl(platform, "crl", "import", str(crl))
    assert imported.returncode == 0, imported.stderr
    assert "imported" in imported.stdout
    assert "2 revocations" in imported.stdout

    again = bcl(platform, "crl", "import", str(crl))
    assert "already_imported" in again.stdout

    checked = bcl(platform, "certificate", "check", "A1")
    assert checked.returncode == 1
    assert "00000000000000A1: revoked (key_compromise)" in checked.stdout
    assert "unknown" in bcl(platform, "certificate", "check", "C3").stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["crl", "import", "{garbage}"], "CRL refused (not_a_crl)"),
        (["crl", "import", "{missing}"], "no CRL file at"),
        (["crl", "import", "ftp://example.invalid/x.crl"], "give a file, or an http(s)://"),
        (["certificate", "suspend", "00000000000000FF"], "no certificate 00000000000000FF"),
        (["certificate", "check", "not-hex"], "is not hexadecimal"),
        (["certificate", "issue", "131016"], "pass --all"),
    ],
)
def test_bad_requests_get_one_clear_line(
    platform: Settings, tmp_path: Path, args: list[str], message: str
) -> None:
    (tmp_path / "garbage.crl").write_bytes(b"\x00not a crl at all")
    bcl(platform, "certificate", "ca")
    filled = [
        a.format(garbage=tmp_path / "garbage.crl", missing=tmp_path / "missing.crl") for a in args
    ]
    result = bcl(platform, *filled)
    assert result.returncode == 2, result.stdout
    assert message in result.stderr
