"""A constant-product (Uniswap v2 style) liquidity position: token amount, delta, value, fees.

The pool holds x tokens and y quote with x·y = L² and price P = y/x, so

    x = L/√P,   y = L·√P,   value = x·P + y = 2·L·√P,
    delta = ∂value/∂P = L/√P = x     (the LP's token amount is its delta),
    gamma = ∂delta/∂P = −L / (2·P^{3/2})   (negative: an LP is short gamma).

The pool's price is assumed arbitraged to the CEX mid, so P is the mid the portfolio marks at.
Fees: the pool pays `fee_rate` of its swap volume to its liquidity providers in proportion to
their share of L; `volume_quote` is *simulated* in this bot (a configured multiple of the spot
venue's public trade volume, see DealConfig.dex_volume_ratio), since the bot trades on no DEX.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ConstantProductLp:
    """Our position in a constant-product pool.

    `liquidity` is L = √(x·y) in √(base·quote); `fee_rate` is the fraction of swap volume paid to
    liquidity providers; `pool_share` is our fraction of the pool's L (1.0: we are the whole pool).
    """

    liquidity: float
    fee_rate: float = 0.0
    pool_share: float = 1.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.liquidity) and self.liquidity >= 0):
            raise ValueError(f"liquidity must be finite and >= 0, got {self.liquidity!r}")
        if not 0 <= self.fee_rate < 1:
            raise ValueError(f"fee_rate must be in [0, 1), got {self.fee_rate!r}")
        if not 0 < self.pool_share <= 1:
            raise ValueError(f"pool_share must be in (0, 1], got {self.pool_share!r}")

    @classmethod
    def from_deposit(cls, token_base: float, price_px: float, fee_rate: float = 0.0) -> ConstantProductLp:
        """A balanced deposit of `token_base` tokens (and token_base·P quote) at price P: L = x·√P."""
        _check_price(price_px)
        return cls(liquidity=token_base * math.sqrt(price_px), fee_rate=fee_rate)

    @classmethod
    def from_value(cls, value_quote: float, price_px: float, fee_rate: float = 0.0) -> ConstantProductLp:
        """A pool worth `value_quote` at price P (half in each asset): L = value / (2√P)."""
        _check_price(price_px)
        return cls(liquidity=value_quote / (2.0 * math.sqrt(price_px)), fee_rate=fee_rate)

    def token_base(self, price_px: float) -> float:
        """Tokens in the position at price P: L/√P."""
        _check_price(price_px)
        return self.liquidity / math.sqrt(price_px)

    def quote_amount(self, price_px: float) -> float:
        """Quote currency in the position at price P: L·√P."""
        _check_price(price_px)
        return self.liquidity * math.sqrt(price_px)

    def value_quote(self, price_px: float) -> float:
        """Mark-to-market value at price P: 2·L·√P (fees excluded)."""
        return self.token_base(price_px) * price_px + self.quote_amount(price_px)

    def delta_base(self, price_px: float) -> float:
        """Delta in tokens: ∂value/∂P = L/√P, the token amount."""
        return self.token_base(price_px)

    def gamma_base_per_px(self, price_px: float) -> float:
        """∂delta/∂P = −L/(2·P^{3/2}), tokens per quote unit of price (negative)."""
        _check_price(price_px)
        return -self.liquidity / (2.0 * price_px * math.sqrt(price_px))

    def fees_quote(self, volume_quote: float) -> float:
        """Our fee income from `volume_quote` of swaps through the pool."""
        if volume_quote < 0:
            raise ValueError(f"volume must be >= 0, got {volume_quote!r}")
        return self.fee_rate * volume_quote * self.pool_share


def impermanent_loss(price0_px: float, price1_px: float) -> float:
    """LP value over the value of holding the initial deposit, minus 1: 2√r/(1+r) − 1 with r = P1/P0 (≤ 0)."""
    _check_price(price0_px)
    _check_price(price1_px)
    r = price1_px / price0_px
    return 2.0 * math.sqrt(r) / (1.0 + r) - 1.0


def _check_price(price_px: float) -> None:
    if not (math.isfinite(price_px) and price_px > 0):
        raise ValueError(f"price must be finite and > 0, got {price_px!r}")
