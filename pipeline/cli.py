"""The ``bcl`` command line.

The CLI is the composition root: it is the one place in ``pipeline`` that reaches into
``infra`` (to start services) and ``producers`` (to publish), and it does so inside the commands
so that importing the pipeline never pulls them in.
"""

from __future__ import annotations

import asyncio
import os
import time
from datetime import datetime
from typing import Annotated, Any, get_args
from urllib.parse import urlsplit, urlunsplit

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from pipeline.collection import collect_seldom, freeze_what_is_alive
from pipeline.commands.common import (
    CommandError,
    aware_time,
    clean_errors,
    console,
    run_async,
    settings,
)
from pipeline.settings import Center, Settings

app = typer.Typer(
    help="BCL Pipeline: the event-sourced back office of convenience-store certificate issuance.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


def _sub_apps() -> None:
    from pipeline.commands import (
        backup,
        center,
        certificates,
        disaster,
        edges,
        failover,
        fees,
        mirror,
        municipality,
        push,
        residents,
        usage,
        workload,
    )

    app.add_typer(municipality.app, name="municipality")
    app.command(name="push")(push.push)
    app.add_typer(residents.resident_app, name="resident")
    app.add_typer(residents.replica_app, name="replica")
    app.add_typer(residents.retention_app, name="retention")
    app.add_typer(workload.app, name="workload")
    app.add_typer(certificates.certificate_app, name="certificate")
    app.add_typer(certificates.crl_app, name="crl")
    app.add_typer(center.app, name="center")
    app.command(name="verify")(center.verify)
    app.command(name="backup")(backup.backup)
    app.command(name="restore")(backup.restore)
    app.add_typer(usage.app, name="usage")
    app.add_typer(
        disaster.app,
        name="disaster",
        help="Disaster victim support: ledger, shelters, applications.",
    )
    app.add_typer(
        fees.app, name="fees", help="Fee statements: store settlement and yearly charges."
    )
    app.add_typer(
        failover.app,
        name="failover",
        help="Drills of the two centers: one fails under traffic, the other takes over.",
    )
    app.add_typer(
        mirror.app, name="mirror", help="Copy a center's topics into the other center's cluster."
    )
    app.add_typer(
        edges.app, name="edges", help="Who may write what on the log, and the broker ACLs for it."
    )


_sub_apps()


CentersOption = Annotated[
    str | None,
    typer.Option(
        help="Comma-separated centers to run side by side on this machine (east,west): each "
        "its own broker, Postgres and worker, reading the others' topics through mirrors."
    ),
]


@app.command()
@clean_errors
def up(
    worker: Annotated[bool, typer.Option(help="Also start the worker in the background.")] = False,
    centers: CentersOption = None,
) -> None:
    """Start the embedded broker and Postgres, migrate, create topics.

    With BCL_KAFKA_BOOTSTRAP or BCL_DATABASE_URL set, that service is used instead of starting one.
    With --centers east,west, both centers start, each with its worker, and a mirror copies each
    center's topics into the other's cluster.
    """
    if centers is None:
        start_center(settings(), worker=worker)
        return
    topology = centers_of(centers)
    for center in topology:
        console.rule(f"center {center.center}")
        start_center(center, worker=True)
    from pipeline.commands.mirror import start_mirror_in_background

    for source in topology:
        for target in topology:
            if source.center != target.center:
                start_mirror_in_background(source, target)


def centers_of(names: str) -> list[Settings]:
    """The settings of each center named in ``--centers``."""
    known = get_args(Center)
    wanted = [name.strip() for name in names.split(",") if name.strip()]
    unknown = [name for name in wanted if name not in known]
    if unknown or len(set(wanted)) != len(wanted) or len(wanted) < 2:
        raise CommandError(
            f"--centers {names!r}: give two or more distinct centers of {', '.join(known)}, "
            "e.g. --centers east,west"
        )
    current = settings()
    if current.kafka_bootstrap or current.database_url:
        raise CommandError(
            "--centers runs each center on embedded services of its own; unset "
            "BCL_KAFKA_BOOTSTRAP and BCL_DATABASE_URL (one cluster cannot be two centers)"
        )
    return current.topology(wanted)  # type: ignore[arg-type]


def without_password(dsn: str) -> str:
    """``dsn`` fit for a terminal: its password, if any, masked."""
    parts = urlsplit(dsn)
    if parts.password is None:
        return dsn
    return urlunsplit(parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@")))


def start_center(current: Settings, *, worker: bool) -> None:
    """One center's services up, migrated, its topics created; its worker if asked."""
    from infra.services import up as start_services
    from pipeline.database import connect
    from pipeline.kafka import create_topics
    from pipeline.migrations import migrate_all

    started = start_services(current)
    # Made anew: ``current`` may have cached the services file from before they started.
    fresh = Settings(**dict(current))
    console.print(
        f"kafka    {started.kafka_bootstrap}"
        + (f" (pid {started.broker_pid})" if started.broker_pid else " (external)")
    )
    console.print(
        f"postgres {without_password(started.database_url)}"
        + (f" (pid {started.postgres_pid})" if started.postgres_pid else " (external)")
    )

    async def prepare() -> tuple[dict[str, list[str]], list[str], list[str]]:
        async with connect(fresh) as connection:
            applied = await migrate_all(connection)
        created = await create_topics(fresh)
        return applied, created, await rebuild_projections_ahead_of_log(fresh)

    applied, created, rebuilt = run_async(prepare())
    for group, names in applied.items():
        for name in names:
            console.print(f"migrated {group}: {name}")
    if created:
        console.print(f"created topics: {', '.join(created)}")
    for name in rebuilt:
        console.print(
            f"rebuilt {name} by replay: it had applied more than the log holds (the log was "
            "lost or replaced)"
        )
    if worker:
        start_worker_in_background(fresh)


async def rebuild_projections_ahead_of_log(current: Settings) -> list[str]:
    """Replay every projection whose tables describe events the log does not hold; returns
    their names. Nothing else is dropped: the vault, the intake ledger and the outboxes are
    state the log cannot give back."""
    from pipeline.projection import PROJECTION_MODULES, load_projection
    from pipeline.replay import replay
    from pipeline.status import ahead_of_log

    rebuilt = []
    for name in PROJECTION_MODULES:
        projection = load_projection(name, current)
        if await ahead_of_log(current, projection):
            await replay(current, projection)
            rebuilt.append(name)
    return rebuilt


@app.command()
@clean_errors
def down(centers: CentersOption = None) -> None:
    """Stop the worker, mirrors, broker and Postgres of this center (by their PIDs)."""
    from infra.services import down as stop_services

    for center in [settings()] if centers is None else centers_of(centers):
        stopped = stop_services(center)
        for line in stopped or ["nothing was running"]:
            console.print(f"{center.center}: {line}" if centers else line)


@app.command()
@clean_errors
def status() -> None:
    """Services, each projection's lag behind the log, and dead letters."""
    from infra.services import status as service_status
    from pipeline.projection import PROJECTION_MODULES, load_projection
    from pipeline.status import dead_letter_counts, projection_lag

    current = settings()
    services = Table(title=f"services ({current.center})")
    for column in ("service", "pid", "alive", "address"):
        services.add_column(column)
    for name, info in service_status(current).items():
        services.add_row(
            name, str(info.get("pid", "")), str(info.get("alive", "")), str(info.get("address", ""))
        )
    console.print(services)

    async def lags() -> tuple[list[Any], list[tuple[str, str, int]]]:
        found = [
            await projection_lag(current, load_projection(n, current)) for n in PROJECTION_MODULES
        ]
        return found, await dead_letter_counts(current)

    found, letters = run_async(lags())
    table = Table(title="projections")
    for column in ("projection", "applied", "in log", "lag"):
        table.add_column(column, justify="right")
    for lag in found:
        table.add_row(lag.projection, f"{lag.applied:,}", f"{lag.log_end:,}", f"{lag.lag:,}")
    console.print(table)
    from producers.municipal_push import held_batches

    held = run_async(held_batches(current))
    if held:
        waiting = Table(title="pushes held for a gap")
        for column in ("municipality", "batch", "waits for", "rows", "received", "kept at"):
            waiting.add_column(column)
        for batch in held:
            waiting.add_row(
                batch.municipality,
                str(batch.sequence),
                str(batch.waiting_for),
                f"{batch.rows:,}",
                f"{batch.received_at:%Y-%m-%d %H:%M}",
                str(batch.kept_at),
            )
        console.print(waiting)
    if letters:
        dead = Table(title="dead letters")
        for column in ("topic", "reason", "count"):
            dead.add_column(column)
        for topic, reason, count in letters:
            dead.add_row(topic, reason, f"{count:,}")
        console.print(dead)


@app.command()
@clean_errors
def worker(
    detach: Annotated[
        bool,
        typer.Option(
            help="Run in the background, a process per role (issuance, projections) unless "
            "--role or --agents names one; `bcl down` stops them."
        ),
    ] = False,
    role: Annotated[
        str | None,
        typer.Option(
            help="Host one role of the center's layout: issuance (the issuer) or projections "
            "(every other agent, at a lower CPU priority)."
        ),
    ] = None,
    agents: Annotated[
        str | None, typer.Option(help="Comma-separated agents to host (default: all).")
    ] = None,
    loglevel: Annotated[str, typer.Option(help="crit, error, warn, info or debug.")] = "warn",
) -> None:
    """Run the live worker: every projection follows the log (in the foreground, all in one
    process unless --role or --agents names some)."""
    from pipeline.agents import worker_role

    if role is not None and agents is not None:
        raise CommandError("give --role or --agents, not both")
    if role is not None:
        agents = ",".join(worker_role(role).agents)
    current = settings()
    if detach:
        start_worker_in_background(current, agents)
        return
    from pipeline.worker import Worker

    Worker(current, agents.split(",") if agents else None).run(loglevel)


def start_worker_in_background(current: Settings, agents: str | None = None) -> None:
    from infra.services import running_workers, start_workers

    for name, pid in running_workers(current, agents).items():
        console.print(f"{name} runs already (pid {pid}); `bcl down` stops it")
    for process in start_workers(current, agents):
        console.print(f"{process.name} started (pid {process.pid}), log: {process.log_path}")


@app.command()
@clean_errors
def replay(
    projections: Annotated[
        list[str] | None,
        typer.Argument(help="The projections to rebuild (default with --all: every one)."),
    ] = None,
    all_projections: Annotated[
        bool, typer.Option("--all", help="Rebuild every projection, one after the other.")
    ] = False,
    since: Annotated[
        str | None,
        typer.Option(
            help="Read the log again from this time (ISO, with its zone) onto a copy of the live "
            "tables, instead of rebuilding from the beginning."
        ),
    ] = None,
) -> None:
    """Rebuild projections from the log into shadow tables and swap them in.

    The log is this center's topics and, with BCL_PEERS, the other centers' mirrored copies;
    queries keep reading the live tables until the swap. After an outage, `--since` the moment
    it began re-reads only what came after: events the tables hold already change nothing, the
    missing ones are added. After a lost center is restored from the other's copies, rebuild
    from the beginning: `bcl replay --all` (with the worker stopped).
    """
    from pipeline.projection import PROJECTION_MODULES

    names = list(projections or [])
    if all_projections == bool(names):
        raise CommandError("name the projections to rebuild, or give --all (not both)")
    moment = aware_time(since, "--since")
    for name in names or list(PROJECTION_MODULES):
        _replay_one(name, moment)


def _replay_one(name: str, since: datetime | None) -> None:
    from pipeline.projection import load_projection
    from pipeline.replay import replay as rebuild

    target = load_projection(name, settings())
    freeze_what_is_alive()
    with Progress(
        TextColumn(f"replay {name}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeRemainingColumn(),
        console=console,
    ) as bar:
        task = bar.add_task("replay", total=None, rate="")
        started = time.perf_counter()

        def progress(done: int, total: int) -> None:
            rate = done / max(time.perf_counter() - started, 1e-9)
            bar.update(task, completed=done, total=total, rate=f"{rate:,.0f} events/s")

        report = run_async(rebuild(settings(), target, since=since, progress=progress))
    start = f" since {since.isoformat()}" if since else ""
    console.print(
        f"replayed {report.events:,} events{start} into {name} in "
        f"{report.rebuild.seconds:.1f}s ({report.rebuild.events_per_second:,.0f} events/s); "
        f"{report.after_swap.events:,} more applied after the swap"
    )


@app.command()
@clean_errors
def digest(projection: Annotated[str, typer.Argument(help="The projection to digest.")]) -> None:
    """A deterministic hash of a projection's rows (equal digests = equal projections)."""
    from pipeline.database import connect
    from pipeline.digest import projection_digest
    from pipeline.projection import load_projection

    target = load_projection(projection, settings())

    async def compute() -> Any:
        async with connect(settings()) as connection:
            return await projection_digest(connection, target)

    result = run_async(compute())
    table = Table(title=f"digest of {projection}")
    for column in ("table", "rows", "sha256"):
        table.add_column(column)
    for row in result.tables:
        table.add_row(row.table, f"{row.rows:,}", row.sha256)
    console.print(table)
    console.print(f"{projection} {result.sha256}")


@app.command()
@clean_errors
def journal(
    last: Annotated[int, typer.Option(help="How many of the newest events to list.")] = 10,
) -> None:
    """What the journal holds: events by topic and type, and the newest ones."""
    from pipeline.database import connect

    async def query() -> tuple[list[Any], list[Any]]:
        async with connect(settings()) as connection:
            counts = await connection.fetch(
                "SELECT topic, type, count(*) AS n, min(occurred_at) AS first, "
                "max(occurred_at) AS last FROM journal.events "
                "GROUP BY topic, type ORDER BY topic, type"
            )
            newest = await connection.fetch(
                'SELECT occurred_at, type, origin, municipality, topic, partition, "offset" '
                "FROM journal.events ORDER BY recorded_at DESC, event_id DESC LIMIT $1",
                last,
            )
        return counts, newest

    counts, newest = run_async(query())
    table = Table(title="journal: events by topic and type")
    for column in ("topic", "type", "events", "first occurred", "last occurred"):
        table.add_column(column)
    for row in counts:
        table.add_row(
            row["topic"], row["type"], f"{row['n']:,}", str(row["first"]), str(row["last"])
        )
    table.add_section()
    table.add_row("", "total", f"{sum(r['n'] for r in counts):,}", "", "")
    console.print(table)
    recent = Table(title=f"journal: newest {last}")
    for column in ("occurred_at", "type", "origin", "municipality", "at"):
        recent.add_column(column)
    for row in newest:
        recent.add_row(
            str(row["occurred_at"]),
            row["type"],
            row["origin"],
            row["municipality"] or "",
            f"{row['topic']}[{row['partition']}]@{row['offset']}",
        )
    console.print(recent)


@app.command()
@clean_errors
def deadletters(
    last: Annotated[int, typer.Option(help="How many of the newest letters to list.")] = 20,
) -> None:
    """Input the pipeline refused: where it came from and why."""
    from pipeline.database import connect

    async def query() -> list[Any]:
        async with connect(settings()) as connection:
            return list(
                await connection.fetch(
                    'SELECT topic, partition, "offset", reason, detail, projection, recorded_at '
                    "FROM platform.dead_letters WHERE cluster = $1 "
                    "ORDER BY recorded_at DESC LIMIT $2",
                    settings().center,
                    last,
                )
            )

    table = Table(title="dead letters")
    for column in ("at", "reason", "detail", "seen by", "recorded"):
        table.add_column(column)
    for row in run_async(query()):
        table.add_row(
            f"{row['topic']}[{row['partition']}]@{row['offset']}",
            row["reason"],
            row["detail"],
            row["projection"],
            str(row["recorded_at"]),
        )
    console.print(table)


@app.command()
@clean_errors
def sample(
    count: Annotated[int, typer.Option(min=1, help="How many events to publish.")] = 1000,
    seed: Annotated[int, typer.Option(help="Seed of the workload generator.")] = 7,
) -> None:
    """Publish a sample stream from the workload generator."""
    from pipeline.kafka import producer
    from pipeline.publish import proven_by_their_edges, publish_many
    from producers.workload import platform_sample

    async def send() -> int:
        async with producer(settings()) as client:
            with Progress(
                TextColumn("publishing"), BarColumn(), MofNCompleteColumn(), console=console
            ) as bar:
                task = bar.add_task("publish", total=count)
                return await publish_many(
                    settings(),
                    client,
                    proven_by_their_edges(settings(), platform_sample(count, seed=seed)),
                    on_sent=lambda n: bar.update(task, completed=n),
                )

    sent = run_async(send())
    console.print(f"published {sent:,} events")


@app.command()
@clean_errors
def wait(
    projections: Annotated[
        list[str] | None, typer.Argument(help="Projections to wait for (default: all).")
    ] = None,
    timeout: Annotated[float, typer.Option(help="Give up after this many seconds.")] = 300.0,
) -> None:
    """Wait until projections have applied everything in the log."""
    from pipeline.projection import PROJECTION_MODULES, load_projection
    from pipeline.status import projection_lag

    targets = [load_projection(n, settings()) for n in projections or list(PROJECTION_MODULES)]

    async def poll() -> None:
        deadline = time.monotonic() + timeout
        while True:
            lags = [await projection_lag(settings(), p) for p in targets]
            if all(lag.lag == 0 for lag in lags):
                return
            if time.monotonic() > deadline:
                behind = ", ".join(
                    f"{lag.projection} {lag.lag:,} behind" for lag in lags if lag.lag
                )
                raise CommandError(f"still behind after {timeout:.0f}s: {behind}")
            await asyncio.sleep(0.5)

    run_async(poll())
    console.print("caught up: " + ", ".join(p.name for p in targets))


def main() -> None:
    # Everything a command writes, and every service it starts, is the operator's alone: keys,
    # pushed registers, the log's store, logs (folders 0700, files 0600). infra.postgres adds
    # search permission on the way to its data folder for the server's own account.
    os.umask(0o077)
    collect_seldom()
    app()


if __name__ == "__main__":
    main()
