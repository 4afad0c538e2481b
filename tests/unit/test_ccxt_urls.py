"""`ccxt.sandbox_url_base` (loopback only, rewrites every ccxt URL) and the mainnet guard over every
non-public URL of the ccxt object."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import ccxt.pro
import pytest
from conftest import config_error

from bot.config import CcxtConfig, ConfigError
from bot.venues.ccxt_safety import assert_orders_sandboxed, build_exchange, flat_urls, rewrite_urls

KEYS = {"api_key": "k", "api_secret": "s"}


@pytest.mark.parametrize(
    "base",
    ["http://10.0.0.5:8790", "http://example.com:8790", "https://127.0.0.1:8790", "http://127.0.0.1", "ws://[::1]:1"],
)
def test_a_sandbox_url_base_that_is_not_loopback_http_is_refused_naming_the_field(tmp_path: Path, base: str) -> None:
    toml = f'[runtime]\nvenue = "ccxt"\n[ccxt]\nexchange = "bybit"\nmode = "testnet"\nsandbox_url_base = "{base}"\n'
    message = config_error(tmp_path, toml)
    assert message.startswith("config error: ccxt.sandbox_url_base:") and "\n" not in message


def test_the_environment_variable_is_checked_too_and_the_cli_exits_2(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[runtime]\nvenue = "ccxt"\n[ccxt]\nexchange = "bybit"\nmode = "testnet"\n')
    env = {"MMBOT__CCXT__SANDBOX_URL_BASE": "http://192.168.1.2:9000", "PATH": ""}
    result = subprocess.run(
        [sys.executable, "-m", "bot.cli", "check-config", str(path)], capture_output=True, text=True, env=env
    )
    assert result.returncode == 2
    assert result.stderr.startswith("config error: ccxt.sandbox_url_base:") and "Traceback" not in result.stderr


@pytest.mark.parametrize("base", ["http://127.0.0.1:8790", "http://localhost:1", "http://[::1]:8790"])
def test_loopback_bases_are_accepted(base: str) -> None:
    assert CcxtConfig(exchange="bybit", mode="testnet", sandbox_url_base=base).sandbox_url_base == base


@pytest.mark.parametrize(("exchange", "mode"), [("bybit", "testnet"), ("binance", "demo"), ("okx", "demo")])
def test_every_rest_and_websocket_url_goes_to_the_loopback_base(exchange: str, mode: str) -> None:
    keys = dict(KEYS, api_password="p") if exchange == "okx" else KEYS
    cfg = CcxtConfig(exchange=exchange, mode=mode, sandbox_url_base="http://127.0.0.1:8790", **keys)
    urls = list(flat_urls(build_exchange(cfg).urls["api"]))
    assert urls and all(
        url.startswith(("http://127.0.0.1:8790/", "ws://127.0.0.1:8790/")) for _, url in urls if "://" in url
    )


def test_the_venue_host_becomes_the_first_path_segment() -> None:
    urls = {"rest": "https://api-testnet.{hostname}", "ws": {"spot": "wss://stream.binance.com:9443/ws"}}
    assert rewrite_urls(urls, "http://127.0.0.1:9") == {
        "rest": "http://127.0.0.1:9/api-testnet.{hostname}",
        "ws": {"spot": "ws://127.0.0.1:9/stream.binance.com:9443/ws"},
    }


def test_any_private_url_left_on_mainnet_is_refused_not_only_a_fixed_list_of_keys() -> None:
    """Before: only `private`, `fapiPrivate`, `fapiPrivateV2` were compared, so a demo object whose
    `fapiPrivateV3` (or any endpoint ccxt adds later) still pointed at mainnet was accepted."""
    cfg = CcxtConfig(exchange="binance", mode="demo", **KEYS)
    exchange = build_exchange(cfg)
    exchange.urls["api"]["fapiPrivateV3"] = ccxt.pro.binance().urls["api"]["fapiPrivateV3"]
    with pytest.raises(ConfigError, match=r"fapiPrivateV3 = https://fapi\.binance\.com.*refused"):
        assert_orders_sandboxed(cfg, exchange)


def test_the_guard_runs_on_the_venue_urls_before_the_override() -> None:
    """A sandbox switch that fails is refused even with a loopback override configured."""

    class Broken(ccxt.pro.bybit):  # type: ignore[misc,name-defined]
        def set_sandbox_mode(self, enabled: bool) -> None:  # leaves the mainnet URLs in place
            pass

    cfg = CcxtConfig(exchange="bybit", mode="testnet", sandbox_url_base="http://127.0.0.1:1", **KEYS)
    with pytest.raises(ConfigError, match="mainnet"):
        build_exchange(cfg, Broken)


@pytest.mark.parametrize(
    ("exchange", "mode", "perp", "types"),
    [
        ("binance", "demo", "BTC/USDT:USDT", ["spot", "linear"]),  # no COIN-M (dapi) fetch to fail start-up
        ("bybit", "testnet", "BTC/USDT:USDT", ["spot", "linear"]),  # no inverse / option fetches
        ("okx", "demo", "BTC/USDT:USDT", ["spot", "swap"]),
        ("binance", "paper", "", ["spot"]),
    ],
)
def test_only_the_market_types_we_trade_are_loaded(exchange: str, mode: str, perp: str, types: list[str]) -> None:
    keys = {} if mode == "paper" else dict(KEYS, api_password="p")
    cfg = CcxtConfig(exchange=exchange, mode=mode, perp_symbol=perp, **keys)
    assert build_exchange(cfg).options["fetchMarkets"]["types"] == types
