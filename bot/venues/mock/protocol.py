"""The mock exchange's JSON protocol over websockets (see docs/mock-protocol.md).

Prices and sizes travel as decimal strings in venue units (like real exchanges), never as ticks:
each side converts with the instruments sent in the `subscribed` message. Decoding is the edge:
`decode_event` raises `ProtocolError` on anything malformed (unknown type, missing field, NaN,
negative or zero price, ...) and the client drops and counts it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import orjson

from bot.domain import (
    BookDelta,
    BookSnapshot,
    CancelAll,
    CancelOrder,
    CancelRejected,
    Command,
    Event,
    FeedStatus,
    FundingPaid,
    Instrument,
    InstrumentKind,
    Level,
    Liquidity,
    MarkPrice,
    OrderAccepted,
    OrderCanceled,
    OrderFilled,
    OrderRejected,
    OrderType,
    PlaceOrder,
    PositionSnapshot,
    RequestSnapshot,
    Side,
    TradePrint,
)


class ProtocolError(ValueError):
    """A message that does not parse; `reason` is a short machine-readable tag."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


def dumps(message: dict[str, Any]) -> str:
    return orjson.dumps(message).decode()


def loads(raw: str | bytes) -> dict[str, Any]:
    try:
        message = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ProtocolError("not_json", str(exc)) from None
    if not isinstance(message, dict):
        raise ProtocolError("not_an_object")
    return message


def _decimals(step: float) -> int:
    exponent = Decimal(repr(step)).normalize().as_tuple().exponent
    return max(0, -exponent) if isinstance(exponent, int) else 0


def fmt_price(inst: Instrument, ticks: int) -> str:
    return f"{inst.price(ticks):.{_decimals(inst.tick_size)}f}"


def fmt_size(inst: Instrument, lots: int) -> str:
    return f"{inst.size(lots):.{_decimals(inst.lot_size)}f}"


# ---- instruments -----------------------------------------------------------------------------


def encode_instrument(inst: Instrument) -> dict[str, Any]:
    return {
        "symbol": inst.symbol,
        "kind": inst.kind.value,
        "base": inst.base,
        "quote": inst.quote,
        "tick_size": inst.tick_size,
        "lot_size": inst.lot_size,
        "min_notional": inst.min_notional,
        "maker_fee": inst.maker_fee,
        "taker_fee": inst.taker_fee,
    }


def decode_instrument(data: dict[str, Any]) -> Instrument:
    try:
        return Instrument(
            symbol=str(data["symbol"]),
            kind=InstrumentKind(data["kind"]),
            base=str(data["base"]),
            quote=str(data["quote"]),
            tick_size=float(data["tick_size"]),
            lot_size=float(data["lot_size"]),
            min_notional=float(data["min_notional"]),
            maker_fee=float(data["maker_fee"]),
            taker_fee=float(data["taker_fee"]),
        )
    except (KeyError, TypeError, ValueError, OverflowError) as exc:
        raise ProtocolError("bad_instrument", str(exc)) from None


# ---- events: exchange -> client --------------------------------------------------------------

_Decoder = Callable[[dict[str, Any], Instrument, int, int], Event]


def _levels(inst: Instrument, levels: tuple[Level, ...]) -> list[list[str]]:
    return [[fmt_price(inst, p), fmt_size(inst, q)] for p, q in levels]


