"""The batch's kept folder: the file's digest and size, and the stored report without
personal values."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import IO

import orjson

from producers.municipal_push.batch import AMOUNT_FIELDS, PERSONAL_FIELDS, PushReport
from schemas.inputs.resident_diff import (
    COLUMNS,
)

REPORT_FILE = "report.json"

# The columns whose values a stored report may keep: codes, dates of changes, kinds. Any other
# (a name, an amount, a whole line that did not parse, an unknown column) is withheld.
_KEPT_FIELDS = frozenset(COLUMNS) - frozenset(PERSONAL_FIELDS + AMOUNT_FIELDS)
WITHHELD = "(personal data, not kept)"


def file_size(path: Path) -> int | None:
    return path.stat().st_size if path.is_file() else None


def file_digest(source: Path, limit: int) -> str | None:
    """The SHA-256 of the sender's file; None if it grew past ``limit`` meanwhile.

    No copy is made (it would hold the register in clear): the file is read again to be
    checked, hashed once more on the way, and refused if it changed in between
    (``check_file``), so what is validated and published is exactly what was signed.
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


class Hashed:
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


def write_report(report: PushReport) -> None:
    """Keep the report at rest, the values of personal fields withheld: the sender saw them
    when it pushed, and a file under ``$BCL_HOME`` is no place for names and My Numbers."""
    assert report.kept_at is not None
    kept = report.to_json()
    kept["problems"] = [
        problem if problem["field"] in _KEPT_FIELDS else {**problem, "value": WITHHELD}
        for problem in kept["problems"]
    ]
    (report.kept_at / REPORT_FILE).write_bytes(orjson.dumps(kept, option=orjson.OPT_INDENT_2))


def too_large(path: Path, size: int | None, limit: int) -> str:
    found = f" is {size:,} bytes" if size is not None else " grew while it was read and"
    return (
        f"{path}{found} exceeds the push limit of {limit:,} bytes; split it into smaller files "
        "and push them as consecutive batches"
    )
