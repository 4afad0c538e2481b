"""A synchronous, deterministic mock exchange: spot + linear perp, driven by simulated time.

No asyncio and no clock reads: the caller passes `now_ns`. `advance(now_ns)` runs the market up to
`now_ns` and returns our events whose delivery time has come, in delivery order; `submit` sends a
command that reaches the matching engine after a sampled latency. `next_event_ns()` lets a fast
simulation jump straight to the next thing that happens.

The market (all seeded): a hidden fair value (ABM/GBM + jumps) with a perp basis; background
liquidity laddered around fair value that refills after takers eat it and churns at random;
uninformed takers (Poisson, reach δ ~ Exp(k) from mid, so a level at δ is hit at rate A·exp(−k·δ));
informed takers who know the fair value `informed_horizon_s` ahead and trade toward it.

Matching is price-time priority with explicit queues (see `book.py`): our orders wait behind size
already resting at their price and fill partially, post-only orders that would cross are rejected,
IOC and market orders walk the book, self-trades are prevented by expiring the incoming order.

Delivery: public market data comes after a constant feed latency (so the feed stays in order);
private messages (acks, fills, positions, funding) after a sampled latency, first-in first-out
except for the `delayed_ack` fault.
"""

from __future__ import annotations

import heapq
import math
import random
from collections import deque
from collections.abc import Callable
from dataclasses import replace
from typing import Protocol

from bot.config import MockExchangeConfig, MockMarketConfig
from bot.domain import (
    BookDelta,
    BookSnapshot,
    CancelAll,
    CancelOrder,
    CancelRejected,
    Command,
    Event,
    FeedStatus,
    FundingPaid,
    Instrument,
    InstrumentKind,
    Liquidity,
    MarkPrice,
    OpenOrder,
    OrderAccepted,
    OrderCanceled,
    OrderFilled,
    OrderRejected,
    OrderType,
    PlaceOrder,
    PositionSnapshot,
    RequestSnapshot,
    Side,
    TradePrint,
)
from bot.venues.mock.accounts import Accounts
from bot.venues.mock.book import Execution, Order, OrderBook
from bot.venues.mock.faults import Episode, FaultInjector
from bot.venues.mock.flow import HawkesClock, Impact, SignProcess, SizeLaw
from bot.venues.mock.latency import NS_PER_MS, Latency
from bot.venues.mock.market import Basis, FairValuePath

NS_PER_S = 1_000_000_000
FILL_HISTORY_SIZE = 100_000  # fills kept for `fills_since`, like a venue's bounded trade history

# scheduler item kinds (ints: cheap to compare in the heap)
_STEP, _EMIT, _TAKER, _CMD, _MARK, _FUNDING, _POSITION, _EPISODE_END = range(8)


def _instrument(cfg: MockMarketConfig, kind: InstrumentKind) -> Instrument:
    base, _, rest = cfg.symbol.partition("/")
    quote = rest.split(":")[0]
    return Instrument(
        symbol=cfg.symbol,
        kind=kind,
        base=base,
        quote=quote,
        tick_size=cfg.tick_size,
        lot_size=cfg.lot_size,
        min_notional=cfg.min_notional_quote,
        maker_fee=cfg.maker_fee,
        taker_fee=cfg.taker_fee,
    )


class _Market:
    """Per-symbol state: the book, the background ladder and the publication sequence; with the
    "hawkes" flow model also its arrival clock, sign process and size law (`flow.py`)."""

    def __init__(
        self, instrument: Instrument, cfg: MockMarketConfig, step_s: float, flow_rng: random.Random | None = None
    ) -> None:
        self.instrument = instrument
        self.cfg = cfg
        self.book = OrderBook()
        self.seq = 0  # last published update id
        self.gap_pending = 0
        self.phantom_bid: int | None = None  # a published bogus level (crossed-book fault)
        self.anchor: tuple[int, int] | None = None  # (background best bid, best ask) ticks
        self.targets: dict[Side, dict[int, int]] = {Side.BUY: {}, Side.SELL: {}}
        # hawkes: the deep levels beyond the ladder, anchored on their own coarse grid
        self.outer_anchor: tuple[int, int] | None = None
        self.outer_targets: dict[Side, dict[int, int]] = {Side.BUY: {}, Side.SELL: {}}
        self.deficit: dict[Side, set[int]] = {Side.BUY: set(), Side.SELL: set()}
        self.refill_frac = 1.0 - math.exp(-step_s / cfg.bg_refill_s)
        self.churn_prob = cfg.bg_churn_per_s * step_s
        # hawkes: half-width of the band fair value may wander in before the makers requote, as a
        # fraction of the price
        self.requote_band = cfg.bg_requote_bps / 10_000.0
        # hawkes, bg_bounce_share: depletions that were not news, [steps left, log step to undo]
        self.bounces: list[list[float]] = []
        informed = cfg.informed_share
        self.taker_rate_per_s = 2.0 * cfg.taker_a_per_s / (1.0 - informed)
        self.trade_n = 0
        self.clock: HawkesClock | None = None
        if flow_rng is not None:
            self.clock = HawkesClock(flow_rng, cfg.hawkes_base_per_s, cfg.hawkes_branching, cfg.hawkes_decay_per_s)
            self.signs = SignProcess(flow_rng, cfg.meta_share, cfg.meta_len_alpha, cfg.meta_len_min)
            self.sizes = SizeLaw(cfg.size_median_base, cfg.size_log_sigma, cfg.size_tail_alpha, cfg.size_max_base)


class FairValueSource(Protocol):
    """What the exchange reads of its fair-value path (`FairValuePath`, or a view of a shared one)."""

    @property
    def now_px(self) -> float: ...
    @property
    def future_px(self) -> float: ...
    def step(self) -> None: ...


