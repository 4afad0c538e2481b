"""The mock exchange's answers to bad requests (issue #20, item 9), over a real websocket on loopback.

An op-less or unknown op was answered `unknown_symbol: None`; a place with size 1e300 got no reply
and its rejection reached another client's connection. Every refusal now goes back to the sender,
naming what was wrong; a place refused at the edge is an `order_rejected` for its client id.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest
from websockets.asyncio.client import ClientConnection, connect

from bot.config import load_settings
from bot.venues.mock.server import MockExchangeServer

SPOT = "TOKEN/USDT"


async def send(ws: ClientConnection, message: dict[str, Any]) -> None:
    await ws.send(orjson.dumps(message).decode())


async def next_of(ws: ClientConnection, *types: str, timeout_s: float = 5.0) -> dict[str, Any]:
    """The next message of one of `types` (the live feed in between is skipped)."""
    async with asyncio.timeout(timeout_s):
        while True:
            message = orjson.loads(await ws.recv())
            if message.get("type") in types:
                return message


async def subscribed(url: str) -> ClientConnection:
    ws = await connect(url)
    await send(ws, {"op": "subscribe"})
    await next_of(ws, "subscribed")
    return ws


@pytest.mark.parametrize(
    ("message", "reason", "named"),
    [
        ({"symbol": SPOT, "client_id": "x"}, "missing_op", 'no "op"'),
        ({"op": "teleport", "symbol": SPOT}, "unknown_op", "'teleport'"),
        ({"op": None}, "missing_op", "place"),
        ({"op": 7}, "unknown_op", "7"),
        ({"op": "cancel", "symbol": "NOPE/USDT", "client_id": "x"}, "unknown_symbol", "NOPE/USDT"),
    ],
)
async def test_a_bad_op_is_answered_with_an_error_naming_it(message: dict[str, Any], reason: str, named: str) -> None:
    async with MockExchangeServer(load_settings().mock) as server, connect(server.url) as ws:
        await send(ws, {**message, "req_id": "r1"})
        reply = await next_of(ws, "error")
    assert reply["reason"] == reason and reply["req_id"] == "r1"
    assert named in reply["message"]


async def test_an_absurd_place_is_rejected_on_the_senders_connection_and_nowhere_else() -> None:
    async with MockExchangeServer(load_settings().mock) as server:
        other = await subscribed(server.url)  # another client of the account, subscribed first
        sender = await connect(server.url)  # the sender never subscribed: only a reply can reach it
        try:
            await send(sender, {"op": "place", "symbol": SPOT, "client_id": "huge", "side": "buy",
                                "price": "100.00", "size": "1e300", "order_type": "limit"})  # fmt: skip
            reply = await next_of(sender, "order_rejected", "error")
            assert reply == {**reply, "type": "order_rejected", "client_id": "huge", "reason": "absurd_size"}
            # the account's other client sees nothing about it: a ping's pong comes, no reject before it
            await send(other, {"op": "ping", "req_id": "p"})
            seen = await next_of(other, "order_rejected", "order_accepted", "pong")
            assert seen["type"] == "pong"
            assert not any(o.client_id == "huge" for o in server.exchange.open_orders())
        finally:
            await sender.close()
            await other.close()


async def test_an_absurd_price_is_rejected_too() -> None:
    async with MockExchangeServer(load_settings().mock) as server, connect(server.url) as ws:
        await send(ws, {"op": "place", "symbol": SPOT, "client_id": "p", "side": "sell", "price": "1e300",
                        "size": "1", "order_type": "limit"})  # fmt: skip
        reply = await next_of(ws, "order_rejected", "error")
    assert reply["type"] == "order_rejected" and reply["reason"] == "absurd_price" and reply["client_id"] == "p"
