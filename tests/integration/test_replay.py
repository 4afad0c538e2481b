"""Replay of the bundled Binance recordings: the replayed book against every comparable bookTicker,
merging, the deterministic loop with simulated execution, and the async ReplayVenue."""

from __future__ import annotations

import asyncio
import gzip
import heapq
import itertools
import time
from collections.abc import Iterable
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

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
    OrderAccepted,
    OrderFilled,
    PlaceOrder,
    Side,
    Timer,
    TradePrint,
)
from bot.venues.binance import BookTicker
from bot.venues.replay import ReplaySource, ReplayVenue, _merge_two, make_executions, parse_speed, run_replay

DATA = Path(__file__).resolve().parent.parent / "data" / "binance"
SPOT_FILE = DATA / "spot_btcusdt_20240808.gz"
PERP_FILE = DATA / "usdm_btcusdt_20240808.gz"
SPOT = Instrument("BTC/USDT", InstrumentKind.SPOT, "BTC", "USDT", 0.01, 0.000001, maker_fee=0.001, taker_fee=0.001)
PERP = Instrument("BTC/USDT:USDT", InstrumentKind.PERP, "BTC", "USDT", 0.1, 0.001, maker_fee=0.0002, taker_fee=0.0005)
NO_LATENCY = ReplayConfig(order_latency_ms=0, report_latency_ms=0)


