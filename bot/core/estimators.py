"""Online estimators of the quoting model's market parameters: σ (px/√s), and A (1/s), k (1/px).

Pure and synchronous: the caller passes `now_ns` on every call; nothing here reads a clock.
"""

from __future__ import annotations

import math
from bisect import bisect_left, insort
from collections import deque
from dataclasses import dataclass

from bot.domain import Side

_NS_PER_S = 1_000_000_000
_LN2 = math.log(2.0)


class SigmaEstimator:
    """Volatility of the mid in px/√s: an EWMA of squared mid changes sampled on a wall-clock grid.

    The mid is a step function of time; at each grid point (every `sample_ms`) we take the mid in
    force and add `Δmid² / Δt` (px²/s) to an EWMA whose weights decay with elapsed TIME, half-life
    `halflife_s`. Sampling on a clock (not per book update) makes the estimate independent of how
    often the venue publishes: a per-update estimate of a 10 Hz feed would read σ·√0.1.

    A gap of n grid points (a quiet or stale feed) is one sample `Δmid² / (n·Δt)` carrying the EWMA
    weight of n·Δt seconds. Until the first sample the warm start `sigma0_px_per_sqrt_s` is reported.
    Run two instances (short and long half-life) for a volatility-spike ratio.
    """

    __slots__ = ("_halflife_s", "_mid_px", "_sample_ns", "_sample_s", "_slot", "_slot_mid_px", "_var", "samples")

    def __init__(self, sigma0_px_per_sqrt_s: float, halflife_s: float, sample_ms: int) -> None:
        if not (0 <= sigma0_px_per_sqrt_s < math.inf):
            raise ValueError(f"sigma0 must be finite and >= 0, got {sigma0_px_per_sqrt_s!r}")
        if not (0 < halflife_s < math.inf) or sample_ms < 1:
            raise ValueError(f"halflife_s must be > 0 and sample_ms >= 1, got {halflife_s!r}, {sample_ms!r}")
        self._var = sigma0_px_per_sqrt_s * sigma0_px_per_sqrt_s  # px²/s
        self._halflife_s = halflife_s
        self._sample_ns = sample_ms * 1_000_000
        self._sample_s = sample_ms / 1000.0
        self._slot = -1  # grid index of the last sample; -1 before the first mid
        self._slot_mid_px = math.nan  # the mid in force at that grid point
        self._mid_px = math.nan  # the latest mid
        self.samples = 0

    @property
    def sigma_px_per_sqrt_s(self) -> float:
        return math.sqrt(self._var)

    @property
    def warm(self) -> bool:
        """True while the estimate is still the warm start (no sample yet)."""
        return self.samples == 0

    def update(self, now_ns: int, mid_px: float) -> None:
        """A new mid at `now_ns`. Non-finite or non-positive mids are ignored (a broken book)."""
        if not (0 < mid_px < math.inf):
            return
        if self._slot < 0:  # the first mid anchors the grid
            self._slot, self._slot_mid_px = now_ns // self._sample_ns, mid_px
        else:
            self._sample_to(now_ns)
        self._mid_px = mid_px

    def advance(self, now_ns: int) -> None:
        """Time passed with the mid unchanged (call it on timers so a quiet book reads as calm)."""
        if self._slot >= 0:
            self._sample_to(now_ns)

    def _sample_to(self, now_ns: int) -> None:
        slot = now_ns // self._sample_ns
        if slot <= self._slot:
            return  # same grid cell (or time went backwards: ignore)
        # Every grid point in (last slot, slot] saw the mid that was in force before this call.
        elapsed_s = (slot - self._slot) * self._sample_s
        change_px = self._mid_px - self._slot_mid_px
        weight = -math.expm1(-elapsed_s * _LN2 / self._halflife_s)  # 1 − 2^(−elapsed/halflife)
        self._var += weight * (change_px * change_px / elapsed_s - self._var)
        self._slot, self._slot_mid_px = slot, self._mid_px
        self.samples += 1


