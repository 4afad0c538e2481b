"""The soak's invariant checker on hand-written fakes: each invariant must be able to fail."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bot.domain import (
    BookDelta,
    FeedStatus,
    Instrument,
    InstrumentKind,
    Liquidity,
    OpenOrder,
    OrderFilled,
    PositionSnapshot,
    Side,
    market_key,
)
from bot.sim.soak_checks import ExchangeFill, Limits, SoakChecker

S = 1_000_000_000
SPOT = Instrument("T/U", InstrumentKind.SPOT, "T", "U", 0.01, 0.01)
PERP = Instrument("T/U:U", InstrumentKind.PERP, "T", "U", 0.01, 0.01)


@dataclass
class FakePosition:
    lots: int = 0


@dataclass
class FakePortfolio:
    positions: dict[str, FakePosition] = field(
        default_factory=lambda: {SPOT.symbol: FakePosition(), PERP.symbol: FakePosition()}
    )

    def net_delta_base(self) -> float:
        return sum(p.lots for p in self.positions.values()) * 0.01


@dataclass
class FakeRisk:
    pause: bool = False
    halt: bool = False


@dataclass
class FakeQuoter:
    venue: str
    risk_decision: FakeRisk


@dataclass
class FakeEngine:
    portfolio: FakePortfolio = field(default_factory=FakePortfolio)
    risk_decision: FakeRisk = field(default_factory=FakeRisk)
    open_orders: int = 0
    halted: bool = False

    @property
    def quoters(self) -> list[FakeQuoter]:
        return [FakeQuoter("", self.risk_decision)]

    def hedge_halted(self) -> bool:
        return self.halted

    @property
    def position_lots(self) -> dict[str, int]:
        return {s: p.lots for s, p in self.portfolio.positions.items()}

    def open_order_count(self) -> int:
        return self.open_orders

    def book(self, symbol: str, lots: int) -> None:
        self.portfolio.positions[symbol].lots += lots


@dataclass
class FakeExchange:
    instruments: dict[str, Instrument] = field(default_factory=lambda: {SPOT.symbol: SPOT, PERP.symbol: PERP})
    pos: dict[str, int] = field(default_factory=lambda: {SPOT.symbol: 0, PERP.symbol: 0})
    orders: list[OpenOrder] = field(default_factory=list)
    fills: list[ExchangeFill] = field(default_factory=list)
    n: int = 0

    def take_fills(self) -> list[ExchangeFill]:
        out, self.fills = self.fills, []
        return out

    def positions(self) -> dict[str, int]:
        return dict(self.pos)

    def open_orders(self) -> list[OpenOrder]:
        return list(self.orders)

    def faults_fired(self) -> dict[str, int]:
        return {"": 0}

    def execute(self, symbol: str, side: Side, lots: int, t_ns: int) -> OrderFilled:
        """Book a fill on the exchange; return the event it would deliver."""
        self.n += 1
        self.pos[symbol] += side.sign * lots
        self.fills.append(ExchangeFill(symbol, f"F{self.n}", "q-1", side, lots, t_ns))
        return OrderFilled(symbol, "q-1", f"F{self.n}", side, 10_000, lots, 0.0, Liquidity.MAKER, 0, t_ns, t_ns)


def limits(**over: Any) -> Limits:
    values: dict[str, Any] = dict(
        start_ns=0, stale_feed_ns=3 * S, cancel_bound_ns=S, hedge_bound_ns=10 * S, inventory_hard_base=10.0,
        max_order_base=1.0, hedge_target_base=0.0, hedge_band_base=2.0, rss_limit_mb=64.0, warmup_end_ns=60 * S,
    )  # fmt: skip
    values.update(over)
    return Limits(**values)


def make(**over: Any) -> tuple[SoakChecker, FakeExchange, FakeEngine]:
    ex, eng = FakeExchange(), FakeEngine()
    return SoakChecker(ex, eng, SPOT.symbol, limits(**over)), ex, eng


def book_event(t: int) -> BookDelta:
    return BookDelta(SPOT.symbol, 1, 1, ((10_000, 5),), (), t, t)


def quote() -> OpenOrder:
    return OpenOrder(SPOT.symbol, "q-9", Side.BUY, 9_999, 100)


def test_a_clean_fill_booked_once_is_no_violation() -> None:
    checker, ex, eng = make()
    fill = ex.execute(SPOT.symbol, Side.BUY, 100, S)
    eng.book(SPOT.symbol, 100)
    checker.on_note("order.filled", {})
    checker.on_step(S, [fill, fill], [])  # a duplicate delivery is booked once: fine
    checker.on_step(2 * S, [PositionSnapshot(SPOT.symbol, 100, S, 2 * S)], [])
    checker.finish(3 * S, final_rss_mb=100.0)
    assert checker.counts == {}
    assert checker.checks["fill_accounting"] == 1
    assert checker.checks["position_reconcile"] == 1


def test_a_fill_booked_twice_is_caught() -> None:
    checker, ex, eng = make()
    fill = ex.execute(SPOT.symbol, Side.BUY, 100, S)
    eng.book(SPOT.symbol, 200)  # the engine counted it twice
    checker.on_note("order.filled", {})
    checker.on_note("order.filled", {})
    checker.on_step(S, [fill, fill], [])
    assert checker.counts["fill_accounting"] == 2  # once for the count, once for the lots
    assert {v.invariant for v in checker.violations} == {"fill_accounting"}


def test_a_delivered_fill_not_booked_is_caught() -> None:
    checker, ex, _eng = make()
    fill = ex.execute(SPOT.symbol, Side.SELL, 50, S)
    checker.on_step(S, [fill], [])
    assert checker.counts["fill_accounting"] == 2
    assert checker.violations[0].details == {"delivered_new": 1, "booked": 0}


def test_a_fill_the_exchange_never_delivered_is_lost() -> None:
    checker, ex, _eng = make()
    ex.execute(PERP.symbol, Side.BUY, 7, S)  # executed, never delivered
    checker.on_step(S, [], [])
    checker.finish(2 * S, final_rss_mb=0.0)
    assert checker.counts["fill_lost"] == 1
    assert checker.counts["position_reconcile"] == 1  # the exchange holds a position the engine does not


def test_reconciliation_against_a_position_the_fills_do_not_explain() -> None:
    checker, _ex, _eng = make()
    checker.on_step(S, [PositionSnapshot(SPOT.symbol, 3, S, S)], [])
    checker.on_note("position.mismatch", {"symbol": SPOT.symbol, "ours_lots": 0, "venue_lots": 3})
    checker.on_step(2 * S, [], [])
    assert checker.counts["position_reconcile"] == 2  # at the snapshot, and the engine's own note


def test_stale_feed_with_a_live_quote_past_the_limit() -> None:
    checker, ex, _eng = make()
    checker.on_step(S, [book_event(S)], [])
    ex.orders.append(quote())
    checker.on_step(S + 3 * S + S, [], [])  # silent for exactly stale + cancel bound: still allowed
    assert checker.counts == {}
    checker.on_step(S + 3 * S + S + 1, [], [])
    checker.on_step(S + 9 * S, [], [])  # the same spell is reported once
    assert checker.counts["stale_quote"] == 1


def test_stale_limit_counts_from_the_reconnect() -> None:
    checker, ex, _eng = make()
    checker.on_step(S, [book_event(S), FeedStatus("*", False, "disconnect", S, S)], [])
    ex.orders.append(quote())
    checker.on_step(10 * S, [], [])  # venue down: the bot cannot cancel
    checker.on_step(10 * S + 1, [FeedStatus("*", True, "back", 10 * S, 10 * S)], [])
    checker.on_step(10 * S + S, [], [])
    assert checker.counts == {}
    checker.on_step(10 * S + S + 2, [], [])
    assert checker.counts["stale_quote"] == 1


def test_no_violation_when_the_stale_quotes_are_gone() -> None:
    checker, _ex, _eng = make()
    checker.on_step(S, [book_event(S)], [])
    checker.on_step(20 * S, [], [])
    assert checker.counts == {}
    assert checker.checks["stale_quote"] == 1


def test_pause_with_a_quote_still_open() -> None:
    checker, ex, eng = make()
    eng.risk_decision.pause = True
    ex.orders.append(quote())
    checker.on_step(S, [], [])
    checker.on_step(2 * S, [], [])  # within the cancel bound
    assert checker.counts == {}
    checker.on_step(2 * S + 1, [], [])
    assert checker.counts["open_after_pause"] == 1
    ex.orders.clear()
    eng.risk_decision.pause = False
    checker.on_step(3 * S, [], [])
    eng.risk_decision.halt = True
    checker.on_step(4 * S, [], [])
    checker.on_step(9 * S, [], [])
    assert checker.counts["open_after_pause"] == 1  # halted with nothing open: fine


def test_inventory_past_the_hard_limit_plus_one_order() -> None:
    checker, ex, eng = make()
    fill = ex.execute(SPOT.symbol, Side.BUY, 1100, S)  # 11.0 base = 10 + 1 order: allowed
    eng.book(SPOT.symbol, 1100)
    checker.on_note("order.filled", {})
    checker.on_step(S, [fill], [])
    assert checker.counts == {}
    fill = ex.execute(SPOT.symbol, Side.BUY, 1, 2 * S)
    eng.book(SPOT.symbol, 1)
    checker.on_note("order.filled", {})
    checker.on_step(2 * S, [fill], [])
    assert checker.counts["inventory_limit"] == 1


def test_net_delta_not_back_in_band_after_a_hedge() -> None:
    checker, ex, eng = make()
    ex.pos[SPOT.symbol] = 500  # 5 base, band 2: out of band on the exchange
    eng.book(SPOT.symbol, 500)
    checker.on_note("hedge.sent", {})
    checker.on_step(S, [], [])
    checker.on_step(11 * S, [], [])
    assert checker.counts == {}
    checker.on_step(11 * S + 1, [], [])
    assert checker.counts["hedge_band"] == 1
    ex.pos[PERP.symbol] = -400  # hedged back: 1 base
    checker.on_step(12 * S, [], [])
    checker.on_note("hedge.sent", {})
    checker.on_step(13 * S, [], [])
    checker.on_step(30 * S, [], [])
    assert checker.counts["hedge_band"] == 1


def test_orders_left_open_after_shutdown() -> None:
    checker, ex, _eng = make()
    ex.orders.append(quote())
    checker.finish(S, final_rss_mb=0.0)
    assert checker.counts["open_after_shutdown"] == 1


def test_memory_growth_after_warm_up() -> None:
    checker, _ex, _eng = make(rss_limit_mb=10.0)
    checker.on_rss(30 * S, 100.0)  # warm-up: ignored
    checker.on_rss(60 * S, 120.0)
    checker.finish(S, final_rss_mb=129.0)
    assert checker.counts == {}
    checker2, _, _ = make(rss_limit_mb=10.0)
    checker2.on_rss(60 * S, 120.0)
    checker2.finish(S, final_rss_mb=130.5)
    assert checker2.counts["memory_growth"] == 1
    assert checker2.rss_growth_mb(130.5) == 10.5


# ---- several venues: each venue's feed, quotes and guard are its own ------------------------------

VENUES = ("a", "b")


@dataclass
class TwoVenueEngine(FakeEngine):
    decisions: dict[str, FakeRisk] = field(default_factory=lambda: {v: FakeRisk() for v in VENUES})

    @property
    def quoters(self) -> list[FakeQuoter]:
        return [FakeQuoter(v, d) for v, d in self.decisions.items()]


def make_two(**over: Any) -> tuple[SoakChecker, FakeExchange, TwoVenueEngine]:
    keys = [market_key(v, SPOT.symbol) for v in VENUES] + [market_key("h", PERP.symbol)]  # the perp on h
    instruments = {k: SPOT if "@" in k and ":" not in k else PERP for k in keys}
    ex = FakeExchange(instruments=instruments, pos=dict.fromkeys(keys, 0))
    ex.faults_fired = lambda: dict.fromkeys(VENUES, 0)  # type: ignore[method-assign]
    eng = TwoVenueEngine(portfolio=FakePortfolio(positions={k: FakePosition() for k in keys}))
    checker = SoakChecker(ex, eng, SPOT.symbol, limits(quiet_ns=5 * S, **over), spot_venues=VENUES, hedge_venue="h")
    return checker, ex, eng


def quote_on(venue: str) -> OpenOrder:
    return OpenOrder(SPOT.symbol, f"q-{venue}", Side.BUY, 9_999, 100, venue=venue)


def books(t: int, *venues: str) -> list[BookDelta]:
    return [BookDelta(SPOT.symbol, 1, 1, ((10_000, 5),), (), t, t, venue=v) for v in venues]


def test_a_stale_feed_pulls_that_venues_quotes_only() -> None:
    checker, ex, _eng = make_two()
    ex.orders.append(quote_on("b"))  # b's feed is fine: its quote may stay
    for t in range(1, 12):
        checker.on_step(t * S, books(t * S, "b"), [])  # a is silent from the start
    assert checker.counts == {}
    assert checker.checks_by_venue["a"]["stale_quote"] == 1 and "stale_quote" not in checker.checks_by_venue["b"]
    ex.orders.append(quote_on("a"))
    checker.on_step(12 * S, books(12 * S, "b"), [])
    assert checker.counts["stale_quote"] == 1
    assert checker.violations[0].details["venue"] == "a"


def test_a_pause_on_one_venue_concerns_its_quotes_only() -> None:
    checker, ex, eng = make_two()
    eng.decisions["b"].pause = True
    ex.orders.append(quote_on("a"))
    checker.on_step(S, books(S, "a", "b"), [])
    checker.on_step(3 * S, books(3 * S, "a", "b"), [])
    assert checker.counts == {}
    ex.orders.append(quote_on("b"))
    checker.on_step(4 * S, books(4 * S, "a", "b"), [])
    checker.on_step(6 * S, books(6 * S, "a", "b"), [])
    assert checker.counts["open_after_pause"] == 1 and checker.violations[0].details["venue"] == "b"


def test_a_quiet_venue_without_quotes_while_another_is_down_is_caught() -> None:
    checker, ex, _eng = make_two()
    for t in range(1, 7):  # both quoting, both books fresh; b quiet for longer than quiet_ns
        ex.orders[:] = [quote_on("a"), quote_on("b")]
        checker.on_step(t * S, books(t * S, "a", "b"), [])
    checker.on_step(7 * S, [FeedStatus("*", False, "disconnect", 7 * S, 7 * S, venue="a"), *books(7 * S, "b")], [])
    ex.orders[:] = [quote_on("a")]  # b's quotes are gone too (last seen at 7 s): not b's trouble
    checker.on_step(8 * S, books(8 * S, "b"), [])  # within the cancel bound (1 s here): a replace may take that
    assert checker.counts == {} and checker.checks["quotes_elsewhere"] == 1
    checker.on_step(8 * S + 1, books(8 * S + 1, "b"), [])
    assert checker.counts["quotes_elsewhere"] == 1
    assert checker.violations[0].details == {"venue": "b", "faulted": ["a"], "no_quote_for_s": 1.000000001}


def test_a_venue_with_a_fault_of_its_own_is_not_required_to_quote() -> None:
    checker, ex, _eng = make_two()
    fired = {"a": 0, "b": 0}
    ex.faults_fired = lambda: dict(fired)  # type: ignore[method-assign]
    for t in range(1, 7):
        checker.on_step(t * S, books(t * S, "a", "b"), [])
    fired["b"] = 1  # b had a fault of its own (a gap, a reject): its quotes may be missing for a while
    checker.on_step(7 * S, [FeedStatus("*", False, "disconnect", 7 * S, 7 * S, venue="a"), *books(7 * S, "b")], [])
    for t in range(8, 12):
        checker.on_step(t * S, books(t * S, "b"), [])
    assert checker.counts == {}
