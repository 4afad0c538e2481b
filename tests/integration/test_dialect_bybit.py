"""ccxt's real, unmodified bybit client (and our adapter on it) against the Bybit dialect server.

Every exchange here is built by `build_exchange` with `ccxt.sandbox_url_base` pointing at the dialect
server on 127.0.0.1, so the URL override is exercised too; nothing leaves loopback. What the dialect
answers is modelled on Bybit's v5 docs and ccxt's source (bot/venues/mock/dialects/bybit.py cites each
behaviour), not on what the adapter expects: the adapter tests below failed before its fixes.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import ccxt
import pytest
from conftest import until, wait_for_event

from bot.config import CcxtConfig, ConfigError
from bot.domain import (
    BookSnapshot,
    Event,
    FeedStatus,
    OrderAccepted,
    OrderCanceled,
    OrderFilled,
    OrderRejected,
    OrderType,
    PlaceOrder,
    Side,
)
from bot.venues.ccxt_safety import build_exchange
from bot.venues.ccxt_venue import CcxtVenue
from bot.venues.mock.dialects import DialectServer, dialect_factory
from bot.venues.mock.dialects.markets import PERP_SYMBOL, SPOT_SYMBOL, quiet_btc_config

SPOT, PERP = SPOT_SYMBOL, PERP_SYMBOL


@asynccontextmanager
async def dialect(**options: Any) -> AsyncIterator[DialectServer]:
    server_kw = {k: options.pop(k) for k in ("ws_max_age_s", "monotonic_ns") if k in options}
    async with DialectServer(dialect_factory("bybit", **options), quiet_btc_config(), **server_kw) as server:
        yield server


def config(server: DialectServer, **overrides: Any) -> CcxtConfig:
    fields: dict[str, Any] = {
        "exchange": "bybit",
        "mode": "testnet",
        "api_key": "any-key",
        "api_secret": "any-secret",
        "sandbox_url_base": f"http://127.0.0.1:{server.port}",
        "reconnect_base_ms": 20,
        "reconnect_cap_ms": 100,
        "position_poll_ms": 0,
    }
    fields.update(overrides)
    return CcxtConfig(**fields)


@asynccontextmanager
async def client(server: DialectServer) -> AsyncIterator[Any]:
    exchange = build_exchange(config(server))
    try:
        await exchange.load_markets()
        yield exchange
    finally:
        await exchange.close()


@asynccontextmanager
async def streaming(venue: CcxtVenue) -> AsyncIterator[list[Event]]:
    events: list[Event] = []
    await venue.connect()
    task = asyncio.create_task(venue.stream(events.append))
    try:
        yield events
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await venue.close()


def private_topics(server: DialectServer) -> set[str]:
    return {t for c in server.connections if c.path.endswith("/v5/private") for t in c.topics}


def best(server: DialectServer, symbol: str) -> tuple[int, int]:
    snap = server.exchange.snapshot(symbol, server.now_ns())
    return snap.bids[0][0], snap.asks[0][0]


# ---- the dialect, through ccxt's own client --------------------------------------------------------


async def test_ccxt_lists_the_markets_with_their_grid_and_minimums() -> None:
    async with dialect() as server, client(server) as ex:
        spot, perp = ex.markets[SPOT], ex.markets[PERP]
        assert (spot["id"], spot["precision"], spot["limits"]["amount"]["min"], spot["limits"]["cost"]["min"]) == (
            "BTCUSDT",
            {"amount": 0.000001, "price": 0.01},
            0.000048,
            1.0,
        )
        assert (perp["linear"], perp["precision"], perp["limits"]["cost"]["min"]) == (
            True,
            {"amount": 0.001, "price": 0.1},
            5.0,
        )
        assert (await ex.fetch_balance())["total"] == {"USDT": 100_000.0, "BTC": 1.0}


async def test_a_topic_subscribed_twice_on_one_socket_is_refused_as_bybit_does() -> None:
    """The cited bug: two symbol-specific watch_orders send `order` twice on the one private socket."""
    async with dialect() as server, client(server) as ex:
        first = asyncio.ensure_future(ex.watch_orders(SPOT))
        second = asyncio.ensure_future(ex.watch_orders(PERP))
        with pytest.raises(ccxt.ExchangeError, match="already subscribed,topic:order"):
            await asyncio.wait_for(second, 5)
        assert not first.done()  # the first subscription stands and waits for pushes
        first.cancel()


async def test_post_only_that_would_cross_is_cancelled_with_bybits_reject_reason() -> None:
    async with dialect() as server, client(server) as ex:
        watch = asyncio.ensure_future(ex.watch_orders())
        _, ask = best(server, SPOT)
        created = await ex.create_order(SPOT, "limit", "buy", 0.001, ask / 100, {"postOnly": True, "orderLinkId": "po"})
        assert created["id"]  # the create itself succeeds (Bybit: the order is cancelled afterwards)
        orders: list[dict[str, Any]] = []
        while not any(o["status"] == "canceled" for o in orders):
            orders = await asyncio.wait_for(watch, 5)
            watch = asyncio.ensure_future(ex.watch_orders())
        watch.cancel()
        (cancelled,) = [o for o in orders if o["status"] == "canceled"]
        assert cancelled["clientOrderId"] == "po"
        assert cancelled["info"]["rejectReason"] == "EC_PostOnlyWillTakeLiquidity"


async def test_minimum_size_and_notional_are_refused_with_bybits_codes_and_closing_orders_are_exempt() -> None:
    async with dialect() as server, client(server) as ex:
        with pytest.raises(ccxt.InvalidOrder, match="170136"):  # spot minOrderQty
            await ex.create_order(SPOT, "limit", "buy", 0.00001, 59_000.0)
        with pytest.raises(ccxt.InvalidOrder, match="170140"):  # spot minOrderAmt (1 USDT)
            await ex.create_order(SPOT, "limit", "buy", 0.00005, 10.0)
        with pytest.raises(ccxt.InvalidOrder, match="110094"):  # linear minNotionalValue (5 USDT)
            await ex.create_order(PERP, "limit", "buy", 0.001, 4_000.0)
        await ex.create_order(PERP, "market", "sell", 0.001)  # now short 0.001
        await until(lambda: server.exchange.positions()[PERP] == -1, what="the short position")
        closing = await ex.create_order(PERP, "limit", "buy", 0.001, 4_000.0, {"reduceOnly": True})
        assert closing["id"]  # reduce-only: exempt from the notional minimum


async def test_hedge_mode_refuses_an_order_without_its_position_index() -> None:
    async with dialect(hedge_mode=True) as server, client(server) as ex:
        with pytest.raises(ccxt.BadRequest, match="position idx not match position mode"):
            await ex.create_order(PERP, "market", "buy", 0.001)
        assert (await ex.create_order(PERP, "market", "buy", 0.001, None, {"positionIdx": 1}))["id"]
        rows = await ex.fetch_positions([PERP])
        assert sorted(r["info"]["positionIdx"] for r in rows) == [1, 2] and all(r["hedged"] for r in rows)


async def test_order_rate_over_the_limit_is_refused_with_code_10006() -> None:
    frozen = 1_000_000_000
    async with dialect(monotonic_ns=lambda: frozen) as server, client(server) as ex:  # one instant
        for _ in range(10):  # linear: 10 creates per rolling second
            await ex.create_order(PERP, "limit", "buy", 0.001, 50_000.0)
        with pytest.raises(ccxt.RateLimitExceeded, match="10006"):
            await ex.create_order(PERP, "limit", "buy", 0.001, 50_000.0)
        await ex.create_order(SPOT, "limit", "buy", 0.001, 50_000.0)  # spot has its own budget


async def make_fills(server: DialectServer, ex: Any, n: int) -> None:
    """`n` fills of one resting spot bid, each by an outside taker of 0.001 BTC."""
    bid, _ = best(server, SPOT)
    price_ticks = bid + 1  # inside the spread: ours is the only order at the top
    await ex.create_order(SPOT, "limit", "buy", n * 0.001, price_ticks / 100, {"orderLinkId": "big"})
    await until(lambda: any(o.client_id == "big" for o in server.exchange.open_orders()), what="the resting bid")
    for _ in range(n):
        server.exchange.simulate_taker(SPOT, Side.SELL, 1000, price_ticks)
    server.pacer.wake()


async def test_execution_list_pages_newest_first_with_a_cursor() -> None:
    async with dialect() as server, client(server) as ex:
        await make_fills(server, ex, 130)
        await until(lambda: len(server.dialect._executions) == 130, what="130 executions")  # type: ignore[attr-defined]
        since = server.now_ms() - 60_000
        page = await ex.private_get_v5_execution_list({"category": "spot", "startTime": since, "limit": 100})
        rows = page["result"]["list"]
        times = [int(r["execTime"]) for r in rows]
        seqs = [r["seq"] for r in rows]
        assert len(rows) == 100 and seqs == sorted(seqs, reverse=True) and times == sorted(times, reverse=True)
        cursor = page["result"]["nextPageCursor"]
        rest = await ex.private_get_v5_execution_list({"category": "spot", "startTime": since, "cursor": cursor})
        older = rest["result"]["list"]
        assert len(older) == 30 and max(r["seq"] for r in older) < min(seqs) and rest["result"]["nextPageCursor"] == ""


async def test_ping_is_answered_and_the_venue_closes_old_sockets() -> None:
    async with dialect(ws_max_age_s=0.3) as server, aiohttp.ClientSession() as session:
        base = f"ws://127.0.0.1:{server.port}/stream-testnet.bybit.com/v5"
        async with session.ws_connect(f"{base}/public/linear") as ws:
            await ws.send_str(json.dumps({"op": "ping", "req_id": "7"}))
            pong = json.loads((await ws.receive(timeout=5)).data)
            assert (pong["ret_msg"], pong["req_id"], pong["success"]) == ("pong", "7", True)
            closed = await ws.receive(timeout=5)  # the server's scheduled close
            assert closed.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
        async with session.ws_connect(f"{base}/private") as ws:
            await ws.send_str(json.dumps({"op": "subscribe", "req_id": "1", "args": ["order"]}))
            refused = json.loads((await ws.receive(timeout=5)).data)
            assert refused["success"] is False  # private topics need an auth first
            await ws.send_str(json.dumps({"op": "ping", "req_id": "8"}))
            assert json.loads((await ws.receive(timeout=5)).data)["op"] == "pong"


# ---- the adapter's fixes, each against the dialect ---------------------------------------------------


async def test_one_account_wide_order_feed_reports_spot_and_perp_fills() -> None:
    """Before: watch_orders(symbol) per symbol; the second subscribe of `order` was refused and that
    symbol's orders and fills were never reported (orders_venue_error, forever)."""
    async with dialect() as server:
        venue = CcxtVenue(config(server))
        async with streaming(venue) as events:
            await until(lambda: private_topics(server) >= {"order", "execution"}, what="the private subscriptions")
            await venue.execute(PlaceOrder(SPOT, "s1", Side.BUY, 0, 1000, OrderType.MARKET, post_only=False))
            await venue.execute(PlaceOrder(PERP, "p1", Side.SELL, 0, 1, OrderType.MARKET, post_only=False))
            await until(
                lambda: {e.client_id for e in events if isinstance(e, OrderFilled)} == {"s1", "p1"}, what="both fills"
            )
    assert not [e for e in events if isinstance(e, FeedStatus) and not e.connected]


