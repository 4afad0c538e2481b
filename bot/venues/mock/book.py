"""The mock exchange's limit order book: price-time priority with explicit queues.

Every price level is a FIFO queue of resting chunks. A chunk is either one of *our* orders or
anonymous background liquidity. Our orders join the back of the queue, so they wait behind size
already resting at their price, and only trade once the size ahead of them has traded.

Background liquidity that is cancelled leaves from the *back* of the queue (the newest size goes
first). That never moves our orders forward, so queue position is conservative: a real queue
also loses size ahead of us to cancellations, which this model does not credit.

Prices are integer ticks, sizes integer lots. The book records which levels changed since the last
`take_dirty()`, so the exchange can publish aggregated L2 deltas.
"""

from __future__ import annotations

import bisect
from collections import deque
from dataclasses import dataclass, field

from bot.domain import Level, OrderType, Side


@dataclass(slots=True, eq=False)
class Order:
    """One of our orders while it rests (or while it is being matched)."""

    symbol: str
    client_id: str
    venue_order_id: str
    side: Side
    price_ticks: int
    remaining_lots: int
    order_type: OrderType = OrderType.LIMIT
    entry: Chunk | None = None  # its place in a queue once resting


@dataclass(slots=True, eq=False)
class Chunk:
    """Size resting in a level's queue: `order` is None for background liquidity."""

    order: Order | None
    lots: int


@dataclass(slots=True)
class PriceLevel:
    queue: deque[Chunk] = field(default_factory=deque)
    total_lots: int = 0
    bg_lots: int = 0


@dataclass(frozen=True, slots=True)
class Execution:
    """One match between an incoming order and a resting chunk. `maker` is None for background."""

    price_ticks: int
    lots: int
    maker: Order | None


