"""The deal's shape on the multi-venue mock: three spot venues and a perp venue on one fair value, the
real engine (`bot.app.build_engine` on the embedded default, config/default.toml) on simulated time (`bot.sim.driver`).

Every venue fills, the book's net delta stays in the hedge band, each venue's obligation is reported;
a fill on one venue moves the reservation price quoted on the others; killing one venue's feed pulls
that venue's quotes within the stale limit while the others keep quoting, and nothing is left open on
any venue at exit."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from conftest import LogSink

from bot.app import _run, build_engine, market_specs
from bot.config import Settings, load_settings
from bot.core.engine import Engine
from bot.domain import Command, Event, Instrument, InstrumentKind, PlaceOrder
from bot.sim.driver import SimResult, run_simulation
from bot.venues.mock.venues import MockVenues

NS_PER_S = 1_000_000_000
START_NS = 1_700_000_000 * NS_PER_S
SPOT_VENUES = ("main", "second", "third")
SPOT = Instrument("TOKEN/USDT", InstrumentKind.SPOT, "TOKEN", "USDT", tick_size=0.01, lot_size=0.01)
CONFIG = None  # the embedded default (config/default.toml) is the deal's shape


def build(settings: Settings) -> tuple[MockVenues, Engine]:
    group = MockVenues(settings.mock, settings.market.venues, start_ns=START_NS)
    market = settings.market
    spots = {m.venue: group.exchanges[m.venue].instruments[market.spot_symbol] for m in market.quote_on}
    perp = group.exchanges[market.hedge_venue].instruments[market.perp_symbol]
    engine = build_engine(settings, spots["main"], perp, START_NS, venue_name="mock", spot_venues=spots)
    return group, engine


class Run:
    def __init__(self, group: MockVenues, engine: Engine, result: SimResult, notes: list[Any], sent: list[Any]):
        self.group, self.engine, self.result = group, engine, result
        self.notes = notes  # (t, name, fields)
        self.sent = sent  # (t, command)

    @property
    def summary(self) -> dict[str, Any]:
        return self.result.summary


def simulate(seconds: float, on_time: dict[int, Any] | None = None) -> Run:
    settings = load_settings(CONFIG)
    assert [m.venue for m in settings.market.quote_on] == list(SPOT_VENUES)  # the deal's shape
    group, engine = build(settings)
    notes: list[tuple[int, str, dict[str, Any]]] = []
    sent: list[tuple[int, Command]] = []
    now = [START_NS]
    pending = dict(on_time or {})

    def on_step(t: int, _events: list[Event], commands: list[Command]) -> None:
        now[0] = t
        sent.extend((t, c) for c in commands)
        for at in [at for at in pending if t >= START_NS + at * NS_PER_S]:
            pending.pop(at)(group, engine)

    result = run_simulation(
        group,
        engine,
        start_ns=START_NS,
        duration_ns=int(seconds * NS_PER_S),
        on_step=on_step,
        on_note=lambda name, fields: notes.append((now[0], name, fields)),
    )
    return Run(group, engine, result, notes, sent)


def test_the_deal_dry_run_quotes_three_venues_hedges_on_the_perp_venue_and_every_venue_fills() -> None:
    run = simulate(300)
    s = run.summary
    venues = s["venues"]
    for venue in SPOT_VENUES:
        assert venues[venue]["fills"] > 0, venue
        assert venues[venue]["obligations"]["all_pct"] is not None, venue
    assert venues["perpx"]["hedge"]["fills"] > 0
    assert s["net_delta_in_band_pct"] >= 99.0
    assert s["open_orders_at_exit"] == 0
    assert all(not ex.open_orders() for ex in run.group.exchanges.values())
    # every order.filled line names its venue; the fills add up to the summary's
    filled = [f for _, n, f in run.notes if n == "order.filled"]
    assert {f["venue"] for f in filled} == set(SPOT_VENUES)
    assert len(filled) == s["fills"] == sum(venues[v]["fills"] for v in SPOT_VENUES)
    # the positions the engine holds are the venues' own, venue by venue
    for venue in SPOT_VENUES:
        ours = run.engine.portfolio.position_lots(f"TOKEN/USDT@{venue}")
        assert ours == run.group.exchanges[venue].positions().get("TOKEN/USDT", 0), venue


def test_a_fill_on_one_venue_moves_the_reservation_price_quoted_on_the_others() -> None:
    run = simulate(120)
    assert reservation_moves_elsewhere([(name, f) for _, name, f in run.notes]) > 0


def test_a_dead_spot_feed_pulls_that_venue_only_and_nothing_is_left_open() -> None:
    settings = load_settings(CONFIG)
    stale_ns = settings.runtime.stale_feed_ms * 1_000_000
    timer_ns = settings.runtime.timer_ms * 1_000_000
    kill_at_s, kill_for_s = 60, 30

    def kill(group: MockVenues, engine: Engine) -> None:
        group.exchanges["second"].faults.trigger("stale", kill_for_s * 1000)

    live: dict[str, int] = {}

    def look(group: MockVenues, engine: Engine) -> None:  # once the stale limit has passed, feed still dead
        live.update({q.venue: len(q.orders.live_orders(tag="quote")) for q in engine.quoters})

    look_at_s = kill_at_s + stale_ns // NS_PER_S + 1
    run = simulate(150, on_time={kill_at_s: kill, look_at_s: look})
    killed_ns = START_NS + kill_at_s * NS_PER_S
    stale = [(t, f) for t, n, f in run.notes if n == "feed.stale" and t >= killed_ns]
    assert stale and {f["venue"] for _, f in stale} == {"second"}
    t_stale = stale[0][0]
    # pulled within the stale limit (plus one timer period and the feed latency) of the last book update
    assert t_stale - killed_ns <= stale_ns + 2 * timer_ns
    assert live["second"] == 0 and live["main"] > 0 and live["third"] > 0
    # while "second" is silent, nothing is placed there and the other venues keep quoting
    window = [(t, c) for t, c in run.sent if t_stale < t < killed_ns + kill_for_s * NS_PER_S]
    placed = {c.venue for _, c in window if isinstance(c, PlaceOrder) and c.tag == "quote"}
    assert "second" not in placed and {"main", "third"} <= placed
    # it comes back after the feed does, and at exit nothing is open anywhere
    assert any(n == "feed.fresh" and f.get("venue") == "second" for _, n, f in run.notes)
    assert run.summary["open_orders_at_exit"] == 0
    assert all(not ex.open_orders() for ex in run.group.exchanges.values())


def reservation_moves_elsewhere(notes: list[tuple[str, dict[str, Any]]]) -> int:
    """How many requotes after a fill, on a venue other than the fill's, moved that venue's
    reservation price (the aggregate inventory moved it)."""
    last_rp: dict[str, float] = {}
    moved = 0
    fill_venue: str | None = None
    for name, f in notes:
        if name == "order.filled":
            fill_venue = f["venue"]
        elif name == "quote.updated":
            venue = f["venue"]
            elsewhere = fill_venue is not None and venue != fill_venue and venue in last_rp
            if elsewhere and f["trigger"] == "fill" and f["reservation_price"] != last_rp[venue]:
                moved += 1
            last_rp[venue] = f["reservation_price"]
    return moved


def test_mmbot_run_with_no_config_quotes_the_deals_shape(tmp_path: Path, log_sink: LogSink) -> None:
    """`mmbot run` with no arguments, through the composition root (the runner, the multi-venue mock
    on its progress clock, ledger): three spot venues and the perp venue, every venue fills, the net
    delta in band, each venue's obligation reported, a fill on one venue moves the others' quotes."""
    overrides = {"metrics": {"enabled": False}, "ledger": {"path": str(tmp_path / "ledger.sqlite")}}
    settings = load_settings(None, {**overrides, "runtime": {"speed": 30.0}})
    assert [m.venue for m in settings.market.quote_on] == list(SPOT_VENUES) and settings.multi_venue
    summary = asyncio.run(_run(settings, duration_s=4.0, run_id="deal"))  # 120 simulated seconds
    assert 120.0 <= summary["duration_s"] <= 120.5  # simulated time, however long the machine took
    venues = summary["venues"]
    assert set(venues) == {*SPOT_VENUES, "perpx"}
    for venue in SPOT_VENUES:
        assert venues[venue]["fills"] > 0, venue
        assert venues[venue]["obligations"]["all_pct"] is not None, venue
    assert venues["perpx"]["hedge"]["fills"] > 0
    assert summary["net_delta_in_band_pct"] >= 99.0
    assert summary["open_orders_at_exit"] == 0
    notes = [(r["event"], r) for r in log_sink.records if r.get("event") in ("order.filled", "quote.updated")]
    assert {f["venue"] for n, f in notes if n == "order.filled"} == set(SPOT_VENUES)
    assert reservation_moves_elsewhere(notes) > 0


def test_each_venue_obligation_is_its_deal_venue_unless_risk_names_one() -> None:
    settings = load_settings(CONFIG)
    specs = {spec.venue: spec.risk.obligation for spec in market_specs(settings, dict.fromkeys(SPOT_VENUES, SPOT))}
    deal = {v.name: v for v in settings.deal.venues}
    for venue in SPOT_VENUES:
        ob = specs[venue]
        assert ob is not None and ob.venue == venue
        assert ob.min_depth_quote == max(deal[venue].bid_depth_quote, deal[venue].ask_depth_quote)
        assert ob.max_spread_bps == pytest.approx(deal[venue].max_spread_pct * 100)
    assert specs["main"].min_depth_quote == 2 * specs["second"].min_depth_quote  # the main platform's is larger
    own = {"max_spread_bps": 7.0, "depth_band_pct": 1.0, "min_depth_quote": 5.0}
    named = load_settings(CONFIG, {"risk": {"obligations": {"second": own}}})
    second = {s.venue: s.risk.obligation for s in market_specs(named, dict.fromkeys(SPOT_VENUES, SPOT))}["second"]
    assert second is not None and (second.max_spread_bps, second.min_depth_quote) == (7.0, 5.0)
