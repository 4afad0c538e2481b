"""The quoter of one spot market (venue, symbol): everything that is about quoting on one venue.

    book event ─▶ OrderBook (sequence checks) ─▶ σ estimators (on a new top only)
    trade ──────▶ A, k estimator, toxicity (order-flow imbalance)
    our order events ─▶ OrderManager (slots, state machine)
    requote(book-wide inputs) ─▶ per-market risk ─▶ A-S / GLFT ─▶ ladder ─▶ exposure cap ─▶ order diff

It owns its book, its estimators, its ladder and order slots, and its local risk (stale feed, order
rate, toxicity, the venue's obligation: a `RiskGuard` whose drawdown rule is shared with every other
market, see `bot.core.engine`). What is not about one venue comes in as arguments of `requote`:
the aggregate inventory of the whole book (every spot venue: the quoter skews on it, so a fill on
another venue moves these quotes too), the equity of the whole portfolio, the perp's reference
price and whether hedging is halted. It books nothing: fills go to the portfolio through the engine.

Notes (`quote.updated`, `order.placed`, `feed.*`, `risk.*`) go to the engine's note list; on a
named venue they carry `venue=` so the log says which market spoke.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bot.core.book import BookStatus, OrderBook
from bot.core.estimators import ArrivalEstimator, SigmaEstimator
from bot.core.orders import OrderManager, OrderState
from bot.core.portfolio import Position
from bot.core.quoting import DesiredQuote as DesiredOrder
from bot.core.quoting import MarketInputs, QuoteParams, TheoQuote, background_best, build_ladder, theo_quote
from bot.core.risk import LossGuard, RiskDecision, RiskGuard, RiskInputs, RiskParams
from bot.core.rounding import NoteRounding
from bot.domain import (
    DEFAULT_VENUE,
    BookDelta,
    BookSnapshot,
    Command,
    Instrument,
    PlaceOrder,
    RequestSnapshot,
    Side,
    TradePrint,
    market_key,
)

Note = tuple[str, dict[str, Any]]
BREAKS_BOOK = frozenset({BookStatus.GAP, BookStatus.CROSSED, BookStatus.INVALID_INPUT})
NS_PER_S = 1_000_000_000


@dataclass(frozen=True, slots=True)
class MarketSpec:
    """One spot market to quote and its own rules. `venue` "" is the single-venue path."""

    spot: Instrument
    quote: QuoteParams
    risk: RiskParams = field(default_factory=RiskParams)
    venue: str = DEFAULT_VENUE


@dataclass
class MarketStats:
    """What happened on this market alone (the engine's `EngineStats` counts the whole book)."""

    quotes: int = 0
    fills: int = 0
    volume_base: float = 0.0
    volume_quote: float = 0.0
    fees_quote: float = 0.0
    rejects: int = 0
    stale_episodes: int = 0


class MarketQuoter:
    def __init__(
        self,
        spec: MarketSpec,
        position: Position,
        sigma: SigmaEstimator,
        arrivals: ArrivalEstimator,
        notes: list[Note],
        dirty: list[MarketQuoter],
        *,
        client_id_prefix: str,
        loss: LossGuard,
        start_ns: int = 0,
        sigma_long: SigmaEstimator | None = None,
        stale_feed_ns: int = 3 * NS_PER_S,
        price_tolerance_ticks: int = 1,
        max_order_age_ns: int = 30 * NS_PER_S,
    ) -> None:
        self.spec = spec
        self.venue = spec.venue
        self.spot = spec.spot
        self.key = market_key(spec.venue, spec.spot.symbol)  # the portfolio's position key
        self.quote = spec.quote
        self.book = OrderBook(spec.spot.symbol)
        self.orders = OrderManager(client_id_prefix, venue=spec.venue)
        self.sigma = sigma
        self.sigma_long = sigma_long
        self.arrivals = arrivals
        self.risk = RiskGuard(spec.risk, loss=loss)
        self.position = position  # the portfolio's record of this market (read on every requote)
        self.notes = notes
        self._dirty_list = dirty  # the engine's: a touched quoter joins it once, requote empties it
        self.stats = MarketStats()
        self.stale_feed_ns = stale_feed_ns
        self.price_tolerance_ticks = price_tolerance_ticks
        self.max_order_age_ns = max_order_age_ns
        self.last_book_ns = start_ns
        self.stale = False
        self.awaiting_snapshot = False
        self.last_inputs: MarketInputs | None = None  # of the last requote, for /status
        self.last_theo: TheoQuote | None = None
        self.risk_decision = RiskDecision()
        self._risk_inputs = RiskInputs()  # refilled by every `_evaluate_risk`
        self.dirty = False
        self._trigger = ""  # what first made the quotes worth recomputing since the last requote
        self._last_top: tuple[int | None, int | None] = (None, None)  # best bid/ask last requoted on
        self._last_desired: tuple[DesiredOrder, ...] = ()
        self._theo_key: tuple[float, float, float, float, float] | None = None  # inputs of `last_theo`
        self._hard_lots = spec.spot.lots_floor(spec.risk.inventory_hard_base)
        self._ladder_key: tuple[Any, ...] | None = None  # what `_ladder` was built from
        self._ladder: tuple[DesiredOrder, ...] = ()
        self._rest_behind = spec.risk.toxicity.rest_behind_background
        self._inward_tolerance: int | None = spec.risk.toxicity.inward_tolerance_ticks
        self._impact = spec.risk.toxicity.impact_bps > 0.0
        # prices and sizes in the notes are written on the instrument's grid (bot.core.rounding)
        self.rounding = NoteRounding.for_instrument(spec.spot)
        self._venue_field: dict[str, str] = {"venue": spec.venue} if spec.venue != DEFAULT_VENUE else {}

    # ================================================================== events

    def on_book(self, event: BookDelta | BookSnapshot, now_ns: int) -> list[Command]:
        book = self.book
        update = book.apply(event)
        status = update.status
        symbol = event.symbol
        if update.changed:
            self.last_book_ns = now_ns
            if status is BookStatus.SNAPSHOT:
                self.awaiting_snapshot = False
                self.note("feed.resynced", symbol=symbol, seq=book.seq)
            if self.stale:
                self.stale = False
                self.note("feed.fresh", symbol=symbol)
            # the quotes depend on the book only through its top: deeper changes need no requote
            bid, ask = top = (book.best_bid_ticks, book.best_ask_ticks)
            if top != self._last_top or status is BookStatus.SNAPSHOT:
                self._last_top = top
                if bid is not None and ask is not None:
                    mid_px = (bid + ask) / 2 * self.spot.tick_size  # the book's mid_ticks, from this top
                    self.sigma.update(now_ns, mid_px)
                    if self.sigma_long is not None:
                        self.sigma_long.update(now_ns, mid_px)
                self.touch("book")
            elif self._rest_behind:
                self.touch("book")  # the background's best can move under an unchanged top (ours)
            return []
        if status not in BREAKS_BOOK:
            return []  # stale duplicate, not yet synced, or already waiting for a snapshot
        # The book is known to be wrong: pull quotes on it, ask for a snapshot.
        self.awaiting_snapshot = True
        self.note("feed.gap", symbol=symbol, status=status.value, reason=update.reason)
        out: list[Command] = [RequestSnapshot(symbol, status.value, venue=self.venue)]
        out.extend(self.pull_quotes())
        return out

    def on_trade(self, event: TradePrint) -> bool:
        """Feed the estimators; False when the book cannot price the trade (not synced)."""
        book = self.book
        if not book.is_valid:
            return False
        mid = book.mid_ticks
        if mid is None:
            return False
        tick = self.spot.tick_size
        size_base = event.size_lots * self.spot.lot_size  # spot.size(lots), without a Python-level call per trade
        self.arrivals.on_trade(event.ts_recv_ns, event.price_ticks * tick, mid * tick, event.aggressor, size_base)
        self.risk.on_trade(event.aggressor, size_base, event.ts_recv_ns)
        if self._impact:
            self.touch("trade")  # the print's owed impact shapes the quotes: requote now
        return True

    def feed_lost(self) -> list[Command]:
        """The venue's market data dropped: deltas were missed, quote again only after a snapshot."""
        self.awaiting_snapshot = True
        return self.pull_quotes()

    def pull_quotes(self) -> list[Command]:
        return self.orders.cancel_all(self.spot.symbol, tag="quote")

    def on_timer(self, now_ns: int) -> list[Command]:
        """Housekeeping and the stale-feed check (a silent book pulls this venue's quotes only)."""
        out: list[Command] = []
        self.orders.prune()
        self.sigma.advance(now_ns)  # a quiet book is information too: σ decays instead of freezing
        if self.sigma_long is not None:
            self.sigma_long.advance(now_ns)
        if not self.stale and now_ns - self.last_book_ns > self.stale_feed_ns:
            self.stale = True
            self.stats.stale_episodes += 1
            self.note("feed.stale", symbol=self.spot.symbol, silent_ms=(now_ns - self.last_book_ns) // 1_000_000)
            out.extend(self.pull_quotes())
        self.touch("timer")
        return out

    # ================================================================== quoting

    def requote(
        self,
        now_ns: int,
        inventory_base: float,
        equity: Callable[[float], float],
        reference_px: float,
        hedge_halted: bool,
        stopping: bool,
        withhold: Side | None = None,
    ) -> list[Command]:
        """The order diff toward the quotes wanted now. `inventory_base`: the aggregate spot inventory
        of the whole book (what the model skews on and the inventory limits read); `equity(mid_ticks)`:
        the whole portfolio's session PnL; `reference_px`: the perp's mark (NaN: none); `withhold`: a
        side not to quote (the hedge venue is down and a fill there would add unhedged delta)."""
        self.dirty = False
        book = self.book
        desired: tuple[DesiredOrder, ...] = ()
        max_places = 0
        feed_ok = not self.stale and not self.awaiting_snapshot and book.is_valid
        # the top read once, and the mid from it (the book's mid_ticks): every requote needs all three
        best_bid, best_ask = book.best_bid_ticks, book.best_ask_ticks
        mid_ticks = (best_bid + best_ask) / 2 if best_bid is not None and best_ask is not None else None
        if not stopping and feed_ok and mid_ticks is not None:
            inputs, theo = self._theo(mid_ticks, inventory_base, now_ns)
            decision = self._evaluate_risk(mid_ticks, inputs, theo, equity, reference_px, now_ns)
            if not (decision.pause or decision.halt or hedge_halted):
                desired = self._desired_quotes(best_bid, best_ask, mid_ticks, inputs, theo, decision, withhold)
                max_places = decision.max_new_orders
        elif not stopping and self.risk.compliance is not None:
            # no quotes on a bad or silent feed: the obligations are not met for that time either
            self.risk.compliance.update(now_ns, False, False, False)
        symbol = self.spot.symbol
        out = self.orders.diff(
            symbol,
            desired,
            now_ns,
            self.price_tolerance_ticks,
            self.max_order_age_ns,
            max_places=max_places,
            min_open_lots=self._obligation_lots_per_order(mid_ticks),
            inward_tolerance_ticks=self._inward_tolerance,
        )
        placed = 0
        for command in out:
            if isinstance(command, PlaceOrder):
                placed += 1
                self.note(
                    "order.placed",
                    symbol=command.symbol,
                    client_id=command.client_id,
                    side=command.side.value,
                    price=self.rounding.price_of_ticks(command.price_ticks),
                    size=self.rounding.size_of_lots(command.size_lots),
                    post_only=command.post_only,
                )
        if placed:
            self.risk.consume_orders(placed, now_ns)
        return out

    def _theo(self, mid_ticks: float, inventory_base: float, now_ns: int) -> tuple[MarketInputs, TheoQuote]:
        fit = self.arrivals.update(now_ns)
        sigma = self.sigma.sigma_px_per_sqrt_s
        # Most requotes come from a timer or one of our order events with the market unchanged: the
        # model's inputs (mid, inventory, σ, A, k) are then those of the last requote, and so is its quote.
        key = (mid_ticks, inventory_base, sigma, fit.a_per_s, fit.k_per_px)
        if key != self._theo_key or self.last_inputs is None or self.last_theo is None:
            inputs = MarketInputs(
                mid_px=mid_ticks * self.spot.tick_size,
                inventory_base=inventory_base,
                sigma_px_per_sqrt_s=sigma,
                a_per_s=fit.a_per_s,
                k_per_px=fit.k_per_px,
            )
            self.last_theo = theo_quote(self.quote, inputs)
            self.last_inputs = inputs
            self._theo_key = key
        return self.last_inputs, self.last_theo

    def _evaluate_risk(
        self,
        mid_ticks: float,
        market: MarketInputs,
        theo: TheoQuote,
        equity: Callable[[float], float],
        reference_px: float,
        now_ns: int,
    ) -> RiskDecision:
        # `market` is this requote's (`_theo`): its mid, inventory and σ are the current ones.
        # One RiskInputs refilled in place (the guard reads it only during `evaluate`): building a
        # fresh 13-field record per requote cost more than the stores.
        x = self._risk_inputs
        x.mid_px = market.mid_px
        x.inventory_base = market.inventory_base - self.quote.inventory_target_base
        x.equity_quote = equity(mid_ticks)
        x.sigma_short_px_per_sqrt_s = market.sigma_px_per_sqrt_s
        if self.sigma_long is not None:  # else NaN, the default: no volatility ratio
            x.sigma_long_px_per_sqrt_s = self.sigma_long.sigma_px_per_sqrt_s
        x.last_book_ns = self.last_book_ns
        x.reference_px = reference_px
        x.theo_bid_px = theo.bid_px
        x.theo_ask_px = theo.ask_px
        if self.spec.risk.obligation is not None:
            x.live_bid_px, x.live_ask_px, x.live_bid_depth_quote, x.live_ask_depth_quote = self._live_quotes(
                market.mid_px
            )
        # else the guard never reads our resting quotes (they only track an obligation): the walk is
        # skipped and the live fields keep their defaults (NaN, NaN, 0, 0)
        decision = self.risk.evaluate(x, now_ns)
        for transition in decision.transitions:
            self.note(transition.event, **self._rounded_risk_fields(transition.fields))
        self.risk_decision = decision
        return decision

    def _rounded_risk_fields(self, fields: dict[str, Any]) -> dict[str, Any]:
        """A risk transition's fields for the log: its prices and inventory on the spot's grid (the
        decision keeps the exact values)."""
        out = dict(fields)
        for key in ("mid_px", "reference_px", "theo_bid_px", "theo_ask_px"):
            if key in out:
                out[key] = self.rounding.model_price(out[key])
        if "inventory_base" in out:
            out["inventory_base"] = self.rounding.size(out["inventory_base"])
        return out

    def _obligation_lots_per_order(self, mid_ticks: float | None) -> int:
        """Lots each quote must still show for the obligation's minimum depth per side (0: none)."""
        obligation = self.spec.risk.obligation
        if obligation is None or mid_ticks is None or mid_ticks <= 0:
            return 0
        per_order_quote = obligation.min_depth_quote / max(1, self.quote.levels)
        return math.ceil(per_order_quote / (mid_ticks * self.spot.tick_size * self.spot.lot_size))

    def _live_quotes(self, mid_px: float) -> tuple[float, float, float, float]:
        """Our best resting bid and ask (NaN: none) and our acked depth per side within the
        obligation's band around mid (all of it when there is no obligation), in one pass."""
        obligation = self.spec.risk.obligation
        low, high = obligation.band_px(mid_px) if obligation is not None and mid_px == mid_px else (0.0, math.inf)
        spot = self.spot
        tick = spot.tick_size
        best_bid = best_ask = math.nan
        bid_depth = ask_depth = 0.0
        for order in self.orders.live_orders(spot.symbol, tag="quote"):
            px = order.price_ticks * tick
            counted = order.state is not OrderState.PENDING_NEW and low <= px <= high
            if order.side is Side.BUY:
                best_bid = px if not best_bid >= px else best_bid
                if counted:
                    bid_depth += spot.notional(order.price_ticks, order.open_lots)
            else:
                best_ask = px if not best_ask <= px else best_ask
                if counted:
                    ask_depth += spot.notional(order.price_ticks, order.open_lots)
        return best_bid, best_ask, bid_depth, ask_depth

    def _desired_quotes(
        self,
        best_bid: int | None,
        best_ask: int | None,
        mid_ticks: float,
        inputs: MarketInputs,
        theo: TheoQuote,
        decision: RiskDecision,
        withhold: Side | None = None,
    ) -> tuple[DesiredOrder, ...]:
        """The quotes wanted now, from the model quote, the guard's decision and the book's top (ticks)."""
        # The ladder is a pure function of the model quote, the guard's seven shaping fields and the
        # top of the book: when none moved (a calm market between timer requotes), it is the last one.
        behind_bid = behind_ask = None
        if self._rest_behind:
            behind_bid, behind_ask = self.background_top()
        key = (theo, decision[:7], best_bid, best_ask, behind_bid, behind_ask)
        if key != self._ladder_key:
            # the decision carries the seven fields the ladder reads (`QuoteShape`): no QuoteAdjust copy
            self._ladder = build_ladder(
                theo, self.quote, self.spot, best_bid, best_ask, decision, behind_bid, behind_ask
            )
            self._ladder_key = key
        desired = self.cap_exposure(self._ladder, inputs.inventory_base)
        if withhold is not None:
            desired = tuple(d for d in desired if d.side is not withhold)
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
            rounding = self.rounding
            # the mid from its ticks (inputs.mid_px = mid_ticks × tick, mid_ticks a whole or half tick)
            self.note(
                "quote.updated",
                symbol=self.spot.symbol,
                mid=rounding.model_price_of_half_ticks(int(mid_ticks * 2)),
                reservation_price=rounding.model_price(theo.reservation_px),
                bid=rounding.price_of_ticks(bid) if bid is not None else None,
                ask=rounding.price_of_ticks(ask) if ask is not None else None,
                spread=rounding.price_of_ticks(ask - bid) if bid is not None and ask is not None else None,
                inventory=self._inventory_note(inputs.inventory_base),
                sigma=inputs.sigma_px_per_sqrt_s,
                a=inputs.a_per_s,
                k=inputs.k_per_px,
                risk_state=decision.state,
                reasons=list(decision.reasons),
                trigger=self._trigger,
            )
        return desired

    def background_top(self) -> tuple[int | None, int | None]:
        """The book's best bid and ask without our own orders in them (ticks; None: nobody else there).

        The venue's book holds our resting quotes; `requote` reads its top with them (the mid, the
        post-only clamp). An order not acknowledged yet is not in the book, so it is not taken out."""
        own: dict[Side, dict[int, int]] = {Side.BUY: {}, Side.SELL: {}}
        for order in self.orders.live_orders(self.spot.symbol):
            if order.state is not OrderState.PENDING_NEW:
                side = own[order.side]
                side[order.price_ticks] = side.get(order.price_ticks, 0) + order.open_lots
        book = self.book
        # a level is ours alone at most once per price we rest at: the first other one is within reach
        bid = background_best(book.top_bids(len(own[Side.BUY]) + 1), own[Side.BUY])
        ask = background_best(book.top_asks(len(own[Side.SELL]) + 1), own[Side.SELL])
        return bid, ask

    def _inventory_note(self, inventory_base: float) -> float:
        # alone on the book, the inventory is this market's lots: written from them, exactly
        position = self.position
        if inventory_base == position.base:
            return self.rounding.size_of_lots(position.lots)
        return self.rounding.size(inventory_base)

    def cap_exposure(self, ladder: tuple[DesiredOrder, ...], inventory_base: float) -> tuple[DesiredOrder, ...]:
        """Trim sizes so the aggregate inventory + everything that could still fill here stays within
        the hard limit; drop what the trim leaves below the venue's minimum notional. `ladder` is
        `build_ladder`'s, `inventory_base` the whole book's spot inventory."""
        position = self.position.lots
        if inventory_base != self.position.base:  # other venues hold inventory too: on this grid
            position = self.spot.lots(inventory_base)
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

    # ================================================================== queries

    def not_quoting_reason(self, hedge_halted: bool) -> str:
        """Why this market shows no quotes ("" when quoting)."""
        if self.awaiting_snapshot or not self.book.is_valid:
            return "book not synced"
        if self.stale:
            return "stale feed"
        if hedge_halted:
            return "hedger halted"
        decision = self.risk_decision
        if decision.halt or decision.pause:
            return f"risk {decision.state}"
        if not self.orders.live_orders(self.spot.symbol, tag="quote"):
            return "no live quotes"
        return ""

    def mid_px(self) -> float | None:
        mid = self.book.mid_ticks
        return None if mid is None else mid * self.spot.tick_size

    def obligation_summary(self, now_ns: int) -> dict[str, Any] | None:
        """Share of the session each market-making obligation held here (None: no obligation)."""
        tracker = self.risk.compliance
        if tracker is None:
            return None
        shares = tracker.shares(now_ns)
        return {
            "observed_s": round(tracker.observed_s, 3),
            **{f"{rule}_pct": (round(100.0 * v, 3) if v == v else None) for rule, v in shares.items()},
        }

    def touch(self, trigger: str) -> None:
        """Something the quotes depend on changed: recompute them at the next requote."""
        if not self.dirty:
            self.dirty = True
            self._trigger = trigger
            self._dirty_list.append(self)

    def note(self, name: str, **fields: Any) -> None:
        if self._venue_field:
            fields.update(self._venue_field)
        self.notes.append((name, fields))