async def test_fill_history_is_complete_across_pages() -> None:
    """Before: each page started at the newest trade's time, but bybit pages newest first: only the
    newest 100 of 130 fills came back."""
    async with dialect() as server:
        venue = CcxtVenue(config(server))
        await venue.connect()
        try:
            since_ns = server.now_ns() - 1_000_000
            await make_fills(server, venue.exchange, 130)
            await until(lambda: len(server.dialect._executions) == 130, what="130 executions")  # type: ignore[attr-defined]
            fills = await venue.fills_since(since_ns)
        finally:
            await venue.close()
    assert len(fills) == 130 and len({f.fill_id for f in fills}) == 130
    assert [f.ts_venue_ns for f in fills] == sorted(f.ts_venue_ns for f in fills)


async def test_a_stale_book_is_resubscribed_at_the_depth_it_was_watched_with() -> None:
    """Before: the unwatch named bybit's contract default (500) while the watch had used 50; ccxt
    forgot its subscription, the 50-level topic stayed subscribed, and the resubscribe was refused."""
    async with dialect() as server, streaming(CcxtVenue(config(server, book_stale_ms=200))) as events:

        def snapshots() -> int:
            return sum(isinstance(e, BookSnapshot) and e.symbol == PERP for e in events)

        await until(lambda: snapshots() >= 2, timeout_s=10, what="a fresh perp snapshot after the stale one")
    assert any(isinstance(e, FeedStatus) and e.reason == "book_stale" and e.symbol == PERP for e in events)


