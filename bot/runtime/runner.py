"""The live runner: one TaskGroup, one writer.

    venue.stream ──events──▶ queue ──▶ engine.apply (every event, in order)
    timer ─────────Timer──▶   │        engine.requote (once per drained batch: book updates conflate)
    signals / duration ─STOP─▶│        ──commands──▶ venue.execute

Fills and acks are never dropped: every event reaches `engine.apply`; only the quoting work is
conflated. On SIGINT/SIGTERM, the duration, or a fatal venue error the runner cancels every open
order (bounded by `cancel_timeout_s`, stragglers logged), logs `session.summary`, and returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from bot.core.engine import EngineLike
from bot.domain import Command, Event, Timer
from bot.logs import get_logger
from bot.venues.base import Venue


class Observer(Protocol):
    """Side outputs (ledger, metrics): called from the runner's task, must not block for long."""

    def on_event(self, event: Event, now_ns: int) -> None: ...
    def on_command(self, command: Command, now_ns: int) -> None: ...
    def on_batch(self, engine: Any, now_ns: int, tick_to_quote_us: float) -> None: ...
    def close(self) -> None: ...


class _Stop:
    def __init__(self, reason: str) -> None:
        self.reason = reason


@dataclass
class RunnerStats:
    events: int = 0
    batches: int = 0
    commands: int = 0
    execute_errors: int = 0
    stop_reason: str = ""
    stragglers: list[str] = field(default_factory=list)


class Runner:
    def __init__(
        self,
        engine: EngineLike,
        venue: Venue,
        *,
        clock_ns: Callable[[], int] = time.time_ns,
        timer_ms: int = 100,
        cancel_timeout_s: float = 5.0,
        observers: tuple[Observer, ...] = (),
    ) -> None:
        self.engine = engine
        self.venue = venue
        self.clock_ns = clock_ns
        self.timer_s = timer_ms / 1000.0
        self.cancel_timeout_s = cancel_timeout_s
        self.observers = observers
        self.stats = RunnerStats()
        self.log = get_logger("mmbot.runner").bind()  # bound once: the lazy proxy rebuilds its logger per call
        self._queue: asyncio.Queue[Event | _Stop] = asyncio.Queue()

    def request_stop(self, reason: str) -> None:
        """Thread-unsafe but loop-safe: called from signal handlers and tests."""
        self._queue.put_nowait(_Stop(reason))

    async def run(self, duration_s: float | None = None, install_signals: bool = True) -> dict[str, Any]:
        """Trade until stopped; the venue comes connected (the composition root connects it, so that a
        failure there is one line for the operator) and is closed here."""
        loop = asyncio.get_running_loop()
        if install_signals:
            for sig in (signal.SIGINT, signal.SIGTERM):
                with contextlib.suppress(NotImplementedError, RuntimeError):
                    loop.add_signal_handler(sig, self.request_stop, sig.name.lower())
        started = time.monotonic()
        started_ns = self.clock_ns()
        self.log.info("session.started", venue=self.venue.name, duration_s=duration_s)
        try:
            async with asyncio.TaskGroup() as tg:
                feed = tg.create_task(self._feed(), name="feed")
                timer = tg.create_task(self._timer(duration_s, started), name="timer")
                try:
                    await self._loop()
                finally:
                    await self._shutdown()
                    feed.cancel()
                    timer.cancel()
        finally:
            if install_signals:
                for sig in (signal.SIGINT, signal.SIGTERM):
                    with contextlib.suppress(NotImplementedError, RuntimeError):
                        loop.remove_signal_handler(sig)
            await self.venue.close()
            for observer in self.observers:
                observer.close()
        now = self.clock_ns()
        summary = self.engine.summary(now)
        summary["duration_s"] = round((now - started_ns) / 1e9, 3)
        summary["wall_s"] = round(time.monotonic() - started, 3)
        summary["events"] = self.stats.events
        summary["stop_reason"] = self.stats.stop_reason
        self.log.info("session.summary", **summary)
        return summary

    # -------------------------------------------------------------- tasks

    async def _feed(self) -> None:
        try:
            await self.venue.stream(self._queue.put_nowait)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a venue that gives up must stop the bot cleanly, not crash it
            self.log.error("feed.failed", error=repr(exc))
            self.request_stop("feed_failed")

    async def _timer(self, duration_s: float | None, started: float) -> None:
        while True:
            await asyncio.sleep(self.timer_s)
            now = self.clock_ns()
            self._queue.put_nowait(Timer(now, now))
            if duration_s is not None and time.monotonic() - started >= duration_s:
                self.request_stop("duration")
                return

    async def _loop(self) -> None:
        queue = self._queue
        while True:
            item = await queue.get()
            batch = [item]
            while not queue.empty():
                batch.append(queue.get_nowait())
            stop = await self._process(batch)
            if stop is not None:
                self.stats.stop_reason = stop.reason
                self.log.info("session.stopping", reason=stop.reason)
                return

    async def _process(self, batch: list[Event | _Stop]) -> _Stop | None:
        t0 = time.perf_counter_ns()
        now = self.clock_ns()
        commands: list[Command] = []
        stop: _Stop | None = None
        for item in batch:
            if isinstance(item, _Stop):
                stop = stop or item
                continue
            self.stats.events += 1
            for observer in self.observers:
                observer.on_event(item, now)
            commands.extend(self.engine.apply(item, now))
        if stop is None:
            commands.extend(self.engine.requote(now))
        tick_to_quote_us = (time.perf_counter_ns() - t0) / 1000.0
        self.stats.batches += 1
        self._log_notes()
        await self._execute(commands, now)
        for observer in self.observers:
            observer.on_batch(self.engine, now, tick_to_quote_us)
        return stop

    async def _execute(self, commands: list[Command], now: int) -> None:
        for command in commands:
            self.stats.commands += 1
            for observer in self.observers:
                observer.on_command(command, now)
            try:
                await self.venue.execute(command)
            except Exception as exc:  # adapters map venue refusals to events; this is transport trouble
                self.stats.execute_errors += 1
                self.log.warning("command.failed", command=type(command).__name__, error=repr(exc))

    def _log_notes(self) -> None:
        for name, fields in self.engine.drain_notes():
            self.log.info(name, **fields)

    async def _shutdown(self) -> None:
        """Cancel every open order, keep applying venue events until none is left or time is up."""
        now = self.clock_ns()
        await self._execute(self.engine.shutdown(now), now)
        self._log_notes()
        deadline = time.monotonic() + self.cancel_timeout_s
        while self.engine.open_order_count() > 0 and time.monotonic() < deadline:
            try:
                item = await asyncio.wait_for(self._queue.get(), timeout=max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                break
            if isinstance(item, _Stop):
                continue
            now = self.clock_ns()
            self.stats.events += 1
            for observer in self.observers:
                observer.on_event(item, now)
            await self._execute(self.engine.apply(item, now), now)
            self._log_notes()
        if self.engine.open_order_count() > 0:
            self.log.warning("shutdown.stragglers", open_orders=self.engine.open_order_count())
