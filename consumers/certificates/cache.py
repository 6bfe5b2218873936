"""The validity cache: every certificate's state in memory, for checks at kiosk speed.

Like the local authentication platform that fetches CRLs in bulk for fast checks (DOMAIN §5), it
loads the ``certificates`` projection once (rows and tracked offsets from one snapshot, so the two
agree), then follows ``jpki.certificates`` from those offsets, applying the same lifecycle rules
as the projection. A serial it does not hold is looked up in the database, the single-check
fallback: a certificate issued a moment ago may have reached the projection first.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime

from aiokafka import TopicPartition

from consumers.certificates.authorities import TrustedAuthorities, checked_step
from consumers.certificates.projection import STATE_COLUMNS, load_states, state_of
from consumers.certificates.rules import (
    LIFECYCLE_EVENTS,
    CertificateState,
    Check,
    LifecycleEvent,
    check,
)
from pipeline.database import connect
from pipeline.kafka import partitions_of, reader
from pipeline.projection import ConsumedEvent
from pipeline.proofs import EdgeKeys
from pipeline.runner import decode_records
from pipeline.settings import Settings
from pipeline.topics import JPKI_CERTIFICATES

log = logging.getLogger("bcl.certificates.cache")


class CertificateCache:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.keys = EdgeKeys.of(settings)
        self.authorities = TrustedAuthorities.of(settings)
        self.states: dict[str, CertificateState] = {}
        self.positions: dict[TopicPartition, int] = {}  # next offset to read
        self.fallbacks = 0

    async def load(self) -> None:
        """Fill the cache from the projection, remembering where in the log it stands."""
        topic = self.settings.topic(JPKI_CERTIFICATES.name)
        async with (
            connect(self.settings) as connection,
            connection.transaction(isolation="repeatable_read", readonly=True),
        ):
            offsets = await connection.fetch(
                "SELECT partition, last_offset FROM certificates.projection_offsets "
                "WHERE cluster = $1 AND topic = $2",
                self.settings.center,
                topic,
            )
            # A cursor keeps a million rows from being held twice (records and states).
            states: dict[str, CertificateState] = {}
            async for row in connection.cursor(
                f"SELECT {', '.join(STATE_COLUMNS)} FROM certificates.certificates",
                prefetch=10_000,
            ):
                states[row["serial"]] = state_of(row)
        self.states = states
        self.positions = {
            TopicPartition(topic, r["partition"]): r["last_offset"] + 1 for r in offsets
        }

    def apply(self, events: list[ConsumedEvent]) -> None:
        for event in events:
            if not isinstance(event.payload, LIFECYCLE_EVENTS):
                continue
            payload: LifecycleEvent = event.payload
            result = checked_step(self.authorities, self.states.get(payload.serial), payload)
            if result.state is not None:
                self.states[payload.serial] = result.state

    def check(self, serial: str, at: datetime) -> Check:
        """The validity of ``serial`` at ``at`` from memory alone."""
        return check(self.states.get(serial), serial, at)

    async def check_or_fetch(self, serial: str, at: datetime) -> Check:
        """The validity from memory, or from the database for a serial memory does not hold."""
        state = self.states.get(serial)
        if state is None:
            self.fallbacks += 1
            async with connect(self.settings) as connection:
                await connection.execute("SET search_path TO certificates")
                stored = (await load_states(connection, [serial])).get(serial)
            if stored is not None:
                state = self.states.setdefault(serial, stored)
        return check(state, serial, at)

    async def follow(self, stop: asyncio.Event, *, poll_ms: int = 200) -> None:
        """Apply new lifecycle events from the log until ``stop`` is set."""
        topic = self.settings.topic(JPKI_CERTIFICATES.name)
        async with reader(self.settings) as client:
            partitions = await partitions_of(client, [topic])
            client.assign(partitions)
            for tp in partitions:
                client.seek(tp, self.positions.get(tp, 0))
            while not stop.is_set():
                fetched = await client.getmany(timeout_ms=poll_ms, max_records=10_000)
                for tp, records in fetched.items():
                    self.apply(
                        [
                            item
                            for item in decode_records(records, "certificate-cache", self.keys)
                            if isinstance(item, ConsumedEvent)
                        ]
                    )
                    if records:
                        self.positions[tp] = records[-1].offset + 1
