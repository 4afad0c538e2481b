"""One sweep run: one config on one target (a recording or a seeded mock market), and where runs go
(this process, a pool of local processes, a Dask cluster). See bot/sweep.py for the metrics."""

from __future__ import annotations

import concurrent.futures
import importlib
import itertools
import math
import multiprocessing
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.config import Settings
from bot.core.engine import Engine
from bot.domain import Command, Event, InstrumentKind, Timer
from bot.logs import configure_logging

NS_PER_S = 1_000_000_000
NS_PER_MS = 1_000_000
MOCK_START_NS = 1_700_000_000 * NS_PER_S  # a fixed simulated epoch, as `mmbot simulate toxicity`
MOCK_PREFIX = "mock:"


class SweepUsageError(Exception):
    """Bad sweep arguments: one line, exit 2."""


# --------------------------------------------------------------------------------------------------
# Targets
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """A recording (its files, spot first) or a seeded mock market (`mock_seed`, `minutes`)."""

    name: str
    files: tuple[str, ...] = ()
    mock_seed: int | None = None
    minutes: float = 0.0


def plan_targets(args: Sequence[str], minutes: float) -> list[Target]:
    """Each spot file starts a recording, a perp file joins the one before it; `mock:SEED` is a mock run."""
    from bot.replay_cli import ReplayUsageError, plan_replay, split_venue
    from bot.venues.binance import infer_instrument

    groups: list[list[str]] = []
    targets: list[Target | int] = []  # an int: the index of a file group, resolved below
    for arg in args:
        if arg.startswith(MOCK_PREFIX):
            try:
                seed = int(arg[len(MOCK_PREFIX) :])
            except ValueError:
                raise SweepUsageError(f"mock target wants mock:SEED (an integer), got {arg!r}") from None
            targets.append(Target(arg, mock_seed=seed, minutes=minutes))
            continue
        try:
            kind = infer_instrument(split_venue(arg)[1]).kind  # VENUE=FILE: the file's venue, as mmbot replay
        except ReplayUsageError as exc:
            raise SweepUsageError(str(exc)) from None
        except OSError as exc:
            raise SweepUsageError(f"cannot read {arg}: {exc.strerror or exc}") from None
        except (ValueError, EOFError) as exc:
            raise SweepUsageError(f"cannot replay {arg}: {exc}") from None
        if kind is InstrumentKind.SPOT:
            groups.append([arg])
            targets.append(len(groups) - 1)
        elif groups and len(groups[-1]) == 1 and targets and targets[-1] == len(groups) - 1:
            groups[-1].append(arg)
        else:
            raise SweepUsageError(f"the perp file {arg} must follow the spot file it hedges")
    out = []
    for t in targets:
        if isinstance(t, Target):
            out.append(t)
            continue
        files = groups[t]
        try:
            plan_replay(files)  # one spot, at most one perp, of the same pair
        except ReplayUsageError as exc:
            raise SweepUsageError(str(exc)) from None
        out.append(Target("+".join(Path(split_venue(f)[1]).name for f in files), files=tuple(files)))
    if not out:
        raise SweepUsageError("nothing to sweep on: give recordings and/or mock:SEED")
    return out


# --------------------------------------------------------------------------------------------------
# One run: one config on one target
# --------------------------------------------------------------------------------------------------


