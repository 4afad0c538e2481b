"""Several mock exchanges on one fair value: the dry run of the deal's shape (issue #14).

    SharedFairValue ──view──▶ MockExchange "main"    (own liquidity, fees, latency, takers, seed)
          │        ──view──▶ MockExchange "second"
          │        ──view──▶ MockExchange "third"
          └────────  view──▶ MockExchange "perpx"   (its perp hedges the book)
    MockVenues.advance(now): every exchange up to now, their events stamped with the venue's name,
                             then cross-venue arbitrage (a bid on one venue above an ask on another
                             is taken on both sides, fees allowed for)
    MultiMockVenue: all of it as one async `Venue` (one feed into the runner's one queue); commands
                    go to the exchange their `venue` names. Its clock advances by the bot's progress
                    (`ProgressPacer`): a run is the same in simulated time however loaded the machine.

Each venue is a whole `MockExchange` built from `[mock]` scaled by its `[venues.NAME]` entry, with its
own seed, so liquidity, fees, latency and taker flow differ per venue while every venue's background
book is laddered around the same fair value (one `FairValuePath`, read by each venue at its own step).
What the arbitrage flow meets is mostly our own quotes: a venue whose quotes (ours, skewed by the
book's inventory) cross another venue's book is traded against at once, as it would be in the market.

Fill ids are prefixed with the venue (`main:F12`): each exchange counts its own, and a fill id must be
unique per symbol in the ledger.
"""

from __future__ import annotations

import math
import random
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import replace

from bot.config import MockExchangeConfig, MockVenueConfig
from bot.domain import (
    Command,
    Event,
    Instrument,
    OpenOrder,
    OrderFilled,
    Side,
    market_key,
)
from bot.venues.base import EventSink, stamp, stamp_fill
from bot.venues.mock.exchange import MockExchange
from bot.venues.mock.market import FairValuePath
from bot.venues.mock.pacing import ProgressPacer

ARB_MAX_BASE = 2.0  # the arbitrageur's largest trade per crossing, base units


class SharedFairValue:
    """One fair-value path that several exchanges read, each at its own step count: the exchanges are
    advanced one after the other, so one may have stepped further than another at any moment."""

    def __init__(self, path: FairValuePath) -> None:
        self._path = path
        self._now: deque[float] = deque([path.now_px])  # the path's now and future at step base, base+1, ...
        self._future: deque[float] = deque([path.future_px])
        self._base = 0
        self._views: list[FairValueView] = []

    def view(self) -> FairValueView:
        view = FairValueView(self)
        self._views.append(view)
        return view

    def at(self, step: int) -> tuple[float, float]:
        while step >= self._base + len(self._now):
            self._path.step()
            self._now.append(self._path.now_px)
            self._future.append(self._path.future_px)
        return self._now[step - self._base], self._future[step - self._base]

    def forget_before(self) -> None:
        """Drop the steps every view has passed (memory stays bounded by the spread between views)."""
        oldest = min(v.step_index for v in self._views)
        while self._base < oldest:
            self._now.popleft()
            self._future.popleft()
            self._base += 1


class FairValueView:
    """One exchange's reading of the shared path (`bot.venues.mock.exchange.FairValueSource`)."""

    def __init__(self, shared: SharedFairValue) -> None:
        self._shared = shared
        self.step_index = 0
        self._now_px, self._future_px = shared.at(0)

    @property
    def now_px(self) -> float:
        return self._now_px

    @property
    def future_px(self) -> float:
        return self._future_px

    def step(self) -> None:
        self.step_index += 1
        self._now_px, self._future_px = self._shared.at(self.step_index)
        self._shared.forget_before()


def venue_config(base: MockExchangeConfig, venue: MockVenueConfig) -> MockExchangeConfig:
    """`[mock]` scaled by one venue's `[venues.NAME]` entry."""
    markets = {}
    for name in ("spot", "perp"):
        market = getattr(base, name)
        markets[name] = market.model_copy(
            update={
                "bg_size_base": market.bg_size_base * venue.liquidity_scale,
                "bg_outer_size_base": market.bg_outer_size_base * venue.liquidity_scale,
                # the uninformed arrivals of either flow model: classic Poisson takers, hawkes' base rate
                "taker_a_per_s": market.taker_a_per_s * venue.taker_rate_scale,
                "hawkes_base_per_s": market.hawkes_base_per_s * venue.taker_rate_scale,
                "maker_fee": market.maker_fee * venue.fee_scale,
                "taker_fee": market.taker_fee * venue.fee_scale,
            }
        )
    latency = base.latency.model_copy(
        update={
            "order_median_ms": base.latency.order_median_ms * venue.latency_scale,
            "response_median_ms": base.latency.response_median_ms * venue.latency_scale,
        }
    )
    return base.model_copy(update={**markets, "latency": latency})


