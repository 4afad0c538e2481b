"""A mock exchange that sat idle holding positions (issue #20, item 2).

The server queued a position snapshot every `position_interval_ms` while no client was connected and
replayed them all on connect; the engine adopted each as a mismatch and, with no book yet to price
them at, added the same difference up again: after 25 idle minutes 302 mismatches in 3 ms and a spot
inventory of 1,293.5 instead of 8.5. Now the server keeps the newest snapshot per symbol, and the
engine counts the lots still waiting for a mid as its own, so a burst is one reconciliation.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from pathlib import Path
from typing import Any

import orjson
import pytest
from conftest import until
from websockets.asyncio.client import connect

from bot.app import _run, build_engine
from bot.config import load_settings
from bot.domain import BookSnapshot, Instrument, InstrumentKind, PositionSnapshot, Timer
from bot.venues.mock.server import MockExchangeServer

SPOT = Instrument("TOKEN/USDT", InstrumentKind.SPOT, "TOKEN", "USDT", 0.01, 0.01, min_notional=5.0)
PERP = Instrument("TOKEN/USDT:USDT", InstrumentKind.PERP, "TOKEN", "USDT", 0.01, 0.01, min_notional=5.0)
S = 1_000_000_000
MOCK = {
    "seed": 5,
    "position_interval_ms": 20,  # a snapshot per symbol every 20 ms of market time: an idle hour in seconds
    "spot": {"symbol": "TOKEN/USDT", "taker_a_per_s": 10.0},
    "perp": {"symbol": "TOKEN/USDT:USDT", "taker_a_per_s": 10.0},
}


async def market_time(server: MockExchangeServer, target_ns: int) -> None:
    async with asyncio.timeout(20.0):
        while server.now_ns() < target_ns:
            await asyncio.sleep(0.02)


def test_a_burst_of_the_same_snapshot_before_any_book_is_one_reconciliation() -> None:
    """The engine alone: restored positions wait for a mid; 300 snapshots of the venue's position
    arrive first. The position must end as the venue's, not 300 times the difference."""
    engine = build_engine(load_settings(), SPOT, PERP, 0, venue_name="mock-ws")
    engine.restore({SPOT.symbol: 850, PERP.symbol: -400})  # no ledger: entered at the first mid
    for i in range(300):
        for symbol, lots in ((SPOT.symbol, 850), (PERP.symbol, -400)):
            engine.apply(PositionSnapshot(symbol, lots, i, i), i)
    for inst in (SPOT, PERP):
        engine.apply(BookSnapshot(inst.symbol, 1, ((9_999, 500),), ((10_001, 500),), S, S), S)
    engine.apply(Timer(S, S), S)  # the timer marks the portfolio: waiting lots are entered at the mid
    assert engine.stats.position_mismatches == 0
    assert engine.position_lots == {SPOT.symbol: 850, PERP.symbol: -400}


def test_a_burst_of_a_new_position_is_seeded_once() -> None:
    """A position the engine did not know, repeated by a burst before any book: one mismatch, one seed."""
    engine = build_engine(load_settings(), SPOT, PERP, 0, venue_name="mock-ws")
    for i in range(300):
        engine.apply(PositionSnapshot(SPOT.symbol, 850, i, i), i)
    for inst in (SPOT, PERP):
        engine.apply(BookSnapshot(inst.symbol, 1, ((9_999, 500),), ((10_001, 500),), S, S), S)
    engine.apply(Timer(S, S), S)  # the timer marks the portfolio: waiting lots are entered at the mid
    assert engine.stats.position_mismatches == 1
    assert engine.position_lots[SPOT.symbol] == 850


async def test_the_idle_server_replays_one_position_snapshot_per_symbol() -> None:
    mock = {**MOCK, "position_interval_ms": 100}
    config = load_settings(None, {"mock": mock}).mock
    async with MockExchangeServer(config, speed=40.0) as server:
        await market_time(server, server.now_ns() + 20 * S)  # 200 position intervals, nobody connected
        queued = [orjson.loads(m) for m in server._backlog]
        assert sorted(m["symbol"] for m in queued if m["type"] == "position") == sorted(config_symbols(config))
        # stop the market so that what reaches us is the backlog alone, whatever the machine's load
        assert server._pump is not None
        server._pump.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await server._pump
        async with connect(server.url) as ws:
            await ws.send(orjson.dumps({"op": "subscribe"}).decode())
            await ws.send(orjson.dumps({"op": "ping"}).decode())  # answered after the backlog's replay
            replayed: list[dict[str, Any]] = []
            async with asyncio.timeout(10.0):
                while (message := orjson.loads(await ws.recv()))["type"] != "pong":
                    replayed.append(message)
    positions = [m for m in replayed if m["type"] == "position"]
    assert sorted(p["symbol"] for p in positions) == sorted(config_symbols(config))  # not 200 per symbol
    newest = max(m["ts_ns"] for m in queued)
    assert all(p["ts_ns"] >= newest - mock["position_interval_ms"] * 1_000_000 for p in positions)  # the newest


async def run_until_holding(server: MockExchangeServer, settings: Any) -> dict[str, Any]:
    """Run the bot until the exchange holds a spot position for it, then stop it as an operator does
    (SIGINT: a clean stop that cancels its quotes). A fixed run length got no fill at all when the
    machine was loaded and start-up took most of it."""
    run = asyncio.create_task(_run(settings, duration_s=None, run_id="first"))
    try:
        await until(lambda: run.done() or server.exchange.positions()[SPOT.symbol] != 0, 60.0, "a spot position")
        if not run.done():  # the runner's own handler turns SIGINT into request_stop while it runs
            os.kill(os.getpid(), signal.SIGINT)
        async with asyncio.timeout(30.0):
            return await run
    finally:
        if not run.done():
            run.cancel()


def config_symbols(config: Any) -> list[str]:
    return [config.spot.symbol, config.perp.symbol]


async def test_a_bot_joining_an_idle_server_holding_positions_adopts_them_once(tmp_path: Path) -> None:
    """The issue's reproduction: a run builds positions, the server sits idle (here 200 snapshot
    intervals), a second run without a ledger connects: no mismatch, positions equal the exchange's."""
    config = load_settings(None, {"mock": MOCK}).mock
    async with MockExchangeServer(config, speed=5.0) as server:

        def settings(ledger: str) -> Any:
            return load_settings(
                None,
                {
                    "runtime": {"venue": server.url, "warmup_s": 0.0},
                    "metrics": {"enabled": False},
                    "ledger": {"path": ledger},
                },
            )

        first = await run_until_holding(server, settings(str(tmp_path / "l.sqlite")))
        assert first["fills"] > 0
        held = server.exchange.positions()
        assert any(held.values())
        await market_time(server, server.now_ns() + 4 * S)
        second = await _run(settings(""), duration_s=1.0, run_id="second")
        spot = server.exchange.instruments[SPOT.symbol]
        final_spot_base = spot.size(server.exchange.positions()[SPOT.symbol])
    assert second["position_mismatches"] == 0
    # the bot's inventory at the end is the exchange's (the old code ended far off: every replayed
    # snapshot added the same difference again)
    assert second["inventory"] == pytest.approx(final_spot_base, abs=spot.lot_size / 2)
