"""σ, A and k estimators: hand-computed EWMA steps, recovery of known values from seeded synthetic
markets (with tolerances that separate neighbouring truths), and the degenerate-fit guards."""

from __future__ import annotations

import math
import random
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.config import EstimatorConfig
from bot.core.estimators import ArrivalEstimator, ArrivalFit, SigmaEstimator
from bot.domain import Side

S = 1_000_000_000  # ns per second

# ---------------------------------------------------------------------------------------------
# σ by hand
# ---------------------------------------------------------------------------------------------


def test_sigma_warm_start_until_the_first_grid_point() -> None:
    est = SigmaEstimator(0.5, halflife_s=10.0, sample_ms=1000)
    est.update(0, 100.0)
    est.update(int(0.9 * S), 101.0)  # same 1 s cell: no sample yet
    assert est.warm and est.sigma_px_per_sqrt_s == 0.5


def test_sigma_steady_changes_converge_by_half_each_halflife() -> None:
    # σ0 = 1 (var 1 px²/s). The mid alternates 100 / 100.3 every second: each sample is 0.3²/1 = 0.09.
    # The weight per 1 s sample is 1 − 2^(−1/10); after 10 samples the old var keeps 2^−1 of its weight:
    # var = 0.09 + (1 − 0.09)·0.5 = 0.545 -> σ = sqrt(0.545) = 0.7382412
    est = SigmaEstimator(1.0, halflife_s=10.0, sample_ms=1000)
    est.update(0, 100.0)  # anchors grid point 0 at 100
    for i in range(11):
        # half-way through cell i the mid flips: grid point i+1 sees it, 0.3 away from grid point i
        est.update(i * S + S // 2, 100.0 + 0.3 * ((i + 1) % 2))
    assert est.samples == 10
    assert est.sigma_px_per_sqrt_s == pytest.approx(math.sqrt(0.545), rel=1e-12)


def test_sigma_gap_is_one_sample_over_the_elapsed_time() -> None:
    # mid 100 at t=0, 101 at t=0.2 s, then nothing until t=4.5 s (cell 4): grid points 1..4 all saw 101.
    # One sample: change 1 px over 4 s -> 0.25 px²/s, weight 1 − 2^(−4/10) = 0.2421417
    # var = 1 + 0.2421417·(0.25 − 1) = 0.8183937
    est = SigmaEstimator(1.0, halflife_s=10.0, sample_ms=1000)
    est.update(0, 100.0)
    est.update(int(0.2 * S), 101.0)
    est.update(int(4.5 * S), 101.5)
    assert est.samples == 1
    assert est.sigma_px_per_sqrt_s**2 == pytest.approx(1 + (1 - 2 ** (-0.4)) * (0.25 - 1), rel=1e-12)
    assert est.sigma_px_per_sqrt_s**2 == pytest.approx(0.8183937, abs=1e-7)


def test_sigma_advance_on_a_quiet_book_decays_toward_zero() -> None:
    # no change for 1 half-life: var halves exactly (sample 0, weight 1/2 in total over 10 samples)
    est = SigmaEstimator(1.0, halflife_s=10.0, sample_ms=1000)
    est.update(0, 100.0)
    for i in range(1, 11):
        est.advance(i * S)
    assert est.sigma_px_per_sqrt_s**2 == pytest.approx(0.5, rel=1e-12)


def test_sigma_ignores_broken_mids() -> None:
    est = SigmaEstimator(1.0, halflife_s=10.0, sample_ms=1000)
    est.update(0, 100.0)
    est.update(S // 2, math.nan)
    est.update(S // 2, -1.0)
    est.update(S + 1, 100.0)
    assert est.sigma_px_per_sqrt_s**2 == pytest.approx(1 - (1 - 2 ** (-0.1)))  # one zero-change sample


# ---------------------------------------------------------------------------------------------
# σ recovery on an arithmetic Brownian mid observed at random (Poisson) update times
# ---------------------------------------------------------------------------------------------


def _brownian_sigma(seed: int, sigma: float, updates_per_s: float, sample_ms: int, duration_s: float = 7200.0) -> float:
    rng = random.Random(seed)
    est = SigmaEstimator(0.02, halflife_s=600.0, sample_ms=sample_ms)
    t, mid = 0.0, 1000.0
    est.update(0, mid)
    while True:
        dt = rng.expovariate(updates_per_s)
        t += dt
        if t >= duration_s:
            return est.sigma_px_per_sqrt_s
        mid += rng.gauss(0.0, sigma * math.sqrt(dt))
        est.update(int(t * S), mid)


# With a 600 s half-life on 1 s samples the EWMA averages ~1700 effective samples: σ̂ has a relative
# standard deviation of ~2 % (measured over 20 seeds: 0.969..1.043 of truth). 6 % = 3 sd.
SIGMA_TOL = 0.06


@pytest.mark.parametrize(("updates_per_s", "sample_ms"), [(10.0, 1000), (2.0, 1000), (10.0, 250), (10.0, 4000)])
def test_sigma_recovers_known_volatility_in_px_per_sqrt_s(updates_per_s: float, sample_ms: int) -> None:
    # the same σ whatever the feed rate and the sampling grid: the estimate is per √second
    for true_sigma in (0.5, 0.6):
        got = _brownian_sigma(7, true_sigma, updates_per_s, sample_ms)
        assert got == pytest.approx(true_sigma, rel=SIGMA_TOL)
    # The tolerance is meaningful: the two truths' bands do not overlap, and a per-update estimate
    # (σ·√(mean update interval) = 0.5·√0.1 = 0.158 at 10 Hz) or the warm start (0.02) are far outside.
    assert 0.5 * (1 + SIGMA_TOL) < 0.6 * (1 - SIGMA_TOL)
    assert abs(0.5 * math.sqrt(1 / 10.0) - 0.5) > 0.5 * SIGMA_TOL


# ---------------------------------------------------------------------------------------------
# A and k
# ---------------------------------------------------------------------------------------------


def _feed_poisson_flow(est: ArrivalEstimator, seed: int, a: float, k: float, start_s: float, end_s: float) -> None:
    """Takers per side arrive at rate A and reach depth Exp(k): a quote at δ is hit at A·exp(−kδ)."""
    rng = random.Random(seed)
    mid = 100.0
    events: list[tuple[float, Side, float]] = []
    for side in (Side.BUY, Side.SELL):
        t = start_s
        while (t := t + rng.expovariate(a)) < end_s:
            depth = rng.expovariate(k)
            events.append((t, side, mid + depth if side is Side.BUY else mid - depth))
    for t, side, px in sorted(events, key=lambda e: e[0]):
        est.on_trade(int(t * S), px, mid, side)


# 600 s at A = 2 /s per side is ~2400 trades; over 30 seeds Â/A was 0.967..1.024 and k̂/k 0.956..1.061
# (sd 1.6 % and 2.3 %). 10 % is >4 sd, and separates k = 50 from k = 75 and A = 2 from A = 3.
AK_TOL = 0.10


@pytest.mark.parametrize(("a", "k"), [(2.0, 50.0), (3.0, 75.0)])
def test_arrival_recovers_known_a_and_k(a: float, k: float) -> None:
    est = ArrivalEstimator(1.0, 20.0, window_s=600.0, min_trades=50, refit_ms=0, start_ns=0)
    _feed_poisson_flow(est, seed=3, a=a, k=k, start_s=0.0, end_s=600.0)
    fit = est.update(600 * S)
    assert fit.fitted and fit.reason == "fit"
    assert fit.a_per_s == pytest.approx(a, rel=AK_TOL)
    assert fit.k_per_px == pytest.approx(k, rel=AK_TOL)
    assert 2.0 * (1 + AK_TOL) < 3.0 * (1 - AK_TOL) and 50.0 * (1 + AK_TOL) < 75.0 * (1 - AK_TOL)


def test_arrival_rate_uses_elapsed_time_before_the_window_fills() -> None:
    # 150 s of a 600 s window: the rate must be counts / 150 s, not / 600 s
    est = ArrivalEstimator(1.0, 20.0, window_s=600.0, min_trades=50, refit_ms=0, start_ns=0)
    _feed_poisson_flow(est, seed=4, a=4.0, k=30.0, start_s=0.0, end_s=150.0)
    fit = est.update(150 * S)
    assert fit.a_per_s == pytest.approx(4.0, rel=0.15)
    assert fit.k_per_px == pytest.approx(30.0, rel=0.15)


def test_arrival_warm_start_until_min_trades() -> None:
    est = ArrivalEstimator(1.5, 25.0, window_s=300.0, min_trades=50, refit_ms=0, start_ns=0)
    for i in range(49):
        est.on_trade(i * S, 100.0 + 0.01 * (1 + i % 7), 100.0, Side.BUY)
    fit = est.update(60 * S)
    assert (fit.a_per_s, fit.k_per_px, fit.reason, fit.trades) == (1.5, 25.0, "warm_start", 49)
    assert not fit.fitted


def test_arrival_keeps_last_good_fit_on_degenerate_flow() -> None:
    est = ArrivalEstimator(1.0, 20.0, window_s=300.0, min_trades=50, refit_ms=0, start_ns=0)
    _feed_poisson_flow(est, seed=5, a=2.0, k=50.0, start_s=0.0, end_s=300.0)
    good = est.update(300 * S)
    assert good.fitted
    # next window: 200 trades, every one printed exactly at the touch (same depth): nothing to fit
    for i in range(200):
        est.on_trade((700 + i) * S, 100.05, 100.0, Side.BUY)
    kept = est.update(900 * S)
    assert kept.reason == "no_depth_dispersion" and not kept.fitted
    assert (kept.a_per_s, kept.k_per_px) == (good.a_per_s, good.k_per_px)
    # and after the window empties: last good values, "too_few_trades" (not the warm start)
    empty = est.update(2000 * S)
    assert empty.reason == "too_few_trades" and empty.trades == 0
    assert (empty.a_per_s, empty.k_per_px) == (good.a_per_s, good.k_per_px)


def test_arrival_too_few_buckets_keeps_warm_values() -> None:
    # 60 trades: 58 at depth 0 and 2 far away -> only the first edge holds >= 5 trades
    est = ArrivalEstimator(1.0, 20.0, window_s=300.0, min_trades=50, refit_ms=0, start_ns=0)
    for i in range(58):
        est.on_trade(i * S, 100.0, 100.0, Side.SELL)
    est.on_trade(58 * S, 101.0, 100.0, Side.BUY)
    est.on_trade(59 * S, 99.0, 100.0, Side.SELL)
    fit = est.update(60 * S)
    assert fit.reason == "too_few_buckets" and (fit.a_per_s, fit.k_per_px) == (1.0, 20.0)


def test_arrival_refits_at_most_every_refit_ms() -> None:
    est = ArrivalEstimator(1.0, 20.0, window_s=600.0, min_trades=50, refit_ms=1000, start_ns=0)
    _feed_poisson_flow(est, seed=6, a=2.0, k=50.0, start_s=0.0, end_s=300.0)
    first = est.update(300 * S)
    assert est.update(300 * S + S // 2) is first  # within 1 s: the same estimate object
    assert est.update(301 * S) is not first


@given(
    depths=st.lists(st.floats(0.0, 10.0), min_size=50, max_size=300),
    sides=st.lists(st.sampled_from([Side.BUY, Side.SELL]), min_size=300, max_size=300),
)
def test_arrival_estimate_is_always_positive_and_finite(depths: list[float], sides: list[Side]) -> None:
    est = ArrivalEstimator(1.0, 20.0, window_s=300.0, min_trades=10, refit_ms=0, start_ns=0)
    for i, depth in enumerate(depths):
        side = sides[i]
        est.on_trade(i * S // 2, 100.0 + depth if side is Side.BUY else 100.0 - depth, 100.0, side)
    fit: ArrivalFit = est.update(len(depths) * S)
    assert 0 < fit.a_per_s < math.inf and 0 < fit.k_per_px < math.inf
    assert fit.reason in {"fit", "warm_start", "no_depth_dispersion", "too_few_buckets", "non_positive_k", "non_finite"}


@given(
    trades=st.lists(
        st.tuples(st.integers(0, S // 4), st.sampled_from([0.0, 0.01, 0.02, 0.05, 0.1, 0.37])),
        min_size=150,
        max_size=250,
    ),
    checks=st.lists(st.integers(1, 4), min_size=5, max_size=12),
)
@settings(max_examples=50)
def test_arrival_sliding_window_fits_like_a_fresh_estimator_of_the_same_trades(
    trades: list[tuple[int, float]], checks: list[int]
) -> None:
    """The incrementally kept window (sorted depths, running sum, expiry) gives the fit a fresh
    estimator computes from only the trades still in the window, across window turnovers."""
    window_ns = 10 * S

    def estimator() -> ArrivalEstimator:
        return ArrivalEstimator(1.0, 20.0, window_s=window_ns / S, min_trades=5, buckets=4, refit_ms=0, start_ns=0)

    est = estimator()
    stream: list[tuple[int, float]] = []
    t = 0
    for gap_ns, depth in trades:  # depths repeat on purpose: expiry must delete the right copies
        t += gap_ns
        est.on_trade(t, 100.0 + depth, 100.0, Side.BUY)
        stream.append((t, depth))
    now = 0
    for step_s in checks:
        now += step_s * S
        fresh = estimator()
        for ts, depth in stream:
            if ts >= now - window_ns:
                fresh.on_trade(ts, 100.0 + depth, 100.0, Side.BUY)
        got, want = est.update(now), fresh.update(now)
        assert got.trades == want.trades
        if want.fitted:
            assert got.fitted
            assert got.a_per_s == pytest.approx(want.a_per_s, rel=1e-9)
            assert got.k_per_px == pytest.approx(want.k_per_px, rel=1e-9)
        else:  # the same refusal; `est` may keep an earlier fit where the fresh one has only the warm start
            assert got.reason == want.reason or (want.reason, got.reason) == ("warm_start", "too_few_trades")


def test_estimators_build_from_config() -> None:
    cfg = EstimatorConfig()
    sigma = SigmaEstimator(cfg.sigma_px_per_sqrt_s, cfg.sigma_halflife_s, cfg.sigma_sample_ms)
    arrivals = ArrivalEstimator(
        cfg.a_per_s, cfg.k_per_px, cfg.ak_window_s, cfg.ak_min_trades, cfg.ak_buckets, cfg.ak_refit_ms
    )
    assert sigma.sigma_px_per_sqrt_s == cfg.sigma_px_per_sqrt_s
    assert arrivals.estimate.k_per_px == cfg.k_per_px


# ---- A and k as the fill rate of a Δ-sized quote, robust to stray prints (issue #16, item 2) ----


def _poisson_tape(
    seed: int,
    a: float,
    k: float,
    end_s: float,
    size: Callable[[random.Random], float] | None = None,
    half_spread_px: float = 0.01,
):
    """(t_s, side, price, size) around mid 100 with `λ(δ) = A·exp(−k·δ)` per side for δ beyond the
    market's half spread (no print inside the spread, as on a venue): takers arrive at A·exp(−k·h)
    and reach h + Exp(k)."""
    rng = random.Random(seed)
    out = []
    for side in (Side.BUY, Side.SELL):
        t = 0.0
        while (t := t + rng.expovariate(a * math.exp(-k * half_spread_px))) < end_s:
            depth = half_spread_px + rng.expovariate(k)
            out.append((t, side, 100.0 + depth if side is Side.BUY else 100.0 - depth, size(rng) if size else 1.0))
    return sorted(out, key=lambda e: e[0])


def _fit(tape, order_size_base: float | None = None, own: tuple[tuple[float, float, float], ...] = ()) -> ArrivalFit:
    est = ArrivalEstimator(1.0, 20.0, window_s=600.0, min_trades=50, refit_ms=0, start_ns=0,
                           order_size_base=order_size_base)  # fmt: skip
    for t, px, size in own:
        est.on_own_fill(int(t * S), px, size)
    for t, side, px, size in tape:
        est.on_trade(int(t * S), px, 100.0, side, size)
    return est.update(600 * S)


def test_one_stray_print_at_depth_zero_does_not_wreck_the_fit() -> None:
    # The case: A = 2, k = 60 recovered as 1.98 / 60.3, then 1.38 / 48.9 after ONE print at
    # depth 0 (through a lagging mid): the first bucket edge followed the shallowest print to 0.
    tape = _poisson_tape(seed=3, a=2.0, k=60.0, end_s=600.0)
    clean = _fit(tape)
    stray = _fit([*tape, (300.0, Side.BUY, 100.0, 1.0)])
    for fit in (clean, stray):
        assert fit.a_per_s == pytest.approx(2.0, rel=AK_TOL)
        assert fit.k_per_px == pytest.approx(60.0, rel=AK_TOL)


def test_outliers_at_both_ends_do_not_wreck_the_fit() -> None:
    # 1 % of prints at depth 0 (a lagging mid) and 0.5 % of fat-finger prints 20 mean depths out
    tape = _poisson_tape(seed=5, a=2.0, k=60.0, end_s=600.0)
    rng = random.Random(9)
    zeros = [(rng.uniform(0, 600), Side.SELL, 100.0, 1.0) for _ in range(len(tape) // 100)]
    far = [(rng.uniform(0, 600), Side.BUY, 100.0 + 20.0 / 60.0, 1.0) for _ in range(len(tape) // 200)]
    fit = _fit(sorted([*tape, *zeros, *far], key=lambda e: e[0]))
    assert fit.a_per_s == pytest.approx(2.0, rel=AK_TOL)
    assert fit.k_per_px == pytest.approx(60.0, rel=AK_TOL)


def test_prints_smaller_than_the_quote_count_as_partial_fills() -> None:
    # Prints of Exp(mean 0.1) base against a quote of Δ = 1: each fills E[min(1, v)] = 0.1·(1 − e^−10)
    # of one quote, so the fill rate of our quote is A·0.09995, not A (counting prints overstates it 10x)
    tape = _poisson_tape(seed=7, a=4.0, k=50.0, end_s=600.0, size=lambda rng: rng.expovariate(10.0))
    prints = _fit(tape)
    fills = _fit(tape, order_size_base=1.0)
    expected_a = 4.0 * 0.1 * (1 - math.exp(-10.0))
    assert prints.a_per_s == pytest.approx(4.0, rel=AK_TOL)
    assert fills.a_per_s == pytest.approx(expected_a, rel=AK_TOL)
    assert fills.k_per_px == pytest.approx(50.0, rel=AK_TOL)  # size independent of depth: k unchanged
    # prints of at least Δ each fill one quote: the same A as counting prints
    assert _fit(tape, order_size_base=1e-9).a_per_s == pytest.approx(prints.a_per_s, rel=1e-9)


def test_our_own_fills_are_not_the_market_flow() -> None:
    # the market's tape, plus our maker fills printed at our quote 0.05 from mid: 600 fills of 1
    tape = _poisson_tape(seed=11, a=2.0, k=60.0, end_s=600.0)
    ours = [(t + 0.5, Side.BUY, 100.05, 1.0) for t in range(600)]
    with_ours = sorted([*tape, *ours], key=lambda e: e[0])
    market = _fit(tape, order_size_base=1.0)
    polluted = _fit(with_ours, order_size_base=1.0)
    cleaned = _fit(with_ours, order_size_base=1.0, own=tuple((t - 0.01, px, size) for t, _, px, size in ours))
    assert polluted.k_per_px < 0.8 * market.k_per_px  # our own prints 3/k deep flatten the curve
    assert (cleaned.a_per_s, cleaned.k_per_px) == pytest.approx((market.a_per_s, market.k_per_px), rel=1e-9)


def test_sigma_long_warm_start_weighs_only_its_warm_weight() -> None:
    # A BTC replay with the default config's warm start 0.02 (σ² = 0.0004): the mid alternates by
    # 3.5 px every second, so every sample is 3.5² = 12.25 px²/s. After 346 samples (the recording's
    # length) a 1800 s EWMA that takes the warm start as its whole past keeps d = 2^(−346/1800) of it:
    # var = 0.0004·d + 12.25·(1 − d) -> σ = 1.24, a third of the short σ (3.5): a "volatility spike"
    # for the whole replay. With the warm start worth 60 s of data (p0 = 1 − 2^(−60/1800)):
    # var = (p0·d·0.0004 + (1 − d)·12.25) / (p0·d + 1 − d) -> σ = 3.25
    d = 2 ** (-346 / 1800)
    p0 = 1 - 2 ** (-60 / 1800)
    for warm_weight_s, expected in (
        (math.inf, math.sqrt(0.0004 * d + 12.25 * (1 - d))),
        (60.0, math.sqrt((p0 * d * 0.0004 + (1 - d) * 12.25) / (p0 * d + 1 - d))),
    ):
        est = SigmaEstimator(0.02, halflife_s=1800.0, sample_ms=1000, warm_weight_s=warm_weight_s)
        est.update(0, 60_000.0)
        for i in range(347):  # grid point i+1 sees the flip made half-way through cell i
            est.update(i * S + S // 2, 60_000.0 + 3.5 * ((i + 1) % 2))
        assert est.samples == 346
        assert est.sigma_px_per_sqrt_s == pytest.approx(expected, rel=1e-9)
    assert expected == pytest.approx(3.25, abs=0.01) and 3.5 / expected < 2.0  # no spike (threshold 2)


def test_arrival_depths_within_half_a_tick_are_no_fit() -> None:
    # The Bybit dialect mock's prints (BTC, tick 0.01): nearly every one at the background's best level,
    # 0.025 from mid, one in 25 half a tick further. Fitted anyway, k is thousands per USDT and A astronomical,
    # which takes the inventory skew (∝ 1/√(A·k)) to zero.
    def feed(est: ArrivalEstimator) -> ArrivalFit:
        for i in range(300):
            est.on_trade(i * S, 60_000.025 + (0.005 if i % 25 == 0 else 0.0), 60_000.0, Side.BUY)
        return est.update(300 * S)

    unchecked = feed(ArrivalEstimator(1.0, 0.5, window_s=300.0, min_trades=50, refit_ms=0, start_ns=0))
    assert unchecked.fitted and unchecked.k_per_px > 100.0 and unchecked.a_per_s > 1e6  # the defect
    checked = feed(
        ArrivalEstimator(1.0, 0.5, window_s=300.0, min_trades=50, refit_ms=0, start_ns=0, depth_resolution_px=0.005)
    )
    assert checked.reason == "no_depth_dispersion" and (checked.a_per_s, checked.k_per_px) == (1.0, 0.5)
