"""Venue dialects of the mock exchange: the same matching core behind a real venue's REST and
websocket protocol, so ccxt's own, unmodified client trades against it over loopback.

- `server.py`: `DialectServer`, the aiohttp server (loopback only) that paces the core and routes
  HTTP requests and websocket messages to a dialect.
- `bybit.py`: Bybit v5 (what ccxt's `bybit` / `ccxt.pro.bybit` call for our orders and feeds).
- `binance.py`: Binance spot + USD-M: public data (markets, depth snapshot + diff stream, trades) and,
  through `binance_gate.py` (key, signature, timing, weight limits) and `binance_trading.py` (orders,
  trades, account, positions, user data streams), demo trading.
- `okx.py`: OKX v5 (instruments, account config / balance / positions, orders with sCode/sMsg, fills
  history, public books + trades, private login + orders channel; demo's `x-simulated-trading` header).
- `markets.py`: the BTC/USDT spot + BTC/USDT:USDT perp the dialects list (the testnet configs' symbols).
- `cli.py`: `mmbot exchange serve --dialect NAME`.

See docs/mock-protocol.md ("Venue dialects") for which venue behaviours are modelled and where each
one is documented.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bot.venues.mock.dialects import binance, bybit, okx
from bot.venues.mock.dialects.server import Dialect, DialectServer

DIALECTS: dict[str, Callable[..., Dialect]] = {"bybit": bybit.make, "binance": binance.make, "okx": okx.make}


def dialect_factory(name: str, **options: Any) -> Callable[[DialectServer], Dialect]:
    make = DIALECTS[name]
    return lambda server: make(server, **options)


__all__ = ["DIALECTS", "DialectServer", "dialect_factory"]
