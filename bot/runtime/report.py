"""`mmbot report`: an HTML report (with PNG plots) of one run, read from the SQLite ledger.

    mmbot report                                    # ledger.path of the default config -> ./report
    mmbot report --ledger var/ledger.sqlite --out /tmp/report

Writes `OUT/index.html` (self-contained: every plot embedded as base64 PNG) and the same plots as
PNG files in OUT:

- `price.png`       mid, our bid/ask and reservation price, with our fills (▲ buy, ▼ sell;
                    hollow markers are fills on other symbols, i.e. the perp hedges);
- `inventory.png`   position per symbol (from fills, base units) and the net delta;
- `pnl.png`         PnL by attribution component and the total (quote currency);
- `spread_risk.png` quoted spread (bps) over time on the risk-state background, and its
                    distribution per risk state.

The report covers the most recent run that recorded anything. The ledger is opened read-only, so
a report can be made while the bot is running. Exit codes: 0 written, 1 no ledger at that path.
"""

from __future__ import annotations

import argparse
import base64
import html
import io
import json
import sqlite3
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from bot.config import load_settings
from bot.sweep_output import SweepReportError, build_sweep_report

BUY_COLOR, SELL_COLOR = "#1a9850", "#d73027"
STATE_COLORS = ("#e8f4ea", "#fff3cd", "#f8d7da", "#dbe9f6", "#ece2f4", "#f2f2f2")


@dataclass
class RunData:
    """Everything the report shows about one run, as numpy arrays with times in seconds from `t0_ns`."""

    run: dict[str, Any]
    t0_ns: int
    quote_symbols: list[str]
    quotes: dict[str, dict[str, np.ndarray]]  # symbol -> column -> values ("risk_state": strings)
    fills: list[dict[str, Any]]  # with "t_s" and "position_base" (after the fill) added
    pnl_t_s: np.ndarray
    pnl: dict[str, np.ndarray]  # component -> values; "total" included
    all_runs: list[dict[str, Any]] = field(default_factory=list)
    deal_events: list[dict[str, Any]] = field(default_factory=list)  # the whole deal's, every run


class ReportError(Exception):
    """No ledger, or nothing to report (one-line message)."""


def open_read_only(path: Path) -> sqlite3.Connection:
    """Open the ledger read-only (never creates it). A WAL database needs its `-shm` file to be
    writable even by readers; on read-only media (a copy, a `:ro` volume) fall back to `immutable=1`,
    which reads the file as it is (only correct when no writer is using it, the case there)."""
    if not path.is_file():
        raise ReportError(f"no ledger at {path}")
    uri = path.resolve().as_uri()
    try:
        db = sqlite3.connect(uri + "?mode=ro", uri=True)
        db.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall()
    except sqlite3.OperationalError:
        db = sqlite3.connect(uri + "?mode=ro&immutable=1", uri=True)
    db.row_factory = sqlite3.Row
    return db


