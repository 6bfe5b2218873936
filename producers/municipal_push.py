"""Municipal push intake: a municipality's signed resident-data file becomes resident events.

The push protocol
-----------------
A push is (municipality, batch sequence, file). Sequences count 1, 2, 3, ... per municipality.
The municipality signs the SHA-256 digest of the **push statement**, the UTF-8 text::

    bcl-push-v1\\n{municipality}\\n{sequence}\\n{sha256 hex of the file bytes}\\n

with its Ed25519 key, whose public half is in the registry (``bcl municipality show``). Signing
the statement rather than the file binds the signature to the sequence and the municipality, so
a signed file cannot be replayed under another sequence or by another municipality. With
openssl alone::

    printf 'bcl-push-v1\\n131016\\n1\\n%s\\n' "$(sha256sum diff.csv | cut -d' ' -f1)" > statement
    openssl dgst -sha256 -binary statement > digest
    openssl pkeyutl -sign -rawin -inkey key.pem -in digest -out sig
    bcl push 131016 diff.csv --sequence 1 --signature sig

What the intake answers, as ``PushReport.outcome``:

- ``accepted``: every row was valid; its events and a ``resident.batch_accepted`` receipt are on
  ``resident.changes``. Held batches it unblocks are published after it (``released``).
- ``already_accepted``: this sequence was accepted with this very file; nothing is published.
- ``held``: valid, but an earlier sequence is missing; published once the gap fills
  (``held_batches`` lists what waits).
- ``refused``: nothing is published and the sequence stays free; ``reason`` is a stable code
  (``REFUSAL_REASONS``) and ``problems`` lists every invalid row (line, field, value, reason).

Validation is all-or-nothing and streams: the file may be a gigabyte, and memory stays bounded
(rows go to disk, and a report keeps at most ``MAX_PROBLEMS`` problems). Every push that is read
at all (a valid municipality code, a file within ``push_max_bytes``), refused ones included,
keeps its ``report.json`` (the file's digest, the outcome and the problems, without the values of
personal fields) in ``$BCL_HOME/<center>/pushes/<municipality>/<sequence>-<sha256[:12]>/``. The
file itself is not kept. Its canonical rows (``rows.jsonl``, and a snapshot's ``changes.jsonl``)
wait there, each line sealed (``pipeline.sealed_files``), until the batch is published.

The ledger ``intake.batches`` records each accepted, held or publishing batch; a refusal takes no
sequence. Pushes of one municipality are decided one at a time (a Postgres advisory lock).

Each row's event id is derived from the batch, the line and the time the batch was first
received, so a batch interrupted mid-publish (status ``publishing`` in ``intake.batches``) and
pushed again republishes the same events, which readers see once. Envelope sequences are
``batch * 10,000,000 + line``: monotonic per municipality.

A full snapshot (``full=True``) is compared with the replica: only new or different rows are
published, and every resident active in the replica but absent from the snapshot is removed
(``ex_officio_removal`` as of ``as_of``).

Samples for 千代田区 (131016) are in ``producers/samples/`` (the ``.jsonl`` holds the same rows as
the ``.csv``). After ``bcl up`` and ``bcl municipality add 131016 --name 千代田区`` (which keeps
the signing key in ``$BCL_HOME/keys/131016.key.pem``), push one with
``bcl push 131016 producers/samples/residents-131016-001.csv``.
"""

from __future__ import annotations

import asyncio
import base64
import codecs
import csv
import hashlib
import multiprocessing
import os
import uuid
from collections.abc import AsyncIterator, Callable, Generator, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time
from multiprocessing.sharedctypes import Synchronized
from pathlib import Path
from typing import IO, Any, Literal, get_args

import asyncpg
import orjson
from aiokafka import AIOKafkaProducer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from pipeline.catchup import Share, refresh
from pipeline.collection import collect_seldom
from pipeline.database import Connection, connect, create_pool
from pipeline.kafka import producer
from pipeline.migrations import migrate
from pipeline.partitioning import partition_for
from pipeline.projection import load_projection
from pipeline.proofs import EdgeKeys
from pipeline.publish import Outgoing, proven_fields, publish, publish_many
from pipeline.sealed_files import SealedLines
from pipeline.settings import Settings
from pipeline.signing import SigningKeyError, load_public_key, sign_digest, verify_digest
from pipeline.topics import RESIDENT_CHANGES
from pipeline.vault import DataKey, SealedDataError, Vault, load_kek, open_sealed, seal
from producers.registry import registered_profile
from schemas.calendar import JST
from schemas.codes import is_valid_municipality_code
from schemas.events.residents import (
    REMOVAL_REASONS,
    BatchAccepted,
    ChangeReason,
    PersonalData,
    TaxAmounts,
    change_event_type,
)
from schemas.ids import derived_event_id
from schemas.inputs.resident_diff import (
    COLUMNS,
    REQUIRED_COLUMNS,
    ResidentRow,
    RowProblem,
    SealRow,
    TaxRow,
    parse_row,
)
from schemas.registry import REGISTRY
from schemas.sealed import Sealed, sealed_context

STATEMENT_TAG = "bcl-push-v1"
SIGNATURE_SIZE = 64  # Ed25519
# Envelope sequence = batch * LINES_PER_BATCH + line; the last slot of a batch is its receipt.
LINES_PER_BATCH = 10_000_000
RECEIPT_LINE = LINES_PER_BATCH - 1
MAX_LINE = RECEIPT_LINE - 1
# The ledger's sequence column is a Postgres int.
MAX_SEQUENCE = 2**31 - 1
# Rows whose data keys are fetched with one vault call, and whose replica state one query reads.
CHUNK_ROWS = 5_000
# A batch of at least this many events is published from two processes (``_on_both_cores``).
# The second takes about 1.5 s to start, in which one process publishes some 10,000.
SECOND_PROCESS_FROM = 50_000
# A file wrong on every line would otherwise fill memory with its problems.
MAX_PROBLEMS = 100_000
MAX_LINE_BYTES = 1 << 20
MAX_VALUE_CHARS = 200

ROWS_FILE = "rows.jsonl"
CHANGES_FILE = "changes.jsonl"
REPORT_FILE = "report.json"

Outcome = Literal["accepted", "already_accepted", "held", "refused"]
RefusalReason = Literal[
    "file_missing",
    "file_too_large",
    "file_changed",
    "empty_file",
    "bad_encoding",
    "unknown_format",
    "missing_columns",
    "invalid_rows",
    "other_municipality",
    "unknown_municipality",
    "not_on_bcl",
    "no_public_key",
    "unsigned",
    "bad_signature",
    "sequence_conflict",
    "bad_sequence",
]
REFUSAL_REASONS: tuple[str, ...] = get_args(RefusalReason)
FileFormat = Literal["csv", "jsonl"]
Progress = Callable[[int, int], None]
"""Called with (events published so far, events to publish in all) while publishing."""
_Keys = dict[tuple[str, str], DataKey | None]

_PERSONAL_FIELDS = tuple(PersonalData.model_fields)
_AMOUNT_FIELDS = tuple(TaxAmounts.model_fields)
_REMOVALS = frozenset(reason.value for reason in REMOVAL_REASONS)
# The columns whose values a stored report may keep: codes, dates of changes, kinds. Any other
# (a name, an amount, a whole line that did not parse, an unknown column) is withheld.
_KEPT_FIELDS = frozenset(COLUMNS) - frozenset(_PERSONAL_FIELDS + _AMOUNT_FIELDS)
WITHHELD = "(personal data, not kept)"
_UTF8_BOM = codecs.BOM_UTF8


