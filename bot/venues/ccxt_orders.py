"""Our orders on a ccxt venue: request building, client ids, and ccxt order/trade structures -> events.

Synchronous bookkeeping, fed by the async adapter with whatever ccxt returns (REST responses,
`watch_orders` / `watch_my_trades` pushes, or polled `fetch_order` / `fetch_my_trades`). Every input
may be duplicated or reordered, so each event is emitted once: acceptance once per order, a fill once
per venue trade id, a terminal event once.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter, OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from bot.domain import (
    Event,
    InstrumentKind,
    Liquidity,
    OrderAccepted,
    OrderCanceled,
    OrderFilled,
    OrderRejected,
    OrderType,
    PlaceOrder,
    Side,
    VenueReport,
)
from bot.venues.ccxt_book import MalformedMessage, finite_number
from bot.venues.ccxt_markets import MarketSpec

# How each venue names the client order id, as ccxt expects it in `params`, and what it accepts.
# create: ccxt maps the param to binance newClientOrderId / bybit orderLinkId / okx clOrdId.
# cancel: binance takes origClientOrderId, bybit orderLinkId, okx clOrdId (the order id may be None).
CLIENT_ID_PARAMS: dict[str, tuple[str, str]] = {
    "binance": ("clientOrderId", "origClientOrderId"),
    "bybit": ("orderLinkId", "orderLinkId"),
    "okx": ("clOrdId", "clOrdId"),
}
CLIENT_ID_PATTERNS: dict[str, re.Pattern[str]] = {
    "binance": re.compile(r"[.A-Z:/a-z0-9_-]{1,36}"),
    "bybit": re.compile(r"[A-Za-z0-9_-]{1,36}"),
    "okx": re.compile(r"[A-Za-z0-9]{1,32}"),  # alphanumeric only
}


def venue_client_id(exchange: str, client_id: str) -> str:
    """Our client id if the venue accepts it as is, else a stable 31-char alphanumeric digest."""
    if CLIENT_ID_PATTERNS[exchange].fullmatch(client_id):
        return client_id
    return "m" + hashlib.blake2b(client_id.encode(), digest_size=15).hexdigest()


@dataclass(frozen=True, slots=True)
class OrderRequest:
    """The arguments of one ccxt `create_order` call."""

    symbol: str
    type: str  # "limit" | "market"
    side: str
    amount: float
    price: float | None
    params: dict[str, Any]


def build_order_request(exchange: str, command: PlaceOrder, spec: MarketSpec, venue_cid: str) -> OrderRequest:
    """ccxt-unified params: postOnly, reduceOnly, timeInForce=IOC, plus the venue's client id name."""
    params: dict[str, Any] = {CLIENT_ID_PARAMS[exchange][0]: venue_cid}
    order_type = "market" if command.order_type is OrderType.MARKET else "limit"
    if command.order_type is OrderType.IOC:
        params["timeInForce"] = "IOC"
    elif command.order_type is OrderType.LIMIT and command.post_only:
        params["postOnly"] = True
    if command.reduce_only:
        params["reduceOnly"] = True
    price = None if order_type == "market" else spec.instrument.price(command.price_ticks)
    return OrderRequest(command.symbol, order_type, command.side.value, spec.amount(command.size_lots), price, params)


def cancel_params(exchange: str, venue_cid: str) -> dict[str, Any]:
    return {CLIENT_ID_PARAMS[exchange][1]: venue_cid}


def _ns(ms: Any, fallback_ns: int) -> int:
    ok = isinstance(ms, int | float) and not isinstance(ms, bool) and 0 < ms < 1e14  # ms; NaN and inf fail
    return int(ms) * 1_000_000 if ok else fallback_ns


def _price_amount(trade: Mapping[str, Any]) -> tuple[float, float]:
    """The trade's price and amount, both finite and > 0; raises MalformedMessage otherwise."""
    price, amount = finite_number(trade.get("price")), finite_number(trade.get("amount"))
    if price <= 0 or amount <= 0:
        raise MalformedMessage("non_positive_price" if price <= 0 else "non_positive_size")
    return price, amount


def trade_fill_id(trade: Mapping[str, Any]) -> str:
    """Our fill id of a ccxt trade: the venue's trade id (the same live and in the history)."""
    return str(trade.get("id") or f"{trade.get('order') or ''}:{trade.get('timestamp')}:{trade.get('amount')}")


