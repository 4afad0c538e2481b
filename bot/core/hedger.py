"""The perp hedger: turns the portfolio's net delta into perp orders back to the target.

Pure and synchronous: the engine feeds it the net delta, the perp book top and the venue's events
for the hedger's own orders, and sends the commands it returns. Contract for the caller:

1. On every spot (quote) fill: `note_spot_fill(now_ns)`, after booking the fill in the portfolio.
2. Route every OrderAccepted / OrderRejected / OrderCanceled / OrderFilled whose client id
   `owns()` to `on_accepted` / `on_rejected` / `on_canceled` / `on_fill` *before* the next
   `decide`, and book the same fill in the portfolio (so that net delta and in-flight exposure
   move together: a fill leaves the in-flight orders and enters the perp position at once).
3. Call `decide(net_delta_base, perp_position_lots, best_bid_ticks, best_ask_ticks, now_ns)`
   after fills and on timers; send `decision.commands` and log `decision.reason`.

Rules (each is a reason in the decision):

- The *gap* is `net delta + in-flight hedge exposure − target`, in base units; in-flight orders
  are counted, so a need already being hedged is never hedged twice ("in_flight").
- Hedge when a spot fill is pending ("fill", if `hedge_every_fill`) or when |gap| exceeds the band
  ("band"); otherwise "within_band". The band is the tighter of `band_base` and
  `band_notional_quote / perp mid` (a zero disables either; both zero = hedge any whole lot).
- The order size is |gap| rounded *down* to whole lots: the hedge never crosses the target, the
  sub-lot residual is carried ("below_one_lot"), and therefore a buy is never followed by a sell
  unless the delta itself changed. An order under the perp's min notional is not sent
  ("below_min_notional"); the residual is carried until it grows.
- IOC / aggressive limit: through the opposite best by `aggressive_ticks`, or by `aggressive_bps` of
  that price if it is wider (a width in bps carries across instruments: 5 ticks are 5 bps of an
  altcoin at a 1 bps tick but 0.08 bps of BTC at 64,000, which the book moves past within one perp
  order's latency); market: no price limit.
  Reduce-only when the order only reduces the perp position, net of every same-side order in flight:
  those fill first at the venue, and a reduce-only order they leave too big is refused.
- An order that ends short of its size (IOC remainder expired, reject, timeout) has its need
  re-examined at the next `decide`, band or not ("retry": the rest is hedged, counting what did fill).
- A reject, or an order that ends with nothing filled, is a failure: the next hedge waits
  `retry_backoff_ms · 2^(n−1)` (capped) ("backoff"); after `max_retries` consecutive failures the
  hedger halts ("halted") until `resume()`. Any hedge fill resets the count. Failures count per
  attempt: orders sent before the last counted failure was seen were decided on the same stale book
  (a burst of spot fills sends one IOC each) and their failures are that attempt's, not new ones.
- An order not done after `order_timeout_ms` is cancelled; one still not done after twice that is
  dropped from the in-flight set ("lost"), so a silent venue cannot freeze the hedger forever.

Measured: hedge latency (spot fill seen → hedge acked, or first hedge fill if that comes first) and
slippage of each hedge fill vs the perp mid when the hedge was decided (positive = cost).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NamedTuple

from bot.domain import (
    DEFAULT_VENUE,
    CancelOrder,
    Command,
    Instrument,
    OrderAccepted,
    OrderCanceled,
    OrderFilled,
    OrderRejected,
    OrderType,
    PlaceOrder,
    Side,
)

if TYPE_CHECKING:  # the core does not depend on the settings machinery at run time
    from bot.config import HedgerConfig

NS_PER_MS = 1_000_000
_SAMPLES = 1024  # latency / slippage samples kept for the metrics


@dataclass(frozen=True, slots=True)
class HedgeParams:
    """The hedger's parameters in core units (see HedgerConfig for their documentation)."""

    enabled: bool = True
    target_base: float = 0.0
    band_base: float = 2.0
    band_notional_quote: float = 0.0
    hedge_every_fill: bool = True
    order_type: OrderType = OrderType.IOC
    aggressive_ticks: int = 5
    aggressive_bps: float = 0.0
    max_order_base: float | None = None
    order_timeout_ns: int = 2000 * NS_PER_MS
    retry_backoff_ns: int = 250 * NS_PER_MS
    retry_backoff_max_ns: int = 5000 * NS_PER_MS
    max_retries: int = 5

    @classmethod
    def from_config(cls, cfg: HedgerConfig) -> HedgeParams:
        return cls(
            enabled=cfg.enabled,
            target_base=cfg.target_base,
            band_base=cfg.band_base,
            band_notional_quote=cfg.band_notional_quote,
            hedge_every_fill=cfg.hedge_every_fill,
            order_type=OrderType(cfg.order_type),
            aggressive_ticks=cfg.aggressive_ticks,
            aggressive_bps=cfg.aggressive_bps,
            max_order_base=cfg.max_order_base,
            order_timeout_ns=cfg.order_timeout_ms * NS_PER_MS,
            retry_backoff_ns=cfg.retry_backoff_ms * NS_PER_MS,
            retry_backoff_max_ns=cfg.retry_backoff_max_ms * NS_PER_MS,
            max_retries=cfg.max_retries,
        )


