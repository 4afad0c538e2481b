"""Black-Scholes calls at zero rate: value, delta and gamma of the deal's call tranches.

    d1 = (ln(S/K) + σ²τ/2) / (σ√τ),   d2 = d1 − σ√τ
    value = S·N(d1) − K·N(d2),   delta = N(d1),   gamma = n(d1) / (S·σ·√τ)

Units: S and K in quote per token (`_px`), σ annualised and *relative* (0.8 = 80 % a year), τ in
years of 365 days (crypto trades every day, so there is no trading-day calendar).

The bot's σ estimator works in price units per √second (an arithmetic Brownian motion, as in
Avellaneda-Stoikov). Near a price S the two are related by dS ≈ S·σ_rel·dW, so

    σ_annual = sigma_px_per_sqrt_s / S · √(seconds per year)

(`annualised_vol`). The conversion is local: it holds for the S it is taken at, which is why the
portfolio redoes it at every mark.

At and after expiry (τ ≤ 0), or with σ = 0, the call is worth its intrinsic value max(S − K, 0);
its delta is 1 in the money, 0 out of it and ½ exactly at the strike (the limit of N(d1) as
τ → 0 with S = K); its gamma is reported as 0: the Dirac mass at the strike cannot be hedged.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

SECONDS_PER_YEAR = 365.0 * 86_400.0
NS_PER_YEAR = SECONDS_PER_YEAR * 1e9
NS_PER_DAY = 86_400 * 1_000_000_000

_SQRT2 = math.sqrt(2.0)
_SQRT2PI = math.sqrt(2.0 * math.pi)


def norm_cdf(x: float) -> float:
    """Standard normal CDF N(x), via erfc (accurate in both tails)."""
    return 0.5 * math.erfc(-x / _SQRT2)


def norm_pdf(x: float) -> float:
    """Standard normal density n(x)."""
    return math.exp(-0.5 * x * x) / _SQRT2PI


def annualised_vol(sigma_px_per_sqrt_s: float, price_px: float) -> float:
    """Convert the estimator's σ (price units per √second) to an annualised relative σ at `price_px`."""
    if not price_px > 0:
        raise ValueError(f"price must be > 0, got {price_px!r}")
    return sigma_px_per_sqrt_s / price_px * math.sqrt(SECONDS_PER_YEAR)


@dataclass(frozen=True, slots=True)
class CallGreeks:
    """Per unit of underlying: value in quote, delta (dimensionless), gamma per quote unit of price."""

    value_px: float
    delta: float
    gamma_per_px: float


def call_greeks(spot_px: float, strike_px: float, sigma_annual: float, tau_years: float) -> CallGreeks:
    """Black-Scholes (zero rate) value, delta and gamma of one call on one token."""
    if not (spot_px > 0 and strike_px > 0):
        raise ValueError(f"spot and strike must be > 0, got {spot_px!r}, {strike_px!r}")
    if sigma_annual < 0:
        raise ValueError(f"sigma must be >= 0, got {sigma_annual!r}")
    if tau_years <= 0 or sigma_annual == 0:
        return _at_expiry(spot_px, strike_px)
    vol_sqrt_t = sigma_annual * math.sqrt(tau_years)
    d1 = (math.log(spot_px / strike_px) + 0.5 * vol_sqrt_t * vol_sqrt_t) / vol_sqrt_t
    d2 = d1 - vol_sqrt_t
    value = spot_px * norm_cdf(d1) - strike_px * norm_cdf(d2)
    # max(): rounding can leave a deep out-of-the-money value a hair below zero (or intrinsic)
    value = max(value, spot_px - strike_px, 0.0)
    return CallGreeks(value_px=value, delta=norm_cdf(d1), gamma_per_px=norm_pdf(d1) / (spot_px * vol_sqrt_t))


def _at_expiry(spot_px: float, strike_px: float) -> CallGreeks:
    if spot_px > strike_px:
        delta = 1.0
    elif spot_px < strike_px:
        delta = 0.0
    else:
        delta = 0.5
    return CallGreeks(value_px=max(spot_px - strike_px, 0.0), delta=delta, gamma_per_px=0.0)


@dataclass(frozen=True, slots=True)
class OptionRisk:
    """Greeks of a whole position: value in quote, delta in tokens (base), gamma in tokens per quote unit."""

    value_quote: float
    delta_base: float
    gamma_base_per_px: float


@dataclass(frozen=True, slots=True)
class CallOption:
    """A long call on `quantity_base` tokens at `strike_px`, expiring at `expiry_ns` (same clock as `now_ns`)."""

    strike_px: float
    quantity_base: float
    expiry_ns: int

    def tau_years(self, now_ns: int) -> float:
        return (self.expiry_ns - now_ns) / NS_PER_YEAR

    def risk(self, spot_px: float, sigma_annual: float, now_ns: int) -> OptionRisk:
        g = call_greeks(spot_px, self.strike_px, sigma_annual, self.tau_years(now_ns))
        q = self.quantity_base
        return OptionRisk(value_quote=q * g.value_px, delta_base=q * g.delta, gamma_base_per_px=q * g.gamma_per_px)


def total_risk(options: tuple[CallOption, ...], spot_px: float, sigma_annual: float, now_ns: int) -> OptionRisk:
    """Sum of the positions' greeks (all on the same underlying)."""
    value = delta = gamma = 0.0
    for option in options:
        r = option.risk(spot_px, sigma_annual, now_ns)
        value += r.value_quote
        delta += r.delta_base
        gamma += r.gamma_base_per_px
    return OptionRisk(value_quote=value, delta_base=delta, gamma_base_per_px=gamma)
