"""The Binance dialect: what ccxt 4.5's `binance` / `ccxt.pro.binance` call for live paper trading
(`ccxt.mode = "paper"`, config/binance-paper.toml: public data only) and for demo trading
(`ccxt.mode = "demo"`, config/binance-demo.toml: spot and USD-M orders, account, positions, user data).

Public data, per behaviour:

- markets: `GET /api/v3/exchangeInfo` (spot) and `GET /fapi/v1/exchangeInfo` (USD-M), the fields ccxt
  `binance.parse_market` reads (filters PRICE_FILTER, LOT_SIZE, NOTIONAL / MIN_NOTIONAL) and the
  `rateLimits` the gate enforces;
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

Private side: `binance_gate.py` (API key, HMAC signature, timestamp / recvWindow, request weight and
order count limits with HTTP 429 / 418) in front of `binance_trading.py` (orders, trades, account,
positions, user data events). The user data streams are the ones ccxt 4.5.90 uses: spot through the
websocket API (`.../ws-api/v3`, method `userDataStream.subscribe.signature`, binance-spot-api-docs
web-socket-api.md "User Data Stream requests"), USD-M through a listenKey (`POST /fapi/v1/listenKey`,
then `.../private/ws?listenKey=...`).

Not modelled: listenKey expiry (60 min without keep-alive), the 24 h websocket disconnect (the
server's `ws_max_age_s` does that at any age), BNB fee discounts, margin, OCO / stop orders,
cancel-replace, STP modes other than the core's, the USD-M ACCOUNT_UPDATE event.
"""

from __future__ import annotations

import itertools
import secrets
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web

from bot.domain import BookDelta, BookSnapshot, Event, InstrumentKind, Side, TradePrint
from bot.venues.mock.dialects.binance_gate import Gate, Refusal
from bot.venues.mock.dialects.binance_trading import BinanceMarket, BinanceTrading
from bot.venues.mock.dialects.markets import LIMITS
from bot.venues.mock.dialects.server import DialectServer, WsConn

NONE, USER_STREAM, SIGNED = "NONE", "USER_STREAM", "SIGNED"  # rest-api.md "Endpoint security type"
Handler = Callable[[dict[str, str]], Awaitable[Any]]
Weight = int | Callable[[dict[str, str]], int]


def _spot_depth_weight(p: dict[str, str]) -> int:  # GET /api/v3/depth "Weight: adjusted based on the limit"
    limit = _int(p.get("limit"), 100)
    return 5 if limit <= 100 else 25 if limit <= 500 else 50 if limit <= 1000 else 250


def _futures_depth_weight(p: dict[str, str]) -> int:  # GET /fapi/v1/depth
    limit = _int(p.get("limit"), 500)
    return 2 if limit <= 50 else 5 if limit <= 100 else 10 if limit <= 500 else 20


def _int(value: str | None, default: int) -> int:
    try:
        return int(value) if value else default
    except ValueError:
        return default


