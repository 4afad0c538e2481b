"""Fill history (`fills_since`): the mock exchange's bounded fill log, its wire encoding, the
in-process venue, and `fetch_fills_since` for venues that cannot answer."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.config import MockFaultConfig
from bot.domain import Liquidity, OrderFilled, PlaceOrder, Side
from bot.venues.base import fetch_fills_since
from bot.venues.mock import MockExchange
from bot.venues.mock.presets import quiet_config
from bot.venues.mock.protocol import (
    FILLS_PAGE_MAX,
    ProtocolError,
    decode_fills_reply,
    decode_fills_request,
    dumps,
    fills_reply,
    loads,
)
from bot.venues.mock_inprocess import InProcessMockVenue

SPOT = "TOKEN/USDT"
MS = 1_000_000


def exchange_with_a_bid(lots: int = 30, **config: Any) -> tuple[MockExchange, int, int]:
    """A quiet exchange with our bid `b1` resting at the best bid behind `resting` lots."""
    ex = MockExchange(quiet_config(**config))
    ex.advance(1 * MS)
    best_bid, resting = ex.snapshot(SPOT, 0).bids[0]
    ex.submit(PlaceOrder(SPOT, "b1", Side.BUY, best_bid, lots), 1 * MS)
    ex.advance(100 * MS)
    return ex, best_bid, resting


def hit(ex: MockExchange, best_bid: int, lots: int, at_ns: int) -> None:
    ex.advance(at_ns)
    ex.simulate_taker(SPOT, Side.SELL, lots, limit_ticks=best_bid)


def test_each_fill_is_logged_once_as_made_and_listed_from_since() -> None:
    ex, best_bid, resting = exchange_with_a_bid()
    hit(ex, best_bid, resting + 10, 200 * MS)  # the background ahead of us, then 10 of our 30 lots
    hit(ex, best_bid, 5, 300 * MS)
    hit(ex, best_bid, 15, 400 * MS)
    fills = ex.fills_since(0)
    assert [(f.client_id, f.fill_id, f.size_lots, f.leaves_lots) for f in fills] == [
        ("b1", "F1", 10, 20),
        ("b1", "F2", 5, 15),
        ("b1", "F3", 15, 0),
    ]
    assert [f.ts_venue_ns for f in fills] == [200 * MS, 300 * MS, 400 * MS]
    assert all(f.price_ticks == best_bid and f.liquidity is Liquidity.MAKER and f.side is Side.BUY for f in fills)
    assert fills[0].fee_quote == pytest.approx(best_bid * 0.01 * 10 * 0.01 * 0.0001)
    assert [f.fill_id for f in ex.fills_since(300 * MS)] == ["F2", "F3"]  # since is inclusive
    assert [f.fill_id for f in ex.fills_since(300 * MS + 1)] == ["F3"]
    assert [f.fill_id for f in ex.fills_since(0, limit=2)] == ["F1", "F2"]  # the oldest first
    assert ex.fills_since(400 * MS + 1) == []


def test_the_log_matches_the_delivered_fills_even_when_the_messages_are_duplicated() -> None:
    ex, best_bid, resting = exchange_with_a_bid(faults=MockFaultConfig(duplicate_fill_prob=1.0))
    ex.simulate_taker(SPOT, Side.SELL, resting + 10, limit_ticks=best_bid)
    ex.simulate_taker(SPOT, Side.SELL, 20, limit_ticks=best_bid)
    delivered = [e for e in ex.advance(1_000 * MS) if isinstance(e, OrderFilled)]
    assert [f.fill_id for f in delivered] == ["F1", "F1", "F2", "F2"]
    logged = ex.fills_since(0)
    assert [f.fill_id for f in logged] == ["F1", "F2"]
    # the log holds the fill as delivered, but for the receive stamp
    assert logged == [OrderFilled(**{**_fields(f), "ts_recv_ns": f.ts_venue_ns}) for f in delivered[::2]]


def test_the_log_is_bounded_oldest_out() -> None:
    ex = MockExchange(quiet_config(), fill_history_size=2)
    ex.advance(1 * MS)
    best_bid, resting = ex.snapshot(SPOT, 0).bids[0]
    ex.submit(PlaceOrder(SPOT, "b1", Side.BUY, best_bid, 30), 1 * MS)
    ex.advance(100 * MS)
    for i, lots in enumerate((resting + 1, 1, 1)):
        hit(ex, best_bid, lots, (200 + 100 * i) * MS)
    assert [f.fill_id for f in ex.fills_since(0)] == ["F2", "F3"]


@given(st.lists(st.integers(1, 5), min_size=1, max_size=12), st.integers(0, 1_500))
def test_fills_since_is_the_suffix_of_the_log_at_or_after_since(takes: list[int], since_ms: int) -> None:
    ex, best_bid, resting = exchange_with_a_bid(lots=100)
    hit(ex, best_bid, resting, 150 * MS)  # clear the queue ahead of us: every later take fills us
    for i, lots in enumerate(takes):
        hit(ex, best_bid, lots, (200 + 100 * i) * MS)
    everything = ex.fills_since(0)
    assert [f.size_lots for f in everything] == takes
    since = ex.fills_since(since_ms * MS)
    assert since == [f for f in everything if f.ts_venue_ns >= since_ms * MS]


# ---- the `fills` request on the wire ---------------------------------------------------------


def test_a_fills_reply_round_trips_through_json() -> None:
    ex, best_bid, resting = exchange_with_a_bid()
    hit(ex, best_bid, resting + 10, 200 * MS)
    hit(ex, best_bid, 20, 300 * MS)
    fills = ex.fills_since(0)
    wire = loads(dumps(fills_reply(fills, ex.instruments, more=True)))
    decoded, more = decode_fills_reply(wire, ex.instruments, recv_ns=7)
    assert more is True
    assert decoded == [OrderFilled(**{**_fields(f), "ts_recv_ns": 7}) for f in fills]


def _fields(fill: OrderFilled) -> dict[str, Any]:
    return {name: getattr(fill, name) for name in OrderFilled.__slots__}


def test_fills_request_defaults_offset_0_and_a_page_and_caps_the_limit() -> None:
    assert decode_fills_request({"op": "fills", "since_ns": 5}) == (5, 0, FILLS_PAGE_MAX)
    assert decode_fills_request({"op": "fills", "since_ns": 5, "offset": 7, "limit": 3}) == (5, 7, 3)
    assert decode_fills_request({"op": "fills", "since_ns": 5, "limit": 10**9}) == (5, 0, FILLS_PAGE_MAX)


@pytest.mark.parametrize(
    "message",
    [
        {"op": "fills"},
        {"op": "fills", "since_ns": "5"},
        {"op": "fills", "since_ns": 5, "limit": 0},
        {"op": "fills", "since_ns": 5, "offset": -1},
    ],
)
def test_a_malformed_fills_request_is_refused(message: dict[str, Any]) -> None:
    with pytest.raises(ProtocolError):
        decode_fills_request(message)


@pytest.mark.parametrize(
    "reply",
    [
        {"type": "fills"},
        {"type": "fills", "fills": "x"},
        {"type": "fills", "fills": [{"type": "trade"}]},
        {"type": "fills", "fills": [{"type": "order_filled", "symbol": "TOKEN/USDT", "ts_ns": 1, "price": "nan"}]},
    ],
)
def test_a_malformed_fills_reply_is_refused(reply: dict[str, Any]) -> None:
    with pytest.raises(ProtocolError):
        decode_fills_reply(reply, MockExchange(quiet_config()).instruments, 0)


# ---- venues ------------------------------------------------------------------------------------


async def test_the_in_process_venue_answers_from_the_exchange_log_received_now() -> None:
    ex, best_bid, resting = exchange_with_a_bid()
    hit(ex, best_bid, resting + 10, 200 * MS)
    clock = iter(range(10**9, 10**10, 10**6))
    venue = InProcessMockVenue(ex, start_ns=5 * 10**9, monotonic_ns=lambda: next(clock))
    (fill,) = await venue.fills_since(0)
    assert (fill.fill_id, fill.ts_venue_ns, fill.size_lots) == ("F1", 200 * MS, 10)
    assert fill.ts_recv_ns >= 5 * 10**9
    assert await venue.fills_since(200 * MS + 1) == []


class NoHistory:
    name = "none"


class Refuses:
    name = "refuses"

    async def fills_since(self, since_ns: int) -> list[OrderFilled]:
        raise NotImplementedError


async def test_fetch_fills_since_maps_no_history_to_none() -> None:
    assert await fetch_fills_since(NoHistory(), 0) is None
    assert await fetch_fills_since(Refuses(), 0) is None
    ex, best_bid, resting = exchange_with_a_bid()
    hit(ex, best_bid, resting + 10, 200 * MS)
    assert [f.fill_id for f in await fetch_fills_since(InProcessMockVenue(ex), 0) or []] == ["F1"]
