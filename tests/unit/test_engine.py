"""Engine transitions: every venue fault the mock exchange can produce, driven by hand-made events."""

from __future__ import annotations

import pytest

from bot.core.engine import Engine, EngineParams
from bot.core.estimators import ArrivalEstimator, SigmaEstimator
from bot.core.quoting import QuoteParams
from bot.domain import (
    BookDelta,
    BookSnapshot,
    CancelAll,
    CancelOrder,
    Command,
    FeedStatus,
    Instrument,
    InstrumentKind,
    Liquidity,
    OrderAccepted,
    OrderCanceled,
    OrderFilled,
    OrderRejected,
    PlaceOrder,
    PositionSnapshot,
    RequestSnapshot,
    Side,
    Timer,
)

SPOT = Instrument("TOKEN/USDT", InstrumentKind.SPOT, "TOKEN", "USDT", tick_size=0.01, lot_size=0.01)
SEC = 1_000_000_000


def make_engine(**overrides: object) -> Engine:
    params = EngineParams(
        spot=SPOT,
        perp=None,
        quote=QuoteParams(order_size_base=1.0, min_spread_bps=10.0),
        stale_feed_ns=3 * SEC,
        **overrides,  # type: ignore[arg-type]
    )
    return Engine(params, SigmaEstimator(0.02, 60.0, 1000), ArrivalEstimator(1.0, 20.0, 300.0, 50), start_ns=0)


def snapshot(seq: int = 100, bid: int = 9_990, ask: int = 10_010) -> BookSnapshot:
    return BookSnapshot(SPOT.symbol, seq, ((bid, 500),), ((ask, 500),), 0, 0)


def delta(
    first: int, last: int, bids: tuple[tuple[int, int], ...] = (), asks: tuple[tuple[int, int], ...] = ()
) -> BookDelta:
    return BookDelta(SPOT.symbol, first, last, bids, asks, 0, 0)


def places(cmds: list[Command]) -> list[PlaceOrder]:
    return [c for c in cmds if isinstance(c, PlaceOrder)]


def ack_all(engine: Engine, cmds: list[Command], now: int) -> None:
    for c in places(cmds):
        engine.apply(OrderAccepted(SPOT.symbol, c.client_id, "v" + c.client_id, now, now), now)


def quoted(engine: Engine, now: int = SEC) -> list[PlaceOrder]:
    engine.apply(snapshot(), now)
    cmds = engine.requote(now)
    ack_all(engine, cmds, now)
    return places(cmds)


def test_snapshot_then_quotes_a_bid_below_an_ask_inside_the_book_grid() -> None:
    engine = make_engine()
    orders = quoted(engine)
    bid = next(o for o in orders if o.side is Side.BUY)
    ask = next(o for o in orders if o.side is Side.SELL)
    assert bid.price_ticks < ask.price_ticks
    assert bid.price_ticks < 10_010 and ask.price_ticks > 9_990  # post-only: never crosses the book
    assert bid.post_only and ask.post_only
    assert [n for n, _ in engine.drain_notes()].count("quote.updated") == 1


def test_no_quotes_before_a_snapshot() -> None:
    engine = make_engine()
    assert engine.apply(delta(1, 1, bids=((9_990, 1),)), SEC) == []
    assert engine.requote(SEC) == []


def test_sequence_gap_pulls_quotes_and_requests_a_snapshot_then_resumes() -> None:
    engine = make_engine()
    quoted(engine)
    engine.apply(delta(101, 101, bids=((9_991, 10),)), SEC)  # contiguous
    cmds = engine.apply(delta(105, 106, bids=((9_992, 10),)), SEC)  # gap: 102..104 missing
    assert RequestSnapshot(SPOT.symbol, "gap") in cmds
    assert len([c for c in cmds if isinstance(c, CancelOrder)]) == 2
    for c in cmds:
        if isinstance(c, CancelOrder):
            engine.apply(OrderCanceled(SPOT.symbol, c.client_id, "requested", SEC, SEC), SEC)
    assert places(engine.requote(SEC)) == []  # nothing quoted on a book known to be wrong
    engine.apply(snapshot(seq=200), 2 * SEC)
    assert len(places(engine.requote(2 * SEC))) == 2
    assert "feed.gap" in [n for n, _ in engine.drain_notes()]


