"""The mock exchange served over websockets (`mmbot exchange serve`).

One `MockExchange` runs at wall-clock pace (times `speed`); every connected, subscribed client gets
the public feed and the account's private messages (one shared account, like one API key). Clients
send orders, cancels, snapshot requests, reconciliation queries and run-time fault injections; see
docs/mock-protocol.md.

A `disconnect` or `restart` fault is a real outage here: the server closes every socket and answers
new handshakes with HTTP 503 until the venue is back. Private messages produced while no client is
subscribed are kept (bounded) and replayed to the next subscriber, as a venue's user stream would
resume; public messages of that time are gone, so a client resyncs from a fresh snapshot. Of the
position snapshots (one per symbol every `position_interval_ms`) only the newest per symbol is kept,
in its place after the fills it follows: a position is a state, not a change, and a day idle must
not turn into thousands of stale snapshots replayed at once.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import time
import uuid
from collections import deque
from collections.abc import Callable
from http import HTTPStatus
from typing import Any

from websockets.asyncio.server import Server, ServerConnection, broadcast, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from bot.config import MockExchangeConfig, load_settings
from bot.domain import (
    BookDelta,
    BookSnapshot,
    Event,
    FeedStatus,
    MarkPrice,
    PlaceOrder,
    PositionSnapshot,
    RequestSnapshot,
    TradePrint,
)
from bot.logs import configure_logging, get_logger
from bot.venues.mock.exchange import MockExchange
from bot.venues.mock.pacing import Pacer
from bot.venues.mock.protocol import (
    ProtocolError,
    check_op,
    decode_command,
    decode_fills_request,
    dumps,
    encode_event,
    encode_instrument,
    fills_reply,
    fmt_price,
    fmt_size,
    loads,
)

log = get_logger("mmbot.mock.server")

_PUBLIC = (BookSnapshot, BookDelta, TradePrint, MarkPrice, FeedStatus)
_BACKLOG = 10_000  # private messages kept while no client is subscribed


class MockExchangeServer:
    """Serves one MockExchange. `await start()`, read `port` (0 picks a free one), `await stop()`."""

    def __init__(
        self,
        config: MockExchangeConfig,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        seed: int | None = None,
        speed: float = 1.0,
        monotonic_ns: Callable[[], int] = time.monotonic_ns,
    ) -> None:
        self.host = host
        self.port = port
        self.speed = speed
        start_ns = time.time_ns()
        self.exchange = MockExchange(config, seed=seed, start_ns=start_ns)
        self.session = uuid.uuid4().hex[:16]
        """This server's fill-id namespace: its fills are numbered from F1 again at every start."""
        self._pacer = Pacer(self.exchange, start_ns=start_ns, speed=speed, monotonic_ns=monotonic_ns)
        self._subscribers: set[ServerConnection] = set()
        self._backlog: deque[str] = deque(maxlen=_BACKLOG)
        self._backlog_position: dict[str, str] = {}  # symbol -> its newest position message in the backlog
        self._outage = False
        self._server: Server | None = None
        self._pump: asyncio.Task[None] | None = None

    def now_ns(self) -> int:
        return self._pacer.now_ns()

    @property
    def url(self) -> str:
        return f"ws://{self.host}:{self.port}"

    async def start(self) -> None:
        self._server = await serve(
            self._handle, self.host, self.port, process_request=self._gate, compression=None, ping_interval=None
        )
        self.port = next(iter(self._server.sockets)).getsockname()[1]
        self._pump = asyncio.create_task(self._run_market(), name="mock-exchange-pump")
        log.info("exchange.serving", host=self.host, port=self.port, seed=self.exchange.seed, speed=self.speed)

    async def stop(self) -> None:
        if self._pump is not None:
            self._pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pump
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        log.info("exchange.stopped", port=self.port)

    async def __aenter__(self) -> MockExchangeServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # ---- the market pump ---------------------------------------------------------------------

    async def _run_market(self) -> None:
        while True:
            for event in self._pacer.due():
                await self._publish(event)
            await self._pacer.sleep()

    async def _publish(self, event: Event) -> None:
        message = dumps(encode_event(event, self.exchange.instruments))
        if isinstance(event, FeedStatus):
            await self._on_feed_status(event, message)
            return
        if self._subscribers:
            broadcast(self._subscribers, message)
        elif isinstance(event, PositionSnapshot):
            self._keep_newest_position(event.symbol, message)
        elif not isinstance(event, _PUBLIC):
            self._backlog.append(message)

    def _keep_newest_position(self, symbol: str, message: str) -> None:
        """Replace the symbol's older position snapshot in the backlog with this one (appended: it
        follows every fill queued so far, as the exchange sent it)."""
        older = self._backlog_position.get(symbol)
        if older is not None:
            with contextlib.suppress(ValueError):  # already pushed out of the bounded backlog
                self._backlog.remove(older)
        self._backlog.append(message)
        self._backlog_position[symbol] = message

    async def _on_feed_status(self, event: FeedStatus, message: str) -> None:
        if event.connected:
            self._outage = False
            log.info("exchange.recovered", reason=event.reason)
            return
        self._outage = True
        log.warning("exchange.outage", reason=event.reason)
        subscribers, self._subscribers = list(self._subscribers), set()
        broadcast(subscribers, message)
        for ws in subscribers:
            await ws.close(code=1012, reason=event.reason)  # 1012: service restart

    def _gate(self, connection: ServerConnection, request: Request) -> Response | None:
        """Refuse handshakes during an outage, as a venue that is down would."""
        if not self._outage:
            return None
        return Response(HTTPStatus.SERVICE_UNAVAILABLE.value, "Service Unavailable", Headers(), b"venue down\n")

    # ---- clients -----------------------------------------------------------------------------

    async def _handle(self, ws: ServerConnection) -> None:
        log.info("client.connected", remote=str(ws.remote_address))
        try:
            async for raw in ws:
                await self._on_message(ws, raw)
        except ConnectionClosed:
            pass
        finally:
            self._subscribers.discard(ws)
            log.info("client.disconnected", remote=str(ws.remote_address))

    async def _on_message(self, ws: ServerConnection, raw: str | bytes) -> None:
        """Answer one message. Every refusal goes back on the sender's own connection: a place the
        edge refuses is an `order_rejected` for its client id (so the sender's order ends), anything
        else an `error` naming what was wrong; the account stream other clients read never sees it."""
        req_id = None
        message: dict[str, Any] = {}
        try:
            message = loads(raw)
            req_id = message.get("req_id")
            reply = self._answer(message)
        except ProtocolError as exc:
            log.warning("client.message_refused", reason=exc.reason, detail=str(exc)[:200])
            reply = self._refusal(message, exc.reason, str(exc))
        except (KeyError, ValueError, TypeError, OverflowError) as exc:
            reply = self._refusal(message, "bad_request", f"{type(exc).__name__}: {exc}")
        if reply is not None:
            if req_id is not None:
                reply["req_id"] = req_id
            await ws.send(dumps(reply))
            if reply["type"] == "subscribed":
                await self._subscribe(ws)
        self._pacer.wake()  # a command's consequences may fall due before the pump's next wake-up

    def _refusal(self, message: dict[str, Any], reason: str, text: str) -> dict[str, Any]:
        symbol, client_id = message.get("symbol"), message.get("client_id")
        if message.get("op") == "place" and symbol in self.exchange.instruments and isinstance(client_id, str):
            return {"type": "order_rejected", "symbol": symbol, "client_id": client_id, "reason": reason,
                    "message": text[:200], "ts_ns": self.now_ns()}  # fmt: skip
        return {"type": "error", "reason": reason, "message": text[:200]}

    def _answer(self, message: dict[str, Any]) -> dict[str, Any] | None:
        op = check_op(message)
        ex = self.exchange
        now = self.now_ns()
        if op == "subscribe":
            instruments = [encode_instrument(i) for i in ex.instruments.values()]
            return {"type": "subscribed", "instruments": instruments, "session": self.session, "ts_ns": now}
        if op == "ping":
            return {"type": "pong", "ts_ns": now}
        if op == "open_orders":
            orders = [
                {"symbol": o.symbol, "client_id": o.client_id, "side": o.side.value,
                 "price": fmt_price(ex.instruments[o.symbol], o.price_ticks),
                 "size": fmt_size(ex.instruments[o.symbol], o.size_lots), "venue_order_id": o.venue_order_id}
                for o in ex.open_orders()
            ]  # fmt: skip
            return {"type": "open_orders", "orders": orders}
        if op == "positions":
            positions = {s: fmt_size(ex.instruments[s], lots) for s, lots in ex.positions().items()}
            return {"type": "positions", "positions": positions}
        if op == "fills":  # our fill history, one page (see docs/mock-protocol.md)
            since_ns, offset, limit = decode_fills_request(message)
            fills = ex.fills_since(since_ns)
            return fills_reply(fills[offset : offset + limit], ex.instruments, more=len(fills) > offset + limit)
        if op == "fault":
            return self._fault(message)
        command = decode_command(message, ex.instruments)
        if isinstance(command, PlaceOrder):
            log.debug("order.received", symbol=command.symbol, client_id=command.client_id)
        ex.submit(command, now)
        return None

    def _fault(self, message: dict[str, Any]) -> dict[str, Any]:
        faults = self.exchange.faults
        if isinstance(message.get("set"), dict):
            faults.set(**message["set"])
        if message.get("name") is not None:
            duration = message.get("duration_ms")
            faults.trigger(str(message["name"]), int(duration) if duration is not None else None)
        log.warning("exchange.fault_injected", name=message.get("name"), params=message.get("set"))
        return {"type": "fault_ack", "name": message.get("name"), "ok": True}

    async def _subscribe(self, ws: ServerConnection) -> None:
        self._subscribers.add(ws)
        now = self.now_ns()
        for symbol in self.exchange.instruments:
            self.exchange.submit(RequestSnapshot(symbol, "subscribe"), now)
        backlog, self._backlog = list(self._backlog), deque(maxlen=_BACKLOG)
        self._backlog_position = {}
        for message in backlog:
            await ws.send(message)


# ---- CLI ---------------------------------------------------------------------------------------


def cmd_exchange_serve(args: argparse.Namespace) -> int:
    """`mmbot exchange serve`: serve until SIGINT/SIGTERM, exit 0."""
    settings = load_settings(args.config)  # ConfigError -> exit 2 in the CLI
    configure_logging(args.log_format, getattr(args, "log_level", "INFO"))
    asyncio.run(_serve_until_signal(settings.mock, args.host, args.port))
    return 0


async def _serve_until_signal(config: MockExchangeConfig, host: str, port: int) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with MockExchangeServer(config, host, port):
        await stop.wait()
