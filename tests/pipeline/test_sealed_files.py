"""Lines sealed at rest: they come back as written, and nothing else opens them."""

import os
from pathlib import Path

import pytest

from pipeline.sealed_files import SealedFileError, SealedLines

KEK = os.urandom(32)
LINES = [b'{"line":2,"row":{"name":"\xe7\xa5\x9e\xe7\x94\xb0 \xe4\xb8\x80\xe9\x83\x8e"}}\n', b"x\n"]


def written(path: Path, sealed: SealedLines) -> Path:
    with path.open("wb") as file:
        sealed.writer(file).writelines(LINES)
    return path


def test_lines_come_back_as_written_and_are_not_in_clear(tmp_path: Path) -> None:
    sealed = SealedLines(KEK, "push:131016:000001-abc")
    path = written(tmp_path / "rows.jsonl", sealed)
    assert list(sealed.lines(path)) == LINES
    assert "神田".encode() not in path.read_bytes()
    assert b"name" not in path.read_bytes()


@pytest.mark.parametrize(
    "other",
    [
        SealedLines(KEK, "push:131016:000002-abc"),
        SealedLines(os.urandom(32), "push:131016:000001-abc"),
    ],
    ids=["another file", "another KEK"],
)
def test_another_file_or_key_does_not_open_them(tmp_path: Path, other: SealedLines) -> None:
    path = written(tmp_path / "rows.jsonl", SealedLines(KEK, "push:131016:000001-abc"))
    with pytest.raises(SealedFileError, match="line 1: does not open"):
        list(other.lines(path))


def test_an_altered_line_is_refused_not_read(tmp_path: Path) -> None:
    sealed = SealedLines(KEK, "push:131016:000001-abc")
    path = written(tmp_path / "rows.jsonl", sealed)
    first, second = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(first + second[:10] + (b"A" if second[10:11] != b"A" else b"B") + second[11:])
    with pytest.raises(SealedFileError, match="line 2: does not open"):
        list(sealed.lines(path))


def test_lines_moved_within_the_file_are_refused(tmp_path: Path) -> None:
    sealed = SealedLines(KEK, "push:131016:000001-abc")
    path = written(tmp_path / "rows.jsonl", sealed)
    first, second = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(second + first)
    with pytest.raises(SealedFileError, match="line 1: does not open"):
        list(sealed.lines(path))
