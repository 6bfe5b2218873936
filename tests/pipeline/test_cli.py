"""The `bcl` command line: help everywhere, clean errors instead of tracebacks."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import typer.main
from typer.testing import CliRunner

from pipeline.cli import app
from tests.helpers import bcl_succeeds

COMMANDS = sorted(typer.main.get_command(app).commands)  # type: ignore[attr-defined]


def test_the_expected_commands_exist() -> None:
    assert {"up", "down", "status", "worker", "replay", "digest", "journal", "wait"} <= set(
        COMMANDS
    )


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command: str) -> None:
    result = CliRunner().invoke(app, [command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output


@pytest.mark.parametrize(
    "args", [["status"], ["digest", "journal"], ["journal"], ["replay", "journal"], ["sample"]]
)
def test_commands_without_services_say_what_to_do(args: list[str], tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pipeline.cli", *args],
        env={"BCL_HOME": str(tmp_path), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr + result.stdout
    assert "bcl up" in result.stderr


def test_an_unknown_projection_is_named_with_the_known_ones(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["digest", "nonesuch"], env={"BCL_HOME": str(tmp_path)})
    assert result.exit_code == 2
    assert "unknown projection 'nonesuch'" in result.output
    assert "journal" in result.output


def test_an_error_is_one_line_of_text_whatever_the_terminal_and_the_input(tmp_path: Path) -> None:
    # Run apart so the error console meets this terminal width: a 40-column terminal, and
    # input holding rich markup (a closing tag that opens nothing) that must print as written.
    result = subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "digest", "[/red]nonesuch[bold]"],
        env={"BCL_HOME": str(tmp_path), "PATH": "/usr/bin:/bin", "COLUMNS": "40"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1, result.stderr
    assert "unknown projection '[/red]nonesuch[bold]'" in result.stderr


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        (["--role", "kiosk"], "unknown worker role 'kiosk'; known roles: issuance, projections"),
        (["--role", "issuance", "--agents", "journal"], "give --role or --agents, not both"),
        (["--agents", "isuer", "--detach"], "unknown agent 'isuer'; known agents: certificates"),
    ],
)
def test_a_worker_that_cannot_be_started_says_why(
    args: list[str], problem: str, tmp_path: Path
) -> None:
    result = CliRunner().invoke(app, ["worker", *args], env={"BCL_HOME": str(tmp_path)})
    assert result.exit_code == 2
    assert problem in " ".join(result.output.split())
    assert not list(tmp_path.rglob("worker*.pid"))


@pytest.mark.parametrize("args", [["replay"], ["replay", "journal", "--all"]])
def test_replay_wants_projections_or_all_but_not_both(args: list[str], tmp_path: Path) -> None:
    result = CliRunner().invoke(app, args, env={"BCL_HOME": str(tmp_path)})
    assert result.exit_code == 2
    assert "name the projections to rebuild, or give --all" in result.output


@pytest.mark.parametrize(
    ("variables", "said"),
    [
        ({"BCL_PEERS": "north"}, "BCL_PEERS: Input should be 'east' or 'west'"),
        ({"BCL_CENTER": "west", "BCL_PEERS": "west"}, "BCL_PEERS lists west"),
    ],
)
def test_a_bad_environment_variable_is_named(
    variables: dict[str, str], said: str, tmp_path: Path
) -> None:
    result = CliRunner().invoke(app, ["status"], env={"BCL_HOME": str(tmp_path), **variables})
    assert result.exit_code == 2
    assert said in " ".join(result.output.split())
    assert "Traceback" not in result.output


@pytest.mark.parametrize("centers", ["east", "east,east", "east,north"])
def test_up_centers_needs_two_distinct_known_centers(centers: str, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["up", "--centers", centers], env={"BCL_HOME": str(tmp_path)})
    assert result.exit_code == 2
    assert "give two or more distinct centers" in " ".join(result.output.split())


@pytest.mark.parametrize(
    ("option", "said"),
    [
        (
            "scope=everyone",
            "--option scope='everyone' is not offered; scope is one of household, individual",
        ),
        (
            "colour=red",
            "--option 'colour' is not a print option; the options are disaster_id, scope",
        ),
        ("scope=", "--option 'scope=' must be NAME=VALUE"),
        ("household", "--option 'household' must be NAME=VALUE"),
    ],
)
def test_a_print_option_the_kiosks_do_not_offer_is_refused(
    option: str, said: str, tmp_path: Path
) -> None:
    submit = [
        "center",
        "submit",
        "--municipality",
        "131016",
        "--serial",
        "0" * 16,
        "--type",
        "juminhyo",
    ]
    result = CliRunner().invoke(app, [*submit, "--option", option], env={"BCL_HOME": str(tmp_path)})
    assert result.exit_code == 2
    assert said in " ".join(result.output.split())
    assert "Traceback" not in result.output


def test_what_a_command_writes_under_the_home_is_the_operators_alone(tmp_path: Path) -> None:
    """The test CA's private key, say: folders 0700 and files 0600, whatever the shell's umask."""
    home = tmp_path / "home"
    bcl_succeeds({**os.environ, "BCL_HOME": str(home)}, "certificate", "ca")
    written = list(home.rglob("*"))
    assert any(path.name.endswith(".key.pem") for path in written)
    modes = {path.relative_to(home): stat.S_IMODE(path.stat().st_mode) for path in written}
    assert modes == {path: 0o700 if (home / path).is_dir() else 0o600 for path in modes}


def test_a_database_address_is_shown_without_its_password() -> None:
    from pipeline.cli import without_password

    shown = without_password("postgresql://bcl_app:s3cr3t-Pw_x@127.0.0.1:5432/bcl")
    assert shown == "postgresql://bcl_app:***@127.0.0.1:5432/bcl"
    assert without_password("postgresql://me@db.example/bcl") == "postgresql://me@db.example/bcl"
