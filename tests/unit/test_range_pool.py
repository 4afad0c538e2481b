"""The concentrated-liquidity (Uniswap v3 range) pool of the running bot, against the whitepaper's
formulas by hand (eqs. 6.29-6.30: x = L·(1/√P − 1/√Pb), y = L·(√P − √Pa); within a range a swap
moves Δ√P = Δy/L, Δ(1/√P) = Δx/L), at and beyond its bounds, and across a restart."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from bot.config import DealConfig
from bot.core.deal import DealTerms
from bot.core.lp import PoolState, SimulatedPool, SimulatedRangePool, restore_pool
from bot.core.portfolio import Portfolio
from bot.domain import Instrument, InstrumentKind
from bot.runtime.ledger import Ledger
from tests.conftest import config_error

SPOT = Instrument("TOKEN/USDT", InstrumentKind.SPOT, "TOKEN", "USDT", tick_size=0.01, lot_size=0.01)


def test_amounts_and_a_swap_inside_the_range_by_hand() -> None:
    pool = SimulatedRangePool(1_000.0, 1.5, 1.0, 4.0, 0.003)  # L = 1000, √P = 1.5, [1, 4]
    assert (pool.x, pool.y) == pytest.approx((1_000 * (1 / 1.5 - 1 / 2), 1_000 * (1.5 - 1)))
    assert pool.delta_base(2.25) == pytest.approx(166.6667, abs=1e-4)
    assert pool.gamma_base_per_px(2.25) == pytest.approx(-1_000 / (2 * 2.25**1.5))
    x0 = pool.x
    fee = pool.swap(+1, 100.0, 2.25)  # 100 quote in, 0.3 of it the fee
    sp = 1.5 + 99.7 / 1_000
    assert pool.price_px == pytest.approx(sp**2)
    assert x0 - pool.x == pytest.approx(1_000 * (1 / 1.5 - 1 / sp))  # tokens out
    assert fee == pytest.approx(0.3)
    pool.swap(-1, 50.0, pool.price_px)  # tokens in: Δ(1/√P) = 0.997·Δx/L
    tokens_in = 50.0 / sp**2
    assert 1 / math.sqrt(pool.price_px) == pytest.approx(1 / sp + 0.997 * tokens_in / 1_000)


def test_delta_is_the_slope_of_the_value_and_gamma_its_curvature() -> None:
    def value(sqrt_px: float) -> float:
        p = SimulatedRangePool(1_000.0, sqrt_px, 1.0, 4.0, 0.0)
        return p.value_quote(sqrt_px**2)  # marked at its own price

    pool = SimulatedRangePool(1_000.0, 1.5, 1.0, 4.0, 0.0)
    h = 1e-5
    up, down = math.sqrt(2.25 + h), math.sqrt(2.25 - h)
    assert (value(up) - value(down)) / (2 * h) == pytest.approx(pool.delta_base(2.25), rel=1e-6)
    slope = (SimulatedRangePool(1_000.0, up, 1.0, 4.0, 0.0).x - SimulatedRangePool(1_000.0, down, 1.0, 4.0, 0.0).x) / (
        2 * h
    )
    assert slope == pytest.approx(pool.gamma_base_per_px(2.25), rel=1e-5)


def test_the_range_runs_out_at_its_bounds() -> None:
    pool = SimulatedRangePool(1_000.0, 1.5, 1.0, 4.0, 0.003)
    fee = pool.swap(+1, 1e9, 2.25)  # far more than the range holds: it fills only up to √Pb = 2
    assert pool.price_px == pytest.approx(4.0) and pool.x == pytest.approx(0.0, abs=1e-9)
    assert pool.y == pytest.approx(1_000 * (2 - 1))
    assert fee == pytest.approx(1_000 * (2 - 1.5) / 0.997 * 0.003)  # the fee on what was swapped
    assert pool.gamma_base_per_px(4.0) == 0.0 and pool.swap(+1, 10.0, 4.0) == 0.0
    below = SimulatedRangePool(1_000.0, 0.5, 1.0, 4.0, 0.003)  # √P clamped to the lower bound
    assert below.price_px == 1.0 and below.y == 0.0 and below.x == pytest.approx(1_000 * (1 - 0.5))
    # arbitrage stops at the bound: the CEX at 9 is above the range, the position ends all quote
    below.arbitrage(9.0)
    assert below.price_px == pytest.approx(4.0) and below.x == pytest.approx(0.0, abs=1e-9)


def test_arbitrage_to_the_fee_band_inside_the_range() -> None:
    pool = SimulatedRangePool(1_000.0, 1.5, 1.0, 4.0, 0.003)
    pool.arbitrage(3.0)
    assert pool.price_px == pytest.approx(3.0 * 0.997)
    assert pool.arbitrage(3.0) == 0.0
    pool.arbitrage(1.5)
    assert pool.price_px == pytest.approx(1.5 / 0.997)


def test_a_centred_range_is_half_and_half_and_concentrates_liquidity() -> None:
    pool = SimulatedRangePool.centred(2_000.0, 100.0, 4.0, 0.003)  # [25, 400]
    assert pool.x * 100.0 == pytest.approx(pool.y) == pytest.approx(1_000.0)
    v2 = SimulatedPool.balanced(2_000.0, 100.0, 0.003)
    # the same 2,000 on [P/4, 4P] is L/(1 − 1/√4) = 2× the full range's liquidity: twice the depth
    assert pool.liquidity == pytest.approx(math.sqrt(v2.x * v2.y) / (1 - 1 / 2))
    assert pool.gamma_base_per_px(100.0) == pytest.approx(2 * v2.gamma_base_per_px(100.0))


def test_state_restores_exactly_through_the_ledger(tmp_path: Path) -> None:
    pool = SimulatedRangePool.centred(2_000.0, 100.0, 2.0, 0.003, share=0.5)
    for i, side in enumerate((+1, -1, -1)):
        pool.swap(side, 40.0 + i, 100.0, trade_id=f"T{i}")
        pool.arbitrage(100.0 + i)
    ledger = Ledger(tmp_path / "l.sqlite")
    ledger.record_pool_state("r1", 1, pool.state().to_dict())
    ledger.close()
    saved = Ledger(tmp_path / "l.sqlite").pool_state()
    assert saved is not None
    again = restore_pool(PoolState.from_dict(saved))
    assert isinstance(again, SimulatedRangePool)
    assert (again.liquidity, again.sqrt_px, again.x, again.y) == (pool.liquidity, pool.sqrt_px, pool.x, pool.y)
    assert again.delta_base(101.0) == pool.delta_base(101.0) and again.fees_quote == pool.fees_quote
    assert isinstance(restore_pool(SimulatedPool(1.0, 1.0, 0.0).state()), SimulatedPool)


def test_config_and_terms_pick_the_range_and_refuse_it_without_a_width(tmp_path: Path) -> None:
    terms = DealTerms.from_config(
        DealConfig(
            token_price_quote=100.0, dex_pool_size_quote=2_000.0, dex_pool_model="concentrated", dex_range_width=2.0
        )
    )
    pool = terms.lp_position()
    assert isinstance(pool, SimulatedRangePool) and pool.value_quote(100.0) == pytest.approx(2_000.0)
    pf = Portfolio([SPOT], lp=pool)
    pf.mark_underlying(100.0, 0, 1.0)
    assert pf.lp_delta_base() == pytest.approx(10.0)  # 1,000 quote of tokens at 100: hedged like any delta
    message = config_error(tmp_path, '[deal]\ndex_pool_model = "concentrated"\n')
    assert "dex_range_width" in message and "\n" not in message
    assert "dex_range_width" in config_error(tmp_path, "[deal]\ndex_range_width = 1.0\n")
