"""The mock exchange over a real loopback websocket (port 0): protocol round trips, faults, edge parsing."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator

import orjson
import pytest
from conftest import wait_for_event
from websockets.asyncio.server import ServerConnection, serve

from bot.config import MockExchangeConfig
from bot.domain import (
    BookDelta,
    BookSnapshot,
    CancelOrder,
    Event,
    FeedStatus,
    OrderAccepted,
    OrderCanceled,
    OrderFilled,
    OrderType,
    PlaceOrder,
    PositionSnapshot,
    Side,
    TradePrint,
)
from bot.venues.mock.client import VenueUnavailable, WsMockVenue
from bot.venues.mock.presets import quiet_config
from bot.venues.mock.server import MockExchangeServer

SPOT = "TOKEN/USDT"
PERP = "TOKEN/USDT:USDT"


@contextlib.asynccontextmanager
async def streaming(venue: WsMockVenue) -> AsyncIterator[list[Event]]:
    events: list[Event] = []
    task = asyncio.create_task(venue.stream(events.append))
    try:
        yield events
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await venue.close()


async def test_round_trip_orders_fills_and_reconciliation() -> None:
    async with MockExchangeServer(quiet_config(), port=0) as server:
        assert server.port != 0
        venue = WsMockVenue(server.url, rng=random.Random(1))
        await venue.connect()
        assert set(venue.instruments) == {SPOT, PERP}
        assert await venue.positions() == {SPOT: 0, PERP: 0}  # answered before streaming starts
        async with streaming(venue) as events:
            snap = await wait_for_event(events, lambda e: isinstance(e, BookSnapshot) and e.symbol == SPOT)
            assert isinstance(snap, BookSnapshot)
            best_bid, best_ask = snap.bids[0][0], snap.asks[0][0]

            await venue.execute(PlaceOrder(SPOT, "rest", Side.BUY, best_bid - 3, 100))
            await wait_for_event(events, lambda e: isinstance(e, OrderAccepted) and e.client_id == "rest")
            (order,) = await venue.open_orders()
            assert (order.client_id, order.price_ticks, order.size_lots) == ("rest", best_bid - 3, 100)

            await venue.execute(CancelOrder(SPOT, "rest"))
            canceled = await wait_for_event(events, lambda e: isinstance(e, OrderCanceled))
            assert canceled.client_id == "rest"  # type: ignore[union-attr]

            await venue.execute(PlaceOrder(SPOT, "take", Side.BUY, best_ask, 10, OrderType.IOC, post_only=False))
            fill = await wait_for_event(events, lambda e: isinstance(e, OrderFilled))
            assert isinstance(fill, OrderFilled)
            assert (fill.client_id, fill.price_ticks, fill.size_lots) == ("take", best_ask, 10)
            assert fill.fee_quote == pytest.approx(best_ask * 0.01 * 0.1 * 0.0005)
            await wait_for_event(events, lambda e: isinstance(e, PositionSnapshot) and e.position_lots == 10)
            await wait_for_event(events, lambda e: isinstance(e, TradePrint))
            assert (await venue.positions())[SPOT] == 10
            assert server.exchange.positions()[SPOT] == 10


async def test_connect_twice_keeps_one_subscription() -> None:
    """The composition root connects to read the instruments, the runner connects again on start: a
    second socket would be a second subscriber that nobody reads (and a second snapshot per symbol)."""
    async with MockExchangeServer(quiet_config(), port=0) as server:
        venue = WsMockVenue(server.url)
        await venue.connect()
        await venue.connect()
        async with streaming(venue) as events:
            await wait_for_event(events, lambda e: isinstance(e, BookSnapshot) and e.symbol == PERP)
            await venue.positions()  # a round trip: anything queued before it has been delivered
            assert sum(isinstance(e, BookSnapshot) for e in events) == 2
            assert len(server._subscribers) == 1


async def test_feed_is_contiguous_and_disconnect_fault_reconnects_and_resyncs() -> None:
    async with MockExchangeServer(MockExchangeConfig(), port=0, speed=5.0) as server:
        venue = WsMockVenue(server.url, backoff_base_s=0.05, backoff_cap_s=0.2)
        await venue.connect()
        async with streaming(venue) as events:
            await wait_for_event(events, lambda e: isinstance(e, BookDelta))
            await venue.inject_fault("disconnect", duration_ms=1000)  # 200 ms of wall time at speed 5
            down = await wait_for_event(events, lambda e: isinstance(e, FeedStatus) and not e.connected)
            up = await wait_for_event(events, lambda e: isinstance(e, FeedStatus) and e.connected)
            i_up = events.index(up)
            await wait_for_event(events, lambda e: isinstance(e, BookSnapshot) and events.index(e) > i_up)
            assert venue.reconnects >= 1 and events.index(down) < i_up
            await wait_for_event(events, lambda e: isinstance(e, BookDelta) and events.index(e) > i_up + 2)
        # what reached the sink is always a snapshot followed by contiguous deltas
        last: dict[str, int] = {}
        for e in events:
            if isinstance(e, BookSnapshot):
                last[e.symbol] = e.seq
            elif isinstance(e, BookDelta):
                assert e.first_seq == last[e.symbol] + 1
                last[e.symbol] = e.last_seq


async def test_gap_fault_triggers_a_resync_from_a_fresh_snapshot() -> None:
    async with MockExchangeServer(MockExchangeConfig(), port=0, speed=5.0) as server:
        venue = WsMockVenue(server.url)
        await venue.connect()
        async with streaming(venue) as events:
            await wait_for_event(events, lambda e: isinstance(e, BookDelta))
            n_snapshots = sum(isinstance(e, BookSnapshot) for e in events)
            await venue.inject_fault("gap")
            async with asyncio.timeout(5):
                while sum(isinstance(e, BookSnapshot) for e in events) < n_snapshots + 2:
                    await asyncio.sleep(0.005)
            assert venue.gaps == 2  # one per symbol, each answered by a snapshot


GARBAGE = [
    b"\x00not json",
    "[1, 2, 3]",
    '{"type": "trade", "symbol": "TOKEN/USDT", "price": "NaN", "size": "1", "aggressor": "buy", '
    '"trade_id": "1", "ts_ns": 1}',
    '{"type": "trade", "symbol": "TOKEN/USDT", "price": "-5", "size": "1", "aggressor": "buy", '
    '"trade_id": "1", "ts_ns": 1}',
    '{"type": "trade", "symbol": "TOKEN/USDT", "price": "0", "size": "1", "aggressor": "buy", '
    '"trade_id": "1", "ts_ns": 1}',
    '{"type": "trade", "symbol": "TOKEN/USDT", "price": "100", "size": "-1", "aggressor": "buy", '
    '"trade_id": "1", "ts_ns": 1}',
    '{"type": "trade", "symbol": "TOKEN/USDT", "price": "100", "size": "1", "aggressor": "up", '
    '"trade_id": "1", "ts_ns": 1}',
    '{"type": "trade", "symbol": "NOPE/USDT", "price": "100", "size": "1", "aggressor": "buy", '
    '"trade_id": "1", "ts_ns": 1}',
    '{"type": "book_snapshot", "symbol": "TOKEN/USDT", "seq": 1, "bids": [["inf", "1"]], "asks": [], "ts_ns": 1}',
    '{"type": "martian", "ts_ns": 1}',
    '{"type": "mark_price", "symbol": "TOKEN/USDT:USDT", "price": "100"}',
]
VALID_TRADE = (
    '{"type": "trade", "symbol": "TOKEN/USDT", "price": "100.01", "size": "0.50", "aggressor": "sell", '
    '"trade_id": "7", "ts_ns": 42}'
)


async def test_garbage_is_dropped_and_counted_at_the_edge() -> None:
    from bot.venues.mock.exchange import MockExchange
    from bot.venues.mock.protocol import encode_instrument

    instruments = [encode_instrument(i) for i in MockExchange(quiet_config()).instruments.values()]

    async def evil(ws: ServerConnection) -> None:
        await ws.recv()  # subscribe
        await ws.send(orjson.dumps({"type": "subscribed", "instruments": instruments, "ts_ns": 0}).decode())
        for raw in [*GARBAGE, VALID_TRADE]:
            await ws.send(raw)
        await ws.wait_closed()

    async with serve(evil, "127.0.0.1", 0) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        venue = WsMockVenue(f"ws://127.0.0.1:{port}")
        await venue.connect()
        async with streaming(venue) as events:
            trade = await wait_for_event(events, lambda e: isinstance(e, TradePrint))
            assert isinstance(trade, TradePrint)
            assert (trade.price_ticks, trade.size_lots, trade.aggressor, trade.ts_venue_ns) == (
                10001, 50, Side.SELL, 42
            )  # fmt: skip
            assert venue.rejected_messages == len(GARBAGE)
            assert [type(e) for e in events] == [TradePrint]


async def test_unreachable_exchange_raises_and_commands_are_refused_locally() -> None:
    venue = WsMockVenue("ws://127.0.0.1:9", request_timeout_s=1.0)
    with pytest.raises(VenueUnavailable):
        await venue.connect()
    events: list[Event] = []
    venue._sink = events.append  # as if streaming
    await venue.execute(PlaceOrder(SPOT, "x", Side.BUY, 100, 1))
    assert [(type(e).__name__, e.reason) for e in events] == [("OrderRejected", "venue_disconnected")]  # type: ignore[union-attr]


# `mmbot exchange serve` as a standalone process (port 0, SIGTERM exits 0) with the bot trading against it:
# tests/integration/test_bot_over_ws.py::test_mmbot_run_trades_with_a_standalone_exchange_and_exits_clean
