"""Binance market data at the edge: recorded/streamed JSON -> `bot.domain` events, and the book sync.

Recorded line format (see tests/data/binance/README.md): `<local receive ns> <JSON>`, the JSON being a
combined-stream message (`{"stream": "btcusdt@depth@100ms", "data": {...}}`) or a REST depth snapshot
(`{"lastUpdateId": ..., "bids": [...], "asks": [...]}`). One file holds one symbol of one market.

* diff depth (`depthUpdate`) -> `BookDelta(first_seq=U, last_seq=u, prev_seq=pu)` (pu: futures only)
* REST snapshot -> `BookSnapshot(seq=lastUpdateId)`
* trade -> `TradePrint` (`m` true: the buyer was the maker, so the aggressor SOLD)
* bookTicker -> `BookTicker` (not a core event: used to check the replayed book)

`BookSync` is Binance's documented procedure to build a local book from a diff stream: buffer diffs
until a snapshot arrives, drop those with `u <= lastUpdateId`, start from the first one covering
`lastUpdateId + 1` (futures: or whose `pu` is at or before it), then require continuity (futures:
`pu` == previous `u`; spot: `U` == previous `u` + 1) and resync on any gap.

Bad lines are dropped and counted by reason, never raised.

Speed: plain lines (the shape Binance sends) are decoded straight from their bytes by the optional C
extension (`bot/_native.c`: `decode_lines`, `grid_levels`); every other line, and every
line when the extension was not built, goes through orjson and the Python code here, which is the
reference the C code is tested against (tests/unit/test_native.py).
"""

from __future__ import annotations

import io
import itertools
import math
import re
from collections import Counter
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any, NamedTuple

import orjson

try:  # ISA-L's gunzip: ~3x faster than zlib's on the recordings, same file format and errors
    from isal import igzip as gzip
except ImportError:  # pragma: no cover - a platform without isal wheels
    import gzip  # type: ignore[no-redef]

from bot.domain import BookDelta, BookSnapshot, Instrument, InstrumentKind, Level, Side, TradePrint

try:  # the per-line decoding and per-level conversion in C, when the optional extension was built (setup.py)
    from bot._native import decode_lines as _native_decode_lines
    from bot._native import grid_levels as _native_grid_levels
except ImportError:  # pragma: no cover - no C compiler at install: the Python reference
    _native_decode_lines = None  # type: ignore[assignment]
    _native_grid_levels = None  # type: ignore[assignment]

NATIVE_DECODER = _native_decode_lines is not None
"""True when the C decoder was built (setup.py): recorded lines decode ~3x faster, same results."""

_PLAIN_DEPTH = 1  # the tags of decode_lines' tuples: a depth diff, a bookTicker (a trade is 2)
_PLAIN_TICKER = 3

_MS_NS = 1_000_000

# Quote assets recognised when splitting a Binance symbol ("BTCUSDT" -> BTC/USDT); longest first.
_QUOTES = ("FDUSD", "USDT", "USDC", "BUSD", "TUSD", "BTC", "ETH", "BNB", "EUR", "TRY", "USD")

# Default fees (fraction of notional) of Binance's base VIP 0 tier, used for paper fills.
SPOT_FEES = (0.001, 0.001)  # maker, taker
USDM_FEES = (0.0002, 0.0005)


class BookTicker(NamedTuple):
    """Binance best bid/ask at update id `update_id` (ticks and lots of the file's instrument).

    A NamedTuple, not a frozen dataclass: recordings hold more tickers than anything else, and a
    NamedTuple is built ~3x faster."""

    symbol: str
    update_id: int
    bid_ticks: int
    bid_lots: int
    ask_ticks: int
    ask_lots: int
    ts_venue_ns: int
    ts_recv_ns: int


Parsed = BookDelta | BookSnapshot | TradePrint | BookTicker


# --------------------------------------------------------------------------------------------------
# files and instruments
# --------------------------------------------------------------------------------------------------


