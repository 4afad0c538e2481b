"""Every fill of every run, exactly once (issue #20, item 1).

The mock exchange numbers its fills F1, F2, ... again every time it starts, so fill ids repeat
across runs; the ledger keys a fill by (venue, venue session, symbol, fill id). Real SQLite, the
real composition root (`bot.app._run`), the real websocket mock exchange on loopback; the exchange's
own fill log is the ground truth.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from bot.app import _run
from bot.cli import main
from bot.config import load_settings
from bot.domain import Instrument, InstrumentKind, Liquidity, OrderFilled, Side, VenueReport
from bot.runtime.ledger import Ledger, recover_state
from bot.venues.mock.server import MockExchangeServer

SPOT = Instrument("TOKEN/USDT", InstrumentKind.SPOT, "TOKEN", "USDT", tick_size=0.01, lot_size=0.5)
# a busy market (10 uninformed takers per second per side) so that every short run fills
BUSY = {
    "seed": 5,
    "spot": {"symbol": "TOKEN/USDT", "taker_a_per_s": 10.0},
    "perp": {"symbol": "TOKEN/USDT:USDT", "taker_a_per_s": 10.0},
}


def fill(fill_id: str, side: Side = Side.BUY, lots: int = 2) -> OrderFilled:
    return OrderFilled(SPOT.symbol, "c1", fill_id, side, 10_000, lots, 0.0, Liquidity.MAKER, 0, 1, 2)


def rows(path: Path, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    db = sqlite3.connect(path)
    try:
        return db.execute(sql, params).fetchall()
    finally:
        db.close()


def settings_for(ledger: Path, venue: str = "mock", **extra: Any) -> Any:
    overrides: dict[str, Any] = {
        "runtime": {"speed": 50.0, "venue": venue, "warmup_s": 0.0},
        "metrics": {"enabled": False},
        "ledger": {"path": str(ledger)},
        **extra,
    }
    return load_settings(None, overrides)


# ---- the ledger alone ----------------------------------------------------------------------------


def test_the_same_fill_id_in_two_venue_sessions_is_two_fills(tmp_path: Path) -> None:
    path = tmp_path / "l.sqlite"
    with Ledger(path) as led:
        led.start_run("r1", 1, venue="mock-ws", instruments=[SPOT], session="mock-ws:a")
        assert led.record_fill("r1", fill("F1"))
        led.start_run("r2", 2, venue="mock-ws", instruments=[SPOT], session="mock-ws:b")
        assert led.record_fill("r2", fill("F1"))  # a restarted exchange's F1: another fill
        assert not led.record_fill("r2", fill("F1"))  # the same one again: a duplicate
        led.start_run("r3", 3, venue="mock-ws", instruments=[SPOT], session="mock-ws:a")
        assert not led.record_fill("r3", fill("F1"))  # back on session a: F1 is already recorded
        assert led.recover("mock-ws", "mock-ws:a").positions_lots == {SPOT.symbol: 2}
        assert led.recover("mock-ws", "mock-ws:b").positions_lots == {SPOT.symbol: 2}
        assert led.recover("mock-ws").fill_count == 2
    assert rows(path, "SELECT run_id, venue, venue_session, fill_id FROM fills ORDER BY id") == [
        ("r1", "mock-ws", "mock-ws:a", "F1"),
        ("r2", "mock-ws", "mock-ws:b", "F1"),
    ]


def test_every_row_names_its_venue(tmp_path: Path) -> None:
    from bot.domain import FundingPaid, PlaceOrder

    path = tmp_path / "l.sqlite"
    with Ledger(path) as led:
        led.start_run("r1", 1, venue="ccxt:bybit:sandbox", instruments=[SPOT])
        led.record_command("r1", PlaceOrder(SPOT.symbol, "h1", Side.BUY, 10_000, 2, tag="hedge"), 5)
        led.record_fill("r1", fill("T1"))
        led.record_event("r1", FundingPaid(SPOT.symbol, 0.0001, 0.5, 6, 7))
    for table in ("instruments", "order_events", "fills", "hedges", "funding"):
        assert rows(path, f"SELECT DISTINCT venue FROM {table}") == [("ccxt:bybit:sandbox",)], table


V1_SCHEMA = """
CREATE TABLE runs (run_id TEXT PRIMARY KEY, started_ns INTEGER NOT NULL, ended_ns INTEGER,
    venue TEXT NOT NULL DEFAULT '', config_json TEXT, summary_json TEXT);
