"""The soak's invariant checker: watches the engine and the mock exchanges after every simulation step.

It is fed by the simulation driver's hooks (`on_note` for the engine's notes, `on_step` after each
batch of events and commands) and reads the exchanges' ground truth (positions, open orders, their
own fill logs) through one `ExchangeView` keyed by market (`market_key(venue, symbol)`: the bare
symbol on a single-venue soak, `TOKEN/USDT@main` on a multi-venue one). Each broken invariant
becomes a `Violation(t_s, invariant, details)`; an episode (one stale spell, one pause, one
excursion) is reported once, not at every step. Every check that concerns one venue is made per
venue (its feed, its quotes, its positions), and a violation names the venue.

Invariants (names as they appear in the report):

- `fill_accounting`: every fill an exchange delivered is booked exactly once (duplicates dropped),
  on its own market; after every step the engine's booked position (portfolio lots) on each market
  equals the sum of the fills that market's venue delivered.
- `position_reconcile`: at every reconciliation (a `PositionSnapshot`) the venue's position equals
  the fills it delivered before it, and after the step the engine's position equals it too; a
  `position.mismatch` note (the engine found it had drifted) is a violation as well.
- `fill_lost`: at the end every fill any exchange executed has reached the engine.
- `open_after_pause`: while a venue's risk guard pauses or halts, no order on its spot market (a
  quote, or the deal's sale on the main venue) stays open longer than `cancel_bound` once the venue
  is reachable.
- `open_after_shutdown`: after shutdown no order (quote or hedge) is open on any exchange.
- `stale_quote`: no quote is open on a venue while that venue's spot feed has been silent for longer
  than `stale_feed_ms + cancel_bound` (counted from when the venue is reachable again).
- `quotes_elsewhere` (several spot venues): a fault on one venue pulls that venue's quotes only. While
  a spot venue is faulted (disconnected, or its feed silent past the stale limit), every other spot
  venue that is quiet (no fault of its own fired for `quiet_ns`: the longest episode, the stale limit
  and a cancel bound; connected; its book fresh; its own guard neither pausing nor halting; hedging
  not halted) must show a quote on its exchange within `stale_feed_ms + cancel_bound`.
- `inventory_limit`: |aggregate spot position| (every spot venue, on the exchanges) never exceeds
  the hard limit by more than one order per spot venue.
- `hedge_band`: after each hedge, |net delta - target| is back within the band within `hedge_bound`,
  with every market's position as its exchange holds it.
- `memory_growth`: RSS grows by less than `rss_limit_mb` between the end of warm-up and the end.
- `restart_reconcile` (soaks with restarts): right after each restart's reconciliation, and at the
  end, the ledger holds exactly each exchange's fills (none missing, none it never made, none twice)
  and its positions per market equal the exchanges'; the reconciliation itself found no mismatch.

A check that never had anything to check cannot fail, so the report also counts how often each
invariant was exercised (`checks`, and per venue `checks_by_venue`), and how often a fill reached
the engine twice, per order tag (`duplicate_quote_fill`, `duplicate_hedge_fill`: the engine's two
duplicate checks, the order manager's for quote fills and the portfolio's for hedge fills, each
exercised).
"""

from __future__ import annotations

