"""The calls are priced with a long-horizon volatility, never the quoting σ (issue #16, item 5)."""

from __future__ import annotations

import pytest

from bot.core.engine import Engine, EngineParams
from bot.core.estimators import ArrivalEstimator, SigmaEstimator
from bot.core.options import CallOption, annualised_vol, call_greeks
from bot.core.quoting import QuoteParams
from bot.domain import BookSnapshot, Instrument, InstrumentKind, Timer

SPOT = Instrument("TOKEN/USDT", InstrumentKind.SPOT, "TOKEN", "USDT", tick_size=0.01, lot_size=0.01)
SEC = 1_000_000_000
YEAR_NS = 365 * 24 * 3600 * SEC
CALL = CallOption(strike_px=100.0, quantity_base=10.0, expiry_ns=YEAR_NS)


def engine_with(sigma_long: SigmaEstimator | None, option_vol_annual: float | None = None) -> Engine:
    params = EngineParams(
        spot=SPOT,
        perp=None,
        quote=QuoteParams(order_size_base=1.0, min_spread_bps=10.0),
        warmup_ns=0,
        options=(CALL,),
        option_vol_annual=option_vol_annual,
    )
    # the quoting σ (60 s half-life) and the long σ start far apart so the test can tell them apart
    quoting_sigma = SigmaEstimator(0.20, 60.0, 1000)
    return Engine(params, quoting_sigma, ArrivalEstimator(1.0, 20.0, 300.0, 50), start_ns=0, sigma_long=sigma_long)


def mark_at_100(engine: Engine) -> None:
    engine.apply(BookSnapshot(SPOT.symbol, 1, ((9_990, 500),), ((10_010, 500),), SEC, SEC), SEC)
    engine.apply(Timer(SEC, SEC), SEC)


def test_estimator_vol_prices_the_calls_with_the_long_sigma_not_the_quoting_one() -> None:
    engine = engine_with(SigmaEstimator(0.02, 1800.0, 1000))
    mark_at_100(engine)
    tau_years = (YEAR_NS - SEC) / YEAR_NS
    long_vol = annualised_vol(0.02, 100.0)
    quoting_vol = annualised_vol(0.20, 100.0)
    expected = 10.0 * call_greeks(100.0, 100.0, long_vol, tau_years).delta
    assert engine.portfolio.option_delta_base() == pytest.approx(expected, rel=1e-9)
    assert expected != pytest.approx(10.0 * call_greeks(100.0, 100.0, quoting_vol, tau_years).delta, rel=1e-3)


def test_configured_implied_vol_wins_over_any_estimator() -> None:
    engine = engine_with(SigmaEstimator(0.02, 1800.0, 1000), option_vol_annual=0.8)
    mark_at_100(engine)
    expected = 10.0 * call_greeks(100.0, 100.0, 0.8, (YEAR_NS - SEC) / YEAR_NS).delta
    assert engine.portfolio.option_delta_base() == pytest.approx(expected, rel=1e-9)


def test_estimator_vol_without_a_long_sigma_is_refused() -> None:
    with pytest.raises(ValueError, match="sigma_long"):
        engine_with(None)
