"""Engine + portfolio + hedger: one position book, the deal's deltas hedged, halts that heal,
restart restore, and obligation compliance in the summary."""

from __future__ import annotations

import math

import pytest

from bot.core.engine import Engine, EngineParams
from bot.core.estimators import ArrivalEstimator, SigmaEstimator
from bot.core.hedger import HedgeParams
from bot.core.lp import ConstantProductLp
from bot.core.obligations import Obligation
from bot.core.options import CallOption, call_greeks
from bot.core.quoting import QuoteParams
from bot.core.risk import RiskParams
from bot.domain import (
    BookSnapshot,
    Command,
    Instrument,
    InstrumentKind,
    Liquidity,
    OrderAccepted,
    OrderCanceled,
    OrderFilled,
    OrderRejected,
    PlaceOrder,
    PositionSnapshot,
    Side,
    Timer,
)

SPOT = Instrument("TOKEN/USDT", InstrumentKind.SPOT, "TOKEN", "USDT", tick_size=0.01, lot_size=0.01)
PERP = Instrument("TOKEN/USDT:USDT", InstrumentKind.PERP, "TOKEN", "USDT", tick_size=0.01, lot_size=0.01)
SEC = 1_000_000_000
YEAR_NS = 365 * 24 * 3600 * SEC


def make_engine(**overrides: object) -> Engine:
    params = EngineParams(
        spot=SPOT,
        perp=PERP,
        quote=QuoteParams(order_size_base=1.0, min_spread_bps=10.0),
        hedge=HedgeParams(band_base=0.5, max_retries=1, retry_backoff_ns=1),
        warmup_ns=0,
        **overrides,  # type: ignore[arg-type]
    )
    return Engine(params, SigmaEstimator(0.02, 60.0, 1000), ArrivalEstimator(1.0, 20.0, 300.0, 50), start_ns=0)


def books(engine: Engine, now: int, seq: int = 100) -> None:
    for ins in (SPOT, PERP):
        engine.apply(BookSnapshot(ins.symbol, seq, ((9_990, 50_000),), ((10_010, 50_000),), now, now), now)


def tick(now: int) -> Timer:
    return Timer(now, now)


def hedges(cmds: list[Command]) -> list[PlaceOrder]:
    return [c for c in cmds if isinstance(c, PlaceOrder) and c.tag == "hedge"]


def test_call_deltas_are_hedged_with_a_perp_short() -> None:
    # calls on 10 tokens at strike 100, one year, 80 % vol, marked at the spot mid of 100.00
    call = CallOption(strike_px=100.0, quantity_base=10.0, expiry_ns=YEAR_NS)
    engine = make_engine(options=(call,), option_vol_annual=0.8)
    books(engine, SEC)
    cmds = engine.apply(tick(SEC), SEC)
    expected_delta = 10.0 * call_greeks(100.0, 100.0, 0.8, (YEAR_NS - SEC) / YEAR_NS).delta
    assert engine.portfolio.option_delta_base() == pytest.approx(expected_delta, rel=1e-9)
    (hedge,) = hedges(cmds)
    assert hedge.side is Side.SELL and hedge.symbol == PERP.symbol
    assert hedge.size_lots == PERP.lots_floor(expected_delta)  # never more than the gap: no oscillation


def test_lp_delta_counts_and_lp_fees_accrue_on_public_volume() -> None:
    from bot.domain import TradePrint

    lp = ConstantProductLp.from_deposit(token_base=20.0, price_px=100.0, fee_rate=0.003)
    engine = make_engine(lp=lp, lp_volume_ratio=0.5)
    books(engine, SEC)
    engine.apply(tick(SEC), SEC)
    assert engine.portfolio.lp_delta_base() == pytest.approx(20.0, rel=1e-9)  # L/√P at the deposit price
    engine.apply(TradePrint(SPOT.symbol, 10_010, 100, Side.BUY, "t1", SEC, SEC), SEC)  # 1 token at 100.10
    assert engine.portfolio.pnl().lp_fees_quote == pytest.approx(0.5 * 100.10 * 0.003)


def test_positions_live_in_the_portfolio_and_follow_fills_and_the_venue() -> None:
    engine = make_engine()
    books(engine, SEC)
    engine.apply(OrderFilled(SPOT.symbol, "x-1", "f1", Side.BUY, 9_990, 300, 0.1, Liquidity.MAKER, 0, SEC, SEC), SEC)
    assert engine.position_lots[SPOT.symbol] == 300 == engine.portfolio.position_lots(SPOT.symbol)
    engine.apply(PositionSnapshot(SPOT.symbol, 250, SEC, SEC), SEC)  # the venue says we missed a sale...
    engine.apply(PositionSnapshot(SPOT.symbol, 250, SEC, SEC), SEC)  # ...and says it again
    assert engine.portfolio.position_lots(SPOT.symbol) == 250
    assert engine.stats.position_mismatches == 1
    # the correction is entered at mid: it moves neither spread capture nor fees
    pnl = engine.portfolio.pnl()
    assert pnl.quote_fees_quote == pytest.approx(-0.1)
    assert pnl.spread_capture_quote == pytest.approx(3.0 * (100.00 - 99.90))


