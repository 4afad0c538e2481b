"""Portfolio: average-cost PnL, attribution against hand arithmetic, dedupe, and sum(components) == total."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.core.lp import ConstantProductLp
from bot.core.options import NS_PER_DAY, CallOption
from bot.core.portfolio import Portfolio
from bot.domain import FundingPaid, Instrument, InstrumentKind, Liquidity, OrderFilled, Side

SPOT = Instrument("TOKEN/USDT", InstrumentKind.SPOT, "TOKEN", "USDT", tick_size=0.01, lot_size=0.1)
PERP = Instrument("TOKEN/USDT:USDT", InstrumentKind.PERP, "TOKEN", "USDT", tick_size=0.01, lot_size=1.0)


def fill(inst: Instrument, fid: str, side: Side, px: float, base: float, fee: float = 0.0) -> OrderFilled:
    return OrderFilled(
        symbol=inst.symbol,
        client_id="c",
        fill_id=fid,
        side=side,
        price_ticks=inst.ticks(px),
        size_lots=inst.lots(base),
        fee_quote=fee,
        liquidity=Liquidity.MAKER,
        leaves_lots=0,
        ts_venue_ns=0,
        ts_recv_ns=0,
    )


def test_round_trip_by_hand() -> None:
    pf = Portfolio([SPOT, PERP])
    # buy 10 @ 99.90 (mid 100.00, fee 0.10), sell 10 @ 100.20 (mid 100.10, fee 0.10)
    assert pf.on_fill(fill(SPOT, "1", Side.BUY, 99.90, 10, 0.10), 100.00, hedge=False)
    assert pf.on_fill(fill(SPOT, "2", Side.SELL, 100.20, 10, 0.10), 100.10, hedge=False)
    pnl = pf.pnl()
    # spread capture: (100.00 − 99.90)·10 + (100.20 − 100.10)·10 = 1.0 + 1.0
    assert pnl.spread_capture_quote == pytest.approx(2.0)
    assert pnl.quote_fees_quote == pytest.approx(-0.2)
    # inventory: held 10 while the mid went 100.00 → 100.10 = +1.0
    assert pnl.inventory_mtm_quote == pytest.approx(1.0)
    # realised (100.20 − 99.90)·10 = 3.0, minus 0.2 fees
    assert pf.positions[SPOT.symbol].realised_quote == pytest.approx(3.0)
    assert pnl.total_quote == pytest.approx(2.8)
    assert sum(pnl.components().values()) == pytest.approx(pnl.total_quote)
    assert pf.net_delta_base() == 0.0


def test_hedged_fill_by_hand() -> None:
    pf = Portfolio([SPOT, PERP])
    pf.on_fill(fill(SPOT, "s1", Side.BUY, 99.90, 10), 100.00, hedge=False)
    # hedge: sell 10 perp @ 99.95 with the perp mid at 100.00, taker fee 0.50
    pf.on_fill(fill(PERP, "p1", Side.SELL, 99.95, 10, 0.50), 100.00, hedge=True)
    assert pf.net_delta_base() == 0.0
    pf.mark(SPOT.symbol, 101.0)
    pf.mark(PERP.symbol, 101.0)
    pnl = pf.pnl()
    assert pnl.spread_capture_quote == pytest.approx(1.0)  # (100 − 99.90)·10
    assert pnl.hedge_cost_quote == pytest.approx(-1.0)  # −(100 − 99.95)·10 − 0.50
    assert pnl.inventory_mtm_quote == pytest.approx(0.0)  # +10·1 spot, −10·1 perp
    # unrealised: 10·(101 − 99.90) = 11.0 and −10·(101 − 99.95) = −10.5; fees −0.5
    assert pnl.total_quote == pytest.approx(0.0)
    assert pf.position_lots(PERP.symbol) == -10


def test_funding_and_duplicates() -> None:
    pf = Portfolio([SPOT, PERP])
    f = fill(PERP, "p1", Side.SELL, 100.0, 5)
    assert pf.on_fill(f, 100.0, hedge=True)
    assert not pf.on_fill(f, 100.0, hedge=True)  # duplicate: dropped
    assert not pf.on_fill(
        fill(Instrument("X/Y", InstrumentKind.SPOT, "X", "Y", 1, 1), "z", Side.BUY, 1, 1), 1, hedge=False
    )
    assert pf.position_base(PERP.symbol) == -5.0
    ev = FundingPaid(PERP.symbol, rate=0.0001, amount_quote=2.5, ts_venue_ns=7, ts_recv_ns=8)
    assert pf.on_funding(ev)
    assert not pf.on_funding(ev)
    pnl = pf.pnl()
    assert pnl.funding_quote == 2.5
    assert pnl.total_quote == pytest.approx(2.5)


def test_position_crossing_zero() -> None:
    inst = Instrument("A/B", InstrumentKind.SPOT, "A", "B", tick_size=0.01, lot_size=1.0)
    pf = Portfolio([inst])
    pf.on_fill(fill(inst, "1", Side.BUY, 10.0, 5), 10.0, hedge=False)
    pf.on_fill(fill(inst, "2", Side.SELL, 12.0, 8), 12.0, hedge=False)
    pos = pf.positions[inst.symbol]
    # closes 5 at +2 each = 10 realised; the remaining 3 short open at 12
    assert (pos.lots, pos.avg_px, pos.realised_quote) == (-3, 12.0, pytest.approx(10.0))
    pf.mark(inst.symbol, 11.0)
    assert pos.unrealised_quote == pytest.approx(3.0)


def test_options_gamma_scalping_by_hand() -> None:
    call = CallOption(strike_px=100.0, quantity_base=10.0, expiry_ns=365 * NS_PER_DAY)
    pf = Portfolio([SPOT, PERP], options=[call])
    pf.mark_underlying(100.0, 0, 0.2)
    # 10 × N(0.1) = 5.398278
    assert pf.net_delta_base() == pytest.approx(5.398278, abs=1e-6)
    assert pf.option_gamma_base_per_px() == pytest.approx(0.1984763, abs=1e-6)
    pf.mark_underlying(101.0, 0, 0.2)
    pnl = pf.pnl()
    # options = ΔV − Δ·ΔS ≈ ½·Γ·ΔS² = ½ × 0.19848 × 1² = 0.0992 (third-order terms < 0.001)
    assert pnl.options_quote == pytest.approx(0.0992, abs=0.002)
    # the notional hedge −5.398 is moved out of inventory MTM, which therefore shows +5.398
    assert pnl.inventory_mtm_quote == pytest.approx(5.398278, abs=1e-6)
    assert sum(pnl.components().values()) == pytest.approx(pnl.total_quote)


def test_lp_by_hand() -> None:
    pf = Portfolio([SPOT], lp=ConstantProductLp.from_value(1000.0, 1.0, fee_rate=0.003))
    assert pf.lp_delta_base() == 0.0  # no mark yet
    pf.mark_underlying(1.0, 0, 1.0)
    assert pf.net_delta_base() == pytest.approx(500.0)  # L/√P = 500/1
    pf.mark_underlying(4.0, 0, 1.0)
    assert pf.net_delta_base() == pytest.approx(250.0)  # 500/√4
    assert pf.on_lp_volume(10_000.0) == pytest.approx(30.0)
    pnl = pf.pnl()
    assert pnl.lp_fees_quote == pytest.approx(30.0)
    # pool value 2·500·√4 = 2000 vs 1000 at the first mark
    assert pnl.inventory_mtm_quote == pytest.approx(1000.0)
    assert pnl.total_quote == pytest.approx(1030.0)


def test_seed_position() -> None:
    pf = Portfolio([SPOT])
    pf.seed_position(SPOT.symbol, 50, 100.0)  # 5 base at 100
    pf.mark(SPOT.symbol, 102.0)
    pnl = pf.pnl()
    assert pnl.inventory_mtm_quote == pytest.approx(10.0)
    assert pnl.total_quote == pytest.approx(10.0)
    assert pnl.spread_capture_quote == 0.0


# ---- property: the components always sum to the independently computed total ------------------

fills = st.tuples(
    st.sampled_from([SPOT, PERP]),
    st.sampled_from([Side.BUY, Side.SELL]),
    st.integers(1, 50),  # lots
    st.integers(9000, 11000),  # price ticks
    st.integers(-30, 30),  # mid offset in ticks
    st.floats(-0.5, 2.0),  # fee
    st.booleans(),  # hedge?
    st.booleans(),  # delivered twice?
)
steps = st.lists(
    st.one_of(
        st.tuples(st.just("fill"), fills),
        st.tuples(st.just("mark"), st.floats(80.0, 120.0)),
        st.tuples(st.just("funding"), st.floats(-5.0, 5.0)),
        st.tuples(st.just("lp"), st.floats(0.0, 1e5)),
    ),
    max_size=40,
)


def deal_portfolio() -> Portfolio:
    calls = [CallOption(100.0, 20.0, 30 * NS_PER_DAY), CallOption(110.0, 10.0, 60 * NS_PER_DAY)]
    pf = Portfolio([SPOT, PERP], options=calls, lp=ConstantProductLp.from_value(5000.0, 100.0, fee_rate=0.003))
    pf.mark_underlying(100.0, 0, 0.8)
    return pf


def apply_step(pf: Portfolio, i: int, kind: str, arg: object, now: int) -> None:
    if kind == "fill":
        inst, side, lots, ticks, off, fee, hedge, twice = arg  # type: ignore[misc]
        ev = OrderFilled(inst.symbol, "c", f"f{i}", side, ticks, lots, fee, Liquidity.TAKER, 0, now, now)
        mid = (ticks + off) * inst.tick_size
        pf.on_fill(ev, mid, hedge=hedge)
        if twice:
            assert not pf.on_fill(ev, mid, hedge=hedge)
    elif kind == "mark":
        px = float(arg)  # type: ignore[arg-type]
        pf.mark(SPOT.symbol, px)
        pf.mark(PERP.symbol, px + 0.05)
        pf.mark_underlying(px, now, 0.8)
    elif kind == "funding":
        pf.on_funding(FundingPaid(PERP.symbol, 0.0, float(arg), now, now))  # type: ignore[arg-type]
    else:
        pf.on_lp_volume(float(arg))  # type: ignore[arg-type]


@given(steps=steps)
def test_components_sum_to_total(steps: list[tuple[str, object]]) -> None:
    pf = deal_portfolio()
    now = 0
    for i, (kind, arg) in enumerate(steps):
        now += NS_PER_DAY
        apply_step(pf, i, kind, arg, now)
    pnl = pf.pnl()
    assert sum(pnl.components().values()) == pytest.approx(
        pnl.total_quote, abs=1e-6 * (1 + abs(pnl.total_quote)) + 1e-6
    )
    # net delta is exactly its parts
    linear = pf.position_base(SPOT.symbol) + pf.position_base(PERP.symbol)
    assert pf.net_delta_base() == pytest.approx(linear + pf.lp_delta_base() + pf.option_delta_base())


@given(steps=steps, twice=st.booleans())
def test_the_total_changes_at_the_same_marks_only_with_the_version(
    steps: list[tuple[str, object]], twice: bool
) -> None:
    # the engine caches its equity on (portfolio.version, the mids): that cache is right only if this holds
    pf = deal_portfolio()
    now = 0

    def state() -> tuple[int, tuple[float, ...], float]:
        marks = tuple(pos.mark_px for pos in pf.positions.values())
        return pf.version, marks, pf.total_pnl_quote()

    last = state()
    for i, (kind, arg) in enumerate(steps):
        now += NS_PER_DAY
        apply_step(pf, i % 3 if twice else i, kind, arg, now)  # `twice`: fill ids repeat, most fills are dropped
        current = state()
        if current[:2] == last[:2]:
            assert current[2] == last[2]
        last = current


def test_the_version_counts_bookings_not_marks() -> None:
    pf = deal_portfolio()
    v = pf.version
    pf.mark(SPOT.symbol, 101.0)
    assert pf.version == v
    ev = fill(SPOT, "1", Side.BUY, 99.90, 10, 0.10)
    assert pf.on_fill(ev, 100.0, hedge=False) and pf.version == v + 1
    assert not pf.on_fill(ev, 100.0, hedge=False) and pf.version == v + 1  # a duplicate books nothing
    funding = FundingPaid(PERP.symbol, rate=0.0001, amount_quote=2.5, ts_venue_ns=7, ts_recv_ns=8)
    assert pf.on_funding(funding) and pf.version == v + 2
    assert not pf.on_funding(funding) and pf.version == v + 2
    pf.on_lp_volume(1000.0)
    pf.seed_position(PERP.symbol, 3, 100.0)
    pf.mark_underlying(102.0, NS_PER_DAY, 0.8)
    assert pf.version == v + 5


def test_a_fill_before_its_market_has_a_mid_keeps_the_pnl_finite() -> None:
    """A fill can arrive before its venue's book has a mid (a venue whose book syncs late, a fill
    re-delivered at start): the engine passes NaN. It used to enter the spread capture and the mark,
    so every later PnL was NaN: the drawdown rule compared NaN (never true) and the ledger's pnl row
    (NOT NULL) refused it. Without a mid no edge is known, so none is booked; the fill is marked at
    its own price until the book's first mid, and its later moves are inventory MTM."""
    nan = float("nan")
    pf = Portfolio([SPOT, PERP])
    assert pf.on_fill(fill(SPOT, "1", Side.BUY, 99.90, 10, 0.10), nan, hedge=False)
    pnl = pf.pnl()
    assert pnl.spread_capture_quote == 0.0
    assert pnl.total_quote == pytest.approx(-0.10)  # the fee only
    assert pf.on_fill(fill(PERP, "h1", Side.SELL, 99.80, 10, 0.05), nan, hedge=True)
    assert pf.pnl().hedge_cost_quote == pytest.approx(-0.05)
    pf.mark(SPOT.symbol, nan)  # a mark that is not a price changes nothing
    assert pf.pnl().total_quote == pytest.approx(-0.15)
    pf.mark(SPOT.symbol, 100.40)
    pf.mark(PERP.symbol, 100.40)
    pnl = pf.pnl()
    # spot +10 from 99.90 to 100.40 (+5.0), perp −10 from 99.80 to 100.40 (−6.0), fees 0.15
    assert pnl.inventory_mtm_quote == pytest.approx(5.0 - 6.0)
    assert pnl.total_quote == pytest.approx(-1.15)
    assert sum(pnl.components().values()) == pytest.approx(pnl.total_quote)
