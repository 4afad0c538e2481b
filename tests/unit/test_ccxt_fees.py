"""The ccxt adapter's fee and size parsing (bot/venues/ccxt_orders.py): every fill carries the venue's
size and fee as reported (`VenueReport`), and a spot fill paying its fee in the base coin is booked
against a running remainder, so the engine's lots follow the wallet instead of drifting one per-fill
rounding at a time.

Trades come from ccxt's own binance `parse_trade` on rows in the shape of Binance's GET
/api/v3/myTrades (binance-spot-api-docs rest-api.md "Account trade list"; the row quoted in ccxt's
binance.py parse_trade), on the recorded BTCUSDT market (tests/data/ccxt/binance_btcusdt_market.json).
"""

from __future__ import annotations

import json
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path
from typing import Any

import ccxt.pro
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.domain import PlaceOrder, Side, VenueReport
from bot.venues.ccxt_markets import MarketSpec, market_spec
from bot.venues.ccxt_orders import OrderTracker

FIXTURE = Path(__file__).resolve().parents[1] / "data" / "ccxt" / "binance_btcusdt_market.json"
LOT = Decimal("0.00001")


def binance() -> tuple[Any, MarketSpec]:
    exchange = ccxt.pro.binance()
    exchange.options["crossMarginPairsData"] = []
    exchange.options["isolatedMarginPairsData"] = []
    market = exchange.parse_market(json.loads(FIXTURE.read_text())["exchange_info_symbol"])
    exchange.set_markets([market])
    return exchange, market_spec(market, exchange.precisionMode)


EXCHANGE, SPEC = binance()


def my_trade(trade_id: int, order_id: int, qty: str, commission: str, asset: str, buyer: bool = True) -> Any:
    """ccxt's trade structure of one myTrades row, parsed by ccxt itself."""
    row = {
        "symbol": "BTCUSDT", "id": trade_id, "orderId": order_id, "orderListId": -1, "price": "60000.00",
        "qty": qty, "quoteQty": "0", "commission": commission, "commissionAsset": asset, "time": 1_765_000_000_000,
        "isBuyer": buyer, "isMaker": False, "isBestMatch": True,
    }  # fmt: skip
    return EXCHANGE.parse_trade(row, EXCHANGE.market("BTC/USDT"))


def tracker_with_order(order_id: int, side: Side = Side.BUY, lots: int = 200) -> tuple[OrderTracker, str]:
    tracker = OrderTracker("binance", {"BTC/USDT": SPEC})
    order = tracker.register(PlaceOrder("BTC/USDT", f"c{order_id}", side, 6_000_000, lots))
    tracker.on_order({"clientOrderId": order.venue_cid, "id": str(order_id), "status": "open"}, 0)
    return tracker, f"c{order_id}"


def test_ccxt_reports_binances_commission_as_the_unified_fee() -> None:
    trade = my_trade(1, 7, "0.00200000", "0.00000200", "BTC")
    assert trade["fee"] == {"cost": 2e-06, "currency": "BTC"} and trade["amount"] == 0.002


def test_a_btc_fee_buy_reports_the_venues_size_and_fee() -> None:
    tracker, _ = tracker_with_order(7)
    (fill,) = tracker.on_trade(my_trade(1, 7, "0.00200000", "0.00000200", "BTC"), 5)
    assert fill.report == VenueReport(200, 2e-06, "BTC")
    assert fill.size_lots == 200  # 199.8 lots received: under half a lot is carried, not lost
    assert fill.fee_quote == 2e-06 * 60_000.0  # its quote value, for PnL (unchanged)
    history = tracker.history_fill(my_trade(1, 7, "0.00200000", "0.00000200", "BTC"), "BTC/USDT", 6)
    assert history.report == fill.report


def test_a_bnb_fee_is_reported_in_bnb_and_estimated_in_quote_at_the_markets_rate() -> None:
    tracker, _ = tracker_with_order(8)
    (fill,) = tracker.on_trade(my_trade(2, 8, "0.00200000", "0.00004100", "BNB"), 5)
    assert fill.report == VenueReport(200, 4.1e-05, "BNB")
    assert fill.size_lots == 200  # a BNB fee takes no BTC
    assert fill.fee_quote == 60_000.0 * 0.002 * SPEC.instrument.taker_fee


