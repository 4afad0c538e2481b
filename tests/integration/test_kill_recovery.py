"""kill -9 mid-session, restart with the same ledger: no fill lost, none counted twice (issue #8).

The websocket mock exchange runs in this process (so its own state is the ground truth); the bot is
a real `python -m bot.cli run` subprocess with a SQLite ledger and JSON logs. The scenario:

1. the bot trades until it has filled and has quotes resting at the exchange;
2. SIGKILL: no shutdown, no cancel, no ledger flush; its resting quotes stay at the exchange;
3. while it is dead an outside taker fills one of those orphan quotes (a fill the bot never sees);
4. restart with the same ledger: `recovery.completed` must report that fill recovered from the
   venue's fill history and no ledger/venue mismatch; the bot trades again, then SIGTERM.

Then: exit 0 with no open order, the exchange holds no order of ours, the positions rebuilt from the
ledger equal the exchange's, and the ledger's fill ids are exactly the exchange's (unique, none lost).
Waits are on log lines or exchange state with timeouts, never fixed sleeps.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import sys
from collections.abc import Container
from pathlib import Path
from typing import Any

import orjson
import pytest
from conftest import Record, is_event, until

from bot.config import load_settings
from bot.domain import Side
from bot.runtime.ledger import recover_state
from bot.venues.mock import MockExchange
from bot.venues.mock.server import MockExchangeServer

SPOT = "TOKEN/USDT"

# A busier market than the default (10 uninformed takers per second per side), so a few seconds
# at real-time pace bring fills; metrics off (nothing here reads them).
CONFIG_TOML = """\
[metrics]
enabled = false
[mock]
seed = 5
[mock.spot]
symbol = "TOKEN/USDT"
taker_a_per_s = 10.0
[mock.perp]
symbol = "TOKEN/USDT:USDT"
taker_a_per_s = 10.0
"""


class BotProcess:
    """`python -m bot.cli run` as a subprocess; its JSON log lines are collected as they come."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.records: list[Record] = []
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def start(cls, url: str, config: Path, ledger: Path) -> BotProcess:
        argv = ["-m", "bot.cli", "run", "--config", str(config), "--venue", url, "--ledger", str(ledger)]
        proc = await asyncio.create_subprocess_exec(
            sys.executable, *argv, "--log-format", "json",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )  # fmt: skip
        return cls(proc)

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        async for line in self.proc.stdout:
            if line.startswith(b"{"):
                self.records.append(orjson.loads(line))

    def index_of(self, name: str, after: int = 0, **fields: Any) -> int | None:
        """Index of the first `name` event (with `fields`) at or after `after`, if any yet."""
        return next((i for i in range(after, len(self.records)) if is_event(self.records[i], name, **fields)), None)

    def placed(self, symbol: str, after: int = 0) -> set[str]:
        """The client ids of the orders this process placed on `symbol` (its `order.placed` lines)."""
        return {str(r["client_id"]) for r in self.records[after:] if is_event(r, "order.placed", symbol=symbol)}

    async def wait_for(self, name: str, timeout_s: float = 15.0, after: int = 0, **fields: Any) -> int:
        """Index of the first `name` event (with `fields`) at or after `after`."""

        def found() -> int | None:
            return self.index_of(name, after, **fields)

        await until(lambda: found() is not None or self.proc.returncode is not None, timeout_s, what=name)
        index = found()
        if index is None:
            events = sorted({str(r.get("event")) for r in self.records})
            pytest.fail(f"bot exited ({self.proc.returncode}) before {name}; events seen: {events}")
        return index

    async def wait_for_optional(self, name: str, timeout_s: float, after: int = 0, **fields: Any) -> int | None:
        """Like `wait_for`, but None (no failure) if `name` has not come within `timeout_s`."""
        try:
            async with asyncio.timeout(timeout_s):
                while self.index_of(name, after, **fields) is None and self.proc.returncode is None:
                    await asyncio.sleep(0.005)
        except TimeoutError:
            return None
        return self.index_of(name, after, **fields)

    async def exit_code(self, timeout_s: float = 15.0) -> int:
        try:
            async with asyncio.timeout(timeout_s):
                code = await self.proc.wait()
                await self._reader
        except TimeoutError:  # say where the bot stood: a hang at exit is otherwise a bare timeout
            last = [f"{r.get('event')}({r.get('reason', '')})" for r in self.records[-15:]]
            slow = [(r.get("stage"), r.get("waiting_in")) for r in self.records if r.get("event") == "shutdown.slow"]
            pytest.fail(f"bot still running {timeout_s} s after told to stop; its last lines: {last}; slow: {slow}")
        return code

    def kill(self) -> None:
        if self.proc.returncode is None:
            self.proc.kill()