# a post-only order the venue accepted and then cancelled because it would have crossed: bybit v5
# `rejectReason` (docs v5/order/create-order, "PostOnly ... it will be cancelled"; v5 enums)
POST_ONLY_CANCEL_REASONS = frozenset({"EC_PostOnlyWillTakeLiquidity"})
# the same on okx: the order's `cancelSource` 31, "The post-only order will take liquidity in taker
# orders" (OKX v5 docs, order channel / get order details: cancelSource)
OKX_POST_ONLY_CANCEL_SOURCES = frozenset({"31"})

# where venues put the client order id in a trade's raw payload (bybit executions, okx fills, binance)
_TRADE_CLIENT_ID_KEYS = ("orderLinkId", "clOrdId", "clientOrderId")


@dataclass(slots=True)
class TrackedOrder:
    command: PlaceOrder
    venue_cid: str
    venue_order_id: str = ""
    filled_lots: int = 0
    accepted: bool = False
    done: bool = False
    cancel_requested: bool = False
    fill_ids: set[str] = field(default_factory=set)


class OrderTracker:
    """State of our orders on one venue, keyed by our client id.

    A venue order id names an order only together with its symbol: Binance numbers orders per
    symbol, spot and USD-M alike (GET /api/v3/order and /fapi/v1/order need `symbol` beside
    `orderId`; ccxt's own order cache keys by symbol then id, and crashed when two symbols reused an
    id, ccxt/ccxt#26092). One tracker holds a venue's spot and perp orders, so a spot order and a
    hedge can carry the same id: looked up by the id alone, a re-delivered spot trade was booked
    as a fill of the hedge that reused the id (a perp position the venue never had)."""

    def __init__(self, exchange: str, specs: Mapping[str, MarketSpec], max_pending_trades: int = 1000) -> None:
        self._exchange = exchange
        self._specs = specs
        self._orders: dict[str, TrackedOrder] = {}
        self._by_venue_cid: dict[str, str] = {}
        self._by_venue_oid: dict[tuple[str, str], str] = {}  # (symbol, venue order id) -> client id
        # trades whose order id we do not know yet (a push can beat the REST response), by (symbol, id)
        self._pending_trades: OrderedDict[tuple[str, str], list[Mapping[str, Any]]] = OrderedDict()
        self._max_pending = max_pending_trades
        # per spot symbol, the coins received (net of base-coin fees) not yet booked as a whole lot,
        # in base units, exact: each fill's size_lots rounds this running total, not its own size
        self._unbooked: dict[str, Decimal] = {}
        self.dropped: Counter[str] = Counter()
        """Order reports and trades refused as malformed, by reason."""

    def start_spot_position(self, symbol: str, balance: float, allocation: float) -> None:
        """The spot position the engine starts from is the venue's `balance - allocation` rounded to
        lots (`CcxtVenue.positions`); what that rounding leaves out is where the coins received are
        booked from, so the engine's lots stay the venue's rounded balance, not a sum of per-fill
        roundings."""
        lot = _exact(self._specs[symbol].instrument.lot_size)
        held = _exact(balance) - _exact(allocation)
        self._unbooked[symbol] = held - (held / lot).to_integral_value(ROUND_HALF_EVEN) * lot

    # ---- commands -------------------------------------------------------------------------------

    def register(self, command: PlaceOrder) -> TrackedOrder:
        venue_cid = venue_client_id(self._exchange, command.client_id)
        order = TrackedOrder(command=command, venue_cid=venue_cid)
        self._orders[command.client_id] = order
        self._by_venue_cid[venue_cid] = command.client_id
        return order

    def get(self, client_id: str) -> TrackedOrder | None:
        return self._orders.get(client_id)

    def open_client_ids(self, symbol: str | None = None) -> list[str]:
        return [
            cid
            for cid, order in self._orders.items()
            if not order.done and (symbol is None or order.command.symbol == symbol)
        ]

    def venue_order_ids(self, symbol: str) -> dict[str, str]:
        """Venue order id -> our client id, for `symbol`'s orders still open (polling fallback)."""
        return {
            o.venue_order_id: cid
            for cid, o in self._orders.items()
            if o.venue_order_id and not o.done and o.command.symbol == symbol
        }

    def mark_cancel_requested(self, client_id: str) -> None:
        order = self._orders.get(client_id)
        if order is not None:
            order.cancel_requested = True

    def rejected(self, client_id: str, reason: str, now_ns: int) -> list[Event]:
        """The venue refused the create request: terminal, once."""
        order = self._orders.get(client_id)
        if order is None or order.done or order.accepted:
            return []
        order.done = True
        return [OrderRejected(order.command.symbol, client_id, reason, now_ns, now_ns)]

    # ---- venue reports --------------------------------------------------------------------------

    def _market_of(self, message: Mapping[str, Any]) -> str | None:
        """The symbol a report or trade is on, if it is one of ours. ccxt parses one into every
        order and trade structure; without it, a tracker of one market knows it anyway."""
        symbol = message.get("symbol")
        if symbol is None and len(self._specs) == 1:
            return next(iter(self._specs))
        return symbol if isinstance(symbol, str) and symbol in self._specs else None

    def _find(self, report: Mapping[str, Any]) -> TrackedOrder | None:
        cid = self._by_venue_cid.get(str(report.get("clientOrderId") or ""))
        if cid is None:
            market = self._market_of(report)
            cid = self._by_venue_oid.get((market, str(report.get("id") or ""))) if market is not None else None
        return self._orders.get(cid) if cid is not None else None

    def on_order(self, report: Mapping[str, Any], ts_recv_ns: int) -> list[Event]:
        """A ccxt order structure (REST response or push). Unknown orders are not ours: ignored."""
        if not isinstance(report, Mapping):
            self.dropped["not_an_order"] += 1
            return []
        order = self._find(report)
        if order is None:
            return []
        venue_oid = str(report.get("id") or "")
        early_trades: list[Mapping[str, Any]] = []
        if venue_oid and not order.venue_order_id:
            order.venue_order_id = venue_oid
            key = (order.command.symbol, venue_oid)
            self._by_venue_oid[key] = order.command.client_id
            early_trades = self._pending_trades.pop(key, [])
        events = self._order_state(order, report, ts_recv_ns)
        for trade in early_trades:  # fills pushed before we knew the order id, after its ack
            events.extend(self.on_trade(trade, ts_recv_ns))
        return events

    def _order_state(self, order: TrackedOrder, report: Mapping[str, Any], ts_recv_ns: int) -> list[Event]:
        if order.done:
            return []
        events: list[Event] = []
        ts_venue_ns = _ns(report.get("lastUpdateTimestamp") or report.get("timestamp"), ts_recv_ns)
        symbol, cid = order.command.symbol, order.command.client_id
        status = report.get("status")
        if status == "rejected":
            order.done = True
            return [OrderRejected(symbol, cid, "venue", ts_venue_ns, ts_recv_ns)]
        if not order.accepted and status in (None, "open", "closed", "canceled", "expired"):
            # a REST success (status None on bybit/okx) or any later state means the venue took it
            order.accepted = True
            events.append(OrderAccepted(symbol, cid, order.venue_order_id, ts_venue_ns, ts_recv_ns))
        if status in ("canceled", "expired"):
            order.done = True
            events.append(OrderCanceled(symbol, cid, self._cancel_reason(order, report), ts_venue_ns, ts_recv_ns))
        return events

    @staticmethod
    def _cancel_reason(order: TrackedOrder, report: Mapping[str, Any]) -> str:
        info = report.get("info")
        venue_reason = info.get("rejectReason") if isinstance(info, Mapping) else None
        cancel_source = info.get("cancelSource") if isinstance(info, Mapping) else None
        if venue_reason in POST_ONLY_CANCEL_REASONS or cancel_source in OKX_POST_ONLY_CANCEL_SOURCES:
            return "post_only_would_cross"  # the venue took it, then refused to let it cross
        if order.cancel_requested:
            return "requested"
        if order.command.order_type is not OrderType.LIMIT:
            return "ioc_expired"
        return "venue"

    def on_trade(self, trade: Mapping[str, Any], ts_recv_ns: int) -> list[Event]:
        """One of our executions (ccxt trade structure from watch_my_trades / fetch_my_trades).

        A malformed trade (price or amount missing, NaN, <= 0) is dropped and counted in `dropped`
        before its id is remembered, so a corrected copy of it still counts."""
        if not isinstance(trade, Mapping):
            self.dropped["not_a_trade"] += 1
            return []
        market = self._market_of(trade)
        if market is None:  # another market of the account's, or (several markets) no symbol to route by
            if trade.get("symbol") is None:
                self.dropped["trade_without_symbol"] += 1
            return []
        venue_oid = str(trade.get("order") or "")
        cid = self._by_venue_oid.get((market, venue_oid))
        if cid is None:
            if venue_oid:
                self._pending_trades.setdefault((market, venue_oid), []).append(trade)
                while len(self._pending_trades) > self._max_pending:
                    self._pending_trades.popitem(last=False)
            return []
        order = self._orders[cid]
        spec = self._specs[order.command.symbol]
        fill_id = trade_fill_id(trade)
        if fill_id in order.fill_ids:
            return []
        try:
            price, amount = _price_amount(trade)
            size_lots, price_ticks = spec.lots(amount), spec.instrument.ticks(price)
        except MalformedMessage as exc:
            self.dropped[exc.reason] += 1
            return []
        except OverflowError:  # beyond any grid
            self.dropped["absurd_trade"] += 1
            return []
        order.fill_ids.add(fill_id)
        order.filled_lots += size_lots  # the order's own accounting: the venue's executed size
        leaves = max(order.command.size_lots - order.filled_lots, 0)
        if leaves == 0:
            order.done = True
        liquidity = self._liquidity(trade, order.command.post_only)
        fee = venue_fee(trade)
        side = order.command.side
        fill = OrderFilled(
            symbol=order.command.symbol,
            client_id=cid,
            fill_id=fill_id,
            side=side,
            price_ticks=price_ticks,
            size_lots=self._booked_lots(spec, side, size_lots, amount, fee),
            fee_quote=_fee_quote(fee, spec, price, size_lots, liquidity),
            liquidity=liquidity,
            leaves_lots=leaves,
            ts_venue_ns=_ns(trade.get("timestamp"), ts_recv_ns),
            ts_recv_ns=ts_recv_ns,
            report=_report(size_lots, fee),
        )
        return [fill]

    def _booked_lots(self, spec: MarketSpec, side: Side, lots: int, amount: float, fee: Fee | None) -> int:
        """A live fill's `size_lots`: the coins it adds to (a buy) or takes from (a sell) our spot
        inventory, net of a fee withheld in the base coin, booked against the symbol's running
        remainder (`_unbooked`), so the engine's lots follow the venue's balance: on Binance BTCUSDT
        (0.00001 BTC lots) a 0.002 BTC buy pays 0.000002 BTC, a fifth of a lot, which rounded per fill
        would vanish every time while the wallet pays it."""
        net = _base_fee(spec, amount, fee)
        if net is None:
            return lots
        symbol, lot = spec.instrument.symbol, _exact(spec.instrument.lot_size)
        total = self._unbooked.get(symbol, _ZERO) + side.sign * lots * lot - net
        booked = int((total / lot).to_integral_value(ROUND_HALF_EVEN))
        self._unbooked[symbol] = total - booked * lot
        return abs(booked)

    def history_fill(self, trade: Mapping[str, Any], symbol: str, ts_recv_ns: int) -> OrderFilled:
        """A trade from the venue's history (`fetch_my_trades`) as a fill; no order state changes.

        The fill id is the one the live feed gives the same trade. The client id is ours when this
        process placed the order, else the venue's client order id from the raw payload, else
        `venue:<order id>` (an order of an earlier process). `leaves_lots` is 0: a trade does not say
        what remained of its order."""
        spec = self._specs[symbol]
        venue_oid = str(trade.get("order") or "")
        cid = self._by_venue_oid.get((symbol, venue_oid)) or self._client_id_in(trade) or f"venue:{venue_oid}"
        order = self._orders.get(cid)
        price, amount = _price_amount(trade)  # MalformedMessage (a ValueError) on a bad trade
        size_lots = spec.lots(amount)
        side = order.command.side if order is not None else side_of(trade["side"])
        liquidity = self._liquidity(trade, order.command.post_only if order is not None else None)
        fee = venue_fee(trade)
        return OrderFilled(
            symbol=symbol,
            client_id=cid,
            fill_id=trade_fill_id(trade),
            side=side,
            price_ticks=spec.instrument.ticks(price),
            size_lots=_received_lots(spec, side, size_lots, amount, fee),
            fee_quote=_fee_quote(fee, spec, price, size_lots, liquidity),
            liquidity=liquidity,
            leaves_lots=0,
            ts_venue_ns=_ns(trade.get("timestamp"), ts_recv_ns),
            ts_recv_ns=ts_recv_ns,
            report=_report(size_lots, fee),
        )

    def _client_id_in(self, trade: Mapping[str, Any]) -> str:
        info = trade.get("info")
        for key in _TRADE_CLIENT_ID_KEYS:
            venue_cid = str((info.get(key) if isinstance(info, Mapping) else None) or trade.get(key) or "")
            if venue_cid:
                return self._by_venue_cid.get(venue_cid, venue_cid)
        return ""

    @staticmethod
    def _liquidity(trade: Mapping[str, Any], post_only: bool | None) -> Liquidity:
        """The trade's own maker/taker flag; else a post-only order made it; else (order unknown) taker,
        the dearer assumption for the fee."""
        taker_or_maker = trade.get("takerOrMaker")
        if taker_or_maker in ("maker", "taker"):
            return Liquidity(taker_or_maker)
        return Liquidity.MAKER if post_only else Liquidity.TAKER


