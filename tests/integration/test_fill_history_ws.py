"""The `fills` request over the websocket: the server answers from the exchange's fill log, page by
page, and WsMockVenue.fills_since walks the pages, before and while it streams."""

from __future__ import annotations

import asyncio

import orjson
import pytest
from conftest import until
from websockets.asyncio.client import connect

from bot.domain import Event, OrderFilled, PlaceOrder, Side
from bot.venues.mock import protocol
from bot.venues.mock.client import WsMockVenue
from bot.venues.mock.presets import quiet_config
from bot.venues.mock.server import MockExchangeServer

SPOT = "TOKEN/USDT"


async def fill_our_bid(server: MockExchangeServer, venue: WsMockVenue, takes: list[int]) -> None:
    """Rest a 100-lot bid behind the best bid's queue, clear the queue, then sell `takes` into it."""
    ex = server.exchange
    best_bid, resting = ex.snapshot(SPOT, ex.now_ns).bids[0]
    await venue.execute(PlaceOrder(SPOT, "b1", Side.BUY, best_bid, 100))
    await until(lambda: [o.client_id for o in ex.open_orders()] == ["b1"])
    ex.simulate_taker(SPOT, Side.SELL, resting, limit_ticks=best_bid)
    for lots in takes:
        before_ns = ex.now_ns
        await until(lambda t=before_ns: ex.now_ns > t)  # each fill at its own time (the pump moves the clock)
        ex.simulate_taker(SPOT, Side.SELL, lots, limit_ticks=best_bid)
    assert [f.size_lots for f in ex.fills_since(0)] == takes


def same_fills(got: list[OrderFilled], want: list[OrderFilled]) -> bool:
    def key(f: OrderFilled) -> tuple[object, ...]:
        return (f.symbol, f.client_id, f.fill_id, f.side, f.price_ticks, f.size_lots, f.leaves_lots, f.ts_venue_ns)

    return [key(f) for f in got] == [key(f) for f in want] and all(
        f.fee_quote == pytest.approx(w.fee_quote) for f, w in zip(got, want, strict=True)
    )


async def test_fills_since_walks_the_pages_before_and_while_streaming(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(protocol, "FILLS_PAGE_MAX", 2)  # five fills: three pages
    async with MockExchangeServer(quiet_config(), port=0) as server:
        venue = WsMockVenue(server.url)
        await venue.connect()
        try:
            await fill_our_bid(server, venue, [3, 1, 4, 1, 5])
            everything = server.exchange.fills_since(0)
            assert same_fills(await venue.fills_since(0), everything)  # nobody streams: the request reads
            events: list[Event] = []
            async with asyncio.TaskGroup() as tg:
                stream = tg.create_task(venue.stream(events.append))
                await until(lambda: bool(events))  # the stream task now owns the socket's reads
                assert same_fills(await venue.fills_since(everything[2].ts_venue_ns), everything[2:])
                await until(lambda: sum(isinstance(e, OrderFilled) for e in events) == 5)  # the live copies
                stream.cancel()
        finally:
            await venue.close()


async def test_a_bad_fills_request_gets_an_error_reply() -> None:
    async with MockExchangeServer(quiet_config(), port=0) as server, connect(server.url) as ws:
        await ws.send(orjson.dumps({"op": "fills", "since_ns": "yesterday", "req_id": "r1"}).decode())
        reply = orjson.loads(await ws.recv())
        assert (reply["type"], reply["reason"], reply["req_id"]) == ("error", "not_an_integer", "r1")
        await ws.send(orjson.dumps({"op": "fills", "since_ns": 0, "req_id": "r2"}).decode())
        reply = orjson.loads(await ws.recv())
        assert (reply["type"], reply["fills"], reply["more"], reply["req_id"]) == ("fills", [], False, "r2")
