"""Market statistics of a recorded or simulated tape: one code path for real and mock markets.

`collect_tape(path)` reads a file in the Binance recording format (tests/data/binance/README.md), the
format `mmbot replay` reads and `mmbot exchange record` writes, through the replay's own parser and
book sync (`bot.venues.replay.ReplaySource`), into a `Tape`: the book sampled on a time grid and the
taker orders. `market_stats(tape)` turns a tape (or a time slice of one) into `MarketStats`.

Definitions (every one applies unchanged to real and mock data):

* clock: the recording's local receive time for the book and for relating trades to the book; the
  venue's trade time `T` (ms) only to group trades into taker orders and to measure gaps between them
  (a recorder's receive clock can be offset from the venue's: the bundled spot file's is ~1.3 s early).
* taker order: consecutive trade prints with the same venue time and aggressor side (one incoming
  order sweeping the book prints one trade per resting order or level). Its size is the sum, its sign
  +1 for a buy; it *sweeps* when it printed at more than one price.
* book samples every `grid_ms` (100 ms; Binance spot publishes depth at 100 ms, the mock at its
  `book_interval_ms`): mid, spread in ticks, best bid and its size; depth within 10 / 50 bps of the mid
  (base units, both sides) every `depth_every_ms`.
* arrivals: Fano factor (variance / mean) of taker-order counts in 1 s bins (1 for Poisson, > 1 bursty);
  gaps between consecutive orders' venue times, the share under 10 ms and the median.
* sizes: quantiles of taker-order size (base units) and the Hill estimate of the tail index on the
  largest 5 % (alpha: P(size > x) ~ x^-alpha; exponential sizes give a large alpha).
* sign autocorrelation of the order signs at lags 1..100 (Pearson, mean removed).
* volatility signature: std of mid log returns over h, per sqrt(h), in bps/sqrt(s), for h = 0.1, 1, 5,
  10 s; and the lag-1 autocorrelation of 100 ms returns (negative: bid-ask bounce, positive: trending).
* mid moves: how often the grid mid changes (moves per second, over the grid steps) and the median
  size of a change, bps. A real book's mid is sticky and jumps (the bundled BTCUSDT: in ~7 % of
  100 ms steps, by ~0.4 bps), a book that follows a diffusing value moves on nearly every step.
* impact at h: mean of sign * (mid(t + h) - mid(t)) / mid(t), bps, over taker orders (mid on the grid).
* passive-fill probe: every `probe_every_s` a hypothetical 1-lot bid joins the back of the queue at the
  best bid. It fills when a sell prints below its price, or when sells at its price have traded more
  than the size that was queued ahead of it (cancels ahead are not credited: conservative, and the same
  for both tapes). Reported: share filled within `probe_timeout_s`, median time to fill, and the markout
  (mid(t_fill + h) - price) / price in bps at h = 1 s and 5 s: positive when a resting bid's fill earns.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from bot.core.book import OrderBook
from bot.domain import BookDelta, BookSnapshot, Instrument, Side, TradePrint

NS_PER_S = 1_000_000_000
NS_PER_MS = 1_000_000
VOL_HORIZONS_S = (0.1, 1.0, 5.0, 10.0)
ACF_LAGS = (1, 2, 5, 10, 20, 50, 100)


@dataclass(slots=True)
class Tape:
    """What the statistics need from a stream, in plain arrays (times in ns, prices in quote units)."""

    symbol: str
    tick_size: float
    lot_size: float
    grid_ms: int
    grid_t_ns: list[int] = field(default_factory=list)
    grid_mid_px: list[float] = field(default_factory=list)
    grid_spread_ticks: list[int] = field(default_factory=list)
    grid_bid_ticks: list[int] = field(default_factory=list)
    grid_bid_lots: list[int] = field(default_factory=list)
    depth_t_ns: list[int] = field(default_factory=list)
    depth10_base: list[float] = field(default_factory=list)
    depth50_base: list[float] = field(default_factory=list)
    # taker orders: receive time, venue time (ms), sign, size (base), distinct prices
    order_t_ns: list[int] = field(default_factory=list)
    order_venue_ms: list[int] = field(default_factory=list)
    order_sign: list[int] = field(default_factory=list)
    order_size_base: list[float] = field(default_factory=list)
    order_levels: list[int] = field(default_factory=list)
    # trade prints: receive time, price (ticks), size (lots), sign
    trade_t_ns: list[int] = field(default_factory=list)
    trade_ticks: list[int] = field(default_factory=list)
    trade_lots: list[int] = field(default_factory=list)
    trade_sign: list[int] = field(default_factory=list)

    @property
    def start_ns(self) -> int:
        return self.grid_t_ns[0] if self.grid_t_ns else 0

    @property
    def end_ns(self) -> int:
        return self.grid_t_ns[-1] if self.grid_t_ns else 0

    def duration_s(self) -> float:
        return (self.end_ns - self.start_ns) / NS_PER_S

    def slice(self, lo_frac: float, hi_frac: float) -> Tape:
        """The part of the tape between two fractions of its duration (e.g. 0, 0.5: the first half)."""
        t0 = self.start_ns + round((self.end_ns - self.start_ns) * lo_frac)
        t1 = self.start_ns + round((self.end_ns - self.start_ns) * hi_frac)
        out = Tape(self.symbol, self.tick_size, self.lot_size, self.grid_ms)
        for prefix, names in (
            ("grid", ("grid_mid_px", "grid_spread_ticks", "grid_bid_ticks", "grid_bid_lots")),
            ("depth", ("depth10_base", "depth50_base")),
            ("order", ("order_venue_ms", "order_sign", "order_size_base", "order_levels")),
            ("trade", ("trade_ticks", "trade_lots", "trade_sign")),
        ):
            times: list[int] = getattr(self, f"{prefix}_t_ns")
            i, j = bisect.bisect_left(times, t0), bisect.bisect_left(times, t1)
            setattr(out, f"{prefix}_t_ns", times[i:j])
            for name in names:
                setattr(out, name, getattr(self, name)[i:j])
        return out


class TapeCollector:
    """Builds a `Tape` from `(now_ns, event)` pairs (book snapshots/deltas and trades of one symbol)."""

    def __init__(self, instrument: Instrument, grid_ms: int = 100, depth_every_ms: int = 1000) -> None:
        self.instrument = instrument
        self.book = OrderBook(instrument.symbol)
        self.tape = Tape(instrument.symbol, instrument.tick_size, instrument.lot_size, grid_ms)
        self._grid_ns = grid_ms * NS_PER_MS
        self._depth_ns = depth_every_ms * NS_PER_MS
        self._next_grid = -1
        self._next_depth = -1
        self._pending: list[TradePrint] = []  # prints of the taker order being grouped
        self._pending_t_ns = 0

    def feed(self, now_ns: int, event: object) -> None:
        kind = type(event)
        if kind is not BookDelta and kind is not BookSnapshot and kind is not TradePrint:
            return
        if event.symbol != self.instrument.symbol:  # type: ignore[attr-defined]
            return
        self._sample_until(now_ns)
        if kind is TradePrint:
            self._on_trade(now_ns, event)  # type: ignore[arg-type]
        else:
            self.book.apply(event)  # type: ignore[arg-type]
            if self._next_grid < 0 and self.book.is_valid:  # the grid starts at the first synced book
                self._next_grid = now_ns - now_ns % self._grid_ns + self._grid_ns
                self._next_depth = self._next_grid

    def finish(self) -> Tape:
        self._flush_order()
        return self.tape

    def _sample_until(self, now_ns: int) -> None:
        """Record the book as it stood at every grid point up to `now_ns` (before this event)."""
        book = self.book
        if not book.is_valid or self._next_grid < 0:
            return
        bid, ask = book.best_bid_ticks, book.best_ask_ticks
        if bid is None or ask is None:
            return
        tape = self.tape
        tick = self.instrument.tick_size
        while self._next_grid <= now_ns:
            t = self._next_grid
            tape.grid_t_ns.append(t)
            tape.grid_mid_px.append((bid + ask) * 0.5 * tick)
            tape.grid_spread_ticks.append(ask - bid)
            tape.grid_bid_ticks.append(bid)
            tape.grid_bid_lots.append(book.best_bid_lots or 0)
            if t >= self._next_depth:
                self._next_depth = t + self._depth_ns
                mid_px = (bid + ask) * 0.5 * tick
                tape.depth_t_ns.append(t)
                for bps, out in ((10, tape.depth10_base), (50, tape.depth50_base)):
                    within = math.floor(mid_px * bps / 10_000 / tick)
                    b, a = book.depth_lots(within)
                    out.append((b + a) * self.instrument.lot_size)
            self._next_grid = t + self._grid_ns

    def _on_trade(self, now_ns: int, trade: TradePrint) -> None:
        tape = self.tape
        sign = 1 if trade.aggressor is Side.BUY else -1
        tape.trade_t_ns.append(now_ns)
        tape.trade_ticks.append(trade.price_ticks)
        tape.trade_lots.append(trade.size_lots)
        tape.trade_sign.append(sign)
        pending = self._pending
        if pending and (pending[0].ts_venue_ns != trade.ts_venue_ns or pending[0].aggressor is not trade.aggressor):
            self._flush_order()
        if not pending:
            self._pending_t_ns = now_ns
        pending.append(trade)

    def _flush_order(self) -> None:
        pending = self._pending
        if not pending:
            return
        tape = self.tape
        tape.order_t_ns.append(self._pending_t_ns)
        tape.order_venue_ms.append(pending[0].ts_venue_ns // NS_PER_MS)
        tape.order_sign.append(1 if pending[0].aggressor is Side.BUY else -1)
        tape.order_size_base.append(sum(t.size_lots for t in pending) * self.instrument.lot_size)
        tape.order_levels.append(len({t.price_ticks for t in pending}))
        pending.clear()


def collect_events(
    events: Iterable[tuple[int, object]], instrument: Instrument, grid_ms: int = 100, depth_every_ms: int = 1000
) -> Tape:
    collector = TapeCollector(instrument, grid_ms, depth_every_ms)
    for now_ns, event in events:
        collector.feed(now_ns, event)
    return collector.finish()


def collect_tape(path: str | Path, grid_ms: int = 100, depth_every_ms: int = 1000) -> Tape:
    """The tape of one recorded file (Binance format), read and synced as `mmbot replay` does."""
    from bot.venues.replay import ReplaySource  # the venue layer only when reading a file

    source = ReplaySource([path])
    (instrument,) = source.instruments.values()
    return collect_events(source, instrument, grid_ms, depth_every_ms)


# --------------------------------------------------------------------------------------------------
# statistics
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MarketStats:
    """The statistics of one tape (units in the names; see the module docstring for definitions)."""

    duration_s: float
    mid_px: float
    tick_size: float
    tick_bps: float
    spread_1tick_share: float
    spread_median_ticks: float
    spread_mean_ticks: float
    spread_p90_ticks: float
    depth10_median_base: float
    depth50_median_base: float
    orders: int
    orders_per_s: float
    fano_1s: float
    gap_under_10ms_share: float
    gap_median_ms: float
    size_p50_base: float
    size_p90_base: float
    size_p99_base: float
    size_p99_over_p50: float
    size_tail_index: float
    sweep_share: float
    sign_acf: dict[int, float]
    vol_bps_per_sqrt_s: dict[float, float]
    ret_acf_100ms: float
    mid_moves_per_s: float
    mid_move_median_bps: float
    impact_1s_bps: float
    impact_5s_bps: float
    probe_fill_share: float
    probe_fill_median_s: float
    probe_markout_1s_bps: float
    probe_markout_5s_bps: float

    def to_dict(self) -> dict[str, object]:
        out = asdict(self)
        out["sign_acf"] = {str(k): v for k, v in self.sign_acf.items()}
        out["vol_bps_per_sqrt_s"] = {f"{k:g}s": v for k, v in self.vol_bps_per_sqrt_s.items()}
        return out


def fano_factor(times_ns: list[int], bin_s: float, start_ns: int, end_ns: int) -> float:
    """Variance over mean of event counts in consecutive bins of `bin_s` covering [start, end)."""
    n_bins = int((end_ns - start_ns) // (bin_s * NS_PER_S))
    if n_bins < 2:
        return math.nan
    idx = (np.asarray(times_ns, dtype=np.int64) - start_ns) // int(bin_s * NS_PER_S)
    counts = np.bincount(idx[(idx >= 0) & (idx < n_bins)], minlength=n_bins)
    mean = counts.mean()
    return float(counts.var() / mean) if mean > 0 else math.nan


def hill_tail_index(sizes: list[float] | np.ndarray, top_share: float = 0.05, min_k: int = 10) -> float:
    """Hill's estimator of the tail index from the largest `top_share` of the sample:
    alpha = 1 / mean(ln(x_(i) / x_(k+1))), i = 1..k. Exact-Pareto samples give alpha back."""
    x = np.sort(np.asarray(sizes, dtype=float))[::-1]
    k = max(min_k, int(len(x) * top_share))
    if len(x) <= k or x[k] <= 0:
        return math.nan
    logs = np.log(x[:k] / x[k])
    mean = logs.mean()
    return float(1.0 / mean) if mean > 0 else math.inf


def autocorrelation(x: list[int] | list[float] | np.ndarray, lags: Iterable[int]) -> dict[int, float]:
    """Sample autocorrelation (mean removed, normalised by the lag-0 sum) at each lag."""
    a = np.asarray(x, dtype=float)
    a = a - a.mean()
    denom = float(np.dot(a, a))
    out = {}
    for lag in lags:
        out[lag] = float(np.dot(a[:-lag], a[lag:]) / denom) if 0 < lag < len(a) and denom > 0 else math.nan
    return out


def _mid_at(tape: Tape, t_ns: np.ndarray) -> np.ndarray:
    """The grid mid in force at each time (the last grid point at or before it), NaN outside the grid."""
    grid = np.asarray(tape.grid_t_ns, dtype=np.int64)
    mids = np.asarray(tape.grid_mid_px, dtype=float)
    idx = np.searchsorted(grid, t_ns, side="right") - 1
    out = np.full(len(t_ns), np.nan)
    ok = (idx >= 0) & (t_ns <= grid[-1])
    out[ok] = mids[idx[ok]]
    return out


def mid_moves(tape: Tape) -> tuple[float, float]:
    """(mid changes per second of grid time, median |change| in bps) over consecutive grid samples."""
    mids = np.asarray(tape.grid_mid_px, dtype=float)
    if len(mids) < 2:
        return math.nan, math.nan
    moves = np.abs(np.diff(mids))[np.diff(mids) != 0] / mids[:-1][np.diff(mids) != 0] * 10_000
    per_s = len(moves) / ((len(mids) - 1) * tape.grid_ms / 1000.0)
    return float(per_s), float(np.median(moves)) if len(moves) else math.nan


def _impact_bps(tape: Tape, horizon_s: float) -> float:
    if not tape.order_t_ns:
        return math.nan
    t = np.asarray(tape.order_t_ns, dtype=np.int64)
    before = _mid_at(tape, t)
    after = _mid_at(tape, t + int(horizon_s * NS_PER_S))
    sign = np.asarray(tape.order_sign, dtype=float)
    moves = sign * (after - before) / before * 10_000
    moves = moves[np.isfinite(moves)]
    return float(moves.mean()) if len(moves) else math.nan


def _vol_signature(tape: Tape) -> tuple[dict[float, float], float]:
    mids = np.asarray(tape.grid_mid_px, dtype=float)
    logs = np.log(mids) if len(mids) else mids
    out = {}
    for h in VOL_HORIZONS_S:
        step = max(1, round(h * 1000 / tape.grid_ms))
        sampled = logs[::step]
        r = np.diff(sampled) * 10_000
        out[h] = float(r.std() / math.sqrt(h)) if len(r) >= 2 else math.nan
    r100 = np.diff(logs[:: max(1, round(100 / tape.grid_ms))])
    acf = autocorrelation(r100, [1])[1] if len(r100) > 2 and r100.std() > 0 else math.nan
    return out, acf


@dataclass(frozen=True, slots=True)
class ProbeResult:
    fill_share: float
    fill_median_s: float
    markout_1s_bps: float
    markout_5s_bps: float


def passive_probe(tape: Tape, every_s: float = 1.0, timeout_s: float = 60.0) -> ProbeResult:
    """The passive-fill probe of the module docstring: hypothetical 1-lot bids at the best bid."""
    grid_t = tape.grid_t_ns
    if not grid_t:
        return ProbeResult(math.nan, math.nan, math.nan, math.nan)
    step = max(1, round(every_s * 1000 / tape.grid_ms))
    trade_t = tape.trade_t_ns
    timeout_ns = int(timeout_s * NS_PER_S)
    last_ns = grid_t[-1]
    fills_t: list[int] = []
    fills_px: list[float] = []
    waits: list[float] = []
    probes = 0
    for g in range(0, len(grid_t), step):
        t0 = grid_t[g]
        if t0 + timeout_ns > last_ns:
            break  # the tape ends before this probe could time out: it would bias the fill share
        probes += 1
        price = tape.grid_bid_ticks[g]
        ahead = tape.grid_bid_lots[g]
        i = bisect.bisect_right(trade_t, t0)
        while i < len(trade_t) and trade_t[i] <= t0 + timeout_ns:
            if tape.trade_sign[i] < 0:
                px = tape.trade_ticks[i]
                if px < price:
                    ahead = -1
                elif px == price:
                    ahead -= tape.trade_lots[i]
                if ahead < 0:
                    fills_t.append(trade_t[i])
                    fills_px.append(price * tape.tick_size)
                    waits.append((trade_t[i] - t0) / NS_PER_S)
                    break
            i += 1
    if not probes:
        return ProbeResult(math.nan, math.nan, math.nan, math.nan)
    if not fills_t:
        return ProbeResult(0.0, math.nan, math.nan, math.nan)
    fill_ns = np.asarray(fills_t, dtype=np.int64)
    fill_px = np.asarray(fills_px)
    marks = []
    for h in (1.0, 5.0):
        later = _mid_at(tape, fill_ns + int(h * NS_PER_S))
        m = (later - fill_px) / fill_px * 10_000
        m = m[np.isfinite(m)]
        marks.append(float(m.mean()) if len(m) else math.nan)
    return ProbeResult(len(fills_t) / probes, float(np.median(waits)), marks[0], marks[1])


def market_stats(tape: Tape, probe_every_s: float = 1.0, probe_timeout_s: float = 60.0) -> MarketStats:
    """Every statistic of the module docstring for one tape."""
    if len(tape.grid_t_ns) < 20:
        raise ValueError(f"{tape.symbol}: too short a tape ({len(tape.grid_t_ns)} book samples)")
    spread = np.asarray(tape.grid_spread_ticks, dtype=float)
    mid = float(np.median(tape.grid_mid_px))
    duration_s = tape.duration_s()
    sizes = np.asarray(tape.order_size_base, dtype=float)
    gaps_ms = np.diff(np.asarray(tape.order_venue_ms, dtype=np.int64)) if len(tape.order_venue_ms) > 1 else None
    q = np.quantile(sizes, [0.5, 0.9, 0.99]) if len(sizes) else np.full(3, math.nan)
    vol, ret_acf = _vol_signature(tape)
    probe = passive_probe(tape, probe_every_s, probe_timeout_s)
    moves_per_s, move_bps = mid_moves(tape)
    return MarketStats(
        duration_s=duration_s,
        mid_px=mid,
        tick_size=tape.tick_size,
        tick_bps=tape.tick_size / mid * 10_000,
        spread_1tick_share=float((spread <= 1).mean()),
        spread_median_ticks=float(np.median(spread)),
        spread_mean_ticks=float(spread.mean()),
        spread_p90_ticks=float(np.quantile(spread, 0.9)),
        depth10_median_base=float(np.median(tape.depth10_base)) if tape.depth10_base else math.nan,
        depth50_median_base=float(np.median(tape.depth50_base)) if tape.depth50_base else math.nan,
        orders=len(sizes),
        orders_per_s=len(sizes) / duration_s if duration_s > 0 else math.nan,
        fano_1s=fano_factor(tape.order_t_ns, 1.0, tape.start_ns, tape.end_ns),
        gap_under_10ms_share=float((gaps_ms < 10).mean()) if gaps_ms is not None else math.nan,
        gap_median_ms=float(np.median(gaps_ms)) if gaps_ms is not None else math.nan,
        size_p50_base=float(q[0]),
        size_p90_base=float(q[1]),
        size_p99_base=float(q[2]),
        size_p99_over_p50=float(q[2] / q[0]) if q[0] > 0 else math.nan,
        size_tail_index=hill_tail_index(sizes) if len(sizes) else math.nan,
        sweep_share=float((np.asarray(tape.order_levels) > 1).mean()) if tape.order_levels else math.nan,
        sign_acf=autocorrelation(tape.order_sign, ACF_LAGS) if len(tape.order_sign) > 2 else {},
        vol_bps_per_sqrt_s=vol,
        ret_acf_100ms=ret_acf,
        mid_moves_per_s=moves_per_s,
        mid_move_median_bps=move_bps,
        impact_1s_bps=_impact_bps(tape, 1.0),
        impact_5s_bps=_impact_bps(tape, 5.0),
        probe_fill_share=probe.fill_share,
        probe_fill_median_s=probe.fill_median_s,
        probe_markout_1s_bps=probe.markout_1s_bps,
        probe_markout_5s_bps=probe.markout_5s_bps,
    )
