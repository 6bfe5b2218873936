"""Who may write what on the log: the rights of each edge, kept as data (DESIGN §7).

An edge is an identity with its own key: ``registry``, ``municipality:<code>`` (its push intake),
``center:<east|west>`` (its kiosk gateway), ``issuer:<east|west>``, ``jpki`` (the JPKI importer,
its test CA and the revocations that follow a death or a move away), ``disaster`` (the disaster
desk and its ledger) and ``retention``. Every event carries its edge's proof of origin
(``pipeline.proofs``); the edge's rights then say whether it may write that event at all. Fields
the sender writes itself (``source``, ``origin``, ``municipality``) are claims: an edge may make
only the claims its rights allow.

Pure rules: no keys and no I/O here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Final

from schemas.envelope import Envelope

_CERTIFICATES = frozenset(
    {
        "certificate.issued",
        "certificate.suspended",
        "certificate.suspension_lifted",
        "certificate.revoked",
        "certificate.crl_imported",
    }
)
_DISASTER = frozenset(
    {
        "disaster.declared",
        "disaster.ledger_seeded",
        "dwelling.located",
        "support_needs.registered",
        "victim.updated",
        "shelter.opened",
        "shelter.closed",
        "shelter.tapped",
        "shelter.tap_matched",
        "shelter.tap_refused",
        "application.submitted",
        "application.matched",
        "application.refused",
        "application.accepted",
        "application.rejected",
        "application.ready",
        "damage.assessed",
        "damage.assessed_in_area",
        "support.paid",
        "notification.sent",
    }
)


@dataclass(frozen=True)
class EdgeRights:
    """What an edge of one kind may publish.

    ``topic``: the one topic its events go to (a broker's ACLs let it write there alone).
    ``sources``: the ``source`` claims it may make, as shell patterns; ``{scope}`` stands for the
    part of its identity after the colon. ``scope``: which envelope field must name the edge's
    own scope (a municipality pushes only its own residents, a center requests only in its own
    origin), or None.
    """

    topic: str
    types: frozenset[str]
    sources: tuple[str, ...]
    scope: str | None = None


EDGE_RIGHTS: Final[dict[str, EdgeRights]] = {
    "registry": EdgeRights(
        "municipalities",
        frozenset({"municipality.joined", "municipality.updated"}),
        sources=("registry",),
    ),
    "municipality": EdgeRights(
        "resident.changes",
        frozenset(
            {
                "resident.registered",
                "resident.changed",
                "resident.removed",
                "resident.batch_accepted",
                "seal.changed",
                "tax.recorded",
            }
        ),
        sources=("municipality:{scope}",),
        scope="municipality",
    ),
    "center": EdgeRights(
        "issuance.requests",
        frozenset({"issuance.requested", "issuance.delivered", "issuance.cancelled"}),
        sources=("center:{scope}",),
        scope="origin",
    ),
    "issuer": EdgeRights(
        "issuance.outcomes",
        frozenset({"issuance.issued", "issuance.rejected"}),
        sources=("issuer",),
        scope="origin",
    ),
    # A card is issued at the municipality's window, so its issuance names the municipality.
    "jpki": EdgeRights("jpki.certificates", _CERTIFICATES, sources=("jpki", "municipality:*")),
    "disaster": EdgeRights(
        "disaster.events",
        _DISASTER,
        sources=("disaster", "portal", "shelter:*", "staff:*", "municipality:*"),
    ),
    "retention": EdgeRights(
        "resident.changes", frozenset({"resident.purged"}), sources=("retention",)
    ),
}

_EDGE = re.compile(r"(?P<kind>[a-z]+)(?::(?P<scope>[0-9A-Za-z_-]+))?")
_SCOPES: Final = {"municipality": re.compile(r"[0-9]{6}"), "origin": re.compile(r"east|west")}


def edge_problem(edge: str) -> str | None:
    """Why ``edge`` names no edge, or None."""
    match = _EDGE.fullmatch(edge)
    if match is None or match["kind"] not in EDGE_RIGHTS:
        kinds = ", ".join(sorted(EDGE_RIGHTS))
        return f"{edge!r} is not an edge of this platform (edges are of kinds: {kinds})"
    rights = EDGE_RIGHTS[match["kind"]]
    scope = match["scope"]
    if rights.scope is None and scope is not None:
        return f"edge {edge!r}: a {match['kind']} edge has no scope"
    if rights.scope is not None and (scope is None or not _SCOPES[rights.scope].fullmatch(scope)):
        return f"edge {edge!r}: a {match['kind']} edge is named {match['kind']}:<{rights.scope}>"
    return None


def rights_problem(edge: str, envelope: Envelope) -> str | None:
    """Why ``edge`` may not publish ``envelope``, or None if it may."""
    problem = edge_problem(edge)
    if problem is not None:
        return problem
    kind, _, scope = edge.partition(":")
    rights = EDGE_RIGHTS[kind]
    if envelope.type not in rights.types:
        return f"edge {edge} has no right to publish {envelope.type}"
    claims = [pattern.replace("{scope}", scope) for pattern in rights.sources]
    if not any(fnmatchcase(envelope.source, claim) for claim in claims):
        return f"edge {edge} may not claim source {envelope.source!r} (it may: {', '.join(claims)})"
    if rights.scope is not None:
        claimed = getattr(envelope, rights.scope)
        if claimed != scope:
            return f"edge {edge} speaks only for {rights.scope} {scope}, not {claimed}"
    return None


def edge_of(envelope: Envelope) -> str:
    """The edge whose rights cover ``envelope``, for tools that stand in for every edge (the
    workload generator, tests): the first kind with the right, scoped as the envelope claims."""
    for kind, rights in EDGE_RIGHTS.items():
        if envelope.type not in rights.types:
            continue
        edge = kind if rights.scope is None else f"{kind}:{getattr(envelope, rights.scope)}"
        if rights_problem(edge, envelope) is None:
            return edge
    raise ValueError(
        f"no edge may publish {envelope.type} from source {envelope.source!r} "
        f"(origin {envelope.origin}, municipality {envelope.municipality})"
    )
