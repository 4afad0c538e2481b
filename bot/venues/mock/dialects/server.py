"""The dialect server: one `MockExchange` behind a venue's own REST + websocket protocol, on loopback.

The matching core (bot/venues/mock/exchange.py) is unchanged: the server paces it at wall-clock
time (`Pacer`), hands every event it delivers to the dialect (which turns them into the venue's push
messages and its REST state), and submits the commands the dialect decodes from REST calls. A
dialect is a protocol layer only: markets, flow, latency and faults are the core's.

HTTP and websockets are aiohttp's (a ccxt dependency, so the same library ccxt's client speaks).
The server binds loopback addresses only: it accepts orders from anyone who reaches it.

ccxt builds its URLs as `scheme://host/path`; `sandbox_url_base` rewrites them to
`http://127.0.0.1:PORT/host/path` (bot/venues/ccxt_safety.py `rewrite_urls`), so the first path
segment is the venue host ccxt meant (e.g. `api-testnet.bybit.com`) and hosts whose paths collide
(binance `stream.binance.com/ws` and `fstream.binance.com/ws`) stay apart. Dialect routes match any
first segment (`/{host}/v5/...`).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import itertools
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from aiohttp import WSMsgType, web

from bot.config import ConfigError, MockExchangeConfig
from bot.domain import Command, Event
from bot.logs import get_logger
from bot.venues.mock.exchange import MockExchange
from bot.venues.mock.pacing import Pacer

log = get_logger("mmbot.mock.dialect")


def is_loopback_host(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and "localhost"."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class WsConn:
    """One websocket client: its subscribed topics and its own send lock (pushes come from the pump
    while the connection's reader answers requests)."""

    _ids = itertools.count(1)

    def __init__(
        self, ws: web.WebSocketResponse, path: str, opened_ns: int, query: dict[str, str] | None = None
    ) -> None:
        self.ws = ws
        self.path = path  # the request path after the host segment, e.g. "/v5/private"
        self.query = query or {}  # the URL's query (binance USD-M user data: ?listenKey=...)
        self.conn_id = f"mock-{next(self._ids)}"
        self.opened_ns = opened_ns
        self.topics: set[str] = set()
        self.authenticated = False
        self._lock = asyncio.Lock()

    async def send(self, message: dict[str, Any]) -> None:
        await self.send_text(json.dumps(message, separators=(",", ":")))

    async def send_text(self, text: str) -> None:
        """A raw text frame (OKX answers the text "ping" with the text "pong")."""
        if self.ws.closed:
            return
        async with self._lock:
            with contextlib.suppress(ConnectionError, RuntimeError):  # the client left mid-send
                await self.ws.send_str(text)


class Dialect(Protocol):
    """A venue's protocol over the shared core. The server calls these; all run on its event loop."""

    name: str

    def routes(self, server: DialectServer) -> list[web.RouteDef]: ...
    async def on_ws_message(self, conn: WsConn, message: Any) -> None: ...
    async def on_events(self, events: list[Event]) -> None: ...


class DialectServer:
    """`async with DialectServer(dialect, config) as server:` serves on `server.port` (0 = a free one)."""

    def __init__(
        self,
        make_dialect: Callable[[DialectServer], Dialect],
        config: MockExchangeConfig,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        speed: float = 1.0,
        ws_max_age_s: float | None = None,
        clock_ns: Callable[[], int] = time.time_ns,
        monotonic_ns: Callable[[], int] = time.monotonic_ns,
    ) -> None:
        if not is_loopback_host(host):
            raise ConfigError(f"config error: --host: a dialect server binds loopback only, not {host!r}")
        self.host = host
        self.port = port
        self.ws_max_age_s = ws_max_age_s
        start_ns = clock_ns()
        self.exchange = MockExchange(config, start_ns=start_ns)
        self.pacer = Pacer(self.exchange, start_ns=start_ns, speed=speed, monotonic_ns=monotonic_ns)
        self.connections: set[WsConn] = set()
        self.dialect = make_dialect(self)
        self._runner: web.AppRunner | None = None
        self._tasks: list[asyncio.Task[None]] = []

    # ---- what dialects use ----------------------------------------------------------------------

    def now_ns(self) -> int:
        return self.pacer.now_ns()

    def now_ms(self) -> int:
        return self.pacer.now_ns() // 1_000_000

    def submit(self, command: Command) -> None:
        self.exchange.submit(command, self.pacer.now_ns())
        self.pacer.wake()

    def websocket_route(self, path: str) -> web.RouteDef:
        """A GET route at `path` that upgrades to a websocket whose messages go to the dialect."""
        return web.get(path, self._ws_handler)

    # ---- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        app = web.Application()
        app.add_routes(self.dialect.routes(self))
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        self.port = int(self._runner.addresses[0][1])  # the port picked when asked for 0
        self._tasks = [asyncio.create_task(self._pump(), name="dialect-pump")]
        if self.ws_max_age_s:
            self._tasks.append(asyncio.create_task(self._reaper(self.ws_max_age_s), name="dialect-ws-reaper"))
        log.info("exchange.serving", dialect=self.dialect.name, host=self.host, port=self.port)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        for conn in list(self.connections):
            await conn.ws.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> DialectServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _pump(self) -> None:
        while True:
            events = self.pacer.due()
            if events:
                await self.dialect.on_events(events)
            await self.pacer.sleep()

    async def _reaper(self, max_age_s: float) -> None:
        """Close every websocket older than `max_age_s`, as venues do on a schedule."""
        max_age_ns = int(max_age_s * 1e9)
        while True:
            await asyncio.sleep(min(max_age_s / 4, 1.0))
            now = time.monotonic_ns()
            for conn in list(self.connections):
                if now - conn.opened_ns >= max_age_ns:
                    log.info("exchange.ws_closed_by_venue", dialect=self.dialect.name, path=conn.path)
                    await conn.ws.close()

    async def _ws_handler(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        path = "/" + request.path.lstrip("/").partition("/")[2]  # drop the host segment
        conn = WsConn(ws, path, time.monotonic_ns(), dict(request.query))
        self.connections.add(conn)
        try:
            async for msg in ws:
                if msg.type is not WSMsgType.TEXT:
                    continue
                try:
                    message = json.loads(msg.data)
                except ValueError:
                    message = msg.data  # not JSON: the raw text (e.g. OKX's "ping")
                await self.dialect.on_ws_message(conn, message)
        finally:
            self.connections.discard(conn)
        return ws


async def serve_until(server: DialectServer, stop: Awaitable[object]) -> None:
    async with server:
        await stop