def head(src: Path, dst: Path, lines: int, junk: Iterable[bytes] = ()) -> Path:
    """The first `lines` lines of a recording (plus `junk` lines in the middle), gzipped."""
    with gzip.open(src, "rb") as fh:
        body = [next(fh) for _ in range(lines)]
    body[len(body) // 2 : len(body) // 2] = list(junk)
    with gzip.open(dst, "wb") as out:
        out.writelines(body)
    return dst


def test_replayed_books_match_every_comparable_book_ticker() -> None:
    """(a) A bookTicker with update id u describes the book after update u. The book is known exactly
    after each applied diff, at its last id `u`, so every ticker whose `u` equals an applied diff's
    `u` is comparable; the replayed best bid/ask (price and size) must equal it. Tickers between two
    diffs' ids are intermediate states the diff stream never shows, and are not compared."""
    source = ReplaySource([SPOT_FILE, PERP_FILE], [SPOT, PERP], tickers=True)
    books = {s: OrderBook(s) for s in source.instruments}
    after: dict[str, dict[int, tuple[int | None, ...]]] = {s: {} for s in books}
    tickers: list[BookTicker] = []
    for _, event in source:
        if isinstance(event, BookTicker):
            tickers.append(event)
        elif isinstance(event, BookSnapshot | BookDelta):
            book = books[event.symbol]
            assert book.apply(event).changed
            top = (book.best_bid_ticks, book.best_bid_lots, book.best_ask_ticks, book.best_ask_lots)
            after[event.symbol][book.seq] = top
    compared = {s: 0 for s in books}
    for t in tickers:
        top = after[t.symbol].get(t.update_id)
        if top is not None:
            assert top == (t.bid_ticks, t.bid_lots, t.ask_ticks, t.ask_lots), t
            compared[t.symbol] += 1
    assert compared["BTC/USDT"] >= 500  # 564 on the bundled file
    assert compared["BTC/USDT:USDT"] >= 500  # 629
    assert all(book.is_valid for book in books.values())
    assert len(tickers) == 28_040 + 66_089


def test_merge_by_receive_time_with_books_synced_first() -> None:
    source = ReplaySource([SPOT_FILE, PERP_FILE], [SPOT, PERP])
    last = 0
    first: dict[str, type] = {}
    counts: dict[str, int] = {}
    for now_ns, event in source:
        assert now_ns >= last
        last = now_ns
        symbol = event.symbol  # type: ignore[union-attr]
        counts[symbol] = counts.get(symbol, 0) + 1
        if isinstance(event, BookSnapshot | BookDelta):
            first.setdefault(symbol, type(event))
    assert first == {"BTC/USDT": BookSnapshot, "BTC/USDT:USDT": BookSnapshot}
    assert source.stats["BTC/USDT"]["sync_dropped_before_snapshot"] == 2
    assert source.stats["BTC/USDT:USDT"]["sync_dropped_before_snapshot"] == 4
    assert counts["BTC/USDT"] == sum(1 for _ in ReplaySource([SPOT_FILE], [SPOT]))  # merging loses nothing
    assert source.stats["BTC/USDT"]["sync_gap"] == source.stats["BTC/USDT:USDT"]["sync_gap"] == 0


@given(
    st.lists(st.integers(0, 6), max_size=12).map(sorted),
    st.lists(st.integers(0, 6), max_size=12).map(sorted),
)
def test_two_files_merge_stably_by_time(first_times: list[int], second_times: list[int]) -> None:
    """By time; on equal times the first file's items first, each file in its own order: the order
    of `heapq.merge` on (time, file index, position) keys, which the two-way merge replaces."""
    first = [(t, ("first", i)) for i, t in enumerate(first_times)]
    second = [(t, ("second", i)) for i, t in enumerate(second_times)]
    keyed = ([(t, k, i, x) for i, (t, x) in enumerate(items)] for k, items in enumerate((first, second)))
    expected = [(t, x) for t, _, _, x in heapq.merge(*keyed)]
    assert list(_merge_two(iter(first), iter(second))) == expected  # type: ignore[arg-type]


def test_bad_lines_are_counted_and_the_replay_goes_on(tmp_path: Path) -> None:
    junk = [b"not a line\n", b"123 {broken\n", b'456 {"stream":"btcusdt@trade","data":{"e":"trade"}}\n', b"\n"]
    path = head(SPOT_FILE, tmp_path / "spot.gz", 2000, junk)
    source = ReplaySource([path], [SPOT])
    events = list(source)
    stats = source.stats["BTC/USDT"]
    assert stats["lines"] == 2004
    assert stats["dropped_no_timestamp"] == 1 and stats["dropped_bad_timestamp"] == 1
    assert stats["dropped_not_json"] == 1 and stats["dropped_malformed"] == 1
    assert any(isinstance(e, TradePrint) for _, e in events)


class QuoteAtTouch:
    """A tiny strategy for the loop: join the spot best bid and ask once, then cancel all later."""

    def __init__(self, cancel_after: int) -> None:
        self.book = OrderBook(SPOT.symbol)
        self.placed = False
        self.cancel_after = cancel_after
        self.seen = 0
        self.ours: list[Event] = []

    def __call__(self, event: Event, now_ns: int) -> list[Command]:
        self.seen += 1
        if hasattr(event, "client_id"):  # acks, fills, cancels: our orders' events
            self.ours.append(event)
        if isinstance(event, BookSnapshot | BookDelta) and event.symbol == SPOT.symbol:
            self.book.apply(event)
            bid, ask = self.book.best_bid_ticks, self.book.best_ask_ticks
            if not self.placed and self.book.is_valid and bid is not None and ask is not None:
                self.placed = True
                return [
                    PlaceOrder(SPOT.symbol, "bid", Side.BUY, bid, 20_000),  # 0.02 BTC
                    PlaceOrder(SPOT.symbol, "ask", Side.SELL, ask, 50_000),  # 0.05 BTC
                ]
        if self.seen == self.cancel_after:
            return [CancelAll()]
        return []


def run_once() -> tuple[list[Event], dict[str, int]]:
    source = ReplaySource([SPOT_FILE, PERP_FILE], [SPOT, PERP])
    executions = make_executions(source.instruments, ReplayConfig())  # default 20 ms + 10 ms latency
    strategy = QuoteAtTouch(cancel_after=20_000)
    delivered = run_replay(source, executions, strategy)
    assert delivered == strategy.seen
    return strategy.ours, {s: e.position_lots for s, e in executions.items()}


def test_run_replay_is_deterministic_and_positions_are_the_sum_of_fills() -> None:
    ours, positions = run_once()
    again, positions_again = run_once()
    assert ours == again and positions == positions_again
    fills = [e for e in ours if isinstance(e, OrderFilled)]
    assert fills, "quotes joined at the touch of a busy market must get some fills"
    assert positions["BTC/USDT"] == sum(f.side.sign * f.size_lots for f in fills) != 0
    assert positions["BTC/USDT:USDT"] == 0
    accepted = [e for e in ours if isinstance(e, OrderAccepted)]
    assert len(accepted) == 2
    # acks come back order latency + report latency after the commands (20 ms + 10 ms by default)
    assert all(e.ts_recv_ns - e.ts_venue_ns == 10_000_000 for e in ours)


def test_run_replay_delivers_timers_on_the_replay_clock(tmp_path: Path) -> None:
    path = head(SPOT_FILE, tmp_path / "spot.gz", 1500)
    source = ReplaySource([path], [SPOT])
    times: list[int] = []
    kinds: list[type] = []

    def record(event: Event, now_ns: int) -> list[Command]:
        times.append(now_ns)
        kinds.append(type(event))
        return []

    run_replay(source, make_executions(source.instruments, NO_LATENCY), record, timer_ns=1_000_000_000)
    assert times == sorted(times)
    timer_times = [t for t, k in zip(times, kinds, strict=True) if k is Timer]
    assert timer_times and all(t % 1_000_000_000 == 0 for t in timer_times)
    assert all(b - a == 1_000_000_000 for a, b in itertools.pairwise(timer_times))
    market_span_ns = times[-1] - times[0]
    assert len(timer_times) == pytest.approx(market_span_ns / 1e9, abs=1.5)


def test_an_order_arriving_with_a_book_update_meets_the_book_before_it() -> None:
    """Our bid reaches the venue at t=5, when a delta adds 20 lots behind the 10 at its price: it joins
    behind 10 (the book before the update), so a print of 10 then 1 fills it; joining behind 30 (the
    book after the update) would not fill it."""
    inst = Instrument("X/USDT", InstrumentKind.SPOT, "X", "USDT", 1.0, 1.0)
    executions = make_executions({inst.symbol: inst}, ReplayConfig(order_latency_ms=5e-6, report_latency_ms=0))
    stream: list[tuple[int, Event]] = [
        (0, BookSnapshot(inst.symbol, 1, ((99, 10),), ((101, 10),), 0, 0)),
        (5, BookDelta(inst.symbol, 2, 2, ((99, 30),), (), 5, 5)),
        (6, TradePrint(inst.symbol, 99, 10, Side.SELL, "t1", 6, 6)),
        (7, TradePrint(inst.symbol, 99, 1, Side.SELL, "t2", 7, 7)),
    ]
    seen: list[Event] = []

    def strategy(event: Event, now_ns: int) -> list[Command]:
        seen.append(event)
        return [PlaceOrder(inst.symbol, "b", Side.BUY, 99, 1)] if isinstance(event, BookSnapshot) else []

    run_replay(stream, executions, strategy)
    assert [e.size_lots for e in seen if isinstance(e, OrderFilled)] == [1]


async def collect(venue: ReplayVenue, on_event=None) -> list[Event]:  # type: ignore[no-untyped-def]
    """Run `stream` as the runner would; `on_event` may return commands, executed at once."""
    queue: asyncio.Queue[Event] = asyncio.Queue()
    events: list[Event] = []
    task = asyncio.create_task(venue.stream(queue.put_nowait))
    try:
        while True:
            event = await asyncio.wait_for(queue.get(), timeout=30)
            events.append(event)
            for command in on_event(event) if on_event else ():
                await venue.execute(command)
            if isinstance(event, FeedStatus):
                break
    finally:
        await task
    return events


async def test_replay_venue_streams_executes_and_reports_positions(tmp_path: Path) -> None:
    spot = head(SPOT_FILE, tmp_path / "spot.gz", 3000)
    perp = head(PERP_FILE, tmp_path / "perp.gz", 3000)
    venue = ReplayVenue([spot, perp], NO_LATENCY, instruments=[SPOT, PERP])
    await venue.connect()
    assert set(venue.instruments) == {"BTC/USDT", "BTC/USDT:USDT"}
    sent: list[str] = []

    def strategy(event: Event) -> list[Command]:
        if isinstance(event, TradePrint) and event.symbol == PERP.symbol and not sent:
            sent.append("ioc")
            return [PlaceOrder(PERP.symbol, "hedge", Side.SELL, 1, 5, order_type="market", post_only=False)]  # type: ignore[arg-type]
        return []

    events = await collect(venue, strategy)
    assert isinstance(events[-1], FeedStatus) and events[-1].reason == "replay_finished"
    assert venue.finished
    ours = [e for e in events if getattr(e, "client_id", None) == "hedge"]
    assert isinstance(ours[0], OrderAccepted)
    fills = [e for e in ours if isinstance(e, OrderFilled)]
    assert sum(f.size_lots for f in fills) == 5
    assert await venue.positions() == {"BTC/USDT": 0, "BTC/USDT:USDT": -5}
    assert await venue.open_orders() == []
    assert venue.summary()["BTC/USDT:USDT"]["filled_lots"] == 5
    await venue.close()


async def test_replay_venue_paces_at_a_finite_speed(tmp_path: Path) -> None:
    spot = head(SPOT_FILE, tmp_path / "spot.gz", 400)
    venue = ReplayVenue([spot], NO_LATENCY, speed=200.0, instruments=[SPOT])
    await venue.connect()
    started = time.monotonic()
    events = await collect(venue)
    elapsed_s = time.monotonic() - started
    market = [e for e in events if not isinstance(e, FeedStatus)]
    span_s = (market[-1].ts_recv_ns - market[0].ts_recv_ns) / 1e9
    assert span_s > 1.0
    assert elapsed_s >= 0.9 * span_s / 200.0  # it waited for the recorded time to pass (scaled)


def test_replay_venue_refuses_a_bad_speed() -> None:
    with pytest.raises(ValueError):
        ReplayVenue([SPOT_FILE], speed=0)


def test_parse_speed() -> None:
    assert parse_speed("max") is None and parse_speed(" MAX ") is None
    assert parse_speed("10") == 10.0 and parse_speed(2.5) == 2.5
    for bad in ("0", "-1", "fast", "inf"):
        with pytest.raises(ValueError):
            parse_speed(bad)
