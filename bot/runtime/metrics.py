"""Prometheus metrics, health and status of the running bot, served over HTTP by an asyncio server.

`Metrics` owns its own `CollectorRegistry` (never the global default one, so tests and several bots
in one process do not collide). The runner feeds it three ways, all synchronous and cheap:

- `metrics.update(snapshot)` with a `StatusSnapshot` on its status timer (every
  `metrics.status_push_ms`): sets the gauges, the `/status` JSON and the health state;
- `metrics.record_event(event, tag)` for every venue event: counts fills and rejects (by reason);
- `metrics.observe_tick_to_quote_ns(ns)` when a market-data event led to a quote command.

`MetricsServer(metrics, host, port)` serves `GET /metrics` (Prometheus text format), `GET /health`
and `GET /status`. It is started and stopped by the runner inside its TaskGroup (`port=0` picks a
free port; read `server.port` after `start()`); `stop()` closes the socket and every open
connection, so no task or thread outlives it::

    async with asyncio.TaskGroup() as tg:
        server = MetricsServer(metrics, cfg.host, cfg.port)
        await server.start()
        tg.create_task(server.serve_forever())   # returns (after stop) when cancelled

Health: `/health` answers 200 `{"status": "ready"}` only when the last snapshot says the book is
synced and the bot is quoting, and that snapshot is fresh (younger than `stale_after_s`: a wedged
engine task turns the bot unhealthy); otherwise 503 `{"status": "not_ready", "reason": ...}`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any
from urllib.parse import urlsplit

import orjson
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from bot.domain import (
    CancelOrder,
    Command,
    Event,
    OrderCanceled,
    OrderFilled,
    OrderRejected,
    PlaceOrder,
    market_key,
)

LATENCY_BUCKETS_US = (10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000)
"""Tick-to-quote latency histogram buckets, microseconds."""


@dataclass(frozen=True, slots=True)
class OrderView:
    """One of our open orders as shown by `/status`."""

    symbol: str
    client_id: str
    side: str  # "buy" | "sell"
    price_px: float  # quote per base
    size_base: float  # remaining, base units
    age_s: float  # since it was placed (at snapshot time)
    tag: str = "quote"  # "quote" | "hedge"


@dataclass(frozen=True, slots=True)
class ObligationView:
    """One market-making obligation (e.g. "main_cex": ±2% depth, spread ≤ 10 bps)."""

    name: str
    compliant: bool  # right now
    compliance_ratio: float | None = None  # fraction of time compliant since start (0..1)
    detail: str = ""  # e.g. "bid depth 80k/100k"


@dataclass(frozen=True, slots=True)
class StatusSnapshot:
    """Everything `/status` shows and the gauges expose, pushed by the runner. Units in the names;
    `None` means not known yet. `pnl_quote` components add up to the total (costs negative)."""

    ts_ns: int  # wall clock, ns since the epoch
    run_id: str
    venue: str = ""
    symbol: str = ""  # the quoted symbol
    book_synced: bool = False
    quoting: bool = False
    not_ready_reason: str = ""  # why not quoting (stale feed, kill switch, warm-up, ...)
    mid_px: float | None = None
    reservation_px: float | None = None
    quoted_spread_bps: float | None = None
    sigma_px_per_sqrt_s: float | None = None
    a_per_s: float | None = None
    k_per_px: float | None = None
    orders: tuple[OrderView, ...] = ()
    inventory_base: Mapping[str, float] = field(default_factory=dict)  # per symbol (spot and perp)
    net_delta_base: float = 0.0
    pnl_quote: Mapping[str, float] = field(default_factory=dict)
    risk_state: str = "unknown"
    risk_reason: str = ""
    obligations: tuple[ObligationView, ...] = ()
    fills: int = 0
    uptime_s: float = 0.0
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def pnl_total_quote(self) -> float:
        return float(sum(self.pnl_quote.values()))

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["pnl_total_quote"] = self.pnl_total_quote
        return data


@dataclass(frozen=True, slots=True)
class Health:
    ready: bool
    reason: str

    def to_dict(self) -> dict[str, str]:
        return {"status": "ready"} if self.ready else {"status": "not_ready", "reason": self.reason}


def _nan(value: float | None) -> float:
    return math.nan if value is None else value


class Metrics:
    """The bot's metrics registry plus its latest status snapshot and health. Not thread-safe: update
    it from the event loop that runs the server (updates are synchronous, so a scrape never sees half
    an update)."""

    def __init__(self, stale_after_s: float = 10.0, clock_s: Callable[[], float] = time.monotonic) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._stale_after_s = stale_after_s
        self._clock_s = clock_s
        self._snapshot: StatusSnapshot | None = None
        self._snapshot_at_s = 0.0
        self._forced: Health | None = Health(False, "starting")
        self._risk_states: set[str] = set()
        r = self.registry
        self.inventory = Gauge("mmbot_inventory_base", "Position per symbol, base units", ["symbol"], registry=r)
        self.net_delta = Gauge("mmbot_net_delta_base", "Net delta: spot + perps + deal, base units", registry=r)
        self.spread = Gauge("mmbot_quoted_spread_bps", "Quoted spread, bps of mid (NaN: not two-sided)", registry=r)
        self.mid = Gauge("mmbot_mid_px", "Mid price of the quoted symbol, quote per base", registry=r)
        self.reservation = Gauge("mmbot_reservation_px", "Reservation price, quote per base", registry=r)
        self.sigma = Gauge("mmbot_sigma_px_per_sqrt_s", "Volatility estimate, price per sqrt(second)", registry=r)
        self.pnl_total = Gauge("mmbot_pnl_total_quote", "Total PnL, quote currency", registry=r)
        self.pnl = Gauge("mmbot_pnl_component_quote", "PnL by attribution component", ["component"], registry=r)
        self.open_orders = Gauge("mmbot_open_orders", "Our open orders", ["symbol", "side"], registry=r)
        self.risk_state = Gauge("mmbot_risk_state", "1 for the current risk state, 0 for others", ["state"], registry=r)
        self.obligation = Gauge(
            "mmbot_obligation_compliant", "1 if the obligation is met now", ["obligation"], registry=r
        )
        self.obligation_ratio = Gauge(
            "mmbot_obligation_compliance_ratio", "Fraction of time compliant since start", ["obligation"], registry=r
        )
        self.book_synced = Gauge("mmbot_book_synced", "1 when the order book is in sync", registry=r)
        self.quoting = Gauge("mmbot_quoting", "1 when the bot is quoting", registry=r)
        self.ready = Gauge("mmbot_ready", "1 when /health answers 200 (as of the last update)", registry=r)
        self.fills = Counter("mmbot_fills", "Our fills", ["symbol", "side", "liquidity", "tag"], registry=r)
        self.rejects = Counter("mmbot_rejects", "Order rejects by reason", ["reason"], registry=r)
        self.latency = Histogram(
            "mmbot_tick_to_quote_latency_us",
            "Market-data receive to quote command sent, microseconds",
            buckets=LATENCY_BUCKETS_US,
            registry=r,
        )

    # ---- inputs -----------------------------------------------------------------------------------

    def update(self, snap: StatusSnapshot) -> None:
        """Take a new status snapshot: gauges, `/status` and health follow it."""
        self._snapshot = snap
        self._snapshot_at_s = self._clock_s()
        self._forced = None
        for symbol, base in snap.inventory_base.items():
            self.inventory.labels(symbol).set(base)
        self.net_delta.set(snap.net_delta_base)
        self.spread.set(_nan(snap.quoted_spread_bps))
        self.mid.set(_nan(snap.mid_px))
        self.reservation.set(_nan(snap.reservation_px))
        self.sigma.set(_nan(snap.sigma_px_per_sqrt_s))
        self.pnl_total.set(snap.pnl_total_quote)
        for component, value in snap.pnl_quote.items():
            self.pnl.labels(component).set(value)
        self.open_orders.clear()  # label sets come and go with orders
        counts: dict[tuple[str, str], int] = {}
        for order in snap.orders:
            counts[order.symbol, order.side] = counts.get((order.symbol, order.side), 0) + 1
        for (symbol, side), n in counts.items():
            self.open_orders.labels(symbol, side).set(n)
        self._risk_states.add(snap.risk_state)
        for state in self._risk_states:
            self.risk_state.labels(state).set(1 if state == snap.risk_state else 0)
        for ob in snap.obligations:
            self.obligation.labels(ob.name).set(1 if ob.compliant else 0)
            self.obligation_ratio.labels(ob.name).set(_nan(ob.compliance_ratio))
        self.book_synced.set(1 if snap.book_synced else 0)
        self.quoting.set(1 if snap.quoting else 0)
        self.ready.set(1 if self.health().ready else 0)

    def set_not_ready(self, reason: str) -> None:
        """Force /health to 503 until the next `update` (e.g. "shutting_down" while cancelling)."""
        self._forced = Health(False, reason)
        self.ready.set(0)

    def record_event(self, event: Event, tag: str = "") -> None:
        """Count fills (by market, side, liquidity and the order's tag) and rejects (by reason). The
        `symbol` label is the market key: "TOKEN/USDT@main" on a named venue, the bare symbol on one venue."""
        if isinstance(event, OrderFilled):
            market = market_key(event.venue, event.symbol)
            self.fills.labels(market, event.side.value, event.liquidity.value, tag).inc()
        elif isinstance(event, OrderRejected):
            self.rejects.labels(event.reason).inc()

    def observe_tick_to_quote_ns(self, latency_ns: int) -> None:
        self.latency.observe(latency_ns / 1_000)

    # ---- outputs ----------------------------------------------------------------------------------

    def health(self) -> Health:
        if self._forced is not None:
            return self._forced
        snap = self._snapshot
        if snap is None:
            return Health(False, "starting")
        age_s = self._clock_s() - self._snapshot_at_s
        if age_s > self._stale_after_s:
            return Health(False, f"status stale: no update for {age_s:.1f} s")
        if not snap.book_synced:
            return Health(False, snap.not_ready_reason or "book not synced")
        if not snap.quoting:
            return Health(False, snap.not_ready_reason or "not quoting")
        return Health(True, "")

    def status(self) -> dict[str, Any]:
        """The `/status` document: the last snapshot (or nulls) plus health and the snapshot's age."""
        data: dict[str, Any] = self._snapshot.to_dict() if self._snapshot else {"ts_ns": None, "run_id": None}
        data["health"] = self.health().to_dict()
        data["snapshot_age_s"] = self._clock_s() - self._snapshot_at_s if self._snapshot else None
        return data

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class MetricsObserver:
    """Plugs `Metrics` into the runner (`bot.runtime.runner.Observer`): counts fills (labelled with
    their order's tag) and rejects, and observes the tick-to-quote latency of every batch that sent
    an order command. Status snapshots are pushed separately with `metrics.update(...)`."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics
        self._tags: dict[str, str] = {}
        self._order_commands = 0

    def on_event(self, event: Event, now_ns: int) -> None:
        tag = self._tags.get(event.client_id, "") if isinstance(event, OrderFilled) else ""
        self.metrics.record_event(event, tag)
        # forget finished orders so the map stays as small as the set of live orders
        if isinstance(event, OrderCanceled | OrderRejected) or (
            isinstance(event, OrderFilled) and not event.leaves_lots
        ):
            self._tags.pop(event.client_id, None)

    def on_command(self, command: Command, now_ns: int) -> None:
        if isinstance(command, PlaceOrder):
            self._tags[command.client_id] = command.tag
        if isinstance(command, PlaceOrder | CancelOrder):
            self._order_commands += 1

    def on_batch(self, engine: Any, now_ns: int, tick_to_quote_us: float) -> None:
        if self._order_commands:
            self.metrics.latency.observe(tick_to_quote_us)
        self._order_commands = 0

    def close(self) -> None:
        self.metrics.set_not_ready("stopped")


# --------------------------------------------------------------------------------------------------
# HTTP server: a few GET routes over asyncio streams (no framework, no threads)
# --------------------------------------------------------------------------------------------------

_MAX_HEADER_BYTES = 16 * 1024
_JSON = "application/json"


class MetricsServer:
    """Serves `/metrics`, `/health` and `/status` of one `Metrics` over HTTP/1.1 (one request per
    connection). Owned by the runner: `start()`, then `serve_forever()` in its TaskGroup, or `async with`."""

    def __init__(self, metrics: Metrics, host: str = "127.0.0.1", port: int = 0, request_timeout_s: float = 5.0):
        self.metrics = metrics
        self.host = host
        self._port = port
        self._timeout_s = request_timeout_s
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[Any]] = set()

    @property
    def port(self) -> int:
        """The bound port (the real one when constructed with port 0); valid after `start()`."""
        if self._server is None:
            raise RuntimeError("server not started")
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        return f"http://{host}:{self.port}"

    async def start(self) -> None:
        if self._server is None:
            self._server = await asyncio.start_server(self._handle, self.host, self._port)

    async def stop(self) -> None:
        """Close the listening socket and every connection in progress; idempotent."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
            await server.wait_closed()
        tasks = list(self._connections)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def serve_forever(self) -> None:
        """Start if needed and serve until cancelled; stops cleanly on the way out."""
        await self.start()
        try:
            await asyncio.Event().wait()
        finally:
            await self.stop()

    async def __aenter__(self) -> MetricsServer:
        await self.start()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.stop()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._connections.add(task)
        try:
            async with asyncio.timeout(self._timeout_s):
                head = await _read_head(reader)
                status, content_type, body, method = self._respond(head)
                writer.write(_http_response(status, content_type, body, send_body=method != "HEAD"))
                await writer.drain()
        except (TimeoutError, ConnectionError, asyncio.IncompleteReadError, ValueError):
            pass  # a client that hangs or goes away is not our problem
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError, asyncio.CancelledError):
                await writer.wait_closed()
            if task is not None:
                self._connections.discard(task)

    def _respond(self, head: bytes | None) -> tuple[HTTPStatus, str, bytes, str]:
        if head is None:
            return HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, _JSON, b'{"error":"headers too large"}', "GET"
        parts = head.splitlines()[0].decode("latin-1").split(" ")
        if len(parts) != 3:
            return HTTPStatus.BAD_REQUEST, _JSON, b'{"error":"bad request line"}', "GET"
        method, target = parts[0], parts[1]
        if method not in ("GET", "HEAD"):
            return HTTPStatus.METHOD_NOT_ALLOWED, _JSON, b'{"error":"only GET and HEAD"}', method
        path = urlsplit(target).path.rstrip("/") or "/"
        if path == "/metrics":
            return HTTPStatus.OK, CONTENT_TYPE_LATEST, self.metrics.exposition(), method
        if path == "/health":
            health = self.metrics.health()
            code = HTTPStatus.OK if health.ready else HTTPStatus.SERVICE_UNAVAILABLE
            return code, _JSON, orjson.dumps(health.to_dict()), method
        if path == "/status":
            body = orjson.dumps(self.metrics.status(), option=orjson.OPT_SERIALIZE_NUMPY, default=str)
            return HTTPStatus.OK, _JSON, body, method
        return HTTPStatus.NOT_FOUND, _JSON, b'{"error":"not found","routes":["/metrics","/health","/status"]}', method


async def _read_head(reader: asyncio.StreamReader) -> bytes | None:
    """The request line and headers (up to the blank line); None if they exceed the size limit."""
    head = b""
    while True:
        line = await reader.readline()
        if not line:
            raise asyncio.IncompleteReadError(head, None)
        head += line
        if len(head) > _MAX_HEADER_BYTES:
            return None
        if line in (b"\r\n", b"\n"):
            return head


def _http_response(status: HTTPStatus, content_type: str, body: bytes, send_body: bool = True) -> bytes:
    head = (
        f"HTTP/1.1 {status.value} {status.phrase}\r\n"
        f"Content-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Cache-Control: no-store\r\n"
        "Connection: close\r\n\r\n"
    )
    return head.encode("latin-1") + (body if send_body else b"")
