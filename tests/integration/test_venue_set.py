"""Several venues, each its own adapter on its own connection, in one session (`bot.venues.venue_set`):
the deal's shape on two mock exchange servers over real websockets on loopback (`[market.venues.NAME]
kind = "ws"`), one runner, one engine: both venues quote and fill, the perp on the hedge venue hedges
the book, every event names its venue, and at exit nothing is open on either server."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import Any

import pytest
from conftest import LogSink, Record, is_event

from bot.app import _run
from bot.config import ConfigError, load_settings
from bot.venues.mock.server import MockExchangeServer

SPOT, PERP = "TOKEN/USDT", "TOKEN/USDT:USDT"
SAFETY_DURATION_S = 30.0  # the bot stops by itself after this if the condition never comes


def two_server_market(main_url: str, second_url: str) -> dict[str, Any]:
    return {
        "quote_on": [{"venue": "main"}, {"venue": "second", "order_size_base": 0.5}],
        "hedge_venue": "second",
        "venues": {"main": {"kind": "ws", "url": main_url}, "second": {"kind": "ws", "url": second_url}},
    }


async def until(sink: LogSink, done: Any, timeout_s: float, what: str) -> None:
    async with asyncio.timeout(timeout_s):
        while not done(sink.records):
            await asyncio.sleep(0.02)
    assert done(sink.records), what


def filled_on(records: list[Record]) -> set[str]:
    return {r["venue"] for r in records if is_event(r, "order.filled", symbol=SPOT)}


async def test_two_mock_servers_in_one_session(tmp_path: Path, log_sink: LogSink) -> None:
    mock = load_settings().mock
    main, second = MockExchangeServer(mock, seed=11, speed=5.0), MockExchangeServer(mock, seed=12, speed=5.0)
    await main.start()
    await second.start()
    try:
        settings = load_settings(
            None,
            {
                "market": two_server_market(main.url, second.url),
                "metrics": {"enabled": False},
                "ledger": {"path": str(tmp_path / "ledger.db")},
            },
        )
        bot = asyncio.create_task(_run(settings, SAFETY_DURATION_S, run_id="venueset0001"))
        try:
            # trading on both venues, the book hedged on the second's perp
            await until(log_sink, lambda rs: filled_on(rs) == {"main", "second"}, 25, "a spot fill on each venue")
            await until(log_sink, lambda rs: any(is_event(r, "hedge.filled", symbol=PERP) for r in rs), 10, "a hedge")
            assert not any(is_event(r, "session.stopping") for r in log_sink.records)
            signal.raise_signal(signal.SIGINT)  # the runner's handler: cancel on every venue, summary, return
            async with asyncio.timeout(15):
                summary = await bot
        finally:
            if not bot.done():
                bot.cancel()
        assert set(summary["venues"]) == {"main", "second"}
        assert summary["venues"]["main"]["fills"] > 0 and summary["venues"]["second"]["fills"] > 0
        assert summary["venues"]["second"]["hedge"]["fills"] > 0
        assert summary["open_orders_at_exit"] == 0
        assert main.exchange.open_orders() == [] and second.exchange.open_orders() == []
        # each server's own spot position is the engine's inventory on that venue; its perp is only hedges
        for name, server in (("main", main), ("second", second)):
            lots = server.exchange.positions()[SPOT]
            assert summary["venues"][name]["inventory"] == pytest.approx(server.exchange.instruments[SPOT].size(lots))
        assert main.exchange.positions()[PERP] == 0
        hedges = [r for r in log_sink.records if is_event(r, "hedge.filled")]
        assert hedges and {r["venue"] for r in hedges} == {"second"}
    finally:
        await main.stop()
        await second.stop()


def test_a_session_does_not_mix_the_in_process_mock_with_servers() -> None:
    market = two_server_market("ws://127.0.0.1:1", "ws://127.0.0.1:2")
    market["venues"]["main"] = {"liquidity_scale": 1.0}  # an in-process mock venue beside a server
    with pytest.raises(ConfigError, match="second"):
        load_settings(None, {"market": market})


def test_a_ws_venue_needs_a_ws_url() -> None:
    market = two_server_market("http://127.0.0.1:1", "ws://127.0.0.1:2")
    with pytest.raises(ConfigError, match=r"market\.venues\.main"):
        load_settings(None, {"market": market})
