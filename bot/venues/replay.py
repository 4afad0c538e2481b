"""Replay of recorded Binance streams, with simulated execution of our orders.

* `ReplaySource(paths)`: synchronous; iterating it yields `(now_ns, event)` for every public event of
  one or more recorded files (`<recv ns> <json>` lines, see bot/venues/binance.py), merged by local
  receive time. Each file's book is synced with Binance's procedure (`BookSync`), so the stream starts
  with a `BookSnapshot` and continues with the deltas that apply to it. `now_ns` is the replay clock:
  the line's receive time, except for diffs buffered before the snapshot, which are released at the
  snapshot's receive time (so the clock never goes backwards).
* `run_replay(source, executions, on_event)`: the deterministic backtest loop: feeds market events to
  the simulated venues (`PaperExecution`, bot/venues/paper.py) and to `on_event` (e.g. the engine's
  `apply`), routes the commands it returns to the simulated venues, and delivers their acks and fills
  on the replay clock.
* `ReplayVenue`: the same behind the async `bot.venues.base.Venue` interface for the runner, at
  `speed` times real time or as fast as possible (`speed=None`).
"""

from __future__ import annotations

import asyncio
import gc
import heapq
import operator
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from bot.config import ReplayConfig
from bot.core.book import OrderBook
from bot.domain import (
    BookDelta,
    BookSnapshot,
    CancelAll,
    Command,
    Event,
    FeedStatus,
    Instrument,
    InstrumentKind,
    OpenOrder,
    RequestSnapshot,
    Timer,
)
from bot.venues.base import EventSink
from bot.venues.binance import (
    BinanceParser,
    BookSync,
    BookTicker,
    DiffBookBuilder,
    iter_line_batches,
    read_recording_info,
)
from bot.venues.paper import PaperExecution

_NS_PER_MS = 1_000_000
_TIME = operator.itemgetter(0)


