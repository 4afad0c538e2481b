"""ccxt's real, unmodified okx client (demo: sandbox mode, `x-simulated-trading: 1`) and our adapter on
it, against the OKX dialect server on 127.0.0.1, which checks every HMAC signature with the secret
below. What the dialect answers is OKX's documented behaviour (bot/venues/mock/dialects/okx.py cites
each); the adapter tests below failed before their fixes.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any

import ccxt
import pytest
from conftest import until, wait_for_event

from bot.config import CcxtConfig
from bot.domain import Event, OrderCanceled, OrderFilled, OrderType, PlaceOrder, Side
from bot.venues.ccxt_safety import build_exchange
from bot.venues.ccxt_venue import CcxtVenue
from bot.venues.mock.dialects import DialectServer, dialect_factory
from bot.venues.mock.dialects.markets import PERP_SYMBOL, SPOT_SYMBOL, quiet_btc_config

SECRET = "okx-demo-secret"
SPOT, PERP = SPOT_SYMBOL, PERP_SYMBOL


@asynccontextmanager
async def dialect(**options: Any) -> AsyncIterator[DialectServer]:
    options.setdefault("api_secret", SECRET)
    async with DialectServer(dialect_factory("okx", **options), quiet_btc_config(dialect="okx")) as server:
        yield server


def config(server: DialectServer, **overrides: Any) -> CcxtConfig:
    fields: dict[str, Any] = {
        "exchange": "okx", "mode": "demo", "api_key": "any-key", "api_secret": SECRET,
        "api_password": "any-passphrase", "sandbox_url_base": f"http://127.0.0.1:{server.port}",
        "reconnect_base_ms": 20, "reconnect_cap_ms": 100, "position_poll_ms": 0, "spot_base_allocation": 1.0,
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


def best(server: DialectServer, symbol: str) -> tuple[int, int]:
    snap = server.exchange.snapshot(symbol, server.now_ns())
    return snap.bids[0][0], snap.asks[0][0]


def private_subscribed(server: DialectServer) -> bool:
    return any(c.path == "/ws/v5/private" and "orders" in c.topics for c in server.connections)


async def test_ccxt_lists_the_swap_in_contracts_and_reads_the_account() -> None:
    async with dialect() as server, client(server) as ex:
        spot, perp = ex.markets[SPOT], ex.markets[PERP]
        assert (spot["id"], spot["precision"], spot["limits"]["amount"]["min"]) == (
            "BTC-USDT", {"amount": 1e-08, "price": 0.1}, 1e-05,
        )  # fmt: skip
        assert (perp["id"], perp["contractSize"], perp["precision"]["amount"]) == ("BTC-USDT-SWAP", 0.01, 0.01)
        assert (await ex.fetch_position_mode(PERP))["hedged"] is False
        assert (await ex.fetch_balance())["total"] == {"USDT": 100_000.0, "BTC": 1.0}
        await ex.create_order(PERP, "market", "sell", 0.2)  # contracts: 0.002 BTC
        (position,) = await ex.fetch_positions([PERP])
        assert (position["side"], position["contracts"]) == ("short", 0.2)


async def test_demo_needs_the_simulated_trading_header_and_a_valid_signature() -> None:
    async with dialect() as server:
        async with client(server) as ex:
            ex.headers = {}  # a demo key on the live environment
            with pytest.raises(ccxt.AuthenticationError, match="50101"):
                await ex.fetch_balance()
        async with client(server, api_secret="wrong") as ex:
            with pytest.raises(ccxt.AuthenticationError, match="50113"):
                await ex.fetch_balance()


async def test_order_refusals_come_back_as_scode_and_smsg() -> None:
    async with dialect() as server, client(server) as ex:
        with pytest.raises(ccxt.InsufficientFunds, match="51008"):
            await ex.create_order(SPOT, "limit", "buy", 10.0, 59_000.0)  # 590k USDT of 100k
        with pytest.raises(ccxt.OrderNotFound, match="51400"):
            await ex.cancel_order(None, SPOT, {"clOrdId": "neverplaced"})
        with pytest.raises(ccxt.ExchangeError, match="51121"):
            await ex.privatePostTradeOrder(
                {"instId": "BTC-USDT-SWAP", "tdMode": "cross", "side": "buy", "ordType": "market", "sz": "0.015"}
            )


async def test_a_post_only_that_would_cross_is_reported_as_such_by_the_adapter() -> None:
    """OKX takes the order (sCode 0), then cancels it with cancelSource 31; the adapter said "venue"."""
    async with dialect() as server:
        venue = CcxtVenue(config(server))
        async with streaming(venue) as events:
            await until(lambda: private_subscribed(server), what="the orders subscription")
            _, ask = best(server, SPOT)
            await venue.execute(PlaceOrder(SPOT, "cross1", Side.BUY, ask, 100_000, OrderType.LIMIT, post_only=True))
            canceled = await wait_for_event(events, lambda e: isinstance(e, OrderCanceled), 10)
    assert canceled.reason == "post_only_would_cross"  # type: ignore[attr-defined]


async def test_fills_pushed_on_the_orders_channel_book_the_fee_paid_and_the_coins_received() -> None:
    """ccxt pro okx passes a push's `fillFee` through unsigned (OKX: negative = paid), so the adapter
    booked a charged fee as a rebate; and a spot buy's fee is withheld in BTC, so 0.001 BTC bought
    adds 0.000999 to the wallet, which the spot inventory (wallet - allocation) now equals."""
    async with dialect() as server:
        venue = CcxtVenue(config(server))
        async with streaming(venue) as events:
            await until(lambda: private_subscribed(server), what="the orders subscription")
            bid, ask = best(server, SPOT)
            await venue.execute(PlaceOrder(SPOT, "sell1", Side.SELL, bid, 100_000, OrderType.IOC))
            await venue.execute(PlaceOrder(SPOT, "buy1", Side.BUY, ask, 100_000, OrderType.IOC))
            sell = await wait_for_event(events, lambda e: isinstance(e, OrderFilled) and e.client_id == "sell1", 10)
            buy = await wait_for_event(events, lambda e: isinstance(e, OrderFilled) and e.client_id == "buy1", 10)
            positions = await venue.positions()
            history = {f.fill_id: f for f in await venue.fills_since(0)}
    assert isinstance(sell, OrderFilled) and isinstance(buy, OrderFilled)
    assert sell.fee_quote == pytest.approx(0.001 * bid * 0.1 * 0.001)  # paid: positive, in USDT
    assert buy.size_lots == 99_900  # 0.001 BTC less the 0.000001 BTC fee, in 1e-8 BTC lots
    assert buy.fee_quote == pytest.approx(0.000001 * ask * 0.1)
    assert positions[SPOT] == buy.size_lots - sell.size_lots
    for live in (sell, buy):  # a restart's history books the same fill the same way
        past = history[live.fill_id]
        assert (past.size_lots, past.fee_quote) == (live.size_lots, pytest.approx(live.fee_quote))


async def test_restart_history_is_complete_across_pages_of_the_newest_first_fills_history() -> None:
    """fills-history answers 100 rows at most, newest first, `after` a billId for older ones: with 130
    fills every one comes back once (ccxt's pagination walks it)."""
    async with dialect() as server:
        venue = CcxtVenue(config(server))
        try:
            await venue.connect()
            await venue.exchange.create_order(PERP, "market", "sell", 0.2)
            okx = server.dialect
            (first,) = okx._fills  # type: ignore[attr-defined]
            okx._fills[:] = [  # type: ignore[attr-defined]
                replace(first, bill_id=first.bill_id + i, trade_id=str(int(first.trade_id) + i), ts=first.ts - 130 + i)
                for i in range(130)
            ]  # the venue's record of 130 fills, oldest first (hand-made from the real one)
            fills = await venue.fills_since((first.ts - 1000) * 1_000_000)
        finally:
            await venue.close()
    assert sorted(f.fill_id for f in fills) == sorted(f.trade_id for f in okx._fills)  # type: ignore[attr-defined]
