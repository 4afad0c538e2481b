"""Tick-to-quote latency: microseconds from a book event in to commands out.

engine: the pure engine alone, fed the mock exchange's event stream on simulated time (each event
timed around `apply` + `requote`). runner: the same through the async runner with the paced
in-process mock (each batch timed from dequeue to commands handed to the venue).
Last line of stdout: {"engine": {"p50_us", "p99_us", "p999_us", "events_per_s"}, "runner": {...}}.
Usage: python bench/tick_to_quote.py [--seconds 600] [--runner-seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

import numpy as np

from bot.app import build_engine
from bot.config import load_settings
from bot.domain import BookDelta, BookSnapshot
from bot.runtime.runner import Runner
from bot.venues.mock.exchange import MockExchange
from bot.venues.mock_inprocess import InProcessMockVenue


def _stats(samples_ns: list[int], wall_s: float, events: int) -> dict[str, float]:
    arr = np.asarray(samples_ns, dtype=np.float64) / 1000.0
    return {
        "p50_us": round(float(np.percentile(arr, 50)), 2),
        "p99_us": round(float(np.percentile(arr, 99)), 2),
        "p999_us": round(float(np.percentile(arr, 99.9)), 2),
        "events_per_s": round(events / wall_s, 1),
        "samples": len(samples_ns),
    }


def bench_engine(seconds: float) -> dict[str, float]:
    settings = load_settings()
    exchange = MockExchange(settings.mock, seed=7, start_ns=0)
    spot = exchange.instruments[settings.market.spot_symbol]
    engine = build_engine(settings, spot, exchange.instruments.get(settings.market.perp_symbol), 0)
    end = int(seconds * 1e9)
    now = 0
    samples: list[int] = []
    events = 0
    engine_ns = 0
    while now < end:
        pending = exchange.next_event_ns()
        now = end if pending is None else max(pending, now)
        for event in exchange.advance(now):
            t0 = time.perf_counter_ns()
            commands = engine.apply(event, now)
            commands += engine.requote(now)
            dt = time.perf_counter_ns() - t0
            engine_ns += dt
            events += 1
            if isinstance(event, BookDelta | BookSnapshot):
                samples.append(dt)
            for command in commands:
                exchange.submit(command, now)
        engine.drain_notes()
    return _stats(samples, engine_ns / 1e9, events)


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
    args = parser.parse_args()
    result = {"engine": bench_engine(args.seconds), "runner": bench_runner(args.runner_seconds)}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
