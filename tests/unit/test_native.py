"""The C kernels of bot/_native.c against their Python references: same results on the recorded data,
on generated plain input, and on odd input (which the kernels must hand back to Python, not guess at).

A kernel answers None for input outside its plain shape; the callers then run the reference, so each
test compares what the *caller* produces with the reference alone, errors and drop counters included.
"""

from __future__ import annotations

import gc
import json
import math
import random
import shutil
import sys
import sysconfig
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.core import book as book_module
from bot.core import estimators, sorted_pairs
from bot.core.book import OrderBook, apply_side_py
from bot.domain import BookDelta, BookSnapshot, Instrument, InstrumentKind, Side, TradePrint
from bot.venues import binance, event_cache
from bot.venues.binance import BinanceParser, infer_instrument, is_book_ticker_line, iter_line_batches, iter_lines
from bot.venues.replay import ReplaySource
from tests.integration.test_event_cache import book_events_of, times

DATA = Path(__file__).resolve().parent.parent / "data" / "binance"
RECORDINGS = [DATA / "spot_btcusdt_20240808.gz", DATA / "usdm_btcusdt_20240808.gz"]
SPOT = Instrument("BTC/USDT", InstrumentKind.SPOT, "BTC", "USDT", 0.01, 0.00001)
PERP = Instrument("BTC/USDT:USDT", InstrumentKind.PERP, "BTC", "USDT", 0.1, 0.001)


def test_the_extension_is_built_where_a_compiler_is() -> None:
    """setup.py marks the extension optional; this catches a build that silently failed."""
    if shutil.which(sysconfig.get_config_var("CC").split()[0] or "cc") is None:
        pytest.skip("no C compiler here: the Python references run alone")
    import bot._native  # noqa: F401


native = pytest.importorskip("bot._native")


def decode_line(line: bytes, tick: float, lot: float) -> tuple[int, ...] | None:
    """`native.decode_lines` of one line: its decoded tuple, or None where it leaves the line to Python."""
    (item,), skipped = native.decode_lines([line], tick, lot, False)
    assert skipped == 0
    return item if type(item) is tuple else None


# --------------------------------------------------------------------------------------------------
# decimal text -> integer steps
# --------------------------------------------------------------------------------------------------

plain_decimals = st.builds(
    lambda sign, whole, frac, dot: f"{sign}{whole}{'.' if dot else ''}{frac if dot else ''}",
    st.sampled_from(["", "-"]),
    st.integers(0, 10**9).map(str),
    st.text("0123456789", max_size=12),
    st.booleans(),
) | st.sampled_from(["9007199254740991", "9007199254740992", "900719925474099.1", "90071992547409.92"])
odd_texts = st.one_of(
    st.sampled_from(
        ["", "-", ".", "1e5", "1E-3", "+1.5", " 1.5", "1.5 ", "1_000", "inf", "nan", "0x10", "1..2", "--1"]
    ),
    st.text(max_size=12),
    st.builds(lambda digits: digits + ".5", st.text("0123456789", min_size=17, max_size=30)),
)
steps = st.sampled_from([0.01, 0.1, 0.5, 1.0, 0.001, 1e-5, 1e-6, 1e-8, 25.0, 0.3])


def levels_via(method: str, pairs: object, tick: float, lot: float) -> object:
    """What a fresh parser's `_levels` (kernel first) or `_levels_py` (the reference) gives, or the type
    of what it raises, for `pairs`."""
    parser = BinanceParser(Instrument("X/Y", InstrumentKind.SPOT, "X", "Y", tick, lot))
    try:
        return getattr(parser, method)(pairs)
    except Exception as exc:
        return type(exc)


def reference_levels(pairs: object, tick: float, lot: float) -> object:
    return levels_via("_levels_py", pairs, tick, lot)


def parser_levels(pairs: object, tick: float, lot: float) -> object:
    return levels_via("_levels", pairs, tick, lot)


@given(st.lists(st.tuples(plain_decimals, plain_decimals), max_size=8), steps, steps)
def test_grid_levels_equals_the_reference_on_plain_decimals(
    pairs: list[tuple[str, str]], tick: float, lot: float
) -> None:
    as_json = [[price, qty] for price, qty in pairs]
    expected = reference_levels(as_json, tick, lot)
    fast = native.grid_levels(as_json, tick, lot)
    if all(mantissa(text) < 2**53 for pair in pairs for text in pair):  # Binance's are far below
        assert fast == expected
    else:  # past 2^53 the exact fast path does not apply: the reference decides
        assert fast is None or fast == expected
    assert parser_levels(as_json, tick, lot) == expected


def mantissa(text: str) -> int:
    """The decimal's digits as an integer ("-0.0120" -> 120)."""
    return int(text.lstrip("-").replace(".", "") or "0")


@given(st.lists(st.tuples(st.one_of(plain_decimals, odd_texts), st.one_of(plain_decimals, odd_texts)), max_size=4))
def test_odd_decimals_go_back_to_the_reference(pairs: list[tuple[str, str]]) -> None:
    as_json = [[price, qty] for price, qty in pairs]
    fast = native.grid_levels(as_json, 0.01, 0.001)
    expected = reference_levels(as_json, 0.01, 0.001)
    assert fast is None or fast == expected
    assert parser_levels(as_json, 0.01, 0.001) == expected


@pytest.mark.parametrize(
    "pairs",
    [
        (("1.5", "2"),),  # a tuple, not the list JSON decodes to
        [("1.5", "2")],
        [["1.5"]],
        [["1.5", "2", "3"]],
        [[1.5, "2"]],
        [[b"1.5", "2"]],
        [["1.5", None]],
        [["１.5", "2"]],  # a full-width digit: float() takes it, the kernel must not
        "not a list",
    ],
)
def test_shapes_other_than_json_pairs_go_back_to_the_reference(pairs: object) -> None:
    assert native.grid_levels(pairs, 0.01, 0.001) is None
    assert parser_levels(pairs, 0.01, 0.001) == reference_levels(pairs, 0.01, 0.001)


def test_exact_on_every_recorded_level() -> None:
    """Every price and size in the recordings converts to the grid value the reference gives."""
    for path in RECORDINGS:
        inst = infer_instrument(path)
        fast, reference = BinanceParser(inst), BinanceParser(inst)
        for line in iter_lines(path):
            if b"depthUpdate" in line[:80] or b"lastUpdateId" in line[:40]:
                assert fast.parse_line(line) == reference._parse_line_py(line)


