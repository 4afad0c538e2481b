"""Theoretical quotes (Avellaneda-Stoikov 2008, Guéant-Lehalle-Fernandez-Tapia 2013) and the order ladder.

Units (see docs/quoting.md for the derivation):

- prices `_px` are in quote currency per base unit; the mid `s` and the quotes are `_px`;
- inventory `q` is in base units (`inventory_base`), NOT in order-size units;
- `gamma_per_quote` (γ) is the CARA risk aversion on wealth measured in the quote currency, 1/quote;
- `order_size_base` (Δ) is the size of one quote in base units; the models are written for trades of
  one size Δ, so the dimensionless products are γ·Δ·δ and k·δ: `γΔ` is in 1/px, like k;
- `sigma_px_per_sqrt_s` (σ): mid-price volatility, px/√s; `k_per_px` (k): decay of the arrival rate
  with depth, 1/px; `a_per_s` (A): arrival rate of takers at depth 0, 1/s; `horizon_s`: T − t, s.

With these units every formula below is dimensionally consistent for any price level or lot size,
which is what Hummingbot's `risk_factor` lacks (its γ multiplies q in order units by σ² in px²).

Everything here is pure, synchronous and allocation-light: the engine calls `theo_quote` and
`build_ladder` on every requote. The per-requote outputs (`TheoQuote`, `DesiredQuote`) are NamedTuples
because they are built several times per event and a frozen dataclass costs ~4x more to construct.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal, NamedTuple, Protocol

from bot.domain import Instrument, Side, install_fast_constructors

ModelName = Literal["glft", "as"]
GlftXi = Literal["gamma", "zero"]

_BPS = 1e-4


@dataclass(frozen=True, slots=True)
class QuoteParams:
    """Quoter parameters, a plain mirror of `bot.config.QuoterConfig`: `QuoteParams(**cfg.quoter.model_dump())`.

    The core does not import pydantic models; the app builds this once at start.
    `price_tolerance_ticks` and `max_order_age_ms` are not used here: they ride along for the order diff.
    """

    model: ModelName = "glft"
    glft_xi: GlftXi = "gamma"  # GLFT's market-impact parameter: ξ = γ, or ξ = 0
    gamma_per_quote: float = 0.05  # γ, 1/quote currency
    horizon_s: float = 60.0  # A-S only: the rolling horizon T − t
    order_size_base: float = 1.0  # Δ, base units per quote (level 0)
    inventory_target_base: float = 0.0  # quotes skew toward this inventory
    min_spread_bps: float = 2.0  # floor on the total quoted spread, bps of mid
    levels: int = 1
    level_spacing_bps: float = 5.0  # distance between ladder levels, bps of mid
    size_decay: float = 1.0  # level i size = order_size_base * size_decay**i
    price_tolerance_ticks: int = 1
    max_order_age_ms: int = 30_000

    def __post_init__(self) -> None:
        if self.model not in ("glft", "as"):
            raise ValueError(f"model must be 'glft' or 'as', got {self.model!r}")
        if self.glft_xi not in ("gamma", "zero"):
            raise ValueError(f"glft_xi must be 'gamma' or 'zero', got {self.glft_xi!r}")
        for name in ("gamma_per_quote", "horizon_s", "order_size_base", "size_decay"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be finite and > 0, got {value!r}")
        for name in ("min_spread_bps", "level_spacing_bps"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be finite and >= 0, got {value!r}")
        if not math.isfinite(self.inventory_target_base):
            raise ValueError("inventory_target_base must be finite")
        if self.levels < 1:
            raise ValueError(f"levels must be >= 1, got {self.levels}")


@dataclass(frozen=True, slots=True)
class MarketInputs:
    """What the models need from the market, all from the estimators and the portfolio."""

    mid_px: float
    inventory_base: float
    sigma_px_per_sqrt_s: float
    a_per_s: float
    k_per_px: float

    def __post_init__(self) -> None:
        # NaN fails every comparison, so these checks also reject NaN.
        if not (0 < self.mid_px < math.inf):
            raise ValueError(f"mid_px must be finite and > 0, got {self.mid_px!r}")
        if not (0 <= self.sigma_px_per_sqrt_s < math.inf):
            raise ValueError(f"sigma_px_per_sqrt_s must be finite and >= 0, got {self.sigma_px_per_sqrt_s!r}")
        if not (0 < self.a_per_s < math.inf and 0 < self.k_per_px < math.inf):
            raise ValueError(f"a_per_s and k_per_px must be finite and > 0, got {self.a_per_s!r}, {self.k_per_px!r}")
        if not math.isfinite(self.inventory_base):
            raise ValueError("inventory_base must be finite")


@dataclass(frozen=True, slots=True)
class QuoteAdjust:
    """The risk guard's shaping of the theoretical quote, applied in `build_ladder`.

    Order: half spread × `spread_mult` (floored by min_spread_bps), centre shifted by `skew_px`
    (+ = both quotes up), then per-side widening `bid_extra_px`/`ask_extra_px`, then the obligation
    cap `max_spread_px` on the total spread, then snapping and the post-only clamp. With one side
    disabled (a hard limit beats the obligation: the spread cannot be held), the side left, which
    reduces the position, is still kept no further from the centre than a capped quote would be:
    it may only come in, so hitting a hard limit never moves the reducing quote away from mid.
    """

    spread_mult: float = 1.0
    bid_extra_px: float = 0.0
    ask_extra_px: float = 0.0
    skew_px: float = 0.0
    bid_enabled: bool = True
    ask_enabled: bool = True
    max_spread_px: float | None = None


NO_ADJUST = QuoteAdjust()


class QuoteShape(Protocol):
    """The seven adjustment fields `build_ladder` reads. `QuoteAdjust` has them, and so has the risk
    guard's `RiskDecision`, which the engine passes as it is rather than copy it on every requote."""

    @property
    def spread_mult(self) -> float: ...
    @property
    def bid_extra_px(self) -> float: ...
    @property
    def ask_extra_px(self) -> float: ...
    @property
    def skew_px(self) -> float: ...
    @property
    def bid_enabled(self) -> bool: ...
    @property
    def ask_enabled(self) -> bool: ...
    @property
    def max_spread_px(self) -> float | None: ...


