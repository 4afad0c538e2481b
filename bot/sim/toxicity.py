"""`mmbot simulate toxicity`: the same seeded toxic market, toxic-flow guard off vs on.

The experiment (docs/risk.md, "The toxicity experiment"):

- Market: the in-process mock exchange from the loaded config (default: config/default.toml) with
  the scenario below laid over it: informed takers are `INFORMED_SHARE` of the spot taker arrivals
  and know the fair value `INFORMED_HORIZON_S` ahead; the seed comes from `--seed`.
- Bot: the real engine from `bot.app.build_engine`, driven by `bot.sim.driver.run_simulation` on
  simulated time. The two runs differ in one thing only: the toxic-flow response (`[risk.toxicity]`
  `widen_bps`, `skew_bps`, `predict_share`, and round six's `rest_behind_background`,
  `inward_tolerance_ticks`, `impact_bps`, round eight's `fill_backoff_bps` and round nine's
  `burst_widen_bps`: `RESPONSE_OFF`) is switched off in the guard-off run (the rounds:
  docs/research/toxicity-guard.md).
  Its monitor still runs (so the logs show what it would have seen), but it shapes no quote.
- Measure, from our own spot fills: the markout of a fill at horizon h is
  `(fair(t_fill + h) − fill_px) · side · size` in quote currency (side +1 for our buy), where
  `fair(t)` is the mock's hidden fair value prevailing at t. The adverse-selection loss is
  `Σ max(0, −markout)` at `HEADLINE_HORIZON_S` (= the informed takers' horizon: by then their
  information is fully in the price); 1 s and 30 s are reported as well. Spread captured is the same
  sum at h = 0 (the edge at the moment of the fill), so `markout(h) = edge + price move over h`.
  The fair value, not the book mid, because the mid includes our own quotes (a skewed quote would
  move the yardstick it is judged by) and is rounded to the background's tick spread; the fair value
  is what the informed takers trade on and what inventory is really worth. Fills whose horizon runs
  past the end of the run are left out (same end for both runs).
- PnL: the engine's `summary()["pnl"]` (cash plus positions at mid, perp hedges included).
"""

from __future__ import annotations

import argparse
import bisect
import math
import sys
from dataclasses import asdict, dataclass, field
from typing import Any

from bot.app import build_engine
from bot.config import ConfigError, Settings, load_settings
from bot.core.toxicity import markout_quote
from bot.domain import Command, Event, OrderFilled
from bot.logs import bind_context, configure_logging, get_logger
from bot.output import write_json
from bot.sim.driver import run_simulation
from bot.venues.mock.exchange import MockExchange

NS_PER_S = 1_000_000_000
START_NS = 1_700_000_000 * NS_PER_S  # a fixed simulated epoch: results do not depend on the wall clock

# ---- the scenario (laid over the loaded config) ----
INFORMED_SHARE = 0.3  # share of spot taker arrivals that are informed
INFORMED_HORIZON_S = 5.0  # informed takers know the fair value this far ahead
HORIZONS_S = (0.0, 1.0, 5.0, 30.0)  # markout horizons; 0 = spread captured (edge at the fill)
HEADLINE_HORIZON_S = 5.0  # the adverse-selection loss reported as `adverse_selection_loss`
RESPONSE_OFF = {
    "widen_bps": 0.0,
    "skew_bps": 0.0,
    "predict_share": 0.0,
    "rest_behind_background": False,
    "inward_tolerance_ticks": None,
    "impact_bps": 0.0,
    "fill_backoff_bps": 0.0,
    "burst_widen_bps": 0.0,
}
"""The guard-off run's `[risk.toxicity]` keys: every way the monitor shapes a quote, switched off."""


# --------------------------------------------------------------------------------------------------
# Markout arithmetic (pure)
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FillRecord:
    """One of our spot fills: venue time, side sign (+1 bought), price and size (price and base units)."""

    ts_ns: int
    side_sign: int
    price_px: float
    size_base: float


class FairValueTape:
    """The fair value as a step function of time: `at(t)` is the last value recorded at a time <= t."""

    def __init__(self) -> None:
        self._times: list[int] = []
        self._values: list[float] = []

    def record(self, ts_ns: int, value_px: float) -> None:
        """Times must not decrease; a repeated value is not stored (the step function is unchanged)."""
        if self._values and self._values[-1] == value_px:
            return
        if self._times and ts_ns == self._times[-1]:
            self._values[-1] = value_px
            return
        self._times.append(ts_ns)
        self._values.append(value_px)

    def at(self, ts_ns: int) -> float:
        i = bisect.bisect_right(self._times, ts_ns) - 1
        if i < 0:
            raise ValueError(f"no fair value recorded at or before {ts_ns}")
        return self._values[i]