# --------------------------------------------------------------------------------------------------
# whole lines
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", RECORDINGS, ids=lambda p: p.name)
def test_every_recorded_line_decodes_as_the_reference_does(path: Path) -> None:
    inst = infer_instrument(path)
    fast, reference = BinanceParser(inst), BinanceParser(inst)
    decoded_in_c = snapshots = 0
    for line in iter_lines(path):
        event = fast.parse_line(line)
        assert event == reference._parse_line_py(line)
        decoded_in_c += decode_line(line, inst.tick_size, inst.lot_size) is not None
        snapshots += isinstance(event, BookSnapshot)
    assert fast.dropped == reference.dropped and fast.parsed == reference.parsed
    assert snapshots >= 1 and decoded_in_c == fast.parsed - snapshots  # all but the REST snapshots


PERP_DEPTH = (
    b'1723161255030314667 {"stream":"btcusdt@depth@0ms","data":{"e":"depthUpdate","E":1723161256299,'
    b'"T":1723161256298,"s":"BTCUSDT","U":5123107832006,"u":5123107837557,"pu":5123107831937,'
    b'"b":[["58710.20","0.014"],["61510.90","0.000"]],"a":[["61800.30","1.5"]]}}'
)
PERP_TRADE = (
    b'1723161255088176367 {"stream":"btcusdt@trade","data":{"e":"trade","E":1723161256322,"T":1723161256322,'
    b'"s":"BTCUSDT","t":5266583935,"p":"61800.30","q":"0.006","X":"MARKET","m":false}}'
)
SPOT_TICKER = (
    b'1723161254087891268 {"stream":"btcusdt@bookTicker","data":{"u":50093239212,"s":"BTCUSDT",'
    b'"b":"61837.63000000","B":"3.78826000","a":"61837.64000000","A":"1.54698000"}}'
)
PERP_TICKER = (
    b'1723161255088169167 {"stream":"btcusdt@bookTicker","data":{"e":"bookTicker","u":5123107839020,'
    b'"s":"BTCUSDT","b":"61800.20","B":"2.507","a":"61800.30","A":"2.510","T":1723161256313,"E":1723161256313}}'
)
SPOT_TRADE = (
    b'1723161254087896568 {"stream":"btcusdt@trade","data":{"e":"trade","E":1723161255343,"s":"BTCUSDT",'
    b'"t":3735683259,"p":"61837.63000000","q":"0.02000000","T":1723161255342,"m":true,"M":true}}'
)


def both(line: bytes, inst: Instrument = PERP) -> tuple[object, object]:
    """(parse_line with the kernel, the reference alone), each with its drop counters."""
    fast, reference = BinanceParser(inst), BinanceParser(inst)
    return (fast.parse_line(line), dict(fast.dropped), fast.parsed), (
        reference._parse_line_py(line),
        dict(reference.dropped),
        reference.parsed,
    )


def test_decoded_fields_by_hand() -> None:
    tag, recv_ns, venue_ms, first, last, prev, bids, asks = decode_line(PERP_DEPTH, 0.1, 0.001)
    assert (tag, recv_ns, venue_ms, first, last, prev) == (
        1,
        1723161255030314667,
        1723161256299,
        5123107832006,
        5123107837557,
        5123107831937,
    )
    assert bids == ((587102, 14), (615109, 0)) and asks == ((618003, 1500),)
    assert decode_line(PERP_TICKER, 0.1, 0.001) == (
        3,
        1723161255088169167,
        5123107839020,
        618002,
        2507,
        618003,
        2510,
        1723161256313,
    )
    assert decode_line(SPOT_TICKER, 0.01, 0.00001)[-1] == 0  # no venue time: the receive time's
    assert decode_line(SPOT_TRADE, 0.01, 0.00001) == (
        2,
        1723161254087896568,
        1723161255342,
        3735683259,
        6183763,
        2000,
        True,
    )


# each a variation the kernel must hand back (or decode exactly as the reference does)
VARIANTS = [
    PERP_DEPTH.replace(b'"pu":5123107831937,', b""),  # spot-style diff without pu
    PERP_DEPTH.replace(b'"b":[["58710.20","0.014"],["61510.90","0.000"]]', b'"b":[]'),
    PERP_DEPTH.replace(b'"U":5123107832006,', b""),  # missing U: malformed
    PERP_DEPTH.replace(b'"U":5123107832006', b'"U":"5123107832006"'),  # a string id: the reference takes it
    PERP_DEPTH.replace(b'"U":5123107832006', b'"U":5123107832006.0'),  # a float id
    PERP_DEPTH.replace(b'"E":1723161256299', b'"E":1.723161256299e12'),
    PERP_DEPTH.replace(b'"58710.20"', b'"5.871020e4"'),  # an exponent
    PERP_DEPTH.replace(b'"58710.20"', b'"-58710.20"'),  # negative price: parsed, the book refuses it
    PERP_DEPTH.replace(b'"58710.20"', b"58710.20"),  # a number, not a string
    PERP_DEPTH.replace(b'"b":[[', b'"b": [['),  # whitespace
    PERP_DEPTH.replace(b'"s":"BTCUSDT"', b'"s":"BTC\\u0055SDT"'),  # an escape
    PERP_DEPTH.replace(b'"s":"BTCUSDT"', b'"s":"BTC\xffUSDT"'),  # invalid UTF-8: not JSON
    PERP_DEPTH.replace(b'"s":"BTCUSDT"', b'"s":"BTC\xc3\xa9USDT"'),  # valid UTF-8
    PERP_DEPTH.replace(b'"e":"depthUpdate"', b'"e":"depthUpdate","e":"trade"'),  # repeated key: last wins
    PERP_DEPTH.replace(b'"a":[["61800.30","1.5"]]', b'"a":[["61800.30","1.5"]],"a":[]'),
    PERP_DEPTH.replace(b'"a":[["61800.30","1.5"]]', b'"a":7'),
    PERP_DEPTH.replace(b'"data":{', b'"extra":1,"data":{'),
    PERP_DEPTH + b"\r",
    PERP_DEPTH + b" ",
    PERP_DEPTH + b"}",
    PERP_DEPTH[:-1],
    PERP_DEPTH[:200],
    b"1723161255030314667x" + PERP_DEPTH[19:],
    b"99999999999999999999" + PERP_DEPTH[19:],  # does not fit 64 bits
    b"+1" + PERP_DEPTH[19:],
    PERP_DEPTH[20:],  # no timestamp
    PERP_TRADE.replace(b'"m":false', b'"m":0'),
    PERP_TRADE.replace(b'"m":false', b'"m":null'),
    PERP_TRADE.replace(b',"m":false', b""),
    PERP_TRADE.replace(b'"p":"61800.30"', b'"p":"0"'),  # price 0: dropped as bad_value
    PERP_TRADE.replace(b'"q":"0.006"', b'"q":"-0.006"'),
    PERP_TRADE.replace(b'"t":5266583935', b'"t":-5'),
    PERP_TRADE.replace(b'"t":5266583935', b'"t":05266583935'),  # a leading zero is not JSON
    PERP_TRADE.replace(b'"t":5266583935', b'"t":"abc"'),
    PERP_TRADE.replace(b'"X":"MARKET"', b'"X":{"nested":1}'),
    PERP_TRADE.replace(b'"X":"MARKET"', b'"b":123,"a":456'),  # order ids, as older spot trades carry
    PERP_TRADE.replace(b'"e":"trade"', b'"e":"aggTrade"'),
    PERP_TRADE.replace(b'"e":"trade",', b""),
    PERP_TICKER.replace(b'"T":1723161256313', b'"T":0'),  # venue time from E
    PERP_TICKER.replace(b'"T":1723161256313,"E":1723161256313', b'"T":0,"E":0'),  # from the receive time
    PERP_TICKER.replace(b',"T":1723161256313,"E":1723161256313', b""),
    PERP_TICKER.replace(b'"e":"bookTicker",', b""),  # spot's shape
    PERP_TICKER.replace(b'"e":"bookTicker"', b'"e":null'),
    PERP_TICKER.replace(b'"b":"61800.20"', b'"b":61800.20'),  # a number: the reference takes it
    PERP_TICKER.replace(b'"b":"61800.20"', b'"b":[["61800.20","1"]]'),
    PERP_TICKER.replace(b'"B":"2.507"', b'"B":"2.5e3"'),
    PERP_TICKER.replace(b'"A":"2.510",', b""),
    SPOT_TICKER.replace(b'"u":50093239212,', b""),  # no "u": not a ticker to the reference
    SPOT_TICKER.replace(b'"B":"3.78826000",', b""),
    SPOT_TICKER.replace(b'"b":"61837.63000000"', b'"b":"61837.63000000","b":"1"'),
    PERP_TRADE.replace(b'"X":"MARKET"', b'"B":"x","A":"1.5"'),  # ticker-like fields in a trade: ignored
    # more levels than the kernel keeps on its stack (256), then one bad level at the very end
    PERP_DEPTH.replace(
        b'"a":[["61800.30","1.5"]]', b'"a":[' + b",".join(b'["%d.10","1.5"]' % (61801 + i) for i in range(600)) + b"]"
    ),
    PERP_DEPTH.replace(
        b'"a":[["61800.30","1.5"]]',
        b'"a":[' + b",".join(b'["%d.10","1.5"]' % (61801 + i) for i in range(600)) + b',["x","1"]]',
    ),
]


