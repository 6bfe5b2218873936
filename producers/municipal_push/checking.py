"""Reading and checking the pushed file: its format, encoding and every row."""

from __future__ import annotations

import codecs
import csv
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from pipeline.sealed_files import SealedLines
from producers.municipal_push.batch import MAX_LINE, FileFormat, Refusal, RefusalReason
from producers.municipal_push.kept import Hashed
from schemas.codes import is_valid_municipality_code
from schemas.inputs.resident_diff import (
    COLUMNS,
    REQUIRED_COLUMNS,
    ResidentRow,
    RowProblem,
    SealRow,
    TaxRow,
    parse_row,
)

# A file wrong on every line would otherwise fill memory with its problems.
MAX_PROBLEMS = 100_000
MAX_LINE_BYTES = 1 << 20
MAX_VALUE_CHARS = 200

_UTF8_BOM = codecs.BOM_UTF8


def format_by_name(path: Path) -> FileFormat | None:
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
    raise Refusal(
        "unknown_format",
        "cannot tell whether the file is CSV or JSON Lines: name it .csv or .jsonl, or pass "
        "--format csv or --format jsonl",
    )


def check_file(
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

    Raises ``Refusal`` with every problem found (up to ``MAX_PROBLEMS``).
    """
    try:
        codec = codecs.lookup(encoding)
    except LookupError:
        raise Refusal(
            "bad_encoding",
            f"{encoding!r} is not an encoding Python knows; use utf-8 (the default) or cp932",
        ) from None
    problems: list[RowProblem] = []
    rows = 0
    foreign: set[str] = set()
    with path.open("rb") as file_read, spool.open("wb") as file:
        out = sealed.writer(file)
        raw = Hashed(file_read)
        lines = _Lines(raw, codec.name)
        first = lines.peek()
        if first is None:
            raise Refusal("empty_file", "the file is empty; push a file with at least one row")
        chosen = file_format or _sniff_format(first)
        records = _csv_records(lines, problems) if chosen == "csv" else _jsonl_records(lines)
        try:
            for line, values in records:
                if line > MAX_LINE:
                    raise Refusal(
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
            raise Refusal(
                "bad_encoding", _encoding_message(path, codec.name, error), [error.problem]
            ) from None
        if raw.rest_hashed() != sha:
            raise Refusal(
                "file_changed",
                f"{path} changed while it was read (its SHA-256 is no longer {sha}); push it "
                "again once nothing writes to it",
            )
    if problems:
        raise Refusal(*_invalid(problems, rows, foreign), rows=rows)
    if rows == 0:
        raise Refusal(
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

    def __init__(self, raw: Hashed, encoding: str) -> None:
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
            raise Refusal(
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
        raise Refusal("unknown_format", f"the header line is not CSV: {error}") from None
    header_line = lines.number
    columns = [name.strip() for name in header]
    missing = [name for name in REQUIRED_COLUMNS if name not in columns]
    if missing:
        raise Refusal(
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
