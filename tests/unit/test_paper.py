"""PaperExecution: queue position worked by hand, fees, partial fills, takers, latency, invariants."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.core.book import OrderBook
from bot.domain import (
    BookDelta,
    BookSnapshot,
    CancelAll,
    CancelOrder,
    CancelRejected,
    Event,
    Instrument,
    InstrumentKind,
    Liquidity,
    OrderAccepted,
    OrderCanceled,
    OrderFilled,
    OrderRejected,
    OrderType,
    PlaceOrder,
    Side,
    TradePrint,
)
from bot.venues.paper import PaperExecution

# tick 1 quote, lot 1 base: notional = price_ticks * size_lots, so fees are easy to work by hand
INST = Instrument("X/USDT", InstrumentKind.SPOT, "X", "USDT", 1.0, 1.0, maker_fee=0.001, taker_fee=0.002)
SYM = INST.symbol


def snapshot() -> BookSnapshot:
    """bids 99x10, 98x5; asks 101x8, 102x6."""
    return BookSnapshot(SYM, 1, ((99, 10), (98, 5)), ((101, 8), (102, 6)), 0, 0)


def venue(order_latency_ns: int = 0, report_latency_ns: int = 0) -> PaperExecution:
    ex = PaperExecution(INST, order_latency_ns=order_latency_ns, report_latency_ns=report_latency_ns)
    ex.on_market(snapshot(), 0)
    return ex


def buy(cid: str, price: int, size: int, **kw: object) -> PlaceOrder:
    return PlaceOrder(SYM, cid, Side.BUY, price, size, **kw)  # type: ignore[arg-type]


def sell(cid: str, price: int, size: int, **kw: object) -> PlaceOrder:
    return PlaceOrder(SYM, cid, Side.SELL, price, size, **kw)  # type: ignore[arg-type]


_trade_ids = iter(range(1, 10**9))


def trade(aggressor: Side, price: int, size: int) -> TradePrint:
    return TradePrint(SYM, price, size, aggressor, str(next(_trade_ids)), 0, 0)


def level(ex: PaperExecution, side: Side, price: int, size: int) -> BookDelta:
    """The next delta of `ex`'s book, setting one level."""
    n = ex.book.seq + 1
    bids = ((price, size),) if side is Side.BUY else ()
    asks = ((price, size),) if side is Side.SELL else ()
    return BookDelta(SYM, n, n, bids, asks, 0, 0)


def place(ex: PaperExecution, cmd: PlaceOrder, now: int = 0) -> list[Event]:
    ex.submit(cmd, now)
    return ex.advance(now)


def fills(events: list[Event]) -> list[tuple[str, int, int, int]]:
    """(client id, price, size, leaves) of each fill."""
    return [(e.client_id, e.price_ticks, e.size_lots, e.leaves_lots) for e in events if isinstance(e, OrderFilled)]


# ------------------------------------------------------------------------------------------------
# queue position, worked by hand
# ------------------------------------------------------------------------------------------------


def test_joins_behind_the_level_and_fills_after_the_queue_ahead_trades() -> None:
    ex = venue()
    events = place(ex, buy("b1", 99, 4))
    assert [type(e) for e in events] == [OrderAccepted]
    assert ex.orders["b1"].queue_ahead_lots == 10
    assert ex.on_market(trade(Side.SELL, 99, 6), 1) == []  # 10 ahead -> 4 ahead
    assert ex.orders["b1"].queue_ahead_lots == 4
    events = ex.on_market(trade(Side.SELL, 99, 7), 2)  # 4 to the queue ahead, 3 to us
    assert fills(events) == [("b1", 99, 3, 1)]
    fill = events[0]
    assert isinstance(fill, OrderFilled)
    assert fill.liquidity is Liquidity.MAKER and fill.side is Side.BUY
    assert fill.fee_quote == pytest.approx(99 * 3 * 0.001)
    assert fills(ex.on_market(trade(Side.SELL, 99, 5), 3)) == [("b1", 99, 1, 0)]
    assert "b1" not in ex.orders
    assert ex.position_lots == 4


