"""How a waited-on projection's live batches are cut (`ready_batches`)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from pipeline.worker import ready_batches


class Arrivals:
    """Events as a consumer delivers them: whatever has been sent, then a wait for more."""

    def __init__(self) -> None:
        self._queue: asyncio.Queue[int | None] = asyncio.Queue()
        self.failure: Exception | None = None

    def send(self, *events: int) -> None:
        for event in events:
            self._queue.put_nowait(event)

    def end(self) -> None:
        self._queue.put_nowait(None)

    async def __aiter__(self) -> AsyncIterator[int]:
        while (event := await self._queue.get()) is not None:
            yield event
        if self.failure is not None:
            raise self.failure


async def test_a_batch_starts_with_the_first_event_without_waiting_for_more() -> None:
    arrivals = Arrivals()
    batches = ready_batches(arrivals, 100)
    arrivals.send(1)
    assert await asyncio.wait_for(anext(batches), 1) == [1]
    await batches.aclose()


async def test_what_arrives_while_a_batch_is_applied_is_the_next_batch() -> None:
    arrivals = Arrivals()
    batches = ready_batches(arrivals, 100)
    arrivals.send(1)
    assert await anext(batches) == [1]
    # Applying batch [1]: meanwhile three more arrive, all of which wait for the next batch.
    arrivals.send(2, 3, 4)
    await asyncio.sleep(0.01)
    assert await anext(batches) == [2, 3, 4]
    await batches.aclose()


async def test_a_batch_holds_at_most_the_limit_and_the_rest_follow_in_order() -> None:
    arrivals = Arrivals()
    batches = ready_batches(arrivals, 3)
    arrivals.send(*range(8))
    arrivals.end()
    assert [batch async for batch in batches] == [[0, 1, 2], [3, 4, 5], [6, 7]]


async def test_events_that_end_with_an_error_raise_it_after_the_last_batch() -> None:
    arrivals = Arrivals()
    arrivals.failure = RuntimeError("the consumer stopped")
    batches = ready_batches(arrivals, 10)
    arrivals.send(1, 2)
    arrivals.end()
    assert await anext(batches) == [1, 2]
    with pytest.raises(RuntimeError, match="the consumer stopped"):
        await anext(batches)


async def test_closing_the_batches_stops_pulling_events() -> None:
    pulled: list[int] = []
    arrivals = Arrivals()

    async def counted() -> AsyncIterator[int]:
        async for event in arrivals:
            pulled.append(event)
            yield event

    batches = ready_batches(counted(), 2)
    arrivals.send(1)
    assert await anext(batches) == [1]
    await batches.aclose()
    arrivals.send(2, 3)
    await asyncio.sleep(0.01)
    assert pulled == [1]