@pytest.mark.parametrize(
    ("options", "needle"),
    [({"hedge_mode": True}, r"hedge \(two-way\) position mode"), ({"account_mode": "classic"}, "Unified Trading")],
)
async def test_an_account_mode_the_bot_does_not_trade_is_refused_at_connect(
    options: dict[str, Any], needle: str
) -> None:
    async with dialect(**options) as server:
        venue = CcxtVenue(config(server))
        try:
            with pytest.raises(ConfigError, match=needle) as info:
                await venue.connect()
        finally:
            await venue.close()
    assert str(info.value).startswith("config error: ccxt.") and "\n" not in str(info.value)


async def test_an_order_below_the_minimum_amount_is_rejected_without_reaching_the_venue() -> None:
    async with dialect() as server:
        venue = CcxtVenue(config(server))
        events: list[Event] = []
        await venue.connect()
        venue._sink = events.append
        try:
            bid, _ = best(server, SPOT)
            await venue.execute(PlaceOrder(SPOT, "tiny", Side.BUY, bid - 100, 40))  # 0.00004 < 0.000048 BTC
            await venue.execute(PlaceOrder(SPOT, "ok", Side.BUY, bid - 100, 48))
        finally:
            await venue.close()
    rejected = [e for e in events if isinstance(e, OrderRejected)]
    assert [(e.client_id, e.reason) for e in rejected] == [("tiny", "below_min_size")]
    assert [o.link_id for o in server.dialect._orders.values()] == ["ok"]  # type: ignore[attr-defined]
    assert any(isinstance(e, OrderAccepted) and e.client_id == "ok" for e in events)