def test_crossed_book_is_treated_like_a_gap() -> None:
    engine = make_engine()
    quoted(engine)
    cmds = engine.apply(delta(101, 101, bids=((10_020, 5),)), SEC)  # bid above the ask
    assert any(isinstance(c, RequestSnapshot) for c in cmds)
    assert places(engine.requote(SEC)) == []


def test_duplicate_and_old_deltas_are_ignored() -> None:
    engine = make_engine()
    quoted(engine)
    engine.apply(delta(101, 101, bids=((9_991, 10),)), SEC)
    assert engine.apply(delta(101, 101, bids=((9_991, 10),)), SEC) == []  # duplicate
    assert engine.books[SPOT.symbol].is_valid


def test_stale_feed_pulls_quotes_until_fresh() -> None:
    engine = make_engine()
    quoted(engine, now=SEC)
    cmds = engine.apply(Timer(5 * SEC, 5 * SEC), 5 * SEC)  # 4 s without a book update > 3 s
    assert len([c for c in cmds if isinstance(c, CancelOrder)]) == 2
    for c in cmds:
        assert isinstance(c, CancelOrder)
        engine.apply(OrderCanceled(SPOT.symbol, c.client_id, "requested", 0, 0), 5 * SEC)
    assert places(engine.requote(5 * SEC)) == []
    engine.apply(delta(101, 101, bids=((9_991, 10),)), 6 * SEC)
    assert len(places(engine.requote(6 * SEC))) == 2
    names = [n for n, _ in engine.drain_notes()]
    assert "feed.stale" in names and "feed.fresh" in names


def test_disconnect_pulls_quotes_and_waits_for_a_fresh_snapshot() -> None:
    engine = make_engine()
    quoted(engine)
    cmds = engine.apply(FeedStatus("*", False, "socket closed", SEC, SEC), SEC)
    assert len([c for c in cmds if isinstance(c, CancelOrder)]) == 2
    for c in cmds:
        assert isinstance(c, CancelOrder)
        engine.apply(OrderCanceled(SPOT.symbol, c.client_id, "requested", 0, 0), SEC)
    engine.apply(FeedStatus("*", True, "reconnected", SEC, SEC), SEC)
    engine.apply(delta(101, 101, bids=((9_991, 10),)), SEC)
    assert places(engine.requote(SEC)) == []  # deltas alone are not trusted after an outage
    engine.apply(snapshot(seq=300), 2 * SEC)
    assert len(places(engine.requote(2 * SEC))) == 2


def test_fill_updates_inventory_once_and_duplicate_fill_is_dropped() -> None:
    engine = make_engine()
    bid = next(o for o in quoted(engine) if o.side is Side.BUY)
    fill = OrderFilled(
        SPOT.symbol, bid.client_id, "f1", Side.BUY, bid.price_ticks, 40, 0.05, Liquidity.MAKER, 60, SEC, SEC
    )
    engine.apply(fill, SEC)
    engine.apply(fill, SEC)
    assert engine.inventory_base() == pytest.approx(0.40)
    assert engine.stats.fills == 1 and engine.stats.duplicate_fills == 1
    # equity = 0.40 bought at the bid, marked at the mid, less the fee: the fee is charged once too
    mid_px = engine.mid_px()
    assert mid_px is not None
    assert engine.equity_quote() == pytest.approx(0.40 * (mid_px - bid.price_ticks * 0.01) - 0.05)


def test_inventory_skews_quotes_down_after_buying() -> None:
    engine = make_engine()
    orders = quoted(engine)
    bid0 = next(o for o in orders if o.side is Side.BUY)
    engine.apply(
        OrderFilled(
            SPOT.symbol, bid0.client_id, "f1", Side.BUY, bid0.price_ticks, 100, 0.0, Liquidity.MAKER, 0, SEC, SEC
        ),
        SEC,
    )
    engine.requote(SEC)
    notes = [f for n, f in engine.drain_notes() if n == "quote.updated"]
    assert notes[-1]["reservation_price"] < notes[0]["reservation_price"]  # long inventory: r below mid
    assert [n["trigger"] for n in (notes[0], notes[-1])] == ["book", "fill"]  # why each quote changed


