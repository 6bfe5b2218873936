"""The topic catalog: one place that names every topic, read by topic creation and the agents."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class TopicSpec:
    name: str
    key: str
    events: str
    # Source topics are the log of record: they are kept forever and mirrored between centers.
    source: bool = True
    config: dict[str, str] = field(default_factory=dict)


UNLIMITED_RETENTION = {"retention.ms": "-1", "retention.bytes": "-1"}

MUNICIPALITIES = TopicSpec(
    "municipalities",
    key="municipality code",
    events="municipality joined, updated (registry of participating municipalities)",
    config=UNLIMITED_RETENTION,
)
RESIDENT_CHANGES = TopicSpec(
    "resident.changes",
    key="municipality:resident_code",
    events="registered, changed, removed, seal registered/abolished, tax facts",
    config=UNLIMITED_RETENTION,
)
JPKI_CERTIFICATES = TopicSpec(
    "jpki.certificates",
    key="certificate serial",
    events="certificate issued, suspended, suspension lifted, revoked",
    config=UNLIMITED_RETENTION,
)
ISSUANCE_REQUESTS = TopicSpec(
    "issuance.requests",
    key="request id",
    events="requested, delivered, cancelled",
    config=UNLIMITED_RETENTION,
)
ISSUANCE_OUTCOMES = TopicSpec(
    "issuance.outcomes",
    key="request id",
    events="issued, rejected (the issuer's recorded decision)",
    config=UNLIMITED_RETENTION,
)
DISASTER_EVENTS = TopicSpec(
    "disaster.events",
    key="municipality:disaster_id",
    events="declared, shelters, check-ins, applications, damage, notices",
    config=UNLIMITED_RETENTION,
)
DEAD_LETTERS = TopicSpec(
    "dead-letters",
    key="original key",
    events="undecodable or invalid input with its origin and the reason",
    source=False,
    config=UNLIMITED_RETENTION,
)

CATALOG: tuple[TopicSpec, ...] = (
    MUNICIPALITIES,
    RESIDENT_CHANGES,
    JPKI_CERTIFICATES,
    ISSUANCE_REQUESTS,
    ISSUANCE_OUTCOMES,
    DISASTER_EVENTS,
    DEAD_LETTERS,
)

SOURCE_TOPICS: tuple[str, ...] = tuple(t.name for t in CATALOG if t.source)


def topic(name: str) -> TopicSpec:
    for spec in CATALOG:
        if spec.name == name:
            return spec
    known = ", ".join(t.name for t in CATALOG)
    raise KeyError(f"unknown topic {name!r}; the catalog has: {known}")
