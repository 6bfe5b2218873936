"""`bcl-store`: the embedded object store's server process, localbucket's S3 handler made safe to
hold tansu's log.

localbucket (PyPI) serves each bucket as a folder of plain files, writing every object to a
temporary file renamed into place. tansu's S3 engine needs two things more, added here:

1. ``If-Match`` on PutObject. tansu claims a partition's next offsets by rewriting the
   partition's watermark object on the ETag it read. localbucket ignores the condition, so two
   producers writing to one partition at once claimed the same offsets and one of them failed
   (aiokafka's ``UnknownError``), and a watermark could move back. The check and the rename are
   one step under one lock.
2. Flushing. The object's bytes are fsynced before the rename and its folder after, so what
   the broker acknowledged is on disk, and survives a power cut as well as a killed process.
3. Listing one folder. tansu lists a partition's `records/` folder on every fetch that has
   something to read; localbucket walked the whole bucket (every topic) for each page of every
   listing, and built each entry anew (a stat, an ETag, five XML elements: 18 µs). A listing
   whose prefix lies in a folder without subfolders is answered from that folder's sorted
   names and each entry's XML, rendered once; both are kept current by this process's own
   writes and deletes, since it is the store's only writer. Such a page is written as bytes
   joined from the kept entries: a page of 1,000 entries built through ElementTree and a
   ``Path`` per entry took 7 ms, most of a fetch's time in the store.
"""

from __future__ import annotations

import argparse
import base64
import bisect
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import IO, Any
from xml.sax.saxutils import escape

import localbucket

_WRITES = threading.Lock()


@dataclass
class _Folder:
    """A folder's file names in S3 order, and the XML of the entries listed so far by name."""

    names: list[str]
    rendered: dict[str, bytes] = field(default_factory=dict)


@dataclass(frozen=True)
class _Page:
    entries: list[bytes]
    last_key: str
    truncated: bool


class _Folders:
    """The folders without subfolders that have been listed."""

    def __init__(self) -> None:
        self._folders: dict[Path, _Folder] = {}
        self._lock = threading.Lock()

    def page(
        self, folder: Path, base: str, name_prefix: str, marker: str, max_keys: int
    ) -> _Page | None:
        """The entries of ``folder`` (keys ``base`` + name) whose names start with
        ``name_prefix``, after the key ``marker``, at most ``max_keys``; None when the folder
        has subfolders."""
        with self._lock:
            known = self._folders.get(folder)
            if known is None:
                known = self._read(folder)
                if known is None:
                    return None
            names = known.names
            start = bisect.bisect_left(names, name_prefix)
            if marker.startswith(base):
                start = max(start, bisect.bisect_right(names, marker[len(base) :]))
            elif marker > base:
                start = len(names)
            end = start
            while end < len(names) and end - start < max_keys:
                if not names[end].startswith(name_prefix):
                    break
                end += 1
            truncated = max_keys > 0 and end < len(names) and names[end].startswith(name_prefix)
            rendered = known.rendered
            entries = []
            for name in names[start:end]:
                entry = rendered.get(name)
                if entry is None:
                    entry = rendered[name] = _entry(base + name, folder / name)
                entries.append(entry)
            last_key = base + names[end - 1] if end > start else ""
            return _Page(entries, last_key, truncated)

    def _read(self, folder: Path) -> _Folder | None:
        try:
            entries = list(os.scandir(folder))
        except (FileNotFoundError, NotADirectoryError):
            return _Folder([])  # not kept: the folder may be created with subfolders
        if any(entry.is_dir() for entry in entries):
            return None
        names = sorted(e.name for e in entries if not e.name.startswith(localbucket.TEMP_PREFIX))
        known = self._folders[folder] = _Folder(names)
        return known

    def added(self, path: Path) -> None:
        with self._lock:
            # A folder that now holds a new subfolder is no longer one this class answers for.
            for ancestor in path.parents[1:]:
                self._folders.pop(ancestor, None)
            known = self._folders.get(path.parent)
            if known is not None:
                names = known.names
                at = bisect.bisect_left(names, path.name)
                if at == len(names) or names[at] != path.name:
                    names.insert(at, path.name)
                known.rendered.pop(path.name, None)

    def removed(self, path: Path) -> None:
        with self._lock:
            # Deleting may also remove folders left empty: forget them all.
            for ancestor in path.parents:
                self._folders.pop(ancestor, None)


def _entry(key: str, path: Path) -> bytes:
    """The ``<Contents>`` element of the object ``key`` kept at ``path``."""
    stat = path.stat()
    return (
        f"<Contents><Key>{escape(key)}</Key>"
        f"<LastModified>{localbucket.iso_timestamp(stat.st_mtime)}</LastModified>"
        f'<ETag>"{localbucket.object_etag(path)}"</ETag>'
        f"<Size>{stat.st_size}</Size><StorageClass>STANDARD</StorageClass></Contents>"
    ).encode()


