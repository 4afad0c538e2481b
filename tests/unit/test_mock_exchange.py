"""The synchronous mock exchange: matching, queue position, fees, latency, refusals, feed, determinism."""

from __future__ import annotations

import math

import pytest

from bot.config import MockExchangeConfig, MockLatencyConfig
from bot.domain import (
    BookDelta,
    BookSnapshot,
    CancelAll,
    CancelOrder,
    CancelRejected,
    Event,
    FundingPaid,
    Liquidity,
    MarkPrice,
    OrderAccepted,
    OrderCanceled,
    OrderFilled,
    OrderRejected,
    OrderType,
    PlaceOrder,
    PositionSnapshot,
    RequestSnapshot,
    Side,
    TradePrint,
)
from bot.venues.mock import MockExchange
from bot.venues.mock.presets import quiet_config

SPOT = "TOKEN/USDT"
PERP = "TOKEN/USDT:USDT"
MS = 1_000_000
S = 1_000_000_000


def run(ex: MockExchange, until_ns: int) -> list[Event]:
    return ex.advance(until_ns)


def of(events: list[Event], kind: type) -> list:  # type: ignore[type-arg]
    return [e for e in events if isinstance(e, kind)]


@pytest.fixture
def ex() -> MockExchange:
    exchange = MockExchange(quiet_config())
    exchange.advance(1 * MS)  # drain the start-up snapshots
    return exchange


def test_start_emits_snapshots_positions_and_mark() -> None:
    events = MockExchange(quiet_config()).advance(50 * MS)
    assert {e.symbol for e in of(events, BookSnapshot)} == {SPOT, PERP}
    assert {e.symbol for e in of(events, PositionSnapshot)} == {SPOT, PERP}
    assert of(events, MarkPrice)[0].mark_ticks == 10005  # 100 * (1 + 5 bps) on a 0.01 grid


def test_our_bid_queues_behind_resting_size_and_fills_after_it(ex: MockExchange) -> None:
    best_bid, resting = ex.snapshot(SPOT, 0).bids[0]
    ex.submit(PlaceOrder(SPOT, "b1", Side.BUY, best_bid, 50), 1 * MS)
    events = run(ex, 100 * MS)
    assert [e.client_id for e in of(events, OrderAccepted)] == ["b1"]
    assert ex.queue_ahead_lots(SPOT, "b1") == resting

    ex.simulate_taker(SPOT, Side.SELL, resting - 1, limit_ticks=best_bid)
    assert not of(run(ex, 200 * MS), OrderFilled)
    assert ex.queue_ahead_lots(SPOT, "b1") == 1

    ex.simulate_taker(SPOT, Side.SELL, 11, limit_ticks=best_bid)  # 1 lot ahead of us, then 10 of ours
    (fill,) = of(run(ex, 300 * MS), OrderFilled)
    assert (fill.client_id, fill.price_ticks, fill.size_lots, fill.leaves_lots) == ("b1", best_bid, 10, 40)
    assert fill.liquidity is Liquidity.MAKER
    assert fill.fee_quote == pytest.approx(best_bid * 0.01 * 10 * 0.01 * 0.0001)


def test_refill_joins_the_queue_behind_us(ex: MockExchange) -> None:
    best_bid, resting = ex.snapshot(SPOT, 0).bids[0]
    ex.submit(PlaceOrder(SPOT, "b1", Side.BUY, best_bid, 50), 1 * MS)
    run(ex, 100 * MS)
    ex.simulate_taker(SPOT, Side.SELL, resting, limit_ticks=best_bid)  # all background ahead of us gone
    run(ex, 30 * S)  # the background refills the level
    assert ex.snapshot(SPOT, 0).bids[0] == (best_bid, resting + 50)
    assert ex.queue_ahead_lots(SPOT, "b1") == 0


def test_price_then_time_priority_among_our_orders(ex: MockExchange) -> None:
    best_bid, resting = ex.snapshot(SPOT, 0).bids[0]
    ex.submit(PlaceOrder(SPOT, "first", Side.BUY, best_bid, 10), 1 * MS)
    ex.submit(PlaceOrder(SPOT, "second", Side.BUY, best_bid, 10), 2 * MS)
    ex.submit(PlaceOrder(SPOT, "better", Side.BUY, best_bid + 1, 10), 3 * MS)
    run(ex, 100 * MS)
    ex.simulate_taker(SPOT, Side.SELL, 10 + resting + 15, limit_ticks=best_bid)
    fills = of(run(ex, 200 * MS), OrderFilled)
    assert [(f.client_id, f.size_lots) for f in fills] == [("better", 10), ("first", 10), ("second", 5)]


