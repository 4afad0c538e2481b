"""The Avellaneda-Stoikov (2008) Monte Carlo: determinism, the formula's spread, and the paper's findings."""

from __future__ import annotations

import argparse
import json
import math

import pytest

from bot.cli import main
from bot.sim.as2008 import MarketSpec, cmd_simulate_as2008, inventory_schedule, simulate


def test_same_seed_same_result_and_seed_matters() -> None:
    a = simulate(0.1, 200, seed=5)
    assert a == simulate(0.1, 200, seed=5)
    assert a != simulate(0.1, 200, seed=6)


@pytest.mark.parametrize(
    ("gamma", "spread"),
    [
        # mean over t_j = j·0.005, j = 0..199, of γσ²(1 − t_j) + (2/γ)ln(1 + γ/k); mean(1 − t_j) = 0.5025
        # γ=0.1:  0.1·4·0.5025 + 20·ln(16/15)     = 0.201  + 1.2907704228 = 1.4917704228
        (0.1, 1.4917704228),
        # γ=0.01: 0.01·4·0.5025 + 200·ln(151/150) = 0.0201 + 1.3289085437 = 1.3490085437
        (0.01, 1.3490085437),
        # γ=1:    1·4·0.5025 + 2·ln(5/3)          = 2.01   + 1.0216512475 = 3.0316512475
        (1.0, 3.0316512475),
    ],
)
def test_average_spread_is_the_formula(gamma: float, spread: float) -> None:
    stats = simulate(gamma, 10, seed=1)
    assert stats["inventory"].spread == pytest.approx(spread, abs=1e-9)
    assert stats["symmetric"].spread == stats["inventory"].spread


def test_inventory_schedule_first_and_last_step() -> None:
    spreads, skews = inventory_schedule(0.1, MarketSpec())
    # t=0: γσ²T = 0.4 plus 20·ln(16/15) = 1.2907704228; skew per unit q = γσ²(T−t) = 0.4
    assert spreads[0] == pytest.approx(1.6907704228, abs=1e-9)
    assert skews[0] == pytest.approx(0.4)
    # t=0.995: 0.1·4·0.005 = 0.002
    assert skews[-1] == pytest.approx(0.002)
    assert len(spreads) == 200


def test_inventory_strategy_has_less_risk_than_symmetric() -> None:
    stats = simulate(0.1, 1000, seed=1)
    inv, sym = stats["inventory"], stats["symmetric"]
    assert inv.profit_std < sym.profit_std
    assert inv.q_std < sym.q_std
    # the paper's other finding: centred on the mid, the symmetric strategy trades more and earns more
    assert sym.profit_mean > inv.profit_mean


def test_reproduces_the_published_table_1_within_monte_carlo_error() -> None:
    # Quant. Finance 2008, Table 1 (γ = 0.1): profit 65.0 ± 6.6 (inventory), 68.4 ± 12.7 (symmetric).
    # 3 standard errors of a 1000-path mean: 3·6.6/√1000 = 0.63 and 3·12.7/√1000 = 1.20. Using the exact
    # Poisson 1 − exp(−λdt) instead of λdt would cost ~10 % of the profit and fail this.
    stats = simulate(0.1, 1000, seed=1)
    assert stats["inventory"].profit_mean == pytest.approx(65.0, abs=3 * 6.6 / math.sqrt(1000))
    assert stats["symmetric"].profit_mean == pytest.approx(68.4, abs=3 * 12.7 / math.sqrt(1000))


def test_cli_json_last_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", "as2008", "--gamma", "0.1", "--paths", "50", "--seed", "3", "--json"]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    payload = json.loads(last)
    assert set(payload) == {"gamma", "paths", "seed", "inventory", "symmetric"}
    assert (payload["gamma"], payload["paths"], payload["seed"]) == (0.1, 50, 3)
    for name in ("inventory", "symmetric"):
        assert set(payload[name]) == {"spread", "profit_mean", "profit_std", "q_mean", "q_std"}
    assert payload["inventory"]["profit_mean"] == simulate(0.1, 50, seed=3)["inventory"].profit_mean


@pytest.mark.parametrize(("gamma", "paths"), [(0.0, 100), (-1.0, 100), (0.1, 1)])
def test_cli_refuses_bad_arguments(gamma: float, paths: int, capsys: pytest.CaptureFixture[str]) -> None:
    args = argparse.Namespace(gamma=gamma, paths=paths, seed=1, json=True)
    assert cmd_simulate_as2008(args) == 2
    assert capsys.readouterr().out == ""
