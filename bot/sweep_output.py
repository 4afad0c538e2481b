"""The sweep's output: the result table, the best trial's keys as TOML, and the plot."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

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


def format_table(trials: list[dict[str, Any]], best: dict[str, Any]) -> str:
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


def write_plot(trials: list[dict[str, Any]], objective: str, path: Path) -> None:
    """A heatmap of the objective over two keys (a full grid), else parallel coordinates."""
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
    fig.savefig(path, dpi=100)
    plt.close(fig)
