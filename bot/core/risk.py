"""The risk guard: adapt the quotes first, stop only when it must.

Each rule is a small pure function of state (below); `RiskGuard.evaluate(inputs, now_ns)` runs them
all on every requote and returns one `RiskDecision`: the `QuoteAdjust` fields for the quoter, the
`pause`/`halt` flags, the budget of new orders, the tuple of active reasons (for the quote log) and
the rule state transitions (for `risk.*` / `obligation.*` log events).

Rules (config keys in `docs/risk.md`):

- inventory: past `inventory_soft_base`, the side that ADDS to the position (the bid when long,
  the ask when short) moves away from mid by `(m − 1)` model half spreads, `m = 1 + (max_mult − 1)·x²`,
  `x = (|q| − soft)/(hard − soft)` clipped to [0, 1] (continuous, flat at the soft limit); the side
  that reduces the position keeps its model distance, so the skew is not undone (widening both sides
  moved a short market maker's bid DOWN, away from the buy it wants: issue #16); at
  `inventory_hard_base` only the side that reduces inventory is quoted; so too past
  `max_notional_quote` of |q|·mid;
- losses: drawdown from the session's peak equity past `max_drawdown_quote` pauses (cancel all) for
  `pause_cooldown_s`, then quoting resumes with the peak reset to the equity at resume; a second
  breach within `halt_window_s` of the previous one halts until restart (the process keeps running);
- market: no book update for `stale_feed_ms` pauses; σ_short/σ_long above `vol_ratio_threshold`
  widens by `min(ratio/threshold, vol_max_mult)`; a bid above `ref·(1 + band)` or an ask below
  `ref·(1 − band)` (the reference: perp mark or another venue) is refused; new orders are
  rationed by a token bucket (`order_rate_per_s`, `order_burst`);
- toxic flow: per-side widen and skew from `bot.core.toxicity`;
- obligations: `bot.core.obligations`.

Precedence: hard limits (pause, halt, a side disabled) beat obligations (the spread cap) beat soft
widening (inventory, volatility, toxicity). Pure and synchronous; time is passed in.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from bot.core.obligations import ComplianceTracker, Obligation, cap_widening, depth_held, spread_held
from bot.core.toxicity import CLEAR, ToxicityMonitor, ToxicityParams
from bot.domain import Side, install_fast_constructors

NS_PER_S = 1_000_000_000

# ---- reasons: stable strings, listed in precedence order (hard limits first) ----
DRAWDOWN_HALT = "drawdown_halt"
DRAWDOWN_PAUSE = "drawdown_pause"
FEED_STALE = "feed_stale"
INVENTORY_HARD = "inventory_hard_limit"
MAX_NOTIONAL = "max_notional"
REFERENCE_BAND_BID = "reference_band_bid"
REFERENCE_BAND_ASK = "reference_band_ask"
ORDER_RATE = "order_rate_limit"
OBLIGATION_BREACHED = "obligation_breached"
OBLIGATION_CAP = "obligation_spread_cap"
INVENTORY_SOFT = "inventory_soft_limit"
VOLATILITY_SPIKE = "volatility_spike"
TOXIC_BID = "toxic_bid"
TOXIC_ASK = "toxic_ask"
REASONS = (
    DRAWDOWN_HALT,
    DRAWDOWN_PAUSE,
    FEED_STALE,
    INVENTORY_HARD,
    MAX_NOTIONAL,
    REFERENCE_BAND_BID,
    REFERENCE_BAND_ASK,
    ORDER_RATE,
    OBLIGATION_BREACHED,
    OBLIGATION_CAP,
    INVENTORY_SOFT,
    VOLATILITY_SPIKE,
    TOXIC_BID,
    TOXIC_ASK,
)
_BIT = {reason: 1 << i for i, reason in enumerate(REASONS)}
# one bit per reason, same order (module constants: cheaper than dict lookups on the hot path)
(
    B_DRAWDOWN_HALT,
    B_DRAWDOWN_PAUSE,
    B_FEED_STALE,
    B_INVENTORY_HARD,
    B_MAX_NOTIONAL,
    B_REFERENCE_BAND_BID,
    B_REFERENCE_BAND_ASK,
    B_ORDER_RATE,
    B_OBLIGATION_BREACHED,
    B_OBLIGATION_CAP,
    B_INVENTORY_SOFT,
    B_VOLATILITY_SPIKE,
    B_TOXIC_BID,
    B_TOXIC_ASK,
) = (1 << i for i in range(len(REASONS)))

# ---- loss state machine ----
ACTIVE = "active"
PAUSED = "paused"
HALTED = "halted"

# ---- rule states (for transitions); rule names are the `rule` field of risk.* events ----
ON = "on"
OFF = "off"
RULES = (
    "drawdown",  # active / paused / halted
    "feed",  # on = stale
    "inventory_hard",
    "max_notional",
    "reference_band_bid",
    "reference_band_ask",
    "order_rate",
    "obligation",  # on = breached
    "obligation_cap",
    "inventory_soft",
    "volatility_spike",
    "toxic_bid",  # clear / toxic / decaying
    "toxic_ask",
)
_EVENTS: dict[tuple[str, str], str] = {
    ("drawdown", PAUSED): "risk.paused",
    ("drawdown", ACTIVE): "risk.resumed",
    ("drawdown", HALTED): "risk.halted",
    ("feed", ON): "risk.feed_stale",
    ("feed", OFF): "risk.feed_fresh",
    ("order_rate", ON): "risk.rate_limited",
    ("order_rate", OFF): "risk.rate_ok",
    ("obligation", ON): "obligation.breached",
    ("obligation", OFF): "obligation.restored",
    ("obligation_cap", ON): "risk.capped",
    ("obligation_cap", OFF): "risk.uncapped",
    **{(rule, ON): "risk.side_disabled" for rule in ("inventory_hard", "max_notional")},
    **{(rule, OFF): "risk.side_enabled" for rule in ("inventory_hard", "max_notional")},
    ("reference_band_bid", ON): "risk.side_disabled",
    ("reference_band_bid", OFF): "risk.side_enabled",
    ("reference_band_ask", ON): "risk.side_disabled",
    ("reference_band_ask", OFF): "risk.side_enabled",
    ("inventory_soft", ON): "risk.widened",
    ("inventory_soft", OFF): "risk.unwidened",
    ("volatility_spike", ON): "risk.widened",
    ("volatility_spike", OFF): "risk.unwidened",
    **{(rule, "toxic"): "risk.toxic" for rule in ("toxic_bid", "toxic_ask")},
    **{(rule, "decaying"): "risk.toxic_decaying" for rule in ("toxic_bid", "toxic_ask")},
    **{(rule, CLEAR): "risk.toxic_cleared" for rule in ("toxic_bid", "toxic_ask")},
}


# --------------------------------------------------------------------------------------------------
# Parameters, inputs, decision
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RiskParams:
    """Built by the app from `RiskConfig.to_params()` (the core does not import pydantic models)."""

    inventory_soft_base: float = 5.0
    inventory_hard_base: float = 10.0
    inventory_max_mult: float = 3.0  # spread multiplier reached at the hard limit
    max_notional_quote: float = 50_000.0  # |inventory|·mid per market
    max_drawdown_quote: float = 500.0
    pause_cooldown_s: float = 60.0
    halt_window_s: float = 3600.0
    stale_feed_ms: int = 3000
    vol_ratio_threshold: float = 2.0  # σ_short/σ_long above this widens
    vol_max_mult: float = 3.0
    reference_band_bps: float = 100.0
    order_rate_per_s: float = 10.0
    order_burst: float = 20.0
    toxicity: ToxicityParams = field(default_factory=ToxicityParams)
    obligation: Obligation | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.inventory_soft_base < self.inventory_hard_base:
            raise ValueError("need 0 <= inventory_soft_base < inventory_hard_base")
        if self.inventory_max_mult < 1 or self.vol_max_mult < 1:
            raise ValueError("inventory_max_mult and vol_max_mult must be >= 1")
        if self.vol_ratio_threshold <= 0 or self.order_rate_per_s <= 0 or self.order_burst < 1:
            raise ValueError("need vol_ratio_threshold > 0, order_rate_per_s > 0, order_burst >= 1")
        for name in ("max_notional_quote", "max_drawdown_quote", "reference_band_bps"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0")
        if self.pause_cooldown_s < 0 or self.halt_window_s < 0 or self.stale_feed_ms < 1:
            raise ValueError("need pause_cooldown_s >= 0, halt_window_s >= 0, stale_feed_ms >= 1")


@dataclass(slots=True)
class RiskInputs:
    """Plain values the engine fills in before each `evaluate` (it may keep one and update it).

    Prices in price units (quote per base), NaN = unknown. `inventory_base`: the inventory the quotes
    carry risk on (spot minus target). `last_book_ns`: local receive time of the last book update
    (−1 = none yet). `theo_bid_px`/`theo_ask_px`: the model's unadjusted quote, for the reference band
    and the obligation cap (NaN: the band checks the mid, the cap is left to the quoter). `live_*`:
    our resting best bid/ask and our resting depth (quote) within the obligation band per side, for
    the compliance tracker.
    """

    mid_px: float = math.nan
    inventory_base: float = 0.0
    equity_quote: float = math.nan
    sigma_short_px_per_sqrt_s: float = math.nan
    sigma_long_px_per_sqrt_s: float = math.nan
    last_book_ns: int = -1
    reference_px: float = math.nan
    theo_bid_px: float = math.nan
    theo_ask_px: float = math.nan
    live_bid_px: float = math.nan
    live_ask_px: float = math.nan
    live_bid_depth_quote: float = 0.0
    live_ask_depth_quote: float = 0.0


@dataclass(frozen=True, slots=True)
class RiskTransition:
    """A rule changed state. The runtime logs `event` with `fields` (which include rule, state,
    prev_state and reason plus the values that drove the rule)."""

    event: str
    rule: str
    state: str
    prev_state: str
    fields: dict[str, Any]


class RiskDecision(NamedTuple):
    """The guard's verdict for one requote. The first seven fields are exactly `QuoteAdjust`'s, in its
    order: the decision is itself a `QuoteShape` for `build_ladder`, and `decision[:7]` is that shape.

    A NamedTuple because one is built per requote and its construction is ~4x cheaper than a frozen
    dataclass's; treat it as a record (by field name): the one positional read is the engine's ladder
    cache key, `decision[:7]`.
    """

    spread_mult: float = 1.0
    bid_extra_px: float = 0.0
    ask_extra_px: float = 0.0
    skew_px: float = 0.0
    bid_enabled: bool = True
    ask_enabled: bool = True
    max_spread_px: float | None = None
    pause: bool = False  # cancel all resting quotes and place none (temporary)
    halt: bool = False  # as pause, until the process restarts
    max_new_orders: int = 0  # order-rate budget: place commands the engine may send now
    reasons: tuple[str, ...] = ()
    transitions: tuple[RiskTransition, ...] = ()

    @property
    def state(self) -> str:
        """One word for metrics: halted, paused, one_sided, widened or normal."""
        if self.halt:
            return "halted"
        if self.pause:
            return "paused"
        if not (self.bid_enabled and self.ask_enabled):
            return "one_sided"
        if self.spread_mult > 1.0 or self.bid_extra_px > 0.0 or self.ask_extra_px > 0.0 or self.skew_px != 0.0:
            return "widened"
        return "normal"


# --------------------------------------------------------------------------------------------------
# The rules: pure functions
# --------------------------------------------------------------------------------------------------


def inventory_spread_mult(inventory_base: float, soft_base: float, hard_base: float, max_mult: float) -> float:
    """1 up to the soft limit, then `1 + (max_mult − 1)·x²` with `x = (|q| − soft)/(hard − soft)`
    clipped to [0, 1]: continuous, flat where it starts, `max_mult` at and beyond the hard limit."""
    excess = abs(inventory_base) - soft_base
    if excess <= 0.0:
        return 1.0
    x = min(1.0, excess / (hard_base - soft_base))
    return 1.0 + (max_mult - 1.0) * x * x


def inventory_adding_extra_px(inv_mult: float, theo_bid_px: float, theo_ask_px: float, vol_mult: float) -> float:
    """How much further from mid the side that adds to the position goes: `(inv_mult − 1)` times the
    model's half spread as quoted (× the volatility multiplier), px. Unknown quotes (NaN) give 0."""
    half_px = 0.5 * (theo_ask_px - theo_bid_px)
    if not half_px > 0.0:  # also NaN
        return 0.0
    return (inv_mult - 1.0) * half_px * vol_mult