def test_trades_on_the_other_side_or_at_better_prices_do_not_reach_us() -> None:
    ex = venue()
    place(ex, buy("b1", 99, 4))
    assert ex.on_market(trade(Side.BUY, 101, 50), 1) == []  # lifts asks
    assert ex.on_market(trade(Side.SELL, 100, 50), 2) == []  # hit a better bid than ours
    assert ex.orders["b1"].queue_ahead_lots == 10


def test_cancellations_shrink_the_queue_ahead_proportionally() -> None:
    ex = venue()
    place(ex, buy("b1", 99, 2))
    ex.on_market(level(ex, Side.BUY, 99, 20), 1)  # 10 more join behind us
    assert ex.orders["b1"].queue_ahead_lots == 10
    ex.on_market(level(ex, Side.BUY, 99, 10), 2)  # 10 canceled from 20: half of them were ahead
    assert ex.orders["b1"].queue_ahead_lots == 5
    ex.on_market(level(ex, Side.BUY, 99, 3), 3)  # 7 of 10 canceled: 7 * 5 // 10 = 3 of them ahead of us
    assert ex.orders["b1"].queue_ahead_lots == 2
    ex.on_market(level(ex, Side.BUY, 99, 1), 4)  # 2 of 3 canceled: 2 * 2 // 3 = 1 ahead (rounded down)
    assert ex.orders["b1"].queue_ahead_lots == 1


def test_a_decrease_explained_by_trades_is_not_a_cancellation() -> None:
    ex = venue()
    place(ex, buy("b1", 99, 2))
    ex.on_market(trade(Side.SELL, 99, 4), 1)  # ahead 10 -> 6, public level 10 -> 6
    ex.on_market(level(ex, Side.BUY, 99, 6), 2)  # the book confirms the trade: no cancellation
    assert ex.orders["b1"].queue_ahead_lots == 6
    ex.on_market(level(ex, Side.BUY, 99, 3), 3)  # now 3 canceled out of 6: half ahead of us
    assert ex.orders["b1"].queue_ahead_lots == 3


def test_level_deleted_puts_us_first() -> None:
    ex = venue()
    place(ex, buy("b1", 99, 2))
    ex.on_market(level(ex, Side.BUY, 99, 0), 1)
    assert ex.orders["b1"].queue_ahead_lots == 0
    assert fills(ex.on_market(trade(Side.SELL, 99, 1), 2)) == [("b1", 99, 1, 1)]


def test_trade_through_our_price_fills_up_to_its_size() -> None:
    ex = venue()
    place(ex, buy("b1", 99, 5))
    assert fills(ex.on_market(trade(Side.SELL, 98, 3), 1)) == [("b1", 99, 3, 2)]  # at our price, not 98
    assert ex.orders["b1"].queue_ahead_lots == 0
    assert fills(ex.on_market(trade(Side.SELL, 99, 1), 2)) == [("b1", 99, 1, 1)]


def test_improving_the_best_price_means_no_queue() -> None:
    ex = venue()
    place(ex, sell("a1", 100, 3))  # inside the spread
    assert ex.orders["a1"].queue_ahead_lots == 0
    assert fills(ex.on_market(trade(Side.BUY, 101, 2), 1)) == [("a1", 100, 2, 1)]  # a buy through 100


def test_one_print_is_shared_in_price_time_priority_among_our_orders() -> None:
    ex = venue()
    place(ex, buy("b1", 99, 4))
    place(ex, buy("b2", 99, 4))
    place(ex, buy("b0", 100, 2))  # better price: first in line
    # sell 15 at 99: b0 (through) takes 2; at 99 the public 10 ahead go first, then b1 and b2
    assert fills(ex.on_market(trade(Side.SELL, 99, 15), 1)) == [("b0", 100, 2, 0), ("b1", 99, 3, 1)]
    assert fills(ex.on_market(trade(Side.SELL, 99, 2), 2)) == [("b1", 99, 1, 0), ("b2", 99, 1, 3)]


# ------------------------------------------------------------------------------------------------
# order types, fees, rejects
# ------------------------------------------------------------------------------------------------