Fee = tuple[float, str]
"""A trade's fee as the venue reported it: (cost, currency), cost positive = paid."""

_ZERO = Decimal(0)


def _exact(value: float) -> Decimal:
    """A venue's decimal number as ccxt parsed it into a float, exactly: ccxt parses the venue's text
    with `float()` (base/exchange.py `parse_number`), and the float's shortest repr gives that text
    back (any decimal of up to 15 significant digits round-trips)."""
    return Decimal(repr(value))


def venue_fee(trade: Mapping[str, Any]) -> Fee | None:
    """ccxt's unified `trade['fee']`, `{cost, currency}` (docs.ccxt.com "Trade structure"; built by
    base/exchange.py `safe_trade` -> `parsed_fee_and_fees`, which makes `cost` a number; positive =
    paid, a rebate negative), OKX's pushed sign put right (`_okx_push_fee`). None when the venue gave
    no readable fee: a cost missing, NaN or infinite, or no currency."""
    fee = trade.get("fee")
    if not isinstance(fee, Mapping):
        return None
    cost, currency = fee.get("cost"), fee.get("currency")
    if cost is None or not isinstance(currency, str) or not currency:
        return None
    try:
        cost = finite_number(cost)
    except MalformedMessage:
        return None  # unreadable: the market's rate is charged rather than a NaN booked
    return (-cost if _okx_push_fee(trade, cost) else cost), currency


