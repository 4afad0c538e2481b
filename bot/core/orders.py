"""Order manager: live-order state driven only by venue events, and the desired-vs-live diff.

State machine per order (changed only by venue events, never by sending):

    PENDING_NEW --accepted--> OPEN --fill--> PARTIALLY_FILLED --fill--> FILLED
         |                      |                   |
         +--rejected--> REJECTED +---canceled-------+--> CANCELED

A fill may arrive before its ack (venues do that); it opens the order implicitly. Duplicate fills
(same fill id) are dropped. Quote orders live in *slots* (side, level): at most one order and one
in-flight action per slot, so a slot whose order is being cancelled is left alone until the cancel
is confirmed, and exposure never doubles while an order is replaced.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from enum import Enum

from bot.core.quoting import DesiredQuote as DesiredOrder
from bot.domain import (
    DEFAULT_VENUE,
    CancelOrder,
    CancelRejected,
    Command,
    MemberEnumType,
    OrderAccepted,
    OrderCanceled,
    OrderFilled,
    OrderRejected,
    OrderType,
    PlaceOrder,
    Side,
    install_fast_constructors,
)


class OrderState(Enum, metaclass=MemberEnumType):
    PENDING_NEW = "pending_new"
    OPEN = "open"
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    CANCELED = "canceled"
    REJECTED = "rejected"

    # Enum's own __hash__ (hash of the name) is interpreted Python: `state in TERMINAL` ran it ~8k
    # times a replay. Members equal only themselves (no mixin), so hashing by identity is the same rule.
    __hash__ = object.__hash__


TERMINAL = frozenset({OrderState.FILLED, OrderState.CANCELED, OrderState.REJECTED})
CANCEL_RETRY_NS = 250_000_000
"""After a venue refuses a cancel for a transient reason (e.g. "venue_disconnected"), the diff waits this
long before cancelling that order again: an unreachable venue refuses at once, and re-sending on every
refusal was a busy loop of cancels for the whole outage (found by the soak, seed 1, disconnect fault)."""


@dataclass(slots=True)
class Order:
    symbol: str
    client_id: str
    side: Side
    price_ticks: int
    size_lots: int
    level: int  # ladder level for quotes, -1 for hedges
    tag: str
    placed_ns: int
    state: OrderState = OrderState.PENDING_NEW
    filled_lots: int = 0
    cancel_pending: bool = False
    acked_ns: int = 0
    cancel_retry_ns: int = 0  # a refused cancel is not re-sent before this time (see on_cancel_rejected)

    @property
    def open_lots(self) -> int:
        return self.size_lots - self.filled_lots

    @property
    def is_live(self) -> bool:
        return self.state not in TERMINAL


@dataclass(frozen=True, slots=True)
class FillResult:
    """What a fill event did. `order` is None for a fill of an order we do not know (after a restart)."""

    is_new: bool
    order: Order | None


class OrderManager:
    """All our orders on all symbols. Pure and synchronous; the engine owns one."""

    def __init__(
        self, client_id_prefix: str = "q", max_remembered_fills: int = 100_000, venue: str = DEFAULT_VENUE
    ) -> None:
        self._prefix = client_id_prefix
        self.venue = venue  # every command it builds is for this venue
        self._seq = 0
        self.orders: dict[str, Order] = {}
        self._live: dict[str, Order] = {}  # the non-terminal subset of `orders`: queried on every requote
        self._slots: dict[tuple[str, Side, int], str] = {}
        self._seen_fills: set[tuple[str, str]] = set()
        self._fill_order: deque[tuple[str, str]] = deque()
        self._terminal: deque[str] = deque()  # client ids in the order they left `_live`, for prune
        self._max_fills = max_remembered_fills
        self.unknown_events = 0
        self.duplicate_fills = 0

    # ------------------------------------------------------------------ commands out

    def next_client_id(self, prefix: str | None = None) -> str:
        self._seq += 1
        return f"{prefix or self._prefix}-{self._seq}"

    def place(self, command: PlaceOrder, level: int, now_ns: int) -> PlaceOrder:
        """Record an order as PENDING_NEW before it is sent."""
        order = Order(
            symbol=command.symbol,
            client_id=command.client_id,
            side=command.side,
            price_ticks=command.price_ticks,
            size_lots=command.size_lots,
            level=level,
            tag=command.tag,
            placed_ns=now_ns,
        )
        self.orders[command.client_id] = order
        self._live[command.client_id] = order
        if level >= 0:
            self._slots[(command.symbol, command.side, level)] = command.client_id
        return command

    def cancel(self, client_id: str) -> CancelOrder | None:
        order = self.orders.get(client_id)
        if order is None or not order.is_live or order.cancel_pending:
            return None
        order.cancel_pending = True
        return CancelOrder(order.symbol, client_id, venue=self.venue)

    def cancel_all(self, symbol: str | None = None, tag: str | None = None) -> list[Command]:
        out: list[Command] = []
        for order in list(self._live.values()):
            if (symbol is None or order.symbol == symbol) and (tag is None or order.tag == tag):
                cmd = self.cancel(order.client_id)
                if cmd is not None:
                    out.append(cmd)
        return out

    def diff(
        self,
        symbol: str,
        desired: tuple[DesiredOrder, ...],
        now_ns: int,
        tolerance_ticks: int,
        max_age_ns: int,
        max_places: int | None = None,
        min_open_lots: int = 0,
        inward_tolerance_ticks: int | None = None,
    ) -> list[Command]:
        """Cancels and places that move live quote slots toward `desired`; idempotent when converged.

        `max_places` bounds new orders (the risk guard's order-rate budget); the rest wait for a later diff.
        A partially filled order keeps its queue priority unless what is left of it falls below
        `min_open_lots` (e.g. the depth a market-making obligation asks for): then it is replaced.
        """
        out: list[Command] = []
        wanted: dict[tuple[Side, int], DesiredOrder] = {(d.side, d.level): d for d in desired}
        inward = tolerance_ticks if inward_tolerance_ticks is None else min(tolerance_ticks, inward_tolerance_ticks)
        for slot, client_id in list(self._slots.items()):
            sym, side, level = slot
            if sym != symbol:
                continue
            order = self.orders[client_id]
            if order.state in TERMINAL:  # not live
                del self._slots[slot]
                continue
            # the slot has an order: whatever happens to it, nothing new is placed in the slot this time
            want = wanted.pop((side, level), None)
            if order.cancel_pending or order.state is OrderState.PENDING_NEW or now_ns < order.cancel_retry_ns:
                continue  # one in-flight action per slot
            if (
                want is None
                or abs(want.price_ticks - order.price_ticks) > tolerance_ticks
                or (order.price_ticks - want.price_ticks) * side.sign > inward  # nearer the mid than wanted
                or want.size_lots != order.size_lots  # a partial fill alone keeps queue priority...
                or order.open_lots < min(min_open_lots, want.size_lots)  # ...unless too little is left
                or (max_age_ns > 0 and now_ns - order.placed_ns >= max_age_ns)  # too old
            ):
                # what `cancel` would check is known here (live, no cancel pending): mark and send
                order.cancel_pending = True
                out.append(CancelOrder(symbol, client_id, venue=self.venue))
        budget = len(wanted) if max_places is None else max_places
        for want in wanted.values():
            if want.size_lots <= 0:
                continue
            if budget <= 0:
                break
            budget -= 1
            place = PlaceOrder(
                symbol=symbol,
                client_id=self.next_client_id(),
                side=want.side,
                price_ticks=want.price_ticks,
                size_lots=want.size_lots,
                order_type=OrderType.LIMIT,
                post_only=True,
                tag="quote",
                venue=self.venue,
            )
            out.append(self.place(place, want.level, now_ns))
        return out

    # ------------------------------------------------------------------ events in

    def on_accepted(self, event: OrderAccepted) -> Order | None:
        order = self._known(event.client_id)
        if order is not None and order.state is OrderState.PENDING_NEW:
            order.state = OrderState.OPEN
            order.acked_ns = event.ts_recv_ns
        return order

    def on_rejected(self, event: OrderRejected) -> Order | None:
        return self._end(event.client_id, OrderState.REJECTED)

    def on_canceled(self, event: OrderCanceled) -> Order | None:
        return self._end(event.client_id, OrderState.CANCELED)

    def on_cancel_rejected(self, event: CancelRejected) -> Order | None:
        """The venue refused a cancel: the order is gone (filled or unknown there) or still live."""
        order = self._known(event.client_id)
        if order is None:
            return None
        order.cancel_pending = False
        if event.reason in ("unknown_order", "not_found", "already_closed"):
            # The venue has no such live order: it filled (fills will tell) or never existed.
            order.state = OrderState.CANCELED if order.filled_lots < order.size_lots else OrderState.FILLED
            self._forget(order)
        else:  # still live there: try again, but not in the same instant
            order.cancel_retry_ns = event.ts_recv_ns + CANCEL_RETRY_NS
        return order

    def on_fill(self, event: OrderFilled) -> FillResult:
        key = (event.symbol, event.fill_id)
        if key in self._seen_fills:
            self.duplicate_fills += 1
            return FillResult(False, self.orders.get(event.client_id))
        self._remember_fill(key)
        order = self.orders.get(event.client_id)
        if order is None:
            return FillResult(True, None)
        order.filled_lots = min(order.size_lots, order.filled_lots + event.size_lots)
        if order.filled_lots >= order.size_lots or event.leaves_lots == 0:
            order.state = OrderState.FILLED
            self._forget(order)
        elif order.state in (OrderState.PENDING_NEW, OrderState.OPEN):
            order.state = OrderState.PARTIALLY_FILLED
        return FillResult(True, order)

    # ------------------------------------------------------------------ queries

    def live_orders(self, symbol: str | None = None, tag: str | None = None) -> list[Order]:
        return [
            o for o in self._live.values() if (symbol is None or o.symbol == symbol) and (tag is None or o.tag == tag)
        ]

    def exposure_lots(self, symbol: str, side: Side) -> int:
        """Open plus in-flight size on one side: what could still fill."""
        return sum(o.open_lots for o in self._live.values() if o.symbol == symbol and o.side is side)

    def adopt(self, order: Order) -> None:
        """Track an order found on the venue at start-up (reconciliation)."""
        self.orders[order.client_id] = order
        if order.is_live:
            self._live[order.client_id] = order
        else:
            self._terminal.append(order.client_id)

    def prune(self, keep_terminal: int = 10_000) -> int:
        """Forget all but the `keep_terminal` most recently finished orders, so memory stays flat on
        long runs; returns how many were dropped.

        Work is proportional to what is dropped (the ids wait in a queue in the order they finished):
        the engine calls this on every timer, and the former scan of every order, once per 10,000,
        was a multi-millisecond stall on a tick."""
        dropped = 0
        terminal = self._terminal
        while len(terminal) > keep_terminal:
            client_id = terminal.popleft()
            order = self.orders.get(client_id)
            if order is not None and not order.is_live:
                del self.orders[client_id]
                dropped += 1
        return dropped

    # ------------------------------------------------------------------ internals

    def _known(self, client_id: str) -> Order | None:
        """Our order with this id; an event for an id we do not know is counted."""
        order = self.orders.get(client_id)
        if order is None:
            self.unknown_events += 1
        return order

    def _end(self, client_id: str, state: OrderState) -> Order | None:
        """The venue ended the order (rejected, canceled); one already finished keeps its state."""
        order = self._known(client_id)
        if order is not None:
            if order.is_live:
                order.state = state
            self._forget(order)
        return order

    def _forget(self, order: Order) -> None:
        if self._live.pop(order.client_id, None) is not None:
            self._terminal.append(order.client_id)
        if order.level >= 0:
            key = (order.symbol, order.side, order.level)
            if self._slots.get(key) == order.client_id:
                del self._slots[key]

    def _remember_fill(self, key: tuple[str, str]) -> None:
        self._seen_fills.add(key)
        self._fill_order.append(key)
        if len(self._fill_order) > self._max_fills:
            self._seen_fills.discard(self._fill_order.popleft())


# built in C when the extension is there (one Python-level call per construction less; same objects)
install_fast_constructors(Order, FillResult)
