"""The in-process mock exchange as an async `Venue`: the dry run's venue.

The synchronous `MockExchange` runs on simulated time; this adapter maps it onto the wall clock
(times `speed`), delivers the exchange's events as they fall due, and submits our commands at the
current simulated time. The clock is injectable so tests never wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Mapping
from dataclasses import replace

from bot.domain import Command, Instrument, OpenOrder, OrderFilled
from bot.venues.base import EventSink
from bot.venues.mock.exchange import MockExchange

_MAX_IDLE_S = 0.05  # wake at least this often so new commands' consequences are delivered promptly


class InProcessMockVenue:
    name = "mock"

    def __init__(
        self,
        exchange: MockExchange,
        *,
        speed: float = 1.0,
        start_ns: int = 0,
        monotonic_ns: Callable[[], int] = time.monotonic_ns,
    ) -> None:
        self.exchange = exchange
        self.speed = speed
        self.start_ns = start_ns
        self._monotonic_ns = monotonic_ns
        self._t0 = monotonic_ns()
        self._wake = asyncio.Event()

    @property
    def instruments(self) -> Mapping[str, Instrument]:
        return self.exchange.instruments

    def clock_ns(self) -> int:
        """Simulated time now: the exchange's clock, paced by the wall clock times `speed`."""
        return self.start_ns + int((self._monotonic_ns() - self._t0) * self.speed)

    async def connect(self) -> None:
        return None

    async def stream(self, sink: EventSink) -> None:
        while True:
            now = self.clock_ns()
            for event in self.exchange.advance(now):
                sink(event)
            pending = self.exchange.next_event_ns()
            wait_s = _MAX_IDLE_S if pending is None else max(0.0, (pending - now) / 1e9 / self.speed)
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=min(wait_s, _MAX_IDLE_S))

    async def execute(self, command: Command) -> None:
        self.exchange.submit(command, self.clock_ns())
        self._wake.set()  # the answer may fall due sooner than the next scheduled event

    async def open_orders(self) -> list[OpenOrder]:
        return self.exchange.open_orders()

    async def positions(self) -> dict[str, int]:
        return self.exchange.positions()

    async def fills_since(self, since_ns: int) -> list[OrderFilled]:
        """Our fills with `ts_venue_ns >= since_ns` from the exchange's fill log, received now."""
        now = self.clock_ns()
        return [replace(fill, ts_recv_ns=now) for fill in self.exchange.fills_since(since_ns)]

    async def close(self) -> None:
        return None