class HedgeDecision(NamedTuple):
    """What `decide` did and why. Sizes in base units; `gap_base` = net + in-flight − target
    before this decision, `residual_base` the gap left once `order_base` (signed) is filled.

    A NamedTuple: one is built on every timer and fill, ~4x cheaper than a frozen dataclass;
    read it by field name."""

    commands: tuple[Command, ...]
    reason: str
    net_delta_base: float
    in_flight_base: float
    gap_base: float
    band_base: float
    order_base: float = 0.0
    residual_base: float = 0.0


@dataclass(frozen=True, slots=True)
class HedgeFill:
    """One fill of a hedge order, for the log and the ledger. Slippage > 0 is a cost."""

    client_id: str
    fill_id: str
    side: Side
    price_px: float
    size_base: float
    mid_px: float
    slippage_quote: float
    slippage_bps: float
    done: bool


@dataclass(frozen=True, slots=True)
class HedgeOutcome:
    """Result of an order event: `reason` is "accepted", "rejected", "unfilled", "canceled" or
    "halted"; `retry_at_ns` is when the next hedge may go out (after a failure)."""

    client_id: str
    reason: str
    retry_at_ns: int | None = None


@dataclass(slots=True)
class HedgeOrder:
    """A hedge order the hedger sent and has not seen finish."""

    client_id: str
    side: Side
    size_lots: int
    price_ticks: int
    reduce_only: bool
    mid_px: float  # perp mid when decided: the slippage reference
    sent_ns: int
    trigger_ns: int | None  # when the spot fill that caused it was seen
    remaining_lots: int
    seq: int = 0  # the hedger's count of orders sent, this one included
    filled_lots: int = 0
    latency_recorded: bool = False
    cancel_sent_ns: int | None = None
    fill_ids: set[str] = field(default_factory=set)


@dataclass
class HedgeStats:
    """Counters and recent samples (the last 1024) for metrics and the session report."""

    sent: int = 0
    filled_base: float = 0.0
    rejected: int = 0
    unfilled: int = 0
    lost: int = 0
    cancels_sent: int = 0
    slippage_quote: float = 0.0
    latency_ns: deque[int] = field(default_factory=lambda: deque(maxlen=_SAMPLES))
    slippage_bps: deque[float] = field(default_factory=lambda: deque(maxlen=_SAMPLES))