# --- the push statement ---------------------------------------------------------------------


def push_statement(municipality: str, sequence: int, file_sha256: str) -> bytes:
    """The text a municipality signs (its SHA-256 digest) to push ``sequence``."""
    return f"{STATEMENT_TAG}\n{municipality}\n{sequence}\n{file_sha256}\n".encode()


def statement_digest(municipality: str, sequence: int, file_sha256: str) -> bytes:
    return hashlib.sha256(push_statement(municipality, sequence, file_sha256)).digest()


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as data:
        while chunk := data.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def sign_push(
    private_key: Ed25519PrivateKey, municipality: str, sequence: int, path: Path
) -> bytes:
    """The municipality's signature of pushing ``path`` as batch ``sequence``."""
    return sign_digest(private_key, statement_digest(municipality, sequence, file_sha256(path)))


# --- reports --------------------------------------------------------------------------------


@dataclass
class PushReport:
    municipality: str
    sequence: int | None
    file_sha256: str | None
    outcome: Outcome
    reason: RefusalReason | None
    message: str
    problems: list[RowProblem] = field(default_factory=list)
    rows: int = 0
    events_published: int = 0
    released: list[int] = field(default_factory=list)
    kept_at: Path | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "municipality": self.municipality,
            "sequence": self.sequence,
            "file_sha256": self.file_sha256,
            "outcome": self.outcome,
            "reason": self.reason,
            "message": self.message,
            "rows": self.rows,
            "events_published": self.events_published,
            "released": self.released,
            "kept_at": str(self.kept_at) if self.kept_at else None,
            "problems": [problem.model_dump() for problem in self.problems],
        }


@dataclass(frozen=True)
class HeldBatch:
    """A valid batch waiting for an earlier sequence of its municipality."""

    municipality: str
    sequence: int
    waiting_for: int
    file_sha256: str
    rows: int
    received_at: datetime
    kept_at: Path


class PushInterrupted(RuntimeError):
    """Publishing an accepted batch could not finish; the message says how to resume it."""


class _Refusal(Exception):
    def __init__(
        self,
        reason: RefusalReason,
        message: str,
        problems: Sequence[RowProblem] = (),
        rows: int = 0,
    ) -> None:
        super().__init__(message)
        self.reason: RefusalReason = reason
        self.message = message
        self.problems = list(problems)
        self.rows = rows


@dataclass(frozen=True)
class _Batch:
    municipality: str
    sequence: int
    file_sha256: str
    signature: bytes
    received_at: datetime
    folder: Path
    rows: int
    as_of: date | None

    @property
    def full(self) -> bool:
        return self.as_of is not None


# --- the intake -----------------------------------------------------------------------------


async def push_file(
    settings: Settings,
    municipality: str,
    path: Path,
    *,
    sequence: int | None,
    signature: bytes | None,
    full: bool = False,
    as_of: date | None = None,
    encoding: str = "utf-8",
    file_format: FileFormat | None = None,
    progress: Progress | None = None,
) -> PushReport:
    """Take one push; see the module docstring. ``sequence=None``: the next one expected.

    Bad input is a refused report, never an exception; services that cannot be reached raise.
    """

    def refused(reason: RefusalReason, message: str) -> PushReport:
        # Found before the batch has a folder: nothing of the file is kept.
        return PushReport(municipality, sequence, None, "refused", reason, message)

    if not is_valid_municipality_code(municipality):
        return refused(
            "unknown_municipality",
            f"{municipality!r} is not a municipality code (6 digits: prefecture, municipality "
            "and check digit, e.g. 131016)",
        )
    if sequence is not None and not 1 <= sequence <= MAX_SEQUENCE:
        return refused(
            "bad_sequence",
            f"batch sequence {sequence} is out of range: sequences count 1, 2, 3, ... up to "
            f"{MAX_SEQUENCE:,}",
        )
    size = await asyncio.to_thread(_file_size, path)
    if size is None:
        return refused(
            "file_missing",
            f"{path} does not exist or is not a file; give the path of the CSV or JSON Lines file",
        )
    if size > settings.push_max_bytes:
        return refused("file_too_large", _too_large(path, size, settings.push_max_bytes))
    try:
        sha = await asyncio.to_thread(_digest, path, settings.push_max_bytes)
    except OSError as error:
        # Unreadable (permissions, a vanished mount): the sender must fix access to it.
        if not error.filename or Path(error.filename) != path:
            raise
        return refused("file_missing", f"{path} cannot be read ({error.strerror}); check it")
    if sha is None:
        return refused("file_too_large", _too_large(path, None, settings.push_max_bytes))
    async with connect(settings) as ledger:
        await migrate(ledger, "intake")
        lock = _lock_key(municipality)
        await ledger.execute("SELECT pg_advisory_lock($1)", lock)
        try:
            intake = _Intake(settings, ledger, municipality, path, sha, full, as_of, progress)
            return await intake.take(
                sequence, signature, encoding, file_format or _format_by_name(path)
            )
        finally:
            await ledger.execute("SELECT pg_advisory_unlock($1)", lock)


async def next_sequence(settings: Settings, municipality: str) -> int:
    """The batch sequence the intake expects next from ``municipality`` (1 for its first)."""
    async with connect(settings) as connection:
        if not await _ledger_exists(connection):
            return 1
        return await _next_expected(connection, municipality)


async def held_batches(settings: Settings) -> list[HeldBatch]:
    """Batches held for a gap, by municipality and sequence (for ``bcl status``)."""
    async with connect(settings) as connection:
        if not await _ledger_exists(connection):
            return []
        rows = await connection.fetch(
            """
            SELECT h.municipality, h.sequence, h.file_sha256, h.rows, h.received_at, h.kept_at,
                   coalesce((SELECT max(a.sequence) FROM intake.batches a
                             WHERE a.municipality = h.municipality AND a.status = 'accepted'),
                            0) + 1 AS waiting_for
            FROM intake.batches h WHERE h.status = 'held'
            ORDER BY h.municipality, h.sequence
            """
        )
    return [
        HeldBatch(
            municipality=row["municipality"],
            sequence=row["sequence"],
            waiting_for=row["waiting_for"],
            file_sha256=row["file_sha256"],
            rows=row["rows"],
            received_at=row["received_at"],
            kept_at=Path(row["kept_at"]),
        )
        for row in rows
    ]


