"""`mmbot sweep`: a grid or an Optuna search over config keys, each trial a full replay of every target.

    mmbot sweep FILE... [mock:SEED ...] --grid KEY=V1,V2,... [--grid ...] [--workers N] [--json]
    mmbot sweep FILE... --search N --space KEY=LO:HI [--space ...] [--seed S] [--workers N]

* **Keys** are dotted config paths (`quoter.gamma`, `risk.toxicity.widen_bps`). Every key is checked
  against the `Settings` model and every point of the grid is validated through it before anything
  runs: a bad key or value is one line and exit 2. Values are TOML literals (`0.1`, `true`, `"glft"`).
* **Targets**: recordings and seeded mock markets. Each spot file starts a recording and a perp file
  joins the recording before it (`spot1.gz perp1.gz spot2.gz` is two recordings, the first hedged).
  `mock:SEED` is the in-process mock exchange with that seed for `--minutes` of simulated time.
* **A run** is one config on one target: the real engine (`bot.app.build_engine`) driven by the same
  deterministic loops as `mmbot replay` (`run_replay`, simulated execution) and `mmbot simulate`
  (`run_simulation`), its notes drained unlogged. A **trial** is one config on every target.
* **Metrics** per run: `pnl` (quote), `volume` (base), `pnl_per_unit` (pnl / volume, quote per base
  unit traded), `inventory_std` (base, the spot inventory sampled on every timer tick), `max_drawdown`
  (quote, largest fall of the equity from its running peak, sampled on the same ticks), `fills`,
  `adverse_selection` (quote, Σ max(0, −markout) of our fills at the toxicity signal horizon, from the
  risk guard's own markout tracker), `obligation_pct` (share of the session every market-making
  obligation held at once; None when the venue has none). A trial sums pnl, volume, fills and adverse
  selection over its runs, takes the mean inventory std, the largest drawdown and the lowest
  obligation share.
* **Where**: in this process (`--workers 1`), a local process pool (`--workers N`), or an existing
  Dask cluster (`--dask tcp://HOST:PORT`). A run depends only on its config and its target, so the
  per-run results are identical wherever it runs (tested on 1 and 2 workers and a local Dask cluster).
* **Output**: a table, the best trial's keys as TOML (by `--objective`, default pnl: highest, or
  lowest for drawdown, inventory std and adverse selection), `--json`'s last stdout line
  `{"trials": [{"params", "metrics", "runs"}], "best": {...}}`, and with `--out DIR` the JSON and a
  plot (a heatmap for two keys, parallel coordinates otherwise).
"""

from __future__ import annotations

import argparse
import difflib
import itertools
import math
import sys
import time
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from pydantic import BaseModel, ValidationError

from bot.config import ConfigError, Settings, format_validation_error, load_settings
from bot.logs import configure_logging
from bot.output import write_json
from bot.sweep_output import format_table, params_toml, write_plot
from bot.sweep_runs import (
    Runner,
    RunSpec,
    SweepUsageError,
    Target,
    dask_runner,
    local_runner,
    plan_targets,
    warm_cache,
)

# metric -> True when higher is better
OBJECTIVES = {
    "pnl": True,
    "pnl_per_unit": True,
    "fills": True,
    "obligation_pct": True,
    "max_drawdown": False,
    "inventory_std": False,
    "adverse_selection": False,
}
__all__ = ["SweepUsageError", "Target", "cmd_sweep"]


# --------------------------------------------------------------------------------------------------
# Keys and values, checked against the Settings model
# --------------------------------------------------------------------------------------------------


def check_key(key: str) -> None:
    """`key` names a leaf field of `Settings` (each part but the last a config section)."""
    model: type[BaseModel] = Settings
    parts = key.split(".")
    for i, part in enumerate(parts):
        fields = model.model_fields
        if part not in fields:
            where = ".".join(parts[:i]) or "the config"
            close = [f for f in fields if f.startswith(part)]
            close = close or difflib.get_close_matches(part, list(fields), n=1, cutoff=0.4)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise SweepUsageError(f"unknown config key {key!r}: {where} has no {part!r}{hint}")
        annotation = fields[part].annotation
        is_section = isinstance(annotation, type) and issubclass(annotation, BaseModel)
        if i < len(parts) - 1 and not is_section:
            raise SweepUsageError(f"unknown config key {key!r}: {'.'.join(parts[: i + 1])} is not a section")
        if i == len(parts) - 1 and is_section:
            raise SweepUsageError(f"config key {key!r} is a section: sweep one of its keys")
        if is_section:
            model = annotation  # type: ignore[assignment]


