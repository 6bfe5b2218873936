"""`bcl edges`: who may write what on the log (the rights as data), and the broker ACLs that
hold each edge to its own topic on a Kafka cluster."""

from __future__ import annotations

import typer

from pipeline.commands.common import clean_errors, console, settings
from pipeline.commands.output import Format, Out, OutputFormat, emit
from pipeline.tables import Table

app = typer.Typer(no_args_is_help=True)


@app.command(name="list")
@clean_errors
def list_edges(output: Format = OutputFormat.TABLE, out: Out = None) -> None:
    """Each kind of edge: the topic it writes, the events it may publish, the claims it may
    make. Consumers refuse anything else as a dead letter 'unauthenticated'."""
    from schemas.rights import EDGE_RIGHTS

    table = output is OutputFormat.TABLE
    rows = tuple(
        (
            kind if rights.scope is None else f"{kind}:<{rights.scope}>",
            rights.topic,
            _types(rights.types) if table else " ".join(sorted(rights.types)),
            ", ".join(s.replace("{scope}", f"<{rights.scope}>") for s in rights.sources),
            f"its own {rights.scope}" if rights.scope else "—",
        )
        for kind, rights in EDGE_RIGHTS.items()
    )
    emit(
        Table(("edge", "topic", "may_publish", "may_claim_source", "bound_to"), rows),
        "edges of the platform",
        output,
        out,
        text_columns={"edge", "topic", "may_publish", "may_claim_source", "bound_to"},
    )


def _types(types: frozenset[str]) -> str:
    """A terminal's summary: the types, or by family when there are many."""
    if len(types) <= 6:
        return ", ".join(sorted(types))
    families = sorted({t.split(".")[0] for t in types})
    return f"{len(types)} types: " + ", ".join(f"{family}.*" for family in families)


@app.command()
@clean_errors
def acls() -> None:
    """The `kafka-configs.sh` commands that make each process of a center a SCRAM principal of
    its own, and the `kafka-acls.sh` commands that give it write access to its edge's topic
    alone (and read access to the deployment's topics and consumer groups). The embedded
    broker has neither users nor ACLs."""
    from pipeline.acls import grants, user_commands

    for command in user_commands():
        console.print(command, soft_wrap=True, highlight=False, markup=False)
    for grant in grants(settings()):
        console.print(grant.kafka_acls(), soft_wrap=True, highlight=False, markup=False)