@pytest.mark.parametrize("line", VARIANTS, ids=range(len(VARIANTS)))
def test_variants_decode_as_the_reference_does(line: bytes) -> None:
    with_kernel, reference = both(line)
    assert with_kernel == reference


@given(st.data())
def test_mutated_lines_decode_as_the_reference_does(data: st.DataObject) -> None:
    line = bytearray(data.draw(st.sampled_from([PERP_DEPTH, PERP_TRADE, SPOT_TRADE, PERP_TICKER, SPOT_TICKER])))
    for _ in range(data.draw(st.integers(1, 3))):
        at = data.draw(st.integers(0, len(line) - 1))
        action = data.draw(st.sampled_from(["replace", "delete", "insert"]))
        byte = data.draw(st.sampled_from(b'0123456789.-"[]{},: eEtfnul\\\xff'))
        if action == "replace":
            line[at] = byte
        elif action == "delete":
            del line[at]
        else:
            line.insert(at, byte)
    with_kernel, reference = both(bytes(line))
    assert with_kernel == reference


# --------------------------------------------------------------------------------------------------
# book side apply
# --------------------------------------------------------------------------------------------------

prices = st.integers(-3, 60)
sizes = st.integers(-2, 5)


@given(
    st.dictionaries(st.integers(1, 60), st.integers(1, 5), max_size=20),
    st.lists(st.tuples(prices, sizes), max_size=15),
    st.integers(0, 70),
    st.booleans(),
    st.booleans(),
)
def test_apply_side_equals_the_reference(
    book: dict[int, int], levels: list[tuple[int, int]], best: int, dirty: bool, is_bid: bool
) -> None:
    fast_book, reference_book = dict(book), dict(book)
    fast = native.apply_side(fast_book, tuple(levels), best, dirty, is_bid)
    assert fast == apply_side_py(reference_book, tuple(levels), best, dirty, is_bid)
    assert fast_book == reference_book


@pytest.mark.parametrize(
    ("levels", "best"),
    [
        (((1.5, 2),), 0),  # a float price
        (((True, 2),), 0),  # a bool is an int to Python, not to the kernel
        (((1 << 70, 2),), 0),
        (((5, 1 << 70),), 0),
        (((5, 2), (6,)), 0),  # checked before anything is applied
        ([(5, 2)], 0),  # a list, not a tuple
        (((5, 2),), 1 << 70),
    ],
)
def test_apply_side_hands_odd_levels_back_untouched(levels: object, best: int) -> None:
    book = {3: 1}
    assert native.apply_side(book, levels, best, False, True) is None
    assert book == {3: 1}


@given(
    st.lists(
        st.tuples(
            st.lists(st.tuples(st.integers(1, 40), st.integers(0, 4)), max_size=6),
            st.lists(st.tuples(st.integers(41, 80), st.integers(0, 4)), max_size=6),
        ),
        max_size=25,
    )
)
def test_books_built_through_the_kernel_match_a_plain_rebuild(updates: list[tuple[list, list]]) -> None:
    """End to end through OrderBook: best prices and contents equal a dict rebuilt by hand."""
    book = OrderBook("X")
    book.apply(BookSnapshot("X", 1, ((40, 1),), ((41, 1),), 0, 0))
    bids, asks = {40: 1}, {41: 1}
    for seq, (bid_levels, ask_levels) in enumerate(updates, start=2):
        book.apply(BookDelta("X", seq, seq, tuple(bid_levels), tuple(ask_levels), 0, 0))
        for side, levels in ((bids, bid_levels), (asks, ask_levels)):
            for price, size in levels:
                if size:
                    side[price] = size
                else:
                    side.pop(price, None)
        assert book.best_bid_ticks == (max(bids) if bids else None)
        assert book.best_ask_ticks == (min(asks) if asks else None)
        assert book.top_bids(100) == sorted(bids.items(), reverse=True)
        assert book.top_asks(100) == sorted(asks.items())


