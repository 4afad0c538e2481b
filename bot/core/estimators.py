"""Online estimators of the quoting model's market parameters: σ (px/√s), and A (1/s), k (1/px).

Pure and synchronous: the caller passes `now_ns` on every call; nothing here reads a clock.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

from bot.core.sorted_pairs import SortedPairs
from bot.domain import Side, install_fast_constructors

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

    `warm_weight_s`: how many seconds of data the warm start is worth (inf, the default: all of the
    EWMA's past, so it fades with the half-life). With a 30-minute half-life and a warm start that
    is wrong for the market (the default config's 0.02 on a BTC replay, σ ~3.5 USDT/√s) the default
    still leaves 88 % of the weight on the warm start after 346 s; with 60 s the data outweighs it
    within a minute. The engine keeps the default (docs/quoting.md: a session that starts with jumps
    would learn them as normal).
    """

    __slots__ = (
        "_halflife_s", "_mid_px", "_sample_ns", "_sample_s", "_slot", "_slot_mid_px", "_var", "_weight", "samples",
    )  # fmt: skip

    def __init__(
        self, sigma0_px_per_sqrt_s: float, halflife_s: float, sample_ms: int, warm_weight_s: float = math.inf
    ) -> None:
        if not (0 <= sigma0_px_per_sqrt_s < math.inf):
            raise ValueError(f"sigma0 must be finite and >= 0, got {sigma0_px_per_sqrt_s!r}")
        if not (0 < halflife_s < math.inf) or sample_ms < 1:
            raise ValueError(f"halflife_s must be > 0 and sample_ms >= 1, got {halflife_s!r}, {sample_ms!r}")
        if not warm_weight_s > 0:
            raise ValueError(f"warm_weight_s must be > 0, got {warm_weight_s!r}")
        self._var = sigma0_px_per_sqrt_s * sigma0_px_per_sqrt_s  # px²/s
        # the EWMA's total weight so far, in [0, 1]: the warm start's share, as if it were that much data
        self._weight = -math.expm1(-warm_weight_s * _LN2 / halflife_s)
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
        # a normalised EWMA: the old estimate keeps its decayed weight; with a full weight (1) this is
        # var += weight·(x − var)
        old = self._weight * (1.0 - weight)
        total = old + weight
        self._var = (old * self._var + weight * (change_px * change_px / elapsed_s)) / total
        self._weight = total
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
    """A and k of `λ(δ) = A·exp(−k·δ)`: the rate at which a Δ-sized quote at depth δ gets filled.

    Each public trade's depth δ is its distance from the mid at that moment (buyer-initiated: price −
    mid, seller-initiated: mid − price, floored at 0). In GLFT, λ(δ) is the arrival rate of fills of
    one Δ-sized quote resting at δ: a taker that reaches AT LEAST δ, and fills it in full only if it
    trades at least Δ. So each print counts `min(1, size/Δ)` fills (`order_size_base` = Δ; None counts
    every print as one, the pre-#16 behaviour), and our own maker fills, which print on the public tape
    too (the mock does; a venue's tape does), are taken out first (`on_own_fill`): they are our quote's
    fills, not the market's flow, and would feed our own depth back into the fit.

    The fit counts, for bucket edges δ_j, the fill-weighted trades in the window with depth >= δ_j,
    divides by the window length and by 2 (λ is per side; both sides are pooled, which assumes
    symmetric flow), and regresses `ln λ(δ_j) = ln A − k·δ_j` by least squares weighted by the print
    counts (Var ln N ≈ 1/N).

    Robust to stray prints: the first edge is the `_FIRST_EDGE_QUANTILE` quantile of the window's
    depths, not the shallowest one (a single print at depth 0 through a lagging mid pulled the edges
    to 0 and took A = 2, k = 60 to 1.38 / 48.9), and the edges span 3 trimmed mean excess depths
    (≈ 3/k; the deepest `_TRIM_TOP` share left out, so one fat-finger print far out cannot stretch
    them) in `buckets` steps; edges with fewer than `_MIN_BUCKET_COUNT` prints are not used. Fitting
    from the quantile on loses nothing under the model: exceedance of an exponential is memoryless, so
    the slope is k and the intercept extrapolates to ln A at δ = 0.

    Prints that nearly all land at the same depth (the Bybit dialect mock's takers hit the
    background's best level, our own fills taken out) have a mean excess depth of a fraction of a
    tick; fitted anyway, they gave k ≈ 5,000 /USDT and A ≈ 1e53 /s on BTC, and with them no inventory
    skew at all (c2 ∝ 1/√(A·k)). A mean excess below `depth_resolution_px` (the engine passes half a
    tick) is therefore "no_depth_dispersion": the last good (or warm-start) values are kept.

    Speed: the window's depths (and their fill weights) are also kept sorted as trades arrive and
    expire (`SortedPairs`: in blocks, so an insert or an expiry moves at most one block), so a refit is
    a dozen bisects, one backward sum of the weights and one sum of the depths instead of sorting the
    whole window: sorting ~2,500 trades once a second was the engine's worst tick-to-quote tail (~200 µs,
    bench/tick_to_quote.py).
    """

    _MIN_BUCKET_COUNT = 5
    _SPAN_MEAN_DEPTHS = 3.0
    _FIRST_EDGE_QUANTILE = 0.05
    _TRIM_TOP = 0.01
    _OWN_MATCH_NS = 2 * _NS_PER_S  # an own fill's print arrives within this of the fill

    def __init__(
        self,
        a0_per_s: float,
        k0_per_px: float,
        window_s: float,
        min_trades: int,
        buckets: int = 10,
        refit_ms: int = 1000,
        start_ns: int | None = None,
        order_size_base: float | None = None,
        depth_resolution_px: float = 0.0,
    ) -> None:
        if not (0 < a0_per_s < math.inf and 0 < k0_per_px < math.inf):
            raise ValueError(f"warm start A, k must be finite and > 0, got {a0_per_s!r}, {k0_per_px!r}")
        if not (0 < window_s < math.inf) or min_trades < 2 or buckets < 3 or refit_ms < 0:
            raise ValueError("need window_s > 0, min_trades >= 2, buckets >= 3, refit_ms >= 0")
        if order_size_base is not None and not (0 < order_size_base < math.inf):
            raise ValueError(f"order_size_base must be finite and > 0, got {order_size_base!r}")
        self._window_ns = int(window_s * _NS_PER_S)
        self._min_trades = min_trades
        self._buckets = buckets
        self._refit_ns = refit_ms * 1_000_000
        self._start_ns = start_ns
        self._order_size_base = order_size_base
        # depths come on the price grid (half a tick: the mid may sit between two ticks), so a mean
        # excess depth below it is a spread of zero: the fit's k (≈ 1/mean excess) is not identified
        self._depth_resolution_px = depth_resolution_px
        self._trades: deque[tuple[int, float, float]] = deque()  # (ts_ns, depth_px, fills), oldest first
        self._sorted = SortedPairs()  # the same (depth, fills), ascending by depth
        self._own: deque[tuple[int, float, float]] = deque()  # our fills not yet seen printed: (ts, px, size)
        self._last_fit_ns: int | None = None
        self._has_fit = False
        self._estimate = ArrivalFit(a0_per_s, k0_per_px, "warm_start", 0, start_ns or 0)

    @property
    def estimate(self) -> ArrivalFit:
        return self._estimate

    def on_own_fill(self, now_ns: int, fill_px: float, size_base: float) -> None:
        """One of our maker fills: its print on the public tape (same price, within 2 s) is ours."""
        if size_base > 0.0:
            self._own.append((now_ns, fill_px, size_base))

    def on_trade(
        self, now_ns: int, trade_px: float, mid_px: float, aggressor: Side, size_base: float = math.inf
    ) -> None:
        """Record one public trade. `mid_px` is the mid just before the trade (from our book)."""
        if self._start_ns is None:
            self._start_ns = now_ns
        if not (0 < mid_px < math.inf and 0 < trade_px < math.inf):
            return
        if self._own:
            size_base = self._minus_own(now_ns, trade_px, size_base)
            if not size_base > 0.0:
                return  # all of it was our own fill
        delta = self._order_size_base
        fills = 1.0 if delta is None or size_base >= delta else size_base / delta
        depth_px = trade_px - mid_px if aggressor is Side.BUY else mid_px - trade_px
        if not depth_px > 0.0:
            depth_px = 0.0
        self._trades.append((now_ns, depth_px, fills))
        self._sorted.insert(depth_px, fills)

    def _minus_own(self, now_ns: int, trade_px: float, size_base: float) -> float:
        """`size_base` less our own fills at this price (consumed); expired own fills are dropped."""
        own = self._own
        while own and own[0][0] < now_ns - self._OWN_MATCH_NS:
            own.popleft()
        for j, (ts, px, size) in enumerate(own):
            if abs(px - trade_px) <= 1e-9 * trade_px:
                taken = min(size, size_base)
                size_base -= taken
                if size - taken > 0.0:
                    own[j] = (ts, px, size - taken)
                else:
                    del own[j]
                break
        return size_base

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
        """Drop trades older than the window from the deque and the sorted window."""
        trades = self._trades
        window = self._sorted
        cutoff = now_ns - self._window_ns
        while trades and trades[0][0] < cutoff:
            _, depth_px, fills = trades.popleft()
            window.remove(depth_px, fills)

    def _fit(self, now_ns: int) -> ArrivalFit:
        self._expire(now_ns)
        n = len(self._trades)
        if n < self._min_trades:
            return self._keep("too_few_trades" if self._has_fit else "warm_start", n, now_ns)
        start_ns = self._start_ns if self._start_ns is not None else now_ns
        duration_s = min(self._window_ns, now_ns - start_ns) / _NS_PER_S
        if duration_s <= 0:
            return self._keep("too_few_trades" if self._has_fit else "warm_start", n, now_ns)
        window = self._sorted
        lo = int(self._FIRST_EDGE_QUANTILE * n)
        hi = max(lo + 1, n - int(self._TRIM_TOP * n))
        first_edge = window.key_at(lo)
        mean_excess = window.key_sum(lo, hi) / (hi - lo) - first_edge
        if not mean_excess > self._depth_resolution_px:
            return self._keep("no_depth_dispersion", n, now_ns)
        width = self._SPAN_MEAN_DEPTHS * mean_excess / self._buckets
        result = _fit_exceedance(window, first_edge, width,
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
    window: SortedPairs,
    first_edge: float,
    width: float,
    buckets: int,
    min_count: int,
    exposure_s: float,
) -> tuple[float, float] | None:
    """Weighted least squares of ln(F(δ_j) / exposure_s) on δ_j, F = fills at depth >= δ_j (the sum of
    the window's fill weights from the edge's position on); weights = print counts.
    Returns (ln A, k) or None (< 3 usable edges)."""
    n = len(window)
    edges: list[float] = []
    starts: list[int] = []  # where each edge starts in the sorted window (non-decreasing)
    for j in range(buckets):
        edge = first_edge + j * width
        i = window.bisect_key_left(edge)
        if n - i < min_count:
            break
        edges.append(edge)
        starts.append(i)
    sw = swx = swy = swxx = swxy = 0.0
    points = 0
    for edge, i, fills in zip(edges, starts, window.weight_suffix_sums(starts), strict=True):
        if not fills > 0.0:
            break
        y = math.log(fills / exposure_s)
        w = float(n - i)
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


# built in C when the extension is there (one Python-level call per construction less; same objects)
install_fast_constructors(ArrivalFit)
