"""A constant-product (Uniswap v2 style) pool, vectorised over simulated paths.

Reserves `x` (tokens) and `y` (quote) with x·y = k, price P = y/x. A swap pays the fee `fee_rate` on
its input; the net input enters the reserves along x·y = k (Uniswap v2 `getAmountOut`: amountIn·997
against the reserves, https://docs.uniswap.org/contracts/v2/concepts/protocol-overview/how-uniswap-works).
Uniswap v2 leaves the fee in the reserves (k grows); here it is paid out to the LP as it is earned
(`fees_quote`, tokens valued at the CEX price of the moment) so that fee income and impermanent loss
stay two separate numbers. We are the pool's only LP, so its reserves are our position: the LP's
token holding (its delta) is `x`, its value x·S + y at the CEX price S.

- noise swaps: uninformed traders, each step one swap of exponential size (mean given, quote) and
  random side, moving the pool price away from the CEX price;
- arbitrage: whenever the pool price leaves [S·(1 − f), S/(1 − f)] an arbitrageur trades it back
  to the nearer edge of that band, paying the fee (inside the band a trade cannot pay for itself).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

Array = NDArray[np.float64]


class ConstantProductPool:
    def __init__(self, x: Array, y: Array, fee_rate: float) -> None:
        if not 0 <= fee_rate < 1:
            raise ValueError(f"fee_rate must be in [0, 1), got {fee_rate!r}")
        if np.any(x <= 0) or np.any(y <= 0):
            raise ValueError("reserves must be > 0")
        self.x = np.array(x, dtype=np.float64)
        self.y = np.array(y, dtype=np.float64)
        self.fee_rate = fee_rate
        self.fees_quote = np.zeros_like(self.x)
        self.volume_quote = np.zeros_like(self.x)
        self.arb_volume_quote = np.zeros_like(self.x)

    @classmethod
    def balanced(cls, value_quote: float, price_px: float, fee_rate: float, n_paths: int) -> ConstantProductPool:
        """A pool worth `value_quote` at `price_px`: half in each asset (x·P = y is what x·y = k implies)."""
        x = np.full(n_paths, value_quote / 2.0 / price_px)
        y = np.full(n_paths, value_quote / 2.0)
        return cls(x, y, fee_rate)

    @property
    def price(self) -> Array:
        return self.y / self.x

    def value_quote(self, cex_px: Array) -> Array:
        return self.x * cex_px + self.y

    def buy_tokens(self, quote_in: Array, cex_px: Array) -> None:
        """Swap `quote_in` (gross, ≥ 0) of quote for tokens."""
        k = self.x * self.y
        self.fees_quote += self.fee_rate * quote_in
        self.volume_quote += quote_in
        self.y = self.y + (1.0 - self.fee_rate) * quote_in
        self.x = k / self.y

    def sell_tokens(self, tokens_in: Array, cex_px: Array) -> None:
        """Swap `tokens_in` (gross, ≥ 0) of tokens for quote; the fee (in tokens) is valued at `cex_px`."""
        k = self.x * self.y
        self.fees_quote += self.fee_rate * tokens_in * cex_px
        self.volume_quote += tokens_in * cex_px
        self.x = self.x + (1.0 - self.fee_rate) * tokens_in
        self.y = k / self.x

    def noise_swaps(self, rng: np.random.Generator, mean_quote: float, cex_px: Array) -> None:
        """One uninformed swap per path: exponential size of mean `mean_quote`, buy or sell with p = ½."""
        if mean_quote <= 0:
            return
        size = rng.exponential(mean_quote, self.x.shape)
        buy = rng.random(self.x.shape) < 0.5
        self.buy_tokens(np.where(buy, size, 0.0), cex_px)
        self.sell_tokens(np.where(buy, 0.0, size / self.price), cex_px)

    def arbitrage(self, cex_px: Array) -> None:
        """Trade each path's pool back into the no-arbitrage band around `cex_px`, paying the fee."""
        f = self.fee_rate
        k = self.x * self.y
        p = self.price
        low, high = cex_px * (1.0 - f), cex_px / (1.0 - f)
        # pool too cheap: buy tokens until P = low; quote in (gross) = (√(k·low) − y)/(1 − f)
        quote_in = np.where(p < low, (np.sqrt(k * low) - self.y) / (1.0 - f), 0.0)
        # pool too dear: sell tokens until P = high; tokens in (gross) = (√(k/high) − x)/(1 − f)
        tokens_in = np.where(p > high, (np.sqrt(k / high) - self.x) / (1.0 - f), 0.0)
        quote_in, tokens_in = np.maximum(quote_in, 0.0), np.maximum(tokens_in, 0.0)
        self.arb_volume_quote += quote_in + tokens_in * cex_px
        self.buy_tokens(quote_in, cex_px)
        self.sell_tokens(tokens_in, cex_px)
