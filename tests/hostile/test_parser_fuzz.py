"""Hypothesis fuzz of every venue message parser, and adversarial messages each must drop and count.

Contract at the edge: a parser never raises on venue data; what it cannot trust it drops and counts
(Binance: `BinanceParser.dropped`; mock protocol: `ProtocolError`, which the client counts; ccxt:
`BookTracker.dropped`, `OrderTracker.dropped`, `MalformedMessage` for public trades). Values that
parse but are wrong for a book (price <= 0, crossed) are the core book's to refuse (see
test_engine_hostile.py).
"""

from __future__ import annotations

import contextlib
import json
import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.domain import BookDelta, BookSnapshot, Instrument, InstrumentKind, OrderFilled, PlaceOrder, Side, TradePrint
from bot.venues.binance import BinanceParser, BookTicker
from bot.venues.ccxt_book import BookTracker, MalformedMessage, trade_print
from bot.venues.ccxt_markets import MarketSpec
from bot.venues.ccxt_orders import OrderTracker
from bot.venues.mock.protocol import EVENT_TYPES, ProtocolError, decode_command, decode_event, loads

SPOT = Instrument("T/U", InstrumentKind.SPOT, "T", "U", 0.01, 0.001)
INSTRUMENTS = {SPOT.symbol: SPOT}
SPEC = MarketSpec(SPOT, "TU", 0.001)

# numbers a hostile venue may send: NaN, infinities, huge ints, negatives, zero, number-like strings
weird_numbers = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(10**400), max_value=10**400),
    st.sampled_from(["nan", "NaN", "inf", "-inf", "1e400", "-1", "0", "0.0", "abc", "", "1e-400", " 1 "]),
    st.none(),
    st.booleans(),
)
json_leaf = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=6))
json_values = st.recursive(
    json_leaf, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=10,
)  # fmt: skip
values = st.one_of(weird_numbers, json_values, st.lists(st.lists(weird_numbers | json_values, max_size=3), max_size=4))


# ---- Binance ---------------------------------------------------------------------------------


def _binance_messages() -> st.SearchStrategy[dict[str, Any]]:
    depth = st.fixed_dictionaries(
        {"e": st.just("depthUpdate")},
        optional={k: values for k in ("E", "U", "u", "pu", "b", "a", "s")},
    )
    trade = st.fixed_dictionaries({"e": st.just("trade")}, optional={k: values for k in ("E", "T", "p", "q", "m", "t")})
    ticker = st.fixed_dictionaries({"u": values, "B": values}, optional={k: values for k in ("b", "a", "A", "T")})
    snapshot = st.fixed_dictionaries({"lastUpdateId": values}, optional={k: values for k in ("bids", "asks", "T")})
    data = st.one_of(depth, trade, ticker, snapshot, json_values)
    return st.one_of(data, st.fixed_dictionaries({"stream": st.text(max_size=10), "data": data}))


@given(st.binary(max_size=200))
def test_binance_parse_line_never_raises_on_bytes(raw: bytes) -> None:
    parser = BinanceParser(SPOT)
    out = parser.parse_line(raw)
    assert out is None or isinstance(out, BookDelta | BookSnapshot | TradePrint | BookTicker)
    assert parser.parsed + sum(parser.dropped.values()) == 1


@given(_binance_messages(), st.integers(min_value=0, max_value=2**62))
def test_binance_parse_message_never_raises(message: dict[str, Any], recv_ns: int) -> None:
    parser = BinanceParser(SPOT)
    out = parser.parse_message(message, recv_ns)  # the live path: an already decoded message
    assert (out is None) == (sum(parser.dropped.values()) == 1)
    line = str(recv_ns).encode() + b" " + json.dumps(message, default=str).encode()  # the recorded path
    parser.parse_line(line)
    assert parser.parsed + sum(parser.dropped.values()) == 2


@pytest.mark.parametrize(
    "line",
    [
        b"1 not json",
        b"x {}",
        b'1 {"e": "depthUpdate", "U": 1, "u": 2, "E": 1, "b": [["nan", "1"]], "a": []}',
        b'1 {"e": "depthUpdate", "U": 1, "u": 2, "E": 1, "b": [["1e400", "1"]], "a": []}',
        b'1 {"e": "depthUpdate", "U": 1, "u": 2, "E": 1, "b": "garbage", "a": []}',
        b'1 {"e": "trade", "p": "NaN", "q": "1", "m": true, "t": 1, "T": 1}',
        b'1 {"e": "trade", "p": "1.00", "q": "1", "m": true}',
        b'1 {"e": "mystery"}',
        b"1 [1, 2, 3]",
    ],
)
def test_binance_drops_and_counts_garbage(line: bytes) -> None:
    parser = BinanceParser(SPOT)
    assert parser.parse_line(line) is None
    assert sum(parser.dropped.values()) == 1


