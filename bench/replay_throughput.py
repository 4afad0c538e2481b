"""Replay throughput: recorded Binance messages per second (every line of the files counts once).

Figures, each the best of `--repeat` runs, wall clock and per CPU second of this process (the machine
may be shared: the CPU figure is the steadier one):

1. parse + sync, the way the bot reads a recording (bookTicker lines are recognised by their stream
   name and skipped undecoded: the bot has no use for them), and (2) the same with every line
   JSON-decoded, tickers included;
3. the full bot exactly as `mmbot replay --speed max` runs it (`run_session`: parse + sync, the
   simulated venues, the engine, its JSON log lines rendered to /dev/null), as the bot reads, and
   (4) with every line decoded;
5. with `--cache`: (a) the source from the event cache (`bot.venues.event_cache`: the files' parsed,
   synced events as numpy columns, written once before timing) and (b) the full bot reading it
   (`mmbot replay --cache DIR`), with `cache_bytes` (the cache files' size);
6. with `--stages`: where the full bot's CPU time goes, by adding one stage at a time: the source
   (read, gunzip, decode, convert, sync, merge), + the replay loop and simulated venues (with a strategy
   that sends nothing), + the engine (its notes dropped), + logging the notes.

    .venv/bin/python bench/replay_throughput.py [FILES...] [--repeat N] [--no-engine] [--stages] [--cache]

Default files: the bundled BTCUSDT spot + USD-M pair (tests/data/binance/). The instruments are inferred
once, before timing (`infer_s`), as `mmbot replay` does before it starts. Prints JSON lines; the last one
is one object with every figure (`messages`, `seconds`, `messages_per_s`, `peak_rss_mb`,
`speedup_vs_realtime`, ...), where `seconds` / `messages_per_s` are the full bot's, as the bot reads.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import resource
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from bot.app import build_engine
from bot.config import Settings, load_settings
from bot.logs import configure_logging, get_logger
from bot.replay_cli import EngineDriver, ReplayPlan, for_instruments, plan_replay, run_session
from bot.venues.binance import NATIVE_DECODER
from bot.venues.event_cache import CachedSource
from bot.venues.replay import ReplaySource, make_executions, run_replay

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_FILES = [
    ROOT / "tests/data/binance/spot_btcusdt_20240808.gz",
    ROOT / "tests/data/binance/usdm_btcusdt_20240808.gz",
]
TARGET_MSGS_PER_S = 150_000


def timed(run: Callable[[], Any], repeat: int) -> tuple[float, float, Any]:
    """Best wall seconds, the best CPU seconds, and the result of the last run, over `repeat` runs."""
    best_wall = best_cpu = float("inf")
    result = None
    for _ in range(max(1, repeat)):
        wall0, cpu0 = time.perf_counter(), time.process_time()
        result = run()
        best_wall = min(best_wall, time.perf_counter() - wall0)
        best_cpu = min(best_cpu, time.process_time() - cpu0)
    return best_wall, best_cpu, result


def parse_and_sync(plan: ReplayPlan, tickers: bool) -> tuple[int, int]:
    """Iterate the merged, synced stream; (lines read, items out)."""
    source = ReplaySource(plan.paths, plan.file_instruments, tickers=tickers)
    events = sum(1 for _ in source)
    return source.lines_read, events


class _DropNotes:
    """A logger that drops everything: the engine's cost without the log's."""

    def info(self, *_: Any, **__: Any) -> None:
        return None


def stage_runs(plan: ReplayPlan, settings: Settings) -> dict[str, Callable[[], Any]]:
    """One run per stage, each adding one stage to the previous (see the module docstring)."""
    timer_ns = settings.runtime.timer_ms * 1_000_000

    def source() -> None:
        for _ in ReplaySource(plan.paths, plan.file_instruments):
            pass

    def venues() -> None:
        stream = ReplaySource(plan.paths, plan.file_instruments)
        run_replay(stream, make_executions(stream.instruments, settings.replay), lambda *_: (), timer_ns)

    def engine(log: Any) -> Callable[[], None]:
        def run() -> None:
            stream = ReplaySource(plan.paths, plan.file_instruments)
            executions = make_executions(stream.instruments, settings.replay)
            events = iter(stream)
            first = next(events)
            bot = build_engine(settings, plan.spot, plan.perp, first[0], venue_name="replay")
            run_replay(itertools.chain([first], events), executions, EngineDriver(bot, log), timer_ns)

        return run

    return {
        "source": source,
        "venues_and_loop": venues,
        "engine": engine(_DropNotes()),
        "logs": engine(get_logger("mmbot.replay").bind()),
    }


def cache_figures(plan: ReplayPlan, settings: Settings, messages: int, repeat: int) -> dict[str, Any]:
    """The source and the full bot from the event cache (written once first, in a temporary dir)."""
    with tempfile.TemporaryDirectory() as tmp:
        cache_dir = Path(tmp)
        wall0 = time.perf_counter()
        for _ in CachedSource(plan.paths, plan.file_instruments, cache_dir):  # the miss: parse and write
            pass
        write_s = time.perf_counter() - wall0

        def source() -> None:
            for _ in CachedSource(plan.paths, plan.file_instruments, cache_dir):
                pass

        src_s, src_cpu_s, _ = timed(source, repeat)
        bot_s, bot_cpu_s, summary = timed(lambda: run_session(settings, plan, None, cache_dir=cache_dir), repeat)
        assert all(f["hit"] for f in summary["event_cache"]["files"])
        return {
            "cache_write_s": round(write_s, 4),
            "cache_bytes": sum(f.stat().st_size for f in cache_dir.iterdir()),
            **rates("cache_source_", messages, src_s, src_cpu_s),
            "cache_seconds": round(bot_s, 4),
            **rates("cache_engine_", messages, bot_s, bot_cpu_s),
            "cache_fills": summary["fills"],
        }


def machine() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "nproc": os.cpu_count(),
        "python": platform.python_version(),
        "load_avg_1m": round(os.getloadavg()[0], 2),
    }


def rates(prefix: str, messages: int, wall_s: float, cpu_s: float) -> dict[str, Any]:
    return {f"{prefix}msgs_per_s": round(messages / wall_s), f"{prefix}msgs_per_cpu_s": round(messages / cpu_s)}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("files", nargs="*", type=Path, default=DEFAULT_FILES)
    parser.add_argument("--repeat", type=int, default=3, help="report the best of N runs of each figure")
    parser.add_argument("--no-engine", action="store_true", help="skip the full-bot figures")
    parser.add_argument("--stages", action="store_true", help="also: the full bot's CPU time stage by stage")
    parser.add_argument("--cache", action="store_true", help="also: the source and the full bot from the event cache")
    args = parser.parse_args(argv)
    load_1m = os.getloadavg()[0]

    t0 = time.perf_counter()
    plan = plan_replay(args.files)
    infer_s = time.perf_counter() - t0

    sync_s, sync_cpu_s, (messages, events) = timed(lambda: parse_and_sync(plan, False), args.repeat)
    all_s, all_cpu_s, (_, decoded_events) = timed(lambda: parse_and_sync(plan, True), args.repeat)
    out: dict[str, Any] = {
        "messages": messages,
        **rates("", messages, sync_s, sync_cpu_s),
        "sync_seconds": round(sync_s, 4),
        "sync_events": events,
        **rates("decoded_", messages, all_s, all_cpu_s),
        "decoded_events": decoded_events,
        "infer_s": round(infer_s, 3),
        "target_msgs_per_s": TARGET_MSGS_PER_S,
    }
    print(json.dumps({"figure": "parse+sync", **out}))

    if not args.no_engine:
        settings = for_instruments(load_settings(None), plan.spot, plan.perp)
        with open(os.devnull, "w") as null:
            # the bot's logging cost, not the terminal's; in blocks, as `mmbot replay` writes them
            configure_logging("json", "INFO", stream=null, flush_each_line=False)
            bot_s, bot_cpu_s, summary = timed(lambda: run_session(settings, plan, None), args.repeat)
            dec_s, dec_cpu_s, _ = timed(lambda: run_session(settings, plan, None, decode_tickers=True), args.repeat)
            out.update(
                seconds=round(bot_s, 4),
                messages_per_s=round(messages / bot_s),
                **rates("engine_", messages, bot_s, bot_cpu_s),
                **rates("engine_decoded_", messages, dec_s, dec_cpu_s),
                engine_events=summary["events"],
                speedup_vs_realtime=round(summary["duration_s"] / bot_s, 1),
                fills=summary["fills"],
                hedges=summary["hedges"],
                meets_target=messages / bot_s >= TARGET_MSGS_PER_S,  # wall clock: needs an idle core
                meets_target_cpu=messages / bot_cpu_s >= TARGET_MSGS_PER_S,  # per CPU second of this process
            )
            if args.cache:
                out.update(cache_figures(plan, settings, messages, args.repeat))
                print(json.dumps({"figure": "from the event cache", **{k: v for k, v in out.items() if "cache" in k}}))
            if args.stages:
                cumulative = {name: timed(run, args.repeat)[1] for name, run in stage_runs(plan, settings).items()}
                previous = 0.0
                stages = {}
                for name, cpu_s in cumulative.items():
                    stages[name] = round(cpu_s - previous, 3)
                    previous = cpu_s
                out["stage_cpu_s"] = stages
                print(json.dumps({"figure": "stages (CPU s added by each)", **stages}))
    out["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    out["native_decoder"] = NATIVE_DECODER  # False: bot/_native.c was not built (no C compiler)
    out["machine"] = {**machine(), "load_avg_1m_at_start": round(load_1m, 2)}
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