_FOLDERS = _Folders()
_NAMESPACE = escape(localbucket.S3_NAMESPACE)
_END_OF_LISTING = b"</ListBucketResult>"


class ConditionalHandler(localbucket.S3Handler):  # type: ignore[misc]
    # A response goes out as two writes, headers then body; with Nagle's algorithm the body
    # waited for the client's delayed ACK of the headers, 40 ms on every request.
    disable_nagle_algorithm = True

    def _write_object(self, bucket: str, key: str, write: Callable[[IO[bytes]], str]) -> str:
        target: Path = self._object_path(bucket, key)
        expected = self.headers.get("If-Match")

        def flushed(file: IO[bytes]) -> str:
            etag = write(file)
            file.flush()
            os.fsync(file.fileno())
            return etag

        with _WRITES:
            if expected is not None and not (
                target.is_file()
                and localbucket.etag_matches(expected, localbucket.object_etag(target))
            ):
                raise self._precondition_failed_error()
            etag: str = super()._write_object(bucket, key, flushed)
            _FOLDERS.added(target)
        _sync_folder(target.parent)
        return etag

    def _delete_object(self, bucket: str, key: str) -> None:
        """localbucket's DeleteObject, answering only once the listings have forgotten the
        object: localbucket answers first, and a listing asked right after the answer could
        still name it."""
        target: Path = self._object_path(bucket, key)
        bucket_dir: Path = self._bucket_dir(bucket).resolve()
        with _WRITES:
            if target.is_file():
                target.unlink(missing_ok=True)
                parent = target.parent
                while parent != bucket_dir:  # folders left empty go too, as in localbucket
                    try:
                        parent.rmdir()
                    except OSError:
                        break
                    parent = parent.parent
            _FOLDERS.removed(target)
        self._send(HTTPStatus.NO_CONTENT)

    def _list_objects_v2(self, bucket: str) -> None:
        """A page of one folder's objects from the kept entries (``_Folders``); any other
        listing (a delimiter, URL-encoded keys, a folder with subfolders) as localbucket
        answers it."""
        query = self.query
        prefix = query.get("prefix", "")
        folder_key, _, name_prefix = prefix.rpartition("/")
        parts = folder_key.split("/")
        max_keys = self._max_keys()
        start_after = marker = query.get("start-after", "")
        token = query.get("continuation-token")
        if token is not None:
            try:
                decoded = base64.urlsafe_b64decode(token.encode()).decode()
            except ValueError:
                decoded = ""
            marker = decoded[2:] if decoded.startswith("K:") else ""
        page = (
            None
            if query.get("delimiter")
            or query.get("encoding-type")
            or (token is not None and not marker)
            or any(part in ("", ".", "..") for part in parts)
            else _FOLDERS.page(
                self._bucket_dir(bucket).joinpath(*parts),
                folder_key + "/",
                name_prefix,
                marker,
                max_keys,
            )
        )
        if page is None:
            super()._list_objects_v2(bucket)
            return
        head = [
            f'<?xml version="1.0" encoding="UTF-8"?>\n<ListBucketResult xmlns="{_NAMESPACE}">'
            f"<Name>{escape(bucket)}</Name><Prefix>{escape(prefix)}</Prefix>"
            f"<MaxKeys>{max_keys}</MaxKeys><KeyCount>{len(page.entries)}</KeyCount>"
            f"<IsTruncated>{'true' if page.truncated else 'false'}</IsTruncated>"
        ]
        if token is not None:
            head.append(f"<ContinuationToken>{escape(token)}</ContinuationToken>")
        if page.truncated:
            following = base64.urlsafe_b64encode(f"K:{page.last_key}".encode()).decode()
            head.append(f"<NextContinuationToken>{following}</NextContinuationToken>")
        if start_after:
            head.append(f"<StartAfter>{escape(start_after)}</StartAfter>")
        body = b"".join([*(part.encode() for part in head), *page.entries, _END_OF_LISTING])
        self._send(HTTPStatus.OK, body, {"Content-Type": "application/xml"})

    def log_message(self, format: str, *args: Any) -> None:
        # One line per request would grow the log by the broker's every fetch and produce.
        pass


def _sync_folder(folder: Path) -> None:
    descriptor = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="bcl-store",
        description="The embedded S3 server holding the broker's log (started by `bcl up`).",
    )
    parser.add_argument("data_root", type=Path, help="the folder holding the buckets")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    arguments = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s [%(levelname)s] %(message)s")
    data_root = arguments.data_root.resolve()
    data_root.mkdir(parents=True, exist_ok=True)
    ConditionalHandler.data_root = data_root
    server = ThreadingHTTPServer((arguments.host, arguments.port), ConditionalHandler)
    print(f"bcl-store serving {data_root} on http://{arguments.host}:{arguments.port}", flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
