"""A venue order id names an order only with its symbol (bot/venues/ccxt_orders.py `OrderTracker`).

Binance numbers orders and trades per symbol, spot and USD-M alike: its order queries take `symbol`
with `orderId`, and ccxt's own order cache keys by symbol then id (it raised KeyError when two
symbols reused an id, ccxt/ccxt#26092). One tracker holds a venue's spot quotes and perp hedges, so
the two can carry the same id. Found on the Binance dialect: after a kill -9 the restart reported
`{'BTC/USDT:USDT': {'ledger_lots': -2, 'venue_lots': 0}}`; the first run had booked a re-delivered
spot trade as a fill of the IOC hedge whose id it shared (same price, same fee), a perp fill the venue
never made.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from bot.domain import Instrument, InstrumentKind, OrderFilled, PlaceOrder, Side
from bot.venues.ccxt_markets import MarketSpec
from bot.venues.ccxt_orders import OrderTracker

SPOT, PERP = "BTC/USDT", "BTC/USDT:USDT"
SPECS = {
    SPOT: MarketSpec(Instrument(SPOT, InstrumentKind.SPOT, "BTC", "USDT", 0.01, 0.00001), "BTCUSDT", 0.00001),
    PERP: MarketSpec(Instrument(PERP, InstrumentKind.PERP, "BTC", "USDT", 0.1, 0.001), "BTCUSDT", 0.001),
}


def trade(symbol: str | None, trade_id: str, order_id: str, price: float = 60_000.0, amount: float = 0.002) -> Any:
    return {"symbol": symbol, "id": trade_id, "order": order_id, "price": price, "amount": amount,
            "timestamp": 1_765_000_000_000, "fee": {"cost": 0.12, "currency": "USDT"}}  # fmt: skip


def place(tracker: OrderTracker, symbol: str, cid: str, side: Side, lots: int) -> str:
    return tracker.register(PlaceOrder(symbol, cid, side, 6_000_000 if symbol == SPOT else 600_000, lots)).venue_cid


def ack(tracker: OrderTracker, symbol: str, venue_cid: str, order_id: str) -> list[Any]:
    return tracker.on_order({"symbol": symbol, "clientOrderId": venue_cid, "id": order_id, "status": "open"}, 0)


def fills(events: list[Any]) -> list[OrderFilled]:
    return [e for e in events if isinstance(e, OrderFilled)]


def test_a_spot_trade_delivered_again_is_not_booked_on_the_hedge_that_reuses_its_order_id() -> None:
    tracker = OrderTracker("binance", SPECS)
    ack(tracker, SPOT, place(tracker, SPOT, "q-1", Side.BUY, 200), "7")
    (quote_fill,) = fills(tracker.on_trade(trade(SPOT, "500001", "7", 59_980.32), 1))
    assert (quote_fill.symbol, quote_fill.client_id) == (SPOT, "q-1")
    ack(tracker, PERP, place(tracker, PERP, "h-1", Side.SELL, 2), "7")  # USD-M's own order 7
    assert tracker.on_trade(trade(SPOT, "500001", "7", 59_980.32), 2) == []  # the re-delivery
    (hedge_fill,) = fills(tracker.on_trade(trade(PERP, "500001", "7", 60_021.7), 3))  # USD-M's trade 500001
    assert (hedge_fill.symbol, hedge_fill.client_id, hedge_fill.size_lots) == (PERP, "h-1", 2)


def test_a_hedge_trade_that_beats_its_ack_waits_for_the_hedge_not_the_spot_order_with_that_id() -> None:
    tracker = OrderTracker("binance", SPECS)
    ack(tracker, SPOT, place(tracker, SPOT, "q-1", Side.BUY, 200), "7")
    hedge_cid = place(tracker, PERP, "h-1", Side.SELL, 2)
    assert tracker.on_trade(trade(PERP, "9", "7"), 1) == []  # held until the hedge's id is known
    (fill,) = fills(ack(tracker, PERP, hedge_cid, "7"))
    assert (fill.symbol, fill.client_id) == (PERP, "h-1")


def test_a_report_found_by_venue_id_alone_is_found_on_its_own_symbol() -> None:
    tracker = OrderTracker("binance", SPECS)
    ack(tracker, SPOT, place(tracker, SPOT, "q-1", Side.BUY, 200), "7")
    ack(tracker, PERP, place(tracker, PERP, "h-1", Side.SELL, 2), "7")
    canceled = tracker.on_order({"symbol": PERP, "id": "7", "status": "expired"}, 1)  # no clientOrderId
    assert [(type(e).__name__, e.symbol, e.client_id) for e in canceled] == [("OrderCanceled", PERP, "h-1")]
    assert tracker.venue_order_ids(SPOT) == {"7": "q-1"} and tracker.venue_order_ids(PERP) == {}


def test_a_trade_without_a_symbol_is_dropped_and_counted_when_the_venue_has_several_markets() -> None:
    tracker = OrderTracker("binance", SPECS)
    ack(tracker, SPOT, place(tracker, SPOT, "q-1", Side.BUY, 200), "7")
    assert tracker.on_trade(trade(None, "1", "7"), 1) == []
    assert tracker.dropped["trade_without_symbol"] == 1
    assert tracker.on_trade(trade("ETH/USDT", "2", "7"), 1) == []  # the account's other market: not ours
    one_market = OrderTracker("binance", {SPOT: SPECS[SPOT]})  # one market: a bare trade is on it
    ack(one_market, SPOT, place(one_market, SPOT, "q-1", Side.BUY, 200), "7")
    assert [f.client_id for f in fills(one_market.on_trade(trade(None, "1", "7"), 1))] == ["q-1"]


# ---- property: ids drawn from a tiny range, so spot and perp collide all the time ------------------

TAG = {SPOT: "q", PERP: "h"}
ORDER = st.tuples(st.sampled_from([SPOT, PERP]), st.integers(1, 3))  # (symbol, venue order id)


@settings(max_examples=300, deadline=None)
@given(
    orders=st.lists(ORDER, min_size=1, max_size=6, unique=True),
    data=st.data(),
)
def test_every_venue_trade_is_booked_once_on_the_order_of_its_own_symbol(
    orders: list[tuple[str, int]], data: st.DataObject
) -> None:
    """Acks, trades and re-deliveries of trades in any order: each (symbol, trade id) becomes exactly
    one fill, on the order that symbol's venue id names, whatever the other symbol's ids are."""
    tracker = OrderTracker("binance", SPECS)
    cids = {(sym, oid): place(tracker, sym, f"{TAG[sym]}-{oid}", Side.BUY, 1000) for sym, oid in orders}
    venue_trades = [(sym, f"t{oid}-{n}", oid) for sym, oid in orders for n in range(2)]  # two per order
    messages = [("ack", sym, oid) for sym, oid in orders]
    messages += [("trade", sym, (tid, oid)) for sym, tid, oid in venue_trades]
    messages += data.draw(st.lists(st.sampled_from(messages[len(orders):]), max_size=6), label="re-deliveries")
    booked: list[OrderFilled] = []
    for kind, sym, what in data.draw(st.permutations(messages), label="arrival order"):
        if kind == "ack":
            booked += fills(ack(tracker, sym, cids[(sym, what)], str(what)))
        else:
            tid, oid = what
            booked += fills(tracker.on_trade(trade(sym, tid, str(oid), amount=SPECS[sym].amount_step), 1))
    assert sorted((f.symbol, f.fill_id) for f in booked) == sorted((s, t) for s, t, _ in venue_trades)
    for fill in booked:
        oid = int(fill.fill_id.split("-")[0][1:])
        assert fill.client_id == f"{TAG[fill.symbol]}-{oid}"
