"""`mmbot report` on ledgers built in the test with the Ledger API."""

from __future__ import annotations

import argparse
import base64
import math
import random
import re
import sqlite3
from pathlib import Path

import pytest

from bot.config import LedgerConfig
from bot.domain import Instrument, InstrumentKind, Liquidity, OrderFilled, PlaceOrder, Side
from bot.runtime.ledger import Ledger, PnlSnapshot, QuoteSample
from bot.runtime.report import build_report, cmd_report, load_run, open_read_only

SPOT = Instrument("TOKEN/USDT", InstrumentKind.SPOT, "TOKEN", "USDT", tick_size=0.01, lot_size=0.1)
PERP = Instrument("TOKEN/USDT:USDT", InstrumentKind.PERP, "TOKEN", "USDT", tick_size=0.01, lot_size=0.1)
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
T0 = 1_763_700_000_000_000_000  # epoch ns
S = 1_000_000_000


def build_run(led: Ledger, run_id: str, minutes: int = 10, seed: int = 3, t0: int = T0) -> dict[str, int]:
    """A small synthetic session: a random-walk mid, quotes around a skewed reservation, some fills
    hedged on the perp, a risk state that widens when inventory grows, PnL snapshots every 10 s."""
    rng = random.Random(seed)
    led.start_run(run_id, t0, venue="mock", instruments=[SPOT, PERP])
    mid, inv_lots, perp_lots, n_fill = 100.0, 0, 0, 0
    spread_pnl = 0.0
    for sec in range(minutes * 60):
        now = t0 + sec * S
        mid += rng.gauss(0, 0.03)
        state = "widened" if abs(inv_lots) >= 30 else "normal"
        half = 0.05 * (2.0 if state == "widened" else 1.0)
        reservation = mid - inv_lots * SPOT.lot_size * 0.01
        bid, ask = reservation - half, reservation + half
        led.record_quote(
            run_id,
            QuoteSample(
                SPOT.symbol, now, mid, bid, ask, reservation, inv_lots * 0.1, (inv_lots + perp_lots) * 0.1, state
            ),
        )
        if rng.random() < 0.08:  # a taker hits us
            side = Side.BUY if rng.random() < 0.5 else Side.SELL
            px = bid if side is Side.BUY else ask
            n_fill += 1
            cid = f"{run_id}-q{n_fill}"
            led.record_command(run_id, PlaceOrder(SPOT.symbol, cid, side, SPOT.ticks_floor(px), 10, tag="quote"), now)
            led.record_fill(
                run_id,
                OrderFilled(
                    SPOT.symbol,
                    cid,
                    f"{run_id}-f{n_fill}",
                    side,
                    SPOT.ticks(px),
                    10,
                    0.001,
                    Liquidity.MAKER,
                    0,
                    now,
                    now,
                ),
            )
            inv_lots += 10 * side.sign
            spread_pnl += half
            hedge_side = side.opposite
            hid = f"{run_id}-h{n_fill}"
            led.record_command(
                run_id, PlaceOrder(PERP.symbol, hid, hedge_side, 0, 10, tag="hedge"), now, reason="delta"
            )
            led.record_fill(
                run_id,
                OrderFilled(
                    PERP.symbol,
                    hid,
                    f"{run_id}-p{n_fill}",
                    hedge_side,
                    PERP.ticks(mid),
                    10,
                    0.002,
                    Liquidity.TAKER,
                    0,
                    now + S // 10,
                    now + S // 10,
                ),
            )
            perp_lots += 10 * hedge_side.sign
        if sec % 10 == 0:
            led.record_pnl(
                run_id,
                PnlSnapshot(now, {"spread": spread_pnl, "inventory": rng.gauss(0, 0.2), "fees": -0.003 * n_fill}),
            )
    led.end_run(run_id, t0 + minutes * 60 * S, {"open_orders_at_exit": 0, "fills": n_fill})
    return {"fills": n_fill, "spot_lots": inv_lots, "perp_lots": perp_lots}


@pytest.fixture
def ledger_path(tmp_path: Path) -> Path:
    return tmp_path / "var" / "ledger.sqlite"


def test_report_writes_self_contained_html_and_pngs(ledger_path: Path, tmp_path: Path) -> None:
    with Ledger(ledger_path, LedgerConfig(quote_sample_ms=1000)) as led:
        stats = build_run(led, "run-a")
    out = tmp_path / "report"
    index = build_report(ledger_path, out)
    assert index == out / "index.html"
    pngs = sorted(p.name for p in out.glob("*.png"))
    assert pngs == ["inventory.png", "pnl.png", "price.png", "spread_risk.png"]
    text = index.read_text()
    embedded = re.findall(r"src='data:image/png;base64,([A-Za-z0-9+/=]+)'", text)
    assert len(embedded) == 4
    assert all(base64.b64decode(b).startswith(PNG_MAGIC) for b in embedded)
    assert sorted(base64.b64decode(b) for b in embedded) == sorted((out / p).read_bytes() for p in pngs)
    assert "http://" not in text and "https://" not in text  # nothing fetched from outside
    assert "run-a" in text and "open_orders_at_exit" in text
    assert stats["fills"] > 10
    assert f"<td>TOKEN/USDT</td><td>{stats['fills']}</td>" in text