class TheoQuote(NamedTuple):
    """A model's unsnapped quote. `bid_px = reservation_px − half_spread_px`, `ask_px = reservation_px + ...`.

    `skew_px_per_base`: how far the reservation price moves per base unit of inventory away from
    target (reservation = mid − skew_px_per_base · (q − q_target)). `floored`: the min-spread floor bound.
    """

    model: ModelName
    mid_px: float
    reservation_px: float
    half_spread_px: float
    skew_px_per_base: float
    bid_px: float
    ask_px: float
    floored: bool


class DesiredQuote(NamedTuple):
    """One order the quoter wants resting: level 0 is the innermost."""

    side: Side
    level: int
    price_ticks: int
    size_lots: int


def _min_half_spread_px(params: QuoteParams, mid_px: float) -> float:
    return 0.5 * params.min_spread_bps * _BPS * mid_px


def _theo(
    model: ModelName, params: QuoteParams, market: MarketInputs, skew_px_per_base: float, half_px: float
) -> TheoQuote:
    floor_px = _min_half_spread_px(params, market.mid_px)
    floored = half_px < floor_px
    if floored:
        half_px = floor_px
    reservation_px = market.mid_px - skew_px_per_base * (market.inventory_base - params.inventory_target_base)
    return TheoQuote(
        model=model,
        mid_px=market.mid_px,
        reservation_px=reservation_px,
        half_spread_px=half_px,
        skew_px_per_base=skew_px_per_base,
        bid_px=reservation_px - half_px,
        ask_px=reservation_px + half_px,
        floored=floored,
    )


def as_quote(params: QuoteParams, market: MarketInputs) -> TheoQuote:
    """Avellaneda-Stoikov (2008), eqs. (29)-(30), with a rolling horizon τ = T − t = `horizon_s`.

        r      = s − q·γ·σ²·τ                                   (q in base, γ in 1/quote: px)
        δa+δb  = γΔ·σ²·τ + (2/(γΔ))·ln(1 + γΔ/k)                 (γΔ in 1/px: px)

    The paper trades one unit (Δ = 1); for a general order size the spread is the paper's formula
    with γ replaced by γΔ, the risk aversion per order (see the module docstring).
    """
    sigma = market.sigma_px_per_sqrt_s
    var_horizon_px2 = sigma * sigma * params.horizon_s  # σ²τ, px²
    gamma_order_per_px = params.gamma_per_quote * params.order_size_base  # γΔ, 1/px
    total_px = gamma_order_per_px * var_horizon_px2 + (2.0 / gamma_order_per_px) * math.log1p(
        gamma_order_per_px / market.k_per_px
    )
    skew = params.gamma_per_quote * var_horizon_px2  # γσ²τ, px per base
    return _theo("as", params, market, skew, 0.5 * total_px)