@dataclass
class _Intake:
    """One push, decided under the municipality's advisory lock."""

    settings: Settings
    ledger: Connection
    municipality: str
    path: Path  # the sender's file, read in place: no copy of it is ever made
    sha: str
    full: bool
    as_of: date | None
    progress: Progress | None
    published: int = 0
    to_publish: int = 0

    async def take(
        self,
        sequence: int | None,
        signature: bytes | None,
        encoding: str,
        file_format: FileFormat | None,
    ) -> PushReport:
        expected = await _next_expected(self.ledger, self.municipality)
        number = sequence or expected
        folder = self.settings.center_home / "pushes" / self.municipality
        folder = folder / f"{number:06d}-{self.sha[:12]}"
        # The file itself is not kept: its digest is, with the report and, until published,
        # its rows sealed (DESIGN §7: nothing personal in clear at rest).
        await asyncio.to_thread(folder.mkdir, parents=True, exist_ok=True)
        report = PushReport(
            self.municipality, number, self.sha, "refused", None, "", kept_at=folder
        )
        try:
            report = await self._decide(
                report, number, folder, expected, signature, encoding, file_format
            )
        except _Refusal as refusal:
            report = replace(
                report,
                reason=refusal.reason,
                message=refusal.message,
                problems=refusal.problems,
                rows=refusal.rows,
            )
            (folder / ROWS_FILE).unlink(missing_ok=True)
        if report.outcome != "already_accepted":
            await asyncio.to_thread(_write_report, report)
        return report

    async def _decide(
        self,
        report: PushReport,
        number: int,
        folder: Path,
        expected: int,
        signature: bytes | None,
        encoding: str,
        file_format: FileFormat | None,
    ) -> PushReport:
        verified = await self._check_sender(number, signature)
        existing = await self.ledger.fetchrow(
            "SELECT file_sha256, status, received_at, as_of FROM intake.batches "
            "WHERE municipality = $1 AND sequence = $2",
            self.municipality,
            number,
        )
        if existing is not None and existing["file_sha256"] != self.sha:
            raise _Refusal("sequence_conflict", await self._conflict(number, existing, expected))
        if existing is not None and existing["status"] == "accepted":
            return replace(
                report,
                outcome="already_accepted",
                message=f"batch {number} of {self.municipality} was already accepted with this "
                f"file; nothing new was published (the next batch is {expected})",
            )
        if existing is not None and existing["status"] == "held":
            return replace(
                report,
                outcome="held",
                message=f"batch {number} is already held, waiting for batch {expected}; push "
                f"batch {expected} to release it",
            )
        if existing is None and number < expected:
            raise _Refusal(
                "sequence_conflict",
                f"batch {number} is before the next expected batch {expected} of "
                f"{self.municipality}; push this file as batch {expected}",
            )

        purged = await self._purged_residents()
        rows = await asyncio.to_thread(
            _check_file,
            self.path,
            self.sha,
            folder / ROWS_FILE,
            _sealed_rows(self.settings, self.municipality, folder / ROWS_FILE),
            file_format,
            encoding,
            self.municipality,
            purged,
        )
        if existing is not None:
            # Interrupted mid-publish: finish it as first received, so its event ids repeat.
            received_at, as_of = existing["received_at"], existing["as_of"]
        else:
            received_at = datetime.now(UTC)
            as_of = (self.as_of or datetime.now(JST).date()) if self.full else None
        batch = _Batch(
            municipality=self.municipality,
            sequence=number,
            file_sha256=self.sha,
            signature=verified,
            received_at=received_at,
            folder=folder,
            rows=rows,
            as_of=as_of,
        )
        report = replace(report, rows=rows)
        if number > expected:
            await self._record(batch, "held")
            return replace(
                report,
                outcome="held",
                message=f"batch {number} is valid ({rows:,} rows) and held until batch "
                f"{expected} of {self.municipality} arrives; push batch {expected} next",
            )
        await self._record(batch, "publishing")
        async with _publisher(self.settings) as publisher:
            events = await self._publish(publisher, batch)
            released = await self._release(publisher, number + 1)
        after = f"; released held batches {', '.join(map(str, released))}" if released else ""
        snapshot = " (full snapshot: its differences from the replica)" if batch.full else ""
        return replace(
            report,
            outcome="accepted",
            events_published=events,
            released=released,
            message=f"batch {number} of {self.municipality} accepted: {rows:,} rows, "
            f"{events:,} events published{snapshot}{after}",
        )

    async def _check_sender(self, number: int, signature: bytes | None) -> bytes:
        """The signature, once the registry says this municipality may push and it verifies."""
        await refresh(self.settings, load_projection("registry", self.settings))
        profile = await registered_profile(self.settings, self.municipality)
        if profile is None:
            raise _Refusal(
                "unknown_municipality",
                f"municipality {self.municipality} is not registered; it joins with "
                f"`bcl municipality add {self.municipality}` before it can push",
            )
        if not profile.uses_bcl:
            raise _Refusal(
                "not_on_bcl",
                f"{self.municipality} {profile.name} runs its own issuance server, so BCL holds "
                f"no replica of it; switch it with `bcl municipality update {self.municipality} "
                "--bcl` if it has moved to BCL",
            )
        if profile.push_public_key is None:
            raise _Refusal(
                "no_public_key",
                f"{self.municipality} {profile.name} has no push public key registered; register "
                f"it with `bcl municipality update {self.municipality} --public-key FILE.pub.pem`",
            )
        try:
            public_key = load_public_key(profile.push_public_key)
        except SigningKeyError as error:
            raise _Refusal(
                "no_public_key",
                f"the push key registered for {self.municipality} is unusable ({error}); "
                f"register an Ed25519 public key with `bcl municipality update "
                f"{self.municipality} --public-key FILE.pub.pem`",
            ) from None
        if signature is None:
            raise _Refusal(
                "unsigned",
                f"the push is not signed: sign the push statement for {self.municipality} batch "
                f"{number} with the municipality's private key (`bcl push --key`, or openssl as "
                "in `bcl push --help`)",
            )
        digest = statement_digest(self.municipality, number, self.sha)
        if len(signature) != SIGNATURE_SIZE:
            raise _Refusal(
                "bad_signature",
                f"the signature is {len(signature)} bytes; an Ed25519 signature is "
                f"{SIGNATURE_SIZE} raw bytes (as `openssl pkeyutl -sign -rawin` writes it)",
            )
        if not verify_digest(public_key, digest, signature):
            raise _Refusal(
                "bad_signature",
                f"the signature does not verify with the public key registered for "
                f"{self.municipality}: sign the statement for batch {number} of exactly this file "
                f"(sha256 {self.sha}) with the municipality's own private key",
            )
        return signature

    async def _conflict(self, number: int, existing: asyncpg.Record, expected: int) -> str:
        taken = await self.ledger.fetchval(
            "SELECT max(sequence) FROM intake.batches WHERE municipality = $1", self.municipality
        )
        gap = (
            f" (batch {expected} is still missing: the batches after it wait for it)"
            if expected < taken
            else ""
        )
        return (
            f"batch {number} of {self.municipality} was already "
            f"{'held' if existing['status'] == 'held' else 'accepted'} with another file (sha256 "
            f"{existing['file_sha256']}); this file (sha256 {self.sha}) is a new batch: push it "
            f"as batch {taken + 1}{gap}"
        )

    async def _purged_residents(self) -> frozenset[str]:
        rows = await self.ledger.fetch(
            "SELECT resident_code FROM vault.data_keys "
            "WHERE municipality = $1 AND wrapped_key IS NULL",
            self.municipality,
        )
        return frozenset(row["resident_code"] for row in rows)

    async def _record(self, batch: _Batch, status: Literal["held", "publishing"]) -> None:
        await self.ledger.execute(
            """
            INSERT INTO intake.batches (municipality, sequence, file_sha256, status, rows,
                received_at, signature, kept_at, full_snapshot, as_of)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
            ON CONFLICT (municipality, sequence) DO NOTHING
            """,
            batch.municipality,
            batch.sequence,
            batch.file_sha256,
            status,
            batch.rows,
            batch.received_at,
            batch.signature,
            str(batch.folder),
            batch.full,
            batch.as_of,
        )

    async def _publish(self, publisher: _Publisher, batch: _Batch) -> int:
        changes, count = (
            await publisher.snapshot_changes(batch)
            if batch.full
            else (batch.folder / ROWS_FILE, batch.rows)
        )
        self.to_publish += count
        base = self.published

        def sent(n: int) -> None:
            self.published = base + n
            if self.progress:
                self.progress(self.published, self.to_publish)

        if self.progress:
            self.progress(self.published, self.to_publish)
        events = await publisher.publish(batch, changes, count, sent)
        await self.ledger.execute(
            "UPDATE intake.batches SET status = 'accepted', events = $3, accepted_at = now() "
            "WHERE municipality = $1 AND sequence = $2",
            batch.municipality,
            batch.sequence,
            events,
        )
        # On the log now, sealed per resident: the batch's rows at rest have served.
        for name in (ROWS_FILE, CHANGES_FILE):
            await asyncio.to_thread((batch.folder / name).unlink, missing_ok=True)
        return events

    async def _release(self, publisher: _Publisher, number: int) -> list[int]:
        released: list[int] = []
        while True:
            row = await self.ledger.fetchrow(
                "UPDATE intake.batches SET status = 'publishing' "
                "WHERE municipality = $1 AND sequence = $2 AND status = 'held' "
                "RETURNING file_sha256, signature, received_at, kept_at, rows, as_of",
                self.municipality,
                number,
            )
            if row is None:
                return released
            batch = _Batch(
                municipality=self.municipality,
                sequence=number,
                file_sha256=row["file_sha256"],
                signature=row["signature"],
                received_at=row["received_at"],
                folder=Path(row["kept_at"]),
                rows=row["rows"],
                as_of=row["as_of"],
            )
            if not (batch.folder / ROWS_FILE).exists():
                raise PushInterrupted(
                    f"held batch {number} of {self.municipality} cannot be released: its rows "
                    f"({batch.folder / ROWS_FILE}) are gone; push that file again as batch "
                    f"{number}"
                )
            events = await self._publish(publisher, batch)
            await asyncio.to_thread(
                _write_report,
                PushReport(
                    self.municipality,
                    number,
                    batch.file_sha256,
                    "accepted",
                    None,
                    f"batch {number} of {self.municipality} accepted: released when batch "
                    f"{number - 1} arrived; {batch.rows:,} rows, {events:,} events published",
                    rows=batch.rows,
                    events_published=events,
                    kept_at=batch.folder,
                ),
            )
            released.append(number)
            number += 1


