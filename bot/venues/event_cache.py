"""Parse once, replay many: a recording's parsed and synced events as a columnar numpy file.

`mmbot replay --cache DIR` (and `mmbot sweep --cache DIR`) reads each recorded file through
`ReplaySource` once and stores the stream it yields, `(now_ns, event)` after Binance's book sync, as
columns in `DIR/<key>.npz`. Every later replay of the same file reads the columns instead of
gunzipping and decoding JSON, and yields the very same events in the same order, so the engine takes
the same decisions (tested: every log line and the summary are identical).

* **Key**: sha256 of the file's bytes, the instrument the file was read as (ticks and lots come from
  it), this format's version and the source code of the parser and of this module. A changed
  recording, instrument or parser gets a new key; stale files are never read (and never deleted).
* **Columns** (one row per event, `kind`: 0 snapshot, 1 delta, 2 trade): `now_ns`, `ts_venue_ns`,
  `ts_recv_ns`, `a`/`b`/`c` (snapshot: seq; delta: first_seq, last_seq, prev_seq; trade: price ticks,
  size lots, aggressor), `has_prev`, `n_bids`/`n_asks` and the concatenated levels `level_px`,
  `level_sz` (bids then asks of each book event, best first), the trade ids joined by newlines, and a
  JSON `meta` (symbol, venue, the source's counters for the summary). Stored with `np.savez`, not
  compressed: inflating the columns took ~15 ms of a ~175 ms cached spot replay (format 1 was
  compressed; 2.9 MB instead of 0.67 MB for the bundled spot file).
* **Write**: on a miss the events are recorded while the replay consumes them (into `array.array`
  columns, 8 bytes a value) and written, atomically (a temporary file renamed), when the file ends:
  the first replay runs at the raw speed, the next ones from the cache.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from array import array
from collections import Counter
from collections.abc import Iterator, Sequence
from itertools import chain
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from bot.domain import BookDelta, BookSnapshot, Event, Instrument, Side, TradePrint
from bot.venues import binance
from bot.venues.binance import BookTicker
from bot.venues.replay import ReplaySource, merge_by_time

FORMAT_VERSION = 2
SNAPSHOT, DELTA, TRADE = 0, 1, 2
_SIDES = (Side.BUY, Side.SELL)
_SIDE_CODE = {Side.BUY: 0, Side.SELL: 1}
_INT_COLUMNS = ("now_ns", "ts_venue_ns", "ts_recv_ns", "a", "b", "c", "level_px", "level_sz")
_CHUNK_ROWS = 4096  # events decoded from the columns at a time
# the columns `_decode` reads, in the order `bot._native.decode_events` takes them
_DECODE_COLUMNS = (
    *("kind", "now_ns", "ts_venue_ns", "ts_recv_ns", "a", "b", "c", "has_prev", "n_bids", "n_asks"),
    *("level_px", "level_sz"),
)
_EVENT_CLASSES = (TradePrint, BookDelta, BookSnapshot)

try:  # the columns back to events in C, when the optional extension was built (setup.py)
    from bot._native import decode_events as _native_decode
except ImportError:  # pragma: no cover - no C compiler at install: `_decode_py`
    _native_decode = None  # type: ignore[assignment]


def _code_digest() -> str:
    """The parser's and this module's source: a change to either may change the events."""
    h = hashlib.sha256()
    for module_file in (binance.__file__, __file__):
        h.update(Path(module_file).read_bytes())
    return h.hexdigest()


def cache_key(path: Path, instrument: Instrument) -> str:
    """The cache file's name for `path` read as `instrument` (see the module docstring)."""
    h = hashlib.sha256()
    h.update(f"mmbot-event-cache:{FORMAT_VERSION}\n{instrument!r}\n{_code_digest()}\n".encode())
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:40]


