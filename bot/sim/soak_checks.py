"""The soak's invariant checker: watches the engine and the mock exchange after every simulation step.

It is fed by the simulation driver's hooks (`on_note` for the engine's notes, `on_step` after each
batch of events and commands) and reads the exchange's ground truth (positions, open orders, its
own fill log). Each broken invariant becomes a `Violation(t_s, invariant, details)`; an episode
(one stale spell, one pause, one excursion) is reported once, not at every step.

Invariants (names as they appear in the report):

- `fill_accounting`: every fill the exchange delivered is booked exactly once (duplicates dropped);
  after every step the engine's booked position (portfolio lots) equals the sum of delivered fills.
- `position_reconcile`: at every reconciliation (a `PositionSnapshot`) the exchange's position
  equals the fills delivered before it, and after the step the engine's position equals it too; a
  `position.mismatch` note (the engine found it had drifted) is a violation as well.
- `fill_lost`: at the end every fill the exchange executed has reached the engine.
- `open_after_pause`: while the risk guard pauses or halts, no quote stays open on the exchange
  longer than `cancel_bound` once the venue is reachable.
- `open_after_shutdown`: after shutdown no order (quote or hedge) is open on the exchange.
- `stale_quote`: no quote is open on the exchange while the spot feed has been silent for longer
  than `stale_feed_ms + cancel_bound` (counted from when the venue is reachable again).
- `inventory_limit`: |spot position| on the exchange never exceeds the hard limit by more than one
  order size.
- `hedge_band`: after each hedge, |net delta - target| is back within the band within `hedge_bound`.
- `memory_growth`: RSS grows by less than `rss_limit_mb` between the end of warm-up and the end.
- `restart_reconcile` (soaks with restarts): right after each restart's reconciliation, and at the
  end, the ledger holds exactly the exchange's fills (none missing, none it never made, none twice)
  and its positions equal the exchange's; the reconciliation itself found no mismatch.

A check that never had anything to check cannot fail, so the report also counts how often each
invariant was exercised (`checks`), and how often a fill reached the engine twice, per order tag
(`duplicate_quote_fill`, `duplicate_hedge_fill`: the engine's two duplicate checks, the order
manager's for quote fills and the portfolio's for hedge fills, each exercised).
"""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any, Protocol

from bot.domain import (
    BookDelta,
    BookSnapshot,
    Command,
    Event,
    FeedStatus,
    Instrument,
    OpenOrder,
    OrderFilled,
    PlaceOrder,
    PositionSnapshot,
    Side,
)

NS_PER_S = 1_000_000_000
MAX_RECORDS = 200  # violation records kept in the report (all are counted)
RECENT_FILLS = 10_000  # delivered fill ids remembered to recognise a duplicate (the mock repeats at once)
RECENT_ORDERS = 10_000  # client id -> tag of the orders placed last (to say whose fill a duplicate is)


@dataclass(frozen=True, slots=True)
class Violation:
    t_s: float  # simulated seconds since the soak started
    invariant: str
    details: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"t_s": round(self.t_s, 3), "invariant": self.invariant, "details": self.details}


