"""The initial sale as an execution schedule, and its expected cost from the book's depth.

Dumping the deal's 2.3M tokens into a book that holds $200k of bids within 2 % is what a market
maker would not do. The sale is sliced instead:

- TWAP: `total_base` in equal daily slices over `days`;
- participation cap: no day sells more than `max_participation` × the token's daily volume (quote
  at the reference price); when the cap binds the schedule is stretched over more days;
- limit floor: no part of a slice is sold more than `floor_pct` below the reference price. In a
  linear book of density ρ (quote of bids per unit of relative distance from the mid) a slice of Q
  quote reaches Q/ρ below the mid, so a slice is capped at ρ·floor_pct/100 and the schedule
  stretched again.

Cost model (the same `bot/sim/deal.py` charges): a slice of Q quote sold into a linear book, refilled
by the next slice, fills at an average Q/(2ρ) below the mid, plus the taker fee. The delta not yet
sold is covered by the perp (the plan's perp short includes it), so the schedule trades price risk
for impact only through the perp's funding and fees.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from bot.core.orders import OrderManager, OrderState
from bot.domain import (
    DEFAULT_VENUE,
    CancelRejected,
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


@dataclass(frozen=True, slots=True)
class SaleSchedule:
    total_base: float
    ref_px: float
    days: int  # days the schedule runs (≥ the requested TWAP length when a cap binds)
    slice_base: float  # tokens a day (the last day sells the remainder)
    book_density_quote: float  # ρ: quote of bids per unit of relative distance (e.g. 200k within 2 % → 10M)
    impact_frac: float  # average fill distance below the mid of a full slice, fraction of price
    fee_rate: float
    binding: str  # "twap", "participation" or "floor": what set the slice size

    @property
    def expected_cost_quote(self) -> float:
        """Σ slices · price · (impact + fee) at the reference price (the remainder's impact is smaller)."""
        full = math.floor(self.total_base / self.slice_base + 1e-9) if self.slice_base > 0 else 0
        rest = self.total_base - full * self.slice_base
        cost = full * self.slice_base * self.ref_px * (self.impact_frac + self.fee_rate)
        rest_impact = rest * self.ref_px / (2.0 * self.book_density_quote) if self.book_density_quote > 0 else 0.0
        return cost + rest * self.ref_px * (rest_impact + self.fee_rate)

    @property
    def expected_avg_px(self) -> float:
        return self.ref_px - self.expected_cost_quote / self.total_base if self.total_base > 0 else self.ref_px

    def unsold_after_day(self, day: int) -> float:
        """Tokens still to sell (covered by the perp) after `day` days of the schedule."""
        return max(self.total_base - day * self.slice_base, 0.0)


def book_density_quote(bid_depth_quote: float, band_pct: float) -> float:
    """ρ of a linear book holding `bid_depth_quote` within `band_pct` % below the mid."""
    if band_pct <= 0:
        raise ValueError(f"band must be > 0, got {band_pct!r}")
    return bid_depth_quote / (band_pct / 100.0)


def plan_sale(
    total_base: float,
    ref_px: float,
    twap_days: float,
    density_quote: float,
    fee_rate: float = 0.0,
    daily_volume_quote: float | None = None,
    max_participation: float = 1.0,
    floor_pct: float | None = None,
) -> SaleSchedule:
    """The schedule for selling `total_base` tokens (see the module docstring)."""
    if total_base < 0 or ref_px <= 0 or twap_days <= 0 or density_quote < 0:
        raise ValueError("total must be ≥ 0, price, TWAP days > 0, density ≥ 0")
    days = max(1, math.ceil(twap_days - 1e-9))
    slice_quote = total_base * ref_px / days
    binding = "twap"
    if daily_volume_quote is not None and max_participation * daily_volume_quote < slice_quote:
        slice_quote, binding = max_participation * daily_volume_quote, "participation"
    if floor_pct is not None and density_quote > 0 and density_quote * floor_pct / 100.0 < slice_quote:
        slice_quote, binding = density_quote * floor_pct / 100.0, "floor"
    slice_base = slice_quote / ref_px
    days = max(1, math.ceil(total_base / slice_base - 1e-9)) if slice_base > 0 else 0
    impact = slice_quote / (2.0 * density_quote) if density_quote > 0 else 0.0
    return SaleSchedule(total_base, ref_px, days, slice_base, density_quote, impact, fee_rate, binding)


# ====================================================================== the sale in the running bot


@dataclass(frozen=True, slots=True)
class SaleParams:
    """How the running bot carries out a `SaleSchedule` (`SaleExecutor`).

    `total_base` tokens from the deal's `start_ns`, at most `slice_base` a schedule day (day d is
    [start + d days, start + d + 1 days)), paced linearly within it: by time t no more than
    slice·(t − start)/1 day has been offered. Never below `floor_px` (the reference price less the
    floor %). One resting post-only sell of at most `child_base` at a time, replaced after
    `max_order_age_ns`."""

    total_base: float
    slice_base: float
    start_ns: int
    floor_px: float
    child_base: float
    max_order_age_ns: int = 30_000_000_000

    @classmethod
    def from_schedule(
        cls, schedule: SaleSchedule, start_ns: int, floor_pct: float, child_base: float, max_order_age_ns: int
    ) -> SaleParams:
        return cls(
            total_base=schedule.total_base,
            slice_base=schedule.slice_base,
            start_ns=start_ns,
            floor_px=schedule.ref_px * (1.0 - floor_pct / 100.0),
            child_base=child_base,
            max_order_age_ns=max_order_age_ns,
        )


NS_PER_DAY_INT = 86_400_000_000_000


class SaleExecutor:
    """The deal's initial sale as the running bot's own orders on its main spot market.

    Passive, so the sale earns the spread instead of paying it through a thin book: one post-only
    limit sell at a time, one tick inside the best ask when the spread allows (else joining it),
    never below the floor, never crossing the bid; re-placed when another ask undercuts it or it
    grows old. How much may be offered: `due_base` (the linear pace of the day's slice, less what is
    sold; a day's slice is never exceeded, so a bot that was down does not dump the backlog at once).

    Restarts: `sold_by_day` is the ledger's `sold` deal events by schedule day (every run's), so the
    pace and the total carry on where they stood and nothing is sold twice. The engine books the
    sale's fills in the spot position like any fill, so the net delta and the venue's position agree,
    but leaves `position_base` out of the inventory the quoters skew on (they would buy it back): the
    perp covers the delta as it is sold.
    """

    def __init__(
        self,
        params: SaleParams,
        spot: Instrument,
        client_id_prefix: str = "s",
        venue: str = DEFAULT_VENUE,
        sold_by_day: Mapping[int, float] | None = None,
        carried_lots: int = 0,
    ) -> None:
        self.p = params
        self.spot = spot
        self.venue = venue
        self.orders = OrderManager(client_id_prefix, venue=venue)
        self._prefix = client_id_prefix + "-"
        self.sold_by_day: dict[int, float] = dict(sold_by_day or {})
        self.sold_before_base = sum(self.sold_by_day.values())
        # lots of this venue session's position that earlier runs' sale fills made (a venue that
        # persists across runs reports them in its spot position): the engine books them as the sale's
        self.carried_lots = carried_lots
        self.session_sold_base = 0.0
        self.session_sold_quote = 0.0
        self.fills = 0
        self.rejects = 0

    # ---- pacing -----------------------------------------------------------------------------------

    @property
    def position_base(self) -> float:
        """The part of the main spot position the sale made on this venue session (≤ 0): what earlier
        runs' sale fills left in a venue that persists, and this run's."""
        return self.spot.size(self.carried_lots) - self.session_sold_base

    @property
    def sold_base(self) -> float:
        return self.sold_before_base + self.session_sold_base

    def day_of(self, now_ns: int) -> int:
        return max(0, (now_ns - self.p.start_ns) // NS_PER_DAY_INT)

    def target_base(self, now_ns: int) -> float:
        """What the schedule has offered by `now_ns`: slice·elapsed days, capped at the total."""
        elapsed_days = max(0, now_ns - self.p.start_ns) / NS_PER_DAY_INT
        return min(self.p.total_base, self.p.slice_base * elapsed_days)

    def due_base(self, now_ns: int) -> float:
        """Tokens that may be offered now: behind the pace, within today's slice and the total."""
        left_today = self.p.slice_base - self.sold_by_day.get(self.day_of(now_ns), 0.0)
        left_total = self.p.total_base - self.sold_base
        return max(0.0, min(self.target_base(now_ns) - self.sold_base, left_today, left_total))

    @property
    def done(self) -> bool:
        return self.sold_base >= self.p.total_base - self.spot.lot_size / 2

    # ---- orders -----------------------------------------------------------------------------------

    def owns(self, client_id: str) -> bool:
        return client_id.startswith(self._prefix)

    def on_timer(self, now_ns: int, best_bid: int | None, best_ask: int | None, can_trade: bool) -> list[Command]:
        """Keep at most one sale order resting where it should be. `can_trade`: the book is synced
        and fresh and the hedger runs (a sale fill adds delta only the perp can take)."""
        self.orders.prune()  # finished sale orders are forgotten as the quoters' are: memory stays flat
        live = self.orders.live_orders()
        if not can_trade or best_bid is None or best_ask is None or best_ask <= best_bid:
            return [c for o in live if (c := self.orders.cancel(o.client_id)) is not None]
        floor_ticks = self.spot.ticks_ceil(self.p.floor_px)
        if live:
            out: list[Command] = []
            for order in live:
                stale = now_ns - order.placed_ns >= self.p.max_order_age_ns
                undercut = order.price_ticks > best_ask  # another ask is better: ours waits behind it
                if (stale or undercut) and order.state is not OrderState.PENDING_NEW:
                    cmd = self.orders.cancel(order.client_id)
                    if cmd is not None:
                        out.append(cmd)
            return out
        lots = self.spot.lots_floor(min(self.p.child_base, self.due_base(now_ns)))
        price = max(best_ask - 1 if best_ask - 1 > best_bid else best_ask, floor_ticks)
        if lots <= 0 or self.spot.notional(price, lots) < self.spot.min_notional:
            return []
        place = PlaceOrder(
            self.spot.symbol,
            self.orders.next_client_id(),
            Side.SELL,
            price,
            lots,
            OrderType.LIMIT,
            post_only=True,
            tag="sale",
            venue=self.venue,
        )
        return [self.orders.place(place, -1, now_ns)]

    def on_order_event(self, event: OrderAccepted | OrderRejected | OrderCanceled | CancelRejected) -> None:
        if isinstance(event, OrderAccepted):
            self.orders.on_accepted(event)
        elif isinstance(event, OrderRejected):
            self.orders.on_rejected(event)  # e.g. post-only would have crossed: placed anew next time
            self.rejects += 1
        elif isinstance(event, OrderCanceled):
            self.orders.on_canceled(event)
        else:
            self.orders.on_cancel_rejected(event)

    def on_fill(self, event: OrderFilled, now_ns: int) -> bool:
        """Count a sale fill once (False: a duplicate). The caller books it and records a `sold` event."""
        if not self.orders.on_fill(event).is_new:
            return False
        size = self.spot.size(event.size_lots)
        px = self.spot.price(event.price_ticks)
        self.session_sold_base += size
        self.session_sold_quote += size * px
        day = self.day_of(now_ns)
        self.sold_by_day[day] = self.sold_by_day.get(day, 0.0) + size
        self.fills += 1
        return True

    def cancel_all(self) -> list[Command]:
        return self.orders.cancel_all()

    def open_orders(self) -> int:
        return len(self.orders.live_orders())

    def summary(self, now_ns: int) -> dict[str, float | int | None]:
        avg = self.session_sold_quote / self.session_sold_base if self.session_sold_base > 0 else None
        return {
            "total_base": self.p.total_base,
            "sold_base": round(self.sold_base, 10),
            "session_sold_base": round(self.session_sold_base, 10),
            "session_avg_px": round(avg, 8) if avg is not None else None,
            "target_base": round(self.target_base(now_ns), 10),
            "behind_base": round(max(0.0, self.target_base(now_ns) - self.sold_base), 10),
            "slice_base_per_day": self.p.slice_base,
            "floor_px": self.p.floor_px,
            "fills": self.fills,
            "rejects": self.rejects,
        }
