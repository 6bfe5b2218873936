"""The JPKI edge: lifecycle commands and CRL imports become ``jpki.certificates`` events.

Every command checks the certificate's current state with the same pure rules the projection
applies, after bringing the projection up to the log, so a request that cannot apply (a lift by
another municipality, a suspension of a revoked certificate) is refused here with the reason and
nothing is published.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from consumers.certificates.rules import CertificateState, step, validity_period
from pipeline.catchup import refresh
from pipeline.database import connect
from pipeline.kafka import producer
from pipeline.projection import load_projection
from pipeline.proofs import EdgeKeys, prove
from pipeline.publish import Outgoing, publish_many
from pipeline.settings import Settings
from pipeline.topics import JPKI_CERTIFICATES
from producers.crl import CrlRefused, VerifiedCrl, read_crl
from producers.jpki_ca import CertificateAuthority, RevokedEntry
from schemas.codes import canonical_serial, certificate_serial, serial_number
from schemas.envelope import Envelope
from schemas.events.certificates import (
    CertificateIssued,
    CertificateKind,
    CertificateRevoked,
    CertificateSuspended,
    CrlImported,
    RevocationReason,
    SuspensionLifted,
    revocation_event_id,
)


class CertificateCommandError(ValueError):
    """A lifecycle request that cannot apply; the message says why."""


# ---------------------------------------------------------------------------- issuance


@dataclass(frozen=True, slots=True)
class Holder:
    municipality: str
    resident_code: str
    birth_date: date


def new_serial() -> int:
    # 63 random bits: positive, unique in practice, and within X.509's 20-octet limit.
    return secrets.randbits(63) | 1 << 62


def card_certificates(
    authority: CertificateAuthority,
    holder: Holder,
    issued_at: datetime,
    serials: tuple[int, int],
) -> tuple[CertificateIssued, CertificateIssued]:
    """The signature and user-authentication certificates of one new card, each with its X.509
    certificate signed by ``authority``."""
    not_before, not_after = validity_period(holder.birth_date, issued_at)
    kinds = (CertificateKind.SIGNATURE, CertificateKind.USER_AUTHENTICATION)
    signature, authentication = (
        _issued(authority, holder, kind, serial, not_before, not_after)
        for kind, serial in zip(kinds, serials, strict=True)
    )
    return signature, authentication


def _issued(
    authority: CertificateAuthority,
    holder: Holder,
    kind: CertificateKind,
    serial: int,
    not_before: datetime,
    not_after: datetime,
) -> CertificateIssued:
    x509_certificate = authority.issue(
        serial=serial, kind=kind, not_before=not_before, not_after=not_after
    )
    return CertificateIssued(
        serial=certificate_serial(serial),
        kind=kind,
        municipality=holder.municipality,
        resident_code=holder.resident_code,
        # As the X.509 holds them: to the second.
        not_before=x509_certificate.not_valid_before_utc,
        not_after=x509_certificate.not_valid_after_utc,
        issuer=authority.name,
        certificate=base64.b64encode(x509_certificate.public_bytes(Encoding.DER)).decode("ascii"),
    )


def issued_event(settings: Settings, certificate: CertificateIssued) -> Outgoing:
    envelope = prove(
        settings,
        "jpki",
        Envelope.new(
            "certificate.issued",
            certificate,
            origin=settings.center,
            # Cards are issued at the municipal counter of the holder's residence.
            source=f"municipality:{certificate.municipality}",
            occurred_at=certificate.not_before,
            municipality=certificate.municipality,
        ),
    )
    return Outgoing(JPKI_CERTIFICATES.name, certificate.serial, envelope)


async def issue_cards(
    settings: Settings,
    authority: CertificateAuthority,
    holders: Sequence[Holder],
    *,
    issued_at: datetime | None = None,
) -> list[CertificateIssued]:
    """Issue a card to each holder: publish both of its certificates."""
    at = issued_at or datetime.now(UTC)
    issued = [
        certificate
        for holder in holders
        for certificate in card_certificates(authority, holder, at, (new_serial(), new_serial()))
    ]
    async with producer(settings) as kafka:
        await publish_many(settings, kafka, [issued_event(settings, c) for c in issued])
    return issued


def write_certificates(issued: Sequence[CertificateIssued], directory: Path) -> list[Path]:
    """The X.509 certificates of ``issued``, as issued, as ``<serial>.pem`` files."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for c in issued:
        assert c.certificate is not None, "issue_cards gives every certificate its X.509"
        der = base64.b64decode(c.certificate)
        path = directory / f"{c.serial}.pem"
        path.write_bytes(x509.load_der_x509_certificate(der).public_bytes(Encoding.PEM))
        written.append(path)
    return written


