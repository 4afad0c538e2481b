"""`mmbot run --config config/okx-demo.toml` against the OKX dialect server, as a new user would run it
against OKX demo trading: ccxt's own client (orders over REST with `x-simulated-trading: 1`, one
private socket for both instruments' `orders` channel, swap sizes in contracts of 0.01 BTC),
`ccxt.sandbox_url_base` pointing at a dialect server on 127.0.0.1 that checks every HMAC signature
(REST and the websocket login). No network.

1. the bot quotes, fills on spot and hedges on the USD-M perp;
2. SIGKILL: its resting quotes stay at the venue; an outside taker then fills one of them (a fill the
   bot never sees);
3. restart with the same ledger: recovery finds that fill in the venue's fills history, no mismatch
   (OKX charges a spot buy's fee in BTC, to the 0.00000001 BTC lot: the ledger books the net coins); the
   bot trades again; SIGTERM: exit 0.

Then: no order of ours rests at the venue, the ledger's fill ids are exactly the venue's trades (none
lost, none twice), and the positions rebuilt from the ledger equal the venue's, spot and perp.
"""

from __future__ import annotations

import signal
import sqlite3
from pathlib import Path

import pytest
from conftest import until
from test_testnet_config_on_dialect import (
    API_SECRET,
    fill_a_resting_quote,
    start_bot,
    trade_through_a_quote,
    trade_until_hedged,
    venue_positions,
)

from bot.runtime.ledger import recover_state
from bot.venues.mock.dialects import DialectServer, dialect_factory
from bot.venues.mock.dialects.markets import PERP_SYMBOL, SPOT_SYMBOL, btc_config

CONFIG = Path(__file__).resolve().parents[2] / "config" / "okx-demo.toml"
OKX_ENV = {"MMBOT__CCXT__API_PASSWORD": "any-passphrase"}


def venue_trades(server: DialectServer) -> list[tuple[str, str, str]]:
    """(symbol, tradeId, clOrdId) of every fill the venue made for us."""
    fills = server.dialect._fills  # type: ignore[attr-defined]
    return [(f.order.market.inst.symbol, f.trade_id, f.order.cl_ord_id) for f in fills]


def client_id(server: DialectServer, core_id: str | None) -> str | None:
    order = server.dialect._orders.get(core_id or "")  # type: ignore[attr-defined]
    return order.cl_ord_id if order is not None else None


@pytest.mark.slow
async def test_okx_demo_config_trades_survives_kill_9_and_exits_clean(tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.sqlite"
    factory = dialect_factory("okx", api_secret=API_SECRET)
    async with DialectServer(factory, btc_config(dialect="okx", taker_a_per_s=6.0)) as server:
        first = await start_bot(server, ledger, CONFIG, OKX_ENV)
        try:
            i = await first.wait_for("recovery.completed", timeout_s=30)
            await trade_until_hedged(server, first, after=i)
            await until(lambda: any(o.symbol == SPOT_SYMBOL for o in server.exchange.open_orders()), 20.0,
                        "a resting spot quote")  # fmt: skip
            first.kill()
            assert await first.exit_code() == -signal.SIGKILL
        finally:
            first.kill()
        seen_before = set(venue_trades(server))
        orphan = client_id(server, fill_a_resting_quote(server))
        if orphan is not None:  # the market's own takers may have filled other quotes of ours too
            await until(lambda: len(venue_trades(server)) > len(seen_before), 20.0, "the orphan's trade")
        dead = [t for t in venue_trades(server) if t not in seen_before]
        if orphan is not None:
            assert orphan in {cid for _, _, cid in dead}

        second = await start_bot(server, ledger, CONFIG, OKX_ENV)
        try:
            i = await second.wait_for("recovery.completed", timeout_s=30)
            recovery = second.records[i]
            assert recovery["fill_history"] == "ok" and recovery["last_run_ended_cleanly"] is False
            assert {f"{s}:{tid}" for s, tid, _ in dead} <= set(recovery["recovered_fill_ids"])
            assert recovery["mismatches"] == {}
            await trade_through_a_quote(server, second, after=i)  # trades again
            second.proc.send_signal(signal.SIGTERM)
            assert await second.exit_code(timeout_s=30) == 0
        finally:
            second.kill()

        (summary,) = [r for r in second.records if r.get("event") == "session.summary"]
        assert summary["open_orders_at_exit"] == 0
        assert server.exchange.open_orders() == []
        assert not [o for o in server.dialect._by_ord_id.values() if o.open]  # type: ignore[attr-defined]

        db = sqlite3.connect(ledger)
        try:
            rows = db.execute("SELECT symbol, fill_id FROM fills ORDER BY id").fetchall()
            rebuilt = recover_state(db).positions_lots
        finally:
            db.close()
        assert len(rows) == len(set(rows))  # none twice
        assert set(rows) == {(s, tid) for s, tid, _ in venue_trades(server)}  # none lost, none extra
        assert any(s == PERP_SYMBOL for s, _ in rows)  # the perp hedged
        venue = venue_positions(server)  # spot: the wallet's BTC (less its fees) less the 1.0 allocation
        assert {s: rebuilt.get(s, 0) for s in venue} == venue
