"""`mmbot simulate deal`: the token-loan + call-option deal over its whole term, on many price paths.

The question (seed 004, DOMAIN.md §2): is "sell 2.3M of the 3M borrowed tokens at once and stay
delta-neutral" rational because the neutral book earns from spread, pool fees, volatility and
funding whatever the price does? Three strategies on the *same* paths, every one of which must
return the `tokens_lent_base` tokens at the loan's end (the obligation is counted: PnL is cash):

- `deal` (the article): sell the tokens that are neither deployed nor needed (2.3M) by a TWAP over
  `sale_days` (each day's slice pays the impact of a linear book of the obligations' depth, see
  `sale_impact_frac`); the perp covers what is not sold yet; afterwards the perp hedges the held
  tokens, the pool's token holding and the calls' delta (the article's "net delta = 0", which leaves
  the loan's −3M unhedged);
- `hedge_no_sale`: keep the tokens (the USDT for the obligations is the market maker's own), and
  hedge the pool and calls so that spot + pool + calls + perp − loan = 0;
- `hold_unhedged`: keep the tokens, deploy the same obligations, no perp at all.

All three deploy the same CEX depth and the same constant-product pool (`bot/sim/pool.py`: noise
swaps, arbitrageurs trading it back to the CEX price and paying the fee), hold the same calls, and
earn the same CEX market-making edge.

Where the numbers come from (printed with the results):
- CEX market-making edge, bps of our traded volume (spread capture, quote fees, inventory MTM) and the
  perp hedge's cost per hedged notional: *measured* by running the real engine on the in-process mock
  exchange for `measure_minutes` simulated minutes (`measure_cex_edge`). Our CEX volume per day is an
  input (`cex_volume_quote_per_day` at the start price, scaling with the price).
- pool: constant product, fee `deal.dex_fee_rate`; noise volume per day an input
  (`pool_noise_volume_frac` of the pool's value); arbitrage volume follows from the price path.
- funding: an input (`funding_annual`, 0 by default: the mock's funding is not measured here).
- price paths: `gbm` (σ = `vol_annual`), `jump` (Merton jumps, same total variance order),
  `pump_decay` (a listing pump then a long decay, the altcoin path the article describes). Their
  parameters are scenario assumptions, listed in `PathModel`.

Time: steps of `step_hours` (pool swaps and arbitrage every step), the perp rebalanced every
`hedge_hours`. The calls are Black-Scholes at zero rate with `deal.implied_vol_annual`; at expiry an
in-the-money call is exercised (payoff (S − K)·q in cash), an out-of-the-money one lapses, and its
delta (so its hedge) goes to zero.
"""

from __future__ import annotations

import argparse
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from bot.config import ConfigError, DealConfig, Settings, load_settings
from bot.core.deal import DealTerms, plan_deal, sale_schedule
from bot.core.options import NS_PER_DAY
from bot.output import write_json
from bot.sim.pool import ConstantProductPool

HOURS_PER_YEAR = 365.0 * 24.0
NS_PER_S = 1_000_000_000
Array = NDArray[np.float64]

_erfc = np.frompyfunc(math.erfc, 1, 1)
_SQRT2 = math.sqrt(2.0)


def norm_cdf(x: Array) -> Array:
    """N(x) elementwise (erfc: accurate in both tails)."""
    return np.asarray(0.5 * _erfc(-x / _SQRT2), dtype=np.float64)


def norm_pdf(x: Array) -> Array:
    return np.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi)


def call_delta_gamma(spot: Array, strike: float, sigma: float, tau_years: float) -> tuple[Array, Array]:
    """Black-Scholes (zero rate) delta N(d1) and gamma n(d1)/(Sσ√τ) per token; at τ ≤ 0: 1/0 ITM, 0 OTM."""
    if tau_years <= 0 or sigma <= 0:
        return (spot > strike).astype(np.float64), np.zeros_like(spot)
    vst = sigma * math.sqrt(tau_years)
    d1 = (np.log(spot / strike) + 0.5 * vst * vst) / vst
    return norm_cdf(d1), norm_pdf(d1) / (spot * vst)


