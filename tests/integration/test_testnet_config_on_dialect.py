"""`mmbot run --config config/bybit-testnet.toml` against the Bybit dialect server, as a new user
would run it against Bybit's testnet: ccxt's own client, any key, `ccxt.sandbox_url_base` pointing at
a dialect server on 127.0.0.1 (in this process, so its state is the ground truth). No network.

1. the bot quotes, fills on spot and hedges on the perp;
2. SIGKILL: its resting quotes stay at the venue; an outside taker then fills one of them (a fill the
   bot never sees);
3. restart with the same ledger: recovery finds that fill in the venue's history, no mismatch; the
   bot trades again; SIGTERM: exit 0.

Then: no order of ours rests at the venue, the ledger's fill ids are exactly the venue's executions
(none lost, none twice), and the positions rebuilt from the ledger equal the venue's, spot and perp.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import sys
from pathlib import Path

import pytest
from conftest import until
from test_kill_recovery import BotProcess, take_a_resting_quote

from bot.domain import Side
from bot.runtime.ledger import recover_state
from bot.venues.mock.dialects import DialectServer, dialect_factory
from bot.venues.mock.dialects.markets import PERP_SYMBOL, SPOT_SYMBOL, btc_config

CONFIG = Path(__file__).resolve().parents[2] / "config" / "bybit-testnet.toml"
API_SECRET = "any-secret"  # the binance dialect checks the HMAC signatures made with it


async def start_bot(
    server: DialectServer, ledger: Path, config: Path = CONFIG, extra_env: dict[str, str] | None = None
) -> BotProcess:
    env = {
        **os.environ,
        **(extra_env or {}),
        "PYTHONUNBUFFERED": "1",
        "MMBOT__CCXT__SANDBOX_URL_BASE": f"http://127.0.0.1:{server.port}",
        "MMBOT__CCXT__API_KEY": "any-key",
        "MMBOT__CCXT__API_SECRET": API_SECRET,
        "MMBOT__CCXT__SPOT_BASE_ALLOCATION": "1.0",  # the dialect account's starting BTC is not inventory
        "MMBOT__METRICS__ENABLED": "false",
    }
    argv = ["-m", "bot.cli", "run", "--config", str(config), "--ledger", str(ledger), "--log-format", "json"]
    proc = await asyncio.create_subprocess_exec(
        sys.executable, *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, env=env
    )
    return BotProcess(proc)


def venue_positions(server: DialectServer) -> dict[str, int]:
    """The venue account's positions in lots: the perp's, and the spot wallet's BTC (with what the
    dialect's fee model moved it by: a spot buy pays its fee in BTC) less the 1.0 BTC allocation."""
    ex = server.exchange
    positions = dict(ex.positions())
    inst = ex.instruments[SPOT_SYMBOL]
    btc = ex.balances()[inst.base] + server.dialect.fee_shift.get(inst.base, 0.0)  # type: ignore[attr-defined]
    positions[SPOT_SYMBOL] = inst.lots(btc - 1.0)
    return positions


def fill_a_resting_quote(server: DialectServer, side: Side | None = None) -> str | None:
    """An outside taker trades through our best resting spot quote (see take_a_resting_quote)."""
    taken = take_a_resting_quote(server.exchange, SPOT_SYMBOL, side)
    server.pacer.wake()
    return taken


async def trade_through_a_quote(server: DialectServer, bot: BotProcess, after: int, side: Side | None = None) -> int:
    """An outside taker trades through one of the bot's spot quotes and the bot books the fill.
    Waiting for the market's own takers to reach our quotes timed out (40 s) 1 run in 4 on a quiet
    machine, for the first run and the restarted one alike; the test is about what the bot does
    with a fill, not how soon the simulated market gives it one."""
    taken = None
    for _ in range(5):  # a quote may be canceled between the look and the take: look again
        await until(lambda: any(o.symbol == SPOT_SYMBOL and side in (None, o.side)
                                for o in server.exchange.open_orders()),
                    20.0, "a resting spot quote of the bot")  # fmt: skip
        taken = fill_a_resting_quote(server, side)
        if taken is not None:
            break
    assert taken is not None, "the bot's quotes never stayed long enough to take one"
    return await bot.wait_for("order.filled", timeout_s=40, after=after, symbol=SPOT_SYMBOL)


