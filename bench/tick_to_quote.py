"""Tick-to-quote latency: microseconds from a book event in to commands out.

engine: the pure engine alone, fed the mock exchange's event stream on simulated time (each event
timed around `apply` + `requote`). runner: the same through the async runner with the paced
in-process mock (each batch timed from dequeue to commands handed to the venue).
Last line of stdout: {"engine": {"p50_us", "p99_us", "p999_us", "events_per_s"}, "runner": {...}}.

The engine section also has, to tell a slow code path from a busy machine:
- `cpu_p50_us`, `cpu_p99_us`, `cpu_p999_us`: the same book-event samples in thread CPU time, which
  leaves out the time the OS gave other processes (on a loaded VM the wall-clock p99.9 is mostly
  that); a tail that shows in CPU time too is the code's own;
- `by_event`: percentiles of apply + requote per event type, wall clock plus the CPU-time p99
  (fills, cancels and timers do more work than book deltas: hedging, a full requote);
- `gc`: "on" (default) or "freeze" (`gc.freeze()` after set-up, so the collector no longer walks
  the start-up objects), and the collections seen during the run;
- `timer_ms`: the engine also gets a `Timer` event this often, as from the runner (stale checks,
  order pruning, hedging on time); `--timer-ms 0` drives it with market events only, as before.
- `markets`: the same engine measurement with 1 and with 4 spot markets (venues of the multi-venue
  mock, bot/venues/mock/venues.py, hedged on a fifth): a book event concerns one market, and its cost
  must not grow with the number of markets (issue #14). `book_idle_*`: book events that only update
  the book; `book_requote_*`: book events after which their market was requoted (one market each).
  The mean over all book events does grow: with 4 markets more events requote (a fill anywhere moves
  every market's reservation price, and there are 4x the fills), so `requote_share` is reported.
Usage: python bench/tick_to_quote.py [--seconds 600] [--runner-seconds 10] [--gc on|freeze] [--timer-ms N]
       [--markets-seconds 120] [--markets-rounds 2]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import time
from collections import defaultdict
from collections.abc import Iterator

import numpy as np

from bot.app import build_engine
from bot.config import load_settings
from bot.domain import BookDelta, BookSnapshot, Event, Timer
from bot.runtime.runner import Runner
from bot.venues.mock.exchange import MockExchange
from bot.venues.mock.venues import MockVenues
from bot.venues.mock_inprocess import InProcessMockVenue


def _percentiles_us(samples_ns: list[int]) -> dict[str, float]:
    arr = np.asarray(samples_ns, dtype=np.float64) / 1000.0
    p50, p99, p999 = np.percentile(arr, [50, 99, 99.9])
    return {"p50_us": round(float(p50), 2), "p99_us": round(float(p99), 2), "p999_us": round(float(p999), 2)}


def _stats(samples_ns: list[int], wall_s: float, events: int) -> dict[str, float]:
    return {**_percentiles_us(samples_ns), "events_per_s": round(events / wall_s, 1), "samples": len(samples_ns)}


class _GcCounter:
    """Counts collections per generation while installed in gc.callbacks."""

    def __init__(self) -> None:
        self.collections = [0, 0, 0]

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "stop":
            self.collections[info["generation"]] += 1


def _feed(exchange: MockExchange | MockVenues, end_ns: int, timer_ns: int) -> Iterator[tuple[int, list[Event]]]:
    """(now, events due by now) on simulated time, with a `Timer` every `timer_ns` as the runner
    sends (0: none, the bench of earlier sessions)."""
    now = 0
    next_timer = timer_ns if timer_ns > 0 else end_ns + 1
    while now < end_ns:
        pending = exchange.next_event_ns()
        target = min(end_ns, next_timer, pending if pending is not None else end_ns)
        now = max(target, now)
        events: list[Event] = list(exchange.advance(now))
        if now >= next_timer:
            events.append(Timer(now, now))
            next_timer += timer_ns
        yield now, events


def bench_engine(seconds: float, gc_mode: str = "on", timer_ms: int | None = None) -> dict[str, object]:
    settings = load_settings()
    timer_ns = (settings.runtime.timer_ms if timer_ms is None else timer_ms) * 1_000_000
    exchange = MockExchange(settings.mock, seed=7, start_ns=0)
    spot = exchange.instruments[settings.market.spot_symbol]
    engine = build_engine(settings, spot, exchange.instruments.get(settings.market.perp_symbol), 0)
    if gc_mode == "freeze":
        gc.collect()
        gc.freeze()
    counter = _GcCounter()
    gc.callbacks.append(counter)
    samples: list[int] = []
    cpu_samples: list[int] = []
    by_event: defaultdict[str, list[int]] = defaultdict(list)
    by_event_cpu: defaultdict[str, list[int]] = defaultdict(list)
    events = 0
    engine_ns = 0
    wall_ns, cpu_ns = time.perf_counter_ns, time.thread_time_ns
    try:
        for now, due in _feed(exchange, int(seconds * 1e9), timer_ns):
            for event in due:
                c0 = cpu_ns()
                t0 = wall_ns()
                commands = engine.apply(event, now)
                commands += engine.requote(now)
                dt = wall_ns() - t0
                cpu = cpu_ns() - c0
                engine_ns += dt
                events += 1
                by_event[type(event).__name__].append(dt)
                by_event_cpu[type(event).__name__].append(cpu)
                if isinstance(event, BookDelta | BookSnapshot):
                    samples.append(dt)
                    cpu_samples.append(cpu)
                for command in commands:
                    exchange.submit(command, now)
            engine.drain_notes()
    finally:
        gc.callbacks.remove(counter)
        if gc_mode == "freeze":
            gc.unfreeze()
    cpu = {f"cpu_{k}": v for k, v in _percentiles_us(cpu_samples).items()}
    breakdown = {
        name: {"n": len(v), **_percentiles_us(v), "cpu_p99_us": _percentiles_us(by_event_cpu[name])["p99_us"]}
        for name, v in sorted(by_event.items(), key=lambda kv: -len(kv[1]))
    }
    gc_info = {"mode": gc_mode, "collections": counter.collections}
    stats = _stats(samples, engine_ns / 1e9, events)
    return {**stats, **cpu, "timer_ms": timer_ns // 1_000_000, "by_event": breakdown, "gc": gc_info}


def bench_markets(seconds: float, n_markets: int) -> dict[str, object]:
    """Per-event cost of the engine quoting `n_markets` spot venues of one book (and hedging on one
    more), fed the multi-venue mock's events on simulated time."""
    venues = {f"spot{i}": {} for i in range(n_markets)} | {"perp": {}}
    market = {"quote_on": [{"venue": f"spot{i}"} for i in range(n_markets)], "hedge_venue": "perp", "venues": venues}
    settings = load_settings(overrides={"market": market})  # the default config, its market quoted on n venues
    group = MockVenues(settings.mock, settings.market.venues, start_ns=0)
    spots = {f"spot{i}": group.exchanges[f"spot{i}"].instruments[settings.market.spot_symbol] for i in range(n_markets)}
    perp = group.exchanges["perp"].instruments[settings.market.perp_symbol]
    engine = build_engine(settings, spots["spot0"], perp, 0, spot_venues=spots)
    book_ns: list[int] = []
    book_cpu: list[int] = []
    idle_ns: list[int] = []  # book events that requoted no market
    requote_ns: list[int] = []  # book events after which exactly their own market was requoted
    all_ns = 0
    events = 0
    wall_ns, cpu_ns = time.perf_counter_ns, time.thread_time_ns
    for now, due in _feed(group, int(seconds * 1e9), settings.runtime.timer_ms * 1_000_000):
        for event in due:
            c0 = cpu_ns()
            t0 = wall_ns()
            commands = engine.apply(event, now)
            touched = engine.requotes_pending()
            commands += engine.requote(now)
            dt = wall_ns() - t0
            cpu = cpu_ns() - c0
            all_ns += dt
            events += 1
            if isinstance(event, BookDelta | BookSnapshot):
                book_ns.append(dt)
                book_cpu.append(cpu)
                if touched == 0:
                    idle_ns.append(dt)
                elif touched == 1:
                    requote_ns.append(dt)
            for command in commands:
                group.submit(command, now)
        engine.drain_notes()
    book = _percentiles_us(book_ns)
    idle, requoted = _percentiles_us(idle_ns), _percentiles_us(requote_ns)
    return {
        "markets": n_markets,
        "events": events,
        "book_events": len(book_ns),
        "book_p50_us": book["p50_us"],
        "book_p99_us": book["p99_us"],
        "book_mean_us": round(float(np.mean(book_ns)) / 1000.0, 3),
        "book_cpu_p50_us": _percentiles_us(book_cpu)["p50_us"],
        "book_idle_p50_us": idle["p50_us"],
        "book_idle_p99_us": idle["p99_us"],
        "book_requote_p50_us": requoted["p50_us"],
        "book_requote_p99_us": requoted["p99_us"],
        "requote_share": round(len(requote_ns) / max(1, len(book_ns)), 4),
        "all_events_mean_us": round(all_ns / events / 1000.0, 3),
        "fills": engine.stats.fills,
    }


