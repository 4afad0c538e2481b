"""Black-Scholes calls (zero rate): textbook values, expiry behaviour, σ conversion, invariants."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.core.options import (
    NS_PER_DAY,
    CallOption,
    annualised_vol,
    call_greeks,
    norm_cdf,
    total_risk,
)


def test_at_the_money_by_hand() -> None:
    # S = K = 100, σ = 0.2, τ = 1: d1 = (0 + 0.02)/0.2 = 0.1, d2 = -0.1
    # N(0.1) = 0.5398278, n(0.1) = 0.3969525
    # value = 100·N(0.1) − 100·N(−0.1) = 100·(2·0.5398278 − 1) = 7.96556
    # gamma = n(0.1)/(100·0.2·1) = 0.01984763
    g = call_greeks(100.0, 100.0, 0.2, 1.0)
    assert g.value_px == pytest.approx(7.96556, abs=1e-4)
    assert g.delta == pytest.approx(0.5398278, abs=1e-6)
    assert g.gamma_per_px == pytest.approx(0.01984763, abs=1e-7)


def test_hull_example_through_the_forward() -> None:
    # Hull, Options Futures and Other Derivatives, example 15.6: S=42, K=40, r=10 %, σ=20 %, T=0.5
    # gives c = 4.76 and d1 = 0.7693 (N(d1) = 0.7791). With a rate, c = e^{-rT}·Black(F = S·e^{rT}),
    # and Black's formula is our zero-rate formula evaluated at the forward.
    forward = 42.0 * math.exp(0.05)
    g = call_greeks(forward, 40.0, 0.2, 0.5)
    assert g.value_px * math.exp(-0.05) == pytest.approx(4.76, abs=0.005)
    assert g.delta == pytest.approx(0.7791, abs=1e-4)


def test_norm_cdf_table() -> None:
    assert norm_cdf(0.0) == 0.5
    assert norm_cdf(1.96) == pytest.approx(0.9750021, abs=1e-7)
    assert norm_cdf(-1.0) == pytest.approx(0.1586553, abs=1e-7)


@pytest.mark.parametrize(
    ("spot", "delta", "value"),
    [(1.5, 1.0, 0.25), (1.0, 0.0, 0.0), (1.25, 0.5, 0.0)],
)
def test_at_and_after_expiry(spot: float, delta: float, value: float) -> None:
    for tau in (0.0, -0.1):
        g = call_greeks(spot, 1.25, 0.8, tau)
        assert (g.delta, g.value_px, g.gamma_per_px) == (delta, pytest.approx(value), 0.0)


def test_zero_vol_is_intrinsic() -> None:
    assert call_greeks(2.0, 1.0, 0.0, 1.0).value_px == 1.0
    assert call_greeks(0.5, 1.0, 0.0, 1.0).delta == 0.0


def test_annualised_vol_conversion() -> None:
    # 0.02 px/√s at 100 px is 0.0002 relative per √s; × √(365·86400 s) = 0.0002 × 5615.69 = 1.12314
    assert annualised_vol(0.02, 100.0) == pytest.approx(1.123139, rel=1e-6)
    with pytest.raises(ValueError):
        annualised_vol(0.02, 0.0)


def test_position_scales_by_quantity_and_expires() -> None:
    option = CallOption(strike_px=100.0, quantity_base=1000.0, expiry_ns=365 * NS_PER_DAY)
    r = option.risk(100.0, 0.2, now_ns=0)
    assert r.delta_base == pytest.approx(539.8278, abs=1e-3)
    assert r.value_quote == pytest.approx(7965.56, abs=0.1)
    after = option.risk(101.0, 0.2, now_ns=366 * NS_PER_DAY)
    assert (after.delta_base, after.value_quote) == (1000.0, pytest.approx(1000.0))
    both = total_risk((option, option), 100.0, 0.2, 0)
    assert both.delta_base == pytest.approx(2 * r.delta_base)


@given(
    spot=st.floats(0.05, 20.0),
    strike=st.floats(0.05, 20.0),
    sigma=st.floats(0.01, 3.0),
    tau=st.floats(1e-3, 3.0),
)
def test_invariants(spot: float, strike: float, sigma: float, tau: float) -> None:
    g = call_greeks(spot, strike, sigma, tau)
    assert 0.0 <= g.delta <= 1.0
    assert g.gamma_per_px >= 0.0
    assert max(spot - strike, 0.0) <= g.value_px <= spot
    # delta is the slope of the value: central finite difference
    h = spot * 1e-5
    slope = (
        call_greeks(spot + h, strike, sigma, tau).value_px - call_greeks(spot - h, strike, sigma, tau).value_px
    ) / (2 * h)
    assert slope == pytest.approx(g.delta, abs=1e-4)
    # delta rises with the spot (gamma >= 0)
    assert call_greeks(spot * 1.01, strike, sigma, tau).delta >= g.delta
