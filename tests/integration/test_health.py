"""`/health` of a running bot: 503 before it quotes, 200 while it quotes, 503 once it stops quoting.

The bot (`bot.app._run`, metrics on port 0) trades against the websocket mock exchange in this
process. To make "before" and "after" deterministic the test holds the exchange's market back: while
held, the exchange answers requests but delivers no event (no book, no fills), so the bot cannot
sync a book at start, and later sees its feed go stale. The endpoint's URL comes from the bot's
`metrics.serving` log event. Waits are on conditions with timeouts, never fixed sleeps.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from conftest import LogSink, Record

from bot.app import _run
from bot.config import load_settings
from bot.venues.mock.server import MockExchangeServer


class HeldMarket:
    """Wraps the exchange's `advance` so the test can hold every delivery back, then release it."""

    def __init__(self, server: MockExchangeServer) -> None:
        self.held = True
        real_advance = server.exchange.advance

        def advance(now_ns: int) -> list[Any]:
            return [] if self.held else real_advance(now_ns)

        server.exchange.advance = advance  # type: ignore[method-assign]


async def get(url: str, path: str = "/health") -> tuple[int, Record]:
    """One GET over a plain socket: (status code, JSON body)."""
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: bot\r\nConnection: close\r\n\r\n".encode())
        await writer.drain()
        response = await reader.read()
    finally:
        writer.close()
    head, _, body = response.partition(b"\r\n\r\n")
    return int(head.split()[1]), orjson.loads(body)


async def until(predicate: Callable[[], Any], timeout_s: float, what: str) -> None:
    try:
        async with asyncio.timeout(timeout_s):
            while not await predicate():
                await asyncio.sleep(0.02)
    except TimeoutError:
        pytest.fail(f"timed out after {timeout_s} s waiting for {what}")


async def test_health_is_503_before_quoting_200_while_quoting_and_503_after(log_sink: LogSink, tmp_path: Path) -> None:
    async with MockExchangeServer(load_settings().mock, port=0) as server:
        market = HeldMarket(server)
        settings = load_settings(
            overrides={
                "runtime": {"venue": server.url, "stale_feed_ms": 500},
                "metrics": {"enabled": True, "port": 0, "status_push_ms": 50},
                "ledger": {"path": str(tmp_path / "ledger.sqlite")},
            }
        )
        bot = asyncio.create_task(_run(settings, 20.0, "health"))
        try:
            url = await serving_url(log_sink)
            seen: list[tuple[int, Record]] = []

            async def status_is(code: int) -> bool:
                seen.append(await get(url))
                return seen[-1][0] == code

            # before: connected and subscribed, but no book has arrived
            await until(lambda: status_is(503), 5.0, "503 while no book has arrived")

            async def pushed() -> bool:  # the runner has pushed a status snapshot: past "starting"
                return (await get(url, "/status"))[1].get("ts_ns") is not None

            await until(pushed, 5.0, "a status snapshot")
            assert await status_is(503) and seen[-1][1] == {"status": "not_ready", "reason": "book not synced"}
            assert not [r for r in log_sink.records if r.get("event") == "quote.updated"]

            market.held = False  # the book arrives: the bot syncs and quotes
            await until(lambda: status_is(200), 10.0, "200 once quoting")
            assert seen[-1][1] == {"status": "ready"}
            assert [r for r in log_sink.records if r.get("event") == "quote.updated"]

            market.held = True  # the feed goes silent: stale after runtime.stale_feed_ms, quotes pulled
            await until(lambda: status_is(503), 10.0, "503 once the feed is stale")
            assert seen[-1][1] == {"status": "not_ready", "reason": "stale feed"}

            market.held = False
            signal.raise_signal(signal.SIGINT)  # the runner's handler: cancel everything and return
            async with asyncio.timeout(10):
                summary = await bot
        finally:
            if not bot.done():
                bot.cancel()
    assert summary["open_orders_at_exit"] == 0
    with pytest.raises(OSError):  # stopped with the bot
        await get(url)


async def serving_url(sink: LogSink, timeout_s: float = 10.0) -> str:
    async with asyncio.timeout(timeout_s):
        while True:
            for record in sink.records:
                if record.get("event") == "metrics.serving":
                    return str(record["url"])
            await asyncio.sleep(0.01)
