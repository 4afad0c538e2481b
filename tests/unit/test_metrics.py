"""Metrics registry, health semantics and the HTTP server, over a real loopback socket."""

from __future__ import annotations

import asyncio
import math

import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from bot.domain import Liquidity, OrderFilled, OrderRejected, PlaceOrder, Side, Timer
from bot.runtime.metrics import Metrics, MetricsObserver, MetricsServer, ObligationView, OrderView, StatusSnapshot


class Clock:
    def __init__(self) -> None:
        self.now_s = 1000.0

    def __call__(self) -> float:
        return self.now_s


def snapshot(**overrides: object) -> StatusSnapshot:
    base: dict[str, object] = {
        "ts_ns": 1_700_000_000_000_000_000,
        "run_id": "run-1",
        "venue": "mock",
        "symbol": "TOKEN/USDT",
        "book_synced": True,
        "quoting": True,
        "mid_px": 100.0,
        "reservation_px": 99.95,
        "quoted_spread_bps": 12.0,
        "sigma_px_per_sqrt_s": 0.02,
        "orders": (
            OrderView("TOKEN/USDT", "q-b", "buy", 99.9, 1.0, 2.5),
            OrderView("TOKEN/USDT", "q-a", "sell", 100.1, 1.0, 2.5),
            OrderView("TOKEN/USDT:USDT", "h-1", "sell", 99.0, 3.0, 0.1, tag="hedge"),
        ),
        "inventory_base": {"TOKEN/USDT": 3.0, "TOKEN/USDT:USDT": -3.0},
        "net_delta_base": 0.25,
        "pnl_quote": {"spread": 5.0, "inventory": -1.5, "fees": -0.5},
        "risk_state": "normal",
        "obligations": (ObligationView("main_cex", True, 0.97, "bid 100k/100k"),),
    }
    base.update(overrides)
    return StatusSnapshot(**base)  # type: ignore[arg-type]


async def http_get(port: int, path: str, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"{method} {path} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode())
    await writer.drain()
    raw = await asyncio.wait_for(reader.read(), timeout=5)
    writer.close()
    await writer.wait_closed()
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split(" ")[1]), headers, body


def samples(text: bytes) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text.decode()):
        for s in family.samples:
            out[s.name, tuple(sorted(s.labels.items()))] = s.value
    return out


def test_two_registries_do_not_collide() -> None:
    a, b = Metrics(), Metrics()
    a.update(snapshot(net_delta_base=1.0))
    b.update(snapshot(net_delta_base=2.0))
    assert samples(a.exposition())["mmbot_net_delta_base", ()] == 1.0
    assert samples(b.exposition())["mmbot_net_delta_base", ()] == 2.0


def test_health_semantics() -> None:
    clock = Clock()
    m = Metrics(stale_after_s=5.0, clock_s=clock)
    assert m.health().to_dict() == {"status": "not_ready", "reason": "starting"}
    m.update(snapshot())
    assert m.health().to_dict() == {"status": "ready"}
    m.update(snapshot(book_synced=False, quoting=False))
    assert m.health().to_dict() == {"status": "not_ready", "reason": "book not synced"}
    m.update(snapshot(quoting=False, not_ready_reason="stale feed"))
    assert m.health().reason == "stale feed"
    m.update(snapshot(quoting=False))
    assert m.health().reason == "not quoting"
    m.update(snapshot())
    clock.now_s += 5.1  # the runner stopped pushing: a wedged engine is not healthy
    assert not m.health().ready and m.health().reason.startswith("status stale")
    m.update(snapshot())
    assert m.health().ready
    m.set_not_ready("shutting_down")
    assert m.health().to_dict() == {"status": "not_ready", "reason": "shutting_down"}
    assert samples(m.exposition())["mmbot_ready", ()] == 0.0


