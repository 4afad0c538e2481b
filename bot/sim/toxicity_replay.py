"""The toxic-flow guard off vs on over a REAL recording: our simulated fills marked out against the
recording's later mids.

`python -m bot.sim.toxicity_replay FILE... [--config FILE]` prints one JSON object shaped like
`mmbot simulate toxicity --json` (`guard_off`, `guard_on`, `reduction_pct`, `bps_reduction_pct`,
`adverse_selection_saved`, `spread_given_up`, `pnl_change`, and `guard_on_check`: what the guard's
self-check did, `bot/core/toxicity.SignalCheck`). The two runs differ only in the guard's
response (`RESPONSE_OFF`: `widen_bps` = `skew_bps` = `predict_share` = 0 in the off run), as in the mock
experiment. A fill's markout at
h is `(mid(t_fill + h) − fill_px)·side·size` with `mid(t)` the recorded book's mid in force at t (no
hidden fair value exists for real data; our own simulated quotes are not in the recorded book, so
they cannot move this yardstick); loss = `Σ max(0, −markout)` at 5 s; spread captured = the sum at 0.
"""

from __future__ import annotations

import argparse
import itertools
import json
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from bot.app import build_engine
from bot.config import Settings, load_settings
from bot.domain import Command, Event, OrderFilled
from bot.sim.toxicity import (
    HEADLINE_HORIZON_S,
    HORIZONS_S,
    FairValueTape,
    FillRecord,
    RunReport,
    horizon_stats,
    reduction_pct,
    scenario_settings,
)


def run_recording(
    settings: Settings, files: Sequence[str], guard_on: bool, check: dict[str, float] | None = None
) -> RunReport:
    """One run over the recording. `check`, if given, receives what the guard's self-check did:
    the largest and the last efficacy, the last β (bps per unit of flow score) and the share of
    events at which the efficacy was above 0."""
    from bot.replay_cli import EngineDriver, for_instruments, plan_replay
    from bot.venues.replay import ReplaySource, finish_replay, make_executions, run_replay

    plan = plan_replay(files)
    risk = settings.risk
    if not guard_on:  # the same switch as the mock experiment, without its mock scenario
        risk = risk.model_copy(update={"toxicity": scenario_settings(settings, 0, False).risk.toxicity})
    settings = for_instruments(settings.model_copy(update={"risk": risk}), plan.spot, plan.perp)
    source = ReplaySource(plan.paths, plan.file_instruments)
    executions = make_executions(source.instruments, settings.replay)
    stream = iter(source)
    first = next(stream)
    engine = build_engine(settings, plan.spot, plan.perp, first[0], venue_name="replay")
    spot = plan.spot
    tape = FairValueTape()
    fills: list[FillRecord] = []

    class _Quiet:
        def info(self, *_a: Any, **_k: Any) -> None: ...

    driver = EngineDriver(engine, _Quiet())
    monitor = engine.risk.toxicity
    seen = {"events": 0, "active": 0, "efficacy_max": 0.0}

    def on_event(event: Event, now_ns: int) -> list[Command]:
        if isinstance(event, OrderFilled) and event.symbol == spot.symbol:
            fills.append(
                FillRecord(
                    event.ts_venue_ns, event.side.sign, spot.price(event.price_ticks), spot.size(event.size_lots)
                )
            )
        out = driver(event, now_ns)
        seen["events"] += 1
        if monitor.efficacy > 0.0:
            seen["active"] += 1
            seen["efficacy_max"] = max(seen["efficacy_max"], monitor.efficacy)
        mid = engine.mid_px()
        if mid is not None:
            tape.record(now_ns, mid)
        return out

    run_replay(itertools.chain([first], stream), executions, on_event, timer_ns=settings.runtime.timer_ms * 1_000_000)
    end_ns = driver.now_ns
    timeout_ns = settings.runtime.cancel_timeout_ms * 1_000_000
    finish_replay(executions, driver, engine.shutdown(end_ns), end_ns, end_ns + timeout_ns)
    fills = [f for f in fills if f.ts_ns >= first[0]]
    if check is not None:
        check.update(
            efficacy_max=round(seen["efficacy_max"], 6),
            efficacy_end=round(monitor.efficacy, 6),
            beta_bps_end=round(monitor.check.beta_bps(end_ns), 6),
            active_share=round(seen["active"] / max(1, seen["events"]), 6),
        )
    stats = {h: horizon_stats(fills, tape, h, end_ns) for h in HORIZONS_S}
    volume = sum(f.price_px * f.size_base for f in fills)
    loss = stats[HEADLINE_HORIZON_S].loss_quote
    return RunReport(
        adverse_selection_loss=round(loss, 6),
        pnl=round(float(engine.summary(driver.now_ns)["pnl"]), 6),
        fills=len(fills),
        spread_captured=round(stats[0.0].total_quote, 6),
        volume_quote=round(volume, 6),
        adverse_selection_bps=round(1e4 * loss / volume, 6) if volume > 0 else 0.0,
        markouts={
            f"{h:g}s": {"fills": s.fills, "total": round(s.total_quote, 6), "loss": round(s.loss_quote, 6)}
            for h, s in stats.items()
        },
    )


def compare_recording(settings: Settings, files: Sequence[str]) -> dict[str, Any]:
    off = run_recording(settings, files, guard_on=False)
    check: dict[str, float] = {}
    on = run_recording(settings, files, guard_on=True, check=check)
    return {
        "files": list(files),
        "mark": "recorded mid",
        "guard_off": asdict(off),
        "guard_on": asdict(on),
        "reduction_pct": reduction_pct(off.adverse_selection_loss, on.adverse_selection_loss),
        "bps_reduction_pct": reduction_pct(off.adverse_selection_bps, on.adverse_selection_bps),
        "adverse_selection_saved": round(off.adverse_selection_loss - on.adverse_selection_loss, 6),
        "spread_given_up": round(off.spread_captured - on.spread_captured, 6),
        "pnl_change": round(on.pnl - off.pnl, 6),
        "guard_on_check": check,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bot.sim.toxicity_replay", description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", metavar="FILE")
    parser.add_argument("--config", metavar="FILE")
    args = parser.parse_args(argv)
    print(json.dumps(compare_recording(load_settings(args.config), args.files)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
