"""Quote maths against hand-computed values, and the ladder's invariants as properties."""

from __future__ import annotations

import math

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from bot.config import QuoterConfig
from bot.core.quoting import (
    DesiredQuote,
    MarketInputs,
    QuoteAdjust,
    QuoteParams,
    TheoQuote,
    as_quote,
    build_ladder,
    glft_quote,
    theo_quote,
)
from bot.domain import Instrument, InstrumentKind, Side

# The paper's market: s = 100, σ = 2 px/√s, A = 140 /s, k = 1.5 /px.
PAPER = {"mid_px": 100.0, "sigma_px_per_sqrt_s": 2.0, "a_per_s": 140.0, "k_per_px": 1.5}


def market(inventory_base: float = 0.0, **kw: float) -> MarketInputs:
    return MarketInputs(**{**PAPER, "inventory_base": inventory_base, **kw})


def instrument(tick: float = 0.01, lot: float = 0.001, min_notional: float = 0.0) -> Instrument:
    return Instrument("T/USDT", InstrumentKind.SPOT, "T", "USDT", tick, lot, min_notional)


# ---------------------------------------------------------------------------------------------
# Hand-computed model values. ln(16/15) = 0.0645385211, ln(17/15) = 0.1251631430.
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "q", "target", "reservation", "half"),
    [
        # Δ=1, q=0: r = 100; total = γσ²τ + (2/γ)ln(1+γ/k) = 0.1·4·1 + 20·ln(16/15) = 0.4 + 1.2907704228
        (1.0, 0.0, 0.0, 100.0, 0.8453852114),
        # q=2: r = 100 − 2·0.1·4·1 = 99.2; the spread does not depend on q
        (1.0, 2.0, 0.0, 99.2, 0.8453852114),
        # q=2 with target 3: r = 100 − (2−3)·0.4 = 100.4
        (1.0, 2.0, 3.0, 100.4, 0.8453852114),
        # Δ=2: γΔ = 0.2 /px; total = 0.2·4 + (2/0.2)·ln(1+0.2/1.5) = 0.8 + 10·0.1251631430 = 2.0516314295
        # r stays in base units: 100 − 2·0.1·4 = 99.2
        (2.0, 2.0, 0.0, 99.2, 1.0258157148),
    ],
)
def test_as_quote_hand_values(size: float, q: float, target: float, reservation: float, half: float) -> None:
    params = QuoteParams(
        model="as", gamma_per_quote=0.1, horizon_s=1.0, order_size_base=size, inventory_target_base=target,
        min_spread_bps=0.0,
    )  # fmt: skip
    theo = as_quote(params, market(q))
    assert theo.model == "as"
    assert theo.reservation_px == pytest.approx(reservation, abs=1e-9)
    assert theo.half_spread_px == pytest.approx(half, abs=1e-9)
    assert theo.bid_px == pytest.approx(reservation - half, abs=1e-9)
    assert theo.ask_px == pytest.approx(reservation + half, abs=1e-9)
    assert theo.skew_px_per_base == pytest.approx(0.4)  # γσ²τ = 0.1·4·1
    assert not theo.floored


@pytest.mark.parametrize(
    ("size", "q", "reservation", "half", "skew"),
    [
        # Δ=1: x = γΔ = 0.1; c1 = ln(1+0.1/1.5)/0.1 = 0.6453852114
        # c2 = sqrt(0.1/(2·140·1·1.5) · (16/15)^(15+1)) = sqrt(0.1/420 · 2.8084039656) = 0.0258586081
        # skew = σ·c2 = 0.0517172161; half = c1 + (1/2)·skew = 0.6712438194
        (1.0, 0.0, 100.0, 0.6712438194, 0.0517172161),
        # q=2: r = 100 − 2·0.0517172161 = 99.8965655678
        (1.0, 2.0, 99.8965655678, 0.6712438194, 0.0517172161),
        # Δ=2: x = 0.2; c1 = ln(17/15)/0.2 = 0.6258157148
        # c2 = sqrt(0.1/(2·140·2·1.5) · (17/15)^(7.5+1)) = sqrt(0.1/840 · 2.8976113208) = 0.0185729300
        # skew = 0.0371458600; half = c1 + (2/2)·skew = 0.6629615748; r = 100 − 2·skew = 99.9257082800
        (2.0, 2.0, 99.9257082800, 0.6629615748, 0.0371458600),
    ],
)
def test_glft_quote_hand_values(size: float, q: float, reservation: float, half: float, skew: float) -> None:
    params = QuoteParams(model="glft", gamma_per_quote=0.1, order_size_base=size, min_spread_bps=0.0)
    theo = glft_quote(params, market(q))
    assert theo.model == "glft"
    assert theo.reservation_px == pytest.approx(reservation, abs=1e-9)
    assert theo.half_spread_px == pytest.approx(half, abs=1e-9)
    assert theo.skew_px_per_base == pytest.approx(skew, abs=1e-9)
    # DOMAIN.md's Δ=1 form: bid = s − (c1 + (2q+1)/2·C), ask = s + (c1 − (2q−1)/2·C)
    if size == 1.0:
        c1, c = 0.6453852114, 0.0517172161
        assert theo.bid_px == pytest.approx(100 - (c1 + (2 * q + 1) / 2 * c), abs=1e-9)
        assert theo.ask_px == pytest.approx(100 + (c1 - (2 * q - 1) / 2 * c), abs=1e-9)


