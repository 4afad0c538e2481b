"""Binance's private side over the mock core: orders, trades, account, positions and the user data
streams, for spot (`/api/v3`, demo-api.binance.com) and USD-M futures (`/fapi`, demo-fapi.binance.com).

What ccxt 4.5 calls, read from its source (ccxt/async_support/binance.py, ccxt/pro/binance.py):
`fetch_balance` -> GET /api/v3/account; `create_order` -> POST /api/v3/order (spot `postOnly` ->
type LIMIT_MAKER; `newOrderRespType` FULL) and POST /fapi/v1/order (`postOnly` -> timeInForce GTX,
`reduceOnly`); `cancel_order` -> DELETE /api/v3/order, /fapi/v1/order (by `origClientOrderId` or
`orderId`); `fetch_open_orders` -> GET openOrders; `fetch_my_trades` -> GET /api/v3/myTrades,
/fapi/v1/userTrades; `fetch_positions` -> GET /fapi/v3/positionRisk after /fapi/v1/leverageBracket;
`fetch_position_mode` -> GET /fapi/v1/positionSide/dual. User data: spot through the websocket API
(`userDataStream.subscribe.signature` on demo-ws-api.binance.com/ws-api/v3, then
`{"subscriptionId": n, "event": {"e": "executionReport", ...}}`), USD-M through a listenKey (POST
/fapi/v1/listenKey, then `.../private/ws?listenKey=...` pushing `ORDER_TRADE_UPDATE`).

Semantics, each from Binance's docs (binance-spot-api-docs at a5e0bc3: rest-api.md, errors.md,
filters.md, user-data-stream.md; USD-M: developers.binance.com/docs/derivatives/usds-margined-futures):

- the REST answer comes after the matching engine's verdict (the core's accept / reject, which takes
  the core's latency); a verdict not in within `verdict_timeout_s` answers HTTP 503 `-1007 Timeout
  waiting for response from backend server. Send status unknown; execution status unknown.`;
- filters before the engine, `-1013 Filter failure: PRICE_FILTER | LOT_SIZE | NOTIONAL` (spot;
  filters.md) and on USD-M `-4014 Price not increased by tick size.`, `-4023 Qty not increased by
  step size.`, `-4164 Order's notional must be no smaller than 100 (unless you choose reduce only).`;
- the engine's refusals: spot `-2010` with "Account has insufficient balance for requested action.",
  "Order would immediately match and take." (LIMIT_MAKER that would cross), "Duplicate order sent.";
  USD-M `-5022` (GTX that would cross: "Due to the order could not be executed as maker, the Post Only
  order will be rejected..."), `-2022 ReduceOnly Order is rejected.`, `-2019 Margin is insufficient.`;
- position mode: one-way (`dualSidePosition` false, positionSide BOTH) unless `hedge_mode`; an order
  whose positionSide does not match answers `-4061 Order's position side does not match user's
  setting.`;
- cancel / query of an order that is not open: `-2011 Unknown order sent.` / `-2013 Order does not
  exist.`;
- myTrades: oldest first, `limit` default 500 / max 1000, a window of at most 24 h (spot; 7 days on
  USD-M) from `startTime` (`-1127 More than 24 hours between startTime and endTime.` beyond it),
  without a time the most recent `limit` trades, `fromId` = trades with id >= it;
- spot commission in the asset received (a buy pays it in the base coin, a sell in the quote coin; no
  BNB discount), so the spot balances move by that (the core charges quote: the dialect shifts the
  difference); USD-M commission in USDT.
"""

from __future__ import annotations

import asyncio
import itertools
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from bot.domain import (
    CancelOrder,
    CancelRejected,
    Event,
    Instrument,
    Liquidity,
    OrderAccepted,
    OrderCanceled,
    OrderFilled,
    OrderRejected,
    OrderType,
    PlaceOrder,
    Side,
)
from bot.venues.mock.dialects.binance_gate import Refusal
from bot.venues.mock.dialects.markets import VenueLimits

TRADES_WINDOW_MS = {"spot": 24 * 3600 * 1000, "linear": 7 * 24 * 3600 * 1000}
TRADES_LIMIT = (500, 1000)  # default, maximum