def call_value(spot: Array, strike: float, sigma: float, tau_years: float) -> Array:
    if tau_years <= 0 or sigma <= 0:
        return np.maximum(spot - strike, 0.0)
    vst = sigma * math.sqrt(tau_years)
    d1 = (np.log(spot / strike) + 0.5 * vst * vst) / vst
    return np.asarray(spot * norm_cdf(d1) - strike * norm_cdf(d1 - vst), dtype=np.float64)


# --------------------------------------------------------------------------------------------------
# Price paths
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PathModel:
    """A price-path scenario (annualised, relative). All three are martingales in price except
    `pump_decay`, whose drift *is* the scenario (a listing pump, then a long decay)."""

    name: str
    vol_annual: float = 1.0
    jumps_per_year: float = 0.0
    jump_log_mean: float = 0.0
    jump_log_std: float = 0.0
    pump_days: float = 0.0
    pump_multiple: float = 1.0  # median price multiple reached at the end of the pump
    end_multiple: float = 1.0  # median price multiple at the end of the term (pump_decay)


def path_models(vol_annual: float) -> dict[str, PathModel]:
    return {
        "gbm": PathModel("gbm", vol_annual),
        # diffusion 60 % plus 4 jumps a year of mean −15 %, sd 35 % in log: total σ ≈ 97 %/year
        "jump": PathModel("jump", 0.6 * vol_annual, jumps_per_year=4.0, jump_log_mean=-0.15, jump_log_std=0.35),
        # listing pump to 2.5× in two weeks, then a decay to 0.2× of the listing price by the end (medians)
        "pump_decay": PathModel("pump_decay", vol_annual, pump_days=14.0, pump_multiple=2.5, end_multiple=0.2),
    }


def log_increments(model: PathModel, rng: np.random.Generator, n_paths: int, n_steps: int, dt_years: float) -> Array:
    """Increments of ln S, shape (n_steps, n_paths)."""
    sigma = model.vol_annual
    z = rng.standard_normal((n_steps, n_paths))
    inc = sigma * math.sqrt(dt_years) * z
    if model.jumps_per_year > 0:
        # compensated: E[e^J] − 1 per jump taken out of the drift, so the price stays a martingale
        kappa = math.exp(model.jump_log_mean + 0.5 * model.jump_log_std**2) - 1.0
        inc += -(0.5 * sigma * sigma + model.jumps_per_year * kappa) * dt_years
        counts = rng.poisson(model.jumps_per_year * dt_years, (n_steps, n_paths))
        sizes = rng.standard_normal((n_steps, n_paths))
        inc += counts * model.jump_log_mean + np.sqrt(counts) * model.jump_log_std * sizes
    elif model.pump_days > 0:
        t = (np.arange(n_steps) + 0.5) * dt_years
        pump_years = model.pump_days / 365.0
        rest_years = max(n_steps * dt_years - pump_years, dt_years)
        drift = np.where(
            t < pump_years,
            math.log(model.pump_multiple) / pump_years,
            (math.log(model.end_multiple) - math.log(model.pump_multiple)) / rest_years,
        )
        inc += (drift * dt_years)[:, None]  # medians follow the scenario; no −σ²/2: it is a median path
    else:
        inc += -0.5 * sigma * sigma * dt_years
    return inc


def price_paths(
    model: PathModel, rng: np.random.Generator, s0: float, n_paths: int, n_steps: int, dt_years: float
) -> Array:
    """Prices, shape (n_steps + 1, n_paths), row 0 = s0."""
    inc = log_increments(model, rng, n_paths, n_steps, dt_years)
    out = np.empty((n_steps + 1, n_paths))
    out[0] = s0
    out[1:] = s0 * np.exp(np.cumsum(inc, axis=0))
    return out


# --------------------------------------------------------------------------------------------------
# The delta-hedged call (the gamma-scalping leg), on its own so a test can hold it to the closed form
# --------------------------------------------------------------------------------------------------


