"""East and west (issue 9): the failover drill under kiosk traffic, both scenarios, on two
centers of their own (`bcl up --centers east,west` in a scratch home): how long until the
surviving center serves the failed one's kiosks, and how fast the failed center catches up."""

from __future__ import annotations

import os
from collections.abc import Sequence

from infra.failover import run_drill
from producers.workload import tax_year
from tests.helpers import two_centers, working_days_ahead

BUNKYO = "131032"
SCALE = float(os.environ.get("BCL_BENCH_FAILOVER_SCALE", "3"))
RESIDENTS = int(os.environ.get("BCL_BENCH_FAILOVER_RESIDENTS", "2000"))
ANSWER_WINDOW = 8.0  # seconds; the kiosk waits 2 s longer before it tries the other center


async def bench_failover() -> Sequence[tuple[str, float, str]]:
    figures: list[tuple[str, float, str]] = []
    # A working day after today: Bunkyo joins and its cards are issued as the centers come up.
    [day] = working_days_ahead(1)
    with two_centers(
        BUNKYO, answer_window=ANSWER_WINDOW, tax_years=[tax_year(day)], residents=RESIDENTS
    ) as (east, west):
        for seed, scenario in enumerate(("outage", "lost"), 21):
            report = await run_drill(
                east, west, [BUNKYO], day, scenario=scenario, scale=SCALE,  # type: ignore[arg-type]
                outage_seconds=20, seed=seed,
            )  # fmt: skip
            if not report.digests_equal or report.duplicate_outcomes or report.double_charges:
                raise AssertionError(f"the {scenario} drill did not end level: {report}")
            figures += [
                (f"failover {scenario}: kiosk visits", report.visits, "visits"),
                (
                    f"failover {scenario}: served during the outage",
                    report.served_during_outage,
                    "visits",
                ),
                (f"failover {scenario}: takeover", report.takeover_seconds * 1000, "ms"),
                (f"failover {scenario}: catch-up", report.catch_up_seconds * 1000, "ms"),
                (f"failover {scenario}: catch-up", report.catch_up_events_per_second, "events/s"),
                (f"failover {scenario}: events lost", len(report.lost), "events"),
            ]
            if report.mirror_lag_at_failure is not None:
                figures.append(
                    (f"failover {scenario}: mirror lag at the failure",
                     report.mirror_lag_at_failure, "events")
                )  # fmt: skip
    return figures
