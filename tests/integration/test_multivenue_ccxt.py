"""A multi-venue session on ccxt venues (`[market.venues.NAME] kind = "ccxt"`): BTC/USDT quoted on
Binance and on OKX, hedged on Bybit's perp, each venue configured once (its exchange, mode and
sandbox URL in the file, its keys from `MMBOT__MARKET__VENUES__<NAME>__API_KEY`...), each through
ccxt's own client to the project's dialect server of that exchange on 127.0.0.1 (in this process, so
its state is the ground truth; the Binance and OKX dialects check every HMAC signature). No network.

One engine, one runner: both spot venues quote and fill (an outside taker trades through one of our
quotes on each), the Bybit perp hedges the book, and at exit nothing of ours is open on any of the
three. No key or secret appears in any log line."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import Any

import orjson
import pytest
from conftest import LogSink, Record, is_event, until
from test_kill_recovery import take_a_resting_quote
from test_testnet_config_on_dialect import API_SECRET

from bot.app import _run
from bot.config import ConfigError, load_settings
from bot.venues.mock.dialects import DialectServer, dialect_factory
from bot.venues.mock.dialects.markets import PERP_SYMBOL, SPOT_SYMBOL, btc_config

CONFIG = Path(__file__).resolve().parents[2] / "config" / "okx-demo.toml"  # BTC sizes and estimators
SAFETY_DURATION_S = 90.0  # the bot stops by itself after this if the test's condition never comes
SECRETS = {
    "BINANCE": ("binance-key-1", API_SECRET, None),
    "OKX": ("okx-key-1", API_SECRET, "okx-passphrase-1"),
    "BYBIT": ("bybit-key-1", "bybit-secret-1", None),
}


def ccxt_market(ports: dict[str, int]) -> dict[str, Any]:
    venue = {"kind": "ccxt", "spot_base_allocation": 1.0}  # the dialect account's starting BTC is not inventory
    modes = {"binance": "demo", "okx": "demo", "bybit": "testnet"}
    return {
        "spot_symbol": SPOT_SYMBOL,
        "perp_symbol": PERP_SYMBOL,
        "quote_on": [{"venue": "binance"}, {"venue": "okx"}],
        "hedge_venue": "bybit",
        "venues": {
            name: {**venue, "exchange": name, "mode": mode, "sandbox_url_base": f"http://127.0.0.1:{ports[name]}"}
            for name, mode in modes.items()
        },
    }


def set_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    for venue, (key, secret, password) in SECRETS.items():
        monkeypatch.setenv(f"MMBOT__MARKET__VENUES__{venue}__API_KEY", key)
        monkeypatch.setenv(f"MMBOT__MARKET__VENUES__{venue}__API_SECRET", secret)
        if password is not None:
            monkeypatch.setenv(f"MMBOT__MARKET__VENUES__{venue}__API_PASSWORD", password)


def filled_on(records: list[Record]) -> set[str]:
    return {r["venue"] for r in records if is_event(r, "order.filled", symbol=SPOT_SYMBOL)}


async def take_one_quote(server: DialectServer, sink: LogSink, venue: str) -> None:
    """An outside taker trades through one of our spot quotes on `server` until the bot books a fill there."""
    for _ in range(10):  # a quote may be canceled between the look and the take: look again
        await until(lambda: any(o.symbol == SPOT_SYMBOL for o in server.exchange.open_orders()), 30.0,
                    f"a resting spot quote on {venue}")  # fmt: skip
        if take_a_resting_quote(server.exchange, SPOT_SYMBOL) is not None:
            server.pacer.wake()
            break
    await until(lambda: venue in filled_on(sink.records), 30.0, f"a spot fill booked on {venue}")


@pytest.mark.slow
async def test_spot_on_two_ccxt_venues_hedged_on_a_third(
    tmp_path: Path, log_sink: LogSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    set_keys(monkeypatch)
    servers = {
        "binance": DialectServer(dialect_factory("binance", api_secret=API_SECRET), btc_config(dialect="binance")),
        "okx": DialectServer(dialect_factory("okx", api_secret=API_SECRET), btc_config(dialect="okx")),
        "bybit": DialectServer(dialect_factory("bybit"), btc_config(dialect="bybit")),
    }
    for server in servers.values():
        await server.__aenter__()
    try:
        settings = load_settings(
            CONFIG,
            {
                "runtime": {"venue": "mock", "stale_feed_ms": 5000},  # a multi-venue session (market.quote_on)
                "market": ccxt_market({name: s.port for name, s in servers.items()}),
                "metrics": {"enabled": False},
                "ledger": {"path": str(tmp_path / "ledger.db")},
            },
        )
        bot = asyncio.create_task(_run(settings, SAFETY_DURATION_S, run_id="ccxtset00001"))
        try:
            await until(lambda: any(is_event(r, "recovery.completed") for r in log_sink.records), 30, "started")
            for name in ("binance", "okx"):
                await take_one_quote(servers[name], log_sink, name)
            await until(lambda: any(is_event(r, "hedge.filled") for r in log_sink.records), 30, "a hedge")
            signal.raise_signal(signal.SIGINT)  # the runner's handler: cancel on every venue, summary, return
            async with asyncio.timeout(30):
                summary = await bot
        finally:
            if not bot.done():
                bot.cancel()
        assert summary["venues"]["binance"]["fills"] > 0 and summary["venues"]["okx"]["fills"] > 0
        assert summary["venues"]["bybit"]["hedge"]["fills"] > 0
        assert {r["venue"] for r in log_sink.records if is_event(r, "hedge.filled")} == {"bybit"}
        assert summary["open_orders_at_exit"] == 0
        for name, server in servers.items():
            assert server.exchange.open_orders() == [], name
        logged = b"\n".join(orjson.dumps(r) for r in log_sink.records).decode()
        for key, secret, password in SECRETS.values():
            for value in (key, secret, password):
                assert value is None or value not in logged
    finally:
        for server in servers.values():
            await server.__aexit__(None, None, None)


def test_a_venue_key_in_the_config_file_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text('[market.venues.okx]\nkind = "ccxt"\nexchange = "okx"\napi_secret = "s3cret-in-file"\n')
    with pytest.raises(ConfigError, match=r"market\.venues\.okx\.api_secret: secrets are read only") as caught:
        load_settings(config)
    assert "s3cret-in-file" not in str(caught.value)


def test_a_ccxt_venue_goes_to_loopback_only() -> None:
    market = ccxt_market({"binance": 1, "okx": 2, "bybit": 3})
    market["venues"]["okx"]["sandbox_url_base"] = "http://10.0.0.5:8790"
    with pytest.raises(ConfigError, match=r"market\.venues\.okx\.sandbox_url_base"):
        load_settings(None, {"market": market})


def test_a_ccxt_venue_does_not_mix_with_the_in_process_mock() -> None:
    market = ccxt_market({"binance": 1, "okx": 2, "bybit": 3})
    market["venues"]["bybit"] = {"liquidity_scale": 1.0}  # an in-process mock venue beside ccxt ones
    with pytest.raises(ConfigError, match="binance, okx"):
        load_settings(None, {"market": market})
