"""The engine: the one writer of trading state, a thin dispatcher over parts with one job each.

    venue A ─┐                       ┌─▶ MarketQuoter(A, TOKEN/USDT)  book, σ/A/k, ladder, slots, local risk
    venue B ─┼─events─▶ Engine.apply ─┼─▶ MarketQuoter(B, TOKEN/USDT)  (bot.core.quoter)
    venue C ─┤  keyed (venue, symbol) ├─▶ Portfolio: every position, calls, pool → net delta, PnL
    perp P ──┘                        └─▶ HedgeDesk(P, TOKEN/USDT:USDT): net delta → perp orders
                                          (bot.core.hedge_desk)
    requote ─▶ each dirty quoter, with the book-wide inputs: aggregate spot inventory (every quoter
               skews on it), the portfolio's equity (one drawdown rule for the book), the perp mark,
               whether hedging is halted ─▶ commands

Events in, commands out; time is passed in. `apply(event, now_ns)` routes the event to the part that
owns its market (`event.venue`, `event.symbol`) and returns urgent commands (resync, pull quotes,
hedges); `requote(now_ns)` recomputes the quotes of the markets something touched since the last
call (a book event touches its own market only; a fill touches every market, because the aggregate
inventory moved), which is how the runner conflates book updates without ever dropping a fill or an
ack. The cost of one market's event does not depend on how many markets there are.

Risk is split the same way: each quoter's `RiskGuard` holds the per-market rules (stale feed, order
rate, toxicity, reference band, the venue's obligation), evaluated on the book-wide inventory (the
inventory and notional limits are limits of the whole book) and the book's equity through one shared
`LossGuard` (drawdown).

The single-market engine (one spot, its perp, venue "") is the same code with one quoter: its
decisions and notes are what they were before the split (the replay golden files).

Notes for the log (`quote.updated`, `order.filled`, `feed.stale`, `risk.*`, ...) are buffered as
(name, fields) and drained by the runtime: the core decides and explains, the runtime writes.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from bot.core.book import OrderBook
from bot.core.deal import DealEvent, DealLifecycle
from bot.core.estimators import ArrivalEstimator, SigmaEstimator
from bot.core.execution import SaleExecutor
from bot.core.hedge_desk import HedgeDesk
from bot.core.hedger import HedgeParams, Hedger
from bot.core.lp import ConstantProductLp, PoolState, SimulatedPool
from bot.core.options import CallOption, annualised_vol
from bot.core.orders import OrderManager
from bot.core.portfolio import Portfolio
from bot.core.quoter import NS_PER_S, MarketQuoter, MarketSpec, Note
from bot.core.quoting import MarketInputs, QuoteParams, TheoQuote
from bot.core.risk import LossGuard, RiskDecision, RiskGuard, RiskParams
from bot.core.rounding import NoteRounding
from bot.domain import (
    DEFAULT_VENUE,
    BookDelta,
    BookSnapshot,
    CancelRejected,
    Command,
    Event,
    FeedStatus,
    FundingPaid,
    Instrument,
    Liquidity,
    MarkPrice,
    OrderAccepted,
    OrderCanceled,
    OrderFilled,
    OrderRejected,
    PlaceOrder,
    PositionSnapshot,
    Timer,
    TradePrint,
    market_key,
)

__all__ = ["NS_PER_S", "Engine", "EngineLike", "EngineParams", "EngineStats", "MarketSpec", "Note"]


class EngineLike(Protocol):
    """What a driver (the live runner, the simulation driver, replay) needs from an engine; tests
    drive it with small fakes."""

    def apply(self, event: Event, now_ns: int) -> list[Command]: ...
    def requote(self, now_ns: int) -> list[Command]: ...
    def shutdown(self, now_ns: int) -> list[Command]: ...
    def drain_notes(self) -> list[Note]: ...
    def open_order_count(self) -> int: ...
    def summary(self, now_ns: int) -> dict[str, Any]: ...


EstimatorFactory = Callable[["MarketSpec"], tuple[SigmaEstimator, ArrivalEstimator, SigmaEstimator | None]]


@dataclass(frozen=True, slots=True)
class EngineParams:
    """`spot`, `quote`, `risk` and `venue` are the first (main) spot market; `extra_markets` the other
    spot venues quoted on the same book; `perp` on `hedge_venue` hedges all of them."""

    spot: Instrument
    perp: Instrument | None
    quote: QuoteParams
    stale_feed_ns: int = 3 * NS_PER_S
    price_tolerance_ticks: int = 1
    max_order_age_ns: int = 30 * NS_PER_S
    warmup_ns: int = 5 * NS_PER_S
    risk: RiskParams = field(default_factory=RiskParams)
    hedge: HedgeParams = field(default_factory=HedgeParams)
    hedge_resume_after_ns: int = 30 * NS_PER_S  # a halted hedger (too many failures) retries after this
    client_id_tag: str = ""  # per run, so a restarted bot never reuses a client order id at the venue
    # the token-loan deal (docs/hedging.md): calls we hold and our DEX pool, counted in net delta
    options: tuple[CallOption, ...] = ()
    lp: ConstantProductLp | SimulatedPool | None = None
    # None: price the calls with the LONG σ estimator (annualised), never the quoting half-life
    option_vol_annual: float | None = None
    lp_volume_ratio: float = 0.0  # simulated DEX volume = this × the main spot's public trade volume
    deal_lifecycle: DealLifecycle | None = None  # calls settled at expiry, the loan's return date
    sale: SaleExecutor | None = None  # the deal's initial sale, sold on the main spot market
    venue: str = DEFAULT_VENUE  # the main spot market's venue
    extra_markets: tuple[MarketSpec, ...] = ()  # more spot venues (same token), quoted on the same book
    hedge_venue: str = DEFAULT_VENUE

    @property
    def markets(self) -> tuple[MarketSpec, ...]:
        return (MarketSpec(self.spot, self.quote, self.risk, self.venue), *self.extra_markets)


@dataclass
class EngineStats:
    """The whole book's counters (each market counts its own quotes and stale episodes: MarketStats)."""

    fills: int = 0
    volume_base: float = 0.0
    volume_quote: float = 0.0
    fees_quote: float = 0.0
    rejects: int = 0
    resyncs: int = 0
    unknown_fills: int = 0
    duplicate_fills: int = 0
    position_mismatches: int = 0
    rejected_events: int = 0
    max_abs_inventory_base: float = 0.0
    hedges: int = 0
    hedge_fills: int = 0
    hedger_halts: int = 0
    reasons: dict[str, int] = field(default_factory=dict)