def hedged_call_pnl(
    prices: Array,
    strike: float,
    quantity: float,
    expiry_years: float,
    sigma_implied: float,
    dt_years: float,
    hedge_every: int = 1,
) -> tuple[Array, Array]:
    """Per path: (payoff − V0 + Σ −Δ_i·(S_{i+1} − S_i), the option's delta-hedge PnL), and the
    theta-gamma sum Σ ½·Γ_i·S_i²·((ΔS_i/S_i)² − σ_implied²·Δt) over the same hedge intervals.

    `prices`: (n_steps + 1, n_paths); the hedge is rebalanced every `hedge_every` steps; the call
    expires at `expiry_years` (a step boundary at or after it settles it)."""
    n_steps = prices.shape[0] - 1
    v0 = quantity * call_value(prices[0], strike, sigma_implied, expiry_years)
    hedge = np.zeros(prices.shape[1])
    closed = np.zeros(prices.shape[1])
    delta = np.zeros(prices.shape[1])
    gamma = np.zeros(prices.shape[1])
    s_hedge = prices[0]
    expiry_step = min(n_steps, math.ceil(expiry_years / dt_years - 1e-9))
    for i in range(expiry_step):
        if i % hedge_every == 0:
            if i > 0:
                ret = prices[i] / s_hedge - 1.0
                closed += 0.5 * gamma * s_hedge**2 * (ret**2 - sigma_implied**2 * hedge_every * dt_years)
            tau = expiry_years - i * dt_years
            d, g = call_delta_gamma(prices[i], strike, sigma_implied, tau)
            delta, gamma = quantity * d, quantity * g
            s_hedge = prices[i]
        hedge -= delta * (prices[i + 1] - prices[i])
    ret = prices[expiry_step] / s_hedge - 1.0
    interval = (expiry_step % hedge_every or hedge_every) * dt_years
    closed += 0.5 * gamma * s_hedge**2 * (ret**2 - sigma_implied**2 * interval)
    payoff = quantity * np.maximum(prices[expiry_step] - strike, 0.0)
    return payoff - v0 + hedge, closed


# --------------------------------------------------------------------------------------------------
# Measured CEX rates (the microstructure simulation)
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CexEdge:
    """What quoting on the mock earned, per quote currency of our spot volume (bps), and what the
    perp hedge cost per hedged notional (bps, > 0 = cost). `provenance` says how it was measured."""

    spread_capture_bps: float
    quote_fees_bps: float
    inventory_bps: float
    hedge_cost_bps: float
    volume_quote: float
    fills: int
    provenance: str

    @property
    def quoting_bps(self) -> float:
        """Spread capture + quote fees + inventory MTM: the quoting edge before the hedge."""
        return self.spread_capture_bps + self.quote_fees_bps + self.inventory_bps


def measure_cex_edge(base: Settings, minutes: float, seed: int) -> CexEdge:
    """Run the real engine on the in-process mock (the loaded config's [mock], deal off) for
    `minutes` simulated minutes and read its PnL attribution."""
    from bot.app import build_engine
    from bot.sim.driver import run_simulation
    from bot.venues.mock.exchange import MockExchange

    start_ns = 1_700_000_000 * NS_PER_S  # fixed epoch: the measurement does not depend on the wall clock
    settings = base.model_copy(
        update={
            "deal": base.deal.model_copy(update={"apply_to_portfolio": False}),
            "mock": base.mock.model_copy(update={"seed": seed}),
        }
    )
    exchange = MockExchange(settings.mock, start_ns=start_ns)
    spot = exchange.instruments[settings.market.spot_symbol]
    perp = exchange.instruments.get(settings.market.perp_symbol)
    engine = build_engine(settings, spot, perp, start_ns, venue_name="mock")
    result = run_simulation(
        exchange,
        engine,
        start_ns=start_ns,
        duration_ns=round(minutes * 60 * NS_PER_S),
        timer_ns=settings.runtime.timer_ms * 1_000_000,
    )
    s = result.summary
    volume = float(s["volume_quote"])
    attr = s["pnl_attribution"]
    bps = 1e4 / volume if volume > 0 else 0.0
    return CexEdge(
        spread_capture_bps=attr["spread_capture"] * bps,
        quote_fees_bps=attr["quote_fees"] * bps,
        inventory_bps=attr["inventory_mtm"] * bps,
        hedge_cost_bps=-attr["hedge_cost"] * bps,  # every spot fill is hedged: hedged notional ≈ spot volume
        volume_quote=volume,
        fills=int(s["fills"]),
        provenance=(
            f"measured: real engine on the in-process mock, {minutes:g} simulated minutes, mock seed {seed}, "
            f"{int(s['fills'])} fills, {volume:,.0f} quote of spot volume"
        ),
    )


