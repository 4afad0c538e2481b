"""The SQLite ledger: append-only records, duplicate fills, batching, crash recovery (real SQLite in tmp_path)."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
import tracemalloc
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.config import LedgerConfig
from bot.domain import (
    CancelAll,
    CancelOrder,
    FundingPaid,
    Instrument,
    InstrumentKind,
    Liquidity,
    OrderAccepted,
    OrderCanceled,
    OrderFilled,
    OrderRejected,
    PlaceOrder,
    RequestSnapshot,
    Side,
    Timer,
)
from bot.runtime.ledger import Ledger, LedgerError, LedgerObserver, PnlSnapshot, QuoteSample, _apply_fill

SPOT = Instrument("TOKEN/USDT", InstrumentKind.SPOT, "TOKEN", "USDT", tick_size=0.01, lot_size=0.5)
PERP = Instrument("TOKEN/USDT:USDT", InstrumentKind.PERP, "TOKEN", "USDT", tick_size=0.01, lot_size=1.0)


def fill(
    fill_id: str,
    side: Side,
    price_ticks: int,
    lots: int,
    client_id: str = "c1",
    symbol: str = SPOT.symbol,
    fee: float = 0.0,
    leaves: int = 0,
) -> OrderFilled:
    return OrderFilled(symbol, client_id, fill_id, side, price_ticks, lots, fee, Liquidity.MAKER, leaves, 1, 2)


def place(client_id: str, side: Side = Side.BUY, tag: str = "quote", symbol: str = SPOT.symbol) -> PlaceOrder:
    return PlaceOrder(symbol, client_id, side, 10_000, 2, tag=tag)


@pytest.fixture
def ledger(tmp_path: Path) -> Ledger:
    led = Ledger(tmp_path / "ledger.sqlite")
    led.start_run("run-1", 1_000, venue="mock", instruments=[SPOT, PERP], config={"quoter": {"gamma": 0.1}})
    yield led
    led.close()


def rows(path: Path, sql: str) -> list[tuple]:
    with sqlite3.connect(path) as db:
        return db.execute(sql).fetchall()


def test_wal_mode_and_schema(ledger: Ledger) -> None:
    assert rows(ledger.path, "PRAGMA journal_mode") == [("wal",)]
    assert rows(ledger.path, "PRAGMA user_version") == [(3,)]  # 2: fills keyed by venue session; 3: fees per currency
    assert rows(ledger.path, "SELECT run_id, venue, ended_ns FROM runs") == [("run-1", "mock", None)]
    assert rows(ledger.path, "SELECT symbol, lot_size FROM instruments ORDER BY symbol") == [
        (SPOT.symbol, 0.5),
        (PERP.symbol, 1.0),
    ]


def test_duplicate_fill_is_ignored(ledger: Ledger) -> None:
    assert ledger.record_fill("run-1", fill("f1", Side.BUY, 10_000, 4)) is True
    assert ledger.record_fill("run-1", fill("f1", Side.BUY, 10_000, 4)) is False
    assert ledger.record_event("run-1", fill("f1", Side.BUY, 10_000, 4)) is False
    # the same fill id on another symbol is a different fill
    assert ledger.record_fill("run-1", fill("f1", Side.SELL, 10_000, 1, symbol=PERP.symbol)) is True
    assert rows(ledger.path, "SELECT COUNT(*) FROM fills") == [(2,)]
    state = ledger.recover()
    assert state.positions_lots == {SPOT.symbol: 4, PERP.symbol: -1}
    asked = {(SPOT.symbol, "f1"), (PERP.symbol, "f1"), (SPOT.symbol, "f2")}
    assert ledger.known_fills(asked) == {(SPOT.symbol, "f1"), (PERP.symbol, "f1")}


def test_fill_stores_price_and_size_in_units_and_tag_from_its_order(ledger: Ledger) -> None:
    ledger.record_command("run-1", place("h1", tag="hedge", symbol=PERP.symbol), 5, reason="delta")
    ledger.record_fill("run-1", fill("f1", Side.BUY, 10_050, 3, client_id="h1", symbol=PERP.symbol))
    ledger.record_fill("run-1", fill("f2", Side.BUY, 10_050, 3, client_id="unknown"))
    assert rows(ledger.path, "SELECT fill_id, price_px, size_base, tag FROM fills ORDER BY id") == [
        ("f1", pytest.approx(100.5), 3.0, "hedge"),
        ("f2", pytest.approx(100.5), 1.5, ""),
    ]
    ledger.flush(force=True)
    assert rows(ledger.path, "SELECT client_id, side, size_lots, reason FROM hedges") == [("h1", "buy", 2, "delta")]


def test_fill_on_unregistered_symbol_raises(ledger: Ledger) -> None:
    with pytest.raises(LedgerError):
        ledger.record_fill("run-1", fill("f1", Side.BUY, 1, 1, symbol="OTHER/USDT"))


def test_fill_tag_survives_restart(tmp_path: Path) -> None:
    path = tmp_path / "l.sqlite"
    with Ledger(path) as first:
        first.start_run("r1", 1, instruments=[SPOT])
        first.record_command("r1", place("q1", tag="quote"), 2)
    with Ledger(path) as second:
        second.start_run("r2", 3, instruments=[SPOT])
        second.record_fill("r2", fill("f1", Side.BUY, 100, 1, client_id="q1"))
    assert rows(path, "SELECT run_id, tag FROM fills") == [("r2", "quote")]


def test_realised_pnl_average_cost_hand_computed(ledger: Ledger) -> None:
    # lot_size 0.5 base: 4 lots = 2 base. Prices in ticks of 0.01.
    ledger.record_fill("run-1", fill("a", Side.BUY, 10_000, 4, fee=0.2))  # long 2 @ 100
    ledger.record_fill("run-1", fill("b", Side.BUY, 10_200, 4, fee=0.2))  # long 4 @ avg 101
    ledger.record_fill("run-1", fill("c", Side.SELL, 10_500, 6, fee=0.3))  # close 3: +3*(105-101) = 12
    ledger.record_fill("run-1", fill("d", Side.SELL, 9_900, 6))  # close 1: -2, flip to short 2 @ 99
    ledger.record_fill("run-1", fill("e", Side.BUY, 9_700, 4))  # close 2 short: +2*(99-97) = 4
    ledger.record_event("run-1", FundingPaid(PERP.symbol, 0.0001, 0.05, 7, 8))
    state = ledger.recover()
    assert state.positions_lots == {SPOT.symbol: 0}
    assert state.realised_pnl_quote[SPOT.symbol] == pytest.approx(14.0)
    assert state.avg_entry_px[SPOT.symbol] == 0.0
    assert state.fees_quote == pytest.approx(0.7)
    assert state.funding_quote == pytest.approx(0.05)
    assert state.realised_total_quote == pytest.approx(14.0 - 0.7 + 0.05)
    assert state.fill_count == 5


def test_partial_close_keeps_average(ledger: Ledger) -> None:
    ledger.record_fill("run-1", fill("a", Side.SELL, 10_000, 4))  # short 2 base @ 100
    ledger.record_fill("run-1", fill("b", Side.BUY, 9_000, 2))  # close 1 base: +10
    state = ledger.recover()
    assert state.positions_lots == {SPOT.symbol: -2}
    assert state.avg_entry_px[SPOT.symbol] == pytest.approx(100.0)
    assert state.realised_pnl_quote[SPOT.symbol] == pytest.approx(10.0)


@given(st.lists(st.tuples(st.sampled_from([1, -1]), st.integers(1, 50), st.integers(1, 1000)), max_size=40))
def test_round_trip_pnl_equals_cash_flow(trades: list[tuple[int, int, int]]) -> None:
    """Average-cost realised PnL + mark-to-market of the rest at the last price == total cash flow."""
    pos, avg, realised, cash = 0, 0.0, 0.0, 0.0
    for sign, lots, px in trades:
        pos, avg, pnl = _apply_fill(pos, avg, sign * lots, float(px), 1.0)
        realised += pnl
        cash -= sign * lots * px
    mark = float(trades[-1][2]) if trades else 0.0
    assert realised + pos * (mark - avg) == pytest.approx(cash + pos * mark, abs=1e-6)


def test_open_client_ids_from_order_events_and_fills(ledger: Ledger) -> None:
    for cid in ("acc", "rej", "can", "full", "part", "unacked"):
        ledger.record_command("run-1", place(cid), 10)
    ledger.record_event("run-1", OrderAccepted(SPOT.symbol, "acc", "v1", 11, 12))
    ledger.record_event("run-1", OrderRejected(SPOT.symbol, "rej", "post_only_would_cross", 11, 12))
    ledger.record_event("run-1", OrderCanceled(SPOT.symbol, "can", "requested", 11, 12))
    ledger.record_fill("run-1", fill("f1", Side.BUY, 10_000, 2, client_id="full", leaves=0))
    ledger.record_fill("run-1", fill("f2", Side.BUY, 10_000, 1, client_id="part", leaves=1))
    ledger.record_command("run-1", CancelOrder(SPOT.symbol, "acc"), 13)  # a cancel sent is not a cancel done
    ledger.record_command("run-1", CancelAll(), 14)
    ledger.record_command("run-1", RequestSnapshot(SPOT.symbol, "gap"), 14)  # ignored
    assert ledger.record_event("run-1", Timer(1, 2)) is False
    state = ledger.recover()
    assert state.open_client_ids == {"acc", "part", "unacked"}
    assert state.tags_by_client_id["acc"] == "quote"
    kinds = rows(ledger.path, "SELECT kind FROM order_events ORDER BY id")
    assert [k for (k,) in kinds].count("place") == 6
    assert ("cancel_all",) in kinds and ("cancel",) in kinds


def test_quotes_are_sampled_per_symbol_and_on_risk_change(tmp_path: Path) -> None:
    led = Ledger(tmp_path / "q.sqlite", LedgerConfig(quote_sample_ms=1000))
    led.start_run("r", 0)

    def sample(ts_ms: int, state: str = "normal", symbol: str = SPOT.symbol) -> QuoteSample:
        return QuoteSample(symbol, ts_ms * 1_000_000, 100.0, 99.9, 100.1, 100.0, 1.0, 0.5, state)

    written = [
        led.record_quote("r", sample(0)),
        led.record_quote("r", sample(500)),
        led.record_quote("r", sample(600, symbol="X")),
        led.record_quote("r", sample(700, state="widened")),
        led.record_quote("r", sample(1200)),  # back to normal: a change again
        led.record_quote("r", sample(1700)),
        led.record_quote("r", sample(2200)),
    ]
    assert written == [True, False, True, True, True, False, True]
    led.close()
    got = rows(led.path, "SELECT spread_bps FROM quotes LIMIT 1")[0][0]
    assert got == pytest.approx(20.0)


def test_quote_spread_none_when_one_side_missing() -> None:
    assert QuoteSample("s", 0, 100.0, None, 100.1, None, 0.0, 0.0, "halted").spread_bps is None


def test_pnl_snapshot_total_and_components(ledger: Ledger) -> None:
    snap = PnlSnapshot(5, {"spread": 3.0, "inventory": -1.0, "fees": -0.5})
    assert snap.total_quote == pytest.approx(1.5)
    ledger.record_pnl("run-1", snap)
    ledger.close()
    assert rows(ledger.path, "SELECT total_quote, components_json FROM pnl") == [
        (1.5, '{"fees": -0.5, "inventory": -1.0, "spread": 3.0}')
    ]


def test_batching_commits_by_rows_and_interval(tmp_path: Path) -> None:
    now = [0]
    led = Ledger(tmp_path / "b.sqlite", LedgerConfig(commit_rows=3, commit_interval_ms=100), clock_ns=lambda: now[0])
    led.start_run("r", 0)
    count = "SELECT COUNT(*) FROM order_events"
    led.record_command("r", place("a"), 1)
    led.record_command("r", place("b"), 2)
    assert led.pending_rows == 2 and rows(led.path, count) == [(0,)]  # another reader sees nothing yet
    led.record_command("r", place("c"), 3)
    assert led.pending_rows == 0 and rows(led.path, count) == [(3,)]
    led.record_command("r", place("d"), 4)
    led.flush()  # interval not due
    assert rows(led.path, count) == [(3,)]
    now[0] = 100_000_000
    led.flush()
    assert rows(led.path, count) == [(4,)]
    led.record_command("r", place("e"), 5)
    led.end_run("r", 9, {"open_orders_at_exit": 0})
    assert rows(led.path, count) == [(5,)]
    assert rows(led.path, "SELECT ended_ns, summary_json FROM runs") == [(9, '{"open_orders_at_exit": 0}')]
    led.close()
    led.close()  # idempotent
    with pytest.raises(LedgerError):
        led.record_command("r", place("f"), 6)


def test_recover_reports_last_run_and_whether_it_ended(tmp_path: Path) -> None:
    path = tmp_path / "r.sqlite"
    with Ledger(path) as led:
        assert led.recover().last_run_id is None
        led.start_run("r1", 1)
        led.end_run("r1", 2)
        led.start_run("r2", 3)
        state = led.recover()
    assert (state.last_run_id, state.last_run_ended_cleanly) == ("r2", False)


CRASH_SCRIPT = textwrap.dedent(
    """
    import os, sys
    from bot.config import LedgerConfig
    from bot.domain import Instrument, InstrumentKind, Liquidity, OrderFilled, PlaceOrder, Side
    from bot.runtime.ledger import Ledger
    spot = Instrument("TOKEN/USDT", InstrumentKind.SPOT, "TOKEN", "USDT", 0.01, 1.0)
    led = Ledger(sys.argv[1], LedgerConfig(commit_rows=100_000, commit_interval_ms=60_000))
    led.start_run("crashy", 1, instruments=[spot])
    for i in range(200):
        led.record_command("crashy", PlaceOrder(spot.symbol, f"c{i}", Side.BUY, 100, 1), i)
        side = Side.BUY if i % 3 else Side.SELL
        led.record_fill("crashy", OrderFilled(spot.symbol, f"c{i}", f"f{i}", side, 100 + i, 1, 0.01,
                                              Liquidity.MAKER, 0, i, i))
    led.record_command("crashy", PlaceOrder(spot.symbol, "last", Side.SELL, 500, 1), 999)  # uncommitted
    os._exit(1)  # crash: no close, no flush, no atexit
    """
)


def test_recovery_after_crash_keeps_every_committed_fill(tmp_path: Path) -> None:
    path = tmp_path / "crash.sqlite"
    proc = subprocess.run([sys.executable, "-c", CRASH_SCRIPT, str(path)], capture_output=True, timeout=60)
    assert proc.returncode == 1, proc.stderr.decode()
    with Ledger(path) as led:
        state = led.recover()
        known = led.known_fills(("TOKEN/USDT", f"f{i}") for i in range(201))
    assert state.fill_count == 200
    assert known == {("TOKEN/USDT", f"f{i}") for i in range(200)}
    buys = sum(1 for i in range(200) if i % 3)
    assert state.positions_lots == {"TOKEN/USDT": buys - (200 - buys)}
    assert state.fees_quote == pytest.approx(2.0)
    assert (state.last_run_id, state.last_run_ended_cleanly) == ("crashy", False)
    # each fill committed the orders placed before it; the order after the last fill was not committed
    assert "last" not in state.open_client_ids
    assert state.open_client_ids == frozenset()


def test_ledger_observer_records_commands_and_events(tmp_path: Path) -> None:
    path = tmp_path / "obs.sqlite"
    led = Ledger(path, LedgerConfig(commit_interval_ms=60_000, commit_rows=100_000))
    led.start_run("r", 0, instruments=[SPOT])
    obs = LedgerObserver(led, "r")
    obs.on_command(place("q1"), 1)
    obs.on_event(OrderAccepted(SPOT.symbol, "q1", "v1", 2, 2), 2)
    obs.on_event(OrderCanceled(SPOT.symbol, "q1", "requested", 3, 3), 3)
    obs.on_event(fill("late", Side.BUY, 10_000, 1, client_id="q1"), 4)  # raced the cancel
    obs.on_batch(None, 4, 12.5)
    obs.close()
    assert rows(path, "SELECT kind FROM order_events ORDER BY id") == [("place",), ("accepted",), ("canceled",)]
    assert rows(path, "SELECT fill_id, tag FROM fills") == [("late", "quote")]  # tag found after the cancel
    led.close()


def test_recovery_can_be_scoped_to_one_venue(ledger: Ledger) -> None:
    ledger.record_fill("run-1", fill("f1", Side.BUY, 10_000, 4))  # on "mock"
    ledger.start_run("run-2", 2_000, venue="ccxt:bybit:testnet", instruments=[SPOT, PERP])
    ledger.record_fill("run-2", fill("f2", Side.SELL, 10_100, 1, client_id="c2"))
    assert ledger.recover().positions_lots == {SPOT.symbol: 3}  # every run
    mock = ledger.recover(venue="mock")
    assert mock.positions_lots == {SPOT.symbol: 4} and mock.last_run_id == "run-1"
    bybit = ledger.recover(venue="ccxt:bybit:testnet")
    assert bybit.positions_lots == {SPOT.symbol: -1}
    both = [(SPOT.symbol, "f1"), (SPOT.symbol, "f2")]
    assert ledger.known_fills(both, venue="ccxt:bybit:testnet") == {(SPOT.symbol, "f2")}
    assert ledger.known_fills(both, venue="mock") == {(SPOT.symbol, "f1")}
    assert ledger.recover(venue="elsewhere").fill_count == 0


def _big_ledger(path: Path, fills: int, orders: int) -> None:
    """A ledger with a long history in one venue session: `fills` fills of fully filled orders and
    `orders` more orders placed, accepted and canceled; the last two placed orders are still open."""
    with Ledger(path) as led:
        led.start_run("r", 0, venue="mock", instruments=[SPOT], session="s")
    db = sqlite3.connect(path)
    with db:
        db.executemany(
            "INSERT INTO fills (run_id, ts_venue_ns, ts_recv_ns, symbol, client_id, fill_id, side, price_ticks,"
            " size_lots, price_px, size_base, fee_quote, liquidity, leaves_lots, tag, venue, venue_session)"
            " VALUES ('r', ?, ?, ?, ?, ?, ?, 100, 1, 1.0, 0.5, 0.001, 'maker', 0, 'quote', 'mock', 's')",
            ((i, i, SPOT.symbol, f"r-q-f{i:08d}", f"F{i + 1}", "buy" if i % 2 else "sell") for i in range(fills)),
        )
        events = [(f"r-q-f{i:08d}", "place") for i in range(fills)]
        for i in range(orders):
            events += [(f"r-q-o{i:08d}", kind) for kind in ("place", "accepted", "canceled")]
        events += [("open-1", "place"), ("open-2", "place"), ("open-2", "accepted")]
        db.executemany(
            "INSERT INTO order_events (run_id, ts_ns, kind, symbol, client_id, tag, venue)"
            " VALUES ('r', 0, ?, 'TOKEN/USDT', ?, 'quote', 'mock')",
            ((kind, cid) for cid, kind in events),
        )
    db.close()


@pytest.mark.parametrize("scale", [1, 4])
def test_recovery_memory_does_not_grow_with_the_ledgers_history(tmp_path: Path, scale: int) -> None:
    """A restart reads the whole session's history: it must stream it, not hold it. Python's own
    allocations while recovering (tracemalloc's peak) stay under 256 KiB with 10k fills and 30k
    orders and with four times that; the old code held every fill id and client id in sets (a
    day's soak ledger, 125k fills and 1.3M order events: +145 MB of RSS at every restart)."""
    path = tmp_path / "big.sqlite"
    _big_ledger(path, fills=10_000 * scale, orders=10_000 * scale)
    with Ledger(path) as led:
        tracemalloc.start()
        try:
            state = led.recover("mock", "s")
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert peak < 256 * 1024, f"recovery allocated {peak / 1024:.0f} KiB at its peak"
        assert state.fill_count == 10_000 * scale
        assert state.positions_lots == {SPOT.symbol: 0}
        assert state.open_client_ids == {"open-1", "open-2"}
        assert state.tags_by_client_id == {"open-1": "quote", "open-2": "quote"}
        asked = [(SPOT.symbol, "F1"), (SPOT.symbol, f"F{10_000 * scale}"), (SPOT.symbol, "F0"), (PERP.symbol, "F1")]
        assert led.known_fills(asked, venue="mock", session="s") == set(asked[:2])
        assert led.known_fills(asked, venue="mock", session="other") == set()
