"""Red team: events forged by someone who can reach the broker but holds no edge's key.

Each forgery is written with a plain Kafka client, as an attacker inside the network would, and
every projection reading its topic must refuse it as a dead letter ``unauthenticated`` and change
nothing. The first four repeat the attacks that once succeeded (issue 23).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, time, timedelta
from typing import Any
from uuid import UUID

import pytest
from aiokafka import AIOKafkaProducer

from infra.mirror import Mirror
from pipeline.catchup import refresh
from pipeline.database import connect
from pipeline.kafka import create_topics, partitions_of, reader
from pipeline.projection import load_projection
from pipeline.proofs import EdgeKeys
from pipeline.settings import Settings
from pipeline.topics import (
    DISASTER_EVENTS,
    ISSUANCE_OUTCOMES,
    ISSUANCE_REQUESTS,
    JPKI_CERTIFICATES,
    MUNICIPALITIES,
    RESIDENT_CHANGES,
)
from producers.center import CenterGateway
from producers.jpki import issue_cards, residents_to_issue
from producers.jpki_ca import CertificateAuthority
from producers.registry import create_seal_key, update
from schemas.calendar import JST
from schemas.codec import DecodedEvent, decode_event, encode_event
from schemas.envelope import Envelope
from schemas.events.certificates import (
    CertificateIssued,
    CertificateKind,
    CertificateRevoked,
    RevocationReason,
)
from schemas.events.disaster import DisasterDeclared, DisasterKind
from schemas.events.issuance import (
    CertificateType,
    IssuanceIssued,
    IssuanceRejected,
    IssuanceRequested,
    RejectionReason,
    StoreOperator,
)
from schemas.events.municipalities import MunicipalityProfile, MunicipalityUpdated
from schemas.events.residents import ChangeReason, ResidentRecord
from schemas.ids import new_event_id
from tests.helpers import jpki_ca, working_days_ahead
from tests.producers.push_helpers import CHIYODA, SAMPLE_CSV, YOKOHAMA, register, signed_push

pytestmark = pytest.mark.integration

ICHIRO = "13101600011"  # 神田 一郎, who holds a card
NOW = datetime.now(UTC)
# Kiosks ask at 10:00 on a working day ahead, inside every municipality's service hours whatever
# the hour the tests run at.
ASKED_AT = datetime.combine(working_days_ahead(1)[0], time(10), JST)
ALL = ("registry", "replica", "certificates", "revocations", "issuer", "usage", "fees", "disaster")


async def project(settings: Settings, *names: str) -> None:
    for name in names or ALL:
        await refresh(settings, load_projection(name, settings))


async def chiyoda_with_cards(settings: Settings) -> dict[str, str]:
    """Chiyoda with its sample register, a seal key and a card for each resident; returns each
    resident's user-authentication serial."""
    key = await register(settings)
    await update(settings, CHIYODA, {"offered_types": ["juminhyo", "inkan"]})
    await signed_push(settings, key, SAMPLE_CSV, 1)
    await project(settings, "replica")
    await create_seal_key(settings, CHIYODA)
    holders = await residents_to_issue(settings, CHIYODA)
    issued = await issue_cards(
        settings, jpki_ca(settings), holders, issued_at=NOW - timedelta(days=30)
    )
    await project(settings)
    return {
        c.resident_code: c.serial for c in issued if c.kind is CertificateKind.USER_AUTHENTICATION
    }


async def write_raw(settings: Settings, topic: str, key: str, value: bytes) -> None:
    """What an attacker with network access does: no edge, no proof, just a Kafka client."""
    client: AIOKafkaProducer[bytes, bytes] = AIOKafkaProducer(bootstrap_servers=settings.bootstrap)
    await client.start()
    try:
        await client.send_and_wait(settings.topic(topic), value, key=key.encode())
    finally:
        await client.stop()


async def logged(settings: Settings, topic: str) -> list[DecodedEvent]:
    async with reader(settings) as client:
        partitions = await partitions_of(client, [settings.topic(topic)])
        client.assign(partitions)
        for tp in partitions:
            client.seek(tp, 0)
        found = []
        while batch := await client.getmany(timeout_ms=1000):
            for records in batch.values():
                found += [decode_event(r.value) for r in records if r.value]
        return found