# --------------------------------------------------------------------------------------------------
# The deal simulation
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SimParams:
    n_paths: int = 1000
    seed: int = 1
    step_hours: float = 1.0
    hedge_hours: float = 24.0
    sale_days: float = 10.0  # the initial sale's schedule (bot/core/execution.py): TWAP length...
    sale_fee_rate: float = 0.001  # ...its taker fee...
    sale_daily_volume_quote: float | None = None  # ...the token's daily volume for the participation cap...
    sale_max_participation: float = 0.25
    sale_floor_pct: float = 5.0  # ...and its limit floor below the reference price
    cex_volume_quote_per_day: float = 500_000.0  # our CEX fill volume at the start price (an input)
    pool_noise_volume_frac: float = 0.1  # pool noise swaps per day, fraction of the pool's value (an input)
    funding_annual: float = 0.0  # perp funding rate, > 0: shorts receive (an input)


STRATEGIES = ("deal", "hold_unhedged", "hedge_no_sale")
SOURCES = (
    "spread_capture",
    "pool_fees",
    "impermanent_loss",
    "pool_hedge",
    "option_premium",
    "gamma_scalping",
    "inventory",
    "funding",
    "hedge_cost",
    "sale_cost",
)


@dataclass
class StrategyResult:
    total: Array
    by_source: dict[str, Array] = field(default_factory=dict)


def sale_impact_frac(terms: DealTerms, slice_quote: float) -> float:
    """Average price concession selling `slice_quote` at once into a linear book holding the deal's
    CEX bid obligations (Σ bid_depth_quote within ±depth_band_pct) evenly over the band; the book is
    taken to refill by the next slice. A linear book of density ρ (quote per unit of relative price)
    fills Q at an average distance Q/(2ρ) below the mid."""
    density = sum(v.bid_depth_quote / (v.depth_band_pct / 100.0) for v in terms.venues)
    return slice_quote / (2.0 * density) if density > 0 else 0.0


