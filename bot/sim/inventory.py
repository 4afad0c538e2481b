"""How fast the quotes bring inventory back to target: half-life and PnL on the mock and on a replay.

`python -m bot.sim.inventory [--config FILE] [--seed S] [--minutes M] [--replay FILE ...]` prints one
JSON object: for the seeded mock market (the real engine through `bot.sim.driver`) and, with
`--replay`, for the recorded files (the real engine through `bot.venues.replay`):

- `halflife_s`: the spot inventory q (minus the quoter's target) sampled on a 1 s grid, fitted as an
  AR(1) toward target, `q[t+1] = ρ·q[t]`, `ρ = Σ q[t]·q[t+1] / Σ q[t]²`, half-life `= ln 2 / −ln ρ`
  seconds (null when ρ is not in (0, 1): no reversion measured);
- `inventory_std_base` (root mean square of q about target), `max_abs_inventory_base`,
  `past_soft_pct` (share of samples with |q| past `risk.inventory_soft_base`);
- `pnl`, `fills`: the engine's session summary.

docs/quoting.md ("Inventory response") gives the before/after figures of the adding-side widening.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
from collections.abc import Sequence
from typing import Any

from bot.app import build_engine
from bot.config import Settings, load_settings
from bot.core.engine import Engine
from bot.domain import Command, Event
from bot.sim.driver import run_simulation
from bot.venues.mock.exchange import MockExchange

NS_PER_S = 1_000_000_000
START_NS = 1_700_000_000 * NS_PER_S


class InventorySampler:
    """The engine's spot inventory (minus target) at each whole second of the run's clock."""

    def __init__(self, engine: Engine, target_base: float) -> None:
        self.engine = engine
        self.target_base = target_base
        self.samples: list[float] = []
        self._next_ns: int | None = None

    def observe(self, now_ns: int) -> None:
        if self._next_ns is None:
            self._next_ns = (now_ns // NS_PER_S + 1) * NS_PER_S
        q = self.engine.inventory_base() - self.target_base  # in force until now: every grid point passed
        while self._next_ns <= now_ns:
            self.samples.append(q)
            self._next_ns += NS_PER_S


def ar1_halflife_s(samples: Sequence[float], step_s: float = 1.0) -> float | None:
    """Half-life of reversion to 0 of an AR(1) fitted through the origin; None without reversion."""
    num = sum(a * b for a, b in itertools.pairwise(samples))
    den = sum(a * a for a in samples[:-1])
    if not den > 0:
        return None
    rho = num / den
    if not 0.0 < rho < 1.0:
        return None
    return step_s * math.log(2.0) / -math.log(rho)


def inventory_report(sampler: InventorySampler, summary: dict[str, Any], soft_base: float) -> dict[str, Any]:
    q = sampler.samples
    n = len(q)
    halflife = ar1_halflife_s(q)
    return {
        "samples": n,
        "halflife_s": round(halflife, 3) if halflife is not None else None,
        "inventory_std_base": round(math.sqrt(sum(x * x for x in q) / n), 6) if n else None,
        "max_abs_inventory_base": round(max((abs(x) for x in q), default=0.0), 6),
        "past_soft_pct": round(100.0 * sum(abs(x) > soft_base for x in q) / n, 3) if n else None,
        "pnl": summary["pnl"],
        "fills": summary["fills"],
    }


def run_mock(settings: Settings, seed: int, duration_s: float) -> dict[str, Any]:
    """The seeded mock market of `settings` for `duration_s` of simulated time."""
    settings = settings.model_copy(update={"mock": settings.mock.model_copy(update={"seed": seed})})
    exchange = MockExchange(settings.mock, start_ns=START_NS)
    spot = exchange.instruments[settings.market.spot_symbol]
    perp = exchange.instruments.get(settings.market.perp_symbol)
    engine = build_engine(settings, spot, perp, START_NS, venue_name="mock")
    sampler = InventorySampler(engine, settings.quoter.inventory_target_base)

    def on_step(now_ns: int, _events: list[Event], _commands: list[Command]) -> None:
        sampler.observe(now_ns)

    result = run_simulation(
        exchange,
        engine,
        start_ns=START_NS,
        duration_ns=round(duration_s * NS_PER_S),
        timer_ns=settings.runtime.timer_ms * 1_000_000,
        on_step=on_step,
    )
    return {"seed": seed, "minutes": duration_s / 60.0} | inventory_report(
        sampler, result.summary, settings.risk.inventory_soft_base
    )


def run_recording(settings: Settings, files: Sequence[str]) -> dict[str, Any]:
    """The recorded files through the replay loop `mmbot replay` uses (simulated fills, no logging)."""
    from bot.replay_cli import EngineDriver, for_instruments, plan_replay
    from bot.venues.replay import ReplaySource, finish_replay, make_executions, run_replay

    plan = plan_replay(files)
    settings = for_instruments(settings, plan.spot, plan.perp)
    source = ReplaySource(plan.paths, plan.file_instruments, from_diffs=plan.from_diffs or None, config=settings.replay)
    executions = make_executions(source.instruments, settings.replay)
    stream = iter(source)
    first = next(stream)
    engine = build_engine(settings, plan.spot, plan.perp, first[0], venue_name="replay")
    sampler = InventorySampler(engine, settings.quoter.inventory_target_base)

    class _Quiet:
        def info(self, *_a: Any, **_k: Any) -> None: ...

    driver = EngineDriver(engine, _Quiet())

    def on_event(event: Event, now_ns: int) -> list[Command]:
        sampler.observe(now_ns)
        return driver(event, now_ns)

    run_replay(itertools.chain([first], stream), executions, on_event, timer_ns=settings.runtime.timer_ms * 1_000_000)
    end_ns = driver.now_ns
    finish_replay(
        executions, driver, engine.shutdown(end_ns), end_ns, end_ns + settings.runtime.cancel_timeout_ms * 1_000_000
    )
    return {"files": list(files)} | inventory_report(
        sampler, engine.summary(driver.now_ns), settings.risk.inventory_soft_base
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bot.sim.inventory", description=__doc__.splitlines()[0])
    parser.add_argument("--config", metavar="FILE")
    parser.add_argument("--seed", type=int, action="append", help="mock seed (repeatable; default 1 without --replay)")
    parser.add_argument("--minutes", type=float, default=10.0, help="simulated minutes per mock run")
    parser.add_argument("--replay", nargs="+", metavar="FILE", help="also replay these recorded files")
    args = parser.parse_args(argv)
    settings = load_settings(args.config)
    seeds = args.seed or ([] if args.replay else [1])
    out: dict[str, Any] = {"mock": [run_mock(settings, s, args.minutes * 60.0) for s in seeds]}
    if args.replay:
        out["replay"] = run_recording(settings, args.replay)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