def glft_quote(params: QuoteParams, market: MarketInputs) -> TheoQuote:
    """Guéant-Lehalle-Fernandez-Tapia (2013) asymptotic quotes with order size Δ and ξ = γ.

        x     = ξΔ = γΔ                                                   1/px
        c1    = (1/x)·ln(1 + x/k)                                         px
        c2    = sqrt( γ/(2·A·Δ·k) · (1 + x/k)^(k/x + 1) )                 √s / base
        half  = c1 + (Δ/2)·σ·c2                                           px
        skew  = σ·c2                                                      px per base
        bid   = s − (half + skew·q),  ask = s + (half − skew·q)

    so the reservation (centre) is s − skew·q. With Δ = 1 this is DOMAIN.md's C-form (C = σ·c2).

    `params.glft_xi == "zero"`: no market impact (Guéant 2017, "Optimal market making", Applied
    Mathematical Finance 24(2)), the ξ → 0 limit of the above:

        c1    = 1/k,   c2 = sqrt( γ·e / (2·A·Δ·k) )
    """
    gamma = params.gamma_per_quote
    size = params.order_size_base
    k = market.k_per_px
    if params.glft_xi == "zero":
        c2 = math.sqrt(gamma * math.e / (2.0 * market.a_per_s * size * k))
        skew = market.sigma_px_per_sqrt_s * c2
        return _theo("glft", params, market, skew, 1.0 / k + 0.5 * size * skew)
    x = gamma * size
    ratio = x / k
    log_term = math.log1p(ratio)
    c1_px = log_term / x
    # (1 + x/k)^(k/x + 1) through exp/log1p: stays accurate when x/k is tiny (the power → e).
    c2 = math.sqrt(gamma / (2.0 * market.a_per_s * size * k) * math.exp((1.0 / ratio + 1.0) * log_term))
    skew = market.sigma_px_per_sqrt_s * c2
    return _theo("glft", params, market, skew, c1_px + 0.5 * size * skew)


def theo_quote(params: QuoteParams, market: MarketInputs) -> TheoQuote:
    """The configured model's quote."""
    return glft_quote(params, market) if params.model == "glft" else as_quote(params, market)


def build_ladder(
    theo: TheoQuote,
    params: QuoteParams,
    instrument: Instrument,
    best_bid_ticks: int | None,
    best_ask_ticks: int | None,
    adjust: QuoteShape = NO_ADJUST,
    behind_bid_ticks: int | None = None,
    behind_ask_ticks: int | None = None,
) -> tuple[DesiredQuote, ...]:
    """The orders to rest: `params.levels` per enabled side, snapped to the grid on the safe side.

    Guarantees (property-tested): every price is a positive integer tick; bids are floored and asks
    ceiled (only the obligation cap may pull a side in); a bid is < best ask and an ask > best bid
    (post-only never crosses; `None` = empty side, no clamp); our best bid < our best ask; levels are
    strictly spaced by >= 1 tick; sizes are whole lots rounded down, and a level below one lot or the
    instrument's min notional is dropped.

    `behind_bid_ticks` / `behind_ask_ticks` (None: no limit): our bid rests at or below the first, our
    ask at or above the second (`[risk.toxicity] rest_behind_background`: the background's best, see
    `background_best`). The obligation's spread cap wins: a limit that would take the quoted spread past
    it, or move a side the cap holds alone, is not applied.
    """
    bid_t, ask_t = _inner_ticks(theo, params, instrument, adjust)
    if behind_bid_ticks is not None or behind_ask_ticks is not None:
        bid_t, ask_t = _behind(bid_t, ask_t, behind_bid_ticks, behind_ask_ticks, adjust, instrument)
    # Post-only: never at or through the opposite best.
    if best_ask_ticks is not None and bid_t >= best_ask_ticks:
        bid_t = best_ask_ticks - 1
    if best_bid_ticks is not None and ask_t <= best_bid_ticks:
        ask_t = best_bid_ticks + 1
    if bid_t >= ask_t:  # only reachable on a crossed book: lowering our bid is the safe side
        bid_t = ask_t - 1

    spacing_px = params.level_spacing_bps * _BPS * theo.mid_px
    spacing_t = max(1, math.ceil(spacing_px / instrument.tick_size - 1e-9))
    out: list[DesiredQuote] = []
    if adjust.bid_enabled:
        _add_side(out, Side.BUY, bid_t, -spacing_t, params, instrument)
    if adjust.ask_enabled:
        _add_side(out, Side.SELL, ask_t, spacing_t, params, instrument)
    return tuple(out)


