"""The market a dialect server lists: BTC/USDT spot and the BTC/USDT:USDT linear perpetual, the
symbols of config/bybit-testnet.toml, binance-demo.toml and okx-demo.toml.

The grid and limits follow what the venues list for BTCUSDT (Bybit v5 instruments-info: spot
tickSize 0.01, basePrecision 0.000001, minOrderQty 0.000048, minOrderAmt 1 USDT; linear tickSize
0.10, qtyStep 0.001, minOrderQty 0.001, minNotionalValue 5 USDT; see
https://bybit-exchange.github.io/docs/v5/market/instrument). Testnet listings drift: these are
representative values, not a copy of one day's listing.

The flow is the mock core's model (docs/mock-exchange.md) scaled to a ~60,000 USDT price: takers
reach a few USDT from mid (k = 0.5 per USDT, the bot's own `estimator.k_per_px` in those configs),
so the bot's quotes fill within seconds. Seed, latency and faults come from the `[mock]` section.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from bot.config import MockExchangeConfig, MockMarketConfig

SPOT_SYMBOL = "BTC/USDT"
PERP_SYMBOL = "BTC/USDT:USDT"


@dataclass(frozen=True, slots=True)
class VenueLimits:
    """The venue's per-market order limits, enforced by the dialect (not by the core)."""

    min_qty: float  # in the venue's quantity unit (base units; OKX swaps: contracts)
    min_notional: float  # quote
    qty_step: str  # decimal string, as listed, in the venue's quantity unit
    tick: str
    contract_size: float = 1.0  # base units per quantity unit (OKX BTC-USDT-SWAP ctVal 0.01 BTC)

    def price_text(self, ticks: int) -> str:
        """A price in ticks as the venue writes it: an exact decimal string on the tick grid."""
        return str(Decimal(ticks) * Decimal(self.tick))

    def qty_text(self, lots: int) -> str:
        """A quantity in lots as the venue writes it, in the venue's quantity unit."""
        return str(Decimal(lots) * Decimal(self.qty_step))


SPOT_LIMITS = VenueLimits(min_qty=0.000048, min_notional=1.0, qty_step="0.000001", tick="0.01")
PERP_LIMITS = VenueLimits(min_qty=0.001, min_notional=5.0, qty_step="0.001", tick="0.1")
# Binance BTCUSDT: spot tickSize 0.01, stepSize 0.00001, NOTIONAL 5 (the exchangeInfo entry in
# tests/data/ccxt/binance_btcusdt_market.json); USD-M tickSize 0.10, stepSize 0.001, MIN_NOTIONAL 100
# (https://developers.binance.com/docs/derivatives/usds-margined-futures/market-data/rest-api/Exchange-Information)
BINANCE_SPOT_LIMITS = VenueLimits(min_qty=0.00001, min_notional=5.0, qty_step="0.00001", tick="0.01")
BINANCE_PERP_LIMITS = VenueLimits(min_qty=0.001, min_notional=100.0, qty_step="0.001", tick="0.1")
# OKX v5 instruments: BTC-USDT tickSz 0.1, lotSz 0.00000001, minSz 0.00001; BTC-USDT-SWAP tickSz 0.1,
# lotSz 0.01 and minSz 0.01 contracts of ctVal 0.01 BTC; no notional minimum
# (https://www.okx.com/docs-v5/en/#public-data-rest-api-get-instruments)
OKX_SPOT_LIMITS = VenueLimits(min_qty=0.00001, min_notional=0.0, qty_step="0.00000001", tick="0.1")
OKX_PERP_LIMITS = VenueLimits(min_qty=0.01, min_notional=0.0, qty_step="0.01", tick="0.1", contract_size=0.01)
LIMITS: dict[str, tuple[VenueLimits, VenueLimits]] = {
    "bybit": (SPOT_LIMITS, PERP_LIMITS),
    "binance": (BINANCE_SPOT_LIMITS, BINANCE_PERP_LIMITS),
    "okx": (OKX_SPOT_LIMITS, OKX_PERP_LIMITS),
}


def _flow(**overrides: Any) -> dict[str, Any]:
    flow: dict[str, Any] = {
        "min_notional_quote": 0.0,  # the dialect enforces the venue's minimums, with its exemptions
        "bg_levels": 20,
        "bg_size_base": 0.5,
        "bg_size_growth": 0.2,
        "taker_a_per_s": 2.0,
        "taker_k_per_px": 0.5,
        "taker_size_base": 0.01,
        "informed_size_base": 0.02,
    }
    flow.update(overrides)
    return flow


def btc_config(
    base: MockExchangeConfig | None = None, dialect: str = "bybit", **market_overrides: Any
) -> MockExchangeConfig:
    """The dialect's core config: BTC markets on `dialect`'s grid, with seed/latency/faults from `base`."""
    base = base or MockExchangeConfig()
    spot_limits, perp_limits = LIMITS[dialect]
    spot = MockMarketConfig(
        symbol=SPOT_SYMBOL,
        tick_size=float(spot_limits.tick),
        lot_size=float(spot_limits.qty_step) * spot_limits.contract_size,
        maker_fee=0.001,
        taker_fee=0.001,
        bg_level_spacing_ticks=50,  # 0.50 USDT between background levels
        **_flow(**market_overrides),
    )
    perp = MockMarketConfig(
        symbol=PERP_SYMBOL,
        tick_size=float(perp_limits.tick),
        lot_size=float(perp_limits.qty_step) * perp_limits.contract_size,
        maker_fee=0.0002,
        taker_fee=0.00055,
        bg_level_spacing_ticks=5,
        **_flow(**market_overrides),
    )
    return base.model_copy(
        update={
            "spot": spot,
            "perp": perp,
            "initial_px": 60_000.0,
            "sigma_px_per_sqrt_s": 5.0,
            "jumps_per_hour": 0.0,
            "initial_quote": 100_000.0,
            "initial_base": 1.0,
            "enforce_balances": True,
        }
    )


def quiet_btc_config(base: MockExchangeConfig | None = None, dialect: str = "bybit") -> MockExchangeConfig:
    """A still BTC market for tests: constant fair value, static ladder, no takers or churn."""
    quiet = {"taker_a_per_s": 0.0, "informed_share": 0.0, "bg_churn_per_s": 0.0, "bg_size_growth": 0.0}
    cfg = btc_config(base, dialect, **quiet)
    return cfg.model_copy(update={"sigma_px_per_sqrt_s": 0.0, "basis_vol_bps_per_sqrt_s": 0.0})
