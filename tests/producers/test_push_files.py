"""Malformed push files: each gets a clear refusal that says what to fix, never a traceback."""

from __future__ import annotations

import asyncio
import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
import typer
from typer.testing import CliRunner, Result

from pipeline.commands.push import push as push_command
from pipeline.settings import Settings
from pipeline.signing import private_key_pem
from producers.municipal_push import push_file
from tests.helpers import settings_env
from tests.producers.push_helpers import (
    CHIYODA,
    SAMPLE_CSV,
    logged_events,
    register,
    resident_row,
    sample_rows,
    signed_push,
    write_csv,
)


def rewrite(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_bytes(text.encode(encoding))
    return path


async def test_malformed_files_are_refused_with_what_to_fix(
    platform: Settings, tmp_path: Path
) -> None:
    key = await register(platform)
    sample = SAMPLE_CSV.read_text(encoding="utf-8")
    header, *lines = sample.splitlines()
    bad_code = resident_row("13101600001", municipality="131019")
    bad_my_number = resident_row("13101600001", my_number="123456789012")
    cases: dict[str, tuple[Path, str, str]] = {
        "empty": (rewrite(tmp_path / "empty.csv", ""), "empty_file", "at least one row"),
        "blank lines only": (rewrite(tmp_path / "blank.csv", "\n\n  \n"), "empty_file", "empty"),
        "header only": (
            rewrite(tmp_path / "header.csv", header + "\n"),
            "empty_file",
            "below its header",
        ),
        "missing columns": (
            rewrite(
                tmp_path / "missing.csv",
                "\n".join(
                    ",".join(cells[0:2] + cells[3:])
                    for cells in (line.split(",") for line in [header, *lines])
                ),
            ),
            "missing_columns",
            "resident_code",
        ),
        "no header": (
            rewrite(tmp_path / "noheader.csv", "\n".join(lines)),
            "missing_columns",
            "the first line names the columns",
        ),
        "tab separated": (
            rewrite(tmp_path / "tabs.csv", header.replace(",", "\t") + "\n"),
            "missing_columns",
            "separated by commas",
        ),
        "bad dates": (
            write_csv(
                tmp_path / "dates.csv",
                [resident_row("13101600001", effective_date="2024/04/01", birth_date="1980-13-01")],
            ),
            "invalid_rows",
            "fix every row",
        ),
        "bad municipality check digit": (
            write_csv(tmp_path / "code.csv", [bad_code]),
            "invalid_rows",
            "fix every row",
        ),
        "bad My Number check digit": (
            write_csv(tmp_path / "mynumber.csv", [bad_my_number]),
            "invalid_rows",
            "fix every row",
        ),
        "not a resident file": (
            rewrite(tmp_path / "notes.txt", "shopping list\neggs\nmilk\n"),
            "unknown_format",
            "--format",
        ),
        "JSON Lines that are not objects": (
            rewrite(tmp_path / "arrays.jsonl", '["131016", "resident"]\n{not json}\n'),
            "invalid_rows",
            "fix every row",
        ),
        "unknown encoding": (SAMPLE_CSV, "bad_encoding", "not an encoding"),
    }
    for case, (path, reason, hint) in cases.items():
        options = {"encoding": "klingon"} if case == "unknown encoding" else {}
        report = await signed_push(platform, key, path, 1, **options)
        assert (report.outcome, report.reason) == ("refused", reason), (case, report.message)
        assert hint in report.message, (case, report.message)
        assert report.kept_at is not None
        assert (report.kept_at / "report.json").exists()

    dates = await signed_push(platform, key, cases["bad dates"][0], 1)
    assert {(p.line, p.field) for p in dates.problems} == {
        (2, "effective_date"),
        (2, "birth_date"),
    }
    code = await signed_push(platform, key, cases["bad municipality check digit"][0], 1)
    assert [(p.field, p.value) for p in code.problems] == [("municipality", "131019")]
    assert "check digit 9, expected 6" in code.problems[0].reason
    my_number = await signed_push(platform, key, cases["bad My Number check digit"][0], 1)
    assert [p.field for p in my_number.problems] == ["my_number"]
    assert "check digit is 2, expected 8" in my_number.problems[0].reason
    arrays = await signed_push(platform, key, cases["JSON Lines that are not objects"][0], 1)
    assert [(p.line, p.field) for p in arrays.problems] == [(1, "(line)"), (2, "(line)")]
    missing = await signed_push(platform, key, cases["missing columns"][0], 1)
    assert [(p.line, p.field) for p in missing.problems] == [(1, "resident_code")]
    assert await logged_events(platform) == []


async def test_header_and_row_shape_problems_name_their_lines(
    platform: Settings, tmp_path: Path
) -> None:
    key = await register(platform)
    rows = sample_rows()
    text = SAMPLE_CSV.read_text(encoding="utf-8").splitlines()
    text[0] += ",nickname"
    text[1:] = [line + "," for line in text[1:]]
    text[4] = text[4] + ",extra"
    shaped = rewrite(tmp_path / "shaped.csv", "\n".join(text) + "\n")

    report = await signed_push(platform, key, shaped, 1)

    assert report.reason == "invalid_rows"
    assert [(p.line, p.field) for p in report.problems] == [(1, "nickname"), (5, "(row)")]
    assert "unknown column" in report.problems[0].reason
    assert report.rows == len(rows)


async def test_shift_jis_is_refused_with_the_encoding_to_pass(
    platform: Settings, tmp_path: Path
) -> None:
    key = await register(platform)
    sjis = rewrite(tmp_path / "sjis.csv", SAMPLE_CSV.read_text(encoding="utf-8"), "cp932")

    refused = await signed_push(platform, key, sjis, 1)

    assert (refused.outcome, refused.reason) == ("refused", "bad_encoding")
    assert "--encoding cp932" in refused.message
    assert "line 2" in refused.message
    assert [p.line for p in refused.problems] == [2]

    accepted = await signed_push(platform, key, sjis, 1, encoding="cp932")
    assert accepted.outcome == "accepted", accepted.message
    assert accepted.events_published == 18


async def test_a_file_over_the_limit_is_refused_before_it_is_read(
    platform: Settings, tmp_path: Path
) -> None:
    key = await register(platform)
    small = platform.model_copy(update={"push_max_bytes": 1000})

    report = await signed_push(small, key, SAMPLE_CSV, 1)

    assert (report.outcome, report.reason) == ("refused", "file_too_large")
    assert "split it" in report.message
    assert report.file_sha256 is None
    assert report.kept_at is None
    assert await logged_events(platform) == []


async def test_a_2gb_file_is_refused_by_its_size_alone(tmp_path: Path) -> None:
    huge = tmp_path / "register.csv"
    with huge.open("wb") as out:
        out.truncate(2 * 1024**3)  # sparse: no disk used, and never read
    # No broker or database: the size alone decides, before anything else is touched.
    settings = Settings(home=tmp_path / "bcl", kafka_bootstrap="unused:1", database_url="x://")

    report = await push_file(settings, CHIYODA, huge, sequence=1, signature=b"\0" * 64)

    assert (report.outcome, report.reason) == ("refused", "file_too_large")
    assert "2,147,483,648 bytes" in report.message
    assert "split it" in report.message
    assert not (tmp_path / "bcl").exists()


@pytest.mark.parametrize(
    ("municipality", "sequence", "reason"),
    [("13101", 1, "unknown_municipality"), ("../../x", 1, "unknown_municipality"),
     (CHIYODA, 0, "bad_sequence")],
)  # fmt: skip
async def test_a_malformed_request_is_refused_before_anything_is_read(
    tmp_path: Path, municipality: str, sequence: int, reason: str
) -> None:
    settings = Settings(home=tmp_path / "bcl", kafka_bootstrap="unused:1", database_url="x://")
    report = await push_file(settings, municipality, SAMPLE_CSV, sequence=sequence, signature=None)
    assert (report.outcome, report.reason) == ("refused", reason)
    missing = await push_file(settings, CHIYODA, tmp_path / "nope.csv", sequence=1, signature=None)
    assert (missing.reason, missing.kept_at) == ("file_missing", None)
    assert "does not exist" in missing.message
    assert not (tmp_path / "bcl").exists()


def cli() -> typer.Typer:
    # `bcl push` as pipeline/cli.py registers it (a second command keeps typer from making
    # `push` the whole application).
    app = typer.Typer()
    app.command(name="push")(push_command)
    app.command(name="status")(lambda: None)
    return app


def test_the_command_signs_pushes_and_tabulates_a_refusal(
    platform: Settings, tmp_path: Path
) -> None:
    key = asyncio.run(register(platform))
    key_file = tmp_path / "chiyoda.key.pem"
    key_file.write_bytes(private_key_pem(key))
    bad = write_csv(
        tmp_path / "bad.csv",
        [resident_row(f"131016{n:05d}", effective_date="2024-13-01") for n in range(60)],
    )

    def bcl_push(*args: str) -> Result:
        return CliRunner().invoke(cli(), ["push", *args], env=settings_env(platform))

    refused = bcl_push(CHIYODA, str(bad), "--key", str(key_file))
    assert refused.exit_code == 1, refused.output
    assert "refused" in refused.output
    assert "invalid_rows" in refused.output
    assert "60 problems" in refused.output
    assert "10 more in" in refused.output
    assert "report.json" in refused.output

    unsigned = bcl_push(CHIYODA, str(SAMPLE_CSV), "--unsigned")
    assert unsigned.exit_code == 1
    assert "(unsigned)" in unsigned.output

    # By default the command signs with the key `bcl municipality add` made.
    (platform.home / "keys").mkdir(parents=True)
    (platform.home / "keys" / f"{CHIYODA}.key.pem").write_bytes(private_key_pem(key))
    report_file = tmp_path / "report.json"
    accepted = bcl_push(CHIYODA, str(SAMPLE_CSV), "--report-json", str(report_file))
    assert accepted.exit_code == 0, accepted.output
    assert "accepted" in accepted.output
    assert orjson.loads(report_file.read_bytes())["sequence"] == 1

    for usage in (
        [CHIYODA, str(SAMPLE_CSV), "--as-of", "2024-04-01"],
        [CHIYODA, str(SAMPLE_CSV), "--unsigned", "--key", str(key_file)],
        [CHIYODA, str(SAMPLE_CSV), "--format", "xml"],
        [CHIYODA, str(SAMPLE_CSV), "--full", "--as-of", "April"],
    ):
        wrong = bcl_push(*usage)
        assert wrong.exit_code == 2, (usage, wrong.output)
        assert "Traceback" not in wrong.output


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
def test_a_push_signed_with_openssl_as_documented_is_accepted(
    platform: Settings, tmp_path: Path
) -> None:
    key = asyncio.run(register(platform))
    key_file = tmp_path / "key.pem"
    key_file.write_bytes(private_key_pem(key))
    sha = hashlib.sha256(SAMPLE_CSV.read_bytes()).hexdigest()
    (tmp_path / "statement").write_bytes(f"bcl-push-v1\n{CHIYODA}\n1\n{sha}\n".encode())
    for command in (
        "openssl dgst -sha256 -binary statement > digest",
        f"openssl pkeyutl -sign -rawin -inkey {key_file} -in digest -out sig",
    ):
        subprocess.run(command, shell=True, cwd=tmp_path, check=True)

    result = CliRunner().invoke(
        cli(),
        ["push", CHIYODA, str(SAMPLE_CSV), "--sequence", "1", "--signature", str(tmp_path / "sig")],
        env=settings_env(platform),
    )

    assert result.exit_code == 0, result.output
    assert "accepted" in result.output


def test_bcl_push_answers_a_refusal_without_a_traceback(platform: Settings, tmp_path: Path) -> None:
    key = asyncio.run(register(platform))
    (platform.home / "keys").mkdir(parents=True)
    (platform.home / "keys" / f"{CHIYODA}.key.pem").write_bytes(private_key_pem(key))
    sjis = rewrite(tmp_path / "sjis.csv", SAMPLE_CSV.read_text(encoding="utf-8"), "cp932")

    result = subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "push", CHIYODA, str(sjis)],
        env={**settings_env(platform), "COLUMNS": "200"},  # the message on one line
        capture_output=True,
        text=True,
        check=False,
    )

    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert "refused (bad_encoding)" in result.stdout
    assert "--encoding cp932" in result.stdout
