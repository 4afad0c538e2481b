"""Inventory response through the whole quote path (model → risk guard → ladder): the skew moves both
quotes toward the trade that reduces the position, the widening only pushes out the side that adds
to it, so more inventory never moves the reducing quote away from mid (issue #16, item 1)."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from bot.core.obligations import Obligation
from bot.core.quoting import MarketInputs, QuoteParams, build_ladder, theo_quote
from bot.core.risk import RiskGuard, RiskInputs, RiskParams
from bot.domain import Instrument, InstrumentKind, Side

SPOT = Instrument("TOKEN/USDT", InstrumentKind.SPOT, "TOKEN", "USDT", tick_size=0.01, lot_size=0.01)
MID = 100.0


def inner_quotes(
    q: float,
    risk: RiskParams,
    quote: QuoteParams = QuoteParams(),  # noqa: B008 - frozen
    sigma: float = 0.02,
    k: float = 60.0,
    sigma_long: float = 0.02,
) -> tuple[int | None, int | None]:
    """Level-0 bid and ask ticks (None: side not quoted) for inventory q, on a book 99.90 / 100.10."""
    market = MarketInputs(mid_px=MID, inventory_base=q, sigma_px_per_sqrt_s=sigma, a_per_s=1.0, k_per_px=k)
    theo = theo_quote(quote, market)
    x = RiskInputs(
        mid_px=MID,
        inventory_base=q,
        equity_quote=0.0,
        sigma_short_px_per_sqrt_s=sigma,
        sigma_long_px_per_sqrt_s=sigma_long,
        last_book_ns=0,
        theo_bid_px=theo.bid_px,
        theo_ask_px=theo.ask_px,
    )
    decision = RiskGuard(risk).evaluate(x, 0)
    ladder = build_ladder(theo, quote, SPOT, 9_990, 10_010, decision)
    bid = next((d.price_ticks for d in ladder if d.side is Side.BUY), None)
    ask = next((d.price_ticks for d in ladder if d.side is Side.SELL), None)
    return bid, ask


def test_short_market_maker_raises_its_bid_as_inventory_grows() -> None:
    # The case at the defaults: short 5 vs short 9.99. Widening both sides moved the bid from
    # 9998 to 9995 ticks (away from the buy-back); the reducing bid must not move down.
    risk = RiskParams()
    bid_5, ask_5 = inner_quotes(-5.0, risk)
    bid_999, ask_999 = inner_quotes(-9.99, risk)
    assert bid_5 is not None and bid_999 is not None and ask_5 is not None and ask_999 is not None
    assert bid_999 >= bid_5
    assert ask_999 > ask_5  # the adding side (the ask, for a short) is the one pushed out


def test_long_at_the_hard_limit_quotes_only_the_ask_at_its_model_distance() -> None:
    risk = RiskParams()
    bid, ask = inner_quotes(10.0, risk)
    _, ask_below = inner_quotes(9.0, risk)
    assert bid is None and ask is not None and ask_below is not None
    assert ask <= ask_below


@given(
    q_small=st.floats(0.0, 15.0),
    q_more=st.floats(0.0, 15.0),
    short=st.booleans(),
    soft=st.floats(0.0, 8.0),
    span=st.floats(0.5, 8.0),
    max_mult=st.floats(1.0, 6.0),
    gamma=st.floats(0.005, 1.0),
    sigma=st.floats(0.001, 0.2),
    sigma_long=st.floats(0.001, 0.2),
    k=st.floats(5.0, 300.0),
    cap_bps=st.one_of(st.none(), st.floats(2.0, 100.0)),
)
def test_more_inventory_never_moves_the_reducing_quote_away_from_mid(
    q_small: float,
    q_more: float,
    short: bool,
    soft: float,
    span: float,
    max_mult: float,
    gamma: float,
    sigma: float,
    sigma_long: float,
    k: float,
    cap_bps: float | None,
) -> None:
    q_small, q_more = sorted((q_small, q_more))
    sign = -1.0 if short else 1.0
    obligation = (
        Obligation("mock", max_spread_bps=cap_bps, depth_band_pct=2.0, min_depth_quote=1.0) if cap_bps else None
    )
    risk = RiskParams(
        inventory_soft_base=soft,
        inventory_hard_base=soft + span,
        inventory_max_mult=max_mult,
        max_notional_quote=math.inf,
        obligation=obligation,
    )
    quote = QuoteParams(gamma_per_quote=gamma)
    before = inner_quotes(sign * q_small, risk, quote, sigma, k, sigma_long)
    after = inner_quotes(sign * q_more, risk, quote, sigma, k, sigma_long)
    if short:  # the bid reduces a short: it may only rise (toward and past mid), never fall
        assert before[0] is not None and after[0] is not None
        assert after[0] >= before[0]
    else:  # the ask reduces a long: it may only fall
        assert before[1] is not None and after[1] is not None
        assert after[1] <= before[1]
