"""`mmbot soak`: the bot against the in-process mock exchanges, every fault firing, invariants checked.

The engine comes from `bot.app.build_engine` (the same one `mmbot run` builds) and runs on the
synchronous simulation driver (`bot.sim.driver.run_simulation`) at simulated time, so hours of
market take seconds. The config's shape is soaked: a multi-venue config (the embedded default)
on every venue of its session, each spot venue and the perp venue a mock exchange on one fair value
(`bot.sim.soak_exchanges`), a single-venue config on one. Every exchange injects every fault it can
(`bot.sim.soak_setup.CHAOS`, seeded per venue); `bot.sim.soak_checks.SoakChecker` checks the
invariants after every step, venue by venue. After the
driver's shutdown the exchange is run on until every fill it executed has been delivered (bounded),
then the end-of-run invariants are checked. With `restarts`, the bot is stopped and started again
that many times against the exchanges that keep running, every run on one SQLite ledger, and the
ledger is checked against each exchange after each restart (`bot.sim.soak_restarts`).

Output: a progress bar on stderr when it is a TTY; `--json` prints one JSON object as the last line
of stdout. Exit code 1 when any invariant was violated, 2 on a bad config or `--faults`.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import random
import resource
import sys
import tempfile
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
from bot.runtime.ledger import Ledger
from bot.sim.driver import deliver_until, run_simulation
from bot.sim.soak_checks import SoakChecker
from bot.sim.soak_exchanges import SoakExchanges, build_exchanges
from bot.sim.soak_restarts import SESSION, VENUE, RestartLog, SoakVenue, idle_gap_ns, ledger_matches_exchange, restart
from bot.sim.soak_setup import FaultSpecError, fault_config, limits, parse_faults

NS_PER_S = 1_000_000_000
RSS_SAMPLE_NS = 60 * NS_PER_S  # simulated time between memory samples
SETTLE_NS = 60 * NS_PER_S  # after shutdown: how long the exchange may take to deliver the last fills
DEFAULT_RSS_LIMIT_MB = 64.0
FILL_HISTORY = 20_000
"""The exchanges' fill history with restarts (in all: split over the venues of a multi-venue soak).
Recovery asks for the fills since the ledger's newest one (minus a minute): an idle gap's worth, a
few hundred here. At 200,000 (a day of fills, ~400 bytes each) the exchange's own memory grew the
soak's RSS by 110 MB over 24 h, counted against the bot's memory check."""
CRASH_WAIT_NS = 120 * NS_PER_S  # longest a crash waits for the bot to have an order resting

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
    fault_counts_by_venue: dict[str, dict[str, int]]
    events: int
    commands: int
    wall_s: float
    rss_growth_mb: float | None
    rss_profile_mb: dict[str, float]  # RSS at the first sample past each quarter of simulated time, and at the end
    settle_s: float
    restarts: RestartLog
    earlier_summaries: list[dict[str, Any]]  # the engine summaries of the runs before the last

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
            "rss_profile_mb": {key: round(mb, 1) for key, mb in self.rss_profile_mb.items()},
            "checks": dict(sorted(self.checker.checks.items())),
            "checks_by_venue": {v: dict(sorted(c.items())) for v, c in sorted(self.checker.checks_by_venue.items())},
            "venues": list(self.fault_counts_by_venue) if len(self.fault_counts_by_venue) > 1 else [],
            "faults_by_venue": self.fault_counts_by_venue if len(self.fault_counts_by_venue) > 1 else {},
            "seed": self.seed,
            "faults_on": list(self.faults_on),
            "wall_s": round(self.wall_s, 2),
            "settle_s": round(self.settle_s, 3),
            "restarts": self.restarts.report(),
            "bot": bot_totals([*self.earlier_summaries, summary]),
            "bot_by_venue": venue_totals([*self.earlier_summaries, summary]),
            "worst_s": {name: ns / NS_PER_S for name, ns in self.checker.worst_ns.items()},
            "limits_s": {
                "stale_feed": self.checker.limits.stale_feed_ns / NS_PER_S,
                "cancel_bound": self.checker.limits.cancel_bound_ns / NS_PER_S,
                "hedge_bound": self.checker.limits.hedge_bound_ns / NS_PER_S,
            },
            "python": sys.version.split()[0],
            "machine": f"{platform.machine()} {platform.processor() or platform.platform()}".strip(),
        }


_SUMMED = ("fills", "hedge_fills", "quotes", "rejects", "resyncs", "stale_episodes", "duplicate_fills_dropped",
           "position_mismatches")  # fmt: skip


def bot_totals(summaries: list[dict[str, Any]]) -> dict[str, Any]:
    """The bot's figures over every run: counts summed, the largest inventory; net delta, time in
    band and PnL are the last run's (a run's PnL starts from the positions it adopted)."""
    last = summaries[-1]
    totals: dict[str, Any] = {key: sum(s[key] for s in summaries) for key in _SUMMED}
    totals["max_abs_inventory"] = max(s["max_abs_inventory"] for s in summaries)
    totals.update({key: last[key] for key in ("net_delta", "net_delta_in_band_pct", "pnl")})
    return totals


def venue_totals(summaries: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per venue of a multi-venue soak ({} otherwise): fills and volume over every run; inventory and
    obligation compliance of the last run (`session.summary.venues`)."""
    out: dict[str, dict[str, Any]] = {}
    for summary in summaries:
        for venue, entry in summary.get("venues", {}).items():
            totals = out.setdefault(venue, {})
            if entry.get("role") == "spot":
                totals["fills"] = totals.get("fills", 0) + entry["fills"]
                totals["volume_quote"] = round(totals.get("volume_quote", 0.0) + entry["volume_quote"], 6)
            if "hedge" in entry:
                totals["hedge_fills"] = totals.get("hedge_fills", 0) + entry["hedge"]["fills"]
    for venue, entry in summaries[-1].get("venues", {}).items() if summaries else ():
        if "inventory" in entry:
            out[venue]["inventory"] = entry["inventory"]
        obligations = entry.get("obligations")
        if obligations:
            out[venue]["obligations_all_pct"] = obligations.get("all_pct")
    return out


