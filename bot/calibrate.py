"""`mmbot calibrate FILE... [--json] [--out DIR]`: fit the quoting model's market parameters from a recording.

From a recorded spot file (Binance format, `docs/replay.md`; a perp file beside it is accepted and
ignored), on the recording's own clock:

- σ (px/√s): the quoting `SigmaEstimator` with a half-life as long as the recording, so its value is
  the recording's average variance rate, sampled on `estimator.sigma_sample_ms`;
- A (1/s) and k (1/px): the engine's `ArrivalEstimator`, Δ-weighted (`quoter.order_size_base`, or
  `--order-size`), with one window covering the whole recording: the fill rate of a Δ-sized quote at
  depth δ, `λ(δ) = A·exp(−k·δ)`;
- informed-flow share: the share of public prints (and of their volume) whose taker was right 5 s
  later, i.e. the mid moved past the print's price in the taker's direction
  (`(mid(t + 5 s) − price)·aggressor > 0`): after paying its depth, the taker still made money;
- a suggested γ for a target inventory standard deviation (`--target-inventory-std`, base): with
  symmetric flow, a linearised GLFT inventory is an Ornstein-Uhlenbeck process: each side fills
  `λ0 = λ(half spread)` per second, the skew `σ·c2·q` shifts the fill rates by `∓k·σ·c2·q`, so
  `dq = −2·λ0·k·σ·c2·Δ·q·dt + Δ·√(2·λ0)·dW` and `std(q) = sqrt(Δ / (2·k·σ·c2))`, independent of λ0.
  c2 grows with γ, so γ is found by bisection on `σ·c2(γ) = Δ / (2·k·std²)`.

It prints a human report and a TOML block for `config/`; with `--json` those go to stderr and stdout
is one JSON document (`bot/output.py`); `--out DIR`
writes `intensity.png`: the measured λ(δ) (fill-weighted exceedance per side, per second) against the
fitted curve.
"""

from __future__ import annotations

import argparse
import bisect
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bot.config import ConfigError, load_settings
from bot.core.book import OrderBook
from bot.core.estimators import ArrivalEstimator, SigmaEstimator
from bot.core.quoting import MarketInputs, QuoteParams, glft_quote
from bot.domain import BookDelta, BookSnapshot, TradePrint
from bot.output import write_json

NS_PER_S = 1_000_000_000
INFORMED_HORIZON_S = 5.0


class CalibrateUsageError(Exception):
    """Files that cannot be calibrated from: one line for the operator, exit 2."""


def _mid_at(times: list[int], mids: list[float], t_ns: int) -> float:
    i = bisect.bisect_right(times, t_ns) - 1
    return mids[i] if i >= 0 else math.nan


def read_recording(files: Sequence[str | Path]) -> dict[str, Any]:
    """The spot file's mids (on every book change) and trades (with the mid just before each)."""
    from bot.replay_cli import ReplayUsageError, plan_replay
    from bot.venues.replay import ReplaySource

    try:
        plan = plan_replay(files)
    except ReplayUsageError as exc:
        raise CalibrateUsageError(str(exc)) from exc
    spot = plan.spot
    source = ReplaySource(plan.paths, plan.file_instruments)
    book = OrderBook(spot.symbol)
    times: list[int] = []
    mids: list[float] = []
    trades: list[tuple[int, float, float, Any, float]] = []  # (ts, px, mid before, aggressor, size)
    for now_ns, event in source:
        if getattr(event, "symbol", None) != spot.symbol:
            continue
        if isinstance(event, BookSnapshot | BookDelta):
            book.apply(event)
            mid = book.mid_ticks
            if book.is_valid and mid is not None:
                mid_px = mid * spot.tick_size
                if not mids or mids[-1] != mid_px:
                    times.append(now_ns)
                    mids.append(mid_px)
        elif isinstance(event, TradePrint) and mids:
            trades.append((now_ns, event.price_ticks * spot.tick_size, mids[-1], event.aggressor,
                           spot.size(event.size_lots)))  # fmt: skip
    if len(mids) < 2 or len(trades) < 50:
        raise CalibrateUsageError(f"{plan.paths[0]}: too little data ({len(mids)} mids, {len(trades)} trades)")
    return {"symbol": spot.symbol, "tick_size": spot.tick_size, "times": times, "mids": mids, "trades": trades}