def test_a_fill_before_any_book_leaves_the_equity_a_number() -> None:
    """A fill seen before its market's first book (NaN mid) used to make the equity NaN for the rest
    of the session: no drawdown could ever be seen, and the ledger refused the PnL row."""
    engine = make_engine()
    engine.apply(OrderFilled(SPOT.symbol, "x-1", "f1", Side.BUY, 9_990, 300, 0.1, Liquidity.MAKER, 0, SEC, SEC), SEC)
    assert engine.equity_quote() == pytest.approx(-0.1)  # no edge known without a mid: the fee only
    books(engine, 2 * SEC)
    engine.apply(tick(2 * SEC), 2 * SEC)
    assert engine.equity_quote() == pytest.approx(3.0 * (100.00 - 99.90) - 0.1)  # then marked at the mid
    assert math.isfinite(engine.summary(2 * SEC)["pnl"])


def test_restore_enters_at_the_ledger_price_or_at_the_first_mid() -> None:
    engine = make_engine()
    engine.restore({SPOT.symbol: 200, PERP.symbol: -150}, {SPOT.symbol: 99.0})
    assert engine.position_lots[SPOT.symbol] == 200
    assert engine.position_lots[PERP.symbol] == 0  # no price yet: waits for a book
    books(engine, SEC)
    engine.apply(tick(SEC), SEC)
    assert engine.position_lots[PERP.symbol] == -150
    # spot entered at 99, marked at 100: +2; the perp entered at the mid: 0
    assert engine.equity_quote() == pytest.approx(2.0 * (100.0 - 99.0))


def test_hedger_halt_pulls_quotes_then_resumes_after_the_cooldown() -> None:
    engine = make_engine(hedge_resume_after_ns=10 * SEC)
    books(engine, SEC)
    engine.requote(SEC)
    now = SEC
    fill = OrderFilled(SPOT.symbol, "x-1", "f1", Side.BUY, 9_990, 300, 0.0, Liquidity.MAKER, 0, now, now)
    pending = hedges(engine.apply(fill, now))
    # the venue rejects every hedge: after max_retries (1) the hedger halts
    for _ in range(4):
        now += SEC
        for hedge in pending:
            engine.apply(OrderRejected(PERP.symbol, hedge.client_id, "insufficient margin", now, now), now)
        pending = hedges(engine.apply(tick(now), now))
    assert engine.hedger is not None and engine.hedger.halted
    notes = [n for n, _ in engine.drain_notes()]
    assert notes.count("hedge.halted") == 1
    cmds = engine.requote(now)
    assert not [c for c in cmds if isinstance(c, PlaceOrder)]  # unhedged delta: no new quotes
    now += 10 * SEC
    resumed = engine.apply(tick(now), now)
    assert not engine.hedger.halted and "hedge.resumed" in [n for n, _ in engine.drain_notes()]
    assert hedges(resumed)  # and it tries to hedge again at once


def test_a_hedge_that_fills_nothing_is_logged_with_the_venues_reason_and_the_retry() -> None:
    engine = make_engine()
    books(engine, SEC)
    engine.requote(SEC)
    fill = OrderFilled(SPOT.symbol, "x-1", "f1", Side.BUY, 9_990, 300, 0.0, Liquidity.MAKER, 0, SEC, SEC)
    (hedge,) = hedges(engine.apply(fill, SEC))
    engine.drain_notes()
    engine.apply(OrderCanceled(PERP.symbol, hedge.client_id, "ioc_expired", 2 * SEC, 2 * SEC), 2 * SEC)
    unfilled = [f for n, f in engine.drain_notes() if n == "hedge.unfilled"]
    assert unfilled == [{"client_id": hedge.client_id, "reason": "ioc_expired", "retry_at_ns": 2 * SEC + 1}]