class ReplaySource:
    """Public events of recorded Binance files, merged by receive time, books synced.

    `instruments` (optional, one per path) skips inferring each file's instrument from its data.
    `tickers=True` also yields the files' `BookTicker`s (for checking the replayed book).
    `from_diffs` (one flag per path): that file holds no REST snapshot, so its book is built from its
    diffs (`DiffBookBuilder`, with `config`'s warm-up and depth); `on_book_built(symbol, path,
    builder)` is told when one is. Without `instruments`, both are read from the files.
    After (or during) iteration, `stats` counts per symbol what was read, dropped and released.
    """

    def __init__(
        self,
        paths: Sequence[str | Path],
        instruments: Sequence[Instrument] | None = None,
        *,
        tickers: bool = False,
        from_diffs: Sequence[bool] | None = None,
        config: ReplayConfig | None = None,
        on_book_built: Callable[[str, Path, DiffBookBuilder], None] | None = None,
    ) -> None:
        if not paths:
            raise ValueError("no files to replay")
        self.paths = [Path(p) for p in paths]
        if instruments is None:
            infos = [read_recording_info(p) for p in self.paths]
            instruments = [info.instrument for info in infos]
            if from_diffs is None:
                from_diffs = [not info.has_snapshot for info in infos]
        self.from_diffs = list(from_diffs) if from_diffs is not None else [False] * len(self.paths)
        self.config = config or ReplayConfig()
        self.on_book_built = on_book_built
        if len(instruments) != len(self.paths):
            raise ValueError("one instrument per file")
        self._file_instruments = list(instruments)
        self.instruments: dict[str, Instrument] = {i.symbol: i for i in instruments}
        if len(self.instruments) != len(self.paths):
            raise ValueError("two files of the same symbol: replay one recording per symbol")
        self.tickers = tickers
        self.stats: dict[str, Counter[str]] = {i.symbol: Counter() for i in instruments}
        self.total_bytes = sum(p.stat().st_size for p in self.paths)  # on disk (compressed, for .gz)
        self.bytes_read = 0  # of `total_bytes`, so far: for a progress bar

    def _on_read(self, n: int) -> None:
        self.bytes_read += n

    @property
    def lines_read(self) -> int:
        """Recorded lines (messages) read so far, over every file."""
        return sum(stats["lines"] for stats in self.stats.values())

    def __iter__(self) -> Iterator[tuple[int, Event | BookTicker]]:
        files = zip(self.paths, self._file_instruments, self.from_diffs, strict=True)
        return merge_by_time([self._file(path, inst, diffs) for path, inst, diffs in files])

    def _file(self, path: Path, instrument: Instrument, from_diffs: bool) -> Iterator[tuple[int, Event | BookTicker]]:
        """(now ns, event) of one file, in file order (its clock never goes backwards)."""
        parser = BinanceParser(instrument)
        sync = BookSync(instrument.symbol)
        builder = (
            DiffBookBuilder(
                instrument.symbol,
                round(self.config.diff_book_warmup_s * 1e9),
                self.config.diff_book_depth_bps,
            )
            if from_diffs
            else None
        )
        stats = self.stats[instrument.symbol]
        skip_tickers = not self.tickers
        lines = skipped = 0
        last_ns = 0
        try:
            for batch in iter_line_batches(path, on_read=self._on_read):
                lines += len(batch)
                events, skipped_now = parser.parse_lines(batch, skip_tickers)
                skipped += skipped_now
                for item in events:
                    now_ns = item.ts_recv_ns
                    if now_ns < last_ns:  # a clock that never goes backwards
                        now_ns = last_ns
                    last_ns = now_ns
                    kind = type(item)
                    if kind is BookDelta:
                        released: Iterable[Event] = sync.on_delta(item)  # type: ignore[arg-type]
                        if builder is not None and not sync.synced:  # no snapshot to come: build one
                            released = self._build(builder, sync, item, released, path)  # type: ignore[arg-type]
                    elif kind is BookSnapshot:
                        released = sync.on_snapshot(item)  # type: ignore[arg-type]
                    else:
                        yield now_ns, item
                        continue
                    for event in released:
                        yield now_ns, event
        finally:
            stats["lines"] += lines
            stats["tickers_skipped"] += skipped
            stats.update({f"dropped_{k}": v for k, v in parser.dropped.items()})
            stats.update({f"sync_{k}": v for k, v in sync.stats.items()})
            if builder is not None:
                stats.update({f"book_from_diffs_{k}": v for k, v in builder.stats.items()})
            stats["parsed"] += parser.parsed

    def _build(
        self, builder: DiffBookBuilder, sync: BookSync, delta: BookDelta, released: list[Event], path: Path
    ) -> list[Event]:
        """Feed a diff of an unsynced file without a snapshot to its builder; once the built book
        covers the depth, sync from it as from a REST snapshot at the diff's id."""
        if released:  # a gap ended the synced run: the diff is released to invalidate, build again
            builder.reset()
        snapshot = builder.on_delta(delta)
        if snapshot is None:
            return released
        if self.on_book_built is not None:
            self.on_book_built(delta.symbol, path, builder)
        return [*released, *sync.on_snapshot(snapshot)]


def merge_by_time(
    streams: Sequence[Iterator[tuple[int, Event | BookTicker]]],
) -> Iterator[tuple[int, Event | BookTicker]]:
    """Time-ordered streams (one per file) merged by time; equal times come out in file order."""
    if len(streams) == 1:
        return streams[0]
    if len(streams) == 2:
        return _merge_two(*streams)
    return heapq.merge(*streams, key=_TIME)  # stable: equal times come out in file order


def _merge_two(
    first: Iterator[tuple[int, Event | BookTicker]], second: Iterator[tuple[int, Event | BookTicker]]
) -> Iterator[tuple[int, Event | BookTicker]]:
    """Two time-ordered streams merged by time; on equal times `first`'s items come first (what
    `heapq.merge` gives, with one comparison per item instead of its heap update)."""
    a = next(first, None)
    b = next(second, None)
    while a is not None and b is not None:
        if b[0] < a[0]:
            yield b
            b = next(second, None)
        else:
            yield a
            a = next(first, None)
    if a is not None:
        yield a
        yield from first
    if b is not None:
        yield b
        yield from second


def parse_speed(value: str | float) -> float | None:
    """`--speed` / `replay.speed` -> `ReplayVenue(speed=...)`: "max" is None (as fast as possible)."""
    if isinstance(value, str) and value.strip().lower() == "max":
        return None
    try:
        speed = float(value)
    except ValueError:
        speed = float("nan")  # refused below, with the one message
    if not speed > 0 or speed == float("inf"):
        raise ValueError(f'replay speed must be a number > 0 or "max", got {value!r}')
    return speed