def test_post_only_crossing_is_rejected() -> None:
    ex = venue()
    for cmd in (buy("b", 101, 1), sell("s", 99, 1), buy("b2", 150, 1)):
        events = place(ex, cmd)
        assert len(events) == 1 and isinstance(events[0], OrderRejected)
        assert events[0].reason == "post_only_would_cross"
    assert not ex.orders and ex.position_lots == 0


def test_ioc_walks_the_book_as_taker_and_expires_the_rest() -> None:
    ex = venue()
    events = place(ex, buy("i1", 101, 10, order_type=OrderType.IOC, post_only=False))
    assert fills(events) == [("i1", 101, 8, 2)]
    assert isinstance(events[-1], OrderCanceled) and events[-1].reason == "ioc_expired"
    taker = events[1]
    assert isinstance(taker, OrderFilled) and taker.liquidity is Liquidity.TAKER
    assert taker.fee_quote == pytest.approx(101 * 8 * 0.002)
    events = place(ex, buy("i2", 102, 10, order_type=OrderType.IOC, post_only=False))
    # our own taker fills do not deplete the replayed book: 101 is still there
    assert fills(events) == [("i2", 101, 8, 2), ("i2", 102, 2, 0)]
    assert not any(isinstance(e, OrderCanceled) for e in events)
    assert ex.position_lots == 18
    assert ex.fees_paid_quote == pytest.approx((101 * 16 + 102 * 2) * 0.002)


def test_ioc_that_does_not_cross_expires_unfilled() -> None:
    ex = venue()
    events = place(ex, sell("i", 100, 3, order_type=OrderType.IOC, post_only=False))
    assert [type(e) for e in events] == [OrderAccepted, OrderCanceled]


def test_market_order_walks_until_the_book_is_exhausted() -> None:
    ex = venue()
    events = place(ex, sell("m", 0, 20, order_type=OrderType.MARKET, post_only=False))
    assert fills(events) == [("m", 99, 10, 10), ("m", 98, 5, 5)]
    assert isinstance(events[-1], OrderCanceled)
    assert ex.position_lots == -15


def test_limit_not_post_only_takes_then_rests_the_remainder() -> None:
    ex = venue()
    events = place(ex, buy("l", 101, 10, post_only=False))
    assert fills(events) == [("l", 101, 8, 2)]
    assert ex.orders["l"].leaves_lots == 2 and ex.orders["l"].queue_ahead_lots == 0
    events = ex.on_market(trade(Side.SELL, 101, 1), 1)
    assert fills(events) == [("l", 101, 1, 1)]
    assert isinstance(events[0], OrderFilled) and events[0].liquidity is Liquidity.MAKER


def test_negative_maker_fee_is_a_rebate() -> None:
    ex = PaperExecution(INST, maker_fee=-0.0001)
    ex.on_market(snapshot(), 0)
    place(ex, buy("b", 100, 2))
    (fill,) = ex.on_market(trade(Side.SELL, 100, 2), 1)
    assert isinstance(fill, OrderFilled) and fill.fee_quote == pytest.approx(-0.02)


@pytest.mark.parametrize(
    ("cmd", "reason"),
    [
        (buy("z", 99, 0), "invalid_size"),
        (buy("z", 0, 1), "invalid_price"),
        (sell("z", 101, 1, reduce_only=True), "reduce_only_would_increase"),
    ],
)
def test_invalid_orders_are_rejected(cmd: PlaceOrder, reason: str) -> None:
    (event,) = place(venue(), cmd)
    assert isinstance(event, OrderRejected) and event.reason == reason


def test_reduce_only_accepted_when_it_reduces() -> None:
    ex = venue()
    place(ex, buy("i", 101, 3, order_type=OrderType.IOC, post_only=False))
    events = place(ex, sell("r", 101, 3, reduce_only=True))
    assert isinstance(events[0], OrderAccepted)
    (event,) = place(ex, sell("r2", 101, 4, reduce_only=True))
    assert isinstance(event, OrderRejected)  # 3 + 4 > position