def parse_value(text: str) -> Any:
    """A TOML literal (`0.1`, `3`, `true`, `"glft"`, `[1, 5]`); anything else is taken as a string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text.strip()


def parse_grid(spec: str) -> tuple[str, list[Any]]:
    """`KEY=V1,V2,...` -> (key, values)."""
    key, sep, values = spec.partition("=")
    key = key.strip()
    if not sep or not key or not values.strip():
        raise SweepUsageError(f"--grid wants KEY=V1,V2,..., got {spec!r}")
    check_key(key)
    return key, [parse_value(v) for v in values.split(",")]


@dataclass(frozen=True)
class Dimension:
    """One `--space KEY=LO:HI`: an int range when both ends are integers, else a float range."""

    key: str
    low: float
    high: float
    integer: bool


def parse_space(spec: str) -> Dimension:
    key, sep, bounds = spec.partition("=")
    key = key.strip()
    low_text, colon, high_text = bounds.partition(":")
    if not sep or not key or not colon:
        raise SweepUsageError(f"--space wants KEY=LO:HI, got {spec!r}")
    check_key(key)
    low, high = parse_value(low_text), parse_value(high_text)
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in (low, high)):
        raise SweepUsageError(f"--space {key}: LO and HI must be numbers, got {bounds!r}")
    if not (math.isfinite(low) and math.isfinite(high) and low < high):
        raise SweepUsageError(f"--space {key}: need finite LO < HI, got {bounds!r}")
    return Dimension(key, low, high, isinstance(low, int) and isinstance(high, int))


def nested(params: dict[str, Any]) -> dict[str, Any]:
    """{"a.b.c": v} -> {"a": {"b": {"c": v}}}."""
    out: dict[str, Any] = {}
    for key, value in params.items():
        node = out
        *sections, leaf = key.split(".")
        for section in sections:
            node = node.setdefault(section, {})
        node[leaf] = value
    return out


def _deep_merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in update.items():
        out[key] = _deep_merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def settings_with(base: Settings, params: dict[str, Any]) -> Settings:
    """`base` with the dotted `params` set, validated by the model (validators across fields included).

    `model_validate`, not the constructor: the environment was applied when `base` loaded and must not
    be applied again over the swept values."""
    data = _deep_merge(base.model_dump(), nested(params))
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc)) from None


def grid_points(axes: Sequence[tuple[str, list[Any]]]) -> list[dict[str, Any]]:
    """Every combination, the last axis varying fastest."""
    keys = [k for k, _ in axes]
    return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*(v for _, v in axes))]


# --------------------------------------------------------------------------------------------------
# Trials: one config on every target
# --------------------------------------------------------------------------------------------------


def combine(runs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """A trial's metrics from its runs (see the module docstring)."""
    pnl = sum(r["pnl"] for r in runs)
    volume = sum(r["volume"] for r in runs)
    shares = [r["obligation_pct"] for r in runs if r["obligation_pct"] is not None]
    return {
        "pnl": round(pnl, 6),
        "volume": round(volume, 10),
        "pnl_per_unit": round(pnl / volume, 6) if volume > 0 else 0.0,
        "inventory_std": round(sum(r["inventory_std"] for r in runs) / len(runs), 10),
        "max_drawdown": max(r["max_drawdown"] for r in runs),
        "fills": sum(r["fills"] for r in runs),
        "adverse_selection": round(sum(r["adverse_selection"] for r in runs), 6),
        "obligation_pct": min(shares) if shares else None,
    }


def run_trials(
    base: Settings, points: list[dict[str, Any]], targets: list[Target], runner: Runner, cache_dir: str | None
) -> list[dict[str, Any]]:
    """Every point on every target (all runs sent at once, so the workers stay busy)."""
    specs = [RunSpec(settings_with(base, p), t, cache_dir) for p in points for t in targets]
    results = runner(specs)
    trials = []
    for i, params in enumerate(points):
        runs = results[i * len(targets) : (i + 1) * len(targets)]
        trials.append(
            {
                "params": params,
                "metrics": combine(runs),
                "runs": [{"target": t.name, "metrics": r} for t, r in zip(targets, runs, strict=True)],
            }
        )
    return trials


def _score(trial: dict[str, Any], objective: str) -> float:
    value = trial["metrics"][objective]
    if value is None:
        return -math.inf
    return float(value) if OBJECTIVES[objective] else -float(value)


def best_trial(trials: list[dict[str, Any]], objective: str) -> dict[str, Any]:
    """The best by `objective`; the first of equals (so the result does not depend on run order)."""
    return max(trials, key=lambda t: _score(t, objective))


