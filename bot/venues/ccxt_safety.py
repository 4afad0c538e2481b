"""Building the ccxt.pro exchange object in the configured environment, and refusing mainnet orders.

Checked before any network I/O, in this order:

1. the (exchange, mode) pair is one ccxt can reach (also validated by `CcxtConfig`);
2. testnet/demo modes have their keys in the environment (MMBOT__CCXT__API_KEY, ..._API_SECRET and,
   for okx, ..._API_PASSWORD); paper mode never gets keys, so it cannot sign an order even by mistake;
3. after `set_sandbox_mode` / `enable_demo_trading`, no non-public URL of the object equals a mainnet
   URL (okx shares its REST host between live and demo: there the `x-simulated-trading: 1` header is
   what routes to demo, so that header is required instead);
4. then, if `ccxt.sandbox_url_base` is set (loopback only, checked by the config), every REST and
   websocket URL is rewritten to the dialect server there (`rewrite_urls`).

Any failure raises `ConfigError` with one line, so `mmbot run` exits with code 2 before touching a venue.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import ccxt.pro

from bot.config import CCXT_MODES, CcxtConfig, ConfigError

ExchangeFactory = Callable[[dict[str, Any]], Any]
"""Builds a ccxt.pro exchange from its options dict (the ccxt.pro class itself, or a test double)."""

# venues whose demo shares the live host and is chosen by a header: the header must be set instead
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


# ccxt's fetchMarkets `types` for our spot and our linear perp: load only the market types we trade,
# so an endpoint we never use (binance COIN-M dapi, bybit options) cannot fail start-up
MARKET_TYPES: dict[str, tuple[str, str]] = {
    "bybit": ("spot", "linear"),
    "binance": ("spot", "linear"),
    "okx": ("spot", "swap"),
}


def exchange_options(cfg: CcxtConfig) -> dict[str, Any]:
    spot_type, perp_type = MARKET_TYPES[cfg.exchange]
    types = [spot_type] * bool(cfg.spot_symbol) + [perp_type] * bool(cfg.perp_symbol)
    options: dict[str, Any] = {"enableRateLimit": True, "options": {"fetchMarkets": {"types": types}}}
    if cfg.mode != "paper":  # paper mode must not be able to sign anything
        options["apiKey"] = cfg.api_key.get_secret_value() if cfg.api_key else None
        options["secret"] = cfg.api_secret.get_secret_value() if cfg.api_secret else None
        if cfg.api_password is not None:
            options["password"] = cfg.api_password.get_secret_value()
    return options


def _mainnet_urls(exchange_id: str) -> dict[str, Any]:
    api: dict[str, Any] = getattr(ccxt.pro, exchange_id)().urls["api"]
    return api


def flat_urls(urls: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], str]]:
    """Every URL string in ccxt's nested `urls['api']`, with its key path."""
    if isinstance(urls, dict):
        for key, value in urls.items():
            yield from flat_urls(value, (*path, str(key)))
    elif isinstance(urls, str):
        yield path, urls


def _public(path: tuple[str, ...]) -> bool:
    """A key path names a public endpoint only when one of its keys says so ('public', 'fapiPublic');
    everything else (private, fapiPrivateV3, sapi, papi, rest, ws private...) may carry our orders."""
    return any("public" in key.lower() for key in path)


def assert_orders_sandboxed(cfg: CcxtConfig, exchange: Any) -> None:
    """Raise ConfigError unless orders from `exchange` would land in a sandbox / demo environment.

    Refused when ANY non-public URL of the object equals ANY URL of the mainnet object (not a fixed
    list of keys: ccxt adds endpoints such as binance `fapiPrivateV3` between releases). Where the
    venue routes demo by header on the live host (okx), the header is required instead."""
    headers_needed = ORDER_HEADERS.get(cfg.exchange, {})
    if not headers_needed:
        mainnet = {url for _, url in flat_urls(_mainnet_urls(cfg.exchange))}
        for path, url in flat_urls(exchange.urls.get("api", {})):
            if not _public(path) and url in mainnet:
                raise ConfigError(
                    f"config error: ccxt.mode: {cfg.exchange} {cfg.mode} would send orders to mainnet "
                    f"({'.'.join(path)} = {url}); refused"
                )
    headers = getattr(exchange, "headers", None) or {}
    for name, value in headers_needed.items():
        if headers.get(name) != value:
            raise ConfigError(
                f"config error: ccxt.mode: {cfg.exchange} {cfg.mode} lacks the {name} header, "
                "orders would reach mainnet; refused"
            )


def rewrite_urls(urls: Any, base: str) -> Any:
    """ccxt's nested URL dict with every `scheme://host/path` made `base/host/path` (http for
    http(s), ws for ws(s)): the dialect server reads the venue host from the first path segment."""
    if isinstance(urls, dict):
        return {key: rewrite_urls(value, base) for key, value in urls.items()}
    if not isinstance(urls, str) or "://" not in urls:
        return urls
    scheme, _, rest = urls.partition("://")
    if scheme not in ("http", "https", "ws", "wss"):
        return urls
    target = base if scheme.startswith("http") else "ws" + base[len("http") :]
    return f"{target}/{rest}"


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
        assert_orders_sandboxed(cfg, exchange)  # on the venue's own URLs, before any override
    if cfg.sandbox_url_base is not None:  # loopback only (validated by CcxtConfig)
        exchange.urls["api"] = rewrite_urls(exchange.urls["api"], cfg.sandbox_url_base)
    return exchange
