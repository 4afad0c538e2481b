"""The Bybit v5 dialect: the REST and websocket endpoints ccxt 4.5's `bybit` client uses for our calls.

What each endpoint answers is read from ccxt's client (ccxt/bybit.py, ccxt/pro/bybit.py: the
request fields it sends and the response fields it parses) and Bybit's v5 docs
(https://bybit-exchange.github.io/docs/v5/...). Behaviours modelled, each with its source:

- one unified account (UTA 2.0: `/v5/user/query-api` uta=1, `/v5/account/info` unifiedMarginStatus
  6), so spot and linear share one private socket, `/v5/private` (ccxt pro `get_url_by_market_type`);
  `account_mode="classic"` answers uta=0 instead;
- a topic subscribed twice on one socket refuses the WHOLE subscribe request with
  `{"success": false, "ret_msg": "error:already subscribed,topic:<topic>", ...}` (raw probe of
  Bybit's socket quoted in ccxt/ccxt#30284); ccxt then rejects the waiter of that request;
- orderbook.{1,50,200,1000}.<id>: a snapshot on subscribe, then deltas of the top N with `u` and
  `seq` (docs v5/websocket/public/orderbook); publicTrade.<id> (docs v5/websocket/public/trade);
- private `order` and `execution` topics with `category` on every row (docs v5/websocket/private);
- ping: `{"op": "ping"}` answered with `ret_msg: "pong"` on public sockets and `op: "pong"` on the
  private one (the samples in ccxt pro `handle_pong`);
- auth: REST needs X-BAPI-API-KEY, X-BAPI-TIMESTAMP, X-BAPI-SIGN (ccxt `sign`), websocket an
  `op: auth` with [key, expires, signature] (ccxt pro `authenticate`); signatures are not checked;
- position mode: one-way (positionIdx 0) by default; `hedge_mode=True` lists two position rows per
  symbol (positionIdx 1 and 2) and refuses a linear order without positionIdx 1/2 with retCode
  10001 "position idx not match position mode" (docs v5/order/create-order: positionIdx is
  required in hedge mode);
- PostOnly that would cross: the create call succeeds, then the order is Cancelled with
  rejectReason EC_PostOnlyWillTakeLiquidity (docs v5/order/create-order, "PostOnly");
- minimums from instruments-info: spot minOrderQty (170136) and minOrderAmt (170140); linear
  minOrderQty (10001) and minNotionalValue (110094), closing (reduce-only) orders exempt from the
  notional minimum (Bybit derivatives trading rules: "Closing orders are exempt from notional value
  but still adhere to minimum size"); error codes as ccxt's `exceptions['exact']` table maps them;
- rate limit: /v5/order/create per UID per rolling second, 20/s spot and 10/s linear (docs
  v5/rate-limit), answered with HTTP 200, retCode 10006 "Too many visits!" and X-Bapi-Limit headers;
- /v5/execution/list: newest first, `limit` <= 100 (default 50), `nextPageCursor`, a 7-day window
  from `startTime` (docs v5/order/execution);
- spot buy fees charged in the base coin (ccxt `parse_trade` infers the fee coin that way), and the
  wallet's BTC moves by them (the core charges quote; the dialect shifts the difference).

Not modelled: signature checks, recv_window, the IP limit (HTTP 403), inverse and option markets
(instruments-info lists none), margin, TP/SL and conditional orders.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from aiohttp import web

from bot.domain import (
    BookDelta,
    BookSnapshot,
    CancelOrder,
    Event,
    Instrument,
    InstrumentKind,
    OrderAccepted,
    OrderCanceled,
    OrderFilled,
    OrderRejected,
    OrderType,
    PlaceOrder,
    Side,
    TradePrint,
)
from bot.venues.mock.dialects.markets import PERP_LIMITS, SPOT_LIMITS, VenueLimits
from bot.venues.mock.dialects.server import DialectServer, WsConn

BOOK_DEPTHS = (1, 50, 200, 1000)  # ccxt pro watch_order_book_for_symbols' allowed limits
HISTORY_WINDOW_MS = 7 * 24 * 3600 * 1000  # execution/list: startTime alone covers 7 days
ORDER_RATE_PER_S = {"spot": 20, "linear": 10}  # /v5/order/create, docs v5/rate-limit
AUTH_HEADERS = ("X-BAPI-API-KEY", "X-BAPI-TIMESTAMP", "X-BAPI-SIGN")


@dataclass(frozen=True, slots=True)
class _Market:
    inst: Instrument
    market_id: str  # "BTCUSDT"
    category: str  # "spot" | "linear"
    limits: VenueLimits

    def px(self, ticks: int) -> str:
        return self.limits.price_text(ticks)

    def qty(self, lots: int) -> str:
        return self.limits.qty_text(lots)


@dataclass(slots=True)
class _Order:
    market: _Market
    order_id: str
    link_id: str
    side: Side
    order_type: str  # "Limit" | "Market"
    tif: str
    price_ticks: int
    lots: int
    reduce_only: bool
    position_idx: int
    created_ms: int
    updated_ms: int
    status: str = "New"
    filled_lots: int = 0
    value: float = 0.0
    fee: float = 0.0
    reject_reason: str = "EC_NoError"
    cancel_type: str = "UNKNOWN"

    @property
    def open(self) -> bool:
        return self.status in ("New", "PartiallyFilled")


@dataclass(slots=True)
class _Execution:
    seq: int
    category: str
    row: dict[str, Any]


@dataclass(slots=True)
class _BookView:
    bids: dict[int, int] = field(default_factory=dict)
    asks: dict[int, int] = field(default_factory=dict)


class BybitDialect:
    name = "bybit"

    def __init__(self, server: DialectServer, *, hedge_mode: bool = False, account_mode: str = "unified") -> None:
        self.server = server
        self.hedge_mode = hedge_mode
        self.account_mode = account_mode
        ex = server.exchange
        self.markets: dict[str, _Market] = {}
        for inst in ex.instruments.values():
            spot = inst.kind is InstrumentKind.SPOT
            market_id = inst.base + inst.quote
            self.markets[market_id + (":spot" if spot else ":linear")] = _Market(
                inst, market_id, "spot" if spot else "linear", SPOT_LIMITS if spot else PERP_LIMITS
            )
        self._by_symbol = {m.inst.symbol: m for m in self.markets.values()}
        self._orders: dict[str, _Order] = {}  # by orderId
        self._by_link: dict[str, _Order] = {}  # by orderLinkId (our core client id)
        self._executions: list[_Execution] = []
        self._order_n = 0
        self._exec_n = 0
        self._creates: dict[str, deque[int]] = {"spot": deque(), "linear": deque()}  # ms of recent creates
        self._views: dict[tuple[str, str], _BookView] = {}  # (conn_id, topic) -> what that socket was sent
        self.fee_shift: dict[str, float] = {}  # spot buys pay BTC: the wallet vs the core's quote fee

    # ---- routes ---------------------------------------------------------------------------------

    def routes(self, server: DialectServer) -> list[web.RouteDef]:
        return [
            web.get("/{host}/v5/market/time", self._time),
            web.get("/{host}/v5/market/instruments-info", self._instruments),
            web.get("/{host}/v5/asset/coin/query-info", self._private(self._coins)),
            web.get("/{host}/v5/user/query-api", self._private(self._query_api)),
            web.get("/{host}/v5/account/info", self._private(self._account_info)),
            web.get("/{host}/v5/account/wallet-balance", self._private(self._wallet)),
            web.get("/{host}/v5/position/list", self._private(self._positions)),
            web.post("/{host}/v5/order/create", self._private(self._create)),
            web.post("/{host}/v5/order/cancel", self._private(self._cancel)),
            web.get("/{host}/v5/order/realtime", self._private(self._realtime)),
            web.get("/{host}/v5/execution/list", self._private(self._execution_list)),
            server.websocket_route("/{host}/v5/public/{category}"),
            server.websocket_route("/{host}/v5/private"),
        ]

    # ---- REST helpers ---------------------------------------------------------------------------

    def _ok(self, result: Any, headers: dict[str, str] | None = None) -> web.Response:
        body = {"retCode": 0, "retMsg": "OK", "result": result, "retExtInfo": {}, "time": self.server.now_ms()}
        return web.json_response(body, headers=headers)

    def _err(self, code: int, msg: str, headers: dict[str, str] | None = None) -> web.Response:
        body = {"retCode": code, "retMsg": msg, "result": {}, "retExtInfo": {}, "time": self.server.now_ms()}
        return web.json_response(body, headers=headers)  # Bybit answers API errors with HTTP 200

    def _private(self, handler: Any) -> Any:
        async def checked(request: web.Request) -> web.Response:
            if any(not request.headers.get(name) for name in AUTH_HEADERS):
                return self._err(10003, "API key is invalid.")
            if request.method == "POST":
                try:
                    params = await request.json()
                except ValueError:
                    return self._err(10001, "request body is not JSON")
            else:
                params = dict(request.query)
            if not isinstance(params, dict):
                return self._err(10001, "params error")
            response: web.Response = await handler(params)
            return response

        return checked

    def _market(self, params: dict[str, Any]) -> _Market | None:
        return self.markets.get(f"{params.get('symbol')}:{params.get('category')}")

    # ---- public REST ----------------------------------------------------------------------------

    async def _time(self, request: web.Request) -> web.Response:
        now_ns = self.server.now_ns()
        return self._ok({"timeSecond": str(now_ns // 1_000_000_000), "timeNano": str(now_ns)})

    async def _instruments(self, request: web.Request) -> web.Response:
        category = request.query.get("category", "")
        if request.query.get("status") == "PreLaunch":
            return self._ok({"category": category, "list": [], "nextPageCursor": ""})
        rows = [self._instrument_row(m) for m in self.markets.values() if m.category == category]
        return self._ok({"category": category, "list": rows, "nextPageCursor": ""})

    @staticmethod
    def _instrument_row(m: _Market) -> dict[str, Any]:
        lim = m.limits
        row: dict[str, Any] = {
            "symbol": m.market_id,
            "baseCoin": m.inst.base,
            "quoteCoin": m.inst.quote,
            "status": "Trading",
            "priceFilter": {"tickSize": lim.tick, "minPrice": lim.tick, "maxPrice": "1999999.8"},
        }
        if m.category == "spot":
            row["innovation"] = "0"
            row["marginTrading"] = "utaOnly"
            row["lotSizeFilter"] = {
                "basePrecision": lim.qty_step,
                "quotePrecision": "0.00000001",
                "minOrderQty": f"{lim.min_qty:.6f}",
                "maxOrderQty": "71.73956243",
                "minOrderAmt": f"{lim.min_notional:g}",
                "maxOrderAmt": "2000000",
            }
        else:
            row.update(contractType="LinearPerpetual", settleCoin=m.inst.quote, launchTime="1585526400000")
            row["lotSizeFilter"] = {
                "qtyStep": lim.qty_step,
                "minOrderQty": lim.qty_step,
                "maxOrderQty": "1190.000",
                "minNotionalValue": f"{lim.min_notional:g}",
            }
            row["leverageFilter"] = {"minLeverage": "1", "maxLeverage": "100.00", "leverageStep": "0.01"}
        return row

    # ---- account --------------------------------------------------------------------------------

    async def _coins(self, params: dict[str, Any]) -> web.Response:
        return self._ok({"rows": []})

    async def _query_api(self, params: dict[str, Any]) -> web.Response:
        uta = 1 if self.account_mode == "unified" else 0
        return self._ok({"id": "1", "readOnly": 0, "unified": 0, "uta": uta, "isMaster": True, "userID": 1})

    async def _account_info(self, params: dict[str, Any]) -> web.Response:
        status = 6 if self.account_mode == "unified" else 1  # 6: UTA 2.0 Pro; 1: classic
        return self._ok({"marginMode": "REGULAR_MARGIN", "unifiedMarginStatus": status, "updatedTime": "0"})

    async def _wallet(self, params: dict[str, Any]) -> web.Response:
        if params.get("accountType") not in ("UNIFIED", "SPOT", "CONTRACT"):
            return self._err(10001, "accountType only support UNIFIED")
        balances = {ccy: bal + self.fee_shift.get(ccy, 0.0) for ccy, bal in self.server.exchange.balances().items()}
        coins = [
            {"coin": ccy, "walletBalance": f"{bal:.8f}", "equity": f"{bal:.8f}", "borrowAmount": "0",
             "accruedInterest": "0", "totalOrderIM": "0", "totalPositionIM": "0", "locked": "0"}
            for ccy, bal in balances.items()
        ]  # fmt: skip
        account_type = "UNIFIED" if self.account_mode == "unified" else str(params.get("accountType"))
        return self._ok({"list": [{"accountType": account_type, "coin": coins}]})

    async def _positions(self, params: dict[str, Any]) -> web.Response:
        if params.get("category") != "linear":
            return self._ok({"category": params.get("category"), "list": [], "nextPageCursor": ""})
        ex = self.server.exchange
        rows = []
        for m in self.markets.values():
            if m.category != "linear" or params.get("symbol") not in (None, m.market_id):
                continue
            lots = ex.positions().get(m.inst.symbol, 0)
            entry = ex.accounts.entry_px.get(m.inst.symbol, 0.0)
            if self.hedge_mode:  # two rows: the long side (idx 1) and the short side (idx 2)
                rows.append(self._position_row(m, max(lots, 0), "Buy" if lots > 0 else "", 1, entry))
                rows.append(self._position_row(m, max(-lots, 0), "Sell" if lots < 0 else "", 2, entry))
            else:
                side = "Buy" if lots > 0 else "Sell" if lots < 0 else ""
                rows.append(self._position_row(m, abs(lots), side, 0, entry))
        return self._ok({"category": "linear", "list": rows, "nextPageCursor": ""})

    def _position_row(self, m: _Market, lots: int, side: str, idx: int, entry: float) -> dict[str, Any]:
        now = str(self.server.now_ms())
        return {
            "positionIdx": idx, "symbol": m.market_id, "side": side, "size": m.qty(lots),
            "avgPrice": f"{entry if lots else 0:.2f}", "positionValue": f"{entry * lots * m.inst.lot_size:.4f}",
            "leverage": "10", "markPrice": "0", "tradeMode": 0, "positionStatus": "Normal",
            "createdTime": now, "updatedTime": now,
        }  # fmt: skip

    # ---- orders ---------------------------------------------------------------------------------

    def _rate_limited(self, category: str) -> dict[str, str] | None:
        """Headers of a refused create when this UID's rolling second is full, else None."""
        now = self.server.now_ms()
        window = self._creates[category]
        while window and window[0] <= now - 1000:
            window.popleft()
        limit = ORDER_RATE_PER_S[category]
        if len(window) >= limit:
            return {"X-Bapi-Limit": str(limit), "X-Bapi-Limit-Status": "0",
                    "X-Bapi-Limit-Reset-Timestamp": str(window[0] + 1000)}  # fmt: skip
        window.append(now)
        return None

    async def _create(self, params: dict[str, Any]) -> web.Response:
        m = self._market(params)
        if m is None:
            return self._err(10001, "params error: symbol invalid")
        limited = self._rate_limited(m.category)
        if limited is not None:
            return self._err(10006, "Too many visits!", limited)
        try:
            order = self._new_order(m, params)
        except _Refused as refused:
            return self._err(refused.code, refused.msg)
        self._orders[order.order_id] = order
        self._by_link[order.link_id] = order
        self.server.submit(
            PlaceOrder(
                m.inst.symbol,
                order.link_id,
                order.side,
                order.price_ticks,
                order.lots,
                _core_type(order),
                post_only=order.tif == "PostOnly",
                reduce_only=order.reduce_only,
            )
        )
        return self._ok({"orderId": order.order_id, "orderLinkId": order.link_id})

    def _new_order(self, m: _Market, p: dict[str, Any]) -> _Order:
        side = {"Buy": Side.BUY, "Sell": Side.SELL}.get(str(p.get("side")))
        order_type = str(p.get("orderType"))
        if side is None or order_type not in ("Limit", "Market"):
            raise _Refused(10001, "params error: side or orderType invalid")
        tif = str(p.get("timeInForce") or "GTC") if order_type == "Limit" else "IOC"
        if tif not in ("GTC", "IOC", "FOK", "PostOnly"):
            raise _Refused(10001, "params error: timeInForce invalid")
        if tif == "FOK":
            raise _Refused(10001, "FOK is not modelled by the mock")
        qty = _decimal(p.get("qty"))
        step = Decimal(m.limits.qty_step)
        if qty is None or qty <= 0 or qty % step != 0:
            raise _Refused(170137 if m.category == "spot" else 10001, "Order quantity has too many decimals.")
        lots = int(qty / step)
        ex = self.server.exchange
        if order_type == "Limit":
            price = _decimal(p.get("price"))
            tick = Decimal(m.limits.tick)
            if price is None or price <= 0 or price % tick != 0:
                raise _Refused(170134 if m.category == "spot" else 10001, "Order price has too many decimals.")
            price_ticks = int(price / tick)
        else:
            snap = ex.snapshot(m.inst.symbol, self.server.now_ns())
            best = (snap.asks if side is Side.BUY else snap.bids)[:1]
            price_ticks = best[0][0] if best else 0
        reduce_only = bool(p.get("reduceOnly")) and m.category == "linear"
        position_idx = int(p.get("positionIdx") or 0)
        if m.category == "linear":
            if self.hedge_mode and position_idx not in (1, 2):
                raise _Refused(10001, "position idx not match position mode")
            if not self.hedge_mode and position_idx != 0:
                raise _Refused(10001, "position idx not match position mode")
        if float(qty) < m.limits.min_qty - 1e-12:
            if m.category == "spot":
                raise _Refused(170136, "Order quantity lower than the minimum.")
            raise _Refused(10001, "The number of contracts exceeds minimum limit allowed")
        notional = float(qty) * float(Decimal(price_ticks) * Decimal(m.limits.tick))
        if notional < m.limits.min_notional and not reduce_only:
            if m.category == "spot":
                raise _Refused(170140, "Order value exceeded lower limit.")
            raise _Refused(110094, f"Order does not meet minimum order value {m.limits.min_notional:g}USDT")
        link_id = str(p.get("orderLinkId") or "")
        if link_id and link_id in self._by_link:
            raise _Refused(110072 if m.category == "linear" else 170141, "OrderLinkedID is duplicate")
        self._order_n += 1
        order_id = f"{self._order_n:08d}-mock-{m.category}"
        now = self.server.now_ms()
        return _Order(
            m, order_id, link_id or f"auto-{order_id}", side, order_type, tif, price_ticks, lots,
            reduce_only, position_idx, now, now,
        )  # fmt: skip

    async def _cancel(self, params: dict[str, Any]) -> web.Response:
        m = self._market(params)
        order = self._orders.get(str(params.get("orderId") or "")) or self._by_link.get(
            str(params.get("orderLinkId") or "")
        )
        if m is None or order is None or order.market is not m or not order.open:
            return self._err(170213 if params.get("category") == "spot" else 110001, "Order does not exist.")
        self.server.submit(CancelOrder(m.inst.symbol, order.link_id))
        return self._ok({"orderId": order.order_id, "orderLinkId": order.link_id})

    async def _realtime(self, params: dict[str, Any]) -> web.Response:
        category = params.get("category")
        symbol = params.get("symbol")
        rows = [
            self._order_row(o)
            for o in self._orders.values()
            if o.open and o.market.category == category and symbol in (None, o.market.market_id)
        ]
        rows.reverse()  # newest first
        return self._ok({"category": category, "list": rows, "nextPageCursor": ""})

    async def _execution_list(self, params: dict[str, Any]) -> web.Response:
        """Newest first, `limit` per page, `nextPageCursor` = the seq of the last row sent; the page
        after it holds strictly older rows, so fills arriving meanwhile never shift a page."""
        category = params.get("category")
        symbol = params.get("symbol")
        try:
            limit = min(max(int(params.get("limit") or 50), 1), 100)
            start = int(params["startTime"]) if "startTime" in params else None
            end = int(params["endTime"]) if "endTime" in params else None
            cursor = int(params["cursor"]) if params.get("cursor") else None
        except ValueError:
            return self._err(10001, "params error")
        if start is not None and end is None:
            end = start + HISTORY_WINDOW_MS
        if end is not None and start is None:
            start = end - HISTORY_WINDOW_MS
        if start is None:
            end = self.server.now_ms()
            start = end - HISTORY_WINDOW_MS
        rows: list[_Execution] = []
        for execution in reversed(self._executions):
            row = execution.row
            if cursor is not None and execution.seq >= cursor:
                continue
            if execution.category != category or symbol not in (None, row["symbol"]):
                continue
            if not start <= int(row["execTime"]) <= end:  # type: ignore[operator]
                continue
            rows.append(execution)
            if len(rows) == limit + 1:
                break
        more = len(rows) > limit
        page = rows[:limit]
        next_cursor = str(page[-1].seq) if more else ""
        return self._ok({"category": category, "list": [e.row for e in page], "nextPageCursor": next_cursor})

    def _order_row(self, o: _Order) -> dict[str, Any]:
        m = o.market
        leaves = o.lots - o.filled_lots if o.open else 0
        avg = o.value / (o.filled_lots * m.inst.lot_size) if o.filled_lots else 0.0
        return {
            "category": m.category, "symbol": m.market_id, "orderId": o.order_id, "orderLinkId": o.link_id,
            "side": o.side.value.capitalize(), "positionIdx": o.position_idx, "orderStatus": o.status,
            "cancelType": o.cancel_type, "rejectReason": o.reject_reason, "timeInForce": o.tif,
            "price": m.px(o.price_ticks) if o.order_type == "Limit" else "0", "qty": m.qty(o.lots),
            "avgPrice": f"{avg:.8f}" if o.filled_lots else "", "leavesQty": m.qty(leaves),
            "cumExecQty": m.qty(o.filled_lots), "cumExecValue": f"{o.value:.8f}", "cumExecFee": f"{o.fee:.8f}",
            "orderType": o.order_type, "reduceOnly": o.reduce_only, "createdTime": str(o.created_ms),
            "updatedTime": str(o.updated_ms),
        }  # fmt: skip

    # ---- core events -> state and pushes --------------------------------------------------------

    async def on_events(self, events: list[Event]) -> None:
        changed_books: set[str] = set()
        orders: list[dict[str, Any]] = []
        executions: list[dict[str, Any]] = []
        trades: dict[str, list[dict[str, Any]]] = {}
        for event in events:
            if isinstance(event, BookSnapshot | BookDelta):
                changed_books.add(event.symbol)
            elif isinstance(event, TradePrint):
                m = self._by_symbol.get(event.symbol)
                if m is not None:
                    trades.setdefault(m.inst.symbol, []).append(self._trade_row(m, event))
            elif isinstance(event, OrderFilled):
                row = self._on_fill(event)
                if row is not None:
                    executions.append(row)
                    orders.append(self._order_row(self._by_link[event.client_id]))
            elif isinstance(event, OrderAccepted | OrderCanceled | OrderRejected):
                order = self._on_order_event(event)
                if order is not None:
                    orders.append(self._order_row(order))
        for symbol in changed_books:
            await self._publish_book(self._by_symbol[symbol])
        for symbol, rows in trades.items():
            m = self._by_symbol[symbol]
            await self._publish(f"publicTrade.{m.market_id}", m.category, {"type": "snapshot", "data": rows})
        if orders:
            await self._publish_private("order", orders)
        if executions:
            await self._publish_private("execution", executions)

    def _on_order_event(self, event: OrderAccepted | OrderCanceled | OrderRejected) -> _Order | None:
        order = self._by_link.get(event.client_id)
        if order is None or not order.open:
            return None
        order.updated_ms = event.ts_venue_ns // 1_000_000
        if isinstance(event, OrderAccepted):
            return order  # New: pushed once the matching engine has it
        if isinstance(event, OrderRejected) and event.reason == "post_only_would_cross":
            order.status, order.reject_reason = "Cancelled", "EC_PostOnlyWillTakeLiquidity"
        elif isinstance(event, OrderRejected):
            order.status, order.reject_reason = "Rejected", "EC_Others"
        else:
            partially = order.filled_lots > 0
            order.status = "PartiallyFilledCanceled" if partially and order.order_type == "Market" else "Cancelled"
            order.cancel_type = "CancelByUser" if event.reason == "requested" else "UNKNOWN"
            if event.reason == "self_trade_prevented":
                order.reject_reason = "EC_CancelBySmp"
            elif event.reason == "ioc_expired":
                order.reject_reason = "EC_NoImmediateQtyToFill" if not partially else "EC_NoError"
        return order

    def _on_fill(self, fill: OrderFilled) -> dict[str, Any] | None:
        order = self._by_link.get(fill.client_id)
        if order is None:
            return None
        m = order.market
        px = float(Decimal(fill.price_ticks) * Decimal(m.limits.tick))
        qty_base = fill.size_lots * m.inst.lot_size
        order.filled_lots += fill.size_lots
        order.value += px * qty_base
        order.status = "Filled" if order.filled_lots >= order.lots else "PartiallyFilled"
        order.updated_ms = fill.ts_venue_ns // 1_000_000
        # spot buys pay the fee in the base coin on Bybit: report it so (ccxt infers the coin from the side)
        fee = fill.fee_quote
        if m.category == "spot" and fill.side is Side.BUY:  # the BTC received pays it: the wallet moves so
            fee = round(fill.fee_quote / px, 8)
            self.fee_shift[m.inst.quote] = self.fee_shift.get(m.inst.quote, 0.0) + fill.fee_quote
            self.fee_shift[m.inst.base] = self.fee_shift.get(m.inst.base, 0.0) - fee
        order.fee += fee
        self._exec_n += 1
        row = {
            "category": m.category, "symbol": m.market_id, "execId": f"e{self._exec_n:010d}-{fill.fill_id}",
            "execPrice": m.px(fill.price_ticks), "execQty": m.qty(fill.size_lots), "execValue": f"{px * qty_base:.8f}",
            "execFee": f"{fee:.10f}", "feeRate": f"{fill.fee_quote / (px * qty_base):.6f}" if qty_base else "0",
            "execType": "Trade", "execTime": str(fill.ts_venue_ns // 1_000_000),
            "isMaker": fill.liquidity.value == "maker",
            "orderId": order.order_id, "orderLinkId": order.link_id, "orderPrice": m.px(order.price_ticks),
            "orderQty": m.qty(order.lots), "orderType": order.order_type, "side": order.side.value.capitalize(),
            "leavesQty": m.qty(fill.leaves_lots), "stopOrderType": "", "markPrice": m.px(fill.price_ticks),
            "closedSize": "0", "seq": self._exec_n,
        }  # fmt: skip
        self._executions.append(_Execution(self._exec_n, m.category, row))
        return row

    @staticmethod
    def _trade_row(m: _Market, t: TradePrint) -> dict[str, Any]:
        row: dict[str, Any] = {
            "T": t.ts_venue_ns // 1_000_000, "s": m.market_id, "S": t.aggressor.value.capitalize(),
            "v": m.qty(t.size_lots), "p": m.px(t.price_ticks), "L": "ZeroPlusTick", "i": f"mock-{t.trade_id}",
        }  # fmt: skip
        if m.category == "linear":
            row["BT"] = False
        return row

    # ---- publishing -----------------------------------------------------------------------------

    def _subscribers(self, topic: str, path_end: str) -> list[WsConn]:
        return [c for c in self.server.connections if topic in c.topics and c.path.endswith(path_end)]

    async def _publish(self, topic: str, category: str, body: dict[str, Any]) -> None:
        message = {"topic": topic, "ts": self.server.now_ms(), **body}
        for conn in self._subscribers(topic, f"/v5/public/{category}"):
            await conn.send(message)

    async def _publish_private(self, topic: str, rows: list[dict[str, Any]]) -> None:
        now = self.server.now_ms()
        message = {"id": f"mock-{topic}-{now}", "topic": topic, "creationTime": now, "data": rows}
        for conn in self._subscribers(topic, "/v5/private"):
            await conn.send(message)

    async def _publish_book(self, m: _Market) -> None:
        snap = self.server.exchange.snapshot(m.inst.symbol, self.server.now_ns())
        for depth in BOOK_DEPTHS:
            topic = f"orderbook.{depth}.{m.market_id}"
            for conn in self._subscribers(topic, f"/v5/public/{m.category}"):
                await self._send_book(conn, m, topic, depth, snap)

    async def _send_book(self, conn: WsConn, m: _Market, topic: str, depth: int, snap: BookSnapshot) -> None:
        """A snapshot the first time this socket gets `topic`, then the top-N changes as a delta."""
        key = (conn.conn_id, topic)
        bids, asks = dict(snap.bids[:depth]), dict(snap.asks[:depth])
        view = self._views.get(key)
        data: dict[str, Any]
        if view is None:
            self._views[key] = _BookView(bids, asks)
            data = {"s": m.market_id, "b": self._levels(m, bids), "a": self._levels(m, asks)}
            kind = "snapshot"
        else:
            db, da = _diff(view.bids, bids), _diff(view.asks, asks)
            if not db and not da:
                return
            view.bids, view.asks = bids, asks
            data = {"s": m.market_id, "b": self._levels(m, db), "a": self._levels(m, da)}
            kind = "delta"
        data.update(u=snap.seq, seq=snap.seq)
        now = self.server.now_ms()
        await conn.send({"topic": topic, "type": kind, "ts": now, "data": data, "cts": now})

    @staticmethod
    def _levels(m: _Market, levels: dict[int, int]) -> list[list[str]]:
        return [[m.px(px), m.qty(lots)] for px, lots in levels.items()]

    # ---- websocket requests ---------------------------------------------------------------------

    async def on_ws_message(self, conn: WsConn, message: Any) -> None:
        if not isinstance(message, dict):
            await conn.send({"success": False, "ret_msg": "error:invalid op", "conn_id": conn.conn_id})
            return
        op = message.get("op")
        req_id = message.get("req_id")
        private = conn.path.endswith("/v5/private")
        base = {"conn_id": conn.conn_id, **({"req_id": str(req_id)} if req_id is not None else {})}
        if op == "ping":
            if private:
                await conn.send({**base, "op": "pong", "args": [str(self.server.now_ms())]})
            else:
                await conn.send({**base, "success": True, "ret_msg": "pong", "op": "ping"})
        elif op == "auth":
            args = message.get("args")
            ok = private and isinstance(args, list) and len(args) == 3 and all(args)
            conn.authenticated = conn.authenticated or bool(ok)
            await conn.send({**base, "success": bool(ok), "ret_msg": "" if ok else "error:USVC1111", "op": "auth"})
        elif op == "subscribe":
            await self._subscribe(conn, message.get("args"), base, private)
        elif op == "unsubscribe":
            topics = [t for t in message.get("args") or [] if isinstance(t, str)]
            for topic in topics:
                conn.topics.discard(topic)
                self._views.pop((conn.conn_id, topic), None)
            await conn.send({**base, "success": True, "ret_msg": "", "op": "unsubscribe"})
        else:
            await conn.send({**base, "success": False, "ret_msg": f"error:handler not found,op:{op}"})

    async def _subscribe(self, conn: WsConn, args: Any, base: dict[str, Any], private: bool) -> None:
        topics = [t for t in args if isinstance(t, str)] if isinstance(args, list) else []
        refusal = None
        if not topics:
            refusal = "error:args empty"
        elif private and not conn.authenticated:
            refusal = "error:request not authorized"
        else:
            for topic in topics:
                if topic in conn.topics:  # the whole request is refused (ccxt/ccxt#30284)
                    refusal = f"error:already subscribed,topic:{topic}"
                    break
        if refusal is not None:
            await conn.send({**base, "success": False, "ret_msg": refusal, "op": "subscribe"})
            return
        conn.topics.update(topics)
        live = {c.conn_id for c in self.server.connections}
        for key in [k for k in self._views if k[0] not in live]:  # views of sockets that have gone
            del self._views[key]
        await conn.send({**base, "success": True, "ret_msg": "", "op": "subscribe"})
        for topic in topics:  # an order book topic starts with a snapshot
            parts = topic.split(".")
            if parts[0] == "orderbook" and len(parts) == 3:
                m = self.markets.get(f"{parts[2]}:{conn.path.rsplit('/', 1)[-1]}")
                if m is not None and parts[1].isdigit():
                    snap = self.server.exchange.snapshot(m.inst.symbol, self.server.now_ns())
                    await self._send_book(conn, m, topic, int(parts[1]), snap)


class _Refused(Exception):
    def __init__(self, code: int, msg: str) -> None:
        super().__init__(msg)
        self.code = code
        self.msg = msg


def _core_type(order: _Order) -> OrderType:
    if order.order_type == "Market":
        return OrderType.MARKET
    return OrderType.IOC if order.tif == "IOC" else OrderType.LIMIT


def _decimal(value: Any) -> Decimal | None:
    try:
        number = Decimal(str(value))
    except ArithmeticError:
        return None
    return number if number.is_finite() else None


def _diff(old: dict[int, int], new: dict[int, int]) -> dict[int, int]:
    changes = {px: lots for px, lots in new.items() if old.get(px) != lots}
    changes.update({px: 0 for px in old if px not in new})
    return changes


def make(server: DialectServer, **options: Any) -> BybitDialect:
    return BybitDialect(server, **options)