def growing_side_blocked(inventory_base: float, breached: bool) -> tuple[bool, bool]:
    """(bid_enabled, ask_enabled) when a position limit is `breached`: long blocks the bid (buying
    would grow it), short blocks the ask; flat blocks nothing."""
    if not breached:
        return True, True
    return inventory_base <= 0.0, inventory_base >= 0.0


def volatility_mult(sigma_short: float, sigma_long: float, ratio_threshold: float, max_mult: float) -> float:
    """`min(ratio/threshold, max_mult)` once `ratio = σ_short/σ_long` exceeds the threshold, else 1.

    Continuous at the threshold (ratio/threshold = 1 there). Unknown σ (NaN, <= 0) gives 1.
    """
    if not (sigma_short > 0.0 and sigma_long > 0.0):
        return 1.0
    ratio = sigma_short / sigma_long
    if ratio <= ratio_threshold:
        return 1.0
    return min(ratio / ratio_threshold, max_mult)


def reference_band_sides(bid_px: float, ask_px: float, reference_px: float, band_bps: float) -> tuple[bool, bool]:
    """(bid_ok, ask_ok): a bid above `ref·(1 + band)` would buy dear, an ask below `ref·(1 − band)`
    would sell cheap, relative to the reference; those sides are refused. A bid far *below* the band
    only fails to fill, so it is not refused. Without a reference (NaN, <= 0) both are ok."""
    if not reference_px > 0.0:
        return True, True
    band = band_bps * 1e-4
    return not bid_px > reference_px * (1.0 + band), not ask_px < reference_px * (1.0 - band)


