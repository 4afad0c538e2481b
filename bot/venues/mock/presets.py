"""Ready-made mock exchange configs for tests and experiments."""

from __future__ import annotations

from typing import Any

from bot.config import MockExchangeConfig, MockLatencyConfig, MockMarketConfig


def quiet_config(**overrides: Any) -> MockExchangeConfig:
    """A still market: constant fair value (100.00 spot), a static background ladder of 5 levels,
    no takers, no churn, constant latencies (orders 10 ms, responses 5 ms, feed 1 ms). Trades happen
    only when you place or simulate them, so tests can compute every fill by hand."""
    market: dict[str, Any] = {
        "taker_a_per_s": 0.0,
        "informed_share": 0.0,
        "bg_churn_per_s": 0.0,
        "bg_levels": 5,
        "bg_size_base": 1.0,
        "bg_size_growth": 0.0,
    }
    base: dict[str, Any] = {
        "sigma_px_per_sqrt_s": 0.0,
        "jumps_per_hour": 0.0,
        "basis_vol_bps_per_sqrt_s": 0.0,
        "spot": MockMarketConfig(symbol="TOKEN/USDT", **market),
        "perp": MockMarketConfig(symbol="TOKEN/USDT:USDT", maker_fee=0.0002, taker_fee=0.0005, **market),
        "latency": MockLatencyConfig(
            order_median_ms=10, order_sigma=0, response_median_ms=5, response_sigma=0, feed_ms=1
        ),
    }
    base.update(overrides)
    return MockExchangeConfig(**base)