@dataclass(slots=True)
class BinanceMarket:
    inst: Instrument
    market_id: str
    category: str  # "spot" | "linear"
    limits: VenueLimits
    update_id: int = 1_000  # the last published book update id
    bids: dict[int, int] = field(default_factory=dict)  # the published book
    asks: dict[int, int] = field(default_factory=dict)

    def px(self, ticks: int) -> str:
        return self.limits.price_text(ticks)

    def qty(self, lots: int) -> str:
        return self.limits.qty_text(lots)


@dataclass(slots=True)
class _Order:
    market: BinanceMarket
    order_id: int
    client_id: str  # the venue's clientOrderId (ours or generated)
    core_id: str  # the id the core knows it by (unique for the dialect's life)
    side: Side
    order_type: str  # "LIMIT" | "LIMIT_MAKER" | "MARKET"
    tif: str  # "GTC" | "IOC" | "GTX" (USD-M post-only)
    price_ticks: int
    lots: int
    reduce_only: bool
    position_side: str
    created_ms: int
    updated_ms: int
    status: str = "NEW"
    filled_lots: int = 0
    cum_quote: float = 0.0
    verdict: asyncio.Future[str | None] | None = None  # core reason of a refusal, None = taken
    cancel_done: asyncio.Future[str | None] | None = None

    @property
    def open(self) -> bool:
        return self.status in ("NEW", "PARTIALLY_FILLED")


@dataclass(frozen=True, slots=True)
class _Trade:
    trade_id: int
    order: _Order
    price_ticks: int
    lots: int
    commission: float
    commission_asset: str
    maker: bool
    time_ms: int