def test_duplicate_client_id_and_book_not_ready() -> None:
    ex = venue()
    place(ex, buy("b", 99, 1))
    (event,) = place(ex, buy("b", 98, 1))
    assert isinstance(event, OrderRejected) and event.reason == "duplicate_client_id"
    cold = PaperExecution(INST)
    (event,) = place(cold, buy("b", 99, 1))
    assert isinstance(event, OrderRejected) and event.reason == "book_not_ready"


def test_min_notional() -> None:
    inst = Instrument(SYM, InstrumentKind.SPOT, "X", "USDT", 1.0, 1.0, min_notional=500.0)
    ex = PaperExecution(inst)
    ex.on_market(snapshot(), 0)
    (event,) = place(ex, buy("b", 99, 5))  # 495 < 500
    assert isinstance(event, OrderRejected) and event.reason == "min_notional"
    assert isinstance(place(ex, buy("b2", 99, 6))[0], OrderAccepted)


def test_commands_for_another_symbol_are_a_programming_error() -> None:
    with pytest.raises(ValueError):
        venue().submit(CancelOrder("Y/USDT", "x"), 0)


# ------------------------------------------------------------------------------------------------
# cancels and latency
# ------------------------------------------------------------------------------------------------


def test_cancel_live_unknown_and_cancel_all() -> None:
    ex = venue()
    place(ex, buy("b1", 99, 1))
    place(ex, buy("b2", 98, 1))
    place(ex, sell("a1", 102, 1))
    ex.submit(CancelOrder(SYM, "b1"), 1)
    ex.submit(CancelOrder(SYM, "nope"), 1)
    events = ex.advance(1)
    assert isinstance(events[0], OrderCanceled) and events[0].reason == "requested"
    assert isinstance(events[1], CancelRejected) and events[1].client_id == "nope"
    ex.submit(CancelAll(None), 2)
    events = ex.advance(2)
    assert sorted(e.client_id for e in events if isinstance(e, OrderCanceled)) == ["a1", "b2"]
    assert ex.open_orders() == []


def test_latency_delays_arrival_and_reports() -> None:
    ex = venue(order_latency_ns=10, report_latency_ns=5)
    ex.submit(buy("b", 100, 2), 0)
    assert ex.next_due_ns() == 10
    assert ex.on_market(trade(Side.SELL, 100, 5), 9) == []  # before the order arrived: no fill
    assert ex.advance(14) == []  # accepted at 10, reported at 15
    (ack,) = ex.advance(15)
    assert isinstance(ack, OrderAccepted) and (ack.ts_venue_ns, ack.ts_recv_ns) == (10, 15)
    assert ex.on_market(trade(Side.SELL, 100, 1), 20) == []  # filled at 20 ...
    assert ex.position_lots == 1  # ... the venue already knows ...
    (fill,) = ex.advance(25)  # ... and we hear of it at 25
    assert isinstance(fill, OrderFilled) and (fill.ts_venue_ns, fill.ts_recv_ns) == (20, 25)
    assert ex.next_due_ns() is None


def test_cancel_racing_a_fill_is_rejected() -> None:
    ex = venue(order_latency_ns=10)
    ex.submit(buy("b", 100, 1), 0)
    ex.advance(10)
    ex.submit(CancelOrder(SYM, "b"), 11)  # arrives at 21
    fill_events = ex.on_market(trade(Side.SELL, 100, 1), 15)
    assert fills(fill_events) == [("b", 100, 1, 0)]
    (event,) = ex.advance(21)
    assert isinstance(event, CancelRejected)


# ------------------------------------------------------------------------------------------------
# invariants
# ------------------------------------------------------------------------------------------------

ops = st.lists(
    st.one_of(
        st.tuples(
            st.just("place"),
            st.sampled_from([Side.BUY, Side.SELL]),
            st.integers(94, 106),
            st.integers(1, 8),
            st.sampled_from([OrderType.LIMIT, OrderType.LIMIT, OrderType.IOC]),
        ),
        st.tuples(st.just("trade"), st.sampled_from([Side.BUY, Side.SELL]), st.integers(94, 106), st.integers(1, 12)),
        st.tuples(st.just("level"), st.sampled_from([Side.BUY, Side.SELL]), st.integers(0, 4), st.integers(0, 15)),
        st.tuples(st.just("cancel"), st.integers(0, 20)),
    ),
    max_size=60,
)