class _Columns:
    """The columns of one file's event stream, filled one event at a time."""

    def __init__(self) -> None:
        self.kind = array("b")
        self.has_prev = array("b")
        self.n_bids = array("i")
        self.n_asks = array("i")
        self.ints = {name: array("q") for name in _INT_COLUMNS}
        self.trade_ids: list[str] = []
        self.venue: str | None = None

    def add(self, now_ns: int, event: Event) -> None:
        venue = event.venue  # type: ignore[union-attr]
        if venue != self.venue:
            if self.venue is not None:
                raise ValueError("one venue per recorded file")
            self.venue = venue
        cols = self.ints
        cols["now_ns"].append(now_ns)
        cols["ts_venue_ns"].append(event.ts_venue_ns)
        cols["ts_recv_ns"].append(event.ts_recv_ns)
        kind = type(event)
        if kind is TradePrint:
            self.kind.append(TRADE)
            cols["a"].append(event.price_ticks)  # type: ignore[union-attr]
            cols["b"].append(event.size_lots)  # type: ignore[union-attr]
            cols["c"].append(_SIDE_CODE[event.aggressor])  # type: ignore[union-attr]
            self.has_prev.append(0)
            self.n_bids.append(0)
            self.n_asks.append(0)
            self.trade_ids.append(event.trade_id)  # type: ignore[union-attr]
            return
        if kind is BookDelta:
            self.kind.append(DELTA)
            cols["a"].append(event.first_seq)  # type: ignore[union-attr]
            cols["b"].append(event.last_seq)  # type: ignore[union-attr]
            prev = event.prev_seq  # type: ignore[union-attr]
            cols["c"].append(prev if prev is not None else 0)
            self.has_prev.append(prev is not None)
        elif kind is BookSnapshot:
            self.kind.append(SNAPSHOT)
            cols["a"].append(event.seq)  # type: ignore[union-attr]
            cols["b"].append(0)
            cols["c"].append(0)
            self.has_prev.append(0)
        else:
            raise TypeError(f"the event cache holds book and trade events, not {kind.__name__}")
        bids, asks = event.bids, event.asks  # type: ignore[union-attr]
        self.n_bids.append(len(bids))
        self.n_asks.append(len(asks))
        px, sz = cols["level_px"], cols["level_sz"]
        for p, s in bids:
            px.append(p)
            sz.append(s)
        for p, s in asks:
            px.append(p)
            sz.append(s)

    def write(self, out: Path, meta: dict[str, Any]) -> None:
        arrays: dict[str, np.ndarray[Any, Any]] = {
            name: np.frombuffer(values, dtype=np.int64) if len(values) else np.zeros(0, np.int64)
            for name, values in self.ints.items()
        }
        arrays["kind"] = np.frombuffer(self.kind, dtype=np.int8) if len(self.kind) else np.zeros(0, np.int8)
        arrays["has_prev"] = np.array(self.has_prev, dtype=np.int8)
        arrays["n_bids"] = np.array(self.n_bids, dtype=np.int32)
        arrays["n_asks"] = np.array(self.n_asks, dtype=np.int32)
        arrays["trade_ids"] = np.frombuffer("\n".join(self.trade_ids).encode(), dtype=np.uint8)
        arrays["meta"] = np.frombuffer(orjson.dumps(meta), dtype=np.uint8)
        out.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=out.stem, suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as fh:
                np.savez(fh, **arrays)  # type: ignore[arg-type]
            os.replace(tmp, out)  # readers see the whole file or none
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def read_events(path: Path, symbol: str) -> tuple[Iterator[tuple[int, Event]], dict[str, Any]]:
    """The cached stream of one file and its meta (the source's counters under `stats`)."""
    with np.load(path) as data:
        cols = {name: data[name] for name in data.files}
    meta: dict[str, Any] = orjson.loads(cols["meta"].tobytes())
    if meta.get("format") != FORMAT_VERSION or meta.get("symbol") != symbol:
        raise ValueError(f"{path}: not an event cache of {symbol} in format {FORMAT_VERSION}")
    return _decode(cols, symbol, meta.get("venue", "")), meta


def _decode(cols: dict[str, Any], symbol: str, venue: str) -> Iterator[tuple[int, Event]]:
    """Events back from the columns, `_CHUNK_ROWS` at a time: in C (`bot._native.decode_events`) when
    the extension is built, else (or for a column or row it does not handle) by `_decode_py`. The
    chunks' lists are chained in C: one generator step per chunk, not one (or two) per event."""
    return chain.from_iterable(_decoded_chunks(cols, symbol, venue))


def _decoded_chunks(cols: dict[str, Any], symbol: str, venue: str) -> Iterator[list[tuple[int, Event]]]:
    trade_blob = cols["trade_ids"].tobytes().decode()
    trade_ids = trade_blob.split("\n") if trade_blob else []
    columns = tuple(cols[name] for name in _DECODE_COLUMNS)
    n = len(cols["kind"])
    level_at = trade_at = 0
    for start in range(0, n, _CHUNK_ROWS):
        end = min(n, start + _CHUNK_ROWS)
        decoded = None
        if _native_decode is not None:
            decoded = _native_decode(
                columns, start, end, level_at, trade_ids, trade_at, symbol, venue, _SIDES, _EVENT_CLASSES
            )
        if decoded is None:
            decoded = _decode_py(columns, start, end, level_at, trade_ids, trade_at, symbol, venue)
        items, level_at, trade_at = decoded
        yield items


