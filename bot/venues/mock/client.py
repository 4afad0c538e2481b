"""`WsMockVenue`: the `Venue` adapter for the mock exchange over websockets.

- Parses at the edge: a message that does not decode (garbage, NaN, negative or zero prices, unknown
  types, unknown symbols) is dropped, counted in `rejected_messages` and logged as
  `feed.message_dropped`; nothing past this adapter sees a raw payload.
- Keeps each book's sequence: duplicates (`last_seq` already seen) are dropped; after a gap it asks
  for a fresh snapshot and suppresses deltas until the snapshot arrives, so the core only ever sees a
  snapshot followed by contiguous deltas.
- Reconnects inside `stream` with capped exponential backoff and jitter, emitting
  `FeedStatus(connected=False)` when the socket drops and `FeedStatus(connected=True)` once it is
  subscribed again; every reconnect resyncs each book from a fresh snapshot.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from bot.domain import (
    BookDelta,
    BookSnapshot,
    CancelAll,
    CancelOrder,
    CancelRejected,
    Command,
    Event,
    FeedStatus,
    Instrument,
    OpenOrder,
    OrderFilled,
    OrderRejected,
    PlaceOrder,
    RequestSnapshot,
    Side,
)
from bot.logs import get_logger
from bot.venues.base import EventSink, backoff_delays_s
from bot.venues.mock.protocol import (
    EVENT_TYPES,
    ProtocolError,
    decode_event,
    decode_fills_reply,
    decode_instrument,
    dumps,
    encode_command,
    loads,
)

log = get_logger("mmbot.mock.client")

_REPLY_TYPES = frozenset({"open_orders", "positions", "fills", "fault_ack", "pong", "error"})


class VenueUnavailable(ConnectionError):
    """The mock exchange cannot be reached (the runner retries or gives up)."""


class VenueSessionChanged(ConnectionError):
    """A reconnect found another exchange session (the server was restarted and lost its orders,
    positions and fill numbering): nothing the bot holds is true any more, so the stream ends and
    the runner stops the bot; the next start reconciles with the new session."""


class WsMockVenue:
    def __init__(
        self,
        url: str,
        *,
        backoff_base_s: float = 0.1,
        backoff_cap_s: float = 5.0,
        request_timeout_s: float = 5.0,
        rng: random.Random | None = None,
        clock_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        self.name = "mock-ws"
        self.url = url
        self.rejected_messages = 0
        """Messages dropped at the edge because they did not parse."""
        self.duplicate_messages = 0
        self.gaps = 0
        self.reconnects = 0
        self._backoff = (backoff_base_s, backoff_cap_s)
        self._timeout_s = request_timeout_s
        self._rng = rng or random.Random()
        self._clock_ns = clock_ns
        self._ws: ClientConnection | None = None
        self._instruments: dict[str, Instrument] = {}
        self.fill_session = ""
        """`mock-ws:<the server's session>`, set by the first connect (see `bot.venues.base.fill_session`)."""
        self._pending: deque[str | bytes] = deque()  # read while answering a request, not yet streamed
        self._outbox: deque[dict[str, Any]] = deque()
        self._replies: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._req_ids = itertools.count(1)
        self._last_seq: dict[str, int] = {}
        self._awaiting_snapshot: set[str] = set()
        self._sink: EventSink | None = None
        self._streaming = False

    @property
    def instruments(self) -> Mapping[str, Instrument]:
        return self._instruments

    # ---- connection --------------------------------------------------------------------------

    async def connect(self) -> None:
        """Open the socket and subscribe; raises VenueUnavailable if the exchange cannot be reached.

        Idempotent while connected: a second socket would be a second subscriber nobody reads."""
        if self._ws is not None:
            return
        try:
            ws = await connect(self.url, compression=None, ping_interval=None, open_timeout=self._timeout_s)
        except (OSError, InvalidHandshake, TimeoutError) as exc:
            raise VenueUnavailable(f"{self.url}: {exc}") from exc
        try:
            await ws.send(dumps({"op": "subscribe"}))
            async with asyncio.timeout(self._timeout_s):
                while True:
                    raw = await ws.recv()
                    message = loads(raw)
                    if message.get("type") == "subscribed":
                        break
                    self._pending.append(raw)
            instruments = [decode_instrument(i) for i in message["instruments"]]
        except (ConnectionClosed, TimeoutError, ProtocolError, KeyError, TypeError) as exc:
            await ws.close()
            raise VenueUnavailable(f"{self.url}: subscribe failed: {exc}") from exc
        # a server that names no session: each connection is its own namespace (never a collision)
        session = f"mock-ws:{message.get('session') or uuid.uuid4().hex[:16]}"
        if self.fill_session and session != self.fill_session:
            await ws.close()
            log.error("venue.session_changed", url=self.url, was=self.fill_session, now=session)
            raise VenueSessionChanged(
                f"{self.url}: the exchange restarted (session {self.fill_session} is now {session}): "
                "its orders, positions and fill ids are new; restart the bot to reconcile"
            )
        self.fill_session = session
        self._instruments = {i.symbol: i for i in instruments}
        self._awaiting_snapshot = set(self._instruments)  # the server sends a snapshot per symbol
        self._ws = ws
        log.info("venue.connected", url=self.url, symbols=sorted(self._instruments))

    async def close(self) -> None:
        ws, self._ws = self._ws, None
        if ws is not None:
            await ws.close()

    async def stream(self, sink: EventSink) -> None:
        """Deliver events until cancelled; reconnect and resync inside."""
        self._sink = sink
        self._streaming = True
        try:
            while True:
                if self._ws is None:
                    await self._reconnect(sink)
                ws = self._ws
                assert ws is not None
                try:
                    while self._pending:
                        self._on_raw(self._pending.popleft(), sink)
                    await self._flush_outbox(ws)
                    async for raw in ws:
                        self._on_raw(raw, sink)
                        await self._flush_outbox(ws)
                except ConnectionClosed:
                    pass
                self._lost(sink, "connection_lost")
        finally:
            self._streaming = False

    def _lost(self, sink: EventSink, reason: str) -> None:
        self._ws = None
        now = self._clock_ns()
        log.warning("feed.disconnected", url=self.url, reason=reason)
        sink(FeedStatus("*", False, reason, now, now))
        for future in self._replies.values():
            if not future.done():
                future.set_exception(VenueUnavailable("connection lost"))
        self._replies.clear()
        self._outbox.clear()

    async def _reconnect(self, sink: EventSink) -> None:
        base_s, cap_s = self._backoff
        for delay_s in backoff_delays_s(base_s, cap_s, self._rng):
            await asyncio.sleep(delay_s)
            try:
                await self.connect()
            except VenueUnavailable as exc:
                log.info("feed.reconnect_failed", url=self.url, error=str(exc), next_delay_s=round(delay_s, 3))
                continue
            self.reconnects += 1
            now = self._clock_ns()
            sink(FeedStatus("*", True, "reconnected", now, now))
            return

    # ---- inbound messages --------------------------------------------------------------------

    def _on_raw(self, raw: str | bytes, sink: EventSink) -> None:
        try:
            message = loads(raw)
            kind = message.get("type")
            if kind in _REPLY_TYPES:
                self._on_reply(message)
                return
            if kind not in EVENT_TYPES:
                raise ProtocolError("unknown_type", repr(kind))
            event = decode_event(message, self._instruments, self._clock_ns())
        except ProtocolError as exc:
            self.rejected_messages += 1
            log.warning("feed.message_dropped", reason=exc.reason, detail=str(exc)[:200])
            return
        self._on_event(event, sink)

    def _on_reply(self, message: dict[str, Any]) -> None:
        future = self._replies.pop(str(message.get("req_id")), None)
        if future is not None and not future.done():
            future.set_result(message)
        elif message.get("type") == "error":
            log.warning("venue.error", reason=message.get("reason"), message=message.get("message"))

    def _on_event(self, event: Event, sink: EventSink) -> None:
        if isinstance(event, BookSnapshot):
            self._last_seq[event.symbol] = event.seq
            self._awaiting_snapshot.discard(event.symbol)
        elif isinstance(event, BookDelta):
            symbol = event.symbol
            if symbol in self._awaiting_snapshot:
                return  # the snapshot on its way supersedes it
            last = self._last_seq.get(symbol)
            if last is not None and event.last_seq <= last:
                self.duplicate_messages += 1
                return
            if last is None or event.first_seq != last + 1:
                self.gaps += 1
                log.warning("feed.gap", symbol=symbol, expected=None if last is None else last + 1, got=event.first_seq)
                self._awaiting_snapshot.add(symbol)
                self._outbox.append({"op": "snapshot", "symbol": symbol, "reason": "gap"})
                return
            self._last_seq[symbol] = event.last_seq
        sink(event)

    # ---- outbound ----------------------------------------------------------------------------

    async def _flush_outbox(self, ws: ClientConnection) -> None:
        """Send what message handling asked for (snapshot requests after a gap)."""
        while self._outbox:
            await ws.send(dumps(self._outbox.popleft()))

    async def execute(self, command: Command) -> None:
        """Send one command; if the venue cannot be reached the refusal comes back as an event."""
        ws = self._ws
        if ws is not None:
            try:
                await ws.send(dumps(encode_command(command, self._instruments)))
                return
            except ConnectionClosed:
                pass
        self._refuse_locally(command)

    def _refuse_locally(self, command: Command) -> None:
        if self._sink is None:
            raise VenueUnavailable(f"{self.url}: not connected")
        now = self._clock_ns()
        if isinstance(command, PlaceOrder):
            self._sink(OrderRejected(command.symbol, command.client_id, "venue_disconnected", now, now))
        elif isinstance(command, CancelOrder):
            self._sink(CancelRejected(command.symbol, command.client_id, "venue_disconnected", now, now))
        elif isinstance(command, CancelAll | RequestSnapshot):
            pass  # nothing to answer; the core re-sends once the feed is back

    async def _request(self, message: dict[str, Any]) -> dict[str, Any]:
        ws = self._ws
        if ws is None:
            raise VenueUnavailable(f"{self.url}: not connected")
        req_id = str(next(self._req_ids))
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._replies[req_id] = future
        await ws.send(dumps({**message, "req_id": req_id}))
        async with asyncio.timeout(self._timeout_s):
            if not self._streaming:  # nobody else reads the socket: read until our answer comes
                while not future.done():
                    raw = await ws.recv()
                    reply = _reply_of(raw)
                    if reply is not None and reply.get("type") in _REPLY_TYPES:
                        self._on_reply(reply)
                    else:
                        self._pending.append(raw)
            reply = await future
        if reply.get("type") == "error":
            raise VenueUnavailable(f"{self.url}: {reply.get('reason')}: {reply.get('message')}")
        return reply

    async def open_orders(self) -> list[OpenOrder]:
        reply = await self._request({"op": "open_orders"})
        orders = []
        for o in reply["orders"]:
            inst = self._instruments[o["symbol"]]
            orders.append(
                OpenOrder(
                    o["symbol"],
                    o["client_id"],
                    Side(o["side"]),
                    inst.ticks(float(o["price"])),
                    inst.lots(float(o["size"])),
                    o.get("venue_order_id", ""),
                )
            )
        return orders

    async def positions(self) -> dict[str, int]:
        reply = await self._request({"op": "positions"})
        return {s: self._instruments[s].lots(float(size)) for s, size in reply["positions"].items()}

    async def fills_since(self, since_ns: int) -> list[OrderFilled]:
        """Our fills with `ts_venue_ns >= since_ns`, oldest first: the `fills` request, page by page
        (`offset` counts the fills already received; the server appends new fills at the end)."""
        fills: list[OrderFilled] = []
        while True:
            reply = await self._request({"op": "fills", "since_ns": since_ns, "offset": len(fills)})
            try:
                page, more = decode_fills_reply(reply, self._instruments, self._clock_ns())
            except ProtocolError as exc:
                raise VenueUnavailable(f"{self.url}: bad fills reply: {exc}") from exc
            fills.extend(page)
            if not more or not page:
                return fills

    async def inject_fault(self, name: str | None = None, duration_ms: int | None = None, **params: float) -> None:
        """Trigger a fault episode and/or change fault parameters on the exchange at run time."""
        message: dict[str, Any] = {"op": "fault", "name": name, "duration_ms": duration_ms}
        if params:
            message["set"] = params
        await self._request(message)


def _reply_of(raw: str | bytes) -> dict[str, Any] | None:
    try:
        return loads(raw)
    except ProtocolError:
        return None
