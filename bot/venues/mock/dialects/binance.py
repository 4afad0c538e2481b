"""The Binance dialect, PUBLIC DATA ONLY: what ccxt 4.5's `binance` / `ccxt.pro.binance` read for
live paper trading (`ccxt.mode = "paper"`, config/binance-paper.toml). Orders (binance-demo.toml) are
not modelled yet: no order, account or user-data-stream endpoint answers.

Sources, per behaviour:

- markets: `GET /api/v3/exchangeInfo` (spot) and `GET /fapi/v1/exchangeInfo` (USD-M), the fields ccxt
  `binance.parse_market` reads (filters PRICE_FILTER, LOT_SIZE, NOTIONAL / MIN_NOTIONAL);
- books: the diff-depth stream `<symbol>@depth@100ms` plus a REST snapshot (`/api/v3/depth`,
  `/fapi/v1/depth`) with `lastUpdateId`, synced the documented way ("How to manage a local order
  book correctly", Binance spot and USD-M websocket docs): spot deltas carry `U`/`u` with
  U = previous u + 1, USD-M deltas also `pu` = the previous `u` (ccxt pro `handle_order_book`,
  `fetch_order_book_snapshot` check exactly that, and raise on a gap);
- trades: `<symbol>@trade` (`t p q T m`, m = the buyer is the maker, so the taker sold);
- websockets: `{"method": "SUBSCRIBE", "params": [...], "id": n}` answered `{"result": null, "id": n}`;
  spot on `.../ws/<n>`, USD-M on `.../public/ws/<n>` (ccxt pro `get_ws_url` adds the category).

One update id sequence per symbol is shared by the REST snapshot and the stream: both are views of
the dialect's published book, so a client that syncs by the rules above never sees a gap.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from aiohttp import web

from bot.domain import BookDelta, BookSnapshot, Event, Instrument, InstrumentKind, Side, TradePrint
from bot.venues.mock.dialects.markets import LIMITS, VenueLimits
from bot.venues.mock.dialects.server import DialectServer, WsConn


@dataclass(slots=True)
class _Market:
    inst: Instrument
    market_id: str
    category: str  # "spot" | "linear"
    limits: VenueLimits
    update_id: int = 1_000  # the last published update id
    bids: dict[int, int] = field(default_factory=dict)  # the published book
    asks: dict[int, int] = field(default_factory=dict)

    def px(self, ticks: int) -> str:
        return str(Decimal(ticks) * Decimal(self.limits.tick))

    def qty(self, lots: int) -> str:
        return str(Decimal(lots) * Decimal(self.limits.qty_step))


class BinanceDialect:
    name = "binance"

    def __init__(self, server: DialectServer) -> None:
        self.server = server
        spot_limits, perp_limits = LIMITS["binance"]
        self.markets: dict[str, _Market] = {}
        for inst in server.exchange.instruments.values():
            spot = inst.kind is InstrumentKind.SPOT
            market = _Market(
                inst, inst.base + inst.quote, "spot" if spot else "linear", spot_limits if spot else perp_limits
            )
            self.markets[inst.symbol] = market
            self._publish_state(market)  # the book as the first snapshot will show it

    def routes(self, server: DialectServer) -> list[web.RouteDef]:
        return [
            web.get("/{host}/api/v3/exchangeInfo", self._exchange_info),
            web.get("/{host}/fapi/v1/exchangeInfo", self._exchange_info),
            web.get("/{host}/api/v3/depth", self._depth),
            web.get("/{host}/fapi/v1/depth", self._depth),
            server.websocket_route("/{host}/ws/{stream}"),
            server.websocket_route("/{host}/public/ws/{stream}"),
            server.websocket_route("/{host}/market/ws/{stream}"),
        ]

    # ---- REST -----------------------------------------------------------------------------------

    def _category(self, request: web.Request) -> str:
        return "linear" if "/fapi/" in request.path else "spot"

    async def _exchange_info(self, request: web.Request) -> web.Response:
        category = self._category(request)
        symbols = [self._symbol_row(m) for m in self.markets.values() if m.category == category]
        body = {"timezone": "UTC", "serverTime": self.server.now_ms(), "rateLimits": [], "symbols": symbols}
        return web.json_response(body)

    @staticmethod
    def _symbol_row(m: _Market) -> dict[str, Any]:
        lim = m.limits
        filters: list[dict[str, Any]] = [
            {"filterType": "PRICE_FILTER", "minPrice": lim.tick, "maxPrice": "1000000", "tickSize": lim.tick},
            {"filterType": "LOT_SIZE", "minQty": lim.qty_step, "maxQty": "9000", "stepSize": lim.qty_step},
        ]
        row: dict[str, Any] = {
            "symbol": m.market_id, "status": "TRADING", "baseAsset": m.inst.base, "quoteAsset": m.inst.quote,
            "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET"], "filters": filters,
        }  # fmt: skip
        places = _decimals(lim.tick), _decimals(lim.qty_step)
        if m.category == "spot":
            notional = {"filterType": "NOTIONAL", "minNotional": f"{lim.min_notional:g}", "applyMinToMarket": True}
            filters.append(notional)
            row.update(baseAssetPrecision="8", quotePrecision="8", quoteAssetPrecision="8", isSpotTradingAllowed=True,
                       isMarginTradingAllowed=False, permissions=["SPOT"])  # fmt: skip
        else:
            filters.append({"filterType": "MIN_NOTIONAL", "notional": f"{lim.min_notional:g}"})
            row.update(pair=m.market_id, contractType="PERPETUAL", marginAsset=m.inst.quote, pricePrecision=places[0],
                       quantityPrecision=places[1], baseAssetPrecision="8", quotePrecision="8",
                       onboardDate=1569398400000, deliveryDate=4133404800000, underlyingType="COIN")  # fmt: skip
        return row

    async def _depth(self, request: web.Request) -> web.Response:
        category = self._category(request)
        symbol = request.query.get("symbol")
        market = next((m for m in self.markets.values() if (m.market_id, m.category) == (symbol, category)), None)
        if market is None:
            return web.json_response({"code": -1121, "msg": "Invalid symbol."}, status=400)
        try:
            limit = int(request.query.get("limit", "100"))
        except ValueError:
            refusal = {"code": -1100, "msg": "Illegal characters found in parameter 'limit'"}
            return web.json_response(refusal, status=400)
        bids = sorted(market.bids.items(), reverse=True)[:limit]
        asks = sorted(market.asks.items())[:limit]
        body: dict[str, Any] = {
            "lastUpdateId": market.update_id,
            "bids": [[market.px(p), market.qty(q)] for p, q in bids],
            "asks": [[market.px(p), market.qty(q)] for p, q in asks],
        }
        if category == "linear":
            body.update(E=self.server.now_ms(), T=self.server.now_ms())
        return web.json_response(body)

    # ---- core events -> streams -----------------------------------------------------------------

    def _publish_state(self, market: _Market) -> tuple[dict[int, int], dict[int, int]]:
        """Bring the published book to the core's and return the changed levels (size 0: removed)."""
        snap = self.server.exchange.snapshot(market.inst.symbol, self.server.now_ns())
        bids, asks = dict(snap.bids), dict(snap.asks)
        db = {p: q for p, q in bids.items() if market.bids.get(p) != q} | {p: 0 for p in market.bids if p not in bids}
        da = {p: q for p, q in asks.items() if market.asks.get(p) != q} | {p: 0 for p in market.asks if p not in asks}
        market.bids, market.asks = bids, asks
        return db, da

    async def on_events(self, events: list[Event]) -> None:
        books: set[str] = set()
        for event in events:
            if isinstance(event, BookSnapshot | BookDelta) and event.symbol in self.markets:
                books.add(event.symbol)
            elif isinstance(event, TradePrint) and event.symbol in self.markets:
                await self._publish_trade(self.markets[event.symbol], event)
        for symbol in books:
            market = self.markets[symbol]
            db, da = self._publish_state(market)
            if not db and not da:
                continue
            previous = market.update_id
            market.update_id += 1
            now = self.server.now_ms()
            message: dict[str, Any] = {
                "e": "depthUpdate", "E": now, "s": market.market_id, "U": previous + 1, "u": market.update_id,
                "b": [[market.px(p), market.qty(q)] for p, q in db.items()],
                "a": [[market.px(p), market.qty(q)] for p, q in da.items()],
            }  # fmt: skip
            if market.category == "linear":
                message.update(T=now, pu=previous)
            await self._send(market, "depth@100ms", message)

    async def _publish_trade(self, market: _Market, t: TradePrint) -> None:
        message = {
            "e": "trade", "E": self.server.now_ms(), "s": market.market_id, "t": int(t.trade_id),
            "p": market.px(t.price_ticks), "q": market.qty(t.size_lots), "T": t.ts_venue_ns // 1_000_000,
            "m": t.aggressor is Side.SELL, "M": True,
        }  # fmt: skip
        await self._send(market, "trade", message)

    async def _send(self, market: _Market, stream: str, message: dict[str, Any]) -> None:
        topic = f"{market.market_id.lower()}@{stream}"
        spot = market.category == "spot"
        for conn in list(self.server.connections):
            if topic in conn.topics and ("/public/" not in conn.path and "/market/" not in conn.path) == spot:
                await conn.send(message)

    # ---- websocket requests ---------------------------------------------------------------------

    async def on_ws_message(self, conn: WsConn, message: Any) -> None:
        if not isinstance(message, dict) or message.get("method") not in ("SUBSCRIBE", "UNSUBSCRIBE"):
            await conn.send({"error": {"code": 2, "msg": "Invalid request"}, "id": None})
            return
        params = [p for p in message.get("params") or [] if isinstance(p, str)]
        if message["method"] == "SUBSCRIBE":
            conn.topics.update(params)
        else:
            conn.topics.difference_update(params)
        await conn.send({"result": None, "id": message.get("id")})


def _decimals(step: str) -> str:
    """ "0.001" -> "3": the precision fields of futures exchangeInfo."""
    return str(len(step.partition(".")[2]))


def make(server: DialectServer, **options: Any) -> BinanceDialect:
    if options:
        raise ValueError(f"the binance dialect takes no options (public data only): {sorted(options)}")
    return BinanceDialect(server)
