"""Red team: careless and hostile input, through the real edges and straight onto the log.

Every kind of bad input is refused with a reason the sender can act on; nothing accepted before
or after it is lost, and the worker keeps running, restarts and stays at lag 0.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from pipeline.database import connect
from pipeline.kafka import producer
from pipeline.projection import PROJECTION_MODULES, load_projection
from pipeline.proofs import EdgeKeys
from pipeline.publish import Outgoing, proven_by_their_edges, publish_many
from pipeline.settings import Settings
from pipeline.status import wait_until_applied
from pipeline.topics import ISSUANCE_REQUESTS
from producers.municipal_push import PushReport
from producers.workload import platform_sample
from schemas.codec import encode_event, encode_unproven, proof_suffix
from schemas.envelope import Envelope
from schemas.ids import new_event_id
from schemas.rights import edge_of
from tests.helpers import start_worker, wait_for_log_line
from tests.producers.push_helpers import (
    CHIYODA,
    SAMPLE_CSV,
    YOKOHAMA,
    register,
    sample_rows,
    signed_push,
    write_csv,
)

pytestmark = pytest.mark.integration

SAMPLE = 200


def _valid(settings: Settings, seed: int) -> list[Outgoing]:
    return list(proven_by_their_edges(settings, platform_sample(SAMPLE, seed=seed)))


def _json(envelope: Envelope, **changes: Any) -> bytes:
    data = orjson.loads(encode_event(envelope))
    data.update(changes)
    return orjson.dumps(data)


def _payload(envelope: Envelope, **changes: Any) -> bytes:
    return _json(envelope, payload={**envelope.payload, **changes})


def _proven(settings: Settings, envelope: Envelope, **payload: Any) -> bytes:
    """A valid event under a new id, changed in its payload and proven by its edge."""
    changed = envelope.model_copy(
        update={"event_id": new_event_id(), "payload": {**envelope.payload, **payload}}
    )
    return encode_event(EdgeKeys.of(settings).prove(edge_of(changed), changed))


def _proven_by_insider(settings: Settings, envelope: Envelope, **payload: Any) -> bytes:
    """As ``_proven``, by someone holding the KEK who skips the checks an edge makes before it
    proves: an event no edge would prove."""
    changed = envelope.model_copy(
        update={"event_id": new_event_id(), "payload": {**envelope.payload, **payload}}
    )
    body = encode_unproven(changed)
    return body[:-1] + proof_suffix(EdgeKeys.of(settings).proof_of_bytes(edge_of(changed), body))


# Each: what it is → (how to make its bytes from a valid proven request, the reason expected).
RAW: dict[str, tuple[Callable[[Settings, Envelope], bytes | None], str]] = {
    "no value at all": (lambda s, e: None, "empty_value"),
    "empty bytes": (lambda s, e: b"", "not_json"),
    "binary garbage": (lambda s, e: os.urandom(64) + b"\xff", "not_json"),
    "Latin-1, not UTF-8": (lambda s, e: '{"type":"café"}'.encode("latin-1"), "not_json"),
    "a JSON array": (lambda s, e: b"[1,2,3]", "invalid_envelope"),
    "a JSON string": (lambda s, e: b'"issuance.requested"', "invalid_envelope"),
    "JSON null": (lambda s, e: b"null", "invalid_envelope"),
    "an empty object": (lambda s, e: b"{}", "invalid_envelope"),
    "a lone surrogate": (
        lambda s, e: encode_event(e).replace(b'"store_id":"', b'"store_id":"\\ud800', 1),
        "not_json",
    ),
    "nesting 100,000 deep": (lambda s, e: b"[" * 100_000 + b"]" * 100_000, "not_json"),
    "truncated mid-event": (lambda s, e: encode_event(e)[:-40], "not_json"),
    "a UUIDv4 event id": (
        lambda s, e: _json(e, event_id="1b4e28ba-2fa1-41d2-883f-0016d3cca427"),
        "invalid_envelope",
    ),
    "a time with no zone": (
        lambda s, e: _json(e, occurred_at="2026-12-07T10:00:00"),
        "invalid_envelope",
    ),
    "a sequence past 64 bits": (
        lambda s, e: encode_event(e).replace(b'"sequence":null', b'"sequence":%d' % 2**64),
        "invalid_envelope",
    ),
    "a municipality code with a wrong check digit": (
        lambda s, e: _json(e, municipality="131017"),
        "invalid_envelope",
    ),
    "a source of no known form": (lambda s, e: _json(e, source="root"), "invalid_envelope"),
    "an origin that is no center": (lambda s, e: _json(e, origin="north"), "invalid_envelope"),
    "a field the envelope does not have": (lambda s, e: _json(e, admin=True), "invalid_envelope"),
    "a malformed proof": (lambda s, e: _json(e, proof="trust me"), "invalid_envelope"),
    "an unknown event type": (lambda s, e: _json(e, type="issuance.granted"), "unknown_type"),
    "a version from the future": (lambda s, e: _json(e, version=99), "unsupported_version"),
    "a payload of the wrong shape": (lambda s, e: _payload(e, copies="many"), "invalid_payload"),
    "a payload with a field too many": (lambda s, e: _payload(e, free=True), "invalid_payload"),
    "2 MB of event": (lambda s, e: _payload(e, store_id="x" * 2_000_000), "too_large"),
    "a 5 MB field in a proven event": (
        lambda s, e: _proven_by_insider(s, e, print_options={"note": "x" * 5_000_000}),
        "too_large",
    ),
    "no proof": (
        lambda s, e: encode_event(e.model_copy(update={"proof": None})),
        "unauthenticated",
    ),
    "a proof naming no edge": (
        lambda s, e: encode_event(e.model_copy(update={"proof": "root#1:" + "A" * 43})),
        "unauthenticated",
    ),
    "a proof of another event": (
        lambda s, e: encode_event(e.model_copy(update={"event_id": new_event_id()})),
        "unauthenticated",
    ),
    "a NUL byte in a proven event": (
        lambda s, e: _proven(s, e, print_options={"note": "a\u0000b"}),
        "refused_by_database",
    ),
}


async def _write_raw(settings: Settings, values: dict[str, bytes | None]) -> None:
    client: AIOKafkaProducer[bytes, bytes] = AIOKafkaProducer(
        bootstrap_servers=settings.bootstrap, max_request_size=8 << 20
    )
    await client.start()
    try:
        for name, value in values.items():
            await client.send_and_wait(
                settings.topic(ISSUANCE_REQUESTS.name), value, key=name.encode()
            )
    finally:
        await client.stop()


async def _letters(settings: Settings) -> dict[str, tuple[str, str]]:
    async with connect(settings) as connection:
        rows = await connection.fetch("SELECT key, reason, detail FROM platform.dead_letters")
    return {bytes(r["key"]).decode(): (r["reason"], r["detail"]) for r in rows}


async def _all_applied(settings: Settings) -> bool:
    projections = [load_projection(name, settings) for name in PROJECTION_MODULES]
    return await wait_until_applied(settings, projections, timeout=180)


async def test_every_kind_of_bad_record_on_the_log_is_refused_and_no_worker_stops(
    platform: Settings, tmp_path: Path
) -> None:
    assert len(RAW) >= 25
    before, after = _valid(platform, seed=9), _valid(platform, seed=10)
    template = next(o.envelope for o in before if o.envelope.type == "issuance.requested")
    log = tmp_path / "worker.log"
    worker = start_worker(platform, log)
    try:
        await wait_for_log_line(log, "caught up from the log")
        async with producer(platform) as client:
            await publish_many(platform, client, before)
        await _write_raw(
            platform, {name: make(platform, template) for name, (make, _) in RAW.items()}
        )
        async with producer(platform) as client:
            await publish_many(platform, client, after)
        assert await _all_applied(platform)
        assert worker.poll() is None, log.read_text()[-2000:]
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(60)

    letters = await _letters(platform)
    assert {name: reason for name, (reason, _) in letters.items()} == {
        name: reason for name, (_, reason) in RAW.items()
    }
    # Each says what is wrong, in words.
    for name, (_, detail) in letters.items():
        assert len(detail) > 10, (name, detail)
    async with connect(platform) as connection:
        journal = await connection.fetchval("SELECT count(*) FROM journal.events")
    assert journal >= 2 * SAMPLE  # every valid event, and the decisions made on them
    assert {o.envelope.event_id for o in before + after} <= await _journal_ids(platform)

    # The data that once kept the projections worker from starting does not now.
    restarted = start_worker(platform, log)
    try:
        await wait_for_log_line(log, "caught up from the log")
        assert restarted.poll() is None
        assert await _all_applied(platform)
    finally:
        os.killpg(restarted.pid, signal.SIGTERM)
        restarted.wait(60)


async def _journal_ids(settings: Settings) -> set[Any]:
    async with connect(settings) as connection:
        return {
            r["event_id"] for r in await connection.fetch("SELECT event_id FROM journal.events")
        }


def _rows(record: str = "resident", **changes: str) -> list[dict[str, str]]:
    rows = sample_rows()
    target = next(i for i, row in enumerate(rows) if row["record"] == record)
    rows[target] = {**rows[target], **changes}
    return rows


# Each: a file a municipality might push → (its bytes, the refusal reason expected).
PUSHES: dict[str, tuple[Callable[[Path], Path], str]] = {
    "a NUL byte in a name": (
        lambda folder: write_csv(folder / "nul.csv", _rows(name="神田\x00一郎")),
        "invalid_rows",
    ),
    "an escape sequence in an address": (
        lambda folder: write_csv(folder / "esc.csv", _rows(address="東京都\x1b[2J千代田区")),
        "invalid_rows",
    ),
    "a 5 MB name (a line longer than any row may be)": (
        lambda folder: write_csv(folder / "big.csv", _rows(name="あ" * 1_700_000)),
        "unknown_format",
    ),
    "a name of 101 characters": (
        lambda folder: write_csv(folder / "long.csv", _rows(name="あ" * 101)),
        "invalid_rows",
    ),
    "an income beyond any bigint": (
        lambda folder: write_csv(folder / "rich.csv", _rows("tax", income_yen=str(10**30))),
        "invalid_rows",
    ),
    "an impossible date": (
        lambda folder: write_csv(folder / "date.csv", _rows(effective_date="2026-02-30")),
        "invalid_rows",
    ),
    "another municipality's resident": (
        lambda folder: write_csv(folder / "foreign.csv", _rows(municipality=YOKOHAMA)),
        "other_municipality",
    ),
    "binary garbage": (
        lambda folder: _bytes(folder / "garbage.csv", os.urandom(4096)),
        "bad_encoding",
    ),
    "an empty file": (lambda folder: _bytes(folder / "empty.csv", b""), "empty_file"),
    "a surrogate smuggled in UTF-8": (
        lambda folder: _bytes(
            folder / "cesu.csv",
            SAMPLE_CSV.read_bytes().replace("神田".encode(), b"\xed\xa0\x80", 1),
        ),
        "bad_encoding",
    ),
}


def _bytes(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


async def test_every_kind_of_bad_push_is_refused_with_its_reason_and_publishes_nothing(
    platform: Settings, tmp_path: Path
) -> None:
    key = await register(platform)
    reports: dict[str, PushReport] = {}
    for name, (make, _) in PUSHES.items():
        reports[name] = await signed_push(platform, key, make(tmp_path), 1)
    assert {name: (r.outcome, r.reason) for name, r in reports.items()} == {
        name: ("refused", reason) for name, (_, reason) in PUSHES.items()
    }
    for name, report in reports.items():
        assert report.message, name
    # Nothing refused took a sequence; the good file is batch 1 still.
    accepted = await signed_push(platform, key, SAMPLE_CSV, 1)
    assert accepted.outcome == "accepted"
    assert CHIYODA in accepted.message
