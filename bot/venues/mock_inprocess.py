"""The in-process mock exchange as an async `Venue`: the dry run's venue.

The synchronous `MockExchange` runs on simulated time; this adapter maps it onto the wall clock
(times `speed`), delivers the exchange's events as they fall due, and submits our commands at the
current simulated time. The clock is injectable so tests never wait.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import replace

from bot.domain import Command, Instrument, OpenOrder, OrderFilled
from bot.venues.base import EventSink
from bot.venues.mock.exchange import MockExchange
from bot.venues.mock.pacing import Pacer


class InProcessMockVenue:
    name = "mock"
    starts_empty = True  # a new exchange every run: the ledger's earlier runs say nothing about it

    def __init__(
        self,
        exchange: MockExchange,
        *,
        speed: float = 1.0,
        start_ns: int = 0,
        monotonic_ns: Callable[[], int] = time.monotonic_ns,
    ) -> None:
        self.exchange = exchange
        self.fill_session = f"mock:{uuid.uuid4().hex[:12]}"  # a new exchange numbers its fills from F1 again
        self._pacer = Pacer(exchange, start_ns=start_ns, speed=speed, monotonic_ns=monotonic_ns)

    @property
    def instruments(self) -> Mapping[str, Instrument]:
        return self.exchange.instruments

    def clock_ns(self) -> int:
        """Simulated time now: the exchange's clock, paced by the wall clock times `speed`."""
        return self._pacer.now_ns()

    async def connect(self) -> None:
        return None

    async def stream(self, sink: EventSink) -> None:
        await self._pacer.pump(sink)

    async def execute(self, command: Command) -> None:
        self.exchange.submit(command, self.clock_ns())
        self._pacer.wake()  # the answer may fall due sooner than the next scheduled event

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