# --- publishing -----------------------------------------------------------------------------


@dataclass
class _Publisher:
    settings: Settings
    pool: asyncpg.Pool
    vault: Vault
    client: AIOKafkaProducer[bytes, bytes]
    # Held, not looked up per row: the push intake proves every event it publishes.
    keys: EdgeKeys = field(init=False)

    def __post_init__(self) -> None:
        self.keys = EdgeKeys.of(self.settings)

    async def publish(
        self, batch: _Batch, changes: Path, count: int, sent: Callable[[int], None]
    ) -> int:
        """Publish the ``count`` events of ``changes``, then the batch's receipt."""
        if count >= SECOND_PROCESS_FROM:
            events = await self._on_both_cores(batch, changes, sent)
        else:
            events = await publish_many(
                self.settings, self.client, self._events(batch, changes), on_sent=sent
            )
        receipt = BatchAccepted(
            municipality=batch.municipality,
            sequence=batch.sequence,
            file_sha256=batch.file_sha256,
            signature=base64.b64encode(batch.signature).decode("ascii"),
            rows=batch.rows,
            events=events,
            full=batch.full,
        )
        await publish(
            self.settings,
            self.client,
            self._outgoing(
                batch,
                RECEIPT_LINE,
                _event_id(batch, RECEIPT_LINE, "receipt"),
                "resident.batch_accepted",
                receipt.model_dump(mode="json"),
                batch.received_at,
                key=f"{batch.municipality}:batch",
            ),
        )
        return events

    def _outgoing(
        self,
        batch: _Batch,
        line: int,
        event_id: uuid.UUID,
        event_type: str,
        payload: dict[str, Any],
        occurred_at: datetime,
        *,
        key: str | None = None,
    ) -> Outgoing:
        """The event of ``line`` proven by the municipality's edge, keyed by its resident (or
        ``key``)."""
        edge = f"municipality:{batch.municipality}"
        return proven_fields(
            self.keys,
            edge,
            RESIDENT_CHANGES.name,
            key or f"{batch.municipality}:{payload['resident_code']}",
            {
                "event_id": event_id,
                "type": event_type,
                "version": REGISTRY.current_version(event_type),
                "occurred_at": occurred_at,
                "recorded_at": datetime.now(UTC),
                "origin": self.settings.center,
                "source": edge,
                "municipality": batch.municipality,
                "sequence": _sequence(batch, line),
                "correlation_id": None,
                "causation_id": None,
                "payload": payload,
            },
        )

    async def _on_both_cores(
        self, batch: _Batch, changes: Path, sent: Callable[[int], None]
    ) -> int:
        """Publish the events of half the partitions from here and the other half from a
        second process; returns how many both published.

        Building events is most of a push's CPU, and the halves need no order between them: a
        resident's events share a key, so a partition, so a process, which sends them in the
        file's order.
        """
        spawn = multiprocessing.get_context("spawn")
        theirs_sent: Synchronized[int] = spawn.Value("q", 0)
        mine_sent = 0

        def mine(n: int) -> None:
            nonlocal mine_sent
            mine_sent = n
            sent(mine_sent + theirs_sent.value)

        with ProcessPoolExecutor(
            1, mp_context=spawn, initializer=_count_sent_in, initargs=(theirs_sent,)
        ) as other_process:
            theirs = asyncio.get_running_loop().run_in_executor(
                other_process, _publish_share, self.settings, batch, changes, Share(1, 2)
            )
            try:
                ours = await publish_many(
                    self.settings,
                    self.client,
                    self._events(batch, changes, Share(0, 2)),
                    on_sent=mine,
                )
            except BaseException:
                # Never leave the other half running: it stops here, whatever its outcome.
                await asyncio.gather(theirs, return_exceptions=True)
                raise
            while not theirs.done():
                sent(mine_sent + theirs_sent.value)
                await asyncio.wait([theirs], timeout=0.5)
            events = ours + await theirs
            sent(events)
            return events

    async def _events(
        self, batch: _Batch, changes: Path, share: Share | None = None
    ) -> AsyncIterator[Outgoing]:
        """The events of ``changes``, or of those whose partitions are in ``share``."""
        chunks = _entry_chunks(changes, _sealed_rows(self.settings, batch.municipality, changes))
        partitions = (
            len(await self.client.partitions_for(self.settings.topic(RESIDENT_CHANGES.name)))
            if share
            else 0
        )

        async def next_chunk() -> tuple[list[dict[str, Any]] | None, _Keys]:
            chunk = await asyncio.to_thread(next, chunks, None)
            if chunk and share:
                chunk = [
                    entry
                    for entry in chunk
                    if share.holds(partition_for(_key(batch, entry).encode(), partitions))
                ]
            # A removal's sealed data is sealed again for the event that carries it.
            sealed_for = [
                (batch.municipality, entry["removal"]["resident_code"])
                if "removal" in entry
                else (batch.municipality, entry["row"]["resident_code"])
                for entry in chunk or ()
                if "removal" in entry or entry["row"]["record"] != "seal"
            ]
            if not sealed_for:
                return chunk, {}
            return chunk, await self.vault.data_keys_for(None, sealed_for, create=True)

        # The next chunk's data keys come from Postgres while this chunk's events are built.
        upcoming = asyncio.create_task(next_chunk())
        try:
            while True:
                chunk, keys = await upcoming
                if chunk is None:
                    return
                upcoming = asyncio.create_task(next_chunk())
                for entry in chunk:
                    yield self._event(batch, entry, keys)
        finally:
            # Let a read in flight finish: the file cannot be closed under a running read.
            await asyncio.gather(upcoming, return_exceptions=True)
            chunks.close()

    def _event(self, batch: _Batch, entry: dict[str, Any], keys: _Keys) -> Outgoing:
        # Payloads are built as the JSON they become, not as models dumped back to JSON: that
        # round trip cost a third of the publishing time, and the rows were validated against
        # the same constraints already. Every envelope is still validated, and the tests decode
        # every event published through the codec.
        line: int = entry["line"]
        municipality = batch.municipality
        pushed = {"batch": batch.sequence, "line": line}
        if "removal" in entry:
            removal = entry["removal"]
            key = self._data_key(batch, keys, removal["resident_code"])
            try:
                personal = open_sealed(
                    key, Sealed.model_validate(removal["personal"]), removal["sealed_in"].encode()
                )
            except SealedDataError as error:
                raise PushInterrupted(
                    f"the replica's record of resident {removal['resident_code']} of "
                    f"{municipality} cannot be opened ({error}); rebuild it with "
                    f"`bcl replay replica` and push batch {batch.sequence} again"
                ) from None
            event_id = _event_id(batch, line, "removal")
            carrier = _carrier(batch, line, event_id, "resident.removed", removal["resident_code"])
            payload = {
                "municipality": municipality,
                "resident_code": removal["resident_code"],
                "household_number": removal["household_number"],
                "relationship": removal["relationship"],
                "reason": ChangeReason.EX_OFFICIO_REMOVAL.value,
                "effective_date": removal["effective_date"],
                "death_date_unknown": False,
                "pushed": pushed,
                "personal": _sealed_json(seal(key, personal, carrier)),
            }
            return self._outgoing(
                batch,
                line,
                event_id,
                "resident.removed",
                payload,
                _day_start(date.fromisoformat(removal["effective_date"])),
            )
        row: dict[str, Any] = entry["row"]
        code: str = row["resident_code"]
        if row["record"] == "seal":
            payload = {
                "municipality": municipality,
                "resident_code": code,
                "registration_number": row["seal_number"],
                "status": row["seal_status"],
                "effective_date": row["effective_date"],
                "pushed": pushed,
            }
            return self._outgoing(
                batch,
                line,
                _event_id(batch, line, "seal"),
                "seal.changed",
                payload,
                _day_start(date.fromisoformat(row["effective_date"])),
            )
        key = self._data_key(batch, keys, code)
        if row["record"] == "tax":
            event_id = _event_id(batch, line, "tax")
            aad = _carrier(batch, line, event_id, "tax.recorded", code)
            amounts = {name: row[name] for name in _AMOUNT_FIELDS}
            payload = {
                "municipality": municipality,
                "resident_code": code,
                "fiscal_year": row["fiscal_year"],
                "pushed": pushed,
                "amounts": _sealed_json(seal(key, amounts, aad)),
            }
            return self._outgoing(batch, line, event_id, "tax.recorded", payload, batch.received_at)
        effective = row["effective_date"]
        event_type = change_event_type(ChangeReason(row["reason"]))
        event_id = _event_id(batch, line, "resident")
        aad = _carrier(batch, line, event_id, event_type, code)
        payload = {
            "municipality": municipality,
            "resident_code": code,
            "household_number": row["household_number"].ljust(15),
            "relationship": row["relationship"],
            "reason": row["reason"],
            "effective_date": effective,
            "death_date_unknown": row["death_date_unknown"],
            "pushed": pushed,
            "personal": _sealed_json(
                seal(key, {name: row[name] for name in _PERSONAL_FIELDS}, aad)
            ),
        }
        return self._outgoing(
            batch,
            line,
            event_id,
            event_type,
            payload,
            # A death of unknown date happened, as far as anyone knows, when it was received.
            _day_start(date.fromisoformat(effective)) if effective else batch.received_at,
        )

    @staticmethod
    def _data_key(batch: _Batch, keys: _Keys, code: str) -> DataKey:
        key = keys.get((batch.municipality, code))
        if key is None:
            raise PushInterrupted(
                f"resident {code} of {batch.municipality} had their data key destroyed "
                f"(retention ended) while batch {batch.sequence} was being published; leave "
                f"their rows out and push the corrected file as batch {batch.sequence}"
            )
        return key

    async def snapshot_changes(self, batch: _Batch) -> tuple[Path, int]:
        """The rows of a full snapshot that differ from the replica, then the removals.

        Decided once and kept (``changes.jsonl``): a snapshot interrupted mid-publish must
        publish the same changes again, not a new comparison with a replica that has applied
        part of them.
        """
        changes = batch.folder / CHANGES_FILE
        if changes.exists():
            return changes, await asyncio.to_thread(_count_lines, changes)
        await refresh(self.settings, load_projection("replica", self.settings))
        partial = changes.with_suffix(".partial")
        rows = batch.folder / ROWS_FILE
        file: IO[bytes] = await asyncio.to_thread(partial.open, "wb")
        out = _sealed_rows(self.settings, batch.municipality, changes).writer(file)
        count = 0
        last_line = 0
        try:
            async with self.pool.acquire() as connection, connection.transaction():
                replica = _Replica(connection, self.vault, batch.municipality)
                await replica.start()
                chunks = _entry_chunks(rows, _sealed_rows(self.settings, batch.municipality, rows))
                try:
                    while (chunk := await asyncio.to_thread(next, chunks, None)) is not None:
                        differing = await replica.differing(chunk)
                        last_line = max(last_line, chunk[-1]["line"])
                        count += len(differing)
                        await asyncio.to_thread(out.writelines, map(_json_line, differing))
                finally:
                    chunks.close()
                assert batch.as_of is not None  # a full snapshot's date
                async for removals in replica.removals(last_line, batch.as_of):
                    if removals[-1]["line"] > MAX_LINE:
                        raise PushInterrupted(
                            f"snapshot batch {batch.sequence} and its removals need more than "
                            f"{MAX_LINE:,} lines; split the register into smaller files"
                        )
                    count += len(removals)
                    await asyncio.to_thread(out.writelines, map(_json_line, removals))
        finally:
            await asyncio.to_thread(file.close)
        await asyncio.to_thread(os.replace, partial, changes)
        return changes, count