class MockVenues:
    """N mock exchanges on one fair value, advanced together (synchronous, simulated time)."""

    def __init__(
        self,
        base: MockExchangeConfig,
        venues: Mapping[str, MockVenueConfig],
        start_ns: int = 0,
        make_exchange: Callable[..., MockExchange] = MockExchange,
        fill_history_size: int | None = None,
    ) -> None:
        """`make_exchange` builds each venue's exchange (the soak's records its fills); `fill_history_size`:
        each exchange's fill history (None: the exchange's default)."""
        if not venues:
            raise ValueError("MockVenues needs at least one venue")
        self.base = base
        step_s = base.step_ms / 1000.0
        lookahead = max(1, math.ceil(base.informed_horizon_s / step_s))
        self.fair_value = SharedFairValue(
            FairValuePath(
                random.Random(f"{base.seed}:shared-market"),
                base.initial_px,
                base.sigma_px_per_sqrt_s,
                base.process,
                step_s,
                lookahead,
                base.jumps_per_hour,
                base.jump_sigma_bps,
                floor_px=max(base.spot.tick_size, base.perp.tick_size),
            )
        )
        history = {} if fill_history_size is None else {"fill_history_size": fill_history_size}
        self.exchanges: dict[str, MockExchange] = {
            name: make_exchange(
                venue_config(base, cfg),
                seed=base.seed * 1000 + i,  # own flow, churn and latency draws per venue
                start_ns=start_ns,
                fair_value=self.fair_value.view(),
                **history,
            )
            for i, (name, cfg) in enumerate(venues.items())
        }
        self.spot_symbol = base.spot.symbol
        self._arb_period_ns = base.step_ms * 1_000_000
        self._next_arb_ns = start_ns + self._arb_period_ns
        self.arbitrage_trades = 0

    def advance(self, now_ns: int) -> list[Event]:
        out: list[Event] = []
        for name, exchange in self.exchanges.items():
            out.extend(stamp(event, name) for event in exchange.advance(now_ns))
        if now_ns >= self._next_arb_ns:
            self._next_arb_ns = now_ns + self._arb_period_ns
            self.arbitrage()
        return out

    def next_event_ns(self) -> int | None:
        times = [t for t in (ex.next_event_ns() for ex in self.exchanges.values()) if t is not None]
        return min(times) if times else None

    def submit(self, command: Command, now_ns: int) -> None:
        self.exchanges[command.venue].submit(command, now_ns)

    def arbitrage(self) -> int:
        """Take every cross-venue crossing of the spot books worth more than both taker fees; returns
        the number of (buy, sell) pairs done."""
        symbol = self.spot_symbol
        done = 0
        tops = {name: ex.top(symbol) for name, ex in self.exchanges.items()}
        for buy_at, (_, ask) in tops.items():
            for sell_at, (bid, _) in tops.items():
                if buy_at == sell_at or ask is None or bid is None or bid[0] <= ask[0]:
                    continue
                buy_ex, sell_ex = self.exchanges[buy_at], self.exchanges[sell_at]
                inst = buy_ex.instruments[symbol]
                fees_ticks = (inst.taker_fee + sell_ex.instruments[symbol].taker_fee) * ask[0]
                if bid[0] - ask[0] <= fees_ticks:
                    continue  # not worth both taker fees
                # the smaller of the two top levels (and of the arbitrageur's limit): a hedged round trip
                lots = min(bid[1], ask[1], inst.lots_floor(ARB_MAX_BASE))
                buy_ex.simulate_taker(symbol, Side.BUY, lots, limit_ticks=ask[0])
                sell_ex.simulate_taker(symbol, Side.SELL, lots, limit_ticks=bid[0])
                done += 1
        self.arbitrage_trades += done
        return done


class MultiMockVenue:
    """The multi-venue mock as one async `Venue` for the runner (the dry run of the deal's shape)."""

    name = "mock"
    starts_empty = True  # new exchanges every run: the ledger's earlier runs say nothing about them

    def __init__(
        self,
        venues: MockVenues,
        *,
        speed: float = 1.0,
        start_ns: int = 0,
        timer_ms: int = 100,
        monotonic_ns: Callable[[], int] = time.monotonic_ns,
    ) -> None:
        self.venues = venues
        self.fill_session = f"mock:{uuid.uuid4().hex[:12]}"  # a new group numbers its fills from F1 again
        # simulated time advances by the bot's progress, the timer ticks on it (pacing.py): four
        # exchanges cost a loaded machine more than the wall clock gives them at the tests' speeds
        self._pacer = ProgressPacer(
            venues, start_ns=start_ns, speed=speed, timer_ns=timer_ms * 1_000_000, monotonic_ns=monotonic_ns
        )
        self.ticks_in_feed = True  # the runner runs no timer of its own (`bot.runtime.runner.Runner`)

    @property
    def instruments(self) -> Mapping[str, Instrument]:
        """The instruments by symbol (every venue lists the same token pair and perp)."""
        return next(iter(self.venues.exchanges.values())).instruments

    def instruments_of(self, venue: str) -> Mapping[str, Instrument]:
        return self.venues.exchanges[venue].instruments

    def clock_ns(self) -> int:
        """Simulated time now (the current step's; the runner's clock)."""
        return self._pacer.now_ns()

    @property
    def steps(self) -> int:
        return self._pacer.steps

    async def connect(self) -> None:
        return None

    async def stream(self, sink: EventSink) -> None:
        await self._pacer.pump(sink)

    async def execute(self, command: Command) -> None:
        self.venues.submit(command, self.clock_ns())
        self._pacer.wake()

    async def open_orders(self) -> list[OpenOrder]:
        return [replace(o, venue=name) for name, ex in self.venues.exchanges.items() for o in ex.open_orders()]

    async def positions(self) -> dict[str, int]:
        """Per market key (`symbol@venue`), lots."""
        return {
            market_key(name, symbol): lots
            for name, ex in self.venues.exchanges.items()
            for symbol, lots in ex.positions().items()
        }

    async def fills_since(self, since_ns: int) -> list[OrderFilled]:
        now = self.clock_ns()
        fills = [
            replace(stamp_fill(fill, name), ts_recv_ns=now)
            for name, ex in self.venues.exchanges.items()
            for fill in ex.fills_since(since_ns)
        ]
        return sorted(fills, key=lambda f: f.ts_venue_ns)

    async def close(self) -> None:
        return None