async def residents_to_issue(
    settings: Settings, municipality: str, resident_codes: Sequence[str] | None = None
) -> list[Holder]:
    """Active residents of the replica (all, or those named) as card holders."""
    async with connect(settings) as connection:
        rows = await connection.fetch(
            "SELECT resident_code, birth_date FROM replica.residents "
            "WHERE municipality = $1 AND active "
            "AND ($2::text[] IS NULL OR resident_code = ANY($2)) ORDER BY resident_code",
            municipality,
            list(resident_codes) if resident_codes else None,
        )
    found = {row["resident_code"] for row in rows}
    missing = sorted(set(resident_codes or ()) - found)
    if missing:
        raise CertificateCommandError(
            f"no active resident {', '.join(missing[:5])} of {municipality} in the replica; "
            "a card is issued only to a resident the municipality has pushed"
        )
    return [Holder(municipality, row["resident_code"], row["birth_date"]) for row in rows]


# ---------------------------------------------------------------------------- lifecycle


async def certificate_state(
    settings: Settings, serial: str, *, refresh_first: bool = True
) -> CertificateState | None:
    from consumers.certificates.projection import load_states

    if refresh_first:
        await refresh(settings, load_projection("certificates", settings))
    async with connect(settings) as connection:
        await connection.execute("SET search_path TO certificates")
        states = await load_states(connection, [canonical_serial(serial)])
    return states.get(canonical_serial(serial))


async def suspend(settings: Settings, serial: str, at: datetime | None = None) -> Envelope:
    state = await certificate_state(settings, serial)
    event = CertificateSuspended(
        serial=canonical_serial(serial), suspended_at=at or datetime.now(UTC)
    )
    return await _checked_publish(settings, "certificate.suspended", event, "jpki", state)


async def lift(
    settings: Settings, serial: str, municipality: str, at: datetime | None = None
) -> Envelope:
    state = await certificate_state(settings, serial)
    event = SuspensionLifted(
        serial=canonical_serial(serial),
        municipality=municipality,
        lifted_at=at or datetime.now(UTC),
    )
    return await _checked_publish(
        settings, "certificate.suspension_lifted", event, f"municipality:{municipality}", state
    )


async def revoke(
    settings: Settings, serial: str, reason: RevocationReason, at: datetime | None = None
) -> Envelope:
    state = await certificate_state(settings, serial)
    event = CertificateRevoked(
        serial=canonical_serial(serial),
        kind=state.kind if state else None,
        reason=reason,
        revoked_at=at or datetime.now(UTC),
    )
    return await _checked_publish(settings, "certificate.revoked", event, "jpki", state)


async def _checked_publish(
    settings: Settings,
    event_type: str,
    event: CertificateSuspended | SuspensionLifted | CertificateRevoked,
    source: str,
    state: CertificateState | None,
) -> Envelope:
    """Publish ``event`` if the lifecycle rules let it change ``state``, else say why not."""
    result = step(state, event)
    if result.refusal is not None:
        raise CertificateCommandError(result.refusal.message)
    if result.transition is None or result.state is None:
        status = state.status.value if state else "unknown"
        raise CertificateCommandError(f"certificate {event.serial} is {status} already")
    envelope = prove(
        settings,
        "jpki",
        Envelope.new(
            event_type,
            event,
            origin=settings.center,
            source=source,
            occurred_at=result.state.changed_at,
            municipality=result.state.municipality,
            event_id=revocation_event_id(event) if isinstance(event, CertificateRevoked) else None,
        ),
    )
    async with producer(settings) as kafka:
        await publish_many(
            settings, kafka, [Outgoing(JPKI_CERTIFICATES.name, event.serial, envelope)]
        )
    await refresh(settings, load_projection("certificates", settings))
    return envelope


async def known_revocations(settings: Settings) -> list[RevokedEntry]:
    """Every revoked or suspended certificate the projection holds, as CRL entries (those
    revoked for expiry excepted: a CRL does not list expired certificates)."""
    await refresh(settings, load_projection("certificates", settings))
    async with connect(settings) as connection:
        rows = await connection.fetch(
            "SELECT serial, status, reason, changed_at FROM certificates.certificates "
            # An expired certificate leaves the CRL: its expiry says all.
            "WHERE status <> 'active' AND reason IS DISTINCT FROM 'expiry' ORDER BY serial"
        )
    return [
        RevokedEntry(
            serial_number(row["serial"]),
            row["changed_at"],
            RevocationReason(row["reason"]) if row["status"] == "revoked" else None,
        )
        for row in rows
    ]


# ---------------------------------------------------------------------------- CRL import


@dataclass(frozen=True)
class CrlImportReport:
    outcome: str  # imported | already_imported
    issuer: str
    crl_number: int | None
    this_update: datetime
    next_update: datetime | None
    entries: int
    revocations: int
    suspensions: int
    already_known: int
    released: int
    sha256: str


def load_authority_certificate(settings: Settings) -> x509.Certificate:
    """The CA certificate CRLs must be signed by (``$BCL_JPKI_CA_DIR/ca.pem``)."""
    path = settings.jpki_home / "ca.pem"
    try:
        return x509.load_pem_x509_certificate(path.read_bytes())
    except FileNotFoundError:
        raise CertificateCommandError(
            f"no JPKI CA certificate at {path}; put the CA's PEM certificate there (or set "
            "BCL_JPKI_CA_DIR), or create the test CA with `bcl certificate ca`"
        ) from None
    except ValueError as error:
        raise CertificateCommandError(f"{path} is not a PEM certificate: {error}") from None