def _rows(db: sqlite3.Connection, sql: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
    return [dict(row) for row in db.execute(sql, params)]


def pick_run(db: sqlite3.Connection) -> str | None:
    """The most recent run with any quotes, fills or PnL; else the most recent run."""
    for run in _rows(db, "SELECT run_id FROM runs ORDER BY rowid DESC"):
        for table in ("quotes", "fills", "pnl"):
            if db.execute(f"SELECT 1 FROM {table} WHERE run_id = ? LIMIT 1", (run["run_id"],)).fetchone():
                return str(run["run_id"])
    last = db.execute("SELECT run_id FROM runs ORDER BY rowid DESC LIMIT 1").fetchone()
    return None if last is None else str(last[0])


def load_run(db: sqlite3.Connection, run_id: str) -> RunData:
    runs = _rows(db, "SELECT * FROM runs ORDER BY rowid")
    run = next((r for r in runs if r["run_id"] == run_id), {"run_id": run_id})
    quote_rows = _rows(db, "SELECT * FROM quotes WHERE run_id = ? ORDER BY ts_ns, id", (run_id,))
    # positions continue from earlier runs on the same exchange (venue session): accumulate over
    # that session's fills, keep this run's
    position: dict[str, float] = {}
    fills: list[dict[str, Any]] = []
    session = (run.get("venue", ""), run.get("venue_session", ""))
    for f in _rows(db, "SELECT * FROM fills ORDER BY id"):
        if (f.get("venue", ""), f.get("venue_session", "")) != session and f["run_id"] != run_id:
            continue
        sign = 1.0 if f["side"] == "buy" else -1.0
        position[f["symbol"]] = position.get(f["symbol"], 0.0) + sign * f["size_base"]
        if f["run_id"] == run_id:
            fills.append({**f, "position_base": position[f["symbol"]]})
    fill_counts = dict(db.execute("SELECT run_id, COUNT(*) FROM fills GROUP BY run_id").fetchall())
    for r in runs:
        r["fills"] = int(fill_counts.get(r["run_id"], 0))
    pnl_rows = _rows(
        db, "SELECT ts_ns, total_quote, components_json FROM pnl WHERE run_id = ? ORDER BY ts_ns", (run_id,)
    )

    stamps = [r["ts_ns"] for r in quote_rows[:1] + pnl_rows[:1]] + [f["ts_recv_ns"] for f in fills[:1]]
    t0 = min(stamps) if stamps else int(run.get("started_ns") or 0)

    def secs(ns: list[int]) -> np.ndarray:
        return (np.asarray(ns, dtype=np.int64) - t0) / 1e9

    counts: dict[str, int] = {}
    for r in quote_rows:
        counts[r["symbol"]] = counts.get(r["symbol"], 0) + 1
    symbols = sorted(counts, key=lambda s: -counts[s])
    quotes: dict[str, dict[str, np.ndarray]] = {}
    for symbol in symbols:
        rows = [r for r in quote_rows if r["symbol"] == symbol]
        cols: dict[str, np.ndarray] = {"t_s": secs([r["ts_ns"] for r in rows])}
        for col in ("mid_px", "bid_px", "ask_px", "reservation_px", "spread_bps", "inventory_base", "net_delta_base"):
            cols[col] = np.array([np.nan if r[col] is None else r[col] for r in rows], dtype=float)
        cols["risk_state"] = np.array([r["risk_state"] for r in rows], dtype=object)
        quotes[symbol] = cols
    for f in fills:
        f["t_s"] = float(secs([f["ts_recv_ns"]])[0])
    components: list[dict[str, float]] = [json.loads(r["components_json"]) for r in pnl_rows]
    names = sorted({name for c in components for name in c})
    pnl = {name: np.array([c.get(name, np.nan) for c in components], dtype=float) for name in names}
    pnl["total"] = np.array([r["total_quote"] for r in pnl_rows], dtype=float)
    try:
        deal_events = _rows(db, "SELECT * FROM deal_events ORDER BY id")
    except sqlite3.OperationalError:  # a ledger written before the table existed
        deal_events = []
    return RunData(
        deal_events=deal_events,
        run=run,
        t0_ns=t0,
        quote_symbols=symbols,
        quotes=quotes,
        fills=fills,
        pnl_t_s=secs([r["ts_ns"] for r in pnl_rows]),
        pnl=pnl,
        all_runs=runs,
    )


# ---- plots ---------------------------------------------------------------------------------------


def _span_s(data: RunData) -> float:
    """Seconds from t0 to the last recorded row of any kind."""
    ends = [float(q["t_s"][-1]) for q in data.quotes.values() if len(q["t_s"])]
    ends += [f["t_s"] for f in data.fills[-1:]] + [float(t) for t in data.pnl_t_s[-1:]]
    return max(ends, default=0.0)


def _time_axis(data: RunData) -> tuple[float, str]:
    """Divide seconds by this and label the axis with that unit."""
    span = _span_s(data)
    if span > 3 * 3600:
        return 3600.0, "hours since start"
    if span > 180:
        return 60.0, "minutes since start"
    return 1.0, "seconds since start"


def _no_data(ax: Axes, what: str) -> None:
    ax.text(0.5, 0.5, f"no {what} recorded", ha="center", va="center", transform=ax.transAxes, color="grey")
    ax.set_xticks([])
    ax.set_yticks([])


def _label(ax: Axes, title: str, x_unit: str, y_label: str, ncols: int = 1) -> None:
    """Title, axis labels, grid and legend: the same for every time-series plot."""
    ax.set_title(title)
    ax.set_xlabel(x_unit)
    ax.set_ylabel(y_label)
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8, ncols=ncols)


