"""Market-making obligations per venue (DOMAIN.md §2) and a time-weighted compliance tracker.

A typical deal obliges the market maker, per venue, to quote a spread of at most `max_spread_bps`
of mid (0.1 % = 10 bps) and to show at least `min_depth_quote` of bids and of asks within
`±depth_band_pct` % of mid (the article: $100k each side within ±2 % on the main venue, $50k on
the others).

Precedence (enforced by `bot.core.risk.RiskGuard`): hard limits beat obligations beat soft widening.
The guard's own widening is scaled down so the quoted spread stays within the cap (`cap_widening`),
and the cap is handed to the quoter as `max_spread_px`; only a hard limit (a side disabled, a pause
or a halt) lifts the cap, and that is reported as an `obligation.breached` decision with its reason.

Pure and synchronous; time is passed in as `now_ns`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

SPREAD_RULE = "spread"
BID_DEPTH_RULE = "bid_depth"
ASK_DEPTH_RULE = "ask_depth"
RULES = (SPREAD_RULE, BID_DEPTH_RULE, ASK_DEPTH_RULE)

# Relative slack on comparisons so a spread computed as exactly the cap is not a breach by one ulp.
_REL_EPS = 1e-9


@dataclass(frozen=True, slots=True)
class Obligation:
    """One venue's obligations. `max_spread_bps`: bps of mid; `depth_band_pct`: % of mid."""

    venue: str
    max_spread_bps: float = 10.0
    depth_band_pct: float = 2.0
    min_depth_quote: float = 100_000.0

    def __post_init__(self) -> None:
        if not (self.max_spread_bps > 0 and math.isfinite(self.max_spread_bps)):
            raise ValueError(f"{self.venue}: max_spread_bps must be finite and > 0")
        if not 0 < self.depth_band_pct < 100:
            raise ValueError(f"{self.venue}: depth_band_pct must be in (0, 100)")
        if not (self.min_depth_quote >= 0 and math.isfinite(self.min_depth_quote)):
            raise ValueError(f"{self.venue}: min_depth_quote must be finite and >= 0")

    def max_spread_px(self, mid_px: float) -> float:
        """The largest allowed total spread (ask − bid) at this mid, price units."""
        return mid_px * self.max_spread_bps * 1e-4

    def band_px(self, mid_px: float) -> tuple[float, float]:
        """(low, high) price bounds within which resting size counts as depth."""
        half = mid_px * self.depth_band_pct * 1e-2
        return mid_px - half, mid_px + half


def depth_within_band_quote(levels: Iterable[tuple[float, float]], low_px: float, high_px: float) -> float:
    """Σ price·size (quote) of the `(price_px, size_base)` levels priced within `[low_px, high_px]`."""
    return sum(px * size for px, size in levels if low_px <= px <= high_px)


def spread_held(obligation: Obligation, mid_px: float, bid_px: float, ask_px: float) -> bool:
    """Both sides quoted (finite prices) and `ask − bid <= max_spread_bps` of mid."""
    if not (bid_px > 0.0 and ask_px > 0.0 and mid_px > 0.0):  # NaN compares False: a missing side
        return False
    return ask_px - bid_px <= obligation.max_spread_px(mid_px) * (1.0 + _REL_EPS)


def depth_held(obligation: Obligation, depth_quote: float) -> bool:
    return depth_quote >= obligation.min_depth_quote * (1.0 - _REL_EPS)


def cap_widening(
    theo_spread_px: float, spread_mult: float, bid_extra_px: float, ask_extra_px: float, cap_px: float
) -> tuple[float, float, float, bool]:
    """Scale the guard's widening down so `theo_spread·mult + bid_extra + ask_extra <= cap_px`.

    The widening beyond the model's own spread, `(mult − 1)·theo + bid_extra + ask_extra`, is
    multiplied by one factor f in [0, 1] chosen so the total lands exactly on the cap (f = 0 when the
    model's spread alone already exceeds it: the quoter's `max_spread_px` clamp handles that case).
    Returns `(spread_mult, bid_extra_px, ask_extra_px, bound)`; `bound` says the cap changed anything.
    """
    widened = theo_spread_px * spread_mult + bid_extra_px + ask_extra_px
    if widened <= cap_px:
        return spread_mult, bid_extra_px, ask_extra_px, False
    excess = widened - theo_spread_px
    room = cap_px - theo_spread_px
    factor = room / excess if room > 0.0 else 0.0
    return 1.0 + (spread_mult - 1.0) * factor, bid_extra_px * factor, ask_extra_px * factor, True


class ComplianceTracker:
    """Share of time each obligation held, time-weighted from `now_ns`.

    `update(now_ns, ...)` reports the state from `now_ns` on; it is assumed to hold until the next
    update. Shares cover the time since the first update (NaN before any time has passed).
    """

    __slots__ = ("_held_ns", "_last_ns", "_state", "_total_ns")

    def __init__(self) -> None:
        self._last_ns = -1
        self._total_ns = 0
        # per rule (spread, bid depth, ask depth) and all three together
        self._held_ns = [0, 0, 0, 0]
        self._state = (False, False, False)

    def update(self, now_ns: int, spread_ok: bool, bid_depth_ok: bool, ask_depth_ok: bool) -> None:
        self._accrue(now_ns)
        self._state = (spread_ok, bid_depth_ok, ask_depth_ok)

    def _accrue(self, now_ns: int) -> None:
        if self._last_ns >= 0 and now_ns > self._last_ns:
            dt = now_ns - self._last_ns
            spread_ok, bid_ok, ask_ok = self._state
            held = self._held_ns
            if spread_ok:
                held[0] += dt
            if bid_ok:
                held[1] += dt
            if ask_ok:
                held[2] += dt
            if spread_ok and bid_ok and ask_ok:
                held[3] += dt
            self._total_ns += dt
        if now_ns > self._last_ns:
            self._last_ns = now_ns

    def shares(self, now_ns: int) -> dict[str, float]:
        """Share of time held per rule (`spread`, `bid_depth`, `ask_depth`) and `all` three at once."""
        self._accrue(now_ns)
        total = self._total_ns
        if total == 0:
            return dict.fromkeys((*RULES, "all"), math.nan)
        h = self._held_ns
        return {
            SPREAD_RULE: h[0] / total,
            BID_DEPTH_RULE: h[1] / total,
            ASK_DEPTH_RULE: h[2] / total,
            "all": h[3] / total,
        }

    @property
    def observed_s(self) -> float:
        return self._total_ns / 1e9