def test_load_run_positions_continue_across_runs(ledger_path: Path) -> None:
    with Ledger(ledger_path, LedgerConfig(quote_sample_ms=0)) as led:
        first = build_run(led, "run-a", minutes=2, seed=1)
        second = build_run(led, "run-b", minutes=2, seed=2, t0=T0 + 3600 * S)
    db = open_read_only(ledger_path)
    data = load_run(db, "run-b")
    db.close()
    assert data.t0_ns == T0 + 3600 * S
    last_spot = [f for f in data.fills if f["symbol"] == SPOT.symbol][-1]
    assert last_spot["position_base"] == pytest.approx((first["spot_lots"] + second["spot_lots"]) * SPOT.lot_size)
    assert all(f["run_id"] == "run-b" for f in data.fills)
    q = data.quotes[SPOT.symbol]
    assert len(q["t_s"]) == 120 and q["t_s"][0] == 0.0 and q["t_s"][-1] == 119.0
    assert set(q["risk_state"]) <= {"normal", "widened"}
    assert math.isclose(q["spread_bps"][0], (q["ask_px"][0] - q["bid_px"][0]) / q["mid_px"][0] * 1e4)
    assert data.pnl["total"][-1] == pytest.approx(sum(data.pnl[c][-1] for c in ("spread", "inventory", "fees")))


def test_report_picks_the_latest_run_with_data(ledger_path: Path, tmp_path: Path) -> None:
    with Ledger(ledger_path) as led:
        build_run(led, "run-with-data", minutes=1)
        led.start_run("run-empty", T0 + 3600 * S)  # started, crashed before quoting
    text = build_report(ledger_path, tmp_path / "r").read_text()
    assert "report: run run-with-data" in text
    assert "run-empty" in text  # still listed among all runs


def test_report_on_a_run_without_data_still_renders(ledger_path: Path, tmp_path: Path) -> None:
    with Ledger(ledger_path) as led:
        led.start_run("lonely", T0)
    index = build_report(ledger_path, tmp_path / "r")
    assert len(list((tmp_path / "r").glob("*.png"))) == 4
    assert "not recorded" in index.read_text()


def test_report_reads_a_ledger_while_it_is_being_written(ledger_path: Path, tmp_path: Path) -> None:
    led = Ledger(ledger_path)
    build_run(led, "live", minutes=1)
    led.record_quote("live", QuoteSample(SPOT.symbol, T0 + 999 * S, 100.0, 99.9, 100.1, 100.0, 0, 0, "normal"))
    build_report(ledger_path, tmp_path / "r")  # read-only, does not block or break the writer
    led.record_pnl("live", PnlSnapshot(T0 + 1000 * S, {"spread": 1.0}))
    led.close()
    with sqlite3.connect(ledger_path) as db:
        assert db.execute("SELECT COUNT(*) FROM pnl WHERE ts_ns = ?", (T0 + 1000 * S,)).fetchone() == (1,)


def test_cmd_report_errors_and_success(ledger_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = argparse.Namespace(ledger=str(tmp_path / "nope.sqlite"), out=str(tmp_path / "r"))
    assert cmd_report(missing) == 1
    assert capsys.readouterr().err.startswith("mmbot report: no ledger at")
    assert not (tmp_path / "nope.sqlite").exists()  # read-only: never creates a ledger
    Ledger(ledger_path).close()  # a ledger with no runs
    assert cmd_report(argparse.Namespace(ledger=str(ledger_path), out=str(tmp_path / "r"))) == 1
    assert "no runs" in capsys.readouterr().err
    with Ledger(ledger_path) as led:
        build_run(led, "run-a", minutes=1)
    assert cmd_report(argparse.Namespace(ledger=str(ledger_path), out=str(tmp_path / "r"))) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "r" / "index.html")


def test_cmd_report_one_line_errors_for_bad_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"this is not a database" * 100)
    assert cmd_report(argparse.Namespace(ledger=str(junk), out=str(tmp_path / "r"))) == 1
    assert "not a readable ledger" in capsys.readouterr().err
    ledger_path = tmp_path / "l.sqlite"
    with Ledger(ledger_path) as led:
        led.start_run("r", T0)
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    assert cmd_report(argparse.Namespace(ledger=str(ledger_path), out=str(blocker / "sub"))) == 1
    assert capsys.readouterr().err.startswith("mmbot report: cannot write the report")


def test_report_falls_back_to_immutable_on_read_only_media(
    ledger_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a read-only mount SQLite cannot create a WAL database's -shm file and refuses a plain
    `mode=ro` open (seen in Docker with a `:ro` volume); tests run as root, so simulate that refusal."""
    with Ledger(ledger_path) as led:
        build_run(led, "run-ro", minutes=1)
    real_connect = sqlite3.connect
    uris: list[str] = []

    def connect(database: str, **kwargs: object) -> sqlite3.Connection:
        uris.append(database)
        if "immutable=1" not in database:
            raise sqlite3.OperationalError("unable to open database file")
        return real_connect(database, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr("bot.runtime.report.sqlite3.connect", connect)
    text = build_report(ledger_path, tmp_path / "r").read_text()
    assert "report: run run-ro" in text
    assert uris[-1].endswith("?mode=ro&immutable=1")


def test_report_lists_the_deal_events(ledger_path: Path, tmp_path: Path) -> None:
    from bot.core.deal import DealEvent

    with Ledger(ledger_path) as led:
        build_run(led, "r1", minutes=1)
        led.record_deal_event("r1", DealEvent("exercised", T0, 10.0, 110.0, strike_px=90.0, amount_quote=200.0))
        led.record_deal_event("r1", DealEvent("loan_returned", T0 + 1, 300.0, 110.0))
    text = build_report(ledger_path, tmp_path / "r").read_text()
    assert "<h2>Deal events</h2>" in text
    assert "exercised" in text and "loan_returned" in text and "200.0000" in text
