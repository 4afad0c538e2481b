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
from bot.domain import OrderType, PlaceOrder, Side
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


async def run_until(settings: Any, sink: LogSink, run_id: str, done: Any, what: str) -> dict[str, Any]:
    """One bot session until `done(records)`, then SIGINT (the operator's stop)."""
    bot = asyncio.create_task(_run(settings, SAFETY_DURATION_S, run_id=run_id))
    try:
        await until(sink, done, 25, what)
        signal.raise_signal(signal.SIGINT)
        async with asyncio.timeout(15):
            return await bot
    finally:
        if not bot.done():
            bot.cancel()


async def test_a_restart_on_the_same_servers_reconciles_each_venue(tmp_path: Path, log_sink: LogSink) -> None:
    """The servers keep running between two sessions: the second starts from each venue's own
    positions and cancels the order left resting on one of them, on that venue."""
    mock = load_settings().mock
    main, second = MockExchangeServer(mock, seed=21, speed=5.0), MockExchangeServer(mock, seed=22, speed=5.0)
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
        await run_until(settings, log_sink, "venueset0002", lambda rs: filled_on(rs) == {"main", "second"}, "fills")
        held = {name: s.exchange.positions() for name, s in (("main", main), ("second", second))}
        assert held["main"][SPOT] != 0 or held["second"][SPOT] != 0  # something to recover
        # an order left resting on "second" while no bot runs (far below the market: it stays)
        bid, _ = second.exchange.top(SPOT)
        assert bid is not None
        orphan = PlaceOrder(SPOT, "orphan-1", Side.BUY, bid[0] - 200, 10, OrderType.LIMIT, post_only=True)
        second.exchange.submit(orphan, second.now_ns())
        await until(
            log_sink, lambda _: any(o.client_id == "orphan-1" for o in second.exchange.open_orders()), 5, "resting"
        )
        # a fill on "main" while no bot listens (the account trades through the book): the next
        # session must find it in main's fill history and book it once
        made = main.exchange._fill_n
        main.exchange.submit(PlaceOrder(SPOT, "while-down-1", Side.BUY, 0, 7, OrderType.MARKET, post_only=False),
                             main.now_ns())  # fmt: skip
        await until(log_sink, lambda _: main.exchange._fill_n > made, 5, "the fill while down")
        held = {name: s.exchange.positions() for name, s in (("main", main), ("second", second))}
        mark = len(log_sink.records)
        summary = await run_until(
            settings,
            log_sink,
            "venueset0003",
            lambda rs: any(is_event(r, "quote.updated") for r in rs[mark:]),
            "quotes",
        )
        (recovered,) = [r for r in log_sink.records[mark:] if is_event(r, "recovery.completed")]
        assert recovered["orphan_client_ids"] == ["orphan-1"] and recovered["orphans_still_open"] == []
        assert recovered["positions_lots"][f"{SPOT}@main"] == held["main"][SPOT]
        assert recovered["positions_lots"][f"{SPOT}@second"] == held["second"][SPOT]
        assert recovered["positions_lots"][f"{PERP}@second"] == held["second"][PERP]
        assert not any(o.client_id == "orphan-1" for o in second.exchange.open_orders())
        assert summary["open_orders_at_exit"] == 0
        # the restarted session's report: each venue's inventory is what its server holds (it showed
        # 0.0 for a venue whose restored position waited for that venue's first mid)
        for name, server in (("main", main), ("second", second)):
            lots = server.exchange.positions()[SPOT]
            assert summary["venues"][name]["inventory"] == pytest.approx(server.exchange.instruments[SPOT].size(lots))
        # the servers kept their fills: the ledger was consulted, the fill made while down recovered
        # from main's history (once), and then the ledger agreed with each venue
        assert recovered["ledger_consulted"] is True and recovered["fill_history"] == "ok"
        assert [f for f in recovered["recovered_fill_ids"] if f.startswith(f"{SPOT}@main:main:")], recovered
        assert recovered["mismatches"] == {}
        assert recovered["ledger_positions_lots"][f"{SPOT}@main"] == held["main"][SPOT]
    finally:
        await main.stop()
        await second.stop()
