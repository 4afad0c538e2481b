"""Chaos on the deal's shape: every fault the mock can inject (the soak's profile,
`bot.sim.soak_setup.fault_config`), on all four venues of the embedded default at once, the real
engine on the offline driver. Checked venue by venue, after every step:

- fill accounting: the engine's position on each market (`symbol@venue`) equals the sum of the
  distinct fills that venue delivered (duplicates dropped, none lost, none booked on another venue);
- stale quotes: no quote of ours stays open on a venue whose book has been silent for longer than the
  stale limit plus a cancel bound, counted from when the venue is reachable again;

and at the end: each venue's position equals the engine's (spot and perp), nothing is open on any
venue, the net delta was in band >= 99 % of the time, every spot venue's obligation is reported.

Seeds 1 and 2; nothing here was tuned on them (the engine, the default config and the fault rates
are the ones `mmbot run` and `mmbot soak` use)."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import pytest

from bot.app import build_engine
from bot.config import load_settings
from bot.domain import BookDelta, BookSnapshot, Command, Event, FeedStatus, OrderFilled, market_key
from bot.sim.driver import deliver_until, run_simulation
from bot.sim.soak_setup import fault_config
from bot.venues.mock.faults import EPISODES, FAULT_NAMES
from bot.venues.mock.venues import MockVenues

NS_PER_S = 1_000_000_000
START_NS = 1_700_000_000 * NS_PER_S
SIM_S = 300
CANCEL_BOUND_NS = 2 * NS_PER_S  # cancel latency under faults (delayed acks, 1 s), a timer, the round trip


class VenueChecks:
    """The per-venue invariants, fed after every driver step."""

    def __init__(self, group: MockVenues, engine: Any, spot_symbol: str, stale_ns: int) -> None:
        self.group, self.engine, self.spot_symbol, self.stale_ns = group, engine, spot_symbol, stale_ns
        self.seen: dict[str, set[str]] = defaultdict(set)  # market key -> fill ids delivered
        self.lots: dict[str, int] = defaultdict(int)  # market key -> Σ signed lots of distinct fills
        self.last_book_ns = dict.fromkeys(group.exchanges, START_NS)
        self.up_since_ns: dict[str, int | None] = dict.fromkeys(group.exchanges, START_NS)
        self.violations: list[tuple[float, str, dict[str, Any]]] = []
        self.checks: dict[str, int] = defaultdict(int)
        self._reported_stale: dict[str, int] = {}

    def violate(self, now_ns: int, name: str, **details: Any) -> None:
        self.violations.append(((now_ns - START_NS) / NS_PER_S, name, details))

    def on_step(self, now_ns: int, events: list[Event], _commands: list[Command]) -> None:
        for event in events:
            if isinstance(event, OrderFilled):
                key = market_key(event.venue, event.symbol)
                if event.fill_id not in self.seen[key]:
                    self.seen[key].add(event.fill_id)
                    self.lots[key] += event.side.sign * event.size_lots
                else:
                    self.checks["duplicate_fill"] += 1
            elif isinstance(event, BookDelta | BookSnapshot) and event.symbol == self.spot_symbol:
                self.last_book_ns[event.venue] = now_ns
            elif isinstance(event, FeedStatus):
                was_up = self.up_since_ns[event.venue] is not None
                if event.connected and not was_up:
                    self.up_since_ns[event.venue] = now_ns
                elif not event.connected:
                    self.up_since_ns[event.venue] = None
        positions = self.engine.portfolio.positions
        for key, lots in self.lots.items():
            self.checks["fill_accounting"] += 1
            if positions[key].lots != lots:
                self.violate(now_ns, "fill_accounting", market=key, booked=positions[key].lots, delivered=lots)
        self._check_stale(now_ns)

    def _check_stale(self, now_ns: int) -> None:
        for venue, exchange in self.group.exchanges.items():
            silent = now_ns - self.last_book_ns[venue]
            up_since = self.up_since_ns[venue]
            if silent <= self.stale_ns or up_since is None:
                continue
            self.checks["stale_quote"] += 1
            overrun = min(silent - self.stale_ns, now_ns - up_since)
            quotes = [o for o in exchange.open_orders() if o.symbol == self.spot_symbol]
            if quotes and overrun > CANCEL_BOUND_NS and self._reported_stale.get(venue) != self.last_book_ns[venue]:
                self._reported_stale[venue] = self.last_book_ns[venue]  # once per silent spell
                self.violate(now_ns, "stale_quote", venue=venue, silent_s=silent / NS_PER_S, open=len(quotes))


@pytest.mark.parametrize("seed", [1, 2])
def test_every_fault_on_every_venue_at_once_breaks_no_invariant(seed: int) -> None:
    settings = load_settings(None, {"ledger": {"path": ""}})
    market = settings.market
    mock = settings.mock.model_copy(update={"seed": seed, "faults": fault_config(settings.mock.faults, FAULT_NAMES)})
    group = MockVenues(mock, market.venues, start_ns=START_NS)
    spots = {m.venue: group.exchanges[m.venue].instruments[market.spot_symbol] for m in market.quote_on}
    perp = group.exchanges[market.hedge_venue].instruments[market.perp_symbol]
    engine = build_engine(settings, spots["main"], perp, START_NS, venue_name="mock", spot_venues=spots)
    checks = VenueChecks(group, engine, market.spot_symbol, settings.runtime.stale_feed_ms * 1_000_000)

    result = run_simulation(
        group,
        engine,
        start_ns=START_NS,
        duration_ns=SIM_S * NS_PER_S,
        timer_ns=settings.runtime.timer_ms * 1_000_000,
        on_step=checks.on_step,
    )

    def step(now: int, events: list[Event], commands: list[Command]) -> None:
        for command in commands:
            group.submit(command, now)
        checks.on_step(now, events, commands)

    # the fills still in flight at shutdown reach the engine (the venues' latencies, a delayed ack)
    deliver_until(group, engine, result.end_ns, result.end_ns + 5 * NS_PER_S, lambda: False, step)

    # every fault fired, and the episodes on every venue
    fired = {name: sum(ex.faults.counts[name] for ex in group.exchanges.values()) for name in FAULT_NAMES}
    assert all(n > 0 for n in fired.values()), fired
    for venue, exchange in group.exchanges.items():
        assert sum(exchange.faults.counts[name] for name in EPISODES) > 0, venue
    assert checks.violations == []
    assert checks.checks["fill_accounting"] > 1000 and checks.checks["stale_quote"] > 0
    assert checks.checks["duplicate_fill"] > 0  # the duplicate-fill fault reached the engine's check
    # the venues' own positions are the engine's, venue by venue; nothing is open anywhere
    for venue, exchange in group.exchanges.items():
        for symbol, lots in exchange.positions().items():
            key = market_key(venue, symbol)
            booked = engine.portfolio.positions[key].lots if key in engine.portfolio.positions else 0
            assert booked == lots, (venue, symbol)
        assert exchange.open_orders() == [], venue
    summary = result.summary
    assert summary["net_delta_in_band_pct"] >= 99.0
    assert summary["open_orders_at_exit"] == 0
    for venue in spots:
        assert summary["venues"][venue]["fills"] > 0, venue
        assert summary["venues"][venue]["obligations"]["all_pct"] is not None, venue