# ---- mock exchange protocol ------------------------------------------------------------------

_PROTOCOL_KEYS = (
    "price", "size", "aggressor", "trade_id", "seq", "bids", "asks", "first_seq", "last_seq", "client_id",
    "fill_id", "side", "fee", "liquidity", "leaves", "position", "rate", "amount", "venue_order_id", "reason",
    "connected",
)  # fmt: skip


def _protocol_message(kind: str) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {"type": st.just(kind), "symbol": st.sampled_from([SPOT.symbol, "X/Y", 5]), "ts_ns": st.integers() | values},
        optional=dict.fromkeys(_PROTOCOL_KEYS, values),
    )


@given(st.sampled_from(sorted(EVENT_TYPES)).flatmap(_protocol_message))
def test_mock_protocol_decode_event_raises_only_protocol_error(message: dict[str, Any]) -> None:
    try:
        event = decode_event(message, INSTRUMENTS, 0)
    except ProtocolError:
        return
    # what it accepts is sane: prices on the grid and positive, sizes non-negative
    for name in ("price_ticks", "mark_ticks"):
        if hasattr(event, name):
            assert getattr(event, name) > 0
    if isinstance(event, BookSnapshot | BookDelta):
        assert all(p > 0 and q >= 0 for p, q in (*event.bids, *event.asks))
    if isinstance(event, OrderFilled):
        assert event.size_lots > 0 and math.isfinite(event.fee_quote)


@given(st.binary(max_size=100) | st.text(max_size=100))
def test_mock_protocol_loads_raises_only_protocol_error(raw: bytes | str) -> None:
    with contextlib.suppress(ProtocolError):
        assert isinstance(loads(raw), dict)


@given(st.fixed_dictionaries({"op": st.sampled_from(["place", "cancel", "cancel_all", "snapshot", "x"])},
                             optional={k: values for k in ("symbol", "client_id", "side", "size", "price",
                                                           "order_type", "post_only")}))  # fmt: skip
def test_mock_protocol_decode_command_raises_only_protocol_error(message: dict[str, Any]) -> None:
    with contextlib.suppress(ProtocolError):
        decode_command(message, INSTRUMENTS)


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        ({"type": "trade", "symbol": "T/U", "ts_ns": 1, "price": "nan", "size": "1", "aggressor": "buy",
          "trade_id": "1"}, "not_finite"),
        ({"type": "trade", "symbol": "T/U", "ts_ns": 1, "price": "-1", "size": "1", "aggressor": "buy",
          "trade_id": "1"}, "non_positive_price"),
        ({"type": "trade", "symbol": "T/U", "ts_ns": 1, "price": "0", "size": "1", "aggressor": "buy",
          "trade_id": "1"}, "non_positive_price"),
        ({"type": "mark_price", "symbol": "T/U", "ts_ns": 1, "price": "1e308"}, "absurd_price"),
        ({"type": "book_delta", "symbol": "T/U", "ts_ns": 1, "first_seq": 5, "last_seq": 4, "bids": [],
          "asks": []}, "bad_seq_range"),
        ({"type": "position", "symbol": "T/U", "ts_ns": 1, "position": 10**400}, "not_finite"),
        ({"type": "order_filled", "symbol": "T/U", "ts_ns": 1, "client_id": "c", "fill_id": "f", "side": "buy",
          "price": "1", "size": "1", "fee": "nan", "liquidity": "maker", "leaves": "0"}, "not_finite"),
    ],
)  # fmt: skip
def test_mock_protocol_refuses_adversarial_values(message: dict[str, Any], reason: str) -> None:
    with pytest.raises(ProtocolError) as info:
        decode_event(message, INSTRUMENTS, 0)
    assert info.value.reason == reason


# ---- ccxt ------------------------------------------------------------------------------------

ccxt_books = st.dictionaries(st.sampled_from(["bids", "asks", "timestamp", "nonce"]), values) | values


@given(st.lists(ccxt_books, min_size=1, max_size=4))
def test_ccxt_book_tracker_never_raises(books: list[Any]) -> None:
    tracker = BookTracker(SPEC, 5)
    for i, book in enumerate(books):
        out = tracker.update(book, i)
        if out is None:
            continue
        assert all(p > 0 and q >= 0 for p, q in (*out.bids, *out.asks))
    assert sum(tracker.dropped.values()) <= len(books)