@settings(max_examples=300)
@given(ops)
def test_invariants(operations: list[tuple]) -> None:  # type: ignore[type-arg]
    ex = venue()
    placed: dict[str, PlaceOrder] = {}
    filled: dict[str, int] = {}
    signed_fills = 0
    now = 0
    # resting orders at, behind and away from the touch, so that most trades reach one of them
    start = [("place", Side.BUY, 99, 3, OrderType.LIMIT), ("place", Side.BUY, 97, 6, OrderType.LIMIT)]
    start += [("place", Side.SELL, 101, 3, OrderType.LIMIT), ("place", Side.SELL, 103, 6, OrderType.LIMIT)]
    for op in start + operations:
        now += 1
        if op[0] == "place":
            _, side, price, size, kind = op
            cmd = PlaceOrder(SYM, f"o{len(placed)}", side, price, size, kind, post_only=kind is OrderType.LIMIT)
            placed[cmd.client_id] = cmd
            ex.submit(cmd, now)
            events = ex.advance(now)
            trade_print = None
        elif op[0] == "trade":
            trade_print = trade(op[1], op[2], op[3])
            events = ex.on_market(trade_print, now)
        elif op[0] == "level":
            # keep the replayed book uncrossed: bids at 95..99, asks at 101..105
            price = 99 - op[2] if op[1] is Side.BUY else 101 + op[2]
            events = ex.on_market(level(ex, op[1], price, op[3]), now)
            trade_print = None
        else:
            ex.submit(CancelOrder(SYM, f"o{op[1]}"), now)
            events = ex.advance(now)
            trade_print = None
        maker_volume = 0
        for event in events:
            if not isinstance(event, OrderFilled):
                continue
            order = placed[event.client_id]
            filled[event.client_id] = filled.get(event.client_id, 0) + event.size_lots
            signed_fills += event.side.sign * event.size_lots
            # filled <= order size, and leaves is what remains
            assert filled[event.client_id] <= order.size_lots
            assert event.leaves_lots == order.size_lots - filled[event.client_id]
            if event.liquidity is Liquidity.MAKER:
                # no maker fill without a trade reaching the order's price from the other side
                assert trade_print is not None and trade_print.aggressor is order.side.opposite
                reaches = (
                    trade_print.price_ticks <= order.price_ticks
                    if order.side is Side.BUY
                    else (trade_print.price_ticks >= order.price_ticks)
                )
                assert reaches and event.price_ticks == order.price_ticks
                maker_volume += event.size_lots
        if trade_print is not None:
            assert maker_volume <= trade_print.size_lots
        # positions = sum of fills
        assert ex.position_lots == signed_fills
        for order in ex.orders.values():
            assert 0 <= order.queue_ahead_lots <= max(order.level_lots, 0)
            assert 0 < order.leaves_lots <= order.size_lots


@settings(max_examples=200)
@given(ops, st.integers(0, 3), st.integers(0, 3))
def test_wake_ns_is_the_earliest_pending_arrival_or_answer(
    operations: list[tuple], order_ns: int, report_ns: int
) -> None:  # type: ignore[type-arg]
    """The replay skips `advance` while `now < wake_ns`: nothing may be pending before it, and
    `advance(wake_ns)` must act (execute a command or deliver an answer)."""
    ex = venue(order_latency_ns=order_ns, report_latency_ns=report_ns)
    for i, (side, price) in enumerate([(Side.BUY, 99), (Side.BUY, 98), (Side.SELL, 101), (Side.SELL, 102)]):
        ex.submit(PlaceOrder(SYM, f"r{i}", side, price, 4), 0)  # resting at the touch: trades reach them
    ex.advance(10)
    assert len(ex.orders) == 4 and ex.next_due_ns() is None
    now = 10
    for op in operations:
        now += 1
        if op[0] == "place":
            _, side, price, size, kind = op
            ex.submit(PlaceOrder(SYM, f"o{now}", side, price, size, kind, post_only=kind is OrderType.LIMIT), now)
        elif op[0] == "cancel":
            ex.submit(CancelOrder(SYM, f"o{op[1]}"), now)
        elif op[0] == "trade":
            ex.on_market(trade(op[1], op[2], op[3]), now)
        else:
            ex.on_market(level(ex, op[1], 99 - op[2] if op[1] is Side.BUY else 101 + op[2], op[3]), now)
        pending = [t for t, _, _ in ex._inbox] + [t for t, _, _ in ex._outbox]
        assert ex.next_due_ns() == (min(pending) if pending else None)
        if pending and now % 3 == 0:  # now and then, jump to the wake time: something happens there
            wake = ex.wake_ns
            inbox, outbox = len(ex._inbox), len(ex._outbox)
            events = ex.advance(wake)
            assert events or len(ex._inbox) < inbox or len(ex._outbox) != outbox
            now = max(now, wake)


