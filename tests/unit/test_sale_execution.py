"""The deal's initial sale carried out by the running bot (issue #15): passive post-only sells on the
main spot market paced by the schedule, never below the floor, booked outside the quoter's inventory
but in the net delta (the perp covers it), recorded as `sold` deal events, and not sold again after a
restart."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.core.deal import DealState
from bot.core.engine import Engine, EngineParams
from bot.core.estimators import ArrivalEstimator, SigmaEstimator
from bot.core.execution import NS_PER_DAY_INT, SaleExecutor, SaleParams
from bot.core.hedger import HedgeParams
from bot.core.quoting import QuoteParams
from bot.domain import (
    BookSnapshot,
    Command,
    Instrument,
    InstrumentKind,
    Liquidity,
    OrderAccepted,
    OrderCanceled,
    OrderFilled,
    PlaceOrder,
    PositionSnapshot,
    Side,
    Timer,
)
from bot.runtime.ledger import Ledger, LedgerObserver

SPOT = Instrument("TOKEN/USDT", InstrumentKind.SPOT, "TOKEN", "USDT", tick_size=0.01, lot_size=0.01)
PERP = Instrument("TOKEN/USDT:USDT", InstrumentKind.PERP, "TOKEN", "USDT", tick_size=0.01, lot_size=0.01)
DAY = NS_PER_DAY_INT
SEC = 1_000_000_000
PARAMS = SaleParams(total_base=10.0, slice_base=4.0, start_ns=0, floor_px=95.0, child_base=0.5)


def test_pacing_by_hand() -> None:
    sale = SaleExecutor(PARAMS, SPOT)
    assert sale.target_base(DAY // 4) == pytest.approx(1.0)  # a quarter of day 0's 4 tokens
    assert sale.due_base(DAY // 4) == pytest.approx(1.0)
    assert sale.target_base(10 * DAY) == 10.0  # capped at the total
    # a bot down for two days catches up at most its day's slice, not the whole backlog
    behind = SaleExecutor(PARAMS, SPOT, sold_by_day={0: 1.0})
    assert behind.target_base(2 * DAY + DAY // 2) == pytest.approx(10.0)
    assert behind.due_base(2 * DAY + DAY // 2) == pytest.approx(4.0)  # day 2's slice, none sold in it
    today = SaleExecutor(PARAMS, SPOT, sold_by_day={0: 1.0, 2: 3.5})
    assert today.due_base(2 * DAY + DAY // 2) == pytest.approx(0.5)
    done = SaleExecutor(PARAMS, SPOT, sold_by_day={0: 4.0, 1: 4.0, 2: 2.0})
    assert done.done and done.due_base(5 * DAY) == 0.0


def test_orders_are_passive_inside_the_spread_and_never_below_the_floor() -> None:
    sale = SaleExecutor(PARAMS, SPOT, client_id_prefix="s")
    (order,) = sale.on_timer(DAY // 4, 9_990, 10_010, can_trade=True)
    assert isinstance(order, PlaceOrder)
    assert (order.side, order.price_ticks, order.size_lots, order.post_only, order.tag) == (
        Side.SELL,
        10_009,  # one tick inside the best ask, above the bid
        50,  # the 0.5-token child, less than the 1.0 due
        True,
        "sale",
    )
    assert sale.owns(order.client_id) and not sale.owns("q-1")
    assert sale.on_timer(DAY // 4 + 1, 9_990, 10_010, can_trade=True) == []  # one at a time
    sale.on_order_event(OrderAccepted(SPOT.symbol, order.client_id, "v1", 0, 0))
    assert sale.on_timer(DAY // 4 + 2, 9_990, 10_009, True) == []  # our own order is the best ask: kept
    (cancel,) = sale.on_timer(DAY // 4 + 3, 9_990, 10_005, True)  # someone undercut it: re-placed
    assert cancel.client_id == order.client_id
    sale.on_order_event(OrderCanceled(SPOT.symbol, order.client_id, "requested", 0, 0))
    # a one-tick spread: join the ask; a market below the floor: rest at the floor
    (joined,) = sale.on_timer(DAY // 4 + 4, 10_004, 10_005, True)
    assert isinstance(joined, PlaceOrder) and joined.price_ticks == 10_005
    low = SaleExecutor(PARAMS, SPOT)
    (floor,) = low.on_timer(DAY // 4, 9_000, 9_010, True)
    assert isinstance(floor, PlaceOrder) and floor.price_ticks == 9_500
    assert SaleExecutor(PARAMS, SPOT).on_timer(DAY // 4, 9_990, 10_010, can_trade=False) == []


def make_engine(sale: SaleExecutor) -> Engine:
    params = EngineParams(
        spot=SPOT,
        perp=PERP,
        quote=QuoteParams(order_size_base=1.0, min_spread_bps=10.0),
        hedge=HedgeParams(band_base=0.05, max_retries=1, retry_backoff_ns=1),
        warmup_ns=0,
        sale=sale,
    )
    return Engine(params, SigmaEstimator(0.02, 60.0, 1000), ArrivalEstimator(1.0, 20.0, 300.0, 50), start_ns=0)


def books(engine: Engine, now: int, seq: int) -> None:
    for ins in (SPOT, PERP):
        engine.apply(BookSnapshot(ins.symbol, seq, ((9_990, 50_000),), ((10_010, 50_000),), now, now), now)


def sale_orders(cmds: list[Command]) -> list[PlaceOrder]:
    return [c for c in cmds if isinstance(c, PlaceOrder) and c.tag == "sale"]


def filled(order: PlaceOrder, fill_id: str, now: int, lots: int | None = None) -> OrderFilled:
    size = order.size_lots if lots is None else lots
    leaves = order.size_lots - size
    return OrderFilled(
        order.symbol,
        order.client_id,
        fill_id,
        order.side,
        order.price_ticks,
        size,
        0.01,
        Liquidity.MAKER,
        leaves,
        now,
        now,
    )


def test_engine_sells_books_outside_the_inventory_hedges_and_records(tmp_path: Path) -> None:
    now = DAY // 4
    engine = make_engine(SaleExecutor(PARAMS, SPOT, client_id_prefix="s-r1"))
    books(engine, now, 1)
    (order,) = sale_orders(engine.apply(Timer(now, now), now))
    notes = dict(engine.drain_notes())
    assert notes["deal.sale_order"]["size"] == 0.5
    engine.apply(OrderAccepted(SPOT.symbol, order.client_id, "v1", now, now), now)
    cmds = engine.apply(filled(order, "F1", now), now)
    fill_notes = dict(engine.drain_notes())
    assert fill_notes["order.filled"]["tag"] == "sale"  # what counts our fills by the log sees it
    assert fill_notes["deal.sale_fill"]["sold_base"] == 0.5
    # the sale is a short of 0.5 tokens in the spot position and the net delta, which the hedger
    # covers with a perp buy; the quoter's inventory leaves it out: it does not try to buy it back
    assert engine.portfolio.position_base("TOKEN/USDT") == pytest.approx(-0.5)
    assert engine.inventory_base() == 0.0
    hedge = [c for c in cmds if isinstance(c, PlaceOrder) and c.tag == "hedge"]
    assert hedge and hedge[0].side is Side.BUY and hedge[0].size_lots == 50
    assert engine.apply(filled(order, "F1", now), now) == []  # a duplicate is neither booked nor hedged
    assert engine.portfolio.position_base("TOKEN/USDT") == pytest.approx(-0.5)
    # slippage vs the mid (sold 0.01 above it: +0.005) and the fee are the hedge cost, not spread capture
    pnl = engine.portfolio.pnl()
    assert pnl.hedge_cost_quote == pytest.approx(0.5 * 0.09 - 0.01) and pnl.spread_capture_quote == 0.0
    # the venue's spot position is the same: no mismatch
    for _ in range(2):
        engine.apply(PositionSnapshot(SPOT.symbol, -50, now, now), now)
    assert engine.stats.position_mismatches == 0 and engine.inventory_base() == 0.0
    ledger = Ledger(tmp_path / "l.sqlite")
    LedgerObserver(ledger, "r1").on_batch(engine, now, 0.0)
    (sold,) = ledger.deal_events()
    assert (sold.kind, sold.quantity_base, sold.price_px) == ("sold", 0.5, pytest.approx(100.09))
    ledger.close()
    summary = engine.summary(now)["sale"]
    assert summary["sold_base"] == 0.5 and summary["session_avg_px"] == pytest.approx(100.09)


def test_a_restart_does_not_sell_again_and_carries_the_venue_position(tmp_path: Path) -> None:
    now = DAY // 8  # 0.5 tokens due
    first = make_engine(SaleExecutor(PARAMS, SPOT, client_id_prefix="s-r1"))
    books(first, now, 1)
    (order,) = sale_orders(first.apply(Timer(now, now), now))
    first.apply(filled(order, "F1", now), now)
    ledger = Ledger(tmp_path / "l.sqlite")
    LedgerObserver(ledger, "r1").on_batch(first, now, 0.0)
    state = DealState.from_events(ledger.deal_events())
    ledger.close()
    assert state.sold_base == 0.5
    # restarted a minute later on a venue that kept the position: nothing is due, nothing is placed
    later = now + 60 * SEC
    sale = SaleExecutor(PARAMS, SPOT, client_id_prefix="s-r2", sold_by_day=state.sold_by_day(0), carried_lots=-50)
    second = make_engine(sale)
    second.restore({"TOKEN/USDT": -50})
    books(second, later, 1)
    assert sale_orders(second.apply(Timer(later, later), later)) == []
    assert second.portfolio.position_base("TOKEN/USDT") == pytest.approx(-0.5)
    assert second.inventory_base() == 0.0  # the venue's -0.5 is the earlier run's sale, not inventory
    assert second.summary(later)["sale"]["sold_base"] == 0.5
    # three hours on, the pace has moved on by 0.5 tokens: one child again
    on = now + DAY // 8
    books(second, on, 2)
    (again,) = sale_orders(second.apply(Timer(on, on), on))
    assert again.size_lots == 50 and again.client_id.startswith("s-r2-")


def test_shutdown_cancels_the_sale_order() -> None:
    now = DAY // 4
    engine = make_engine(SaleExecutor(PARAMS, SPOT, client_id_prefix="s"))
    books(engine, now, 1)
    (order,) = sale_orders(engine.apply(Timer(now, now), now))
    engine.apply(OrderAccepted(SPOT.symbol, order.client_id, "v1", now, now), now)
    assert engine.open_order_count() >= 1
    cancels = [c for c in engine.shutdown(now) if getattr(c, "client_id", "") == order.client_id]
    assert len(cancels) == 1
    engine.apply(OrderCanceled(SPOT.symbol, order.client_id, "requested", now, now), now)
    assert engine.p.sale is not None and engine.p.sale.open_orders() == 0


def test_finished_sale_orders_are_pruned_so_memory_stays_flat() -> None:
    """The sale re-places its order whenever it is undercut or ages: a day of that is tens of
    thousands of finished orders (41,499 more live objects in one 3.4-hour run of the 24-hour soak),
    which its order manager kept forever. It keeps the last 10,000, like the quoters'."""
    sale = SaleExecutor(PARAMS, SPOT, client_id_prefix="s")
    now = DAY // 4
    for i in range(12_000):
        (order,) = sale.on_timer(now, 9_990, 10_010, can_trade=True)
        assert isinstance(order, PlaceOrder)
        sale.on_order_event(OrderAccepted(SPOT.symbol, order.client_id, f"v{i}", now, now))
        (cancel,) = sale.on_timer(now + 1, 9_990, 10_005, True)  # undercut: canceled, re-placed next
        sale.on_order_event(OrderCanceled(SPOT.symbol, cancel.client_id, "requested", now, now))
        now += 2
    sale.on_timer(now, 9_990, 10_010, can_trade=True)
    assert len(sale.orders.orders) <= 10_001


