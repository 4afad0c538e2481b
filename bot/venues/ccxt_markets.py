"""ccxt unified markets -> `Instrument`, and the conversions between ccxt amounts and our lots.

ccxt reports precision in one of three modes (`exchange.precisionMode`): TICK_SIZE (the step itself,
0.01), DECIMAL_PLACES (number of decimals, 2 -> 0.01) and SIGNIFICANT_DIGITS (no fixed grid, refused).
Derivative amounts are in *contracts* of `contractSize` base units (OKX BTC-USDT-SWAP: 0.01 BTC), so
one lot is `amount step * contractSize` base units, and a ccxt amount converts to lots by dividing by
the amount step alone. Binance and Bybit linear perps have contractSize 1.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import ccxt

from bot.domain import Instrument, InstrumentKind


@dataclass(frozen=True, slots=True)
class MarketSpec:
    """An instrument plus what it takes to talk to ccxt about it."""

    instrument: Instrument
    market_id: str  # the venue's id, e.g. "BTCUSDT"
    amount_step: float  # ccxt amount per lot (contracts for derivatives, base units for spot)
    min_lots: int = 1  # the market's limits.amount.min in lots (rounded up)

    def lots(self, amount: float) -> int:
        """ccxt amount (exact venue value) -> nearest lot."""
        return round(amount / self.amount_step)

    def amount(self, lots: int) -> float:
        """Lots -> ccxt amount, rounded to the step's decimals so 3 * 0.1 is sent as 0.3."""
        return round(lots * self.amount_step, 12)


def precision_step(value: Any, precision_mode: int, what: str, symbol: str) -> float:
    """One precision entry as a step size, whatever ccxt's precision mode."""
    if value is None:
        raise ValueError(f"{symbol}: ccxt reports no {what} precision")
    if precision_mode == ccxt.TICK_SIZE:
        step = float(value)
    elif precision_mode == ccxt.DECIMAL_PLACES:
        step = 10.0 ** (-int(value))
    else:
        raise ValueError(f"{symbol}: precision mode {precision_mode} (significant digits) has no fixed grid")
    if not step > 0:
        raise ValueError(f"{symbol}: {what} precision {value!r} is not a positive step")
    return step


def market_spec(market: Mapping[str, Any], precision_mode: int) -> MarketSpec:
    """Build the spec of one ccxt unified market (spot or linear perpetual)."""
    symbol = str(market["symbol"])
    if market.get("spot"):
        kind = InstrumentKind.SPOT
    elif market.get("swap") and market.get("linear"):
        kind = InstrumentKind.PERP
    else:
        raise ValueError(f"{symbol}: only spot and linear perpetual markets are supported")
    precision = market.get("precision") or {}
    tick = precision_step(precision.get("price"), precision_mode, "price", symbol)
    amount_step = precision_step(precision.get("amount"), precision_mode, "amount", symbol)
    contract_size = float(market.get("contractSize") or 1.0) if kind is InstrumentKind.PERP else 1.0
    cost_min = ((market.get("limits") or {}).get("cost") or {}).get("min")
    instrument = Instrument(
        symbol=symbol,
        kind=kind,
        base=str(market["base"]),
        quote=str(market["quote"]),
        tick_size=tick,
        lot_size=amount_step * contract_size,
        min_notional=float(cost_min or 0.0),
        maker_fee=float(market.get("maker") or 0.0),
        taker_fee=float(market.get("taker") or 0.0),
    )
    amount_min = ((market.get("limits") or {}).get("amount") or {}).get("min")
    min_lots = max(1, math.ceil(float(amount_min) / amount_step - 1e-9)) if amount_min else 1
    return MarketSpec(instrument=instrument, market_id=str(market["id"]), amount_step=amount_step, min_lots=min_lots)