# The second process's running count of events sent, for the first to report progress.
_sent_here: Synchronized[int] | None = None


def _count_sent_in(counter: Synchronized[int]) -> None:
    global _sent_here
    _sent_here = counter


def _publish_share(settings: Settings, batch: _Batch, changes: Path, share: Share) -> int:
    """In the second process of ``_Publisher._on_both_cores``: publish ``share`` of the events."""
    collect_seldom()

    def sent(n: int) -> None:
        if _sent_here is not None:
            _sent_here.value = n

    async def published() -> int:
        async with _publisher(settings) as publisher:
            events = publisher._events(batch, changes, share)
            return await publish_many(settings, publisher.client, events, on_sent=sent)

    return asyncio.run(published())


@asynccontextmanager
async def _publisher(settings: Settings) -> AsyncIterator[_Publisher]:
    pool = await create_pool(settings, max_size=2)
    try:
        async with producer(settings) as client:
            # A push meets each resident once: the keys of the chunk being built and the one
            # read ahead are all it needs kept (a cached key holds its cipher, some 2.6 KB).
            vault = Vault(pool, load_kek(settings), cache_size=2 * CHUNK_ROWS)
            yield _Publisher(settings, pool, vault, client)
    finally:
        await pool.close()


def _key(batch: _Batch, entry: dict[str, Any]) -> str:
    """The key of the event of a row or a removal: its resident's."""
    resident = entry["removal"] if "removal" in entry else entry["row"]
    return f"{batch.municipality}:{resident['resident_code']}"


