"""[risk] config: defaults, validation naming the field, environment overrides, conversion to RiskParams."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from conftest import config_error

from bot.config import load_settings
from bot.core.obligations import Obligation
from bot.core.risk import RiskParams


def test_defaults_build_params() -> None:
    settings = load_settings()
    params = settings.risk.to_params(stale_feed_ms=settings.runtime.stale_feed_ms)
    assert isinstance(params, RiskParams)
    assert params.stale_feed_ms == settings.runtime.stale_feed_ms
    assert params.inventory_soft_base < params.inventory_hard_base
    assert params.toxicity.markout_horizons_s == (1.0, 5.0, 30.0)


def test_params_carry_every_config_value() -> None:
    risk = load_settings(overrides={"risk": {"max_drawdown_quote": 123.5, "order_burst": 7.0}}).risk
    params = risk.to_params(stale_feed_ms=1234)
    carried = {f.name for f in dataclasses.fields(params)} - {"stale_feed_ms", "toxicity", "obligation"}
    assert carried == set(risk.model_dump(exclude={"toxicity", "obligations"}))
    assert {name: getattr(params, name) for name in carried} == risk.model_dump(exclude={"toxicity", "obligations"})
    assert dataclasses.asdict(params.toxicity) == risk.toxicity.model_dump()


def test_obligation_selected_by_venue(tmp_path: Path) -> None:
    path = tmp_path / "risk.toml"
    path.write_text("[risk.obligations.bybit]\nmax_spread_bps = 10\ndepth_band_pct = 2\nmin_depth_quote = 50000\n")
    risk = load_settings(path).risk
    params = risk.to_params(stale_feed_ms=3000, venue="bybit")
    assert params.obligation == Obligation("bybit", max_spread_bps=10.0, depth_band_pct=2.0, min_depth_quote=50_000.0)
    assert risk.to_params(stale_feed_ms=3000, venue="okx").obligation is None


def test_environment_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MMBOT__RISK__MAX_DRAWDOWN_QUOTE", "123.5")
    assert load_settings().risk.max_drawdown_quote == 123.5


@pytest.mark.parametrize(
    ("toml", "field"),
    [
        ("[risk]\ninventory_soft_base = 10\ninventory_hard_base = 10\n", "risk.inventory_hard_base"),
        ("[risk]\nmax_drawdown_quote = -1\n", "risk.max_drawdown_quote"),
        ("[risk]\ninventory_max_mult = 0.5\n", "risk.inventory_max_mult"),
        ("[risk.toxicity]\nmarkout_horizons_s = [1, 30]\nsignal_horizon_s = 5\n", "risk.toxicity.signal_horizon_s"),
        ("[risk.toxicity]\nofi_enter = 0.3\nofi_exit = 0.5\n", "risk.toxicity.ofi_exit"),
        ("[risk.obligations.mock]\nmax_spread_bps = 0\n", "risk.obligations.mock.max_spread_bps"),
        ("[risk]\nno_such_key = 1\n", "risk.no_such_key"),
    ],
)
def test_bad_values_name_the_field(tmp_path: Path, toml: str, field: str) -> None:
    assert config_error(tmp_path, toml).startswith(f"config error: {field}:")
