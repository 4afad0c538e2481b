"""The OKX v5 dialect: what ccxt 4.5's `okx` / `ccxt.pro.okx` call for config/okx-demo.toml (demo
trading: ccxt's sandbox mode, the live REST host with `x-simulated-trading: 1`, websockets on wspap).

Read from ccxt's client (ccxt/async_support/okx.py, ccxt/pro/okx.py: the requests it sends, the fields
it parses) and OKX's v5 docs (https://www.okx.com/docs-v5/en/). Behaviours modelled, each with its source:

- REST envelope `{"code": "0", "msg": "", "data": [...]}`; order calls answer per order with
  `sCode` / `sMsg` and, when every order failed, `code` "1" "All operations failed" (docs "REST API":
  place order response; ccxt `handle_errors` reads `data[].sCode`);
- demo trading: every private REST call needs `x-simulated-trading: 1`, else `50101 APIKey does not
  match current environment.` (docs "Demo trading services"); auth headers OK-ACCESS-KEY / -SIGN /
  -TIMESTAMP / -PASSPHRASE, the signature base64(HMAC-SHA256(timestamp + method + path?query + body))
  checked when the server has the secret (`50113 Invalid Sign`), a timestamp more than 30 s off
  refused (`50102 Timestamp request expired`) (docs "REST Authentication");
- instruments: GET /api/v5/public/instruments (SPOT BTC-USDT; SWAP BTC-USDT-SWAP, ctVal 0.01 BTC,
  sizes in contracts);
- account: GET /api/v5/account/config (`posMode` net_mode | long_short_mode, `acctLv` 2 = spot and
  futures), /account/balance, /account/positions (net mode: one row, signed `pos` in contracts);
- orders: POST /api/v5/trade/order (`ordType` limit | post_only | ioc | market; `tdMode` cash / cross;
  `posSide` required in long_short_mode: else sCode 51000), /trade/cancel-order (not open: 51400),
  GET /trade/orders-pending, /trade/order (51603); a post_only order that would take liquidity is
  accepted and then canceled with `cancelSource` 31 (docs "Order channel": cancelSource 31 "The
  post-only order will take liquidity in taker orders"); insufficient balance 51008; below minSz 51020;
  off the lot 51121; duplicate clOrdId 51016; the place-order limit 60 requests / 2 s per instrument:
  `50011 Rate limit reached.` with HTTP 429;
- fills: GET /api/v5/trade/fills-history (and /trade/fills): newest first, `limit` <= 100 (default
  100), `after` = a billId: strictly older rows, `begin` / `end` in ms;
- websockets /ws/v5/public: `books` (400 levels: a snapshot then updates with `seqId` / `prevSeqId`
  and the CRC32 `checksum` of the top 25, docs "Order book channel"), `trades` (side = the taker's);
  /ws/v5/private: `op: login` (sign = base64(HMAC(timestamp + "GET" + "/users/self/verify"))), then
  `orders` with instType ANY, every order's state as a row (fills carry `tradeId`, `fillSz`,
  `fillPx`, `fillFee`, `execType`); text `ping` answered `pong` (docs "Websocket": "If there’s a
  network problem, the system will automatically disable the connection ... send the string 'ping'");
- spot fees in the asset received (a buy pays BTC), swaps in USDT; fees are negative (paid).

Not modelled: amend-order (the core has no amend: a cancel-replace would lose queue priority, which
amend keeps), algo orders, the business socket, account levels other than 2, fills older than the
dialect's life, `books5` / `bbo-tbt` / `books-l2-tbt`.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hashlib
import hmac
import itertools
import json
import zlib
from collections import deque
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from aiohttp import web

from bot.domain import (
    BookDelta,
    BookSnapshot,
    CancelOrder,
    CancelRejected,
    Event,
    Instrument,
    InstrumentKind,
    Liquidity,
    OrderAccepted,
    OrderCanceled,
    OrderFilled,
    OrderRejected,
    OrderType,
    PlaceOrder,
    Side,
    TradePrint,
)
from bot.venues.mock.dialects.markets import LIMITS, VenueLimits
from bot.venues.mock.dialects.server import DialectServer, WsConn

ORDER_RATE = (60, 2000)  # place-order requests per instrument per 2 s (docs "Place order": rate limit)
FILLS_LIMIT = 100
BOOK_DEPTH = 400  # the `books` channel
TIMESTAMP_SKEW_MS = 30_000
AUTH_HEADERS = ("OK-ACCESS-KEY", "OK-ACCESS-SIGN", "OK-ACCESS-TIMESTAMP", "OK-ACCESS-PASSPHRASE")


class _Failed(Exception):
    def __init__(self, code: str, msg: str, status: int = 200) -> None:
        super().__init__(f"{code} {msg}")
        self.code, self.msg, self.status = code, msg, status


@dataclass(slots=True)
class _Market:
    inst: Instrument
    inst_id: str  # "BTC-USDT" | "BTC-USDT-SWAP"
    inst_type: str  # "SPOT" | "SWAP"
    limits: VenueLimits
    seq: int = 0  # the last books seqId sent
    bids: dict[int, int] | None = None  # the published book (None: nothing published yet)
    asks: dict[int, int] | None = None

    def px(self, ticks: int) -> str:
        return self.limits.price_text(ticks)

    def sz(self, lots: int) -> str:
        return self.limits.qty_text(lots)


@dataclass(slots=True)
class _Order:
    market: _Market
    ord_id: str
    cl_ord_id: str
    core_id: str
    side: Side
    ord_type: str
    price_ticks: int
    lots: int
    reduce_only: bool
    pos_side: str
    td_mode: str
    c_time: int
    u_time: int
    state: str = "live"
    filled_lots: int = 0
    notional: float = 0.0
    fee: float = 0.0  # negative: paid
    fee_ccy: str = ""
    cancel_source: str = ""
    verdict: asyncio.Future[str | None] | None = None
    cancel_done: asyncio.Future[str | None] | None = None

    @property
    def open(self) -> bool:
        return self.state in ("live", "partially_filled")


@dataclass(frozen=True, slots=True)
class _Fill:
    bill_id: int
    trade_id: str
    order: _Order
    price_ticks: int
    lots: int
    fee: float
    fee_ccy: str
    maker: bool
    ts: int


class OkxDialect:
    name = "okx"

    def __init__(self, server: DialectServer, *, api_secret: str | None = None, hedge_mode: bool = False) -> None:
        self.server = server
        self.api_secret = api_secret
        self.hedge_mode = hedge_mode
        spot_limits, perp_limits = LIMITS["okx"]
        self.markets: dict[str, _Market] = {}
        for inst in server.exchange.instruments.values():
            spot = inst.kind is InstrumentKind.SPOT
            inst_id = f"{inst.base}-{inst.quote}" + ("" if spot else "-SWAP")
            self.markets[inst.symbol] = _Market(
                inst, inst_id, "SPOT" if spot else "SWAP", spot_limits if spot else perp_limits
            )
        self._by_inst_id = {m.inst_id: m for m in self.markets.values()}
        self._orders: dict[str, _Order] = {}  # by core id
        self._by_ord_id: dict[str, _Order] = {}
        self._fills: list[_Fill] = []
        self._seen_fills: set[str] = set()
        self._ids = itertools.count(1)
        self._ord_ids = itertools.count(700_000_000_000_001)
        self._bill_ids = itertools.count(900_000_000_000_001)
        self._trade_ids = itertools.count(400_000_001)
        self._creates: dict[str, deque[int]] = {m.inst_id: deque() for m in self.markets.values()}
        self.fee_shift: dict[str, float] = {}
        self._logged_in: set[str] = set()  # conn ids

    # ---- routes ---------------------------------------------------------------------------------

    def routes(self, server: DialectServer) -> list[web.RouteDef]:
        p = self._private
        return [
            web.get("/{host}/api/v5/public/time", self._time),
            web.get("/{host}/api/v5/public/instruments", self._instruments),
            web.get("/{host}/api/v5/account/config", p(self._account_config)),
            web.get("/{host}/api/v5/account/balance", p(self._balance)),
            web.get("/{host}/api/v5/account/positions", p(self._positions)),
            web.post("/{host}/api/v5/trade/order", p(self._place)),
            web.post("/{host}/api/v5/trade/batch-orders", p(self._place)),
            web.post("/{host}/api/v5/trade/cancel-order", p(self._cancel)),
            web.get("/{host}/api/v5/trade/order", p(self._query)),
            web.get("/{host}/api/v5/trade/orders-pending", p(self._pending)),
            web.get("/{host}/api/v5/trade/fills-history", p(self._fills_history)),
            web.get("/{host}/api/v5/trade/fills", p(self._fills_history)),
            server.websocket_route("/{host}/ws/v5/public"),
            server.websocket_route("/{host}/ws/v5/private"),
            server.websocket_route("/{host}/ws/v5/business"),
        ]

    # ---- REST plumbing --------------------------------------------------------------------------

    @staticmethod
    def _ok(data: list[Any]) -> web.Response:
        return web.json_response({"code": "0", "msg": "", "data": data})

    @staticmethod
    def _fail(code: str, msg: str, status: int = 200, data: list[Any] | None = None) -> web.Response:
        return web.json_response({"code": code, "msg": msg, "data": data or []}, status=status)

    def _private(self, handler: Any) -> Any:
        async def checked(request: web.Request) -> web.Response:
            body = await request.text() if request.method == "POST" else ""
            try:
                self._authenticate(request, body)
                params: Any = json.loads(body) if body else dict(request.query)
                if not isinstance(params, dict | list):
                    raise _Failed("50000", "Body can not be empty.", 400)
                response: web.Response = await handler(params)
            except _Failed as failed:
                return self._fail(failed.code, failed.msg, failed.status)
            except ValueError:
                return self._fail("50002", "Json data format error.", 400)
            return response

        return checked

    def _authenticate(self, request: web.Request, body: str) -> None:
        headers = request.headers
        if request.headers.get("x-simulated-trading") != "1":  # a demo key used on the live environment
            raise _Failed("50101", "APIKey does not match current environment.", 401)
        for name in AUTH_HEADERS:
            if not headers.get(name):
                raise _Failed("50103" if name == "OK-ACCESS-KEY" else "50113", f"Request header {name} can't be empty.",
                              401)  # fmt: skip
        try:
            ts = datetime.fromisoformat(headers["OK-ACCESS-TIMESTAMP"].replace("Z", "+00:00"))
        except ValueError:
            raise _Failed("50112", "Invalid OK-ACCESS-TIMESTAMP", 401) from None
        if abs(ts.timestamp() * 1000 - self.server.now_ms()) > TIMESTAMP_SKEW_MS:
            raise _Failed("50102", "Timestamp request expired", 401)
        path = request.path.partition("/api/")[2]
        query = f"?{request.query_string}" if request.query_string else ""
        payload = headers["OK-ACCESS-TIMESTAMP"] + request.method + "/api/" + path + query + body
        if not self._signature_ok(payload, headers["OK-ACCESS-SIGN"]):
            raise _Failed("50113", "Invalid Sign", 401)

    def _signature_ok(self, payload: str, signature: str) -> bool:
        try:
            raw = base64.b64decode(signature, validate=True)
        except (binascii.Error, ValueError):
            return False
        if self.api_secret is None:
            return len(raw) == 32  # no secret configured: any key, a well-formed signature
        expected = hmac.new(self.api_secret.encode(), payload.encode(), hashlib.sha256).digest()
        return hmac.compare_digest(expected, raw)

    def _market(self, inst_id: Any) -> _Market:
        m = self._by_inst_id.get(str(inst_id or ""))
        if m is None:
            raise _Failed("51001", "Instrument ID does not exist.")
        return m

    # ---- public REST ----------------------------------------------------------------------------

    async def _time(self, request: web.Request) -> web.Response:
        return self._ok([{"ts": str(self.server.now_ms())}])

    async def _instruments(self, request: web.Request) -> web.Response:
        inst_type = request.query.get("instType", "")
        if inst_type not in ("SPOT", "MARGIN", "SWAP", "FUTURES", "OPTION"):
            return self._fail("51000", "Parameter instType error")
        return self._ok([self._instrument_row(m) for m in self.markets.values() if m.inst_type == inst_type])

    @staticmethod
    def _instrument_row(m: _Market) -> dict[str, Any]:
        lim = m.limits
        row: dict[str, Any] = {
            "instType": m.inst_type, "instId": m.inst_id, "uly": "", "instFamily": "", "baseCcy": "", "quoteCcy": "",
            "settleCcy": "", "ctVal": "", "ctMult": "", "ctValCcy": "", "optType": "", "stk": "",
            "listTime": "1606468572000",
            "expTime": "", "lever": "10", "tickSz": lim.tick, "lotSz": lim.qty_step, "minSz": f"{lim.min_qty:g}",
            "ctType": "", "alias": "", "state": "live", "maxLmtSz": "9999999999", "maxMktSz": "1000000",
        }  # fmt: skip
        if m.inst_type == "SPOT":
            row.update(baseCcy=m.inst.base, quoteCcy=m.inst.quote)
        else:
            family = f"{m.inst.base}-{m.inst.quote}"
            row.update(uly=family, instFamily=family, settleCcy=m.inst.quote, ctVal=f"{lim.contract_size:g}",
                       ctMult="1",
                       ctValCcy=m.inst.base, ctType="linear", lever="100")  # fmt: skip
        return row

    # ---- account --------------------------------------------------------------------------------

    async def _account_config(self, params: dict[str, Any]) -> web.Response:
        mode = "long_short_mode" if self.hedge_mode else "net_mode"
        return self._ok([{"uid": "1", "mainUid": "1", "acctLv": "2", "posMode": mode, "autoLoan": False,
                          "greeksType": "PA", "level": "Lv1", "levelTmp": "", "ctIsoMode": "automatic",
                          "mgnIsoMode": "automatic", "perm": "read_only,trade", "label": "mock"}])  # fmt: skip

    async def _balance(self, params: dict[str, Any]) -> web.Response:
        frozen: dict[str, float] = {}
        for o in self._orders.values():
            if o.open and o.market.inst_type == "SPOT":
                inst, left = o.market.inst, (o.lots - o.filled_lots) * o.market.inst.lot_size
                ccy, amount = (
                    (inst.base, left) if o.side is Side.SELL else (inst.quote, left * o.price_ticks * inst.tick_size)
                )
                frozen[ccy] = frozen.get(ccy, 0.0) + amount
        details = []
        for ccy, bal in self.server.exchange.balances().items():
            bal += self.fee_shift.get(ccy, 0.0)
            held = min(frozen.get(ccy, 0.0), max(bal, 0.0))
            details.append({"ccy": ccy, "eq": f"{bal:.8f}", "cashBal": f"{bal:.8f}", "availBal": f"{bal - held:.8f}",
                            "frozenBal": f"{held:.8f}", "availEq": f"{bal - held:.8f}", "ordFrozen": f"{held:.8f}",
                            "uTime": str(self.server.now_ms())})  # fmt: skip
        return self._ok([{"totalEq": "0", "uTime": str(self.server.now_ms()), "details": details}])

    async def _positions(self, params: dict[str, Any]) -> web.Response:
        ex = self.server.exchange
        rows = []
        for m in self.markets.values():
            if m.inst_type != "SWAP" or params.get("instId") not in (None, m.inst_id):
                continue
            lots = ex.positions().get(m.inst.symbol, 0)
            if not lots:
                continue  # OKX lists held positions only
            entry = ex.accounts.entry_px.get(m.inst.symbol, 0.0)
            now = str(self.server.now_ms())
            pos_side = ("long" if lots > 0 else "short") if self.hedge_mode else "net"
            rows.append({
                "instType": "SWAP", "instId": m.inst_id, "posSide": pos_side,
                "pos": m.sz(abs(lots) if self.hedge_mode else lots), "availPos": m.sz(abs(lots)),
                "avgPx": f"{entry:.1f}",
                "mgnMode": "cross", "lever": "10", "ccy": m.inst.quote, "upl": "0", "uplRatio": "0", "liqPx": "",
                "markPx": f"{ex.fair_value_px(m.inst.symbol):.1f}",
                "notionalUsd": f"{abs(lots) * m.inst.lot_size * entry:.4f}",
                "posId": "1", "cTime": now, "uTime": now, "margin": "", "imr": "0", "mmr": "0",
            })  # fmt: skip
        return self._ok(rows)

    # ---- orders ---------------------------------------------------------------------------------

    async def _place(self, p: Any) -> web.Response:
        """POST /trade/order (one order) and /trade/batch-orders (a list: what ccxt's create_order
        sends, options.createOrder = privatePostTradeBatchOrders): per order sCode / sMsg; code "1"
        when all failed, "2" when some did (docs "Place multiple orders")."""
        orders = p if isinstance(p, list) else [p]
        rows = await asyncio.gather(*(self._place_one(o if isinstance(o, dict) else {}) for o in orders))
        failed = sum(row["sCode"] != "0" for row in rows)
        if not failed:
            return self._ok(rows)
        if failed == len(rows):
            return self._fail("1", "All operations failed", 200, rows)
        return self._fail("2", "Bulk operation partially succeeded", 200, rows)

    async def _place_one(self, p: dict[str, Any]) -> dict[str, Any]:
        cl_ord_id = str(p.get("clOrdId") or "")
        now = self.server.now_ms()
        try:
            m = self._market(p.get("instId"))
            window = self._creates[m.inst_id]
            while window and window[0] <= now - ORDER_RATE[1]:
                window.popleft()
            if len(window) >= ORDER_RATE[0]:
                raise _Failed("50011", "Rate limit reached. Please refer to API documentation and throttle requests "
                              "accordingly.", 429)  # fmt: skip
            window.append(now)
            order = self._new_order(m, p, cl_ord_id)
            order.verdict = asyncio.get_running_loop().create_future()
            self._orders[order.core_id] = order
            post_only = order.ord_type == "post_only"
            core_type = {"market": OrderType.MARKET, "ioc": OrderType.IOC}.get(order.ord_type, OrderType.LIMIT)
            self.server.submit(PlaceOrder(m.inst.symbol, order.core_id, order.side, order.price_ticks, order.lots,
                                          core_type, post_only=post_only, reduce_only=order.reduce_only))  # fmt: skip
            try:
                async with asyncio.timeout(10.0):
                    reason = await asyncio.shield(order.verdict)
            except TimeoutError:
                raise _Failed("50004", "API endpoint request timeout (does not mean that the request was successful "
                              "or failed, please check the request result).") from None  # fmt: skip
            if reason is not None and reason != "post_only_would_cross":  # post-only: taken, then canceled
                del self._orders[order.core_id]
                raise _refusal(reason)
        except _Failed as failed:
            return {
                "clOrdId": cl_ord_id,
                "ordId": "",
                "tag": "",
                "ts": str(now),
                "sCode": failed.code,
                "sMsg": failed.msg,
            }
        self._by_ord_id[order.ord_id] = order
        return {"clOrdId": order.cl_ord_id, "ordId": order.ord_id, "tag": str(p.get("tag") or ""), "ts": str(now),
                "sCode": "0", "sMsg": "Order placed"}  # fmt: skip

    def _new_order(self, m: _Market, p: dict[str, Any], cl_ord_id: str) -> _Order:
        side = {"buy": Side.BUY, "sell": Side.SELL}.get(str(p.get("side")))
        ord_type = str(p.get("ordType"))
        if side is None:
            raise _Failed("51000", "Parameter side error")
        if ord_type not in ("limit", "post_only", "ioc", "market"):
            raise _Failed("51000", "Parameter ordType error")
        td_mode = str(p.get("tdMode") or "")
        if td_mode != ("cash" if m.inst_type == "SPOT" else "cross"):
            raise _Failed("51000", "Parameter tdMode error")
        sz = _decimal(p.get("sz"), "sz")
        step, tick = Decimal(m.limits.qty_step), Decimal(m.limits.tick)
        if sz % step != 0:
            raise _Failed("51121", f"Order quantity must be a multiple of the lot size {m.limits.qty_step}.")
        if sz < Decimal(str(m.limits.min_qty)):
            raise _Failed("51020", "Order amount should be greater than the min available amount.")
        if m.inst_type == "SPOT" and ord_type == "market" and side is Side.BUY and p.get("tgtCcy") != "base_ccy":
            raise _Failed("51000", "Parameter tgtCcy error: the dialect models base_ccy market buys only")
        lots = int(sz / step)
        if ord_type == "market":
            snap = self.server.exchange.snapshot(m.inst.symbol, self.server.now_ns())
            best = (snap.asks if side is Side.BUY else snap.bids)[:1]
            price_ticks = best[0][0] if best else 0
        else:
            px = _decimal(p.get("px"), "px")
            if px <= 0 or px % tick != 0:
                raise _Failed("51000", "Parameter px error")
            price_ticks = int(px / tick)
        pos_side = str(p.get("posSide") or "net")
        if m.inst_type == "SWAP" and (pos_side in ("long", "short")) != self.hedge_mode:
            raise _Failed("51000", "Parameter posSide error")
        if cl_ord_id and any(o.open and o.cl_ord_id == cl_ord_id for o in self._orders.values()):
            raise _Failed("51016", "Duplicated clOrdId")
        reduce_only = str(p.get("reduceOnly", "")).lower() == "true" or p.get("reduceOnly") is True
        now = self.server.now_ms()
        return _Order(m, str(next(self._ord_ids)), cl_ord_id, f"o{next(self._ids)}", side, ord_type, price_ticks, lots,
                      reduce_only, pos_side, td_mode, now, now)  # fmt: skip

    def _find(self, p: dict[str, Any]) -> _Order | None:
        m = self._market(p.get("instId"))
        if p.get("ordId"):
            order = self._by_ord_id.get(str(p["ordId"]))
        elif p.get("clOrdId"):
            matches = [o for o in self._by_ord_id.values() if o.cl_ord_id == p["clOrdId"]]
            order = next((o for o in reversed(matches) if o.open), matches[-1] if matches else None)
        else:
            raise _Failed("51000", "Parameter ordId error")
        return order if order is not None and order.market is m else None

    async def _cancel(self, p: dict[str, Any]) -> web.Response:
        try:
            order = self._find(p)
            if order is None or not order.open:
                raise _Failed("51400", "Order cancellation failed as the order has been filled, canceled or does "
                              "not exist.")  # fmt: skip
            order.cancel_done = asyncio.get_running_loop().create_future()
            self.server.submit(CancelOrder(order.market.inst.symbol, order.core_id))
            async with asyncio.timeout(10.0):
                refused = await asyncio.shield(order.cancel_done)
            if refused is not None:
                raise _Failed("51400", "Order cancellation failed as the order has been filled, canceled or does "
                              "not exist.")  # fmt: skip
        except _Failed as failed:
            row = {"clOrdId": str(p.get("clOrdId") or ""), "ordId": str(p.get("ordId") or ""), "sCode": failed.code,
                   "sMsg": failed.msg}  # fmt: skip
            return self._fail("1", "All operations failed", 200, [row])
        return self._ok([{"clOrdId": order.cl_ord_id, "ordId": order.ord_id, "sCode": "0", "sMsg": ""}])

    async def _query(self, p: dict[str, Any]) -> web.Response:
        order = self._find(p)
        if order is None:
            raise _Failed("51603", "Order does not exist")
        return self._ok([self._order_row(order)])

    async def _pending(self, p: dict[str, Any]) -> web.Response:
        rows = [
            self._order_row(o) for o in reversed(list(self._by_ord_id.values()))
            if o.open and p.get("instId") in (None, o.market.inst_id)
            and p.get("instType") in (None, o.market.inst_type)
        ]  # fmt: skip
        return self._ok(rows[:100])

    async def _fills_history(self, p: dict[str, Any]) -> web.Response:
        try:
            limit = min(int(p.get("limit") or FILLS_LIMIT), FILLS_LIMIT)
            after = int(p["after"]) if p.get("after") else None
            before = int(p["before"]) if p.get("before") else None
            begin = int(p["begin"]) if p.get("begin") else None
            end = int(p["end"]) if p.get("end") else None
        except ValueError:
            raise _Failed("51000", "Parameter error") from None
        rows = []
        for fill in reversed(self._fills):  # newest first
            m = fill.order.market
            if p.get("instId") not in (None, m.inst_id) or p.get("instType") not in (None, m.inst_type):
                continue
            if (after is not None and fill.bill_id >= after) or (before is not None and fill.bill_id <= before):
                continue
            if (begin is not None and fill.ts < begin) or (end is not None and fill.ts > end):
                continue
            rows.append(self._fill_row(fill))
            if len(rows) == limit:
                break
        return self._ok(rows)

    # ---- rows -----------------------------------------------------------------------------------

    def _order_row(self, o: _Order, fill: _Fill | None = None) -> dict[str, Any]:
        m = o.market
        avg = o.notional / (o.filled_lots * m.inst.lot_size) if o.filled_lots else 0.0
        row: dict[str, Any] = {
            "instType": m.inst_type, "instId": m.inst_id, "ccy": "", "ordId": o.ord_id, "clOrdId": o.cl_ord_id,
            "tag": "", "px": m.px(o.price_ticks) if o.ord_type != "market" else "", "sz": m.sz(o.lots),
            "ordType": o.ord_type, "side": o.side.value, "posSide": o.pos_side, "tdMode": o.td_mode,
            "accFillSz": m.sz(o.filled_lots), "avgPx": f"{avg:.1f}" if o.filled_lots else "", "state": o.state,
            "lever": "" if m.inst_type == "SPOT" else "10", "fee": f"{o.fee:.10f}", "feeCcy": o.fee_ccy or m.inst.quote,
            "rebate": "0", "rebateCcy": m.inst.quote, "reduceOnly": "true" if o.reduce_only else "false",
            "cancelSource": o.cancel_source, "category": "normal", "uTime": str(o.u_time), "cTime": str(o.c_time),
            "fillPx": "", "fillSz": "0", "tradeId": "", "fillTime": "", "fillFee": "0", "fillFeeCcy": "",
            "execType": "", "tgtCcy": "", "source": "", "stpMode": "cancel_maker",
        }  # fmt: skip
        if fill is not None:
            row.update(fillPx=m.px(fill.price_ticks), fillSz=m.sz(fill.lots), tradeId=fill.trade_id,
                       fillTime=str(fill.ts), fillFee=f"{fill.fee:.10f}", fillFeeCcy=fill.fee_ccy,
                       execType="M" if fill.maker else "T")  # fmt: skip
        return row

    def _fill_row(self, f: _Fill) -> dict[str, Any]:
        o, m = f.order, f.order.market
        return {
            "instType": m.inst_type, "instId": m.inst_id, "tradeId": f.trade_id, "ordId": o.ord_id,
            "clOrdId": o.cl_ord_id, "billId": str(f.bill_id), "tag": "", "fillPx": m.px(f.price_ticks),
            "fillSz": m.sz(f.lots), "side": o.side.value, "posSide": o.pos_side, "execType": "M" if f.maker else "T",
            "feeCcy": f.fee_ccy, "fee": f"{f.fee:.10f}", "ts": str(f.ts), "fillTime": str(f.ts),
            "subType": "1" if o.side is Side.BUY else "2",
        }  # fmt: skip

    # ---- core events ----------------------------------------------------------------------------

    async def on_events(self, events: list[Event]) -> None:
        settled: dict[asyncio.Future[str | None], str | None] = {}
        rows: list[dict[str, Any]] = []
        books: set[str] = set()
        for event in events:
            if isinstance(event, BookSnapshot | BookDelta) and event.symbol in self.markets:
                books.add(event.symbol)
                continue
            if isinstance(event, TradePrint) and event.symbol in self.markets:
                await self._publish_trade(self.markets[event.symbol], event)
                continue
            order = self._orders.get(getattr(event, "client_id", ""))
            if order is None:
                continue
            if isinstance(event, OrderAccepted):
                if order.ord_type in ("limit", "post_only") and order.verdict is not None:
                    settled.setdefault(order.verdict, None)
                rows.append(self._order_row(order))
            elif isinstance(event, OrderRejected):
                if event.reason == "post_only_would_cross":  # accepted, then canceled by the system
                    order.state, order.cancel_source = "canceled", "31"
                    order.u_time = event.ts_venue_ns // 1_000_000
                    rows.append(self._order_row(order))
                else:
                    order.state = "rejected"
                if order.verdict is not None:
                    settled.setdefault(order.verdict, event.reason)
            elif isinstance(event, OrderFilled):
                if event.fill_id in self._seen_fills:
                    continue
                self._seen_fills.add(event.fill_id)
                rows.append(self._order_row(order, self._on_fill(order, event)))
                if not order.open and order.cancel_done is not None:
                    settled.setdefault(order.cancel_done, "filled")
            elif isinstance(event, OrderCanceled):
                if not order.open:
                    continue
                order.state = "canceled"
                order.cancel_source = {"requested": "1", "self_trade_prevented": "32"}.get(event.reason, "14")
                order.u_time = event.ts_venue_ns // 1_000_000
                rows.append(self._order_row(order))
                if order.cancel_done is not None:
                    settled.setdefault(order.cancel_done, None)
            elif isinstance(event, CancelRejected) and order.cancel_done is not None:
                settled.setdefault(order.cancel_done, event.reason)
            if not order.open and order.verdict is not None:
                settled.setdefault(order.verdict, None)
        for future, value in settled.items():
            if not future.done():
                future.set_result(value)
        if rows:
            await self._publish_orders(rows)
        for symbol in books:
            await self._publish_book(self.markets[symbol])

    def _on_fill(self, order: _Order, fill: OrderFilled) -> _Fill:
        m = order.market
        px = float(Decimal(fill.price_ticks) * Decimal(m.limits.tick))
        order.filled_lots += fill.size_lots
        order.notional += px * fill.size_lots * m.inst.lot_size
        order.state = "filled" if order.filled_lots >= order.lots else "partially_filled"
        order.u_time = fill.ts_venue_ns // 1_000_000
        fee, ccy = -fill.fee_quote, m.inst.quote
        if m.inst_type == "SPOT" and fill.side is Side.BUY:  # paid in the asset received
            fee, ccy = -round(fill.fee_quote / px, 8), m.inst.base  # BTC to its 8 decimals
            self.fee_shift[m.inst.quote] = self.fee_shift.get(m.inst.quote, 0.0) + fill.fee_quote
            self.fee_shift[m.inst.base] = self.fee_shift.get(m.inst.base, 0.0) + fee
        order.fee += fee
        order.fee_ccy = ccy
        record = _Fill(next(self._bill_ids), str(next(self._trade_ids)), order, fill.price_ticks, fill.size_lots, fee,
                       ccy, fill.liquidity is Liquidity.MAKER, order.u_time)  # fmt: skip
        self._fills.append(record)
        return record

    # ---- publishing -----------------------------------------------------------------------------

    async def _publish_orders(self, rows: list[dict[str, Any]]) -> None:
        message = {"arg": {"channel": "orders", "instType": "ANY", "uid": "1"}, "data": rows}
        for conn in list(self.server.connections):
            if conn.path == "/ws/v5/private" and "orders" in conn.topics and conn.conn_id in self._logged_in:
                await conn.send(message)

    async def _publish_trade(self, m: _Market, t: TradePrint) -> None:
        row = {"instId": m.inst_id, "tradeId": t.trade_id, "px": m.px(t.price_ticks), "sz": m.sz(t.size_lots),
               "side": t.aggressor.value, "ts": str(t.ts_venue_ns // 1_000_000), "count": "1"}  # fmt: skip
        message = {"arg": {"channel": "trades", "instId": m.inst_id}, "data": [row]}
        for conn in self._public_subscribers(f"trades:{m.inst_id}"):
            await conn.send(message)

    def _public_subscribers(self, topic: str) -> list[WsConn]:
        return [c for c in self.server.connections if c.path == "/ws/v5/public" and topic in c.topics]

    async def _publish_book(self, m: _Market) -> None:
        conns = self._public_subscribers(f"books:{m.inst_id}")
        if not conns:
            m.bids = m.asks = None
            return
        snap = self.server.exchange.snapshot(m.inst.symbol, self.server.now_ns())
        bids, asks = dict(snap.bids[:BOOK_DEPTH]), dict(snap.asks[:BOOK_DEPTH])
        if m.bids is None or m.asks is None:
            return
        db = {p: q for p, q in bids.items() if m.bids.get(p) != q} | {p: 0 for p in m.bids if p not in bids}
        da = {p: q for p, q in asks.items() if m.asks.get(p) != q} | {p: 0 for p in m.asks if p not in asks}
        if not db and not da:
            return
        previous = m.seq
        m.seq += 1
        m.bids, m.asks = bids, asks
        data = {"asks": self._levels(m, da), "bids": self._levels(m, db), "ts": str(self.server.now_ms()),
                "checksum": _checksum(m, bids, asks), "prevSeqId": previous, "seqId": m.seq}  # fmt: skip
        message = {"arg": {"channel": "books", "instId": m.inst_id}, "action": "update", "data": [data]}
        for conn in conns:
            await conn.send(message)

    async def _send_snapshot(self, conn: WsConn, m: _Market) -> None:
        """The first message of a `books` subscription. The dialect keeps one published book per
        instrument: a new subscriber gets it as a snapshot (the others' next update follows it)."""
        if m.bids is None or m.asks is None:
            snap = self.server.exchange.snapshot(m.inst.symbol, self.server.now_ns())
            m.bids, m.asks = dict(snap.bids[:BOOK_DEPTH]), dict(snap.asks[:BOOK_DEPTH])
            m.seq += 1
        data = {"asks": self._levels(m, m.asks), "bids": self._levels(m, m.bids), "ts": str(self.server.now_ms()),
                "checksum": _checksum(m, m.bids, m.asks), "prevSeqId": -1, "seqId": m.seq}  # fmt: skip
        await conn.send({"arg": {"channel": "books", "instId": m.inst_id}, "action": "snapshot", "data": [data]})

    @staticmethod
    def _levels(m: _Market, levels: dict[int, int]) -> list[list[str]]:
        return [[m.px(p), m.sz(q), "0", "1" if q else "0"] for p, q in levels.items()]

    # ---- websocket requests ---------------------------------------------------------------------

    async def on_ws_message(self, conn: WsConn, message: Any) -> None:
        if message == "ping":
            await conn.send_text("pong")
            return
        if not isinstance(message, dict):
            await conn.send(
                {"event": "error", "code": "60012", "msg": f"Illegal request: {message}", "connId": conn.conn_id}
            )
            return
        op = message.get("op")
        if op == "login":
            await self._login(conn, message.get("args"))
        elif op in ("subscribe", "unsubscribe"):
            for arg in message.get("args") or []:
                await self._subscribe(conn, op, arg)
        else:
            await conn.send({"event": "error", "code": "60012", "msg": f"Illegal request: {json.dumps(message)}",
                             "connId": conn.conn_id})  # fmt: skip

    async def _login(self, conn: WsConn, args: Any) -> None:
        arg = args[0] if isinstance(args, list) and args and isinstance(args[0], dict) else {}
        ok = all(arg.get(k) for k in ("apiKey", "passphrase", "timestamp", "sign"))
        with contextlib.suppress(ValueError):
            ok = ok and abs(int(arg["timestamp"]) * 1000 - self.server.now_ms()) <= TIMESTAMP_SKEW_MS
        ok = ok and self._signature_ok(f"{arg.get('timestamp')}GET/users/self/verify", str(arg.get("sign")))
        if not ok:
            await conn.send({"event": "error", "code": "60009", "msg": "Login failed.", "connId": conn.conn_id})
            return
        self._logged_in.add(conn.conn_id)
        await conn.send({"event": "login", "code": "0", "msg": "", "connId": conn.conn_id})

    async def _subscribe(self, conn: WsConn, op: str, arg: Any) -> None:
        if not isinstance(arg, dict) or not arg.get("channel"):
            await conn.send({"event": "error", "code": "60012", "msg": "Illegal request", "connId": conn.conn_id})
            return
        channel = str(arg["channel"])
        private = conn.path == "/ws/v5/private"
        if private and conn.conn_id not in self._logged_in:
            await conn.send({"event": "error", "code": "60011", "msg": "Please log in", "connId": conn.conn_id})
            return
        if private and channel == "orders":
            topic = "orders"
        elif not private and channel in ("books", "trades") and arg.get("instId") in self._by_inst_id:
            topic = f"{channel}:{arg['instId']}"
        else:
            await conn.send({"event": "error", "code": "60018", "msg": f"Wrong URL or channel:{channel} doesn't exist.",
                             "connId": conn.conn_id})  # fmt: skip
            return
        if op == "unsubscribe":
            conn.topics.discard(topic)
            await conn.send({"event": "unsubscribe", "arg": arg, "connId": conn.conn_id})
            return
        conn.topics.add(topic)
        await conn.send({"event": "subscribe", "arg": arg, "connId": conn.conn_id})
        if channel == "books":
            await self._send_snapshot(conn, self._by_inst_id[str(arg["instId"])])


def _refusal(reason: str) -> _Failed:
    if reason == "insufficient_balance":
        return _Failed("51008", "Order failed. Insufficient USDT balance in account.")
    if reason == "reduce_only_would_increase":
        return _Failed("51169", "Order failed because you don't have any positions in this direction for this "
                       "contract to reduce or close.")  # fmt: skip
    if reason == "duplicate_client_id":
        return _Failed("51016", "Duplicated clOrdId")
    return _Failed("51000", f"Order failed: {reason}")


def _checksum(m: _Market, bids: dict[int, int], asks: dict[int, int]) -> int:
    """OKX's CRC32 of the top 25 levels, bid and ask interleaved as price:size (docs "Checksum"),
    as a signed 32-bit integer."""
    top_bids = sorted(bids.items(), reverse=True)[:25]
    top_asks = sorted(asks.items())[:25]
    parts: list[str] = []
    for i in range(max(len(top_bids), len(top_asks))):
        if i < len(top_bids):
            parts += [m.px(top_bids[i][0]), m.sz(top_bids[i][1])]
        if i < len(top_asks):
            parts += [m.px(top_asks[i][0]), m.sz(top_asks[i][1])]
    crc = zlib.crc32(":".join(parts).encode())
    return crc - (1 << 32) if crc >= 1 << 31 else crc


def _decimal(value: Any, name: str) -> Decimal:
    try:
        number = Decimal(str(value))
    except ArithmeticError:
        raise _Failed("51000", f"Parameter {name} error") from None
    if not number.is_finite():
        raise _Failed("51000", f"Parameter {name} error")
    return number


def make(server: DialectServer, **options: Any) -> OkxDialect:
    return OkxDialect(server, **options)