def suggest_gamma(
    target_std_base: float, sigma: float, a_per_s: float, k_per_px: float, order_size_base: float, xi: str
) -> float | None:
    """γ (1/quote) with `sqrt(Δ / (2·k·σ·c2(γ))) = target` (module docstring); None if out of [1e-8, 1e4]."""
    want_skew = order_size_base / (2.0 * k_per_px * target_std_base**2)

    def skew(gamma: float) -> float:
        params = QuoteParams(gamma_per_quote=gamma, order_size_base=order_size_base, glft_xi=xi,  # type: ignore[arg-type]
                             min_spread_bps=0.0)  # fmt: skip
        market = MarketInputs(mid_px=1.0, inventory_base=0.0, sigma_px_per_sqrt_s=sigma, a_per_s=a_per_s,
                              k_per_px=k_per_px)  # fmt: skip
        return glft_quote(params, market).skew_px_per_base

    lo, hi = 1e-8, 1e4
    if not (skew(lo) <= want_skew <= skew(hi)):
        return None
    for _ in range(200):  # bisection on log γ: skew is increasing in γ
        mid = math.sqrt(lo * hi)
        if skew(mid) < want_skew:
            lo = mid
        else:
            hi = mid
        if hi / lo < 1 + 1e-9:
            break
    return math.sqrt(lo * hi)


def calibrate(
    files: Sequence[str | Path], config: str | None, order_size_base: float | None, target_std_base: float | None
) -> dict[str, Any]:
    settings = load_settings(config)
    est = settings.estimator
    delta = order_size_base if order_size_base is not None else settings.quoter.order_size_base
    if not (0 < delta < math.inf):
        raise ConfigError(f"--order-size must be a finite number > 0, got {delta!r}")
    data = read_recording(files)
    times, mids, trades = data["times"], data["mids"], data["trades"]
    start_ns, end_ns = times[0], max(times[-1], trades[-1][0])
    duration_s = (end_ns - start_ns) / NS_PER_S

    sigma_est = SigmaEstimator(est.sigma_px_per_sqrt_s, max(duration_s, 1.0), est.sigma_sample_ms)
    for t, m in zip(times, mids, strict=True):
        sigma_est.update(t, m)
    sigma_est.advance(end_ns)
    # an EWMA with a half-life of the whole recording still leans on its end: the plain average
    # variance rate over the grid is what a config warm start should be
    grid_ns = est.sigma_sample_ms * 1_000_000
    sq = 0.0
    prev = mids[0]
    t = start_ns + grid_ns
    while t <= end_ns:
        m = _mid_at(times, mids, t)
        sq += (m - prev) ** 2
        prev = m
        t += grid_ns
    sigma = math.sqrt(sq / duration_s) if duration_s > 0 else math.nan

    arrivals = ArrivalEstimator(est.a_per_s, est.k_per_px, duration_s + 1.0, 50, buckets=est.ak_buckets,
                                refit_ms=0, start_ns=start_ns, order_size_base=delta)  # fmt: skip
    informed = informed_volume = volume = 0.0
    counted = 0
    horizon_ns = round(INFORMED_HORIZON_S * NS_PER_S)
    depths: list[tuple[float, float]] = []  # (depth, fills) for the plot
    for ts, px, mid, aggressor, size in trades:
        arrivals.on_trade(ts, px, mid, aggressor, size)
        depth = px - mid if aggressor.sign > 0 else mid - px
        depths.append((max(depth, 0.0), min(1.0, size / delta)))
        if ts + horizon_ns <= end_ns:
            later = _mid_at(times, mids, ts + horizon_ns)
            counted += 1
            volume += size
            if (later - px) * aggressor.sign > 0:
                informed += 1
                informed_volume += size
    fit = arrivals.update(end_ns)
    xi = settings.quoter.glft_xi
    gamma = (
        suggest_gamma(target_std_base, sigma, fit.a_per_s, fit.k_per_px, delta, xi)
        if target_std_base is not None and fit.fitted and sigma > 0
        else None
    )
    return {
        "files": [str(f) for f in files],
        "symbol": data["symbol"],
        "duration_s": round(duration_s, 3),
        "trades": len(trades),
        "order_size_base": delta,
        "sigma_px_per_sqrt_s": sigma,
        "a_per_s": fit.a_per_s,
        "k_per_px": fit.k_per_px,
        "fit": fit.reason,
        "informed_share": round(informed / counted, 6) if counted else None,
        "informed_volume_share": round(informed_volume / volume, 6) if volume > 0 else None,
        "informed_horizon_s": INFORMED_HORIZON_S,
        "target_inventory_std_base": target_std_base,
        "suggested_gamma_per_quote": gamma,
        "glft_xi": xi,
        "_depths": depths,
    }