def _feed(ex: PaperExecution, event: Event, now: int, other: OrderBook | None) -> list[Event]:
    """`on_market`, or, for a venue following `other`: before, the other reader's apply, after."""
    if other is None:
        return ex.on_market(event, now)
    ex.before_market(now)
    version = other.version
    if isinstance(event, BookDelta | BookSnapshot):
        other.apply(event)
    return ex.after_market(event, other.version != version, now)


def _orders(ex: PaperExecution) -> list[tuple]:  # type: ignore[type-arg]
    return [
        (o.client_id, o.side, o.price_ticks, o.leaves_lots, o.queue_ahead_lots, o.level_lots)
        for o in ex.orders.values()
    ]


@settings(max_examples=200)
@given(ops, st.integers(0, 2), st.integers(0, 2))
def test_a_venue_reading_another_readers_book_answers_as_one_with_its_own(
    operations: list[tuple], order_ns: int, report_ns: int
) -> None:  # type: ignore[type-arg]
    """`follow` (a replay's venue reading the engine's book): the same answers, at the same times, and
    the same orders, queues included, as a venue applying every event to its own book."""
    own = PaperExecution(INST, order_latency_ns=order_ns, report_latency_ns=report_ns)
    follower = PaperExecution(INST, order_latency_ns=order_ns, report_latency_ns=report_ns)
    other = OrderBook(SYM)
    assert follower.follow(other) and follower.book is other
    start = [("place", Side.BUY, 99, 3, OrderType.LIMIT), ("place", Side.SELL, 101, 3, OrderType.LIMIT)]
    venues = ((own, None), (follower, other))
    for ex, _ in venues:
        ex.submit(PlaceOrder(SYM, "early", Side.BUY, 99, 1), 0)  # meets the book before the snapshot, or not
    early = [_feed(ex, snapshot(), 1, book) for ex, book in venues]
    assert early[0] == early[1]
    now = 1
    for op in start + operations:
        now += 1
        answers = []
        for ex, book in venues:
            if op[0] == "place":
                _, side, price, size, kind = op
                ex.submit(PlaceOrder(SYM, f"o{now}", side, price, size, kind, post_only=kind is OrderType.LIMIT), now)
                answers.append(ex.advance(now))
            elif op[0] == "cancel":
                ex.submit(CancelOrder(SYM, f"o{op[1]}"), now)
                answers.append(ex.advance(now))
            elif op[0] == "trade":
                answers.append(_feed(ex, trade(op[1], op[2], op[3]), now, book))
            else:
                delta = level(ex, op[1], 99 - op[2] if op[1] is Side.BUY else 101 + op[2], op[3])
                answers.append(_feed(ex, delta, now, book))
        assert answers[0] == answers[1]
        assert _orders(own) == _orders(follower)
        assert own.wake_ns == follower.wake_ns
    assert follower.book is other and other.version == own.book.version > 0


def test_a_venue_follows_only_an_untouched_book_of_its_symbol() -> None:
    ex = PaperExecution(INST)
    assert not ex.follow(OrderBook("Y/USDT"))
    touched = OrderBook(SYM)
    touched.apply(snapshot())
    assert not ex.follow(touched)
    ex.on_market(snapshot(), 0)  # its own book is no longer untouched either
    assert not ex.follow(OrderBook(SYM))
    assert ex.book.version == 1 and ex.book.bid_level_count == 2
