"""`bcl mirror`: copy one center's source topics into the other center's cluster, see how far
the copy lags, and translate a consumer group's offsets for the other center."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Annotated, get_args

import typer

from pipeline.commands.common import (
    CommandError,
    clean_errors,
    console,
    run_async,
    settings,
    start_in_background,
)
from pipeline.commands.output import Format, OutputFormat, emit
from pipeline.settings import Center, Settings
from pipeline.tables import Table

app = typer.Typer(no_args_is_help=True)

From = Annotated[str, typer.Option("--from", help="The center copied from: east or west.")]
To = Annotated[str, typer.Option("--to", help="The center copied into: east or west.")]


def centers(source: str, target: str) -> tuple[Settings, Settings]:
    known = get_args(Center)
    for name in (source, target):
        if name not in known:
            raise CommandError(f"unknown center {name!r}: give one of {', '.join(known)}")
    if source == target:
        raise CommandError("--from and --to name the same center; a mirror copies between two")
    current = settings()
    return current.for_center(source), current.for_center(target)  # type: ignore[arg-type]


@app.command()
@clean_errors
def run(
    source: From,
    target: To,
    until_caught_up: Annotated[
        bool, typer.Option(help="Stop once the source's end as of now is copied.")
    ] = False,
    detach: Annotated[bool, typer.Option(help="Run in the background; `bcl down` stops it.")] = (
        False
    ),
) -> None:
    """Copy the source center's topics into the target's cluster as '<source>.<topic>'."""
    source_settings, target_settings = centers(source, target)
    if detach:
        start_mirror(source_settings, target_settings)
        return
    import asyncio

    from infra.mirror import Mirror

    async def copy() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        report = await Mirror(source_settings, target_settings).run(
            stop=stop, until_end=until_caught_up
        )
        console.print(
            f"mirror {source} → {target}: {report.copied:,} records in {report.seconds:.1f}s"
            + (
                f"; source log replaced in {', '.join(report.restarted)}"
                if report.restarted
                else ""
            )
        )

    target_settings.center_home.mkdir(parents=True, exist_ok=True)
    marker = mirror_pid_file(source_settings, target_settings)
    marker.write_text(str(os.getpid()))
    try:
        run_async(copy())
    finally:
        marker.unlink(missing_ok=True)


def mirror_pid_file(source: Settings, target: Settings) -> Path:
    from infra.services import MIRROR_PID_FILE

    return target.center_home / MIRROR_PID_FILE.format(source=source.center)


def start_mirror(source: Settings, target: Settings) -> None:
    """The mirror from ``source`` into ``target`` in the background (`bcl down` of the target
    stops it)."""
    log_path = target.center_home / f"mirror-from-{source.center}.log"
    process = start_in_background(
        ["mirror", "run", "--from", source.center, "--to", target.center],
        log_path,
        mirror_pid_file(source, target),
    )
    console.print(
        f"mirror {source.center} → {target.center} started (pid {process.pid}), log: {log_path}"
    )


@app.command()
@clean_errors
def status(
    source: From,
    target: To,
    output: Format = OutputFormat.TABLE,
) -> None:
    """Records of each source topic not yet copied: what a loss of the source would lose now."""
    from infra.mirror import mirror_lag

    source_settings, target_settings = centers(source, target)
    lag = run_async(mirror_lag(source_settings, target_settings))
    emit(
        Table(("topic", "not_yet_copied"), tuple(sorted(lag.items()))),
        title=f"mirror {source} → {target}",
        output=output,
        out=None,
        text_columns={"topic"},
        totals={"not_yet_copied"},
    )


@app.command()
@clean_errors
def translate(
    group: Annotated[str, typer.Argument(help="A consumer group of the source cluster.")],
    source: From,
    target: To,
    output: Format = OutputFormat.TABLE,
) -> None:
    """A consumer group's committed offsets in the source cluster, as offsets of the copies in
    the target cluster (from the mirror's checkpoints)."""
    from infra.mirror import committed_offsets, read_checkpoints
    from infra.mirror import translate as to_target

    source_settings, target_settings = centers(source, target)
    committed = run_async(committed_offsets(source_settings, group))
    if not committed:
        raise CommandError(f"group {group!r} has committed no offset in {source}'s source topics")
    translated = to_target(committed, run_async(read_checkpoints(source_settings, target_settings)))
    emit(
        Table(
            ("topic", "partition", f"{source}_offset", f"{target}_topic", f"{target}_offset"),
            tuple(
                (
                    topic,
                    partition,
                    offset,
                    target_settings.mirrored(source, topic),
                    translated[(topic, partition)],
                )
                for (topic, partition), offset in sorted(committed.items())
            ),
        ),
        title=f"group {group}: {source} → {target}",
        output=output,
        out=None,
        text_columns={"topic", f"{target}_topic"},
    )
