"""Municipal pushes against the real broker and Postgres: batches, signatures, the ledger."""

from __future__ import annotations

import base64
import hashlib
from collections import Counter
from datetime import date
from pathlib import Path

import orjson
import pytest

from pipeline.catchup import refresh
from pipeline.database import connect, create_pool
from pipeline.projection import load_projection
from pipeline.settings import Settings
from pipeline.signing import generate_signing_key
from pipeline.vault import Vault, load_kek, open_sealed
from producers.municipal_push import (
    LINES_PER_BATCH,
    REFUSAL_REASONS,
    WITHHELD,
    held_batches,
    intake,
    next_sequence,
    publishing,
    push_file,
    push_statement,
    sign_push,
    statement_digest,
)
from schemas.events.residents import (
    BatchAccepted,
    ChangeReason,
    PersonalData,
    ResidentRecord,
    SealChanged,
    TaxRecorded,
)
from schemas.sealed import carried_by
from tests.producers.push_helpers import (
    CHIYODA,
    SAMPLE_CSV,
    SAMPLE_JSONL,
    YOKOHAMA,
    logged_events,
    register,
    resident_row,
    sample_rows,
    signed_push,
    write_csv,
)


def test_the_push_statement_binds_municipality_sequence_and_file() -> None:
    sha = "ab" * 32
    assert push_statement(CHIYODA, 7, sha) == f"bcl-push-v1\n131016\n7\n{sha}\n".encode()
    assert (
        statement_digest(CHIYODA, 7, sha)
        == hashlib.sha256(push_statement(CHIYODA, 7, sha)).digest()
    )
    assert statement_digest(CHIYODA, 7, sha) != statement_digest(CHIYODA, 8, sha)
    assert statement_digest(CHIYODA, 7, sha) != statement_digest(YOKOHAMA, 7, sha)


