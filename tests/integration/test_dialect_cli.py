"""`mmbot exchange serve --dialect NAME` as a user (and the compose sim-testnet profile) starts it."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys

import aiohttp
import orjson
import pytest


def test_a_dialect_server_refuses_a_non_loopback_address() -> None:
    argv = [sys.executable, "-m", "bot.cli", "exchange", "serve", "--dialect", "bybit", "--host", "0.0.0.0"]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and result.stderr.startswith("config error: --host:")
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(("dialect", "path"), [("bybit", "v5/market/time"), ("binance", "api/v3/exchangeInfo")])
async def test_mmbot_exchange_serve_dialect_answers_and_exits_0_on_sigterm(dialect: str, path: str) -> None:
    argv = ["-m", "bot.cli", "exchange", "serve", "--dialect", dialect, "--port", "0", "--log-format", "json"]
    proc = await asyncio.create_subprocess_exec(
        sys.executable, *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    try:
        assert proc.stdout is not None
        async with asyncio.timeout(30):
            while True:
                line = await proc.stdout.readline()
                assert line, "the server exited before serving"
                if line.startswith(b"{") and orjson.loads(line).get("event") == "exchange.serving":
                    port = orjson.loads(line)["port"]
                    break
        url = f"http://127.0.0.1:{port}/venue.example/{path}"
        async with aiohttp.ClientSession() as session, session.get(url) as response:
            assert response.status == 200
            body = await response.json()
        assert body.get("retCode") == 0 if dialect == "bybit" else [s["symbol"] for s in body["symbols"]] == ["BTCUSDT"]
        proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(30):
            assert await proc.wait() == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
