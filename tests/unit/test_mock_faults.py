"""Every fault of the mock exchange, reproduced deterministically under a seed."""

from __future__ import annotations

import itertools

import pytest

from bot.config import MockExchangeConfig, MockFaultConfig
from bot.domain import (
    BookDelta,
    BookSnapshot,
    Event,
    FeedStatus,
    MarkPrice,
    OrderAccepted,
    OrderCanceled,
    OrderFilled,
    OrderRejected,
    OrderType,
    PlaceOrder,
    Side,
    TradePrint,
)
from bot.venues.mock import MockExchange
from bot.venues.mock.presets import quiet_config

SPOT = "TOKEN/USDT"
MS = 1_000_000
S = 1_000_000_000
PUBLIC = (BookDelta, TradePrint, MarkPrice)


def drive(ex: MockExchange, until_ns: int, start_ns: int = 0, step_ns: int = 100 * MS) -> list[Event]:
    out: list[Event] = []
    t = start_ns
    while t < until_ns:
        t = min(t + step_ns, until_ns)
        out += ex.advance(t)
    return out


def deltas(events: list[Event], symbol: str = SPOT) -> list[BookDelta]:
    return [e for e in events if isinstance(e, BookDelta) and e.symbol == symbol]


def test_disconnect_is_status_down_then_up_with_fresh_snapshots() -> None:
    ex = MockExchange(MockExchangeConfig(), seed=5)
    events = drive(ex, 1 * S)
    ex.faults.trigger("disconnect", duration_ms=500)
    events = drive(ex, 1100 * MS, start_ns=1 * S)
    ex.submit(PlaceOrder(SPOT, "while_down", Side.BUY, 9000, 100), 1100 * MS)
    events += drive(ex, 3 * S, start_ns=1100 * MS)
    statuses = [e for e in events if isinstance(e, FeedStatus)]
    assert [(s.connected, s.reason) for s in statuses] == [(False, "disconnect"), (True, "disconnect_recovered")]
    down, up = statuses[0].ts_venue_ns, statuses[1].ts_venue_ns
    assert up - down == 500 * MS
    assert not [e for e in events if isinstance(e, PUBLIC) and down < e.ts_venue_ns < up]
    after_up = events[events.index(statuses[1]) :]
    assert {e.symbol for e in after_up[1:3] if isinstance(e, BookSnapshot)} == {SPOT, "TOKEN/USDT:USDT"}
    (rej,) = [e for e in events if isinstance(e, OrderRejected)]
    assert (rej.client_id, rej.reason) == ("while_down", "venue_disconnected")
    assert ex.faults.counts["disconnect"] == 1


def test_restart_drops_open_orders() -> None:
    ex = MockExchange(quiet_config())
    ex.submit(PlaceOrder(SPOT, "resting", Side.BUY, 9990, 100), 1 * MS)
    drive(ex, 1 * S)
    ex.faults.trigger("restart", duration_ms=1000)
    events = drive(ex, 3 * S, start_ns=1 * S)
    assert ex.open_orders() == []
    up = next(e for e in events if isinstance(e, FeedStatus) and e.connected)
    (canceled,) = [e for e in events if isinstance(e, OrderCanceled)]
    assert (canceled.client_id, canceled.reason) == ("resting", "venue_restart")
    assert canceled.ts_recv_ns > up.ts_recv_ns  # held until the venue is back


def test_dropped_messages_leave_sequence_gaps() -> None:
    ex = MockExchange(MockExchangeConfig(faults=MockFaultConfig(drop_prob=0.2)), seed=2)
    ds = deltas(drive(ex, 20 * S))
    gaps = [b for a, b in itertools.pairwise(ds) if b.first_seq != a.last_seq + 1]
    assert gaps and all(b.first_seq > a.last_seq + 1 for a, b in itertools.pairwise(ds) if b in gaps)
    assert ex.faults.counts["drop"] > 0


def test_duplicated_messages_repeat_a_sequence_number() -> None:
    ex = MockExchange(MockExchangeConfig(faults=MockFaultConfig(duplicate_prob=0.2)), seed=2)
    ds = deltas(drive(ex, 20 * S))
    assert any(a == b for a, b in itertools.pairwise(ds))
    assert all(b.first_seq in (a.first_seq, a.last_seq + 1) for a, b in itertools.pairwise(ds))


def test_gap_skips_exactly_gap_size_ids() -> None:
    ex = MockExchange(MockExchangeConfig(faults=MockFaultConfig(gap_size=7)), seed=2)
    before = deltas(drive(ex, 1 * S))
    ex.faults.trigger("gap")
    after = deltas(drive(ex, 2 * S, start_ns=1 * S))
    assert after[0].first_seq == before[-1].last_seq + 1 + 7
    assert after[1].first_seq == after[0].last_seq + 1


def test_stale_feed_goes_silent_but_stays_connected() -> None:
    ex = MockExchange(MockExchangeConfig(), seed=2)
    drive(ex, 1 * S)
    ex.faults.trigger("stale", duration_ms=2000)
    events = drive(ex, 5 * S, start_ns=1 * S)
    assert not [e for e in events if isinstance(e, FeedStatus)]
    assert not [e for e in events if isinstance(e, PUBLIC) and 1 * S < e.ts_venue_ns < 3 * S]
    assert deltas([e for e in events if e.ts_venue_ns >= 3 * S])  # and it resumes