def _decode_py(
    columns: tuple[Any, ...],
    start: int,
    end: int,
    level_at: int,
    trade_ids: list[str],
    trade_at: int,
    symbol: str,
    venue: str,
) -> tuple[list[tuple[int, Event]], int, int]:
    """Rows `start:end` as `(now_ns, event)`, their levels from `level_at`, trade ids from `trade_at`;
    returns the events and where the next rows' levels and trade ids start (python ints via `tolist`,
    no numpy scalars). The reference `bot._native.decode_events` must match."""
    kind, now, ts_v, ts_r, a, b, c, has_prev, n_bids, n_asks = (col[start:end].tolist() for col in columns[:10])
    level_count = sum(nb + na for k, nb, na in zip(kind, n_bids, n_asks, strict=True) if k != TRADE)
    stop = level_at + level_count
    levels = list(zip(columns[10][level_at:stop].tolist(), columns[11][level_at:stop].tolist(), strict=True))
    out: list[tuple[int, Event]] = []
    at = 0
    for i in range(end - start):
        k = kind[i]
        if k == TRADE:
            trade = TradePrint(symbol, a[i], b[i], _SIDES[c[i]], trade_ids[trade_at], ts_v[i], ts_r[i], venue)
            out.append((now[i], trade))
            trade_at += 1
            continue
        mid = at + n_bids[i]
        last = mid + n_asks[i]
        bids = tuple(levels[at:mid])
        asks = tuple(levels[mid:last])
        at = last
        if k == DELTA:
            prev = c[i] if has_prev[i] else None
            out.append((now[i], BookDelta(symbol, a[i], b[i], bids, asks, ts_v[i], ts_r[i], prev, venue)))
        else:
            out.append((now[i], BookSnapshot(symbol, a[i], bids, asks, ts_v[i], ts_r[i], venue)))
    return out, stop, trade_at


class CachedSource:
    """`ReplaySource` through the event cache in `cache_dir`: the same interface (`instruments`,
    `stats`, `lines_read`, `total_bytes`, `bytes_read`, iteration) and the same events.

    Each file is read from its cache file when there is one (`hits`), else parsed by `ReplaySource`
    and its cache file written when its stream ends (`written`)."""

    def __init__(self, paths: Sequence[str | Path], instruments: Sequence[Instrument], cache_dir: Path) -> None:
        self.paths = [Path(p) for p in paths]
        self._file_instruments = list(instruments)
        self.instruments: dict[str, Instrument] = {i.symbol: i for i in instruments}
        if len(self.instruments) != len(self.paths) or len(instruments) != len(self.paths):
            raise ValueError("one instrument per file, one file per symbol")
        self.cache_dir = Path(cache_dir)
        self.keys = [cache_key(p, i) for p, i in zip(self.paths, instruments, strict=True)]
        self.files = [self.cache_dir / f"{key}.npz" for key in self.keys]
        self.hits = [f.exists() for f in self.files]
        self.written: list[str] = []
        self.stats: dict[str, Counter[str]] = {i.symbol: Counter() for i in instruments}
        self.total_bytes = sum(
            (f if hit else p).stat().st_size for f, p, hit in zip(self.files, self.paths, self.hits, strict=True)
        )
        self.bytes_read = 0

    @property
    def lines_read(self) -> int:
        return sum(stats["lines"] for stats in self.stats.values())

    def summary(self) -> dict[str, Any]:
        """For the session summary: where each file's events came from."""
        return {
            "dir": str(self.cache_dir),
            "files": [
                {"source": str(p), "cache": str(f), "hit": hit}
                for p, f, hit in zip(self.paths, self.files, self.hits, strict=True)
            ],
        }

    def __iter__(self) -> Iterator[tuple[int, Event | BookTicker]]:
        streams = [self._cached(i) if self.hits[i] else self._parse_and_write(i) for i in range(len(self.paths))]
        return merge_by_time(streams)

    def _cached(self, i: int) -> Iterator[tuple[int, Event | BookTicker]]:
        """File `i`'s events from its cache file. Its counters are the source's of the whole file, so
        they are counted at once (a generator around the stream, to count them when it ends, was one
        more generator step per event)."""
        symbol = self._file_instruments[i].symbol
        events, meta = read_events(self.files[i], symbol)
        self.bytes_read += self.files[i].stat().st_size
        self.stats[symbol].update(meta["stats"])
        return events

    def _parse_and_write(self, i: int) -> Iterator[tuple[int, Event | BookTicker]]:
        instrument = self._file_instruments[i]
        source = ReplaySource([self.paths[i]], [instrument])
        columns = _Columns()
        complete = False
        try:
            for now_ns, event in source:
                columns.add(now_ns, event)  # type: ignore[arg-type]
                yield now_ns, event
            complete = True
        finally:
            self.bytes_read += source.bytes_read
            stats = source.stats[instrument.symbol]
            self.stats[instrument.symbol].update(stats)
            if complete:  # an interrupted replay leaves no partial cache behind
                meta = {
                    "format": FORMAT_VERSION,
                    "symbol": instrument.symbol,
                    "venue": columns.venue or "",
                    "source": str(self.paths[i]),
                    "stats": dict(stats),
                }
                columns.write(self.files[i], meta)
                self.written.append(str(self.files[i]))