def encode_event(event: Event, instruments: dict[str, Instrument]) -> dict[str, Any]:
    """One event as a protocol message (the server side)."""
    if isinstance(event, FeedStatus):
        return {"type": "feed_status", "symbol": event.symbol, "connected": event.connected,
                "reason": event.reason, "ts_ns": event.ts_venue_ns}  # fmt: skip
    inst = instruments[event.symbol]  # type: ignore[union-attr]
    ts = event.ts_venue_ns
    match event:
        case BookSnapshot():
            return {"type": "book_snapshot", "symbol": inst.symbol, "seq": event.seq,
                    "bids": _levels(inst, event.bids), "asks": _levels(inst, event.asks), "ts_ns": ts}  # fmt: skip
        case BookDelta():
            return {"type": "book_delta", "symbol": inst.symbol, "first_seq": event.first_seq,
                    "last_seq": event.last_seq, "bids": _levels(inst, event.bids),
                    "asks": _levels(inst, event.asks), "ts_ns": ts}  # fmt: skip
        case TradePrint():
            return {"type": "trade", "symbol": inst.symbol, "price": fmt_price(inst, event.price_ticks),
                    "size": fmt_size(inst, event.size_lots), "aggressor": event.aggressor.value,
                    "trade_id": event.trade_id, "ts_ns": ts}  # fmt: skip
        case MarkPrice():
            return {"type": "mark_price", "symbol": inst.symbol, "price": fmt_price(inst, event.mark_ticks),
                    "ts_ns": ts}  # fmt: skip
        case FundingPaid():
            return {"type": "funding", "symbol": inst.symbol, "rate": event.rate, "amount": event.amount_quote,
                    "ts_ns": ts}  # fmt: skip
        case OrderAccepted():
            return {"type": "order_accepted", "symbol": inst.symbol, "client_id": event.client_id,
                    "venue_order_id": event.venue_order_id, "ts_ns": ts}  # fmt: skip
        case OrderRejected() | OrderCanceled() | CancelRejected():
            kind = {OrderRejected: "order_rejected", OrderCanceled: "order_canceled",
                    CancelRejected: "cancel_rejected"}[type(event)]  # fmt: skip
            return {"type": kind, "symbol": inst.symbol, "client_id": event.client_id, "reason": event.reason,
                    "ts_ns": ts}  # fmt: skip
        case OrderFilled():
            return {"type": "order_filled", "symbol": inst.symbol, "client_id": event.client_id,
                    "fill_id": event.fill_id, "side": event.side.value, "price": fmt_price(inst, event.price_ticks),
                    "size": fmt_size(inst, event.size_lots), "fee": event.fee_quote,
                    "liquidity": event.liquidity.value, "leaves": fmt_size(inst, event.leaves_lots),
                    "ts_ns": ts}  # fmt: skip
        case PositionSnapshot():
            return {"type": "position", "symbol": inst.symbol, "position": fmt_size(inst, event.position_lots),
                    "ts_ns": ts}  # fmt: skip
    raise ProtocolError("unencodable", type(event).__name__)


def _num(message: dict[str, Any], key: str) -> float:
    try:
        value = float(message[key])
    except KeyError:
        raise ProtocolError("missing_field", key) from None
    except (TypeError, ValueError):
        raise ProtocolError("not_a_number", key) from None
    except OverflowError:  # an integer too large for a float
        raise ProtocolError("not_finite", key) from None
    if not math.isfinite(value):
        raise ProtocolError("not_finite", key)
    return value


def _field(message: dict[str, Any], key: str) -> Any:
    try:
        return message[key]
    except KeyError:
        raise ProtocolError("missing_field", key) from None


def _int(message: dict[str, Any], key: str) -> int:
    value = _field(message, key)
    if not isinstance(value, int) or isinstance(value, bool):
        raise ProtocolError("not_an_integer", key)
    return value


MAX_UNITS = 2**53
"""Largest price in ticks or size in lots the protocol accepts: beyond it a decimal string no longer
maps to one exact integer of ticks or lots (floats are exact integers only up to 2**53), and no
market trades such a size (1e300 of anything is a typo or an attack, not an order)."""


def _price_ticks(inst: Instrument, message: dict[str, Any], key: str) -> int:
    px = _num(message, key)
    if px <= 0:
        raise ProtocolError("non_positive_price", key)
    try:
        ticks = inst.ticks(px)
    except OverflowError:  # beyond any grid (px / tick is inf)
        raise ProtocolError("absurd_price", key) from None
    if ticks > MAX_UNITS:
        raise ProtocolError("absurd_price", f"{key}: {px:g} is more than {MAX_UNITS} ticks")
    return ticks


def _size_lots(inst: Instrument, value: float, key: str, allow_zero: bool) -> int:
    if value < 0 or (value == 0 and not allow_zero):
        raise ProtocolError("bad_size", key)
    try:
        lots = inst.lots(value)
    except OverflowError:
        raise ProtocolError("absurd_size", key) from None
    if lots > MAX_UNITS:
        raise ProtocolError("absurd_size", f"{key}: {value:g} is more than {MAX_UNITS} lots")
    return lots


def _decode_levels(inst: Instrument, message: dict[str, Any], key: str, allow_zero: bool) -> tuple[Level, ...]:
    raw = _field(message, key)
    if not isinstance(raw, list):
        raise ProtocolError("bad_levels", key)
    levels: list[Level] = []
    for entry in raw:
        if not isinstance(entry, list) or len(entry) != 2:
            raise ProtocolError("bad_level", key)
        pair = {"price": entry[0], "size": entry[1]}
        levels.append((_price_ticks(inst, pair, "price"), _size_lots(inst, _num(pair, "size"), key, allow_zero)))
    return tuple(levels)


def _side(value: Any) -> Side:
    try:
        return Side(value)
    except ValueError:
        raise ProtocolError("bad_side", repr(value)) from None


def decode_event(message: dict[str, Any], instruments: dict[str, Instrument], recv_ns: int) -> Event:
    """A protocol message as a domain event (the client side, i.e. the edge)."""
    kind = message.get("type")
    ts = _int(message, "ts_ns")
    symbol = message.get("symbol")
    if kind == "feed_status":
        return FeedStatus(str(symbol), bool(_field(message, "connected")), str(message.get("reason", "")), ts, recv_ns)
    inst = instruments.get(symbol) if isinstance(symbol, str) else None
    if kind not in _DECODERS:
        raise ProtocolError("unknown_type", repr(kind))
    if inst is None:
        raise ProtocolError("unknown_symbol", repr(symbol))
    return _DECODERS[kind](message, inst, ts, recv_ns)


