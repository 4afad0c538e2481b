"""The simulated-time `MockExchange` run at wall-clock pace (times `speed`): two clocks.

`Pacer` (the websocket servers, server.py and dialects/server.py; the single-venue in-process venue):
simulated time *is* the wall clock times `speed`. The pump advances the exchange to "now", hands on
what fell due, then sleeps until the next scheduled event or until a submitted command may have
brought an answer forward. A process that falls behind sees simulated time race ahead of it: the
exchange's events pile up, arrive late and in lumps, and the bot's feeds look stale.

`ProgressPacer` (the in-process multi-venue mock, bot/venues/mock/venues.py): simulated time advances
by progress. It steps from one scheduled event (or timer tick, which it carries on the feed) to the
next, exactly as the offline driver does (`bot.sim.driver.run_simulation`), and after each step waits
until the runner has applied what it handed on and sent its answers (`SettlingSink.settled`). The
wall clock only holds it back: it never runs ahead of `speed` × wall time, and when the process is
behind, simulated time waits for the work. The same seed therefore gives the same run whatever the
machine's load.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Protocol

from bot.domain import Event, Timer
from bot.venues.base import SettlingSink

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
            async with asyncio.timeout(min(wait_s, MAX_IDLE_S)):
                await self._wake.wait()


class ProgressPacer:
    """Simulated time that advances by the bot's progress, paced to at most `speed` × wall time.

    One step: advance the exchange to its next scheduled time (or the next timer tick, whichever is
    first), hand on what fell due (a tick as a `Timer` event after the step's events), then wait
    until the sink has settled. The step times depend on the exchange's schedule and the commands
    it was sent, never on the wall clock, so a run is a function of its seed and the bot.
    Commands are submitted at `now_ns()`, the time of the step being answered. The monotonic clock
    is injectable (tests make the process look slow without being slow)."""

    def __init__(
        self,
        exchange: Pumped,
        *,
        start_ns: int,
        speed: float = 1.0,
        timer_ns: int = 100_000_000,
        monotonic_ns: Callable[[], int] = time.monotonic_ns,
    ) -> None:
        if timer_ns <= 0:
            raise ValueError("timer_ns must be positive")
        self.exchange = exchange
        self.speed = speed
        self.timer_ns = timer_ns
        self._monotonic_ns = monotonic_ns
        self._now_ns = start_ns
        self._next_timer_ns = start_ns + timer_ns
        self._anchor: tuple[int, int] | None = None  # (monotonic, simulated) when the pump started
        self._wake = asyncio.Event()
        self.steps = 0

    def now_ns(self) -> int:
        """Simulated time now: the time of the last step (it moves only between steps)."""
        return self._now_ns

    def wake(self) -> None:
        """A command was submitted: its answer may fall due before the step being waited for."""
        self._wake.set()

    def next_step_ns(self) -> int:
        pending = self.exchange.next_event_ns()
        tick = self._next_timer_ns
        return tick if pending is None else min(max(pending, self._now_ns), tick)

    def step(self) -> list[Event]:
        """Advance to the next step; its events in delivery order, then its timer tick if one fell due."""
        now = self._now_ns = self.next_step_ns()
        self.steps += 1
        events = self.exchange.advance(now)
        if now >= self._next_timer_ns:
            events.append(Timer(now, now))
            self._next_timer_ns += self.timer_ns
        return events

    async def pump(self, sink: Callable[[Event], None]) -> None:
        """Forever: wait until the wall clock allows the next step, hand on its events, wait until
        `sink` has settled (a plain callable has settled once it returns) (a venue's `stream`)."""
        self._anchor = (self._monotonic_ns(), self._now_ns)
        settling = isinstance(sink, SettlingSink)
        while True:
            await self._paced(self.next_step_ns)
            events = self.step()
            for event in events:
                sink(event)
            if events and settling:
                await sink.settled()  # type: ignore[attr-defined]
            else:
                await asyncio.sleep(0)  # nothing to wait for; let the other tasks run

    def _wall_allows_ns(self) -> int:
        """The latest simulated time `speed` × the wall time since the pump started allows."""
        assert self._anchor is not None
        mono0, sim0 = self._anchor
        return sim0 + int((self._monotonic_ns() - mono0) * self.speed)

    async def _paced(self, next_step: Callable[[], int]) -> None:
        """Sleep while the next step lies ahead of the wall-paced time (at once if the process is
        behind); a `wake()` recomputes the step, which a command may have brought forward."""
        while (ahead_ns := next_step() - self._wall_allows_ns()) > 0:
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(ahead_ns / 1e9 / self.speed, MAX_IDLE_S)):
                    await self._wake.wait()
