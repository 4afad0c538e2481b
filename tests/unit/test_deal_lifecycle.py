"""Strikes, expiry and the loan's end in the running engine: an in-the-money call is exercised, an
out-of-the-money one lapses, each once; the PnL is continuous across it (the value moves from
`options` into `option_exercise`); the hedger unwinds the perp that hedged the call; the loan's
return date is an event; the ledger keeps them and a restart does not settle again."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.core.deal import DealEvent, DealLifecycle, DealState
from bot.core.engine import Engine, EngineParams
from bot.core.estimators import ArrivalEstimator, SigmaEstimator
from bot.core.hedger import HedgeParams
from bot.core.options import CallOption
from bot.core.portfolio import Portfolio
from bot.core.quoting import QuoteParams
from bot.domain import (
    BookSnapshot,
    Command,
    Instrument,
    InstrumentKind,
    Liquidity,
    OrderFilled,
    PlaceOrder,
    Side,
    Timer,
)
from bot.runtime.ledger import Ledger, LedgerObserver

SPOT = Instrument("TOKEN/USDT", InstrumentKind.SPOT, "TOKEN", "USDT", tick_size=0.01, lot_size=0.01)
PERP = Instrument("TOKEN/USDT:USDT", InstrumentKind.PERP, "TOKEN", "USDT", tick_size=0.01, lot_size=0.01)
SEC = 1_000_000_000
EXPIRY = 100 * SEC
LOAN_END = 200 * SEC


def test_portfolio_settles_itm_and_otm_calls_once_and_pnl_is_continuous() -> None:
    calls = (CallOption(90.0, 10.0, EXPIRY), CallOption(120.0, 5.0, EXPIRY), CallOption(150.0, 1.0, 10 * EXPIRY))
    pf = Portfolio([SPOT, PERP], options=calls)
    pf.mark_underlying(100.0, 0, 0.8)
    pf.mark_underlying(110.0, EXPIRY - SEC, 0.8)
    before = pf.pnl()
    settled = pf.settle_calls(110.0, EXPIRY, 0.8)
    assert [(s.strike_px, s.exercised, s.payoff_quote) for s in settled] == [(90.0, True, 200.0), (120.0, False, 0.0)]
    after = pf.pnl()
    assert after.option_exercise_quote == 200.0  # (110 − 90) × 10
    assert sum(after.components().values()) == pytest.approx(after.total_quote)
    # one second before expiry the calls were worth about their payoff: the total barely moves
    assert after.total_quote == pytest.approx(before.total_quote, abs=1.0)
    assert [o.strike_px for o in pf.options] == [150.0]
    assert pf.settle_calls(110.0, EXPIRY + SEC, 0.8) == []  # once
    # the last tranche settled too: the option leg keeps its history (no jump to 0)
    pf.mark_underlying(160.0, 10 * EXPIRY, 0.8)
    total = pf.pnl().total_quote
    (last,) = pf.settle_calls(160.0, 10 * EXPIRY, 0.8)
    assert last.payoff_quote == pytest.approx(10.0)
    assert pf.pnl().total_quote == pytest.approx(total)
    assert pf.option_delta_base() == 0.0


def make_engine(lifecycle: DealLifecycle, calls: tuple[CallOption, ...]) -> Engine:
    params = EngineParams(
        spot=SPOT,
        perp=PERP,
        quote=QuoteParams(order_size_base=1.0, min_spread_bps=10.0),
        hedge=HedgeParams(band_base=0.5, max_retries=1, retry_backoff_ns=1),
        warmup_ns=0,
        options=calls,
        option_vol_annual=0.8,
        deal_lifecycle=lifecycle,
    )
    return Engine(params, SigmaEstimator(0.02, 60.0, 1000), ArrivalEstimator(1.0, 20.0, 300.0, 50), start_ns=0)


def books(engine: Engine, now: int, bid: int, ask: int, seq: int) -> None:
    for ins in (SPOT, PERP):
        engine.apply(BookSnapshot(ins.symbol, seq, ((bid, 50_000),), ((ask, 50_000),), now, now), now)


def hedges(cmds: list[Command]) -> list[PlaceOrder]:
    return [c for c in cmds if isinstance(c, PlaceOrder) and c.tag == "hedge"]


def fill(engine: Engine, order: PlaceOrder, now: int) -> None:
    engine.apply(
        OrderFilled(
            order.symbol,
            order.client_id,
            f"f-{order.client_id}",
            order.side,
            order.price_ticks,
            order.size_lots,
            0.0,
            Liquidity.TAKER,
            0,
            now,
            now,
        ),
        now,
    )


def test_engine_exercises_at_expiry_unwinds_the_hedge_and_returns_the_loan(tmp_path: Path) -> None:
    calls = (CallOption(90.0, 10.0, EXPIRY),)
    engine = make_engine(DealLifecycle(LOAN_END, 300.0), calls)
    books(engine, SEC, 10_990, 11_010, 1)  # mid 110: deep in the money, delta ≈ 1 → a perp short of ~10
    (short,) = hedges(engine.apply(Timer(SEC, SEC), SEC))
    assert short.side is Side.SELL and short.size_lots > 900
    fill(engine, short, SEC)
    ledger = Ledger(tmp_path / "l.sqlite")
    observer = LedgerObserver(ledger, "r1")
    books(engine, EXPIRY, 10_990, 11_010, 2)
    cmds = engine.apply(Timer(EXPIRY, EXPIRY), EXPIRY)
    notes = dict(engine.drain_notes())
    assert notes["deal.call_exercised"] == {
        "strike_px": 90.0,
        "quantity_base": 10.0,
        "spot_px": 110.0,
        "payoff_quote": 200.0,
    }
    (unwind,) = hedges(cmds)  # the call is gone: the hedger buys the perp short back
    assert unwind.side is Side.BUY and unwind.size_lots == short.size_lots
    assert engine.portfolio.pnl().option_exercise_quote == 200.0
    observer.on_batch(engine, EXPIRY, 0.0)
    books(engine, LOAN_END, 10_990, 11_010, 3)
    engine.apply(Timer(LOAN_END, LOAN_END), LOAN_END)
    assert dict(engine.drain_notes())["deal.loan_returned"] == {"tokens_base": 300.0, "spot_px": 110.0}
    observer.on_batch(engine, LOAN_END, 0.0)
    books(engine, LOAN_END + SEC, 10_990, 11_010, 4)
    engine.apply(Timer(LOAN_END + SEC, LOAN_END + SEC), LOAN_END + SEC)
    assert not [n for n, _ in engine.drain_notes() if n.startswith("deal.")]  # each event once
    observer.on_batch(engine, LOAN_END + SEC, 0.0)
    state = DealState.from_events(ledger.deal_events())
    ledger.close()
    assert [e.kind for e in Ledger(tmp_path / "l.sqlite").deal_events()] == ["exercised", "loan_returned"]
    assert state.settled_strikes == {90.0} and state.exercise_payoff_quote == 200.0
    assert state.loan_returned_base == 300.0
    # a restart from that state holds no call and returns nothing again
    again = make_engine(DealLifecycle(LOAN_END, 300.0, returned=state.loan_returned_base > 0), ())
    books(again, LOAN_END + 2 * SEC, 10_990, 11_010, 1)
    again.apply(Timer(LOAN_END + 2 * SEC, LOAN_END + 2 * SEC), LOAN_END + 2 * SEC)
    assert not [n for n, _ in again.drain_notes() if n.startswith("deal.")]


def test_an_out_of_the_money_call_lapses() -> None:
    engine = make_engine(DealLifecycle(None, 0.0), (CallOption(150.0, 10.0, EXPIRY),))
    books(engine, EXPIRY, 10_990, 11_010, 1)
    engine.apply(Timer(EXPIRY, EXPIRY), EXPIRY)
    notes = dict(engine.drain_notes())
    assert notes["deal.call_lapsed"]["payoff_quote"] == 0.0
    assert engine.pop_deal_events() == [DealEvent("lapsed", EXPIRY, 10.0, 110.0, 150.0, 0.0)]
    assert engine.pop_deal_events() == []
