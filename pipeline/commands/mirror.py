"""`bcl mirror`: copy one center's source topics into the other center's cluster, see how far
the copy lags, and translate a consumer group's offsets for the other center."""

from __future__ import annotations

import os
import signal
from typing import Annotated

import typer

from pipeline.commands.common import (
    CenterName,
    CommandError,
    clean_errors,
    console,
    run_async,
    settings,
)
from pipeline.commands.output import Format, OutputFormat, emit
from pipeline.settings import Settings
from pipeline.tables import Table

app = typer.Typer(no_args_is_help=True)

From = Annotated[CenterName, typer.Option("--from", help="The center copied from.")]
To = Annotated[CenterName, typer.Option("--to", help="The center copied into.")]


def centers(source: CenterName, target: CenterName) -> tuple[Settings, Settings]:
    if source == target:
        raise CommandError("--from and --to name the same center; a mirror copies between two")
    current = settings()
    return current.for_center(source.value), current.for_center(target.value)


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
        start_mirror_in_background(source_settings, target_settings)
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
    from infra.services import mirror_pid_file

    marker = mirror_pid_file(source_settings, target_settings)
    marker.write_text(str(os.getpid()))
    try:
        run_async(copy())
    finally:
        marker.unlink(missing_ok=True)


def start_mirror_in_background(source: Settings, target: Settings) -> None:
    from infra.services import start_mirror

    process = start_mirror(source, target)
    console.print(
        f"mirror {source.center} → {target.center} started (pid {process.pid}), "
        f"log: {process.log_path}"
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
