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
from dataclasses import dataclass


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