def test_reject_is_counted_and_the_slot_requoted() -> None:
    engine = make_engine()
    engine.apply(snapshot(), SEC)
    cmds = engine.requote(SEC)
    first = places(cmds)[0]
    engine.apply(OrderRejected(SPOT.symbol, first.client_id, "venue_overloaded", SEC, SEC), SEC)
    again = places(engine.requote(SEC))
    assert [o.side for o in again] == [first.side]
    assert engine.stats.rejects == 1


def test_position_snapshot_mismatch_adopts_the_venue_position_once_it_persists() -> None:
    engine = make_engine()
    quoted(engine)
    engine.apply(PositionSnapshot(SPOT.symbol, 250, SEC, SEC), SEC)
    assert engine.inventory_base() == 0.0  # first sight: the fill may still be on its way
    engine.apply(PositionSnapshot(SPOT.symbol, 250, 2 * SEC, 2 * SEC), 2 * SEC)
    assert engine.inventory_base() == pytest.approx(2.5)
    assert engine.stats.position_mismatches == 1


def test_a_position_that_overtakes_its_fill_books_nothing_extra() -> None:
    engine = make_engine()
    bid = next(o for o in quoted(engine) if o.side is Side.BUY)
    engine.apply(PositionSnapshot(SPOT.symbol, 40, SEC, SEC), SEC)  # the poll beats the fill
    fill = OrderFilled(
        SPOT.symbol, bid.client_id, "f1", Side.BUY, bid.price_ticks, 40, 0.0, Liquidity.MAKER, 60, SEC, SEC
    )
    engine.apply(fill, SEC)
    engine.apply(PositionSnapshot(SPOT.symbol, 40, 2 * SEC, 2 * SEC), 2 * SEC)
    assert engine.inventory_base() == pytest.approx(0.40)  # not 0.80: no phantom correction
    assert engine.stats.position_mismatches == 0


def test_unknown_order_fill_still_moves_the_position() -> None:
    engine = make_engine()
    quoted(engine)
    engine.apply(OrderFilled(SPOT.symbol, "ghost", "fx", Side.SELL, 10_000, 10, 0.0, Liquidity.MAKER, 0, SEC, SEC), SEC)
    assert engine.inventory_base() == pytest.approx(-0.10)
    assert engine.stats.unknown_fills == 1


def test_shutdown_cancels_everything_and_stops_quoting() -> None:
    engine = make_engine()
    quoted(engine)
    cmds = engine.shutdown(2 * SEC)
    assert len(cmds) == 2 and all(isinstance(c, CancelOrder | CancelAll) for c in cmds)
    for c in cmds:
        assert isinstance(c, CancelOrder)
        engine.apply(OrderCanceled(SPOT.symbol, c.client_id, "requested", 0, 0), 2 * SEC)
    assert engine.open_order_count() == 0
    engine.apply(delta(101, 101, bids=((9_991, 10),)), 3 * SEC)
    assert engine.requote(3 * SEC) == []
    assert engine.summary(3 * SEC)["open_orders_at_exit"] == 0


def test_a_change_below_the_top_of_book_does_not_requote_but_a_new_best_does() -> None:
    engine = make_engine()
    quoted(engine)
    before = engine.last_inputs
    engine.apply(delta(101, 101, bids=((9_900, 7),)), 2 * SEC)  # deep level: the quotes cannot change
    assert engine.requote(2 * SEC) == [] and engine.last_inputs is before
    engine.apply(delta(102, 102, bids=((9_995, 7),)), 3 * SEC)  # a new best bid: requote
    engine.requote(3 * SEC)
    assert engine.last_inputs is not before and engine.last_inputs is not None
    assert engine.last_inputs.mid_px == pytest.approx((9_995 + 10_010) / 2 * 0.01)
