"""The rights of each edge: who may write which event, with which claims."""

from datetime import UTC, datetime
from uuid import uuid4

import pytest

from schemas.envelope import Envelope
from schemas.events.certificates import CertificateKind, CertificateRevoked, RevocationReason
from schemas.events.issuance import IssuanceCancelled
from schemas.rights import EDGE_RIGHTS, edge_of, edge_problem, rights_problem

NOW = datetime(2026, 12, 7, 9, tzinfo=UTC)


def revoked(source: str = "jpki", municipality: str | None = None) -> Envelope:
    payload = CertificateRevoked(
        serial="4F3A09B2C1D0E7F6",
        kind=CertificateKind.USER_AUTHENTICATION,
        reason=RevocationReason.HOLDER_REQUEST,
        revoked_at=NOW,
    )
    return Envelope.new(
        "certificate.revoked",
        payload,
        origin="east",
        source=source,
        occurred_at=NOW,
        municipality=municipality,
    )


def cancelled(origin: str = "east", source: str = "center:east") -> Envelope:
    return Envelope.new(
        "issuance.cancelled",
        IssuanceCancelled(request_id=uuid4(), reason="resident left the kiosk"),
        origin=origin,  # type: ignore[arg-type]
        source=source,
        occurred_at=NOW,
        municipality="131016",
    )


def test_every_registered_event_type_has_exactly_one_kind_of_edge() -> None:
    from schemas.registry import REGISTRY

    for event_type in REGISTRY.types():
        kinds = [kind for kind, rights in EDGE_RIGHTS.items() if event_type in rights.types]
        assert len(kinds) == 1, (event_type, kinds)


def test_only_the_jpki_edge_may_revoke() -> None:
    assert rights_problem("jpki", revoked()) is None
    for edge in ("center:east", "municipality:131016", "registry", "issuer:east", "disaster"):
        assert (
            rights_problem(edge, revoked())
            == f"edge {edge} has no right to publish certificate.revoked"
        )


def test_a_center_requests_only_in_its_own_origin_and_name() -> None:
    assert rights_problem("center:east", cancelled()) is None
    assert rights_problem("center:west", cancelled()) == (
        "edge center:west may not claim source 'center:east' (it may: center:west)"
    )
    # Claiming its own name but another origin.
    assert rights_problem("center:west", cancelled(origin="east", source="center:west")) == (
        "edge center:west speaks only for origin west, not east"
    )


def test_a_municipality_speaks_only_for_itself() -> None:
    # Rights read only the envelope's type and claims, so its payload is left out here.
    envelope = Envelope.model_construct(
        event_id=uuid4(),
        type="resident.removed",
        version=1,
        source="municipality:131016",
        municipality="131024",
        origin="east",
        occurred_at=NOW,
        recorded_at=NOW,
        payload={},
    )
    assert rights_problem("municipality:131016", envelope) == (
        "edge municipality:131016 speaks only for municipality 131016, not 131024"
    )
    assert rights_problem("municipality:131024", envelope) == (
        "edge municipality:131024 may not claim source 'municipality:131016' "
        "(it may: municipality:131024)"
    )


@pytest.mark.parametrize(
    ("edge", "problem"),
    [
        ("nobody", "'nobody' is not an edge of this platform"),
        ("jpki:east", "edge 'jpki:east': a jpki edge has no scope"),
        ("center:north", "edge 'center:north': a center edge is named center:<origin>"),
        ("municipality:12", "edge 'municipality:12': a municipality edge is named"),
        ("municipality", "edge 'municipality': a municipality edge is named"),
        ("", "'' is not an edge of this platform"),
    ],
)
def test_unknown_or_badly_scoped_edges_are_named_as_such(edge: str, problem: str) -> None:
    found = edge_problem(edge)
    assert found is not None
    assert found.startswith(problem)


def test_edge_of_finds_the_edge_whose_rights_cover_an_event() -> None:
    assert edge_of(revoked()) == "jpki"
    assert edge_of(cancelled(origin="west", source="center:west")) == "center:west"
    with pytest.raises(ValueError, match=r"no edge may publish certificate\.revoked"):
        edge_of(revoked(source="registry"))


def test_each_edge_writes_to_a_topic_of_the_catalog_that_carries_its_events() -> None:
    from pipeline.topics import CATALOG

    names = {spec.name: spec for spec in CATALOG}
    for kind, rights in EDGE_RIGHTS.items():
        assert rights.topic in names, kind
        assert names[rights.topic].source, kind  # a topic of record, kept and mirrored
