"""The embedded store's server (`bcl-store`) on what tansu relies on: conditional writes, and
listings of one folder that stay exact as objects come and go."""

from __future__ import annotations

import re
import threading
import urllib.error
import urllib.request
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path

import localbucket
import pytest

from infra.processes import pid_alive
from infra.storage import BUCKET, PROCESS_NAME, StorageHandle, start_storage, stop_storage

PARTITION = "clusters/east/topics/t/partitions/0000000000"
FOLDER = f"{PARTITION}/records"


@pytest.fixture
def store(scratch: Path) -> Iterator[StorageHandle]:
    handle = start_storage(scratch / "storage")
    try:
        yield handle
    finally:
        stop_storage(handle.pid)


def put(store: StorageHandle, key: str, body: bytes, **headers: str) -> tuple[int, str]:
    request = urllib.request.Request(
        f"{store.endpoint}/{BUCKET}/{key}", data=body, method="PUT", headers=headers
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:
            return answer.status, answer.headers["ETag"].strip('"')
    except urllib.error.HTTPError as error:
        return error.code, ""


def delete(store: StorageHandle, key: str) -> None:
    request = urllib.request.Request(f"{store.endpoint}/{BUCKET}/{key}", method="DELETE")
    with urllib.request.urlopen(request, timeout=5):
        pass


def listing(endpoint: str, prefix: str, **query: str) -> str:
    """The document of one ListObjectsV2 page of keys under ``prefix``."""
    arguments = "&".join(f"{k.replace('_', '-')}={v}" for k, v in query.items())
    url = f"{endpoint}/{BUCKET}?list-type=2&prefix={prefix}&{arguments}"
    with urllib.request.urlopen(url, timeout=5) as answer:
        return str(answer.read().decode())


def listed(store: StorageHandle, prefix: str, **query: str) -> tuple[list[str], str | None]:
    """One page of keys under ``prefix``, and the token of the next page."""
    text = listing(store.endpoint, prefix, **query)
    token = re.search(r"<NextContinuationToken>([^<]+)<", text)
    return re.findall(r"<Key>([^<]+)</Key>", text), token.group(1) if token else None


def test_it_serves_on_localhost_under_its_own_name(store: StorageHandle) -> None:
    assert pid_alive(store.pid, name=PROCESS_NAME)
    assert store.endpoint.startswith("http://127.0.0.1:")


def test_a_watermark_is_rewritten_only_on_the_etag_read(store: StorageHandle) -> None:
    key = f"{PARTITION}/watermark.json"
    status, first = put(store, key, b'{"high": 1}')
    assert status == 200
    assert put(store, key, b'{"high": 2}', **{"If-Match": f'"{first}"'})[0] == 200
    # Two writers read the same watermark; the second one's claim must fail.
    assert put(store, key, b'{"high": 2}', **{"If-Match": f'"{first}"'})[0] == 412
    assert put(store, f"{FOLDER}/absent.json", b"x", **{"If-Match": '"anything"'})[0] == 412


def test_a_batch_object_is_created_once(store: StorageHandle) -> None:
    key = f"{FOLDER}/00000000000000000000.batch"
    assert put(store, key, b"first", **{"If-None-Match": "*"})[0] == 200
    assert put(store, key, b"second", **{"If-None-Match": "*"})[0] == 412


def test_a_folder_listing_follows_writes_and_deletes_in_key_order(store: StorageHandle) -> None:
    names = [f"{offset:020d}.batch" for offset in (5, 0, 12, 3)]
    for name in names[:2]:
        put(store, f"{FOLDER}/{name}", b"x")
    assert listed(store, f"{FOLDER}/")[0] == [f"{FOLDER}/{n}" for n in sorted(names[:2])]
    for name in names[2:]:
        put(store, f"{FOLDER}/{name}", b"x")
    delete(store, f"{FOLDER}/{names[0]}")
    expected = [f"{FOLDER}/{n}" for n in sorted(names) if n != names[0]]
    assert listed(store, f"{FOLDER}/")[0] == expected

    first, token = listed(store, f"{FOLDER}/", max_keys="2")
    assert first == expected[:2]
    assert token is not None
    rest, token = listed(store, f"{FOLDER}/", max_keys="2", continuation_token=token)
    assert (rest, token) == (expected[2:], None)
    after, _ = listed(store, f"{FOLDER}/", start_after=expected[0])
    assert after == expected[1:]
    assert listed(store, f"{FOLDER}/0000000000000000001")[0] == [f"{FOLDER}/{names[2]}"]


def test_a_listing_over_folders_still_walks_them(store: StorageHandle) -> None:
    put(store, "clusters/east/topics/a/partitions/0000000000/watermark.json", b"{}")
    put(store, "clusters/east/topics/b/partitions/0000000000/watermark.json", b"{}")
    keys, _ = listed(store, "clusters/east/topics/")
    assert keys == [
        "clusters/east/topics/a/partitions/0000000000/watermark.json",
        "clusters/east/topics/b/partitions/0000000000/watermark.json",
    ]


@pytest.fixture
def plain_localbucket(store: StorageHandle, scratch: Path) -> Iterator[str]:
    """localbucket's own handler serving the same folder as ``store``: what S3 clients were
    answered before bcl-store kept its listings."""
    handler = type("Plain", (localbucket.S3Handler,), {"data_root": scratch / "storage/objects"})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def elements(document: str) -> list[tuple[str, str]]:
    return [(e.tag, (e.text or "").strip()) for e in ET.fromstring(document).iter()]


def test_a_kept_listing_answers_as_localbucket_does(
    store: StorageHandle, plain_localbucket: str
) -> None:
    for offset in (0, 3, 5, 12, 100, 101):
        put(store, f"{FOLDER}/{offset:020d}.batch", b"x" * offset)
    put(store, f"{FOLDER}/a&b<c>.json", b"{}")
    token = listed(store, f"{FOLDER}/", max_keys="3")[1]
    assert token is not None
    queries: list[dict[str, str]] = [
        {},
        {"max_keys": "3"},
        {"max_keys": "3", "continuation_token": token},
        {"max_keys": "0"},
        {"start_after": f"{FOLDER}/00000000000000000005.batch"},
        {"start_after": f"{FOLDER}/zzz"},
        {"start_after": "clusters/a"},
    ]
    for prefix in (f"{FOLDER}/", f"{FOLDER}/000000000000000001", f"{FOLDER}/a", f"{FOLDER}/q"):
        for query in queries:
            kept = listing(store.endpoint, prefix, **query)
            plain = listing(plain_localbucket, prefix, **query)
            assert elements(kept) == elements(plain), (prefix, query)
    for refused_query in ({"continuation_token": "bm9wZQ=="}, {"max_keys": "-1"}):
        for endpoint in (store.endpoint, plain_localbucket):
            with pytest.raises(urllib.error.HTTPError) as refused:
                listing(endpoint, f"{FOLDER}/", **refused_query)
            assert refused.value.code == 400, (endpoint, refused_query)
