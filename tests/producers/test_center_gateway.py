"""The center gateway's own connections: whatever it opened is closed, even when opening fails."""

from __future__ import annotations

from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaConnectionError

import producers.center as center
from pipeline.settings import Settings
from producers.center import CenterGateway

pytestmark = pytest.mark.integration


async def test_a_gateway_that_cannot_open_closes_what_it_had_opened(
    platform: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    started: list[AIOKafkaProducer[bytes, bytes]] = []
    start_producer = center.start_producer

    async def recorded(*args: Any, **kwargs: Any) -> AIOKafkaProducer[bytes, bytes]:
        client = await start_producer(*args, **kwargs)
        started.append(client)
        return client

    def unreachable(*args: Any, **kwargs: Any) -> None:
        raise KafkaConnectionError("the outcomes reader cannot reach the broker")

    monkeypatch.setattr(center, "start_producer", recorded)
    monkeypatch.setattr(center, "new_reader", unreachable)
    gateway = CenterGateway(platform)
    with pytest.raises(KafkaConnectionError):
        async with gateway:
            pytest.fail("the gateway opened without its outcomes reader")
    assert len(started) == 1
    assert started[0]._closed  # stopped: no "Unclosed AIOKafkaProducer" later