def bench_runner(seconds: float) -> dict[str, float]:
    settings = load_settings(overrides={"metrics": {"enabled": False}})

    class Probe:
        def __init__(self) -> None:
            self.samples: list[int] = []

        def on_event(self, event: object, now_ns: int) -> None: ...
        def on_command(self, command: object, now_ns: int) -> None: ...
        def on_batch(self, engine: object, now_ns: int, tick_to_quote_us: float) -> None:
            self.samples.append(int(tick_to_quote_us * 1000))

        def close(self) -> None: ...

    async def go() -> tuple[list[int], int, float]:
        exchange = MockExchange(settings.mock, seed=7, start_ns=0)
        venue = InProcessMockVenue(exchange, speed=20.0, start_ns=0)
        spot = exchange.instruments[settings.market.spot_symbol]
        engine = build_engine(settings, spot, exchange.instruments.get(settings.market.perp_symbol), 0)
        probe = Probe()
        runner = Runner(engine, venue, clock_ns=venue.clock_ns, observers=(probe,))
        t0 = time.perf_counter()
        await runner.run(duration_s=seconds, install_signals=False)
        return probe.samples, runner.stats.events, time.perf_counter() - t0

    import structlog

    structlog.configure(logger_factory=structlog.ReturnLoggerFactory())  # keep the bench's stdout clean
    samples, events, wall = asyncio.run(go())
    return _stats(samples, wall, events)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=600.0, help="simulated seconds for the engine bench")
    parser.add_argument("--runner-seconds", type=float, default=10.0, help="wall seconds for the runner bench")
    parser.add_argument("--gc", choices=["on", "freeze"], default="on", help="engine bench: gc.freeze() after set-up")
    parser.add_argument(
        "--timer-ms", type=int, default=None, help="engine bench: Timer period (default runtime.timer_ms; 0 = none)"
    )
    parser.add_argument(
        "--markets-seconds", type=float, default=120.0, help="simulated seconds of the 1- and 4-market bench"
    )
    parser.add_argument(
        "--markets-rounds", type=int, default=2, help="1- and 4-market runs, interleaved (1, 4, 1, 4, ...)"
    )
    args = parser.parse_args()
    engine = bench_engine(args.seconds, args.gc, args.timer_ms)
    # interleaved, so a change in the machine's load hits both sizes alike; `markets` keeps the last
    # round of each (as before), `markets_rounds` every round
    rounds: dict[str, list[dict[str, object]]] = {"1": [], "4": []}
    for _ in range(max(1, args.markets_rounds)):
        for n in (1, 4):
            rounds[str(n)].append(bench_markets(args.markets_seconds, n))
    markets = {n: runs[-1] for n, runs in rounds.items()}
    result = {
        "engine": engine,
        "runner": bench_runner(args.runner_seconds),
        "markets": markets,
        "markets_rounds": rounds,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
