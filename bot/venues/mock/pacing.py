"""The simulated-time `MockExchange` run at wall-clock pace (times `speed`).

The in-process venue (bot/venues/mock_inprocess.py) and the websocket server (server.py) both pump
the exchange the same way: advance it to "now", hand on what fell due, then sleep until the next
scheduled event or until a submitted command may have brought an answer forward.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Protocol

from bot.domain import Event

MAX_IDLE_S = 0.05  # wake at least this often so commands and faults take effect promptly


class Pumped(Protocol):
    """What the pacer drives: a `MockExchange`, or several of them (`bot.venues.mock.venues.MockVenues`)."""

    def advance(self, now_ns: int) -> list[Event]: ...
    def next_event_ns(self) -> int | None: ...


class Pacer:
    """The exchange's clock, `start_ns` + elapsed monotonic time × `speed`, and the pump's wait.

    A pump loops `for event in pacer.due(): ...` then `await pacer.sleep()`; whoever submits a
    command calls `wake()`, since its answer may fall due before the next scheduled event.
    The monotonic clock is injectable so tests never wait."""

    def __init__(
        self,
        exchange: Pumped,
        *,
        start_ns: int,
        speed: float = 1.0,
        monotonic_ns: Callable[[], int] = time.monotonic_ns,
    ) -> None:
        self.exchange = exchange
        self.start_ns = start_ns
        self.speed = speed
        self._monotonic_ns = monotonic_ns
        self._t0 = monotonic_ns()
        self._advanced_ns = start_ns  # the time the exchange was last advanced to
        self._wake = asyncio.Event()

    def now_ns(self) -> int:
        """Simulated time now."""
        return self.start_ns + int((self._monotonic_ns() - self._t0) * self.speed)

    def due(self) -> list[Event]:
        """Advance the exchange to now; the events delivered by then, in delivery order."""
        self._advanced_ns = now = self.now_ns()
        return self.exchange.advance(now)

    def wake(self) -> None:
        self._wake.set()

    async def pump(self, sink: Callable[[Event], None]) -> None:
        """Forever: hand on to `sink` what fell due, then wait (a venue's `stream`)."""
        while True:
            for event in self.due():
                sink(event)
            await self.sleep()

    async def sleep(self) -> None:
        """Until the next scheduled event (in wall time), a `wake()`, or MAX_IDLE_S, whichever is first."""
        pending = self.exchange.next_event_ns()
        wait_s = MAX_IDLE_S if pending is None else max(0.0, (pending - self._advanced_ns) / 1e9 / self.speed)
        self._wake.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout=min(wait_s, MAX_IDLE_S))