async def trade_until_hedged(server: DialectServer, bot: BotProcess, after: int, fills: int = 4) -> int:
    """Trade through the bot's quotes (see trade_through_a_quote) until it hedges on the perp; the
    index of its `hedge.filled`. One fill need not be hedgeable: a spot buy pays its fee in the base
    coin, so a 0.001 BTC bid on Bybit delivers 0.000999 BTC, under the perp's 0.001 BTC minimum, and
    the bot rightly holds that delta until a second fill. Waiting for the market's own takers to make
    that second fill timed out (30 s) in 3 of 4 runs at load 10-12. Every forced fill is a buy (our
    bid taken), so each adds to the delta: taking the bid, else the ask, 4 fills gave no hedge in 3 of
    8 runs at load 10-12 (a bid and an ask taken cancel out)."""
    for _ in range(fills):
        after = await trade_through_a_quote(server, bot, after=after, side=Side.BUY) + 1
        hedged = await bot.wait_for_optional("hedge.filled", timeout_s=10, after=after - 1)
        if hedged is not None:
            return hedged
    pytest.fail(f"no hedge.filled after {fills} spot fills forced through the bot's quotes")


@pytest.mark.slow
async def test_bybit_testnet_config_trades_survives_kill_9_and_exits_clean(tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.sqlite"
    async with DialectServer(dialect_factory("bybit"), btc_config(taker_a_per_s=6.0)) as server:  # busy: quick fills
        executions = server.dialect._executions  # type: ignore[attr-defined]
        first = await start_bot(server, ledger)
        try:
            i = await first.wait_for("recovery.completed", timeout_s=30)
            await trade_until_hedged(server, first, after=i)
            await until(
                lambda: any(o.symbol == SPOT_SYMBOL and o.side is Side.BUY for o in server.exchange.open_orders()),
                20.0,
                "a resting bid",
            )
            first.kill()
            assert await first.exit_code() == -signal.SIGKILL
        finally:
            first.kill()
        seen_before = len(executions)
        orphan = fill_a_resting_quote(server)
        if orphan is not None:  # the market's own takers may have filled other quotes of ours too
            await until(lambda: len(executions) > seen_before, 20.0, "the orphan's execution")
        # else: a cancel the bot sent before the kill took our last quote (seen 1 run in 5 at load
        # 10); what the restart must then recover is whatever the market filled while it was dead
        dead = [e.row for e in executions[seen_before:]]
        if orphan is not None:
            assert orphan in {r["orderLinkId"] for r in dead}

        second = await start_bot(server, ledger)
        try:
            i = await second.wait_for("recovery.completed", timeout_s=30)
            recovery = second.records[i]
            assert recovery["fill_history"] == "ok" and recovery["last_run_ended_cleanly"] is False
            assert {f"{SPOT_SYMBOL}:{r['execId']}" for r in dead} <= set(recovery["recovered_fill_ids"])
            assert recovery["mismatches"] == {}
            await trade_through_a_quote(server, second, after=i)  # trades again
            second.proc.send_signal(signal.SIGTERM)
            assert await second.exit_code(timeout_s=30) == 0
        finally:
            second.kill()

        (summary,) = [r for r in second.records if r.get("event") == "session.summary"]
        assert summary["open_orders_at_exit"] == 0
        assert server.exchange.open_orders() == []

        symbol_of = {"spot": SPOT_SYMBOL, "linear": PERP_SYMBOL}
        venue_fills = {(symbol_of[e.category], e.row["execId"]) for e in executions}
        db = sqlite3.connect(ledger)
        try:
            rows = db.execute("SELECT symbol, fill_id FROM fills ORDER BY id").fetchall()
            rebuilt = recover_state(db).positions_lots
        finally:
            db.close()
        assert len(rows) == len(set(rows))  # none twice
        assert set(rows) == venue_fills  # none lost, none extra
        assert any(s == PERP_SYMBOL for s, _ in rows)  # the perp hedged
        venue = venue_positions(server)  # spot: BTC less its fees, which Bybit charges in BTC on a buy
        assert {s: rebuilt.get(s, 0) for s in venue} == venue