@pytest.fixture(params=["one process", "two processes"])
def processes(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Publish from one process, or from two however small the batch."""
    if request.param == "two processes":
        monkeypatch.setattr(publishing, "SECOND_PROCESS_FROM", 1)


@pytest.mark.usefixtures("processes")
async def test_an_accepted_push_publishes_each_row_then_its_receipt(platform: Settings) -> None:
    key = await register(platform)
    progress: list[tuple[int, int]] = []
    report = await signed_push(
        platform, key, SAMPLE_CSV, 1, progress=lambda *counts: progress.append(counts)
    )

    assert report.outcome == "accepted", report.message
    assert (report.reason, report.problems, report.released) == (None, [], [])
    rows = sample_rows()
    assert report.rows == report.events_published == len(rows) == 18
    assert progress[0] == (0, 18)
    assert progress[-1] == (18, 18)
    assert progress == sorted(progress)
    logged = await logged_events(platform)
    assert len(logged) == len(rows) + 1
    assert Counter(e.event.envelope.type for e in logged) == {
        "resident.registered": 6,
        "resident.changed": 3,
        "resident.removed": 2,
        "seal.changed": 3,
        "tax.recorded": 4,
        "resident.batch_accepted": 1,
    }
    by_line = {
        e.event.envelope.sequence - LINES_PER_BATCH: e  # type: ignore[operator]
        for e in logged
        if not isinstance(e.event.payload, BatchAccepted)
    }
    assert sorted(by_line) == list(range(2, len(rows) + 2))  # CSV line numbers, header is 1
    for line, row in zip(range(2, len(rows) + 2), rows, strict=True):
        logged_event = by_line[line]
        envelope = logged_event.event.envelope
        assert logged_event.key == f"{CHIYODA}:{row['resident_code']}"
        assert (envelope.origin, envelope.source, envelope.municipality) == (
            "east",
            f"municipality:{CHIYODA}",
            CHIYODA,
        )
        payload = logged_event.event.payload
        assert isinstance(payload, ResidentRecord | SealChanged | TaxRecorded)
        assert payload.pushed.batch == 1
        assert payload.pushed.line == line
        if isinstance(payload, ResidentRecord):
            assert payload.reason == row["reason"]
            assert payload.household_number == row["household_number"].ljust(15)
            assert envelope.occurred_at.isoformat() == f"{row['effective_date']}T00:00:00+09:00"

    # Personal data travels sealed only: no name, address or My Number in any message.
    for row in rows:
        for secret in (row["name"], row["address"], row["my_number"], row["income_yen"]):
            if secret:
                assert all(secret.encode() not in e.raw for e in logged), secret
    # ... and opens, with the resident's key, to exactly what the file said.
    carrier = by_line[2].event.envelope
    first = by_line[2].event.payload
    assert isinstance(first, ResidentRecord)
    pool = await create_pool(platform, max_size=1)
    try:
        vault = Vault(pool, load_kek(platform))
        keys = await vault.data_keys_for(None, [(CHIYODA, first.resident_code)], create=False)
    finally:
        await pool.close()
    data_key = keys[(CHIYODA, first.resident_code)]
    assert data_key is not None
    personal = PersonalData.model_validate(
        open_sealed(data_key, first.personal, carried_by(carrier, CHIYODA, first.resident_code))
    )
    assert (personal.name, personal.my_number) == (rows[0]["name"], rows[0]["my_number"])

    receipts = [e for e in logged if isinstance(e.event.payload, BatchAccepted)]
    assert len(receipts) == 1
    receipt = receipts[0]
    assert receipt.key == f"{CHIYODA}:batch"
    assert receipt.event.payload == BatchAccepted(
        municipality=CHIYODA,
        sequence=1,
        file_sha256=hashlib.sha256(SAMPLE_CSV.read_bytes()).hexdigest(),
        signature=base64.b64encode(sign_push(key, CHIYODA, 1, SAMPLE_CSV)).decode(),
        rows=18,
        events=18,
        full=False,
    )

    # The kept folder: the report alone. Neither the file nor its rows stay at rest once on the
    # log (sealed per resident there).
    assert report.kept_at is not None
    assert sorted(path.name for path in report.kept_at.iterdir()) == ["report.json"]
    assert orjson.loads((report.kept_at / "report.json").read_bytes())["outcome"] == "accepted"
    assert await next_sequence(platform, CHIYODA) == 2


async def test_json_lines_push_the_same_rows(platform: Settings) -> None:
    key = await register(platform)
    from_csv = await signed_push(platform, key, SAMPLE_CSV, 1)
    from_jsonl = await signed_push(platform, key, SAMPLE_JSONL, 2)
    assert (from_csv.outcome, from_jsonl.outcome) == ("accepted", "accepted")
    assert from_jsonl.events_published == from_csv.events_published == 18
    await refresh(platform, load_projection("replica", platform))
    async with connect(platform) as connection:
        canonical = [
            [
                tuple(row)
                for row in await connection.fetch(
                    "SELECT resident_code, reason, effective_date, household_number, "
                    "relationship, name, name_kana, birth_date, sex, address, previous_address, "
                    "head_of_household, resident_since, address_since, notified_on "
                    "FROM replica.changes WHERE batch = $1 ORDER BY line",
                    batch,
                )
            ]
            for batch in (1, 2)
        ]
    assert len(canonical[0]) == sum(row["record"] == "resident" for row in sample_rows())
    assert canonical[0] == canonical[1]


async def test_one_bad_row_refuses_the_whole_batch_with_every_problem(
    platform: Settings, tmp_path: Path
) -> None:
    key = await register(platform)
    rows = sample_rows()
    rows[1]["effective_date"] = "2024-02-30"  # line 3
    rows[3]["my_number"] = rows[3]["my_number"][:11] + str((int(rows[3]["my_number"][11]) + 1) % 10)
    rows[5]["municipality"] = "131017"  # line 7: a wrong check digit
    rows[5]["sex"] = "unknown"
    bad = write_csv(tmp_path / "bad.csv", rows)

    report = await signed_push(platform, key, bad, 1)

    assert (report.outcome, report.reason) == ("refused", "invalid_rows")
    assert report.rows == 18
    assert {(p.line, p.field) for p in report.problems} == {
        (3, "effective_date"),
        (5, "my_number"),
        (7, "municipality"),
        (7, "sex"),
    }
    assert all(p.reason for p in report.problems)
    assert next(p for p in report.problems if p.field == "municipality").value == "131017"
    assert "fix every row listed" in report.message
    assert await logged_events(platform) == []
    assert await next_sequence(platform, CHIYODA) == 1  # a refusal takes no sequence
    assert report.kept_at is not None
    assert sorted(path.name for path in report.kept_at.iterdir()) == ["report.json"]
    kept = orjson.loads((report.kept_at / "report.json").read_bytes())
    assert kept["reason"] == "invalid_rows"
    # The report at rest withholds what is personal (a My Number), not what the sender mistyped
    # in a code.
    assert {(p["field"], p["value"]) for p in kept["problems"]} == {
        ("effective_date", "2024-02-30"),
        ("my_number", WITHHELD),
        ("municipality", "131017"),
        ("sex", WITHHELD),
    }

    fixed = await signed_push(platform, key, SAMPLE_CSV, 1)
    assert fixed.outcome == "accepted"


async def test_pushing_an_accepted_batch_again_publishes_nothing(platform: Settings) -> None:
    key = await register(platform)
    first = await signed_push(platform, key, SAMPLE_CSV, 1)
    before = await logged_events(platform)

    again = await signed_push(platform, key, SAMPLE_CSV, 1)

    assert (first.outcome, again.outcome) == ("accepted", "already_accepted")
    assert again.events_published == 0
    assert await logged_events(platform) == before
    assert again.kept_at == first.kept_at
    assert again.kept_at is not None
    # The accepted batch's report stays what it was.
    assert orjson.loads((again.kept_at / "report.json").read_bytes())["outcome"] == "accepted"


async def test_another_file_under_an_accepted_sequence_is_refused(
    platform: Settings, tmp_path: Path
) -> None:
    key = await register(platform)
    await signed_push(platform, key, SAMPLE_CSV, 1)
    other = write_csv(tmp_path / "other.csv", [resident_row("13101699999")])

    report = await signed_push(platform, key, other, 1)

    assert (report.outcome, report.reason) == ("refused", "sequence_conflict")
    accepted_sha = hashlib.sha256(SAMPLE_CSV.read_bytes()).hexdigest()
    assert accepted_sha in report.message
    assert "push it as batch 2" in report.message
    assert len(await logged_events(platform)) == 19


async def test_a_batch_after_a_gap_is_held_until_the_gap_fills(
    platform: Settings, tmp_path: Path
) -> None:
    key = await register(platform)
    resident = "13101600077"
    second = write_csv(tmp_path / "2.csv", [resident_row(resident, address="一番町1番1号")])
    third = write_csv(
        tmp_path / "3.csv",
        [resident_row(resident, reason="move_within", address="二番町2番2号")],
    )
    assert (await signed_push(platform, key, SAMPLE_CSV, 1)).outcome == "accepted"

    held = await signed_push(platform, key, third, 3)

    assert held.outcome == "held"
    assert "batch 2" in held.message
    assert [(h.municipality, h.sequence, h.waiting_for) for h in await held_batches(platform)] == [
        (CHIYODA, 3, 2)
    ]
    assert len(await logged_events(platform)) == 19
    assert (await signed_push(platform, key, third, 3)).outcome == "held"  # again: still held

    filled = await signed_push(platform, key, second, 2)

    assert filled.outcome == "accepted"
    assert filled.released == [3]
    assert await held_batches(platform) == []
    assert await next_sequence(platform, CHIYODA) == 4
    logged = await logged_events(platform)
    theirs = [e for e in logged if e.key == f"{CHIYODA}:{resident}"]
    assert [e.event.envelope.sequence for e in theirs] == [
        2 * LINES_PER_BATCH + 2,
        3 * LINES_PER_BATCH + 2,
    ]
    assert theirs[0].offset < theirs[1].offset
    receipts = [e.event.payload for e in logged if isinstance(e.event.payload, BatchAccepted)]
    assert [r.sequence for r in receipts] == [1, 2, 3]
    assert held.kept_at is not None
    assert orjson.loads((held.kept_at / "report.json").read_bytes())["outcome"] == "accepted"


@pytest.mark.usefixtures("processes")
async def test_a_batch_interrupted_mid_publish_republishes_the_same_events(
    platform: Settings,
) -> None:
    key = await register(platform)
    await signed_push(platform, key, SAMPLE_CSV, 1)
    first_ids = [e.event.envelope.event_id for e in await logged_events(platform)]
    async with connect(platform) as connection:
        # As a crash between publishing and recording the acceptance leaves it.
        await connection.execute(
            "UPDATE intake.batches SET status = 'publishing', events = NULL, accepted_at = NULL"
        )

    again = await signed_push(platform, key, SAMPLE_CSV, 1)

    assert again.outcome == "accepted"
    logged = await logged_events(platform)
    assert len(logged) == 2 * len(first_ids)
    assert Counter(e.event.envelope.event_id for e in logged) == Counter(first_ids * 2)


async def test_unsigned_and_badly_signed_pushes_are_refused(platform: Settings) -> None:
    key = await register(platform)

    unsigned = await signed_push(platform, None, SAMPLE_CSV, 1)
    stranger = await signed_push(platform, generate_signing_key(), SAMPLE_CSV, 1)
    replayed = await push_file(
        platform,
        CHIYODA,
        SAMPLE_CSV,
        sequence=2,
        signature=sign_push(key, CHIYODA, 1, SAMPLE_CSV),
    )
    truncated = await push_file(
        platform,
        CHIYODA,
        SAMPLE_CSV,
        sequence=1,
        signature=sign_push(key, CHIYODA, 1, SAMPLE_CSV)[:40],
    )

    assert (unsigned.outcome, unsigned.reason) == ("refused", "unsigned")
    assert (stranger.outcome, stranger.reason) == ("refused", "bad_signature")
    assert (replayed.outcome, replayed.reason) == ("refused", "bad_signature")
    assert (truncated.outcome, truncated.reason) == ("refused", "bad_signature")
    assert "64" in truncated.message
    assert await logged_events(platform) == []


async def test_a_municipality_pushes_only_its_own_residents(
    platform: Settings, tmp_path: Path
) -> None:
    key = await register(platform)
    rows = [resident_row("13101600001"), resident_row("14100300002", municipality=YOKOHAMA)]
    mixed = write_csv(tmp_path / "mixed.csv", rows)

    report = await signed_push(platform, key, mixed, 1)

    assert (report.outcome, report.reason) == ("refused", "other_municipality")
    assert [(p.line, p.field, p.value) for p in report.problems] == [(3, "municipality", YOKOHAMA)]
    assert YOKOHAMA in report.message
    # Chiyoda's key does not sign for Yokohama either, registered or not.
    as_yokohama = await signed_push(platform, key, SAMPLE_CSV, 1, municipality=YOKOHAMA)
    assert (as_yokohama.outcome, as_yokohama.reason) == ("refused", "unknown_municipality")
    await register(platform, YOKOHAMA)
    as_yokohama = await signed_push(platform, key, SAMPLE_CSV, 1, municipality=YOKOHAMA)
    assert (as_yokohama.outcome, as_yokohama.reason) == ("refused", "bad_signature")
    assert await logged_events(platform) == []


async def test_a_municipality_must_be_on_bcl_with_a_push_key(platform: Settings) -> None:
    await register(platform, CHIYODA, uses_bcl=False)
    await register(platform, YOKOHAMA, with_key=False)
    own_server = await signed_push(platform, generate_signing_key(), SAMPLE_CSV, 1)
    keyless = await signed_push(
        platform, generate_signing_key(), SAMPLE_CSV, 1, municipality=YOKOHAMA
    )
    assert (own_server.reason, keyless.reason) == ("not_on_bcl", "no_public_key")
    assert "--public-key" in keyless.message


@pytest.mark.usefixtures("processes")
async def test_a_full_snapshot_publishes_only_its_differences(
    platform: Settings, tmp_path: Path
) -> None:
    key = await register(platform)
    register_rows = [
        resident_row(f"131016000{n:02d}", name=f"住民 {n}", my_number="123456789018")
        for n in range(1, 6)
    ]
    seal = {**{name: "" for name in register_rows[0]}, "municipality": CHIYODA, "record": "seal",
            "resident_code": "13101600001", "seal_number": "S-1", "seal_status": "registered",
            "effective_date": "2024-04-02"}  # fmt: skip
    tax = {**{name: "" for name in register_rows[0]}, "municipality": CHIYODA, "record": "tax",
           "resident_code": "13101600002", "fiscal_year": "2023", "income_yen": "100",
           "assessed_yen": "10", "paid_yen": "10"}  # fmt: skip
    first = write_csv(tmp_path / "register-1.csv", [*register_rows, seal, tax])
    initial = await signed_push(platform, key, first, 1, full=True)
    assert initial.outcome == "accepted", initial.message
    assert initial.events_published == 7  # an empty replica: everything differs

    snapshot = [dict(row) for row in register_rows if row["resident_code"] != "13101600004"]
    snapshot[1].update(
        reason="move_within", effective_date="2024-04-20", address="東京都千代田区二番町5番5号"
    )
    second = write_csv(tmp_path / "register-2.csv", [*snapshot, seal, tax])
    before = len(await logged_events(platform))

    report = await signed_push(platform, key, second, 2, full=True, as_of=date(2024, 5, 1))

    assert report.outcome == "accepted", report.message
    assert report.rows == 6
    assert report.events_published == 2
    new = (await logged_events(platform))[before:]
    changes = [e.event.payload for e in new if isinstance(e.event.payload, ResidentRecord)]
    assert sorted((c.resident_code, c.reason, c.effective_date) for c in changes) == [
        ("13101600002", ChangeReason.MOVE_WITHIN, date(2024, 4, 20)),
        ("13101600004", ChangeReason.EX_OFFICIO_REMOVAL, date(2024, 5, 1)),
    ]
    receipt = next(e.event.payload for e in new if isinstance(e.event.payload, BatchAccepted))
    assert (receipt.rows, receipt.events, receipt.full) == (6, 2, True)
    assert Counter(e.event.envelope.type for e in new) == {
        "resident.changed": 1,
        "resident.removed": 1,
        "resident.batch_accepted": 1,
    }


async def test_undated_facts_happened_when_the_batch_was_received(
    platform: Settings, tmp_path: Path
) -> None:
    key = await register(platform)
    blank = dict.fromkeys(resident_row("13101600001"), "")
    rows = [
        resident_row("13101600001", effective_date="2024-04-01"),
        resident_row("13101600001", reason="death", effective_date="", death_date_unknown="true"),
        {**blank, "municipality": CHIYODA, "record": "tax", "resident_code": "13101600001",
         "fiscal_year": "2023", "income_yen": "1", "assessed_yen": "0", "paid_yen": "0"},
    ]  # fmt: skip
    report = await signed_push(platform, key, write_csv(tmp_path / "d.csv", rows), 1)
    assert report.outcome == "accepted", report.message

    logged = await logged_events(platform)
    occurred = {e.event.envelope.type: e.event.envelope.occurred_at for e in logged}
    received = occurred["resident.batch_accepted"]
    assert occurred["resident.registered"].isoformat() == "2024-04-01T00:00:00+09:00"
    assert occurred["resident.removed"] == received
    assert occurred["tax.recorded"] == received
    death = next(e.event.payload for e in logged if e.event.envelope.type == "resident.removed")
    assert isinstance(death, ResidentRecord)
    assert (death.effective_date, death.death_date_unknown) == (None, True)


def test_the_refusal_reasons_are_the_documented_codes() -> None:
    assert set(REFUSAL_REASONS) == {
        "file_missing", "file_too_large", "file_changed", "empty_file", "bad_encoding",
        "unknown_format", "missing_columns", "invalid_rows", "other_municipality",
        "unknown_municipality", "not_on_bcl", "no_public_key", "unsigned", "bad_signature",
        "sequence_conflict", "bad_sequence",
    }  # fmt: skip


async def test_a_file_changed_between_its_digest_and_its_check_is_refused(
    platform: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No copy of a pushed file is kept, so it is read in place twice: a file that changes in
    between is refused, and nothing of either version is published."""
    key = await register(platform)
    pushed = tmp_path / "register.csv"
    pushed.write_bytes(SAMPLE_CSV.read_bytes())
    digest = intake.file_digest

    def then_changed(source: Path, limit: int) -> str | None:
        sha = digest(source, limit)
        source.write_bytes(source.read_bytes().replace("神田 一郎".encode(), "神田 二郎".encode()))
        return sha

    monkeypatch.setattr(intake, "file_digest", then_changed)
    report = await signed_push(platform, key, pushed, 1)
    assert (report.outcome, report.reason) == ("refused", "file_changed")
    assert "changed while it was read" in report.message
    assert await logged_events(platform) == []
    assert not list((platform.center_home / "pushes").rglob(".incoming"))


async def test_the_stored_report_withholds_whole_lines_that_did_not_parse(
    platform: Settings, tmp_path: Path
) -> None:
    key = await register(platform)
    lines = SAMPLE_JSONL.read_bytes().splitlines(keepends=True)
    broken = '{"name":"山田 花子","my_number":"123456789018",}\n'.encode()  # a trailing comma
    pushed = tmp_path / "broken.jsonl"
    pushed.write_bytes(broken + b"".join(lines[1:]))
    report = await signed_push(platform, key, pushed, 1)
    assert report.outcome == "refused"
    assert report.kept_at is not None
    assert any(p.field == "(line)" and "山田" in p.value for p in report.problems)
    kept = (report.kept_at / "report.json").read_bytes()
    assert "山田".encode() not in kept
    assert WITHHELD.encode() in kept
