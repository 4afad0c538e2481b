"""ccxt's real, unmodified binance client (demo mode) against the Binance dialect's private side.

Each exchange is built by `build_exchange` with `ccxt.sandbox_url_base` pointing at the dialect server
on 127.0.0.1; the dialect checks the HMAC signature of every signed request with the secret below.
What it answers is Binance's documented behaviour (bot/venues/mock/dialects/binance_trading.py and
binance_gate.py cite each one), so these tests check ccxt's handling of Binance's semantics, and the
adapter's where it is involved.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any

import ccxt
import pytest
from conftest import until

from bot.config import CcxtConfig, ConfigError
from bot.domain import CancelOrder, OrderType, PlaceOrder, Side
from bot.venues.ccxt_safety import build_exchange
from bot.venues.ccxt_venue import CcxtVenue
from bot.venues.mock.dialects import DialectServer, dialect_factory
from bot.venues.mock.dialects.binance_gate import Gate, Limits
from bot.venues.mock.dialects.markets import PERP_SYMBOL, SPOT_SYMBOL, quiet_btc_config

SECRET = "demo-secret"
SPOT, PERP = SPOT_SYMBOL, PERP_SYMBOL


@asynccontextmanager
async def dialect(**options: Any) -> AsyncIterator[DialectServer]:
    options.setdefault("api_secret", SECRET)
    async with DialectServer(dialect_factory("binance", **options), quiet_btc_config(dialect="binance")) as server:
        yield server


def config(server: DialectServer, **overrides: Any) -> CcxtConfig:
    fields: dict[str, Any] = {
        "exchange": "binance", "mode": "demo", "api_key": "any-key", "api_secret": SECRET,
        "sandbox_url_base": f"http://127.0.0.1:{server.port}", "reconnect_base_ms": 20, "reconnect_cap_ms": 100,
        "position_poll_ms": 0,
    }  # fmt: skip
    fields.update(overrides)
    return CcxtConfig(**fields)


@asynccontextmanager
async def client(server: DialectServer, **overrides: Any) -> AsyncIterator[Any]:
    exchange = build_exchange(config(server, **overrides))
    try:
        await exchange.load_markets()
        yield exchange
    finally:
        await exchange.close()


def best(server: DialectServer, symbol: str) -> tuple[float, float]:
    snap = server.exchange.snapshot(symbol, server.now_ns())
    tick = server.exchange.instruments[symbol].tick_size
    return round(snap.bids[0][0] * tick, 2), round(snap.asks[0][0] * tick, 2)


async def test_a_post_only_bid_rests_and_its_fill_reaches_ccxt_through_the_websocket_api() -> None:
    """Spot user data via `userDataStream.subscribe.signature` (signed, checked): the order's NEW and
    its TRADE executionReport; the fee in the base coin (a spot buy on Binance)."""
    async with dialect() as server, client(server) as ex:
        bid, _ = best(server, SPOT)
        orders = asyncio.ensure_future(ex.watch_orders(SPOT))
        trades = asyncio.ensure_future(ex.watch_my_trades(SPOT))
        await until(lambda: any(c.path == "/ws-api/v3" for c in server.connections), what="the ws-api socket")
        await until(lambda: server.dialect._ws_subscriptions, what="the user data subscription")  # type: ignore[attr-defined]
        order = await ex.create_order(SPOT, "limit", "buy", 0.002, bid, {"postOnly": True, "clientOrderId": "q1"})
        assert (order["status"], order["clientOrderId"], order["type"]) == ("open", "q1", "limit")
        pushed = await asyncio.wait_for(orders, 10)
        assert pushed[-1]["id"] == order["id"]
        inst = server.exchange.instruments[SPOT]
        server.exchange.simulate_taker(SPOT, Side.SELL, 10**6, inst.ticks(bid))  # through our bid
        server.pacer.wake()
        (fill,) = await asyncio.wait_for(trades, 10)
        assert (fill["order"], fill["amount"], fill["price"]) == (order["id"], 0.002, bid)
        assert fill["fee"] == {"currency": "BTC", "cost": pytest.approx(0.002 * 0.001)}
        history = await ex.fetch_my_trades(SPOT, server.now_ms() - 60_000, 100)
        assert [t["id"] for t in history] == [fill["id"]]


async def test_the_engines_refusals_come_back_with_binances_codes() -> None:
    async with dialect() as server, client(server) as ex:
        bid, ask = best(server, SPOT)
        with pytest.raises(ccxt.OrderImmediatelyFillable, match="Order would immediately match and take"):
            await ex.create_order(SPOT, "limit", "buy", 0.002, ask, {"postOnly": True})  # LIMIT_MAKER crossing
        with pytest.raises(ccxt.InsufficientFunds, match="insufficient balance"):
            await ex.create_order(SPOT, "limit", "buy", 10.0, bid)  # 600k USDT of 100k
        with pytest.raises(ccxt.OrderNotFound, match="-2011"):
            await ex.cancel_order(None, SPOT, {"origClientOrderId": "never-placed"})
        assert await ex.fetch_open_orders(SPOT) == []  # refused orders are not recorded


@pytest.mark.parametrize(
    ("amount", "price", "message", "raised"),
    [
        (0.000015, 59_000.0, "LOT_SIZE", ccxt.InvalidOrder),  # ccxt's handle_errors reads the filter's name
        (0.002, 59_000.005, "PRICE_FILTER", ccxt.InvalidOrder),
        (0.00002, 59_000.0, "NOTIONAL", ccxt.BadRequest),  # -1013 in exceptions['exact']
    ],
)
async def test_spot_filters_refuse_with_minus_1013(amount: float, price: float, message: str, raised: type) -> None:
    async with dialect() as server, client(server) as ex:
        request = ex.create_order_request(SPOT, "limit", "buy", amount, price)  # no ccxt rounding
        with pytest.raises(raised, match=f"Filter failure: {message}"):
            await ex.privatePostOrder(request | {"quantity": f"{amount:.6f}", "price": f"{price:.3f}"})


async def test_usdm_min_notional_exempts_reduce_only_and_position_side_must_match_the_mode() -> None:
    async with dialect() as server, client(server) as ex:
        with pytest.raises(ccxt.ExchangeError, match="-4164"):
            await ex.create_order(PERP, "market", "sell", 0.001)  # ~60 USDT < 100
        await ex.create_order(PERP, "market", "sell", 0.002)
        closing = await ex.create_order(PERP, "market", "buy", 0.001, None, {"reduceOnly": True})
        assert closing["status"] == "closed"  # 60 USDT, reduce-only: exempt
        (position,) = await ex.fetch_positions([PERP])
        assert (position["side"], position["contracts"]) == ("short", 0.001)
        with pytest.raises(ccxt.ExchangeError, match="-4061"):
            await ex.create_order(PERP, "market", "sell", 0.002, None, {"positionSide": "SHORT"})


async def test_the_adapter_refuses_a_hedge_mode_account_at_connect() -> None:
    async with dialect(hedge_mode=True) as server:
        venue = CcxtVenue(config(server))
        try:
            with pytest.raises(ConfigError, match=r"hedge .*position mode"):
                await venue.connect()
        finally:
            await venue.close()


async def test_a_bad_signature_a_skewed_clock_and_a_long_recv_window_are_refused() -> None:
    async with dialect() as server:
        async with client(server, api_secret="wrong-secret") as ex:
            with pytest.raises(ccxt.AuthenticationError, match="-1022"):
                await ex.fetch_balance()
        async with client(server) as ex:
            ex.options["timeDifference"] = -2_000  # our clock 2 s ahead of the server's
            with pytest.raises(ccxt.InvalidNonce, match="1000ms ahead"):
                await ex.fetch_balance()
            ex.options["timeDifference"] = 7_000  # 7 s behind: outside the 5 s default window
            with pytest.raises(ccxt.InvalidNonce, match="outside of the recvWindow"):
                await ex.fetch_balance({"recvWindow": 5_000})
            ex.options["timeDifference"] = 0
            # ExchangeError, not BadRequest: ccxt keeps -1131 in its per-market-type tables, which it picks
            # by the URL's https://demo-api prefix (get_exceptions_by_url); the loopback URL has none
            with pytest.raises(ccxt.ExchangeError, match="-1131"):
                await ex.fetch_balance({"recvWindow": 70_000})
            assert (await ex.fetch_balance())["total"] == {"BTC": 1.0, "USDT": 100_000.0}


async def test_weight_headers_then_429_then_an_ip_ban_with_418() -> None:
    """account weighs 20: a 100-weight minute allows 5, then 429s with Retry-After; a client that
    keeps going after 2 of them is banned (418) until the ban ends."""
    small = Limits(100, 100, 200_000, 86_400_000, "X-MBX-ORDER-COUNT-1D", "DAY")
    gate = Gate(api_secret=SECRET, spot_limits=small, ban_after_429s=2, ban_s=120)
    async with dialect(gate=gate) as server, client(server) as ex:
        ex.enableRateLimit = False
        used = []
        for _ in range(5 - 1):  # load_markets spent 20 on exchangeInfo
            await ex.fetch_balance()
            used.append(int(ex.last_response_headers["X-MBX-USED-WEIGHT-1M"]))
        assert used == [40, 60, 80, 100]
        for _ in range(2):
            with pytest.raises(ccxt.DDoSProtection, match="429"):
                await ex.fetch_balance()
            assert 1 <= int(ex.last_response_headers["Retry-After"]) <= 60
        with pytest.raises(ccxt.DDoSProtection, match="418"):
            await ex.fetch_balance()
        assert 60 < int(ex.last_response_headers["Retry-After"]) <= 120


async def test_my_trades_windows_and_pages_oldest_first() -> None:
    async with dialect() as server, client(server) as ex:
        for _ in range(3):
            await ex.create_order(SPOT, "market", "buy", 0.002)
        now = server.now_ms()
        ids = [t["id"] for t in await ex.fetch_my_trades(SPOT)]
        assert ids == sorted(ids, key=int) and len(ids) == 3
        assert [t["id"] for t in await ex.fetch_my_trades(SPOT, None, 2)] == ids[1:]  # the most recent, oldest first
        assert [t["id"] for t in await ex.fetch_my_trades(SPOT, now - 60_000, 2)] == ids[:2]  # from startTime
        assert await ex.fetch_my_trades(SPOT, now - 2 * 86_400_000) == []  # startTime + 24 h ends before them
        with pytest.raises(ccxt.BadRequest, match="-1127"):
            await ex.fetch_my_trades(SPOT, now - 2 * 86_400_000, None, {"until": now})


async def test_restart_history_reaches_fills_beyond_the_first_24_hour_window() -> None:
    """Binance answers myTrades from `startTime` for 24 h only (spot; 7 days on USD-M), so a restart
    whose `since` is older than that must walk window by window (ccxt's own example does:
    ccxt/ccxt#7439; USD-M: ccxt/ccxt#16986). Fills of a run 30 h ago and of now: all recovered."""
    async with dialect() as server:
        venue = CcxtVenue(config(server))
        try:
            await venue.connect()
            ex = venue.exchange
            for _ in range(3):
                await ex.create_order(SPOT, "market", "buy", 0.002)
            trading = server.dialect.trading  # type: ignore[attr-defined]
            now = server.now_ms()
            old = [replace(t, time_ms=now - 30 * 3_600_000 + i) for i, t in enumerate(trading.trades[SPOT][:2])]
            trading.trades[SPOT][:2] = old  # the venue's record of two fills 30 h ago, oldest first
            fills = await venue.fills_since((now - 31 * 3_600_000) * 1_000_000)
        finally:
            await venue.close()
    assert [f.fill_id for f in fills] == [str(t.trade_id) for t in trading.trades[SPOT]]


async def test_a_cancel_that_lost_the_race_to_a_fill_reports_the_fill_first() -> None:
    """Binance answers the cancel of an order that just filled with -2011 at once, while the fill's
    push may still be on its way (here: the user data socket is down). The adapter reported only the
    CancelRejected, so a shutdown waiting for no open order exited and the ledger never got the fill
    (seen in test_demo_config_on_binance_dialect under load); it now reads the order's trades first."""
    async with dialect() as server:
        venue = CcxtVenue(config(server, reconnect_base_ms=2000, reconnect_cap_ms=2000))
        events: list[Any] = []
        await venue.connect()
        task = asyncio.create_task(venue.stream(events.append))
        try:
            await until(lambda: server.dialect._ws_subscriptions, what="the user data subscription")  # type: ignore[attr-defined]
            inst = server.exchange.instruments[SPOT]
            bid, _ = best(server, SPOT)
            await venue.execute(
                PlaceOrder(SPOT, "race1", Side.BUY, inst.ticks(bid), 200, OrderType.LIMIT, post_only=True)
            )
            await until(lambda: server.exchange.open_orders(), what="our bid on the book")
            for conn in [c for c in server.connections if c.path == "/ws-api/v3"]:
                await conn.ws.close()
            await until(lambda: not any(c.path == "/ws-api/v3" for c in server.connections), what="no user data socket")
            book = server.exchange.snapshot(SPOT, server.now_ns())
            lots = sum(size for price, size in book.bids if price >= inst.ticks(bid))
            server.exchange.simulate_taker(SPOT, Side.SELL, lots, limit_ticks=inst.ticks(bid))
            server.pacer.wake()
            await until(lambda: server.dialect.trading.trades[SPOT], what="the venue's trade")  # type: ignore[attr-defined]
            await venue.execute(CancelOrder(SPOT, "race1"))
            kinds = [type(e).__name__ for e in events if getattr(e, "client_id", None) == "race1"]
        finally:
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            await venue.close()
    assert kinds[-2:] == ["OrderFilled", "CancelRejected"]
