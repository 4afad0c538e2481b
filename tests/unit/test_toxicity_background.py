"""Issue #16, round six (docs/research/toxicity-guard.md): where we rest on a thin book (`[risk.toxicity]
rest_behind_background`, `inward_tolerance_ticks`).

The defects (docs/research/toxicity-guard.md, rounds four and five): on the default altcoin mock half the guard-off
adverse selection is the background ladder re-centring through our resting quote, which no book update shows before
the cross. The quoter reads the book's best with our own quotes in it (so "the best" it sees is often our own order,
and it cannot tell where the background rests), and a quote left nearer the mid than the model wants stays there while
it is within `price_tolerance_ticks` (3 on the default config).
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.config import ConfigError, load_settings
from bot.core.engine import Engine, EngineParams
from bot.core.estimators import ArrivalEstimator, SigmaEstimator
from bot.core.orders import OrderManager
from bot.core.quoting import DesiredQuote, QuoteAdjust, QuoteParams, TheoQuote, background_best, build_ladder
from bot.core.risk import RiskParams
from bot.core.toxicity import ImpactOwed, ToxicityMonitor, ToxicityParams
from bot.domain import (
    BookDelta,
    BookSnapshot,
    CancelOrder,
    Instrument,
    InstrumentKind,
    OrderAccepted,
    PlaceOrder,
    Side,
    TradePrint,
)
from bot.sim.toxicity import RESPONSE_OFF, scenario_settings

SPOT = Instrument("TOKEN/USDT", InstrumentKind.SPOT, "TOKEN", "USDT", tick_size=0.01, lot_size=0.01)
SEC = 1_000_000_000


# ---- background_best: the book's best without our own size ----


def test_a_level_that_is_only_our_order_is_not_the_background() -> None:
    bids = [(9_995, 100), (9_990, 500), (9_989, 20)]  # our 1.00 (100 lots) is the whole of 9_995
    assert background_best(bids, {9_995: 100}) == 9_990
    assert background_best(bids, {9_995: 40}) == 9_995  # someone else rests there too
    assert background_best(bids, {}) == 9_995
    assert background_best(bids, {9_995: 100, 9_990: 500, 9_989: 20}) is None
    assert background_best([], {}) is None


def test_our_size_beyond_the_level_means_the_book_has_not_caught_up_and_counts_as_ours() -> None:
    # our order acked for 100 lots, the venue's delta shows 60 there (a partial fill not seen yet, or
    # the delta is older than the order): no background size can be at that price
    assert background_best([(9_995, 60), (9_990, 500)], {9_995: 100}) == 9_990


@given(
    st.lists(st.tuples(st.integers(1, 20_000), st.integers(1, 1_000)), max_size=8, unique_by=lambda x: x[0]),
    st.dictionaries(st.integers(1, 20_000), st.integers(1, 1_000), max_size=4),
)
def test_background_best_is_the_first_level_with_size_beyond_ours(
    levels: list[tuple[int, int]], own: dict[int, int]
) -> None:
    levels = sorted(levels, reverse=True)  # a bid side, best first
    got = background_best(levels, own)
    others = [p for p, lots in levels if lots > own.get(p, 0)]
    assert got == (others[0] if others else None)


# ---- build_ladder's limits ----

THEO = TheoQuote("glft", 100.0, 100.0, 0.03, 0.0, 99.97, 100.03, False)
PARAMS = QuoteParams(order_size_base=1.0, min_spread_bps=0.0)


def _inner(ladder: tuple[DesiredQuote, ...]) -> tuple[int, int]:
    bid = next(q.price_ticks for q in ladder if q.side is Side.BUY and q.level == 0)
    ask = next(q.price_ticks for q in ladder if q.side is Side.SELL and q.level == 0)
    return bid, ask


def test_quotes_inside_the_background_move_back_to_its_best() -> None:
    free = build_ladder(THEO, PARAMS, SPOT, 9_990, 10_010)
    assert _inner(free) == (9_997, 10_003)  # inside a 20-tick background spread
    held = build_ladder(THEO, PARAMS, SPOT, 9_990, 10_010, QuoteAdjust(), 9_990, 10_010)
    assert _inner(held) == (9_990, 10_010)


def test_the_limit_never_moves_a_quote_forward() -> None:
    # the background rests nearer the mid than the model wants to: the model's quote stays
    assert _inner(build_ladder(THEO, PARAMS, SPOT, 9_999, 10_001, QuoteAdjust(), 9_999, 10_001)) == (9_997, 10_003)
    # one side's background only (the other side empty of anyone else)
    assert _inner(build_ladder(THEO, PARAMS, SPOT, 9_990, 10_010, QuoteAdjust(), 9_990, None)) == (9_990, 10_003)


def test_the_obligations_spread_cap_wins_over_the_limit() -> None:
    cap = QuoteAdjust(max_spread_px=0.15)  # 15 ticks at most
    assert _inner(build_ladder(THEO, PARAMS, SPOT, 9_990, 10_010, cap, 9_990, 10_010)) == (9_997, 10_003)
    wide_enough = QuoteAdjust(max_spread_px=0.25)
    assert _inner(build_ladder(THEO, PARAMS, SPOT, 9_990, 10_010, wide_enough, 9_990, 10_010)) == (9_990, 10_010)
    one_sided = QuoteAdjust(max_spread_px=0.25, ask_enabled=False)
    ladder = build_ladder(THEO, PARAMS, SPOT, 9_990, 10_010, one_sided, 9_990, 10_010)
    assert [q.price_ticks for q in ladder] == [9_997]  # the cap holds a lone side: left where it is


@given(
    reservation_ticks=st.floats(-30.0, 30.0),
    half_ticks=st.floats(0.0, 30.0),
    book_bid=st.integers(9_960, 10_000),
    book_width=st.integers(1, 30),
    behind_bid=st.one_of(st.none(), st.integers(0, 20)),
    behind_ask=st.one_of(st.none(), st.integers(0, 20)),
    adjust=st.builds(
        QuoteAdjust,
        skew_px=st.floats(-0.2, 0.2),
        bid_enabled=st.booleans(),
        ask_enabled=st.booleans(),
        max_spread_px=st.one_of(st.none(), st.floats(0.0, 0.4)),
    ),
)
def test_the_limits_only_move_quotes_back_and_keep_the_ladders_guarantees(
    reservation_ticks: float,
    half_ticks: float,
    book_bid: int,
    book_width: int,
    behind_bid: int | None,
    behind_ask: int | None,
    adjust: QuoteAdjust,
) -> None:
    """The background's best is at or behind the book's (the book is the background plus our orders):
    limits `behind_*` ticks behind the book's top. With them the ladder keeps every guarantee of
    `build_ladder` (post-only, never crossing itself), each side is at or behind where it was, a side
    is at or behind its limit unless the obligation's cap stopped it, and the cap is never breached."""
    theo = TheoQuote("glft", 100.0, 100.0 + reservation_ticks * 0.01, half_ticks * 0.01, 0.0, 0.0, 0.0, False)
    best_bid, best_ask = book_bid, book_bid + book_width
    lim_bid = None if behind_bid is None else best_bid - behind_bid
    lim_ask = None if behind_ask is None else best_ask + behind_ask
    free = build_ladder(theo, PARAMS, SPOT, best_bid, best_ask, adjust)
    held = build_ladder(theo, PARAMS, SPOT, best_bid, best_ask, adjust, lim_bid, lim_ask)
    fb = [q.price_ticks for q in free if q.side is Side.BUY]
    fa = [q.price_ticks for q in free if q.side is Side.SELL]
    hb = [q.price_ticks for q in held if q.side is Side.BUY]
    ha = [q.price_ticks for q in held if q.side is Side.SELL]
    assert len(hb) == len(fb) and len(ha) == len(fa)
    assert all(p < best_ask for p in hb) and all(p > best_bid for p in ha)
    if hb and ha:
        assert max(hb) < min(ha)
    if hb:
        assert hb[0] <= fb[0]
    if ha:
        assert ha[0] >= fa[0]
    cap = adjust.max_spread_px
    if cap is None:
        if hb and lim_bid is not None:
            assert hb[0] <= lim_bid
        if ha and lim_ask is not None:
            assert ha[0] >= lim_ask
    elif hb and ha and (ha[0], hb[0]) != (fa[0], fb[0]):
        assert ha[0] - hb[0] <= max(fa[0] - fb[0], int(cap / SPOT.tick_size + 1e-9))


