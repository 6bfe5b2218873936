"""`bcl failover drill`: take a center down under kiosk traffic, serve from the other, bring it
back, level it, and prove the two centers agree."""

from __future__ import annotations

import dataclasses
import json
import logging
import secrets
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from pipeline.commands.common import (
    CenterName,
    CommandError,
    clean_errors,
    console,
    run_async,
    settings,
)
from schemas.calendar import JST

if TYPE_CHECKING:
    from infra.failover import DrillReport

app = typer.Typer(no_args_is_help=True)


class ScenarioOption(StrEnum):
    OUTAGE = "outage"
    LOST = "lost"


@app.command()
@clean_errors
def drill(
    municipalities: Annotated[
        list[str], typer.Argument(help="Registered municipalities whose card holders come.")
    ],
    scenario: Annotated[
        ScenarioOption,
        typer.Option(
            help="outage: the center's broker stops answering and its worker is killed, its "
            "storage intact (nothing may be lost). lost: its broker dies with its log; it is "
            "rebuilt from the other center's copies, and what the mirror had not copied is lost."
        ),
    ] = ScenarioOption.OUTAGE,
    fail: Annotated[CenterName, typer.Option(help="The center that fails.")] = (CenterName.EAST),
    on: Annotated[
        datetime | None,
        typer.Option(
            formats=["%Y-%m-%d"], help="The Japan day of the traffic (default: tomorrow)."
        ),
    ] = None,
    scale: Annotated[
        float, typer.Option(min=0.0, max=100.0, help="Multiple of the day's expected volume.")
    ] = 1.0,
    kiosks: Annotated[int, typer.Option(min=1, help="Kiosks sending at once.")] = 8,
    fail_after: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Share of the visits served before the failure.")
    ] = 0.3,
    outage: Annotated[float, typer.Option(min=1.0, help="Seconds the center stays down.")] = 15.0,
    seed: Annotated[
        int | None, typer.Option(help="Seed of the traffic (default: a new one each drill).")
    ] = None,
    out: Annotated[Path | None, typer.Option(help="Write the report here as JSON.")] = None,
) -> None:
    """Run the failover drill on the centers `bcl up --centers east,west` started.

    Kiosk traffic of MUNICIPALITIES runs through both centers; one fails mid-stream, the other
    takes its kiosks; the failed center comes back and catches up; then the replica,
    certificates, fees and usage digests of both centers are compared. Exit status 1 when any
    check fails. Keep BCL_ANSWER_WINDOW (the kiosk's wait, default 120 s) below --outage, as set
    for the workers, or the kiosks wait that long for the center that failed.
    """
    from infra.failover import DrillError, run_drill
    from producers.kiosk_day import KioskDayError

    # The failed center's connection errors are the drill's doing; its report says what matters.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    current = settings()
    east, west = current.topology(["east", "west"])
    the_day = on.date() if on else datetime.now(JST).date() + timedelta(days=1)
    try:
        report = run_async(
            run_drill(
                east, west, municipalities, the_day, scenario=scenario.value,
                failed=fail.value, scale=scale, kiosks=kiosks, fail_after=fail_after,
                outage_seconds=outage, seed=secrets.randbits(32) if seed is None else seed,
                progress=console.print,
            )
        )  # fmt: skip
    except (DrillError, KioskDayError) as error:
        raise CommandError(str(error)) from None
    table = Table(title=f"failover drill: {scenario.value} of {fail.value}")
    table.add_column("")
    table.add_column("", justify="right")
    for label, value in (
        ("kiosk visits", f"{report.visits:,}"),
        ("served", f"{report.served:,}"),
        ("served during the outage", f"{report.served_during_outage:,}"),
        ("started again at the other center", f"{report.rerouted:,}"),
        ("answered by no center", f"{report.unanswered:,}"),
        ("time to take over", f"{report.takeover_seconds:.2f} s"),
        ("outage", f"{report.outage_seconds:.1f} s"),
        ("time to catch up", f"{report.catch_up_seconds:.1f} s"),
        (
            "events caught up",
            f"{report.catch_up_events:,} ({report.catch_up_events_per_second:,.0f}/s)",
        ),
        ("expired on return (request_expired)", f"{report.expired:,}"),
        ("issued after the kiosk gave up, cancelled", f"{report.cancelled_after_giving_up:,}"),
        (
            "mirror lag at the failure",
            "-" if report.mirror_lag_at_failure is None else f"{report.mirror_lag_at_failure:,}",
        ),
        ("events lost", f"{len(report.lost):,}"),
        ("kiosk notices of lost decisions", f"{report.notices_of_lost_decisions:,}"),
        ("duplicate outcomes", f"{report.duplicate_outcomes:,}"),
        ("double charges", f"{len(report.double_charges):,}"),
    ):
        table.add_row(label, value)
    console.print(table)
    digests = Table(title="projection digests")
    for column in ("projection", "east", "west", "equal"):
        digests.add_column(column)
    for name, by_center in report.digests.items():
        east_digest, west_digest = by_center.get("east", ""), by_center.get("west", "")
        digests.add_row(name, east_digest[:16], west_digest[:16], str(east_digest == west_digest))
    console.print(digests)
    for charged in report.double_charges:
        console.print(f"charged twice: one kiosk visit, requests {', '.join(charged)}")
    for event in report.lost[:20]:
        console.print(
            f"lost: {event.topic}[{event.partition}]@{event.offset} {event.type} {event.event_id}"
        )
    if len(report.lost) > 20:
        console.print(f"… and {len(report.lost) - 20:,} more (all in --out)")
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(_jsonable(report), indent=2, default=str) + "\n")
        console.print(f"report: {out}")
    problems = [
        *(["digests differ"] if not report.digests_equal else []),
        *(["duplicate outcomes"] if report.duplicate_outcomes else []),
        *(["double charges"] if report.double_charges else []),
        *(
            ["events lost in an outage"]
            if scenario is ScenarioOption.OUTAGE and report.lost
            else []
        ),
    ]
    if problems:
        console.print("[red]the drill failed:[/red] " + ", ".join(problems))
        raise typer.Exit(1)


def _jsonable(report: DrillReport) -> dict[str, object]:
    kiosks = report.kiosks
    return {
        **{f.name: getattr(report, f.name) for f in dataclasses.fields(report)},
        "lost": [dataclasses.asdict(event) for event in report.lost],
        "catch_up_events_per_second": report.catch_up_events_per_second,
        "kiosks": {
            "issued": kiosks.issued,
            "rejected": dict(kiosks.rejected),
            "delivered": kiosks.delivered,
            "cancelled": kiosks.cancelled,
            "fees_paid_yen": kiosks.fees_paid_yen,
            "served_by_center": dict(kiosks.by_center),
        },
    }
