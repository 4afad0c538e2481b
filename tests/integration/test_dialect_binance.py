"""ccxt's real binance client against the Binance dialect (public data only), and
`mmbot run --config config/binance-paper.toml` on it: live paper trading, offline."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import pytest
from conftest import until
from test_kill_recovery import BotProcess

from bot.config import CcxtConfig
from bot.domain import Side
from bot.venues.ccxt_safety import build_exchange
from bot.venues.mock.dialects import DialectServer, dialect_factory
from bot.venues.mock.dialects.markets import PERP_SYMBOL, SPOT_SYMBOL, btc_config, quiet_btc_config

CONFIG = Path(__file__).resolve().parents[2] / "config" / "binance-paper.toml"


@pytest.mark.parametrize("symbol", [SPOT_SYMBOL, PERP_SYMBOL])
async def test_ccxt_syncs_the_book_by_binances_rules_and_reads_the_trades(symbol: str) -> None:
    """ccxt fetches the REST snapshot, buffers the diff stream and checks U/u (spot) or pu (USD-M):
    a gap would raise. After an outside taker moves the book, ccxt's book equals the dialect's."""
    async with DialectServer(dialect_factory("binance"), quiet_btc_config(dialect="binance")) as server:
        cfg = CcxtConfig(exchange="binance", mode="paper", sandbox_url_base=f"http://127.0.0.1:{server.port}")
        ex = build_exchange(cfg)
        try:
            await ex.load_markets()
            market = server.dialect.markets[symbol]  # type: ignore[attr-defined]
            inst = market.inst
            watch = asyncio.ensure_future(ex.watch_order_book(symbol))
            await until(lambda: any(c.topics for c in server.connections), what="the depth subscription")
            trades = asyncio.ensure_future(ex.watch_trades(symbol))
            best_bid = server.exchange.snapshot(symbol, server.now_ns()).bids[0]
            for _ in range(3):  # each take changes the book: one diff each
                published = market.update_id
                server.exchange.simulate_taker(symbol, Side.SELL, best_bid[1] // 4, best_bid[0])
                server.pacer.wake()
                await until(lambda: market.update_id > published, what="a published diff")  # noqa: B023
            book = await asyncio.wait_for(watch, 10)
            while book["nonce"] < market.update_id:
                book = await asyncio.wait_for(ex.watch_order_book(symbol), 10)
            ours = {(inst.ticks(p), round(q / inst.lot_size)) for p, q in book["bids"]}
            assert (ours, book["nonce"]) == (set(market.bids.items()), market.update_id)  # the still market
            printed = await asyncio.wait_for(trades, 10)
        finally:
            await ex.close()
    assert printed[0]["side"] == "sell" and printed[0]["price"] == best_bid[0] * inst.tick_size


@pytest.mark.slow
async def test_binance_paper_config_paper_fills_and_hedges_on_the_dialect_and_exits_clean(tmp_path: Path) -> None:
    async with DialectServer(dialect_factory("binance"), btc_config(dialect="binance")) as server:
        env = {
            **os.environ,
            "PYTHONUNBUFFERED": "1",
            "MMBOT__CCXT__SANDBOX_URL_BASE": f"http://127.0.0.1:{server.port}",  # no keys: paper mode
            "MMBOT__METRICS__ENABLED": "false",
        }
        argv = ["-m", "bot.cli", "run", "--config", str(CONFIG), "--ledger", str(tmp_path / "l.sqlite")]
        proc = await asyncio.create_subprocess_exec(
            sys.executable, *argv, "--log-format", "json",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, env=env,
        )  # fmt: skip
        bot = BotProcess(proc)
        try:
            await bot.wait_for("order.filled", timeout_s=60, symbol=SPOT_SYMBOL)
            await bot.wait_for("hedge.filled", timeout_s=60)  # 0.002 BTC a quote: one fill is a hedgeable 100+ USDT
            proc.send_signal(signal.SIGTERM)
            assert await bot.exit_code(timeout_s=30) == 0
        finally:
            bot.kill()
    (summary,) = [r for r in bot.records if r.get("event") == "session.summary"]
    assert summary["open_orders_at_exit"] == 0 and summary["fills"] >= 1 and summary["hedge_fills"] >= 1