def test_gauges_follow_the_snapshot() -> None:
    m = Metrics()
    m.update(snapshot())
    got = samples(m.exposition())
    assert got["mmbot_inventory_base", (("symbol", "TOKEN/USDT"),)] == 3.0
    assert got["mmbot_inventory_base", (("symbol", "TOKEN/USDT:USDT"),)] == -3.0
    assert got["mmbot_net_delta_base", ()] == 0.25
    assert got["mmbot_quoted_spread_bps", ()] == 12.0
    assert got["mmbot_pnl_total_quote", ()] == pytest.approx(3.0)
    assert got["mmbot_pnl_component_quote", (("component", "inventory"),)] == -1.5
    assert got["mmbot_open_orders", (("side", "buy"), ("symbol", "TOKEN/USDT"))] == 1
    assert got["mmbot_open_orders", (("side", "sell"), ("symbol", "TOKEN/USDT:USDT"))] == 1
    assert got["mmbot_risk_state", (("state", "normal"),)] == 1
    assert got["mmbot_obligation_compliant", (("obligation", "main_cex"),)] == 1
    assert got["mmbot_obligation_compliance_ratio", (("obligation", "main_cex"),)] == 0.97
    assert got["mmbot_ready", ()] == 1
    m.update(snapshot(risk_state="widened", orders=(), quoted_spread_bps=None))
    got = samples(m.exposition())
    assert got["mmbot_risk_state", (("state", "normal"),)] == 0
    assert got["mmbot_risk_state", (("state", "widened"),)] == 1
    assert not any(name == "mmbot_open_orders" for name, _ in got)
    assert math.isnan(got["mmbot_quoted_spread_bps", ()])


def test_fills_rejects_and_latency() -> None:
    m = Metrics()
    fill = OrderFilled("TOKEN/USDT", "c1", "f1", Side.BUY, 100, 1, 0.0, Liquidity.MAKER, 0, 1, 2)
    m.record_event(fill, tag="quote")
    m.record_event(fill, tag="quote")
    m.record_event(OrderRejected("TOKEN/USDT", "c2", "post_only_would_cross", 1, 2))
    m.record_event(OrderRejected("TOKEN/USDT", "c3", "rate_limited", 1, 2))
    m.record_event(OrderRejected("TOKEN/USDT", "c4", "rate_limited", 1, 2))
    m.record_event(Timer(1, 2))  # not counted anywhere
    m.observe_tick_to_quote_ns(30_000)  # 30 µs
    m.observe_tick_to_quote_ns(700_000)  # 700 µs
    got = samples(m.exposition())
    fill_labels = (("liquidity", "maker"), ("side", "buy"), ("symbol", "TOKEN/USDT"), ("tag", "quote"))
    assert got["mmbot_fills_total", fill_labels] == 2
    assert got["mmbot_rejects_total", (("reason", "rate_limited"),)] == 2
    assert got["mmbot_rejects_total", (("reason", "post_only_would_cross"),)] == 1
    assert got["mmbot_tick_to_quote_latency_us_bucket", (("le", "25.0"),)] == 0
    assert got["mmbot_tick_to_quote_latency_us_bucket", (("le", "50.0"),)] == 1
    assert got["mmbot_tick_to_quote_latency_us_bucket", (("le", "1000.0"),)] == 2
    assert got["mmbot_tick_to_quote_latency_us_sum", ()] == pytest.approx(730.0)