def reference_apply_delta(bids: dict, asks: dict, bid_levels: tuple, ask_levels: tuple, state: tuple) -> tuple:
    """OrderBook._apply_delta's Python path: two apply_side_py calls, then (both valid) each dirty
    side's best found by the walk and the scan, as the delta's crossed check reads them."""
    bid, bid_dirty, ask, ask_dirty = state
    bid, bid_dirty, ok = apply_side_py(bids, bid_levels, bid, bid_dirty, True)
    if ok:
        ask, ask_dirty, ok = apply_side_py(asks, ask_levels, ask, ask_dirty, False)
    if ok:
        if bid_dirty:
            bid, bid_dirty = book_module._walk_down(bids, bid), False
        if ask_dirty:
            ask, ask_dirty = book_module._walk_up(asks, ask), False
    return bid, bid_dirty, ask, ask_dirty, ok


wide_prices = st.integers(-2, 400)  # wider than the 64-step walk: the scans run too


@given(
    st.dictionaries(st.integers(1, 400), st.integers(1, 5), max_size=40),
    st.dictionaries(st.integers(1, 400), st.integers(1, 5), max_size=40),
    st.lists(st.tuples(wide_prices, sizes), max_size=12),
    st.lists(st.tuples(wide_prices, sizes), max_size=12),
    st.integers(0, 400),
    st.booleans(),
    st.integers(0, 400),
    st.booleans(),
)
def test_apply_delta_equals_the_two_sides_and_their_walks(
    bids: dict, asks: dict, bid_levels: list, ask_levels: list, bid: int, bid_dirty: bool, ask: int, ask_dirty: bool
) -> None:
    if bid_levels:  # the bound is an upper bound of the bids, and the best when not dirty
        bid = max(bids, default=0) if not bid_dirty else max(bid, max(bids, default=0))
    ask = min(asks, default=book_module._NO_ASK) if not ask_dirty else min(ask, min(asks, default=book_module._NO_ASK))
    state = (bid, bid_dirty, ask, ask_dirty)
    fast_bids, fast_asks = dict(bids), dict(asks)
    hints = bytearray(book_module._HINT_BYTES), bytearray(book_module._HINT_BYTES)
    fast = native.apply_delta(
        fast_bids, fast_asks, tuple(bid_levels), tuple(ask_levels), *state, book_module._NO_ASK, *hints
    )
    assert fast == reference_apply_delta(bids, asks, tuple(bid_levels), tuple(ask_levels), state)
    assert (fast_bids, fast_asks) == (bids, asks)


def test_apply_delta_hands_odd_levels_back_untouched() -> None:
    bids, asks = {3: 1}, {9: 1}
    hint = bytearray(book_module._HINT_BYTES)
    for bid_levels, ask_levels in [(((1.5, 2),), ()), ((), ((5, 2), (6,))), (((5, 2),), [(7, 1)])]:
        assert native.apply_delta(bids, asks, bid_levels, ask_levels, 3, False, 9, False, 1 << 62, hint, hint) is None
    assert native.apply_delta(bids, asks, ((4, 1),), (), 1 << 70, False, 9, False, 1 << 62, hint, hint) is None
    assert native.apply_delta(bids, asks, ((4, 1),), (), 3, False, 9, False, 1 << 62, bytearray(8), hint) is None
    assert (bids, asks) == ({3: 1}, {9: 1})


sparse_levels = st.lists(st.tuples(st.integers(1, 3000), st.integers(0, 3)), max_size=10)


def apply_without_kernel(book: OrderBook, event: BookSnapshot | BookDelta) -> object:
    """`book.apply(event)` with `bot._native.apply_delta` out of the way (the Python path)."""
    kernel = book_module._native_apply_delta
    book_module._native_apply_delta = None  # type: ignore[assignment]
    try:
        return book.apply(event)
    finally:
        book_module._native_apply_delta = kernel


@given(
    st.lists(st.integers(1, 1500), min_size=1, max_size=60),
    st.lists(st.integers(1501, 3000), min_size=1, max_size=60),
    st.lists(st.tuples(sparse_levels, sparse_levels, st.booleans()), max_size=40),
)
def test_books_through_the_kernel_and_its_hints_equal_the_python_books(
    bid_prices: list[int], ask_prices: list[int], deltas: list
) -> None:
    """Sparse sides (gaps far beyond the walk: the scans run, the hints are built and used), deltas that
    delete the best often, and now and then one the kernel hands back (a size past 64 bits: the Python path,
    which must leave the hints invalid): every best price, level and status equals a book that never
    uses the kernel."""
    snapshot = BookSnapshot("X", 1, tuple((p, 1) for p in bid_prices), tuple((p, 1) for p in ask_prices), 0, 0)
    fast, plain = OrderBook("X"), OrderBook("X")
    fast.apply(snapshot)
    apply_without_kernel(plain, snapshot)
    for seq, (bid_levels, ask_levels, odd) in enumerate(deltas, start=2):
        best_bid, best_ask = plain.best_bid_ticks, plain.best_ask_ticks
        # mostly deletions of the best, as trades do
        bids = ((best_bid, 0), *bid_levels) if best_bid is not None else tuple(bid_levels)
        asks = ((best_ask, 0), *ask_levels) if best_ask is not None else tuple(ask_levels)
        if odd:
            bids = (*bids, (1, 1 << 70))  # beyond 64 bits: not plain, the kernel hands the delta back
        delta = BookDelta("X", seq, seq, tuple(bids), tuple(asks), 0, 0)
        assert fast.apply(delta) == apply_without_kernel(plain, delta)
        assert (fast.best_bid_ticks, fast.best_ask_ticks) == (plain.best_bid_ticks, plain.best_ask_ticks)
        assert fast.top_bids(5000) == plain.top_bids(5000) and fast.top_asks(5000) == plain.top_asks(5000)
        if not plain.is_valid:
            fast.apply(snapshot)
            apply_without_kernel(plain, snapshot)


def test_an_enum_class_attribute_is_read_as_before() -> None:
    """`MemberEnumType`: attribute reads without EnumType's __getattr__ (bot._native.plain_class_getattr)
    find the same members; an enum whose member is not in its class dict is refused."""
    from enum import Enum

    from bot.core.book import BookStatus
    from bot.core.orders import OrderState

    assert (Side("buy"), OrderState("open"), BookStatus("gap")) == (Side.BUY, OrderState.OPEN, BookStatus.GAP)
    assert Side.BUY.sign == 1 and Side.SELL.opposite is Side.BUY and OrderState.FILLED.name == "FILLED"
    with pytest.raises(AttributeError):
        Side.NOT_A_MEMBER  # type: ignore[attr-defined]  # noqa: B018
    with pytest.raises(TypeError, match="not in its class dict"):

        class Shadowed(Enum, metaclass=domain.MemberEnumType):  # a member named like a property
            name = 1  # type: ignore[assignment]