def test_post_only_that_would_cross_is_rejected(ex: MockExchange) -> None:
    best_ask = ex.snapshot(SPOT, 0).asks[0][0]
    ex.submit(PlaceOrder(SPOT, "x", Side.BUY, best_ask, 10, post_only=True), 1 * MS)
    (rej,) = of(run(ex, 100 * MS), OrderRejected)
    assert rej.reason == "post_only_would_cross"
    assert ex.open_orders() == []


def test_ioc_walks_the_book_pays_taker_fee_and_expires_the_rest(ex: MockExchange) -> None:
    (a0, s0), (a1, s1) = ex.snapshot(SPOT, 0).asks[:2]
    ex.submit(PlaceOrder(SPOT, "ioc", Side.BUY, a1, s0 + s1 + 7, OrderType.IOC, post_only=False), 1 * MS)
    events = run(ex, 100 * MS)
    fills = of(events, OrderFilled)
    assert [(f.price_ticks, f.size_lots) for f in fills] == [(a0, s0), (a1, s1)]
    assert all(f.liquidity is Liquidity.TAKER for f in fills)
    for f in fills:
        assert f.fee_quote == pytest.approx(f.price_ticks * 0.01 * f.size_lots * 0.01 * 0.0005)
    (canceled,) = of(events, OrderCanceled)
    assert (canceled.client_id, canceled.reason) == ("ioc", "ioc_expired")
    prints = of(events, TradePrint)
    assert [(t.price_ticks, t.size_lots, t.aggressor) for t in prints] == [(a0, s0, Side.BUY), (a1, s1, Side.BUY)]


def test_market_sell_walks_bids(ex: MockExchange) -> None:
    (b0, s0), (b1, _) = ex.snapshot(SPOT, 0).bids[:2]
    ex.submit(PlaceOrder(SPOT, "mkt", Side.SELL, 0, s0 + 3, OrderType.MARKET, post_only=False), 1 * MS)
    fills = of(run(ex, 100 * MS), OrderFilled)
    assert [(f.price_ticks, f.size_lots) for f in fills] == [(b0, s0), (b1, 3)]
    assert ex.positions()[SPOT] == -(s0 + 3)


def test_self_trade_prevention_expires_the_incoming_order(ex: MockExchange) -> None:
    best_ask = ex.snapshot(SPOT, 0).asks[0][0]
    ex.submit(PlaceOrder(SPOT, "ask", Side.SELL, best_ask - 1, 10), 1 * MS)
    ex.submit(PlaceOrder(SPOT, "buy", Side.BUY, best_ask + 3, 5, OrderType.IOC, post_only=False), 2 * MS)
    events = run(ex, 100 * MS)
    assert not of(events, OrderFilled)
    (canceled,) = of(events, OrderCanceled)
    assert (canceled.client_id, canceled.reason) == ("buy", "self_trade_prevented")
    assert [o.client_id for o in ex.open_orders()] == ["ask"]


def test_limit_crossing_takes_then_rests(ex: MockExchange) -> None:
    a0, s0 = ex.snapshot(SPOT, 0).asks[0]
    ex.submit(PlaceOrder(SPOT, "l", Side.BUY, a0, s0 + 20, post_only=False), 1 * MS)
    events = run(ex, 50 * MS)  # before the next market step
    (fill,) = of(events, OrderFilled)
    assert (fill.size_lots, fill.leaves_lots, fill.liquidity) == (s0, 20, Liquidity.TAKER)
    assert ex.snapshot(SPOT, 0).bids[0] == (a0, 20)
    # a bid above fair value is then picked off by the background makers refilling their ask
    fills = of(run(ex, 10 * S), OrderFilled)
    assert sum(f.size_lots for f in fills) == 20
    assert all(f.liquidity is Liquidity.MAKER for f in fills)


def test_constant_latency_on_ack(ex: MockExchange) -> None:
    ex.submit(PlaceOrder(SPOT, "b", Side.BUY, 9990, 100), 7 * MS)
    (ack,) = of(run(ex, 100 * MS), OrderAccepted)
    assert ack.ts_venue_ns == 17 * MS  # 10 ms to the matching engine
    assert ack.ts_recv_ns == 22 * MS  # 5 ms back


