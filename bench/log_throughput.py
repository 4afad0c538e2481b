"""Log throughput: CPU microseconds per JSON log line through the bot's structlog pipeline.

The lines are the engine's notes in the proportions a replay of the bundled BTCUSDT day logs them
(quote.updated 45 %, order.placed 25 %, order.canceled 25 %, order.filled 5 %), with `run_id`, `venue`
and `symbol` bound as the bot binds them. Each figure is the best of `--repeat` runs, in CPU time of
this process (the machine may be shared), divided by the lines written:

- `bound_us`: a logger bound once (`get_logger(...).bind()`, as `run_session` does), to /dev/null;
- `stdout_us`: the same through the default stream (the *current* `sys.stdout`, here /dev/null), as
  `mmbot run` and `mmbot replay` write;
- `proxy_us`: the lazy proxy `get_logger()` returns, used as is (as the runner and the venues do);
- `secrets_us`: bound, with two secret values registered (every string is scrubbed);
- `stdlib_us`: a stdlib `logging` warning (the ccxt/websockets path);
- `filtered_us`: a `debug` line at level INFO (dropped).

    .venv/bin/python bench/log_throughput.py [--lines N] [--repeat N]

Prints one JSON line per figure, then one object with all of them.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from bot.logs import bind_context, clear_context, configure_logging, get_logger

_QUOTE = {
    "symbol": "BTC/USDT",
    "bid": 61831.450000000004,
    "ask": 61843.82,
    "mid": 61837.635,
    "reservation_price": 61837.635,
    "spread": 12.370000000000001,
    "inventory": 0.0,
    "sigma": 0.02,
    "k": 60.0,
    "a": 1.0,
    "risk_state": "normal",
    "reasons": [],
    "trigger": "book",
}
_PLACED = {"symbol": "BTC/USDT", "client_id": "q-1", "side": "buy", "price": 61831.45, "size": 1.0, "post_only": True}
_CANCELED = {"symbol": "BTC/USDT", "client_id": "q-1", "reason": "requested"}
_FILLED = {
    "symbol": "BTC/USDT",
    "client_id": "q-1",
    "side": "buy",
    "price": 61831.45,
    "size": 9e-05,
    "fee": 0.0055648305,
    "liquidity": "maker",
    "inventory": 9e-05,
    "latency_ms": 180.155,
    "tag": "quote",
}
# 20 notes in the replay's proportions: 9 quotes, 5 placed, 5 canceled, 1 fill.
NOTES: list[tuple[str, dict[str, Any]]] = (
    [("quote.updated", _QUOTE)] * 9
    + [("order.placed", _PLACED)] * 5
    + [("order.canceled", _CANCELED)] * 5
    + [("order.filled", _FILLED)]
)


def _notes(lines: int) -> Iterator[tuple[str, dict[str, Any]]]:
    for i in range(lines):
        yield NOTES[i % len(NOTES)]


def cpu_us_per_line(run: Callable[[], None], lines: int, repeat: int) -> float:
    """Best CPU seconds of `repeat` runs, per line, in microseconds."""
    best = float("inf")
    for _ in range(max(1, repeat)):
        cpu0 = time.process_time()
        run()
        best = min(best, time.process_time() - cpu0)
    return round(best / lines * 1e6, 3)


@contextlib.contextmanager
def stdout_to_devnull() -> Iterator[None]:
    """`sys.stdout` is /dev/null meanwhile (the figures' own output goes to the real stdout after)."""
    saved = sys.stdout
    with open(os.devnull, "w") as null:
        sys.stdout = null
        try:
            yield
        finally:
            sys.stdout = saved


def figures(lines: int, repeat: int) -> Iterator[tuple[str, float]]:
    def notes_to(log: Any) -> Callable[[], None]:
        def run() -> None:
            for name, fields in _notes(lines):
                log.info(name, **fields)  # looked up per line, as the call sites do (a proxy rebuilds here)

        return run

    def stdlib() -> None:
        warn = logging.getLogger("ccxt").warning
        for _ in range(lines):
            warn("retrying fetch_balance after %s", "a timeout")

    def filtered() -> None:
        debug = get_logger("mmbot.replay").bind().debug
        for name, fields in _notes(lines):
            debug(name, **fields)

    with open(os.devnull, "w") as null:
        configure_logging("json", "INFO", stream=null)
        yield "bound_us", cpu_us_per_line(notes_to(get_logger("mmbot.replay").bind()), lines, repeat)
        with stdout_to_devnull():
            configure_logging("json", "INFO")
            stdout_us = cpu_us_per_line(notes_to(get_logger("mmbot.replay").bind()), lines, repeat)
        yield "stdout_us", stdout_us
        configure_logging("json", "INFO", stream=null)
        yield "proxy_us", cpu_us_per_line(notes_to(get_logger("mmbot.runner")), lines, repeat)
        configure_logging("json", "INFO", secrets=["hunter2", "s3cr3t-api-key"], stream=null)
        yield "secrets_us", cpu_us_per_line(notes_to(get_logger("mmbot.replay").bind()), lines, repeat)
        configure_logging("json", "INFO", stream=null)
        yield "stdlib_us", cpu_us_per_line(stdlib, lines, repeat)
        yield "filtered_us", cpu_us_per_line(filtered, lines, repeat)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, default=20_000, help="log lines per run")
    parser.add_argument("--repeat", type=int, default=5, help="report the best of N runs of each figure")
    args = parser.parse_args(argv)
    bind_context(run_id="0123456789abcdef", venue="replay", symbol="BTC/USDT")
    out: dict[str, Any] = {"lines": args.lines, "repeat": args.repeat}
    for name, us in figures(args.lines, args.repeat):
        print(json.dumps({"figure": name, "cpu_us_per_line": us}), flush=True)
        out[name] = us
    clear_context()
    out["lines_per_cpu_s"] = round(1e6 / out["bound_us"])
    out["load_avg_1m"] = round(os.getloadavg()[0], 2)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