def feed_is_stale(last_book_ns: int, now_ns: int, stale_ns: int) -> bool:
    """No book update yet, or none for more than `stale_ns`."""
    return last_book_ns < 0 or now_ns - last_book_ns > stale_ns


class TokenBucket:
    """Order-rate limit: `rate_per_s` tokens accrue per second of passed-in time, up to `burst`."""

    __slots__ = ("_burst", "_last_ns", "_rate_per_ns", "tokens")

    def __init__(self, rate_per_s: float, burst: float) -> None:
        self._rate_per_ns = rate_per_s / NS_PER_S
        self._burst = burst
        self.tokens = burst
        self._last_ns = -1

    def refill(self, now_ns: int) -> float:
        if self._last_ns >= 0 and now_ns > self._last_ns:
            self.tokens = min(self._burst, self.tokens + (now_ns - self._last_ns) * self._rate_per_ns)
        if now_ns > self._last_ns:
            self._last_ns = now_ns
        return self.tokens

    def consume(self, n: int, now_ns: int) -> bool:
        """Take `n` tokens if there are that many; False (nothing taken) otherwise."""
        self.refill(now_ns)
        if n > self.tokens:
            return False
        self.tokens -= n
        return True


class LossGuard:
    """Drawdown from the session's peak equity: active → paused (cooldown) → active, or → halted.

    A breach is `peak − equity > max_drawdown_quote`. Each breach pauses for `cooldown_ns`; on resume
    the peak is reset to the equity at that moment (else the old drawdown would re-trigger at once).
    A breach within `halt_window_ns` of the previous breach halts for good. NaN equity is ignored.
    """

    __slots__ = ("_cooldown_ns", "_halt_window_ns", "_last_breach_ns", "_max_dd", "_resume_ns", "peak_quote", "state")

    def __init__(self, max_drawdown_quote: float, cooldown_s: float, halt_window_s: float) -> None:
        self._max_dd = max_drawdown_quote
        self._cooldown_ns = round(cooldown_s * NS_PER_S)
        self._halt_window_ns = round(halt_window_s * NS_PER_S)
        self._last_breach_ns: int | None = None
        self._resume_ns = 0
        self.peak_quote = math.nan
        self.state = ACTIVE

    def drawdown_quote(self, equity_quote: float) -> float:
        return self.peak_quote - equity_quote if self.peak_quote == self.peak_quote else 0.0

    def update(self, equity_quote: float, now_ns: int) -> str:
        state = self.state
        if state is HALTED or equity_quote != equity_quote:  # NaN: nothing to judge
            return state
        if state is PAUSED:
            if now_ns < self._resume_ns:
                return state
            self.state = ACTIVE
            self.peak_quote = equity_quote
            return ACTIVE
        if not equity_quote <= self.peak_quote:  # also true while peak is NaN (first equity)
            self.peak_quote = equity_quote
        if self.peak_quote - equity_quote > self._max_dd:
            last = self._last_breach_ns
            self._last_breach_ns = now_ns
            if last is not None and now_ns - last <= self._halt_window_ns:
                self.state = HALTED
            else:
                self.state = PAUSED
                self._resume_ns = now_ns + self._cooldown_ns
        return self.state