CREATE TABLE instruments (run_id TEXT NOT NULL, symbol TEXT NOT NULL, kind TEXT NOT NULL, base TEXT NOT NULL,
    quote TEXT NOT NULL, tick_size REAL NOT NULL, lot_size REAL NOT NULL, maker_fee REAL NOT NULL,
    taker_fee REAL NOT NULL, PRIMARY KEY (run_id, symbol));
CREATE TABLE order_events (id INTEGER PRIMARY KEY, run_id TEXT NOT NULL, ts_ns INTEGER NOT NULL,
    ts_venue_ns INTEGER, kind TEXT NOT NULL, symbol TEXT, client_id TEXT, side TEXT, price_ticks INTEGER,
    size_lots INTEGER, order_type TEXT, post_only INTEGER, reduce_only INTEGER, tag TEXT, venue_order_id TEXT,
    reason TEXT);
CREATE INDEX order_events_client ON order_events (client_id);
CREATE TABLE fills (id INTEGER PRIMARY KEY, run_id TEXT NOT NULL, ts_venue_ns INTEGER NOT NULL,
    ts_recv_ns INTEGER NOT NULL, symbol TEXT NOT NULL, client_id TEXT NOT NULL, fill_id TEXT NOT NULL,
    side TEXT NOT NULL, price_ticks INTEGER NOT NULL, size_lots INTEGER NOT NULL, price_px REAL NOT NULL,
    size_base REAL NOT NULL, fee_quote REAL NOT NULL, liquidity TEXT NOT NULL, leaves_lots INTEGER NOT NULL,
    tag TEXT NOT NULL, UNIQUE (symbol, fill_id));
CREATE TABLE hedges (id INTEGER PRIMARY KEY, run_id TEXT NOT NULL, ts_ns INTEGER NOT NULL, symbol TEXT NOT NULL,
    client_id TEXT NOT NULL, side TEXT NOT NULL, order_type TEXT NOT NULL, price_ticks INTEGER NOT NULL,
    size_lots INTEGER NOT NULL, reason TEXT NOT NULL);
CREATE TABLE funding (id INTEGER PRIMARY KEY, run_id TEXT NOT NULL, ts_venue_ns INTEGER NOT NULL,
    symbol TEXT NOT NULL, rate REAL NOT NULL, amount_quote REAL NOT NULL);
CREATE TABLE quotes (id INTEGER PRIMARY KEY, run_id TEXT NOT NULL, ts_ns INTEGER NOT NULL, symbol TEXT NOT NULL,
    mid_px REAL NOT NULL, bid_px REAL, ask_px REAL, reservation_px REAL, spread_bps REAL,
    inventory_base REAL NOT NULL, net_delta_base REAL NOT NULL, risk_state TEXT NOT NULL);
CREATE TABLE pnl (id INTEGER PRIMARY KEY, run_id TEXT NOT NULL, ts_ns INTEGER NOT NULL,
    total_quote REAL NOT NULL, components_json TEXT NOT NULL);