class BookSide:
    """One side of the book. `prices` is kept sorted ascending; the best is last for bids, first for asks."""

    def __init__(self, side: Side) -> None:
        self.side = side
        self.levels: dict[int, PriceLevel] = {}
        self.prices: list[int] = []
        self.dirty: set[int] = set()

    def best(self) -> int | None:
        if not self.prices:
            return None
        return self.prices[-1] if self.side is Side.BUY else self.prices[0]

    def iter_best_first(self) -> list[int]:
        return self.prices[::-1] if self.side is Side.BUY else list(self.prices)

    def _level(self, price_ticks: int) -> PriceLevel:
        level = self.levels.get(price_ticks)
        if level is None:
            level = PriceLevel()
            self.levels[price_ticks] = level
            bisect.insort(self.prices, price_ticks)
        return level

    def _drop_if_empty(self, price_ticks: int, level: PriceLevel) -> None:
        if level.total_lots == 0:
            del self.levels[price_ticks]
            del self.prices[bisect.bisect_left(self.prices, price_ticks)]

    def add_background(self, price_ticks: int, lots: int) -> None:
        level = self._level(price_ticks)
        queue = level.queue
        if queue and queue[-1].order is None:
            queue[-1].lots += lots  # nobody is behind it: merge
        else:
            queue.append(Chunk(None, lots))
        level.total_lots += lots
        level.bg_lots += lots
        self.dirty.add(price_ticks)

    def remove_background(self, price_ticks: int, lots: int) -> int:
        """Cancel up to `lots` of background size at a price, newest first. Returns lots removed."""
        level = self.levels.get(price_ticks)
        if level is None or level.bg_lots == 0:
            return 0
        to_remove = min(lots, level.bg_lots)
        left = to_remove
        queue = level.queue
        for i in range(len(queue) - 1, -1, -1):
            chunk = queue[i]
            if chunk.order is not None:
                continue
            cut = min(left, chunk.lots)
            chunk.lots -= cut
            left -= cut
            if chunk.lots == 0:
                del queue[i]
            if left == 0:
                break
        level.total_lots -= to_remove
        level.bg_lots -= to_remove
        self.dirty.add(price_ticks)
        self._drop_if_empty(price_ticks, level)
        return to_remove

    def add_order(self, order: Order) -> None:
        level = self._level(order.price_ticks)
        chunk = Chunk(order, order.remaining_lots)
        level.queue.append(chunk)
        level.total_lots += order.remaining_lots
        order.entry = chunk
        self.dirty.add(order.price_ticks)

    def remove_order(self, order: Order) -> None:
        level = self.levels[order.price_ticks]
        chunk = order.entry
        assert chunk is not None
        level.queue.remove(chunk)
        level.total_lots -= chunk.lots
        order.entry = None
        self.dirty.add(order.price_ticks)
        self._drop_if_empty(order.price_ticks, level)

    def size_at(self, price_ticks: int) -> int:
        level = self.levels.get(price_ticks)
        return 0 if level is None else level.total_lots

    def bg_at(self, price_ticks: int) -> int:
        level = self.levels.get(price_ticks)
        return 0 if level is None else level.bg_lots

    def lots_ahead(self, order: Order) -> int:
        """Size queued in front of one of our resting orders at its price."""
        level = self.levels[order.price_ticks]
        ahead = 0
        for chunk in level.queue:
            if chunk is order.entry:
                return ahead
            ahead += chunk.lots
        raise KeyError(order.client_id)

    def take(self, limit_ticks: int | None, lots: int, stop_at_ours: bool = False) -> tuple[list[Execution], bool]:
        """Match an incoming order against this side, best price first, queue front first.

        `limit_ticks` None walks without a price limit (market order). With `stop_at_ours` the walk
        stops at the first of our own resting orders (self-trade prevention). Returns the executions
        and whether the walk was stopped by self-trade prevention.
        """
        executions: list[Execution] = []
        is_bid_side = self.side is Side.BUY
        while lots > 0 and self.prices:
            price = self.prices[-1] if is_bid_side else self.prices[0]
            if limit_ticks is not None and (price < limit_ticks if is_bid_side else price > limit_ticks):
                break
            level = self.levels[price]
            queue = level.queue
            while lots > 0 and queue:
                chunk = queue[0]
                if stop_at_ours and chunk.order is not None:
                    self.dirty.add(price)  # our order rests here, so the level is not empty
                    return executions, True
                cut = min(lots, chunk.lots)
                chunk.lots -= cut
                lots -= cut
                level.total_lots -= cut
                if chunk.order is None:
                    level.bg_lots -= cut
                else:
                    chunk.order.remaining_lots -= cut
                executions.append(Execution(price, cut, chunk.order))
                if chunk.lots == 0:
                    queue.popleft()
                    if chunk.order is not None:
                        chunk.order.entry = None
            self.dirty.add(price)
            self._drop_if_empty(price, level)
        return executions, False

    def depth(self) -> tuple[Level, ...]:
        return tuple((p, self.levels[p].total_lots) for p in self.iter_best_first())

    def take_dirty(self) -> tuple[Level, ...]:
        """Aggregated changes since the last call: (price, new total) with 0 for a deleted level."""
        if not self.dirty:
            return ()
        changed = sorted(self.dirty, reverse=self.side is Side.BUY)
        self.dirty.clear()
        return tuple((p, self.size_at(p)) for p in changed)


class OrderBook:
    """Both sides of one market."""

    def __init__(self) -> None:
        self.bids = BookSide(Side.BUY)
        self.asks = BookSide(Side.SELL)

    def side(self, side: Side) -> BookSide:
        return self.bids if side is Side.BUY else self.asks

    def mid_ticks(self) -> float | None:
        bid, ask = self.bids.best(), self.asks.best()
        if bid is None or ask is None:
            return None
        return (bid + ask) / 2

    def crosses(self, side: Side, price_ticks: int) -> bool:
        """Would an order at this price trade on arrival against the opposite side?"""
        best = self.side(side.opposite).best()
        if best is None:
            return False
        return price_ticks >= best if side is Side.BUY else price_ticks <= best
