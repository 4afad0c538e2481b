"""ccxt.pro's own binance client against a loopback server replaying a real Binance recording.

The server (aiohttp, a ccxt dependency) serves the recorded REST depth snapshot and sends the recorded
websocket messages verbatim; the exchange's `urls` point at it. ccxt runs Binance's sync procedure
and builds the book, our adapter turns ccxt's book into snapshot/delta events, and the test checks
those events against a reference book built independently from the same recording: the top levels
at every update id the adapter reports, and every trade.

Pacing: after each post-snapshot message the server waits until the adapter has reported it (with a
timeout), so every update id is observed and nothing depends on timing. No network: 127.0.0.1 only.
"""

from __future__ import annotations

import asyncio
import gzip
import json
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import ccxt.pro
import pytest
from aiohttp import WSMsgType, web

from bot.config import CcxtConfig
from bot.domain import BookDelta, BookSnapshot, Command, Event, Instrument, Level, OpenOrder, Side, TradePrint
from bot.venues.ccxt_venue import CcxtVenue

ROOT = Path(__file__).resolve().parents[1]
RECORDING = ROOT / "data" / "binance" / "spot_btcusdt_20240808.gz"
MARKET_FIXTURE = ROOT / "data" / "ccxt" / "binance_btcusdt_market.json"
DEPTH = 25
MAX_MESSAGES_AFTER_SNAPSHOT = 2500  # depth diffs + trades replayed after the snapshot (keeps it fast)
STEP_TIMEOUT_S = 10.0


def load_recording() -> tuple[list[tuple[str, str, dict[str, Any]]], dict[str, Any]]:
    """[(kind, raw line JSON, data)] for depth and trade messages in file order, and the snapshot."""
    items: list[tuple[str, str, dict[str, Any]]] = []
    snapshot: dict[str, Any] | None = None
    with gzip.open(RECORDING, "rt") as fh:
        for line in fh:
            raw = line.split(" ", 1)[1].strip()
            msg = json.loads(raw)
            if "lastUpdateId" in msg:
                snapshot = msg
                items.append(("snapshot", raw, msg))
            elif msg["stream"].endswith("@trade"):
                items.append(("trade", raw, msg["data"]))
            elif "@depth" in msg["stream"]:
                items.append(("depth", raw, msg["data"]))
    assert snapshot is not None
    return items, snapshot


def reference_views(items: list[tuple[str, str, dict[str, Any]]], snapshot: dict[str, Any], inst: Instrument):
    """Binance's documented sync, independent of ccxt: update id -> (top bids, top asks, E ms)."""
    bids = {Decimal(p): Decimal(q) for p, q in snapshot["bids"]}
    asks = {Decimal(p): Decimal(q) for p, q in snapshot["asks"]}
    last = snapshot["lastUpdateId"]
    views: dict[int, tuple[list[Level], list[Level], int]] = {}
    for kind, _, data in items:
        if kind != "depth" or data["u"] <= last:
            continue
        assert data["U"] <= last + 1, "the recording has a gap"
        for side, book in (("b", bids), ("a", asks)):
            for p, q in data[side]:
                if Decimal(q) == 0:
                    book.pop(Decimal(p), None)
                else:
                    book[Decimal(p)] = Decimal(q)
        last = data["u"]
        views[last] = (_top(bids, inst, reverse=True), _top(asks, inst, reverse=False), data["E"])
    return views


def _top(book: dict[Decimal, Decimal], inst: Instrument, reverse: bool) -> list[Level]:
    prices = sorted(book, reverse=reverse)[:DEPTH]
    return [(inst.ticks(float(p)), round(float(book[p]) / inst.lot_size)) for p in prices]