# --------------------------------------------------------------------------------------------------
# The guard
# --------------------------------------------------------------------------------------------------


class RiskGuard:
    """All rules for one market. One writer: the engine calls it in event order.

    Feed it our fills (`on_fill`), public trades (`on_trade`) and orders sent (`consume_orders`);
    call `evaluate` on every requote. `halted` stays True until a new guard is built (a restart).

    `loss`: the drawdown rule is about the whole book, not one market: the engine builds one
    `LossGuard` and hands it to every market's guard (idempotent for the same equity and time).
    """

    def __init__(self, params: RiskParams, loss: LossGuard | None = None) -> None:
        self.params = params
        self.toxicity = ToxicityMonitor(params.toxicity)
        self.loss = loss or LossGuard(params.max_drawdown_quote, params.pause_cooldown_s, params.halt_window_s)
        self.bucket = TokenBucket(params.order_rate_per_s, params.order_burst)
        # the rule reports "limited" from an empty bucket until it is half full again: a bucket that
        # hovers around one token would otherwise log a limited/ok pair per order (hysteresis)
        self._rate_limited = False
        self._rate_ok_tokens = max(1.0, params.order_burst / 2)
        self.compliance: ComplianceTracker | None = ComplianceTracker() if params.obligation else None
        self._stale_ns = params.stale_feed_ms * 1_000_000
        self._states: list[str] = [OFF] * len(RULES)
        self._states[0] = ACTIVE
        self._states[-2] = self._states[-1] = CLEAR
        self._reason_cache: dict[int, tuple[str, ...]] = {0: ()}
        self._last_mask = 0

    @property
    def halted(self) -> bool:
        return self.loss.state is HALTED

    def on_fill(self, side: Side, fill_px: float, size_base: float, now_ns: int) -> None:
        """One of our fills (price units, base units): starts its markout clocks."""
        self.toxicity.on_fill(side.sign, fill_px, size_base, now_ns)

    def on_trade(self, aggressor: Side, size_base: float, now_ns: int) -> None:
        """A public trade, for the order-flow imbalance."""
        self.toxicity.on_trade(aggressor.sign, size_base, now_ns)

    def consume_orders(self, n: int, now_ns: int) -> bool:
        """Spend `n` order tokens (call after sending n place commands). False if the budget was short."""
        return self.bucket.consume(n, now_ns)

    def evaluate(self, x: RiskInputs, now_ns: int) -> RiskDecision:
        p = self.params
        mid = x.mid_px
        have_mid = mid > 0.0  # False for NaN
        q = x.inventory_base
        mask = 0

        # -- hard limits --
        loss_state = self.loss.update(x.equity_quote, now_ns)
        halted = loss_state is HALTED
        if halted:
            mask |= B_DRAWDOWN_HALT
        elif loss_state is PAUSED:
            mask |= B_DRAWDOWN_PAUSE
        stale = feed_is_stale(x.last_book_ns, now_ns, self._stale_ns)
        if stale:
            mask |= B_FEED_STALE
        inv_hard = abs(q) >= p.inventory_hard_base
        over_notional = have_mid and abs(q) * mid > p.max_notional_quote
        bid_on, ask_on = growing_side_blocked(q, inv_hard or over_notional)
        if inv_hard:
            mask |= B_INVENTORY_HARD
        if over_notional:
            mask |= B_MAX_NOTIONAL
        band_bid_px = x.theo_bid_px if x.theo_bid_px > 0.0 else mid
        band_ask_px = x.theo_ask_px if x.theo_ask_px > 0.0 else mid
        band_bid_ok, band_ask_ok = reference_band_sides(band_bid_px, band_ask_px, x.reference_px, p.reference_band_bps)
        if not band_bid_ok:
            mask |= B_REFERENCE_BAND_BID
            bid_on = False
        if not band_ask_ok:
            mask |= B_REFERENCE_BAND_ASK
            ask_on = False
        pause = halted or loss_state is PAUSED or stale
        if pause:
            bid_on = ask_on = False
        tokens = self.bucket.refill(now_ns)
        max_new_orders = int(tokens)  # the budget itself has no hysteresis: one token, one order
        if max_new_orders < 1:
            self._rate_limited = True
        elif tokens >= self._rate_ok_tokens:
            self._rate_limited = False
        if self._rate_limited:
            mask |= B_ORDER_RATE

        # -- soft widening --
        vol_mult = volatility_mult(
            x.sigma_short_px_per_sqrt_s, x.sigma_long_px_per_sqrt_s, p.vol_ratio_threshold, p.vol_max_mult
        )
        if vol_mult > 1.0:
            mask |= B_VOLATILITY_SPIKE
        tox = self.toxicity
        tox.update(now_ns, mid)
        # a side is a reason only while the response acts: with the self-check at 0 (the calls have
        # not come true on this market) the monitor still runs but shapes no quote
        if tox.efficacy > 0.0:
            if tox.bid.state is not CLEAR:
                mask |= B_TOXIC_BID
            if tox.ask.state is not CLEAR:
                mask |= B_TOXIC_ASK
        spread_mult = vol_mult  # symmetric: volatility is a risk to either side
        if have_mid:
            bid_extra, ask_extra, skew = tox.bid_extra_px(mid), tox.ask_extra_px(mid), tox.skew_px(mid)
        else:
            bid_extra = ask_extra = skew = 0.0
        inv_mult = inventory_spread_mult(q, p.inventory_soft_base, p.inventory_hard_base, p.inventory_max_mult)
        if inv_mult > 1.0:
            mask |= B_INVENTORY_SOFT
            adding_extra = inventory_adding_extra_px(inv_mult, x.theo_bid_px, x.theo_ask_px, vol_mult)
            if q > 0.0 and bid_on:  # a side a hard limit disabled needs no widening
                bid_extra += adding_extra
            elif q < 0.0 and ask_on:
                ask_extra += adding_extra

        # -- obligations: cap the soft widening unless a hard limit is active --
        max_spread_px: float | None = None
        obligation = p.obligation
        if obligation is not None and have_mid:
            if pause or not (bid_on and ask_on):
                mask |= B_OBLIGATION_BREACHED
                if not pause:
                    # one side left (it reduces the position): the quoter keeps it within half the
                    # obligation's spread of the centre, so going one-sided never moves it away from mid
                    max_spread_px = obligation.max_spread_px(mid)
            else:
                max_spread_px = obligation.max_spread_px(mid)
                theo_spread = x.theo_ask_px - x.theo_bid_px
                if theo_spread > 0.0:
                    spread_mult, bid_extra, ask_extra, bound = cap_widening(
                        theo_spread, spread_mult, bid_extra, ask_extra, max_spread_px
                    )
                    if bound:
                        mask |= B_OBLIGATION_CAP
            if self.compliance is not None:
                self.compliance.update(
                    now_ns,
                    spread_held(obligation, mid, x.live_bid_px, x.live_ask_px),
                    depth_held(obligation, x.live_bid_depth_quote),
                    depth_held(obligation, x.live_ask_depth_quote),
                )

        reasons = self._reason_cache.get(mask)
        if reasons is None:
            reasons = tuple(r for r in REASONS if mask & _BIT[r])
            self._reason_cache[mask] = reasons
        old = self._states
        if mask == self._last_mask and loss_state is old[0] and tox.bid.state is old[-2] and tox.ask.state is old[-1]:
            transitions: tuple[RiskTransition, ...] = ()  # no rule changed state (almost every call)
        else:
            transitions = self._transitions(mask, loss_state, x, spread_mult, now_ns)
        return RiskDecision(
            spread_mult,
            bid_extra,
            ask_extra,
            skew,
            bid_on,
            ask_on,
            max_spread_px,
            pause,
            halted,
            max_new_orders,
            reasons,
            transitions,
        )

    def _transitions(
        self, mask: int, loss_state: str, x: RiskInputs, spread_mult: float, now_ns: int
    ) -> tuple[RiskTransition, ...]:
        """Compare each rule's new state with its last one; build log records only on a change.
        (`evaluate` skips the call when the mask and the three multi-state rules are as last time.)"""
        tox = self.toxicity
        old = self._states
        self._last_mask = mask
        new = (
            loss_state,
            ON if mask & B_FEED_STALE else OFF,
            ON if mask & B_INVENTORY_HARD else OFF,
            ON if mask & B_MAX_NOTIONAL else OFF,
            ON if mask & B_REFERENCE_BAND_BID else OFF,
            ON if mask & B_REFERENCE_BAND_ASK else OFF,
            ON if mask & B_ORDER_RATE else OFF,
            ON if mask & B_OBLIGATION_BREACHED else OFF,
            ON if mask & B_OBLIGATION_CAP else OFF,
            ON if mask & B_INVENTORY_SOFT else OFF,
            ON if mask & B_VOLATILITY_SPIKE else OFF,
            tox.bid.state,
            tox.ask.state,
        )
        changed = [i for i in range(len(RULES)) if new[i] != old[i]]
        if not changed:
            return ()
        out = []
        for i in changed:
            rule = RULES[i]
            fields = self._fields(rule, mask, x, spread_mult, now_ns)
            fields.update(rule=rule, state=new[i], prev_state=old[i])
            out.append(RiskTransition(_EVENTS[(rule, new[i])], rule, new[i], old[i], fields))
            old[i] = new[i]
        return tuple(out)

    def _fields(self, rule: str, mask: int, x: RiskInputs, spread_mult: float, now_ns: int) -> dict[str, Any]:
        """The values that drove `rule`, for its log event. `reason`: the active reasons, joined."""
        reasons = ",".join(r for r in REASONS if mask & _BIT[r])
        fields: dict[str, Any] = {"reason": reasons, "mid_px": x.mid_px, "inventory_base": x.inventory_base}
        if rule == "drawdown":
            fields.update(
                equity_quote=x.equity_quote,
                peak_equity_quote=self.loss.peak_quote,
                drawdown_quote=self.loss.drawdown_quote(x.equity_quote),
                max_drawdown_quote=self.params.max_drawdown_quote,
            )
        elif rule == "feed":
            fields.update(last_book_ns=x.last_book_ns, age_ms=(now_ns - x.last_book_ns) / 1e6)
        elif rule in ("inventory_hard", "max_notional", "inventory_soft"):
            p = self.params
            fields.update(
                notional_quote=abs(x.inventory_base) * x.mid_px,
                side=Side.BUY.value if x.inventory_base > 0 else Side.SELL.value,  # the side that adds
                adding_side_mult=inventory_spread_mult(
                    x.inventory_base, p.inventory_soft_base, p.inventory_hard_base, p.inventory_max_mult
                ),
            )
        elif rule.startswith("reference_band"):
            fields.update(
                reference_px=x.reference_px,
                theo_bid_px=x.theo_bid_px,
                theo_ask_px=x.theo_ask_px,
                band_bps=self.params.reference_band_bps,
                side=Side.BUY.value if rule.endswith("bid") else Side.SELL.value,
            )
        elif rule == "volatility_spike":
            ratio = x.sigma_short_px_per_sqrt_s / x.sigma_long_px_per_sqrt_s if x.sigma_long_px_per_sqrt_s else math.nan
            fields.update(vol_ratio=ratio, spread_mult=spread_mult)
        elif rule == "order_rate":
            fields.update(tokens=self.bucket.tokens)
        elif rule.startswith("obligation"):
            ob = self.params.obligation
            fields.update(
                venue=ob.venue if ob else "",
                max_spread_bps=ob.max_spread_bps if ob else math.nan,
                theo_spread_px=x.theo_ask_px - x.theo_bid_px,
            )
        elif rule.startswith("toxic"):
            tox = self.toxicity
            side = tox.bid if rule == "toxic_bid" else tox.ask
            fields.update(
                intensity=side.intensity,
                markout_bps=tox.bid_markout_bps if rule == "toxic_bid" else tox.ask_markout_bps,
                ofi=tox.ofi,
                flow=tox.flow_score,
                efficacy=tox.efficacy,
            )
        return fields


# built in C when the extension is there (one Python-level call per construction less; same objects)
install_fast_constructors(RiskDecision, RiskTransition)
