"""OrderBook: sequence transitions for every venue fault, queries, and properties against a model."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from bot.core.book import BookStatus, OrderBook
from bot.domain import BookDelta, BookSnapshot, Level

SYM = "BTC/USDT"


def snap(seq: int, bids: list[Level], asks: list[Level], symbol: str = SYM) -> BookSnapshot:
    return BookSnapshot(symbol, seq, tuple(bids), tuple(asks), 0, 0)


def delta(
    first: int,
    last: int,
    bids: list[Level] = (),
    asks: list[Level] = (),
    prev: int | None = None,  # type: ignore[assignment]
) -> BookDelta:
    return BookDelta(SYM, first, last, tuple(bids), tuple(asks), 0, 0, prev)


def synced_book() -> OrderBook:
    """Book at seq 100: bids 99x5, 98x7; asks 101x3, 102x4."""
    book = OrderBook(SYM)
    assert book.apply(snap(100, [(99, 5), (98, 7)], [(101, 3), (102, 4)])).status is BookStatus.SNAPSHOT
    return book


# ------------------------------------------------------------------------------------------------
# transitions
# ------------------------------------------------------------------------------------------------


def test_delta_before_snapshot_is_unsynced_and_not_applied() -> None:
    book = OrderBook(SYM)
    update = book.apply(delta(1, 2, bids=[(99, 5)]))
    assert update.status is BookStatus.UNSYNCED
    assert not update.changed
    assert not book.is_valid
    assert book.best_bid_ticks is None


def test_snapshot_builds_the_book() -> None:
    book = synced_book()
    assert book.is_valid
    assert book.seq == 100
    assert (book.best_bid_ticks, book.best_bid_lots, book.best_ask_ticks, book.best_ask_lots) == (99, 5, 101, 3)
    assert book.mid_ticks == 100.0
    assert book.spread_ticks == 2


def test_deltas_at_or_before_the_snapshot_are_stale() -> None:
    book = synced_book()
    assert book.apply(delta(90, 100, bids=[(99, 1)])).status is BookStatus.STALE
    assert book.best_bid_lots == 5  # not applied
    assert book.is_valid


def test_first_delta_must_straddle_snapshot_spot_rule() -> None:
    book = synced_book()
    update = book.apply(delta(95, 105, bids=[(99, 6)]))  # U <= 101 <= u
    assert update.status is BookStatus.APPLIED
    assert book.seq == 105
    assert book.best_bid_lots == 6


def test_first_delta_starting_exactly_after_snapshot_applies() -> None:
    book = synced_book()
    assert book.apply(delta(101, 101, asks=[(101, 0)])).status is BookStatus.APPLIED
    assert book.best_ask_ticks == 102


def test_first_delta_after_a_hole_is_a_gap() -> None:
    book = synced_book()
    update = book.apply(delta(102, 110, bids=[(99, 6)]))  # update 101 is missing
    assert update.status is BookStatus.GAP
    assert not book.is_valid
    assert book.invalid_reason == "gap"


def test_first_delta_futures_rule_prev_seq_at_or_before_snapshot() -> None:
    # futures ids jump: U may be past S+1 while pu says the previous event ended inside the snapshot
    book = synced_book()
    assert book.apply(delta(104, 110, bids=[(99, 6)], prev=97)).status is BookStatus.APPLIED
    assert book.seq == 110


def test_futures_first_delta_with_prev_after_snapshot_is_a_gap() -> None:
    book = synced_book()
    assert book.apply(delta(104, 110, prev=102)).status is BookStatus.GAP


def test_contiguity_by_first_seq_without_prev() -> None:
    book = synced_book()
    assert book.apply(delta(95, 105)).status is BookStatus.APPLIED
    assert book.apply(delta(106, 108)).status is BookStatus.APPLIED
    assert book.apply(delta(110, 111)).status is BookStatus.GAP


def test_contiguity_by_prev_seq() -> None:
    book = synced_book()
    assert book.apply(delta(95, 105, prev=90)).status is BookStatus.APPLIED
    assert book.apply(delta(130, 140, prev=105)).status is BookStatus.APPLIED  # ids jump, pu links
    assert book.apply(delta(141, 150, prev=139)).status is BookStatus.GAP


def test_duplicate_delta_is_dropped_and_book_stays_valid() -> None:
    book = synced_book()
    d = delta(95, 105, bids=[(99, 6)])
    assert book.apply(d).status is BookStatus.APPLIED
    book.apply(delta(106, 107, bids=[(99, 9)]))
    assert book.apply(d).status is BookStatus.STALE
    assert book.best_bid_lots == 9
    assert book.is_valid


def test_out_of_order_deltas_invalidate_until_next_snapshot() -> None:
    book = synced_book()
    d1, d2, d3 = delta(101, 102), delta(103, 104, bids=[(99, 1)]), delta(105, 106, bids=[(99, 2)])
    assert book.apply(d1).status is BookStatus.APPLIED
    assert book.apply(d3).status is BookStatus.GAP
    assert book.apply(d2).status is BookStatus.INVALID  # too late: nothing applies any more
    assert book.best_bid_lots == 5
    assert book.apply(snap(200, [(99, 8)], [(101, 1)])).status is BookStatus.SNAPSHOT
    assert book.is_valid
    assert book.apply(delta(201, 201, bids=[(99, 3)])).status is BookStatus.APPLIED
    assert book.best_bid_lots == 3


def test_crossed_update_invalidates() -> None:
    book = synced_book()
    update = book.apply(delta(101, 101, bids=[(101, 2)]))
    assert update.status is BookStatus.CROSSED
    assert not book.is_valid
    assert book.invalid_reason == "crossed"
    assert book.apply(delta(102, 102)).status is BookStatus.INVALID


def test_locked_book_counts_as_crossed() -> None:
    book = synced_book()
    assert book.apply(delta(101, 101, asks=[(99, 1)])).status is BookStatus.CROSSED


def test_crossed_snapshot_is_invalid() -> None:
    book = OrderBook(SYM)
    assert book.apply(snap(5, [(100, 1)], [(100, 1)])).status is BookStatus.CROSSED
    assert not book.is_valid


def test_negative_size_is_rejected_and_invalidates() -> None:
    book = synced_book()
    update = book.apply(delta(101, 101, bids=[(98, -1)]))
    assert update.status is BookStatus.INVALID_INPUT
    assert not book.is_valid
    assert book.seq == 100  # the delta was not taken


def test_non_positive_price_is_rejected() -> None:
    book = synced_book()
    assert book.apply(delta(101, 101, asks=[(0, 1)])).status is BookStatus.INVALID_INPUT
    book2 = OrderBook(SYM)
    assert book2.apply(snap(1, [(-5, 1)], [(10, 1)])).status is BookStatus.INVALID_INPUT
    assert not book2.is_valid


def test_delete_of_missing_level_is_a_no_op() -> None:
    book = synced_book()
    assert book.apply(delta(101, 101, bids=[(50, 0)], asks=[(500, 0)])).status is BookStatus.APPLIED
    assert book.top_bids(5) == [(99, 5), (98, 7)]
    assert book.top_asks(5) == [(101, 3), (102, 4)]
    assert book.is_valid


def test_wrong_symbol_is_ignored() -> None:
    book = synced_book()
    other = BookDelta("ETH/USDT", 101, 101, ((99, 1),), (), 0, 0)
    assert book.apply(other).status is BookStatus.WRONG_SYMBOL
    assert book.best_bid_lots == 5


def test_snapshot_resets_every_level() -> None:
    book = synced_book()
    book.apply(snap(300, [(50, 1)], [(60, 2)]))
    assert book.top_bids(10) == [(50, 1)]
    assert book.top_asks(10) == [(60, 2)]
    assert book.seq == 300


# ------------------------------------------------------------------------------------------------
# best price maintenance and queries
# ------------------------------------------------------------------------------------------------


def test_deleting_best_finds_next_level_near_and_far() -> None:
    book = OrderBook(SYM)
    book.apply(snap(1, [(1000, 1), (999, 2), (10, 3)], [(1001, 1), (1002, 2), (5000, 3)]))
    book.apply(delta(2, 2, bids=[(1000, 0)], asks=[(1001, 0)]))
    assert (book.best_bid_ticks, book.best_ask_ticks) == (999, 1002)
    book.apply(delta(3, 3, bids=[(999, 0)], asks=[(1002, 0)]))  # next levels beyond the short walk
    assert (book.best_bid_ticks, book.best_ask_ticks) == (10, 5000)
    book.apply(delta(4, 4, bids=[(10, 0)], asks=[(5000, 0)]))
    assert (book.best_bid_ticks, book.best_ask_ticks) == (None, None)
    assert book.mid_ticks is None and book.spread_ticks is None


def test_delete_then_reinsert_above_old_best_in_one_delta() -> None:
    book = synced_book()
    book.apply(delta(101, 101, bids=[(99, 0), (100, 2)]))
    assert (book.best_bid_ticks, book.best_bid_lots) == (100, 2)


def test_delete_best_then_reinsert_same_price_in_one_delta() -> None:
    book = synced_book()
    book.apply(delta(101, 101, bids=[(99, 0), (99, 3)], asks=[(101, 0), (101, 6)]))
    assert (book.best_bid_ticks, book.best_bid_lots, book.best_ask_ticks, book.best_ask_lots) == (99, 3, 101, 6)


def test_delete_best_then_insert_below_it_in_one_delta() -> None:
    book = synced_book()
    book.apply(delta(101, 101, bids=[(99, 0), (98, 0), (97, 4)]))
    assert (book.best_bid_ticks, book.best_bid_lots) == (97, 4)


def test_top_n_levels_dense_and_sparse() -> None:
    book = OrderBook(SYM)
    bids = [(1000 - i, i + 1) for i in range(20)] + [(10, 99)]
    asks = [(1001 + 100 * i, i + 1) for i in range(20)]
    book.apply(snap(1, bids, asks))
    assert book.top_bids(3) == [(1000, 1), (999, 2), (998, 3)]
    assert book.top_bids(100)[-1] == (10, 99)
    assert book.top_asks(3) == [(1001, 1), (1101, 2), (1201, 3)]  # sparse: falls back to a scan
    assert book.top_asks(0) == []


def test_depth_within_ticks_of_mid() -> None:
    book = OrderBook(SYM)
    # mid = (100 + 103) / 2 = 101.5: within 2 ticks -> bids >= 99.5, asks <= 103.5
    book.apply(snap(1, [(100, 1), (99, 2), (98, 4)], [(103, 8), (104, 16), (200, 32)]))
    assert book.depth_lots(2) == (1, 8)
    assert book.depth_lots(3) == (1 + 2, 8 + 16)  # bids >= 98.5, asks <= 104.5
    assert book.depth_lots(1000) == (7, 56)  # wide: scans the side instead of walking the grid
    assert book.depth_lots(0) == (0, 0)


# ------------------------------------------------------------------------------------------------
# properties: the book equals a plain model after any sequence of valid deltas
# ------------------------------------------------------------------------------------------------

prices = st.integers(min_value=1, max_value=60)
level_updates = st.lists(st.tuples(prices, st.integers(min_value=0, max_value=5)), max_size=6)


@given(
    st.lists(st.tuples(prices, st.integers(1, 5)), max_size=8),
    st.lists(st.tuples(prices, st.integers(1, 5)), max_size=8),
    st.lists(st.tuples(level_updates, level_updates), max_size=30),
)
def test_book_matches_model_and_is_never_valid_when_crossed(
    snap_bids: list[Level], snap_asks: list[Level], updates: list[tuple[list[Level], list[Level]]]
) -> None:
    book = OrderBook(SYM)
    model_b = dict(snap_bids)
    model_a = dict(snap_asks)
    book.apply(snap(10, sorted(model_b.items(), reverse=True), sorted(model_a.items())))
    seq = 10
    for bids, asks in updates:
        if not book.is_valid:
            break
        seq += 1
        update = book.apply(delta(seq, seq, bids, asks))
        for price, size in bids:
            model_b.pop(price, None) if size == 0 else model_b.__setitem__(price, size)
        for price, size in asks:
            model_a.pop(price, None) if size == 0 else model_a.__setitem__(price, size)
        best_b = max(model_b, default=None)
        best_a = min(model_a, default=None)
        crossed = best_b is not None and best_a is not None and best_b >= best_a
        assert update.status is (BookStatus.CROSSED if crossed else BookStatus.APPLIED)
        assert book.best_bid_ticks == best_b
        assert book.best_ask_ticks == best_a
        assert book.top_bids(3) == sorted(model_b.items(), reverse=True)[:3]
        assert book.top_asks(3) == sorted(model_a.items())[:3]
        if book.is_valid and best_b is not None and best_a is not None:
            assert book.best_bid_ticks < book.best_ask_ticks
            x = 5
            lo, hi = (best_b + best_a) / 2 - x, (best_b + best_a) / 2 + x
            assert book.depth_lots(x) == (
                sum(q for p, q in model_b.items() if p >= lo),
                sum(q for p, q in model_a.items() if p <= hi),
            )


@given(st.lists(st.tuples(st.integers(0, 30), st.integers(0, 4)), min_size=1, max_size=40))
def test_any_delta_order_never_applies_a_non_continuing_delta(spans: list[tuple[int, int]]) -> None:
    """Feed deltas with arbitrary (first, last) ranges: the book applies one only if it continues the
    last applied seq, drops it if stale, and once invalid applies nothing until a snapshot."""
    book = OrderBook(SYM)
    book.apply(snap(5, [(1, 1)], [(2, 1)]))
    last = 5
    first_pending = True
    valid = True
    for start, length in spans:
        d = delta(start, start + length)
        update = book.apply(d)
        if not valid:
            assert update.status is BookStatus.INVALID
        elif d.last_seq <= last:
            assert update.status is BookStatus.STALE
        elif (d.first_seq <= last + 1) if first_pending else (d.first_seq == last + 1):
            assert update.status is BookStatus.APPLIED
            last = d.last_seq
            first_pending = False
        else:
            assert update.status is BookStatus.GAP
            valid = False
        assert book.is_valid is valid
        assert book.seq == last