def make_executions(instruments: Mapping[str, Instrument], config: ReplayConfig) -> dict[str, PaperExecution]:
    """One simulated venue per symbol, with the config's latencies and fees (None: the instrument's);
    the perp's own latencies when set (a perp on another venue than the spot, further from us)."""
    out = {}
    for symbol, inst in instruments.items():
        spot = inst.kind is InstrumentKind.SPOT
        maker = config.spot_maker_fee if spot else config.perp_maker_fee
        taker = config.spot_taker_fee if spot else config.perp_taker_fee
        order_ms, report_ms = config.order_latency_ms, config.report_latency_ms
        if not spot:
            order_ms = config.perp_order_latency_ms if config.perp_order_latency_ms is not None else order_ms
            report_ms = config.perp_report_latency_ms if config.perp_report_latency_ms is not None else report_ms
        out[symbol] = PaperExecution(
            inst,
            order_latency_ns=round(order_ms * _NS_PER_MS),
            report_latency_ns=round(report_ms * _NS_PER_MS),
            maker_fee=maker,
            taker_fee=taker,
        )
    return out


def _route(executions: Mapping[str, PaperExecution], command: Command, now_ns: int) -> None:
    """Send a command to the simulated venue(s) it concerns; snapshot requests are not theirs."""
    if isinstance(command, RequestSnapshot):
        return  # a recording cannot be asked for a fresh snapshot
    if isinstance(command, CancelAll) and command.symbol is None:
        for execution in executions.values():
            execution.submit(command, now_ns)
        return
    target = executions.get(command.symbol or "")
    if target is not None:
        target.submit(command, now_ns)


def _due(executions: Mapping[str, PaperExecution], now_ns: int) -> list[Event]:
    """Our events due by `now_ns` from every simulated venue, in delivery order."""
    out: list[Event] = []
    for execution in executions.values():
        if execution.wake_ns <= now_ns:  # mostly nothing is pending: skip the call
            out.extend(execution.advance(now_ns))
    if len(out) > 1:  # from several venues: in delivery order (stable within one venue)
        out.sort(key=lambda e: e.ts_recv_ns)
    return out


def run_replay(
    source: Iterable[tuple[int, Event | BookTicker]],
    executions: Mapping[str, PaperExecution],
    on_event: Callable[[Event, int], Iterable[Command]],
    timer_ns: int | None = None,
    books: Callable[[str, str], OrderBook | None] | None = None,
) -> int:
    """Deterministic replay: every event (public, then ours) goes to `on_event(event, now_ns)`, whose
    commands go to the simulated venues at that time. With `timer_ns`, a `Timer` is delivered each
    time the replay clock crosses a multiple of it (as the runner's timer does on the wall clock).
    Returns the number of events delivered.

    `books(venue, symbol)`: the book `on_event` applies that market's book events to (the engine's,
    `Engine.book_for`), or None. A simulated venue then reads it instead of applying every event to
    a copy of its own (`PaperExecution.follow`: one book update per event instead of two, ~9 % of a
    cached replay): it meets the commands that arrive by an event's time before `on_event` sees the
    event, and the event after, as `on_market` does; the commands `on_event` returns are routed
    after that, as before. Same order for everything each side sees, so the same decisions."""
    # What exists when the replay starts (the engine, the modules, the books) lives until it ends:
    # frozen, the collector's full collections during the replay do not scan it again (profiled: ~2 %
    # of a cached spot replay's instructions). Only objects are moved, none freed or kept: decisions
    # cannot change. Left alone when something else froze objects (its unfreeze is its own).
    freeze = gc.get_freeze_count() == 0
    if freeze:
        gc.freeze()
    try:
        return _run_replay(source, executions, on_event, timer_ns, books)
    finally:
        if freeze:
            gc.unfreeze()