def toml_block(result: dict[str, Any]) -> str:
    lines = [
        f"# mmbot calibrate: {result['symbol']}, {result['duration_s']:g} s, {result['trades']} trades, "
        f"Δ = {result['order_size_base']:g}",
        "[estimator]",
        f"sigma_px_per_sqrt_s = {result['sigma_px_per_sqrt_s']:.6g}",
        f"a_per_s = {result['a_per_s']:.6g}",
        f"k_per_px = {result['k_per_px']:.6g}",
    ]
    if result["suggested_gamma_per_quote"] is not None:
        lines += [
            "",
            "[quoter]",
            f"# for an inventory std of {result['target_inventory_std_base']:g} base (linearised GLFT)",
            f"gamma_per_quote = {result['suggested_gamma_per_quote']:.6g}",
            f"order_size_base = {result['order_size_base']:g}",
        ]
    return "\n".join(lines)


def write_plot(result: dict[str, Any], out_dir: Path) -> Path:
    """Measured fill-weighted exceedance λ(δ) per side per second against A·exp(−k·δ)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pts = sorted(result["_depths"])
    depths = [d for d, _ in pts]
    total = 0.0
    suffix = []
    for _, w in reversed(pts):
        total += w
        suffix.append(total)
    suffix.reverse()
    exposure = 2.0 * result["duration_s"]
    hi = depths[int(0.99 * (len(depths) - 1))]
    edges = [hi * i / 40 for i in range(41)]
    xs, ys = [], []
    for e in edges:
        i = bisect.bisect_left(depths, e)
        if i < len(depths):
            xs.append(e)
            ys.append(suffix[i] / exposure)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.semilogy(xs, ys, "o", ms=4, label="recording: fills of a Δ quote reaching δ, per side per s")
    ax.semilogy(xs, [result["a_per_s"] * math.exp(-result["k_per_px"] * x) for x in xs], "-",
                label=f"fit A = {result['a_per_s']:.4g}/s, k = {result['k_per_px']:.4g}/px")  # fmt: skip
    ax.set_xlabel("depth δ from mid (price units)")
    ax.set_ylabel("λ(δ), 1/s")
    ax.set_title(f"{result['symbol']}: arrival intensity (Δ = {result['order_size_base']:g})")
    ax.legend(fontsize=8)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "intensity.png"
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def cmd_calibrate(args: argparse.Namespace) -> int:
    if getattr(args, "mock_config", None) or getattr(args, "check", None):  # the mock market's flags
        from bot.market_calibrate import cmd_calibrate_market

        return cmd_calibrate_market(args)
    if args.target_inventory_std is not None and not (0 < args.target_inventory_std < math.inf):
        raise ConfigError(f"--target-inventory-std must be a finite number > 0, got {args.target_inventory_std!r}")
    try:
        result = calibrate(args.files, args.config, args.order_size, args.target_inventory_std)
    except CalibrateUsageError as exc:
        print(f"mmbot calibrate: {exc}", file=sys.stderr)
        return 2
    if args.out:
        result["plot"] = str(write_plot(result, Path(args.out)))
    depths = result.pop("_depths")
    print(
        f"calibrate {result['symbol']}: {result['duration_s']:g} s, {result['trades']} trades "
        f"({len(depths)} priced), fit {result['fit']}; informed share {result['informed_share']} "
        f"of prints ({result['informed_volume_share']} of volume) at {INFORMED_HORIZON_S:g} s"
    )
    print(toml_block(result))
    if "plot" in result:
        print(f"plot: {result['plot']}")
    if args.json:
        write_json(args, result)
    return 0