def plot_price(data: RunData) -> Figure:
    fig = Figure(figsize=(11, 5), layout="constrained")
    ax = fig.add_subplot()
    div, unit = _time_axis(data)
    main = data.quote_symbols[0] if data.quote_symbols else None
    if main is None and not data.fills:
        _no_data(ax, "quotes or fills")
        return fig
    if main is not None:
        q = data.quotes[main]
        t = q["t_s"] / div
        ax.plot(t, q["mid_px"], color="black", lw=1.0, label=f"mid {main}")
        ax.step(t, q["bid_px"], where="post", color=BUY_COLOR, lw=0.8, alpha=0.8, label="our bid")
        ax.step(t, q["ask_px"], where="post", color=SELL_COLOR, lw=0.8, alpha=0.8, label="our ask")
        ax.plot(t, q["reservation_px"], color="#4575b4", lw=0.8, ls="--", label="reservation")
    for side, marker, color in (("buy", "^", BUY_COLOR), ("sell", "v", SELL_COLOR)):
        for on_main in (True, False):
            pts = [f for f in data.fills if f["side"] == side and (f["symbol"] == main) == on_main]
            if not pts:
                continue
            label = f"fill {side}" if on_main else f"fill {side} (other symbols)"
            ax.scatter(
                [f["t_s"] / div for f in pts],
                [f["price_px"] for f in pts],
                marker=marker,
                s=36,
                zorder=3,
                facecolors=color if on_main else "none",
                edgecolors=color,
                label=label,
            )
    _label(ax, "Mid, our quotes and fills", unit, "price (quote per base)", ncols=2)
    return fig


def plot_inventory(data: RunData) -> Figure:
    fig = Figure(figsize=(11, 4.5), layout="constrained")
    ax = fig.add_subplot()
    div, unit = _time_axis(data)
    symbols = sorted({f["symbol"] for f in data.fills})
    if not symbols and not data.quote_symbols:
        _no_data(ax, "fills or quotes")
        return fig
    for symbol in symbols:
        pts = [f for f in data.fills if f["symbol"] == symbol]
        # from the run start (position carried from earlier runs) to the last record, stepping at each fill
        t = [0.0] + [f["t_s"] / div for f in pts] + [_span_s(data) / div]
        start = pts[0]["position_base"] - (1 if pts[0]["side"] == "buy" else -1) * pts[0]["size_base"]
        held = [start] + [f["position_base"] for f in pts]
        ax.step(t, [*held, held[-1]], where="post", lw=1.2, label=f"position {symbol}")
    if data.quote_symbols:
        q = data.quotes[data.quote_symbols[0]]
        ax.plot(q["t_s"] / div, q["net_delta_base"], color="black", lw=1.0, ls="--", label="net delta")
    ax.axhline(0, color="grey", lw=0.6)
    _label(ax, "Inventory and net delta", unit, "base units")
    return fig


def plot_pnl(data: RunData) -> Figure:
    fig = Figure(figsize=(11, 4.5), layout="constrained")
    ax = fig.add_subplot()
    div, unit = _time_axis(data)
    if not len(data.pnl_t_s):
        _no_data(ax, "PnL snapshots")
        return fig
    t = data.pnl_t_s / div
    for name, values in data.pnl.items():
        if name != "total":
            ax.plot(t, values, lw=1.0, label=name)
    ax.plot(t, data.pnl["total"], color="black", lw=2.0, label="total")
    ax.axhline(0, color="grey", lw=0.6)
    _label(ax, "PnL by attribution component", unit, "quote currency")
    return fig


def _state_segments(t: np.ndarray, states: list[str]) -> list[tuple[float, float, str]]:
    """Contiguous (start, end, state) runs of the risk state; each ends where the next begins."""
    segments: list[tuple[float, float, str]] = []
    for i, state in enumerate(states):
        if segments and segments[-1][2] == state:
            continue
        if segments:
            segments[-1] = (segments[-1][0], float(t[i]), segments[-1][2])
        segments.append((float(t[i]), float(t[i]), state))
    if segments:
        segments[-1] = (segments[-1][0], float(t[-1]), segments[-1][2])
    return segments