def _event_id(batch: _Batch, line: int, kind: str) -> uuid.UUID:
    return derived_event_id(
        batch.received_at, batch.municipality, str(batch.sequence), str(line), kind
    )


def _sequence(batch: _Batch, line: int) -> int:
    return batch.sequence * LINES_PER_BATCH + line


def _carrier(batch: _Batch, line: int, event_id: uuid.UUID, event_type: str, code: str) -> bytes:
    """The context of the sealed data of the event ``event_id`` for ``line``
    (``schemas.sealed``)."""
    return sealed_context(batch.municipality, code, event_type, event_id, _sequence(batch, line))


def _stored_context(municipality: str, row: asyncpg.Record) -> bytes:
    """The context of a resident's sealed data as the replica keeps it, from the event that
    carried it there."""
    return sealed_context(
        municipality,
        row["resident_code"],
        change_event_type(ChangeReason(row["reason"])),
        row["event_id"],
        row["sequence"],
    )


def _day_start(day: date) -> datetime:
    """The start of the day a change takes effect, in the municipality's time."""
    return datetime.combine(day, time(0), tzinfo=JST)


def _sealed_json(sealed: Sealed) -> dict[str, str]:
    return {"key_id": str(sealed.key_id), "nonce": sealed.nonce, "ciphertext": sealed.ciphertext}


class _Replica:
    """The replica's current state of one municipality, read a chunk of rows at a time."""

    def __init__(self, connection: Connection, vault: Vault, municipality: str) -> None:
        self.connection = connection
        self.vault = vault
        self.municipality = municipality
        self.exists = False

    async def start(self) -> None:
        # Before the first push of all, the replica may not even have its tables: empty.
        self.exists = bool(
            await self.connection.fetchval("SELECT to_regclass('replica.residents') IS NOT NULL")
        )
        if self.exists:
            await self.connection.execute(
                "CREATE TEMP TABLE snapshot_residents (resident_code text NOT NULL) ON COMMIT DROP"
            )

    async def differing(self, chunk: list[dict[str, Any]]) -> list[dict[str, Any]]:
        rows = [entry["row"] for entry in chunk]
        if not self.exists:
            return chunk
        residents = [row["resident_code"] for row in rows if row["record"] == "resident"]
        # Who the snapshot holds, for the removals: in Postgres, not in this process's memory.
        await self.connection.copy_records_to_table(
            "snapshot_residents", records=[(code,) for code in residents]
        )
        stored = await self._residents(residents)
        keys = await self.vault.data_keys_for(
            self.connection, [(self.municipality, code) for code in stored], create=False
        )
        seals = await self._seals([r["seal_number"] for r in rows if r["record"] == "seal"])
        taxes = await self._taxes(
            [r["resident_code"] for r in rows if r["record"] == "tax"],
            [r["fiscal_year"] for r in rows if r["record"] == "tax"],
        )
        differing = []
        for entry in chunk:
            row = entry["row"]
            code = row["resident_code"]
            if row["record"] == "resident":
                same = self._same_resident(
                    row, stored.get(code), keys.get((self.municipality, code))
                )
            elif row["record"] == "seal":
                same = seals.get(row["seal_number"]) == (
                    code,
                    row["seal_status"],
                    date.fromisoformat(row["effective_date"]),
                )
            else:
                same = taxes.get((code, row["fiscal_year"])) == (
                    row["income_yen"],
                    row["assessed_yen"],
                    row["paid_yen"],
                )
            if not same:
                differing.append(entry)
        return differing

    def _same_resident(
        self, row: dict[str, Any], stored: asyncpg.Record | None, key: DataKey | None
    ) -> bool:
        if stored is None or key is None:
            return False
        if stored["active"] == (row["reason"] in _REMOVALS):
            return False
        if (stored["household_number"], stored["relationship"]) != (
            row["household_number"].ljust(15),
            row["relationship"],
        ):
            return False
        try:
            personal = open_sealed(
                key,
                Sealed.model_validate_json(stored["personal"]),
                _stored_context(self.municipality, stored),
            )
        except SealedDataError:
            return False
        return _given(personal) == _given({name: row[name] for name in _PERSONAL_FIELDS})

    async def _residents(self, codes: list[str]) -> dict[str, asyncpg.Record]:
        if not codes:
            return {}
        found = await self.connection.fetch(
            "SELECT resident_code, household_number, relationship, active, personal, reason, "
            "event_id, sequence FROM replica.residents "
            "WHERE municipality = $1 AND resident_code = ANY($2::text[])",
            self.municipality,
            codes,
        )
        return {row["resident_code"]: row for row in found}

    async def _seals(self, numbers: list[str]) -> dict[str, tuple[str, str, date]]:
        if not numbers:
            return {}
        found = await self.connection.fetch(
            "SELECT registration_number, resident_code, status, effective_date "
            "FROM replica.seals WHERE municipality = $1 AND registration_number = ANY($2::text[])",
            self.municipality,
            numbers,
        )
        return {
            row["registration_number"]: (row["resident_code"], row["status"], row["effective_date"])
            for row in found
        }

    async def _taxes(
        self, codes: list[str], years: list[int]
    ) -> dict[tuple[str, int], tuple[int, int, int]]:
        if not codes:
            return {}
        found = await self.connection.fetch(
            "SELECT t.resident_code, t.fiscal_year, t.income_yen, t.assessed_yen, t.paid_yen "
            "FROM replica.tax_facts t JOIN unnest($2::text[], $3::int[]) AS x(code, year) "
            "ON t.resident_code = x.code AND t.fiscal_year = x.year WHERE t.municipality = $1",
            self.municipality,
            codes,
            years,
        )
        return {
            (row["resident_code"], row["fiscal_year"]): (
                row["income_yen"],
                row["assessed_yen"],
                row["paid_yen"],
            )
            for row in found
        }

    async def removals(self, last_line: int, as_of: date) -> AsyncIterator[list[dict[str, Any]]]:
        """Residents active in the replica and absent from the snapshot, removed ``as_of`` and
        numbered after its last line, in chunks."""
        if not self.exists:
            return
        line = last_line
        chunk: list[dict[str, Any]] = []
        cursor = self.connection.cursor(
            """
            SELECT r.resident_code, r.household_number, r.relationship, r.personal, r.reason,
                   r.event_id, r.sequence
            FROM replica.residents r
            WHERE r.municipality = $1 AND r.active
              AND NOT EXISTS (SELECT 1 FROM snapshot_residents s
                              WHERE s.resident_code = r.resident_code)
            ORDER BY r.resident_code
            """,
            self.municipality,
        )
        async for row in cursor:
            line += 1
            chunk.append(
                {
                    "line": line,
                    "removal": {
                        "resident_code": row["resident_code"],
                        "household_number": row["household_number"],
                        "relationship": row["relationship"],
                        "effective_date": as_of.isoformat(),
                        "personal": orjson.loads(row["personal"]),
                        "sealed_in": _stored_context(self.municipality, row).decode(),
                    },
                }
            )
            if len(chunk) == CHUNK_ROWS:
                yield chunk
                chunk = []
        if chunk:
            yield chunk


