"""The realism scorecard: a recording's statistics beside the mock's under a config, a verdict per row.

Rules (the issue's "done when", docs/mock-market.md):

* `x2`: same sign and within a factor of 2 (max / min <= 2);
* `±0.1`: the lag-1 sign autocorrelation within 0.1;
* `x2|±0.05`: longer-lag sign autocorrelations, within a factor of 2 or 0.05 (their sampling error on a
  few thousand orders is about 1 / sqrt(N) ~ 0.02, so a ratio of two small numbers means little);
* `regime`: the same spread regime (1-tick share on the same side of 1/2), and when wide the median
  spread within a factor of 2;
* `sign`: the same sign (the passive-fill markouts).

The mock's value of a row is the median over its seeds: a few minutes of one seed are noisy (the
calibrated preset's markout at 5 s changes sign between seeds).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bot.market_stats import ACF_LAGS, VOL_HORIZONS_S, MarketStats, Tape, autocorrelation


@dataclass(frozen=True, slots=True)
class Row:
    """One statistic: the recording's value, the mock's (the median over its seeds) and each seed's."""

    name: str
    unit: str
    real: float
    mock: float
    rule: str
    mock_seeds: tuple[float, ...] = ()

    @property
    def ok(self) -> bool:
        return verdict(self.rule, self.real, self.mock)


def _x2(a: float, b: float) -> bool:
    if not (math.isfinite(a) and math.isfinite(b)):
        return False
    if a == 0 or b == 0:
        return a == b
    return (a > 0) == (b > 0) and max(abs(a), abs(b)) / min(abs(a), abs(b)) <= 2.0


def verdict(rule: str, real: float, mock: float) -> bool:
    if rule == "x2":
        return _x2(real, mock)
    if rule == "±0.1":
        return abs(real - mock) <= 0.1
    if rule == "x2|±0.05":
        return _x2(real, mock) or abs(real - mock) <= 0.05
    if rule == "sign":
        return math.isfinite(real) and math.isfinite(mock) and (real > 0) == (mock > 0)
    if rule == "regime":  # `real` / `mock` are 1-tick shares here
        return (real >= 0.5) == (mock >= 0.5)
    raise ValueError(f"unknown rule {rule!r}")


Getter = Callable[[MarketStats], float]


def _rows() -> list[tuple[str, str, Getter, str]]:
    rows: list[tuple[str, str, Getter, str]] = [
        ("spread: 1-tick share", "", lambda s: s.spread_1tick_share, "regime"),
        ("spread: median", "ticks", lambda s: s.spread_median_ticks, "x2"),
        ("depth within 10 bps", "base", lambda s: s.depth10_median_base, "x2"),
        ("depth within 50 bps", "base", lambda s: s.depth50_median_base, "x2"),
        ("taker orders", "/s", lambda s: s.orders_per_s, "x2"),
        ("arrivals: Fano factor, 1 s", "", lambda s: s.fano_1s, "x2"),
        ("arrivals: gaps < 10 ms", "share", lambda s: s.gap_under_10ms_share, "x2"),
        ("arrivals: median gap", "ms", lambda s: s.gap_median_ms, "x2"),
        ("size p50", "base", lambda s: s.size_p50_base, "x2"),
        ("size p90", "base", lambda s: s.size_p90_base, "x2"),
        ("size p99", "base", lambda s: s.size_p99_base, "x2"),
        ("size p99 / p50", "", lambda s: s.size_p99_over_p50, "x2"),
        ("size tail index (Hill, top 5 %)", "", lambda s: s.size_tail_index, "x2"),
        ("orders sweeping > 1 level", "share", lambda s: s.sweep_share, "x2"),
    ]
    for lag in ACF_LAGS:
        rule = "±0.1" if lag == 1 else "x2|±0.05"
        rows.append((f"sign autocorrelation, lag {lag}", "", lambda s, k=lag: s.sign_acf[k], rule))  # type: ignore[misc]
    for h in VOL_HORIZONS_S:
        rows.append((f"volatility at {h:g} s", "bps/√s", lambda s, k=h: s.vol_bps_per_sqrt_s[k], "x2"))  # type: ignore[misc]
    rows += [
        ("100 ms return autocorrelation", "", lambda s: s.ret_acf_100ms, "x2"),
        ("mid moves", "/s", lambda s: s.mid_moves_per_s, "x2"),
        ("mid move: median size", "bps", lambda s: s.mid_move_median_bps, "x2"),
        ("impact at 1 s", "bps", lambda s: s.impact_1s_bps, "x2"),
        ("impact at 5 s", "bps", lambda s: s.impact_5s_bps, "x2"),
        ("passive bid: filled within 60 s", "share", lambda s: s.probe_fill_share, "x2"),
        ("passive bid: median time to fill", "s", lambda s: s.probe_fill_median_s, "x2"),
        ("passive bid: markout at 1 s", "bps", lambda s: s.probe_markout_1s_bps, "sign"),
        ("passive bid: markout at 5 s", "bps", lambda s: s.probe_markout_5s_bps, "sign"),
    ]
    return rows