def _d_snapshot(m: dict[str, Any], inst: Instrument, ts: int, recv: int) -> Event:
    bids = _decode_levels(inst, m, "bids", allow_zero=False)
    asks = _decode_levels(inst, m, "asks", allow_zero=False)
    return BookSnapshot(inst.symbol, _int(m, "seq"), bids, asks, ts, recv)


def _d_delta(m: dict[str, Any], inst: Instrument, ts: int, recv: int) -> Event:
    bids = _decode_levels(inst, m, "bids", allow_zero=True)
    asks = _decode_levels(inst, m, "asks", allow_zero=True)
    first, last = _int(m, "first_seq"), _int(m, "last_seq")
    if last < first:
        raise ProtocolError("bad_seq_range")
    return BookDelta(inst.symbol, first, last, bids, asks, ts, recv)


def _d_trade(m: dict[str, Any], inst: Instrument, ts: int, recv: int) -> Event:
    size = _size_lots(inst, _num(m, "size"), "size", allow_zero=False)
    return TradePrint(
        inst.symbol, _price_ticks(inst, m, "price"), size, _side(m.get("aggressor")), str(_field(m, "trade_id")),
        ts, recv,
    )  # fmt: skip


def _d_mark(m: dict[str, Any], inst: Instrument, ts: int, recv: int) -> Event:
    return MarkPrice(inst.symbol, _price_ticks(inst, m, "price"), ts, recv)


def _d_funding(m: dict[str, Any], inst: Instrument, ts: int, recv: int) -> Event:
    return FundingPaid(inst.symbol, _num(m, "rate"), _num(m, "amount"), ts, recv)


def _d_accepted(m: dict[str, Any], inst: Instrument, ts: int, recv: int) -> Event:
    return OrderAccepted(inst.symbol, str(_field(m, "client_id")), str(_field(m, "venue_order_id")), ts, recv)


def _d_reason(cls: type[OrderRejected | OrderCanceled | CancelRejected]) -> _Decoder:
    def decode(m: dict[str, Any], inst: Instrument, ts: int, recv: int) -> Event:
        return cls(inst.symbol, str(_field(m, "client_id")), str(_field(m, "reason")), ts, recv)

    return decode


def _d_filled(m: dict[str, Any], inst: Instrument, ts: int, recv: int) -> Event:
    size = _size_lots(inst, _num(m, "size"), "size", allow_zero=False)
    leaves = _size_lots(inst, _num(m, "leaves"), "leaves", allow_zero=True)
    try:
        liquidity = Liquidity(str(m.get("liquidity")))
    except ValueError:
        raise ProtocolError("bad_liquidity") from None
    return OrderFilled(
        inst.symbol, str(_field(m, "client_id")), str(_field(m, "fill_id")), _side(m.get("side")),
        _price_ticks(inst, m, "price"), size, _num(m, "fee"), liquidity, leaves, ts, recv,
    )  # fmt: skip


def _d_position(m: dict[str, Any], inst: Instrument, ts: int, recv: int) -> Event:
    position = _num(m, "position")  # signed: short positions are negative
    try:
        return PositionSnapshot(inst.symbol, inst.lots(position), ts, recv)
    except OverflowError:
        raise ProtocolError("absurd_size", "position") from None


_DECODERS: dict[str, _Decoder] = {
    "book_snapshot": _d_snapshot,
    "book_delta": _d_delta,
    "trade": _d_trade,
    "mark_price": _d_mark,
    "funding": _d_funding,
    "order_accepted": _d_accepted,
    "order_rejected": _d_reason(OrderRejected),
    "order_canceled": _d_reason(OrderCanceled),
    "cancel_rejected": _d_reason(CancelRejected),
    "order_filled": _d_filled,
    "position": _d_position,
}
EVENT_TYPES = frozenset(_DECODERS) | {"feed_status"}


# ---- commands: client -> exchange ------------------------------------------------------------


def encode_command(command: Command, instruments: dict[str, Instrument]) -> dict[str, Any]:
    match command:
        case PlaceOrder():
            inst = instruments[command.symbol]
            message: dict[str, Any] = {
                "op": "place", "symbol": command.symbol, "client_id": command.client_id,
                "side": command.side.value, "size": fmt_size(inst, command.size_lots),
                "order_type": command.order_type.value, "post_only": command.post_only,
                "reduce_only": command.reduce_only,
            }  # fmt: skip
            if command.order_type is not OrderType.MARKET:
                message["price"] = fmt_price(inst, command.price_ticks)
            return message
        case CancelOrder():
            return {"op": "cancel", "symbol": command.symbol, "client_id": command.client_id}
        case CancelAll():
            return {"op": "cancel_all", "symbol": command.symbol}
        case RequestSnapshot():
            return {"op": "snapshot", "symbol": command.symbol, "reason": command.reason}
    raise ProtocolError("unencodable", type(command).__name__)