@dataclass(frozen=True, slots=True)
class ExchangeFill:
    """One execution as the exchange booked it (its own log, not what it delivered)."""

    symbol: str
    fill_id: str
    client_id: str
    side: Side
    lots: int
    t_ns: int


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds of the time-based invariants, all in ns or base units (see the module docstring)."""

    start_ns: int
    stale_feed_ns: int
    cancel_bound_ns: int  # timer period + worst one-way command latency
    hedge_bound_ns: int
    inventory_hard_base: float
    max_order_base: float
    hedge_target_base: float
    hedge_band_base: float
    rss_limit_mb: float
    warmup_end_ns: int


class ExchangeView(Protocol):
    instruments: dict[str, Instrument]

    def take_fills(self) -> list[ExchangeFill]: ...
    def positions(self) -> dict[str, int]: ...
    def open_orders(self) -> list[OpenOrder]: ...


class PositionView(Protocol):
    lots: int


class PortfolioView(Protocol):
    @property
    def positions(self) -> dict[str, Any]: ...
    def net_delta_base(self) -> float: ...


class RiskView(Protocol):
    @property
    def pause(self) -> bool: ...
    @property
    def halt(self) -> bool: ...


class EngineView(Protocol):
    @property
    def position_lots(self) -> dict[str, int]: ...
    @property
    def portfolio(self) -> PortfolioView: ...
    @property
    def risk_decision(self) -> RiskView: ...
    def open_order_count(self) -> int: ...


@dataclass
class _Episode:
    """A condition that started at `since_ns` and whether it was already reported."""

    since_ns: int
    reported: bool = False


@dataclass
class CheckState:
    undelivered: dict[tuple[str, str], ExchangeFill] = field(default_factory=dict)  # executed, not yet delivered
    recent: set[tuple[str, str]] = field(default_factory=set)  # delivered fill ids, bounded (duplicate detection)
    recent_order: deque[tuple[str, str]] = field(default_factory=deque)
    tags: dict[str, str] = field(default_factory=dict)  # client id -> PlaceOrder.tag, the last RECENT_ORDERS
    fills_executed: int = 0
    ledger_lots: dict[str, int] = field(default_factory=dict)  # Σ delivered fills, per symbol
    booked_in_step: int = 0
    mismatch_notes: list[dict[str, Any]] = field(default_factory=list)
    last_spot_book_ns: int = 0
    venue_up: bool = True
    reachable_since_ns: int = 0
    pause: _Episode | None = None
    stale: _Episode | None = None  # since_ns = the last spot book update before the silence
    inventory_over: bool = False
    hedge_pending: _Episode | None = None
    rss_warm_mb: float | None = None


class SoakChecker:
    """See the module docstring. Feed `on_note` and `on_step` from the driver, then call `finish`."""

    def __init__(self, exchange: ExchangeView, engine: EngineView, spot_symbol: str, limits: Limits) -> None:
        self.exchange = exchange
        self.engine = engine
        self.spot_symbol = spot_symbol
        self.spot = exchange.instruments[spot_symbol]
        self.symbols = tuple(exchange.instruments)
        self.limits = limits
        self.state = CheckState(
            ledger_lots=dict.fromkeys(self.symbols, 0),
            last_spot_book_ns=limits.start_ns,
            reachable_since_ns=limits.start_ns,
        )
        self.violations: list[Violation] = []
        self.counts: Counter[str] = Counter()
        self.checks: Counter[str] = Counter()
        self.worst_ns: dict[str, int] = {"stale_quote": 0, "open_after_pause": 0, "hedge_band": 0}
        """The measured margin of each time-bounded invariant: the longest a quote stayed open past the
        stale limit or after a pause (venue reachable), the longest a hedge took to get back in band."""

    # ------------------------------------------------------------------ reporting

    def violate(self, now_ns: int, invariant: str, **details: Any) -> None:
        self.counts[invariant] += 1
        if len(self.violations) < MAX_RECORDS:
            self.violations.append(Violation((now_ns - self.limits.start_ns) / NS_PER_S, invariant, details))

    # ------------------------------------------------------------------ driver hooks

    def on_note(self, name: str, fields: dict[str, Any]) -> None:
        if name in ("order.filled", "hedge.filled"):
            self.state.booked_in_step += 1
        elif name == "hedge.sent" and self.state.hedge_pending is None:
            self.state.hedge_pending = _Episode(since_ns=-1)  # stamped with the step's time in on_step
        elif name == "position.mismatch":
            self.state.mismatch_notes.append(dict(fields))

    def on_step(self, now_ns: int, events: list[Event], commands: list[Command]) -> None:
        self._remember_tags(commands)
        self._take_exchange_fills()
        new_fills, snapshots = self._walk_events(now_ns, events)
        self._check_booking(now_ns, new_fills)
        if snapshots or new_fills:
            self._check_positions(now_ns, snapshots)
        for note in self.state.mismatch_notes:
            self.violate(now_ns, "position_reconcile", engine_note="position.mismatch", **note)
        self.state.mismatch_notes.clear()
        if new_fills:
            self._check_inventory(now_ns)
        self._check_pause(now_ns)
        self._check_stale(now_ns)
        self._check_hedge(now_ns)

    # ------------------------------------------------------------------ events

    def _take_exchange_fills(self) -> None:
        st = self.state
        for fill in self.exchange.take_fills():
            st.undelivered[(fill.symbol, fill.fill_id)] = fill
            st.fills_executed += 1

    def _remember_tags(self, commands: list[Command]) -> None:
        tags = self.state.tags
        for command in commands:
            if type(command) is PlaceOrder:
                assert isinstance(command, PlaceOrder)
                tags[command.client_id] = command.tag
                if len(tags) > RECENT_ORDERS:
                    del tags[next(iter(tags))]  # the oldest (dicts keep insertion order)

    def _remember(self, key: tuple[str, str]) -> None:
        st = self.state
        st.recent.add(key)
        st.recent_order.append(key)
        if len(st.recent_order) > RECENT_FILLS:
            st.recent.discard(st.recent_order.popleft())

    def _walk_events(self, now_ns: int, events: list[Event]) -> tuple[int, int]:
        """Update the delivered-fill ledger; check each reconciliation against it, in delivery order."""
        st = self.state
        new_fills = 0
        snapshots = 0
        for event in events:
            kind = type(event)
            if kind is OrderFilled:
                assert isinstance(event, OrderFilled)
                key = (event.symbol, event.fill_id)
                if key in st.recent:  # the same fill again: the engine must drop it (checked after the step)
                    self.checks[f"duplicate_{st.tags.get(event.client_id, 'unknown')}_fill"] += 1
                else:
                    self._remember(key)
                    if st.undelivered.pop(key, None) is None:
                        self.violate(now_ns, "fill_accounting", phantom_fill=event.fill_id, client_id=event.client_id)
                    st.ledger_lots[event.symbol] = (
                        st.ledger_lots.get(event.symbol, 0) + event.side.sign * event.size_lots
                    )
                    new_fills += 1
            elif kind is PositionSnapshot:
                assert isinstance(event, PositionSnapshot)
                snapshots += 1
                self.checks["position_reconcile"] += 1
                expected = st.ledger_lots.get(event.symbol, 0)
                if event.position_lots != expected:
                    self.violate(
                        now_ns,
                        "position_reconcile",
                        symbol=event.symbol,
                        exchange_lots=event.position_lots,
                        delivered_fills_lots=expected,
                        where="at_snapshot",
                    )
            elif kind is BookDelta or kind is BookSnapshot:
                if event.symbol == self.spot_symbol:  # type: ignore[union-attr]
                    st.last_spot_book_ns = now_ns
            elif kind is FeedStatus:
                assert isinstance(event, FeedStatus)
                if event.connected and not st.venue_up:
                    st.reachable_since_ns = now_ns
                st.venue_up = event.connected
        return new_fills, snapshots

    def _check_booking(self, now_ns: int, new_fills: int) -> None:
        booked = self.state.booked_in_step
        self.state.booked_in_step = 0
        if new_fills or booked:
            self.checks["fill_accounting"] += new_fills
        if booked != new_fills:
            self.violate(now_ns, "fill_accounting", delivered_new=new_fills, booked=booked)

    def _check_positions(self, now_ns: int, snapshots: int) -> None:
        ledger = self.state.ledger_lots
        positions = self.engine.portfolio.positions
        for symbol in self.symbols:
            booked = positions[symbol].lots
            if booked != ledger[symbol]:
                self.violate(
                    now_ns, "fill_accounting", symbol=symbol, booked_lots=booked, delivered_lots=ledger[symbol]
                )
            if snapshots:
                ours = self.engine.position_lots.get(symbol, 0)
                if ours != ledger[symbol]:
                    self.violate(
                        now_ns,
                        "position_reconcile",
                        symbol=symbol,
                        engine_lots=ours,
                        exchange_lots=ledger[symbol],
                        where="after_step",
                    )

    # ------------------------------------------------------------------ time-based invariants

    def _reachable_for(self, now_ns: int) -> int:
        """How long the venue has been reachable (0 while it is down)."""
        st = self.state
        return now_ns - st.reachable_since_ns if st.venue_up else 0

    def _open_spot_quotes(self) -> list[OpenOrder]:
        return [o for o in self.exchange.open_orders() if o.symbol == self.spot_symbol]

    def _worst(self, name: str, value_ns: int) -> None:
        if value_ns > self.worst_ns[name]:
            self.worst_ns[name] = value_ns

    def _check_pause(self, now_ns: int) -> None:
        decision = self.engine.risk_decision
        st = self.state
        if not (decision.pause or decision.halt):
            st.pause = None
            return
        if st.pause is None:
            st.pause = _Episode(now_ns)
            self.checks["open_after_pause"] += 1
        open_quotes = self._open_spot_quotes()
        if not open_quotes:
            return
        waited = min(now_ns - st.pause.since_ns, self._reachable_for(now_ns))
        self._worst("open_after_pause", waited)
        if waited > self.limits.cancel_bound_ns and not st.pause.reported:
            st.pause.reported = True
            self.violate(
                now_ns, "open_after_pause", halt=decision.halt, paused_for_s=(now_ns - st.pause.since_ns) / NS_PER_S,
                open_orders=[o.client_id for o in open_quotes][:10],
            )  # fmt: skip

    def _check_stale(self, now_ns: int) -> None:
        st = self.state
        lim = self.limits
        silent = now_ns - st.last_spot_book_ns
        if silent <= lim.stale_feed_ns:
            st.stale = None
            return
        if st.stale is None or st.stale.since_ns != st.last_spot_book_ns:
            st.stale = _Episode(st.last_spot_book_ns)
            self.checks["stale_quote"] += 1
        open_quotes = self._open_spot_quotes()
        if not open_quotes:
            return
        overrun = min(silent - lim.stale_feed_ns, self._reachable_for(now_ns))
        self._worst("stale_quote", overrun)
        if overrun > lim.cancel_bound_ns and not st.stale.reported:
            st.stale.reported = True
            self.violate(
                now_ns, "stale_quote", silent_s=silent / NS_PER_S,
                limit_s=(lim.stale_feed_ns + lim.cancel_bound_ns) / NS_PER_S,
                open_orders=[o.client_id for o in open_quotes][:10],
            )  # fmt: skip

    def _check_inventory(self, now_ns: int) -> None:
        self.checks["inventory_limit"] += 1
        lots = self.exchange.positions().get(self.spot_symbol, 0)
        inventory = abs(self.spot.size(lots))
        limit = self.limits.inventory_hard_base + self.limits.max_order_base
        over = inventory > limit + 1e-9
        if over and not self.state.inventory_over:
            self.violate(now_ns, "inventory_limit", inventory_base=inventory, limit_base=limit)
        self.state.inventory_over = over

    def true_net_delta_base(self) -> float:
        """The engine's net delta with its spot and perp positions replaced by the exchange's."""
        portfolio = self.engine.portfolio
        delta = portfolio.net_delta_base()
        positions = self.exchange.positions()
        for symbol, inst in self.exchange.instruments.items():
            delta += inst.size(positions.get(symbol, 0) - portfolio.positions[symbol].lots)
        return delta

    def _check_hedge(self, now_ns: int) -> None:
        pending = self.state.hedge_pending
        if pending is None:
            return
        if pending.since_ns < 0:
            pending.since_ns = now_ns
            self.checks["hedge_band"] += 1
        lim = self.limits
        gap = self.true_net_delta_base() - lim.hedge_target_base
        if abs(gap) <= lim.hedge_band_base + 1e-9:
            self._worst("hedge_band", now_ns - pending.since_ns)
            self.state.hedge_pending = None
            return
        if not pending.reported and now_ns - pending.since_ns > lim.hedge_bound_ns:
            pending.reported = True
            self.violate(
                now_ns,
                "hedge_band",
                net_delta_minus_target_base=round(gap, 10),
                band_base=lim.hedge_band_base,
                hedge_sent_s_ago=(now_ns - pending.since_ns) / NS_PER_S,
            )

    # ------------------------------------------------------------------ restarts

    def on_restart(
        self, engine: EngineView, now_ns: int, ledger_problems: dict[str, Any], mismatches: dict[str, Any]
    ) -> None:
        """A new engine took over after restart reconciliation (`bot.sim.soak_restarts`): check the
        ledger against the exchange, then watch the new engine from the exchange's positions on."""
        self.checks["restart_reconcile"] += 1
        if ledger_problems:
            self.violate(now_ns, "restart_reconcile", where="after_restart", **ledger_problems)
        if mismatches:
            self.violate(now_ns, "restart_reconcile", where="recovery", mismatches=mismatches)
        self._take_exchange_fills()
        st = self.state
        if "fills" not in ledger_problems:
            # every fill made while no bot listened is in the ledger, and so in the positions the
            # new engine adopted: reaching it later would be a replay, which it must drop
            for key in st.undelivered:
                self._remember(key)
            st.undelivered.clear()
        self.engine = engine
        positions = self.exchange.positions()
        st.ledger_lots = {symbol: positions.get(symbol, 0) for symbol in self.symbols}
        st.booked_in_step = 0
        st.mismatch_notes.clear()
        st.venue_up = True
        st.reachable_since_ns = now_ns
        st.last_spot_book_ns = now_ns
        st.pause = st.stale = st.hedge_pending = None

    def on_final_ledger(self, now_ns: int, ledger_problems: dict[str, Any]) -> None:
        """The ledger against the exchange once more, after the last run's shutdown."""
        self.checks["restart_reconcile"] += 1
        if ledger_problems:
            self.violate(now_ns, "restart_reconcile", where="end", **ledger_problems)

    # ------------------------------------------------------------------ memory and the end

    def on_rss(self, now_ns: int, rss_mb: float) -> None:
        """An RSS sample: the first one after warm-up is the baseline."""
        if now_ns >= self.limits.warmup_end_ns and self.state.rss_warm_mb is None:
            self.state.rss_warm_mb = rss_mb

    def rss_growth_mb(self, final_rss_mb: float) -> float | None:
        warm = self.state.rss_warm_mb
        return None if warm is None else final_rss_mb - warm

    def finish(self, now_ns: int, final_rss_mb: float) -> None:
        """End-of-run checks, once the driver has shut the engine down and the exchange settled."""
        self._take_exchange_fills()
        lost = sorted(self.state.undelivered.values(), key=lambda f: f.t_ns)
        self.checks["fill_lost"] += self.state.fills_executed
        if lost:
            first = lost[0]
            self.violate(
                now_ns,
                "fill_lost",
                count=len(lost),
                first_fill_id=first.fill_id,
                first_client_id=first.client_id,
                first_t_s=(first.t_ns - self.limits.start_ns) / NS_PER_S,
            )
        self._check_positions(now_ns, snapshots=1)
        positions = self.exchange.positions()
        for symbol in self.symbols:
            if positions.get(symbol, 0) != self.engine.position_lots.get(symbol, 0):
                self.violate(
                    now_ns,
                    "position_reconcile",
                    symbol=symbol,
                    exchange_lots=positions.get(symbol, 0),
                    engine_lots=self.engine.position_lots.get(symbol, 0),
                    where="end",
                )
        self.checks["open_after_shutdown"] += 1
        still_open = self.exchange.open_orders()
        if still_open or self.engine.open_order_count():
            self.violate(
                now_ns,
                "open_after_shutdown",
                exchange_open=[o.client_id for o in still_open][:10],
                engine_open=self.engine.open_order_count(),
            )
        growth = self.rss_growth_mb(final_rss_mb)
        if growth is not None:
            self.checks["memory_growth"] += 1
            if growth > self.limits.rss_limit_mb:
                self.violate(now_ns, "memory_growth", rss_growth_mb=round(growth, 2), limit_mb=self.limits.rss_limit_mb)

    def fills_in_flight(self) -> int:
        """Fills the exchange executed that have not reached the engine yet."""
        self._take_exchange_fills()
        return len(self.state.undelivered)
