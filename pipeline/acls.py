"""The broker ACLs that give each edge write access to its own topic alone, on a Kafka cluster.

The embedded tansu 0.6.0 has no ACLs (and stores no SASL users), so there the edges' proofs of
origin (``pipeline.proofs``) are all that stops a forger. On a real cluster each process logs in
as a principal of its own (``BCL_KAFKA_SASL_*``) and these ACLs keep it to its edge's topic: a
stolen credential then writes nothing anywhere else, and strangers write nothing at all.
"""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.settings import Settings
from pipeline.topics import DEAD_LETTERS, SOURCE_TOPICS
from schemas.rights import EDGE_RIGHTS

CENTERS = ("east", "west")
PRINCIPAL_PREFIX = "User:bcl-"
# What each process writes besides its own commands: the workers host the processors (the
# issuer; the revoker, for the JPKI edge; the disaster ledger) and park dead letters.
_WORKER_WRITES = {"issuance": ("issuer",), "projections": ("jpki", "disaster")}


@dataclass(frozen=True)
class Grant:
    principal: str
    operations: tuple[str, ...]
    resource: str  # "topic" or "group"
    name: str
    prefixed: bool = False

    def kafka_acls(self) -> str:
        """The `kafka-acls.sh` command that makes this grant."""
        operations = " ".join(f"--operation {op}" for op in self.operations)
        pattern = " --resource-pattern-type prefixed" if self.prefixed else ""
        return (
            f"kafka-acls.sh --bootstrap-server $BCL_KAFKA_BOOTSTRAP --add "
            f"--allow-principal {self.principal} {operations} --{self.resource} {self.name}"
            f"{pattern}"
        )


def principals() -> dict[str, tuple[str, ...]]:
    """Each process's principal → the edge kinds it publishes for."""
    found: dict[str, tuple[str, ...]] = {}
    for kind, rights in EDGE_RIGHTS.items():
        if kind in ("issuer",):
            continue  # decided inside the issuance worker
        if rights.scope == "origin":
            for center in CENTERS:
                found[f"{PRINCIPAL_PREFIX}{kind}-{center}"] = (kind,)
        elif kind == "municipality":
            # One push intake speaks for every municipality; which one is bound by its proofs.
            found[f"{PRINCIPAL_PREFIX}push-intake"] = (kind,)
        else:
            found[f"{PRINCIPAL_PREFIX}{kind}"] = (kind,)
    for role, kinds in _WORKER_WRITES.items():
        for center in CENTERS:
            found[f"{PRINCIPAL_PREFIX}worker-{role}-{center}"] = kinds
    return found


def grants(settings: Settings) -> list[Grant]:
    """Every principal writes its edges' topics and nothing else, and reads what it reads:
    every topic and consumer group of this deployment (its prefix)."""
    planned: list[Grant] = []
    for principal, kinds in principals().items():
        topics = sorted({EDGE_RIGHTS[kind].topic for kind in kinds})
        if principal.startswith(f"{PRINCIPAL_PREFIX}worker-"):
            topics.append(DEAD_LETTERS.name)
        for topic in topics:
            planned.append(Grant(principal, ("Write", "Describe"), "topic", settings.topic(topic)))
        # Kafka has no empty prefix: without one, every topic is the wildcard's.
        every_topic = (
            Grant(principal, ("Read", "Describe"), "topic", settings.topic_prefix, prefixed=True)
            if settings.topic_prefix
            else Grant(principal, ("Read", "Describe"), "topic", "'*'")
        )
        planned.append(every_topic)
        planned.append(
            Grant(principal, ("Read",), "group", f"{settings.topic_prefix}bcl-", prefixed=True)
        )
    return planned


def unwritten_topics() -> set[str]:
    """Source topics no edge writes: none, or the catalog and the rights disagree."""
    return set(SOURCE_TOPICS) - {rights.topic for rights in EDGE_RIGHTS.values()}


def user_commands() -> list[str]:
    """The `kafka-configs.sh` commands that make each principal a SCRAM user, its password to be
    filled in (and given to that process alone as BCL_KAFKA_SASL_PASSWORD)."""
    return [
        "kafka-configs.sh --bootstrap-server $BCL_KAFKA_BOOTSTRAP --alter --add-config "
        f"'SCRAM-SHA-256=[password=<its password>]' --entity-type users --entity-name "
        f"{principal.removeprefix('User:')}"
        for principal in principals()
    ]