def search_trials(
    base: Settings,
    space: list[Dimension],
    n_trials: int,
    seed: int,
    objective: str,
    targets: list[Target],
    runner: Runner,
    batch: int,
    cache_dir: str | None,
) -> list[dict[str, Any]]:
    """Optuna's TPE sampler (seeded), asked for `batch` trials at a time (one per worker)."""
    try:
        import optuna
    except ImportError:
        raise SweepUsageError("--search needs optuna (pip install optuna)") from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        direction="maximize" if OBJECTIVES[objective] else "minimize", sampler=optuna.samplers.TPESampler(seed=seed)
    )
    trials: list[dict[str, Any]] = []
    while len(trials) < n_trials:
        asked = [study.ask() for _ in range(min(batch, n_trials - len(trials)))]
        points = []
        for trial in asked:
            params: dict[str, Any] = {}
            for d in space:
                if d.integer:
                    params[d.key] = trial.suggest_int(d.key, int(d.low), int(d.high))
                else:
                    params[d.key] = trial.suggest_float(d.key, d.low, d.high)
            points.append(params)
        done = run_trials(base, points, targets, runner, cache_dir)
        for trial, result in zip(asked, done, strict=True):
            value = result["metrics"][objective]
            study.tell(trial, value if value is not None else float("nan"))
        trials.extend(done)
    return trials


# --------------------------------------------------------------------------------------------------
# The command
# --------------------------------------------------------------------------------------------------


def _plan(args: argparse.Namespace, base: Settings) -> tuple[list[dict[str, Any]] | None, list[Dimension]]:
    if args.objective not in OBJECTIVES:
        raise SweepUsageError(f"--objective must be one of {', '.join(sorted(OBJECTIVES))}, got {args.objective!r}")
    if args.workers < 1:
        raise SweepUsageError(f"--workers must be >= 1, got {args.workers}")
    if not (math.isfinite(args.minutes) and args.minutes > 0):
        raise SweepUsageError(f"--minutes must be a finite number > 0, got {args.minutes!r}")
    if args.search is not None:
        if args.grid or not args.space:
            raise SweepUsageError("--search wants --space KEY=LO:HI (and no --grid)")
        if args.search < 1:
            raise SweepUsageError(f"--search must be >= 1, got {args.search}")
        space = [parse_space(s) for s in args.space]
        for d in space:  # both ends must be valid values of the key
            settings_with(base, {d.key: d.low})
            settings_with(base, {d.key: d.high})
        return None, space
    if not args.grid or args.space:
        raise SweepUsageError("give --grid KEY=V1,V2,... (or --search N with --space)")
    axes = [parse_grid(g) for g in args.grid]
    if len({k for k, _ in axes}) != len(axes):
        raise SweepUsageError("a key is given twice in --grid")
    points = grid_points(axes)
    for point in points:  # every point valid before any run starts
        settings_with(base, point)
    return points, []


def cmd_sweep(args: argparse.Namespace) -> int:
    base = load_settings(args.config)  # ConfigError -> exit 2 in the CLI
    configure_logging(args.log_format, args.log_level, stream=sys.stderr)  # stdout: the table
    try:
        points, space = _plan(args, base)
        targets = plan_targets(args.targets, args.minutes)
        runner, close = dask_runner(args.dask) if args.dask else local_runner(args.workers)
    except SweepUsageError as exc:
        print(f"mmbot sweep: {exc}", file=sys.stderr)
        return 2
    wall0 = time.perf_counter()
    if args.cache:
        warm_cache(targets, args.cache)
    try:
        if points is not None:
            trials = run_trials(base, points, targets, runner, args.cache)
        else:
            batch = args.workers  # trials asked of Optuna at a time: one per worker
            trials = search_trials(
                base, space, args.search, args.seed, args.objective, targets, runner, batch, args.cache
            )
    finally:
        close()
    wall_s = time.perf_counter() - wall0
    best = best_trial(trials, args.objective)
    print(format_table(trials, best))
    runs = len(trials) * len(targets)
    print(f"\n{len(trials)} trials x {len(targets)} targets in {wall_s:.2f} s ({len(trials) / wall_s:.2f} trials/s)")
    print(f"\n# best by {args.objective}: {best['metrics'][args.objective]}\n{params_toml(best['params'])}")
    payload = {
        "trials": trials,
        "best": {**best, "toml": params_toml(best["params"])},
        "objective": args.objective,
        "targets": [t.name for t in targets],
        "runs": runs,
        "wall_s": round(wall_s, 3),
        "trials_per_s": round(len(trials) / wall_s, 3) if wall_s > 0 else None,
        "workers": args.workers,
        "dask": args.dask,
    }
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "sweep.json").write_bytes(orjson.dumps(payload, option=orjson.OPT_INDENT_2))
        write_plot(trials, args.objective, out / "sweep.png")
        print(f"wrote {out / 'sweep.json'} and {out / 'sweep.png'}")
    if args.json:
        write_json(args, payload)
    return 0
