"""A recording without a REST snapshot (a continuation day): its book built from its diffs alone
(`DiffBookBuilder`), checked against the book the same recording's real snapshot gives.

The warm-up default (120 s) was read off the spot file's coverage; the perp file is the check."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.config import ReplayConfig
from bot.domain import BookDelta, BookSnapshot
from bot.venues.binance import BinanceParser, BookSync, DiffBookBuilder, infer_instrument, iter_line_batches

DATA = Path(__file__).resolve().parent.parent / "data" / "binance"


def _apply(book: dict[int, int], levels: tuple[tuple[int, int], ...]) -> None:
    for price, size in levels:
        if size:
            book[price] = size
        else:
            book.pop(price, None)


def _depth(book: dict[int, int], lo: float, hi: float) -> dict[int, int]:
    return {p: s for p, s in book.items() if lo <= p <= hi}


@pytest.mark.parametrize("name", ["spot_btcusdt_20240808.gz", "usdm_btcusdt_20240808.gz"])
def test_the_book_built_from_diffs_matches_the_snapshot_book(name: str) -> None:
    path = DATA / name
    instrument = infer_instrument(path)
    parser = BinanceParser(instrument)
    config = ReplayConfig()
    sync = BookSync(instrument.symbol)
    builder = DiffBookBuilder(instrument.symbol, round(config.diff_book_warmup_s * 1e9), config.diff_book_depth_bps)
    true_bids: dict[int, int] = {}
    true_asks: dict[int, int] = {}
    built: BookSnapshot | None = None
    for batch in iter_line_batches(path):
        for event in parser.parse_lines(batch, skip_tickers=True)[0]:
            if type(event) is BookSnapshot:
                released = sync.on_snapshot(event)
            elif type(event) is BookDelta:
                released = sync.on_delta(event)
                built = builder.on_delta(event)  # the builder never sees the snapshot
            else:
                continue
            for item in released:
                if type(item) is BookSnapshot:
                    true_bids, true_asks = dict(item.bids), dict(item.asks)
                else:
                    _apply(true_bids, item.bids)
                    _apply(true_asks, item.asks)
            if built is not None:
                break
        if built is not None:
            break
    assert built is not None and sync.synced
    bids, asks = dict(built.bids), dict(built.asks)
    assert (max(bids), min(asks)) == (max(true_bids), min(true_asks))  # the top of book is exact
    assert (bids[max(bids)], asks[min(asks)]) == (true_bids[max(true_bids)], true_asks[min(true_asks)])
    mid = (max(true_bids) + min(true_asks)) / 2
    lo, hi = mid * (1 - 10 / 1e4), mid * (1 + 10 / 1e4)
    truth = {**_depth(true_bids, lo, hi), **{-p: s for p, s in _depth(true_asks, lo, hi).items()}}
    ours = {**_depth(bids, lo, hi), **{-p: s for p, s in _depth(asks, lo, hi).items()}}
    assert set(ours) <= set(truth)  # nothing invented: every level it has is a real one ...
    assert all(ours[p] == truth[p] for p in ours)  # ... with its real size
    covered = sum(ours.values()) / sum(truth.values())
    assert covered >= 0.9, f"{name}: {covered:.3f} of the depth within 10 bps"


def test_a_gap_starts_the_build_again() -> None:
    builder = DiffBookBuilder("X/USDT", warmup_ns=0, depth_bps=10)
    level = ((1000, 1), (980, 1))
    ask = ((1001, 1), (1030, 1))
    assert builder.on_delta(BookDelta("X/USDT", 1, 1, level, (), 0, 0, None)) is None  # no asks yet
    assert builder.on_delta(BookDelta("X/USDT", 5, 5, (), ask, 0, 1, None)) is None  # a gap (2..4 missing)
    assert builder.stats["gap"] == 1 and not builder.bids  # the bids from before the gap are gone
    snapshot = builder.on_delta(BookDelta("X/USDT", 6, 6, level, (), 0, 2, None))
    assert snapshot is not None and snapshot.seq == 6 and snapshot.bids == level and snapshot.asks == ask