def plot_spread_risk(data: RunData) -> Figure:
    fig = Figure(figsize=(11, 4.5), layout="constrained")
    ts_ax, box_ax = fig.subplots(1, 2, width_ratios=(4, 1))
    div, unit = _time_axis(data)
    if not data.quote_symbols:
        _no_data(ts_ax, "quotes")
        _no_data(box_ax, "quotes")
        return fig
    q = data.quotes[data.quote_symbols[0]]
    risk_state = [str(s) for s in q["risk_state"]]
    states = list(dict.fromkeys(risk_state))
    colors = {s: STATE_COLORS[i % len(STATE_COLORS)] for i, s in enumerate(states)}
    labelled: set[str] = set()
    for start, end, state in _state_segments(q["t_s"] / div, risk_state):
        ts_ax.axvspan(start, end, color=colors[state], label=None if state in labelled else state, lw=0)
        labelled.add(state)
    ts_ax.plot(q["t_s"] / div, q["spread_bps"], color="black", lw=1.0, label="quoted spread")
    _label(ts_ax, f"Quoted spread and risk state ({data.quote_symbols[0]})", unit, "bps of mid")
    groups = [q["spread_bps"][q["risk_state"] == state] for state in states]
    groups = [g[~np.isnan(g)] for g in groups]
    box_ax.boxplot([g if len(g) else [np.nan] for g in groups], showfliers=False)
    box_ax.set_xticks(range(1, len(states) + 1), states, rotation=30, fontsize=8)
    box_ax.set_title("spread by state")
    box_ax.grid(alpha=0.3)
    return fig


def _png(fig: Figure) -> bytes:
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    return buf.getvalue()


# ---- html ----------------------------------------------------------------------------------------