# ---- the quoter, through the engine: our own order is not "the background" ----


def _engine(**tox: object) -> Engine:
    params = EngineParams(
        spot=SPOT,
        perp=None,
        quote=QuoteParams(order_size_base=1.0, min_spread_bps=6.0),
        risk=RiskParams(toxicity=ToxicityParams(**tox)),  # type: ignore[arg-type]
    )
    return Engine(params, SigmaEstimator(0.02, 60.0, 1000), ArrivalEstimator(1.0, 20.0, 300.0, 50), start_ns=0)


def _quote_and_show(engine: Engine) -> dict[Side, int]:
    """Snapshot (background 9_990 / 10_010), quote, ack, then the venue's book shows our orders."""
    engine.apply(BookSnapshot(SPOT.symbol, 100, ((9_990, 500),), ((10_010, 500),), 0, 0), SEC)
    placed = [c for c in engine.requote(SEC) if isinstance(c, PlaceOrder)]
    for c in placed:
        engine.apply(OrderAccepted(SPOT.symbol, c.client_id, "v" + c.client_id, SEC, SEC), SEC)
    ours = {c.side: c.price_ticks for c in placed}
    # a delta carries each level's whole size: ours, plus the background's 500 where we joined it
    bids = tuple((c.price_ticks, c.size_lots + 500 * (c.price_ticks == 9_990)) for c in placed if c.side is Side.BUY)
    asks = tuple((c.price_ticks, c.size_lots + 500 * (c.price_ticks == 10_010)) for c in placed if c.side is Side.SELL)
    engine.apply(BookDelta(SPOT.symbol, 101, 101, bids, asks, 0, 0), 2 * SEC)
    return ours