async def test_spot_inventory_survives_a_restart() -> None:
    """Before: spot was the balance change since connect, so a restart reset it to 0 while the perp
    hedge (the venue's absolute position) stayed, and the hedger unwound a hedge still needed."""
    async with dialect() as server:
        cfg = config(server, spot_base_allocation=1.0)  # the account's 1 BTC is not the bot's inventory
        first = CcxtVenue(cfg)
        await first.connect()
        try:
            await first.exchange.create_order(SPOT, "market", "buy", 0.002)
            await first.exchange.create_order(PERP, "market", "sell", 0.002)
            await until(lambda: server.exchange.positions() == {SPOT: 2000, PERP: -2}, what="both positions")
            before = await first.positions()
        finally:
            await first.close()
        restarted = CcxtVenue(cfg)
        await restarted.connect()
        try:
            after = await restarted.positions()
        finally:
            await restarted.close()
    # the wallet got 0.002 BTC less the 0.000002 BTC fee a Bybit spot buy pays in BTC
    assert before == after == {SPOT: 1998, PERP: -2}


async def test_the_adapter_rides_out_the_venue_closing_its_sockets() -> None:
    """Venues close long-lived sockets; every feed resubscribes and fills are reported after it."""
    async with dialect(ws_max_age_s=0.5) as server:
        venue = CcxtVenue(config(server))
        async with streaming(venue) as events:
            await until(lambda: private_topics(server) >= {"order", "execution"}, what="the private subscriptions")
            first_private = {c.conn_id for c in server.connections if c.path.endswith("/v5/private")}

            def resubscribed() -> bool:
                again = {c.conn_id for c in server.connections if c.path.endswith("/v5/private")} - first_private
                return bool(again) and private_topics(server) >= {"order", "execution"}

            await until(resubscribed, timeout_s=10, what="a new private socket, subscribed again")
            await venue.execute(PlaceOrder(PERP, "after", Side.BUY, 0, 1, OrderType.MARKET, post_only=False))
            await until(lambda: any(isinstance(e, OrderFilled) and e.client_id == "after" for e in events))
    downs = {e.reason for e in events if isinstance(e, FeedStatus) and not e.connected}
    assert "orders_network" in downs  # it noticed the close, and came back