def test_a_sell_paying_usdt_reports_it_and_keeps_its_lots() -> None:
    tracker, _ = tracker_with_order(9, Side.SELL)
    (fill,) = tracker.on_trade(my_trade(3, 9, "0.00200000", "0.12000000", "USDT", buyer=False), 5)
    assert (fill.size_lots, fill.fee_quote, fill.report) == (200, 0.12, VenueReport(200, 0.12, "USDT"))


def test_thirty_btc_fee_buys_book_the_coins_received_not_thirty_roundings() -> None:
    """Each buy receives 199.8 lots; rounded per fill that was 200 every time (6000 lots after 30
    buys while the wallet got 5994)."""
    tracker = OrderTracker("binance", {"BTC/USDT": SPEC})
    booked = []
    for i in range(30):
        order = tracker.register(PlaceOrder("BTC/USDT", f"c{i}", Side.BUY, 6_000_000, 200))
        tracker.on_order({"clientOrderId": order.venue_cid, "id": str(100 + i), "status": "open"}, 0)
        (fill,) = tracker.on_trade(my_trade(i, 100 + i, "0.00200000", "0.00000200", "BTC"), 5)
        booked.append(fill.size_lots)
    assert sum(booked) == 5994 and set(booked) == {199, 200}


def test_the_engine_starts_from_the_wallets_remainder() -> None:
    """The wallet holds 0.0000155 BTC above the allocation: the engine starts at 2 lots (the venue's
    rounded balance, `CcxtVenue.positions`), 0.45 of a lot more than it holds, and received coins are
    booked from there: after a 199.8-lot buy the wallet holds 201.35 lots, so the buy books 199
    (2 + 199 = 201), where a fresh remainder would book 200 and leave the engine a lot above."""
    tracker, _ = tracker_with_order(11)
    tracker.start_spot_position("BTC/USDT", 1.0000155, 1.0)
    (fill,) = tracker.on_trade(my_trade(4, 11, "0.00200000", "0.00000200", "BTC"), 5)
    assert fill.size_lots == 199
    fresh, _ = tracker_with_order(12)
    (fill,) = fresh.on_trade(my_trade(5, 12, "0.00200000", "0.00000200", "BTC"), 5)
    assert fill.size_lots == 200


# fees as a venue states them: 8 decimals, finer than the 0.00001 lot (and smaller than any trade)
fee_lots = st.decimals(min_value=Decimal("0"), max_value=Decimal("0.00000999"), places=8, allow_nan=False)


@settings(max_examples=80, deadline=None)
@given(
    start=st.decimals(min_value=Decimal("0"), max_value=Decimal("0.001"), places=8, allow_nan=False),
    fills=st.lists(st.tuples(st.sampled_from([Side.BUY, Side.SELL]), st.integers(1, 500), fee_lots), max_size=40),
)
def test_the_engines_lots_are_the_wallets_rounded_after_any_fills(
    start: Decimal, fills: list[tuple[Side, int, Decimal]]
) -> None:
    """Over random spot fills each paying a base-coin fee, the engine's position (its start plus every
    fill's signed size_lots) is the wallet's exact holding rounded to lots: no drift. (At an exact
    half lot either neighbour is the rounding: there it is within half a lot.)"""
    tracker = OrderTracker("binance", {"BTC/USDT": SPEC})
    tracker.start_spot_position("BTC/USDT", float(Decimal(1) + start), 1.0)
    engine_lots = int((start / LOT).to_integral_value(ROUND_HALF_EVEN))
    held = start
    for i, (side, lots, fee) in enumerate(fills):
        order = tracker.register(PlaceOrder("BTC/USDT", f"c{i}", side, 6_000_000, lots))
        tracker.on_order({"clientOrderId": order.venue_cid, "id": str(i + 1), "status": "open"}, 0)
        qty = lots * LOT
        (fill,) = tracker.on_trade(my_trade(i, i + 1, f"{qty:.8f}", f"{fee:.8f}", "BTC", side is Side.BUY), 5)
        assert fill.report == VenueReport(lots, float(fee), "BTC")
        engine_lots += side.sign * fill.size_lots
        held += side.sign * qty - fee
        assert abs(engine_lots * LOT - held) <= LOT / 2
        if (held / LOT) % 1 not in (Decimal("0.5"), Decimal("-0.5")):
            assert engine_lots == int((held / LOT).to_integral_value(ROUND_HALF_EVEN))