def _given(values: dict[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in values.items() if value is not None}


def _json_line(entry: dict[str, Any]) -> bytes:
    return orjson.dumps(entry) + b"\n"


def _entry_chunks(path: Path, sealed: SealedLines) -> Generator[list[dict[str, Any]], None, None]:
    chunk: list[dict[str, Any]] = []
    for line in sealed.lines(path):
        chunk.append(orjson.loads(line))
        if len(chunk) == CHUNK_ROWS:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _sealed_rows(settings: Settings, municipality: str, file: Path) -> SealedLines:
    """How a batch's rows or changes are kept at rest: sealed under a key of that file."""
    return SealedLines(load_kek(settings), f"push:{municipality}:{file.parent.name}/{file.name}")


def _count_lines(path: Path) -> int:
    with path.open("rb") as entries:
        return sum(1 for _ in entries)


# --- the ledger -----------------------------------------------------------------------------


def _lock_key(municipality: str) -> int:
    return int.from_bytes(
        hashlib.sha256(f"bcl-push:{municipality}".encode()).digest()[:8], "big", signed=True
    )


async def _ledger_exists(connection: Connection) -> bool:
    return bool(await connection.fetchval("SELECT to_regclass('intake.batches') IS NOT NULL"))


async def _next_expected(connection: Connection, municipality: str) -> int:
    latest = await connection.fetchval(
        "SELECT max(sequence) FROM intake.batches WHERE municipality = $1 AND status = 'accepted'",
        municipality,
    )
    return (latest or 0) + 1


# --- the kept folder ------------------------------------------------------------------------


def _file_size(path: Path) -> int | None:
    return path.stat().st_size if path.is_file() else None


def _digest(source: Path, limit: int) -> str | None:
    """The SHA-256 of the sender's file; None if it grew past ``limit`` meanwhile.

    No copy is made (it would hold the register in clear): the file is read again to be
    checked, hashed once more on the way, and refused if it changed in between
    (``_check_file``), so what is validated and published is exactly what was signed.
    """
    digest = hashlib.sha256()
    size = 0
    with source.open("rb") as data:
        while chunk := data.read(1 << 20):
            size += len(chunk)
            if size > limit:
                return None
            digest.update(chunk)
    return digest.hexdigest()


class _Hashed:
    """A binary file read line by line, hashing what is read."""

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw = raw
        self.digest = hashlib.sha256()

    def readline(self, size: int = -1) -> bytes:
        data = self.raw.readline(size)
        self.digest.update(data)
        return data

    def rest_hashed(self) -> str:
        """The digest of the whole file: the lines read, then whatever was left unread."""
        while chunk := self.raw.read(1 << 20):
            self.digest.update(chunk)
        return self.digest.hexdigest()


def _write_report(report: PushReport) -> None:
    """Keep the report at rest, the values of personal fields withheld: the sender saw them
    when it pushed, and a file under ``$BCL_HOME`` is no place for names and My Numbers."""
    assert report.kept_at is not None
    kept = report.to_json()
    kept["problems"] = [
        problem if problem["field"] in _KEPT_FIELDS else {**problem, "value": WITHHELD}
        for problem in kept["problems"]
    ]
    (report.kept_at / REPORT_FILE).write_bytes(orjson.dumps(kept, option=orjson.OPT_INDENT_2))


def _too_large(path: Path, size: int | None, limit: int) -> str:
    found = f" is {size:,} bytes" if size is not None else " grew while it was read and"
    return (
        f"{path}{found} exceeds the push limit of {limit:,} bytes; split it into smaller files "
        "and push them as consecutive batches"
    )


# --- reading and checking the file -------------------------------------------------------------


def _format_by_name(path: Path) -> FileFormat | None:
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return "csv"
    if suffix in (".jsonl", ".ndjson"):
        return "jsonl"
    return None


def _sniff_format(first_line: bytes) -> FileFormat:
    text = first_line.removeprefix(_UTF8_BOM).strip()
    if text.startswith(b"{"):
        return "jsonl"
    if b"," in text and any(name.encode() in text for name in REQUIRED_COLUMNS):
        return "csv"
    raise _Refusal(
        "unknown_format",
        "cannot tell whether the file is CSV or JSON Lines: name it .csv or .jsonl, or pass "
        "--format csv or --format jsonl",
    )


def _check_file(
    path: Path,
    sha: str,
    spool: Path,
    sealed: SealedLines,
    file_format: FileFormat | None,
    encoding: str,
    municipality: str,
    purged: frozenset[str],
) -> int:
    """Validate every row and write the canonical rows to ``spool``; returns how many rows.

    Raises ``_Refusal`` with every problem found (up to ``MAX_PROBLEMS``).
    """
    try:
        codec = codecs.lookup(encoding)
    except LookupError:
        raise _Refusal(
            "bad_encoding",
            f"{encoding!r} is not an encoding Python knows; use utf-8 (the default) or cp932",
        ) from None
    problems: list[RowProblem] = []
    rows = 0
    foreign: set[str] = set()
    with path.open("rb") as file_read, spool.open("wb") as file:
        out = sealed.writer(file)
        raw = _Hashed(file_read)
        lines = _Lines(raw, codec.name)
        first = lines.peek()
        if first is None:
            raise _Refusal("empty_file", "the file is empty; push a file with at least one row")
        chosen = file_format or _sniff_format(first)
        records = _csv_records(lines, problems) if chosen == "csv" else _jsonl_records(lines)
        try:
            for line, values in records:
                if line > MAX_LINE:
                    raise _Refusal(
                        "file_too_large",
                        f"the file has more than {MAX_LINE:,} lines, the most one batch holds; "
                        "split it and push the parts as consecutive batches",
                    )
                rows += 1
                if isinstance(values, RowProblem):
                    problems.append(values)
                else:
                    row = _checked_row(line, values, municipality, purged, problems, foreign)
                    if row is not None and not problems:
                        # model_dump(mode="json"), serialised in one step
                        canonical = row.__pydantic_serializer__.to_json(row)
                        out.write(b'{"line":%d,"row":%b}\n' % (line, canonical))
                if len(problems) >= MAX_PROBLEMS:
                    break
        except _Undecodable as error:
            raise _Refusal(
                "bad_encoding", _encoding_message(path, codec.name, error), [error.problem]
            ) from None
        if raw.rest_hashed() != sha:
            raise _Refusal(
                "file_changed",
                f"{path} changed while it was read (its SHA-256 is no longer {sha}); push it "
                "again once nothing writes to it",
            )
    if problems:
        raise _Refusal(*_invalid(problems, rows, foreign), rows=rows)
    if rows == 0:
        raise _Refusal(
            "empty_file",
            "the file has no rows"
            + (" below its header" if chosen == "csv" else "")
            + "; push a file with at least one row",
        )
    return rows


def _checked_row(
    line: int,
    values: dict[str, Any],
    municipality: str,
    purged: frozenset[str],
    problems: list[RowProblem],
    foreign: set[str],
) -> ResidentRow | SealRow | TaxRow | None:
    """The typed row, or None with its problems added to ``problems``."""
    parsed = parse_row(values, line)
    found = [_short(p) for p in parsed] if isinstance(parsed, list) else []
    owner = str(values.get("municipality", "")).strip()
    if owner != municipality and is_valid_municipality_code(owner):
        foreign.add(owner)
        found.append(
            RowProblem(
                line=line,
                field="municipality",
                value=owner,
                reason=f"a resident of municipality {owner}: {municipality} may push only its "
                "own residents",
            )
        )
    code = str(values.get("resident_code", "")).strip()
    if code in purged:
        found.append(
            RowProblem(
                line=line,
                field="resident_code",
                value=code,
                reason="this resident was purged (5 years after removal) and their data key "
                "destroyed, so nothing can be recorded for them again: leave the row out",
            )
        )
    problems.extend(found)
    return None if found or isinstance(parsed, list) else parsed


def _short(problem: RowProblem) -> RowProblem:
    if len(problem.value) <= MAX_VALUE_CHARS:
        return problem
    return problem.model_copy(update={"value": problem.value[:MAX_VALUE_CHARS] + "…"})


def _invalid(
    problems: list[RowProblem], rows: int, foreign: set[str]
) -> tuple[RefusalReason, str, list[RowProblem]]:
    lines = len({p.line for p in problems})
    stopped = (
        f" (checking stopped after {MAX_PROBLEMS:,} problems)"
        if len(problems) >= MAX_PROBLEMS
        else ""
    )
    if foreign:
        return (
            "other_municipality",
            f"the file holds residents of {', '.join(sorted(foreign))}, and a municipality "
            f"pushes only its own residents: remove those rows, fix any other listed, and push "
            f"again ({len(problems):,} problems in {lines:,} of {rows:,} rows){stopped}",
            problems,
        )
    return (
        "invalid_rows",
        f"{len(problems):,} problems in {lines:,} of {rows:,} rows, so nothing was published: "
        f"fix every row listed and push the file again{stopped}",
        problems,
    )


class _Undecodable(Exception):
    def __init__(self, problem: RowProblem) -> None:
        super().__init__(problem.reason)
        self.problem = problem


class _Lines:
    """The file's lines, decoded one at a time, so a decoding error names its line and a file
    with no line breaks cannot fill memory."""

    def __init__(self, raw: _Hashed, encoding: str) -> None:
        self.raw = raw
        self.encoding = encoding
        self.number = 0
        self._peeked: bytes | None = None

    def peek(self) -> bytes | None:
        """The first line that is not blank (the blank ones before it are consumed)."""
        while True:
            data = self._read()
            if not data:
                return None
            if data.removeprefix(_UTF8_BOM).strip():
                self._peeked = data
                return data

    def _read(self) -> bytes:
        data = self.raw.readline(MAX_LINE_BYTES + 1)
        if len(data) > MAX_LINE_BYTES:
            raise _Refusal(
                "unknown_format",
                f"line {self.number + 1} is longer than {MAX_LINE_BYTES:,} bytes; a resident-data "
                "file holds one row per line (is this the right file?)",
            )
        if data:
            self.number += 1
        return data

    def __iter__(self) -> Iterator[str]:
        while True:
            if self._peeked is not None:
                data, self._peeked = self._peeked, None
            else:
                data = self._read()
            if not data:
                return
            if self.number == 1 and self.encoding == "utf-8":
                data = data.removeprefix(_UTF8_BOM)
            try:
                yield data.decode(self.encoding)
            except UnicodeDecodeError as error:
                raise _Undecodable(
                    RowProblem(
                        line=self.number,
                        field="(line)",
                        value=data[max(0, error.start - 8) : error.end + 8].hex(" "),
                        reason=f"byte {error.start + 1} of the line is not {self.encoding}",
                    )
                ) from None


def _encoding_message(path: Path, encoding: str, error: _Undecodable) -> str:
    message = f"line {error.problem.line} is not valid {encoding}: save the file as {encoding}"
    if encoding != "cp932" and _decodes_as(path, "cp932"):
        message += ", or, since it reads as Shift_JIS, pass --encoding cp932"
    return message


def _decodes_as(path: Path, encoding: str, sample: int = 4 << 20) -> bool:
    decoder = codecs.getincrementaldecoder(encoding)()
    try:
        with path.open("rb") as data:
            decoder.decode(data.read(sample))
    except UnicodeDecodeError:
        return False
    return True


def _csv_records(
    lines: _Lines, problems: list[RowProblem]
) -> Iterator[tuple[int, dict[str, Any] | RowProblem]]:
    """The rows under the header, as column → text; the header's own problems go to
    ``problems`` (they are no row's)."""
    reader = csv.reader(iter(lines))
    try:
        header = next(reader)
    except csv.Error as error:
        raise _Refusal("unknown_format", f"the header line is not CSV: {error}") from None
    header_line = lines.number
    columns = [name.strip() for name in header]
    missing = [name for name in REQUIRED_COLUMNS if name not in columns]
    if missing:
        raise _Refusal(
            "missing_columns",
            f"the header (line {header_line}) lacks the required column"
            f"{'s' if len(missing) > 1 else ''} {', '.join(missing)}; the first line names the "
            f"columns, separated by commas, among: {', '.join(COLUMNS)}",
            [
                RowProblem(line=header_line, field=name, value="", reason="required column missing")
                for name in missing
            ],
        )
    for index, name in enumerate(columns):
        if name not in COLUMNS:
            reason = "unknown column; the columns are: " + ", ".join(COLUMNS)
        elif name in columns[:index]:
            reason = "column named twice"
        else:
            continue
        problems.append(RowProblem(line=header_line, field=name, value=name, reason=reason))
    known = [(index, name) for index, name in enumerate(columns) if name in COLUMNS]
    while True:
        start = lines.number + 1
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            yield start, RowProblem(line=start, field="(row)", value="", reason=f"not CSV: {error}")
            continue
        if not cells:
            continue
        if len(cells) != len(columns):
            yield (
                start,
                RowProblem(
                    line=start,
                    field="(row)",
                    value=f"{len(cells)} values",
                    reason=f"the header names {len(columns)} columns but this row has {len(cells)} "
                    "values (quote a value that contains a comma)",
                ),
            )
            continue
        yield start, {name: cells[index] for index, name in known}


def _jsonl_records(lines: _Lines) -> Iterator[tuple[int, dict[str, Any] | RowProblem]]:
    for text in lines:
        if not text.strip():
            continue
        line = lines.number
        try:
            value = orjson.loads(text)
        except orjson.JSONDecodeError as error:
            yield (
                line,
                RowProblem(
                    line=line,
                    field="(line)",
                    value=text.strip()[:MAX_VALUE_CHARS],
                    reason=f"not JSON ({error}); each line holds one JSON object",
                ),
            )
            continue
        if not isinstance(value, dict):
            yield (
                line,
                RowProblem(
                    line=line,
                    field="(line)",
                    value=text.strip()[:MAX_VALUE_CHARS],
                    reason=f"a JSON {type(value).__name__}, not an object; each line holds one "
                    'object such as {"municipality": "131016", "record": "resident", ...}',
                ),
            )
            continue
        yield line, value