def _report(traded_lots: int, fee: Fee | None) -> VenueReport:
    return VenueReport(traded_lots, *(fee if fee is not None else (0.0, "")))


def _fee_quote(fee: Fee | None, spec: MarketSpec, price: float, lots: int, liq: Liquidity) -> float:
    """Fee in the quote currency. A fee in the base converts at the fill price; a fee in a third
    currency (BNB, OKB...) cannot be converted here, so the market's fee rate is used instead (the
    ledger keeps that fee in its own currency: `VenueReport`)."""
    inst = spec.instrument
    if fee is not None and fee[1] == inst.quote:
        return fee[0]
    if fee is not None and fee[1] == inst.base:
        return fee[0] * price
    rate = inst.maker_fee if liq is Liquidity.MAKER else inst.taker_fee
    return price * inst.size(lots) * rate


def _base_fee(spec: MarketSpec, amount: float, fee: Fee | None) -> Decimal | None:
    """The fee a spot fill pays in its base coin, exact; None when it pays none there. Binance, Bybit
    and OKX charge a spot trade's fee in the asset received: a buy pays BTC. A fee as large as the
    trade itself is not netted from the engine's lots (it would turn a buy into a sale); the ledger
    still books it as reported, and the venue's balance decides at the next reconciliation."""
    inst = spec.instrument
    if fee is None or inst.kind is not InstrumentKind.SPOT or fee[1] != inst.base or fee[0] == 0:
        return None
    return _exact(fee[0]) if abs(fee[0]) < amount else None


