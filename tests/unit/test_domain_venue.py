"""Markets are (venue, symbol): every event and command names its venue, "" on a single-venue path."""

from __future__ import annotations

import dataclasses

from bot import domain
from bot.domain import DEFAULT_VENUE, BookDelta, PlaceOrder, Side, market_key

VENUE_TYPES = [
    t
    for t in vars(domain).values()
    if isinstance(t, type) and dataclasses.is_dataclass(t) and t not in (domain.Instrument, domain.Timer)
]


def test_every_event_and_command_names_its_venue_last_with_the_single_venue_default() -> None:
    assert len(VENUE_TYPES) == 17
    for t in VENUE_TYPES:
        last = dataclasses.fields(t)[-1]
        assert (last.name, last.default) == ("venue", DEFAULT_VENUE), t.__name__


def test_positional_construction_is_unchanged_and_the_venue_is_a_keyword() -> None:
    delta = BookDelta("T/U", 5, 6, (), (), 1, 2, 4)
    assert (delta.prev_seq, delta.venue) == (4, "")
    order = PlaceOrder("T/U", "c1", Side.BUY, 100, 1, venue="okx")
    assert (order.symbol, order.venue) == ("T/U", "okx")
    assert order != PlaceOrder("T/U", "c1", Side.BUY, 100, 1)  # same symbol on two venues: two orders


def test_market_key_is_the_bare_symbol_on_the_default_venue() -> None:
    assert market_key("", "TOKEN/USDT") == "TOKEN/USDT"
    assert market_key("okx", "TOKEN/USDT") == "TOKEN/USDT@okx"
    assert market_key("okx", "TOKEN/USDT") != market_key("bybit", "TOKEN/USDT")