def test_client_ids_carry_the_run_tag_and_hedges_are_still_recognised() -> None:
    engine = make_engine(client_id_tag="r7")
    books(engine, SEC)
    quotes = [c for c in engine.requote(SEC) if isinstance(c, PlaceOrder)]
    assert quotes and all(c.client_id.startswith("q-r7-") for c in quotes)
    fill = OrderFilled(
        SPOT.symbol,
        quotes[0].client_id,
        "f1",
        quotes[0].side,
        quotes[0].price_ticks,
        100,
        0.0,
        Liquidity.MAKER,
        0,
        SEC,
        SEC,
    )
    (hedge,) = hedges(engine.apply(fill, SEC))
    assert hedge.client_id.startswith("h-r7-")
    assert engine.hedger is not None and engine.hedger.owns(hedge.client_id)
    engine.apply(OrderAccepted(PERP.symbol, hedge.client_id, "v1", 2 * SEC, 2 * SEC), 2 * SEC)
    assert engine.orders.orders.get(hedge.client_id) is None  # routed to the hedger, not the quoter


def test_summary_reports_obligation_compliance_and_counts_a_silent_feed_against_it() -> None:
    obligation = Obligation("mock", max_spread_bps=50.0, depth_band_pct=2.0, min_depth_quote=50.0)
    engine = make_engine(risk=RiskParams(obligation=obligation), stale_feed_ns=3 * SEC)
    books(engine, 0)
    for c in engine.requote(0):
        if isinstance(c, PlaceOrder):
            engine.apply(OrderAccepted(c.symbol, c.client_id, "v" + c.client_id, 0, 0), 0)
    for t in range(1, 11):  # 10 s quoting on a fresh book (refreshed every second)
        books(engine, t * SEC, seq=100 + t)
        engine.apply(tick(t * SEC), t * SEC)
        engine.requote(t * SEC)
    for t in range(11, 31):  # then 20 s of silence: stale after 3 s, quotes pulled
        engine.apply(tick(t * SEC), t * SEC)
        engine.requote(t * SEC)
    summary = engine.summary(30 * SEC)
    ob = summary["obligations"]
    assert ob is not None and ob["observed_s"] == pytest.approx(30.0)
    # held while quoting (about 13 s incl. the 3 s before the feed counts as stale), not after
    assert 30.0 < ob["all_pct"] < 50.0
    assert not math.isnan(ob["spread_pct"])


def test_a_remnant_below_the_minimum_notional_is_not_sent() -> None:
    spot = Instrument(
        "TOKEN/USDT", InstrumentKind.SPOT, "TOKEN", "USDT", tick_size=0.01, lot_size=0.01, min_notional=5.0
    )
    params = EngineParams(
        spot=spot,
        perp=None,
        quote=QuoteParams(order_size_base=1.0, min_spread_bps=10.0),
        risk=RiskParams(inventory_soft_base=2.0, inventory_hard_base=3.0),
    )
    engine = Engine(params, SigmaEstimator(0.02, 60.0, 1000), ArrivalEstimator(1.0, 20.0, 300.0, 50), start_ns=0)
    engine.restore({spot.symbol: 298}, {spot.symbol: 100.0})  # 2.98 of 3.0: room to buy 0.02 (~2 USDT)
    engine.apply(BookSnapshot(spot.symbol, 1, ((9_990, 50_000),), ((10_010, 50_000),), SEC, SEC), SEC)
    places = [c for c in engine.requote(SEC) if isinstance(c, PlaceOrder)]
    assert [c.side for c in places] == [Side.SELL]  # the 0.02 bid would be refused by the venue


def test_a_quote_filled_below_the_obligations_depth_is_replaced() -> None:
    obligation = Obligation("mock", max_spread_bps=50.0, depth_band_pct=2.0, min_depth_quote=60.0)
    engine = make_engine(risk=RiskParams(obligation=obligation))  # 1.0 base quotes at ~100: 100 quote each
    books(engine, SEC)
    bid = next(c for c in engine.requote(SEC) if isinstance(c, PlaceOrder) and c.side is Side.BUY)
    engine.apply(OrderAccepted(SPOT.symbol, bid.client_id, "v1", SEC, SEC), SEC)
    engine.apply(
        OrderFilled(
            SPOT.symbol, bid.client_id, "f1", Side.BUY, bid.price_ticks, 30, 0.0, Liquidity.MAKER, 70, SEC, SEC
        ),
        SEC,
    )
    # 0.70 left (~70 quote >= 60): it keeps its place in the queue
    assert not [c for c in engine.requote(2 * SEC) if getattr(c, "client_id", "") == bid.client_id]
    engine.apply(
        OrderFilled(
            SPOT.symbol, bid.client_id, "f2", Side.BUY, bid.price_ticks, 20, 0.0, Liquidity.MAKER, 50, SEC, SEC
        ),
        SEC,
    )
    # 0.50 left (~50 quote < 60): cancelled, to be replaced by a full-size quote
    engine.apply(tick(3 * SEC), 3 * SEC)
    cmds = engine.requote(3 * SEC)
    assert any(getattr(c, "client_id", "") == bid.client_id for c in cmds)
