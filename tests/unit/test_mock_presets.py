"""The embedded default's mock market is the "altcoin" preset (config/mock-altcoin.toml), key for key."""

from __future__ import annotations

from pathlib import Path

from bot.config import load_settings

ROOT = Path(__file__).resolve().parents[2]


def test_default_mock_market_is_the_altcoin_preset() -> None:
    default = load_settings(ROOT / "config" / "default.toml").mock
    altcoin = load_settings(ROOT / "config" / "mock-altcoin.toml").mock
    assert default.flow_model == "hawkes"
    # the market (flow, book, price process); seed, latency, faults and fees are the dry run's own
    for key in (
        "flow_model",
        "initial_px",
        "process",
        "sigma_px_per_sqrt_s",
        "jumps_per_hour",
        "jump_sigma_bps",
        "impact_arrival_s",
        "impact_decay_s",
        "impact_permanent_share",
    ):
        assert getattr(default, key) == getattr(altcoin, key), key
    skip = {"maker_fee", "taker_fee"}
    for name in ("spot", "perp"):
        d, a = getattr(default, name).model_dump(), getattr(altcoin, name).model_dump()
        assert {k: v for k, v in d.items() if k not in skip} == {k: v for k, v in a.items() if k not in skip}, name


def test_classic_market_is_the_old_default_market() -> None:
    """`classic_market` pins the pre-#19 default: Poisson takers and a book always 5 ticks wide."""
    from bot.market_calibrate import mock_stats
    from bot.venues.mock.presets import classic_market

    default = load_settings(ROOT / "config" / "default.toml").mock
    classic = classic_market(default)
    assert classic.flow_model == "classic" and classic.process == "abm"
    assert (classic.seed, classic.latency, classic.faults) == (default.seed, default.latency, default.faults)
    assert classic.spot.informed_share == classic.perp.informed_share == 0.1
    stats = mock_stats(classic, 60.0, 1)
    assert stats.spread_median_ticks == 5 and stats.spread_1tick_share == 0.0
    assert 0.5 < stats.fano_1s < 1.5  # Poisson arrivals
    hawkes = mock_stats(default, 60.0, 1)
    assert hawkes.spread_1tick_share > 0 and hawkes.fano_1s > 1.5  # the default's own market is not it