def soak_engine(settings: Settings, exchanges: SoakExchanges, start_ns: int, client_id_tag: str) -> Engine:
    """The engine `mmbot run` builds for this config, on the soak's exchanges."""
    main = exchanges.spots[exchanges.spot_venues[0]]
    spot_venues = exchanges.spots if exchanges.multi else None
    return build_engine(
        settings, main, exchanges.perp, start_ns, venue_name=VENUE, client_id_tag=client_id_tag,
        spot_venues=spot_venues,
    )  # fmt: skip


def run_soak(
    settings: Settings,
    *,
    hours: float,
    faults: tuple[str, ...],
    seed: int,
    restarts: int = 0,
    rss_limit_mb: float = DEFAULT_RSS_LIMIT_MB,
    progress: Progress | None = None,
) -> SoakRun:
    """The soak; with `restarts` > 0 the bot runs `restarts + 1` times on one ledger (see the module doc)."""
    started = time.perf_counter()
    mock_cfg = settings.mock.model_copy(update={"faults": fault_config(settings.mock.faults, faults), "seed": seed})
    start_ns = 0
    duration_ns = int(hours * 3600 * NS_PER_S)
    exchange = build_exchanges(settings, mock_cfg, start_ns, FILL_HISTORY if restarts else 1)
    spot = exchange.spots[exchange.spot_venues[0]]
    perp_lot = exchange.perp.lot_size if exchange.perp is not None else spot.lot_size
    # The checker holds the running engine and `_soak_runs` takes it from there: no local here may
    # keep the first engine alive through every later run (it did: one whole engine, its windows
    # full, counted by the memory check as growth after the first restart).
    checker = SoakChecker(
        exchange,
        soak_engine(settings, exchange, start_ns, "r0"),
        spot.symbol,
        limits(settings, start_ns, duration_ns, perp_lot, rss_limit_mb),
        spot_venues=exchange.spot_venues,
        hedge_venue=exchange.hedge_venue,
    )
    with tempfile.TemporaryDirectory(prefix="mmbot-soak-") as tmp:
        ledger = Ledger(os.path.join(tmp, "ledger.sqlite"), settings.ledger) if restarts else None
        try:
            return _soak_runs(settings, exchange, checker, ledger, hours, faults, seed, restarts, started, progress)
        finally:
            if ledger is not None:
                ledger.close()


