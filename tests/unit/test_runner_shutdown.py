"""The runner always ends a session: cancels that get no answer, a feed that does not stop when told
to, and a venue whose close hangs are each bounded, and each is named in a `shutdown.slow` line.

The venue and the engine are small fakes: what is tested is the runner's shutdown sequence. The real
cause of the hang these guard against (a cancellation dropped by Python 3.11's `asyncio.wait_for`)
is tested on the ccxt venue itself, in test_ccxt_venue.py."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from conftest import LogSink, is_event

from bot.domain import CancelAll, Command, Event, Instrument
from bot.runtime.runner import Runner

SHORT_S = 0.05  # the bounds under test, kept short so the tests are quick


class Engine:
    """One open order, which a cancel report would close (none ever comes here)."""

    def __init__(self) -> None:
        self.open = 1

    def apply(self, event: Event, now_ns: int) -> list[Command]:
        return []

    def requote(self, now_ns: int) -> list[Command]:
        return []

    def shutdown(self, now_ns: int) -> list[Command]:
        return [CancelAll(None)]

    def drain_notes(self) -> list[Any]:
        return []

    def open_order_count(self) -> int:
        return self.open

    def summary(self, now_ns: int) -> dict[str, Any]:
        return {"open_orders": self.open}


class Venue:
    """`hang_cancels`: a cancel never gets an answer. `hang_close`: closing never returns.
    `keep_streaming`: the feed ignores its first cancellation (as a dropped cancel leaves it) and ends
    only when `release` is set."""

    name = "fake"
    instruments: dict[str, Instrument] = {}  # noqa: RUF012 - read-only in these tests

    def __init__(self, *, hang_cancels: bool = False, hang_close: bool = False, keep_streaming: bool = False) -> None:
        self.hang_cancels = hang_cancels
        self.hang_close = hang_close
        self.keep_streaming = keep_streaming
        self.release = asyncio.Event()
        self.closed = False

    async def connect(self) -> None: ...

    async def stream(self, sink: Any) -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            if not self.keep_streaming:
                raise
        await self.stuck_in_stream()

    async def stuck_in_stream(self) -> None:
        await self.release.wait()

    async def execute(self, command: Command) -> None:
        if self.hang_cancels:
            await asyncio.Event().wait()

    async def open_orders(self) -> list[Any]:
        return []

    async def close(self) -> None:
        if self.hang_close:
            await asyncio.Event().wait()
        self.closed = True


async def run(venue: Venue, log_sink: LogSink) -> dict[str, Any]:
    runner = Runner(Engine(), venue, cancel_timeout_s=SHORT_S, close_timeout_s=SHORT_S)  # type: ignore[arg-type]
    runner.request_stop("test")
    async with asyncio.timeout(10):  # generous: a failure is a hang, not a slow pass
        return await runner.run(install_signals=False)


def slow(log_sink: LogSink, stage: str) -> list[dict[str, Any]]:
    return [r for r in log_sink.records if is_event(r, "shutdown.slow", stage=stage)]


async def test_unanswered_cancels_are_bounded_and_the_orders_reported_as_stragglers(log_sink: LogSink) -> None:
    summary = await run(Venue(hang_cancels=True), log_sink)
    assert summary["stop_reason"] == "test"
    assert slow(log_sink, "cancels")
    assert any(is_event(r, "shutdown.stragglers", open_orders=1) for r in log_sink.records)
    assert any(is_event(r, "session.summary") for r in log_sink.records)


async def test_a_venue_close_that_hangs_does_not_keep_the_summary_from_being_written(log_sink: LogSink) -> None:
    venue = Venue(hang_close=True)
    await run(venue, log_sink)
    assert slow(log_sink, "venue_close")
    assert not venue.closed
    assert any(is_event(r, "session.summary") for r in log_sink.records)


async def test_a_feed_that_does_not_stop_is_named_with_where_it_waits(log_sink: LogSink) -> None:
    venue = Venue(keep_streaming=True)

    async def release_once_reported() -> None:  # or after 5 s, so that a runner that never says fails
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(5):
                while not slow(log_sink, "feed_stop"):
                    await asyncio.sleep(0.005)
        venue.release.set()

    async with asyncio.TaskGroup() as tg:
        tg.create_task(release_once_reported())
        session = tg.create_task(run(venue, log_sink))
    reported = slow(log_sink, "feed_stop")
    assert len(reported) == 1, "the stuck feed was not reported"
    line = reported[0]
    feed = [w for w in line["waiting_in"] if w.startswith("feed:")]
    assert feed and "stuck_in_stream" in feed[0], line["waiting_in"]
    assert session.result()["stop_reason"] == "test"
    assert not slow(log_sink, "cancels") and not slow(log_sink, "venue_close")


async def test_a_clean_shutdown_logs_nothing_slow(log_sink: LogSink) -> None:
    venue = Venue()
    await run(venue, log_sink)
    assert venue.closed
    assert not [r for r in log_sink.records if r.get("event") == "shutdown.slow"]
