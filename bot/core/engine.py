"""The engine: the one writer of trading state. Events in, commands out; time is passed in.

    book event ─▶ OrderBook (sequence checks) ─▶ σ estimator
    trade ──────▶ A, k estimator, toxicity (order-flow imbalance)
    fill ───────▶ orders ─▶ portfolio ─▶ hedger (perp orders), risk (markouts)
    requote ────▶ risk guard ─▶ quoter (A-S / GLFT) ─▶ ladder ─▶ order diff ─▶ commands

`apply(event, now_ns)` updates state and returns urgent commands (resync, pull quotes, hedges);
`requote(now_ns)` recomputes the desired quotes once per batch of events, which is how the runner
conflates book updates without ever dropping a fill or an ack. Notes for the log (`quote.updated`,
`order.filled`, `feed.stale`, `risk.*`, ...) are buffered as (name, fields) and drained by the runtime:
the core decides and explains, the runtime writes.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from bot.core.book import BookStatus, OrderBook
from bot.core.estimators import ArrivalEstimator, SigmaEstimator
from bot.core.hedger import HedgeParams, Hedger, latency_quantile_ns
from bot.core.lp import ConstantProductLp
from bot.core.options import CallOption, annualised_vol
from bot.core.orders import OrderManager, OrderState
from bot.core.portfolio import Portfolio
from bot.core.quoting import DesiredQuote as DesiredOrder
from bot.core.quoting import MarketInputs, QuoteParams, TheoQuote, build_ladder, theo_quote
from bot.core.risk import RiskDecision, RiskGuard, RiskInputs, RiskParams
from bot.core.rounding import NoteRounding
from bot.domain import (
    BookDelta,
    BookSnapshot,
    CancelOrder,
    CancelRejected,
    Command,
    Event,
    FeedStatus,
    FundingPaid,
    Instrument,
    MarkPrice,
    OrderAccepted,
    OrderCanceled,
    OrderFilled,
    OrderRejected,
    PlaceOrder,
    PositionSnapshot,
    RequestSnapshot,
    Side,
    Timer,
    TradePrint,
)

Note = tuple[str, dict[str, Any]]
_BREAKS_BOOK = frozenset({BookStatus.GAP, BookStatus.CROSSED, BookStatus.INVALID_INPUT})
NS_PER_S = 1_000_000_000


class EngineLike(Protocol):
    """What a driver (the live runner, the simulation driver, replay) needs from an engine; tests
    drive it with small fakes."""

    def apply(self, event: Event, now_ns: int) -> list[Command]: ...
    def requote(self, now_ns: int) -> list[Command]: ...
    def shutdown(self, now_ns: int) -> list[Command]: ...
    def drain_notes(self) -> list[Note]: ...
    def open_order_count(self) -> int: ...
    def summary(self, now_ns: int) -> dict[str, Any]: ...


@dataclass(frozen=True, slots=True)
class EngineParams:
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
    lp: ConstantProductLp | None = None
    # None: price the calls with the LONG σ estimator (annualised), never the quoting half-life
    option_vol_annual: float | None = None
    lp_volume_ratio: float = 0.0  # simulated DEX volume = this × the spot's public trade volume


@dataclass
class EngineStats:
    quotes: int = 0
    fills: int = 0
    volume_base: float = 0.0
    volume_quote: float = 0.0
    fees_quote: float = 0.0
    rejects: int = 0
    resyncs: int = 0
    stale_episodes: int = 0
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
    ) -> None:
        self.p = params
        self.spot = params.spot
        self.books: dict[str, OrderBook] = {params.spot.symbol: OrderBook(params.spot.symbol)}
        if params.perp is not None:
            self.books[params.perp.symbol] = OrderBook(params.perp.symbol)
        tag = f"-{params.client_id_tag}" if params.client_id_tag else ""
        self.orders = OrderManager(f"q{tag}")
        self.sigma = sigma
        self.sigma_long = sigma_long
        if params.options and params.option_vol_annual is None and sigma_long is None:
            # the quoting σ (a 60 s half-life) would mark one-year calls with minute-scale vol noise
            raise ValueError("calls priced from the estimator need sigma_long (or option_vol_annual)")
        self.arrivals = arrivals
        self.risk = RiskGuard(params.risk)
        self.portfolio = Portfolio(
            [i for i in (params.spot, params.perp) if i is not None], options=params.options, lp=params.lp
        )
        # the spot position record (the portfolio keeps it for the session): read on every requote
        self._spot_position = self.portfolio.positions[params.spot.symbol]
        self.hedger = (
            Hedger(params.hedge, params.perp, client_id_prefix=f"h{tag}-")
            if params.perp is not None and params.hedge.enabled
            else None
        )
        self._hedge_halted_ns: int | None = None
        self.last_inputs: MarketInputs | None = None  # of the last requote, for /status
        self.last_theo: TheoQuote | None = None
        self._pending_seeds: dict[str, int] = {}  # restored positions waiting for a mid to be entered at
        self._suspect_diffs: dict[str, int] = {}  # venue − ours seen on the last position snapshot
        self._band_ticks = 0
        self._band_ticks_in = 0
        self.risk_decision = RiskDecision()
        self._risk_inputs = RiskInputs()  # refilled by every `_evaluate_risk`
        self.stats = EngineStats()
        self.notes: list[Note] = []
        self.start_ns = start_ns
        self.last_book_ns: dict[str, int] = dict.fromkeys(self.books, start_ns)
        # (symbol, book, instrument) per book, the instrument as `_mid_px` picks it: for the timer's marks
        self._books_by_instrument: list[tuple[str, OrderBook, Instrument]] = [
            (symbol, book, params.perp if symbol != params.spot.symbol and params.perp is not None else params.spot)
            for symbol, book in self.books.items()
        ]
        self.stale: set[str] = set()
        self.awaiting_snapshot: set[str] = set()
        self.mark_ticks: int | None = None
        self.stopping = False
        self._dirty = False
        self._trigger = ""  # what first made the quotes worth recomputing since the last requote
        self._last_top: tuple[int | None, int | None] = (None, None)  # spot best bid/ask last requoted on
        # equity is read on every requote but changes only with the portfolio (its `version`) or a mid:
        # cache it on both
        self._underlying_mark = (math.nan, 0)  # (spot mid, time) the calls and pool were last valued at
        self._equity_key: tuple[int, float | None, float | None] | None = None
        self._equity_quote = 0.0
        self._last_desired: tuple[DesiredOrder, ...] = ()
        self._theo_key: tuple[float, int, float, float, float] | None = None  # inputs of `last_theo`
        self._hard_lots = params.spot.lots_floor(params.risk.inventory_hard_base)
        self._ladder_key: tuple[Any, ...] | None = None  # what `_ladder` was built from
        self._ladder: tuple[DesiredOrder, ...] = ()
        # prices and sizes in the notes are written on each instrument's grid (bot.core.rounding)
        self._spot_rounding = NoteRounding.for_instrument(params.spot)
        self._perp_rounding = NoteRounding.for_instrument(params.perp) if params.perp else self._spot_rounding
        self._delta_decimals = max(self._spot_rounding.size_decimals, self._perp_rounding.size_decimals)
        self._last_band_base = params.hedge.band_base
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

    def _on_accepted(self, event: OrderAccepted, now_ns: int) -> list[Command]:
        if self.hedger is not None and self.hedger.owns(event.client_id):
            return self._on_hedge_order_event(self.hedger, event, now_ns)
        self.orders.on_accepted(event)
        return []

    def _on_canceled(self, event: OrderCanceled, now_ns: int) -> list[Command]:
        if self.hedger is not None and self.hedger.owns(event.client_id):
            return self._on_hedge_order_event(self.hedger, event, now_ns)
        order = self.orders.on_canceled(event)
        if order is not None:
            self._note("order.canceled", client_id=event.client_id, symbol=event.symbol, reason=event.reason)
        self._touch("order_canceled")
        return []

    def _on_rejected(self, event: OrderRejected, now_ns: int) -> list[Command]:
        if self.hedger is not None and self.hedger.owns(event.client_id):
            return self._on_hedge_order_event(self.hedger, event, now_ns)
        self.orders.on_rejected(event)
        self.stats.rejects += 1
        self._note("order.rejected", client_id=event.client_id, symbol=event.symbol, reason=event.reason)
        self._touch("order_rejected")
        return []

    def _on_cancel_rejected(self, event: CancelRejected, now_ns: int) -> list[Command]:
        self.orders.on_cancel_rejected(event)
        self._touch("cancel_rejected")
        return []

    def _on_position_event(self, event: PositionSnapshot, now_ns: int) -> list[Command]:
        self._on_position(event)
        return []

    def _on_mark(self, event: MarkPrice, now_ns: int) -> list[Command]:
        self.mark_ticks = event.mark_ticks
        return []

    def _on_funding(self, event: FundingPaid, now_ns: int) -> list[Command]:
        self.portfolio.on_funding(event)
        return []

    def _on_book(self, event: BookDelta | BookSnapshot, now_ns: int) -> list[Command]:
        symbol = event.symbol
        book = self.books.get(symbol)
        if book is None:
            return []
        update = book.apply(event)
        status = update.status
        if update.changed:
            self.last_book_ns[symbol] = now_ns
            if status is BookStatus.SNAPSHOT:
                self.awaiting_snapshot.discard(symbol)
                self._note("feed.resynced", symbol=symbol, seq=book.seq)
            if symbol in self.stale:
                self.stale.discard(symbol)
                self._note("feed.fresh", symbol=symbol)
            if symbol == self.spot.symbol:
                # the quotes depend on the book only through its top: deeper changes need no requote
                bid, ask = top = (book.best_bid_ticks, book.best_ask_ticks)
                if top != self._last_top or status is BookStatus.SNAPSHOT:
                    self._last_top = top
                    if bid is not None and ask is not None:
                        mid_px = (bid + ask) / 2 * self.spot.tick_size  # the book's mid_ticks, from this top
                        self.sigma.update(now_ns, mid_px)
                        if self.sigma_long is not None:
                            self.sigma_long.update(now_ns, mid_px)
                    self._touch("book")
            return []
        if status not in _BREAKS_BOOK:
            return []  # stale duplicate, not yet synced, or already waiting for a snapshot
        # The book is known to be wrong: pull quotes on it, ask for a snapshot.
        self.stats.resyncs += 1
        self.awaiting_snapshot.add(event.symbol)
        self._note("feed.gap", symbol=event.symbol, status=status.value, reason=update.reason)
        out: list[Command] = [RequestSnapshot(event.symbol, status.value)]
        if event.symbol == self.spot.symbol:
            out.extend(self.orders.cancel_all(self.spot.symbol, tag="quote"))
        return out

    def _on_trade(self, event: TradePrint, now_ns: int) -> list[Command]:
        if event.symbol != self.spot.symbol:  # the perp's trades (most of them) inform no estimator
            return []
        book = self.books[event.symbol]
        if not book.is_valid:
            return []
        mid = book.mid_ticks
        if mid is None:
            return []
        tick = self.spot.tick_size
        self.arrivals.on_trade(event.ts_recv_ns, event.price_ticks * tick, mid * tick, event.aggressor)
        self.risk.on_trade(event.aggressor, self.spot.size(event.size_lots), event.ts_recv_ns)
        if self.p.lp_volume_ratio > 0.0:
            notional = self.spot.notional(event.price_ticks, event.size_lots)
            self.portfolio.on_lp_volume(self.p.lp_volume_ratio * notional)
        return []

    def _on_fill(self, event: OrderFilled, now_ns: int) -> list[Command]:
        hedger = self.hedger
        if hedger is not None and hedger.owns(event.client_id):
            return self._on_hedge_fill(hedger, event, now_ns)
        result = self.orders.on_fill(event)
        if not result.is_new:
            self.stats.duplicate_fills += 1
            return []
        instrument = self.spot if event.symbol == self.spot.symbol else self.p.perp
        if instrument is None:
            return []
        if result.order is None:
            self.stats.unknown_fills += 1
        self.portfolio.on_fill(event, self._mid_px(event.symbol), hedge=False)
        if instrument is self.spot:
            self.risk.on_fill(event.side, instrument.price(event.price_ticks), instrument.size(event.size_lots), now_ns)
        notional = instrument.notional(event.price_ticks, event.size_lots)
        self.stats.fills += 1
        self.stats.volume_base += instrument.size(event.size_lots)
        self.stats.volume_quote += notional
        self.stats.fees_quote += event.fee_quote
        inventory = self.inventory_base()
        self.stats.max_abs_inventory_base = max(self.stats.max_abs_inventory_base, abs(inventory))
        latency_ms = None
        rounding = self._spot_rounding if instrument is self.spot else self._perp_rounding
        if result.order is not None:
            latency_ms = round((event.ts_recv_ns - result.order.placed_ns) / 1e6, 3)
        self._note(
            "order.filled",
            symbol=event.symbol,
            client_id=event.client_id,
            side=event.side.value,
            price=rounding.price_of_ticks(event.price_ticks),
            size=rounding.size_of_lots(event.size_lots),
            fee=event.fee_quote,
            liquidity=event.liquidity.value,
            latency_ms=latency_ms,
            inventory=self._spot_rounding.size(inventory),
            tag=result.order.tag if result.order is not None else "unknown",
        )
        self._touch("fill")
        if hedger is not None and instrument is self.spot:
            hedger.note_spot_fill(now_ns)
            return self._hedge(hedger, now_ns)
        return []

    # ================================================================== hedging

    def _on_hedge_fill(self, hedger: Hedger, event: OrderFilled, now_ns: int) -> list[Command]:
        before = self.portfolio.net_delta_base()
        if not self.portfolio.on_fill(event, self._mid_px(event.symbol), hedge=True):
            self.stats.duplicate_fills += 1
            return []
        hedge_fill = hedger.on_fill(event, now_ns)
        self.stats.hedge_fills += 1
        self.stats.fees_quote += event.fee_quote
        self._note(
            "hedge.filled",
            symbol=event.symbol,
            client_id=event.client_id,
            side=event.side.value,
            price=self._perp_rounding.price_of_ticks(event.price_ticks),
            size=self._perp_rounding.size_of_lots(event.size_lots),
            fee=event.fee_quote,
            slippage_bps=hedge_fill.slippage_bps if hedge_fill is not None else None,
            delta_before=self._delta(before),
            delta_after=self._delta(self.portfolio.net_delta_base()),
        )
        return self._hedge(hedger, now_ns)

    def _on_hedge_order_event(
        self, hedger: Hedger, event: OrderAccepted | OrderRejected | OrderCanceled, now_ns: int
    ) -> list[Command]:
        if isinstance(event, OrderAccepted):
            hedger.on_accepted(event, now_ns)
            return []
        if isinstance(event, OrderRejected):
            outcome = hedger.on_rejected(event, now_ns)
            self.stats.rejects += 1
            self._note(
                "hedge.rejected",
                client_id=event.client_id,
                reason=event.reason,
                retry_at_ns=outcome.retry_at_ns if outcome else None,
            )
        else:
            hedger.on_canceled(event, now_ns)
        return self._hedge(hedger, now_ns)

    def _hedge(self, hedger: Hedger, now_ns: int, net_delta_base: float | None = None) -> list[Command]:
        """The hedger's decision now, logged; `net_delta_base`: the portfolio's, if the caller has read it."""
        if self.stopping or hedger.perp.symbol in self.awaiting_snapshot:
            return []
        book = self.books[hedger.perp.symbol]
        if not book.is_valid:
            return []
        net = self.portfolio.net_delta_base() if net_delta_base is None else net_delta_base
        decision = hedger.decide(
            net, self.portfolio.position_lots(hedger.perp.symbol), book.best_bid_ticks, book.best_ask_ticks, now_ns
        )
        for command in decision.commands:
            if isinstance(command, PlaceOrder):
                self.stats.hedges += 1
                self._note(
                    "hedge.sent",
                    symbol=command.symbol,
                    client_id=command.client_id,
                    side=command.side.value,
                    size=self._perp_rounding.size_of_lots(command.size_lots),
                    price=self._perp_rounding.price_of_ticks(command.price_ticks),
                    order_type=command.order_type.value,
                    reduce_only=command.reduce_only,
                    reason=decision.reason,
                    delta_before=self._delta(net),
                    delta_after_expected=self._delta(net + decision.order_base),
                    band=decision.band_base,
                )
        self._last_band_base = decision.band_base
        if hedger.halted and self._hedge_halted_ns is None:
            self._hedge_halted_ns = now_ns
            self.stats.hedger_halts += 1
            self._note("hedge.halted", net_delta=self._delta(net), resume_in_s=self.p.hedge_resume_after_ns / NS_PER_S)
            self._touch("hedger_halted")
        return list(decision.commands)

    def _maybe_resume_hedger(self, hedger: Hedger, now_ns: int) -> None:
        """Too many failed hedges in a row halt the hedger (and with it quoting); after a cooldown
        it tries again from scratch rather than leaving the delta unhedged until a restart."""
        halted_ns = self._hedge_halted_ns
        if halted_ns is None or now_ns - halted_ns < self.p.hedge_resume_after_ns:
            return
        hedger.resume()
        self._hedge_halted_ns = None
        self._note("hedge.resumed", halted_s=(now_ns - halted_ns) / NS_PER_S)
        self._touch("hedger_resumed")

    def _mid_px(self, symbol: str) -> float:
        book = self.books.get(symbol)
        mid = book.mid_ticks if book is not None else None
        instrument = self.spot if symbol == self.spot.symbol else self.p.perp
        if mid is None or instrument is None:
            return math.nan
        return mid * instrument.tick_size

    def _on_position(self, event: PositionSnapshot) -> None:
        if event.symbol not in self.portfolio.positions:
            return
        ours = self.portfolio.position_lots(event.symbol)
        diff = event.position_lots - ours
        if diff == 0:
            self._suspect_diffs.pop(event.symbol, None)
            return
        if self._suspect_diffs.get(event.symbol) != diff:
            # First sight: a fill may still be on its way (a polled position can overtake the fill
            # on the stream). Only the same difference on the next snapshot is a real mismatch.
            self._suspect_diffs[event.symbol] = diff
            return
        del self._suspect_diffs[event.symbol]
        # The venue is the source of truth for positions; a mismatch means we missed or doubled a fill.
        self.stats.position_mismatches += 1
        self._note("position.mismatch", symbol=event.symbol, ours_lots=ours, venue_lots=event.position_lots)
        self._seed(event.symbol, event.position_lots - ours)

    def restore(self, positions_lots: dict[str, int], entry_px: dict[str, float] | None = None) -> None:
        """Start from positions the venue already holds (restart recovery). A position is entered at
        `entry_px` (the ledger's average cost) when given, else at the first mid seen."""
        for symbol, lots in positions_lots.items():
            if symbol not in self.portfolio.positions or lots == 0:
                continue
            px = (entry_px or {}).get(symbol, math.nan)
            if px > 0.0:
                self.portfolio.seed_position(symbol, lots, px)
            else:
                self._pending_seeds[symbol] = self._pending_seeds.get(symbol, 0) + lots
        self._touch("restore")

    def _seed(self, symbol: str, lots: int) -> None:
        """Book `lots` of position that did not come from a fill we saw, at the current mid."""
        mid = self._mid_px(symbol)
        if mid == mid:
            self.portfolio.seed_position(symbol, lots, mid)
        else:
            self._pending_seeds[symbol] = self._pending_seeds.get(symbol, 0) + lots
        self._touch("position")

    def _on_feed_status(self, event: FeedStatus, now_ns: int) -> list[Command]:
        if event.connected:
            self._note("feed.connected", symbol=event.symbol, reason=event.reason)
            return []
        self._note("feed.disconnected", symbol=event.symbol, reason=event.reason)
        for symbol in self.books:
            if event.symbol in ("*", symbol):
                self.awaiting_snapshot.add(symbol)  # deltas were missed: quote again only after a snapshot
        return self.orders.cancel_all(self.spot.symbol, tag="quote")

    def _on_timer(self, event: Timer, now_ns: int) -> list[Command]:
        out: list[Command] = []
        self.orders.prune()
        self.sigma.advance(now_ns)  # a quiet book is information too: σ decays instead of freezing
        if self.sigma_long is not None:
            self.sigma_long.advance(now_ns)
        symbol = self.spot.symbol
        if symbol not in self.stale and now_ns - self.last_book_ns[symbol] > self.p.stale_feed_ns:
            self.stale.add(symbol)
            self.stats.stale_episodes += 1
            self._note("feed.stale", symbol=symbol, silent_ms=(now_ns - self.last_book_ns[symbol]) // 1_000_000)
            out.extend(self.orders.cancel_all(symbol, tag="quote"))
        self._touch("timer")
        self._mark_portfolio(now_ns)
        if self.hedger is not None:
            self._maybe_resume_hedger(self.hedger, now_ns)
            net = self.portfolio.net_delta_base()  # hedging sends orders, it books nothing: one read serves both
            out.extend(self._hedge(self.hedger, now_ns, net))
            if now_ns - self.start_ns >= self.p.warmup_ns:
                self._band_ticks += 1
                if abs(net) <= self._last_band_base + 1e-12:
                    self._band_ticks_in += 1
        return out

    def _mark_portfolio(self, now_ns: int) -> None:
        for symbol, book, instrument in self._books_by_instrument:
            mid_ticks = book.mid_ticks
            if mid_ticks is None or not book.is_valid:
                continue
            mid = mid_ticks * instrument.tick_size  # as `_mid_px(symbol)`, without finding the book again
            pending = self._pending_seeds.pop(symbol, 0)
            if pending:
                self.portfolio.seed_position(symbol, pending, mid)
            self.portfolio.mark(symbol, mid)
            if symbol == self.spot.symbol and (self.p.options or self.p.lp is not None):
                # the calls move with the mid and, slowly, with time: revalue on a new mid or each second
                last_px, last_ns = self._underlying_mark
                if mid != last_px or now_ns - last_ns >= NS_PER_S:
                    self._underlying_mark = (mid, now_ns)
                    self.portfolio.mark_underlying(mid, now_ns, self._option_vol_annual(mid))

    def _option_vol_annual(self, spot_px: float) -> float:
        """The calls' Black-Scholes σ: the configured implied vol, else the long-horizon σ estimator.

        Never the quoting σ: its short half-life is right for a quote that lives seconds, but it would
        put minute-scale vega noise into equity (the drawdown guard reads it) and jitter the hedge."""
        if self.p.option_vol_annual is not None:
            return self.p.option_vol_annual
        if self.sigma_long is None:  # no calls (checked in __init__): only the pool is valued, σ unused
            return math.nan
        return annualised_vol(self.sigma_long.sigma_px_per_sqrt_s, spot_px)

    # ================================================================== quoting

    def requote(self, now_ns: int) -> list[Command]:
        if not self._dirty:
            return []
        self._dirty = False
        symbol = self.spot.symbol
        book = self.books[symbol]
        desired: tuple[DesiredOrder, ...] = ()
        max_places = 0
        feed_ok = symbol not in self.stale and symbol not in self.awaiting_snapshot and book.is_valid
        # the top read once, and the mid from it (the book's mid_ticks): every requote needs all three
        best_bid, best_ask = book.best_bid_ticks, book.best_ask_ticks
        mid_ticks = (best_bid + best_ask) / 2 if best_bid is not None and best_ask is not None else None
        if not self.stopping and feed_ok and mid_ticks is not None:
            inputs, theo = self._theo(mid_ticks, now_ns)
            decision = self._evaluate_risk(mid_ticks, inputs, theo, now_ns)
            if not (decision.pause or decision.halt or self._hedge_halted_ns is not None):
                desired = self._desired_quotes(best_bid, best_ask, mid_ticks, inputs, theo, decision)
                max_places = decision.max_new_orders
        elif not self.stopping and self.risk.compliance is not None:
            # no quotes on a bad or silent feed: the obligations are not met for that time either
            self.risk.compliance.update(now_ns, False, False, False)
        out = self.orders.diff(
            symbol,
            desired,
            now_ns,
            self.p.price_tolerance_ticks,
            self.p.max_order_age_ns,
            max_places=max_places,
            min_open_lots=self._obligation_lots_per_order(mid_ticks),
        )
        placed = 0
        for command in out:
            if isinstance(command, PlaceOrder):
                placed += 1
                self._note(
                    "order.placed",
                    symbol=command.symbol,
                    client_id=command.client_id,
                    side=command.side.value,
                    price=self._spot_rounding.price_of_ticks(command.price_ticks),
                    size=self._spot_rounding.size_of_lots(command.size_lots),
                    post_only=command.post_only,
                )
        if placed:
            self.risk.consume_orders(placed, now_ns)
        return out

    def _theo(self, mid_ticks: float, now_ns: int) -> tuple[MarketInputs, TheoQuote]:
        fit = self.arrivals.update(now_ns)
        sigma = self.sigma.sigma_px_per_sqrt_s
        # Most requotes come from a timer or one of our order events with the market unchanged: the
        # model's inputs (mid, position, σ, A, k) are then those of the last requote, and so is its quote.
        key = (mid_ticks, self._spot_position.lots, sigma, fit.a_per_s, fit.k_per_px)
        if key != self._theo_key or self.last_inputs is None or self.last_theo is None:
            inputs = MarketInputs(
                mid_px=mid_ticks * self.spot.tick_size,
                inventory_base=self.inventory_base(),
                sigma_px_per_sqrt_s=sigma,
                a_per_s=fit.a_per_s,
                k_per_px=fit.k_per_px,
            )
            self.last_theo = theo_quote(self.p.quote, inputs)
            self.last_inputs = inputs
            self._theo_key = key
        return self.last_inputs, self.last_theo

    def _evaluate_risk(self, mid_ticks: float, market: MarketInputs, theo: TheoQuote, now_ns: int) -> RiskDecision:
        # `market` is this requote's (`_theo`): its mid, inventory and σ are the current ones.
        # One RiskInputs refilled in place (the guard reads it only during `evaluate`): building a
        # fresh 13-field record per requote cost more than the stores.
        x = self._risk_inputs
        x.mid_px = market.mid_px
        x.inventory_base = market.inventory_base - self.p.quote.inventory_target_base
        x.equity_quote = self._equity(mid_ticks)
        x.sigma_short_px_per_sqrt_s = market.sigma_px_per_sqrt_s
        if self.sigma_long is not None:  # else NaN, the default: no volatility ratio
            x.sigma_long_px_per_sqrt_s = self.sigma_long.sigma_px_per_sqrt_s
        x.last_book_ns = self.last_book_ns[self.spot.symbol]
        x.reference_px = self._reference_px()
        x.theo_bid_px = theo.bid_px
        x.theo_ask_px = theo.ask_px
        if self.p.risk.obligation is not None:
            x.live_bid_px, x.live_ask_px, x.live_bid_depth_quote, x.live_ask_depth_quote = self._live_quotes(
                market.mid_px
            )
        # else the guard never reads our resting quotes (they only track an obligation): the walk is
        # skipped and the live fields keep their defaults (NaN, NaN, 0, 0)
        decision = self.risk.evaluate(x, now_ns)
        for transition in decision.transitions:
            self._note(transition.event, **self._rounded_risk_fields(transition.fields))
        self.risk_decision = decision
        return decision

    def _rounded_risk_fields(self, fields: dict[str, Any]) -> dict[str, Any]:
        """A risk transition's fields for the log: its prices and inventory on the spot's grid (the
        decision keeps the exact values)."""
        out = dict(fields)
        for key in ("mid_px", "reference_px", "theo_bid_px", "theo_ask_px"):
            if key in out:
                out[key] = self._spot_rounding.model_price(out[key])
        if "inventory_base" in out:
            out["inventory_base"] = self._spot_rounding.size(out["inventory_base"])
        return out

    def _delta(self, delta_base: float) -> float:
        """A net delta for the log, to the finer of the spot's and the perp's lot decimals."""
        return round(delta_base, self._delta_decimals)

    def _reference_px(self) -> float:
        """The perp mark (a second venue's price for the same asset), for the quote band."""
        if self.mark_ticks is None or self.p.perp is None:
            return math.nan
        return self.mark_ticks * self.p.perp.tick_size

    def _obligation_lots_per_order(self, mid_ticks: float | None) -> int:
        """Lots each quote must still show for the obligation's minimum depth per side (0: none)."""
        obligation = self.p.risk.obligation
        if obligation is None or mid_ticks is None or mid_ticks <= 0:
            return 0
        per_order_quote = obligation.min_depth_quote / max(1, self.p.quote.levels)
        return math.ceil(per_order_quote / (mid_ticks * self.spot.tick_size * self.spot.lot_size))

    def _live_quotes(self, mid_px: float) -> tuple[float, float, float, float]:
        """Our best resting bid and ask (NaN: none) and our acked depth per side within the
        obligation's band around mid (all of it when there is no obligation), in one pass."""
        obligation = self.p.risk.obligation
        low, high = obligation.band_px(mid_px) if obligation is not None and mid_px == mid_px else (0.0, math.inf)
        tick = self.spot.tick_size
        best_bid = best_ask = math.nan
        bid_depth = ask_depth = 0.0
        for order in self.orders.live_orders(self.spot.symbol, tag="quote"):
            px = order.price_ticks * tick
            counted = order.state is not OrderState.PENDING_NEW and low <= px <= high
            if order.side is Side.BUY:
                best_bid = px if not best_bid >= px else best_bid
                if counted:
                    bid_depth += self.spot.notional(order.price_ticks, order.open_lots)
            else:
                best_ask = px if not best_ask <= px else best_ask
                if counted:
                    ask_depth += self.spot.notional(order.price_ticks, order.open_lots)
        return best_bid, best_ask, bid_depth, ask_depth

    def _desired_quotes(
        self,
        best_bid: int | None,
        best_ask: int | None,
        mid_ticks: float,
        inputs: MarketInputs,
        theo: TheoQuote,
        decision: RiskDecision,
    ) -> tuple[DesiredOrder, ...]:
        """The quotes wanted now, from the model quote, the guard's decision and the book's top (ticks)."""
        # The ladder is a pure function of the model quote, the guard's seven shaping fields and the
        # top of the book: when none moved (a calm market between timer requotes), it is the last one.
        key = (theo, decision[:7], best_bid, best_ask)
        if key != self._ladder_key:
            # the decision carries the seven fields the ladder reads (`QuoteShape`): no QuoteAdjust copy
            self._ladder = build_ladder(theo, self.p.quote, self.spot, best_bid, best_ask, decision)
            self._ladder_key = key
        desired = self._cap_exposure(self._ladder)
        if desired != self._last_desired:
            self._last_desired = desired
            self.stats.quotes += 1
            # the innermost (level 0) bid and ask, if quoted: one plain pass (each slot is there at most once)
            bid: int | None = None
            ask: int | None = None
            for d in desired:
                if d.level == 0:
                    if d.side is Side.BUY:
                        bid = d.price_ticks
                    else:
                        ask = d.price_ticks
            rounding = self._spot_rounding
            # the mid and the inventory from their ticks and lots (inputs.mid_px = mid_ticks × tick, mid_ticks
            # a whole or half tick, and inputs.inventory_base = the position's lots × lot, the lots `_theo`
            # keyed on): the same doubles
            self._note(
                "quote.updated",
                symbol=self.spot.symbol,
                mid=rounding.model_price_of_half_ticks(int(mid_ticks * 2)),
                reservation_price=rounding.model_price(theo.reservation_px),
                bid=rounding.price_of_ticks(bid) if bid is not None else None,
                ask=rounding.price_of_ticks(ask) if ask is not None else None,
                spread=rounding.price_of_ticks(ask - bid) if bid is not None and ask is not None else None,
                inventory=rounding.size_of_lots(self._spot_position.lots),
                sigma=inputs.sigma_px_per_sqrt_s,
                a=inputs.a_per_s,
                k=inputs.k_per_px,
                risk_state=decision.state,
                reasons=list(decision.reasons),
                trigger=self._trigger,
            )
        return desired

    def _cap_exposure(self, ladder: tuple[DesiredOrder, ...]) -> tuple[DesiredOrder, ...]:
        """Trim sizes so position + everything that could still fill stays within the hard limit;
        drop what the trim leaves below the venue's minimum notional. `ladder` is `build_ladder`'s."""
        position = self._spot_position.lots
        hard_lots = self._hard_lots
        total_lots = 0
        for quote in ladder:
            total_lots += quote.size_lots
        if total_lots <= hard_lots - abs(position):
            # Well inside the limit (the usual case) even all of the ladder on one side fits the smaller
            # room: nothing is trimmed, and build_ladder already left out every quote below one lot or
            # the min notional (its test is this one negated), so the ladder is the answer as it is.
            return ladder
        room = {Side.BUY: hard_lots - position, Side.SELL: hard_lots + position}
        out: list[DesiredOrder] = []
        spot = self.spot
        for quote in ladder:
            lots = min(quote.size_lots, max(0, room[quote.side]))
            room[quote.side] -= lots
            # a remnant below the venue's minimum order value would only be rejected: leave it out
            if lots > 0 and spot.notional(quote.price_ticks, lots) >= spot.min_notional:
                out.append(quote if lots == quote.size_lots else quote._replace(size_lots=lots))
        return tuple(out)

    # ================================================================== lifecycle & queries

    def shutdown(self, now_ns: int) -> list[Command]:
        self.stopping = True
        out = self.orders.cancel_all()
        if self.hedger is not None:
            out.extend(self._cancel_hedges(self.hedger))
        return out

    def _cancel_hedges(self, hedger: Hedger) -> list[Command]:
        return [CancelOrder(hedger.perp.symbol, cid) for cid in hedger.orders]

    def drain_notes(self) -> list[Note]:
        notes, self.notes = self.notes, []
        return notes

    def not_quoting_reason(self) -> str:
        """Why no quotes are live right now ("" when quoting), for /health."""
        symbol = self.spot.symbol
        if self.stopping:
            return "stopping"
        if symbol in self.awaiting_snapshot or not self.books[symbol].is_valid:
            return "book not synced"
        if symbol in self.stale:
            return "stale feed"
        if self._hedge_halted_ns is not None:
            return "hedger halted"
        decision = self.risk_decision
        if decision.halt or decision.pause:
            return f"risk {decision.state}"
        if not self.orders.live_orders(symbol, tag="quote"):
            return "no live quotes"
        return ""

    def open_order_count(self) -> int:
        hedges = len(self.hedger.orders) if self.hedger is not None else 0
        return len(self.orders.live_orders()) + hedges

    @property
    def position_lots(self) -> dict[str, int]:
        """Our position per symbol, lots (read-only view of the portfolio)."""
        return {symbol: pos.lots for symbol, pos in self.portfolio.positions.items()}

    def inventory_base(self) -> float:
        return self.portfolio.position_base(self.spot.symbol)

    def mid_px(self) -> float | None:
        mid = self.books[self.spot.symbol].mid_ticks
        return None if mid is None else mid * self.spot.tick_size

    def equity_quote(self) -> float:
        """Session PnL of the whole portfolio (spot, perp, calls, pool) at the latest marks."""
        return self._equity(self.books[self.spot.symbol].mid_ticks)

    def _equity(self, spot_mid_ticks: float | None) -> float:
        """`equity_quote` with the spot's mid (ticks) already read."""
        perp = self.p.perp
        key = (
            self.portfolio.version,
            spot_mid_ticks,
            self.books[perp.symbol].mid_ticks if perp is not None else None,
        )
        if key != self._equity_key:
            for symbol, book, instrument in self._books_by_instrument:
                mid_ticks = book.mid_ticks
                if mid_ticks is not None:
                    self.portfolio.mark(symbol, mid_ticks * instrument.tick_size)  # as `_mid_px(symbol)`
            self._equity_key = key
            self._equity_quote = self.portfolio.total_pnl_quote()
        return self._equity_quote

    def summary(self, now_ns: int) -> dict[str, Any]:
        return {
            "quotes": self.stats.quotes,
            "fills": self.stats.fills,
            "volume": round(self.stats.volume_base, 10),
            "volume_quote": round(self.stats.volume_quote, 6),
            "inventory": self.inventory_base(),
            "max_abs_inventory": self.stats.max_abs_inventory_base,
            "pnl": round(self.equity_quote(), 6),
            "fees": round(self.stats.fees_quote, 6),
            "open_orders_at_exit": self.open_order_count(),
            "rejects": self.stats.rejects,
            "resyncs": self.stats.resyncs,
            "stale_episodes": self.stats.stale_episodes,
            "duplicate_fills_dropped": self.stats.duplicate_fills,
            "position_mismatches": self.stats.position_mismatches,
            "hedges": self.stats.hedges,
            "hedge_fills": self.stats.hedge_fills,
            "net_delta": round(self.portfolio.net_delta_base(), 10),
            "net_delta_in_band_pct": (
                round(100.0 * self._band_ticks_in / self._band_ticks, 3) if self._band_ticks else None
            ),
            "pnl_attribution": {k: round(v, 6) for k, v in self.portfolio.pnl().components().items()},
            "option_delta": round(self.portfolio.option_delta_base(), 10),
            "lp_delta": round(self.portfolio.lp_delta_base(), 10),
            **self._hedge_summary(),
            "obligations": self._obligation_summary(now_ns),
        }

    def _hedge_summary(self) -> dict[str, Any]:
        if self.hedger is None:
            return {}
        stats = self.hedger.stats
        p50, p99 = (latency_quantile_ns(stats, q) for q in (0.5, 0.99))
        return {
            "hedge_latency_ms_p50": round(p50 / 1e6, 3) if p50 == p50 else None,
            "hedge_latency_ms_p99": round(p99 / 1e6, 3) if p99 == p99 else None,
            "hedge_slippage_quote": round(stats.slippage_quote, 6),
            "hedger_halts": self.stats.hedger_halts,
        }

    def _obligation_summary(self, now_ns: int) -> dict[str, Any] | None:
        """Share of the session each market-making obligation held (None: no obligation here)."""
        tracker = self.risk.compliance
        if tracker is None:
            return None
        shares = tracker.shares(now_ns)
        return {
            "observed_s": round(tracker.observed_s, 3),
            **{f"{rule}_pct": (round(100.0 * v, 3) if v == v else None) for rule, v in shares.items()},
        }

    def _touch(self, trigger: str) -> None:
        """Something the quotes depend on changed: recompute them at the next requote."""
        if not self._dirty:
            self._dirty = True
            self._trigger = trigger

    def _note(self, name: str, **fields: Any) -> None:
        self.notes.append((name, fields))
