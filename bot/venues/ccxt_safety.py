"""Building the ccxt.pro exchange object in the configured environment, and refusing mainnet orders.

Checked before any network I/O, in this order:

1. the (exchange, mode) pair is one ccxt can reach (also validated by `CcxtConfig`);
2. testnet/demo modes have their keys in the environment (MMBOT__CCXT__API_KEY, ..._API_SECRET and,
   for okx, ..._API_PASSWORD); paper mode never gets keys, so it cannot sign an order even by mistake;
3. after `set_sandbox_mode` / `enable_demo_trading`, the URLs that receive orders differ from the
   mainnet ones (okx shares its REST host between live and demo: there the `x-simulated-trading: 1`
   header is what routes to demo, so that header is required instead).

Any failure raises `ConfigError` with one line, so `mmbot run` exits with code 2 before touching a venue.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import ccxt.pro

from bot.config import CCXT_MODES, CcxtConfig, ConfigError

ExchangeFactory = Callable[[dict[str, Any]], Any]
"""Builds a ccxt.pro exchange from its options dict (the ccxt.pro class itself, or a test double)."""

# urls['api'] entries our REST order calls go to, and headers that must be present, per exchange
ORDER_URL_KEYS: dict[str, tuple[str, ...]] = {
    "binance": ("private", "fapiPrivate", "fapiPrivateV2"),
    "bybit": ("private",),
    "okx": (),
}
ORDER_HEADERS: dict[str, dict[str, str]] = {"okx": {"x-simulated-trading": "1"}}


def check_credentials(cfg: CcxtConfig) -> None:
    if cfg.mode == "paper":
        return
    needed = ["api_key", "api_secret"] + (["api_password"] if cfg.exchange == "okx" else [])
    for name in needed:
        value = getattr(cfg, name)
        if value is None or not value.get_secret_value():
            raise ConfigError(
                f"config error: ccxt.{name}: mode {cfg.mode!r} on {cfg.exchange} needs "
                f"MMBOT__CCXT__{name.upper()} in the environment"
            )


def exchange_options(cfg: CcxtConfig) -> dict[str, Any]:
    options: dict[str, Any] = {"enableRateLimit": True}
    if cfg.mode != "paper":  # paper mode must not be able to sign anything
        options["apiKey"] = cfg.api_key.get_secret_value() if cfg.api_key else None
        options["secret"] = cfg.api_secret.get_secret_value() if cfg.api_secret else None
        if cfg.api_password is not None:
            options["password"] = cfg.api_password.get_secret_value()
    return options


def _mainnet_urls(exchange_id: str) -> dict[str, Any]:
    api: dict[str, Any] = getattr(ccxt.pro, exchange_id)().urls["api"]
    return api


def assert_orders_sandboxed(cfg: CcxtConfig, exchange: Any) -> None:
    """Raise ConfigError unless orders from `exchange` would land in a sandbox / demo environment."""
    mainnet = _mainnet_urls(cfg.exchange)
    for key in ORDER_URL_KEYS[cfg.exchange]:
        ours = exchange.urls.get("api", {}).get(key)
        if ours is not None and ours == mainnet.get(key):
            raise ConfigError(
                f"config error: ccxt.mode: {cfg.exchange} {cfg.mode} would send orders to mainnet ({ours}); refused"
            )
    headers = getattr(exchange, "headers", None) or {}
    for name, value in ORDER_HEADERS.get(cfg.exchange, {}).items():
        if headers.get(name) != value:
            raise ConfigError(
                f"config error: ccxt.mode: {cfg.exchange} {cfg.mode} lacks the {name} header, "
                "orders would reach mainnet; refused"
            )


def build_exchange(cfg: CcxtConfig, factory: ExchangeFactory | None = None) -> Any:
    """The ccxt.pro exchange in the configured environment. No network I/O."""
    if cfg.mode != "paper" and cfg.mode not in CCXT_MODES[cfg.exchange]:
        raise ConfigError(f"config error: ccxt.mode: {cfg.exchange} has no {cfg.mode} environment in ccxt")
    check_credentials(cfg)
    make: ExchangeFactory = factory or getattr(ccxt.pro, cfg.exchange)
    exchange = make(exchange_options(cfg))
    try:
        if cfg.mode == "testnet" or (cfg.mode == "demo" and cfg.exchange == "okx"):
            exchange.set_sandbox_mode(True)  # okx "demo trading" is ccxt's sandbox (a header)
        elif cfg.mode == "demo":
            exchange.enable_demo_trading(True)
    except ccxt.NotSupported as exc:
        raise ConfigError(f"config error: ccxt.mode: {exc}") from None
    if cfg.mode != "paper":
        assert_orders_sandboxed(cfg, exchange)
    return exchange
