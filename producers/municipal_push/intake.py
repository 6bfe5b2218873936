"""One push, decided under the municipality's advisory lock: the entry points of the intake."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Literal

import asyncpg

from pipeline.catchup import refresh
from pipeline.database import Connection, connect
from pipeline.migrations import migrate
from pipeline.projection import load_projection
from pipeline.settings import Settings
from pipeline.signing import SigningKeyError, load_public_key, verify_digest
from producers.municipal_push.batch import (
    CHANGES_FILE,
    MAX_SEQUENCE,
    ROWS_FILE,
    Batch,
    FileFormat,
    HeldBatch,
    PushInterrupted,
    PushReport,
    Refusal,
    RefusalReason,
)
from producers.municipal_push.checking import check_file, format_by_name
from producers.municipal_push.kept import file_digest, file_size, too_large, write_report
from producers.municipal_push.ledger import ledger_exists, lock_key, next_expected
from producers.municipal_push.publishing import Publisher, open_publisher, sealed_rows
from producers.municipal_push.statement import SIGNATURE_SIZE, statement_digest
from producers.registry import registered_profile
from schemas.calendar import JST
from schemas.codes import is_valid_municipality_code

Progress = Callable[[int, int], None]
"""Called with (events published so far, events to publish in all) while publishing."""


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
    size = await asyncio.to_thread(file_size, path)
    if size is None:
        return refused(
            "file_missing",
            f"{path} does not exist or is not a file; give the path of the CSV or JSON Lines file",
        )
    if size > settings.push_max_bytes:
        return refused("file_too_large", too_large(path, size, settings.push_max_bytes))
    try:
        sha = await asyncio.to_thread(file_digest, path, settings.push_max_bytes)
    except OSError as error:
        # Unreadable (permissions, a vanished mount): the sender must fix access to it.
        if not error.filename or Path(error.filename) != path:
            raise
        return refused("file_missing", f"{path} cannot be read ({error.strerror}); check it")
    if sha is None:
        return refused("file_too_large", too_large(path, None, settings.push_max_bytes))
    async with connect(settings) as ledger:
        await migrate(ledger, "intake")
        lock = lock_key(municipality)
        await ledger.execute("SELECT pg_advisory_lock($1)", lock)
        try:
            intake = _Intake(settings, ledger, municipality, path, sha, full, as_of, progress)
            return await intake.take(
                sequence, signature, encoding, file_format or format_by_name(path)
            )
        finally:
            await ledger.execute("SELECT pg_advisory_unlock($1)", lock)


async def next_sequence(settings: Settings, municipality: str) -> int:
    """The batch sequence the intake expects next from ``municipality`` (1 for its first)."""
    async with connect(settings) as connection:
        if not await ledger_exists(connection):
            return 1
        return await next_expected(connection, municipality)


async def held_batches(settings: Settings) -> list[HeldBatch]:
    """Batches held for a gap, by municipality and sequence (for ``bcl status``)."""
    async with connect(settings) as connection:
        if not await ledger_exists(connection):
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
        expected = await next_expected(self.ledger, self.municipality)
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
        except Refusal as refusal:
            report = replace(
                report,
                reason=refusal.reason,
                message=refusal.message,
                problems=refusal.problems,
                rows=refusal.rows,
            )
            (folder / ROWS_FILE).unlink(missing_ok=True)
        if report.outcome != "already_accepted":
            await asyncio.to_thread(write_report, report)
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
            raise Refusal("sequence_conflict", await self._conflict(number, existing, expected))
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
            raise Refusal(
                "sequence_conflict",
                f"batch {number} is before the next expected batch {expected} of "
                f"{self.municipality}; push this file as batch {expected}",
            )

        purged = await self._purged_residents()
        rows = await asyncio.to_thread(
            check_file,
            self.path,
            self.sha,
            folder / ROWS_FILE,
            sealed_rows(self.settings, self.municipality, folder / ROWS_FILE),
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
        batch = Batch(
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
        async with open_publisher(self.settings) as publisher:
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
            raise Refusal(
                "unknown_municipality",
                f"municipality {self.municipality} is not registered; it joins with "
                f"`bcl municipality add {self.municipality}` before it can push",
            )
        if not profile.uses_bcl:
            raise Refusal(
                "not_on_bcl",
                f"{self.municipality} {profile.name} runs its own issuance server, so BCL holds "
                f"no replica of it; switch it with `bcl municipality update {self.municipality} "
                "--bcl` if it has moved to BCL",
            )
        if profile.push_public_key is None:
            raise Refusal(
                "no_public_key",
                f"{self.municipality} {profile.name} has no push public key registered; register "
                f"it with `bcl municipality update {self.municipality} --public-key FILE.pub.pem`",
            )
        try:
            public_key = load_public_key(profile.push_public_key)
        except SigningKeyError as error:
            raise Refusal(
                "no_public_key",
                f"the push key registered for {self.municipality} is unusable ({error}); "
                f"register an Ed25519 public key with `bcl municipality update "
                f"{self.municipality} --public-key FILE.pub.pem`",
            ) from None
        if signature is None:
            raise Refusal(
                "unsigned",
                f"the push is not signed: sign the push statement for {self.municipality} batch "
                f"{number} with the municipality's private key (`bcl push --key`, or openssl as "
                "in `bcl push --help`)",
            )
        digest = statement_digest(self.municipality, number, self.sha)
        if len(signature) != SIGNATURE_SIZE:
            raise Refusal(
                "bad_signature",
                f"the signature is {len(signature)} bytes; an Ed25519 signature is "
                f"{SIGNATURE_SIZE} raw bytes (as `openssl pkeyutl -sign -rawin` writes it)",
            )
        if not verify_digest(public_key, digest, signature):
            raise Refusal(
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

    async def _record(self, batch: Batch, status: Literal["held", "publishing"]) -> None:
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

    async def _publish(self, publisher: Publisher, batch: Batch) -> int:
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

    async def _release(self, publisher: Publisher, number: int) -> list[int]:
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
            batch = Batch(
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
                write_report,
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