def test_commands_reach_the_engine_in_send_order() -> None:
    ex = MockExchange(quiet_config(latency=MockLatencyConfig(order_median_ms=20, order_sigma=1.0)))
    for i in range(30):
        ex.submit(PlaceOrder(SPOT, f"o{i}", Side.BUY, 9990, 100), 1 * MS + i)
    acks = of(ex.advance(5 * S), OrderAccepted)
    assert [a.client_id for a in acks] == [f"o{i}" for i in range(30)]
    assert [a.ts_venue_ns for a in acks] == sorted(a.ts_venue_ns for a in acks)


@pytest.mark.parametrize(
    ("command", "reason"),
    [
        (PlaceOrder(SPOT, "tiny", Side.BUY, 9990, 1), "min_notional"),
        (PlaceOrder(SPOT, "huge", Side.SELL, 10_010, 1_000_001), "insufficient_balance"),
        (PlaceOrder(SPOT, "rich", Side.BUY, 9990, 200_000_000), "insufficient_balance"),
        (PlaceOrder(PERP, "ro", Side.SELL, 10_100, 100, reduce_only=True), "reduce_only_would_increase"),
        (PlaceOrder("NOPE/USDT", "x", Side.BUY, 9990, 100), "unknown_symbol"),
        (PlaceOrder(SPOT, "zero", Side.BUY, 9990, 0), "invalid_size"),
        (PlaceOrder(SPOT, "neg", Side.BUY, -5, 100), "invalid_price"),
    ],
)
def test_refusals(ex: MockExchange, command: PlaceOrder, reason: str) -> None:
    ex.submit(command, 1 * MS)
    (rej,) = of(run(ex, 100 * MS), OrderRejected)
    assert (rej.client_id, rej.reason) == (command.client_id, reason)


def test_duplicate_client_id_and_cancels(ex: MockExchange) -> None:
    ex.submit(PlaceOrder(SPOT, "a", Side.BUY, 9990, 100), 1 * MS)
    ex.submit(PlaceOrder(SPOT, "a", Side.BUY, 9991, 100), 2 * MS)
    ex.submit(CancelOrder(SPOT, "zzz"), 3 * MS)
    events = run(ex, 100 * MS)
    assert [r.reason for r in of(events, OrderRejected)] == ["duplicate_client_id"]
    assert [r.reason for r in of(events, CancelRejected)] == ["unknown_order"]
    ex.submit(CancelOrder(SPOT, "a"), 101 * MS)
    ex.submit(PlaceOrder(PERP, "p", Side.SELL, 10_100, 100), 102 * MS)
    ex.submit(CancelAll(), 103 * MS)
    events = run(ex, 200 * MS)
    assert sorted((c.client_id, c.reason) for c in of(events, OrderCanceled)) == [
        ("a", "requested"),
        ("p", "requested"),
    ]
    assert ex.open_orders() == []


def test_balances_follow_fills(ex: MockExchange) -> None:
    a0, s0 = ex.snapshot(SPOT, 0).asks[0]
    before = ex.balances()
    ex.submit(PlaceOrder(SPOT, "t", Side.BUY, a0, s0, OrderType.IOC, post_only=False), 1 * MS)
    (fill,) = of(run(ex, 100 * MS), OrderFilled)
    after = ex.balances()
    notional = a0 * 0.01 * s0 * 0.01
    assert after["TOKEN"] - before["TOKEN"] == pytest.approx(s0 * 0.01)
    assert after["USDT"] - before["USDT"] == pytest.approx(-notional - fill.fee_quote)


def test_perp_funding_sign_and_amount() -> None:
    ex = MockExchange(quiet_config(funding_interval_s=60.0))
    a0, s0 = ex.snapshot(PERP, 0).asks[0]
    ex.submit(PlaceOrder(PERP, "long", Side.BUY, a0, s0, OrderType.IOC, post_only=False), 1 * MS)
    events = ex.advance(61 * S)
    (funding,) = of(events, FundingPaid)
    mark_px = 100.05
    assert funding.rate == pytest.approx(0.0005)  # the constant 5 bps basis
    assert funding.amount_quote == pytest.approx(-s0 * 0.01 * mark_px * 0.0005)  # a long pays
    assert ex.accounts.funding_quote == pytest.approx(funding.amount_quote)


def test_request_snapshot_and_position_after_fill(ex: MockExchange) -> None:
    ex.submit(RequestSnapshot(SPOT, "test"), 1 * MS)
    snaps = of(run(ex, 100 * MS), BookSnapshot)
    assert [s.symbol for s in snaps] == [SPOT]
    a0 = ex.snapshot(SPOT, 0).asks[0][0]
    ex.submit(PlaceOrder(SPOT, "t", Side.BUY, a0, 10, OrderType.IOC, post_only=False), 101 * MS)
    positions = [p for p in of(run(ex, 200 * MS), PositionSnapshot) if p.symbol == SPOT]
    assert positions[-1].position_lots == 10