class LoopbackBinance:
    """REST depth snapshot + websocket streams on 127.0.0.1, replaying the recording in order."""

    def __init__(self, items: list[tuple[str, str, dict[str, Any]]], reported: Callable[[str, dict[str, Any]], bool]):
        self.items = items
        self.reported = reported  # has the adapter reported this message yet?
        self.progress = asyncio.Event()  # set by the adapter's sink on every event
        self.sockets: dict[str, web.WebSocketResponse] = {}
        self.snapshot_ready = asyncio.Event()
        self.finished = asyncio.Event()
        self.snapshot_raw = next(raw for kind, raw, _ in items if kind == "snapshot")
        self.subscribed = asyncio.Event()

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/api/v3/depth", self.depth)
        app.router.add_get("/stream/ws/{n}", self.websocket)
        return app

    async def depth(self, request: web.Request) -> web.Response:
        assert request.query["symbol"] == "BTCUSDT"
        await self.snapshot_ready.wait()  # served when the recording says it was taken
        return web.Response(text=self.snapshot_raw, content_type="application/json")

    async def websocket(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        async for msg in ws:
            if msg.type is not WSMsgType.TEXT:
                break
            sub = json.loads(msg.data)
            await ws.send_str(json.dumps({"result": None, "id": sub["id"]}))
            for stream in sub["params"]:
                self.sockets["trade" if stream.endswith("@trade") else "depth"] = ws
            if {"trade", "depth"} <= self.sockets.keys():
                self.subscribed.set()
        return ws

    async def play(self) -> None:
        await asyncio.wait_for(self.subscribed.wait(), STEP_TIMEOUT_S)
        sent_after_snapshot = 0
        for kind, raw, data in self.items:
            if kind == "snapshot":
                self.snapshot_ready.set()
                await self.wait_reported(kind, data)
                continue
            await self.sockets[kind].send_str(raw)  # verbatim, as the websocket delivered it
            if self.snapshot_ready.is_set():
                await self.wait_reported(kind, data)
                sent_after_snapshot += 1
                if sent_after_snapshot >= MAX_MESSAGES_AFTER_SNAPSHOT:
                    break
        self.finished.set()

    async def wait_reported(self, kind: str, data: dict[str, Any]) -> None:
        while not self.reported(kind, data):
            self.progress.clear()
            await asyncio.wait_for(self.progress.wait(), STEP_TIMEOUT_S)


class RecordingPaper:
    """Stands in for the simulated execution: records the market events it is fed, fills nothing."""

    def __init__(self) -> None:
        self.seen: list[Event] = []
        self.position_lots = 0

    def submit(self, command: Command, now_ns: int) -> None:
        pass

    def on_market(self, event: Event, now_ns: int) -> list[Event]:
        self.seen.append(event)
        return []

    def advance(self, now_ns: int) -> list[Event]:
        return []

    def open_orders(self) -> list[OpenOrder]:
        return []


def offline_binance_class(port: int) -> type:
    fixture = json.loads(MARKET_FIXTURE.read_text())["exchange_info_symbol"]

    class OfflineBinance(ccxt.pro.binance):  # type: ignore[misc, name-defined]
        """ccxt's binance with markets from the recorded exchangeInfo entry and loopback urls."""

        def __init__(self, config: dict[str, Any]) -> None:
            super().__init__(config)
            self.urls["api"]["public"] = f"http://127.0.0.1:{port}/api/v3"
            # ccxt tells spot from futures sockets by "/stream" in the url (wss://stream.binance.com)
            self.urls["api"]["ws"]["spot"] = f"ws://127.0.0.1:{port}/stream/ws"

        async def load_markets(self, reload: bool = False, params: Any = None) -> Any:
            if not self.markets:
                self.options["crossMarginPairsData"] = []
                self.options["isolatedMarginPairsData"] = []
                self.set_markets([self.parse_market(fixture)])
            return self.markets

    return OfflineBinance


async def test_adapter_book_and_trades_match_the_recording() -> None:
    items, snapshot = load_recording()
    events: list[Event] = []
    book_seqs: set[int] = set()
    trade_ids: set[str] = set()
    snapshot_seen = asyncio.Event()

    def reported(kind: str, data: dict[str, Any]) -> bool:
        if kind == "snapshot":
            return snapshot_seen.is_set()
        if kind == "trade":
            return str(data["t"]) in trade_ids
        return data["u"] <= snapshot["lastUpdateId"] or any(seq >= data["u"] for seq in book_seqs)

    server = LoopbackBinance(items, reported)
    runner = web.AppRunner(server.app())
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    paper = RecordingPaper()
    config = CcxtConfig(exchange="binance", mode="paper", perp_symbol="", book_depth_levels=DEPTH)
    venue = CcxtVenue(
        config, exchange_factory=offline_binance_class(port), paper_factory=lambda inst, latency_ns: paper
    )

    def sink(event: Event) -> None:
        events.append(event)
        if isinstance(event, BookSnapshot):
            book_seqs.add(event.seq)
            snapshot_seen.set()
        elif isinstance(event, BookDelta):
            book_seqs.add(event.last_seq)
        elif isinstance(event, TradePrint):
            trade_ids.add(event.trade_id)
        server.progress.set()

    try:
        await venue.connect()
        inst = venue.instruments["BTC/USDT"]
        async with asyncio.TaskGroup() as tg:
            stream = tg.create_task(venue.stream(sink))
            await server.play()
            stream.cancel()
    finally:
        await venue.close()
        await runner.cleanup()

    # --- the book: contiguous events whose top levels match the reference at each update id
    views = reference_views(items, snapshot, inst)
    book_events = [e for e in events if isinstance(e, BookSnapshot | BookDelta)]
    assert isinstance(book_events[0], BookSnapshot)
    assert sum(isinstance(e, BookSnapshot) for e in book_events) == 1  # no resync on a clean recording
    bids: dict[int, int] = {}
    asks: dict[int, int] = {}
    last_seq = -1
    for event in book_events:
        if isinstance(event, BookSnapshot):
            bids, asks, seq = dict(event.bids), dict(event.asks), event.seq
        else:
            assert event.first_seq == last_seq + 1
            for book, changes in ((bids, event.bids), (asks, event.asks)):
                for px, size in changes:
                    if size == 0:
                        del book[px]
                    else:
                        book[px] = size
            seq = event.last_seq
        ref_bids, ref_asks, ref_e_ms = views[seq]  # KeyError: an update id the recording never had
        assert sorted(bids.items(), reverse=True) == ref_bids, seq
        assert sorted(asks.items()) == ref_asks, seq
        assert event.ts_venue_ns == ref_e_ms * 1_000_000
        last_seq = seq
    replayed_ids = {seq for seq in views if seq <= last_seq}
    assert len(book_events) > 500
    assert {e.last_seq for e in book_events if isinstance(e, BookDelta)} | {book_events[0].seq} == {
        seq for seq in replayed_ids if seq >= book_events[0].seq
    }

    # --- trades: every replayed trade once, with the recorded price, size, aggressor and time
    prints = [e for e in events if isinstance(e, TradePrint)]
    recorded = {str(d["t"]): d for kind, _, d in items if kind == "trade"}
    assert len(prints) > 500
    assert len({p.trade_id for p in prints}) == len(prints)
    for p in prints:
        d = recorded[p.trade_id]
        assert p.price_ticks == inst.ticks(float(d["p"]))
        assert p.size_lots == round(float(d["q"]) / inst.lot_size)
        assert p.aggressor is (Side.SELL if d["m"] else Side.BUY)
        assert p.ts_venue_ns == d["T"] * 1_000_000

    # --- paper mode: the simulated execution was fed the very same market events
    assert paper.seen == [e for e in events if isinstance(e, BookSnapshot | BookDelta | TradePrint)]


@pytest.fixture(autouse=True)
def _recording_present() -> None:
    assert RECORDING.exists(), f"missing {RECORDING}"
