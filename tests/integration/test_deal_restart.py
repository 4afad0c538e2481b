"""A real restart of the deal (`mmbot run`'s composition root twice on one ledger, the default
config's deal on the in-process mock): the second run starts from the pool the first one left, not
from a fresh deposit, with the same reserves, share, fees and so the same LP delta (issue #15)."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

import bot.app
from bot.app import _run
from bot.config import load_settings
from bot.core.engine import Engine
from bot.core.lp import SimulatedPool


def settings(tmp_path: Path) -> Any:
    return load_settings(
        None,
        {
            "runtime": {"speed": 50.0},
            "metrics": {"port": 0, "status_push_ms": 100},
            "ledger": {"path": str(tmp_path / "ledger.sqlite")},
        },
    )


def pool_row(tmp_path: Path) -> dict[str, Any]:
    db = sqlite3.connect(tmp_path / "ledger.sqlite")
    (state_json,) = db.execute("SELECT state_json FROM deal_pool").fetchone()
    db.close()
    return dict(json.loads(state_json))


def test_the_pool_carries_over_a_restart_exactly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    engines: list[Engine] = []
    at_build: list[dict[str, Any]] = []
    build = bot.app.build_engine

    def capture(*args: Any, **kwargs: Any) -> Engine:
        engine = build(*args, **kwargs)
        assert isinstance(engine.p.lp, SimulatedPool)
        engines.append(engine)
        at_build.append(engine.p.lp.state().to_dict())
        return engine

    monkeypatch.setattr(bot.app, "build_engine", capture)
    cfg = settings(tmp_path)
    asyncio.run(_run(cfg, duration_s=2.5, run_id="first"))
    pool1 = engines[0].p.lp
    assert isinstance(pool1, SimulatedPool)
    assert pool1.swaps > 0 and pool1.arbs > 0  # the run traded the pool: there is something to carry
    saved = pool_row(tmp_path)
    assert saved == pool1.state().to_dict()  # the last state, the shutdown's swaps included

    summary = asyncio.run(_run(cfg, duration_s=2.5, run_id="second"))
    # the second engine was built on the first run's pool, exactly (== on every float); the trade
    # ids it had swapped are dropped: the in-process mock is a new exchange whose trade "7" is new
    carried = {k: v for k, v in saved.items() if k != "recent_trade_ids"}
    assert saved["recent_trade_ids"] and at_build[1]["recent_trade_ids"] == []
    assert {k: v for k, v in at_build[1].items() if k != "recent_trade_ids"} == carried
    assert at_build[1]["token_base"] != at_build[0]["token_base"]  # ...which is not a fresh deposit
    pool2 = engines[1].p.lp
    assert isinstance(pool2, SimulatedPool)
    x1, share = saved["token_base"], saved["share"]
    # its delta: our share of the token reserve, whatever it had moved to (not dex_pool_size / 2 / P)
    assert SimulatedPool.from_state(pool1.state()).delta_base(100.0) == share * x1
    # it went on trading from there: counts and fees only grow, nothing was re-applied or lost
    assert pool2.swaps > saved["swaps"] and pool2.fees_quote > saved["fees_quote"]
    assert pool_row(tmp_path) == pool2.state().to_dict()
    # the summary shows the pool as a venue of its own: its reserves, price and life-long flow
    shown = summary["pool"]
    assert shown["swaps"] == pool2.swaps and shown["fees_quote"] == pytest.approx(pool2.fees_quote)
    assert shown["our_token_base"] == pytest.approx(summary["lp_delta"], abs=1e-6)
    # its own price (between two marks the public flow moves a 2,000 USDT pool by several %)
    assert shown["price_px"] == pytest.approx(pool2.price_px) and shown["cex_px"] > 0
    db = sqlite3.connect(tmp_path / "ledger.sqlite")
    deposits = db.execute("SELECT run_id, quantity_base FROM deal_events WHERE kind = 'lp_deposited'").fetchall()
    starts = db.execute("SELECT run_id FROM deal_events WHERE kind = 'started'").fetchall()
    db.close()
    assert deposits == [("first", pytest.approx(10.0))] and starts == [("first",)]  # once, by the first run


def test_the_sale_is_sold_once_across_a_restart(tmp_path: Path) -> None:
    """The running bot sells the schedule's slice for the day and, restarted the same day on the
    same ledger, sells nothing more: 2 tokens to sell over 10 days (0.2 a day), the deal begun 20
    days ago so the whole of today's slice is due at once."""
    import datetime

    now = datetime.datetime.now(datetime.UTC)
    if (now.hour, now.minute) == (23, 59):  # the two runs must fall on one schedule day (00:00 UTC)
        pytest.skip("too close to 00:00 UTC: the second run would start a new day's slice")
    start = now.date() - datetime.timedelta(days=20)
    cfg = load_settings(
        None,
        {
            "runtime": {"speed": 50.0},
            "metrics": {"port": 0, "status_push_ms": 100},
            "ledger": {"path": str(tmp_path / "ledger.sqlite")},
            # deployed: 90/100 CEX asks + 1000/100 pool tokens = 10.9; 12.9 lent leaves 2 to sell
            "deal": {"start_date": start.isoformat(), "tokens_lent_base": 12.9, "sale_twap_days": 10.0},
        },
    )
    first = asyncio.run(_run(cfg, duration_s=6.0, run_id="first"))
    sale1 = first["sale"]
    assert sale1["total_base"] == pytest.approx(2.0) and sale1["slice_base_per_day"] == pytest.approx(0.2)
    assert sale1["session_sold_base"] == pytest.approx(0.2)  # today's slice, all of it, no more
    assert 99.0 < sale1["session_avg_px"] < 101.0  # passive sells near the mock's 100
    db = sqlite3.connect(tmp_path / "ledger.sqlite")
    sold = db.execute("SELECT SUM(quantity_base) FROM deal_events WHERE kind = 'sold'").fetchone()[0]
    tagged = db.execute("SELECT SUM(size_base), COUNT(*) FROM fills WHERE tag = 'sale'").fetchone()
    db.close()
    assert sold == pytest.approx(0.2) and tagged[0] == pytest.approx(0.2)  # each fill once, in both tables
    assert first["net_delta_in_band_pct"] > 90.0  # the perp covered what was sold

    second = asyncio.run(_run(cfg, duration_s=2.0, run_id="second"))
    assert second["sale"]["sold_base"] == pytest.approx(0.2)  # read back from the ledger
    assert second["sale"]["session_sold_base"] == 0.0  # today's slice was sold: nothing again
    db = sqlite3.connect(tmp_path / "ledger.sqlite")
    placed = db.execute(
        "SELECT COUNT(*) FROM order_events WHERE kind = 'place' AND tag = 'sale' AND run_id = 'second'"
    ).fetchone()[0]
    db.close()
    assert placed == 0
