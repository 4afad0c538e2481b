"""The ledger keeps fees per currency: a fill's size and fee as the venue reported them
(`VenueReport`), positions as exact sums rounded to lots once, a third-currency fee as its own
balance. Hand-computed cases, then a property over random fills (across a reopen of the file)."""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.domain import Instrument, InstrumentKind, Liquidity, OrderFilled, Side, VenueReport
from bot.runtime.ledger import Ledger

# Binance BTCUSDT's grid (exchangeInfo: tickSize 0.01, stepSize 0.00001)
BTC = Instrument("BTC/USDT", InstrumentKind.SPOT, "BTC", "USDT", tick_size=0.01, lot_size=0.00001)
PERP = Instrument("BTC/USDT:USDT", InstrumentKind.PERP, "BTC", "USDT", tick_size=0.1, lot_size=0.001)
LOT, TICK = Decimal("0.00001"), Decimal("0.01")


def venue_fill(
    fill_id: str,
    side: Side,
    traded_lots: int,
    fee: str,
    currency: str,
    *,
    booked_lots: int | None = None,
    ticks: int = 6_000_000,
    symbol: str = BTC.symbol,
) -> OrderFilled:
    """A fill as the ccxt adapter makes it: `size_lots` the engine's (net) lots, the report the venue's."""
    report = VenueReport(traded_lots, float(fee), currency)
    lots = traded_lots if booked_lots is None else booked_lots
    return OrderFilled(symbol, "c", fill_id, side, ticks, lots, 0.0, Liquidity.TAKER, 0, 1, 2, report=report)


def open_ledger(path: Path, run_id: str = "r") -> Ledger:
    led = Ledger(path)
    led.start_run(run_id, 1, venue="ccxt:binance:demo", instruments=[BTC, PERP])
    return led


def test_buys_paying_btc_finer_than_the_lot_are_not_rounded_away(tmp_path: Path) -> None:
    """Ten 0.002 BTC buys, each paying 0.000002 BTC: 0.02 - 0.00002 BTC = 1998 lots, where rounding
    each fill's 199.8 lots gave 2000."""
    with open_ledger(tmp_path / "l.sqlite") as led:
        for i in range(10):
            led.record_fill("r", venue_fill(f"t{i}", Side.BUY, 200, "0.000002", "BTC", booked_lots=200))
        state = led.recover()
    assert state.positions_base == {BTC.symbol: Decimal("0.01998")}
    assert state.positions_lots == {BTC.symbol: 1998}
    assert state.fees_paid == {"BTC": Decimal("0.00002")}
    # the wallet: BTC in less the fee, USDT out at 60,000.00 (no quote fee on a buy)
    assert state.spot_balances == {"BTC": Decimal("0.01998"), "USDT": Decimal("-1200.0000")}


def test_quote_fees_reduce_cash_and_a_bnb_fee_stays_bnb(tmp_path: Path) -> None:
    with open_ledger(tmp_path / "l.sqlite") as led:
        led.record_fill("r", venue_fill("t1", Side.BUY, 300, "0.00000300", "BTC"))  # 0.003 BTC at 60,000
        led.record_fill("r", venue_fill("t2", Side.SELL, 100, "0.06", "USDT", ticks=6_001_000))  # 0.001 at 60,010
        led.record_fill("r", venue_fill("t3", Side.SELL, 100, "0.00011", "BNB", ticks=6_001_000))
        state = led.recover()
    assert state.positions_base[BTC.symbol] == Decimal("0.003") - Decimal("0.000003") - Decimal("0.002")
    assert state.positions_lots[BTC.symbol] == 100  # 0.000997 BTC: 99.7 lots, rounded once
    assert state.fees_paid == {"BTC": Decimal("0.000003"), "USDT": Decimal("0.06"), "BNB": Decimal("0.00011")}
    assert state.spot_balances == {
        "BTC": Decimal("0.000997"),
        "USDT": Decimal("-180") + Decimal("120.02") - Decimal("0.06"),
        "BNB": Decimal("-0.00011"),  # not converted to USDT at any rate
    }


def test_a_perp_fee_in_the_base_coin_is_a_balance_not_a_position(tmp_path: Path) -> None:
    with open_ledger(tmp_path / "l.sqlite") as led:
        led.record_fill("r", venue_fill("p1", Side.SELL, 3, "0.0000001", "BTC", symbol=PERP.symbol, ticks=600_000))
        state = led.recover()
    assert state.positions_lots == {PERP.symbol: -3} and state.positions_base == {PERP.symbol: Decimal("-0.003")}
    assert state.fees_paid == {"BTC": Decimal("0.0000001")} and state.spot_balances == {}