class Sampler:
    """Spot inventory and equity on every timer tick: their std and the largest drawdown."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.n = 0
        self._sum = 0.0
        self._sum_sq = 0.0
        self._peak = -math.inf
        self.max_drawdown = 0.0

    def sample(self) -> None:
        inventory = self.engine.inventory_base()
        self.n += 1
        self._sum += inventory
        self._sum_sq += inventory * inventory
        equity = self.engine.equity_quote()
        self._peak = max(self._peak, equity)
        self.max_drawdown = max(self.max_drawdown, self._peak - equity)

    @property
    def inventory_std(self) -> float:
        if self.n == 0:
            return 0.0
        mean = self._sum / self.n
        return math.sqrt(max(0.0, self._sum_sq / self.n - mean * mean))


class _SamplingDriver:
    """`run_replay`'s on_event: the engine as `mmbot replay` drives it, notes drained unlogged,
    and a sample after every timer tick."""

    def __init__(self, engine: Engine, sampler: Sampler) -> None:
        self.engine = engine
        self.sampler = sampler
        self.now_ns = engine.start_ns

    def __call__(self, event: Event, now_ns: int) -> list[Command]:
        self.now_ns = now_ns
        engine = self.engine
        commands = engine.apply(event, now_ns)
        requoted = engine.requote(now_ns)
        if requoted:
            commands = commands + requoted
        if engine.notes:
            engine.drain_notes()
        if type(event) is Timer:
            self.sampler.sample()
        return commands


def run_metrics(engine: Engine, summary: dict[str, Any], sampler: Sampler) -> dict[str, Any]:
    """The sweep's metrics of one finished run (see the module docstring)."""
    volume = float(summary["volume"])
    pnl = float(summary["pnl"])
    tracker = engine.risk.toxicity.markouts
    signal_horizon_s = engine.risk.toxicity.params.signal_horizon_s
    adverse = next(s.adverse_loss_quote for s in tracker.stats() if s.horizon_s == signal_horizon_s)
    obligations = summary.get("obligations") or {}
    return {
        "pnl": round(pnl, 6),
        "volume": round(volume, 10),
        "pnl_per_unit": round(pnl / volume, 6) if volume > 0 else 0.0,
        "inventory_std": round(sampler.inventory_std, 10),
        "max_drawdown": round(sampler.max_drawdown, 6),
        "fills": int(summary["fills"]),
        "adverse_selection": round(adverse, 6),
        "obligation_pct": obligations.get("all_pct"),
    }


def run_recording(settings: Settings, files: Sequence[str], cache_dir: str | None = None) -> dict[str, Any]:
    """One full replay of `files` (as `mmbot replay --speed max`, unlogged); the run's metrics."""
    from bot.app import build_engine
    from bot.replay_cli import VenueStamper, for_instruments, plan_replay
    from bot.venues.replay import finish_replay, make_executions, run_replay

    plan = plan_replay(files)
    settings = for_instruments(settings, plan.spot, plan.perp)
    source = _open_source(plan, cache_dir)
    executions = make_executions(source.instruments, settings.replay)
    stream = iter(source)
    first = next(stream)
    pair = plan.pair_venues  # a spot and a perp named for two venues (VENUE=FILE): two markets
    engine = build_engine(settings, plan.spot, plan.perp, first[0], venue_name=plan.spot_venue, pair_venues=pair)
    sampler = Sampler(engine)
    driver = _SamplingDriver(engine, sampler)
    on_event = driver if pair is None else VenueStamper(driver, plan.venue_of_symbol())
    timer_ns = settings.runtime.timer_ms * NS_PER_MS
    books = engine.book_for if pair is None else None  # as mmbot replay: the venues read the engine's books
    run_replay(itertools.chain([first], stream), executions, on_event, timer_ns=timer_ns, books=books)
    end_ns = driver.now_ns
    shutdown = engine.shutdown(end_ns)
    engine.drain_notes()
    finish_replay(executions, on_event, shutdown, end_ns, end_ns + settings.runtime.cancel_timeout_ms * NS_PER_MS)
    return run_metrics(engine, engine.summary(driver.now_ns), sampler)


def warm_cache(targets: Sequence[Target], cache_dir: str) -> None:
    """Parse every recording once into the event cache, before the runs read it (in parallel)."""
    from bot.replay_cli import plan_replay
    from bot.venues.event_cache import CachedSource

    for target in targets:
        if target.files:
            plan = plan_replay(target.files)
            source = CachedSource(plan.paths, plan.file_instruments, Path(cache_dir))
            if not all(source.hits):
                for _ in source:
                    pass


def _open_source(plan: Any, cache_dir: str | None) -> Any:
    from bot.venues.replay import ReplaySource

    if cache_dir is None:
        return ReplaySource(plan.paths, plan.file_instruments, from_diffs=plan.from_diffs or None)
    from bot.venues.event_cache import CachedSource

    return CachedSource(plan.paths, plan.file_instruments, Path(cache_dir))


