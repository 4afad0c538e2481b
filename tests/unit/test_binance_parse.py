"""Binance parsing on recorded real payloads (tests/data/binance), instrument inference, bad lines."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.domain import BookDelta, BookSnapshot, Instrument, InstrumentKind, Side, TradePrint
from bot.venues.binance import (
    BinanceParser,
    BookTicker,
    decimal_grid,
    infer_instrument,
    is_book_ticker_line,
    iter_lines,
    split_symbol,
)

DATA = Path(__file__).resolve().parent.parent / "data" / "binance"
SPOT_FILE = DATA / "spot_btcusdt_20240808.gz"
PERP_FILE = DATA / "usdm_btcusdt_20240808.gz"

SPOT = Instrument("BTC/USDT", InstrumentKind.SPOT, "BTC", "USDT", 0.01, 0.000001)
PERP = Instrument("BTC/USDT:USDT", InstrumentKind.PERP, "BTC", "USDT", 0.1, 0.001)

# verbatim lines from the recordings
SPOT_DEPTH = (
    b'1723161254036059768 {"stream":"btcusdt@depth@100ms","data":{"e":"depthUpdate","E":1723161255308,'
    b'"s":"BTCUSDT","U":50093239203,"u":50093239207,"b":[["55653.87000000","0.00000000"]],'
    b'"a":[["61838.04000000","0.32332000"],["61844.30000000","0.40163000"],["61862.50000000","0.05019000"],'
    b'["61862.51000000","0.00000000"]]}}\n'
)
SPOT_TICKER = (
    b'1723161254087891268 {"stream":"btcusdt@bookTicker","data":{"u":50093239212,"s":"BTCUSDT",'
    b'"b":"61837.63000000","B":"3.78826000","a":"61837.64000000","A":"1.54698000"}}\n'
)
SPOT_TRADE = (
    b'1723161254087896568 {"stream":"btcusdt@trade","data":{"e":"trade","E":1723161255343,"s":"BTCUSDT",'
    b'"t":3735683259,"p":"61837.63000000","q":"0.02000000","T":1723161255342,"m":true,"M":true}}\n'
)
PERP_TICKER = (
    b'1723161255088169167 {"stream":"btcusdt@bookTicker","data":{"e":"bookTicker","u":5123107839020,'
    b'"s":"BTCUSDT","b":"61800.20","B":"2.507","a":"61800.30","A":"2.510","T":1723161256313,"E":1723161256313}}\n'
)
PERP_TRADE = (
    b'1723161255088176367 {"stream":"btcusdt@trade","data":{"e":"trade","E":1723161256322,"T":1723161256322,'
    b'"s":"BTCUSDT","t":5266583935,"p":"61800.30","q":"0.006","X":"MARKET","m":false}}\n'
)
PERP_DEPTH = (
    b'1723161255088309867 {"stream":"btcusdt@depth@0ms","data":{"e":"depthUpdate","E":1723161256299,'
    b'"T":1723161256298,"s":"BTCUSDT","U":5123107837801,"u":5123107842679,"pu":5123107837557,'
    b'"b":[["58710.20","0.014"],["61510.90","0.000"]],"a":[["61800.30","2.510"]]}}\n'
)


def test_spot_diff_depth_to_delta() -> None:
    d = BinanceParser(SPOT).parse_line(SPOT_DEPTH)
    assert isinstance(d, BookDelta)
    assert (d.first_seq, d.last_seq, d.prev_seq) == (50093239203, 50093239207, None)
    assert d.bids == ((5565387, 0),)
    assert d.asks == ((6183804, 323320), (6184430, 401630), (6186250, 50190), (6186251, 0))
    assert d.ts_venue_ns == 1723161255308 * 1_000_000
    assert d.ts_recv_ns == 1723161254036059768
    assert d.symbol == "BTC/USDT"


def test_perp_diff_depth_keeps_pu() -> None:
    d = BinanceParser(PERP).parse_line(PERP_DEPTH)
    assert isinstance(d, BookDelta)
    assert (d.first_seq, d.last_seq, d.prev_seq) == (5123107837801, 5123107842679, 5123107837557)
    assert d.bids == ((587102, 14), (615109, 0))
    assert d.asks == ((618003, 2510),)


def test_trade_aggressor_from_buyer_is_maker_flag() -> None:
    sell = BinanceParser(SPOT).parse_line(SPOT_TRADE)
    assert isinstance(sell, TradePrint)
    assert sell.aggressor is Side.SELL  # m=true: the buyer was the maker, the seller hit the bid
    assert (sell.price_ticks, sell.size_lots, sell.trade_id) == (6183763, 20000, "3735683259")
    assert sell.ts_venue_ns == 1723161255342 * 1_000_000
    buy = BinanceParser(PERP).parse_line(PERP_TRADE)
    assert isinstance(buy, TradePrint)
    assert buy.aggressor is Side.BUY
    assert (buy.price_ticks, buy.size_lots) == (618003, 6)


def test_book_tickers_spot_and_perp() -> None:
    t = BinanceParser(SPOT).parse_line(SPOT_TICKER)
    assert t == BookTicker("BTC/USDT", 50093239212, 6183763, 3788260, 6183764, 1546980, 1723161254087891268,
                           1723161254087891268)  # fmt: skip
    p = BinanceParser(PERP).parse_line(PERP_TICKER)
    assert isinstance(p, BookTicker)
    assert (p.update_id, p.bid_ticks, p.bid_lots, p.ask_ticks, p.ask_lots) == (
        5123107839020,
        618002,
        2507,
        618003,
        2510,
    )
    assert p.ts_venue_ns == 1723161256313 * 1_000_000


def test_snapshot_sorted_best_first() -> None:
    line = b'17 {"lastUpdateId":42,"bids":[["10.00","1.0"],["11.00","2.0"]],"asks":[["13.00","1"],["12.00","3"]]}'
    inst = Instrument("X/USDT", InstrumentKind.SPOT, "X", "USDT", 0.01, 0.1)
    s = BinanceParser(inst).parse_line(line)
    assert isinstance(s, BookSnapshot)
    assert s.seq == 42
    assert s.bids == ((1100, 20), (1000, 10))
    assert s.asks == ((1200, 30), (1300, 10))
    assert s.ts_venue_ns == s.ts_recv_ns == 17  # spot's REST snapshot carries no venue time


def test_real_files_parse_without_drops() -> None:
    for path, inst in ((SPOT_FILE, SPOT), (PERP_FILE, PERP)):
        parser = BinanceParser(inst)
        kinds: dict[type, int] = {}
        for line in iter_lines(path):
            item = parser.parse_line(line)
            kinds[type(item)] = kinds.get(type(item), 0) + 1
        assert not parser.dropped
        assert kinds[BookSnapshot] == 1
        total = sum(kinds.values())
        assert total == {SPOT_FILE: 41_249, PERP_FILE: 93_954}[path]  # the README's line counts
        assert kinds[BookDelta] > 3000 and kinds[TradePrint] > 9000 and kinds[BookTicker] > 28_000


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (b"", "no_timestamp"),
        (b"\n", "no_timestamp"),
        (b'{"stream":"x"}', "no_timestamp"),
        (b"abc {}", "bad_timestamp"),
        (b"123 {not json", "not_json"),
        (b'123 {"stream":"btcusdt@trade","data":{"e":"trade","p":"1.0"}}', "malformed"),
        (b'123 {"stream":"btcusdt@trade","data":{"e":"trade","p":"NaN","q":"1","m":true,"t":1,"T":1}}', "malformed"),
        (b'123 {"stream":"btcusdt@trade","data":{"e":"trade","p":"x","q":"1","m":true,"t":1,"T":1}}', "malformed"),
        (
            b'123 {"stream":"btcusdt@depth","data":{"e":"depthUpdate","U":1,"u":2,"b":[["1"]],"a":[],"E":1}}',
            "malformed",
        ),
        (b'123 {"stream":"btcusdt@depth","data":{"e":"depthUpdate","U":1,"u":2,"b":5,"a":[],"E":1}}', "malformed"),
        (b'123 {"stream":"btcusdt@trade","data":{"e":"trade","p":"0","q":"1","m":true,"t":1,"T":1}}', "bad_value"),
        (b'123 {"stream":"btcusdt@trade","data":{"e":"trade","p":"5","q":"-1","m":true,"t":1,"T":1}}', "bad_value"),
        (b'123 {"stream":"btcusdt@kline","data":{"e":"kline"}}', "unknown_message"),
        (b"123 [1,2,3]", "unknown_message"),
        (b'123 "text"', "unknown_message"),
    ],
)
def test_bad_lines_are_dropped_and_counted(line: bytes, reason: str) -> None:
    parser = BinanceParser(SPOT)
    assert parser.parse_line(line) is None
    assert parser.dropped == {reason: 1}
    assert parser.parsed == 0


def test_ticker_lines_are_recognised_without_decoding() -> None:
    assert is_book_ticker_line(SPOT_TICKER) and is_book_ticker_line(PERP_TICKER)
    assert not any(is_book_ticker_line(x) for x in (SPOT_DEPTH, SPOT_TRADE, PERP_DEPTH, PERP_TRADE))


def test_instruments_inferred_from_the_data() -> None:
    spot = infer_instrument(SPOT_FILE)
    assert (spot.symbol, spot.kind, spot.base, spot.quote) == ("BTC/USDT", InstrumentKind.SPOT, "BTC", "USDT")
    assert spot.tick_size == 0.01
    # Binance's lot filter is 1e-5 BTC, but three far-from-mid levels in this recording hold sizes on a
    # 1e-6 grid (e.g. 25.426189 BTC at 200000): the book needs the finer grid to stay exact.
    assert spot.lot_size == 0.000001
    perp = infer_instrument(PERP_FILE)
    assert (perp.symbol, perp.kind) == ("BTC/USDT:USDT", InstrumentKind.PERP)
    assert (perp.tick_size, perp.lot_size) == (0.1, 0.001)


def test_infer_instrument_on_a_small_plain_file(tmp_path: Path) -> None:
    path = tmp_path / "eth.txt"
    path.write_bytes(
        b'1 {"stream":"ethusdc@trade","data":{"e":"trade","s":"ETHUSDC","p":"2500.50","q":"0.2500",'
        b'"m":true,"t":1,"T":1}}\n'
        b'2 {"lastUpdateId":7,"bids":[["2500.00","1.5000"]],"asks":[["2501.50","0.7500"]]}\n'
    )
    inst = infer_instrument(path)
    assert (inst.symbol, inst.kind, inst.tick_size, inst.lot_size) == ("ETH/USDC", InstrumentKind.SPOT, 0.5, 0.25)


def test_decimal_grid_and_symbol_split() -> None:
    assert decimal_grid({b"61800.20", b"61800.30", b"0.000"}) == 0.1
    assert decimal_grid({b"1.00000000", b"0.00100000"}) == 0.001
    assert decimal_grid({b"10", b"25"}) == 5.0
    with pytest.raises(ValueError):
        decimal_grid({b"0.0"})
    assert split_symbol("BTCUSDT") == ("BTC", "USDT")
    assert split_symbol("ETHFDUSD") == ("ETH", "FDUSD")
    assert split_symbol("ETHBTC") == ("ETH", "BTC")
    with pytest.raises(ValueError):
        split_symbol("USDT")