def test_rounding_matches_python_at_ties_and_near_them() -> None:
    """round(float(text) / step): ties go to even, as Python's round does on the same double."""
    for text in ["0.5", "1.5", "2.5", "-0.5", "-1.5", "0.05", "0.15", "0.25", "0.35", "1.005", "0"]:
        for step in (1.0, 0.1, 0.01, 0.5):
            assert native.grid_levels([[text, text]], step, step) == ((round(float(text) / step),) * 2,)
    assert math.copysign(1, native.grid_levels([["-0.0", "0"]], 1.0, 1.0)[0][0]) == 1  # an int 0, no sign


# --------------------------------------------------------------------------------------------------
# batches of lines
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("skip_tickers", [False, True])
@pytest.mark.parametrize("with_kernel", [True, False], ids=["kernel", "python"])
def test_a_batch_parses_as_its_lines_do(skip_tickers: bool, with_kernel: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """`parse_lines` (one C call per batch) gives the events, drops and skip count of `parse_line` line
    by line, with the kernel and without it (as where no compiler built it)."""
    if not with_kernel:
        monkeypatch.setattr(binance, "_native_decode_lines", None)
    variants = [*VARIANTS, PERP_DEPTH, PERP_TICKER, b"", b"garbage", PERP_TRADE]
    for path, inst in ((RECORDINGS[1], None), (None, PERP)):
        lines = list(iter_lines(path))[:20_000] if path is not None else variants
        inst = inst or infer_instrument(path)  # type: ignore[arg-type]
        batched, single = BinanceParser(inst), BinanceParser(inst)
        events, skipped = batched.parse_lines(lines, skip_tickers)
        kept = [line for line in lines if not (skip_tickers and is_book_ticker_line(line))]
        expected = [e for e in (single.parse_line(line) for line in kept) if e is not None]
        assert events == expected and skipped == len(lines) - len(kept)
        assert batched.dropped == single.dropped and batched.parsed == single.parsed


def test_lines_come_whole_whatever_the_chunk_size(tmp_path: Path) -> None:
    data = b"".join(b"%d {}\n" % i for i in range(1000)) + b"last line without newline"
    path = tmp_path / "lines.txt"
    path.write_bytes(data)
    for chunk_bytes in (1, 7, 64, 1 << 16):
        batches = list(iter_line_batches(path, chunk_bytes))
        assert all(batches) and [line for batch in batches for line in batch] == data.split(b"\n")


@given(st.dictionaries(st.integers(-(2**70), 2**70), st.integers(0, 5), max_size=30), st.booleans())
def test_extreme_price_is_max_of_bids_min_of_asks(book: dict[int, int], is_bid: bool) -> None:
    fast = native.extreme_price(book, is_bid, -1)
    expected = (max(book, default=-1) if is_bid else min(book, default=-1)) if book else -1
    if all(-(2**63) <= price < 2**63 for price in book):
        assert fast == expected
    else:  # past 64 bits: Python's max/min decide
        assert fast is None
    assert book_module._extreme(book, is_bid, -1) == expected


def test_extreme_price_hands_other_keys_back() -> None:
    assert native.extreme_price({1.5: 1, 2: 1}, True, 0) is None
    assert native.extreme_price({True: 1}, True, 0) is None
    assert book_module._extreme({1.5: 1, 2: 1}, True, 0) == 2


# --------------------------------------------------------------------------------------------------
# the arrival fit's sums over its sorted window (bot/core/sorted_pairs.py)
# --------------------------------------------------------------------------------------------------

weights_st = st.lists(
    st.floats(min_value=0.0, max_value=1e6, allow_subnormal=True) | st.sampled_from([1.0, 0.1, 1e-300, 5e-324]),
    min_size=1,
    max_size=300,
)


def same_floats(a: list[float], b: list[float]) -> bool:
    """Equal bit for bit (== would let -0.0 match 0.0)."""
    return [x.hex() for x in a] == [x.hex() for x in b]


def split(values: list, cuts: list[int]) -> list[list]:
    """`values` as non-empty blocks, cut at `cuts` (as SortedPairs holds a column)."""
    edges = sorted({c % len(values) for c in cuts} - {0})
    return [values[a:b] for a, b in zip([0, *edges], [*edges, len(values)], strict=True)]


@given(weights_st, st.lists(st.integers(0, 10**6), max_size=8), st.data())
def test_suffix_sums_equal_the_reference(weights: list[float], cuts: list[int], data: st.DataObject) -> None:
    starts = sorted(data.draw(st.lists(st.integers(0, len(weights) - 1), max_size=12)))
    fast = native.suffix_sums(split(weights, cuts), starts)
    assert fast is not None and same_floats(fast, sorted_pairs.suffix_sums_py(weights, starts))


def test_suffix_sums_are_summed_from_the_end() -> None:
    """1e16 + 1 + 1 is 1e16 summed from the front, 1e16 + 2 from the back: the order shows."""
    assert native.suffix_sums([[1e16], [1.0, 1.0]], [0, 1, 2]) == [1e16 + 2.0, 2.0, 1.0]
    assert sorted_pairs.suffix_sums_py([1e16, 1.0, 1.0], [0, 1, 2]) == [1e16 + 2.0, 2.0, 1.0]
    assert native.suffix_sums([[1.0]], []) == []


@pytest.mark.parametrize(
    ("blocks", "starts"),
    [
        ([[1.0, 2.0]], [1, 0]),  # not non-decreasing
        ([[1.0], [2.0]], [2]),  # past the end
        ([[1.0, 2.0]], [-1]),  # Python would wrap around: the reference decides
        ([[1.0, 2]], [0]),  # an int weight: int + float is Python's to do
        ([[1.0, 2.0]], [0.0]),  # a float start
        ([[1.0], []], [0]),  # an empty block
        ([[1.0], (2.0,)], [0]),  # a block that is not a list
        ([], [0]),
        ([[1.0, 2.0]], [2**70]),
    ],
)
def test_suffix_sums_hand_odd_input_back(blocks: list, starts: list) -> None:
    assert native.suffix_sums(blocks, starts) is None


@given(
    st.lists(st.floats(allow_nan=False, allow_infinity=False), min_size=1, max_size=200),
    st.lists(st.integers(0, 10**6), max_size=8),
    st.data(),
)
def test_float_sum_equals_sum_of_the_slice(values: list[float], cuts: list[int], data: st.DataObject) -> None:
    lo = data.draw(st.integers(0, len(values) - 1))
    hi = data.draw(st.integers(lo + 1, len(values)))
    fast = native.float_sum(split(values, cuts), lo, hi)
    if sys.version_info >= (3, 12):  # sum() compensates its rounding there: the kernel declines
        assert fast is None
    else:
        assert fast is not None and fast.hex() == float(sum(values[lo:hi])).hex()


def test_float_sum_hands_odd_input_back() -> None:
    assert native.float_sum([[1.0, 2.0]], 1, 1) is None  # empty: sum() gives the int 0
    assert native.float_sum([[1.0], [2.0]], 0, 3) is None
    assert native.float_sum([[1.0, 2.0]], -1, 2) is None
    assert native.float_sum([[1.0, 2]], 0, 2) is None
    assert native.float_sum([[1.0], []], 0, 1) is None


def arrival_fits(seed: int, with_kernels: bool, monkeypatch: pytest.MonkeyPatch) -> list[tuple[float, float, str, int]]:
    """A, k, reason and trade count of every refit over 20 minutes of random trades (so the 300 s window
    fills and expires), with or without the C sums."""
    with monkeypatch.context() as patch:
        if not with_kernels:
            patch.setattr(sorted_pairs, "_native_suffix_sums", None)
            patch.setattr(sorted_pairs, "_native_float_sum", None)
        rng = random.Random(seed)
        est = estimators.ArrivalEstimator(1.0, 20.0, 300.0, 50, refit_ms=1000, start_ns=0, order_size_base=0.5)
        fits = []
        now = 0
        for _ in range(12_000):
            now += rng.randrange(1, 200_000_000)
            mid = 100.0 + rng.uniform(-1, 1)
            depth = rng.expovariate(20.0) if rng.random() < 0.9 else 0.0
            side = rng.choice([Side.BUY, Side.SELL])
            px = mid + depth if side is Side.BUY else mid - depth
            est.on_trade(now, round(px, 2), mid, side, rng.choice([0.1, 0.5, 1.0, rng.uniform(0.01, 2.0)]))
            fit = est.update(now)
            fits.append((fit.a_per_s, fit.k_per_px, fit.reason, fit.trades))
        return fits


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_arrival_fits_are_the_same_with_and_without_the_c_sums(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    with_c = arrival_fits(seed, True, monkeypatch)
    without = arrival_fits(seed, False, monkeypatch)
    assert sum(1 for f in with_c if f[2] == "fit") > 1000  # the fit itself ran, often
    assert with_c == without


# --------------------------------------------------------------------------------------------------
# fast_init: the events and commands constructed in C, against their dataclass __init__
# --------------------------------------------------------------------------------------------------

from dataclasses import MISSING, FrozenInstanceError, fields  # noqa: E402

from bot import domain  # noqa: E402


def reference_construct(cls: type, args: tuple, kwargs: dict) -> object:
    """`cls(*args, **kwargs)` through type.__call__: the dataclass's own __init__ (or the type of its error,
    and its message)."""
    try:
        return type.__call__(cls, *args, **kwargs)
    except Exception as exc:
        return type(exc), str(exc)


def fast_construct(cls: type, args: tuple, kwargs: dict) -> object:
    try:
        return cls(*args, **kwargs)
    except Exception as exc:
        return type(exc), str(exc)


def same_object(a: object, b: object) -> bool:
    """Same type, every field the very same object, equal and of equal hash."""
    if isinstance(a, tuple) or isinstance(b, tuple):  # errors: same type and message
        return a == b
    names = [f.name for f in fields(type(a))]  # type: ignore[arg-type]
    return (
        type(a) is type(b)
        and all(getattr(a, n) is getattr(b, n) for n in names)
        and a == b
        and hash(a) == hash(b)
        and repr(a) == repr(b)
    )


def test_every_qualifying_domain_class_is_built_in_c() -> None:
    assert len(domain.FAST_CONSTRUCTED) >= 15  # the events and the commands
    for cls in domain.FAST_CONSTRUCTED:
        assert native.fast_constructed(cls), cls
    # a __post_init__ (validation) or a default_factory keeps the dataclass's own __init__
    assert domain.Instrument not in domain.FAST_CONSTRUCTED and not native.fast_constructed(domain.Instrument)
    assert domain.OpenOrder not in domain.FAST_CONSTRUCTED
    with pytest.raises(FrozenInstanceError):  # still frozen
        domain.Timer(1, 2).ts_venue_ns = 3  # type: ignore[misc]


field_values = st.one_of(st.integers(), st.text(max_size=3), st.none(), st.sampled_from(list(Side)), st.floats())


@given(st.sampled_from(list(domain.FAST_CONSTRUCTED)), st.data())
def test_fast_constructors_build_the_same_objects(cls: type, data: st.DataObject) -> None:
    """Random values, a random split between positional and keyword arguments, defaulted fields left
    out or given: the C constructor's object is the dataclass's, field for field."""
    specs = fields(cls)
    values = [data.draw(field_values) for _ in specs]
    n_positional = data.draw(st.integers(0, len(specs)))
    args = tuple(values[:n_positional])
    kwargs = {}
    for spec, value in zip(specs[n_positional:], values[n_positional:], strict=True):
        if spec.default is MISSING or data.draw(st.booleans()):
            kwargs[spec.name] = value
    assert same_object(fast_construct(cls, args, kwargs), reference_construct(cls, args, kwargs))


@given(st.sampled_from(list(domain.FAST_CONSTRUCTED)), st.data())
def test_bad_constructor_calls_raise_what_the_dataclass_raises(cls: type, data: st.DataObject) -> None:
    specs = fields(cls)
    values = [data.draw(field_values) for _ in specs]
    bad = data.draw(st.sampled_from(["too_many", "unknown", "twice", "missing"]))
    args, kwargs = tuple(values), {}
    if bad == "too_many":
        args = (*values, 1)
    elif bad == "unknown":
        kwargs = {"no_such_field": 1}
    elif bad == "twice":
        kwargs = {specs[0].name: values[0]}
    else:
        args = tuple(values[: sum(1 for s in specs if s.default is MISSING) - 1])
    expected = reference_construct(cls, args, kwargs)
    assert isinstance(expected, tuple) and expected[0] is TypeError  # each case is an error
    assert fast_construct(cls, args, kwargs) == expected


def test_subclasses_keep_their_own_init() -> None:
    """A subclass (tests subclass events) is built by its own __init__, __post_init__ included."""
    seen = []

    @dataclass_frozen_slots
    class Tick(domain.Timer):
        extra: int = 5

        def __post_init__(self) -> None:
            seen.append(self.extra)

    tick = Tick(1, 2, 7)
    assert (tick.ts_venue_ns, tick.ts_recv_ns, tick.extra, seen) == (1, 2, 7, [7])
    assert not native.fast_constructed(Tick)

    class Plain(domain.TradePrint):
        pass

    trade = Plain("X", 1, 2, Side.BUY, "t", 3, 4)
    assert type(trade) is Plain and trade.venue == "" and trade == Plain("X", 1, 2, Side.BUY, "t", 3, 4)


def dataclass_frozen_slots(cls: type) -> type:
    from dataclasses import dataclass

    return dataclass(frozen=True, slots=True)(cls)


def test_fast_init_refuses_what_it_cannot_build() -> None:
    class NotSlotted:
        x: int = 0

    with pytest.raises(ValueError):
        native.fast_init(NotSlotted, ("x",), ())
    with pytest.raises(ValueError):
        native.fast_init(int, (), ())  # not a Python class


# --------------------------------------------------------------------------------------------------
# the event cache's columns back to events (bot.venues.event_cache)
# --------------------------------------------------------------------------------------------------


def _columns_of(events: list[tuple[int, BookDelta | BookSnapshot | TradePrint]]) -> tuple[tuple, list[str]]:
    """The columns `event_cache._decode` hands `decode_events`, as the cache writes them."""
    columns = event_cache._Columns()
    for now_ns, event in events:
        columns.add(now_ns, event)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "x.npz"
        columns.write(path, {"format": event_cache.FORMAT_VERSION, "symbol": "X/Y", "venue": "v", "stats": {}})
        with np.load(path) as data:
            cols = {name: data[name] for name in data.files}
    blob = cols["trade_ids"].tobytes().decode()
    return tuple(cols[name] for name in event_cache._DECODE_COLUMNS), blob.split("\n") if blob else []


def _both(columns: tuple, trade_ids: list[str], start: int, end: int, level_at: int, trade_at: int) -> tuple:
    args = (columns, start, end, level_at, trade_ids, trade_at, "X/Y", "v")
    c = native.decode_events(*args, event_cache._SIDES, event_cache._EVENT_CLASSES)
    return c, event_cache._decode_py(*args)


_cache_events = book_events_of("v")


@given(st.lists(st.tuples(times, _cache_events), min_size=1, max_size=30), st.data())
def test_decode_events_equals_the_reference(events: list, data: st.DataObject) -> None:
    columns, trade_ids = _columns_of(events)
    n = len(events)
    cut = data.draw(st.integers(0, n))  # two chunks, the second starting where the first left off
    c_first, py_first = _both(columns, trade_ids, 0, cut, 0, 0)
    assert c_first == py_first
    c_second, py_second = _both(columns, trade_ids, cut, n, c_first[1], c_first[2])
    assert c_second == py_second
    assert c_first[0] + c_second[0] == events  # and both are the events that were written
    assert (c_second[1], c_second[2]) == (len(columns[10]), len(trade_ids))
    for _, event in c_first[0] + c_second[0]:  # frozen, cycle-free: the collector need not scan them
        assert not gc.is_tracked(event)


def test_decode_events_hands_odd_columns_back() -> None:
    trade = TradePrint("X/Y", 5, 6, Side.SELL, "7", 1, 2, "v")
    delta = BookDelta("X/Y", 1, 2, ((10, 1),), ((11, 2),), 3, 4, None, "v")
    columns, trade_ids = _columns_of([(1, trade), (2, delta)])
    ok, _ = _both(columns, trade_ids, 0, 2, 0, 0)
    assert ok is not None and [e for _, e in ok[0]] == [trade, delta]

    def changed(index: int, value: object) -> tuple:
        return (*columns[:index], value, *columns[index + 1 :])

    odd = [
        (changed(6, np.array([2, 0], dtype=np.int64)), trade_ids, 0, 0),  # a side code other than 0 / 1
        (changed(6, np.array([-1, 0], dtype=np.int64)), trade_ids, 0, 0),  # (Python would index from the end)
        (changed(8, np.array([1, 1], dtype=np.int32)), trade_ids, 0, 0),  # a trade row with levels
        (changed(1, columns[1].astype(np.float64)), trade_ids, 0, 0),  # not integers
        (changed(1, columns[1].astype(np.int32)), trade_ids, 0, 0),  # not 8 bytes
        (changed(1, columns[1].astype(np.uint64)), trade_ids, 0, 0),  # unsigned
        (changed(1, columns[1][:1]), trade_ids, 0, 0),  # a short column
        (changed(10, columns[10][:1]), trade_ids, 0, 0),  # levels missing
        (changed(1, [1, 2]), trade_ids, 0, 0),  # not a buffer
        (columns, [], 0, 0),  # a trade id missing
        (columns, trade_ids, 1, 0),  # levels from past the end
        (columns, trade_ids, 0, 1),  # trade ids from past the end
    ]
    for cols, ids, level_at, trade_at in odd:
        args = (cols, 0, 2, level_at, ids, trade_at, "X/Y", "v", event_cache._SIDES, event_cache._EVENT_CLASSES)
        assert native.decode_events(*args) is None
    consts = ("X/Y", "v", event_cache._SIDES, event_cache._EVENT_CLASSES)
    assert native.decode_events(columns, 0, 3, 0, trade_ids, 0, *consts) is None  # rows past the end
    assert native.decode_events(columns, 1, 0, 0, trade_ids, 0, *consts) is None  # start after end


def test_the_recorded_spot_file_decodes_as_the_reference(tmp_path: Path) -> None:
    inst = infer_instrument(RECORDINGS[0])
    raw = list(ReplaySource([RECORDINGS[0]], [inst]))
    assert list(event_cache.CachedSource([RECORDINGS[0]], [inst], tmp_path)) == raw  # writes the cache
    with np.load(next(tmp_path.glob("*.npz"))) as data:
        cols = {name: data[name] for name in data.files}
    blob = cols["trade_ids"].tobytes().decode()
    columns, trade_ids = tuple(cols[name] for name in event_cache._DECODE_COLUMNS), blob.split("\n")
    venue = json.loads(cols["meta"].tobytes())["venue"]
    args = (columns, 0, len(raw), 0, trade_ids, 0, inst.symbol, venue)
    c = native.decode_events(*args, event_cache._SIDES, event_cache._EVENT_CLASSES)
    assert c is not None and c == event_cache._decode_py(*args)
    assert c[0] == raw


# --------------------------------------------------------------------------------------------------
# fast_tuple_init / fast_native_init: the core's NamedTuples and dataclasses built in C
# --------------------------------------------------------------------------------------------------

from bot.core.estimators import ArrivalFit  # noqa: E402
from bot.core.orders import FillResult, Order  # noqa: E402
from bot.core.quoting import DesiredQuote, MarketInputs, TheoQuote  # noqa: E402
from bot.core.risk import RiskDecision, RiskTransition  # noqa: E402
from bot.venues.paper import PaperOrder  # noqa: E402

# one valid set of fields each (values drawn below replace some of them, valid or not)
CORE_EXAMPLES: dict[type, dict[str, object]] = {
    MarketInputs: dict(mid_px=61800.5, inventory_base=0.1, sigma_px_per_sqrt_s=1.2, a_per_s=0.5, k_per_px=0.3),
    TheoQuote: dict(
        model="glft",
        mid_px=1.0,
        reservation_px=1.0,
        half_spread_px=0.1,
        skew_px_per_base=0.0,
        bid_px=0.9,
        ask_px=1.1,
        floored=False,
    ),
    DesiredQuote: dict(side=Side.BUY, level=0, price_ticks=100, size_lots=3),
    RiskDecision: dict(RiskDecision()._asdict()),
    RiskTransition: dict(event="risk.paused", rule="drawdown", state="paused", prev_state="normal", fields={}),
    ArrivalFit: dict(a_per_s=1.0, k_per_px=2.0, reason="fit", trades=10, at_ns=5),
    Order: dict(
        symbol="X/Y", client_id="q-1", side=Side.SELL, price_ticks=10, size_lots=2, level=0, tag="quote", placed_ns=1
    ),
    FillResult: dict(is_new=True, order=None),
    PaperOrder: dict(
        client_id="q-1",
        venue_order_id="v-1",
        side=Side.BUY,
        price_ticks=1,
        size_lots=2,
        leaves_lots=2,
        queue_ahead_lots=0,
        level_lots=0,
        arrived_ns=0,
    ),
}
core_values = st.one_of(st.integers(-3, 3), st.floats(), st.text(max_size=2), st.none(), st.booleans())


def core_fields(cls: type) -> list[tuple[str, object]]:
    """(name, default or MISSING) in constructor order."""
    if issubclass(cls, tuple):
        defaults = cls._field_defaults  # type: ignore[attr-defined]
        return [(n, defaults.get(n, MISSING)) for n in cls._fields]  # type: ignore[attr-defined]
    return [(f.name, f.default) for f in fields(cls)]  # type: ignore[arg-type]


def own_constructor(cls: type, args: tuple, kwargs: dict) -> object:
    """The class's own generated constructor (the NamedTuple's `__new__`, the dataclass's `__init__`),
    or the type and message of its error."""
    try:
        if issubclass(cls, tuple):
            return cls.__new__(cls, *args, **kwargs)
        obj = cls.__new__(cls)  # type: ignore[call-overload]
        cls.__init__(obj, *args, **kwargs)  # type: ignore[misc]
        return obj
    except Exception as exc:
        return type(exc), str(exc)


def same_field(x: object, y: object) -> bool:
    """The same object; or, for a number a compiled class stores unboxed (each read is a new object),
    the same type and value (NaN included)."""
    if x is y:
        return True
    return type(x) is type(y) and type(x) in (int, float) and (x == y or (x != x and y != y))


def same_core_object(a: object, b: object) -> bool:
    if type(a) is tuple or type(b) is tuple:  # errors: same type and message
        return a == b
    names = [n for n, _ in core_fields(type(a))]
    return (
        type(a) is type(b)
        and all(same_field(getattr(a, n), getattr(b, n)) for n in names)
        and repr(a) == repr(b)
        and (a == b or a != a)  # a NaN field: equal to nothing, itself included
    )


def test_the_core_records_are_built_in_c() -> None:
    for cls in CORE_EXAMPLES:
        installed = native.fast_constructed(cls) if issubclass(cls, tuple) else native.fast_native_installed(cls)
        assert installed, cls
    with pytest.raises(FrozenInstanceError):  # still frozen
        MarketInputs(**CORE_EXAMPLES[MarketInputs]).mid_px = 2.0  # type: ignore[misc, arg-type]
    with pytest.raises(ValueError, match="mid_px must be finite"):  # __post_init__ still runs
        MarketInputs(**{**CORE_EXAMPLES[MarketInputs], "mid_px": math.nan})  # type: ignore[arg-type]


@given(st.sampled_from(list(CORE_EXAMPLES)), st.data())
def test_core_records_built_in_c_are_the_ones_their_constructors_build(cls: type, data: st.DataObject) -> None:
    """Valid and invalid values, positional and keyword, defaults left out or given, and the error
    cases (too many, unknown, repeated, missing): the same object, or the same error."""
    specs = core_fields(cls)
    example = CORE_EXAMPLES[cls]
    values = [data.draw(core_values) if data.draw(st.integers(0, 4)) == 0 else example.get(n, d) for n, d in specs]
    n_positional = data.draw(st.integers(0, len(specs)))
    args = tuple(values[:n_positional])
    kwargs = {}
    for (name, default), value in zip(specs[n_positional:], values[n_positional:], strict=True):
        if default is MISSING or data.draw(st.booleans()):
            kwargs[name] = value
    bad = data.draw(st.sampled_from(["none", "none", "too_many", "unknown", "twice", "missing"]))
    if bad == "too_many":
        args, kwargs = (*values, 1), {}
    elif bad == "unknown":
        kwargs["no_such_field"] = 1
    elif bad == "twice" and args:
        kwargs[specs[0][0]] = values[0]
    elif bad == "missing":
        args, kwargs = tuple(values[: sum(1 for _, d in specs if d is MISSING) - 1]), {}
    expected = own_constructor(cls, args, kwargs)
    try:
        got: object = cls(*args, **kwargs)
    except Exception as exc:
        got = type(exc), str(exc)
    assert same_core_object(got, expected)


def test_fast_core_constructors_refuse_what_they_cannot_build() -> None:
    with pytest.raises(ValueError):
        native.fast_tuple_init(dict, ("x",), ())  # not a tuple
    with pytest.raises(ValueError):
        native.fast_native_init(int, ("x",), (), False, False)  # no __init__ of its own
    assert not native.fast_native_installed(domain.Instrument)