def test_min_spread_floor() -> None:
    # 2 bps of 100 = 0.02 total: floor half = 0.01. Huge k makes the model spread tiny (≈ 1/k = 1e-6).
    params = QuoteParams(model="glft", gamma_per_quote=0.1, min_spread_bps=2.0)
    theo = glft_quote(params, market(sigma_px_per_sqrt_s=0.0, k_per_px=1e6))
    assert theo.floored
    assert theo.half_spread_px == pytest.approx(0.01)
    assert theo_quote(params, market()).floored is False


def test_theo_quote_dispatches_on_model() -> None:
    m = market(1.0)
    assert theo_quote(QuoteParams(model="as"), m) == as_quote(QuoteParams(model="as"), m)
    assert theo_quote(QuoteParams(model="glft"), m) == glft_quote(QuoteParams(model="glft"), m)


def test_params_mirror_the_config() -> None:
    cfg = QuoterConfig()
    params = QuoteParams(**cfg.model_dump())
    assert params.gamma_per_quote == cfg.gamma_per_quote and params.levels == cfg.levels


@pytest.mark.parametrize(
    "kw",
    [{"mid_px": 0.0}, {"mid_px": math.nan}, {"sigma_px_per_sqrt_s": -1.0}, {"k_per_px": 0.0}, {"a_per_s": math.inf}],
)
def test_bad_market_inputs_are_refused(kw: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        market(**kw)


# ---------------------------------------------------------------------------------------------
# Ladder, by hand. Theo: r = 99.2, half = 0.8453852114 -> bid 98.3546147886, ask 100.0453852114.
# Tick 0.01, lot 0.001.
# ---------------------------------------------------------------------------------------------

THEO = as_quote(
    QuoteParams(model="as", gamma_per_quote=0.1, horizon_s=1.0, min_spread_bps=0.0), market(2.0)
)  # fmt: skip
LADDER_PARAMS = QuoteParams(min_spread_bps=0.0, levels=3, level_spacing_bps=5.0, size_decay=0.5)


def prices(quotes: tuple[DesiredQuote, ...], side: Side) -> list[int]:
    return [q.price_ticks for q in quotes if q.side is side]


def test_ladder_snaps_to_the_safe_side_and_spaces_levels() -> None:
    quotes = build_ladder(THEO, LADDER_PARAMS, instrument(), None, None)
    # bid floor(9835.46) = 9835, ask ceil(10004.54) = 10005; spacing 5 bps of 100 = 0.05 = 5 ticks
    assert prices(quotes, Side.BUY) == [9835, 9830, 9825]
    assert prices(quotes, Side.SELL) == [10005, 10010, 10015]
    # sizes 1.0, 0.5, 0.25 base = 1000, 500, 250 lots; levels numbered from 0
    assert [(q.level, q.size_lots) for q in quotes if q.side is Side.BUY] == [(0, 1000), (1, 500), (2, 250)]


@pytest.mark.parametrize(
    ("adjust", "bids", "asks"),
    [
        # spread ×2: half 1.6907704228 -> bid 97.5092295772 (9750), ask 100.8907704228 (10090)
        (QuoteAdjust(spread_mult=2.0), [9750], [10090]),
        # bid widened 0.1: 98.2546147886 -> 9825; ask unchanged
        (QuoteAdjust(bid_extra_px=0.1), [9825], [10005]),
        # skew +0.5: bid 98.8546 -> 9885, ask 100.5454 -> 10055
        (QuoteAdjust(skew_px=0.5), [9885], [10055]),
        # ask side disabled
        (QuoteAdjust(ask_enabled=False), [9835], []),
        # cap 0.1 around centre 99.2 + 0.003: bid 99.153 -> 9915, ask 99.253 -> 9926 (11 ticks > 10):
        # excess 1 pulls the bid up one tick -> 9916 / 9926
        (QuoteAdjust(skew_px=0.003, max_spread_px=0.1), [9916], [9926]),
        # a hard limit disabled the bid: the ask left (it reduces the position) stays within the
        # capped quote around the centre 99.2: 99.25 -> 9925, not out at the ×2 distance (10090)
        (QuoteAdjust(spread_mult=2.0, max_spread_px=0.1, bid_enabled=False), [], [9925]),
        # ... but a cap never pushes it out: ×1 the ask is 100.0454 -> 10005 either way
        (QuoteAdjust(max_spread_px=10.0, bid_enabled=False), [], [10005]),
    ],
)
def test_ladder_applies_the_guard(adjust: QuoteAdjust, bids: list[int], asks: list[int]) -> None:
    params = QuoteParams(min_spread_bps=0.0)
    quotes = build_ladder(THEO, params, instrument(), None, None, adjust)
    assert prices(quotes, Side.BUY) == bids
    assert prices(quotes, Side.SELL) == asks


def test_ladder_post_only_clamp() -> None:
    # best ask 9830 is below our bid 9835: bid goes to 9829 (one tick under), levels follow
    quotes = build_ladder(THEO, LADDER_PARAMS, instrument(), 9800, 9830)
    assert prices(quotes, Side.BUY) == [9829, 9824, 9819]
    # best bid 10010 is above our ask 10005: ask goes to 10011
    quotes = build_ladder(THEO, LADDER_PARAMS, instrument(), 10010, 10020)
    assert prices(quotes, Side.SELL) == [10011, 10016, 10021]


def test_ladder_drops_levels_below_a_lot_or_min_notional() -> None:
    # min notional 50: bid level 0 = 98.35·1.0 ok, level 1 = 98.30·0.5 = 49.15 < 50 dropped,
    # level 2 = 98.25·0.25 dropped; ask level 1 = 100.10·0.5 = 50.05 kept, level 2 = 100.15·0.25 dropped
    quotes = build_ladder(THEO, LADDER_PARAMS, instrument(min_notional=50.0), None, None)
    assert [(q.side, q.level) for q in quotes] == [(Side.BUY, 0), (Side.SELL, 0), (Side.SELL, 1)]
    # lot 0.4: sizes 1.0 -> 2 lots, 0.5 -> 1 lot, 0.25 -> 0 lots (dropped)
    quotes = build_ladder(THEO, LADDER_PARAMS, instrument(lot=0.4), None, None)
    assert [q.size_lots for q in quotes if q.side is Side.SELL] == [2, 1]


# ---------------------------------------------------------------------------------------------
# Properties
# ---------------------------------------------------------------------------------------------

models = st.sampled_from(["glft", "as"])
mids = st.floats(1.0, 1e4)
sigmas = st.floats(1e-3, 10.0)
gammas = st.floats(1e-3, 10.0)
ks = st.floats(0.1, 1e3)
arrivals = st.floats(0.01, 1e3)
inventories = st.floats(-100.0, 100.0)


@given(models, mids, sigmas, gammas, ks, arrivals, inventories, st.floats(0.01, 50.0))
def test_reservation_strictly_decreasing_in_inventory(
    model: str, mid: float, sigma: float, gamma: float, k: float, a: float, q: float, dq: float
) -> None:
    params = QuoteParams(model=model, gamma_per_quote=gamma)  # type: ignore[arg-type]
    low = theo_quote(params, MarketInputs(mid, q, sigma, a, k))
    high = theo_quote(params, MarketInputs(mid, q + dq, sigma, a, k))
    assert high.reservation_px < low.reservation_px


@given(models, mids, sigmas, gammas, ks, arrivals, inventories, st.floats(1.01, 10.0))
def test_spread_increasing_in_sigma(
    model: str, mid: float, sigma: float, gamma: float, k: float, a: float, q: float, factor: float
) -> None:
    params = QuoteParams(model=model, gamma_per_quote=gamma, min_spread_bps=0.0)  # type: ignore[arg-type]
    calm = theo_quote(params, MarketInputs(mid, q, sigma, a, k))
    wild = theo_quote(params, MarketInputs(mid, q, sigma * factor, a, k))
    assert wild.half_spread_px > calm.half_spread_px


@given(models, mids, sigmas, gammas, ks, arrivals, inventories, st.sampled_from([0.01, 100.0]))
def test_quotes_do_not_depend_on_the_price_unit(
    model: str, mid: float, sigma: float, gamma: float, k: float, a: float, q: float, scale: float
) -> None:
    """Quote the same market in cents (scale 100): px ×100, σ ×100, k ÷100, γ ÷100 (wealth in cents).

    Consistent units mean every distance scales by exactly 100 — the check Hummingbot's γ fails.
    """
    params = QuoteParams(model=model, gamma_per_quote=gamma, min_spread_bps=0.0)  # type: ignore[arg-type]
    base = theo_quote(params, MarketInputs(mid, q, sigma, a, k))
    scaled_params = QuoteParams(model=model, gamma_per_quote=gamma / scale, min_spread_bps=0.0)  # type: ignore[arg-type]
    scaled = theo_quote(scaled_params, MarketInputs(mid * scale, q, sigma * scale, a, k / scale))
    assert scaled.half_spread_px == pytest.approx(base.half_spread_px * scale, rel=1e-9)
    assert scaled.reservation_px - mid * scale == pytest.approx((base.reservation_px - mid) * scale, rel=1e-6, abs=1e-9)


def _theo(mid: float, reservation_offset: float, half: float) -> TheoQuote:
    r = mid + reservation_offset
    return TheoQuote("glft", mid, r, half, 0.0, r - half, r + half, False)


@given(
    mid=st.floats(0.5, 5e4),
    reservation_offset_bps=st.floats(-300.0, 300.0),
    half_bps=st.floats(0.0, 200.0),
    tick=st.sampled_from([1e-4, 0.01, 0.1, 0.5, 1.0]),
    book_offset_ticks=st.integers(-50, 50),
    book_width_ticks=st.integers(1, 20),
    empty_side=st.sampled_from([None, "bid", "ask"]),
    levels=st.integers(1, 5),
    spacing_bps=st.floats(0.0, 50.0),
    adjust=st.builds(
        QuoteAdjust,
        spread_mult=st.floats(1.0, 5.0),
        bid_extra_px=st.floats(0.0, 10.0),
        ask_extra_px=st.floats(0.0, 10.0),
        skew_px=st.floats(-10.0, 10.0),
        bid_enabled=st.booleans(),
        ask_enabled=st.booleans(),
        max_spread_px=st.one_of(st.none(), st.floats(0.0, 20.0)),
    ),
)
def test_ladder_invariants(
    mid: float,
    reservation_offset_bps: float,
    half_bps: float,
    tick: float,
    book_offset_ticks: int,
    book_width_ticks: int,
    empty_side: str | None,
    levels: int,
    spacing_bps: float,
    adjust: QuoteAdjust,
) -> None:
    inst = instrument(tick=tick, lot=0.001)
    assume(mid / tick < 1e8)
    theo = _theo(mid, reservation_offset_bps * 1e-4 * mid, half_bps * 1e-4 * mid)
    mid_t = round(mid / tick)
    best_bid = mid_t + book_offset_ticks
    best_ask = best_bid + book_width_ticks
    bb = None if empty_side == "bid" else best_bid
    ba = None if empty_side == "ask" else best_ask
    params = QuoteParams(levels=levels, level_spacing_bps=spacing_bps, min_spread_bps=1.0)
    quotes = build_ladder(theo, params, inst, bb, ba, adjust)

    bids = prices(quotes, Side.BUY)
    asks = prices(quotes, Side.SELL)
    assert all(isinstance(p, int) and p > 0 for p in bids + asks)  # on the grid, positive
    assert all(q.size_lots >= 1 for q in quotes)
    if not adjust.bid_enabled:
        assert bids == []
    if not adjust.ask_enabled:
        assert asks == []
    if ba is not None:
        assert all(p < ba for p in bids)  # post-only: never at or through the opposite best
    if bb is not None:
        assert all(p > bb for p in asks)
    if bids and asks:
        assert max(bids) < min(asks)  # our own quotes never cross
    assert bids == sorted(bids, reverse=True) and len(set(bids)) == len(bids)
    assert asks == sorted(asks) and len(set(asks)) == len(asks)
    # Safe side: without a cap or a post-only clamp, the bid is at or below the adjusted model bid.
    half = max(theo.half_spread_px * adjust.spread_mult, 0.5e-4 * mid)
    model_bid = theo.reservation_px + adjust.skew_px - half - adjust.bid_extra_px
    model_ask = theo.reservation_px + adjust.skew_px + half + adjust.ask_extra_px
    if adjust.max_spread_px is None and bids:
        assert bids[0] * tick <= model_bid + 1e-9 * tick * max(1.0, mid / tick)
    if adjust.max_spread_px is None and asks:
        assert asks[0] * tick >= model_ask - 1e-9 * tick * max(1.0, mid / tick)


@given(
    offset_bps=st.floats(-100.0, 100.0),
    half_bps=st.floats(0.0, 500.0),
    cap_ticks=st.integers(1, 200),
)
def test_ladder_respects_the_spread_cap_when_the_book_allows(
    offset_bps: float, half_bps: float, cap_ticks: int
) -> None:
    mid, tick = 100.0, 0.01
    theo = _theo(mid, offset_bps * 1e-4 * mid, half_bps * 1e-4 * mid)
    adjust = QuoteAdjust(max_spread_px=cap_ticks * tick)
    quotes = build_ladder(theo, QuoteParams(min_spread_bps=0.0), instrument(tick=tick), None, None, adjust)
    bids, asks = prices(quotes, Side.BUY), prices(quotes, Side.SELL)
    assert asks[0] - bids[0] <= cap_ticks


def test_glft_without_market_impact_hand_values() -> None:
    # ξ = 0 (Guéant 2017): c1 = 1/k, c2 = sqrt(γ·e/(2·A·Δ·k)). The paper's market, γ = 0.1, Δ = 1:
    # c1 = 1/1.5 = 0.6666666667; c2 = sqrt(0.1·2.718281828/(2·140·1.5)) = sqrt(6.472100e-4) = 0.0254403215
    # skew = σ·c2 = 0.050880643; half = c1 + σ·c2/2 = 0.692106988
    params = QuoteParams(model="glft", glft_xi="zero", gamma_per_quote=0.1, min_spread_bps=0.0)
    q = glft_quote(params, market(inventory_base=2.0))
    c2 = math.sqrt(0.1 * math.e / (2 * 140.0 * 1.5))
    assert c2 == pytest.approx(0.0254403215, rel=1e-8)
    assert q.skew_px_per_base == pytest.approx(2.0 * c2, rel=1e-12)
    assert q.half_spread_px == pytest.approx(1 / 1.5 + c2, rel=1e-12)
    assert q.reservation_px == pytest.approx(100.0 - 2.0 * 2.0 * c2, rel=1e-12)


@given(gamma=st.floats(1e-4, 1.0), k=st.floats(0.5, 500.0), size=st.floats(0.01, 10.0))
def test_glft_xi_zero_is_the_small_impact_limit_of_xi_gamma(gamma: float, k: float, size: float) -> None:
    # as ξΔ/k → 0, (1/ξΔ)·ln(1 + ξΔ/k) → 1/k and (1 + ξΔ/k)^(k/ξΔ + 1) → e: the two forms meet
    tiny = gamma * 1e-7 / size  # a γ so small against k that ξΔ/k is ~1e-7 or less
    m = market(k_per_px=k)
    with_xi = glft_quote(QuoteParams(gamma_per_quote=tiny, order_size_base=size, min_spread_bps=0.0), m)
    zero = glft_quote(QuoteParams(glft_xi="zero", gamma_per_quote=tiny, order_size_base=size, min_spread_bps=0.0), m)
    assert zero.half_spread_px == pytest.approx(with_xi.half_spread_px, rel=1e-5)
    assert zero.skew_px_per_base == pytest.approx(with_xi.skew_px_per_base, rel=1e-5)


def test_glft_xi_is_selectable_in_config() -> None:
    assert QuoteParams(**QuoterConfig(glft_xi="zero").model_dump()).glft_xi == "zero"
    assert QuoterConfig().glft_xi == "gamma"