class MockExchange:
    """See the module docstring. One account; all times in ns (simulation clock)."""

    def __init__(
        self,
        config: MockExchangeConfig,
        seed: int | None = None,
        start_ns: int = 0,
        fill_history_size: int = FILL_HISTORY_SIZE,
        fair_value: FairValueSource | None = None,
    ) -> None:
        """`fair_value`: a path shared with other venues (bot/venues/mock/venues.py), instead of its own."""
        self.config = config
        seed = config.seed if seed is None else seed
        self.seed = seed
        # Independent streams: faults or latency never change the random numbers behind the market.
        self._rng_market = random.Random(f"{seed}:market")
        self._rng_flow = random.Random(f"{seed}:flow")
        rng_latency = random.Random(f"{seed}:latency")
        self.faults = FaultInjector(config.faults, random.Random(f"{seed}:faults"))

        self._step_ns = config.step_ms * NS_PER_MS
        self._step_s = config.step_ms / 1000.0
        spot_inst = _instrument(config.spot, InstrumentKind.SPOT)
        perp_inst = _instrument(config.perp, InstrumentKind.PERP)
        self.instruments: dict[str, Instrument] = {spot_inst.symbol: spot_inst, perp_inst.symbol: perp_inst}
        self._hawkes = config.flow_model == "hawkes"
        flow_rng = self._rng_flow if self._hawkes else None
        self._spot = _Market(spot_inst, config.spot, self._step_s, flow_rng)
        self._perp = _Market(perp_inst, config.perp, self._step_s, flow_rng)
        self._impact: Impact | None = None
        if self._hawkes:
            self._impact = Impact(
                self._step_s, config.impact_arrival_s, config.impact_decay_s, config.impact_permanent_share
            )
        self._markets = {spot_inst.symbol: self._spot, perp_inst.symbol: self._perp}

        lookahead = max(1, math.ceil(config.informed_horizon_s / self._step_s))
        self._fv: FairValueSource = fair_value or FairValuePath(
            self._rng_market,
            config.initial_px,
            config.sigma_px_per_sqrt_s,
            config.process,
            self._step_s,
            lookahead,
            config.jumps_per_hour,
            config.jump_sigma_bps,
            floor_px=max(config.spot.tick_size, config.perp.tick_size),
        )
        self._basis = Basis(
            self._rng_market, config.basis_bps, config.basis_vol_bps_per_sqrt_s, config.basis_halflife_s, self._step_s
        )
        self._basis_sum = 0.0
        self._basis_n = 0

        lat = config.latency
        self._order_latency = Latency(rng_latency, lat.order_median_ms, lat.order_sigma, lat.max_ms)
        self._response_latency = Latency(rng_latency, lat.response_median_ms, lat.response_sigma, lat.max_ms)
        self._feed_latency_ns = int(min(lat.feed_ms, lat.max_ms) * NS_PER_MS)

        self.accounts = Accounts(self.instruments, config.initial_quote, config.initial_base)
        self._orders: dict[tuple[str, str], Order] = {}
        self._order_n = 0
        self._fill_n = 0
        # the account's fill history, oldest first (ts_venue_ns never decreases): what a venue's
        # "my trades" endpoint answers; bounded, so the oldest fills fall out on a long run
        self._fill_history: deque[OrderFilled] = deque(maxlen=fill_history_size)

        self._now_ns = start_ns
        self._heap: list[tuple[int, int, int, object]] = []
        self._deliveries: list[tuple[int, int, Event]] = []
        self._counter = 0
        self._last_public_ns = start_ns
        self._last_private_ns = start_ns
        self._last_cmd_ns = start_ns

        self._outage_until = 0
        self._outage_kind = ""
        self._held_private: list[Event] = []
        self._stale_until = 0
        self._crossed_until = 0

        for market in self._markets.values():
            self._update_background(market)
            market.book.bids.take_dirty()
            market.book.asks.take_dirty()
            self._schedule_taker(market, start_ns)
        self._schedule(start_ns + self._step_ns, _STEP, None)
        self._schedule(start_ns + config.book_interval_ms * NS_PER_MS, _EMIT, None)
        self._schedule(start_ns + config.mark_interval_ms * NS_PER_MS, _MARK, None)
        self._schedule(start_ns + int(config.funding_interval_s * NS_PER_S), _FUNDING, None)
        self._schedule(start_ns + config.position_interval_ms * NS_PER_MS, _POSITION, None)
        for market in self._markets.values():
            self._publish_snapshot(market)
        self._publish_mark()
        self._publish_positions()

    # ---------------------------------------------------------------------------------------------
    # Public API
    # ---------------------------------------------------------------------------------------------

    def submit(self, command: Command, now_ns: int) -> None:
        """Send a command; it reaches the matching engine after a sampled latency (in send order)."""
        self._start_triggered()
        if now_ns < self._outage_until:
            self._refuse_while_down(command, now_ns)
            return
        arrive_ns = max(now_ns + self._order_latency.sample_ns(), self._last_cmd_ns)
        self._last_cmd_ns = arrive_ns
        self._schedule(arrive_ns, _CMD, command)

    def advance(self, now_ns: int) -> list[Event]:
        """Run the market up to `now_ns`; return our events delivered by then, in delivery order."""
        self._start_triggered()
        heap = self._heap
        while heap and heap[0][0] <= now_ns:
            t, _, kind, payload = heapq.heappop(heap)
            self._now_ns = t
            self._dispatch(kind, payload)
        self._now_ns = max(self._now_ns, now_ns)
        out: list[Event] = []
        deliveries = self._deliveries
        while deliveries and deliveries[0][0] <= now_ns:
            out.append(heapq.heappop(deliveries)[2])
        return out

    def next_event_ns(self) -> int | None:
        """Earliest pending internal or delivery time, or None if nothing is pending."""
        times = [q[0][0] for q in (self._heap, self._deliveries) if q]
        return min(times) if times else None

    def snapshot(self, symbol: str, now_ns: int) -> BookSnapshot:
        """The current book (the exchange's own view, as a REST snapshot would give it)."""
        market = self._markets[symbol]
        return BookSnapshot(
            symbol, market.seq, market.book.bids.depth(), market.book.asks.depth(), self._now_ns, now_ns
        )

    def open_orders(self) -> list[OpenOrder]:
        return [
            OpenOrder(o.symbol, o.client_id, o.side, o.price_ticks, o.remaining_lots, o.venue_order_id)
            for o in self._orders.values()
        ]

    def positions(self) -> dict[str, int]:
        """Position per symbol in lots (spot: base bought minus sold since start)."""
        return dict(self.accounts.positions_lots)

    def balances(self) -> dict[str, float]:
        return dict(self.accounts.balances)

    def fills_since(self, since_ns: int, limit: int | None = None) -> list[OrderFilled]:
        """Our fills with `ts_venue_ns >= since_ns`, oldest first, at most `limit` (the oldest ones).

        Each fill is listed once (a `duplicate_fill` fault duplicates the message, not the fill), and
        as the exchange made it: `ts_recv_ns` is the fill time too; the caller stamps its own receipt.
        Fills older than the last `fill_history_size` are gone."""
        newer: list[OrderFilled] = []
        for fill in reversed(self._fill_history):  # recent history is what a restart asks for: scan from the end
            if fill.ts_venue_ns < since_ns:
                break
            newer.append(fill)
        newer.reverse()
        return newer if limit is None else newer[:limit]

    def fair_value_px(self, symbol: str) -> float:
        """Ground truth, for markouts in experiments only: a trading strategy must not read it."""
        spot_px = self._fv.now_px
        if self._impact is not None:
            spot_px *= math.exp(self._impact.log_offset)
        return spot_px if symbol == self._spot.instrument.symbol else spot_px * (1.0 + self._basis.value)

    def top(self, symbol: str) -> tuple[tuple[int, int] | None, tuple[int, int] | None]:
        """The best bid and ask now as (price ticks, size lots), ours included (None: an empty side)."""
        book = self._markets[symbol].book
        bid, ask = book.bids.best(), book.asks.best()
        return (
            (bid, book.bids.size_at(bid)) if bid is not None else None,
            (ask, book.asks.size_at(ask)) if ask is not None else None,
        )

    def queue_ahead_lots(self, symbol: str, client_id: str) -> int:
        """Size resting ahead of one of our orders in its price level's queue (for tests and research)."""
        order = self._orders[(symbol, client_id)]
        return self._markets[symbol].book.side(order.side).lots_ahead(order)

    def simulate_taker(self, symbol: str, side: Side, lots: int, limit_ticks: int | None = None) -> None:
        """An outside taker trades now (tests and experiments): walks the book up to `limit_ticks`."""
        market = self._markets[symbol]
        self._start_triggered()
        executions, _ = market.book.side(side.opposite).take(limit_ticks, lots)
        if executions:
            self._on_executions(market, side, executions, None)
            if self._hawkes:  # the market's makers cannot tell it from their own flow: it moves the price
                self._push_impact(market, side, executions)

    @property
    def now_ns(self) -> int:
        return self._now_ns

    # ---------------------------------------------------------------------------------------------
    # Scheduling and delivery
    # ---------------------------------------------------------------------------------------------

    def _schedule(self, t_ns: int, kind: int, payload: object) -> None:
        self._counter += 1
        heapq.heappush(self._heap, (t_ns, self._counter, kind, payload))

    def _deliver(self, recv_ns: int, event: Event) -> None:
        self._counter += 1
        heapq.heappush(self._deliveries, (recv_ns, self._counter, event))

    def _public_live(self) -> bool:
        now = self._now_ns
        return now >= self._outage_until and now >= self._stale_until

    def _public_recv_ns(self) -> int:
        recv = max(self._now_ns + self._feed_latency_ns, self._last_public_ns)
        self._last_public_ns = recv
        return recv

    def _push_public(self, recv_ns: int, event: Event) -> None:
        if self.faults.roll("drop"):
            return
        self._deliver(recv_ns, event)
        if self.faults.roll("duplicate"):
            self._deliver(recv_ns, event)

    def _private_recv_ns(self) -> int:
        recv = max(self._now_ns + self._response_latency.sample_ns(), self._last_private_ns)
        self._last_private_ns = recv
        return recv

    def _push_private(self, make: Callable[[int], Event], duplicate: bool = False) -> None:
        """Deliver a private message; while the venue is unreachable it is held until it is back.

        Held messages go first: at the outage's last instant a message can be made before the
        outage-end item (same time) releases the held ones, and must not overtake them."""
        if self._now_ns < self._outage_until or self._held_private:
            self._held_private.append(make(0))
            return
        event = make(self._private_recv_ns())
        self._deliver(event.ts_recv_ns, event)
        if duplicate:
            self._deliver(event.ts_recv_ns, event)

    def _dispatch(self, kind: int, payload: object) -> None:
        if kind == _TAKER:
            assert isinstance(payload, _Market)
            self._on_taker(payload)
        elif kind == _STEP:
            self._on_step()
        elif kind == _EMIT:
            self._on_emit()
        elif kind == _CMD:
            self._on_command(payload)  # type: ignore[arg-type]
        elif kind == _MARK:
            self._publish_mark()
            self._schedule(self._now_ns + self.config.mark_interval_ms * NS_PER_MS, _MARK, None)
        elif kind == _FUNDING:
            self._on_funding()
        elif kind == _POSITION:
            self._publish_positions()
            self._schedule(self._now_ns + self.config.position_interval_ms * NS_PER_MS, _POSITION, None)
        elif kind == _EPISODE_END:
            self._on_outage_end(payload)  # type: ignore[arg-type]

    # ---------------------------------------------------------------------------------------------
    # The market: fair value, background liquidity, takers
    # ---------------------------------------------------------------------------------------------

    def _on_step(self) -> None:
        self._fv.step()
        if self._impact is not None:
            self._impact.step()
        self._basis.step()
        self._basis_sum += self._basis.value
        self._basis_n += 1
        for market in self._markets.values():
            if market.bounces:
                self._bounce_back(market)
            self._update_background(market)
        for name in self.faults.due_episodes(self._step_s):
            self._start_episode(name, None)
        self._schedule(self._now_ns + self._step_ns, _STEP, None)

    def _update_background(self, market: _Market, requote: bool = False) -> None:
        """Move the ladder to fair value (hawkes: when it left the requote band, or `requote`), then,
        on a time step, refill and churn it."""
        cfg = market.cfg
        fv_ticks = self.fair_value_px(market.instrument.symbol) / market.instrument.tick_size
        if self._hawkes:  # the tightest book the liquidity allows: `bg_spread_ticks` around fair value
            held = market.anchor
            if (
                not requote
                and held is not None
                and abs(fv_ticks - (held[0] + held[1]) * 0.5) <= fv_ticks * market.requote_band
            ):
                anchor = held  # makers leave their quotes while fair value stays within the band
            else:
                bid = math.floor(fv_ticks - (cfg.bg_spread_ticks - 1) / 2 + 1e-9)
                anchor = (bid, bid + cfg.bg_spread_ticks)
        else:
            anchor = (
                math.floor(fv_ticks - cfg.bg_half_spread_ticks + 1e-9),
                math.ceil(fv_ticks + cfg.bg_half_spread_ticks - 1e-9),
            )
        if anchor != market.anchor:
            self._relocate_ladder(market, anchor)
        if requote:
            return
        for side in (Side.BUY, Side.SELL):
            if market.deficit[side]:
                self._refill(market, side)
            self._churn(market, side)

    def _relocate_ladder(self, market: _Market, anchor: tuple[int, int]) -> None:
        """Fair value moved: background makers cancel levels off the ladder and quote the new ones.
        Cancels first on both sides, so new quotes only ever cross *our* stale orders (picked off).
        With the hawkes model the deep levels move too, when the ladder's end crosses their grid."""
        cfg = market.cfg
        old = market.anchor
        market.anchor = anchor
        ladders = [(market.targets, False, cfg.bg_levels, cfg.bg_level_spacing_ticks, old, anchor)]
        if self._hawkes and cfg.bg_outer_levels:
            spacing = cfg.bg_outer_spacing_ticks
            reach = (cfg.bg_levels - 1) * cfg.bg_level_spacing_ticks + 1  # just beyond the ladder's last level
            outer = (
                (anchor[0] - reach) // spacing * spacing,
                -((-(anchor[1] + reach)) // spacing) * spacing,
            )
            if outer != market.outer_anchor:
                ladders.append((market.outer_targets, True, cfg.bg_outer_levels, spacing, market.outer_anchor, outer))
                market.outer_anchor = outer
        changes = [
            (targets, deep, side, *self._ladder_change(targets[side], side, levels, spacing, old_a, new_a))
            for targets, deep, levels, spacing, old_a, new_a in ladders
            for side in (Side.BUY, Side.SELL)
        ]
        for targets, _, side, removed, _ in changes:
            side_targets = targets[side]
            book_side = market.book.side(side)
            for price in removed:
                if side_targets.pop(price, None) is not None:
                    book_side.remove_background(price, book_side.bg_at(price))
                    market.deficit[side].discard(price)
        for targets, deep, side, _, added in changes:
            side_targets = targets[side]
            for price, j in added:
                if price not in side_targets:
                    lots = self._outer_size_lots(market, j) if deep else self._bg_size_lots(market, j)
                    side_targets[price] = lots
                    if self._hawkes and not deep and cfg.bg_new_level_share < 1.0 and lots > 1:
                        # a new queue near the touch starts thin and builds up (the deep levels, far
                        # from any taker, start whole: refilling them cost most of the mock's time)
                        market.deficit[side].add(price)
                        lots = max(1, round(lots * cfg.bg_new_level_share))
                    self._add_background(market, side, price, lots)

    @staticmethod
    def _ladder_change(
        targets: dict[int, int],
        side: Side,
        levels: int,
        spacing: int,
        old: tuple[int, int] | None,
        new: tuple[int, int],
    ) -> tuple[list[int], list[tuple[int, int]]]:
        """Prices leaving one side's ladder, and (price, level index) entering it.

        The ladder is best, best ± spacing, ... outwards. When the best moves by whole levels only
        the levels at the ends change, so the work is proportional to the move, not to the depth.
        """
        outward = -spacing if side is Side.BUY else spacing
        i = 0 if side is Side.BUY else 1
        new_best = new[i]
        old_best = None if old is None else old[i]
        if old_best is None or (new_best - old_best) % spacing or abs(new_best - old_best) >= levels * spacing:
            return list(targets), [(new_best + j * outward, j) for j in range(levels)]
        moved = (new_best - old_best) // outward  # > 0: the best moved outwards (away from the spread)
        if moved > 0:
            removed = [old_best + k * outward for k in range(moved)]
            added = [(new_best + j * outward, j) for j in range(levels - moved, levels)]
        else:
            removed = [old_best + k * outward for k in range(levels + moved, levels)]
            added = [(new_best + j * outward, j) for j in range(-moved)]
        return removed, added

    def _bg_size_lots(self, market: _Market, level_index: int) -> int:
        cfg = market.cfg
        mean_lots = cfg.bg_size_base * (1.0 + cfg.bg_size_growth * level_index) / cfg.lot_size
        if not self._hawkes:
            # lognormal with mean 1 (σ = 0.5): sizes vary without drifting
            return max(1, round(mean_lots * math.exp(0.5 * self._rng_market.gauss(0.0, 1.0) - 0.125)))
        sigma = cfg.bg_size_log_sigma
        lots = max(1, round(mean_lots * math.exp(sigma * self._rng_market.gauss(0.0, 1.0) - 0.5 * sigma * sigma)))
        if cfg.bg_occupancy < 1.0 and self._rng_market.random() >= cfg.bg_occupancy:
            return 0  # a gap in a thin book
        return lots

    def _outer_size_lots(self, market: _Market, level_index: int) -> int:
        cfg = market.cfg
        mean_lots = cfg.bg_outer_size_base * cfg.bg_outer_size_decay**level_index / cfg.lot_size
        return max(1, round(mean_lots * math.exp(0.5 * self._rng_market.gauss(0.0, 1.0) - 0.125)))

    def _add_background(self, market: _Market, side: Side, price: int, lots: int) -> None:
        """Add background size; where it crosses our resting orders it trades with them first."""
        book = market.book
        if book.crosses(side, price):
            executions, _ = book.side(side.opposite).take(price, lots)
            self._on_executions(market, side, executions, None)
            lots -= sum(e.lots for e in executions)
        if lots > 0:
            book.side(side).add_background(price, lots)

    def _refill(self, market: _Market, side: Side) -> None:
        book_side = market.book.side(side)
        targets = market.targets[side]
        deficit = market.deficit[side]
        outer = market.outer_targets[side]
        for price in list(deficit):
            target = targets.get(price)
            if target is None:
                target = outer.get(price)
            missing = 0 if target is None else target - book_side.bg_at(price)
            if missing <= 0:
                deficit.discard(price)
                continue
            add = min(missing, max(1, math.ceil(missing * market.refill_frac)))
            self._add_background(market, side, price, add)
            if add == missing:
                deficit.discard(price)

    def _churn(self, market: _Market, side: Side) -> None:
        """Background makers re-size a random level now and then (adds join the back of the queue)."""
        rng = self._rng_market
        p = market.churn_prob
        while p > 0 and rng.random() < min(p, 1.0):
            p -= 1.0
            assert market.anchor is not None
            j = rng.randrange(market.cfg.bg_levels)
            ladder_best = market.anchor[0] if side is Side.BUY else market.anchor[1]
            spacing = market.cfg.bg_level_spacing_ticks
            price = ladder_best - j * spacing if side is Side.BUY else ladder_best + j * spacing
            target = self._bg_size_lots(market, j)
            market.targets[side][price] = target
            current = market.book.side(side).bg_at(price)
            if target > current:
                self._add_background(market, side, price, target - current)
            elif target < current:
                market.book.side(side).remove_background(price, current - target)
            market.deficit[side].discard(price)

    def _schedule_taker(self, market: _Market, now_ns: int) -> None:
        if market.clock is not None:
            wait_s = market.clock.next_wait_s()
            if wait_s < math.inf:
                self._schedule(now_ns + max(1, int(wait_s * NS_PER_S)), _TAKER, market)
            return
        if market.taker_rate_per_s > 0:
            wait_s = self._rng_flow.expovariate(market.taker_rate_per_s)
            self._schedule(now_ns + max(1, int(wait_s * NS_PER_S)), _TAKER, market)

    def _on_taker(self, market: _Market) -> None:
        if market.clock is not None:
            self._on_hawkes_taker(market)
            return
        rng = self._rng_flow
        cfg = market.cfg
        inst = market.instrument
        self._schedule_taker(market, self._now_ns)
        if rng.random() < cfg.informed_share:
            now_px = self.fair_value_px(inst.symbol)
            future_px = self._future_px(market)
            if future_px == now_px:
                return
            side = Side.BUY if future_px > now_px else Side.SELL
            # they trade only at prices better than the value they know
            limit = inst.ticks_ceil(future_px) - 1 if side is Side.BUY else inst.ticks_floor(future_px) + 1
            mean_lots = cfg.informed_size_base / cfg.lot_size
        else:
            side = Side.BUY if rng.random() < 0.5 else Side.SELL
            mid = market.book.mid_ticks()
            if mid is None:
                mid = self.fair_value_px(inst.symbol) / inst.tick_size
            reach_ticks = rng.expovariate(cfg.taker_k_per_px) / inst.tick_size
            limit = math.floor(mid + reach_ticks) if side is Side.BUY else math.ceil(mid - reach_ticks)
            mean_lots = cfg.taker_size_base / cfg.lot_size
        lots = max(1, round(rng.expovariate(1.0 / mean_lots)))
        executions, _ = market.book.side(side.opposite).take(limit, lots)
        if executions:
            self._on_executions(market, side, executions, None)

    def _on_hawkes_taker(self, market: _Market) -> None:
        """One arrival of the hawkes model: informed (toward the future fair value) or a metaorder piece
        / noise trader walking the book up to `taker_reach_ticks`; what it executes pushes the fair value."""
        rng = self._rng_flow
        cfg = market.cfg
        inst = market.instrument
        self._schedule_taker(market, self._now_ns)
        if rng.random() < cfg.informed_share:
            now_px = self.fair_value_px(inst.symbol)
            future_px = self._future_px(market)
            if future_px == now_px:
                return
            side = Side.BUY if future_px > now_px else Side.SELL
            limit = inst.ticks_ceil(future_px) - 1 if side is Side.BUY else inst.ticks_floor(future_px) + 1
        else:
            side = Side.BUY if market.signs.next_sign() > 0 else Side.SELL
            best = market.book.side(side.opposite).best()
            if best is None:
                return
            limit = best + cfg.taker_reach_ticks if side is Side.BUY else best - cfg.taker_reach_ticks
        lots = max(1, round(market.sizes.sample(rng) / inst.lot_size))
        executions, _ = market.book.side(side.opposite).take(limit, lots)
        if executions:
            self._on_executions(market, side, executions, None)
            self._push_impact(market, side, executions)

    def _push_impact(self, market: _Market, side: Side, executions: list[Execution]) -> None:
        """What a taker executed pushes the fair value (square-root law), and a depleted queue moves it.
        Outside takers too (`simulate_taker`): on the multi-venue mock the cross-venue arbitrage is
        what pulls each venue's impacted value back to the others' (bot/venues/mock/venues.py)."""
        assert self._impact is not None
        cfg = market.cfg
        done_base = market.instrument.size(sum(e.lots for e in executions))
        self._impact.push(side.sign, cfg.impact_bps, done_base / cfg.size_median_base)
        if market.requote_band > 0 and cfg.bg_depletion_news:
            self._on_depletion(market, side, executions)

    def _on_depletion(self, market: _Market, side: Side, executions: list[Execution]) -> None:
        """A taker that ate a whole background queue moves the price (Cont & de Larrard 2013, "Price
        dynamics in a Markovian limit order market", SIAM J. Financial Math. 4): the makers take it as
        news, the fair value steps a requote band in the taker's direction and the book requotes there
        at once, so the eaten price is not refilled and the mid moves with the trade, as in real books."""
        eaten = executions[0].price_ticks
        if market.book.side(side.opposite).bg_at(eaten) > 0 or all(e.maker is not None for e in executions):
            return
        assert self._impact is not None
        cfg = market.cfg
        step = market.requote_band
        if cfg.bg_step_log_sigma > 0:  # a size law for the moves (the flow RNG is drawn only when set)
            step *= math.exp(cfg.bg_step_log_sigma * self._rng_flow.gauss(0.0, 1.0))
        self._impact.shift(side.sign * step)
        self._update_background(market, requote=True)
        if cfg.bg_bounce_share > 0 and self._rng_flow.random() < cfg.bg_bounce_share:
            # not news after all: the makers re-post the eaten price two steps later (100-200 ms at
            # the default step), so the mid's move reverts, as a depth@0ms feed shows
            market.bounces.append([2, -side.sign * step])

    def _bounce_back(self, market: _Market) -> None:
        """Undo the fair-value steps of depletions that were not news (`bg_bounce_share`) once due."""
        assert self._impact is not None
        due = 0.0
        for bounce in market.bounces:
            bounce[0] -= 1
            if bounce[0] <= 0:
                due += bounce[1]
        market.bounces = [b for b in market.bounces if b[0] > 0]
        if due:
            self._impact.shift(due)
            self._update_background(market, requote=True)

    def _future_px(self, market: _Market) -> float:
        future_spot = self._fv.future_px
        if self._impact is not None:
            future_spot *= math.exp(self._impact.log_offset)
        if market is self._spot:
            return future_spot
        return future_spot * (1.0 + self._basis.value)

    # ---------------------------------------------------------------------------------------------
    # Executions, fills, trades
    # ---------------------------------------------------------------------------------------------

    def _on_executions(
        self, market: _Market, aggressor: Side, executions: list[Execution], taker: Order | None
    ) -> None:
        """Account for a taker's executions: our maker/taker fills, background deficits, prints."""
        printed: dict[int, int] = {}
        ours = False
        maker_side = aggressor.opposite
        for ex in executions:
            if ex.maker is not None:
                ours = True
                self._fill(market, ex.maker, ex.price_ticks, ex.lots, Liquidity.MAKER)
                if ex.maker.remaining_lots == 0:
                    del self._orders[(ex.maker.symbol, ex.maker.client_id)]
            else:
                market.deficit[maker_side].add(ex.price_ticks)
            if taker is not None:
                ours = True
                taker.remaining_lots -= ex.lots
                self._fill(market, taker, ex.price_ticks, ex.lots, Liquidity.TAKER)
            printed[ex.price_ticks] = printed.get(ex.price_ticks, 0) + ex.lots
        if self._public_live():
            symbol = market.instrument.symbol
            for price, lots in printed.items():
                market.trade_n += 1
                recv = self._public_recv_ns()
                trade = TradePrint(symbol, price, lots, aggressor, str(market.trade_n), self._now_ns, recv)
                self._push_public(recv, trade)
        if ours:
            self._publish_position(market.instrument.symbol)

    def _fill(self, market: _Market, order: Order, price: int, lots: int, liquidity: Liquidity) -> None:
        inst = market.instrument
        rate = inst.maker_fee if liquidity is Liquidity.MAKER else inst.taker_fee
        fee = inst.notional(price, lots) * rate
        self.accounts.apply_fill(inst.symbol, order.side, price, lots, fee)
        self._fill_n += 1
        fill_id = f"F{self._fill_n}"
        now = self._now_ns
        leaves = order.remaining_lots
        side = order.side
        self._fill_history.append(
            OrderFilled(inst.symbol, order.client_id, fill_id, side, price, lots, fee, liquidity, leaves, now, now)
        )
        self._push_private(
            lambda recv: OrderFilled(
                inst.symbol, order.client_id, fill_id, order.side, price, lots, fee, liquidity, leaves, now, recv
            ),
            duplicate=self.faults.roll("duplicate_fill"),
        )

    # ---------------------------------------------------------------------------------------------
    # Commands
    # ---------------------------------------------------------------------------------------------

    def _on_command(self, command: Command) -> None:
        if isinstance(command, PlaceOrder):
            self._place(command)
        elif isinstance(command, CancelOrder):
            order = self._orders.get((command.symbol, command.client_id))
            if order is None:
                self._reject_cancel(command.symbol, command.client_id, "unknown_order")
            else:
                self._cancel(order, "requested")
        elif isinstance(command, CancelAll):
            for order in [o for o in self._orders.values() if command.symbol in (None, o.symbol)]:
                self._cancel(order, "requested")
        elif isinstance(command, RequestSnapshot):
            market = self._markets.get(command.symbol)
            if market is not None and self._now_ns >= self._outage_until:
                self._publish_snapshot(market)

    def _reject(self, cmd: PlaceOrder, reason: str) -> None:
        now = self._now_ns
        self._push_private(lambda recv: OrderRejected(cmd.symbol, cmd.client_id, reason, now, recv))

    def _reject_cancel(self, symbol: str, client_id: str, reason: str) -> None:
        now = self._now_ns
        self._push_private(lambda recv: CancelRejected(symbol, client_id, reason, now, recv))

    def _cancel(self, order: Order, reason: str) -> None:
        market = self._markets[order.symbol]
        market.book.side(order.side).remove_order(order)
        del self._orders[(order.symbol, order.client_id)]
        now = self._now_ns
        self._push_private(lambda recv: OrderCanceled(order.symbol, order.client_id, reason, now, recv))

    def _place(self, cmd: PlaceOrder) -> None:
        market = self._markets.get(cmd.symbol)
        if market is None:
            self._reject(cmd, "unknown_symbol")
            return
        reason = self._refusal(market, cmd)
        if reason is not None:
            self._reject(cmd, reason)
            return
        self._order_n += 1
        order = Order(
            cmd.symbol, cmd.client_id, f"M{self._order_n}", cmd.side, cmd.price_ticks, cmd.size_lots, cmd.order_type
        )
        self._ack(cmd, order.venue_order_id)
        book = market.book
        is_market = cmd.order_type is OrderType.MARKET
        stopped = False
        if is_market or book.crosses(cmd.side, cmd.price_ticks):
            limit = None if is_market else cmd.price_ticks
            executions, stopped = book.side(cmd.side.opposite).take(limit, order.remaining_lots, stop_at_ours=True)
            if executions:
                self._on_executions(market, cmd.side, executions, order)
        if order.remaining_lots == 0:
            return
        if cmd.order_type is OrderType.LIMIT and not stopped:
            book.side(cmd.side).add_order(order)
            self._orders[(cmd.symbol, cmd.client_id)] = order
            return
        reason = "self_trade_prevented" if stopped else "ioc_expired"
        now = self._now_ns
        self._push_private(lambda recv: OrderCanceled(cmd.symbol, cmd.client_id, reason, now, recv))

    def _ack(self, cmd: PlaceOrder, venue_order_id: str) -> None:
        now = self._now_ns
        if self.faults.roll("delayed_ack") and now >= self._outage_until:
            # held back outside the FIFO: fills and cancels may overtake it
            recv = now + self._response_latency.sample_ns() + self.faults.delayed_ack_ns()
            self._deliver(recv, OrderAccepted(cmd.symbol, cmd.client_id, venue_order_id, now, recv))
            return
        self._push_private(lambda recv: OrderAccepted(cmd.symbol, cmd.client_id, venue_order_id, now, recv))

    def _refusal(self, market: _Market, cmd: PlaceOrder) -> str | None:
        """Why the venue refuses this order, or None to accept it."""
        inst = market.instrument
        book = market.book
        if self._outage_kind == "restart" and self._now_ns < self._outage_until:
            return "venue_restart"
        if self.faults.roll("reject"):
            return "venue_overloaded"
        if (cmd.symbol, cmd.client_id) in self._orders:
            return "duplicate_client_id"
        if cmd.size_lots <= 0:
            return "invalid_size"
        is_market = cmd.order_type is OrderType.MARKET
        if not is_market and cmd.price_ticks <= 0:
            return "invalid_price"
        ref_ticks = cmd.price_ticks
        if is_market:
            best = book.side(cmd.side.opposite).best()
            ref_ticks = best if best is not None else inst.ticks(self.fair_value_px(inst.symbol))
        if inst.notional(ref_ticks, cmd.size_lots) < inst.min_notional:
            return "min_notional"
        if cmd.reduce_only:
            pos = self.accounts.positions_lots[cmd.symbol]
            if not (pos * cmd.side.sign < 0 and cmd.size_lots <= abs(pos)):
                return "reduce_only_would_increase"
        if cmd.order_type is OrderType.LIMIT and cmd.post_only and book.crosses(cmd.side, cmd.price_ticks):
            return "post_only_would_cross"
        if self.config.enforce_balances and inst.kind is InstrumentKind.SPOT and not self._affordable(market, cmd):
            return "insufficient_balance"
        return None

    def _affordable(self, market: _Market, cmd: PlaceOrder) -> bool:
        """Spot only: the free balance (minus what open orders reserve) covers this order."""
        inst = market.instrument
        fee_rate = max(inst.maker_fee, inst.taker_fee, 0.0)
        reserved_quote = 0.0
        reserved_lots = 0
        for o in self._orders.values():
            if o.symbol != inst.symbol:
                continue
            if o.side is Side.BUY:
                reserved_quote += inst.notional(o.price_ticks, o.remaining_lots) * (1 + fee_rate)
            else:
                reserved_lots += o.remaining_lots
        balances = self.accounts.balances
        if cmd.side is Side.SELL:
            return inst.size(reserved_lots + cmd.size_lots) <= balances[inst.base] + 1e-9
        if cmd.order_type is OrderType.MARKET:
            cost = self._walk_cost_quote(market, cmd.size_lots)
        else:
            cost = inst.notional(cmd.price_ticks, cmd.size_lots)
        return reserved_quote + cost * (1 + fee_rate) <= balances[inst.quote] + 1e-9

    def _walk_cost_quote(self, market: _Market, lots: int) -> float:
        """What a market buy of `lots` would pay walking the asks (read-only)."""
        asks = market.book.asks
        cost = 0.0
        for price in asks.prices:
            take = min(lots, asks.levels[price].total_lots)
            cost += market.instrument.notional(price, take)
            lots -= take
            if lots == 0:
                break
        return cost

    def _refuse_while_down(self, command: Command, now_ns: int) -> None:
        """The venue is unreachable: the send fails locally, at once."""
        reason = "venue_disconnected"
        if isinstance(command, PlaceOrder):
            self._deliver(now_ns, OrderRejected(command.symbol, command.client_id, reason, now_ns, now_ns))
        elif isinstance(command, CancelOrder):
            self._deliver(now_ns, CancelRejected(command.symbol, command.client_id, reason, now_ns, now_ns))
        elif isinstance(command, CancelAll):
            for o in self._orders.values():
                if command.symbol in (None, o.symbol):
                    self._deliver(now_ns, CancelRejected(o.symbol, o.client_id, reason, now_ns, now_ns))

    # ---------------------------------------------------------------------------------------------
    # Publication: book, marks, funding, positions
    # ---------------------------------------------------------------------------------------------

    def _on_emit(self) -> None:
        for market in self._markets.values():
            self._publish_delta(market)
        self._schedule(self._now_ns + self.config.book_interval_ms * NS_PER_MS, _EMIT, None)

    def _publish_delta(self, market: _Market) -> None:
        if not self._public_live():
            return  # changes keep accumulating in the book's dirty sets until the feed is back
        bids = market.book.bids.take_dirty()
        asks = market.book.asks.take_dirty()
        if self._now_ns < self._crossed_until and market.phantom_bid is None:
            best_ask = market.book.asks.best()
            if best_ask is not None:
                market.phantom_bid = best_ask + 1
                bids = ((market.phantom_bid, 1), *bids)
        elif self._now_ns >= self._crossed_until and market.phantom_bid is not None:
            # repair: publish the true size at the bogus price (usually 0 = delete)
            bids = ((market.phantom_bid, market.book.bids.size_at(market.phantom_bid)), *bids)
            market.phantom_bid = None
        if not bids and not asks:
            return
        first = market.seq + 1 + market.gap_pending
        market.gap_pending = 0
        market.seq = first
        recv = self._public_recv_ns()
        delta = BookDelta(market.instrument.symbol, first, first, bids, asks, self._now_ns, recv)
        self._push_public(recv, delta)

    def _publish_snapshot(self, market: _Market) -> None:
        """A full snapshot valid at `seq` (deltas carry absolute sizes, so pending changes re-applied on
        top of it by the next delta are harmless)."""
        recv = self._public_recv_ns()
        self._deliver(recv, self.snapshot(market.instrument.symbol, recv))
        market.phantom_bid = None

    def _publish_mark(self) -> None:
        if not self._public_live():
            return
        inst = self._perp.instrument
        mark = inst.ticks(self.fair_value_px(inst.symbol))
        recv = self._public_recv_ns()
        self._push_public(recv, MarkPrice(inst.symbol, mark, self._now_ns, recv))

    def _on_funding(self) -> None:
        cfg = self.config
        inst = self._perp.instrument
        premium = self._basis_sum / self._basis_n if self._basis_n else self._basis.value
        self._basis_sum, self._basis_n = 0.0, 0
        rate = max(-cfg.funding_cap, min(cfg.funding_cap, premium))
        mark_px = inst.price(inst.ticks(self.fair_value_px(inst.symbol)))
        # longs pay shorts when the rate is positive
        amount = -inst.size(self.accounts.positions_lots[inst.symbol]) * mark_px * rate
        self.accounts.apply_funding(inst.symbol, amount)
        now = self._now_ns
        self._push_private(lambda recv: FundingPaid(inst.symbol, rate, amount, now, recv))
        self._schedule(now + int(cfg.funding_interval_s * NS_PER_S), _FUNDING, None)

    def _publish_position(self, symbol: str) -> None:
        lots = self.accounts.positions_lots[symbol]
        now = self._now_ns
        self._push_private(lambda recv: PositionSnapshot(symbol, lots, now, recv))

    def _publish_positions(self) -> None:
        for symbol in self._markets:
            self._publish_position(symbol)

    # ---------------------------------------------------------------------------------------------
    # Fault episodes
    # ---------------------------------------------------------------------------------------------

    def _start_triggered(self) -> None:
        for name, duration_ms in self.faults.take_triggered():
            self._start_episode(name, duration_ms)

    def _start_episode(self, name: Episode, duration_ms: int | None) -> None:
        now = self._now_ns
        until = now + self.faults.duration_ns(name, duration_ms)
        if name == "gap":
            self.faults.count("gap")
            for market in self._markets.values():
                market.gap_pending += self.faults.gap_size()
        elif name == "stale":
            self.faults.count("stale")
            self._stale_until = max(self._stale_until, until)
        elif name == "crossed":
            self.faults.count("crossed")
            self._crossed_until = max(self._crossed_until, until)
        else:  # disconnect / restart
            self.faults.count(name)
            self._begin_outage(name, until)

    def _begin_outage(self, kind: str, until: int) -> None:
        if self._now_ns >= self._outage_until:
            recv = self._public_recv_ns()
            self._deliver(recv, FeedStatus("*", False, kind, self._now_ns, recv))
        if kind == "restart" or self._outage_kind != "restart":
            self._outage_kind = kind
        self._outage_until = max(self._outage_until, until)
        self._schedule(self._outage_until, _EPISODE_END, self._outage_until)
        if kind == "restart":
            for order in list(self._orders.values()):
                self._cancel(order, "venue_restart")  # held until the venue is back

    def _on_outage_end(self, until: int) -> None:
        if until != self._outage_until:
            return  # superseded by a longer outage
        recv = self._public_recv_ns()
        self._deliver(recv, FeedStatus("*", True, f"{self._outage_kind}_recovered", self._now_ns, recv))
        self._outage_kind = ""
        for market in self._markets.values():
            self._publish_snapshot(market)
        self._last_private_ns = max(self._last_private_ns, self._last_public_ns)
        held, self._held_private = self._held_private, []
        for event in held:
            recv = self._private_recv_ns()
            self._deliver(recv, _restamp(event, recv))
        self._publish_positions()


def _restamp(event: Event, recv_ns: int) -> Event:
    return replace(event, ts_recv_ns=recv_ns)