def test_without_the_option_the_quoter_rests_inside_the_background() -> None:
    ours = _quote_and_show(_engine())
    assert 9_990 < ours[Side.BUY] < ours[Side.SELL] < 10_010


def test_the_quoter_rests_at_the_background_best_with_our_own_orders_taken_out() -> None:
    engine = _engine(rest_behind_background=True, inward_tolerance_ticks=0)
    ours = _quote_and_show(engine)
    assert ours == {Side.BUY: 9_990, Side.SELL: 10_010}
    quoter = engine.quoter
    assert quoter.background_top() == (9_990, 10_010)
    # the background leaves the touch: our orders alone at 9_990 / 10_010, the others one tick back
    engine.apply(
        BookDelta(SPOT.symbol, 102, 102, ((9_990, 100), (9_989, 300)), ((10_010, 100), (10_011, 300)), 0, 0), 3 * SEC
    )
    assert engine.books[SPOT.symbol].best_bid_ticks == 9_990  # the book's best is our own bid
    assert quoter.background_top() == (9_989, 10_011)
    cmds = engine.requote(3 * SEC)
    # one tick nearer the mid than wanted now: within the engine's 1-tick price tolerance, but the
    # inward tolerance is 0, so both are replaced
    assert len([c for c in cmds if isinstance(c, CancelOrder)]) == 2


# ---- the order diff: a quote nearer the mid than wanted is replaced at once ----


def _resting_bid(manager: OrderManager, price: int) -> None:
    cmds = manager.diff(SPOT.symbol, (DesiredQuote(Side.BUY, 0, price, 100),), 0, 3, 0)
    place = cmds[0]
    assert isinstance(place, PlaceOrder)
    manager.on_accepted(OrderAccepted(SPOT.symbol, place.client_id, "v1", 0, 0))


