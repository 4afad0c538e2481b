"""The mock exchange's JSON protocol: every message round-trips; malformed input is refused."""

from __future__ import annotations

import pytest

from bot.domain import (
    BookDelta,
    BookSnapshot,
    CancelAll,
    CancelOrder,
    CancelRejected,
    FeedStatus,
    FundingPaid,
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
from bot.venues.mock import MockExchange
from bot.venues.mock.presets import quiet_config
from bot.venues.mock.protocol import (
    ProtocolError,
    decode_command,
    decode_event,
    decode_instrument,
    dumps,
    encode_command,
    encode_event,
    encode_instrument,
    loads,
)

SPOT = "TOKEN/USDT"
PERP = "TOKEN/USDT:USDT"
INSTRUMENTS = MockExchange(quiet_config()).instruments

EVENTS = [
    BookSnapshot(SPOT, 5, ((9998, 300), (9997, 1)), ((10002, 169),), 1, 9),
    BookDelta(SPOT, 6, 6, ((9998, 0),), ((10001, 12),), 2, 9),
    TradePrint(SPOT, 10001, 50, Side.SELL, "t1", 3, 9),
    MarkPrice(PERP, 10005, 4, 9),
    FundingPaid(PERP, 0.0005, -0.25, 5, 9),
    OrderAccepted(SPOT, "c1", "M1", 6, 9),
    OrderRejected(SPOT, "c2", "post_only_would_cross", 7, 9),
    OrderCanceled(PERP, "c3", "venue_restart", 8, 9),
    CancelRejected(SPOT, "c4", "unknown_order", 9, 9),
    OrderFilled(SPOT, "c1", "F1", Side.BUY, 10002, 7, 0.0007, Liquidity.MAKER, 3, 10, 9),
    PositionSnapshot(PERP, -42, 11, 9),
    FeedStatus("*", False, "disconnect", 12, 9),
]


@pytest.mark.parametrize("event", EVENTS, ids=lambda e: type(e).__name__)
def test_every_event_round_trips(event: object) -> None:
    wire = dumps(encode_event(event, INSTRUMENTS))  # type: ignore[arg-type]
    assert decode_event(loads(wire), INSTRUMENTS, recv_ns=9) == event


def test_prices_travel_as_decimal_strings() -> None:
    message = encode_event(EVENTS[2], INSTRUMENTS)
    assert (message["price"], message["size"]) == ("100.01", "0.50")


COMMANDS = [
    PlaceOrder(SPOT, "a", Side.BUY, 9990, 150, OrderType.LIMIT, True, False),
    PlaceOrder(PERP, "b", Side.SELL, 10010, 3, OrderType.IOC, False, True),
    PlaceOrder(PERP, "c", Side.BUY, 0, 3, OrderType.MARKET, False, False),
    CancelOrder(SPOT, "a"),
    CancelAll(None),
    CancelAll(PERP),
    RequestSnapshot(SPOT, "gap"),
]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: type(c).__name__)
def test_every_command_round_trips(command: object) -> None:
    wire = dumps(encode_command(command, INSTRUMENTS))  # type: ignore[arg-type]
    assert decode_command(loads(wire), INSTRUMENTS) == command


def test_instruments_round_trip() -> None:
    for inst in INSTRUMENTS.values():
        assert decode_instrument(loads(dumps(encode_instrument(inst)))) == inst


TRADE = {"type": "trade", "symbol": SPOT, "price": "100", "size": "1", "aggressor": "buy", "trade_id": "1", "ts_ns": 1}


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"price": "NaN"}, "not_finite"),
        ({"price": "inf"}, "not_finite"),
        ({"price": "-1"}, "non_positive_price"),
        ({"price": "0"}, "non_positive_price"),
        ({"price": "abc"}, "not_a_number"),
        ({"size": "-1"}, "bad_size"),
        ({"size": "0"}, "bad_size"),
        ({"aggressor": "up"}, "bad_side"),
        ({"symbol": "NOPE/USDT"}, "unknown_symbol"),
        ({"type": "martian"}, "unknown_type"),
        ({"ts_ns": "soon"}, "not_an_integer"),
    ],
)
def test_malformed_events_are_refused(change: dict[str, object], reason: str) -> None:
    with pytest.raises(ProtocolError) as info:
        decode_event({**TRADE, **change}, INSTRUMENTS, 0)
    assert info.value.reason == reason


PLACE = {"op": "place", "symbol": SPOT, "client_id": "x", "side": "buy", "price": "1", "size": "1"}


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        ({"op": "place", "symbol": SPOT, "client_id": "x", "side": "buy", "price": "nan", "size": "1"}, "not_finite"),
        ({"op": "place", "symbol": SPOT, "client_id": "x", "side": "buy", "price": "1", "size": "0"}, "bad_size"),
        (
            {"op": "place", "symbol": "X/Y", "client_id": "x", "side": "buy", "price": "1", "size": "1"},
            "unknown_symbol",
        ),
        ({"op": "launch", "symbol": SPOT}, "unknown_op"),
    ],
)
def test_malformed_commands_are_refused(message: dict[str, object], reason: str) -> None:
    with pytest.raises(ProtocolError) as info:
        decode_command(message, INSTRUMENTS)
    assert info.value.reason == reason


def test_not_json_is_refused() -> None:
    with pytest.raises(ProtocolError):
        loads(b"\xff{")
    with pytest.raises(ProtocolError):
        loads("[1]")
