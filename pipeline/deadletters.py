"""Dead letters: input the pipeline could not decode or validate, kept with the reason.

A bad message never stops a worker and is never dropped in silence. It is recorded in
``platform.dead_letters`` inside the batch transaction (so it is recorded exactly once with the
batch) and published to the ``dead-letters`` topic with its original bytes and coordinates.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer

from pipeline.database import Connection
from pipeline.projection import RawRecord
from pipeline.topics import DEAD_LETTERS


@dataclass(frozen=True, slots=True)
class DeadLetter:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: dict[str, str]
    reason: str
    detail: str
    projection: str

    @classmethod
    def of(cls, record: RawRecord, reason: str, detail: str, projection: str) -> DeadLetter:
        return cls(
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            key=record.key,
            value=record.value,
            headers=_headers(getattr(record, "headers", None)),
            reason=reason,
            detail=detail,
            projection=projection,
        )

    def message(self, cluster: str) -> bytes:
        return orjson.dumps(
            {
                "cluster": cluster,
                "topic": self.topic,
                "partition": self.partition,
                "offset": self.offset,
                "reason": self.reason,
                "detail": self.detail,
                "projection": self.projection,
                "headers": self.headers,
                "key_base64": _b64(self.key),
                "value_base64": _b64(self.value),
                "recorded_at": datetime.now(UTC).isoformat(),
            }
        )


class DeadLetterSink:
    def __init__(
        self, producer: AIOKafkaProducer[bytes, bytes] | None, topic: str = DEAD_LETTERS.name
    ) -> None:
        # Without a producer (offline tools) letters are still recorded in Postgres.
        self.producer = producer
        self.topic = topic

    async def record(
        self, connection: Connection, cluster: str, letters: Sequence[DeadLetter]
    ) -> None:
        inserted = await connection.fetch(
            "INSERT INTO platform.dead_letters (cluster, topic, partition, "
            '"offset", key, value, headers, reason, detail, projection) '
            "SELECT $1, x.topic, x.partition, x.off, x.key, x.value, x.headers::jsonb, "
            "x.reason, x.detail, x.projection "
            "FROM unnest($2::text[], $3::int[], $4::bigint[], $5::bytea[], $6::bytea[], "
            "$7::text[], $8::text[], $9::text[], $10::text[]) "
            "AS x(topic, partition, off, key, value, headers, reason, detail, projection) "
            'ON CONFLICT DO NOTHING RETURNING topic, partition, "offset"',
            cluster,
            [d.topic for d in letters],
            [d.partition for d in letters],
            [d.offset for d in letters],
            [d.key for d in letters],
            [d.value for d in letters],
            [orjson.dumps(d.headers).decode() for d in letters],
            [d.reason for d in letters],
            [d.detail for d in letters],
            [d.projection for d in letters],
        )
        if self.producer is None or not inserted:
            return
        # Publish before the batch commits: a crash in between republishes on redelivery, and the
        # coordinates inside each letter let readers of the topic drop the duplicate.
        new = {(r["topic"], r["partition"], r["offset"]) for r in inserted}
        for letter in letters:
            if (letter.topic, letter.partition, letter.offset) in new:
                await self.producer.send_and_wait(
                    self.topic, key=letter.key, value=letter.message(cluster)
                )


def _b64(raw: bytes | None) -> str | None:
    return None if raw is None else base64.b64encode(raw).decode("ascii")


def _headers(raw: Any) -> dict[str, str]:
    if not raw:
        return {}
    pairs: Any = raw.items() if isinstance(raw, Mapping) else raw
    return {
        str(k): v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for k, v in pairs
    }
