"""The worker's layout: each process hosts a role's projections, each follower fetches with the
wait its role calls for, and a background worker gives up CPU priority."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import pipeline.worker as worker_module
from pipeline.agents import AGENT_MODULES, WORKER_ROLES, role_of, worker_role
from pipeline.catchup import Fetching
from pipeline.settings import Settings
from pipeline.worker import AUTOGROUP, BACKGROUND_FETCH_MIN_BYTES, Worker

PROJECTIONS = worker_role("projections").agents


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path, kafka_bootstrap="127.0.0.1:9", fetch_wait=0.025)


def test_every_projection_in_one_process_fetches_as_soon_as_events_are_there(
    settings: Settings,
) -> None:
    worker = Worker(settings)

    assert not worker.role.background
    assert worker.fetching() == Fetching(0.025, 1, settings.batch_size)
    assert "revocations" in [projection.name for projection in worker.hosted]


def test_the_issuance_worker_fetches_as_soon_as_a_request_is_there(settings: Settings) -> None:
    worker = Worker(settings, ["issuer"])

    assert worker.role == worker_role("issuance")
    assert [projection.name for projection in worker.hosted] == ["issuer"]
    assert worker.fetching() == Fetching(0.025, 1, settings.batch_size)


def test_the_projections_worker_fetches_a_batch_at_a_time(settings: Settings) -> None:
    worker = Worker(settings, list(reversed(PROJECTIONS)))

    assert worker.role.background
    assert worker.fetching() == Fetching(
        settings.batch_within, BACKGROUND_FETCH_MIN_BYTES, settings.batch_size
    )
    assert len(worker.hosted) == 8  # the certificates agent hosts the revoker too


def test_other_projection_sets_run_under_a_name_of_their_own(settings: Settings) -> None:
    worker = Worker(settings, ["fees", "issuer"])

    assert worker.role.pid_file_name == "worker-issuer+fees.pid"
    assert not worker.role.background
    assert worker.fetching() == Fetching(0.025, 1, settings.batch_size)


def test_a_set_without_the_issuer_fetches_a_batch_at_a_time_at_full_priority(
    settings: Settings,
) -> None:
    worker = Worker(settings, ["journal"])

    assert worker.role.pid_file_name == "worker-journal.pid"
    assert not worker.role.background
    assert worker.fetching() == Fetching(
        settings.batch_within, BACKGROUND_FETCH_MIN_BYTES, settings.batch_size
    )


def test_the_roles_host_every_agent_once() -> None:
    hosted = [agent for role in WORKER_ROLES for agent in role.agents]

    assert sorted(hosted) == sorted(AGENT_MODULES)
    assert role_of(None).pid_file_name == "worker.pid"


def test_an_unknown_agent_or_role_is_named_with_the_known_ones() -> None:
    with pytest.raises(LookupError, match="unknown agent 'isuer'; known agents: certificates,"):
        role_of(["isuer"])
    with pytest.raises(LookupError, match="unknown worker role 'x'; known roles: issuance, "):
        worker_role("x")


@pytest.mark.parametrize("own_session", [True, False])
def test_a_background_worker_only_ever_lowers_its_priority(own_session: bool) -> None:
    """With autogroup scheduling, niceness counts only inside a session: a worker leading its
    own session lowers the session's too, one in a terminal's session leaves that alone."""
    script = (
        "import os\n"
        "from pipeline.worker import lower_priority, autogroup_niceness\n"
        "start, group = os.getpriority(os.PRIO_PROCESS, 0), autogroup_niceness()\n"
        "lower_priority(start + 2)\n"
        "first = os.getpriority(os.PRIO_PROCESS, 0)\n"
        "lower_priority(start + 1)\n"
        "print(first - start, os.getpriority(os.PRIO_PROCESS, 0) - start, start, group,"
        " autogroup_niceness())\n"
    )
    if not AUTOGROUP.exists():
        pytest.skip("this kernel does not group scheduling by session")
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[2],
        start_new_session=own_session,
    )

    process, again, start, group_before, group_after = done.stdout.split()
    assert (process, again) == ("2", "2")
    if own_session:
        assert int(group_after) >= int(start) + 2
    else:
        # Under the boot session's default group (a CI runner's, say) there is none to read.
        assert group_after == group_before


@pytest.mark.parametrize("content", [None, "", "/autogroup-7 nice 3\n"])
def test_a_session_group_niceness_is_read_only_where_the_kernel_names_one(
    content: str | None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The file is absent without autogroup support and empty in the boot session's group."""
    autogroup = tmp_path / "autogroup"
    if content is not None:
        autogroup.write_text(content)
    monkeypatch.setattr(worker_module, "AUTOGROUP", autogroup)

    assert worker_module.autogroup_niceness() == (3 if content else None)
