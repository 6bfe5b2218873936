"""The issuer: decides each kiosk request once and records the decision (DESIGN §5).

A processor. ``apply`` records what the log says: requests (a repeated request id is kept as a
duplicate), the kiosks' notices, and the outcomes on ``issuance.outcomes`` — its own decisions
coming back, or, in a replay, the only source of them, since a replay never decides again. The
first outcome of a request on the log is its decision, live as in a replay: one decided elsewhere
that gets there before this issuer's own replaces it (``decisions_in_flight``).
``decide`` (live only) takes each request of the batch that has no outcome yet, gathers the facts
from the registry, the certificates and the replica, lets ``rules`` judge, and for an issued
certificate builds the content, seals it with the municipality's ECDSA key and draws the PDF.
The outcome goes to the runner's outbox with an id derived from the request, so it reaches the
log once committed, exactly once in effect.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import os
import select
import threading
from collections import defaultdict
from collections.abc import Mapping, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from multiprocessing import get_context
from typing import Any
from uuid import UUID

import orjson
from cryptography.hazmat.primitives.asymmetric import ec

from consumers.issuer.document import certificate_template, front_pages, render_documents
from consumers.issuer.rules import (
    CertificateFacts,
    Registration,
    Rejection,
    ResidentFacts,
    VictimFacts,
    refusal,
    signing_key,
    victim_for,
)
from pipeline.database import Connection, insert_new_rows
from pipeline.projection import ConsumedEvent
from pipeline.proofs import EdgeKeys
from pipeline.publish import Outgoing, proven
from pipeline.seals import load_seal_key, seal, seals_home
from pipeline.settings import Settings
from pipeline.topics import ISSUANCE_OUTCOMES, ISSUANCE_REQUESTS
from pipeline.vault import DataKey, SealedDataError, Vault, batch_vault, open_sealed
from pipeline.vault import seal as seal_personal
from schemas.codes import Resident
from schemas.documents import (
    CertificateBody,
    CertificateContent,
    DisasterCertificate,
    ResidentEntry,
    ResidentRecordCopy,
    SealCertificate,
    TaxCertificate,
    canonical_content,
    parse_content,
)
from schemas.envelope import Envelope
from schemas.events.disaster import DamageCategory, DisasterKind
from schemas.events.issuance import (
    TAX_CERTIFICATE_TYPES,
    CertificateType,
    IssuanceCancelled,
    IssuanceDelivered,
    IssuanceIssued,
    IssuanceRejected,
    IssuanceRequested,
)
from schemas.events.municipalities import MunicipalityProfile
from schemas.fees import DISASTER_TYPES, fee_quote
from schemas.ids import derived_event_id

log = logging.getLogger("bcl.issuer")


# 続柄 as printed. DOMAIN names the code's shape, not its table; these are the codes the replica
# knows (see consumers.replica.rules), spelled for the certificate.
_RELATIONSHIP_TERMS: Mapping[str, tuple[str, str]] = {
    "02": ("世帯主", "世帯主"),
    "03": ("夫", "妻"),
    "04": ("子", "子"),
    "05": ("父", "母"),
    "99": ("縁故者", "縁故者"),
}
_SPOUSE_OR_PARENT = {"03": "配偶者", "05": "親"}


def relationship_term(code: str, sex: str) -> str:
    """A 続柄コード as printed: "0403" of a woman → 子の妻."""
    generations = [code[i : i + 2] for i in range(0, len(code), 2)]
    words = [
        _SPOUSE_OR_PARENT.get(g, _RELATIONSHIP_TERMS.get(g, ("その他",))[0])
        for g in generations[:-1]
    ]
    last = _RELATIONSHIP_TERMS.get(generations[-1], ("その他", "その他"))
    words.append(last[1] if sex == "female" else last[0])
    return "の".join(words)


def verification_id(document_id: UUID) -> str:
    """16 base32 characters in four groups, printed on the back to look the document up."""
    text = base64.b32encode(hashlib.sha256(document_id.bytes).digest()[:10]).decode()
    return "-".join(text[i : i + 4] for i in range(0, 16, 4))


@dataclass(frozen=True, slots=True)
class _Facts:
    registrations: dict[str, Registration]
    certificates: dict[str, CertificateFacts]
    residents: dict[Resident, ResidentFacts]
    records: dict[Resident, Any]  # the replica row, for the document's content
    households: dict[tuple[str, str], list[Any]]
    seals: dict[Resident, str]  # registration number
    taxes: dict[tuple[str, str, int], Any]
    victims: dict[Resident, list[VictimFacts]]  # every ledger entry of the holder
    data_keys: dict[Resident, DataKey]
    held_keys: dict[str, set[str]]  # municipality → ids of the seal keys BCL holds for it


@dataclass(frozen=True, slots=True)
class _Decision:
    outgoing: Outgoing
    payload: IssuanceIssued | IssuanceRejected


# An issued certificate to draw: its content, the content's canonical bytes and their signature.
_Drawing = tuple[CertificateContent, bytes, bytes]


class IssuerProcessor:
    name = "issuer"
    topics: Sequence[str] = (ISSUANCE_REQUESTS.name, ISSUANCE_OUTCOMES.name)
    digest_order: Mapping[str, str] = {
        "requests": "request_id",
        "duplicate_requests": "event_id",
        "outcomes": "request_id",
        "documents": "document_id",
        "notices": "event_id",
    }

    def __init__(self, settings: Settings, vault: Vault, renderer: Executor | None) -> None:
        self.settings = settings
        self.keys = EdgeKeys.of(settings)
        self.vault = vault
        self.renderer = renderer
        self._seal_keys: dict[tuple[str, str], ec.EllipticCurvePrivateKey] = {}

    # ------------------------------------------------------------------------------ recording

    async def apply(self, connection: Connection, events: Sequence[ConsumedEvent]) -> None:
        requests = [e for e in events if isinstance(e.payload, IssuanceRequested)]
        if requests:
            await self._record_requests(connection, requests)
        notices = [
            e for e in events if isinstance(e.payload, IssuanceDelivered | IssuanceCancelled)
        ]
        if notices:
            await insert_new_rows(
                connection,
                "notices",
                ("event_id", "request_id", "kind", "at", "fee_paid_yen", "reason", "origin",
                 "recorded_at"),
                [_notice_row(e) for e in notices],
            )  # fmt: skip
        outcomes = [e for e in events if isinstance(e.payload, IssuanceIssued | IssuanceRejected)]
        if outcomes:
            await self._record_outcomes(connection, outcomes)

    async def _record_requests(
        self, connection: Connection, requests: Sequence[ConsumedEvent]
    ) -> None:
        inserted = await insert_new_rows(
            connection,
            "requests",
            ("request_id", "event_id", "origin", "source", "requested_at", "store_operator",
             "store_id", "store_municipality", "municipality", "auth_serial", "certificate_type",
             "fiscal_year", "copies", "recorded_at"),
            [_request_row(e) for e in requests],
        )  # fmt: skip
        if inserted == len(requests):
            return  # every one is the first of its id
        first = {
            row["request_id"]: row["event_id"]
            for row in await connection.fetch(
                "SELECT request_id, event_id FROM requests WHERE request_id = ANY($1::uuid[])",
                [e.payload_as(IssuanceRequested).request_id for e in requests],
            )
        }
        duplicates = [
            (e.envelope.event_id, e.payload.request_id, e.envelope.origin, e.envelope.recorded_at)
            for e in requests
            if isinstance(e.payload, IssuanceRequested)
            and first[e.payload.request_id] != e.envelope.event_id
        ]
        await insert_new_rows(
            connection,
            "duplicate_requests",
            ("event_id", "request_id", "origin", "recorded_at"),
            duplicates,
        )

    async def _record_outcomes(
        self, connection: Connection, outcomes: Sequence[ConsumedEvent]
    ) -> None:
        """Record the first outcome on the log of each request.

        A decision of this issuer is recorded when it is made and waits in
        ``decisions_in_flight`` until it comes back. Should another decider's outcome for the
        request reach the log before it, that outcome is the first and replaces this issuer's
        decision and its document, as a replay would have it."""
        ids = [_outcome(e).request_id for e in outcomes]
        recorded = {
            row["request_id"]: row["in_flight"]
            for row in await connection.fetch(
                "SELECT o.request_id, f.event_id AS in_flight FROM outcomes o "
                "LEFT JOIN decisions_in_flight f USING (request_id) "
                "WHERE o.request_id = ANY($1::uuid[])",
                ids,
            )
        }
        on_log = {request_id for request_id, in_flight in recorded.items() if in_flight is None}
        firsts: dict[UUID, ConsumedEvent] = {}
        for event in outcomes:
            request_id = _outcome(event).request_id
            if request_id not in on_log:
                firsts.setdefault(request_id, event)  # in log order: the first wins
        if not firsts:
            return
        await connection.execute(
            "DELETE FROM decisions_in_flight WHERE request_id = ANY($1::uuid[])", list(firsts)
        )
        yielding = {
            request_id
            for request_id, event in firsts.items()
            if recorded.get(request_id) not in (None, event.envelope.event_id)
        }
        if yielding:
            log.warning(
                "%d decisions of this issuer yield to outcomes decided elsewhere that reached "
                "the log first (requests %s)",
                len(yielding), ", ".join(map(str, sorted(yielding)[:5])),
            )  # fmt: skip
            for statement in (
                "DELETE FROM document_files WHERE document_id IN "
                "(SELECT document_id FROM documents WHERE request_id = ANY($1::uuid[]))",
                "DELETE FROM documents WHERE request_id = ANY($1::uuid[])",
                "DELETE FROM outcomes WHERE request_id = ANY($1::uuid[])",
            ):
                await connection.execute(statement, list(yielding))
        fresh = [e for r, e in firsts.items() if r not in recorded or r in yielding]
        if not fresh:
            return
        await insert_new_rows(
            connection,
            "outcomes",
            _OUTCOME_COLUMNS,
            [_outcome_row(_outcome(e), e.envelope.event_id, e.envelope.occurred_at) for e in fresh],
        )
        issued = [e.payload for e in fresh if isinstance(e.payload, IssuanceIssued)]
        if issued:
            await self._record_documents_from_log(connection, issued)

    async def _record_documents_from_log(
        self, connection: Connection, issued: Sequence[IssuanceIssued]
    ) -> None:
        """Rebuild documents from the sealed content of issued outcomes (a replay, a mirror)."""
        keys = await self.vault.data_keys_for(
            connection, [(i.municipality, i.resident_code) for i in issued], create=False
        )
        rows = []
        for outcome in issued:
            key = keys.get((outcome.municipality, outcome.resident_code))
            if key is None:
                continue  # crypto-shredded after the retention: the document is gone too
            try:
                opened = open_sealed(key, outcome.content, _content_aad(outcome.document_id))
            except SealedDataError as error:
                log.error("document %s cannot be opened: %s", outcome.document_id, error)
                continue
            content = parse_content(orjson.dumps(opened))
            rows.append(
                _document_row(
                    content,
                    outcome.resident_code,
                    canonical_content(content),
                    base64.b64decode(outcome.signature),
                    outcome.pages,
                )
            )
        await insert_new_rows(connection, "documents", _DOCUMENT_COLUMNS, rows)

    # -------------------------------------------------------------------------------- deciding

    async def decide(
        self, connection: Connection, events: Sequence[ConsumedEvent]
    ) -> Sequence[Outgoing]:
        pending = await self._undecided(connection, events)
        if not pending:
            return []
        requests = [e.payload_as(IssuanceRequested) for e in pending]
        facts = await self._gather(connection, requests)
        decided_at = datetime.now(UTC)
        decisions: list[_Decision] = []
        drawings: list[_Drawing] = []
        for event in pending:
            decision, drawing = self._decide_one(event, facts, decided_at)
            decisions.append(decision)
            if drawing is not None:
                drawings.append(drawing)
        # The renderers draw while the decisions and documents are written.
        drawn = asyncio.ensure_future(self._draw(drawings))
        try:
            await insert_new_rows(
                connection,
                "outcomes",
                _OUTCOME_COLUMNS,
                [
                    _outcome_row(d.payload, d.outgoing.envelope.event_id, decided_at)
                    for d in decisions
                ],
            )
            await insert_new_rows(
                connection,
                "decisions_in_flight",
                ("request_id", "event_id"),
                [(d.payload.request_id, d.outgoing.envelope.event_id) for d in decisions],
            )
            holders = {
                d.payload.document_id: d.payload.resident_code
                for d in decisions
                if isinstance(d.payload, IssuanceIssued)
            }
            await insert_new_rows(
                connection,
                "documents",
                _DOCUMENT_COLUMNS,
                [
                    _document_row(c, holders[c.document_id], raw, signature, front_pages(c))
                    for c, raw, signature in drawings
                ],
            )
        finally:
            files = await drawn
        await insert_new_rows(
            connection,
            "document_files",
            ("document_id", "pdf", "sha256"),
            [
                (content.document_id, pdf, sha256)
                for (content, _, _), (pdf, sha256) in zip(drawings, files, strict=True)
            ],
        )
        return [d.outgoing for d in decisions]

    async def _undecided(
        self, connection: Connection, events: Sequence[ConsumedEvent]
    ) -> list[ConsumedEvent]:
        """The batch's requests that are the first of their id and have no outcome yet.

        The runner hands over this center's own topics only. Where the centers run apart
        (``BCL_PEERS``), a request of a peer's origin found there (copied in by someone who
        can write to the broker) is that center's to decide, or it would be decided twice; on
        one cluster serving both centers' kiosks, this issuer decides both."""
        requests = [
            e
            for e in events
            if isinstance(e.payload, IssuanceRequested)
            and e.envelope.origin not in self.settings.peers
        ]
        if not requests:
            return []
        rows = await connection.fetch(
            "SELECT r.request_id, r.event_id FROM requests r "
            "LEFT JOIN outcomes o USING (request_id) "
            "WHERE r.request_id = ANY($1::uuid[]) AND o.request_id IS NULL",
            [e.payload_as(IssuanceRequested).request_id for e in requests],
        )
        firsts = {row["event_id"] for row in rows}
        return [e for e in requests if e.envelope.event_id in firsts]

    def _decide_one(
        self, event: ConsumedEvent, facts: _Facts, decided_at: datetime
    ) -> tuple[_Decision, _Drawing | None]:
        request = event.payload_as(IssuanceRequested)
        at = event.envelope.occurred_at
        registration = facts.registrations.get(request.resident_municipality)
        certificate = facts.certificates.get(request.auth_serial)
        holder = (
            (certificate.municipality, certificate.resident_code)
            if certificate is not None and certificate.municipality and certificate.resident_code
            else None
        )
        resident = facts.residents.get(holder) if holder else None
        victim = victim_for(request, facts.victims.get(holder, ()), at) if holder else None
        profile = registration.profile if registration else None
        seal_key = (
            signing_key(profile, decided_at, facts.held_keys[request.resident_municipality])
            if profile
            else None
        )
        outside = None if profile is None else not profile.counter_open(at)
        rejection = refusal(
            request,
            at=at,
            origin=event.envelope.origin,
            source=event.envelope.source,
            registration=registration,
            certificate=certificate,
            resident=resident,
            victim=victim,
            seal_key=seal_key,
            waited=decided_at - event.envelope.recorded_at,
            answer_window=timedelta(seconds=self.settings.answer_window),
        )
        if rejection is not None:
            return self._rejected(event, rejection, outside, decided_at), None
        # A request that passed every check has all three.
        assert profile is not None
        assert seal_key is not None
        assert holder is not None
        document_id = derived_event_id(decided_at, "document", str(request.request_id))
        content = CertificateContent(
            document_id=document_id,
            verification_id=verification_id(document_id),
            request_id=request.request_id,
            certificate_type=request.certificate_type,
            municipality=request.resident_municipality,
            municipality_name=profile.name,
            mayor=profile.mayor or f"{profile.name}長",
            issued_at=decided_at,
            seal_key_id=seal_key.key_id,
            body=_body(request, holder, facts, victim),
        )
        raw = canonical_content(content)
        signature = seal(self._seal_key(request.resident_municipality, seal_key.key_id), raw)
        payload = IssuanceIssued(
            request_id=request.request_id,
            municipality=request.resident_municipality,
            resident_code=holder[1],
            certificate_type=request.certificate_type,
            document_id=document_id,
            verification_id=content.verification_id,
            digest=hashlib.sha256(raw).hexdigest(),
            signature=base64.b64encode(signature).decode(),
            seal_key_id=seal_key.key_id,
            pages=front_pages(content),
            fee=fee_quote(profile.fees, request.certificate_type, request.copies, at),
            outside_counter_hours=outside,
            content=seal_personal(
                facts.data_keys[holder], orjson.loads(raw), _content_aad(document_id)
            ),
        )
        return self._outgoing(event, payload, decided_at), (content, raw, signature)

    def _rejected(
        self,
        event: ConsumedEvent,
        rejection: Rejection,
        outside_counter_hours: bool | None,
        decided_at: datetime,
    ) -> _Decision:
        request = event.payload_as(IssuanceRequested)
        payload = IssuanceRejected(
            request_id=request.request_id,
            municipality=request.resident_municipality,
            certificate_type=request.certificate_type,
            reason=rejection.reason,
            message=rejection.message,
            outside_counter_hours=outside_counter_hours,
        )
        return self._outgoing(event, payload, decided_at)

    def _outgoing(
        self, event: ConsumedEvent, payload: IssuanceIssued | IssuanceRejected, decided_at: datetime
    ) -> _Decision:
        request_id = str(payload.request_id)
        outgoing = proven(
            self.keys,
            f"issuer:{event.envelope.origin}",
            ISSUANCE_OUTCOMES.name,
            request_id,
            Envelope.new(
                "issuance.issued" if isinstance(payload, IssuanceIssued) else "issuance.rejected",
                payload,
                # Decided for the center the request entered at; the answer goes back through it.
                origin=event.envelope.origin,
                source="issuer",
                occurred_at=decided_at,
                municipality=payload.municipality,
                correlation_id=event.envelope.correlation_id or event.envelope.event_id,
                causation_id=event.envelope.event_id,
                event_id=derived_event_id(decided_at, "issuance.outcome", request_id),
            ),
        )
        return _Decision(outgoing, payload)

    # ------------------------------------------------------------------------------ the facts

    async def _gather(
        self, connection: Connection, requests: Sequence[IssuanceRequested]
    ) -> _Facts:
        """Everything the batch's decisions need, one query per source."""
        registrations = {
            row["code"]: Registration(
                row["code"],
                row["joined_on"],
                MunicipalityProfile.model_validate_json(row["profile"]),
            )
            for row in await connection.fetch(
                "SELECT code, joined_on, profile::text AS profile FROM registry.municipalities "
                "WHERE code = ANY($1::text[])",
                sorted({r.resident_municipality for r in requests}),
            )
        }
        certificates = {
            row["serial"]: CertificateFacts(
                row["kind"], row["status"], row["changed_at"], row["reason"], row["municipality"],
                row["resident_code"], row["not_before"], row["not_after"],
            )
            for row in await connection.fetch(
                "SELECT serial, kind, status, changed_at, reason, municipality, resident_code, "
                "not_before, not_after FROM certificates.certificates "
                "WHERE serial = ANY($1::text[])",
                sorted({r.auth_serial for r in requests}),
            )
        }  # fmt: skip
        holders = sorted(
            {
                (c.municipality, c.resident_code)
                for c in certificates.values()
                if c.municipality is not None and c.resident_code is not None
            }
        )
        by_holder = [m for m, _ in holders], [c for _, c in holders]
        join = (
            "JOIN unnest($1::text[], $2::text[]) AS x(m, c) "
            "ON municipality = x.m AND resident_code = x.c"
        )
        records = {
            (row["municipality"], row["resident_code"]): row
            for row in await connection.fetch(
                f"SELECT {_RECORD_COLUMNS} FROM replica.residents {join}", *by_holder
            )
        }
        seals = {
            (row["municipality"], row["resident_code"]): row["registration_number"]
            for row in await connection.fetch(
                "SELECT municipality, resident_code, registration_number FROM replica.seals "
                f"{join} WHERE status = 'registered' ORDER BY registration_number DESC",
                *by_holder,
            )
        }
        taxes = {
            (row["municipality"], row["resident_code"], row["fiscal_year"]): row
            for row in await connection.fetch(
                "SELECT municipality, resident_code, fiscal_year, income_yen, assessed_yen, "
                f"paid_yen FROM replica.tax_facts {join}",
                *by_holder,
            )
        }
        # A resident without a data key was purged: nothing may be sealed for them.
        data_keys = {
            holder: key
            for holder, key in (
                await self.vault.data_keys_for(connection, list(records), create=False)
            ).items()
            if key is not None
        }
        tax_years: dict[Resident, set[int]] = defaultdict(set)
        for municipality, resident_code, year in taxes:
            tax_years[(municipality, resident_code)].add(year)
        residents = {
            holder: ResidentFacts(
                municipality=holder[0],
                resident_code=holder[1],
                active=row["active"],
                birth_date=row["birth_date"],
                seal_registered=holder in seals,
                tax_years=frozenset(tax_years[holder]),
            )
            for holder, row in records.items()
            if holder in data_keys
        }
        households = await self._households(connection, requests, certificates, records)
        victims = await _victims(connection, requests, certificates, data_keys)
        return _Facts(
            registrations,
            certificates,
            residents,
            records,
            households,
            seals,
            taxes,
            victims,
            data_keys,
            # Read once a batch: a key created since is used from the next batch on.
            {code: self._held_keys(code) for code in registrations},
        )

    async def _households(
        self,
        connection: Connection,
        requests: Sequence[IssuanceRequested],
        certificates: Mapping[str, CertificateFacts],
        records: Mapping[Resident, Any],
    ) -> dict[tuple[str, str], list[Any]]:
        """The active members of each household a 世帯全員 住民票 is asked for."""
        wanted: set[tuple[str, str]] = set()
        for request in requests:
            certificate = certificates.get(request.auth_serial)
            if certificate is None or not _whole_household(request):
                continue
            record = records.get((certificate.municipality or "", certificate.resident_code or ""))
            if record is not None:
                wanted.add((record["municipality"], record["household_number"]))
        households: dict[tuple[str, str], list[Any]] = {key: [] for key in wanted}
        if wanted:
            for row in await connection.fetch(
                f"SELECT {_RECORD_COLUMNS} FROM replica.residents "
                "JOIN unnest($1::text[], $2::text[]) AS x(m, h) "
                "ON municipality = x.m AND household_number = x.h WHERE active "
                "ORDER BY relationship, birth_date, resident_code",
                [m for m, _ in wanted],
                [h for _, h in wanted],
            ):
                households[(row["municipality"], row["household_number"])].append(row)
        return households

    def _held_keys(self, municipality: str) -> set[str]:
        """Ids of the seal keys whose private half BCL holds for the municipality."""
        try:
            names = os.listdir(seals_home(self.settings, municipality))
        except FileNotFoundError:
            return set()
        return {name.removesuffix(".key.pem") for name in names if name.endswith(".key.pem")}

    def _seal_key(self, municipality: str, key_id: str) -> ec.EllipticCurvePrivateKey:
        key = self._seal_keys.get((municipality, key_id))
        if key is None:
            key = load_seal_key(self.settings, municipality, key_id)
            self._seal_keys[(municipality, key_id)] = key
        return key

    async def _draw(self, drawings: Sequence[_Drawing]) -> list[tuple[bytes, str]]:
        """The PDFs and their SHA-256, drawn in the renderer processes: both cores draw while
        this loop keeps serving Kafka and Postgres.

        Each process gets one contiguous share of the batch, not one task per document: every
        task is a round trip through the pool's manager thread, which has to win the GIL from
        this busy loop (up to a 5 ms switch interval each time); per document, that cost more
        than the drawing.
        """
        documents = [(raw, signature) for _, raw, signature in drawings]
        if self.renderer is None or not documents:
            return render_documents(documents)
        shares = min(self.settings.render_processes, len(documents))
        size = -(-len(documents) // shares)
        loop = asyncio.get_running_loop()
        drawn = await asyncio.gather(
            *(
                loop.run_in_executor(self.renderer, render_documents, documents[i : i + size])
                for i in range(0, len(documents), size)
            )
        )
        return [pdf for share in drawn for pdf in share]


# ------------------------------------------------------------------------------------- rows

_RECORD_COLUMNS = (
    "municipality, resident_code, household_number, relationship, active, name, name_kana, "
    "birth_date, sex, address, previous_address, head_of_household, resident_since, "
    "address_since, notified_on"
)
_OUTCOME_COLUMNS = (
    "request_id", "event_id", "outcome", "municipality", "certificate_type", "reason", "message",
    "document_id", "fee_per_copy_yen", "copies", "fee_total_yen", "fee_schedule_from",
    "decided_at",
)  # fmt: skip
_DOCUMENT_COLUMNS = (
    "document_id", "request_id", "verification_id", "municipality", "resident_code",
    "certificate_type", "seal_key_id", "digest", "signature", "content", "pages", "issued_at",
)  # fmt: skip


async def _victims(
    connection: Connection,
    requests: Sequence[IssuanceRequested],
    certificates: Mapping[str, CertificateFacts],
    data_keys: Mapping[Resident, DataKey],
) -> dict[Resident, list[VictimFacts]]:
    """The victim-ledger entries of the holders asking for a disaster certificate, in the
    affected area (a dwelling located outside it is not in the ledger), with their dwelling's
    damage as it stands. Found through the card's holder, so a card renewed after the disaster
    still finds the victim; a purged resident (no data key) has nothing to seal."""
    wanted = sorted(
        {
            (certificate.municipality, certificate.resident_code)
            for request in requests
            if request.certificate_type in DISASTER_TYPES
            and (certificate := certificates.get(request.auth_serial)) is not None
            and certificate.municipality is not None
            and certificate.resident_code is not None
            and (certificate.municipality, certificate.resident_code) in data_keys
        }
    )
    victims: dict[Resident, list[VictimFacts]] = defaultdict(list)
    if not wanted:
        return victims
    for row in await connection.fetch(
        """
        SELECT v.disaster_id, d.name AS disaster_name, d.kind, d.occurred_on, d.declared_at,
               v.municipality, v.resident_code, v.name, v.birth_date, v.address, g.category
        FROM disaster.victims v
        JOIN unnest($1::text[], $2::text[]) AS x(m, c)
            ON v.municipality = x.m AND v.resident_code = x.c
        JOIN disaster.disasters d USING (disaster_id)
        LEFT JOIN disaster.area_dwellings p
            ON p.disaster_id = v.disaster_id AND p.address_key = v.address_key
        LEFT JOIN disaster.dwelling_damage g
            ON g.disaster_id = v.disaster_id AND g.address_key = v.address_key
        WHERE coalesce(p.inside, true)
        """,
        [m for m, _ in wanted],
        [c for _, c in wanted],
    ):
        victims[(row["municipality"], row["resident_code"])].append(
            VictimFacts(
                disaster_id=row["disaster_id"],
                disaster_name=row["disaster_name"],
                disaster_kind=DisasterKind(row["kind"]),
                occurred_on=row["occurred_on"],
                declared_at=row["declared_at"],
                municipality=row["municipality"],
                resident_code=row["resident_code"],
                name=row["name"],
                birth_date=row["birth_date"],
                address=row["address"],
                damage=DamageCategory(row["category"]) if row["category"] else None,
            )
        )
    return victims


def _whole_household(request: IssuanceRequested) -> bool:
    return (
        request.certificate_type is CertificateType.JUMINHYO
        and request.print_options.get("scope") == "household"
    )


def _entry(row: Any) -> ResidentEntry:
    return ResidentEntry(
        name=row["name"],
        name_kana=row["name_kana"],
        birth_date=row["birth_date"],
        sex=row["sex"],
        relationship=relationship_term(row["relationship"], row["sex"]),
        resident_since=row["resident_since"],
        address_since=row["address_since"],
        notified_on=row["notified_on"],
        previous_address=row["previous_address"],
    )


def _body(
    request: IssuanceRequested, holder: Resident, facts: _Facts, victim: VictimFacts | None
) -> CertificateBody:
    kind = request.certificate_type
    if kind in DISASTER_TYPES:
        assert victim is not None
        assert victim.damage is not None
        return DisasterCertificate(
            disaster_id=victim.disaster_id,
            disaster_name=victim.disaster_name,
            disaster_kind=victim.disaster_kind,
            occurred_on=victim.occurred_on,
            name=victim.name,
            birth_date=victim.birth_date,
            address=victim.address,
            damage=victim.damage,
        )
    record = facts.records[holder]
    if kind is CertificateType.INKAN:
        return SealCertificate(
            registration_number=facts.seals[holder],
            name=record["name"],
            birth_date=record["birth_date"],
            sex=record["sex"],
            address=record["address"],
        )
    if kind in TAX_CERTIFICATE_TYPES:
        assert request.fiscal_year is not None
        tax = facts.taxes[(*holder, request.fiscal_year)]
        return TaxCertificate(
            fiscal_year=request.fiscal_year,
            name=record["name"],
            birth_date=record["birth_date"],
            address=record["address"],
            income_yen=tax["income_yen"],
            assessed_yen=tax["assessed_yen"],
            paid_yen=tax["paid_yen"],
        )
    members = facts.households.get((holder[0], record["household_number"])) or [record]
    return ResidentRecordCopy(
        address=record["address"],
        head_of_household=record["head_of_household"] or record["name"],
        members=tuple(_entry(row) for row in members),
    )


def _content_aad(document_id: UUID) -> bytes:
    return f"document:{document_id}".encode()


def _request_row(event: ConsumedEvent) -> tuple[object, ...]:
    r = event.payload_as(IssuanceRequested)
    e = event.envelope
    return (
        r.request_id, e.event_id, e.origin, e.source, e.occurred_at, r.store_operator.value,
        r.store_id, r.store_municipality, r.resident_municipality, r.auth_serial,
        r.certificate_type.value, r.fiscal_year, r.copies, e.recorded_at,
    )  # fmt: skip


def _notice_row(event: ConsumedEvent) -> tuple[object, ...]:
    notice = event.payload
    e = event.envelope
    if isinstance(notice, IssuanceDelivered):
        return (e.event_id, notice.request_id, "delivered", notice.printed_at,
                notice.fee_paid_yen, None, e.origin, e.recorded_at)  # fmt: skip
    assert isinstance(notice, IssuanceCancelled)
    return (e.event_id, notice.request_id, "cancelled", e.occurred_at, None, notice.reason,
            e.origin, e.recorded_at)  # fmt: skip


def _outcome(event: ConsumedEvent) -> IssuanceIssued | IssuanceRejected:
    payload = event.payload
    if not isinstance(payload, IssuanceIssued | IssuanceRejected):
        raise TypeError(f"{event.envelope.type} is not an issuance outcome")
    return payload


def _outcome_row(
    payload: IssuanceIssued | IssuanceRejected, event_id: UUID, decided_at: datetime
) -> tuple[object, ...]:
    common = (payload.request_id, event_id)
    kind = payload.certificate_type.value
    if isinstance(payload, IssuanceRejected):
        return (*common, "rejected", payload.municipality, kind, payload.reason.value,
                payload.message, None, None, None, None, None, decided_at)  # fmt: skip
    fee = payload.fee
    return (*common, "issued", payload.municipality, kind, None, None, payload.document_id,
            fee.per_copy_yen, fee.copies, fee.total_yen, fee.schedule_from, decided_at)  # fmt: skip


def _document_row(
    content: CertificateContent, resident_code: str, raw: bytes, signature: bytes, pages: int
) -> tuple[object, ...]:
    return (
        content.document_id, content.request_id, content.verification_id, content.municipality,
        resident_code, content.certificate_type.value, content.seal_key_id,
        hashlib.sha256(raw).hexdigest(), signature, raw, pages, content.issued_at,
    )  # fmt: skip


_renderers: dict[int, Executor] = {}


def renderer_pool(settings: Settings) -> Executor | None:
    """The process's pool drawing PDFs (``BCL_RENDER_PROCESSES``; 0 draws in the worker's loop).

    One per process, shared by every issuer in it. Its processes start with it and end with this
    process (`_start_renderer`). Started by forkserver, not fork: a fork would copy the worker's
    threads and event loop.
    """
    if settings.render_processes == 0:
        return None
    pool = _renderers.get(settings.render_processes)
    if pool is None:
        pool = ProcessPoolExecutor(
            settings.render_processes,
            mp_context=get_context("forkserver"),
            initializer=_start_renderer,
            initargs=(os.getpid(),),
        )
        # The pool starts a process for each task submitted while none is idle.
        for _ in range(settings.render_processes):
            pool.submit(os.getpid)
        _renderers[settings.render_processes] = pool
    return pool


def _start_renderer(worker: int) -> None:
    """What a renderer process does as it starts, before its first drawing.

    1. Build the certificate template, so that the first kiosk after a start does not wait
       0.5-1 s for the imports and the font.
    2. End when the ``worker`` process ends. A worker killed outright (SIGKILL, a crash) cannot
       stop its pool, and its renderers would wait for work forever: each holds the task queue's
       writing end, so it never reads the end of the queue, and the forkserver's liveness pipe,
       so the forkserver stays too.
    """
    # 1.
    certificate_template()
    # 2.
    try:
        worker_exit = os.pidfd_open(worker)
    except ProcessLookupError:
        os._exit(0)
    except OSError as error:  # no pidfds here (an old kernel, a seccomp profile): draw anyway
        log.warning("renderer %d cannot watch worker %d: %s", os.getpid(), worker, error)
        return
    threading.Thread(target=_exit_on, args=(worker_exit,), name="worker-exit", daemon=True).start()


def _exit_on(process_exit: int) -> None:
    select.select([process_exit], [], [])  # a process's pidfd is readable once it has exited
    os._exit(0)


def make(settings: Settings) -> IssuerProcessor:
    return IssuerProcessor(settings, batch_vault(settings), renderer_pool(settings))