@dataclass(frozen=True, slots=True)
class HorizonStats:
    """Markouts at one horizon, quote currency. `loss_quote` = Σ max(0, −markout) >= 0."""

    horizon_s: float
    fills: int
    total_quote: float
    loss_quote: float


def horizon_stats(fills: list[FillRecord], tape: FairValueTape, horizon_s: float, end_ns: int) -> HorizonStats:
    """Markouts of `fills` at `horizon_s` against the tape; fills whose mark falls after `end_ns` are skipped."""
    horizon_ns = round(horizon_s * NS_PER_S)
    count = 0
    total = loss = 0.0
    for f in fills:
        mark_ns = f.ts_ns + horizon_ns
        if mark_ns > end_ns:
            continue
        m = markout_quote(f.side_sign, f.price_px, tape.at(mark_ns), f.size_base)
        count += 1
        total += m
        if m < 0.0:
            loss -= m
    return HorizonStats(horizon_s, count, total, loss)


# --------------------------------------------------------------------------------------------------
# One run
# --------------------------------------------------------------------------------------------------


@dataclass
class RunReport:
    """One run's numbers (quote currency unless named otherwise)."""

    adverse_selection_loss: float
    pnl: float
    fills: int
    spread_captured: float
    volume_quote: float
    adverse_selection_bps: float  # the loss per unit traded: 1e4 · loss / volume_quote
    markouts: dict[str, dict[str, float]]
    risk_events: dict[str, int] = field(default_factory=dict)


def scenario_settings(base: Settings, seed: int, guard_on: bool) -> Settings:
    """`base` with the scenario's market, the seed, and the toxic-flow response on or off."""
    mock = base.mock
    spot = mock.spot.model_copy(update={"informed_share": INFORMED_SHARE})
    mock = mock.model_copy(update={"seed": seed, "informed_horizon_s": INFORMED_HORIZON_S, "spot": spot})
    risk = base.risk
    if not guard_on:
        tox = risk.toxicity.model_copy(update=RESPONSE_OFF)
        risk = risk.model_copy(update={"toxicity": tox})
    return base.model_copy(update={"mock": mock, "risk": risk})


class _Recorder:
    """`on_step` hook: records the fair value after every step and our spot fills as they arrive."""

    def __init__(self, exchange: MockExchange, spot_symbol: str) -> None:
        self._exchange = exchange
        self._spot = exchange.instruments[spot_symbol]
        self.tape = FairValueTape()
        self.fills: list[FillRecord] = []

    def on_step(self, now_ns: int, events: list[Event], _commands: list[Command]) -> None:
        spot = self._spot
        for event in events:
            if isinstance(event, OrderFilled) and event.symbol == spot.symbol:
                self.fills.append(
                    FillRecord(
                        event.ts_venue_ns, event.side.sign, spot.price(event.price_ticks), spot.size(event.size_lots)
                    )
                )
        self.tape.record(now_ns, self._exchange.fair_value_px(spot.symbol))


def run_once(base: Settings, seed: int, guard_on: bool, duration_s: float, log: Any = None) -> RunReport:
    """One seeded run of the scenario through the real engine; see the module docstring."""
    settings = scenario_settings(base, seed, guard_on)
    exchange = MockExchange(settings.mock, start_ns=START_NS)
    instruments = exchange.instruments
    spot = instruments[settings.market.spot_symbol]
    perp = instruments.get(settings.market.perp_symbol)
    engine = build_engine(settings, spot, perp, START_NS, venue_name="mock")
    recorder = _Recorder(exchange, spot.symbol)
    recorder.tape.record(START_NS, exchange.fair_value_px(spot.symbol))
    risk_events: dict[str, int] = {}

    def on_note(name: str, fields: dict[str, Any]) -> None:
        if name.startswith(("risk.", "obligation.")):
            risk_events[name] = risk_events.get(name, 0) + 1
            if log is not None:
                log.info(name, guard="on" if guard_on else "off", **fields)

    duration_ns = round(duration_s * NS_PER_S)
    result = run_simulation(
        exchange,
        engine,
        start_ns=START_NS,
        duration_ns=duration_ns,
        timer_ns=settings.runtime.timer_ms * 1_000_000,
        on_step=recorder.on_step,
        on_note=on_note,
    )
    end_ns = START_NS + duration_ns
    stats = {h: horizon_stats(recorder.fills, recorder.tape, h, end_ns) for h in HORIZONS_S}
    volume_quote = sum(f.price_px * f.size_base for f in recorder.fills)
    loss = stats[HEADLINE_HORIZON_S].loss_quote
    return RunReport(
        adverse_selection_loss=round(loss, 6),
        pnl=round(float(result.summary["pnl"]), 6),
        fills=len(recorder.fills),
        spread_captured=round(stats[0.0].total_quote, 6),
        volume_quote=round(volume_quote, 6),
        adverse_selection_bps=round(1e4 * loss / volume_quote, 6) if volume_quote > 0 else 0.0,
        markouts={
            f"{h:g}s": {"fills": s.fills, "total": round(s.total_quote, 6), "loss": round(s.loss_quote, 6)}
            for h, s in stats.items()
        },
        risk_events=dict(sorted(risk_events.items())),
    )