class Hedger:
    """Pure perp hedger for one perp instrument. See the module docstring for the contract."""

    def __init__(
        self, params: HedgeParams, perp: Instrument, client_id_prefix: str = "h-", venue: str = DEFAULT_VENUE
    ) -> None:
        self.params = params
        self.perp = perp
        self.venue = venue  # the hedge venue: every command it builds is for it
        self.prefix = client_id_prefix
        self.orders: dict[str, HedgeOrder] = {}
        self.stats = HedgeStats()
        self.halted = False
        self._seq = 0
        self._failures = 0
        self._sent_at_failure = 0  # orders sent when the last counted failure was seen (see `_failure`)
        self._retry_at_ns = 0
        self._pending_fill_ns: int | None = None
        self._unfinished = False  # a hedge ended short of its size: retry the rest, band or not

    # ---- inputs ----------------------------------------------------------------------------------

    def note_spot_fill(self, now_ns: int) -> None:
        """A spot fill was booked: hedge at the next `decide` (if `hedge_every_fill`)."""
        if self._pending_fill_ns is None:
            self._pending_fill_ns = now_ns

    def owns(self, client_id: str) -> bool:
        """True for every client id this hedger issued, live or finished, so that a late event
        (a fill after a timeout, a cancel after the last fill) is still booked as a hedge."""
        if client_id in self.orders:
            return True
        seq = client_id.removeprefix(self.prefix)
        return seq != client_id and seq.isdigit() and 0 < int(seq) <= self._seq

    def in_flight_base(self) -> float:
        """Signed base units still to fill on live hedge orders (+ = buying)."""
        if not self.orders:  # the usual case on a timer: no generator to run over nothing
            return 0.0
        return sum(o.side.sign * o.remaining_lots for o in self.orders.values()) * self.perp.lot_size

    def resume(self) -> None:
        """Leave the halted state (operator or risk decision) and forget past failures."""
        self.halted = False
        self._failures = 0
        self._retry_at_ns = 0

    # ---- decision --------------------------------------------------------------------------------

    def decide(
        self,
        net_delta_base: float,
        perp_position_lots: int,
        best_bid_ticks: int | None,
        best_ask_ticks: int | None,
        now_ns: int,
    ) -> HedgeDecision:
        """Commands that bring net delta back to target, with the reason (see the module docstring)."""
        # most timers find no hedge order in flight: nothing to expire or count
        cancels = self._expire_orders(now_ns) if self.orders else []
        in_flight = self.in_flight_base()
        gap = net_delta_base + in_flight - self.params.target_base

        def result(reason: str, band: float = 0.0, *extra: Command, order_base: float = 0.0) -> HedgeDecision:
            # fields in HedgeDecision's order: commands, reason, net, in flight, gap, band, order, residual
            commands = (*cancels, *extra)
            return HedgeDecision(commands, reason, net_delta_base, in_flight, gap, band, order_base, gap + order_base)

        if not self.params.enabled:
            return result("disabled")
        if self.halted:
            return result("halted")
        if best_bid_ticks is None or best_ask_ticks is None or best_bid_ticks >= best_ask_ticks:
            return result("no_perp_book")
        mid_px = self.perp.price(best_bid_ticks + best_ask_ticks) / 2.0
        band = self._band_base(mid_px)
        if self._unfinished:
            why = "retry"
        elif self.params.hedge_every_fill and self._pending_fill_ns is not None:
            why = "fill"
        elif abs(gap) > band:
            why = "band"
        else:
            return result("within_band", band)
        if now_ns < self._retry_at_ns:
            return result("backoff", band)
        trigger_ns = self._pending_fill_ns
        # this decision answers the pending fill (or unfinished hedge), whatever it decides
        self._pending_fill_ns = None
        self._unfinished = False
        lots = self._order_lots(abs(gap))
        if lots == 0:
            return result("in_flight" if in_flight else "below_one_lot", band)
        side = Side.SELL if gap > 0 else Side.BUY
        price_ticks = self._price_ticks(side, best_bid_ticks, best_ask_ticks)
        if self.perp.notional(price_ticks, lots) < self.perp.min_notional:
            return result("below_min_notional", band)
        order = self._new_order(side, lots, price_ticks, perp_position_lots, mid_px, trigger_ns, now_ns)
        command = PlaceOrder(
            symbol=self.perp.symbol,
            client_id=order.client_id,
            side=side,
            price_ticks=price_ticks,
            size_lots=lots,
            order_type=self.params.order_type,
            post_only=False,
            reduce_only=order.reduce_only,
            tag="hedge",
            venue=self.venue,
        )
        return result(why, band, command, order_base=side.sign * self.perp.size(lots))

    def _band_base(self, mid_px: float) -> float:
        """The tighter of the two bands that are set (> 0); 0 when neither is."""
        band = self.params.band_base
        by_notional = self.params.band_notional_quote / mid_px
        if by_notional > 0 and not (0 < band <= by_notional):
            band = by_notional
        return band if band > 0 else 0.0

    def _order_lots(self, gap_abs_base: float) -> int:
        # floor, never round: the hedge must not cross the target (that is what prevents oscillation)
        size = gap_abs_base
        if self.params.max_order_base is not None:
            size = min(size, self.params.max_order_base)
        return self.perp.lots_floor(size)

    def _price_ticks(self, side: Side, bid_ticks: int, ask_ticks: int) -> int:
        if self.params.order_type is OrderType.MARKET:
            return ask_ticks if side is Side.BUY else bid_ticks  # reference only: venues ignore it
        if side is Side.BUY:
            return ask_ticks + self._through_ticks(ask_ticks)
        return max(1, bid_ticks - self._through_ticks(bid_ticks))

    def _through_ticks(self, best_ticks: int) -> int:
        """How far through the opposite best an ioc/limit hedge is priced: the wider of the two widths."""
        by_bps = math.ceil(best_ticks * self.params.aggressive_bps * 1e-4 - 1e-9)  # bps of the price, in ticks
        return max(self.params.aggressive_ticks, by_bps)

    def _new_order(
        self,
        side: Side,
        lots: int,
        price_ticks: int,
        perp_position_lots: int,
        mid_px: float,
        trigger_ns: int | None,
        now_ns: int,
    ) -> HedgeOrder:
        # reduce-only only if the order cannot open or flip the position, counting other
        # reduce-only orders in flight against the same position
        reducing = perp_position_lots != 0 and side.sign * perp_position_lots < 0
        already = sum(o.remaining_lots for o in self.orders.values() if o.side is side)
        reduce_only = reducing and lots <= abs(perp_position_lots) - already
        self._seq += 1
        order = HedgeOrder(
            client_id=f"{self.prefix}{self._seq}",
            side=side,
            size_lots=lots,
            price_ticks=price_ticks,
            reduce_only=reduce_only,
            mid_px=mid_px,
            sent_ns=now_ns,
            trigger_ns=trigger_ns,
            remaining_lots=lots,
            seq=self._seq,
        )
        self.orders[order.client_id] = order
        self.stats.sent += 1
        return order

    def _expire_orders(self, now_ns: int) -> list[Command]:
        cancels: list[Command] = []
        timeout = self.params.order_timeout_ns
        for client_id, order in list(self.orders.items()):
            if order.cancel_sent_ns is None and now_ns - order.sent_ns >= timeout:
                order.cancel_sent_ns = now_ns
                self.stats.cancels_sent += 1
                cancels.append(CancelOrder(symbol=self.perp.symbol, client_id=client_id, venue=self.venue))
            elif order.cancel_sent_ns is not None and now_ns - order.cancel_sent_ns >= timeout:
                del self.orders[client_id]
                self.stats.lost += 1
        return cancels

    # ---- venue events for our orders ------------------------------------------------------------

    def on_accepted(self, event: OrderAccepted, now_ns: int) -> HedgeOutcome | None:
        order = self.orders.get(event.client_id)
        if order is None:
            return None
        self._record_latency(order, now_ns)
        return HedgeOutcome(event.client_id, "accepted")

    def on_rejected(self, event: OrderRejected, now_ns: int) -> HedgeOutcome | None:
        order = self.orders.pop(event.client_id, None)
        if order is None:
            return None
        self.stats.rejected += 1
        self._rearm(order)
        return self._failure(order, "rejected", now_ns)

    def on_canceled(self, event: OrderCanceled, now_ns: int) -> HedgeOutcome | None:
        """The venue ended the order (IOC remainder expired, our timeout cancel, ...)."""
        order = self.orders.pop(event.client_id, None)
        if order is None:
            return None
        self._rearm(order)
        if order.filled_lots == 0:
            self.stats.unfilled += 1
            return self._failure(order, "unfilled", now_ns)
        return HedgeOutcome(event.client_id, "canceled")

    def on_fill(self, event: OrderFilled, now_ns: int) -> HedgeFill | None:
        """Book a fill of one of our orders (duplicates ignored); returns its slippage vs mid."""
        order = self.orders.get(event.client_id)
        if order is None or event.fill_id in order.fill_ids:
            return None
        order.fill_ids.add(event.fill_id)
        self._record_latency(order, now_ns)
        order.filled_lots += event.size_lots
        # the venue's leaves_lots may be lower than our count (remainder expired with the fill)
        order.remaining_lots = max(0, min(order.remaining_lots - event.size_lots, event.leaves_lots))
        done = order.remaining_lots == 0
        if done:
            del self.orders[event.client_id]
        self._failures = 0
        self._retry_at_ns = 0
        price_px = self.perp.price(event.price_ticks)
        size_base = self.perp.size(event.size_lots)
        slippage = event.side.sign * (price_px - order.mid_px) * size_base
        slippage_bps = slippage / (order.mid_px * size_base) * 1e4 if size_base > 0 else 0.0
        self.stats.filled_base += size_base
        self.stats.slippage_quote += slippage
        self.stats.slippage_bps.append(slippage_bps)
        return HedgeFill(
            client_id=event.client_id,
            fill_id=event.fill_id,
            side=event.side,
            price_px=price_px,
            size_base=size_base,
            mid_px=order.mid_px,
            slippage_quote=slippage,
            slippage_bps=slippage_bps,
            done=done,
        )

    def _rearm(self, order: HedgeOrder) -> None:
        """An order ended with lots unfilled: the need it served is re-examined at the next
        decide (after any backoff), keeping the original spot-fill time for the latency."""
        if order.remaining_lots == 0:
            return
        self._unfinished = True
        if order.trigger_ns is not None and (self._pending_fill_ns is None or order.trigger_ns < self._pending_fill_ns):
            self._pending_fill_ns = order.trigger_ns

    def _record_latency(self, order: HedgeOrder, now_ns: int) -> None:
        if not order.latency_recorded:
            order.latency_recorded = True
            if order.trigger_ns is not None:
                self.stats.latency_ns.append(now_ns - order.trigger_ns)

    def _failure(self, order: HedgeOrder, reason: str, now_ns: int) -> HedgeOutcome:
        client_id = order.client_id
        if order.seq <= self._sent_at_failure:  # sent before the last failure was known: same attempt
            return HedgeOutcome(client_id, reason, retry_at_ns=self._retry_at_ns)
        self._failures += 1
        self._sent_at_failure = self._seq
        if self._failures > self.params.max_retries:
            self.halted = True
            return HedgeOutcome(client_id, "halted")
        backoff = self.params.retry_backoff_ns * 2 ** (self._failures - 1)
        self._retry_at_ns = now_ns + min(backoff, self.params.retry_backoff_max_ns)
        return HedgeOutcome(client_id, reason, retry_at_ns=self._retry_at_ns)


def latency_quantile_ns(stats: HedgeStats, q: float) -> float:
    """Nearest-rank quantile of the recent hedge latencies (NaN when there are none)."""
    samples = sorted(stats.latency_ns)
    if not samples:
        return math.nan
    rank = min(len(samples) - 1, max(0, math.ceil(q * len(samples)) - 1))
    return float(samples[rank])
