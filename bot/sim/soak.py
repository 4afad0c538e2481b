"""`mmbot soak`: the bot against the in-process mock exchange, every fault firing, invariants checked.

The engine comes from `bot.app.build_engine` (the same one `mmbot run` builds) and runs on the
synchronous simulation driver (`bot.sim.driver.run_simulation`) at simulated time, so hours of
market take seconds. The mock exchange injects every fault it can (`bot.sim.soak_setup.CHAOS`,
seeded); `bot.sim.soak_checks.SoakChecker` checks the invariants after every step. After the
driver's shutdown the exchange is run on until every fill it executed has been delivered (bounded),
then the end-of-run invariants are checked.

Output: a progress bar on stderr when it is a TTY; `--json` prints one JSON object as the last line
of stdout. Exit code 1 when any invariant was violated, 2 on a bad config or `--faults`.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import resource
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TextIO

import orjson

from bot.app import build_engine
from bot.config import ConfigError, Settings, load_settings
from bot.core.engine import Engine
from bot.domain import Command, Event
from bot.output import write_json
from bot.sim.driver import deliver_until, run_simulation
from bot.sim.soak_checks import SoakChecker
from bot.sim.soak_setup import FaultSpecError, RecordingMockExchange, fault_config, limits, parse_faults

NS_PER_S = 1_000_000_000
RSS_SAMPLE_NS = 60 * NS_PER_S  # simulated time between memory samples
SETTLE_NS = 60 * NS_PER_S  # after shutdown: how long the exchange may take to deliver the last fills
DEFAULT_RSS_LIMIT_MB = 64.0

Progress = Callable[[float], None]
"""Called with the fraction of simulated time done (0..1)."""


def rss_mb() -> float:
    """Resident set size now (Linux /proc), else the peak RSS the OS reports."""
    try:
        with open("/proc/self/statm", "rb") as fh:
            pages = int(fh.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak / 2**20 if sys.platform == "darwin" else peak / 1024


@dataclass
class SoakRun:
    """Everything one soak produced; `report()` is the JSON the CLI prints."""

    hours: float
    seed: int
    faults_on: tuple[str, ...]
    checker: SoakChecker
    engine: Engine
    fault_counts: dict[str, int]
    events: int
    commands: int
    wall_s: float
    rss_growth_mb: float | None
    settle_s: float

    def report(self) -> dict[str, Any]:
        summary = self.engine.summary(0)
        return {
            "hours_simulated": self.hours,
            "events": self.events,
            "commands": self.commands,
            "faults": self.fault_counts,
            "violations": [v.to_dict() for v in self.checker.violations],
            "violation_counts": dict(sorted(self.checker.counts.items())),
            "rss_growth_mb": None if self.rss_growth_mb is None else round(self.rss_growth_mb, 2),
            "checks": dict(sorted(self.checker.checks.items())),
            "seed": self.seed,
            "faults_on": list(self.faults_on),
            "wall_s": round(self.wall_s, 2),
            "settle_s": round(self.settle_s, 3),
            "bot": {
                key: summary[key]
                for key in (
                    "fills",
                    "hedge_fills",
                    "quotes",
                    "rejects",
                    "resyncs",
                    "stale_episodes",
                    "duplicate_fills_dropped",
                    "position_mismatches",
                    "max_abs_inventory",
                    "net_delta",
                    "net_delta_in_band_pct",
                    "pnl",
                )
            },
            "worst_s": {name: ns / NS_PER_S for name, ns in self.checker.worst_ns.items()},
            "limits_s": {
                "stale_feed": self.checker.limits.stale_feed_ns / NS_PER_S,
                "cancel_bound": self.checker.limits.cancel_bound_ns / NS_PER_S,
                "hedge_bound": self.checker.limits.hedge_bound_ns / NS_PER_S,
            },
            "python": sys.version.split()[0],
            "machine": f"{platform.machine()} {platform.processor() or platform.platform()}".strip(),
        }


def run_soak(
    settings: Settings,
    *,
    hours: float,
    faults: tuple[str, ...],
    seed: int,
    rss_limit_mb: float = DEFAULT_RSS_LIMIT_MB,
    progress: Progress | None = None,
) -> SoakRun:
    started = time.perf_counter()
    mock_cfg = settings.mock.model_copy(update={"faults": fault_config(settings.mock.faults, faults), "seed": seed})
    start_ns = 0
    duration_ns = int(hours * 3600 * NS_PER_S)
    exchange = RecordingMockExchange(mock_cfg, start_ns=start_ns)
    spot = exchange.instruments[settings.market.spot_symbol]
    perp = exchange.instruments.get(settings.market.perp_symbol)
    engine = build_engine(settings, spot, perp, start_ns, venue_name="mock")
    perp_lot = perp.lot_size if perp is not None else spot.lot_size
    checker = SoakChecker(
        exchange, engine, spot.symbol, limits(settings, start_ns, duration_ns, perp_lot, rss_limit_mb)
    )

    next_sample = start_ns
    next_progress = start_ns
    progress_step_ns = max(duration_ns // 200, 1)

    def on_step(now_ns: int, events: list[Event], commands: list[Command]) -> None:
        nonlocal next_sample, next_progress
        checker.on_step(now_ns, events, commands)
        if now_ns >= next_sample:
            checker.on_rss(now_ns, rss_mb())
            next_sample = now_ns + RSS_SAMPLE_NS
        if progress is not None and now_ns >= next_progress:
            progress(min(1.0, (now_ns - start_ns) / duration_ns))
            next_progress = now_ns + progress_step_ns

    result = run_simulation(
        exchange,
        engine,
        start_ns=start_ns,
        duration_ns=duration_ns,
        timer_ns=settings.runtime.timer_ms * 1_000_000,
        cancel_timeout_ns=settings.runtime.cancel_timeout_ms * 1_000_000,
        on_step=on_step,
        on_note=checker.on_note,
    )
    end_ns, extra_events = settle(exchange, engine, checker, result.end_ns)
    final_rss = rss_mb()
    checker.finish(end_ns, final_rss)
    if progress is not None:
        progress(1.0)
    return SoakRun(
        hours=hours,
        seed=seed,
        faults_on=faults,
        checker=checker,
        engine=engine,
        fault_counts={name: exchange.faults.counts[name] for name in sorted(exchange.faults.counts)},
        events=result.events + extra_events,
        commands=result.commands,
        wall_s=time.perf_counter() - started,
        rss_growth_mb=checker.rss_growth_mb(final_rss),
        settle_s=(end_ns - result.end_ns) / NS_PER_S,
    )


def settle(exchange: RecordingMockExchange, engine: Engine, checker: SoakChecker, now_ns: int) -> tuple[int, int]:
    """After shutdown, keep delivering until no executed fill is in flight (at most SETTLE_NS).

    The engine is stopping, so it places nothing; what it answers (e.g. a snapshot request) is sent."""
    events_seen = 0

    def step(now: int, events: list[Event], commands: list[Command]) -> None:
        nonlocal events_seen
        for command in commands:
            exchange.submit(command, now)
        for name, fields in engine.drain_notes():
            checker.on_note(name, fields)
        checker.on_step(now, events, commands)
        events_seen += len(events)

    def done() -> bool:
        return checker.fills_in_flight() == 0

    end_ns = deliver_until(exchange, engine, now_ns, now_ns + SETTLE_NS, done, step)
    return end_ns, events_seen


# ---------------------------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------------------------


class ProgressBar:
    """A one-line bar on a TTY stream, redrawn in place; silent on anything else."""

    def __init__(self, stream: TextIO, hours: float, width: int = 30) -> None:
        self.stream = stream
        self.hours = hours
        self.width = width
        self.started = time.perf_counter()

    def __call__(self, done: float) -> None:
        filled = int(done * self.width)
        bar = "#" * filled + "." * (self.width - filled)
        wall = time.perf_counter() - self.started
        self.stream.write(f"\rsoak [{bar}] {done * 100:5.1f}%  {done * self.hours:.2f}/{self.hours:g} h  {wall:.0f} s")
        if done >= 1.0:
            self.stream.write("\n")
        self.stream.flush()


def _text_report(report: dict[str, Any]) -> str:
    lines = [
        f"soak: {report['hours_simulated']:g} simulated h in {report['wall_s']} s wall, seed {report['seed']}, "
        f"{report['events']} events",
        "faults fired: " + ", ".join(f"{k}={v}" for k, v in report["faults"].items()),
        "checks: " + ", ".join(f"{k}={v}" for k, v in report["checks"].items()),
        f"rss growth after warm-up: {report['rss_growth_mb']} MB",
        f"violations: {sum(report['violation_counts'].values())}",
    ]
    lines.extend(
        f"  t={v['t_s']}s {v['invariant']}: {orjson.dumps(v['details']).decode()}" for v in report["violations"]
    )
    return "\n".join(lines)


def cmd_soak(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)  # ConfigError -> exit 2 in the CLI
    try:
        faults = parse_faults(args.faults)
    except FaultSpecError as exc:
        raise ConfigError(str(exc)) from None
    if not (math.isfinite(args.hours) and args.hours > 0):
        raise ConfigError(f"--hours must be a finite number > 0, got {args.hours!r}")
    progress = ProgressBar(sys.stderr, args.hours) if sys.stderr.isatty() else None
    run = run_soak(settings, hours=args.hours, faults=faults, seed=args.seed, progress=progress)
    report = run.report()
    if args.json:
        write_json(args, report)
    else:
        sys.stdout.write(_text_report(report) + "\n")
    return 1 if run.checker.counts else 0