def simulate_model(
    terms: DealTerms, model: PathModel, params: SimParams, edge: CexEdge, rng: np.random.Generator
) -> tuple[dict[str, StrategyResult], Array]:
    """All three strategies on one set of paths; every PnL in quote currency, per path. Also returns
    the terminal price ratio S_T/S_0 per path."""
    n = params.n_paths
    dt_h = params.step_hours
    dt = dt_h / HOURS_PER_YEAR
    horizon_days = (terms.loan_return_ns - terms.start_ns) / NS_PER_DAY
    n_steps = max(1, round(horizon_days * 24.0 / dt_h))
    horizon_years = n_steps * dt
    hedge_every = max(1, round(params.hedge_hours / dt_h))
    s0 = terms.token_price_px
    sigma_impl = terms.implied_vol_annual
    prices = price_paths(model, rng, s0, n, n_steps, dt)
    lent = terms.tokens_lent_base
    pool = ConstantProductPool.balanced(terms.dex_pool_size_quote, s0, terms.dex_fee_rate, n)
    x0, y0 = float(pool.x[0]), float(pool.y[0])
    schedule = sale_schedule(
        terms,
        params.sale_days,
        params.sale_fee_rate,
        params.sale_daily_volume_quote,
        params.sale_max_participation,
        params.sale_floor_pct,
    )
    to_sell = schedule.total_base
    steps_per_day = max(1, round(24.0 / dt_h))
    per_step_base = schedule.slice_base / steps_per_day
    impact = schedule.impact_frac
    tranches = [
        (c.strike_px, c.quantity_base, (c.expiry_ns - terms.start_ns) / (NS_PER_DAY * 365.0)) for c in terms.calls
    ]
    v0 = sum(q * call_value(prices[0], k, sigma_impl, tau) for k, q, tau in tranches)

    zeros = np.zeros(n)
    acc = {name: {src: zeros.copy() for src in SOURCES} for name in STRATEGIES}
    hedged = ("deal", "hedge_no_sale")
    # the perp by the part of the book it hedges (set at each rebalance): spot, pool, calls, loan
    parts: dict[str, dict[str, Array]] = {
        name: {"spot": zeros.copy(), "pool": zeros.copy(), "opt": zeros.copy(), "loan": zeros.copy()} for name in hedged
    }
    perp_total = {name: zeros.copy() for name in hedged}
    perp_pnl = {name: zeros.copy() for name in STRATEGIES}  # the books' own count, not the attribution's
    spot = {name: np.full(n, lent - x0) for name in STRATEGIES}
    sale_cash = zeros.copy()
    sold = 0.0
    payoff = zeros.copy()
    settled = [False] * len(tranches)
    hedge_cost_rate = edge.hedge_cost_bps / 1e4
    cex_rate = edge.quoting_bps / 1e4
    noise_per_step = params.pool_noise_volume_frac * terms.dex_pool_size_quote * dt_h / 24.0

    def settle_due(s: Array, t_years: float) -> Array:
        """Exercise (ITM) or lapse each call due by `t_years`; the calls' delta after that."""
        nonlocal payoff
        delta = zeros.copy()
        for j, (k, q, tau) in enumerate(tranches):
            if t_years < tau - 1e-12:
                delta += q * call_delta_gamma(s, k, sigma_impl, tau - t_years)[0]
            elif not settled[j]:
                settled[j] = True
                payoff = payoff + q * np.maximum(s - k, 0.0)  # buy at K from the project, sell at S
        return delta

    def rebalance(s: Array, opt_delta: Array, closing: bool = False) -> None:
        for name in hedged:
            part = parts[name]
            part["spot"] = zeros if closing else -spot[name]
            part["pool"] = zeros if closing else -pool.x
            part["opt"] = zeros if closing else -opt_delta
            part["loan"] = zeros if closing or name == "deal" else zeros + lent  # the article leaves the loan unhedged
            total = part["spot"] + part["pool"] + part["opt"] + part["loan"]
            acc[name]["hedge_cost"] -= np.abs(total - perp_total[name]) * s * hedge_cost_rate
            perp_total[name] = total

    for i in range(n_steps):
        s = prices[i]
        selling = sold < to_sell - 1e-9
        if selling:  # the schedule's daily slice spread over the day's steps, the perp covering the rest
            q = min(per_step_base, to_sell - sold)
            sold += q
            spot["deal"] = spot["deal"] - q
            sale_cash += q * s
            acc["deal"]["sale_cost"] -= q * s * (impact + params.sale_fee_rate)
        if i % hedge_every == 0 or selling:
            rebalance(s, settle_due(s, i * dt))
        cex_volume = params.cex_volume_quote_per_day * (s / s0) * dt_h / 24.0
        s_next = prices[i + 1]
        pool.noise_swaps(rng, noise_per_step, s)
        pool.arbitrage(s_next)
        ds = s_next - s
        for name in STRATEGIES:
            a = acc[name]
            a["spread_capture"] += cex_volume * cex_rate
            if name in hedged:
                a["hedge_cost"] -= cex_volume * hedge_cost_rate  # each CEX fill's perp hedge
                part = parts[name]
                perp_pnl[name] += perp_total[name] * ds
                a["funding"] -= perp_total[name] * s * params.funding_annual * dt
                a["inventory"] += (spot[name] + part["spot"] + part["loan"] - lent) * ds
                a["pool_hedge"] += part["pool"] * ds
                a["gamma_scalping"] += part["opt"] * ds
            else:
                a["inventory"] += (spot[name] - lent) * ds
    s_end = prices[n_steps]
    settle_due(s_end, horizon_years)
    unexpired = sum(
        q * call_value(s_end, k, sigma_impl, tau - horizon_years)
        for j, (k, q, tau) in enumerate(tranches)
        if not settled[j]
    )
    rebalance(s_end, zeros, closing=True)  # the perp closed at the end (its cost; its PnL is booked)
    pool_value = pool.value_quote(s_end)
    # the loan returned: tokens missing from the book are bought back (the sale's impact and fee again)
    short = np.maximum(lent - spot["deal"], 0.0)
    acc["deal"]["sale_cost"] -= short * s_end * (impact + params.sale_fee_rate)
    results: dict[str, StrategyResult] = {}
    for name in STRATEGIES:
        a = acc[name]
        a["pool_fees"] = pool.fees_quote.copy()
        a["impermanent_loss"] = pool_value - (x0 * s_end + y0)
        a["pool_hedge"] = a["pool_hedge"] + x0 * (s_end - s0)
        a["option_premium"] = v0 * np.ones(n)
        a["gamma_scalping"] = a["gamma_scalping"] + payoff + unexpired - v0
        # the books, independently of the attribution: tokens held + pool + fees + cash + perp PnL + call
        # payoffs + the income and cost streams − the tokens returned; the USDT the market maker put in
        # (the pool's quote side; the CEX bids are still cash at the end) is taken back out
        cash = (sale_cash if name == "deal" else 0.0) - y0
        streams = a["spread_capture"] + a["funding"] + a["hedge_cost"] + a["sale_cost"]
        books = (
            spot[name] * s_end
            + pool_value
            + pool.fees_quote
            + cash
            + perp_pnl[name]
            + payoff
            + unexpired
            + streams
            - lent * s_end
        )
        results[name] = StrategyResult(total=books, by_source={src: a[src] for src in SOURCES})
    return results, s_end / s0