def test_inward_tolerance_replaces_a_quote_nearer_the_mid_than_wanted() -> None:
    today = OrderManager("t")
    _resting_bid(today, 10_000)
    want = (DesiredQuote(Side.BUY, 0, 9_998, 100),)  # the model wants the bid 2 ticks lower
    assert today.diff(SPOT.symbol, want, 1, 3, 0) == []  # within the 3-tick tolerance: left too near
    manager = OrderManager("t")
    _resting_bid(manager, 10_000)
    assert [type(c) for c in manager.diff(SPOT.symbol, want, 1, 3, 0, inward_tolerance_ticks=0)] == [CancelOrder]


@given(st.integers(-6, 6), st.integers(0, 5), st.integers(0, 5), st.sampled_from([Side.BUY, Side.SELL]))
def test_inward_tolerance_cancels_exactly_the_quotes_too_near_or_too_far(
    offset: int, tolerance: int, inward: int, side: Side
) -> None:
    """`offset` > 0: the resting quote is that many ticks nearer the mid than wanted."""
    manager = OrderManager("t")
    want_px = 10_000
    rest_px = want_px + offset * side.sign
    cmds = manager.diff(SPOT.symbol, (DesiredQuote(side, 0, rest_px, 100),), 0, tolerance, 0)
    manager.on_accepted(OrderAccepted(SPOT.symbol, cmds[0].client_id, "v1", 0, 0))  # type: ignore[attr-defined]
    out = manager.diff(
        SPOT.symbol, (DesiredQuote(side, 0, want_px, 100),), 1, tolerance, 0, inward_tolerance_ticks=inward
    )
    replaced = any(isinstance(c, CancelOrder) for c in out)
    assert replaced == (abs(offset) > tolerance or offset > inward)


# ---- the experiment's guard-off run switches them off; config ----


def test_response_off_switches_the_new_keys_off() -> None:
    base = load_settings(None)
    tox = base.risk.toxicity.model_copy(update={"rest_behind_background": True, "inward_tolerance_ticks": 0})
    on = base.model_copy(update={"risk": base.risk.model_copy(update={"toxicity": tox})})
    off = scenario_settings(on, 1, guard_on=False).risk.toxicity
    assert (off.rest_behind_background, off.inward_tolerance_ticks) == (False, None)
    assert set(RESPONSE_OFF) >= {"rest_behind_background", "inward_tolerance_ticks"}
    kept = scenario_settings(on, 1, guard_on=True).risk.toxicity
    assert (kept.rest_behind_background, kept.inward_tolerance_ticks) == (True, 0)


def test_config_keys_parse_and_bad_values_are_a_config_error(tmp_path: pytest.TempPathFactory) -> None:
    good = tmp_path / "good.toml"  # type: ignore[operator]
    good.write_text("[risk.toxicity]\nrest_behind_background = true\ninward_tolerance_ticks = 0\n")
    tox = load_settings(str(good)).risk.to_params(stale_feed_ms=3000).toxicity
    assert (tox.rest_behind_background, tox.inward_tolerance_ticks) == (True, 0)
    bad = tmp_path / "bad.toml"  # type: ignore[operator]
    bad.write_text("[risk.toxicity]\ninward_tolerance_ticks = -1\n")
    with pytest.raises(ConfigError, match="inward_tolerance_ticks"):
        load_settings(str(bad))


# ---- the size-aware impact skew ----

MS = 1_000_000


def test_owed_impact_is_the_square_root_law_of_each_taker_decaying_with_its_half_life() -> None:
    skew = ImpactOwed(impact_bps=2.0, median_base=0.5, halflife_s=0.3)
    skew.on_trade(+1, 2.0, 1_000 * MS)  # 4 median sizes: 2 · sqrt(4) = 4 bps up
    assert skew.bps(1_000 * MS) == pytest.approx(4.0)
    assert skew.bps(1_300 * MS) == pytest.approx(2.0)  # one half-life later
    assert skew.bps(1_600 * MS) == pytest.approx(1.0)


