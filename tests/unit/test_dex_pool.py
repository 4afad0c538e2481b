"""The simulated constant-product pool of the running bot: its own reserves and price, public trades
as noise swaps, arbitrage back to the spot mid paying the fee; our LP delta is its token reserve."""

from __future__ import annotations

import math

import pytest

from bot.config import DealConfig
from bot.core.deal import DealTerms
from bot.core.lp import ConstantProductLp, SimulatedPool, impermanent_loss
from bot.core.portfolio import Portfolio
from bot.domain import Instrument, InstrumentKind

SPOT = Instrument("TOKEN/USDT", InstrumentKind.SPOT, "TOKEN", "USDT", tick_size=0.01, lot_size=0.01)


def test_a_swap_is_uniswap_v2_get_amount_out() -> None:
    pool = SimulatedPool(500_000.0, 500_000.0, 0.003)
    fee = pool.swap(+1, 10_000.0, 1.0)
    out = 10_000 * 997 * 500_000 / (500_000 * 1000 + 10_000 * 997)  # by hand, Uniswap v2 getAmountOut
    assert 500_000 - pool.x == pytest.approx(out, rel=1e-12)
    assert fee == pytest.approx(30.0) and pool.fees_quote == pytest.approx(30.0)
    assert pool.price_px > 1.0  # buying tokens made them dearer in the pool


def test_arbitrage_closes_the_gap_to_the_fee_band_and_il_comes_from_reserves() -> None:
    pool = SimulatedPool(500_000.0, 500_000.0, 0.003)
    pool.arbitrage(1.5)
    assert pool.price_px == pytest.approx(1.5 * 0.997)  # to the near edge of the band, not past it
    assert pool.arbitrage(1.5) == 0.0  # inside the band nothing pays for itself
    free = SimulatedPool(500_000.0, 500_000.0, 0.0)
    free.arbitrage(4.0)
    assert free.value_quote(4.0) / (500_000 * 4.0 + 500_000) - 1 == pytest.approx(impermanent_loss(1.0, 4.0))
    assert free.delta_base(4.0) == pytest.approx(250_000.0)  # L/√P, from the reserves


def test_portfolio_books_swap_and_arbitrage_fees_and_the_pool_delta() -> None:
    pool = SimulatedPool.balanced(2_000.0, 100.0, 0.003)
    pf = Portfolio([SPOT], lp=pool)
    pf.mark_underlying(100.0, 0, 1.0)
    assert pf.lp_delta_base() == pytest.approx(10.0)
    pf.on_lp_volume(50.0, -1, 100.0)  # a public sell: tokens sold into the pool
    assert pool.x > 10.0 and pf.pnl().lp_fees_quote == pytest.approx(0.15)
    pf.mark_underlying(100.0, 1, 1.0)  # the arbitrageur buys the cheap tokens back, paying the fee
    assert 100.0 * 0.997 - 1e-9 <= pool.price_px <= 100.0
    assert pf.pnl().lp_fees_quote > 0.15
    assert pf.lp_delta_base() == pool.x
    pnl = pf.pnl()
    assert sum(pnl.components().values()) == pytest.approx(pnl.total_quote)
    # the pool's value at the mark is its reserves', fees apart: the round trip gained the two fees
    assert pnl.total_quote == pytest.approx(pool.value_quote(100.0) - 2_000.0 + pool.fees_quote)


def test_deal_terms_pick_the_pool_model() -> None:
    assert isinstance(DealTerms.from_config(DealConfig()).lp_position(), SimulatedPool)
    formula = DealTerms.from_config(DealConfig(dex_pool_model="formula")).lp_position()
    assert isinstance(formula, ConstantProductLp) and formula.liquidity == pytest.approx(500_000)
    sim = DealTerms.from_config(DealConfig()).lp_position()
    assert isinstance(sim, SimulatedPool) and math.sqrt(sim.x * sim.y) == pytest.approx(500_000)