# --------------------------------------------------------------------------------------------------
# Summaries and the command
# --------------------------------------------------------------------------------------------------


def _stats(x: Array) -> dict[str, float]:
    return {
        "pnl_mean_quote": round(float(np.mean(x)), 2),
        "pnl_std_quote": round(float(np.std(x)), 2),
        "pnl_p5_quote": round(float(np.percentile(x, 5)), 2),
        "pnl_p50_quote": round(float(np.percentile(x, 50)), 2),
        "pnl_p95_quote": round(float(np.percentile(x, 95)), 2),
    }


def _summarise(results: dict[str, StrategyResult], ratio: Array) -> dict[str, Any]:
    out: dict[str, Any] = {name: _stats(results[name].total) for name in STRATEGIES}
    out["deal"]["by_source"] = {src: round(float(np.mean(v)), 2) for src, v in results["deal"].by_source.items()}
    out["hedge_no_sale"]["by_source"] = {
        src: round(float(np.mean(v)), 2) for src, v in results["hedge_no_sale"].by_source.items()
    }
    deal, neutral = results["deal"].total, results["hedge_no_sale"].total
    wins = deal > neutral
    down, up = ratio < 1.0, ratio >= 1.0
    out["thesis"] = {
        "deal_beats_hedge_no_sale_pct": round(100.0 * float(np.mean(wins)), 1),
        "deal_positive_pct": round(100.0 * float(np.mean(deal > 0)), 1),
        "hedge_no_sale_positive_pct": round(100.0 * float(np.mean(neutral > 0)), 1),
        "price_down_paths_pct": round(100.0 * float(np.mean(down)), 1),
        "deal_beats_when_price_down_pct": round(100.0 * float(np.mean(wins[down])), 1) if down.any() else None,
        "deal_beats_when_price_up_pct": round(100.0 * float(np.mean(wins[up])), 1) if up.any() else None,
        # the deal minus the neutral book is, to first order, the loan's −lent·(S_T − S_0): the largest
        # end/start price ratio at which the deal still came out ahead
        "breakeven_price_ratio": round(float(np.max(ratio[wins])), 4) if wins.any() else None,
        "price_ratio_p5_p50_p95": [round(float(np.percentile(ratio, q)), 4) for q in (5, 50, 95)],
    }
    return out