def _run_replay(
    source: Iterable[tuple[int, Event | BookTicker]],
    executions: Mapping[str, PaperExecution],
    on_event: Callable[[Event, int], Iterable[Command]],
    timer_ns: int | None,
    books: Callable[[str, str], OrderBook | None] | None,
) -> int:
    delivered = 0
    next_timer_ns: int | None = None
    pending = list(executions.values())  # checked on every event: a list walk, not a call
    by_symbol = dict(executions)
    follows: dict[str, bool] = {}  # per symbol, at its first event: does its venue read `books`'?

    def deliver(event: Event, now_ns: int) -> None:
        nonlocal delivered
        delivered += 1
        for command in on_event(event, now_ns):
            _route(executions, command, now_ns)

    for now_ns, market in source:
        if isinstance(market, BookTicker):
            continue
        if timer_ns is not None:
            if next_timer_ns is None:
                next_timer_ns = (now_ns // timer_ns + 1) * timer_ns
            while next_timer_ns <= now_ns:
                for event in _due(executions, next_timer_ns):
                    deliver(event, event.ts_recv_ns)
                deliver(Timer(next_timer_ns, next_timer_ns), next_timer_ns)
                next_timer_ns += timer_ns
        for venue in pending:
            if venue.wake_ns < now_ns:  # answers due before this market event
                for event in _due(executions, now_ns - 1):
                    deliver(event, event.ts_recv_ns)
                break
        symbol = getattr(market, "symbol", "")
        execution = by_symbol.get(symbol)
        # deliver(market, now_ns), inlined: this is the loop's hot path
        delivered += 1
        if execution is None:
            ours: Iterable[Event] = ()
            commands = on_event(market, now_ns)
        else:
            follow = follows.get(symbol)
            if follow is None:
                book = books(getattr(market, "venue", ""), symbol) if books is not None else None
                follow = follows[symbol] = book is not None and execution.follow(book)
            if follow:
                execution.before_market(now_ns)
                book = execution.book
                version = book.version
                commands = on_event(market, now_ns)  # applies the event to `book`
                if not isinstance(commands, list):  # a lazy iterable: the engine's work happens now
                    commands = list(commands)
                ours = execution.after_market(market, book.version != version, now_ns)
            else:
                ours = execution.on_market(market, now_ns)
                commands = on_event(market, now_ns)
        for command in commands:
            _route(executions, command, now_ns)
        for event in ours:
            deliver(event, now_ns)
    return delivered


def finish_replay(
    executions: Mapping[str, PaperExecution],
    on_event: Callable[[Event, int], Iterable[Command]],
    commands: Iterable[Command],
    now_ns: int,
    until_ns: int,
) -> int:
    """After the recording ends: send `commands` (e.g. the engine's shutdown cancels) at `now_ns`, then
    let replay time run on, delivering every answer due by `until_ns` (commands `on_event` returns are
    sent too). No market data moves any more, so no new passive fill can happen. Returns the number of
    events delivered."""
    for command in commands:
        _route(executions, command, now_ns)
    delivered = 0
    while True:
        pending = [t for t in (e.next_due_ns() for e in executions.values()) if t is not None]
        due_ns = max(now_ns, min(pending)) if pending else None
        if due_ns is None or due_ns > until_ns:
            return delivered
        for event in _due(executions, due_ns):
            delivered += 1
            for command in on_event(event, event.ts_recv_ns):
                _route(executions, command, event.ts_recv_ns)


def pace(
    source: Iterable[tuple[int, Event | BookTicker]],
    speed: float,
    *,
    clock_s: Callable[[], float] = time.monotonic,
    sleep_s: Callable[[float], None] = time.sleep,
) -> Iterator[tuple[int, Event | BookTicker]]:
    """`source` released at `speed` times the recording's own pace: each item waits until
    (its time - the first item's time) / speed has passed on the wall clock since the first.
    The items are unchanged, so a paced replay gives exactly the results of an unpaced one."""
    if not speed > 0:
        raise ValueError("speed must be > 0")
    first_ns: int | None = None
    wall0 = 0.0
    for now_ns, item in source:
        if first_ns is None:
            first_ns, wall0 = now_ns, clock_s()
        wait_s = wall0 + (now_ns - first_ns) / 1e9 / speed - clock_s()
        if wait_s > 0:
            sleep_s(wait_s)
        yield now_ns, item


class CountsPerSymbol(Protocol):
    """A source's counters per symbol (`ReplaySource`, `bot.venues.event_cache.CachedSource`)."""

    stats: dict[str, Counter[str]]


def replay_stats(source: CountsPerSymbol | None, executions: Mapping[str, PaperExecution]) -> dict[str, Any]:
    """Per symbol: the source's counters and the simulated venue's position, fills and fees."""
    out: dict[str, Any] = {}
    for symbol, execution in executions.items():
        stats: dict[str, Any] = dict(source.stats[symbol]) if source is not None else {}
        stats["position_lots"] = execution.position_lots
        stats["filled_lots"] = execution.filled_lots
        stats["fees_paid_quote"] = round(execution.fees_paid_quote, 6)
        stats["open_orders"] = len(execution.orders)
        out[symbol] = stats
    return out


class ReplayVenue:
    """`bot.venues.base.Venue` over recorded files: public events from `ReplaySource`, our orders on
    `PaperExecution`s. `speed`: replay-time multiple of wall time, None = as fast as possible.

    The replay clock (`now_ns()`) is the receive time of the last event delivered; give it to the
    runner (`clock_ns=venue.now_ns`) so the engine sees recorded time. When the files end, `stream`
    delivers `FeedStatus("*", connected=False, reason="replay_finished")` and returns.
    """

    name = "replay"

    def __init__(
        self,
        paths: Sequence[str | Path],
        config: ReplayConfig | None = None,
        *,
        speed: float | None = None,
        instruments: Sequence[Instrument] | None = None,
        wake_s: float = 0.01,
    ) -> None:
        if speed is not None and not speed > 0:
            raise ValueError("speed must be > 0 (or None for as fast as possible)")
        self.paths = list(paths)
        self.config = config or ReplayConfig()
        self.speed = speed
        self.wake_s = wake_s  # at a finite speed: longest wall sleep before delivering due answers
        self._given_instruments = instruments
        self._source: ReplaySource | None = None
        self.executions: dict[str, PaperExecution] = {}
        self._now_ns = 0
        self.finished = False

    @property
    def instruments(self) -> Mapping[str, Instrument]:
        return self._source.instruments if self._source is not None else {}

    def now_ns(self) -> int:
        return self._now_ns

    async def connect(self) -> None:
        # inferring instruments reads every file once: keep the event loop free meanwhile
        self._source = await asyncio.to_thread(ReplaySource, self.paths, self._given_instruments)
        self.executions = make_executions(self._source.instruments, self.config)

    async def stream(self, sink: EventSink) -> None:
        if self._source is None:
            raise RuntimeError("connect() first")
        loop = asyncio.get_running_loop()
        wall0 = loop.time()
        first_ns: int | None = None
        for now_ns, market in self._source:
            if isinstance(market, BookTicker):
                continue
            if first_ns is None:
                first_ns = now_ns
            if self.speed is not None:
                await self._wait_until(now_ns, first_ns, wall0, sink)
            for event in _due(self.executions, now_ns - 1):
                sink(event)
            self._now_ns = now_ns
            execution = self.executions.get(getattr(market, "symbol", ""))
            ours = execution.on_market(market, now_ns) if execution is not None else []
            sink(market)
            for event in ours:
                sink(event)
            if self.speed is None:
                await asyncio.sleep(0)  # let the runner take the event before the next one
        for event in _due(self.executions, self._now_ns):
            sink(event)
        self.finished = True
        sink(FeedStatus("*", False, "replay_finished", self._now_ns, self._now_ns))

    async def _wait_until(self, now_ns: int, first_ns: int, wall0: float, sink: EventSink) -> None:
        """Sleep until `now_ns` is due on the wall clock, delivering our answers that fall due meanwhile."""
        assert self.speed is not None
        loop = asyncio.get_running_loop()
        while True:
            lag_s = wall0 + (now_ns - first_ns) / 1e9 / self.speed - loop.time()
            if lag_s <= 0:
                return
            await asyncio.sleep(min(lag_s, self.wake_s))
            replay_ns = first_ns + round((loop.time() - wall0) * self.speed * 1e9)
            self._now_ns = max(self._now_ns, min(replay_ns, now_ns - 1))
            for event in _due(self.executions, self._now_ns):
                sink(event)

    async def execute(self, command: Command) -> None:
        _route(self.executions, command, self._now_ns)

    async def open_orders(self) -> list[OpenOrder]:
        return [order for execution in self.executions.values() for order in execution.open_orders()]

    async def positions(self) -> dict[str, int]:
        return {symbol: execution.position_lots for symbol, execution in self.executions.items()}

    async def close(self) -> None:
        return None

    def summary(self) -> dict[str, Any]:
        """Per symbol: the source's counters and the simulated venue's position, fills and fees."""
        return replay_stats(self._source, self.executions)