def scorecard(real: MarketStats, mocks: Sequence[MarketStats]) -> list[Row]:
    """A row per statistic; the mock's value is the median over `mocks` (one per seed)."""
    out = []
    for name, unit, get, rule in _rows():
        per_seed = tuple(get(m) for m in mocks)
        out.append(Row(name, unit, get(real), float(np.median(per_seed)), rule, per_seed))
    return out


def _fmt(x: float) -> str:
    if not math.isfinite(x):
        return str(x)
    if x != 0 and (abs(x) >= 10_000 or abs(x) < 0.001):
        return f"{x:.3g}"
    return f"{x:.4g}"


def format_scorecard(rows: list[Row], real_label: str, mock_label: str) -> str:
    name_w = max(len(f"{r.name} ({r.unit})" if r.unit else r.name) for r in rows)
    out = [f"{'statistic':<{name_w}}  {'recording':>11}  {'mock':>11}  {'rule':>9}  verdict  each seed"]
    for r in rows:
        name = f"{r.name} ({r.unit})" if r.unit else r.name
        seeds = " ".join(_fmt(v) for v in r.mock_seeds) if len(r.mock_seeds) > 1 else ""
        verdict_text = "ok" if r.ok else "MISS"
        out.append(f"{name:<{name_w}}  {_fmt(r.real):>11}  {_fmt(r.mock):>11}  {r.rule:>9}  {verdict_text:<7}  {seeds}")
    passed = sum(r.ok for r in rows)
    out.append(f"{passed}/{len(rows)} rows within their rule; recording: {real_label}; mock: {mock_label}")
    return "\n".join(out)


def plot_scorecard(real: Tape, mock: Tape, real_stats: MarketStats, mock_stats: MarketStats, path: Path) -> None:
    """Four panels, recording vs mock: sign autocorrelation at lags 1-100, volatility signature, the
    size distribution's tail (CCDF, log-log) and the spread distribution."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, axes = plt.subplots(2, 2, figsize=(10, 7))
    lags = range(1, 101)
    for tape, label in ((real, "recording"), (mock, "mock")):
        acf = autocorrelation(tape.order_sign, lags)
        axes[0][0].plot(list(lags), [acf[k] for k in lags], label=label)
        sizes = np.sort(np.asarray(tape.order_size_base))
        if len(sizes):
            ccdf = 1.0 - np.arange(len(sizes)) / len(sizes)
            axes[1][0].loglog(sizes, ccdf, label=label)
        spread = np.asarray(tape.grid_spread_ticks)
        if len(spread):
            values, counts = np.unique(np.minimum(spread, 20), return_counts=True)
            axes[1][1].plot(values, counts / counts.sum(), "o-", label=label)
    for stats, label in ((real_stats, "recording"), (mock_stats, "mock")):
        hs = sorted(stats.vol_bps_per_sqrt_s)
        axes[0][1].plot(hs, [stats.vol_bps_per_sqrt_s[h] for h in hs], "o-", label=label)
    axes[0][0].set(title="order-sign autocorrelation", xlabel="lag (orders)", xscale="log")
    axes[0][1].set(title="volatility signature", xlabel="horizon (s)", ylabel="bps/√s", xscale="log")
    axes[1][0].set(title="taker order size CCDF", xlabel="size (base)", ylabel="P(size > x)")
    axes[1][1].set(title="spread distribution (capped at 20)", xlabel="spread (ticks)", ylabel="share", yscale="log")
    for ax in axes.flat:
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