def take_a_resting_quote(
    exchange: MockExchange, symbol: str, side: Side | None = None, only: Container[str] | None = None
) -> str | None:
    """An outside taker trades through our best resting quote on `symbol` (the bid, else the ask; only
    our quotes on `side` if given, and only those whose client id is in `only` if given) and everything
    ahead of it; its client id. None if nothing of ours rests: after a kill the market runs on, so its
    own takers may have filled our quotes first, or a cancel sent before the kill may have taken the last one."""
    ours = [
        o
        for o in exchange.open_orders()
        if o.symbol == symbol and side in (None, o.side) and (only is None or o.client_id in only)
    ]
    bids = [o for o in ours if o.side is Side.BUY]
    asks = [o for o in ours if o.side is Side.SELL]
    book = exchange.snapshot(symbol, exchange.now_ns)
    if bids:
        quote = max(bids, key=lambda o: o.price_ticks)
        lots = sum(size for price, size in book.bids if price >= quote.price_ticks)
        exchange.simulate_taker(symbol, Side.SELL, lots, limit_ticks=quote.price_ticks)
    elif asks:
        quote = min(asks, key=lambda o: o.price_ticks)
        lots = sum(size for price, size in book.asks if price <= quote.price_ticks)
        exchange.simulate_taker(symbol, Side.BUY, lots, limit_ticks=quote.price_ticks)
    else:
        return None
    return quote.client_id


def ledger_fills(path: Path) -> list[tuple[str, str, str]]:
    db = sqlite3.connect(path)
    try:
        return db.execute("SELECT symbol, fill_id, tag FROM fills ORDER BY id").fetchall()
    finally:
        db.close()


@pytest.mark.slow
async def test_kill_9_mid_session_then_restart_loses_no_fill_and_counts_none_twice(tmp_path: Path) -> None:
    config = tmp_path / "active.toml"
    config.write_text(CONFIG_TOML)
    ledger = tmp_path / "ledger.sqlite"
    async with MockExchangeServer(load_settings(config).mock, port=0) as server:
        exchange = server.exchange
        first = await BotProcess.start(server.url, config, ledger)
        try:
            await first.wait_for("recovery.completed")
            await first.wait_for("order.filled", symbol=SPOT)
            await until(
                lambda: any(o.symbol == SPOT and o.side is Side.BUY for o in exchange.open_orders()),
                10.0,
                "a resting bid",
            )
            first.kill()  # SIGKILL: no cancel, no flush, no end of run
            assert await first.exit_code() == -signal.SIGKILL
        finally:
            first.kill()
        fills_before = len(exchange.fills_since(0))
        orphan = take_a_resting_quote(exchange, SPOT)  # the bot is dead: it never sees this fill
        dead_fills = exchange.fills_since(0)[fills_before:]
        # The bot's quotes rested when it was killed (waited for above); whichever way they went
        # while it was dead, through our taker or the market's, at least one filled unseen.
        assert dead_fills, "no fill while the bot was dead: nothing for recovery to find"
        if orphan is not None:
            assert any(f.client_id == orphan for f in dead_fills)

        second = await BotProcess.start(server.url, config, ledger)
        try:
            i = await second.wait_for("recovery.completed")
            recovery = second.records[i]
            assert recovery["ledger_consulted"] and recovery["last_run_ended_cleanly"] is False
            assert recovery["fill_history"] == "ok"
            assert recovery["fills_recovered"] >= len(dead_fills)
            assert {f"{f.symbol}:{f.fill_id}" for f in dead_fills} <= set(recovery["recovered_fill_ids"])
            assert recovery["mismatches"] == {}  # the ledger, repaired, agrees with the venue
            assert orphan not in [o.client_id for o in exchange.open_orders()]
            # trades again: a fill of one of its own new quotes, forced (the market's own takers may
            # take longer than any fixed wait on a loaded machine)
            await until(lambda: take_a_resting_quote(exchange, SPOT, only=second.placed(SPOT, i)) is not None, 15.0)
            await second.wait_for("order.filled", after=i, symbol=SPOT)
            second.proc.send_signal(signal.SIGTERM)
            assert await second.exit_code() == 0
        finally:
            second.kill()

        (summary,) = [r for r in second.records if r.get("event") == "session.summary"]
        assert summary["open_orders_at_exit"] == 0
        assert exchange.open_orders() == []  # the account is the bot's alone: nothing of it rests

        rows = ledger_fills(ledger)
        ids = [(symbol, fill_id) for symbol, fill_id, _tag in rows]
        assert len(ids) == len(set(ids))  # none twice
        assert set(ids) == {(f.symbol, f.fill_id) for f in exchange.fills_since(0)}  # none lost, none extra
        assert {(s, f) for s, f, tag in rows if tag == "recovered"} >= {(f.symbol, f.fill_id) for f in dead_fills}

        db = sqlite3.connect(ledger)
        try:
            rebuilt = recover_state(db, venue="mock-ws").positions_lots
        finally:
            db.close()
        venue_positions = exchange.positions()
        assert {s: rebuilt.get(s, 0) for s in venue_positions} == venue_positions