def test_prints_of_one_sweep_are_one_taker_of_their_summed_size() -> None:
    skew = ImpactOwed(impact_bps=2.0, median_base=0.5, halflife_s=0.3)
    skew.on_trade(-1, 0.5, 5 * SEC)  # one seller sweeping two levels: 0.5 then 1.5 at the same time
    skew.on_trade(-1, 1.5, 5 * SEC)
    assert skew.bps(5 * SEC) == pytest.approx(-4.0)  # 2 · sqrt(2.0 / 0.5), not 2 + 2 · sqrt(3)
    skew.on_trade(+1, 2.0, 5 * SEC)  # the other side at the same instant is another taker
    assert skew.bps(5 * SEC) == pytest.approx(0.0)
    skew.on_trade(-1, 2.0, 5 * SEC + 1)  # a later seller is a new taker too
    assert skew.bps(5 * SEC + 1) == pytest.approx(-4.0, rel=1e-6)


def test_the_monitor_moves_both_quotes_by_the_owed_impact_without_the_self_check() -> None:
    monitor = ToxicityMonitor(
        ToxicityParams(impact_bps=2.0, impact_median_base=0.5, predict_share=0.0, impact_response="skew")
    )
    monitor.on_trade(+1, 2.0, SEC)
    monitor.update(SEC, 100.0)
    assert monitor.efficacy == 0.0  # the self-check has seen nothing: the flow response is held off
    assert monitor.skew_px(100.0) == pytest.approx(4e-4 * 100.0)  # 4 bps of a 100 mid, up
    off = ToxicityMonitor(ToxicityParams(predict_share=0.0))  # impact_bps = 0 (the default)
    off.on_trade(+1, 2.0, SEC)
    off.update(SEC, 100.0)
    assert off.skew_px(100.0) == 0.0


def test_the_widen_response_pushes_out_only_the_side_the_impact_is_owed_against() -> None:
    monitor = ToxicityMonitor(ToxicityParams(impact_bps=2.0, impact_median_base=0.5, predict_share=0.0))
    assert monitor.params.impact_response == "widen"
    monitor.on_trade(+1, 2.0, SEC)  # buyers: 4 bps up owed, our ask is the stale side
    monitor.update(SEC, 100.0)
    assert monitor.ask_extra_px(100.0) == pytest.approx(4e-4 * 100.0)
    assert monitor.bid_extra_px(100.0) == 0.0 and monitor.skew_px(100.0) == 0.0
    monitor.on_trade(-1, 8.0, SEC + 1)  # a bigger seller: 2 · sqrt(16) = 8 bps down, net 4 bps down owed
    monitor.update(SEC + 1, 100.0)
    assert monitor.bid_extra_px(100.0) == pytest.approx(4e-4 * 100.0, rel=1e-6)
    assert monitor.ask_extra_px(100.0) == 0.0
    with pytest.raises(ValueError, match="impact_response"):
        ToxicityParams(impact_response="both")  # type: ignore[arg-type]


def test_a_print_requotes_and_lifts_both_quotes_with_the_skew_response() -> None:
    for bps in (0.0, 5.0):
        engine = _engine(impact_bps=bps, impact_median_base=0.5, inward_tolerance_ticks=0, impact_response="skew")
        _quote_and_show(engine)
        quoted = [f for n, f in engine.drain_notes() if n == "quote.updated"][-1]
        engine.apply(TradePrint(SPOT.symbol, 10_010, 200, Side.BUY, "t1", 3 * SEC, 3 * SEC), 3 * SEC)  # 2.0 base
        cmds = engine.requote(3 * SEC)
        notes = [f for n, f in engine.drain_notes() if n == "quote.updated"]
        if bps == 0.0:
            assert cmds == [] and notes == []  # a print alone does not requote (the top did not move)
            continue
        # 5 · sqrt(2.0 / 0.5) = 10 bps of the 100.00 mid: both quotes 0.10 up; the old ones are cancelled
        # first (one action per slot), the new ones are placed once the cancels are acknowledged
        assert notes[-1]["bid"] == pytest.approx(quoted["bid"] + 0.10)
        assert notes[-1]["ask"] == pytest.approx(quoted["ask"] + 0.10)
        assert len([c for c in cmds if isinstance(c, CancelOrder)]) == 2