@dataclass(frozen=True, slots=True)
class ArrivalFit:
    """The current A and k and why they are what they are.

    `reason`: "warm_start" (never fitted yet, fewer than min_trades), "fit" (fitted at `at_ns`),
    or why the last good values were kept: "too_few_trades", "no_depth_dispersion",
    "too_few_buckets", "non_positive_k", "non_finite".
    """

    a_per_s: float
    k_per_px: float
    reason: str
    trades: int  # public trades in the window at the last update
    at_ns: int  # when this estimate was decided

    @property
    def fitted(self) -> bool:
        return self.reason == "fit"


class ArrivalEstimator:
    """A and k of `λ(δ) = A·exp(−k·δ)` from public trades, refitted over a rolling window.

    Each trade's depth δ is its distance from the mid at that moment (buyer-initiated: price − mid,
    seller-initiated: mid − price, floored at 0). In the model, λ(δ) is the rate at which a resting
    quote at depth δ gets hit, i.e. the rate of takers that reach AT LEAST δ. So the fit counts, for
    bucket edges δ_j, the trades in the window with depth >= δ_j, divides by the window length and
    by 2 (the model's λ is per side; both sides are pooled, which assumes symmetric flow), and
    regresses `ln λ(δ_j) = ln A − k·δ_j` by least squares weighted by the counts (Var ln N ≈ 1/N).

    Bucket edges start at the shallowest depth seen (trades never print inside the market's own
    spread, so exceedance is flat below it) and span 3 mean excess depths (≈ 3/k, where λ has fallen
    to 5 %) in `buckets` steps; edges with fewer than `_MIN_BUCKET_COUNT` trades are not used.
    Counts are arrivals (not volume), per unit time.

    Speed: the window's depths are also kept sorted as trades arrive and expire (an insort and a
    delete, O(log n) search plus a short memmove each), with a running sum, so a refit is a dozen
    bisects instead of sorting the whole window: sorting ~2,500 trades once a second was the
    engine's worst tick-to-quote tail (~200 µs, bench/tick_to_quote.py). The running sum is
    recomputed exactly each time the window has turned over, so float drift cannot build up.
    """

    _MIN_BUCKET_COUNT = 5
    _SPAN_MEAN_DEPTHS = 3.0

    def __init__(
        self,
        a0_per_s: float,
        k0_per_px: float,
        window_s: float,
        min_trades: int,
        buckets: int = 10,
        refit_ms: int = 1000,
        start_ns: int | None = None,
    ) -> None:
        if not (0 < a0_per_s < math.inf and 0 < k0_per_px < math.inf):
            raise ValueError(f"warm start A, k must be finite and > 0, got {a0_per_s!r}, {k0_per_px!r}")
        if not (0 < window_s < math.inf) or min_trades < 2 or buckets < 3 or refit_ms < 0:
            raise ValueError("need window_s > 0, min_trades >= 2, buckets >= 3, refit_ms >= 0")
        self._window_ns = int(window_s * _NS_PER_S)
        self._min_trades = min_trades
        self._buckets = buckets
        self._refit_ns = refit_ms * 1_000_000
        self._start_ns = start_ns
        self._trades: deque[tuple[int, float]] = deque()  # (ts_ns, depth_px), oldest first
        self._sorted_depths: list[float] = []  # the same depths, ascending
        self._depth_sum_px = 0.0  # running sum of the window's depths
        self._expired_since_resum = 0
        self._last_fit_ns: int | None = None
        self._has_fit = False
        self._estimate = ArrivalFit(a0_per_s, k0_per_px, "warm_start", 0, start_ns or 0)

    @property
    def estimate(self) -> ArrivalFit:
        return self._estimate

    def on_trade(self, now_ns: int, trade_px: float, mid_px: float, aggressor: Side) -> None:
        """Record one public trade. `mid_px` is the mid just before the trade (from our book)."""
        if self._start_ns is None:
            self._start_ns = now_ns
        if not (0 < mid_px < math.inf and 0 < trade_px < math.inf):
            return
        depth_px = trade_px - mid_px if aggressor is Side.BUY else mid_px - trade_px
        if not depth_px > 0.0:
            depth_px = 0.0
        self._trades.append((now_ns, depth_px))
        insort(self._sorted_depths, depth_px)
        self._depth_sum_px += depth_px

    def update(self, now_ns: int) -> ArrivalFit:
        """Refit if `refit_ms` has passed since the last fit; return the current estimate."""
        if self._start_ns is None:
            self._start_ns = now_ns
        if self._last_fit_ns is not None and now_ns - self._last_fit_ns < self._refit_ns:
            return self._estimate
        self._last_fit_ns = now_ns
        self._estimate = self._fit(now_ns)
        return self._estimate

    def _expire(self, now_ns: int) -> None:
        """Drop trades older than the window from the deque, the sorted depths and the running sum."""
        trades = self._trades
        depths = self._sorted_depths
        cutoff = now_ns - self._window_ns
        while trades and trades[0][0] < cutoff:
            depth_px = trades.popleft()[1]
            del depths[bisect_left(depths, depth_px)]  # any equal value will do
            self._depth_sum_px -= depth_px
            self._expired_since_resum += 1
        if self._expired_since_resum >= len(depths):  # the window turned over: drop accumulated rounding
            self._depth_sum_px = math.fsum(depths)
            self._expired_since_resum = 0

    def _fit(self, now_ns: int) -> ArrivalFit:
        self._expire(now_ns)
        n = len(self._trades)
        if n < self._min_trades:
            return self._keep("too_few_trades" if self._has_fit else "warm_start", n, now_ns)
        start_ns = self._start_ns if self._start_ns is not None else now_ns
        duration_s = min(self._window_ns, now_ns - start_ns) / _NS_PER_S
        if duration_s <= 0:
            return self._keep("too_few_trades" if self._has_fit else "warm_start", n, now_ns)
        depths = self._sorted_depths
        shallowest = depths[0]
        mean_excess = self._depth_sum_px / n - shallowest
        if not mean_excess > 0:
            return self._keep("no_depth_dispersion", n, now_ns)
        result = _fit_exceedance(depths, shallowest, self._SPAN_MEAN_DEPTHS * mean_excess / self._buckets,
                                 self._buckets, self._MIN_BUCKET_COUNT, 2.0 * duration_s)  # fmt: skip
        if result is None:
            return self._keep("too_few_buckets", n, now_ns)
        ln_a, k = result
        if not (math.isfinite(k) and math.isfinite(ln_a)) or ln_a > 700:
            return self._keep("non_finite", n, now_ns)
        if not k > 0:
            return self._keep("non_positive_k", n, now_ns)
        self._has_fit = True
        return ArrivalFit(math.exp(ln_a), k, "fit", n, now_ns)

    def _keep(self, reason: str, trades: int, now_ns: int) -> ArrivalFit:
        old = self._estimate
        return ArrivalFit(old.a_per_s, old.k_per_px, reason, trades, now_ns)


def _fit_exceedance(
    sorted_depths: list[float], first_edge: float, width: float, buckets: int, min_count: int, exposure_s: float
) -> tuple[float, float] | None:
    """Weighted least squares of ln(N(δ_j) / exposure_s) on δ_j; returns (ln A, k) or None (< 3 points)."""
    n = len(sorted_depths)
    sw = swx = swy = swxx = swxy = 0.0
    points = 0
    for j in range(buckets):
        edge = first_edge + j * width
        count = n - bisect_left(sorted_depths, edge)
        if count < min_count:
            break
        y = math.log(count / exposure_s)
        w = float(count)
        sw += w
        swx += w * edge
        swy += w * y
        swxx += w * edge * edge
        swxy += w * edge * y
        points += 1
    if points < 3:
        return None
    denom = sw * swxx - swx * swx
    if not denom > 0:
        return None
    slope = (sw * swxy - swx * swy) / denom
    intercept = (swy - slope * swx) / sw
    return intercept, -slope