def run_deal_simulation(
    settings: Settings,
    params: SimParams,
    models: list[str],
    measure_minutes: float,
    edge: CexEdge | None = None,
    totals: dict[str, dict[str, Array]] | None = None,
) -> dict[str, Any]:
    """Measure the CEX edge (unless given), then simulate every model; the `--json` payload.
    `totals`, when given, receives each model's PnL per path per strategy (for the plots)."""
    terms = DealTerms.from_config(settings.deal)
    if edge is None:
        edge = measure_cex_edge(settings, measure_minutes, params.seed)
    catalogue = path_models(terms.implied_vol_annual)
    pooled: dict[str, list[Array]] = {}
    pooled_src: dict[str, list[Array]] = {}
    ratios: list[Array] = []
    by_model: dict[str, Any] = {}
    for index, name in enumerate(models):
        rng = np.random.default_rng([params.seed, index])
        results, ratio = simulate_model(terms, catalogue[name], params, edge, rng)
        by_model[name] = _summarise(results, ratio)
        if totals is not None:
            totals[name] = {strategy: r.total for strategy, r in results.items()}
        ratios.append(ratio)
        for strategy, r in results.items():
            pooled.setdefault(strategy, []).append(r.total)
            for src, v in r.by_source.items():
                pooled_src.setdefault(f"{strategy}.{src}", []).append(v)
    merged = {
        s: StrategyResult(
            total=np.concatenate(pooled[s]),
            by_source={src: np.concatenate(pooled_src[f"{s}.{src}"]) for src in SOURCES},
        )
        for s in STRATEGIES
    }
    payload = _summarise(merged, np.concatenate(ratios))
    payload.update(
        {
            "paths_per_model": params.n_paths,
            "models": models,
            "by_model": by_model,
            "params": asdict(params),
            "path_models": {m: asdict(catalogue[m]) for m in models},
            "cex_edge": {**asdict(edge), "quoting_bps": round(edge.quoting_bps, 4)},
            "sale_schedule": _schedule_json(terms, params),
            "tokens_to_sell": plan_deal(terms).article.tokens_to_sell_base,
        }
    )
    return payload


def _schedule_json(terms: DealTerms, params: SimParams) -> dict[str, Any]:
    s = sale_schedule(
        terms,
        params.sale_days,
        params.sale_fee_rate,
        params.sale_daily_volume_quote,
        params.sale_max_participation,
        params.sale_floor_pct,
    )
    return {"days": s.days, "tokens_per_day": s.slice_base, "binding": s.binding, "impact_pct": 100 * s.impact_frac}


def _row(name: str, st: dict[str, Any]) -> str:
    return (
        f"  {name:<15}{st['pnl_mean_quote']:>14,.0f}{st['pnl_std_quote']:>14,.0f}{st['pnl_p5_quote']:>14,.0f}"
        f"{st['pnl_p50_quote']:>14,.0f}{st['pnl_p95_quote']:>14,.0f}"
    )