def test_a_halted_guard_stops_the_sale_as_it_stops_the_quotes() -> None:
    """A drawdown halt pulls every order on the market, the sale's too (regression: the sale order
    stayed open through the halt, the 24-h soak's `open_after_pause` violations s-rN-x)."""
    now = DAY // 4
    engine = make_engine(SaleExecutor(PARAMS, SPOT, client_id_prefix="s"))
    books(engine, now, 1)
    (order,) = sale_orders(engine.apply(Timer(now, now), now))
    engine.apply(OrderAccepted(SPOT.symbol, order.client_id, "v1", now, now), now)
    # two breaches within the halt window: the shared loss guard halts for good
    loss = engine.loss
    loss.update(0.0, now)
    loss.update(-1e9, now + 1)
    resume = now + 1 + round(engine.p.risk.pause_cooldown_s * SEC)
    assert resume - now < engine.p.risk.halt_window_s * SEC
    loss.update(0.0, resume)  # the cooldown over: active again
    loss.update(-1e9, resume + 1)
    assert loss.state == "halted"
    now = resume + 2 * SEC
    books(engine, now, 2)
    engine.requote(now)  # the guard's decision is now a halt
    assert engine.quoter.risk_decision.halt
    cmds = engine.apply(Timer(now, now), now)
    assert [getattr(c, "client_id", None) for c in cmds if type(c).__name__ == "CancelOrder"] == [order.client_id]
    engine.apply(OrderCanceled(SPOT.symbol, order.client_id, "requested", now, now), now)
    for step in range(1, 5):  # and no new sale order while halted
        t = now + step * SEC
        assert sale_orders(engine.apply(Timer(t, t), t)) == []
    assert engine.p.sale is not None and engine.p.sale.open_orders() == 0
