"""Which agents a live worker process hosts, and how a center lays them over processes.

Kept apart from ``pipeline.worker`` so that `bcl up`, `bcl down` and the failover drill can name
the worker processes without importing the consumers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

# The consumers a worker can host, by module exposing ``install(worker)``. Named by string so the
# pipeline never imports a consumer statically.
AGENT_MODULES: Final[dict[str, str]] = {
    "journal": "consumers.journal.agent",
    "registry": "consumers.registry.agent",
    "replica": "consumers.replica.agent",
    "certificates": "consumers.certificates.agent",
    "issuer": "consumers.issuer.agent",
    "usage": "consumers.usage.agent",
    "fees": "consumers.fees.agent",
    "disaster": "consumers.disaster.agent",
}

ALL_AGENTS: Final = "all"


@dataclass(frozen=True)
class WorkerRole:
    """One process of a center's live worker.

    ``background``: the projections of a center's layout, beside its issuance process: it runs
    at a lower CPU priority, so the kiosks' path gets the CPU first.
    """

    name: str
    agents: tuple[str, ...]
    background: bool

    @property
    def answers_kiosks(self) -> bool:
        """Whether a resident at a kiosk waits on this process: it hosts the issuer. Any other
        process fetches less often, in larger batches (``Worker.fetching``)."""
        return "issuer" in self.agents

    @property
    def file_stem(self) -> str:
        """Names the process's pid file and log in the center's home (`bcl down` stops each)."""
        return "worker" if self.name == ALL_AGENTS else f"worker-{self.name}"

    @property
    def pid_file_name(self) -> str:
        return f"{self.file_stem}.pid"


# How a center runs its agents (`bcl worker --detach`, `bcl up --worker`): one process per role,
# each with its own pid file.
# - issuance: the issuer alone. A resident stands at the kiosk for each of its answers, so no
#   other projection's batch may hold up its event loop, and it keeps the CPU when the machine
#   is busy.
# - projections: everything else. Their readers (operators, analysts, the issuer reading the
#   replica and the certificates) can wait a moment; the revocations and resident changes they
#   apply come in far less often than kiosk requests.
WORKER_ROLES: Final = (
    WorkerRole("issuance", ("issuer",), background=False),
    WorkerRole("projections", tuple(a for a in AGENT_MODULES if a != "issuer"), background=True),
)


_ROLES_BY_NAME: Final = {role.name: role for role in WORKER_ROLES}


def worker_role(name: str) -> WorkerRole:
    if name not in _ROLES_BY_NAME:
        known = ", ".join(_ROLES_BY_NAME)
        raise LookupError(f"unknown worker role {name!r}; known roles: {known}")
    return _ROLES_BY_NAME[name]


def role_of(agents: Sequence[str] | None) -> WorkerRole:
    """The role a worker hosting ``agents`` (None: every agent) plays. Its name names the
    process's pid file: ``all``, a role's name, or the agents joined by
    ``+``; only a role of the center's layout runs in the background."""
    if agents is None:
        agents = tuple(AGENT_MODULES)
    unknown = [name for name in agents if name not in AGENT_MODULES]
    if unknown:
        known = ", ".join(sorted(AGENT_MODULES))
        raise LookupError(f"unknown agent {unknown[0]!r}; known agents: {known}")
    hosted = tuple(name for name in AGENT_MODULES if name in agents)
    if hosted == tuple(AGENT_MODULES):
        return WorkerRole(ALL_AGENTS, hosted, background=False)
    for role in WORKER_ROLES:
        if set(hosted) == set(role.agents):
            return role
    return WorkerRole("+".join(hosted), hosted, background=False)
