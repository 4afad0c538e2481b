"""`mmbot soak` soaks the config's shape: the embedded default on its four venues (spot on main,
second and third, the perp on perpx), each a mock exchange injecting every fault, with restarts;
a single-venue config on one exchange as before.

The short multi-venue soak itself is `test_soak_short.py` (its fixture soaks the embedded default);
here: that every check was made on every venue, that a single-venue config still soaks on one
exchange, and that the checker catches an engine whose one venue's trouble pulls the others' quotes
(`quotes_elsewhere`), a check that cannot fail being a defect."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from bot.config import load_settings
from bot.core.engine import Engine
from bot.domain import Command, FeedStatus
from bot.sim.soak import run_soak
from bot.venues.mock.faults import EPISODES, FAULT_NAMES

SEED = 1
SPOT_VENUES = ("main", "second", "third")
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def multi_soak() -> dict[str, Any]:
    return run_soak(load_settings(), hours=0.1, faults=FAULT_NAMES, seed=SEED, restarts=2).report()


def test_the_default_soaks_on_all_four_venues_with_every_fault_on_each(multi_soak: dict[str, Any]) -> None:
    assert multi_soak["venues"] == [*SPOT_VENUES, "perpx"]
    assert multi_soak["violation_counts"] == {}
    for venue, fired in multi_soak["faults_by_venue"].items():
        assert sum(fired[name] for name in EPISODES) > 0, venue  # episodes on every venue, not only the main
    assert multi_soak["restarts"]["restarts"] == 2 and multi_soak["checks"]["restart_reconcile"] == 3


def test_every_check_was_made_on_every_venue(multi_soak: dict[str, Any]) -> None:
    by_venue = multi_soak["checks_by_venue"]
    for venue in SPOT_VENUES:
        checks = by_venue[venue]
        for name in ("fill_accounting", "position_reconcile", "stale_quote"):
            assert checks.get(name, 0) >= 1, (venue, name)
        assert multi_soak["bot_by_venue"][venue]["fills"] > 0, venue
    assert by_venue["perpx"]["fill_accounting"] > 0 and by_venue["perpx"]["position_reconcile"] > 0  # the hedges
    assert multi_soak["checks"].get("quotes_elsewhere", 0) >= 1  # one venue faulted while another was quiet
    assert multi_soak["worst_s"]["quotes_elsewhere"] <= multi_soak["limits_s"]["cancel_bound"]


def test_a_single_venue_config_soaks_on_one_exchange() -> None:
    settings = load_settings(ROOT / "config" / "mock-btcusdt.toml")
    report = run_soak(settings, hours=0.1, faults=FAULT_NAMES, seed=SEED, restarts=1).report()
    assert report["violation_counts"] == {}
    assert report["venues"] == [] and report["faults_by_venue"] == {}
    assert set(report["checks_by_venue"]) == {"default"}
    assert report["checks"]["fill_accounting"] > 0 and report["checks"]["restart_reconcile"] == 2


def test_an_engine_whose_one_venue_outage_pulls_every_venue_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """A disconnect on one venue handled as a disconnect of every venue: the others wait for a
    snapshot they were never going to need, and show no quote while their own feeds are fine. The
    outages are made 8 s long (the config's episode length), so what a bug costs is well past the
    cancel bound; the same soak without the bug is clean."""
    original = Engine._on_feed_status

    def everywhere(self: Engine, event: FeedStatus, now_ns: int) -> list[Command]:
        out = original(self, event, now_ns)
        if not event.connected:
            for q in self.quoters:
                if q.venue != event.venue:
                    out += original(self, dataclasses.replace(event, venue=q.venue), now_ns)
        return out

    settings = load_settings(None, {"mock": {"faults": {"disconnect_ms": 8000}}})
    clean = run_soak(settings, hours=0.05, faults=("disconnect",), seed=SEED).report()
    assert clean["violation_counts"] == {} and clean["checks"]["quotes_elsewhere"] >= 1
    monkeypatch.setattr(Engine, "_on_feed_status", everywhere)
    report = run_soak(settings, hours=0.05, faults=("disconnect",), seed=SEED).report()
    assert report["violation_counts"].get("quotes_elsewhere", 0) >= 1, report["violation_counts"]
    first = next(v for v in report["violations"] if v["invariant"] == "quotes_elsewhere")
    assert first["details"]["venue"] not in first["details"]["faulted"]
