"""The sweep's output: the result table, the best trial's keys as TOML, the plot, and the sweep's page
in `mmbot report --sweep` (the same three, from the JSON `mmbot sweep --out DIR` writes)."""

from __future__ import annotations

import base64
import html
import io
import json
import math
from pathlib import Path
from typing import Any

import orjson

METRIC_COLUMNS = (
    ("pnl", "pnl", ".2f"),
    ("pnl/unit", "pnl_per_unit", ".3f"),
    ("inv std", "inventory_std", ".4f"),
    ("max dd", "max_drawdown", ".2f"),
    ("fills", "fills", "d"),
    ("adverse", "adverse_selection", ".2f"),
    ("oblig %", "obligation_pct", ".1f"),
)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return json.dumps(str(value))  # a TOML basic string is a JSON string


def params_toml(params: dict[str, Any]) -> str:
    """The swept keys as TOML tables, to merge into a config file."""
    tables: dict[str, list[str]] = {}
    for key, value in params.items():
        section, _, leaf = key.rpartition(".")
        tables.setdefault(section, []).append(f"{leaf} = {_toml_value(value)}")
    return "\n\n".join(f"[{section}]\n" + "\n".join(lines) for section, lines in tables.items())


def _cell(value: Any, fmt: str) -> str:
    if value is None:
        return "-"
    if fmt == "d":
        return str(int(value))
    return format(value, fmt)


def format_table(trials: list[dict[str, Any]], best: dict[str, Any] | None) -> str:
    keys = list(trials[0]["params"]) if trials else []
    header = ["#", *keys, *(label for label, _, _ in METRIC_COLUMNS)]
    rows = []
    for i, trial in enumerate(trials):
        mark = "*" if trial is best else ""
        rows.append(
            [
                f"{i}{mark}",
                *(_toml_value(trial["params"][k]) for k in keys),
                *(_cell(trial["metrics"][m], fmt) for _, m, fmt in METRIC_COLUMNS),
            ]
        )
    widths = [max(len(r[c]) for r in [header, *rows]) for c in range(len(header))]
    return "\n".join("  ".join(cell.rjust(w) for cell, w in zip(r, widths, strict=True)) for r in [header, *rows])


def write_plot(trials: list[dict[str, Any]], objective: str, path: Path | io.BytesIO) -> None:
    """A heatmap of the objective over two keys (a full grid), else parallel coordinates (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = list(trials[0]["params"])
    values = [t["metrics"][objective] for t in trials]
    fig, ax = plt.subplots(figsize=(8, 5))
    xs = sorted({t["params"][keys[0]] for t in trials}, key=str) if len(keys) == 2 else []
    ys = sorted({t["params"][keys[1]] for t in trials}, key=str) if len(keys) == 2 else []
    if len(keys) == 2 and len(xs) * len(ys) == len(trials):
        grid = [[math.nan] * len(xs) for _ in ys]
        for t, v in zip(trials, values, strict=True):
            grid[ys.index(t["params"][keys[1]])][xs.index(t["params"][keys[0]])] = math.nan if v is None else v
        image = ax.imshow(grid, origin="lower", aspect="auto", cmap="viridis")
        ax.set_xticks(range(len(xs)), [str(x) for x in xs])
        ax.set_yticks(range(len(ys)), [str(y) for y in ys])
        ax.set_xlabel(keys[0])
        ax.set_ylabel(keys[1])
        fig.colorbar(image, ax=ax, label=objective)
    else:
        axes = [*keys, objective]
        columns = [[float(t["params"][k]) for t in trials] for k in keys] + [
            [math.nan if v is None else float(v) for v in values]
        ]
        scaled = []
        for col in columns:
            finite = [c for c in col if math.isfinite(c)]
            lo, hi = (min(finite), max(finite)) if finite else (0.0, 1.0)
            scaled.append([(c - lo) / (hi - lo) if hi > lo else 0.5 for c in col])
        cmap = plt.get_cmap("viridis")
        for i in range(len(trials)):
            ax.plot(range(len(axes)), [s[i] for s in scaled], color=cmap(scaled[-1][i]), alpha=0.8)
        ax.set_xticks(range(len(axes)), axes)
        ax.set_ylabel("scaled to each axis's range")
    ax.set_title(f"mmbot sweep: {objective} over {len(trials)} trials")
    fig.tight_layout()
    fig.savefig(path, dpi=100, format="png")
    plt.close(fig)


class SweepReportError(Exception):
    """A sweep result that cannot be reported (missing, not JSON, not a sweep's): one line."""


def load_sweep(path: Path) -> dict[str, Any]:
    """The sweep's JSON: `path` itself, or `path/sweep.json` for the directory `mmbot sweep --out` wrote."""
    file = path / "sweep.json" if path.is_dir() else path
    try:
        payload = orjson.loads(file.read_bytes())
    except OSError as exc:
        raise SweepReportError(f"cannot read {file}: {exc.strerror or exc}") from None
    except orjson.JSONDecodeError as exc:
        raise SweepReportError(f"{file}: not JSON ({exc})") from None
    trials = payload.get("trials") if isinstance(payload, dict) else None
    if (
        not isinstance(trials, list)
        or not trials
        or not all(isinstance(t, dict) and {"params", "metrics"} <= t.keys() for t in trials)
        or not isinstance(payload.get("best"), dict)
    ):
        raise SweepReportError(f"{file}: not a sweep's result (mmbot sweep --json or --out): no trials and best")
    return payload  # type: ignore[no-any-return]


def render_html(payload: dict[str, Any], png: bytes) -> str:
    """One self-contained page: the plot (embedded), the table (the best trial marked *) and the best
    trial's keys as TOML."""
    trials = payload["trials"]
    best_params = payload["best"]["params"]
    best = next((t for t in trials if t["params"] == best_params), None)
    objective = str(payload.get("objective", "pnl"))
    toml = payload["best"].get("toml") or params_toml(best_params)
    targets = ", ".join(str(t) for t in payload.get("targets", []))
    where = f"dask {payload['dask']}" if payload.get("dask") else f"{payload.get('workers', '?')} worker(s)"
    speed = f"wall {payload.get('wall_s')} s, {payload.get('trials_per_s')} trials/s"
    b64 = base64.b64encode(png).decode("ascii")
    return "\n".join(
        [
            "<!doctype html><html><head><meta charset='utf-8'><title>mmbot sweep</title></head><body>",
            f"<h1>mmbot sweep: {len(trials)} trials by {html.escape(objective)}</h1>",
            f"<p>targets: {html.escape(targets)}; {html.escape(where)}; {html.escape(speed)}</p>",
            f"<img alt='sweep.png' src='data:image/png;base64,{b64}'>",
            "<h2>Trials</h2><pre>" + html.escape(format_table(trials, best)) + "</pre>",
            f"<h2>Best by {html.escape(objective)}</h2><pre>" + html.escape(toml) + "</pre>",
            "</body></html>",
        ]
    )


def build_sweep_report(sweep: Path, out_dir: Path) -> Path:
    """Write OUT/sweep.html and OUT/sweep.png for the sweep result at `sweep` (see `load_sweep`)."""
    payload = load_sweep(sweep)
    buf = io.BytesIO()
    write_plot(payload["trials"], str(payload.get("objective", "pnl")), buf)
    png = buf.getvalue()
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "sweep.png").write_bytes(png)
    index = out_dir / "sweep.html"
    index.write_text(render_html(payload, png), encoding="utf-8")
    return index