def run_mock(settings: Settings, seed: int, minutes: float) -> dict[str, Any]:
    """The engine on the seeded in-process mock exchange for `minutes` of simulated time."""
    from bot.app import build_engine
    from bot.sim.driver import run_simulation
    from bot.venues.mock.exchange import MockExchange

    settings = settings.model_copy(update={"mock": settings.mock.model_copy(update={"seed": seed})})
    exchange = MockExchange(settings.mock, start_ns=MOCK_START_NS)
    spot = exchange.instruments[settings.market.spot_symbol]
    perp = exchange.instruments.get(settings.market.perp_symbol)
    engine = build_engine(settings, spot, perp, MOCK_START_NS, venue_name="mock")
    sampler = Sampler(engine)
    timer_ns = settings.runtime.timer_ms * NS_PER_MS
    next_sample_ns = MOCK_START_NS + timer_ns

    def on_step(now_ns: int, _events: list[Event], _commands: list[Command]) -> None:
        nonlocal next_sample_ns
        if now_ns >= next_sample_ns:  # the driver's timer ticks fall on these steps
            sampler.sample()
            next_sample_ns += timer_ns * max(1, (now_ns - next_sample_ns) // timer_ns + 1)

    result = run_simulation(
        exchange,
        engine,
        start_ns=MOCK_START_NS,
        duration_ns=round(minutes * 60 * NS_PER_S),
        timer_ns=timer_ns,
        cancel_timeout_ns=settings.runtime.cancel_timeout_ms * NS_PER_MS,
        on_step=on_step,
    )
    return run_metrics(engine, result.summary, sampler)


@dataclass(frozen=True)
class RunSpec:
    """Everything one run needs, picklable: sent to a worker process or a Dask worker as it is."""

    settings: Settings
    target: Target
    cache_dir: str | None = None


def run_one(spec: RunSpec) -> dict[str, Any]:
    """One run (module level, so process pools and Dask can call it by reference)."""
    target = spec.target
    if target.mock_seed is not None:
        return run_mock(spec.settings, target.mock_seed, target.minutes)
    return run_recording(spec.settings, target.files, spec.cache_dir)


# --------------------------------------------------------------------------------------------------
# Where the runs go
# --------------------------------------------------------------------------------------------------

Runner = Callable[[list[RunSpec]], list[dict[str, Any]]]


def _worker_init() -> None:
    configure_logging("json", "ERROR", stream=sys.stderr)  # a worker's stdout is not the table's


def local_runner(workers: int) -> tuple[Runner, Callable[[], None]]:
    """Runs in this process (1 worker) or a pool of `workers` processes; (run, close)."""
    if workers <= 1:
        return (lambda specs: [run_one(s) for s in specs]), (lambda: None)
    # spawn: a worker starts clean (no inherited logging config, locks or threads of this process)
    pool = concurrent.futures.ProcessPoolExecutor(
        workers, mp_context=multiprocessing.get_context("spawn"), initializer=_worker_init
    )
    return (lambda specs: list(pool.map(run_one, specs))), (lambda: pool.shutdown(cancel_futures=True))


def dask_runner(address: str) -> tuple[Runner, Callable[[], None]]:
    """Runs on the Dask cluster at `address` (its workers must be able to import `bot`)."""
    try:
        client_class: Any = importlib.import_module("distributed").Client  # untyped
    except ImportError:
        raise SweepUsageError("--dask needs the distributed package (pip install distributed)") from None
    try:
        client = client_class(address, timeout=10)
    except (OSError, TimeoutError) as exc:
        raise SweepUsageError(f"cannot reach the Dask scheduler at {address}: {exc}") from None

    def run(specs: list[RunSpec]) -> list[dict[str, Any]]:
        futures = client.map(run_one, specs, pure=False)
        results: list[dict[str, Any]] = client.gather(futures)
        return list(results)

    return run, client.close