# --------------------------------------------------------------------------------------------------
# The comparison and the command
# --------------------------------------------------------------------------------------------------


def reduction_pct(off: float, on: float) -> float:
    """`100·(off − on)/off`: how much of the guard-off loss the guard removed (0 when there was none)."""
    return round(100.0 * (off - on) / off, 3) if off > 0.0 else 0.0


def compare(base: Settings, seed: int, duration_s: float, log: Any = None) -> dict[str, Any]:
    """Both runs and the verdict, as the `--json` payload."""
    off = run_once(base, seed, guard_on=False, duration_s=duration_s, log=log)
    on = run_once(base, seed, guard_on=True, duration_s=duration_s, log=log)
    saved = off.adverse_selection_loss - on.adverse_selection_loss
    given_up = off.spread_captured - on.spread_captured
    return {
        "seed": seed,
        "minutes": duration_s / 60.0,
        "scenario": {
            "informed_share": INFORMED_SHARE,
            "informed_horizon_s": INFORMED_HORIZON_S,
            "markout_horizon_s": HEADLINE_HORIZON_S,
            "mark": "mock fair value",
        },
        "guard_off": asdict(off),
        "guard_on": asdict(on),
        "reduction_pct": reduction_pct(off.adverse_selection_loss, on.adverse_selection_loss),
        "adverse_selection_saved": round(saved, 6),
        "spread_given_up": round(given_up, 6),
        "pnl_change": round(on.pnl - off.pnl, 6),
    }


def format_report(payload: dict[str, Any]) -> str:
    off, on = payload["guard_off"], payload["guard_on"]
    sc = payload["scenario"]
    lines = [
        f"toxicity experiment: seed={payload['seed']} minutes={payload['minutes']:g} "
        f"informed_share={sc['informed_share']:g} informed_horizon={sc['informed_horizon_s']:g}s "
        f"(markouts vs the {sc['mark']}, headline horizon {sc['markout_horizon_s']:g}s)",
        f"{'':<26}{'guard off':>12}{'guard on':>12}",
    ]
    rows = [
        ("adverse-selection loss", "adverse_selection_loss", ".2f"),
        ("spread captured", "spread_captured", ".2f"),
        ("pnl", "pnl", ".2f"),
        ("fills", "fills", "d"),
        ("volume (quote)", "volume_quote", ".0f"),
        ("adverse sel. bps of vol.", "adverse_selection_bps", ".3f"),
    ]
    for label, key, fmt in rows:
        lines.append(f"{label:<26}{off[key]:>12{fmt}}{on[key]:>12{fmt}}")
    for horizon in off["markouts"]:
        a, b = off["markouts"][horizon], on["markouts"][horizon]
        lines.append(f"{'markout ' + horizon + ' (total)':<26}{a['total']:>12.2f}{b['total']:>12.2f}")
    lines.append(f"{'risk.toxic events':<26}{off['risk_events'].get('risk.toxic', 0):>12d}"
                 f"{on['risk_events'].get('risk.toxic', 0):>12d}")  # fmt: skip
    verdict = "holds" if payload["spread_given_up"] <= payload["adverse_selection_saved"] else "FAILS"
    lines.append(
        f"reduction {payload['reduction_pct']:.1f} %: saved {payload['adverse_selection_saved']:.2f} in adverse "
        f"selection, gave up {payload['spread_given_up']:.2f} in spread ({verdict}); "
        f"pnl change {payload['pnl_change']:+.2f}"
    )
    return "\n".join(lines)


def cmd_simulate_toxicity(args: argparse.Namespace) -> int:
    """`mmbot simulate toxicity [--seed S] [--minutes M] [--json] [--config FILE]`."""
    base = load_settings(args.config)  # ConfigError -> exit 2 in the CLI
    if not (math.isfinite(args.minutes) and args.minutes > 0):
        raise ConfigError(f"--minutes must be a finite number > 0, got {args.minutes!r}")
    configure_logging(args.log_format, args.log_level, stream=sys.stderr)  # stdout: the report only
    bind_context(run_id=f"toxicity-{args.seed}", venue="mock", symbol=base.market.spot_symbol)
    payload = compare(base, int(args.seed), float(args.minutes) * 60.0, log=get_logger())
    print(format_report(payload))
    if args.json:
        write_json(args, payload)
    return 0