class BinanceDialect:
    name = "binance"

    def __init__(
        self,
        server: DialectServer,
        *,
        api_secret: str | None = None,
        hedge_mode: bool = False,
        gate: Gate | None = None,
        verdict_timeout_s: float = 10.0,
    ) -> None:
        self.server = server
        spot_limits, perp_limits = LIMITS["binance"]
        self.markets: dict[str, BinanceMarket] = {}
        for inst in server.exchange.instruments.values():
            spot = inst.kind is InstrumentKind.SPOT
            market = BinanceMarket(
                inst, inst.base + inst.quote, "spot" if spot else "linear", spot_limits if spot else perp_limits
            )
            self.markets[inst.symbol] = market
            self._publish_state(market)  # the book as the first snapshot will show it
        self.gate = gate or Gate(api_secret=api_secret)
        self.trading = BinanceTrading(
            self.markets, server.exchange, server.submit, server.now_ms,
            hedge_mode=hedge_mode, verdict_timeout_s=verdict_timeout_s,
        )  # fmt: skip
        self._ws_subscriptions: dict[str, list[int]] = {}  # ws-api conn id -> its user data subscription ids
        self._subscription_ids = itertools.count(0)

    @property
    def fee_shift(self) -> dict[str, float]:
        """What the spot wallet differs from the core's by (a buy's commission is paid in BTC)."""
        return self.trading.fee_shift

    def routes(self, server: DialectServer) -> list[web.RouteDef]:
        r = self._rest
        return [
            # spot, /api/v3 (weights: rest-api.md per endpoint)
            web.get("/{host}/api/v3/ping", r("spot", 1, NONE, self._ping)),
            web.get("/{host}/api/v3/time", r("spot", 1, NONE, self._time)),
            web.get("/{host}/api/v3/exchangeInfo", r("spot", 20, NONE, self._exchange_info("spot"))),
            web.get("/{host}/api/v3/depth", r("spot", _spot_depth_weight, NONE, self._depth("spot"))),
            web.get("/{host}/api/v3/account", r("spot", 20, SIGNED, self._spot_account)),
            web.post("/{host}/api/v3/order", r("spot", 1, SIGNED, self._place("spot"), order=True)),
            web.delete("/{host}/api/v3/order", r("spot", 1, SIGNED, self._cancel("spot"))),
            web.get("/{host}/api/v3/order", r("spot", 4, SIGNED, self._query("spot"))),
            web.get("/{host}/api/v3/openOrders",
                    r("spot", lambda p: 6 if p.get("symbol") else 80, SIGNED, self._open_orders("spot"))),
            web.get("/{host}/api/v3/myTrades", r("spot", 20, SIGNED, self._my_trades("spot"))),
            # USD-M futures, /fapi
            web.get("/{host}/fapi/v1/ping", r("linear", 1, NONE, self._ping)),
            web.get("/{host}/fapi/v1/time", r("linear", 1, NONE, self._time)),
            web.get("/{host}/fapi/v1/exchangeInfo", r("linear", 1, NONE, self._exchange_info("linear"))),
            web.get("/{host}/fapi/v1/depth", r("linear", _futures_depth_weight, NONE, self._depth("linear"))),
            web.get("/{host}/fapi/v1/positionSide/dual", r("linear", 30, SIGNED, self._position_mode)),
            web.get("/{host}/fapi/v1/leverageBracket", r("linear", 1, SIGNED, self._leverage_brackets)),
            web.get("/{host}/fapi/v2/positionRisk", r("linear", 5, SIGNED, self._position_risk)),
            web.get("/{host}/fapi/v3/positionRisk", r("linear", 5, SIGNED, self._position_risk)),
            web.get("/{host}/fapi/v2/account", r("linear", 5, SIGNED, self._futures_account)),
            web.get("/{host}/fapi/v3/account", r("linear", 5, SIGNED, self._futures_account)),
            web.get("/{host}/fapi/v2/balance", r("linear", 5, SIGNED, self._futures_balance)),
            web.get("/{host}/fapi/v3/balance", r("linear", 5, SIGNED, self._futures_balance)),
            web.post("/{host}/fapi/v1/order", r("linear", 0, SIGNED, self._place("linear"), order=True)),
            web.delete("/{host}/fapi/v1/order", r("linear", 1, SIGNED, self._cancel("linear"))),
            web.get("/{host}/fapi/v1/order", r("linear", 1, SIGNED, self._query("linear"))),
            web.get("/{host}/fapi/v1/openOrders",
                    r("linear", lambda p: 1 if p.get("symbol") else 40, SIGNED, self._open_orders("linear"))),
            web.get("/{host}/fapi/v1/userTrades", r("linear", 5, SIGNED, self._my_trades("linear"))),
            web.post("/{host}/fapi/v1/listenKey", r("linear", 1, USER_STREAM, self._listen_key)),
            web.put("/{host}/fapi/v1/listenKey", r("linear", 1, USER_STREAM, self._listen_key)),
            web.delete("/{host}/fapi/v1/listenKey", r("linear", 1, USER_STREAM, self._close_listen_key)),
            server.websocket_route("/{host}/ws/{stream}"),
            server.websocket_route("/{host}/public/ws/{stream}"),
            server.websocket_route("/{host}/market/ws/{stream}"),
            server.websocket_route("/{host}/private/ws"),
            server.websocket_route("/{host}/ws-api/v3"),
        ]  # fmt: skip

    # ---- REST plumbing --------------------------------------------------------------------------

    def _rest(self, category: str, weight: Weight, security: str, handler: Handler, order: bool = False) -> Any:
        """Gate, then handler; every answer carries the used-weight header (rest-api/limits)."""

        async def answer(request: web.Request) -> web.Response:
            now = self.server.now_ms()
            body = await request.text() if request.method != "GET" else ""
            params = dict(parse_qsl(body, keep_blank_values=True))
            params.update(request.query)  # a parameter in both: the query string's wins (rest-api.md)
            headers: dict[str, str] = {}
            try:
                headers = self.gate.spend(category, weight(params) if callable(weight) else weight, now)
                if security == SIGNED:
                    self.gate.check_signed(request, body, params, now)
                elif security == USER_STREAM:
                    self.gate.api_key(request)
                if order:
                    headers.update(self.gate.count_order(category, now))
                result = await handler(params)
            except Refusal as refusal:
                return refusal.response(headers)
            return web.json_response(result, headers=headers)

        return answer

    async def _ping(self, params: dict[str, str]) -> Any:
        return {}

    async def _time(self, params: dict[str, str]) -> Any:
        return {"serverTime": self.server.now_ms()}

    # ---- public REST ----------------------------------------------------------------------------

    def _exchange_info(self, category: str) -> Handler:
        async def info(params: dict[str, str]) -> Any:
            symbols = [self._symbol_row(m) for m in self.markets.values() if m.category == category]
            limits = self.gate.limits(category).rate_limits()
            return {"timezone": "UTC", "serverTime": self.server.now_ms(), "rateLimits": limits, "symbols": symbols}

        return info

    @staticmethod
    def _symbol_row(m: BinanceMarket) -> dict[str, Any]:
        lim = m.limits
        filters: list[dict[str, Any]] = [
            {"filterType": "PRICE_FILTER", "minPrice": lim.tick, "maxPrice": "1000000", "tickSize": lim.tick},
            {"filterType": "LOT_SIZE", "minQty": f"{lim.min_qty:g}", "maxQty": "9000", "stepSize": lim.qty_step},
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
                       onboardDate=1569398400000, deliveryDate=4133404800000, underlyingType="COIN",
                       orderTypes=["LIMIT", "MARKET"], timeInForce=["GTC", "IOC", "FOK", "GTX"])  # fmt: skip
        return row

    def _depth(self, category: str) -> Handler:
        async def depth(params: dict[str, str]) -> Any:
            market = self.trading.market(category, params.get("symbol"))
            try:
                limit = int(params.get("limit", "100"))
            except ValueError:
                raise Refusal(400, -1100, "Illegal characters found in parameter 'limit'") from None
            bids = sorted(market.bids.items(), reverse=True)[:limit]
            asks = sorted(market.asks.items())[:limit]
            body: dict[str, Any] = {
                "lastUpdateId": market.update_id,
                "bids": [[market.px(p), market.qty(q)] for p, q in bids],
                "asks": [[market.px(p), market.qty(q)] for p, q in asks],
            }
            if category == "linear":
                body.update(E=self.server.now_ms(), T=self.server.now_ms())
            return body

        return depth

    # ---- private REST ---------------------------------------------------------------------------

    async def _spot_account(self, params: dict[str, str]) -> Any:
        return {
            "makerCommission": 10, "takerCommission": 10, "buyerCommission": 0, "sellerCommission": 0,
            "commissionRates": {"maker": "0.00100000", "taker": "0.00100000", "buyer": "0.00000000",
                                "seller": "0.00000000"},
            "canTrade": True, "canWithdraw": False, "canDeposit": False, "brokered": False,
            "requireSelfTradePrevention": False, "preventSor": False, "updateTime": self.server.now_ms(),
            "accountType": "SPOT", "balances": self.trading.spot_balances(), "permissions": ["SPOT"], "uid": 1,
        }  # fmt: skip

    def _place(self, category: str) -> Handler:
        async def place(params: dict[str, str]) -> Any:
            market = self.trading.market(category, params.get("symbol"))
            order = await self.trading.place(self.trading.new_order(market, params))
            return self.trading.place_answer(order)

        return place

    def _cancel(self, category: str) -> Handler:
        async def cancel(params: dict[str, str]) -> Any:
            market = self.trading.market(category, params.get("symbol"))
            order = await self.trading.cancel(self.trading.find(market, params))
            return self.trading.order_row(order)

        return cancel

    def _query(self, category: str) -> Handler:
        async def query(params: dict[str, str]) -> Any:
            market = self.trading.market(category, params.get("symbol"))
            order = self.trading.find(market, params)
            if order is None:
                raise Refusal(400, -2013, "Order does not exist.")
            return self.trading.order_row(order)

        return query

    def _open_orders(self, category: str) -> Handler:
        async def open_orders(params: dict[str, str]) -> Any:
            market = self.trading.market(category, params["symbol"]) if params.get("symbol") else None
            return [self.trading.order_row(o) for o in self.trading.open_orders(market, category)]

        return open_orders

    def _my_trades(self, category: str) -> Handler:
        async def my_trades(params: dict[str, str]) -> Any:
            return self.trading.my_trades(self.trading.market(category, params.get("symbol")), params)

        return my_trades

    async def _position_mode(self, params: dict[str, str]) -> Any:
        return {"dualSidePosition": self.trading.hedge_mode}

    async def _leverage_brackets(self, params: dict[str, str]) -> Any:
        return [
            {"symbol": m.market_id, "notionalCoef": 1.0, "brackets": [
                {"bracket": 1, "initialLeverage": 125, "notionalCap": 50000, "notionalFloor": 0,
                 "maintMarginRatio": 0.004, "cum": 0.0}]}
            for m in self.markets.values() if m.category == "linear"
        ]  # fmt: skip

    async def _position_risk(self, params: dict[str, str]) -> Any:
        rows: list[dict[str, Any]] = []
        for m in self.markets.values():
            if m.category == "linear" and params.get("symbol") in (None, m.market_id):
                rows.extend(self.trading.position_rows(m))
        return rows

    async def _futures_balance(self, params: dict[str, str]) -> Any:
        usdt = self.server.exchange.balances().get("USDT", 0.0)
        return [{"accountAlias": "mock", "asset": "USDT", "balance": f"{usdt:.8f}", "crossWalletBalance": f"{usdt:.8f}",
                 "crossUnPnl": "0", "availableBalance": f"{usdt:.8f}", "maxWithdrawAmount": f"{usdt:.8f}",
                 "marginAvailable": True, "updateTime": self.server.now_ms()}]  # fmt: skip

    async def _futures_account(self, params: dict[str, str]) -> Any:
        usdt = f"{self.server.exchange.balances().get('USDT', 0.0):.8f}"
        positions = [
            row for m in self.markets.values() if m.category == "linear" for row in self.trading.position_rows(m)
        ]
        return {
            "totalWalletBalance": usdt, "totalMarginBalance": usdt, "availableBalance": usdt, "maxWithdrawAmount": usdt,
            "assets": [{"asset": "USDT", "walletBalance": usdt, "marginBalance": usdt, "availableBalance": usdt,
                        "unrealizedProfit": "0", "crossWalletBalance": usdt, "crossUnPnl": "0",
                        "maxWithdrawAmount": usdt, "updateTime": self.server.now_ms()}],
            "positions": positions,
        }  # fmt: skip

    async def _listen_key(self, params: dict[str, str]) -> Any:
        """One active listenKey per account: POST returns it if there is one (and extends it)."""
        key = next(iter(self.trading.listen_keys), None) or secrets.token_hex(32)
        self.trading.listen_keys[key] = "linear"
        return {"listenKey": key}

    async def _close_listen_key(self, params: dict[str, str]) -> Any:
        self.trading.listen_keys.clear()
        return {}

    # ---- core events -> streams -----------------------------------------------------------------

    def _publish_state(self, market: BinanceMarket) -> tuple[dict[int, int], dict[int, int]]:
        """Bring the published book to the core's and return the changed levels (size 0: removed)."""
        snap = self.server.exchange.snapshot(market.inst.symbol, self.server.now_ns())
        bids, asks = dict(snap.bids), dict(snap.asks)
        db = {p: q for p, q in bids.items() if market.bids.get(p) != q} | {p: 0 for p in market.bids if p not in bids}
        da = {p: q for p, q in asks.items() if market.asks.get(p) != q} | {p: 0 for p in market.asks if p not in asks}
        market.bids, market.asks = bids, asks
        return db, da

    async def on_events(self, events: list[Event]) -> None:
        self.trading.on_events(events)
        for category, push in self.trading.pushes:
            await self._push_user_data(category, push)
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

    async def _push_user_data(self, category: str, event: dict[str, Any]) -> None:
        keys = self.trading.listen_keys
        for conn in list(self.server.connections):
            if category == "spot" and conn.path == "/ws-api/v3":
                for sid in self._ws_subscriptions.get(conn.conn_id, []):
                    await conn.send({"subscriptionId": sid, "event": event})
            elif category == "linear" and conn.path == "/private/ws" and conn.query.get("listenKey") in keys:
                await conn.send(event)

    async def _publish_trade(self, market: BinanceMarket, t: TradePrint) -> None:
        message = {
            "e": "trade", "E": self.server.now_ms(), "s": market.market_id, "t": int(t.trade_id),
            "p": market.px(t.price_ticks), "q": market.qty(t.size_lots), "T": t.ts_venue_ns // 1_000_000,
            "m": t.aggressor is Side.SELL, "M": True,
        }  # fmt: skip
        await self._send(market, "trade", message)

    async def _send(self, market: BinanceMarket, stream: str, message: dict[str, Any]) -> None:
        topic = f"{market.market_id.lower()}@{stream}"
        spot = market.category == "spot"
        for conn in list(self.server.connections):
            if topic in conn.topics and ("/public/" not in conn.path and "/market/" not in conn.path) == spot:
                await conn.send(message)

    # ---- websocket requests ---------------------------------------------------------------------

    async def on_ws_message(self, conn: WsConn, message: Any) -> None:
        if conn.path == "/ws-api/v3":
            await self._ws_api(conn, message)
            return
        if not isinstance(message, dict) or message.get("method") not in ("SUBSCRIBE", "UNSUBSCRIBE"):
            await conn.send({"error": {"code": 2, "msg": "Invalid request"}, "id": None})
            return
        params = [p for p in message.get("params") or [] if isinstance(p, str)]
        if message["method"] == "SUBSCRIBE":
            conn.topics.update(params)
        else:
            conn.topics.difference_update(params)
        await conn.send({"result": None, "id": message.get("id")})

    async def _ws_api(self, conn: WsConn, message: Any) -> None:
        """The spot websocket API's requests ccxt sends: userDataStream.subscribe.signature (then the
        user data events of that subscription), userDataStream.unsubscribe, ping, time."""
        if not isinstance(message, dict):
            await conn.send({"id": None, "status": 400, "error": {"code": -1100, "msg": "Invalid JSON"}})
            return
        req_id, method = message.get("id"), message.get("method")
        raw = message.get("params")
        params: dict[str, Any] = raw if isinstance(raw, dict) else {}
        try:
            if method == "userDataStream.subscribe.signature":
                self.gate.spend("spot", 2, self.server.now_ms())
                self.gate.check_ws_signed(params, self.server.now_ms())
                live = {c.conn_id for c in self.server.connections}
                self._ws_subscriptions = {k: v for k, v in self._ws_subscriptions.items() if k in live}
                sid = next(self._subscription_ids)
                self._ws_subscriptions.setdefault(conn.conn_id, []).append(sid)
                result: Any = {"subscriptionId": sid}
            elif method == "userDataStream.unsubscribe":
                subs = self._ws_subscriptions.get(conn.conn_id, [])
                which = params.get("subscriptionId")
                if which is None:
                    subs.clear()
                elif which in subs:
                    subs.remove(which)
                else:
                    raise Refusal(400, -2036, "User Data Stream subscription not active.")
                result = {}
            elif method == "ping":
                result = {}
            elif method == "time":
                result = {"serverTime": self.server.now_ms()}
            else:
                raise Refusal(400, -1020, "This operation is not supported.")
        except Refusal as refusal:
            await conn.send({"id": req_id, "status": refusal.status,
                             "error": {"code": refusal.code, "msg": refusal.msg}})  # fmt: skip
            return
        await conn.send({"id": req_id, "status": 200, "result": result})


def _decimals(step: str) -> str:
    """ "0.001" -> "3": the precision fields of futures exchangeInfo."""
    return str(len(step.partition(".")[2]))


def make(server: DialectServer, **options: Any) -> BinanceDialect:
    return BinanceDialect(server, **options)
