"""Adversarial venue events into the engine: no crash, the bad data dropped and counted, no quoting on it.

The engine receives domain values (integers on the grid), so what reaches it from a parser is already
a number; what can still be wrong is its meaning: prices <= 0, crossed books, sequence gaps and
replays, absurd sizes, ids of orders it never sent.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.app import build_engine
from bot.config import load_settings
from bot.core.engine import Engine
from bot.domain import (
    BookDelta,
    BookSnapshot,
    CancelRejected,
    Command,
    Event,
    Instrument,
    InstrumentKind,
    Liquidity,
    OrderAccepted,
    OrderCanceled,
    OrderFilled,
    OrderRejected,
    PlaceOrder,
    RequestSnapshot,
    Side,
    Timer,
    TradePrint,
)

SPOT = Instrument("TOKEN/USDT", InstrumentKind.SPOT, "TOKEN", "USDT", 0.01, 0.01, min_notional=5.0)
PERP = Instrument("TOKEN/USDT:USDT", InstrumentKind.PERP, "TOKEN", "USDT", 0.01, 0.01, min_notional=5.0)
S = 1_000_000_000
SETTINGS = load_settings()


def engine_quoting() -> tuple[Engine, int]:
    """An engine with synced books that has just placed its quotes; returns it and the time."""
    engine = build_engine(SETTINGS, SPOT, PERP, 0, venue_name="mock")
    t = S
    for inst in (SPOT, PERP):
        engine.apply(BookSnapshot(inst.symbol, 100, ((9_999, 500),), ((10_001, 500),), t, t), t)
    engine.apply(Timer(t, t), t)
    out = engine.requote(t)
    assert any(isinstance(c, PlaceOrder) for c in out), "fixture: the engine should quote on a clean book"
    for cmd in out:
        if isinstance(cmd, PlaceOrder):
            engine.apply(OrderAccepted(cmd.symbol, cmd.client_id, "v", t, t), t)
    return engine, t


def places(commands: list[Command]) -> list[PlaceOrder]:
    return [c for c in commands if isinstance(c, PlaceOrder) and c.tag == "quote"]


@pytest.mark.parametrize(
    ("bad", "status"),
    [
        (BookDelta(SPOT.symbol, 101, 101, ((10_005, 100),), (), 0, 0), "crossed"),  # bid above the ask
        (BookDelta(SPOT.symbol, 101, 101, ((0, 100),), (), 0, 0), "invalid_input"),  # zero price
        (BookDelta(SPOT.symbol, 101, 101, ((-5, 100),), (), 0, 0), "invalid_input"),  # negative price
        (BookDelta(SPOT.symbol, 101, 101, ((9_998, -1),), (), 0, 0), "invalid_input"),  # negative size
        (BookDelta(SPOT.symbol, 110, 110, ((9_998, 100),), (), 0, 0), "gap"),  # sequence jumped ahead
        (BookSnapshot(SPOT.symbol, 200, ((10_002, 1),), ((10_001, 1),), 0, 0), "crossed"),
        (BookSnapshot(SPOT.symbol, 200, ((0, 1),), ((10_001, 1),), 0, 0), "invalid_input"),
    ],
)
def test_bad_book_pulls_quotes_requests_a_snapshot_and_quotes_nothing(
    bad: BookDelta | BookSnapshot, status: str
) -> None:
    engine, t = engine_quoting()
    t += S // 10
    out = engine.apply(bad, t)
    assert RequestSnapshot(SPOT.symbol, status) in out
    assert {c.client_id for c in out if not isinstance(c, RequestSnapshot)} == {
        o.client_id for o in engine.orders.live_orders(SPOT.symbol)
    }  # every live quote is being cancelled
    for cmd in out:  # the venue confirms the cancels
        if not isinstance(cmd, RequestSnapshot):
            engine.apply(OrderCanceled(SPOT.symbol, cmd.client_id, "requested", t, t), t)  # type: ignore[union-attr]
    assert engine.stats.resyncs == 1  # counted
    assert ("feed.gap", status) in [(n, f.get("status")) for n, f in engine.drain_notes()]  # logged
    for k in range(1, 30):  # nothing is quoted on it, whatever arrives before a snapshot
        now = t + k * S // 10
        engine.apply(BookDelta(SPOT.symbol, 101 + k, 101 + k, ((9_997, 7),), (), now, now), now)
        engine.apply(Timer(now, now), now)
        assert places(engine.requote(now)) == []
    now = t + 4 * S
    engine.apply(BookSnapshot(SPOT.symbol, 500, ((9_999, 500),), ((10_001, 500),), now, now), now)
    assert places(engine.requote(now)), "quotes resume after a good snapshot"


def test_replayed_sequence_numbers_are_ignored() -> None:
    engine, t = engine_quoting()
    stale = BookDelta(SPOT.symbol, 90, 100, ((1, 1),), (), t, t)  # already in the snapshot, and absurd
    assert engine.apply(stale, t + 1) == []
    assert engine.books[SPOT.symbol].is_valid and engine.stats.resyncs == 0


def test_absurd_sizes_do_not_crash_and_keep_the_order_size() -> None:
    engine, t = engine_quoting()
    t += S
    engine.apply(BookDelta(SPOT.symbol, 101, 101, ((9_999, 10**15),), ((10_001, 10**15),), t, t), t)
    engine.apply(TradePrint(SPOT.symbol, 10_001, 10**15, Side.BUY, "x", t, t), t)
    engine.apply(Timer(t, t), t)
    for cmd in places(engine.requote(t)):
        assert cmd.size_lots <= SPOT.lots(SETTINGS.quoter.order_size_base)


def test_events_for_unknown_orders_are_counted_not_acted_on() -> None:
    engine, t = engine_quoting()
    before = engine.orders.unknown_events
    for event in (
        OrderAccepted(SPOT.symbol, "ghost-1", "v", t, t),
        OrderRejected(SPOT.symbol, "ghost-2", "x", t, t),
        OrderCanceled(SPOT.symbol, "ghost-3", "x", t, t),
        CancelRejected(SPOT.symbol, "ghost-4", "x", t, t),
    ):
        assert engine.apply(event, t) == []
    assert engine.orders.unknown_events == before + 4


def test_a_fill_of_an_unknown_order_is_counted_and_booked_once() -> None:
    # the venue is the truth for money: a fill of an order we do not know (an earlier process) is
    # booked, counted as unknown, and a replay of it is dropped
    engine, t = engine_quoting()
    fill = OrderFilled(SPOT.symbol, "ghost", "F1", Side.BUY, 10_000, 50, 0.0, Liquidity.MAKER, 0, t, t)
    engine.apply(fill, t)
    engine.apply(fill, t)
    assert engine.stats.unknown_fills == 1 and engine.stats.duplicate_fills == 1
    assert engine.portfolio.position_lots(SPOT.symbol) == 50


# ---- property: whatever arrives, no crash and no quote on an invalid book ---------------------

prices = st.integers(min_value=-10, max_value=20_000) | st.sampled_from([0, -1, 10**18])
sizes = st.integers(min_value=-5, max_value=10**6) | st.sampled_from([0, 10**15])
levels = st.lists(st.tuples(prices, sizes), max_size=4).map(tuple)
seqs = st.integers(min_value=-5, max_value=400)
ids = st.sampled_from(["ghost", "q-1", "q-2", "h-1", ""])


def _events() -> st.SearchStrategy[Any]:
    symbol = st.sampled_from([SPOT.symbol, PERP.symbol, "OTHER/USDT"])
    return st.one_of(
        st.builds(lambda s, q, b, a: BookSnapshot(s, q, b, a, 0, 0), symbol, seqs, levels, levels),
        st.builds(lambda s, f, n, b, a: BookDelta(s, f, f + n, b, a, 0, 0), symbol, seqs, st.integers(0, 3), levels,
                  levels),
        st.builds(lambda s, p, q, side: TradePrint(s, p, q, side, "t", 0, 0), symbol, prices, sizes,
                  st.sampled_from(Side)),
        st.builds(lambda s, c: OrderAccepted(s, c, "v", 0, 0), symbol, ids),
        st.builds(lambda s, c: OrderCanceled(s, c, "venue", 0, 0), symbol, ids),
        st.builds(lambda s, c: CancelRejected(s, c, "venue_disconnected", 0, 0), symbol, ids),
        st.builds(lambda s, c, f, side, p, q: OrderFilled(s, c, f, side, p, q, 0.0, Liquidity.MAKER, 0, 0, 0),
                  symbol, ids, st.sampled_from(["F1", "F2", "F3"]), st.sampled_from(Side), prices, sizes),
        st.just(Timer(0, 0)),
    )  # fmt: skip


@given(st.lists(_events(), max_size=40))
def test_engine_survives_any_event_sequence_and_quotes_only_on_a_valid_book(events: list[Event]) -> None:
    engine, t = engine_quoting()
    for i, event in enumerate(events):
        now = t + (i + 1) * S // 20
        engine.apply(event, now)
        book = engine.books[SPOT.symbol]
        for cmd in places(engine.requote(now)):
            assert book.is_valid and SPOT.symbol not in engine.awaiting_snapshot
            best_bid, best_ask = book.best_bid_ticks, book.best_ask_ticks
            assert best_bid is not None and best_ask is not None and 0 < best_bid < best_ask
            assert cmd.price_ticks > 0 and cmd.size_lots > 0
            # post-only quotes never cross the book they were computed on
            assert cmd.price_ticks < best_ask if cmd.side is Side.BUY else cmd.price_ticks > best_bid