# No taker of the market's own: nothing fills but what the test trades (quotes rest untouched).
CALM_CONFIG_TOML = """\
[metrics]
enabled = false
[mock]
seed = 7
[mock.spot]
symbol = "TOKEN/USDT"
taker_a_per_s = 0.0
[mock.perp]
symbol = "TOKEN/USDT:USDT"
taker_a_per_s = 0.0
"""


@pytest.mark.slow
async def test_kill_9_before_the_first_fill_then_restart_records_the_fill_made_while_dead(tmp_path: Path) -> None:
    """The bot dies before any fill of this venue session is in the ledger; a fill happens while it is
    dead. The restart must still ask the venue's history (from the dead run's start) and record it once."""
    config = tmp_path / "calm.toml"
    config.write_text(CALM_CONFIG_TOML)
    ledger = tmp_path / "ledger.sqlite"
    async with MockExchangeServer(load_settings(config).mock, port=0) as server:
        exchange = server.exchange
        first = await BotProcess.start(server.url, config, ledger)
        try:
            await first.wait_for("recovery.completed")
            await until(lambda: any(o.symbol == SPOT for o in exchange.open_orders()), 20.0, "a resting quote")
            first.kill()
            assert await first.exit_code() == -signal.SIGKILL
        finally:
            first.kill()
        assert exchange.fills_since(0) == [], "a fill before the kill: not the case this test is about"
        assert ledger_fills(ledger) == []
        orphan = take_a_resting_quote(exchange, SPOT)
        assert orphan is not None, "no quote of ours rested after the kill"
        dead_fills = exchange.fills_since(0)
        assert dead_fills and all(f.client_id == orphan for f in dead_fills)

        second = await BotProcess.start(server.url, config, ledger)
        try:
            i = await second.wait_for("recovery.completed")
            recovery = second.records[i]
            assert recovery["ledger_consulted"] and recovery["fill_history"] == "ok"
            assert {f"{f.symbol}:{f.fill_id}" for f in dead_fills} <= set(recovery["recovered_fill_ids"])
            assert recovery["mismatches"] == {}
            await second.wait_for("session.started", after=i)  # its SIGTERM handler is installed
            await until(lambda: any(o.symbol == SPOT for o in exchange.open_orders()), 20.0, "quoting again")
            second.proc.send_signal(signal.SIGTERM)
            assert await second.exit_code() == 0
        finally:
            second.kill()

        rows = ledger_fills(ledger)
        ids = [(symbol, fill_id) for symbol, fill_id, _tag in rows]
        assert len(ids) == len(set(ids))
        assert set(ids) == {(f.symbol, f.fill_id) for f in exchange.fills_since(0)}
        db = sqlite3.connect(ledger)
        try:
            rebuilt = recover_state(db, venue="mock-ws").positions_lots
        finally:
            db.close()
        venue_positions = exchange.positions()
        assert {s: rebuilt.get(s, 0) for s in venue_positions} == venue_positions