async def import_crl(
    settings: Settings,
    data: bytes,
    authority: x509.Certificate,
    *,
    on_progress: Callable[[int], None] | None = None,
) -> CrlImportReport:
    """Verify a CRL and publish an event for each entry the pipeline does not know yet.

    1. Verify the signature against the configured CA (``CrlRefused`` otherwise).
    2. Bring the certificates projection up to the log.
    3. Refuse a CRL older than the newest imported from this issuer (thisUpdate); one with the
       same thisUpdate and digest is already imported: nothing to publish.
    4. Publish a revocation (or, for certificateHold, a suspension) per entry not yet known,
       with derived ids so an import interrupted and repeated publishes each event once.
    5. Publish ``certificate.crl_imported`` last: the import counts only once all of it is in.
    """
    # 1.
    crl = read_crl(data, authority)
    # 2.
    await refresh(settings, load_projection("certificates", settings))
    async with connect(settings) as connection:
        # 3.
        last = await connection.fetchrow(
            "SELECT sha256, this_update FROM certificates.crl_imports WHERE issuer = $1 "
            "ORDER BY this_update DESC LIMIT 1",
            crl.issuer,
        )
        if last is not None and crl.this_update < last["this_update"]:
            raise CrlRefused(
                "stale_crl",
                f"this CRL was issued at {crl.this_update.isoformat()} (thisUpdate), before the "
                f"last imported one of {crl.issuer} ({last['this_update'].isoformat()}); "
                "nothing was imported",
            )
        if last is not None and crl.this_update == last["this_update"]:
            if last["sha256"] != crl.sha256:
                raise CrlRefused(
                    "conflicting_crl",
                    f"a different CRL with the same thisUpdate ({crl.this_update.isoformat()}) "
                    f"was imported from {crl.issuer}; nothing was imported",
                )
            return _report("already_imported", crl, 0, 0, 0)
        known = {
            row["serial"]: (row["status"], row["kind"])
            for row in await connection.fetch(
                "SELECT serial, status, kind FROM certificates.certificates"
            )
        }
    # 4.
    counts = {"revoked": 0, "suspended": 0, "known": 0}
    async with producer(settings) as kafka:
        await publish_many(
            settings,
            kafka,
            _crl_events(settings, crl, known, counts),
            on_sent=on_progress,
        )
        report = _report("imported", crl, counts["revoked"], counts["suspended"], counts["known"])
        # 5.
        await publish_many(settings, kafka, [_crl_imported_event(settings, report)])
    return report


def _crl_events(
    settings: Settings,
    crl: VerifiedCrl,
    known: dict[str, tuple[str, str | None]],
    counts: dict[str, int],
) -> Iterator[Outgoing]:
    keys = EdgeKeys.of(settings)  # a CRL may hold a million entries
    for entry in crl.revoked():
        serial = certificate_serial(entry.serial)
        status, kind = known.get(serial, (None, None))
        if status == "revoked" or (entry.reason is None and status in ("suspended", None)):
            # Already revoked or suspended here; a hold on a serial never issued here has
            # nothing to suspend (the projection would refuse it).
            counts["known"] += 1
            continue
        event: CertificateRevoked | CertificateSuspended
        if entry.reason is None:
            event = CertificateSuspended(serial=serial, suspended_at=entry.revoked_at)
            event_type, event_id = "certificate.suspended", None
            counts["suspended"] += 1
        else:
            event = CertificateRevoked(
                serial=serial,
                kind=CertificateKind(kind) if kind else None,
                reason=entry.reason,
                revoked_at=entry.revoked_at,
            )
            event_type, event_id = "certificate.revoked", revocation_event_id(event)
            counts["revoked"] += 1
        envelope = keys.prove(
            "jpki",
            Envelope.new(
                event_type,
                event,
                origin=settings.center,
                source="jpki",
                occurred_at=entry.revoked_at,
                event_id=event_id,
            ),
        )
        yield Outgoing(JPKI_CERTIFICATES.name, serial, envelope)


def _report(
    outcome: str, crl: VerifiedCrl, revocations: int, suspensions: int, known: int
) -> CrlImportReport:
    return CrlImportReport(
        outcome=outcome,
        issuer=crl.issuer,
        crl_number=crl.crl_number,
        this_update=crl.this_update,
        next_update=crl.next_update,
        entries=crl.entries,
        revocations=revocations,
        suspensions=suspensions,
        already_known=known,
        released=crl.released,
        sha256=crl.sha256,
    )


def _crl_imported_event(settings: Settings, report: CrlImportReport) -> Outgoing:
    payload = CrlImported(
        issuer=report.issuer,
        crl_number=report.crl_number,
        this_update=report.this_update,
        next_update=report.next_update,
        sha256=report.sha256,
        entries=report.entries,
        revocations=report.revocations,
        suspensions=report.suspensions,
    )
    envelope = prove(
        settings,
        "jpki",
        Envelope.new(
            "certificate.crl_imported",
            payload,
            origin=settings.center,
            source="jpki",
            occurred_at=report.this_update,
        ),
    )
    return Outgoing(JPKI_CERTIFICATES.name, f"crl:{report.issuer}", envelope)
