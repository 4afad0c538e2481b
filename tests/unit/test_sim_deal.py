"""`mmbot simulate deal`: the delta-hedged call against the closed form, the pool against the
constant-product algebra, the attribution against the books, and the command's JSON."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from bot.cli import main
from bot.config import DealConfig, load_settings
from bot.core.deal import DealTerms
from bot.core.lp import impermanent_loss
from bot.core.options import call_greeks
from bot.sim.deal import (
    SOURCES,
    STRATEGIES,
    CexEdge,
    PathModel,
    SimParams,
    call_delta_gamma,
    hedged_call_pnl,
    price_paths,
    run_deal_simulation,
    sale_impact_frac,
    simulate_model,
)
from bot.sim.pool import ConstantProductPool

EDGE = CexEdge(1.0, -1.0, -0.5, 7.5, 1000.0, 10, "hand-made for the test")


def test_vectorised_greeks_match_the_scalar_black_scholes() -> None:
    spots = np.array([0.5, 1.0, 1.3, 2.5])
    d, g = call_delta_gamma(spots, 1.25, 0.8, 0.7)
    for s, di, gi in zip(spots, d, g, strict=True):
        ref = call_greeks(float(s), 1.25, 0.8, 0.7)
        assert di == pytest.approx(ref.delta, rel=1e-12)
        assert gi == pytest.approx(ref.gamma_per_px, rel=1e-12)


@pytest.mark.parametrize(("sigma_real", "sigma_impl"), [(1.2, 0.8), (0.6, 1.0), (0.9, 0.9)])
def test_gamma_scalping_matches_the_closed_form(sigma_real: float, sigma_impl: float) -> None:
    """E[delta-hedged call PnL] ≈ E[Σ ½·Γ·S²·(σ_real² − σ_impl²)·Δt]: the closed form is summed here by
    hand from the path's own gammas (this test's arithmetic, not the simulator's theta-gamma sum)."""
    dt = 1.0 / 365.0
    n_steps, n_paths = 182, 4000
    rng = np.random.default_rng(7)
    prices = price_paths(PathModel("gbm", sigma_real), rng, 1.0, n_paths, n_steps, dt)
    pnl, _ = hedged_call_pnl(
        prices, strike=1.1, quantity=1.0, expiry_years=n_steps * dt, sigma_implied=sigma_impl, dt_years=dt
    )
    expected = np.zeros(n_paths)
    for i in range(n_steps):
        tau = (n_steps - i) * dt
        _, gamma = call_delta_gamma(prices[i], 1.1, sigma_impl, tau)
        expected += 0.5 * gamma * prices[i] ** 2 * (sigma_real**2 - sigma_impl**2) * dt
    diff = pnl - expected
    se = float(np.std(diff)) / math.sqrt(n_paths)
    assert abs(float(np.mean(diff))) < 4 * se + 1e-4, (float(np.mean(pnl)), float(np.mean(expected)), se)
    if sigma_real != sigma_impl:  # and the sign is the one the formula says
        assert np.sign(np.mean(pnl)) == np.sign(sigma_real - sigma_impl)
        assert abs(float(np.mean(pnl))) > 4 * float(np.std(pnl)) / math.sqrt(n_paths)


def test_pool_swaps_keep_k_and_pay_the_fee() -> None:
    pool = ConstantProductPool.balanced(1_000_000.0, 1.0, 0.003, 1)
    k0 = float(pool.x[0] * pool.y[0])
    assert (pool.x[0], pool.y[0]) == (500_000.0, 500_000.0)
    pool.buy_tokens(np.array([10_000.0]), np.array([1.0]))
    assert float(pool.x[0] * pool.y[0]) == pytest.approx(k0, rel=1e-12)
    assert pool.fees_quote[0] == pytest.approx(30.0)
    # Uniswap v2 getAmountOut by hand: out = in·997·x / (y·1000 + in·997)
    out = 10_000 * 997 * 500_000 / (500_000 * 1000 + 10_000 * 997)
    assert 500_000 - pool.x[0] == pytest.approx(out, rel=1e-12)


def test_arbitrage_brings_the_pool_to_the_fee_band_and_il_is_the_formula() -> None:
    for cex in (0.5, 0.99, 1.0, 1.7, 4.0):
        pool = ConstantProductPool.balanced(1_000_000.0, 1.0, 0.003, 1)
        pool.arbitrage(np.array([cex]))
        p = float(pool.price[0])
        assert cex * 0.997 - 1e-12 <= p <= cex / 0.997 + 1e-12
    # without a fee the pool goes exactly to the CEX price, and its value is 2·L·√P: IL = 2√r/(1+r) − 1
    pool = ConstantProductPool.balanced(1_000_000.0, 1.0, 0.0, 1)
    pool.arbitrage(np.array([4.0]))
    assert float(pool.price[0]) == pytest.approx(4.0)
    value, hold = float(pool.value_quote(np.array([4.0]))[0]), 500_000 * 4.0 + 500_000
    assert value == pytest.approx(2_000_000.0)
    assert value / hold - 1 == pytest.approx(impermanent_loss(1.0, 4.0))  # −20 %


