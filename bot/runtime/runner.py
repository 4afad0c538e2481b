"""The live runner: one TaskGroup, one writer.

    venue.stream ──events──▶ queue ──▶ engine.apply (every event, in order)
    timer ─────────Timer──▶   │        engine.requote (once per drained batch: book updates conflate)
    signals / duration ─STOP─▶│        ──commands──▶ venue.execute

Fills and acks are never dropped: every event reaches `engine.apply`; only the quoting work is
conflated. On SIGINT/SIGTERM, the duration, or a fatal venue error the runner cancels every open
order (sending the cancels and waiting for their reports both within `cancel_timeout_s`, stragglers
logged), stops the feed, closes the venue (within `close_timeout_s`), logs `session.summary`, and
returns. A feed that takes longer than `close_timeout_s` to stop is logged as `shutdown.slow` with the
stacks of the tasks still running: a shutdown that hangs says where.

The duration is measured on the runner's clock (`clock_ns`): `duration_s × clock_speed` of it, so
a mock at `speed` runs the same simulated length however fast the machine gets through it. A venue
on simulated time that advances by progress (`ticks_in_feed`, the multi-venue mock) carries the
timer ticks on its feed and waits, after each step, until the runner has applied the step's events
and sent its commands (`Inbox.settled`): the runner then runs no wall timer, and each batch is one
step of the simulation, as in the offline driver.
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
from bot.venues.base import Venue, ticks_in_feed


class Observer(Protocol):
    """Side outputs (ledger, metrics): called from the runner's task, must not block for long."""

    def on_event(self, event: Event, now_ns: int) -> None: ...
    def on_command(self, command: Command, now_ns: int) -> None: ...
    def on_batch(self, engine: Any, now_ns: int, tick_to_quote_us: float) -> None: ...
    def close(self) -> None: ...


class _Stop:
    def __init__(self, reason: str) -> None:
        self.reason = reason


