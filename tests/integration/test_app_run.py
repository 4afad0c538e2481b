"""The composition root end to end: `mmbot run` on the in-process mock with the ledger, metrics and
status feed wired in, restart reconciliation, and the one-line failure on an unreachable venue."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bot.app import _run, build_venue
from bot.cli import main
from bot.config import ConfigError, load_settings
from bot.domain import Instrument, InstrumentKind

ROOT = Path(__file__).resolve().parents[2]


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


def test_the_venue_is_connected_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The composition root connects (a failure there is one line); the runner must not connect again:
    for ccxt a second connect re-fetches the balance and rebuilds the paper executions."""
    settings = fast_settings(tmp_path, metrics={"enabled": False}, ledger={"path": ""})
    venue, clock_ns = build_venue(settings)
    connects: list[None] = []
    connect = venue.connect

    async def counted_connect() -> None:
        connects.append(None)
        await connect()

    monkeypatch.setattr(venue, "connect", counted_connect)
    monkeypatch.setattr("bot.app.build_venue", lambda settings: (venue, clock_ns))
    asyncio.run(_run(settings, duration_s=0.2, run_id="once"))
    assert len(connects) == 1


def test_a_closed_log_pipe_does_not_stop_a_clean_shutdown(tmp_path: Path) -> None:
    """`mmbot run | head -1`: the reader leaves, the bot must still cancel everything and exit 0."""
    cmd = [sys.executable, "-m", "bot.cli", "run", "--duration", "3s", "--ledger", "", "--log-format", "json"]
    env = {**os.environ, "MMBOT__RUNTIME__SPEED": "20", "MMBOT__METRICS__ENABLED": "false"}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=ROOT)
    assert proc.stdout is not None and proc.stderr is not None
    for line in proc.stdout:  # read until the session is trading, then the reader goes away
        if b'"order.placed"' in line:
            break
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 0, err  # exit 1 would mean orders were left open
    assert "Traceback" not in err


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


class _NoAnswerVenue:
    """Connects, lists our markets, then fails when asked for our orders (a venue down mid-start)."""

    name = "flaky"

    def __init__(self) -> None:
        self.closed = False
        self.instruments = {
            "TOKEN/USDT": Instrument("TOKEN/USDT", InstrumentKind.SPOT, "TOKEN", "USDT", 0.01, 0.01),
        }

    async def connect(self) -> None:
        return None

    async def open_orders(self) -> list[object]:
        raise ConnectionResetError("peer went away")

    async def positions(self) -> dict[str, int]:
        raise ConnectionResetError("peer went away")

    async def close(self) -> None:
        self.closed = True


def test_a_venue_failing_during_reconciliation_is_one_line_and_exit_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    venue = _NoAnswerVenue()
    monkeypatch.setattr("bot.app.build_venue", lambda settings: (venue, lambda: 0))
    rc = main(["run", "--venue", "ws://127.0.0.1:9", "--duration", "1s", "--ledger", str(tmp_path / "l.sqlite")])
    err = capsys.readouterr().err
    assert rc == 1 and "Traceback" not in err
    assert [line for line in err.splitlines() if line.startswith("mmbot:")] == [
        "mmbot: venue flaky: reconciliation failed: ConnectionResetError: peer went away"
    ]
    assert venue.closed