async def test_server_routes_over_loopback() -> None:
    m = Metrics()
    async with MetricsServer(m, "127.0.0.1", 0) as server:
        assert server.port > 0
        code, _, body = await http_get(server.port, "/health")
        assert (code, orjson.loads(body)) == (503, {"status": "not_ready", "reason": "starting"})
        code, _, body = await http_get(server.port, "/status")
        assert code == 200 and orjson.loads(body)["run_id"] is None
        m.update(snapshot())
        code, headers, body = await http_get(server.port, "/health")
        assert (code, orjson.loads(body)) == (200, {"status": "ready"})
        assert headers["Content-Type"] == "application/json"
        code, headers, body = await http_get(server.port, "/metrics")
        assert code == 200 and headers["Content-Type"].startswith("text/plain")
        assert samples(body)["mmbot_net_delta_base", ()] == 0.25
        code, _, body = await http_get(server.port, "/status?x=1")
        status = orjson.loads(body)
        assert code == 200
        assert status["mid_px"] == 100.0 and status["pnl_total_quote"] == pytest.approx(3.0)
        assert status["orders"][2] == {
            "symbol": "TOKEN/USDT:USDT",
            "client_id": "h-1",
            "side": "sell",
            "price_px": 99.0,
            "size_base": 3.0,
            "age_s": 0.1,
            "tag": "hedge",
        }
        assert status["health"] == {"status": "ready"} and status["snapshot_age_s"] >= 0
        code, headers, body = await http_get(server.port, "/health", method="HEAD")
        assert code == 200 and body == b"" and int(headers["Content-Length"]) > 0
        assert (await http_get(server.port, "/nope"))[0] == 404
        assert (await http_get(server.port, "/metrics", method="POST"))[0] == 405


async def test_stop_closes_idle_connections_and_leaves_no_tasks() -> None:
    server = MetricsServer(Metrics(), "127.0.0.1", 0, request_timeout_s=60)
    await server.start()
    port = server.port
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /metrics HTTP/1.1\r\n")  # never finishes its headers
    await writer.drain()

    async def handler_running() -> None:
        while len(asyncio.all_tasks()) < 2:
            await asyncio.sleep(0.001)

    await asyncio.wait_for(handler_running(), timeout=5)
    await server.stop()
    assert await asyncio.wait_for(reader.read(), timeout=5) == b""  # server closed it
    writer.close()
    assert asyncio.all_tasks() == {asyncio.current_task()}
    with pytest.raises(OSError):
        await asyncio.open_connection("127.0.0.1", port)
    await server.stop()  # idempotent


async def test_request_timeout_drops_a_slow_client() -> None:
    async with MetricsServer(Metrics(), "127.0.0.1", 0, request_timeout_s=0.05) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"GET /health HTTP/1.1\r\n")
        assert await asyncio.wait_for(reader.read(), timeout=5) == b""
        writer.close()
        assert (await http_get(server.port, "/health"))[0] == 503  # still serving others


async def test_serve_forever_in_a_task_group_stops_on_cancel() -> None:
    m = Metrics()
    m.update(snapshot())
    server = MetricsServer(m, "127.0.0.1", 0)
    await server.start()

    async def scrape_then_stop() -> None:
        code, _, _ = await http_get(server.port, "/health")
        assert code == 200
        raise asyncio.CancelledError  # what a runner shutdown does to its tasks

    with pytest.raises(asyncio.CancelledError):
        async with asyncio.TaskGroup() as tg:
            serve = tg.create_task(server.serve_forever())
            await scrape_then_stop()
    assert serve.cancelled()
    with pytest.raises(RuntimeError):
        _ = server.port


def test_metrics_observer_tags_fills_and_times_quoting_batches() -> None:
    m = Metrics()
    obs = MetricsObserver(m)
    obs.on_command(PlaceOrder("TOKEN/USDT:USDT", "h1", Side.SELL, 0, 1, tag="hedge"), 1)
    obs.on_batch(None, 1, 40.0)  # sent an order: observed
    obs.on_event(Timer(2, 2), 2)
    obs.on_batch(None, 2, 5.0)  # nothing sent: not a tick-to-quote sample
    obs.on_event(OrderFilled("TOKEN/USDT:USDT", "h1", "f1", Side.SELL, 100, 1, 0.0, Liquidity.TAKER, 0, 3, 3), 3)
    obs.on_batch(None, 3, 7.0)
    got = samples(m.exposition())
    assert got["mmbot_tick_to_quote_latency_us_count", ()] == 1
    assert got["mmbot_tick_to_quote_latency_us_sum", ()] == 40.0
    labels = (("liquidity", "taker"), ("side", "sell"), ("symbol", "TOKEN/USDT:USDT"), ("tag", "hedge"))
    assert got["mmbot_fills_total", labels] == 1
    obs.close()
    assert not m.health().ready and m.health().reason == "stopped"
