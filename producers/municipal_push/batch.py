"""A push batch and what the intake answers of it: its numbering, its outcomes and refusals."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any, Literal, get_args

from schemas.events.residents import (
    PersonalData,
    TaxAmounts,
)
from schemas.inputs.resident_diff import (
    RowProblem,
)

# Envelope sequence = batch * LINES_PER_BATCH + line; the last slot of a batch is its receipt.
LINES_PER_BATCH = 10_000_000
RECEIPT_LINE = LINES_PER_BATCH - 1
MAX_LINE = RECEIPT_LINE - 1
# The ledger's sequence column is a Postgres int.
MAX_SEQUENCE = 2**31 - 1

# A batch's canonical rows, and a full snapshot's differences from the replica, wait sealed in
# its kept folder until they are published.
ROWS_FILE = "rows.jsonl"
CHANGES_FILE = "changes.jsonl"

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

# The fields of a row that are personal data: sealed on the log, withheld from a stored report.
PERSONAL_FIELDS = tuple(PersonalData.model_fields)
AMOUNT_FIELDS = tuple(TaxAmounts.model_fields)


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


class Refusal(Exception):
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
class Batch:
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