class BinanceTrading:
    """Order state, trade history and the user data pushes; `push(category, listen_key, message)`
    is the dialect's way to reach the subscribed sockets."""

    def __init__(
        self,
        markets: dict[str, BinanceMarket],
        exchange: Any,
        submit: Callable[[Any], None],
        now_ms: Callable[[], int],
        *,
        hedge_mode: bool = False,
        verdict_timeout_s: float = 10.0,
    ) -> None:
        self.markets = markets  # by unified symbol
        self._exchange = exchange
        self._submit = submit
        self._now_ms = now_ms
        self.hedge_mode = hedge_mode
        self.verdict_timeout_s = verdict_timeout_s
        self._orders: dict[str, _Order] = {}  # by core id
        self._by_order_id: dict[tuple[str, int], _Order] = {}  # (symbol, orderId)
        self._order_ids = {symbol: itertools.count(1_000_001) for symbol in markets}
        self._trade_ids = {symbol: itertools.count(500_001) for symbol in markets}
        self._core_ids = itertools.count(1)
        self.trades: dict[str, list[_Trade]] = {symbol: [] for symbol in markets}
        self._seen_fills: set[str] = set()
        self.fee_shift: dict[str, float] = {}  # spot: what the venue's fee asset moves vs the core's quote fee
        self.listen_keys: dict[str, str] = {}  # listenKey -> category ("linear")
        self.pushes: list[tuple[str, dict[str, Any]]] = []  # (category, event) made by the last on_events

    # ---- lookups --------------------------------------------------------------------------------

    def market(self, category: str, market_id: str | None) -> BinanceMarket:
        if not market_id:
            raise Refusal(400, -1102, "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed.")
        for m in self.markets.values():
            if (m.market_id, m.category) == (market_id, category):
                return m
        raise Refusal(400, -1121, "Invalid symbol.")

    def find(self, m: BinanceMarket, params: dict[str, str]) -> _Order | None:
        if params.get("orderId"):
            try:
                return self._by_order_id.get((m.inst.symbol, int(params["orderId"])))
            except ValueError:
                raise Refusal(400, -1100, "Illegal characters found in parameter 'orderId'.") from None
        cid = params.get("origClientOrderId")
        if not cid:
            raise Refusal(400, -1102, "Param 'origClientOrderId' or 'orderId' must be sent, but both were empty/null!")
        matches = [o for o in self._by_order_id.values() if o.market is m and o.client_id == cid]
        open_ones = [o for o in matches if o.open]
        found = open_ones or matches
        return found[-1] if found else None

    # ---- orders ---------------------------------------------------------------------------------

    def new_order(self, m: BinanceMarket, p: dict[str, str]) -> _Order:
        """Parse and filter a new order (raises Refusal); not yet sent to the engine."""
        side = {"BUY": Side.BUY, "SELL": Side.SELL}.get(p.get("side", ""))
        if side is None:
            raise Refusal(400, -1102, "Mandatory parameter 'side' was not sent, was empty/null, or malformed.")
        order_type = p.get("type", "")
        spot = m.category == "spot"
        allowed = ("LIMIT", "LIMIT_MAKER", "MARKET") if spot else ("LIMIT", "MARKET")
        if order_type not in allowed:
            raise Refusal(400, -1116, "Invalid orderType.")
        tif = self._time_in_force(order_type, p.get("timeInForce", ""), spot)
        qty = _decimal(p.get("quantity"), "quantity")
        step, tick = Decimal(m.limits.qty_step), Decimal(m.limits.tick)
        if qty % step != 0 or qty < Decimal(str(m.limits.min_qty)):
            if spot:
                raise Refusal(400, -1013, "Filter failure: LOT_SIZE")
            if qty % step != 0:
                raise Refusal(400, -4023, "Qty not increased by step size.")
            raise Refusal(
                400, -4003, "Quantity less than or equal to zero." if qty <= 0 else "Quantity less than min qty."
            )
        lots = int(qty / step)
        if order_type == "MARKET":
            if p.get("price"):
                raise Refusal(400, -1106, "Parameter 'price' sent when not required.")
            snap = self._exchange.snapshot(m.inst.symbol, self._now_ms() * 1_000_000)
            best = (snap.asks if side is Side.BUY else snap.bids)[:1]
            price_ticks = best[0][0] if best else 0
        else:
            price = _decimal(p.get("price"), "price")
            if price <= 0 or price % tick != 0:
                if spot:
                    raise Refusal(400, -1013, "Filter failure: PRICE_FILTER")
                raise Refusal(400, -4014, "Price not increased by tick size.")
            price_ticks = int(price / tick)
        reduce_only = p.get("reduceOnly", "").lower() == "true"
        if spot and reduce_only:  # spot has no reduceOnly parameter
            raise Refusal(400, -1104, "Not all sent parameters were read.")
        position_side = p.get("positionSide") or "BOTH"
        if not spot and (position_side == "BOTH") == self.hedge_mode:
            raise Refusal(400, -4061, "Order's position side does not match user's setting.")
        notional = float(qty) * float(Decimal(price_ticks) * tick)
        if notional < m.limits.min_notional - 1e-9:
            if spot:
                raise Refusal(400, -1013, "Filter failure: NOTIONAL")
            if not reduce_only:  # USD-M exempts reduce-only orders from MIN_NOTIONAL
                least = f"{m.limits.min_notional:g}"
                raise Refusal(
                    400, -4164, f"Order's notional must be no smaller than {least} (unless you choose reduce only)."
                )
        client_id = p.get("newClientOrderId") or f"x-mock{secrets.token_hex(8)}"
        if any(o.open and o.market is m and o.client_id == client_id for o in self._orders.values()):
            if spot:
                raise Refusal(400, -2010, "Duplicate order sent.")
            raise Refusal(400, -4116, "ClientOrderId is duplicated.")
        now = self._now_ms()
        order = _Order(
            m, next(self._order_ids[m.inst.symbol]), client_id, f"b{next(self._core_ids)}", side, order_type, tif,
            price_ticks, lots, reduce_only, position_side, now, now,
        )  # fmt: skip
        return order

    @staticmethod
    def _time_in_force(order_type: str, tif: str, spot: bool) -> str:
        if order_type != "LIMIT":
            if tif:
                raise Refusal(400, -1106, "Parameter 'timeInForce' sent when not required.")
            return "GTC" if order_type == "LIMIT_MAKER" else "IOC"
        if not tif:
            raise Refusal(400, -1102, "Mandatory parameter 'timeInForce' was not sent, was empty/null, or malformed.")
        if tif not in (("GTC", "IOC") if spot else ("GTC", "IOC", "GTX")):
            raise Refusal(400, -1115, "Invalid timeInForce.")
        return tif

    async def place(self, order: _Order) -> _Order:
        """Send to the engine and wait for its verdict; raises the venue's refusal."""
        loop = asyncio.get_running_loop()
        order.verdict = loop.create_future()
        self._orders[order.core_id] = order
        m = order.market
        core_type = OrderType.MARKET if order.order_type == "MARKET" else (
            OrderType.IOC if order.tif == "IOC" else OrderType.LIMIT)  # fmt: skip
        post_only = order.order_type == "LIMIT_MAKER" or order.tif == "GTX"
        self._submit(PlaceOrder(m.inst.symbol, order.core_id, order.side, order.price_ticks, order.lots, core_type,
                                post_only=post_only, reduce_only=order.reduce_only))  # fmt: skip
        try:
            async with asyncio.timeout(self.verdict_timeout_s):
                reason = await asyncio.shield(order.verdict)
        except TimeoutError:
            raise Refusal(503, -1007, "Timeout waiting for response from backend server. "
                          "Send status unknown; execution status unknown.") from None  # fmt: skip
        if reason is not None:
            del self._orders[order.core_id]  # Binance records no refused order
            raise _engine_refusal(m.category, reason)
        self._by_order_id[(m.inst.symbol, order.order_id)] = order
        return order

    async def cancel(self, order: _Order | None) -> _Order:
        if order is None or not order.open:
            raise Refusal(400, -2011, "Unknown order sent.")
        loop = asyncio.get_running_loop()
        order.cancel_done = loop.create_future()
        self._submit(CancelOrder(order.market.inst.symbol, order.core_id))
        try:
            async with asyncio.timeout(self.verdict_timeout_s):
                refused = await asyncio.shield(order.cancel_done)
        except TimeoutError:
            raise Refusal(503, -1007, "Timeout waiting for response from backend server. "
                          "Send status unknown; execution status unknown.") from None  # fmt: skip
        if refused is not None:  # filled (or gone) before the cancel reached the engine
            raise Refusal(400, -2011, "Unknown order sent.")
        return order

    def open_orders(self, m: BinanceMarket | None, category: str) -> list[_Order]:
        return [
            o for o in self._by_order_id.values()
            if o.open and o.market.category == category and (m is None or o.market is m)
        ]  # fmt: skip

    # ---- engine events --------------------------------------------------------------------------

    def on_events(self, events: list[Event]) -> None:
        """Apply the core's private events; queue the user data pushes in `self.pushes`."""
        self.pushes = []
        settled: dict[asyncio.Future[str | None], str | None] = {}  # the first verdict of the batch wins
        for event in events:
            order = self._orders.get(getattr(event, "client_id", ""))
            if order is None:
                continue
            if isinstance(event, OrderAccepted):
                if order.tif in ("GTC", "GTX") and order.verdict is not None and not order.verdict.done():
                    settled.setdefault(order.verdict, None)  # resting: answered once the book has it
                self._push_order(order, "NEW", event.ts_venue_ns // 1_000_000)
            elif isinstance(event, OrderRejected):
                if order.verdict is not None and not order.verdict.done():
                    settled.setdefault(order.verdict, event.reason)
                order.status = "REJECTED"
            elif isinstance(event, OrderFilled):
                if event.fill_id in self._seen_fills:
                    continue  # the core's duplicate-delivery fault: one execution, one trade
                self._seen_fills.add(event.fill_id)
                self._on_fill(order, event)
                if not order.open and order.cancel_done is not None and not order.cancel_done.done():
                    settled.setdefault(order.cancel_done, "filled")
            elif isinstance(event, OrderCanceled):
                if not order.open:
                    continue
                expired = event.reason != "requested"
                order.status = "EXPIRED" if expired else "CANCELED"
                if event.reason == "self_trade_prevented":
                    order.status = "EXPIRED_IN_MATCH"
                order.updated_ms = event.ts_venue_ns // 1_000_000
                self._push_order(order, "EXPIRED" if expired else "CANCELED", order.updated_ms)
                if order.cancel_done is not None and not order.cancel_done.done():
                    settled.setdefault(order.cancel_done, None)
            elif isinstance(event, CancelRejected) and order.cancel_done is not None and not order.cancel_done.done():
                settled.setdefault(order.cancel_done, event.reason)
            if not order.open and order.verdict is not None and not order.verdict.done():
                settled.setdefault(order.verdict, None)  # IOC / market: answered once matching is over
        for future, value in settled.items():  # after the whole batch: the fills so far are in its answer
            future.set_result(value)

    def _on_fill(self, order: _Order, fill: OrderFilled) -> None:
        m = order.market
        px = float(Decimal(fill.price_ticks) * Decimal(m.limits.tick))
        qty = fill.size_lots * m.inst.lot_size
        order.filled_lots += fill.size_lots
        order.cum_quote += px * qty
        order.status = "FILLED" if order.filled_lots >= order.lots else "PARTIALLY_FILLED"
        order.updated_ms = fill.ts_venue_ns // 1_000_000
        commission, asset = fill.fee_quote, m.inst.quote
        if m.category == "spot" and fill.side is Side.BUY:  # paid in the asset received: the base coin
            commission, asset = round(fill.fee_quote / px, 8), m.inst.base  # BTC to its 8 decimals
            self.fee_shift[m.inst.quote] = self.fee_shift.get(m.inst.quote, 0.0) + fill.fee_quote
            self.fee_shift[m.inst.base] = self.fee_shift.get(m.inst.base, 0.0) - commission
        trade = _Trade(next(self._trade_ids[m.inst.symbol]), order, fill.price_ticks, fill.size_lots, commission,
                       asset, fill.liquidity is Liquidity.MAKER, order.updated_ms)  # fmt: skip
        self.trades[m.inst.symbol].append(trade)
        self._push_order(order, "TRADE", order.updated_ms, trade)

    # ---- rows -----------------------------------------------------------------------------------

    def order_row(self, o: _Order) -> dict[str, Any]:
        m = o.market
        row: dict[str, Any] = {
            "symbol": m.market_id, "orderId": o.order_id, "clientOrderId": o.client_id,
            "price": m.px(o.price_ticks) if o.order_type != "MARKET" else "0", "origQty": m.qty(o.lots),
            "executedQty": m.qty(o.filled_lots), "status": o.status, "timeInForce": o.tif, "type": o.order_type,
            "side": o.side.value.upper(),
        }  # fmt: skip
        if m.category == "spot":
            row.update(orderListId=-1, cummulativeQuoteQty=f"{o.cum_quote:.8f}", stopPrice="0.00000000",
                       icebergQty="0.00000000", time=o.created_ms, updateTime=o.updated_ms, isWorking=True,
                       workingTime=o.created_ms, origQuoteOrderQty="0.00000000",
                       selfTradePreventionMode="EXPIRE_MAKER")  # fmt: skip
        else:
            avg = o.cum_quote / (o.filled_lots * m.inst.lot_size) if o.filled_lots else 0.0
            row.update(avgPrice=f"{avg:.2f}", cumQty=m.qty(o.filled_lots), cumQuote=f"{o.cum_quote:.5f}",
                       reduceOnly=o.reduce_only, closePosition=False, positionSide=o.position_side, stopPrice="0",
                       workingType="CONTRACT_PRICE", priceProtect=False, origType=o.order_type, priceMatch="NONE",
                       selfTradePreventionMode="EXPIRE_MAKER", goodTillDate=0, time=o.created_ms,
                       updateTime=o.updated_ms)  # fmt: skip
        return row

    def place_answer(self, o: _Order) -> dict[str, Any]:
        row = self.order_row(o)
        if o.market.category == "spot":  # newOrderRespType FULL: the fills the order made at once
            row["transactTime"] = o.created_ms
            row["fills"] = [
                {"price": o.market.px(t.price_ticks), "qty": o.market.qty(t.lots), "commission": f"{t.commission:.8f}",
                 "commissionAsset": t.commission_asset, "tradeId": t.trade_id}
                for t in self.trades[o.market.inst.symbol] if t.order is o
            ]  # fmt: skip
        return row

    def trade_row(self, t: _Trade) -> dict[str, Any]:
        m = t.order.market
        px = float(Decimal(t.price_ticks) * Decimal(m.limits.tick))
        quote = px * t.lots * m.inst.lot_size
        buyer = t.order.side is Side.BUY
        row: dict[str, Any] = {
            "symbol": m.market_id, "id": t.trade_id, "orderId": t.order.order_id, "price": m.px(t.price_ticks),
            "qty": m.qty(t.lots), "commission": f"{t.commission:.8f}", "commissionAsset": t.commission_asset,
            "time": t.time_ms,
        }  # fmt: skip
        if m.category == "spot":
            row.update(orderListId=-1, quoteQty=f"{quote:.8f}", isBuyer=buyer, isMaker=t.maker, isBestMatch=True)
        else:
            row.update(side=t.order.side.value.upper(), quoteQty=f"{quote:.5f}", realizedPnl="0", marginAsset="USDT",
                       positionSide=t.order.position_side, buyer=buyer, maker=t.maker)  # fmt: skip
        return row

    def my_trades(self, m: BinanceMarket, p: dict[str, str]) -> list[dict[str, Any]]:
        try:
            limit = min(int(p.get("limit") or TRADES_LIMIT[0]), TRADES_LIMIT[1])
            start = int(p["startTime"]) if p.get("startTime") else None
            end = int(p["endTime"]) if p.get("endTime") else None
            from_id = int(p["fromId"]) if p.get("fromId") else None
            order_id = int(p["orderId"]) if p.get("orderId") else None
        except ValueError:
            raise Refusal(400, -1100, "Illegal characters found in a parameter.") from None
        if limit <= 0:
            raise Refusal(400, -1100, "Illegal characters found in parameter 'limit'.")
        window = TRADES_WINDOW_MS[m.category]
        if start is not None and end is not None and end - start > window:
            hours = window // 3_600_000
            raise Refusal(400, -1127, f"More than {hours} hours between startTime and endTime.")
        trades = self.trades[m.inst.symbol]
        if order_id is not None:
            trades = [t for t in trades if t.order.order_id == order_id]
        if from_id is not None:
            picked = [t for t in trades if t.trade_id >= from_id][:limit]
        elif start is not None or end is not None:
            lo = start if start is not None else end - window  # type: ignore[operator]
            hi = end if end is not None else lo + window
            picked = [t for t in trades if lo <= t.time_ms <= hi][:limit]
        else:
            picked = trades[-limit:]  # the most recent, oldest first
        return [self.trade_row(t) for t in picked]

    # ---- account --------------------------------------------------------------------------------

    def spot_balances(self) -> list[dict[str, str]]:
        locked: dict[str, float] = {}
        for o in self.open_orders(None, "spot"):
            inst = o.market.inst
            left = (o.lots - o.filled_lots) * inst.lot_size
            if o.side is Side.SELL:
                locked[inst.base] = locked.get(inst.base, 0.0) + left
            else:
                locked[inst.quote] = locked.get(inst.quote, 0.0) + left * o.price_ticks * inst.tick_size
        rows = []
        for asset, total in self._exchange.balances().items():
            total += self.fee_shift.get(asset, 0.0)
            lock = min(locked.get(asset, 0.0), max(total, 0.0))
            rows.append({"asset": asset, "free": f"{total - lock:.8f}", "locked": f"{lock:.8f}"})
        return rows

    def position_rows(self, m: BinanceMarket) -> list[dict[str, Any]]:
        lots = self._exchange.positions().get(m.inst.symbol, 0)
        entry = self._exchange.accounts.entry_px.get(m.inst.symbol, 0.0) if lots else 0.0
        fair = self._exchange.fair_value_px(m.inst.symbol)
        size = lots * m.inst.lot_size
        row = {
            "symbol": m.market_id, "positionSide": "BOTH", "positionAmt": m.qty(lots), "entryPrice": f"{entry:.2f}",
            "breakEvenPrice": f"{entry:.2f}", "markPrice": f"{fair:.2f}",
            "unRealizedProfit": f"{(fair - entry) * size:.8f}",
            "liquidationPrice": "0", "isolatedMargin": "0", "notional": f"{fair * size:.8f}", "marginAsset": "USDT",
            "isolatedWallet": "0", "initialMargin": f"{abs(fair * size) / 10:.8f}", "maintMargin": "0",
            "positionInitialMargin": f"{abs(fair * size) / 10:.8f}", "openOrderInitialMargin": "0", "adl": 0,
            "bidNotional": "0", "askNotional": "0", "updateTime": self._now_ms(),
        }  # fmt: skip
        if not self.hedge_mode:
            return [row] if lots or self.open_orders(m, "linear") else []  # v3 lists held or ordered symbols
        long_row = {**row, "positionSide": "LONG", "positionAmt": m.qty(max(lots, 0))}
        short_row = {**row, "positionSide": "SHORT", "positionAmt": m.qty(min(lots, 0))}
        return [long_row, short_row]

    # ---- user data pushes -----------------------------------------------------------------------

    def _push_order(self, o: _Order, execution: str, time_ms: int, trade: _Trade | None = None) -> None:
        m = o.market
        last_px = m.px(trade.price_ticks) if trade else "0"
        last_qty = m.qty(trade.lots) if trade else "0"
        if m.category == "spot":  # user-data-stream.md "Order Update"
            event: dict[str, Any] = {
                "e": "executionReport", "E": self._now_ms(), "s": m.market_id, "c": o.client_id,
                "S": o.side.value.upper(), "o": o.order_type, "f": o.tif, "q": m.qty(o.lots),
                "p": m.px(o.price_ticks) if o.order_type != "MARKET" else "0.00000000", "P": "0.00000000",
                "F": "0.00000000", "g": -1, "C": o.client_id if execution == "CANCELED" else "", "x": execution,
                "X": o.status, "r": "NONE", "i": o.order_id, "l": last_qty, "z": m.qty(o.filled_lots), "L": last_px,
                "n": f"{trade.commission:.8f}" if trade else "0", "N": trade.commission_asset if trade else None,
                "T": time_ms, "t": trade.trade_id if trade else -1, "I": time_ms,
                "w": o.open and o.order_type != "MARKET",
                "m": trade.maker if trade else False, "M": False, "O": o.created_ms, "Z": f"{o.cum_quote:.8f}",
                "Y": f"{float(last_px) * float(last_qty):.8f}", "Q": "0.00000000", "W": o.created_ms,
                "V": "EXPIRE_MAKER",
            }  # fmt: skip
            self.pushes.append(("spot", event))
            return
        avg = o.cum_quote / (o.filled_lots * m.inst.lot_size) if o.filled_lots else 0.0
        inner = {  # USD-M user data "Event: Order Update"
            "s": m.market_id, "c": o.client_id, "S": o.side.value.upper(), "o": o.order_type, "f": o.tif,
            "q": m.qty(o.lots), "p": m.px(o.price_ticks) if o.order_type != "MARKET" else "0", "ap": f"{avg:.5f}",
            "sp": "0", "x": execution, "X": o.status, "i": o.order_id, "l": last_qty, "z": m.qty(o.filled_lots),
            "L": last_px, "N": "USDT", "n": f"{trade.commission:.8f}" if trade else "0", "T": time_ms,
            "t": trade.trade_id if trade else 0, "b": "0", "a": "0", "m": trade.maker if trade else False,
            "R": o.reduce_only, "wt": "CONTRACT_PRICE", "ot": o.order_type, "ps": o.position_side, "cp": False,
            "rp": "0", "pP": False, "si": 0, "ss": 0, "V": "EXPIRE_MAKER", "pm": "NONE", "gtd": 0,
        }  # fmt: skip
        self.pushes.append(("linear", {"e": "ORDER_TRADE_UPDATE", "E": self._now_ms(), "T": time_ms, "o": inner}))


def _engine_refusal(category: str, reason: str) -> Refusal:
    """The matching engine's refusal (the core's reason) as Binance answers it."""
    spot = category == "spot"
    if reason == "post_only_would_cross":
        if spot:
            return Refusal(400, -2010, "Order would immediately match and take.")
        return Refusal(400, -5022, "Due to the order could not be executed as maker, the Post Only order will be "
                       "rejected. The order will not be recorded in the order history")  # fmt: skip
    if reason == "insufficient_balance":
        return Refusal(400, -2010, "Account has insufficient balance for requested action.") if spot else Refusal(
            400, -2019, "Margin is insufficient.")  # fmt: skip
    if reason == "reduce_only_would_increase":
        return Refusal(400, -2022, "ReduceOnly Order is rejected.")
    if reason == "duplicate_client_id":
        return Refusal(400, -2010, "Duplicate order sent.")
    if reason in ("venue_overloaded", "venue_restart"):
        return Refusal(
            503, -1008, "Server is currently overloaded with other requests. Please try again in a few minutes."
        )
    return Refusal(400, -2010, "NEW_ORDER_REJECTED")


def _decimal(value: str | None, name: str) -> Decimal:
    if not value:
        raise Refusal(400, -1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed.")
    try:
        number = Decimal(value)
    except ArithmeticError:
        raise Refusal(
            400,
            -1100,
            f"Illegal characters found in parameter '{name}'; legal range is '^([0-9]{{1,20}})(\\.[0-9]{{1,20}})?$'.",
        ) from None
    if not number.is_finite():
        raise Refusal(400, -1100, f"Illegal characters found in parameter '{name}'.")
    return number
