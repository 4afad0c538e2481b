"""The real bot against the websocket mock exchange over loopback, end to end.

- `mmbot exchange serve` as a subprocess (standalone) and `mmbot run --venue ws://...` in process:
  the bot quotes, fills, hedges, keeps inventory within the hard limit, exits 0 with no open order
  left on the exchange, and the server stops cleanly on SIGTERM.
- The in-process server (accelerated clock) with `bot.app._run`, and each outage-type fault injected
  over the wire while the bot trades: disconnect, sequence gap, exchange restart. The bot must
  recover (resync, quote and fill again) and end clean.

Everything is checked from the structured log events (the bot's interface) and from the exchange's
own state; waits are on conditions with timeouts, never fixed sleeps.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
import structlog
from conftest import LogSink, Record, is_event
from websockets.asyncio.client import connect

from bot import cli
from bot.app import _run
from bot.config import load_settings
from bot.venues.mock.client import WsMockVenue
from bot.venues.mock.server import MockExchangeServer

SPOT = "TOKEN/USDT"
PERP = "TOKEN/USDT:USDT"
SPEED = 10.0  # the in-process exchange's clock runs 10x wall time: one test second is ten market seconds
SAFETY_DURATION_S = 90.0  # the bot stops by itself after this if a scenario never finishes (beyond its waits)


def events(records: list[Record], name: str, **fields: Any) -> list[Record]:
    return [r for r in records if is_event(r, name, **fields)]


async def wait_for(
    sink: LogSink, pred: Callable[[Record], bool], *, after: int = 0, timeout_s: float = 20.0, what: str = ""
) -> int:
    """Index of the first record at or after `after` that matches `pred`; fails after `timeout_s`."""
    try:
        async with asyncio.timeout(timeout_s):
            while True:
                for i in range(after, len(sink.records)):
                    if pred(sink.records[i]):
                        return i
                await asyncio.sleep(0.01)
    except TimeoutError:
        seen = sorted({str(r.get("event")) for r in sink.records[after:]})
        pytest.fail(f"timed out waiting for {what or pred}; events seen since: {seen}")


def named(name: str, **fields: Any) -> Callable[[Record], bool]:
    return lambda r: is_event(r, name, **fields)


def assert_clean_session(records: list[Record], summary: Record, hard_limit_base: float) -> None:
    """Quoted, filled, hedged, within the hard limit, nothing left open."""
    assert events(records, "quote.updated"), "never quoted"
    assert summary["fills"] > 0 and events(records, "order.filled", symbol=SPOT)
    assert summary["hedges"] > 0 and summary["hedge_fills"] > 0 and events(records, "hedge.filled", symbol=PERP)
    assert summary["max_abs_inventory"] <= hard_limit_base
    assert all(abs(r["inventory"]) <= hard_limit_base for r in events(records, "order.filled"))
    assert summary["open_orders_at_exit"] == 0


# ---- standalone server (subprocess) + `mmbot run` ----------------------------------------------

ACTIVE_MARKET_TOML = """\
# A busier market than the default (10 uninformed takers per second per side), so a few wall-clock
# seconds at real-time pace are enough for fills.
[mock]
seed = 3
[mock.spot]
symbol = "TOKEN/USDT"
taker_a_per_s = 10.0
[mock.perp]
symbol = "TOKEN/USDT:USDT"
maker_fee = 0.0002
taker_a_per_s = 10.0
"""


def _wait_for_serving(proc: subprocess.Popen[bytes]) -> int:
    assert proc.stdout is not None
    for line in proc.stdout:  # the server logs one JSON line per event; the port is in exchange.serving
        record = orjson.loads(line)
        if record.get("event") == "exchange.serving":
            return int(record["port"])
    raise AssertionError(f"server exited before serving: {proc.wait()} {proc.stderr and proc.stderr.read()!r}")


async def _venue_state(url: str) -> tuple[list[str], dict[str, int]]:
    venue = WsMockVenue(url)
    await venue.connect()
    try:
        return [o.client_id for o in await venue.open_orders()], await venue.positions()
    finally:
        await venue.close()


def test_mmbot_run_trades_with_a_standalone_exchange_and_exits_clean(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "active.toml"
    config.write_text(ACTIVE_MARKET_TOML)
    server = subprocess.Popen(
        [sys.executable, "-m", "bot.cli", "exchange", "serve", "--port", "0", "--config", str(config),
         "--log-format", "json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    try:
        port = _wait_for_serving(server)
        assert port > 0
        url = f"ws://127.0.0.1:{port}"
        argv = ["run", "--venue", url, "--duration", "3s", "--log-format", "json", "--ledger", str(tmp_path / "l.db")]
        exit_code = cli.main(argv)
        records = [orjson.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
        structlog.reset_defaults()
        structlog.contextvars.clear_contextvars()

        assert exit_code == 0
        (summary,) = events(records, "session.summary")
        assert_clean_session(records, summary, load_settings().risk.inventory_hard_base)
        open_ids, positions = asyncio.run(_venue_state(url))
        assert open_ids == []  # the exchange agrees: nothing of ours is left resting
        assert positions[SPOT] / 100 == pytest.approx(summary["inventory"])  # lot 0.01: no fill lost on the wire

        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=10) == 0
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()


# ---- in-process server + `_run`, faults injected over the wire at run time ----------------------


async def inject_fault(url: str, name: str | None, duration_ms: int | None = None, **params: float) -> None:
    """Send the `fault` op on a control connection of its own, as an operator would."""
    message: dict[str, Any] = {"op": "fault", "name": name, "duration_ms": duration_ms, "req_id": "f"}
    if params:
        message["set"] = params
    async with connect(url) as ws:
        await ws.send(orjson.dumps(message).decode())
        reply = orjson.loads(await ws.recv())
        assert reply["type"] == "fault_ack" and reply["ok"], reply


async def run_bot(
    server: MockExchangeServer, sink: LogSink, tmp_path: Path, scenario: Callable[[], Any], **runtime: Any
) -> dict[str, Any]:
    """Run the bot against `server` while `scenario()` runs; stop it with SIGINT when the scenario ends."""
    overrides = {
        "runtime": {"venue": server.url, **runtime},
        "metrics": {"enabled": False},
        "ledger": {"path": str(tmp_path / "ledger.db")},
    }
    settings = load_settings(overrides=overrides)
    bot = asyncio.create_task(_run(settings, SAFETY_DURATION_S, run_id="h11test0000"))
    try:
        await wait_for(sink, named("session.started"), what="session.started")
        await scenario()
        assert not events(sink.records, "session.stopping"), "the bot stopped before the scenario ended"
        signal.raise_signal(signal.SIGINT)  # the runner's handler: cancel everything, summary, return
        async with asyncio.timeout(10):
            return await bot
    finally:
        if not bot.done():
            bot.cancel()


async def trading(sink: LogSink, after: int = 0) -> int:
    """Wait until the bot has quoted, been filled on the spot market, and hedged on the perp."""
    i = await wait_for(sink, named("quote.updated"), after=after, what="quote.updated")
    i = await wait_for(sink, named("order.filled", symbol=SPOT), after=i, what="a spot fill")
    return await wait_for(sink, named("hedge.filled", symbol=PERP), after=i, what="a hedge fill")


async def recovered(sink: LogSink, after: int, via: str = "feed.resynced") -> int:
    """The spot feed came back (a fresh snapshot, by default), then the bot quoted and was filled again."""
    i = await wait_for(sink, named(via, symbol=SPOT), after=after, what=f"spot {via}")
    return await trading(sink, after=i)


Scenario = Callable[[LogSink, MockExchangeServer], Any]


async def fault_disconnect(sink: LogSink, server: MockExchangeServer) -> None:
    mark = await trading(sink)
    await inject_fault(server.url, "disconnect", duration_ms=3000)  # 300 ms of wall time
    down = await wait_for(sink, named("feed.disconnected", symbol="*"), after=mark, what="engine sees the drop")
    up = await wait_for(sink, named("feed.connected", reason="reconnected"), after=down, what="reconnect")
    await recovered(sink, after=up)


async def fault_restart(sink: LogSink, server: MockExchangeServer) -> None:
    mark = await trading(sink)
    await inject_fault(server.url, "restart", duration_ms=3000)
    down = await wait_for(sink, named("feed.disconnected", symbol="*"), after=mark, what="engine sees the drop")
    up = await wait_for(sink, named("feed.connected", reason="reconnected"), after=down, what="reconnect")
    # the restart dropped our resting quotes; the venue's cancels arrive after the reconnect
    await wait_for(sink, named("order.canceled", reason="venue_restart"), after=down, what="restart cancels")
    await recovered(sink, after=up)


async def fault_gap(sink: LogSink, server: MockExchangeServer) -> None:
    mark = await trading(sink)
    await inject_fault(server.url, "gap")
    # the client sees the skipped ids (its feed.gap carries expected/got) and asks for a snapshot
    gap = await wait_for(sink, lambda r: r.get("event") == "feed.gap" and "got" in r, after=mark, what="gap")
    await recovered(sink, after=gap)


async def fault_crossed(sink: LogSink, server: MockExchangeServer) -> None:
    mark = await trading(sink)
    await inject_fault(server.url, "crossed", duration_ms=2000)
    # the engine's book refuses the crossing level, pulls quotes and asks for a snapshot
    bad = await wait_for(sink, named("feed.gap", symbol=SPOT, status="crossed"), after=mark, what="crossed book")
    await recovered(sink, after=bad)


async def fault_stale(sink: LogSink, server: MockExchangeServer) -> None:
    mark = await trading(sink)
    await inject_fault(server.url, "stale", duration_ms=10_000)  # 1 s of wall time, > stale_feed_ms below
    stale = await wait_for(sink, named("feed.stale", symbol=SPOT), after=mark, what="feed.stale")
    await recovered(sink, after=stale, via="feed.fresh")


async def message_faults(sink: LogSink, server: MockExchangeServer) -> None:
    """Per-message faults all at once: lost and doubled market data, rejects, late acks, doubled fills."""
    await trading(sink)
    probs = {"drop": 0.02, "duplicate": 0.05, "reject": 0.1, "delayed_ack": 0.2, "duplicate_fill": 0.3}
    await inject_fault(server.url, None, **{f"{name}_prob": p for name, p in probs.items()})
    counts = server.exchange.faults.counts
    async with asyncio.timeout(10):
        while not all(counts[name] > 0 for name in probs):
            await asyncio.sleep(0.01)
    mark = len(sink.records)
    await inject_fault(server.url, None, **{f"{name}_prob": 0.0 for name in probs})
    await trading(sink, after=mark)


# (scenario, [runtime] overrides for the bot, summary counters that must be >= the given value)
FAULT_SCENARIOS: list[tuple[Scenario, dict[str, Any], dict[str, int]]] = [
    (fault_disconnect, {}, {}),
    (fault_restart, {}, {}),
    (fault_gap, {}, {}),
    (fault_crossed, {}, {"resyncs": 1}),
    (fault_stale, {"stale_feed_ms": 500}, {"stale_episodes": 1}),
    (message_faults, {}, {"rejects": 1, "duplicate_fills_dropped": 1}),
]


@pytest.mark.parametrize(
    ("scenario", "runtime", "at_least"), FAULT_SCENARIOS, ids=[s[0].__name__ for s in FAULT_SCENARIOS]
)
async def test_bot_recovers_from_a_fault_injected_over_the_wire(
    scenario: Scenario, runtime: dict[str, Any], at_least: dict[str, int], log_sink: LogSink, tmp_path: Path
) -> None:
    config = load_settings().mock
    async with MockExchangeServer(config, port=0, speed=SPEED) as server:
        summary = await run_bot(server, log_sink, tmp_path, lambda: scenario(log_sink, server), **runtime)
        assert summary["stop_reason"] == "sigint"
        assert_clean_session(log_sink.records, summary, load_settings().risk.inventory_hard_base)
        assert server.exchange.open_orders() == []
        # every fill counted once, none lost: the bot's inventory is the venue's position
        assert server.exchange.positions()[SPOT] / 100 == pytest.approx(summary["inventory"])
        assert summary["position_mismatches"] == 0
        counters = {k: summary[k] for k in at_least}
        assert all(counters[k] >= n for k, n in at_least.items()), counters