def _received_lots(spec: MarketSpec, side: Side, lots: int, amount: float, fee: Fee | None) -> int:
    """A fill's lots net of a base-coin fee, rounded on its own: for a fill from the venue's history
    (restart recovery), which moves no engine position (the engine starts from the venue's); the
    ledger books its exact size and fee from the `VenueReport`."""
    net = _base_fee(spec, amount, fee)
    if net is None:
        return lots
    lot = _exact(spec.instrument.lot_size)
    return abs(int(((side.sign * lots * lot - net) / lot).to_integral_value(ROUND_HALF_EVEN)))


def _okx_push_fee(trade: Mapping[str, Any], cost: float) -> bool:
    """A trade ccxt pro okx built from an `orders` push (`order_to_trade`) carries the row's `fillFee`
    as its fee cost unchanged, and OKX signs it the other way ("A negative number represents the user
    transaction fee charged by the platform", docs "Order channel"), while ccxt's REST `parse_trade`
    negates `fee`. Such a trade has `fillFee` in its info: its cost is the venue's sign, flip it."""
    info = trade.get("info")
    if not isinstance(info, Mapping) or "fillFee" not in info or "billId" in info:
        return False
    try:
        return float(info["fillFee"]) == cost and cost != 0.0
    except (TypeError, ValueError):
        return False


def side_of(value: Any) -> Side:
    return Side(str(value).lower())