def _iter_chunks(path: str | Path, size: int = 1 << 23) -> Iterator[bytes]:
    """The file in chunks of whole lines (about `size` bytes each), gunzipped when it ends in .gz."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as fh:
        rest = b""
        while chunk := fh.read(size):
            end = chunk.rfind(b"\n") + 1  # cut after the last whole line
            if end == 0:
                rest += chunk
                continue
            yield rest + chunk[:end]
            rest = chunk[end:]
        if rest:
            yield rest


def iter_line_batches(
    path: str | Path, chunk_bytes: int = 1 << 16, on_read: Callable[[int], None] | None = None
) -> Iterator[list[bytes]]:
    """The file's lines (bytes, without the newline), a list per chunk read, gunzipped when it ends in
    .gz.

    Reads chunks and splits them in C: GzipFile's own line iterator costs ~2 µs a line. 64 KiB chunks
    (~300 lines): a replay parses a batch before using any of it, and the events of a 1 MiB batch no
    longer fit the CPU caches (the replay's source ran 0.18 s with 64 KiB, 0.26 s with 1 MiB).
    `on_read(n)` is told how many bytes *of the file on disk* (compressed, for .gz) each chunk consumed,
    so a caller can show progress against the file sizes."""
    path = Path(path)
    with open(path, "rb") as raw:
        fh: io.BufferedIOBase = gzip.GzipFile(fileobj=raw, mode="rb") if path.suffix == ".gz" else raw  # type: ignore[no-untyped-call]
        rest = b""
        done = 0
        while chunk := fh.read(chunk_bytes):
            if on_read is not None:
                position = raw.tell()
                on_read(position - done)
                done = position
            lines = (rest + chunk).split(b"\n")
            rest = lines.pop()
            if lines:
                yield lines
        if rest:
            yield [rest]


def iter_lines(
    path: str | Path, chunk_bytes: int = 1 << 16, on_read: Callable[[int], None] | None = None
) -> Iterator[bytes]:
    """The file's lines one by one (see `iter_line_batches`)."""
    return itertools.chain.from_iterable(iter_line_batches(path, chunk_bytes, on_read))


_PAIR_PRICE = re.compile(rb'\["(-?[0-9.]+)","')  # the price of a ["price","qty"] book level
_PAIR_QTY = re.compile(rb'","(-?[0-9.]+)"\]')  # its qty
_PRICE_FIELD = re.compile(rb'"[pba]":"(-?[0-9.]+)"')
_QTY_FIELD = re.compile(rb'"[qBA]":"(-?[0-9.]+)"')
_SYMBOL = re.compile(rb'"s":"([A-Z0-9]+)"')


def decimal_grid(values: set[bytes]) -> float:
    """The coarsest grid (a power of ten times an integer) that every decimal string lies on.

    E.g. {"61800.20", "61800.30"} -> 0.1. Zero and negative values are ignored. Raises ValueError
    when there is no positive value.
    """
    nums = [Decimal(v.decode()) for v in values]
    nums = [n for n in nums if n > 0]
    if not nums:
        raise ValueError("no positive values to infer a grid from")
    exponent = min(int(n.normalize().as_tuple().exponent) for n in nums)
    scale = Decimal(10) ** exponent
    step = 0
    for n in nums:
        step = math.gcd(step, int(n / scale))
    return float(Decimal(step) * scale)


def split_symbol(venue_symbol: str) -> tuple[str, str]:
    """ "BTCUSDT" -> ("BTC", "USDT")."""
    for quote in _QUOTES:
        if venue_symbol.endswith(quote) and len(venue_symbol) > len(quote):
            return venue_symbol[: -len(quote)], quote
    raise ValueError(f"cannot split Binance symbol {venue_symbol!r} into base and quote")


class RecordingInfo(NamedTuple):
    """What one pass over a recorded file tells (`read_recording_info`): its instrument, the receive
    times of its first and last lines (ns), and whether it holds a REST depth snapshot (a file
    without one continues an earlier day's recording: its book must be built from its diffs)."""

    instrument: Instrument
    first_recv_ns: int
    last_recv_ns: int
    has_snapshot: bool


def infer_instrument(path: str | Path) -> Instrument:
    """The instrument of a recorded file (`read_recording_info`)."""
    return read_recording_info(path).instrument


def _recv_ns(line: bytes) -> int | None:
    head = line.split(b" ", 1)[0]
    return int(head) if head.isdigit() else None


def read_recording_info(path: str | Path) -> RecordingInfo:
    """The instrument of a recorded file, from its own data: market (diffs with `pu` are USD-M
    futures), symbol (`s`), and the tick and lot grids every price and size in the file lies on; and,
    from the same pass, its first and last receive times and whether it holds a snapshot.

    Binance's exchange filters are the grid for *orders*; the recorded book can hold older sizes on
    a finer grid (the bundled spot file has three levels far from the mid at 1e-6 BTC while the lot
    filter is 1e-5), and the book must stay exact, so the data's grid is used.
    """
    symbols: set[bytes] = set()
    prices: set[bytes] = set()
    sizes: set[bytes] = set()
    is_futures = has_snapshot = False
    first_ns: int | None = None
    last_ns: int | None = None
    for chunk in _iter_chunks(path):
        symbols.update(_SYMBOL.findall(chunk))
        is_futures = is_futures or b'"pu":' in chunk
        has_snapshot = has_snapshot or b'"lastUpdateId"' in chunk
        prices.update(_PRICE_FIELD.findall(chunk))
        sizes.update(_QTY_FIELD.findall(chunk))
        prices.update(_PAIR_PRICE.findall(chunk))  # two passes in C beat one findall unpacked in Python
        sizes.update(_PAIR_QTY.findall(chunk))
        if first_ns is None:
            first_ns = _recv_ns(chunk[:64])
        end = len(chunk) - 1 if chunk.endswith(b"\n") else len(chunk)  # the chunk's last line, without copying it
        last_ns = _recv_ns(chunk[chunk.rfind(b"\n", 0, end) + 1 : end][:64]) or last_ns
    if len(symbols) != 1:
        raise ValueError(f"{path}: expected one symbol, found {sorted(s.decode() for s in symbols)}")
    venue_symbol = symbols.pop().decode()
    base, quote = split_symbol(venue_symbol)
    maker, taker = USDM_FEES if is_futures else SPOT_FEES
    instrument = Instrument(
        symbol=f"{base}/{quote}:{quote}" if is_futures else f"{base}/{quote}",
        kind=InstrumentKind.PERP if is_futures else InstrumentKind.SPOT,
        base=base,
        quote=quote,
        tick_size=decimal_grid(prices),
        lot_size=decimal_grid(sizes),
        maker_fee=maker,
        taker_fee=taker,
    )
    return RecordingInfo(instrument, first_ns or 0, last_ns or first_ns or 0, has_snapshot)


# --------------------------------------------------------------------------------------------------
# parsing
# --------------------------------------------------------------------------------------------------


class _GridCache(dict[str, int]):
    """Decimal string -> integer steps of `step`, memoised: book prices and sizes repeat a lot, and a
    dict hit is ~5x cheaper than float() + round(). Cleared when it grows past `limit` entries."""

    def __init__(self, step: float, limit: int = 500_000) -> None:
        super().__init__()
        self.step = step
        self.limit = limit

    def __missing__(self, text: str) -> int:
        if len(self) >= self.limit:
            self.clear()
        value = round(float(text) / self.step)
        self[text] = value
        return value


class BinanceParser:
    """Parses Binance messages of one instrument into domain values; counts what it drops.

    `parse_line` takes a recorded line; `parse_message` a JSON message and its receive time (for a
    live feed). Both return None for a line they drop, counted in `dropped` by reason.
    """

    def __init__(self, instrument: Instrument) -> None:
        self.instrument = instrument
        self.symbol = instrument.symbol
        self._tick_size = instrument.tick_size
        self._lot_size = instrument.lot_size
        self._ticks = _GridCache(instrument.tick_size)
        self._lots = _GridCache(instrument.lot_size)
        self.dropped: Counter[str] = Counter()
        self.parsed = 0

    def parse_lines(self, lines: list[bytes], skip_tickers: bool = False) -> tuple[list[Parsed], int]:
        """A batch of recorded lines: (the events, in order; dropped lines are counted in `dropped`), and
        with `skip_tickers`, how many bookTicker lines were left out undecoded (`is_book_ticker_line`).
        Each line is decoded in C when it is plain, else by `_parse_line_py`, the reference."""
        if _native_decode_lines is None:
            kept = [line for line in lines if not (skip_tickers and is_book_ticker_line(line))]
            events = [self._parse_line_py(line) for line in kept]
            return [e for e in events if e is not None], len(lines) - len(kept)
        items, skipped = _native_decode_lines(lines, self._tick_size, self._lot_size, skip_tickers)
        out = []
        from_plain = self._from_plain
        parse_py = self._parse_line_py
        for item in items:  # a decoded tuple, or a line the C decoder left to the reference path
            event = from_plain(item) if type(item) is tuple else parse_py(item)  # type: ignore[arg-type]
            if event is not None:
                out.append(event)
        return out, skipped

    def parse_line(self, line: bytes) -> Parsed | None:
        """One recorded line: `parse_lines` of a batch of one."""
        events, _ = self.parse_lines([line])
        return events[0] if events else None

    def _from_plain(self, plain: tuple[Any, ...]) -> Parsed | None:
        """The event of a line `bot._native.decode_lines` decoded (a depth diff, a trade or a ticker),
        built as `delta` / `trade` / `ticker` build it from the JSON."""
        if plain[0] == _PLAIN_DEPTH:
            _, recv_ns, venue_ms, first, last, prev, bids, asks = plain
            self.parsed += 1
            return BookDelta(self.symbol, first, last, bids, asks, venue_ms * _MS_NS, recv_ns, prev)
        if plain[0] == _PLAIN_TICKER:
            _, recv_ns, update_id, bid_ticks, bid_lots, ask_ticks, ask_lots, venue_ms = plain
            self.parsed += 1
            venue_ns = venue_ms * _MS_NS if venue_ms else recv_ns
            return BookTicker(self.symbol, update_id, bid_ticks, bid_lots, ask_ticks, ask_lots, venue_ns, recv_ns)
        _, recv_ns, venue_ms, trade_id, price_ticks, size_lots, buyer_is_maker = plain
        if price_ticks <= 0 or size_lots <= 0:
            self.dropped["bad_value"] += 1
            return None
        self.parsed += 1
        side = Side.SELL if buyer_is_maker else Side.BUY
        return TradePrint(self.symbol, price_ticks, size_lots, side, str(trade_id), venue_ms * _MS_NS, recv_ns)

    def _parse_line_py(self, line: bytes) -> Parsed | None:
        """`parse_line` with orjson: the reference, and the path of every line `decode_lines` leaves."""
        space = line.find(b" ")
        if space <= 0:
            self.dropped["no_timestamp"] += 1
            return None
        try:
            recv_ns = int(line[:space])
        except ValueError:
            self.dropped["bad_timestamp"] += 1
            return None
        try:
            message = orjson.loads(memoryview(line)[space + 1 :])  # a view: no copy of the JSON
        except ValueError:  # orjson.JSONDecodeError is a ValueError
            self.dropped["not_json"] += 1
            return None
        return self.parse_message(message, recv_ns)

    def parse_message(self, message: object, recv_ns: int) -> Parsed | None:
        out: Parsed | None = None
        try:
            if type(message) is dict:  # the dispatch is inlined: this runs for every recorded line
                data = message.get("data")
                if data is None:
                    data = message  # a raw (not combined) stream message, or a REST snapshot
                kind = data.get("e")
                if kind == "depthUpdate":
                    out = self.delta(data, recv_ns)
                elif kind == "trade":
                    out = self.trade(data, recv_ns)
                    if out is None:
                        return None  # counted as bad_value
                elif kind == "bookTicker" or (kind is None and "u" in data and "B" in data):  # spot omits "e"
                    out = self.ticker(data, recv_ns)
                elif data is message and "lastUpdateId" in message:
                    out = self.snapshot(message, recv_ns)
        except (KeyError, TypeError, ValueError, IndexError, OverflowError, AttributeError):
            self.dropped["malformed"] += 1
            return None
        if out is None:
            self.dropped["unknown_message"] += 1
        else:
            self.parsed += 1
        return out

    def _levels(self, pairs: list[list[str]]) -> tuple[Level, ...]:
        if _native_grid_levels is not None:
            levels = _native_grid_levels(pairs, self._tick_size, self._lot_size)
            if levels is not None:
                return levels
        return self._levels_py(pairs)

    def _levels_py(self, pairs: list[list[str]]) -> tuple[Level, ...]:
        """[[price text, qty text], ...] -> ((ticks, lots), ...); `bot._native.grid_levels` is this in C
        for plain decimal strings (it computes the same round(float(text) / step), without the cache)."""
        ticks = self._ticks
        lots = self._lots
        return tuple([(ticks[p], lots[q]) for p, q in pairs])

    def delta(self, data: dict[str, object], recv_ns: int) -> BookDelta:
        prev = data.get("pu")
        # positional arguments: a frozen dataclass is built ~30% faster so than with keywords
        return BookDelta(
            self.symbol,
            int(data["U"]),  # type: ignore[call-overload]  # first_seq
            int(data["u"]),  # type: ignore[call-overload]  # last_seq
            self._levels(data["b"]),  # type: ignore[arg-type]  # bids
            self._levels(data["a"]),  # type: ignore[arg-type]  # asks
            int(data["E"]) * _MS_NS,  # type: ignore[call-overload]  # ts_venue_ns
            recv_ns,  # ts_recv_ns
            None if prev is None else int(prev),  # type: ignore[call-overload]  # prev_seq
        )

    def snapshot(self, data: dict[str, object], recv_ns: int) -> BookSnapshot:
        bids = self._levels(data["bids"])  # type: ignore[arg-type]
        asks = self._levels(data["asks"])  # type: ignore[arg-type]
        venue_ms = data.get("T") or data.get("E")  # futures only; spot's REST snapshot has no time
        return BookSnapshot(
            symbol=self.symbol,
            seq=int(data["lastUpdateId"]),  # type: ignore[call-overload]
            bids=tuple(sorted(bids, reverse=True)),
            asks=tuple(sorted(asks)),
            ts_venue_ns=int(venue_ms) * _MS_NS if venue_ms else recv_ns,  # type: ignore[call-overload]
            ts_recv_ns=recv_ns,
        )

    def trade(self, data: dict[str, object], recv_ns: int) -> TradePrint | None:
        price_ticks = self._ticks[data["p"]]  # type: ignore[index]
        size_lots = self._lots[data["q"]]  # type: ignore[index]
        if price_ticks <= 0 or size_lots <= 0:  # no such trade: it would skew the flow imbalance
            self.dropped["bad_value"] += 1
            return None
        return TradePrint(  # positional, as in `delta`
            self.symbol,
            price_ticks,
            size_lots,
            Side.SELL if data["m"] else Side.BUY,  # aggressor
            str(data["t"]),  # trade_id
            int(data["T"]) * _MS_NS,  # type: ignore[call-overload]  # ts_venue_ns
            recv_ns,  # ts_recv_ns
        )

    def ticker(self, data: dict[str, object], recv_ns: int) -> BookTicker:
        venue_ms = data.get("T") or data.get("E")  # futures only
        ticks = self._ticks
        lots = self._lots
        return BookTicker(  # positional, as in `delta`
            self.symbol,
            int(data["u"]),  # type: ignore[call-overload]  # update_id
            ticks[data["b"]],  # type: ignore[index]  # bid_ticks
            lots[data["B"]],  # type: ignore[index]  # bid_lots
            ticks[data["a"]],  # type: ignore[index]  # ask_ticks
            lots[data["A"]],  # type: ignore[index]  # ask_lots
            int(venue_ms) * _MS_NS if venue_ms else recv_ns,  # type: ignore[call-overload]  # ts_venue_ns
            recv_ns,  # ts_recv_ns
        )


def is_book_ticker_line(line: bytes) -> bool:
    """Cheap test on a recorded line's stream name, to skip tickers without decoding their JSON."""
    return line.find(b'@bookTicker"', 0, 80) >= 0


# --------------------------------------------------------------------------------------------------
# sync
# --------------------------------------------------------------------------------------------------


class BookSync:
    """Binance's diff-depth sync for one symbol, on sequence numbers only.

    Feed every diff to `on_delta` and every REST snapshot to `on_snapshot`; apply what they return,
    in order, to an `OrderBook`. While `needs_snapshot` is True a live feed should fetch one (the
    recorded files hold the snapshot their recorder took).

    * waiting (no snapshot yet, or after a gap): diffs are buffered (at most `max_buffer`, oldest
      dropped first); nothing is released.
    * on a snapshot at S: buffered diffs with `u <= S` are dropped; the first remaining one must
      cover S+1 (`U <= S+1`, or futures `pu <= S`), else the snapshot is older than the buffer and
      another is needed; otherwise the snapshot and the buffered diffs are released.
    * live: a diff with `u <=` the last released `u` is a duplicate and is dropped; one that does not
      continue (futures: `pu != last u`; spot: `U != last u + 1`) is a gap: it is released anyway so
      the book marks itself invalid, and buffering starts again from it.
    """

    def __init__(self, symbol: str, max_buffer: int = 10_000) -> None:
        self.symbol = symbol
        self.max_buffer = max_buffer
        self._buffer: list[BookDelta] = []
        self._last = -1  # last released u; -1 while waiting
        self._first = False  # the snapshot is released but no diff after it yet: the straddle rule applies
        self.needs_snapshot = True
        self.stats: Counter[str] = Counter()

    @property
    def synced(self) -> bool:
        return self._last >= 0

    def on_delta(self, delta: BookDelta) -> list[BookDelta]:
        last = self._last
        if last < 0:
            self._buffer.append(delta)
            if len(self._buffer) > self.max_buffer:
                del self._buffer[0]
                self.stats["buffer_overflow"] += 1
            return []
        if delta.last_seq <= last:
            self.stats["duplicate"] += 1
            return []
        if _follows(delta, last, self._first):
            self._last = delta.last_seq
            self._first = False
            return [delta]
        self.stats["gap"] += 1
        self._last = -1
        self.needs_snapshot = True
        self._buffer = [delta]
        return [delta]

    def on_snapshot(self, snapshot: BookSnapshot) -> list[BookSnapshot | BookDelta]:
        seq = snapshot.seq
        pending = [d for d in self._buffer if d.last_seq > seq]
        self.stats["dropped_before_snapshot"] += len(self._buffer) - len(pending)
        if pending and not _follows(pending[0], seq, True):
            # the snapshot is older than everything buffered: keep buffering, ask for a newer one
            self.stats["snapshot_too_old"] += 1
            self._buffer = pending
            self.needs_snapshot = True
            return []
        released: list[BookSnapshot | BookDelta] = [snapshot]
        last = seq
        for i, delta in enumerate(pending):
            released.append(delta)
            if not _follows(delta, last, i == 0):
                self.stats["gap"] += 1
                self._buffer = pending[i:]
                self._last = -1
                self.needs_snapshot = True
                return released
            last = delta.last_seq
        self._buffer = []
        self._last = last
        self._first = not pending
        self.needs_snapshot = False
        self.stats["synced"] += 1
        return released


def _follows(delta: BookDelta, last: int, first_after_snapshot: bool) -> bool:
    """Does `delta` (with `last_seq > last`) continue a book at update id `last`?

    Right after a snapshot it must cover `last + 1` (`U <= last + 1`) or, on futures, follow an update
    already in the snapshot (`pu <= last`); afterwards `pu == last` (futures) or `U == last + 1` (spot).
    """
    prev = delta.prev_seq
    if first_after_snapshot:
        return delta.first_seq <= last + 1 or (prev is not None and prev <= last)
    if prev is not None:
        return prev == last
    return delta.first_seq == last + 1


class DiffBookBuilder:
    """A book built from diffs alone, for a recording that holds no REST snapshot (a continuation
    day: the recorder's snapshot is in the previous day's file).

    Binance's diffs carry the absolute size of every level that changed, so a book that starts empty
    and applies them knows every level touched since; what it cannot know is a level that existed but
    never changed. It is declared usable (`on_delta` returns a `BookSnapshot` of it, at the last
    diff's id) once diffs have run `warmup_ns` without a gap and the book is uncrossed with levels on
    both sides at least `depth_bps` from the mid. On the bundled recordings the top of book is exact
    after the first second and the depth within 10 bps of the mid 91 % (spot, 100 ms diffs) and 100 %
    (perp, 0 ms diffs) complete after 120 s (docs/replay.md, tests/integration/test_replay_sync.py).
    A gap starts the build again.
    """

    def __init__(self, symbol: str, warmup_ns: int, depth_bps: float) -> None:
        self.symbol = symbol
        self.warmup_ns = warmup_ns
        self.depth = depth_bps / 10_000
        self.stats: Counter[str] = Counter()
        self.reset()

    def reset(self) -> None:
        self.bids: dict[int, int] = {}
        self.asks: dict[int, int] = {}
        self.diffs = 0
        self._last = -1
        self._start_ns = 0

    def on_delta(self, delta: BookDelta) -> BookSnapshot | None:
        if self._last >= 0 and not _follows(delta, self._last, False):
            self.stats["gap"] += 1
            self.reset()
        if self._last < 0:
            self._start_ns = delta.ts_recv_ns
        self._last = delta.last_seq
        self.diffs += 1
        for book, levels in ((self.bids, delta.bids), (self.asks, delta.asks)):
            for price, size in levels:
                if size:
                    book[price] = size
                else:
                    book.pop(price, None)
        if delta.ts_recv_ns - self._start_ns < self.warmup_ns or not self.covers_depth():
            return None
        self.stats["built"] += 1
        return BookSnapshot(
            symbol=self.symbol,
            seq=delta.last_seq,
            bids=tuple(sorted(self.bids.items(), reverse=True)),
            asks=tuple(sorted(self.asks.items())),
            ts_venue_ns=delta.ts_venue_ns,
            ts_recv_ns=delta.ts_recv_ns,
        )

    def covers_depth(self) -> bool:
        if not self.bids or not self.asks:
            return False
        best_bid, best_ask = max(self.bids), min(self.asks)
        if best_bid >= best_ask:
            return False
        mid = (best_bid + best_ask) / 2
        return min(self.bids) <= mid * (1 - self.depth) and max(self.asks) >= mid * (1 + self.depth)