async def until_requested(settings: Settings, request_id: UUID) -> None:
    for _ in range(60):
        requests = await logged(settings, ISSUANCE_REQUESTS.name)
        if any(getattr(e.payload, "request_id", None) == request_id for e in requests):
            return
        await asyncio.sleep(0.5)
    raise AssertionError(f"request {request_id} never reached the log")


async def refused(settings: Settings) -> list[tuple[str, str]]:
    """(topic, the start of the detail) of each record refused as unauthenticated, in log order.
    A record is kept once, by the first projection that refused it."""
    async with connect(settings) as connection:
        rows = await connection.fetch(
            "SELECT topic, detail FROM platform.dead_letters "
            "WHERE reason = 'unauthenticated' AND cluster = $1 "
            'ORDER BY topic, partition, "offset"',
            settings.center,
        )
    return [(r["topic"], _first_sentence(r["detail"])) for r in rows]


def _first_sentence(detail: str) -> str:
    return detail.split(";")[0].split(": it was")[0]


async def table(settings: Settings, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    async with connect(settings) as connection:
        return [tuple(row) for row in await connection.fetch(sql, *args)]


def kiosk_request(serial: str) -> IssuanceRequested:
    return IssuanceRequested(
        request_id=new_event_id(),
        store_operator=StoreOperator.SEVEN_ELEVEN,
        store_id="711-0001",
        store_municipality="141003",
        resident_municipality=CHIYODA,
        auth_serial=serial,
        certificate_type=CertificateType.JUMINHYO,
        copies=1,
    )


def forged(event_type: str, payload: Any, source: str, **fields: Any) -> bytes:
    """An envelope as the platform writes it, in every field but the proof."""
    return encode_event(
        Envelope.new(event_type, payload, origin="east", source=source, occurred_at=NOW, **fields)
    )


def forged_revocation(serials: dict[str, str]) -> bytes:
    """Ichiro's valid card revoked, stamped as the JPKI center's."""
    revocation = CertificateRevoked(
        serial=serials[ICHIRO],
        kind=CertificateKind.USER_AUTHENTICATION,
        reason=RevocationReason.HOLDER_REQUEST,
        revoked_at=NOW,
    )
    return forged("certificate.revoked", revocation, "jpki")


async def test_a_request_stamped_as_a_center_is_not_issued(platform: Settings) -> None:
    serials = await chiyoda_with_cards(platform)
    request = kiosk_request(serials[ICHIRO])
    value = forged("issuance.requested", request, "center:east", municipality=CHIYODA)
    await write_raw(platform, ISSUANCE_REQUESTS.name, str(request.request_id), value)
    await project(platform)

    assert await table(platform, "SELECT request_id FROM issuer.outcomes") == []
    assert await logged(platform, ISSUANCE_OUTCOMES.name) == []
    assert await refused(platform) == [
        (platform.topic(ISSUANCE_REQUESTS.name), "the event carries no proof of origin")
    ]


async def test_a_revocation_stamped_as_jpki_revokes_nothing(platform: Settings) -> None:
    serials = await chiyoda_with_cards(platform)
    await write_raw(platform, JPKI_CERTIFICATES.name, serials[ICHIRO], forged_revocation(serials))
    await project(platform)

    status = await table(
        platform, "SELECT status FROM certificates.certificates WHERE serial = $1", serials[ICHIRO]
    )
    assert status == [("active",)]
    assert await refused(platform) == [
        (platform.topic(JPKI_CERTIFICATES.name), "the event carries no proof of origin")
    ]


async def test_a_death_forged_by_another_municipality_with_a_pasted_seal_kills_nobody(
    platform: Settings,
) -> None:
    await chiyoda_with_cards(platform)
    await register(platform, YOKOHAMA)
    real = next(
        e
        for e in await logged(platform, RESIDENT_CHANGES.name)
        if isinstance(e.payload, ResidentRecord) and e.payload.resident_code == ICHIRO
    )
    death = real.payload.model_copy(
        update={"reason": ChangeReason.DEATH, "effective_date": NOW.date()}
    )
    envelope = Envelope.new(
        "resident.removed",
        ResidentRecord.model_validate(death.model_dump()),
        origin="east",
        source=f"municipality:{YOKOHAMA}",
        occurred_at=NOW,
        municipality=CHIYODA,
    )
    # Once with no proof, once proven by Yokohama's own edge (an insider municipality): neither
    # may speak for Chiyoda's residents.
    insider = EdgeKeys.of(platform).proof(f"municipality:{YOKOHAMA}", envelope)
    for value in (
        encode_event(envelope),
        encode_event(envelope.model_copy(update={"proof": insider})),
    ):
        await write_raw(platform, RESIDENT_CHANGES.name, f"{CHIYODA}:{ICHIRO}", value)
    await project(platform)

    assert await table(
        platform,
        "SELECT active FROM replica.residents WHERE municipality = $1 AND resident_code = $2",
        CHIYODA,
        ICHIRO,
    ) == [(True,)]
    statuses = await table(
        platform,
        "SELECT DISTINCT status FROM certificates.certificates WHERE resident_code = $1",
        ICHIRO,
    )
    assert statuses == [("active",)]
    assert await refused(platform) == [
        (platform.topic(RESIDENT_CHANGES.name), "the event carries no proof of origin"),
        (
            platform.topic(RESIDENT_CHANGES.name),
            f"edge municipality:{YOKOHAMA} speaks only for municipality {YOKOHAMA}, not {CHIYODA}",
        ),
    ]


async def test_an_invented_certificate_does_not_issue_a_residents_certificate(
    platform: Settings,
) -> None:
    await chiyoda_with_cards(platform)
    invented = "7A5E5E5E5E5E5E01"
    certificate = CertificateIssued(
        serial=invented,
        kind=CertificateKind.USER_AUTHENTICATION,
        municipality=CHIYODA,
        resident_code=ICHIRO,
        not_before=NOW - timedelta(days=1),
        not_after=NOW + timedelta(days=365),
        issuer="CN=T",
    )
    await write_raw(
        platform,
        JPKI_CERTIFICATES.name,
        invented,
        forged("certificate.issued", certificate, f"municipality:{CHIYODA}", municipality=CHIYODA),
    )
    await project(platform)

    async with CenterGateway(platform) as gateway:
        await gateway.submit(kiosk_request(invented), at=ASKED_AT, wait=False)
    await project(platform, "issuer")
    decided = [e.payload for e in await logged(platform, ISSUANCE_OUTCOMES.name)]
    assert len(decided) == 1
    assert isinstance(decided[0], IssuanceRejected)
    assert decided[0].reason is RejectionReason.CERTIFICATE_UNKNOWN


async def test_a_forged_outcome_answers_no_kiosk(platform: Settings) -> None:
    serials = await chiyoda_with_cards(platform)
    async with CenterGateway(platform, answer_timeout=60) as gateway:
        await gateway.submit(kiosk_request(serials[ICHIRO]), at=ASKED_AT, wait=False)
        await project(platform, "issuer")
        (issued,) = await logged(platform, ISSUANCE_OUTCOMES.name)
        assert isinstance(issued.payload, IssuanceIssued)
        # A resident waits at a kiosk; a copy of the real outcome, its proof kept, is made to
        # answer their request before the issuer does (same key, so read before the decision).
        waiting = kiosk_request(serials[ICHIRO])
        answer = asyncio.create_task(gateway.submit(waiting, at=ASKED_AT, wait=True))
        await until_requested(platform, waiting.request_id)
        copy = issued.envelope.model_copy(
            update={
                "payload": {**issued.envelope.payload, "request_id": str(waiting.request_id)},
                "event_id": new_event_id(),
            }
        )
        await write_raw(
            platform, ISSUANCE_OUTCOMES.name, str(waiting.request_id), encode_event(copy)
        )
        await project(platform, "issuer")
        outcome = await answer
    assert outcome is not None
    decided = await table(
        platform,
        "SELECT outcome, document_id FROM issuer.outcomes WHERE request_id = $1",
        waiting.request_id,
    )
    # The issuer's own decision, with a document of its own, not the copied one.
    assert decided == [("issued", outcome.document_id)]
    assert outcome.document_id != issued.payload.document_id
    assert await refused(platform) == [
        (platform.topic(ISSUANCE_OUTCOMES.name), "the proof does not match the event")
    ]


@pytest.mark.parametrize("topic", [MUNICIPALITIES.name, DISASTER_EVENTS.name])
async def test_a_forged_event_on_any_other_topic_is_refused(platform: Settings, topic: str) -> None:
    await chiyoda_with_cards(platform)
    if topic == MUNICIPALITIES.name:
        profile = MunicipalityProfile(name="乗っ取り区", uses_bcl=False)
        value = forged(
            "municipality.updated",
            MunicipalityUpdated(code=CHIYODA, profile=profile),
            "registry",
            municipality=CHIYODA,
        )
    else:
        declared = DisasterDeclared(
            disaster_id="131016-2026-fake-1",
            municipality=CHIYODA,
            name="偽の災害",
            kind=DisasterKind.EARTHQUAKE,
            occurred_on=NOW.date(),
        )
        value = forged("disaster.declared", declared, "disaster", municipality=CHIYODA)
    await write_raw(platform, topic, CHIYODA, value)
    await project(platform)

    assert await refused(platform) == [
        (platform.topic(topic), "the event carries no proof of origin")
    ]
    if topic == MUNICIPALITIES.name:
        names = await table(platform, "SELECT name FROM registry.municipalities")
        assert names == [("千代田区",)]


@pytest.fixture
async def west(platform: Settings, west_bootstrap: str) -> Settings:
    """The west center: its own broker, reading east's copies (same KEK, same database)."""
    settings = platform.model_copy(
        update={"center": "west", "peers": ("east",), "kafka_bootstrap": west_bootstrap}
    )
    await create_topics(settings)
    return settings


async def test_a_forgery_mirrored_into_the_other_center_is_refused_there_too(
    platform: Settings, west: Settings
) -> None:
    serials = await chiyoda_with_cards(platform)
    await write_raw(platform, JPKI_CERTIFICATES.name, serials[ICHIRO], forged_revocation(serials))
    copied = await Mirror(platform, west).run(until_end=True)
    await project(west, "certificates")

    assert copied.copied > len(serials)  # the real events crossed too, and were accepted
    assert await refused(west) == [
        (west.mirrored("east", JPKI_CERTIFICATES.name), "the event carries no proof of origin")
    ]
    accepted = await table(
        west,
        "SELECT count(*) FROM certificates.projection_offsets "
        "WHERE cluster = 'west' AND topic = $1",
        west.mirrored("east", JPKI_CERTIFICATES.name),
    )
    assert accepted[0][0] > 0
    status = await table(
        west, "SELECT status FROM certificates.certificates WHERE serial = $1", serials[ICHIRO]
    )
    assert status == [("active",)]


async def test_a_certificate_from_a_ca_nobody_trusts_issues_nothing(platform: Settings) -> None:
    """Even proven by the JPKI edge (whose key a KEK holder has), a certificate is admitted
    only with an X.509 that a trusted CA signed."""
    await chiyoda_with_cards(platform)
    rogue = CertificateAuthority.create()  # the very same name as the trusted test CA
    holders = await residents_to_issue(platform, CHIYODA, [ICHIRO])
    issued = await issue_cards(platform, rogue, holders)
    serial = next(c.serial for c in issued if c.kind is CertificateKind.USER_AUTHENTICATION)
    await project(platform)

    refused_issues = await table(
        platform, "SELECT code FROM certificates.refusals WHERE serial = $1", serial
    )
    assert refused_issues == [("not_from_trusted_ca",)]
    async with CenterGateway(platform) as gateway:
        await gateway.submit(kiosk_request(serial), at=ASKED_AT, wait=False)
    await project(platform, "issuer")
    (decided,) = [e.payload for e in await logged(platform, ISSUANCE_OUTCOMES.name)]
    assert isinstance(decided, IssuanceRejected)
    assert decided.reason is RejectionReason.CERTIFICATE_UNKNOWN


async def test_a_request_of_the_other_center_copied_in_is_not_decided_twice(
    west: Settings,
) -> None:
    """A real request of east, its proof intact, written into west's own topic by someone who
    can reach west's broker: only east decides it, so west answers nothing."""
    request = kiosk_request("4000000000000001")
    envelope = EdgeKeys.of(west).prove(
        "center:east",
        Envelope.new(
            "issuance.requested",
            request,
            origin="east",
            source="center:east",
            occurred_at=ASKED_AT,
            municipality=CHIYODA,
        ),
    )
    await write_raw(west, ISSUANCE_REQUESTS.name, str(request.request_id), encode_event(envelope))
    await project(west, "issuer")

    assert await logged(west, ISSUANCE_OUTCOMES.name) == []
    assert await table(west, "SELECT request_id FROM issuer.requests") == [(request.request_id,)]