def _soak_runs(
    settings: Settings,
    exchange: SoakExchanges,
    checker: SoakChecker,
    ledger: Ledger | None,
    hours: float,
    faults: tuple[str, ...],
    seed: int,
    restarts: int,
    started: float,
    progress: Progress | None,
) -> SoakRun:
    start_ns = checker.limits.start_ns
    duration_ns = int(hours * 3600 * NS_PER_S)
    end_ns = start_ns + duration_ns
    instruments = exchange.instruments  # by market key, as the ledger keys fills
    venue = SoakVenue(exchange)
    log = RestartLog()
    rng = random.Random(seed)
    run_id = "run0"
    engine = checker.engine
    assert isinstance(engine, Engine)
    next_sample = start_ns
    # whether what grows after warm-up levels off (bounded windows filling) or keeps growing (a leak)
    # shows in the RSS at each quarter of the run: the report's rss_profile_mb
    quarters = [(f"{q * hours / 4:g}h", start_ns + duration_ns * q // 4) for q in (1, 2, 3)]
    profile: dict[str, float] = {}
    next_progress = start_ns
    progress_step_ns = max(duration_ns // 200, 1)

    def record(now_ns: int, events: list[Event], commands: list[Command]) -> None:
        if ledger is not None:  # what the runner's LedgerObserver records, per command and event
            for command in commands:
                ledger.record_command(run_id, command, now_ns)
            for event in events:
                ledger.record_event(run_id, event)

    def on_step(now_ns: int, events: list[Event], commands: list[Command]) -> None:
        nonlocal next_sample, next_progress
        record(now_ns, events, commands)
        checker.on_step(now_ns, events, commands)
        if now_ns >= next_sample:
            rss = rss_mb()
            checker.on_rss(now_ns, rss)
            while quarters and now_ns >= quarters[0][1]:
                profile[quarters.pop(0)[0]] = rss
            next_sample = now_ns + RSS_SAMPLE_NS
        if progress is not None and now_ns >= next_progress:
            progress(min(1.0, (now_ns - start_ns) / duration_ns))
            next_progress = now_ns + progress_step_ns

    now = start_ns
    events = commands = 0
    summaries: list[dict[str, Any]] = []
    for i in range(restarts + 1):
        run_id = f"run{i}"
        log.runs.append(run_id)
        if ledger is not None:
            ledger.start_run(run_id, now, VENUE, instruments, session=SESSION)
        last = i == restarts
        crash = not last and i % 2 == 1  # clean stop, crash, clean stop, ...
        run_end = end_ns if last else start_ns + duration_ns * (i + 1) // (restarts + 1)
        result = run_simulation(
            exchange,
            engine,
            start_ns=now,
            duration_ns=max(run_end - now, 0),
            timer_ns=settings.runtime.timer_ms * 1_000_000,
            cancel_timeout_ns=settings.runtime.cancel_timeout_ms * 1_000_000,
            on_step=on_step,
            on_note=checker.on_note,
            shutdown=not crash,
        )
        events += result.events
        commands += result.commands
        now = result.end_ns
        # a crash worth the name leaves orders resting: run on (at most CRASH_WAIT_NS) until one is
        waited_ns = 0
        while crash and not exchange.open_orders() and waited_ns < CRASH_WAIT_NS:
            more = run_simulation(
                exchange, engine, start_ns=now, duration_ns=NS_PER_S, timer_ns=settings.runtime.timer_ms * 1_000_000,
                on_step=on_step, on_note=checker.on_note, shutdown=False,
            )  # fmt: skip
            events += more.events
            commands += more.commands
            now, waited_ns = more.end_ns, waited_ns + NS_PER_S
            result = more
        if last or ledger is None:
            break
        summaries.append(result.summary)
        if crash:
            log.crash += 1  # nothing more: its orders rest at the exchange, its run never ends
        else:
            log.clean += 1
            ledger.end_run(run_id, now, result.summary)
        # the bot is down: the market runs on, at most half the way to the next run's end
        next_end = start_ns + duration_ns * (i + 2) // (restarts + 1)
        gap_ns = min(idle_gap_ns(rng), max((next_end - now) // 2, 0))
        venue.advance(now + gap_ns)
        log.idle_s += gap_ns / NS_PER_S
        engine = soak_engine(settings, exchange, exchange.now_ns, f"r{i + 1}")
        fields = restart(engine, venue, ledger)
        now = exchange.now_ns
        log.fills_recovered += int(fields["fills_recovered"])
        log.orphans_canceled += int(fields["orphans_canceled"])
        checker.on_restart(engine, now, ledger_matches_exchange(ledger, exchange), fields["mismatches"])
    end_ns, extra_events = settle(exchange, engine, checker, now, record)
    final_rss = rss_mb()
    profile[f"{hours:g}h"] = final_rss
    checker.finish(end_ns, final_rss)
    if ledger is not None:
        ledger.end_run(run_id, end_ns, engine.summary(end_ns))
        checker.on_final_ledger(end_ns, ledger_matches_exchange(ledger, exchange))
    if progress is not None:
        progress(1.0)
    return SoakRun(
        hours=hours,
        seed=seed,
        faults_on=faults,
        checker=checker,
        engine=engine,
        fault_counts=exchange.fault_counts(),
        fault_counts_by_venue=exchange.fault_counts_by_venue(),
        events=events + extra_events,
        commands=commands,
        wall_s=time.perf_counter() - started,
        rss_growth_mb=checker.rss_growth_mb(final_rss),
        rss_profile_mb=profile,
        settle_s=(end_ns - now) / NS_PER_S,
        restarts=log,
        earlier_summaries=summaries,
    )


def settle(
    exchange: SoakExchanges,
    engine: Engine,
    checker: SoakChecker,
    now_ns: int,
    record: Callable[[int, list[Event], list[Command]], None] | None = None,
) -> tuple[int, int]:
    """After shutdown, keep delivering until no executed fill is in flight (at most SETTLE_NS).

    The engine is stopping, so it places nothing; what it answers (e.g. a snapshot request) is sent.
    `record` gets each step too (the ledger's recording, with restarts)."""
    events_seen = 0

    def step(now: int, events: list[Event], commands: list[Command]) -> None:
        nonlocal events_seen
        if record is not None:
            record(now, events, commands)
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
        f"rss growth after warm-up: {report['rss_growth_mb']} MB; rss: "
        + ", ".join(f"{k} {v} MB" for k, v in report["rss_profile_mb"].items()),
        "restarts: " + ", ".join(f"{k}={v}" for k, v in report["restarts"].items()),
        *(
            f"venue {venue}: " + ", ".join(f"{k}={v}" for k, v in totals.items())
            for venue, totals in report["bot_by_venue"].items()
        ),
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
    run = run_soak(settings, hours=args.hours, faults=faults, seed=args.seed, restarts=args.restarts, progress=progress)
    report = run.report()
    if args.json:
        write_json(args, report)
    else:
        sys.stdout.write(_text_report(report) + "\n")
    return 1 if run.checker.counts else 0