def apply_book(book: dict[str, dict[int, int]], bids: tuple, asks: tuple) -> None:  # type: ignore[type-arg]
    for side, levels in (("bids", bids), ("asks", asks)):
        for price, size in levels:
            if size == 0:
                book[side].pop(price, None)
            else:
                book[side][price] = size


def test_published_book_reconstructs_the_exchange_book() -> None:
    """Snapshot + contiguous deltas == the exchange's book, and it never crosses (no faults on)."""
    cfg = MockExchangeConfig(latency=MockLatencyConfig(feed_ms=0))
    ex = MockExchange(cfg, seed=7)
    books: dict[str, dict[str, dict[int, int]]] = {}
    last_seq: dict[str, int] = {}
    t = 0
    for i in range(3000):  # five simulated minutes, with our quotes coming and going
        t += 100 * MS
        if i % 10 == 0:
            mid = round(ex.fair_value_px(SPOT) * 100)
            ex.submit(CancelAll(SPOT), t)
            ex.submit(PlaceOrder(SPOT, f"b{i}", Side.BUY, mid - 1, 50), t)
            ex.submit(PlaceOrder(SPOT, f"a{i}", Side.SELL, mid + 1, 50), t)
        for e in ex.advance(t):
            if isinstance(e, BookSnapshot):
                books[e.symbol] = {"bids": dict(e.bids), "asks": dict(e.asks)}
                last_seq[e.symbol] = e.seq
            elif isinstance(e, BookDelta):
                assert e.first_seq == last_seq[e.symbol] + 1
                last_seq[e.symbol] = e.last_seq
                apply_book(books[e.symbol], e.bids, e.asks)
                book = books[e.symbol]
                assert max(book["bids"]) < min(book["asks"])
    for symbol in (SPOT, PERP):
        snap = ex.snapshot(symbol, t)
        assert books[symbol] == {"bids": dict(snap.bids), "asks": dict(snap.asks)}


def scripted_run(seed: int, cfg: MockExchangeConfig | None = None, seconds: int = 60) -> list[Event]:
    """A fixed little strategy: requote both sides every second around the last trade."""
    ex = MockExchange(cfg or MockExchangeConfig(), seed=seed)
    out: list[Event] = []
    last_px = 10_000
    for step in range(seconds * 10):
        t = (step + 1) * 100 * MS
        events = ex.advance(t)
        out.extend(events)
        for e in events:
            if isinstance(e, TradePrint) and e.symbol == SPOT:
                last_px = e.price_ticks
        if step % 10 == 0:
            ex.submit(CancelAll(SPOT), t)
            ex.submit(PlaceOrder(SPOT, f"b{step}", Side.BUY, last_px - 2, 100), t)
            ex.submit(PlaceOrder(SPOT, f"a{step}", Side.SELL, last_px + 2, 100), t)
    return out


def test_same_seed_same_events_and_different_seed_differs() -> None:
    first, second = scripted_run(3), scripted_run(3)
    assert first == second
    assert of(first, OrderFilled)  # the run really traded
    assert scripted_run(4) != first


def test_informed_takers_trade_toward_the_future_fair_value() -> None:
    """Informed buys are followed by a rise of the fair value over the horizon, sells by a fall."""
    cfg = MockExchangeConfig(
        informed_horizon_s=5.0,
        spot=MockExchangeConfig().spot.model_copy(update={"informed_share": 0.9, "taker_a_per_s": 0.2}),
    )
    ex = MockExchange(cfg, seed=11)
    t = 0
    fv: list[float] = []
    prints: list[tuple[int, Side]] = []
    for _ in range(8 * 60 * 10):  # 8 minutes
        t += 100 * MS
        fv.append(ex.fair_value_px(SPOT))
        trades = [e for e in ex.advance(t) if isinstance(e, TradePrint) and e.symbol == SPOT]
        prints += [(e.ts_venue_ns, e.aggressor) for e in trades]
    edges = []
    for ts, side in prints:
        i = ts // (100 * MS)
        if i + 50 < len(fv):
            edges.append(side.sign * (fv[i + 50] - fv[i]))
    assert len(edges) > 100
    assert sum(e > 0 for e in edges) / len(edges) > 0.7
    assert math.fsum(edges) > 0
