"""`mmbot status` against our own metrics server on loopback."""

from __future__ import annotations

import argparse
import asyncio
import io
import socket

import pytest

from bot.runtime.metrics import Metrics, MetricsServer, ObligationView, OrderView, StatusSnapshot
from bot.runtime.status import CLEAR_SCREEN, StatusError, cmd_status, fetch_status, render, watch

SNAP = StatusSnapshot(
    ts_ns=1,
    run_id="run-42",
    venue="mock",
    symbol="TOKEN/USDT",
    book_synced=True,
    quoting=True,
    mid_px=100.0,
    reservation_px=99.9,
    quoted_spread_bps=20.0,
    sigma_px_per_sqrt_s=0.02,
    orders=(
        OrderView("TOKEN/USDT", "bid-1", "buy", 99.8, 1.0, 3.0),
        OrderView("TOKEN/USDT", "ask-1", "sell", 100.2, 1.0, 75.0),
    ),
    inventory_base={"TOKEN/USDT": 2.0},
    net_delta_base=2.0,
    pnl_quote={"spread": 1.25, "fees": -0.25},
    risk_state="widened",
    risk_reason="inventory_soft_limit",
    obligations=(ObligationView("main_cex", False, 0.5, "spread 20 bps > 10"),),
    fills=7,
)


def args(url: str, watch: bool = False) -> argparse.Namespace:
    return argparse.Namespace(url=url, watch=watch, interval=0.1)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_render_shows_the_essentials() -> None:
    metrics = Metrics()
    metrics.update(SNAP)
    text = render(metrics.status())
    assert "run-42" in text and "READY" in text and "NOT READY" not in text
    assert "-10.0 bps" in text  # reservation vs mid
    lines = text.splitlines()
    ask_row = next(i for i, line in enumerate(lines) if "ask" not in line and "100.2" in line)
    bid_row = next(i for i, line in enumerate(lines) if "99.8" in line)
    assert ask_row < bid_row  # asks above bids, like a book
    assert "1m15s" in lines[ask_row]
    assert any("total" in line and "1.00" in line for line in lines)
    assert any("main_cex" in line and "MISS" in line and "50.0%" in line for line in lines)


def test_render_tolerates_an_empty_document() -> None:
    text = render({"health": {"status": "not_ready", "reason": "starting"}, "run_id": None})
    assert "NOT READY (starting)" in text and "none" in text


async def test_status_once_over_loopback(capsys: pytest.CaptureFixture[str]) -> None:
    metrics = Metrics()
    metrics.update(SNAP)
    async with MetricsServer(metrics, "127.0.0.1", 0) as server:
        code = await asyncio.to_thread(cmd_status, args(server.url))
    out = capsys.readouterr().out
    assert code == 0
    assert "run-42" in out and "widened (inventory_soft_limit)" in out


async def test_watch_redraws_and_survives_an_outage() -> None:
    metrics = Metrics()
    metrics.update(SNAP)
    server = MetricsServer(metrics, "127.0.0.1", 0)
    await server.start()
    url = server.url
    out = io.StringIO()
    await asyncio.to_thread(watch, url, 1.0, out, 2, lambda _s: None)
    await server.stop()
    await asyncio.to_thread(watch, url, 1.0, out, 1, lambda _s: None)
    frames = out.getvalue().split(CLEAR_SCREEN)[1:]
    assert len(frames) == 3
    assert "run-42" in frames[0] and "run-42" in frames[1]
    assert "cannot reach" in frames[2] and "retrying" in frames[2]


def test_unreachable_bot_is_one_line_and_exit_1(capsys: pytest.CaptureFixture[str]) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    assert cmd_status(args(url)) == 1
    assert cmd_status(args(url, watch=True)) == 1
    captured = capsys.readouterr()
    err_lines = captured.err.strip().splitlines()
    assert len(err_lines) == 2 and all(line.startswith("mmbot status: cannot reach") for line in err_lines)
    assert captured.out == ""


async def test_a_port_that_is_not_mmbot_is_an_error() -> None:
    async def not_mmbot(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(not_mmbot, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        with pytest.raises(StatusError, match="did not answer JSON"):
            await asyncio.to_thread(fetch_status, f"http://127.0.0.1:{port}")
    finally:
        server.close()
        await server.wait_closed()
