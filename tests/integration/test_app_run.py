"""The composition root end to end: `mmbot run` on the in-process mock with the ledger, metrics and
status feed wired in, restart reconciliation, and the one-line failure on an unreachable venue."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from bot.app import _run, build_engine, build_venue
from bot.cli import main
from bot.config import ConfigError, load_settings
from bot.domain import Command, Instrument, InstrumentKind, OpenOrder, Side
from bot.runtime.ledger import Ledger
from bot.runtime.recovery import reconcile

SPOT = Instrument("TOKEN/USDT", InstrumentKind.SPOT, "TOKEN", "USDT", tick_size=0.01, lot_size=0.01)
PERP = Instrument("TOKEN/USDT:USDT", InstrumentKind.PERP, "TOKEN", "USDT", tick_size=0.01, lot_size=0.01)


def fast_settings(tmp_path: Path, **sections: dict[str, Any]) -> Any:
    overrides: dict[str, dict[str, Any]] = {
        "runtime": {"speed": 50.0},
        "metrics": {"port": 0, "status_push_ms": 100},
        "ledger": {"path": str(tmp_path / "ledger.sqlite")},
    }
    for name, values in sections.items():
        overrides.setdefault(name, {}).update(values)
    return load_settings(None, overrides)


def test_dry_run_records_every_fill_in_the_ledger_and_ends_the_run(tmp_path: Path) -> None:
    settings = fast_settings(tmp_path)
    summary = asyncio.run(_run(settings, duration_s=3.0, run_id="t1"))
    assert summary["fills"] > 0 and summary["hedges"] > 0
    assert summary["open_orders_at_exit"] == 0
    db = sqlite3.connect(tmp_path / "ledger.sqlite")
    tags = dict(db.execute("SELECT tag, COUNT(*) FROM fills GROUP BY tag").fetchall())
    assert tags.get("quote", 0) == summary["fills"]  # every quote fill once, none twice
    assert tags.get("hedge", 0) == summary["hedge_fills"]
    (ended,) = db.execute("SELECT ended_ns FROM runs WHERE run_id = 't1'").fetchone()
    assert ended is not None
    assert db.execute("SELECT COUNT(*) FROM quotes").fetchone()[0] > 0  # status feed samples
    # and the report renders from that ledger
    out = tmp_path / "report"
    assert main(["report", "--ledger", str(tmp_path / "ledger.sqlite"), "--out", str(out)]) == 0
    assert {"pnl.png", "inventory.png", "index.html"} <= {p.name for p in out.iterdir()}
    assert all((out / name).stat().st_size > 1000 for name in ("pnl.png", "inventory.png"))


class FakeVenue:
    """Just enough of a venue for reconciliation: positions and open orders, records commands."""

    name = "fake"

    def __init__(self, positions: dict[str, int], orders: list[OpenOrder]) -> None:
        self._positions = positions
        self._orders = orders
        self.sent: list[Command] = []

    async def positions(self) -> dict[str, int]:
        return dict(self._positions)

    async def open_orders(self) -> list[OpenOrder]:
        return list(self._orders)

    async def execute(self, command: Command) -> None:
        self.sent.append(command)


def test_reconcile_cancels_orphans_adopts_venue_positions_and_reports_ledger_mismatch(tmp_path: Path) -> None:
    settings = load_settings(None, {"ledger": {"path": str(tmp_path / "l.sqlite")}})
    engine = build_engine(settings, SPOT, PERP, start_ns=0)
    orphan = OpenOrder(SPOT.symbol, "q-old-7", Side.BUY, 9_990, 100, venue_order_id="v7")
    venue = FakeVenue({SPOT.symbol: 300, PERP.symbol: -250}, [orphan])
    with Ledger(tmp_path / "l.sqlite") as ledger:
        state = ledger.recover(venue="fake")  # an empty ledger: it knows no position
    fields = asyncio.run(reconcile(engine, venue, state))  # type: ignore[arg-type]
    assert [c.client_id for c in venue.sent] == ["q-old-7"]  # type: ignore[attr-defined]
    assert fields["orphans_canceled"] == 1
    assert fields["mismatches"] == {
        SPOT.symbol: {"ledger_lots": 0, "venue_lots": 300},
        PERP.symbol: {"ledger_lots": 0, "venue_lots": -250},
    }
    # positions wait for a mid to be entered at; the venue's numbers are what the engine will hold
    assert fields["positions_lots"] == {SPOT.symbol: 300, PERP.symbol: -250}


def test_unreachable_venue_is_one_line_and_exit_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ledger = str(tmp_path / "l.sqlite")
    rc = main(["run", "--venue", "ws://127.0.0.1:9", "--duration", "1s", "--ledger", ledger, "--log-format", "json"])
    err = capsys.readouterr().err
    assert rc == 1
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("mmbot:")]
    assert len(lines) == 1 and "ws://127.0.0.1:9" in lines[0]


def test_ccxt_venue_refuses_symbols_that_differ_from_the_engine() -> None:
    settings = load_settings(
        "config/bybit-testnet.toml", {"market": {"spot_symbol": "ETH/USDT"}, "metrics": {"enabled": False}}
    )
    with pytest.raises(ConfigError, match=r"market\.spot_symbol"):
        build_venue(settings)


def test_ccxt_testnet_without_keys_is_a_config_error_before_any_network(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for key in ("API_KEY", "API_SECRET", "API_PASSWORD"):
        monkeypatch.delenv(f"MMBOT__CCXT__{key}", raising=False)
    rc = main(["run", "--config", "config/bybit-testnet.toml", "--duration", "1s"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "api_key" in err[0].lower()
