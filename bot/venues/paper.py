"""Simulated execution of our orders against public market data (replay, live paper trading).

`PaperExecution` is synchronous and clock-free, one per symbol: the caller passes `now_ns` on every
call. Feed it the public book and trade events (`on_market`) and our commands (`submit`); it returns
the venue's answers (acks, rejects, fills, cancels) as `bot.domain` events once they are due.

The model, and what it leaves out:

* Latency: a command reaches the simulated venue `order_latency_ns` after `submit`; every answer
  reaches us `report_latency_ns` after the venue produced it (its `ts_recv_ns`).
* Our orders are invisible to the public data (it was recorded without them) and never move it: a
  taker fill does not remove the liquidity it took from the replayed book.
* A resting order joins behind the public size already at its price (`queue_ahead_lots`). The queue
  ahead shrinks with public trades at that price, and with cancellations: when a book update leaves
  the level smaller than the trades explain, the unexplained decrease is spread uniformly over the
  level, so the part ahead of us shrinks by `canceled * ahead // level` (rounded down: pessimistic);
  the queue ahead can never exceed the level. New orders at the price join behind us.
* It fills only when public trades reach it: a trade at its price fills what the trade's size leaves
  after the queue ahead; a trade through its price (a sell below our bid, a buy above our ask) means
  the aggressor would have met us first, so it fills us up to the trade's size. Each print's size is
  shared in price-time priority among our orders, so we never fill more than the printed volume.
  A book that moves through our price without a print does not fill us.
* Maker fills pay `maker_fee`, taker fills `taker_fee` (fractions of notional; negative = rebate).
* A post-only order that would cross the best opposite price is rejected ("post_only_would_cross").
  A non-post-only limit that crosses takes liquidity like an IOC and rests the remainder. IOC and
  market orders walk the current book as takers (IOC up to its limit price) and the rest is canceled
  ("ioc_expired").
* Orders are refused while the simulated venue has no valid book ("book_not_ready"). There is no
  balance or margin check; `reduce_only` orders that would grow the position are rejected.
"""

from __future__ import annotations

import heapq
import itertools
from dataclasses import dataclass
from typing import Final

from bot.core.book import OrderBook
from bot.domain import (
    BookDelta,
    BookSnapshot,
    CancelAll,
    CancelOrder,
    CancelRejected,
    Command,
    Event,
    Instrument,
    Level,
    Liquidity,
    OpenOrder,
    OrderAccepted,
    OrderCanceled,
    OrderFilled,
    OrderRejected,
    OrderType,
    PlaceOrder,
    RequestSnapshot,
    Side,
    TradePrint,
    install_fast_constructors,
)

# "nothing pending": years from now, and below 2**62, so a compiled build keeps it an unboxed int (at
# 2**62 every `wake_ns < now_ns` on an idle venue was a boxed-int comparison, ~300 instructions)
IDLE_NS: Final = (1 << 62) - 1
"""`PaperExecution.wake_ns` when nothing is pending."""

# The sides as module constants: per public event, `Side.BUY` (an attribute of the enum class) and
# `Side.opposite` (a Python property) cost more than the rest of a trade's check (profiled, compiled build).
_BUY: Final = Side.BUY
_SELL: Final = Side.SELL


@dataclass(slots=True)
class PaperOrder:
    """A resting order at the simulated venue (mutable, internal)."""

    client_id: str
    venue_order_id: str
    side: Side
    price_ticks: int
    size_lots: int
    leaves_lots: int
    queue_ahead_lots: int  # public size ahead of us at our price
    level_lots: int  # public size at our price as last seen (book update minus trades since)
    arrived_ns: int