def test_crossed_book_is_published_then_repaired() -> None:
    ex = MockExchange(MockExchangeConfig(), seed=2)
    book = {"bids": {}, "asks": {}}  # type: ignore[var-annotated]

    def apply(events: list[Event]) -> list[bool]:
        crossed = []
        for e in events:
            if isinstance(e, BookSnapshot) and e.symbol == SPOT:
                book["bids"], book["asks"] = dict(e.bids), dict(e.asks)
            elif isinstance(e, BookDelta) and e.symbol == SPOT:
                for side, levels in (("bids", e.bids), ("asks", e.asks)):
                    for p, q in levels:
                        book[side].pop(p, None) if q == 0 else book[side].__setitem__(p, q)
                crossed.append(max(book["bids"]) >= min(book["asks"]))
        return crossed

    assert not any(apply(drive(ex, 1 * S)))
    ex.faults.trigger("crossed", duration_ms=1000)
    during = apply(drive(ex, 1900 * MS, start_ns=1 * S))
    assert during and all(during)
    after = apply(drive(ex, 4 * S, start_ns=1900 * MS))
    assert not after[-1]


def test_rejects_at_probability_one() -> None:
    ex = MockExchange(quiet_config(faults=MockFaultConfig(reject_prob=1.0)))
    ex.submit(PlaceOrder(SPOT, "r", Side.BUY, 9990, 100), 1 * MS)
    (rej,) = [e for e in ex.advance(1 * S) if isinstance(e, OrderRejected)]
    assert rej.reason == "venue_overloaded"


def test_delayed_ack_arrives_after_its_fills() -> None:
    ex = MockExchange(quiet_config(faults=MockFaultConfig(delayed_ack_prob=1.0, delayed_ack_ms=500)))
    ask = ex.snapshot(SPOT, 0).asks[0][0]
    ex.submit(PlaceOrder(SPOT, "t", Side.BUY, ask, 10, OrderType.IOC, post_only=False), 1 * MS)
    events = [e for e in ex.advance(2 * S) if isinstance(e, OrderAccepted | OrderFilled)]
    assert [type(e) for e in events] == [OrderFilled, OrderAccepted]


def test_duplicate_fill_messages_share_a_fill_id() -> None:
    ex = MockExchange(quiet_config(faults=MockFaultConfig(duplicate_fill_prob=1.0)))
    ask, size = ex.snapshot(SPOT, 0).asks[0]
    ex.submit(PlaceOrder(SPOT, "t", Side.BUY, ask, size + 5, OrderType.IOC, post_only=False), 1 * MS)
    fills = [e for e in ex.advance(2 * S) if isinstance(e, OrderFilled)]
    ids = [f.fill_id for f in fills]
    assert len(ids) == 2 * len(set(ids)) and ids[0] == ids[1]
    assert ex.positions()[SPOT] == size  # the account counted each fill once


ALL_FAULTS = MockFaultConfig(
    drop_prob=0.02,
    duplicate_prob=0.02,
    gap_per_hour=150,
    disconnect_per_hour=150,
    disconnect_ms=300,
    stale_per_hour=150,
    stale_ms=500,
    crossed_per_hour=150,
    restart_per_hour=150,
    restart_ms=400,
    reject_prob=0.1,
    delayed_ack_prob=0.1,
    duplicate_fill_prob=0.1,
)


def faulty_run(seed: int) -> tuple[list[Event], dict[str, int]]:
    ex = MockExchange(MockExchangeConfig(faults=ALL_FAULTS), seed=seed)
    out: list[Event] = []
    for i in range(1200):  # two minutes, with our orders
        t = (i + 1) * 100 * MS
        out += ex.advance(t)
        if i % 5 == 0:
            mid = round(ex.fair_value_px(SPOT) * 100)
            ex.submit(PlaceOrder(SPOT, f"b{i}", Side.BUY, mid - 1, 50), t)
            ex.submit(PlaceOrder(SPOT, f"s{i}", Side.SELL, mid + 3, 50, OrderType.IOC, post_only=False), t)
    return out, dict(ex.faults.counts)


def test_all_faults_together_are_deterministic_under_a_seed() -> None:
    events, counts = faulty_run(9)
    again, counts_again = faulty_run(9)
    assert events == again and counts == counts_again
    assert all(n > 0 for n in counts.values()), counts
    assert faulty_run(10)[0] != events


def test_run_time_switches_are_validated() -> None:
    ex = MockExchange(quiet_config())
    ex.faults.set(drop_prob=0.5, disconnect_per_hour=3)
    assert ex.faults.get("drop_prob") == 0.5
    with pytest.raises(KeyError):
        ex.faults.set(no_such_fault=1)
    with pytest.raises(ValueError):
        ex.faults.set(drop_prob=1.5)
    with pytest.raises(KeyError):
        ex.faults.trigger("meteor")
    ex.faults.disable_all()
    assert ex.faults.get("drop_prob") == 0.0
