"""The simulated DEX pool survives a restart: its state (reserves, our share, fees, swap counts) is
kept in the ledger's `deal_pool` row and restored exactly, and a public trade is swapped through it
once, even when delivered again (issue #15: restarts re-deposited a fresh balanced pool)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.config import DealConfig
from bot.core.deal import DealTerms
from bot.core.lp import PoolState, SimulatedPool
from bot.runtime.ledger import Ledger


def traded_pool() -> SimulatedPool:
    pool = SimulatedPool.balanced(2_000.0, 100.0, 0.003, share=0.25)
    for i, (side, notional) in enumerate([(+1, 37.5), (-1, 12.25), (-1, 81.0), (+1, 3.3)]):
        pool.swap(side, notional, 100.0, trade_id=f"T{i}")
        pool.arbitrage(100.0 + i * 0.7)
    return pool


def test_share_scales_our_position_and_fees_not_the_pool() -> None:
    ours = SimulatedPool.balanced(2_000.0, 100.0, 0.003, share=0.25)
    assert ours.x == pytest.approx(40.0) and ours.y == pytest.approx(4_000.0)  # the whole pool: 8,000 quote
    assert ours.delta_base(100.0) == pytest.approx(10.0)  # our quarter: 1,000 quote of tokens at 100
    assert ours.value_quote(100.0) == pytest.approx(2_000.0)
    fee = ours.swap(+1, 400.0, 100.0)
    assert fee == pytest.approx(400.0 * 0.003 * 0.25)  # our share of the pool's 1.20 fee
    with pytest.raises(ValueError, match="share"):
        SimulatedPool(1.0, 1.0, 0.003, share=0.0)


def test_state_round_trips_exactly_through_the_ledger(tmp_path: Path) -> None:
    pool = traded_pool()
    ledger = Ledger(tmp_path / "l.sqlite")
    ledger.record_pool_state("r1", 5, pool.state().to_dict())
    ledger.record_pool_state("r1", 6, pool.state().to_dict())  # one row, replaced
    ledger.close()
    reopened = Ledger(tmp_path / "l.sqlite")
    saved = reopened.pool_state()
    reopened.close()
    assert saved is not None
    restored = SimulatedPool.from_state(PoolState.from_dict(saved))
    # exactly (==, not approx): the JSON keeps every float's repr
    assert (restored.x, restored.y, restored.fees_quote, restored.share) == (pool.x, pool.y, pool.fees_quote, 0.25)
    assert restored.delta_base(101.0) == pool.delta_base(101.0)
    assert restored.value_quote(101.0) == pool.value_quote(101.0)
    assert (restored.swaps, restored.arbs) == (pool.swaps, pool.arbs) == (4, pool.arbs)
    assert pool.arbs >= 3  # the price moved each time: arbitrage traded


def test_a_trade_seen_in_the_same_venue_session_is_not_swapped_again() -> None:
    pool = traded_pool()
    pool.session = "S1"
    state = pool.state()
    same = SimulatedPool.from_state(state, session="S1")
    assert same.swap(+1, 37.5, 100.0, trade_id="T0") == 0.0  # re-delivered after the reconnect
    assert (same.x, same.y, same.swaps, same.duplicate_trades) == (pool.x, pool.y, 4, 1)
    assert same.swap(+1, 37.5, 100.0, trade_id="T9") > 0.0 and same.swaps == 5
    # a new venue session numbers its trades afresh: "T0" there is a new trade
    fresh = SimulatedPool.from_state(state, session="S2")
    assert fresh.swap(+1, 37.5, 100.0, trade_id="T0") > 0.0 and fresh.swaps == 5
    assert SimulatedPool.from_state(state, session="").swap(+1, 1.0, 100.0, trade_id="T0") > 0.0


def test_remembered_trade_ids_are_bounded() -> None:
    pool = SimulatedPool.balanced(2_000.0, 100.0, 0.003)
    for i in range(SimulatedPool.RECENT_TRADES + 10):
        pool.swap(+1 if i % 2 else -1, 1.0, 100.0, trade_id=f"T{i}")
    ids = pool.state().recent_trade_ids
    assert len(ids) == SimulatedPool.RECENT_TRADES and ids[-1] == f"T{SimulatedPool.RECENT_TRADES + 9}"
    assert pool.swap(+1, 1.0, 100.0, trade_id="T0") > 0.0  # forgotten: long gone from any re-delivery
    assert pool.swap(+1, 1.0, 100.0, trade_id=ids[-1]) == 0.0


def test_deal_terms_restore_the_saved_pool_instead_of_a_fresh_deposit() -> None:
    terms = DealTerms.from_config(DealConfig(token_price_quote=100.0, dex_pool_size_quote=2_000.0))
    saved = traded_pool().state()
    pool = terms.lp_position(saved)
    assert isinstance(pool, SimulatedPool)
    assert (pool.x, pool.y, pool.share, pool.fees_quote) == (saved.token_base, saved.quote, 0.25, saved.fees_quote)
    fresh = terms.lp_position()
    assert isinstance(fresh, SimulatedPool) and fresh.x == pytest.approx(10.0) and fresh.fees_quote == 0.0


def pool_engine(pool: SimulatedPool):  # type: ignore[no-untyped-def]
    from bot.core.engine import Engine, EngineParams
    from bot.core.estimators import ArrivalEstimator, SigmaEstimator
    from bot.core.hedger import HedgeParams
    from bot.core.quoting import QuoteParams
    from bot.domain import Instrument, InstrumentKind

    spot = Instrument("TOKEN/USDT", InstrumentKind.SPOT, "TOKEN", "USDT", tick_size=0.01, lot_size=0.01)
    perp = Instrument("TOKEN/USDT:USDT", InstrumentKind.PERP, "TOKEN", "USDT", tick_size=0.01, lot_size=0.01)
    params = EngineParams(
        spot=spot,
        perp=perp,
        quote=QuoteParams(order_size_base=1.0, min_spread_bps=10.0),
        hedge=HedgeParams(band_base=0.5),
        warmup_ns=0,
        lp=pool,
        lp_volume_ratio=0.1,
    )
    return Engine(params, SigmaEstimator(0.02, 60.0, 1000), ArrivalEstimator(1.0, 20.0, 300.0, 50), start_ns=0)


def test_engine_restart_on_the_same_venue_session_never_swaps_a_trade_twice(tmp_path: Path) -> None:
    from bot.domain import BookSnapshot, Side, Timer, TradePrint
    from bot.runtime.ledger import LedgerObserver

    sec = 1_000_000_000

    def feed(engine, trades: list[TradePrint], now: int) -> None:  # type: ignore[no-untyped-def]
        for symbol in ("TOKEN/USDT", "TOKEN/USDT:USDT"):
            engine.apply(BookSnapshot(symbol, now, ((9_999, 500),), ((10_001, 500),), now, now), now)
        engine.apply(Timer(now, now), now)  # the first mark: the pool is valued before it swaps
        for t in trades:
            engine.apply(t, now)
        engine.apply(Timer(now, now), now)

    trades = [
        TradePrint("TOKEN/USDT", 10_001, 300, Side.BUY, "77", sec, sec),
        TradePrint("TOKEN/USDT", 9_999, 500, Side.SELL, "78", sec, sec),
    ]
    first_pool = SimulatedPool.balanced(2_000.0, 100.0, 0.003)
    first_pool.session = "mock-ws:S1"
    first = pool_engine(first_pool)
    ledger = Ledger(tmp_path / "l.sqlite")
    observer = LedgerObserver(ledger, "r1")
    feed(first, trades, sec)
    observer.on_batch(first, sec, 0.0)
    assert first_pool.swaps == 2
    observer.close()
    ledger.close()

    saved = Ledger(tmp_path / "l.sqlite").pool_state()
    assert saved is not None
    again = SimulatedPool.from_state(PoolState.from_dict(saved), session="mock-ws:S1")
    second = pool_engine(again)
    # the venue re-delivers the two trades it had sent before the restart, then one new one
    feed(second, [*trades, TradePrint("TOKEN/USDT", 10_001, 100, Side.BUY, "79", 2 * sec, 2 * sec)], 2 * sec)
    assert again.swaps == 3 and again.duplicate_trades == 2
    # the pool moved by the new trade only: replaying it on the first pool gives the same reserves
    first_pool.swap(+1, 0.1 * 100.01 * 1.0, 100.0, trade_id="79")
    assert (again.x, again.y, again.fees_quote) == (first_pool.x, first_pool.y, first_pool.fees_quote)
    assert second.portfolio.lp_delta_base() == again.x