def _utc(ns: Any) -> str:
    if not isinstance(ns, int) or ns <= 0:
        return "-"
    return datetime.fromtimestamp(ns / 1e9, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _table(headers: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _fill_stats(data: RunData) -> list[list[Any]]:
    out = []
    for symbol in sorted({f["symbol"] for f in data.fills}):
        pts = [f for f in data.fills if f["symbol"] == symbol]
        maker = sum(1 for f in pts if f["liquidity"] == "maker")
        out.append(
            [
                symbol,
                len(pts),
                f"{sum(f['size_base'] for f in pts):.6g}",
                f"{sum(f['size_base'] * f['price_px'] for f in pts):,.2f}",
                f"{sum(f['fee_quote'] for f in pts):,.4f}",
                f"{maker / len(pts):.0%}",
                f"{pts[-1]['position_base']:.6g}",
            ]
        )
    return out


def render_html(data: RunData, images: dict[str, bytes]) -> str:
    run = data.run
    ended = run.get("ended_ns")
    summary = run.get("summary_json")
    final_pnl = [[name, f"{values[-1]:,.4f}"] for name, values in data.pnl.items() if len(values)]
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>mmbot report {html.escape(str(run.get('run_id')))}</title>",
        "<style>body{font-family:sans-serif;margin:2em;max-width:1150px}table{border-collapse:collapse;"
        "margin:.5em 0 1.5em}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}th{background:#f4f4f4}"
        "img{max-width:100%;border:1px solid #eee;margin-bottom:1.5em}pre{background:#f8f8f8;padding:1em}</style>",
        "</head><body>",
        f"<h1>mmbot report: run {html.escape(str(run.get('run_id')))}</h1>",
        _table(
            ["venue", "started", "ended", "quote samples", "fills", "PnL snapshots"],
            [
                [
                    run.get("venue") or "-",
                    _utc(run.get("started_ns")),
                    _utc(ended) if ended else "not recorded (crashed or still running)",
                    sum(len(q["t_s"]) for q in data.quotes.values()),
                    len(data.fills),
                    len(data.pnl_t_s),
                ]
            ],
        ),
        "<h2>Fills</h2>",
        _table(
            ["symbol", "fills", "volume (base)", "notional (quote)", "fees (quote)", "maker", "position"],
            _fill_stats(data),
        )
        if data.fills
        else "<p>none</p>",
        "<h2>Final PnL (quote)</h2>",
        _table(["component", "value"], final_pnl) if final_pnl else "<p>none</p>",
    ]
    if data.deal_events:  # the token-loan deal's life: its start, sale, settled calls, the loan's return
        parts.append("<h2>Deal events</h2>")
        parts.append(
            _table(
                ["time", "run", "event", "quantity (base)", "price", "strike", "amount (quote)"],
                [
                    [
                        _utc(e["ts_ns"]),
                        e["run_id"],
                        e["kind"],
                        f"{e['quantity_base']:,.4f}",
                        f"{e['price_px']:,.6f}",
                        "-" if e["strike_px"] is None else f"{e['strike_px']:g}",
                        f"{e['amount_quote']:,.4f}",
                    ]
                    for e in data.deal_events
                ],
            )
        )
    captions = {
        "price.png": "Mid, our quotes and fills",
        "inventory.png": "Inventory and net delta",
        "pnl.png": "PnL by attribution component",
        "spread_risk.png": "Quoted spread against risk state",
    }
    for name, png in images.items():
        b64 = base64.b64encode(png).decode("ascii")
        parts.append(f"<h2>{html.escape(captions.get(name, name))}</h2>")
        parts.append(f"<img alt='{html.escape(name)}' src='data:image/png;base64,{b64}'>")
    if summary:
        parts.append(
            "<h2>Session summary</h2><pre>" + html.escape(json.dumps(json.loads(summary), indent=2)) + "</pre>"
        )
    parts.append("<h2>All runs in this ledger</h2>")
    parts.append(
        _table(
            ["run", "venue", "venue session", "started", "ended cleanly", "fills"],
            [
                [
                    r["run_id"],
                    r.get("venue") or "-",
                    r.get("venue_session") or "-",
                    _utc(r.get("started_ns")),
                    "yes" if r.get("ended_ns") else "no",
                    r.get("fills", 0),
                ]
                for r in data.all_runs
            ],
        )
    )
    parts.append("</body></html>")
    return "\n".join(parts)


def build_report(ledger_path: str | Path, out_dir: str | Path, run_id: str | None = None) -> Path:
    """Write OUT/index.html and the PNGs for `run_id` (default: the latest run with data)."""
    db = open_read_only(Path(ledger_path))
    try:
        run_id = run_id or pick_run(db)
        if run_id is None:
            raise ReportError(f"{ledger_path}: the ledger has no runs yet")
        data = load_run(db, run_id)
    finally:
        db.close()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    images: dict[str, bytes] = {}
    for name, plot in (
        ("price.png", plot_price),
        ("inventory.png", plot_inventory),
        ("pnl.png", plot_pnl),
        ("spread_risk.png", plot_spread_risk),
    ):
        images[name] = _png(plot(data))
        (out / name).write_bytes(images[name])
    index = out / "index.html"
    index.write_text(render_html(data, images), encoding="utf-8")
    return index


def cmd_report(args: argparse.Namespace) -> int:
    if getattr(args, "sweep", None):
        return _cmd_sweep_report(Path(args.sweep), Path(args.out))
    ledger = args.ledger or load_settings().ledger.path
    try:
        index = build_report(ledger, args.out)
    except ReportError as exc:
        print(f"mmbot report: {exc}", file=sys.stderr)
        return 1
    except sqlite3.DatabaseError as exc:
        print(f"mmbot report: {ledger}: not a readable ledger ({exc})", file=sys.stderr)
        return 1
    except OSError as exc:  # e.g. an output directory we may not write to
        print(f"mmbot report: cannot write the report: {exc}", file=sys.stderr)
        return 1
    print(index)
    return 0


def _cmd_sweep_report(sweep: Path, out: Path) -> int:
    """`mmbot report --sweep PATH`: OUT/sweep.html (the sweep's plot, table and best TOML) and sweep.png."""
    try:
        index = build_sweep_report(sweep, out)
    except SweepReportError as exc:
        print(f"mmbot report: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"mmbot report: cannot write the report: {exc}", file=sys.stderr)
        return 1
    print(index)
    return 0