def test_sale_impact_from_the_obligations_depth() -> None:
    terms = DealTerms.from_config(DealConfig())
    # bids 100k + 50k + 50k within ±2 %: 10M quote per unit of relative price; 230k/day → 1.15 %
    assert sale_impact_frac(terms, 230_000.0) == pytest.approx(0.0115)


def test_attribution_adds_up_to_the_books_on_every_path() -> None:
    terms = DealTerms.from_config(DealConfig())
    params = SimParams(n_paths=50, seed=3, step_hours=6.0, funding_annual=0.1)
    for model in (
        PathModel("gbm", 1.0),
        PathModel("pump_decay", 1.0, pump_days=14, pump_multiple=2.5, end_multiple=0.2),
    ):
        results, ratio = simulate_model(terms, model, params, EDGE, np.random.default_rng(1))
        for name in STRATEGIES:
            parts = sum(results[name].by_source[src] for src in SOURCES)
            np.testing.assert_allclose(parts, results[name].total, rtol=1e-9, atol=1e-3)
        # the neutral book has no price exposure to first order; the article's book is short the loan
        deal_minus = results["deal"].total - results["hedge_no_sale"].total
        corr = np.corrcoef(deal_minus, ratio)[0, 1]
        assert corr < -0.95
        assert np.std(results["hedge_no_sale"].total) < 0.1 * np.std(results["deal"].total)


def test_flat_price_means_no_directional_pnl() -> None:
    """σ = 0 and no pool noise: nothing moves, so every leg but the fixed costs and income is zero."""
    terms = DealTerms.from_config(DealConfig(implied_vol_annual=1.0))
    params = SimParams(n_paths=3, step_hours=24.0, pool_noise_volume_frac=0.0)
    results, ratio = simulate_model(terms, PathModel("gbm", 0.0), params, EDGE, np.random.default_rng(1))
    assert np.all(ratio == 1.0)
    deal = results["deal"].by_source
    for src in ("inventory", "impermanent_loss", "pool_fees", "pool_hedge"):
        np.testing.assert_allclose(deal[src], 0.0, atol=1e-6)
    # the calls all end out of the money at S = 1: premium received, then lost as theta
    np.testing.assert_allclose(deal["option_premium"] + deal["gamma_scalping"], 0.0, atol=1e-6)


def test_cli_json_last_line(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    out = tmp_path / "plots"
    argv = ["simulate", "deal", "--paths", "20", "--json", "--measure-minutes", "1", "--hedge-hours", "48"]
    assert main([*argv, "--out", str(out)]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]  # the plots do not take the last line
    # the plots and the table: one PnL histogram panel per model, the by-source bars, the text table
    assert all((out / f).stat().st_size > 10_000 for f in ("deal_pnl.png", "deal_by_source.png"))
    assert "deal beats hedge_no_sale" in (out / "deal.md").read_text()
    data = json.loads(last)
    for name in ("deal", "hold_unhedged", "hedge_no_sale"):
        assert {"pnl_mean_quote", "pnl_std_quote", "pnl_p5_quote"} <= set(data[name])
    assert set(data["deal"]["by_source"]) == set(SOURCES)
    assert sum(data["deal"]["by_source"].values()) == pytest.approx(data["deal"]["pnl_mean_quote"], abs=1.0)
    assert data["cex_edge"]["provenance"].startswith("measured: real engine on the in-process mock")
    assert set(data["by_model"]) == {"gbm", "jump", "pump_decay"}


@pytest.mark.parametrize("argv", [["--paths", "0"], ["--hedge-hours", "nan"], ["--sale-days", "-1"]])
def test_bad_arguments_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", "deal", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert argv[0] in err and "\n" not in err


def test_same_seed_same_numbers() -> None:
    settings = load_settings(None, {"ledger": {"path": ""}}).model_copy(update={"deal": DealConfig()})
    params = SimParams(n_paths=10, step_hours=12.0)
    a = run_deal_simulation(settings, params, ["jump"], 1.0, edge=EDGE)
    b = run_deal_simulation(settings, params, ["jump"], 1.0, edge=EDGE)
    assert a == b