class PaperExecution:
    """Simulated venue for one instrument. All times in ns on the caller's clock."""

    def __init__(
        self,
        instrument: Instrument,
        *,
        order_latency_ns: int = 0,
        report_latency_ns: int = 0,
        maker_fee: float | None = None,
        taker_fee: float | None = None,
    ) -> None:
        if order_latency_ns < 0 or report_latency_ns < 0:
            raise ValueError("latencies must be >= 0")
        self.instrument = instrument
        self.symbol = instrument.symbol
        self.order_latency_ns = order_latency_ns
        self.report_latency_ns = report_latency_ns
        self.maker_fee = instrument.maker_fee if maker_fee is None else maker_fee
        self.taker_fee = instrument.taker_fee if taker_fee is None else taker_fee
        self.book = OrderBook(instrument.symbol)
        self.orders: dict[str, PaperOrder] = {}  # resting, by client id, in arrival order
        self.position_lots = 0
        self.fees_paid_quote = 0.0
        self.filled_lots = 0  # total of all our fills, both sides
        self._inbox: list[tuple[int, int, Command]] = []  # (arrival ns, seq, command)
        self._outbox: list[tuple[int, int, Event]] = []  # (delivery ns, seq, event)
        self.wake_ns = IDLE_NS
        """When the next command arrives or the next answer is due (`IDLE_NS`: nothing pending). Read it to
        skip `advance` when nothing can happen: a replay asks on every public event, and mostly nothing is."""
        self._seq = itertools.count()
        self._order_ids = itertools.count(1)
        self._fill_ids = itertools.count(1)

    # ---------------------------------------------------------------------------------------------
    # the interface
    # ---------------------------------------------------------------------------------------------

    def submit(self, command: Command, now_ns: int) -> None:
        """Send a command; it reaches the simulated venue at `now_ns + order_latency_ns`."""
        symbol = getattr(command, "symbol", None)
        if symbol is not None and symbol != self.symbol:
            raise ValueError(f"{self.symbol}: command for another symbol: {command!r}")
        arrival_ns = now_ns + self.order_latency_ns
        heapq.heappush(self._inbox, (arrival_ns, next(self._seq), command))
        if arrival_ns < self.wake_ns:
            self.wake_ns = arrival_ns

    def on_market(self, event: Event, now_ns: int) -> list[Event]:
        """Feed a public event at `now_ns`; returns our events due by then (acks, fills, ...)."""
        self.before_market(now_ns)
        changed = False
        # (a tuple, not BookDelta | BookSnapshot: no union object built per event)
        if type(event) is not TradePrint and isinstance(event, (BookDelta, BookSnapshot)):
            changed = self.book.apply(event).changed
        return self.after_market(event, changed, now_ns)

    # `on_market` in two steps, around a book update someone else makes (`follow`):

    def before_market(self, now_ns: int) -> None:
        """Commands that arrive by `now_ns` meet the book as it was before the event at `now_ns`."""
        if now_ns >= self.wake_ns:
            self._process_arrivals(now_ns)

    def after_market(self, event: Event, changed: bool, now_ns: int) -> list[Event]:
        """The event at `now_ns` is in the book (`changed`: it changed it): match it against our
        orders; returns our events due by then."""
        if type(event) is TradePrint:
            if event.symbol == self.symbol and self.orders:
                self._on_trade(event, now_ns)
        elif changed and self.orders and isinstance(event, (BookDelta, BookSnapshot)):
            self._on_book_change(event)
        return self._due(now_ns) if now_ns >= self.wake_ns else []

    def follow(self, book: OrderBook) -> bool:
        """Read `book` from now on instead of this venue's own copy: the book another reader (a
        replay's engine) applies the same public events to, in the same order. The caller then
        feeds each public event as `before_market`, the other reader's apply, `after_market` (with
        whether the apply changed the book), not `on_market`, which would apply it twice. Only
        while both books are untouched (no snapshot yet): then they are equal, and stay equal as
        long as both would be given the same events; returns whether it follows `book`."""
        if book is self.book:
            return True
        if book.symbol != self.symbol or not book.untouched() or not self.book.untouched():
            return False
        self.book = book
        return True

    def advance(self, now_ns: int) -> list[Event]:
        """Let time pass: commands that arrive by `now_ns` are executed; returns events due by then."""
        if now_ns < self.wake_ns:
            return []
        self._process_arrivals(now_ns)
        return self._due(now_ns)

    def next_due_ns(self) -> int | None:
        """When the next command arrives or the next answer is due (None when nothing is pending)."""
        return None if self.wake_ns == IDLE_NS else self.wake_ns

    def open_orders(self) -> list[OpenOrder]:
        return [
            OpenOrder(self.symbol, o.client_id, o.side, o.price_ticks, o.leaves_lots, o.venue_order_id)
            for o in self.orders.values()
        ]

    # ---------------------------------------------------------------------------------------------
    # commands at the venue
    # ---------------------------------------------------------------------------------------------

    def _process_arrivals(self, now_ns: int) -> None:
        inbox = self._inbox
        if not inbox or inbox[0][0] > now_ns:
            return
        while inbox and inbox[0][0] <= now_ns:
            at_ns, _, command = heapq.heappop(inbox)
            if type(command) is PlaceOrder:
                self._place(command, at_ns)
            elif type(command) is CancelOrder:
                self._cancel(command.client_id, at_ns)
            elif type(command) is CancelAll:
                for client_id in list(self.orders):
                    self._cancel(client_id, at_ns)
            else:
                assert isinstance(command, RequestSnapshot)  # market data: not the execution's business
        self._rewake()

    def _place(self, cmd: PlaceOrder, at_ns: int) -> None:
        reason = self._refusal(cmd)
        if reason:
            self._emit(OrderRejected(self.symbol, cmd.client_id, reason, at_ns, self._deliver(at_ns)), at_ns)
            return
        venue_id = f"P{next(self._order_ids)}"
        self._emit(OrderAccepted(self.symbol, cmd.client_id, venue_id, at_ns, self._deliver(at_ns)), at_ns)
        is_buy = cmd.side is Side.BUY
        limit = None if cmd.order_type is OrderType.MARKET else cmd.price_ticks
        leaves = cmd.size_lots
        crosses = limit is None or (is_buy and self._best_ask() <= limit) or (not is_buy and self._best_bid() >= limit)
        if crosses:
            leaves = self._take(cmd, limit, at_ns)
        if leaves == 0:
            return
        if cmd.order_type is not OrderType.LIMIT:
            self._emit(OrderCanceled(self.symbol, cmd.client_id, "ioc_expired", at_ns, self._deliver(at_ns)), at_ns)
            return
        level = self.book.bid_lots_at(cmd.price_ticks) if is_buy else self.book.ask_lots_at(cmd.price_ticks)
        self.orders[cmd.client_id] = PaperOrder(
            cmd.client_id, venue_id, cmd.side, cmd.price_ticks, cmd.size_lots, leaves, level, level, at_ns
        )

    def _refusal(self, cmd: PlaceOrder) -> str:
        """Why the venue refuses this order ("" when it accepts it)."""
        if cmd.size_lots <= 0:
            return "invalid_size"
        if cmd.order_type is not OrderType.MARKET and cmd.price_ticks <= 0:
            return "invalid_price"
        if cmd.client_id in self.orders:
            return "duplicate_client_id"
        if not self.book.is_valid:
            return "book_not_ready"
        if cmd.order_type is OrderType.LIMIT and cmd.post_only:
            crossing = (
                self._best_ask() <= cmd.price_ticks if cmd.side is Side.BUY else self._best_bid() >= cmd.price_ticks
            )
            if crossing:
                return "post_only_would_cross"
        min_notional = self.instrument.min_notional
        notional = self.instrument.notional(cmd.price_ticks, cmd.size_lots)
        if cmd.order_type is not OrderType.MARKET and notional < min_notional:
            return "min_notional"
        if cmd.reduce_only:
            reduces = self.position_lots * cmd.side.sign < 0 and cmd.size_lots <= abs(self.position_lots)
            if not reduces:
                return "reduce_only_would_increase"
        return ""

    def _cancel(self, client_id: str, at_ns: int) -> None:
        if self.orders.pop(client_id, None) is None:
            event: Event = CancelRejected(self.symbol, client_id, "unknown_order", at_ns, self._deliver(at_ns))
        else:
            event = OrderCanceled(self.symbol, client_id, "requested", at_ns, self._deliver(at_ns))
        self._emit(event, at_ns)

    def _take(self, cmd: PlaceOrder, limit: int | None, at_ns: int) -> int:
        """Fill `cmd` as a taker against the current book up to `limit`; returns the lots left."""
        leaves = cmd.size_lots
        for price, size in self._opposite_levels(cmd.side, limit):
            take = min(leaves, size)
            leaves -= take
            self._fill(cmd.client_id, cmd.side, price, take, leaves, Liquidity.TAKER, at_ns)
            if leaves == 0:
                break
        return leaves

    def _opposite_levels(self, side: Side, limit: int | None) -> list[Level]:
        """Opposite-side levels a taker on `side` can reach (all of them when `limit` is None)."""
        n = 16
        while True:
            levels = self.book.top_asks(n) if side is Side.BUY else self.book.top_bids(n)
            if limit is not None:
                reachable = [lv for lv in levels if (lv[0] <= limit if side is Side.BUY else lv[0] >= limit)]
                if len(reachable) < len(levels):
                    return reachable
            if len(levels) < n:
                return levels
            n *= 4

    # ---------------------------------------------------------------------------------------------
    # public market data
    # ---------------------------------------------------------------------------------------------

    def _on_book_change(self, event: BookDelta | BookSnapshot) -> None:
        """Level sizes changed: shrink queues by the cancellations the trades do not explain. Only
        orders at a price the delta names (a snapshot may change every level). We rest a few orders
        and a diff names ~36 levels: each order looks for its price in its side's levels (building
        the diff's price sets was ~3 % of a replay, profiled)."""
        delta = type(event) is BookDelta
        book = self.book
        for order in self.orders.values():
            if order.side is _BUY:
                if delta and not _names_price(event.bids, order.price_ticks):
                    continue
                level = book.bid_lots_at(order.price_ticks)
            else:
                if delta and not _names_price(event.asks, order.price_ticks):
                    continue
                level = book.ask_lots_at(order.price_ticks)
            update_queue(order, level)

    def _on_trade(self, trade: TradePrint, now_ns: int) -> None:
        # a SELL aggressor hits bids at or above its price; a BUY aggressor lifts asks at or below it
        price = trade.price_ticks
        if trade.aggressor is _SELL:
            reached = [o for o in self.orders.values() if o.side is _BUY and o.price_ticks >= price]
            if len(reached) > 1:
                reached.sort(key=_minus_price)  # stable: arrival order within a price
        else:
            reached = [o for o in self.orders.values() if o.side is _SELL and o.price_ticks <= price]
            if len(reached) > 1:
                reached.sort(key=_price)
        if not reached:  # mostly: the print did not reach our prices
            return
        available = trade.size_lots  # the print's volume not yet given to one of our orders
        for order in reached:
            if available <= 0:
                break
            if order.price_ticks == price:
                # the public size ahead of us takes its share first (our fills ahead of us in this
                # print are already out of `available`); the print really traded public orders at the
                # front of the level, so the queue ahead and the level both shrink by its full size
                ahead = order.queue_ahead_lots
                take = min(order.leaves_lots, max(0, available - ahead))
                order.queue_ahead_lots = max(0, ahead - trade.size_lots)
                order.level_lots = max(0, order.level_lots - trade.size_lots)
            else:  # through our price: the aggressor would have met us first
                take = min(order.leaves_lots, available)
                order.queue_ahead_lots = 0
            if take:
                available -= take
                order.leaves_lots -= take
                self._fill(
                    order.client_id, order.side, order.price_ticks, take, order.leaves_lots, Liquidity.MAKER, now_ns
                )
                if order.leaves_lots == 0:
                    del self.orders[order.client_id]

    # ---------------------------------------------------------------------------------------------
    # helpers
    # ---------------------------------------------------------------------------------------------

    def _fill(
        self, client_id: str, side: Side, price: int, lots: int, leaves: int, liquidity: Liquidity, at_ns: int
    ) -> None:
        rate = self.maker_fee if liquidity is Liquidity.MAKER else self.taker_fee
        fee = self.instrument.notional(price, lots) * rate
        self.position_lots += side.sign * lots
        self.fees_paid_quote += fee
        self.filled_lots += lots
        fill_id = f"{self.symbol}#{next(self._fill_ids)}"
        self._emit(
            OrderFilled(
                self.symbol, client_id, fill_id, side, price, lots, fee, liquidity, leaves, at_ns, self._deliver(at_ns)
            ),
            at_ns,
        )

    def _best_bid(self) -> int:
        best = self.book.best_bid_ticks
        return -1 if best is None else best

    def _best_ask(self) -> int:
        best = self.book.best_ask_ticks
        return 1 << 62 if best is None else best

    def _deliver(self, at_ns: int) -> int:
        return at_ns + self.report_latency_ns

    def _emit(self, event: Event, at_ns: int) -> None:
        delivery_ns = self._deliver(at_ns)
        heapq.heappush(self._outbox, (delivery_ns, next(self._seq), event))
        if delivery_ns < self.wake_ns:
            self.wake_ns = delivery_ns

    def _due(self, now_ns: int) -> list[Event]:
        outbox = self._outbox
        if not outbox or outbox[0][0] > now_ns:
            return []
        out = []
        while outbox and outbox[0][0] <= now_ns:
            out.append(heapq.heappop(outbox)[2])
        self._rewake()
        return out

    def _rewake(self) -> None:
        inbox, outbox = self._inbox, self._outbox
        self.wake_ns = min(inbox[0][0] if inbox else IDLE_NS, outbox[0][0] if outbox else IDLE_NS)


def _names_price(levels: tuple[Level, ...], price: int) -> bool:
    """Does a diff's side set or delete the level at `price`?"""
    for level_price, _ in levels:  # noqa: SIM110 (a loop: any() over a generator is slower, compiled or not)
        if level_price == price:
            return True
    return False


def _price(order: PaperOrder) -> int:
    return order.price_ticks


def _minus_price(order: PaperOrder) -> int:
    return -order.price_ticks


def update_queue(order: PaperOrder, level_lots: int) -> None:
    """The public level at `order`'s price is now `level_lots`: a decrease beyond what trades already
    removed is cancellations, spread uniformly over the level (part of it ahead of us)."""
    seen = order.level_lots
    if level_lots < seen:
        canceled = seen - level_lots
        order.queue_ahead_lots -= canceled * order.queue_ahead_lots // seen
    order.level_lots = level_lots
    if order.queue_ahead_lots > level_lots:
        order.queue_ahead_lots = level_lots


# built in C when the extension is there (one Python-level call per construction less; same objects)
install_fast_constructors(PaperOrder)
