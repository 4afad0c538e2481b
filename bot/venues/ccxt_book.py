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

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from bot.domain import BookDelta, BookSnapshot, Level, Side, TradePrint
from bot.venues.ccxt_markets import MarketSpec


class MalformedMessage(ValueError):
    """A book or trade that cannot be trusted (not [price, size] lists, NaN, price <= 0, size < 0, ...)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def finite_number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise MalformedMessage("not_a_number")
    try:
        number = float(value)
    except (ValueError, OverflowError):
        raise MalformedMessage("not_a_number") from None
    if not math.isfinite(number):
        raise MalformedMessage("not_finite")
    return number


def _levels(side: Any, spec: MarketSpec, depth: int) -> list[Level]:
    if not isinstance(side, Sequence) or isinstance(side, str | bytes):
        raise MalformedMessage("levels_not_a_list")
    out: list[Level] = []
    for entry in side:
        if len(out) >= depth:
            break
        if not isinstance(entry, Sequence) or isinstance(entry, str | bytes) or len(entry) < 2:
            raise MalformedMessage("bad_level")
        price, size = finite_number(entry[0]), finite_number(entry[1])
        if price <= 0 or size < 0:
            raise MalformedMessage("non_positive_price" if price <= 0 else "negative_size")
        try:
            size_lots = spec.lots(size)
            price_ticks = spec.instrument.ticks(price)
        except OverflowError:  # beyond any grid
            raise MalformedMessage("absurd_level") from None
        if size_lots > 0:  # dust below one lot cannot be quoted against
            out.append((price_ticks, size_lots))
    return out


def _venue_ts_ns(timestamp_ms: Any, ts_recv_ns: int) -> int:
    """The venue's time in ns, or the receive time when it is missing or not a sane number."""
    if isinstance(timestamp_ms, bool) or not isinstance(timestamp_ms, int | float):
        return ts_recv_ns
    if not 0 < timestamp_ms < 1e14:  # ms (1e14 is year 5138); NaN and inf fail too
        return ts_recv_ns
    return int(timestamp_ms) * 1_000_000


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
        self.dropped: Counter[str] = Counter()
        """Book updates refused as malformed, by reason (the feed goes on with the next one)."""

    @property
    def last_seq(self) -> int | None:
        return self._last_seq

    def reset(self) -> None:
        """Forget the book: the next update is sent as a snapshot (after a gap or reconnect)."""
        self._bids, self._asks, self._last_seq = {}, {}, None

    def update(self, book: Mapping[str, Any], ts_recv_ns: int) -> BookSnapshot | BookDelta | None:
        """Convert ccxt's current book (bids/asks best first, nonce, timestamp in ms).

        None for a malformed book, counted in `dropped`: nothing of it is sent, and the next good
        book is diffed against the last good one, so the engine's book stays exact."""
        try:
            if not isinstance(book, Mapping):
                raise MalformedMessage("not_a_book")
            bids = _levels(book.get("bids") or (), self._spec, self._depth)
            asks = _levels(book.get("asks") or (), self._spec, self._depth)
        except MalformedMessage as exc:
            self.dropped[exc.reason] += 1
            return None
        ts_venue_ns = _venue_ts_ns(book.get("timestamp"), ts_recv_ns)
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


def trade_print(spec: MarketSpec, trade: Any, now_ns: int) -> TradePrint:
    """A ccxt public trade as a `TradePrint`; raises MalformedMessage when it cannot be trusted."""
    if not isinstance(trade, Mapping):
        raise MalformedMessage("not_a_trade")
    price, size = finite_number(trade.get("price")), finite_number(trade.get("amount"))
    if price <= 0 or size <= 0:
        raise MalformedMessage("non_positive_price" if price <= 0 else "non_positive_size")
    side = trade.get("side")
    if side not in ("buy", "sell"):
        raise MalformedMessage("bad_side")
    try:
        price_ticks, size_lots = spec.instrument.ticks(price), spec.lots(size)
    except OverflowError:
        raise MalformedMessage("absurd_trade") from None
    return TradePrint(
        symbol=spec.instrument.symbol,
        price_ticks=price_ticks,
        size_lots=size_lots,
        aggressor=Side(side),
        trade_id=str(trade.get("id")),
        ts_venue_ns=_venue_ts_ns(trade.get("timestamp"), now_ns),
        ts_recv_ns=now_ns,
    )