@pytest.mark.parametrize(
    ("book", "reason"),
    [
        ({"bids": [[float("nan"), 1.0]], "asks": []}, "not_finite"),
        ({"bids": [[0.0, 1.0]], "asks": []}, "non_positive_price"),
        ({"bids": [[-1.0, 1.0]], "asks": []}, "non_positive_price"),
        ({"bids": [[1.0, -1.0]], "asks": []}, "negative_size"),
        ({"bids": [[1.0]], "asks": []}, "bad_level"),
        ({"bids": "garbage", "asks": []}, "levels_not_a_list"),
        ({"bids": [[1e308, 1.0]], "asks": []}, "absurd_level"),
        ("not a book", "not_a_book"),
    ],
)
def test_ccxt_book_drops_and_counts_bad_books(book: Any, reason: str) -> None:
    tracker = BookTracker(SPEC, 5)
    good = tracker.update({"bids": [[1.0, 1.0]], "asks": [[1.1, 1.0]], "nonce": 7}, 0)
    assert isinstance(good, BookSnapshot)
    assert tracker.update(book, 1) is None
    assert tracker.dropped == {reason: 1}
    # the next good book is a delta against the last good one: the engine's book stays exact
    nxt = tracker.update({"bids": [[1.0, 2.0]], "asks": [[1.1, 1.0]], "nonce": 8}, 2)
    assert isinstance(nxt, BookDelta) and nxt.bids == ((100, 2000),) and nxt.asks == ()


def test_ccxt_crossed_book_passes_to_the_core_book() -> None:
    tracker = BookTracker(SPEC, 5)
    snap = tracker.update({"bids": [[1.2, 1.0]], "asks": [[1.1, 1.0]]}, 0)
    assert isinstance(snap, BookSnapshot) and snap.bids[0][0] > snap.asks[0][0]  # the book marks it CROSSED


@given(st.dictionaries(st.sampled_from(["id", "price", "amount", "side", "timestamp"]), values) | values)
def test_ccxt_trade_print_raises_only_malformed(trade: Any) -> None:
    try:
        event = trade_print(SPEC, trade, 0)
    except MalformedMessage:
        return
    assert event.price_ticks >= 0 and event.size_lots >= 0


trades = st.dictionaries(
    st.sampled_from(["id", "order", "amount", "price", "timestamp", "fee", "takerOrMaker", "side", "info"]),
    values | st.dictionaries(st.sampled_from(["cost", "currency"]), values),
)


@given(st.lists(trades | values, max_size=4), st.lists(values | trades, max_size=3))
def test_ccxt_order_tracker_never_raises(fills: list[Any], reports: list[Any]) -> None:
    tracker = OrderTracker("binance", {SPOT.symbol: SPEC})
    order = tracker.register(PlaceOrder(SPOT.symbol, "q-1", Side.BUY, 100, 1000))
    tracker.on_order({"clientOrderId": order.venue_cid, "id": "V1", "status": "open"}, 0)
    for fill in fills:
        if isinstance(fill, dict):
            fill = {"order": "V1", **fill}
        for event in tracker.on_trade(fill, 1):
            assert isinstance(event, OrderFilled)
            assert event.size_lots > 0 and event.price_ticks > 0 and math.isfinite(event.fee_quote)
    for report in reports:
        tracker.on_order(report, 2)


@pytest.mark.parametrize(
    ("trade", "reason"),
    [
        ({"id": "t1", "order": "V1", "price": "nan", "amount": 1.0}, "not_finite"),
        ({"id": "t1", "order": "V1", "price": 0.0, "amount": 1.0}, "non_positive_price"),
        ({"id": "t1", "order": "V1", "price": 1.0, "amount": -1.0}, "non_positive_size"),
        ({"id": "t1", "order": "V1", "amount": 1.0}, "not_a_number"),
        ({"id": "t1", "order": "V1", "price": 1.0, "amount": 1e308}, "absurd_trade"),
    ],
)
def test_ccxt_bad_fill_is_dropped_counted_and_a_good_copy_still_counts(trade: dict[str, Any], reason: str) -> None:
    tracker = OrderTracker("binance", {SPOT.symbol: SPEC})
    order = tracker.register(PlaceOrder(SPOT.symbol, "q-1", Side.BUY, 100, 1000))
    tracker.on_order({"clientOrderId": order.venue_cid, "id": "V1", "status": "open"}, 0)
    assert tracker.on_trade(trade, 1) == []
    assert tracker.dropped == {reason: 1}
    good = tracker.on_trade({"id": "t1", "order": "V1", "price": 1.0, "amount": 0.5, "fee": {"cost": "nan"}}, 2)
    assert len(good) == 1 and good[0].size_lots == 500 and math.isfinite(good[0].fee_quote)


def test_ccxt_fill_of_an_unknown_order_is_not_emitted() -> None:
    tracker = OrderTracker("binance", {SPOT.symbol: SPEC})
    assert tracker.on_trade({"id": "t9", "order": "NOPE", "price": 1.0, "amount": 1.0}, 0) == []
    assert tracker.on_order({"clientOrderId": "not-ours", "id": "X", "status": "open"}, 0) == []