from collections import Counter, defaultdict, deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from bot.domain import (
    DEFAULT_VENUE,
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
    market_key,
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
    """One execution as the exchange booked it (its own log, not what it delivered). `fill_id` is the
    id as delivered (prefixed with the venue on a multi-venue soak)."""

    symbol: str
    fill_id: str
    client_id: str
    side: Side
    lots: int
    t_ns: int
    venue: str = DEFAULT_VENUE

    @property
    def key(self) -> tuple[str, str]:
        return market_key(self.venue, self.symbol), self.fill_id


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds of the time-based invariants, all in ns or base units (see the module docstring)."""

    start_ns: int
    stale_feed_ns: int
    cancel_bound_ns: int  # timer period + worst one-way command latency
    hedge_bound_ns: int
    inventory_hard_base: float
    max_order_base: float  # the largest quote of each spot venue, summed over the spot venues
    hedge_target_base: float
    hedge_band_base: float
    rss_limit_mb: float
    warmup_end_ns: int
    quiet_ns: int = 0  # `quotes_elsewhere`: how long a venue must have had no fault of its own


class ExchangeView(Protocol):
    """The soak's exchanges keyed by market (`bot.sim.soak_exchanges.SoakExchanges`)."""

    @property
    def instruments(self) -> Mapping[str, Instrument]: ...  # the engine's markets, by market key
    def take_fills(self) -> list[ExchangeFill]: ...
    def positions(self) -> dict[str, int]: ...  # by market key
    def open_orders(self) -> list[OpenOrder]: ...  # each naming its venue
    def faults_fired(self) -> dict[str, int]: ...  # venue -> faults fired on it so far


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


class QuoterView(Protocol):
    @property
    def venue(self) -> str: ...
    @property
    def risk_decision(self) -> RiskView: ...


class EngineView(Protocol):
    @property
    def position_lots(self) -> dict[str, int]: ...
    @property
    def portfolio(self) -> PortfolioView: ...
    @property
    def quoters(self) -> Sequence[QuoterView]: ...
    def hedge_halted(self) -> bool: ...
    def open_order_count(self) -> int: ...


@dataclass
class _Episode:
    """A condition that started at `since_ns` and whether it was already reported."""

    since_ns: int
    reported: bool = False


@dataclass
class VenueState:
    """What the checker knows of one spot venue's feed and quotes."""

    last_book_ns: int  # the last spot book update
    reachable_since_ns: int
    up: bool = True
    pause: _Episode | None = None
    stale: _Episode | None = None  # since_ns = the last spot book update before the silence
    bare: _Episode | None = None  # no quote here while another venue is faulted (`quotes_elsewhere`)
    faults_seen: int = 0  # the venue's fault count at the last step
    quiet_since_ns: int = 0  # since when no fault of its own fired


@dataclass
class CheckState:
    undelivered: dict[tuple[str, str], ExchangeFill] = field(default_factory=dict)  # executed, not yet delivered
    recent: set[tuple[str, str]] = field(default_factory=set)  # delivered fill ids, bounded (duplicate detection)
    recent_order: deque[tuple[str, str]] = field(default_factory=deque)
    tags: dict[str, str] = field(default_factory=dict)  # client id -> PlaceOrder.tag, the last RECENT_ORDERS
    fills_executed: int = 0
    ledger_lots: dict[str, int] = field(default_factory=dict)  # Σ delivered fills, per market key
    booked_in_step: int = 0
    mismatch_notes: list[dict[str, Any]] = field(default_factory=list)
    venues: dict[str, VenueState] = field(default_factory=dict)  # per spot venue
    hedge_venue_up: bool = True
    inventory_over: bool = False
    hedge_pending: _Episode | None = None
    rss_warm_mb: float | None = None


class SoakChecker:
    """See the module docstring. Feed `on_note` and `on_step` from the driver, then call `finish`.

    `spot_venues`: the venues the engine quotes `spot_symbol` on (the single-venue soak: the default
    venue only); `hedge_venue`: where its perp is."""

    def __init__(
        self,
        exchange: ExchangeView,
        engine: EngineView,
        spot_symbol: str,
        limits: Limits,
        spot_venues: Sequence[str] = (DEFAULT_VENUE,),
        hedge_venue: str = DEFAULT_VENUE,
    ) -> None:
        self.exchange = exchange
        self.engine = engine
        self.spot_symbol = spot_symbol
        self.spot_venues = tuple(spot_venues)
        self.hedge_venue = hedge_venue
        self.spot_keys = {venue: market_key(venue, spot_symbol) for venue in self.spot_venues}
        self.spot = exchange.instruments[self.spot_keys[self.spot_venues[0]]]
        self.symbols = tuple(exchange.instruments)  # market keys
        self.limits = limits
        self.state = CheckState(ledger_lots=dict.fromkeys(self.symbols, 0))
        self._reset_venues(limits.start_ns)
        self._quotes: dict[str, list[OpenOrder]] | None = None
        self.violations: list[Violation] = []
        self.counts: Counter[str] = Counter()
        self.checks: Counter[str] = Counter()
        self.checks_by_venue: dict[str, Counter[str]] = defaultdict(Counter)
        self.worst_ns: dict[str, int] = {
            "stale_quote": 0,
            "open_after_pause": 0,
            "hedge_band": 0,
            "quotes_elsewhere": 0,
        }
        """The measured margin of each time-bounded invariant: the longest a quote stayed open past the
        stale limit or after a pause (venue reachable), the longest a hedge took to get back in band,
        the longest a quiet venue showed no quote while another was faulted."""

    def _reset_venues(self, now_ns: int) -> None:
        fired = self.exchange.faults_fired()
        self.state.venues = {
            venue: VenueState(
                last_book_ns=now_ns,
                reachable_since_ns=now_ns,
                faults_seen=fired.get(venue, 0),
                quiet_since_ns=now_ns,
            )
            for venue in self.spot_venues
        }
        self.state.hedge_venue_up = True

    # ------------------------------------------------------------------ reporting

    def violate(self, now_ns: int, invariant: str, **details: Any) -> None:
        self.counts[invariant] += 1
        if len(self.violations) < MAX_RECORDS:
            self.violations.append(Violation((now_ns - self.limits.start_ns) / NS_PER_S, invariant, details))

    def _checked(self, name: str, venue: str | None = None, n: int = 1) -> None:
        self.checks[name] += n
        if venue is not None:
            self.checks_by_venue[venue or "default"][name] += n

    def _where(self, venue: str) -> dict[str, str]:
        """The venue field of a violation's details (none on a single-venue soak: it has one)."""
        return {} if len(self.spot_venues) == 1 and venue == DEFAULT_VENUE else {"venue": venue}

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
        self._quotes = None  # the exchanges' open quotes, read once a step and only when a check needs them
        self._note_faults(now_ns)
        for venue in self.spot_venues:
            self._check_pause(now_ns, venue)
            self._check_stale(now_ns, venue)
        if len(self.spot_venues) > 1:
            self._check_elsewhere(now_ns)
        self._check_hedge(now_ns)

    # ------------------------------------------------------------------ events

    def _take_exchange_fills(self) -> None:
        st = self.state
        for fill in self.exchange.take_fills():
            st.undelivered[fill.key] = fill
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
                market = market_key(event.venue, event.symbol)
                key = (market, event.fill_id)
                if key in st.recent:  # the same fill again: the engine must drop it (checked after the step)
                    self.checks[f"duplicate_{st.tags.get(event.client_id, 'unknown')}_fill"] += 1
                else:
                    self._remember(key)
                    if st.undelivered.pop(key, None) is None:
                        self.violate(
                            now_ns, "fill_accounting", phantom_fill=event.fill_id, client_id=event.client_id,
                            **self._where(event.venue),
                        )  # fmt: skip
                    st.ledger_lots[market] = st.ledger_lots.get(market, 0) + event.side.sign * event.size_lots
                    new_fills += 1
                    self.checks_by_venue[event.venue or "default"]["fill_accounting"] += 1
            elif kind is PositionSnapshot:
                assert isinstance(event, PositionSnapshot)
                snapshots += 1
                market = market_key(event.venue, event.symbol)
                self._checked("position_reconcile", event.venue)
                expected = st.ledger_lots.get(market, 0)
                if event.position_lots != expected:
                    self.violate(
                        now_ns,
                        "position_reconcile",
                        symbol=market,
                        exchange_lots=event.position_lots,
                        delivered_fills_lots=expected,
                        where="at_snapshot",
                    )
            elif kind is BookDelta or kind is BookSnapshot:
                if event.symbol == self.spot_symbol:  # type: ignore[union-attr]
                    venue_state = st.venues.get(event.venue)  # type: ignore[union-attr]
                    if venue_state is not None:
                        venue_state.last_book_ns = now_ns
            elif kind is FeedStatus:
                assert isinstance(event, FeedStatus)
                venue_state = st.venues.get(event.venue)
                if venue_state is not None:
                    if event.connected and not venue_state.up:
                        venue_state.reachable_since_ns = now_ns
                    venue_state.up = event.connected
                if event.venue == self.hedge_venue:
                    st.hedge_venue_up = event.connected
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

    def _reachable_for(self, now_ns: int, venue: str) -> int:
        """How long the venue has been reachable (0 while it is down)."""
        st = self.state.venues[venue]
        return now_ns - st.reachable_since_ns if st.up else 0

    def _open_spot_quotes(self, venue: str) -> list[OpenOrder]:
        """Our open orders on the spot symbol on `venue` (all venues read once a step)."""
        if self._quotes is None:
            self._quotes = {}
            for order in self.exchange.open_orders():
                if order.symbol == self.spot_symbol:
                    self._quotes.setdefault(order.venue, []).append(order)
        return self._quotes.get(venue, [])

    def _worst(self, name: str, value_ns: int) -> None:
        if value_ns > self.worst_ns[name]:
            self.worst_ns[name] = value_ns

    def _decision(self, venue: str) -> RiskView | None:
        for q in self.engine.quoters:
            if q.venue == venue:
                return q.risk_decision
        return None

    def _check_pause(self, now_ns: int, venue: str) -> None:
        decision = self._decision(venue)
        st = self.state.venues[venue]
        if decision is None or not (decision.pause or decision.halt):
            st.pause = None
            return
        if st.pause is None:
            st.pause = _Episode(now_ns)
            self._checked("open_after_pause", venue)
        open_quotes = self._open_spot_quotes(venue)
        if not open_quotes:
            return
        waited = min(now_ns - st.pause.since_ns, self._reachable_for(now_ns, venue))
        self._worst("open_after_pause", waited)
        if waited > self.limits.cancel_bound_ns and not st.pause.reported:
            st.pause.reported = True
            self.violate(
                now_ns, "open_after_pause", halt=decision.halt, paused_for_s=(now_ns - st.pause.since_ns) / NS_PER_S,
                open_orders=[o.client_id for o in open_quotes][:10], **self._where(venue),
            )  # fmt: skip

    def _silent_past_limit(self, now_ns: int, venue: str) -> int:
        """How long the venue's spot feed has been silent beyond the stale limit (<= 0: it is not)."""
        return now_ns - self.state.venues[venue].last_book_ns - self.limits.stale_feed_ns

    def _check_stale(self, now_ns: int, venue: str) -> None:
        st = self.state.venues[venue]
        lim = self.limits
        past = self._silent_past_limit(now_ns, venue)
        if past <= 0:
            st.stale = None
            return
        if st.stale is None or st.stale.since_ns != st.last_book_ns:
            st.stale = _Episode(st.last_book_ns)
            self._checked("stale_quote", venue)
        open_quotes = self._open_spot_quotes(venue)
        if not open_quotes:
            return
        overrun = min(past, self._reachable_for(now_ns, venue))
        self._worst("stale_quote", overrun)
        if overrun > lim.cancel_bound_ns and not st.stale.reported:
            st.stale.reported = True
            self.violate(
                now_ns, "stale_quote", silent_s=(now_ns - st.last_book_ns) / NS_PER_S,
                limit_s=(lim.stale_feed_ns + lim.cancel_bound_ns) / NS_PER_S,
                open_orders=[o.client_id for o in open_quotes][:10], **self._where(venue),
            )  # fmt: skip

    def _note_faults(self, now_ns: int) -> None:
        """A venue whose fault count moved is not quiet: its own trouble may rightly keep it from quoting."""
        fired = self.exchange.faults_fired()
        for venue, st in self.state.venues.items():
            n = fired.get(venue, 0)
            if n != st.faults_seen:
                st.faults_seen = n
                st.quiet_since_ns = now_ns

    def _faulted(self, now_ns: int, venue: str) -> bool:
        st = self.state.venues[venue]
        return not st.up or self._silent_past_limit(now_ns, venue) > 0

    def _quiet(self, now_ns: int, venue: str) -> bool:
        """No trouble of its own: no fault fired on it lately, connected, its book fresh, its guard
        neither pausing nor halting."""
        st = self.state.venues[venue]
        decision = self._decision(venue)
        return (
            now_ns - st.quiet_since_ns > self.limits.quiet_ns
            and st.up
            and self._silent_past_limit(now_ns, venue) <= -self.limits.cancel_bound_ns
            and not (decision is not None and (decision.pause or decision.halt))
        )

    def _check_elsewhere(self, now_ns: int) -> None:
        """`quotes_elsewhere`: see the module docstring."""
        faulted = [v for v in self.spot_venues if self._faulted(now_ns, v)]
        lim = self.limits
        halted = self.engine.hedge_halted() or not self.state.hedge_venue_up
        for venue, st in self.state.venues.items():
            others = [v for v in faulted if v != venue]
            if not others or halted or not self._quiet(now_ns, venue):
                st.bare = None
                continue
            if st.bare is None:
                st.bare = _Episode(now_ns)
                self._checked("quotes_elsewhere", venue)
            if self._open_spot_quotes(venue):
                st.bare.since_ns = now_ns  # quoting: the clock starts again
                continue
            bare_ns = now_ns - st.bare.since_ns
            self._worst("quotes_elsewhere", bare_ns)
            if bare_ns > lim.cancel_bound_ns and not st.bare.reported:
                st.bare.reported = True
                self.violate(
                    now_ns, "quotes_elsewhere", venue=venue, faulted=others, no_quote_for_s=bare_ns / NS_PER_S,
                )  # fmt: skip

    def _check_inventory(self, now_ns: int) -> None:
        self.checks["inventory_limit"] += 1
        positions = self.exchange.positions()
        lots = sum(positions.get(key, 0) for key in self.spot_keys.values())
        inventory = abs(self.spot.size(lots))
        limit = self.limits.inventory_hard_base + self.limits.max_order_base
        over = inventory > limit + 1e-9
        if over and not self.state.inventory_over:
            self.violate(now_ns, "inventory_limit", inventory_base=inventory, limit_base=limit)
        self.state.inventory_over = over

    def true_net_delta_base(self) -> float:
        """The engine's net delta with each market's position replaced by its exchange's."""
        portfolio = self.engine.portfolio
        delta = portfolio.net_delta_base()
        positions = self.exchange.positions()
        for key, inst in self.exchange.instruments.items():
            delta += inst.size(positions.get(key, 0) - portfolio.positions[key].lots)
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
        ledger against the exchanges, then watch the new engine from the exchanges' positions on."""
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
        st.hedge_pending = None
        self._reset_venues(now_ns)

    def on_final_ledger(self, now_ns: int, ledger_problems: dict[str, Any]) -> None:
        """The ledger against the exchanges once more, after the last run's shutdown."""
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
        """End-of-run checks, once the driver has shut the engine down and the exchanges settled."""
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
                exchange_open=[market_key(o.venue, o.client_id) for o in still_open][:10],
                engine_open=self.engine.open_order_count(),
            )
        growth = self.rss_growth_mb(final_rss_mb)
        if growth is not None:
            self.checks["memory_growth"] += 1
            if growth > self.limits.rss_limit_mb:
                self.violate(now_ns, "memory_growth", rss_growth_mb=round(growth, 2), limit_mb=self.limits.rss_limit_mb)

    def fills_in_flight(self) -> int:
        """Fills the exchanges executed that have not reached the engine yet."""
        self._take_exchange_fills()
        return len(self.state.undelivered)