PRAGMA user_version=1;
"""


def test_a_version_1_ledger_is_migrated_keeping_every_row(tmp_path: Path) -> None:
    """The schema of today's main before this change, as it was written to disk (copied, not built
    from our SCHEMA), with rows in it."""
    path = tmp_path / "old.sqlite"
    db = sqlite3.connect(path)
    db.executescript(V1_SCHEMA)
    db.execute("INSERT INTO runs (run_id, started_ns, ended_ns, venue) VALUES ('old', 1, 2, 'mock-ws')")
    db.execute("INSERT INTO instruments VALUES ('old', 'TOKEN/USDT', 'spot', 'TOKEN', 'USDT', 0.01, 0.5, 0, 0)")
    for i, side in ((1, "buy"), (2, "buy"), (3, "sell")):
        db.execute(
            "INSERT INTO fills (run_id, ts_venue_ns, ts_recv_ns, symbol, client_id, fill_id, side, price_ticks,"
            " size_lots, price_px, size_base, fee_quote, liquidity, leaves_lots, tag)"
            f" VALUES ('old', {i}, {i}, 'TOKEN/USDT', 'c{i}', 'F{i}', '{side}', 10000, 2, 100.0, 1.0, 0.0, 'maker',"
            " 0, 'quote')"
        )
    db.execute(
        "INSERT INTO order_events (run_id, ts_ns, kind, symbol, client_id)"
        " VALUES ('old', 1, 'place', 'TOKEN/USDT', 'c1')"
    )
    db.commit()
    db.close()

    with Ledger(path) as led:
        state = led.recover("mock-ws", "")  # version 1's one namespace: session ""
        assert state.fill_count == 3 and state.positions_lots == {SPOT.symbol: 2}
        led.start_run("new", 5, venue="mock-ws", instruments=[SPOT], session="mock-ws:fresh")
        assert led.record_fill("new", fill("F1"))  # was a collision under UNIQUE(symbol, fill_id)
    assert rows(path, "PRAGMA user_version") == [(3,)]
    assert rows(path, "SELECT fill_id, venue, venue_session FROM fills ORDER BY id") == [
        ("F1", "mock-ws", ""), ("F2", "mock-ws", ""), ("F3", "mock-ws", ""), ("F1", "mock-ws", "mock-ws:fresh"),
    ]  # fmt: skip
    assert rows(path, "SELECT venue FROM order_events") == [("mock-ws",)]
    Ledger(path).close()  # opening a migrated ledger again changes nothing


# ---- item 1 as the issue reproduced it: two dry runs on one ledger --------------------------------


def test_a_second_dry_run_on_the_same_ledger_keeps_all_its_fills(tmp_path: Path) -> None:
    """`for i in 1 2; do mmbot run --duration 8s --ledger /tmp/x.db; done`: run 2 logged 16 fills,
    the ledger kept 8 (its F1.. collided with run 1's)."""
    path = tmp_path / "x.db"
    summaries = [asyncio.run(_run(settings_for(path), duration_s=2.0, run_id=f"run{i}")) for i in (1, 2)]
    for i, summary in enumerate(summaries, start=1):
        booked = summary["fills"] + summary["hedge_fills"]
        assert booked > 0
        assert rows(path, "SELECT COUNT(*) FROM fills WHERE run_id = ?", (f"run{i}",)) == [(booked,)]


# ---- ten runs in a row against one exchange, and against a restarted one ---------------------------


async def ten_runs(path: Path, restart_between: bool) -> list[tuple[str, Any, dict[str, Any]]]:
    """Ten bot runs on one ledger; the exchange keeps running (with an idle gap between runs while
    no bot is connected) or is a new one each time. Returns (run_id, server, summary) per run."""
    mock = load_settings(None, {"mock": BUSY}).mock
    runs: list[tuple[str, Any, dict[str, Any]]] = []
    server = MockExchangeServer(mock, speed=5.0)
    await server.start()
    try:
        for i in range(10):
            if restart_between and i:
                await server.stop()
                server = MockExchangeServer(mock, speed=5.0)
                await server.start()
            run_id = f"run{i:02d}"
            summary = await _run(settings_for(path, venue=server.url), duration_s=1.0, run_id=run_id)
            assert summary["open_orders_at_exit"] == 0
            runs.append((run_id, server, summary))
            idle_until = server.now_ns() + 3_000_000_000  # an idle gap: the market moves on without the bot
            await asyncio.wait_for(_market_time(server, idle_until), 10.0)
    finally:
        await server.stop()
    return runs


async def _market_time(server: MockExchangeServer, target_ns: int) -> None:
    while server.now_ns() < target_ns:
        await asyncio.sleep(0.02)


def exchange_fills(server: MockExchangeServer) -> set[tuple[str, str, str]]:
    return {(f"mock-ws:{server.session}", f.symbol, f.fill_id) for f in server.exchange.fills_since(0)}


@pytest.mark.slow
@pytest.mark.parametrize("restart_between", [False, True], ids=["same_exchange", "restarted_exchange"])
async def test_ten_runs_on_one_ledger_keep_every_fill_of_every_run_exactly_once(
    tmp_path: Path, restart_between: bool
) -> None:
    path = tmp_path / "ledger.sqlite"
    runs = await ten_runs(path, restart_between)
    servers = list({id(s): s for _, s, _ in runs}.values())
    assert len(servers) == (10 if restart_between else 1)

    ledger_rows = rows(path, "SELECT venue_session, symbol, fill_id, run_id, tag FROM fills")
    keys = [(s, sym, f) for s, sym, f, _, _ in ledger_rows]
    assert len(keys) == len(set(keys))  # none twice
    truth = set().union(*(exchange_fills(s) for s in servers))
    assert set(keys) == truth  # none lost, none invented: the exchanges' own fill logs
    per_run = Counter(run for _, _, _, run, tag in ledger_rows if tag != "recovered")
    for run_id, _server, summary in runs:
        assert per_run[run_id] == summary["fills"] + summary["hedge_fills"], run_id  # each run's own fills
    # a one-second run may now and then fill nothing (the guard one-sided on carried inventory): most do
    assert sum(1 for _, _, summary in runs if summary["fills"] + summary["hedge_fills"] > 0) >= 8

    db = sqlite3.connect(path)
    try:
        for server in servers:  # the ledger's positions on each exchange session equal that exchange's
            rebuilt = recover_state(db, "mock-ws", f"mock-ws:{server.session}").positions_lots
            venue = server.exchange.positions()
            assert {s: rebuilt.get(s, 0) for s in venue} == venue
    finally:
        db.close()

    out = tmp_path / "report"
    assert main(["report", "--ledger", str(path), "--out", str(out)]) == 0
    html = (out / "index.html").read_text()
    for run_id, _server, _summary in runs:
        assert run_id in html
    counts = dict(rows(path, "SELECT run_id, COUNT(*) FROM fills GROUP BY run_id"))
    for run_id, n in counts.items():
        assert f"<td>{run_id}</td>" in html and f"<td>{n}</td>" in html


V2_DUMP = Path(__file__).resolve().parents[1] / "data" / "ledger" / "v2_ledger.sql"
BTC = Instrument("BTC/USDT", InstrumentKind.SPOT, "BTC", "USDT", tick_size=0.01, lot_size=0.00001)
BTC_PERP = Instrument("BTC/USDT:USDT", InstrumentKind.PERP, "BTC", "USDT", tick_size=0.1, lot_size=0.001)


def test_a_version_2_ledger_is_upgraded_to_fees_per_currency_keeping_every_row(tmp_path: Path) -> None:
    """A ledger written by session 5's main (2eaa66d: two Binance spot buys and a perp hedge, dumped as
    SQL, not built from our SCHEMA) opens, is upgraded to version 3 in one transaction, and recovers
    the positions and fees it had; a new fill then books the venue's fee in its own currency."""
    path = tmp_path / "v2.sqlite"
    db = sqlite3.connect(path)
    db.executescript(V2_DUMP.read_text())
    db.close()
    assert rows(path, "PRAGMA user_version") == [(2,)]
    with Ledger(path) as led:
        state = led.recover("ccxt:binance:demo", "")
        assert (state.fill_count, state.positions_lots) == (3, {BTC.symbol: 400, BTC_PERP.symbol: -2})
        assert state.fees_paid == {"USDT": Decimal("0.306")} and state.last_run_ended_cleanly
        led.start_run("new", 5_000, venue="ccxt:binance:demo", instruments=[BTC, BTC_PERP])
        buy = OrderFilled(BTC.symbol, "q2", "T3", Side.BUY, 6_000_000, 200, 0.12, Liquidity.TAKER, 0, 6_000, 6_000,
                          report=VenueReport(200, 0.000002, "BTC"))  # fmt: skip
        assert led.record_fill("new", buy)
        state = led.recover("ccxt:binance:demo", "")
    assert state.positions_base[BTC.symbol] == Decimal("0.005998")  # 0.004 + 0.002 - the 0.000002 BTC fee
    assert state.positions_lots == {BTC.symbol: 600, BTC_PERP.symbol: -2}  # 599.8 lots, rounded once
    assert state.fees_paid == {"USDT": Decimal("0.306"), "BTC": Decimal("0.000002")}
    assert rows(path, "PRAGMA user_version") == [(3,)]
    assert rows(path, "SELECT fill_id, traded_lots, fee_cost, fee_currency FROM fills ORDER BY id") == [
        ("T0", None, None, None), ("T1", None, None, None), ("T2", None, None, None), ("T3", 200, "0.000002", "BTC"),
    ]  # fmt: skip
    Ledger(path).close()  # opening an upgraded ledger again changes nothing
    assert rows(path, "SELECT COUNT(*) FROM fills") == [(4,)]