class Inbox:
    """The runner's queue as the venue's sink (`bot.venues.base.SettlingSink`): `settled()` returns
    once every item put so far has been applied and its batch's commands sent (the runner marks an
    item done after that: `asyncio.Queue.join`)."""

    def __init__(self, queue: asyncio.Queue[Event | _Stop]) -> None:
        self._queue = queue

    def __call__(self, event: Event, /) -> None:
        self._queue.put_nowait(event)

    async def settled(self) -> None:
        await self._queue.join()


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
        close_timeout_s: float = 5.0,
        observers: tuple[Observer, ...] = (),
        clock_speed: float = 1.0,
    ) -> None:
        """`clock_speed`: the clock's seconds per nominal wall second (the mock's `speed`; 1 for a
        real venue), which the duration is scaled by."""
        self.engine = engine
        self.venue = venue
        self.clock_ns = clock_ns
        self.timer_s = timer_ms / 1000.0
        self.cancel_timeout_s = cancel_timeout_s
        self.close_timeout_s = close_timeout_s
        self.observers = observers
        self.clock_speed = clock_speed
        self.stats = RunnerStats()
        self.log = get_logger("mmbot.runner").bind()  # bound once: the lazy proxy rebuilds its logger per call
        self._queue: asyncio.Queue[Event | _Stop] = asyncio.Queue()
        self._inbox = Inbox(self._queue)
        self._started_ns = 0
        self._duration_ns: int | None = None

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
        started_ns = self._started_ns = self.clock_ns()
        self._duration_ns = None if duration_s is None else int(duration_s * self.clock_speed * 1e9)
        self.log.info("session.started", venue=self.venue.name, duration_s=duration_s)
        slow_stop: asyncio.TimerHandle | None = None
        try:
            async with asyncio.TaskGroup() as tg:
                tasks = [tg.create_task(self._feed(), name="feed")]
                if not ticks_in_feed(self.venue):
                    tasks.append(tg.create_task(self._timer(), name="timer"))
                try:
                    await self._loop()
                finally:
                    await self._shutdown()
                    for task in tasks:
                        task.cancel()
                    # the TaskGroup now waits for the feed to end: say what is still running if it does not
                    slow_stop = loop.call_later(self.close_timeout_s, self._log_slow, "feed_stop")
        finally:
            if slow_stop is not None:
                slow_stop.cancel()
            if install_signals:
                for sig in (signal.SIGINT, signal.SIGTERM):
                    with contextlib.suppress(NotImplementedError, RuntimeError):
                        loop.remove_signal_handler(sig)
            await self._close_venue()
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
            await self.venue.stream(self._inbox)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a venue that gives up must stop the bot cleanly, not crash it
            self.log.error("feed.failed", error=repr(exc))
            self.request_stop("feed_failed")

    async def _timer(self) -> None:
        while True:
            await asyncio.sleep(self.timer_s)
            now = self.clock_ns()
            self._queue.put_nowait(Timer(now, now))

    async def _loop(self) -> None:
        queue = self._queue
        while True:
            item = await queue.get()
            batch = [item]
            while not queue.empty():
                batch.append(queue.get_nowait())
            stop = await self._process(batch)
            for _ in batch:
                queue.task_done()
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
            if stop is None and isinstance(item, Timer) and self._duration_over(now):
                stop = _Stop("duration")
        if stop is None:
            commands.extend(self.engine.requote(now))
        tick_to_quote_us = (time.perf_counter_ns() - t0) / 1000.0
        self.stats.batches += 1
        self._log_notes()
        await self._execute(commands, now)
        for observer in self.observers:
            observer.on_batch(self.engine, now, tick_to_quote_us)
        return stop

    def _duration_over(self, now_ns: int) -> bool:
        return self._duration_ns is not None and now_ns - self._started_ns >= self._duration_ns

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
        """Cancel every open order, keep applying venue events until none is left or time is up: the
        cancels themselves count against the time (a venue that does not answer them must not keep the
        bot from stopping; what stays open is logged as stragglers)."""
        deadline = time.monotonic() + self.cancel_timeout_s
        now = self.clock_ns()
        try:
            async with asyncio.timeout(self.cancel_timeout_s):
                await self._execute(self.engine.shutdown(now), now)
        except TimeoutError:
            self.log.warning("shutdown.slow", stage="cancels", waited_s=self.cancel_timeout_s)
        self._log_notes()
        while self.engine.open_order_count() > 0 and time.monotonic() < deadline:
            try:
                async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
                    item = await self._queue.get()
            except TimeoutError:
                break
            if not isinstance(item, _Stop):
                now = self.clock_ns()
                self.stats.events += 1
                for observer in self.observers:
                    observer.on_event(item, now)
                await self._execute(self.engine.apply(item, now), now)
                self._log_notes()
            self._queue.task_done()
        if self.engine.open_order_count() > 0:
            self.log.warning("shutdown.stragglers", open_orders=self.engine.open_order_count())

    async def _close_venue(self) -> None:
        """Close the venue's connections, within `close_timeout_s`: closing is best effort (the
        process is about to end) and must not keep `session.summary` from being written."""
        try:
            async with asyncio.timeout(self.close_timeout_s):
                await self.venue.close()
        except TimeoutError:
            self._log_slow("venue_close")

    def _log_slow(self, stage: str) -> None:
        """`shutdown.slow`: the tasks still running and where each one waits (innermost frames)."""
        current = asyncio.current_task()
        running = [task for task in asyncio.all_tasks() if not task.done() and task is not current]
        self.log.warning(
            "shutdown.slow",
            stage=stage,
            waited_s=self.close_timeout_s,
            tasks=len(running),
            waiting_in=sorted(where(task) for task in running)[:SLOW_TASKS_SHOWN],
        )


SLOW_TASKS_SHOWN = 40  # a multi-venue ccxt session runs a few dozen tasks; enough to find the stuck one


def where(task: asyncio.Task[Any]) -> str:
    """`name: file:line function < ...`, innermost first, along the task's await chain (`Task.get_stack`
    stops at the outermost coroutine, which says nothing about what it waits for)."""
    frames = []
    awaited: Any = task.get_coro()
    while awaited is not None:
        frame = getattr(awaited, "cr_frame", None) or getattr(awaited, "gi_frame", None)
        if frame is not None:
            frames.append(frame)
        awaited = getattr(awaited, "cr_await", None) or getattr(awaited, "gi_yieldfrom", None)
    chain = " < ".join(f"{_file(f.f_code.co_filename)}:{f.f_lineno} {f.f_code.co_name}" for f in frames[::-1][:3])
    return f"{task.get_name()}: {chain or '?'}"


def _file(path: str) -> str:
    return path.rsplit("/", 1)[-1]
