"""Constant-product LP: amounts, delta, value, impermanent loss and fees against hand values."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.core.lp import ConstantProductLp, impermanent_loss


def test_article_pool_by_hand() -> None:
    # $1M pool at P = 1, half each side: x = y = 500k, L = √(500k·500k) = 500k
    lp = ConstantProductLp.from_value(1_000_000.0, 1.0, fee_rate=0.003)
    assert lp.liquidity == pytest.approx(500_000.0)
    assert lp.token_base(1.0) == pytest.approx(500_000.0)
    assert lp.quote_amount(1.0) == pytest.approx(500_000.0)
    assert lp.delta_base(1.0) == pytest.approx(500_000.0)
    assert lp.gamma_base_per_px(1.0) == pytest.approx(-250_000.0)  # −L/(2·1^1.5)
    # P = 4: x = 500k/2 = 250k tokens, y = 500k·2 = 1M quote, value = 250k·4 + 1M = 2M = 2·L·√4
    assert lp.token_base(4.0) == pytest.approx(250_000.0)
    assert lp.quote_amount(4.0) == pytest.approx(1_000_000.0)
    assert lp.value_quote(4.0) == pytest.approx(2_000_000.0)
    # holding the deposit would be worth 500k·4 + 500k = 2.5M: IL = 2/2.5 − 1 = −0.2 = 2√4/(1+4) − 1
    assert impermanent_loss(1.0, 4.0) == pytest.approx(-0.2)
    # fees: 0.3 % of $2M of swaps, whole pool ours = $6000
    assert lp.fees_quote(2_000_000.0) == pytest.approx(6000.0)
    assert ConstantProductLp(liquidity=1.0, fee_rate=0.003, pool_share=0.25).fees_quote(1000.0) == pytest.approx(0.75)


def test_from_deposit() -> None:
    # 100 tokens at P = 9 (and 900 quote): L = 100·3 = 300
    lp = ConstantProductLp.from_deposit(100.0, 9.0)
    assert lp.liquidity == pytest.approx(300.0)
    assert lp.quote_amount(9.0) == pytest.approx(900.0)


@pytest.mark.parametrize(
    "kwargs", [{"liquidity": -1.0}, {"liquidity": 1.0, "fee_rate": 1.0}, {"liquidity": 1.0, "pool_share": 0.0}]
)
def test_bad_parameters(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        ConstantProductLp(**kwargs)


def test_bad_price_and_volume() -> None:
    lp = ConstantProductLp(liquidity=1.0)
    with pytest.raises(ValueError):
        lp.token_base(0.0)
    with pytest.raises(ValueError):
        lp.fees_quote(-1.0)


@given(liquidity=st.floats(1.0, 1e7), p0=st.floats(0.01, 100.0), p1=st.floats(0.01, 100.0))
def test_invariants(liquidity: float, p0: float, p1: float) -> None:
    lp = ConstantProductLp(liquidity=liquidity)
    # x·y = L² at every price
    assert lp.token_base(p1) * lp.quote_amount(p1) == pytest.approx(liquidity**2, rel=1e-9)
    # delta is the slope of the value
    h = p1 * 1e-6
    assert (lp.value_quote(p1 + h) - lp.value_quote(p1 - h)) / (2 * h) == pytest.approx(lp.delta_base(p1), rel=1e-5)
    # IL is never a gain, and matches value vs hold
    hold = lp.token_base(p0) * p1 + lp.quote_amount(p0)
    assert impermanent_loss(p0, p1) <= 1e-12
    assert lp.value_quote(p1) / hold - 1 == pytest.approx(impermanent_loss(p0, p1), abs=1e-9)