def format_report(payload: dict[str, Any]) -> str:
    e = payload["cex_edge"]
    p = payload["params"]
    lines = [
        f"deal simulation: {payload['paths_per_model']} paths per model × {', '.join(payload['models'])}, "
        f"seed {p['seed']}, steps {p['step_hours']:g} h, perp rebalanced every {p['hedge_hours']:g} h",
        f"  initial sale: {payload['tokens_to_sell']:,.0f} tokens over {payload['sale_schedule']['days']} days "
        f"({payload['sale_schedule']['binding']}), book impact {payload['sale_schedule']['impact_pct']:.2f} % + "
        f"taker fee {100 * p['sale_fee_rate']:.2f} % per slice (the buy-back at the loan's end pays the same)",
        f"  CEX quoting edge {e['quoting_bps']:+.2f} bps of volume (spread {e['spread_capture_bps']:+.2f}, "
        f"fees {e['quote_fees_bps']:+.2f}, inventory {e['inventory_bps']:+.2f}), perp hedge cost "
        f"{e['hedge_cost_bps']:.2f} bps of hedged notional; {e['provenance']}",
        f"  inputs: CEX volume {p['cex_volume_quote_per_day']:,.0f} quote/day, pool noise swaps "
        f"{100 * p['pool_noise_volume_frac']:g} % of the pool/day, funding {100 * p['funding_annual']:g} %/year",
        "",
    ]
    header = f"  {'PnL (quote)':<15}{'mean':>14}{'std':>14}{'p5':>14}{'p50':>14}{'p95':>14}"
    sections = [("all models", payload)] + [(m, payload["by_model"][m]) for m in payload["models"]]
    for title, block in sections:
        t = block["thesis"]
        lines += [f"{title}: S_T/S_0 p5/p50/p95 = {t['price_ratio_p5_p50_p95']}", header]
        lines += [_row(name, block[name]) for name in STRATEGIES]
        lines.append(
            f"  deal beats hedge_no_sale on {t['deal_beats_hedge_no_sale_pct']:.1f} % of paths "
            f"({t['deal_beats_when_price_down_pct']} % of price-down, {t['deal_beats_when_price_up_pct']} % of "
            f"price-up paths; breakeven S_T/S_0 ≤ {t['breakeven_price_ratio']}); deal > 0 on "
            f"{t['deal_positive_pct']:.1f} %, hedge_no_sale > 0 on {t['hedge_no_sale_positive_pct']:.1f} %"
        )
        lines.append("")
    lines.append("deal PnL by source (mean, quote), all models")
    for src, v in payload["deal"]["by_source"].items():
        lines.append(f"  {src:<18}{v:>14,.0f}")
    return "\n".join(lines)


def cmd_simulate_deal(args: argparse.Namespace) -> int:
    settings = load_settings(getattr(args, "config", None), {"ledger": {"path": ""}})
    if args.paths < 1:
        raise ConfigError(f"--paths: must be ≥ 1 (got {args.paths})")
    models = list(path_models(1.0)) if args.model == "all" else [args.model]
    # the article's deal unless the config names one: the default config's deal is the mock's small one
    deal = settings.deal if getattr(args, "config", None) else DealConfig()
    for name, value in (
        ("--hedge-hours", args.hedge_hours),
        ("--sale-days", 1.0 if args.sale_days is None else args.sale_days),
        ("--measure-minutes", args.measure_minutes),
    ):
        if not (math.isfinite(value) and value > 0):
            raise ConfigError(f"{name}: must be a finite number > 0 (got {value})")
    params = SimParams(
        n_paths=args.paths,
        seed=args.seed,
        hedge_hours=args.hedge_hours,
        sale_days=args.sale_days if args.sale_days is not None else deal.sale_twap_days,
        sale_fee_rate=deal.sale_fee_rate,
        sale_daily_volume_quote=deal.sale_daily_volume_quote,
        sale_max_participation=deal.sale_max_participation,
        sale_floor_pct=deal.sale_floor_pct,
        cex_volume_quote_per_day=args.cex_volume,
        pool_noise_volume_frac=args.pool_noise,
        funding_annual=args.funding,
    )
    settings = settings.model_copy(update={"deal": deal})
    started = time.process_time()
    totals: dict[str, dict[str, Array]] = {}
    payload = run_deal_simulation(settings, params, models, args.measure_minutes, totals=totals)
    payload["cpu_s"] = round(time.process_time() - started, 2)
    report = format_report(payload)
    print(report)
    print(f"cpu {payload['cpu_s']:.1f} s")
    out = getattr(args, "out", None)
    if out:
        from bot.sim.deal_plots import write_plots  # matplotlib only when asked for

        for path in write_plots(Path(out), totals, payload, report):
            print(f"wrote {path}")
    if args.json:
        write_json(args, payload)
    return 0
