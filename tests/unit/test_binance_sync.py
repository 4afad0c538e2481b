"""BookSync: Binance's buffer / snapshot / straddle / continuity / resync procedure, and on real data."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from bot.core.book import BookStatus, OrderBook
from bot.domain import BookDelta, BookSnapshot, Instrument, InstrumentKind
from bot.venues.binance import BinanceParser, BookSync, is_book_ticker_line, iter_lines

DATA = Path(__file__).resolve().parent.parent / "data" / "binance"
SYM = "BTC/USDT"


def d(first: int, last: int, prev: int | None = None, bid: int = 0) -> BookDelta:
    bids = ((100, bid),) if bid else ()
    return BookDelta(SYM, first, last, bids, (), 0, 0, prev)


def s(seq: int) -> BookSnapshot:
    return BookSnapshot(SYM, seq, ((100, 1),), ((101, 1),), 0, 0)


def test_buffers_until_snapshot_then_releases_from_the_straddling_diff() -> None:
    sync = BookSync(SYM)
    assert sync.needs_snapshot
    for delta in (d(1, 5), d(6, 9), d(10, 14), d(15, 20)):
        assert sync.on_delta(delta) == []
    out = sync.on_snapshot(s(11))  # drops 1..5 and 6..9; 10..14 straddles 12
    assert out == [s(11), d(10, 14), d(15, 20)]
    assert sync.synced and not sync.needs_snapshot
    assert sync.stats["dropped_before_snapshot"] == 2
    assert sync.on_delta(d(21, 22)) == [d(21, 22)]


def test_snapshot_newer_than_every_buffered_diff_uses_straddle_rule_on_next() -> None:
    sync = BookSync(SYM)
    sync.on_delta(d(1, 5))
    assert sync.on_snapshot(s(7)) == [s(7)]
    assert sync.on_delta(d(6, 7)) == []  # already in the snapshot
    assert sync.on_delta(d(8, 12)) == [d(8, 12)]  # U == S+1


def test_straddle_rule_accepts_diff_arriving_after_snapshot() -> None:
    sync = BookSync(SYM)
    sync.on_snapshot(s(10))
    assert sync.on_delta(d(9, 12)) == [d(9, 12)]
    assert sync.on_delta(d(13, 13)) == [d(13, 13)]


def test_snapshot_older_than_buffer_waits_for_another() -> None:
    sync = BookSync(SYM)
    sync.on_delta(d(20, 25))
    assert sync.on_snapshot(s(10)) == []  # updates 11..19 are in neither
    assert sync.needs_snapshot and not sync.synced
    assert sync.stats["snapshot_too_old"] == 1
    assert sync.on_snapshot(s(22)) == [s(22), d(20, 25)]


def test_futures_continuity_by_pu_and_first_diff_by_pu() -> None:
    sync = BookSync(SYM)
    sync.on_delta(d(100, 110, prev=95))
    sync.on_delta(d(120, 130, prev=110))  # futures ids jump; pu links
    out = sync.on_snapshot(s(112))  # first remaining: U=120 > 113 but pu=110 <= 112
    assert out == [s(112), d(120, 130, prev=110)]
    assert sync.on_delta(d(140, 150, prev=130)) == [d(140, 150, prev=130)]


def test_gap_releases_the_diff_for_the_book_and_resyncs() -> None:
    sync = BookSync(SYM)
    sync.on_snapshot(s(10))
    sync.on_delta(d(11, 12))
    gap = d(15, 16)
    assert sync.on_delta(gap) == [gap]  # the book sees it and marks itself invalid
    assert sync.needs_snapshot and not sync.synced and sync.stats["gap"] == 1
    assert sync.on_delta(d(17, 18)) == []  # buffered for the next snapshot
    assert sync.on_snapshot(s(16)) == [s(16), d(17, 18)]
    assert sync.synced


def test_duplicates_after_sync_are_dropped() -> None:
    sync = BookSync(SYM)
    sync.on_snapshot(s(10))
    sync.on_delta(d(11, 12))
    assert sync.on_delta(d(11, 12)) == []
    assert sync.stats["duplicate"] == 1


def test_gap_inside_the_buffer_releases_up_to_it() -> None:
    sync = BookSync(SYM)
    for delta in (d(5, 9), d(10, 12), d(14, 15)):
        sync.on_delta(delta)
    out = sync.on_snapshot(s(8))
    assert out == [s(8), d(5, 9), d(10, 12), d(14, 15)]
    assert not sync.synced and sync.needs_snapshot
    book = OrderBook(SYM)
    statuses = [book.apply(e).status for e in out]
    assert statuses == [BookStatus.SNAPSHOT, BookStatus.APPLIED, BookStatus.APPLIED, BookStatus.GAP]


def test_buffer_is_bounded() -> None:
    sync = BookSync(SYM, max_buffer=3)
    for i in range(5):
        sync.on_delta(d(i * 2 + 1, i * 2 + 2))
    assert sync.stats["buffer_overflow"] == 2
    assert sync.on_snapshot(s(6)) == [s(6), d(7, 8), d(9, 10)]


@given(
    st.integers(0, 40),
    st.lists(st.integers(1, 4), min_size=1, max_size=30),
    st.lists(st.integers(0, 29), max_size=3),
)
def test_sync_output_always_applies_cleanly_unless_a_gap_was_reported(
    snap_at: int, widths: list[int], missing: list[int]
) -> None:
    """Contiguous diffs with some lost: whatever the snapshot point, everything released applies to a
    book with no status other than snapshot/applied, except exactly at a lost diff (gap)."""
    diffs, start = [], 1
    for width in widths:
        diffs.append(d(start, start + width - 1))
        start += width
    received = [x for i, x in enumerate(diffs) if i not in set(missing)]
    sync, book = BookSync(SYM), OrderBook(SYM)
    statuses = []
    snapshot_done = False
    for i, delta in enumerate(received):
        if not snapshot_done and i == min(3, len(received) - 1):
            statuses += [book.apply(e).status for e in sync.on_snapshot(s(snap_at))]
            snapshot_done = True
        statuses += [book.apply(e).status for e in sync.on_delta(delta)]
    assert set(statuses) <= {BookStatus.SNAPSHOT, BookStatus.APPLIED, BookStatus.GAP, BookStatus.INVALID}
    assert (BookStatus.GAP in statuses) == (sync.stats["gap"] > 0)
    if BookStatus.GAP not in statuses and book.is_valid and sync.synced:
        assert book.seq == max(snap_at, received[-1].last_seq)


def test_real_files_sync_first_diff_straddles_the_snapshot() -> None:
    """On both recordings the diff released right after the snapshot satisfies Binance's spot rule
    `U <= S+1 <= u`, and on the perp also the futures rules `U <= S <= u` and `pu <= S`."""
    spot = Instrument("BTC/USDT", InstrumentKind.SPOT, "BTC", "USDT", 0.01, 0.000001)
    perp = Instrument("BTC/USDT:USDT", InstrumentKind.PERP, "BTC", "USDT", 0.1, 0.001)
    for name, inst in (("spot_btcusdt_20240808.gz", spot), ("usdm_btcusdt_20240808.gz", perp)):
        path = DATA / name
        parser = BinanceParser(inst)
        sync = BookSync(parser.symbol)
        released: list[BookSnapshot | BookDelta] = []
        for line in iter_lines(path):
            if is_book_ticker_line(line):
                continue
            item = parser.parse_line(line)
            if isinstance(item, BookDelta):
                released += sync.on_delta(item)
            elif isinstance(item, BookSnapshot):
                released += sync.on_snapshot(item)
        snap, first = released[0], released[1]
        assert isinstance(snap, BookSnapshot) and isinstance(first, BookDelta)
        seq = snap.seq
        assert first.first_seq <= seq + 1 <= first.last_seq
        if first.prev_seq is not None:
            assert first.first_seq <= seq <= first.last_seq and first.prev_seq <= seq
        assert sync.stats["gap"] == 0 and sync.stats["dropped_before_snapshot"] >= 2
        book = OrderBook(parser.symbol)
        assert all(book.apply(e).changed for e in released)
        assert book.is_valid