COMMAND_OPS = ("place", "cancel", "cancel_all", "snapshot")
REQUEST_OPS = ("subscribe", "ping", "open_orders", "positions", "fills", "fault")
OPS = REQUEST_OPS + COMMAND_OPS


def check_op(message: dict[str, Any]) -> str:
    """The message's `op`, or ProtocolError naming what is wrong with it (and the ops there are)."""
    op = message.get("op")
    if op is None:
        raise ProtocolError("missing_op", f'the message has no "op" (one of {", ".join(OPS)})')
    if not isinstance(op, str) or op not in OPS:
        raise ProtocolError("unknown_op", f"{op!r} (one of {', '.join(OPS)})"[:200])
    return op


def decode_command(message: dict[str, Any], instruments: dict[str, Instrument]) -> Command:
    """A client's order message as a command (the server side). Raises ProtocolError."""
    op = check_op(message)
    if op not in COMMAND_OPS:
        raise ProtocolError("not_a_command", repr(op))
    symbol = message.get("symbol")
    if op == "cancel_all":
        if symbol is not None and (not isinstance(symbol, str) or symbol not in instruments):
            raise ProtocolError("unknown_symbol", repr(symbol))
        return CancelAll(symbol)
    inst = instruments.get(symbol) if isinstance(symbol, str) else None
    if inst is None:
        raise ProtocolError("unknown_symbol", repr(symbol))
    if op == "cancel":
        return CancelOrder(inst.symbol, str(_field(message, "client_id")))
    if op == "snapshot":
        return RequestSnapshot(inst.symbol, str(message.get("reason", "client")))
    if op != "place":
        raise ProtocolError("unknown_op", repr(op))
    try:
        order_type = OrderType(message.get("order_type", "limit"))
    except ValueError:
        raise ProtocolError("bad_order_type") from None
    price = 0 if order_type is OrderType.MARKET else _price_ticks(inst, message, "price")
    size = _size_lots(inst, _num(message, "size"), "size", allow_zero=False)
    return PlaceOrder(
        inst.symbol, str(_field(message, "client_id")), _side(message.get("side")), price, size, order_type,
        bool(message.get("post_only", True)), bool(message.get("reduce_only", False)),
    )  # fmt: skip


# ---- fill history: the `fills` request ---------------------------------------------------------

FILLS_PAGE_MAX = 500
"""Most fills in one `fills` reply (about 250 bytes each): a page stays far below the websocket's
1 MiB message limit; the client asks for the next page (a larger `offset`) while `more` is true."""


def fills_reply(fills: list[OrderFilled], instruments: dict[str, Instrument], more: bool) -> dict[str, Any]:
    """The server's answer to `{"op": "fills", "since_ns": N, "offset": K, "limit": L}`: one page."""
    return {"type": "fills", "fills": [encode_event(f, instruments) for f in fills], "more": more}


def decode_fills_request(message: dict[str, Any]) -> tuple[int, int, int]:
    """`(since_ns, offset, limit)` of a `fills` request: the page is fills `offset .. offset+limit-1`
    of those with `ts_venue_ns >= since_ns`, oldest first. `offset` defaults to 0; `limit` defaults
    to, and is capped at, FILLS_PAGE_MAX."""
    since_ns = _int(message, "since_ns")
    offset = message.get("offset", 0)
    if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
        raise ProtocolError("bad_offset", repr(offset))
    limit = message.get("limit", FILLS_PAGE_MAX)
    if not isinstance(limit, int) or isinstance(limit, bool) or limit <= 0:
        raise ProtocolError("bad_limit", repr(limit))
    return since_ns, offset, min(limit, FILLS_PAGE_MAX)


def decode_fills_reply(
    message: dict[str, Any], instruments: dict[str, Instrument], recv_ns: int
) -> tuple[list[OrderFilled], bool]:
    """The fills of one `fills` reply and its `more` flag (the client side). Raises ProtocolError."""
    raw = _field(message, "fills")
    if not isinstance(raw, list):
        raise ProtocolError("bad_fills")
    fills: list[OrderFilled] = []
    for item in raw:
        if not isinstance(item, dict) or item.get("type") != "order_filled":
            raise ProtocolError("bad_fill", repr(item)[:100])
        event = decode_event(item, instruments, recv_ns)
        assert isinstance(event, OrderFilled)
        fills.append(event)
    return fills, bool(message.get("more", False))
