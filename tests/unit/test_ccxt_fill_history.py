"""CcxtVenue.fills_since (fetch_my_trades, page by page; paper mode's simulated fills) and the
cancel of orphan orders found at start, through the hand-written ccxt fake of test_ccxt_venue.py."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from conftest import until
from test_ccxt_venue import ccxt_book, connected, make_venue, place

from bot.domain import BookSnapshot, CancelOrder, Event, Liquidity, OrderFilled, Side
from bot.venues import ccxt_venue
from bot.venues.base import fetch_fills_since

T_MS = 1_700_000_000_000  # the venue's clock, ms
MS = 1_000_000


def trade(trade_id: str, ts_ms: int, **kw: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "id": trade_id,
        "symbol": "BTC/USDT",
        "order": f"oid-{trade_id}",
        "side": "sell",
        "amount": 0.002,
        "price": 60000.0,
        "timestamp": ts_ms,
        "takerOrMaker": "maker",
        "fee": {"cost": 0.12, "currency": "USDT"},
    }
    fields.update(kw)
    return fields


def with_history(fake: Any, trades: list[dict[str, Any]]) -> list[tuple[str, int, int | None]]:
    """Give the fake a `fetch_my_trades` over `trades` (ccxt semantics: since inclusive, oldest first;
    with `paginate`, as ccxt's cursor pagination returns them: every trade since `since`). How a real
    venue pages (bybit newest first) is tested against the dialect server, tests/integration."""
    calls: list[tuple[str, int, int | None]] = []

    async def fetch_my_trades(
        symbol: str, since: int, limit: int | None, params: dict[str, Any] | None = None
    ) -> list[dict[str, Any]]:
        calls.append((symbol, since, limit))
        rows = sorted(
            (t for t in trades if t["symbol"] == symbol and t["timestamp"] >= since), key=lambda t: t["timestamp"]
        )
        return rows if (params or {}).get("paginate") else rows[:limit]

    fake.fetch_my_trades = fetch_my_trades
    fake.has["fetchMyTrades"] = True
    return calls


async def test_history_pages_through_fetch_my_trades_and_lists_each_trade_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ccxt_venue, "HISTORY_PAGE", 3)
    # binance pages oldest first from `since` (bybit and okx go by cursor: ccxt's paginate)
    venue, fake, _clock, _events = await connected("binance", "demo", perp_symbol="")
    # five trades, two sharing a millisecond across a page boundary, one before `since`
    trades = [trade("t0", T_MS - 1)] + [trade(f"t{i}", T_MS + ms) for i, ms in enumerate((0, 5, 9, 9, 20), 1)]
    calls = with_history(fake, trades)
    fills = await venue.fills_since(T_MS * MS)
    assert [f.fill_id for f in fills] == ["t1", "t2", "t3", "t4", "t5"]
    assert [f.ts_venue_ns for f in fills] == [(T_MS + ms) * MS for ms in (0, 5, 9, 9, 20)]
    # each page starts at the last trade's time, until a page comes back short (or brings nothing new)
    assert calls == [("BTC/USDT", T_MS, 3), ("BTC/USDT", T_MS + 9, 3), ("BTC/USDT", T_MS + 20, 3)]


async def test_a_history_fill_is_what_the_live_feed_would_have_said() -> None:
    venue, fake, clock, _events = await connected(perp_symbol="")
    await venue.execute(place("mine", size_lots=5))  # this process placed it: oid-1
    trades = [
        trade("a", T_MS, order="oid-1", side="buy"),
        trade(
            "b", T_MS + 1, info={"orderLinkId": "q-old-3"}, takerOrMaker=None, fee={"cost": 0.000002, "currency": "BTC"}
        ),
        trade("c", T_MS + 2, order="oid-77", takerOrMaker=None, fee={"cost": 0.5, "currency": "BNB"}),
    ]
    with_history(fake, trades)
    a, b, c = await venue.fills_since(0)
    assert (a.client_id, a.side, a.price_ticks, a.size_lots, a.liquidity) == (
        "mine",
        Side.BUY,
        6_000_000,
        2,
        Liquidity.MAKER,
    )
    assert a.fee_quote == pytest.approx(0.12) and a.leaves_lots == 0 and a.ts_recv_ns == clock.now_ns
    assert (b.client_id, b.side, b.liquidity) == ("q-old-3", Side.SELL, Liquidity.TAKER)  # unknown order: taker
    assert b.fee_quote == pytest.approx(0.000002 * 60000.0)  # a base fee converts at the fill price
    assert c.client_id == "venue:oid-77"  # an order of another process, no client id in the payload
    assert c.fee_quote == pytest.approx(60000.0 * 0.002 * 0.001)  # a third-currency fee: the market's taker rate
    # the live feed would give the same fill id to the same trade
    live = venue._orders.on_trade(trades[0], clock.now_ns)
    assert [f.fill_id for f in live if isinstance(f, OrderFilled)] == ["a"]


async def test_every_symbol_is_asked_and_the_fills_come_back_in_time_order() -> None:
    venue, fake, _clock, _events = await connected()
    perp = dict(symbol="BTC/USDT:USDT", price=60010.0)
    with_history(fake, [trade("s1", T_MS + 5), trade("p1", T_MS + 1, **perp), trade("p2", T_MS + 9, **perp)])
    fills = await venue.fills_since(0)
    assert [(f.symbol, f.fill_id) for f in fills] == [
        ("BTC/USDT:USDT", "p1"),
        ("BTC/USDT", "s1"),
        ("BTC/USDT:USDT", "p2"),
    ]


async def test_a_venue_without_fetch_my_trades_has_no_history() -> None:
    venue, fake, _clock, _events = await connected()
    fake.has["fetchMyTrades"] = False
    with pytest.raises(NotImplementedError):
        await venue.fills_since(0)
    assert await fetch_fills_since(venue, 0) is None


async def test_paper_mode_history_is_its_simulated_fills() -> None:
    venue, fake, _clock = make_venue("binance", "paper", perp_symbol="", paper_latency_ms=0, paper_advance_ms=1)
    await venue.connect()
    events: list[Event] = []
    async with asyncio.TaskGroup() as tg:
        task = tg.create_task(venue.stream(events.append))
        fake.feeds[("watch_order_book", "BTC/USDT")].put_nowait(ccxt_book(7))
        await until(lambda: any(isinstance(e, BookSnapshot) for e in events))
        await venue.execute(place("bid", price_ticks=5_999_900, size_lots=2))
        sell = {"id": "x1", "price": 59998.0, "amount": 0.005, "side": "sell", "timestamp": T_MS}
        fake.feeds[("watch_trades", "BTC/USDT")].put_nowait([sell])
        await until(lambda: any(isinstance(e, OrderFilled) for e in events))
        task.cancel()
    delivered = [e for e in events if isinstance(e, OrderFilled)]
    assert await venue.fills_since(0) == delivered
    assert await venue.fills_since(delivered[-1].ts_venue_ns + 1) == []
    assert fake.called("fetch_my_trades") == []


async def test_an_orphan_listed_by_open_orders_is_canceled_by_its_venue_order_id() -> None:
    venue, fake, _clock, events = await connected(perp_symbol="")
    fake.results["fetch_open_orders"].append(
        [{"id": "x9", "clientOrderId": "q-old-1", "side": "buy", "price": 60000.0, "remaining": 0.002}]
    )
    (orphan,) = await venue.open_orders()
    assert orphan.extra == {"foreign": "true"}
    await venue.execute(CancelOrder("BTC/USDT", orphan.client_id))
    assert fake.called("cancel_order") == [("x9", "BTC/USDT", {})]
    assert events == []  # nothing tracks it: no event, reconciliation re-lists the open orders
    await venue.execute(CancelOrder("BTC/USDT", "never-listed"))
    assert [type(e).__name__ for e in events] == ["CancelRejected"]


async def test_a_malformed_history_trade_is_skipped_and_counted_not_fatal() -> None:
    venue, fake, _clock, _events = await connected(perp_symbol="")
    with_history(fake, [trade("t1", T_MS), trade("t2", T_MS + 1, price=float("nan")), trade("t3", T_MS + 2)])
    fills = await venue.fills_since(T_MS * MS)
    assert [f.fill_id for f in fills] == ["t1", "t3"]
    assert venue.dropped_history == 1