class Engine:
    def __init__(
        self,
        params: EngineParams,
        sigma: SigmaEstimator,
        arrivals: ArrivalEstimator,
        start_ns: int = 0,
        sigma_long: SigmaEstimator | None = None,
        make_estimators: EstimatorFactory | None = None,
    ) -> None:
        """`sigma`, `arrivals`, `sigma_long`: the main market's estimators; `make_estimators` builds a
        fresh set for each of `params.extra_markets` (required when there are any)."""
        self.p = params
        if params.options and params.option_vol_annual is None and sigma_long is None:
            # the quoting σ (a 60 s half-life) would mark one-year calls with minute-scale vol noise
            raise ValueError("calls priced from the estimator need sigma_long (or option_vol_annual)")
        if params.extra_markets and make_estimators is None:
            raise ValueError("several spot markets need make_estimators (one set of estimators per market)")
        specs = params.markets
        keys = [market_key(s.venue, s.spot.symbol) for s in specs]
        perp_key = market_key(params.hedge_venue, params.perp.symbol) if params.perp is not None else None
        if len(set(keys)) != len(keys) or perp_key in keys:
            raise ValueError(f"each market (venue, symbol) once: {keys} + hedge {perp_key}")
        instruments = {key: spec.spot for key, spec in zip(keys, specs, strict=True)}
        if params.perp is not None and perp_key is not None:
            instruments[perp_key] = params.perp
        self.portfolio = Portfolio(instruments.values(), options=params.options, lp=params.lp, keys=instruments)
        self.stats = EngineStats()
        self.notes: list[Note] = []
        self.start_ns = start_ns
        self.stopping = False
        tag = f"-{params.client_id_tag}" if params.client_id_tag else ""
        # the drawdown rule is the whole book's: one LossGuard shared by every market's guard
        risk0 = params.risk
        self.loss = LossGuard(risk0.max_drawdown_quote, risk0.pause_cooldown_s, risk0.halt_window_s)
        self._dirty: list[MarketQuoter] = []  # quoters touched since the last requote, in touch order
        self.quoters: list[MarketQuoter] = []
        for i, (key, spec) in enumerate(zip(keys, specs, strict=True)):
            if i == 0:
                estimators: tuple[SigmaEstimator, ArrivalEstimator, SigmaEstimator | None] = (
                    sigma,
                    arrivals,
                    sigma_long,
                )
            else:
                assert make_estimators is not None
                estimators = make_estimators(spec)
            self.quoters.append(
                MarketQuoter(
                    spec,
                    self.portfolio.positions[key],
                    estimators[0],
                    estimators[1],
                    self.notes,
                    self._dirty,
                    client_id_prefix=f"q{tag}" if i == 0 else f"q{i}{tag}",
                    loss=self.loss,
                    start_ns=start_ns,
                    sigma_long=estimators[2],
                    stale_feed_ns=params.stale_feed_ns,
                    price_tolerance_ticks=params.price_tolerance_ticks,
                    max_order_age_ns=params.max_order_age_ns,
                )
            )
        self.quoter = self.quoters[0]  # the main market: its mid values the calls and the pool
        self._by_venue: dict[str, dict[str, MarketQuoter]] = {}
        for q in self.quoters:
            self._by_venue.setdefault(q.venue, {})[q.spot.symbol] = q
        self.desk: HedgeDesk | None = None
        if params.perp is not None:
            decimals = max(q.rounding.size_decimals for q in self.quoters)
            hedger = (
                Hedger(params.hedge, params.perp, client_id_prefix=f"h{tag}-", venue=params.hedge_venue)
                if params.hedge.enabled
                else None
            )
            self.desk = HedgeDesk(
                params.perp,
                hedger,
                self.portfolio,
                self.stats,
                self.notes,
                self.touch_all,
                venue=params.hedge_venue,
                start_ns=start_ns,
                resume_after_ns=params.hedge_resume_after_ns,
                warmup_ns=params.warmup_ns,
                band_base=params.hedge.band_base,
                delta_decimals=max(decimals, NoteRounding.for_instrument(params.perp).size_decimals),
            )
        # (key, book, instrument) per book: the quoters' then the perp's, for marks and seeds
        self._books: list[tuple[str, OrderBook, Instrument]] = [(q.key, q.book, q.spot) for q in self.quoters]
        if self.desk is not None:
            self._books.append((self.desk.key, self.desk.book, self.desk.perp))
        self._book_of: dict[str, tuple[OrderBook, Instrument]] = {k: (b, i) for k, b, i in self._books}
        self._pending_seeds: dict[str, int] = {}  # restored positions waiting for a mid to be entered at
        self._suspect_diffs: dict[str, int] = {}  # venue − ours seen on the last position snapshot
        self._underlying_mark = (math.nan, 0)  # (main mid, time) the calls and pool were last valued at
        self._deal_events: list[DealEvent] = []  # settled calls, the loan's return: for the ledger
        self._pool_version = -1  # the simulated pool's version last handed to the ledger
        # equity is read on every requote but changes only with the portfolio (its `version`) or a mid
        # (`_marks_version`, bumped when any book's mid moves): cache it on both
        self._marks_version = 0
        self._equity_key: tuple[int, int] | None = None
        self._equity_quote = 0.0
        self._inventory_version = -1  # the portfolio version `_inventory_base` was summed at
        self._inventory_base = 0.0
        self._handlers: dict[type, Callable[[Any, int], list[Command]]] = {
            BookDelta: self._on_book,
            BookSnapshot: self._on_book,
            TradePrint: self._on_trade,
            OrderFilled: self._on_fill,
            OrderAccepted: self._on_accepted,
            OrderCanceled: self._on_canceled,
            OrderRejected: self._on_rejected,
            CancelRejected: self._on_cancel_rejected,
            PositionSnapshot: self._on_position_event,
            MarkPrice: self._on_mark,
            FundingPaid: self._on_funding,
            FeedStatus: self._on_feed_status,
            Timer: self._on_timer,
        }

    # ================================================================== routing

    def _quoter_of(self, venue: str, symbol: str) -> MarketQuoter | None:
        markets = self._by_venue.get(venue)
        return markets.get(symbol) if markets is not None else None

    def book_for(self, venue: str, symbol: str) -> OrderBook | None:
        """The book `apply` applies (venue, symbol)'s book events to, as `_on_book` routes them (None:
        it ignores them). A replay's simulated venue reads it instead of keeping its own copy."""
        part = self._quoter_of(venue, symbol)
        if part is not None:
            return part.book
        desk = self.desk
        return desk.book if desk is not None and self._is_perp(venue, symbol) else None

    def _is_perp(self, venue: str, symbol: str) -> bool:
        desk = self.desk
        return desk is not None and symbol == desk.perp.symbol and venue == desk.venue

    def touch_all(self, trigger: str) -> None:
        """Something every market's quotes depend on changed (inventory, hedging)."""
        for q in self.quoters:
            q.touch(trigger)

    # ================================================================== events

    def apply(self, event: Event, now_ns: int) -> list[Command]:
        # one dict lookup on the event's type instead of a chain of isinstance checks: most events
        # are trades and book deltas, which used to walk past several checks each
        handler = self._handlers.get(type(event))
        if handler is None:
            handler = self._handler_for(type(event))
        return handler(event, now_ns)

    def _handler_for(self, event_type: type) -> Callable[[Any, int], list[Command]]:
        """The handler of a subclass of a domain event (tests may subclass), or a no-op; remembered."""
        handler = next((h for t, h in self._handlers.items() if issubclass(event_type, t)), self._ignore)
        self._handlers[event_type] = handler
        return handler

    def _ignore(self, event: Event, now_ns: int) -> list[Command]:
        return []

    def _orders_of(self, venue: str, symbol: str) -> tuple[MarketQuoter, OrderManager]:
        """The quoter whose orders an order event is about; an order on no quoted market (adopted at
        recovery, or a stray id) is the main market's manager's to count."""
        q = self._quoter_of(venue, symbol) or self.quoter
        return q, q.orders

    def _on_accepted(self, event: OrderAccepted, now_ns: int) -> list[Command]:
        if self._is_sale(event.client_id):
            return self._on_sale_order(event)
        desk = self.desk
        if desk is not None and desk.owns(event.client_id):
            return desk.on_order_event(event, now_ns, self.stopping)
        self._orders_of(event.venue, event.symbol)[1].on_accepted(event)
        return []

    def _on_canceled(self, event: OrderCanceled, now_ns: int) -> list[Command]:
        if self._is_sale(event.client_id):
            return self._on_sale_order(event)
        desk = self.desk
        if desk is not None and desk.owns(event.client_id):
            return desk.on_order_event(event, now_ns, self.stopping)
        q, orders = self._orders_of(event.venue, event.symbol)
        if orders.on_canceled(event) is not None:
            q.note("order.canceled", client_id=event.client_id, symbol=event.symbol, reason=event.reason)
        q.touch("order_canceled")
        return []

    def _on_rejected(self, event: OrderRejected, now_ns: int) -> list[Command]:
        if self._is_sale(event.client_id):
            return self._on_sale_order(event)
        desk = self.desk
        if desk is not None and desk.owns(event.client_id):
            return desk.on_order_event(event, now_ns, self.stopping)
        q, orders = self._orders_of(event.venue, event.symbol)
        orders.on_rejected(event)
        self.stats.rejects += 1
        q.stats.rejects += 1
        q.note("order.rejected", client_id=event.client_id, symbol=event.symbol, reason=event.reason)
        q.touch("order_rejected")
        return []

    def _on_cancel_rejected(self, event: CancelRejected, now_ns: int) -> list[Command]:
        if self._is_sale(event.client_id):
            return self._on_sale_order(event)
        q, orders = self._orders_of(event.venue, event.symbol)
        orders.on_cancel_rejected(event)
        q.touch("cancel_rejected")
        return []

    def _on_position_event(self, event: PositionSnapshot, now_ns: int) -> list[Command]:
        self._on_position(event)
        return []

    def _on_mark(self, event: MarkPrice, now_ns: int) -> list[Command]:
        if self.desk is not None and event.venue == self.desk.venue:
            self.desk.on_mark(event.mark_ticks)
        return []

    def _on_funding(self, event: FundingPaid, now_ns: int) -> list[Command]:
        self.portfolio.on_funding(event)
        return []

    def _on_book(self, event: BookDelta | BookSnapshot, now_ns: int) -> list[Command]:
        part: MarketQuoter | HedgeDesk | None = self._quoter_of(event.venue, event.symbol)
        if part is None:
            if not self._is_perp(event.venue, event.symbol):
                return []
            part = self.desk
            assert part is not None
        book = part.book
        mid_before = book.mid_ticks
        out = part.on_book(event, now_ns)
        if out:  # a broken book: pulled, and a snapshot asked for
            self.stats.resyncs += 1
        if book.mid_ticks != mid_before:
            self._marks_version += 1
        return out

    def _on_trade(self, event: TradePrint, now_ns: int) -> list[Command]:
        q = self._quoter_of(event.venue, event.symbol)  # the perp's trades (most of them) inform nothing
        if q is None or not q.on_trade(event):
            return []
        if q is self.quoter and self.p.lp_volume_ratio > 0.0:
            notional = q.spot.notional(event.price_ticks, event.size_lots)
            self.portfolio.on_lp_volume(
                self.p.lp_volume_ratio * notional, event.aggressor.sign, trade_id=event.trade_id
            )
        return []

    def _on_fill(self, event: OrderFilled, now_ns: int) -> list[Command]:
        if self._is_sale(event.client_id):
            return self._on_sale_fill(event, now_ns)
        desk = self.desk
        if desk is not None and desk.owns(event.client_id):
            return desk.on_fill(event, now_ns)
        q = self._quoter_of(event.venue, event.symbol)
        result = (q or self.quoter).orders.on_fill(event)
        if not result.is_new:
            self.stats.duplicate_fills += 1
            return []
        if q is not None:
            instrument = q.spot
        elif desk is not None and self._is_perp(event.venue, event.symbol):
            instrument = desk.perp
        else:
            return []
        if result.order is None:
            self.stats.unknown_fills += 1
        self.portfolio.on_fill(event, self._mid_px(market_key(event.venue, event.symbol)), hedge=False)
        if q is not None:
            q.risk.on_fill(event.side, instrument.price(event.price_ticks), instrument.size(event.size_lots), now_ns)
            if event.liquidity is Liquidity.MAKER:  # its public print is our quote's fill, not market flow
                q.arrivals.on_own_fill(
                    event.ts_recv_ns, instrument.price(event.price_ticks), instrument.size(event.size_lots)
                )
        notional = instrument.notional(event.price_ticks, event.size_lots)
        size_base = instrument.size(event.size_lots)
        self.stats.fills += 1
        self.stats.volume_base += size_base
        self.stats.volume_quote += notional
        self.stats.fees_quote += event.fee_quote
        if q is not None:
            q.stats.fills += 1
            q.stats.volume_base += size_base
            q.stats.volume_quote += notional
            q.stats.fees_quote += event.fee_quote
        inventory = self.inventory_base()
        self.stats.max_abs_inventory_base = max(self.stats.max_abs_inventory_base, abs(inventory))
        latency_ms = None
        rounding = q.rounding if q is not None else desk.rounding  # type: ignore[union-attr]
        if result.order is not None:
            latency_ms = round((event.ts_recv_ns - result.order.placed_ns) / 1e6, 3)
        (q or self.quoter).note(
            "order.filled",
            symbol=event.symbol,
            client_id=event.client_id,
            side=event.side.value,
            price=rounding.price_of_ticks(event.price_ticks),
            size=rounding.size_of_lots(event.size_lots),
            fee=event.fee_quote,
            liquidity=event.liquidity.value,
            latency_ms=latency_ms,
            inventory=self.quoter.rounding.size(inventory),
            tag=result.order.tag if result.order is not None else "unknown",
        )
        # the aggregate inventory moved: every market's reservation price with it
        if q is not None:
            q.touch("fill")
        self.touch_all("fill")
        if desk is not None and q is not None:
            desk.note_spot_fill(now_ns)
            return desk.hedge(now_ns, self.stopping)
        return []

    def _mid_px(self, key: str) -> float:
        entry = self._book_of.get(key)
        mid = entry[0].mid_ticks if entry is not None else None
        if mid is None or entry is None:
            return math.nan
        return mid * entry[1].tick_size

    def _on_position(self, event: PositionSnapshot) -> None:
        key = market_key(event.venue, event.symbol)
        if key not in self.portfolio.positions:
            return
        # lots restored or seeded but still waiting for a mid are ours too: without them every
        # snapshot of a burst (a venue replaying what it queued while we were away, before any book)
        # found the same difference again and seeded it again, cumulatively
        ours = self.portfolio.position_lots(key) + self._pending_seeds.get(key, 0)
        diff = event.position_lots - ours
        if diff == 0:
            self._suspect_diffs.pop(key, None)
            return
        if self._suspect_diffs.get(key) != diff:
            # First sight: a fill may still be on its way (a polled position can overtake the fill
            # on the stream). Only the same difference on the next snapshot is a real mismatch.
            self._suspect_diffs[key] = diff
            return
        del self._suspect_diffs[key]
        # The venue is the source of truth for positions; a mismatch means we missed or doubled a fill.
        self.stats.position_mismatches += 1
        self._note(
            "position.mismatch", event.venue, symbol=event.symbol, ours_lots=ours, venue_lots=event.position_lots
        )
        self._seed(key, event.position_lots - ours)

    def restore(self, positions_lots: dict[str, int], entry_px: dict[str, float] | None = None) -> None:
        """Start from positions the venue already holds (restart recovery), keyed as the portfolio's
        positions. A position is entered at `entry_px` (the ledger's average cost) when given, else at
        the first mid seen."""
        for key, lots in positions_lots.items():
            if key not in self.portfolio.positions or lots == 0:
                continue
            px = (entry_px or {}).get(key, math.nan)
            if px > 0.0:
                self.portfolio.seed_position(key, lots, px)
            else:
                self._pending_seeds[key] = self._pending_seeds.get(key, 0) + lots
                self._inventory_version = -1  # the aggregate counts pending lots too
        self.touch_all("restore")

    def _seed(self, key: str, lots: int) -> None:
        """Book `lots` of position that did not come from a fill we saw, at the current mid."""
        mid = self._mid_px(key)
        if mid == mid:
            self.portfolio.seed_position(key, lots, mid)
        else:
            self._pending_seeds[key] = self._pending_seeds.get(key, 0) + lots
            self._inventory_version = -1
        self.touch_all("position")

    def _on_feed_status(self, event: FeedStatus, now_ns: int) -> list[Command]:
        """A venue's feed: on a disconnect every book of that venue it names waits for a snapshot, and
        every quote on that venue is pulled; the other venues keep quoting."""
        if event.connected:
            self._note("feed.connected", event.venue, symbol=event.symbol, reason=event.reason)
            return []
        self._note("feed.disconnected", event.venue, symbol=event.symbol, reason=event.reason)
        out: list[Command] = []
        quoters = self._by_venue.get(event.venue, {})
        for symbol, q in quoters.items():
            if event.symbol in ("*", symbol):
                q.awaiting_snapshot = True  # deltas were missed: quote again only after a snapshot
        desk = self.desk
        if desk is not None and desk.venue == event.venue and event.symbol in ("*", desk.perp.symbol):
            desk.awaiting_snapshot = True
            if self.p.hedge_venue != DEFAULT_VENUE and desk.check_venue(now_ns, self.p.stale_feed_ns):
                self.touch_all("hedge_venue")
        for q in quoters.values():
            out.extend(q.pull_quotes())
        return out

    def _on_timer(self, event: Timer, now_ns: int) -> list[Command]:
        out: list[Command] = []
        for q in self.quoters:
            out.extend(q.on_timer(now_ns))
        self._mark_portfolio(now_ns)
        desk = self.desk
        if desk is not None:
            # a hedge venue of its own can fail alone: then no venue quotes the side that adds unhedged
            # delta (on one venue the perp's feed is the spot's, whose loss pulls every quote already)
            if self.p.hedge_venue != DEFAULT_VENUE and desk.check_venue(now_ns, self.p.stale_feed_ns):
                self.touch_all("hedge_venue")
            out.extend(desk.on_timer(now_ns, self.stopping))
        if self.p.sale is not None:
            out.extend(self._sale_orders(self.p.sale, now_ns))
        return out

    # ================================================================== the deal's sale

    def _is_sale(self, client_id: str) -> bool:
        return self.p.sale is not None and self.p.sale.owns(client_id)

    def _sale_orders(self, sale: SaleExecutor, now_ns: int) -> list[Command]:
        q, desk = self.quoter, self.desk
        decision = q.risk_decision  # the main market's guard at its last requote
        can_trade = (
            not self.stopping
            # a paused or halted guard (a drawdown) stops the sale too, not only the quotes: a sale
            # order left resting through a halt was the 24-h soak's 7 `open_after_pause` violations
            and not (decision.pause or decision.halt)
            and now_ns - self.start_ns >= self.p.warmup_ns
            and q.book.is_valid
            and not q.stale
            and not q.awaiting_snapshot
            and desk is not None
            and desk.hedger is not None
            and desk.halted_ns is None
            and not desk.down_reason
        )
        out = sale.on_timer(now_ns, q.book.best_bid_ticks, q.book.best_ask_ticks, can_trade)
        for c in out:
            if isinstance(c, PlaceOrder):
                self._note(
                    "deal.sale_order",
                    sale.venue,
                    client_id=c.client_id,
                    price=q.rounding.price_of_ticks(c.price_ticks),
                    size=q.rounding.size_of_lots(c.size_lots),
                    sold_base=q.rounding.size(sale.sold_base),
                    target_base=q.rounding.size(sale.target_base(now_ns)),
                )
        return out

    def _on_sale_order(self, event: OrderAccepted | OrderRejected | OrderCanceled | CancelRejected) -> list[Command]:
        assert self.p.sale is not None
        self.p.sale.on_order_event(event)
        if isinstance(event, OrderRejected):
            self._note("deal.sale_rejected", event.venue, client_id=event.client_id, reason=event.reason)
        return []

    def _on_sale_fill(self, event: OrderFilled, now_ns: int) -> list[Command]:
        """A fill of the sale: booked in the main spot position like any fill (as hedge cost: its
        slippage vs the mid and its fee), but not part of the inventory the quoters mean-revert
        (`inventory_base`), recorded as a `sold` deal event, and hedged like any other delta."""
        sale = self.p.sale
        assert sale is not None
        if not sale.on_fill(event, now_ns):
            self.stats.duplicate_fills += 1
            return []
        self.portfolio.on_fill(event, self._mid_px(self.quoter.key), hedge=True)
        size, px = self.spot.size(event.size_lots), self.spot.price(event.price_ticks)
        self._deal_events.append(DealEvent("sold", now_ns, size, px))
        self.stats.fees_quote += event.fee_quote
        rounding = self.quoter.rounding
        # an order.filled line like every fill of ours (what reads the log for fills finds it), tagged
        self.quoter.note(
            "order.filled",
            symbol=event.symbol,
            client_id=event.client_id,
            side=event.side.value,
            price=rounding.price_of_ticks(event.price_ticks),
            size=rounding.size_of_lots(event.size_lots),
            fee=event.fee_quote,
            liquidity=event.liquidity.value,
            latency_ms=None,
            inventory=rounding.size(self.inventory_base()),
            tag="sale",
        )
        self._note(
            "deal.sale_fill",
            event.venue,
            client_id=event.client_id,
            price=rounding.price_of_ticks(event.price_ticks),
            size=rounding.size_of_lots(event.size_lots),
            fee=event.fee_quote,
            sold_base=rounding.size(sale.sold_base),
            total_base=sale.p.total_base,
        )
        desk = self.desk
        return desk.hedge(now_ns, self.stopping) if desk is not None else []

    def _mark_portfolio(self, now_ns: int) -> None:
        main_key = self.quoter.key
        deal = bool(self.p.options or self.p.lp is not None or self.p.deal_lifecycle is not None)
        for key, book, instrument in self._books:
            mid_ticks = book.mid_ticks
            if mid_ticks is None or not book.is_valid:
                continue
            mid = mid_ticks * instrument.tick_size  # as `_mid_px(key)`, without finding the book again
            pending = self._pending_seeds.pop(key, 0)
            if pending:
                self.portfolio.seed_position(key, pending, mid)
            self.portfolio.mark(key, mid)
            if deal and key == main_key:
                # the calls move with the mid and, slowly, with time: revalue on a new mid or each second
                last_px, last_ns = self._underlying_mark
                if mid != last_px or now_ns - last_ns >= NS_PER_S:
                    self._underlying_mark = (mid, now_ns)
                    self.portfolio.mark_underlying(mid, now_ns, self._option_vol_annual(mid))
                    if self.p.deal_lifecycle is not None:
                        self._deal_due(self.p.deal_lifecycle, mid, now_ns)

    def _deal_due(self, lifecycle: DealLifecycle, mid: float, now_ns: int) -> None:
        for name, fields, event in lifecycle.on_mark(self.portfolio, mid, now_ns, self._option_vol_annual(mid)):
            self.notes.append((name, fields))
            self._deal_events.append(event)

    def pop_deal_events(self) -> list[DealEvent]:
        """The deal events since the last call (the ledger observer records them)."""
        out, self._deal_events = self._deal_events, []
        return out

    def pop_pool_state(self) -> PoolState | None:
        """The simulated pool's state if it changed since the last call (the ledger observer persists
        it, so a restart carries the reserves over), else None."""
        lp = self.p.lp
        if not isinstance(lp, SimulatedPool) or lp.version == self._pool_version:
            return None
        self._pool_version = lp.version
        return lp.state()

    def _option_vol_annual(self, spot_px: float) -> float:
        """The calls' Black-Scholes σ: the configured implied vol, else the long-horizon σ estimator.

        Never the quoting σ: its short half-life is right for a quote that lives seconds, but it would
        put minute-scale vega noise into equity (the drawdown guard reads it) and jitter the hedge."""
        if self.p.option_vol_annual is not None:
            return self.p.option_vol_annual
        sigma_long = self.quoter.sigma_long
        if sigma_long is None:  # no calls (checked in __init__): only the pool is valued, σ unused
            return math.nan
        return annualised_vol(sigma_long.sigma_px_per_sqrt_s, spot_px)

    # ================================================================== quoting

    def requote(self, now_ns: int) -> list[Command]:
        dirty = self._dirty
        if not dirty:
            return []
        out: list[Command] = []
        inventory = self.inventory_base()
        desk = self.desk
        reference_px = desk.reference_px() if desk is not None else math.nan
        hedge_halted = desk is not None and desk.halted_ns is not None
        withhold = desk.withheld_side() if desk is not None else None
        stopping = self.stopping
        while dirty:
            q = dirty.pop(0)
            out.extend(q.requote(now_ns, inventory, self._equity, reference_px, hedge_halted, stopping, withhold))
        return out

    # ================================================================== lifecycle & queries

    def shutdown(self, now_ns: int) -> list[Command]:
        self.stopping = True
        out: list[Command] = []
        for q in self.quoters:
            out.extend(q.orders.cancel_all())
        if self.desk is not None:
            out.extend(self.desk.cancel_all())
        if self.p.sale is not None:
            out.extend(self.p.sale.cancel_all())
        return out

    def _note(self, name: str, venue: str, **fields: Any) -> None:
        """A note about a venue as a whole (its feed, its positions): names the venue unless it is the default."""
        if venue != DEFAULT_VENUE:
            fields["venue"] = venue
        self.notes.append((name, fields))

    def drain_notes(self) -> list[Note]:
        notes = self.notes[:]
        self.notes.clear()  # the parts append to this same list
        return notes

    def not_quoting_reason(self) -> str:
        """Why no quotes are live right now ("" when any market quotes), for /health."""
        if self.stopping:
            return "stopping"
        first = ""
        hedge_halted = self.hedge_halted()
        for q in self.quoters:
            reason = q.not_quoting_reason(hedge_halted)
            if reason == "":
                return ""
            first = first or reason
        return first

    def requotes_pending(self) -> int:
        """Markets touched since the last `requote` (each is requoted by the next call): lets a
        benchmark tell an event that only updated a book from one that requoted its market."""
        return len(self._dirty)

    def hedge_halted(self) -> bool:
        """Hedging halted (too many failed hedges): every quote is pulled, each fill would add unhedged delta."""
        return self.desk is not None and self.desk.halted_ns is not None

    def order_manager_of(self, venue: str, symbol: str) -> OrderManager:
        """The order manager a fill on `(venue, symbol)` reaches (`_on_fill`): its market's quoter's,
        the main market's for any other (a hedge or an order of an earlier run)."""
        return self._orders_of(venue, symbol)[1]

    def open_order_count(self) -> int:
        hedges = self.desk.open_orders() if self.desk is not None else 0
        sale = self.p.sale.open_orders() if self.p.sale is not None else 0
        return sum(len(q.orders.live_orders()) for q in self.quoters) + hedges + sale

    @property
    def position_lots(self) -> dict[str, int]:
        """Our position per market key (the bare symbol on the default venue), lots."""
        return {key: pos.lots for key, pos in self.portfolio.positions.items()}

    def inventory_base(self) -> float:
        """The aggregate spot inventory of the whole book: every spot venue's position, base units,
        less what the deal's sale sold (the quoters would buy that back; the perp covers it). A
        position restored at a restart but not yet entered (its venue's book has shown no mid yet)
        counts: the venue holds it, whatever price it will be entered at."""
        portfolio = self.portfolio
        if portfolio.version != self._inventory_version:
            total = 0.0
            for q in self.quoters:
                total += self.spot_position_base(q)
            if self.p.sale is not None:
                total -= self.p.sale.position_base
            self._inventory_base = total
            self._inventory_version = portfolio.version
        return self._inventory_base

    def spot_position_base(self, q: MarketQuoter) -> float:
        """One spot market's position, base units, with the lots restored but not yet entered."""
        pending = self._pending_seeds.get(q.key, 0) if self._pending_seeds else 0
        return q.spot.size(q.position.lots + pending) if pending else q.position.base

    def mid_px(self) -> float | None:
        return self.quoter.mid_px()

    def equity_quote(self) -> float:
        """Session PnL of the whole portfolio (every spot venue, perp, calls, pool) at the latest marks."""
        return self._equity(0.0)

    def _equity(self, mid_ticks: float) -> float:
        """`equity_quote`, cached on the portfolio's version and the books' mids (`mid_ticks`, the
        caller's market's mid, is covered by the latter)."""
        key = (self.portfolio.version, self._marks_version)
        if key != self._equity_key:
            for market, book, instrument in self._books:
                mid = book.mid_ticks
                if mid is not None:
                    self.portfolio.mark(market, mid * instrument.tick_size)  # as `_mid_px(market)`
            self._equity_key = key
            self._equity_quote = self.portfolio.total_pnl_quote()
        return self._equity_quote

    # ---- the main market's parts, for readers of a single-market engine (status, tests) ----

    @property
    def spot(self) -> Instrument:
        return self.quoter.spot

    @property
    def orders(self) -> OrderManager:
        return self.quoter.orders

    @property
    def sigma(self) -> SigmaEstimator:
        return self.quoter.sigma

    @property
    def sigma_long(self) -> SigmaEstimator | None:
        return self.quoter.sigma_long

    @property
    def arrivals(self) -> ArrivalEstimator:
        return self.quoter.arrivals

    @property
    def risk(self) -> RiskGuard:
        return self.quoter.risk

    @property
    def risk_decision(self) -> RiskDecision:
        return self.quoter.risk_decision

    @property
    def last_inputs(self) -> MarketInputs | None:
        return self.quoter.last_inputs

    @property
    def last_theo(self) -> TheoQuote | None:
        return self.quoter.last_theo

    @property
    def hedger(self) -> Hedger | None:
        return self.desk.hedger if self.desk is not None else None

    @property
    def mark_ticks(self) -> int | None:
        return self.desk.mark_ticks if self.desk is not None else None

    @property
    def books(self) -> dict[str, OrderBook]:
        """Every book by market key."""
        return {key: book for key, book, _ in self._books}

    @property
    def awaiting_snapshot(self) -> set[str]:
        out = {q.key for q in self.quoters if q.awaiting_snapshot}
        if self.desk is not None and self.desk.awaiting_snapshot:
            out.add(self.desk.key)
        return out

    @property
    def stale(self) -> set[str]:
        return {q.key for q in self.quoters if q.stale}

    # ================================================================== the session summary

    def summary(self, now_ns: int) -> dict[str, Any]:
        desk = self.desk
        stats = self.stats
        out = {
            "quotes": sum(q.stats.quotes for q in self.quoters),
            "fills": stats.fills,
            "volume": round(stats.volume_base, 10),
            "volume_quote": round(stats.volume_quote, 6),
            "inventory": self.inventory_base(),
            "max_abs_inventory": stats.max_abs_inventory_base,
            "pnl": round(self.equity_quote(), 6),
            "fees": round(stats.fees_quote, 6),
            "open_orders_at_exit": self.open_order_count(),
            "rejects": stats.rejects,
            "resyncs": stats.resyncs,
            "stale_episodes": sum(q.stats.stale_episodes for q in self.quoters),
            "duplicate_fills_dropped": stats.duplicate_fills,
            "position_mismatches": stats.position_mismatches,
            "hedges": stats.hedges,
            "hedge_fills": stats.hedge_fills,
            "net_delta": round(self.portfolio.net_delta_base(), 10),
            "net_delta_in_band_pct": desk.in_band_pct() if desk is not None else None,
            "pnl_attribution": {k: round(v, 6) for k, v in self.portfolio.pnl().components().items()},
            "option_delta": round(self.portfolio.option_delta_base(), 10),
            "lp_delta": round(self.portfolio.lp_delta_base(), 10),
            **(desk.summary() if desk is not None else {}),
            "obligations": self.quoter.obligation_summary(now_ns),
        }
        if self.p.sale is not None:
            out["sale"] = self.p.sale.summary(now_ns)
        if isinstance(self.p.lp, SimulatedPool):
            out["pool"] = self.p.lp.summary(self.quoter.mid_px())
        if any(q.venue != DEFAULT_VENUE for q in self.quoters):
            out["venues"] = self.venue_summary(now_ns)
        return out

    def venue_summary(self, now_ns: int) -> dict[str, dict[str, Any]]:
        """Per spot venue: its fills, volume, inventory and obligation compliance (the hedge venue too)."""
        venues: dict[str, dict[str, Any]] = {}
        for q in self.quoters:
            venues[q.venue or "default"] = {
                "symbol": q.spot.symbol,
                "role": "spot",
                "quotes": q.stats.quotes,
                "fills": q.stats.fills,
                "volume_quote": round(q.stats.volume_quote, 6),
                "fees": round(q.stats.fees_quote, 6),
                "inventory": self.spot_position_base(q),
                "rejects": q.stats.rejects,
                "stale_episodes": q.stats.stale_episodes,
                "obligations": q.obligation_summary(now_ns),
            }
        desk = self.desk
        if desk is not None:
            entry = venues.setdefault(desk.venue or "default", {})
            entry["hedge"] = {
                "symbol": desk.perp.symbol,
                "hedges": self.stats.hedges,
                "fills": self.stats.hedge_fills,
                "position": self.portfolio.position_base(desk.key),
            }
        return venues
