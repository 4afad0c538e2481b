"""The in-process mock venue: paced by an injected clock, so the test moves time instead of waiting."""

from __future__ import annotations

import asyncio
import contextlib

from conftest import wait_for_event

from bot.domain import BookSnapshot, Event, OrderAccepted, OrderFilled, OrderType, PlaceOrder, Side
from bot.venues.mock import MockExchange
from bot.venues.mock.presets import quiet_config
from bot.venues.mock_inprocess import InProcessMockVenue

SPOT = "TOKEN/USDT"
MS = 1_000_000


async def test_in_process_venue_follows_the_injected_clock() -> None:
    fake_ns = [0]
    reads = [0]

    def clock() -> int:
        reads[0] += 1
        return fake_ns[0]

    async def loop_has_run() -> None:
        """Wait until the venue has read the clock twice more: it has looked at the current time."""
        target = reads[0] + 2
        async with asyncio.timeout(5):
            while reads[0] < target:
                await asyncio.sleep(0.001)

    exchange = MockExchange(quiet_config())
    venue = InProcessMockVenue(exchange, speed=1.0, monotonic_ns=clock)
    await venue.connect()
    events: list[Event] = []
    task = asyncio.create_task(venue.stream(events.append))
    try:
        await loop_has_run()
        assert events == []  # simulated time has not moved: nothing is due yet
        fake_ns[0] = 50 * MS
        snap = await wait_for_event(events, lambda e: isinstance(e, BookSnapshot) and e.symbol == SPOT)
        assert isinstance(snap, BookSnapshot)
        ask = snap.asks[0][0]
        await venue.execute(PlaceOrder(SPOT, "t", Side.BUY, ask, 10, OrderType.IOC, post_only=False))
        await loop_has_run()
        assert not [e for e in events if isinstance(e, OrderAccepted)]  # 15 ms of latency not yet elapsed
        fake_ns[0] = 100 * MS
        fill = await wait_for_event(events, lambda e: isinstance(e, OrderFilled))
        assert isinstance(fill, OrderFilled) and fill.size_lots == 10
        assert await venue.positions() == {SPOT: 10, "TOKEN/USDT:USDT": 0}
        assert await venue.open_orders() == []
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
