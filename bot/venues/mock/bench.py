"""Benchmark: how fast the synchronous mock exchange runs an hour of simulated market.

    python -m bot.venues.mock.bench [--hours 1] [--seed 1]

Prints one JSON object. Default market (book deltas every 100 ms, two symbols, taker flow, a
resting quote pair requoted every second), advanced in 100 ms steps as the dry run and the soak do.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time

import orjson

from bot.config import MockExchangeConfig
from bot.domain import CancelAll, PlaceOrder, Side
from bot.venues.mock.exchange import MockExchange

NS_PER_S = 1_000_000_000
STEP_NS = 100_000_000


def run(hours: float, seed: int) -> dict[str, object]:
    ex = MockExchange(MockExchangeConfig(), seed=seed)
    symbol = "TOKEN/USDT"
    end_ns = int(hours * 3600 * NS_PER_S)
    events = 0
    t = 0
    started = time.perf_counter()
    while t < end_ns:
        t += STEP_NS
        events += len(ex.advance(t))
        if t % NS_PER_S == 0:  # a quote pair, requoted every second
            mid = round(ex.fair_value_px(symbol) * 100)
            ex.submit(CancelAll(symbol), t)
            ex.submit(PlaceOrder(symbol, f"b{t}", Side.BUY, mid - 3, 100), t)
            ex.submit(PlaceOrder(symbol, f"a{t}", Side.SELL, mid + 3, 100), t)
    wall_s = time.perf_counter() - started
    return {
        "bench": "mock_exchange",
        "simulated_s": hours * 3600,
        "wall_s": round(wall_s, 3),
        "speedup": round(hours * 3600 / wall_s, 1),
        "events": events,
        "python": sys.version.split()[0],
        "machine": platform.machine(),
        "processor": platform.processor() or platform.platform(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--hours", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    print(orjson.dumps(run(args.hours, args.seed)).decode())


if __name__ == "__main__":
    main()
