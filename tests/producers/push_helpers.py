"""What the municipal push tests share: a registered municipality, signed pushes, the log."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from pipeline.kafka import high_watermarks, partitions_of, reader
from pipeline.settings import Settings
from pipeline.signing import generate_signing_key, public_key_pem
from pipeline.topics import RESIDENT_CHANGES
from producers.municipal_push import PushReport, push_file, sign_push
from producers.registry import join
from schemas.codec import DecodedEvent, decode_event
from schemas.events.municipalities import MunicipalityProfile
from schemas.inputs.resident_diff import COLUMNS

CHIYODA = "131016"
YOKOHAMA = "141003"
SAMPLES = Path(__file__).resolve().parents[2] / "producers" / "samples"
SAMPLE_CSV = SAMPLES / "residents-131016-001.csv"
SAMPLE_JSONL = SAMPLES / "residents-131016-001.jsonl"


@dataclass(frozen=True)
class LoggedEvent:
    partition: int
    offset: int
    key: str
    raw: bytes
    event: DecodedEvent


async def register(
    settings: Settings, code: str = CHIYODA, *, uses_bcl: bool = True, with_key: bool = True
) -> Ed25519PrivateKey:
    """Join ``code`` to the registry with a new push key; returns its private half."""
    key = generate_signing_key()
    profile = MunicipalityProfile(
        name="千代田区" if code == CHIYODA else "横浜市",
        uses_bcl=uses_bcl,
        push_public_key=public_key_pem(key) if with_key else None,
    )
    await join(settings, code, date(2024, 1, 1), profile)
    return key


async def signed_push(
    settings: Settings,
    key: Ed25519PrivateKey | None,
    path: Path,
    sequence: int,
    *,
    municipality: str = CHIYODA,
    **options: Any,
) -> PushReport:
    signature = sign_push(key, municipality, sequence, path) if key else None
    return await push_file(
        settings, municipality, path, sequence=sequence, signature=signature, **options
    )


async def logged_events(settings: Settings) -> list[LoggedEvent]:
    """Everything on ``resident.changes``, by partition and offset."""
    async with reader(settings) as client:
        partitions = await partitions_of(client, [settings.topic(RESIDENT_CHANGES.name)])
        marks = await high_watermarks(client, partitions)
        pending = {tp for tp in partitions if marks[tp] > 0}
        for tp in partitions:
            client.seek(tp, 0)  # the watermark probe may have read past the first record
        found: list[LoggedEvent] = []
        while pending:
            fetched = await client.getmany(*pending, timeout_ms=1000)
            for tp, records in fetched.items():
                found.extend(
                    LoggedEvent(
                        r.partition,
                        r.offset,
                        (r.key or b"").decode(),
                        r.value or b"",
                        decode_event(r.value or b""),
                    )
                    for r in records
                    if r.offset < marks[tp]
                )
            for tp in list(pending):
                if await client.position(tp) >= marks[tp]:
                    pending.discard(tp)
    return sorted(found, key=lambda e: (e.partition, e.offset))


def sample_rows() -> list[dict[str, str]]:
    with SAMPLE_CSV.open(encoding="utf-8", newline="") as sample:
        return list(csv.DictReader(sample))


def write_csv(path: Path, rows: Iterable[Mapping[str, str]], *, encoding: str = "utf-8") -> Path:
    with path.open("w", encoding=encoding, newline="") as out:
        writer = csv.DictWriter(out, fieldnames=list(COLUMNS), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return path


def resident_row(code: str, **changes: str) -> dict[str, str]:
    """A valid move-in of resident ``code`` of Chiyoda, with ``changes`` applied."""
    row = {name: "" for name in COLUMNS}
    row.update(
        municipality=CHIYODA,
        record="resident",
        resident_code=code,
        household_number="900000000001",
        relationship="02",
        reason="move_in",
        effective_date="2024-04-01",
        name="試験 太郎",
        birth_date="1980-01-01",
        sex="male",
        address="東京都千代田区一番町1番1号",
        my_number="123456789018",
    )
    row.update(changes)
    return row
