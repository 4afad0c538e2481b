"""ccxt's full order book -> one `BookSnapshot`, then `BookDelta`s with contiguous sequence numbers.

ccxt.pro hands us the *whole* book it maintains after every update (and, when updates arrive faster
than we await, only the latest of them). The engine wants a snapshot followed by contiguous diffs, so
we keep the top `depth_levels` per side we last emitted and send the difference:

- the first book after (re)subscribing becomes a `BookSnapshot` whose `seq` is the venue's nonce
  (binance `lastUpdateId`/`u`, bybit `u`, okx `seqId`) or 0 when the venue gives none;
- each later book becomes a `BookDelta` with `first_seq = previous last_seq + 1` (always contiguous,
  so the engine never sees a gap we did not see) and `last_seq` = the venue's nonce when it moved
  forward, else `first_seq` (a synthetic step). So on binance `last_seq` is the real update id.
- the diff is between the *truncated* views, so a level that slides into the top N arrives as an
  insert and one that slides out as a delete (size 0): the engine's book is exactly our top N.

A delta is sent even when the top N did not change: it tells the engine the feed is alive.
Gaps are ccxt's to detect (binance InvalidNonce, okx ChecksumError); after one the adapter calls
`reset()` and the next book is a fresh snapshot.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from bot.domain import BookDelta, BookSnapshot, Level
from bot.venues.ccxt_markets import MarketSpec


def _levels(side: Sequence[Sequence[Any]], spec: MarketSpec, depth: int) -> list[Level]:
    out: list[Level] = []
    for entry in side:
        if len(out) >= depth:
            break
        size_lots = spec.lots(float(entry[1]))
        if size_lots > 0:  # dust below one lot cannot be quoted against
            out.append((spec.instrument.ticks(float(entry[0])), size_lots))
    return out


def _diff(old: Mapping[int, int], new: Mapping[int, int]) -> tuple[Level, ...]:
    changes = [(px, size) for px, size in new.items() if old.get(px) != size]
    changes.extend((px, 0) for px in old if px not in new)
    return tuple(changes)


class BookTracker:
    """Per-symbol converter from successive ccxt order books to snapshot/delta events."""

    def __init__(self, spec: MarketSpec, depth_levels: int) -> None:
        self._spec = spec
        self._depth = depth_levels
        self._bids: dict[int, int] = {}
        self._asks: dict[int, int] = {}
        self._last_seq: int | None = None

    @property
    def last_seq(self) -> int | None:
        return self._last_seq

    def reset(self) -> None:
        """Forget the book: the next update is sent as a snapshot (after a gap or reconnect)."""
        self._bids, self._asks, self._last_seq = {}, {}, None

    def update(self, book: Mapping[str, Any], ts_recv_ns: int) -> BookSnapshot | BookDelta:
        """Convert ccxt's current book (bids/asks best first, nonce, timestamp in ms)."""
        bids = _levels(book.get("bids") or (), self._spec, self._depth)
        asks = _levels(book.get("asks") or (), self._spec, self._depth)
        timestamp_ms = book.get("timestamp")
        ts_venue_ns = int(timestamp_ms) * 1_000_000 if timestamp_ms is not None else ts_recv_ns
        nonce = book.get("nonce")
        venue_seq = nonce if isinstance(nonce, int) and not isinstance(nonce, bool) else None
        symbol = self._spec.instrument.symbol
        new_bids, new_asks = dict(bids), dict(asks)
        if self._last_seq is None:
            seq = venue_seq if venue_seq is not None else 0
            self._bids, self._asks, self._last_seq = new_bids, new_asks, seq
            return BookSnapshot(symbol, seq, tuple(bids), tuple(asks), ts_venue_ns, ts_recv_ns)
        first = self._last_seq + 1
        last = venue_seq if venue_seq is not None and venue_seq >= first else first
        delta = BookDelta(
            symbol=symbol,
            first_seq=first,
            last_seq=last,
            bids=_diff(self._bids, new_bids),
            asks=_diff(self._asks, new_asks),
            ts_venue_ns=ts_venue_ns,
            ts_recv_ns=ts_recv_ns,
        )
        self._bids, self._asks, self._last_seq = new_bids, new_asks, last
        return delta