async def test_a_crossing_post_only_quote_is_reported_as_such_not_as_a_venue_cancel() -> None:
    """Bybit accepts the create and then cancels the order with EC_PostOnlyWillTakeLiquidity; before,
    the adapter reported that as OrderCanceled(reason="venue")."""
    async with dialect() as server:
        venue = CcxtVenue(config(server))
        async with streaming(venue) as events:
            await until(lambda: private_topics(server) >= {"order", "execution"}, what="the private subscriptions")
            _, ask = best(server, SPOT)
            await venue.execute(PlaceOrder(SPOT, "cross", Side.BUY, ask, 1000))  # post-only at the ask
            cancel = await wait_for_event(events, lambda e: isinstance(e, OrderCanceled) and e.client_id == "cross")
    assert isinstance(cancel, OrderCanceled) and cancel.reason == "post_only_would_cross"


async def test_the_venues_rate_limit_code_pauses_new_orders() -> None:
    """10006 over HTTP 200 is ccxt's RateLimitExceeded: the 11th order in one (frozen) second is
    rejected as rate_limited and the next ones locally, without a request."""
    frozen = 1_000_000_000
    async with dialect(monotonic_ns=lambda: frozen) as server:
        venue = CcxtVenue(config(server, rate_limit_pause_ms=60_000))
        events: list[Event] = []
        await venue.connect()
        venue._sink = events.append
        try:
            for i in range(12):
                await venue.execute(PlaceOrder(PERP, f"o{i}", Side.BUY, 500_000, 1))
        finally:
            await venue.close()
    rejected = [(e.client_id, e.reason) for e in events if isinstance(e, OrderRejected)]
    assert rejected == [("o10", "rate_limited"), ("o11", "rate_limited")]
    assert len(server.dialect._orders) == 10  # type: ignore[attr-defined]  # o11 never reached the venue


async def test_a_fill_made_while_the_private_socket_was_down_is_reported_after_it_is_back() -> None:
    """The venue drops the private socket; before the adapter has resubscribed (its backoff is 1 s
    here) one of our resting orders fills. A new subscription replays nothing, so that fill was never
    reported (and the order stayed open in our books); the adapter now reads the venue's history
    across the gap once it resubscribes."""
    async with dialect() as server:
        venue = CcxtVenue(config(server, reconnect_base_ms=1000, reconnect_cap_ms=1000))
        async with streaming(venue) as events:
            await until(lambda: private_topics(server) >= {"order", "execution"}, what="the private subscriptions")
            bid, _ = best(server, SPOT)
            await venue.execute(PlaceOrder(SPOT, "gap1", Side.BUY, bid - 100, 1000, OrderType.LIMIT, post_only=True))
            await until(lambda: any(o.client_id == "gap1" for o in server.exchange.open_orders()), what="our bid")
            for conn in [c for c in server.connections if c.path.endswith("/v5/private")]:
                await conn.ws.close()
            await until(lambda: not private_topics(server), what="the private socket gone")
            book = server.exchange.snapshot(SPOT, server.now_ns())
            lots = sum(size for price, size in book.bids if price >= bid - 100)
            server.exchange.simulate_taker(SPOT, Side.SELL, lots, limit_ticks=bid - 100)  # through our bid
            server.pacer.wake()
            executions = server.dialect._executions  # type: ignore[attr-defined]
            await until(lambda: any(e.row["orderLinkId"] == "gap1" for e in executions), what="the venue's fill")
            assert not private_topics(server)  # it happened while nobody listened
            fill = await wait_for_event(events, lambda e: isinstance(e, OrderFilled) and e.client_id == "gap1", 15)
    assert isinstance(fill, OrderFilled) and fill.leaves_lots == 0
