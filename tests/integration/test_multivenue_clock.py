"""The multi-venue mock's clock advances by the bot's progress (`bot.venues.mock.pacing.ProgressPacer`):
the same seed gives the same run through the live runner however slow the process is, and it is
the run the offline driver (`bot.sim.driver.run_simulation`) makes.

With the wall-paced clock it replaced (`Pacer`), the same two runs made 137 and 44 fills (a process
slowed by 0.5 ms per event let simulated time race ahead of it): the first test fails on that clock.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from bot.app import build_engine
from bot.config import Settings, load_settings
from bot.core.engine import Engine
from bot.domain import Command, Event, OrderFilled, Timer
from bot.runtime.runner import Runner
from bot.sim.driver import run_simulation
from bot.venues.mock.pacing import ProgressPacer
from bot.venues.mock.venues import MockVenues, MultiMockVenue

NS_PER_S = 1_000_000_000
MS = 1_000_000
START_NS = 1_700_000_000 * NS_PER_S
CONFIG = None  # the embedded default (config/default.toml) is the deal's shape
SIM_S = 30.0
SPEED = 30.0

FillKey = tuple[str, str, int, int, int]


def settings() -> Settings:
    return load_settings(CONFIG, {"metrics": {"enabled": False}, "ledger": {"path": ""}})


def build(cfg: Settings) -> tuple[MockVenues, Engine]:
    group = MockVenues(cfg.mock, cfg.market.venues, start_ns=START_NS)
    market = cfg.market
    spots = {m.venue: group.exchanges[m.venue].instruments[market.spot_symbol] for m in market.quote_on}
    perp = group.exchanges[market.hedge_venue].instruments[market.perp_symbol]
    return group, build_engine(cfg, spots["main"], perp, START_NS, venue_name="mock", spot_venues=spots)


def key(fill: OrderFilled) -> FillKey:
    return (fill.venue, fill.fill_id, fill.price_ticks, fill.size_lots, fill.ts_venue_ns)


class FillsSeen:
    """A runner observer that records the fills and, if `block_s`, blocks the event loop that long on
    every event: the slow process under test (a loaded machine), not a wait for anything."""

    def __init__(self, block_s: float = 0.0) -> None:
        self.block_s = block_s
        self.fills: list[FillKey] = []

    def on_event(self, event: Event, now_ns: int) -> None:
        if self.block_s:
            time.sleep(self.block_s)
        if isinstance(event, OrderFilled):
            self.fills.append(key(event))

    def on_command(self, command: Command, now_ns: int) -> None: ...
    def on_batch(self, engine: Any, now_ns: int, tick_to_quote_us: float) -> None: ...
    def close(self) -> None: ...


def live_run(*, block_s: float = 0.0, monotonic_ns: Any = time.monotonic_ns) -> tuple[list[FillKey], dict[str, Any]]:
    cfg = settings()
    group, engine = build(cfg)
    venue = MultiMockVenue(
        group, speed=SPEED, start_ns=START_NS, timer_ms=cfg.runtime.timer_ms, monotonic_ns=monotonic_ns
    )
    seen = FillsSeen(block_s)
    runner = Runner(
        engine, venue, clock_ns=venue.clock_ns, timer_ms=cfg.runtime.timer_ms, observers=(seen,), clock_speed=SPEED
    )
    summary = asyncio.run(runner.run(SIM_S / SPEED, install_signals=False))
    return seen.fills, summary


def test_the_same_seed_gives_the_same_fills_however_slow_the_process() -> None:
    paced, paced_summary = live_run()
    slowed, slowed_summary = live_run(block_s=0.0005)  # about 3x slower than the pace at this speed

    def racing_clock() -> Any:  # a wall clock 1 s on at every read: the process is always far behind
        ticks = iter(range(0, 10**15, NS_PER_S))
        return lambda: next(ticks)

    raced, _ = live_run(monotonic_ns=racing_clock())
    assert len(paced) > 20  # a run worth comparing: every venue trades
    assert {f[0] for f in paced} == {"main", "second", "third", "perpx"}
    assert slowed == paced
    assert raced == paced
    # the simulated length is the configured one, not what the wall clock let the slow run do
    assert paced_summary["duration_s"] == slowed_summary["duration_s"]
    assert SIM_S <= paced_summary["duration_s"] <= SIM_S + 0.2
    assert paced_summary["open_orders_at_exit"] == slowed_summary["open_orders_at_exit"] == 0

    # ...and it is the run the offline driver makes of the same seed and engine
    group, engine = build(settings())
    offline: list[FillKey] = []

    def on_step(_t: int, events: list[Event], _commands: list[Command]) -> None:
        offline.extend(key(e) for e in events if isinstance(e, OrderFilled))

    run_simulation(group, engine, start_ns=START_NS, duration_ns=int(SIM_S * NS_PER_S), on_step=on_step)
    assert offline[: len(paced)] == paced


class Scheduled:
    """A tiny exchange: one event due at each of `times_ns` (a stand-in: the pacer only hands it on)."""

    def __init__(self, times_ns: list[int]) -> None:
        self.pending = sorted(times_ns)

    def advance(self, now_ns: int) -> list[Any]:
        due = [("due", t) for t in self.pending if t <= now_ns]
        self.pending = [t for t in self.pending if t > now_ns]
        return due

    def next_event_ns(self) -> int | None:
        return self.pending[0] if self.pending else None


async def test_the_progress_clock_never_runs_ahead_of_the_wall_clock() -> None:
    wall = [0]
    exchange = Scheduled([10 * MS, 30 * MS, 500 * MS])
    pacer = ProgressPacer(exchange, start_ns=0, speed=2.0, timer_ns=100 * MS, monotonic_ns=lambda: wall[0])
    got: list[Any] = []
    task = asyncio.create_task(pacer.pump(got.append))

    async def settles_at(sim_ns: int) -> None:
        """Until the pacer has stepped as far as the wall clock lets it, which is `sim_ns`."""
        async with asyncio.timeout(5):
            while pacer.next_step_ns() <= sim_ns:
                await asyncio.sleep(0.001)

    try:
        await asyncio.sleep(0)  # a yield, not a wait: the pump starts, pinning simulated 0 to wall 0
        await settles_at(0)
        assert got == [] and pacer.now_ns() == 0  # the wall clock has not moved: nor has simulated time
        wall[0] = 20 * MS  # x2: simulated time may reach 40 ms
        await settles_at(40 * MS)
        assert got == [("due", 10 * MS), ("due", 30 * MS)] and pacer.now_ns() == 30 * MS
        wall[0] = 60 * MS  # 120 ms: the timer tick at 100 ms, on the simulated clock
        await settles_at(120 * MS)
        assert got[2:] == [Timer(100 * MS, 100 * MS)] and pacer.now_ns() == 100 * MS
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