def _inner_ticks(theo: TheoQuote, params: QuoteParams, instrument: Instrument, adjust: QuoteShape) -> tuple[int, int]:
    """Level-0 bid and ask in ticks after the guard's adjustments and the obligation cap."""
    half_px = max(theo.half_spread_px * adjust.spread_mult, _min_half_spread_px(params, theo.mid_px))
    centre_px = theo.reservation_px + adjust.skew_px
    bid_px = centre_px - half_px - adjust.bid_extra_px
    ask_px = centre_px + half_px + adjust.ask_extra_px
    cap_px = adjust.max_spread_px
    capped = cap_px is not None and adjust.bid_enabled and adjust.ask_enabled
    if capped and cap_px is not None and ask_px - bid_px > cap_px:
        # keep the centre (and so the skew), shrink the width to the cap
        centre_px = 0.5 * (bid_px + ask_px)
        bid_px = centre_px - 0.5 * cap_px
        ask_px = centre_px + 0.5 * cap_px
    bid_t = instrument.ticks_floor(bid_px)
    ask_t = instrument.ticks_ceil(ask_px)
    if bid_t >= ask_t:  # float noise within 1e-9 tick of each other
        ask_t = bid_t + 1
    if capped and cap_px is not None:
        bid_t, ask_t = _split_cap_excess(bid_t, ask_t, cap_px, instrument)
    elif cap_px is not None:  # one side left: no further out than the capped quote around the centre
        cap_bid_t, cap_ask_t = _split_cap_excess(
            instrument.ticks_floor(centre_px - 0.5 * cap_px), instrument.ticks_ceil(centre_px + 0.5 * cap_px),
            cap_px, instrument,
        )  # fmt: skip
        bid_t, ask_t = max(bid_t, cap_bid_t), min(ask_t, cap_ask_t)
        if bid_t >= ask_t:  # only the enabled side is placed: move the other out of its way
            if adjust.bid_enabled:
                ask_t = bid_t + 1
            else:
                bid_t = ask_t - 1
    return bid_t, ask_t


def _behind(
    bid_t: int, ask_t: int, limit_bid: int | None, limit_ask: int | None, adjust: QuoteShape, instrument: Instrument
) -> tuple[int, int]:
    """Level-0 bid and ask moved back to the limits (never forward), unless the obligation's cap forbids."""
    new_bid = bid_t if limit_bid is None else min(bid_t, limit_bid)
    new_ask = ask_t if limit_ask is None else max(ask_t, limit_ask)
    cap_px = adjust.max_spread_px
    if cap_px is not None:
        if not (adjust.bid_enabled and adjust.ask_enabled):
            return bid_t, ask_t  # one side kept within the cap around the centre: leave it there
        if new_ask - new_bid > max(ask_t - bid_t, math.floor(cap_px / instrument.tick_size + 1e-9)):
            return bid_t, ask_t
    return new_bid, new_ask


def background_best(levels: Iterable[tuple[int, int]], own_lots: Mapping[int, int]) -> int | None:
    """The best price of one book side where someone other than us rests (None: nobody).

    `levels` is the side's (price ticks, size lots), best first, as the venue shows it, our own resting
    orders included (a venue's book holds them); `own_lots` our open lots per price on that side. A
    level whose size is no more than ours there is our own quote alone. Where the book has not caught
    up with an order of ours yet, this errs toward a deeper price (the safe side for a quote held behind
    it); a book that never holds our orders (a recording replayed) loses real size at our prices too.
    """
    for price, lots in levels:
        if lots > own_lots.get(price, 0):
            return price
    return None


def _split_cap_excess(bid_t: int, ask_t: int, cap_px: float, instrument: Instrument) -> tuple[int, int]:
    """Safe-side snapping can add up to 2 ticks of width; the obligation wins, split the excess."""
    cap_t = max(1, math.floor(cap_px / instrument.tick_size + 1e-9))
    excess = ask_t - bid_t - cap_t
    if excess > 0:
        ask_t -= excess // 2
        bid_t += excess - excess // 2
    return bid_t, ask_t


def _add_side(
    out: list[DesiredQuote], side: Side, inner_t: int, step_t: int, params: QuoteParams, instrument: Instrument
) -> None:
    size_base = params.order_size_base
    for level in range(params.levels):
        price_t = inner_t + level * step_t
        lots = instrument.lots_floor(size_base)
        size_base *= params.size_decay
        if price_t <= 0:
            break  # bids only go lower from here
        if lots < 1 or instrument.notional(price_t, lots) < instrument.min_notional:
            continue
        out.append(DesiredQuote(side, level, price_t, lots))


# built in C when the extension is there (one Python-level call per construction less; same objects)
install_fast_constructors(MarketInputs, TheoQuote, DesiredQuote)
