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
   names, and each entry's XML is kept once rendered; both are kept current by this process's
   own writes and deletes, since it is the store's only writer.
"""

from __future__ import annotations

import argparse
import bisect
import logging
import os
import threading
import xml.etree.ElementTree as ET
from collections.abc import Callable
from http import HTTPStatus
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import IO, Any
from xml.sax.saxutils import escape

import localbucket

_WRITES = threading.Lock()


class _Folders:
    """The sorted file names of each folder without subfolders that has been listed."""

    def __init__(self) -> None:
        self._names: dict[Path, list[str]] = {}
        self._lock = threading.Lock()

    def names(self, folder: Path) -> list[str] | None:
        """A copy of ``folder``'s file names in S3 order; None when it has subfolders."""
        with self._lock:
            names = self._names.get(folder)
            if names is None:
                try:
                    entries = list(os.scandir(folder))
                except (FileNotFoundError, NotADirectoryError):
                    return []
                if any(entry.is_dir() for entry in entries):
                    return None
                names = sorted(
                    entry.name
                    for entry in entries
                    if not entry.name.startswith(localbucket.TEMP_PREFIX)
                )
                self._names[folder] = names
            return list(names)

    def added(self, path: Path) -> None:
        with self._lock:
            # A folder that now holds a new subfolder is no longer one this class answers for.
            for ancestor in path.parents[1:]:
                self._names.pop(ancestor, None)
            names = self._names.get(path.parent)
            if names is not None:
                at = bisect.bisect_left(names, path.name)
                if at == len(names) or names[at] != path.name:
                    names.insert(at, path.name)

    def removed(self, path: Path) -> None:
        with self._lock:
            # Deleting may also remove folders left empty: forget them all.
            for ancestor in path.parents:
                self._names.pop(ancestor, None)


_FOLDERS = _Folders()
# Each listed object's <Contents> element, rendered once, by the object's file.
_ENTRIES: dict[Path, bytes] = {}
_END_OF_LISTING = b"</ListBucketResult>"


class ConditionalHandler(localbucket.S3Handler):  # type: ignore[misc]
    # A response goes out as two writes, headers then body; with Nagle's algorithm the body
    # waited for the client's delayed ACK of the headers, 40 ms on every request.
    disable_nagle_algorithm = True
    # A listing's entries, between _add_list_entries and _send_xml of one request.
    listed_entries: list[bytes] | None = None

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
            _ENTRIES.pop(target, None)
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
            _ENTRIES.pop(target, None)
        self._send(HTTPStatus.NO_CONTENT)

    def _list_entries(
        self,
        bucket_dir: Path,
        prefix: str,
        delimiter: str,
        marker: str,
        marker_is_prefix: bool,
        max_keys: int,
    ) -> tuple[list[tuple[str, Path]], list[str], bool, str]:
        folder_key, _, name_prefix = prefix.rpartition("/")
        parts = folder_key.split("/")
        names = (
            None
            if delimiter or marker_is_prefix or any(p in ("", ".", "..") for p in parts)
            else _FOLDERS.names(bucket_dir.joinpath(*parts))
        )
        if names is None:
            listed: tuple[list[tuple[str, Path]], list[str], bool, str] = super()._list_entries(
                bucket_dir, prefix, delimiter, marker, marker_is_prefix, max_keys
            )
            return listed
        base = folder_key + "/"
        start = bisect.bisect_left(names, name_prefix)
        if marker.startswith(base):
            start = max(start, bisect.bisect_right(names, marker[len(base) :]))
        elif marker > base:
            start = len(names)
        contents: list[tuple[str, Path]] = []
        truncated = False
        for name in names[start:]:
            if not name.startswith(name_prefix):
                break
            if len(contents) >= max_keys:
                truncated = max_keys > 0
                break
            contents.append((base + name, bucket_dir.joinpath(*parts, name)))
        last_entry = "K:" + contents[-1][0] if contents else ""
        return contents, [], truncated, last_entry

    def _add_list_entries(
        self,
        root: ET.Element,
        contents: list[tuple[str, Path]],
        common_prefixes: list[str],
        encode: Callable[[str], str],
    ) -> None:
        if common_prefixes or self.query.get("encoding-type") == "url":
            super()._add_list_entries(root, contents, common_prefixes, encode)
            return
        # Rendered into the document by _send_xml, from the kept entries.
        self.listed_entries = [self._entry(key, path) for key, path in contents]

    def _entry(self, key: str, path: Path) -> bytes:
        found = _ENTRIES.get(path)
        if found is None:
            stat = path.stat()
            found = (
                f"<Contents><Key>{escape(key)}</Key>"
                f"<LastModified>{localbucket.iso_timestamp(stat.st_mtime)}</LastModified>"
                f'<ETag>"{localbucket.object_etag(path)}"</ETag>'
                f"<Size>{stat.st_size}</Size><StorageClass>STANDARD</StorageClass></Contents>"
            ).encode()
            _ENTRIES[path] = found
        return found

    def _send_xml(self, root: ET.Element) -> None:
        entries = self.listed_entries
        if entries is None:
            super()._send_xml(root)
            return
        self.listed_entries = None
        document = ET.tostring(root, encoding="UTF-8", xml_declaration=True)
        if document.endswith(_END_OF_LISTING):
            body = document[: -len(_END_OF_LISTING)] + b"".join(entries) + _END_OF_LISTING
        else:  # an empty root element, written <ListBucketResult ... />
            body = document[:-2] + b">" + b"".join(entries) + _END_OF_LISTING
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