def test_fills_the_bot_simulates_keep_their_lots_and_their_quote_fee(tmp_path: Path) -> None:
    with open_ledger(tmp_path / "l.sqlite") as led:
        led.record_fill(
            "r", OrderFilled(BTC.symbol, "c", "F1", Side.BUY, 6_000_000, 250, 0.15, Liquidity.MAKER, 0, 1, 2)
        )
        led.record_fill(
            "r", OrderFilled(BTC.symbol, "c", "F2", Side.SELL, 6_000_000, 50, 0.03, Liquidity.MAKER, 0, 1, 2)
        )
        state = led.recover()
    assert state.positions_lots == {BTC.symbol: 200} and state.positions_base == {BTC.symbol: Decimal("0.002")}
    assert state.fees_paid == {"USDT": Decimal("0.18")} and state.fees_quote == 0.18


def test_a_venue_fill_without_a_fee_books_its_size_and_the_estimated_quote_fee(tmp_path: Path) -> None:
    estimated = OrderFilled(
        BTC.symbol, "c", "t1", Side.BUY, 6_000_000, 200, 0.12, Liquidity.TAKER, 0, 1, 2,
        report=VenueReport(200, 0.0, ""),
    )  # fmt: skip
    with open_ledger(tmp_path / "l.sqlite") as led:
        led.record_fill("r", estimated)
        state = led.recover()
    assert state.positions_lots == {BTC.symbol: 200} and state.fees_paid == {"USDT": Decimal("0.12")}


# ---- the property ---------------------------------------------------------------------------------

# fees as a venue states them: up to 8 decimals (Binance's commission), negative = a rebate
fees = st.decimals(min_value=Decimal("-0.0001"), max_value=Decimal("0.001"), places=8, allow_nan=False)
fills = st.lists(
    st.tuples(
        st.sampled_from([Side.BUY, Side.SELL]),
        st.integers(min_value=1, max_value=5_000),  # lots traded
        fees,
        st.sampled_from(["BTC", "BTC", "USDT", "BNB"]),
        st.integers(min_value=5_000_000, max_value=7_000_000),  # price ticks
    ),
    min_size=1,
    max_size=40,
)


@settings(max_examples=60, deadline=None)
@given(fills=fills, reopen_at=st.integers(min_value=0, max_value=40))
def test_position_is_the_signed_sizes_less_the_base_fees_with_no_drift(
    tmp_path_factory: pytest.TempPathFactory, fills: list[tuple[Side, int, Decimal, str, int]], reopen_at: int
) -> None:
    path = tmp_path_factory.mktemp("l") / "l.sqlite"
    led, run_id = open_ledger(path), "r"
    for i, (side, lots, fee, currency, ticks) in enumerate(fills):
        if i == reopen_at:  # a restart in the middle: the rows, not the process, hold the state
            led.close()
            led, run_id = open_ledger(path, "r2"), "r2"
        led.record_fill(run_id, venue_fill(f"t{i}", side, lots, str(fee), currency, ticks=ticks))
    state = led.recover("ccxt:binance:demo", "")
    led.close()
    base_fees = sum((fee for _, _, fee, ccy, _ in fills if ccy == "BTC"), Decimal(0))
    signed_size = sum((side.sign * lots * LOT for side, lots, _, _, _ in fills), Decimal(0))
    assert state.positions_base[BTC.symbol] == signed_size - base_fees
    expected_lots = ((signed_size - base_fees) / LOT).to_integral_value(ROUND_HALF_EVEN)
    assert state.positions_lots[BTC.symbol] == int(expected_lots)
    for currency in ("BTC", "USDT", "BNB"):
        paid = sum((fee for _, _, fee, ccy, _ in fills if ccy == currency), Decimal(0))
        assert state.fees_paid.get(currency, Decimal(0)) == paid
    quote_out = sum((side.sign * lots * LOT * ticks * TICK for side, lots, _, _, ticks in fills), Decimal(0))
    usdt_fees = sum((fee for _, _, fee, ccy, _ in fills if ccy == "USDT"), Decimal(0))
    assert state.spot_balances.get("USDT", Decimal(0)) == -quote_out - usdt_fees
