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


def classic_market(mock: MockExchangeConfig) -> MockExchangeConfig:
    """`mock` with the embedded default's market from before it became the hawkes "altcoin" preset
    (issue #19): the classic flow model (Poisson takers, a background book always 5 ticks wide), an
    arithmetic random walk of 0.02 a sqrt-second at 100, 10 % informed takers on both markets, every
    other market key at the model's default. Seed, step, latency, faults and the markets' symbols,
    grids and fees stay `mock`'s. For tests and experiments that were built on that market and pin it."""
    keep = ("symbol", "tick_size", "lot_size", "maker_fee", "taker_fee")
    markets = {
        name: MockMarketConfig(**{k: getattr(getattr(mock, name), k) for k in keep}, informed_share=0.1)
        for name in ("spot", "perp")
    }
    defaults = MockExchangeConfig.model_fields
    market_keys = ("flow_model", "process", "sigma_px_per_sqrt_s", "jumps_per_hour", "jump_sigma_bps",
                   "impact_arrival_s", "impact_decay_s", "impact_permanent_share")  # fmt: skip
    update: dict[str, Any] = {k: defaults[k].default for k in market_keys}
    update.update(flow_model="classic", process="abm", sigma_px_per_sqrt_s=0.02, initial_px=100.0, **markets)
    return mock.model_copy(update=update)
