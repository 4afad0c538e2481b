"""The guard's self-check (bot/core/toxicity.SignalCheck): its response is scaled by how far its calls
have come true on this market (issue #16: on the recorded BTCUSDT pair the guard gave up 60.3 of
spread to save 10.4 of adverse selection, because one-sided flow there does not predict the price)."""

from __future__ import annotations

import math
import random

import pytest

from bot.core.risk import RiskGuard, RiskInputs, RiskParams
from bot.core.toxicity import SignalCheck, ToxicityMonitor, ToxicityParams
from bot.domain import Side

S = 1_000_000_000
MS = 1_000_000


def test_the_regression_is_the_move_per_unit_of_call_with_its_standard_error() -> None:
    # horizon = sample = 1 s (no overlap), a half-life long enough to make the decay negligible.
    # Calls +1, −1, +2 with moves +2, −1, +3 bps: β = Σxy/Σxx = (2 + 1 + 6)/(1 + 1 + 4) = 1.5 bps per
    # unit; residuals 0.5, 0.5, 0 -> s² = 0.5/3, se = sqrt(s²/Σxx) = sqrt(0.5/18)
    check = SignalCheck(horizon_s=1.0, sample_s=1.0, halflife_s=1e9, z=1.0, full_bps=1.0)
    mid = 100.0
    for i, (call, move_bps) in enumerate([(1.0, 2.0), (-1.0, -1.0), (2.0, 3.0)]):
        check.update(i * S, mid, call)
        mid *= 1 + move_bps * 1e-4
    check.update(3 * S, mid, 0.0)
    assert check.beta_bps(3 * S) == pytest.approx(1.5, rel=1e-6)
    assert check.lower_bps(3 * S) == pytest.approx(1.5 - math.sqrt(0.5 / 18), rel=1e-5)
    assert check.efficacy == 1.0  # 1.33 bps beyond one standard error >= full_bps = 1


def _run(move_with_flow: float, seconds: int = 600, seed: int = 1) -> ToxicityMonitor:
    """Regimes of 10 s in which takers buy (or sell) 5 prints a second, while the mid drifts by
    `move_with_flow` bps a second in the flow's direction (negative: against it), plus noise."""
    rng = random.Random(seed)
    monitor = ToxicityMonitor(ToxicityParams())
    mid = 100.0
    direction = 1
    for step in range(seconds * 10):  # 100 ms steps
        now = step * 100 * MS
        if step % 100 == 0:
            direction = rng.choice((-1, 1))
        if step % 2 == 0:
            monitor.on_trade(direction, 1.0, now)
        mid *= 1 + 1e-4 * (0.1 * move_with_flow * direction + rng.gauss(0.0, 0.3))
        monitor.update(now, mid)
    return monitor


def test_calls_that_come_true_get_the_whole_response() -> None:
    monitor = _run(move_with_flow=1.0)  # the flow's side is right: 5 bps over the next 5 s
    assert monitor.efficacy == 1.0
    side = monitor.ask if monitor.flow_score > 0 else monitor.bid
    assert side.intensity > 0.5
    other = monitor.bid if side is monitor.ask else monitor.ask
    extra = monitor.ask_extra_px(100.0) if monitor.flow_score > 0 else monitor.bid_extra_px(100.0)
    assert extra == pytest.approx((side.intensity - other.intensity) * 15e-4 * 100.0)  # widen_net


@pytest.mark.parametrize("move_with_flow", [0.0, -1.0])  # flow that says nothing / that reverts
def test_calls_that_do_not_come_true_shape_no_quote(move_with_flow: float) -> None:
    monitor = _run(move_with_flow)
    side = monitor.ask if monitor.flow_score > 0 else monitor.bid
    assert side.intensity > 0.5  # the monitor still sees one-sided flow ...
    assert monitor.efficacy == 0.0  # ... but its calls have not come true here
    assert monitor.bid_extra_px(100.0) == monitor.ask_extra_px(100.0) == monitor.skew_px(100.0) == 0.0


def test_the_guard_names_no_toxic_side_while_the_check_holds_the_response_at_zero() -> None:
    guard = RiskGuard(RiskParams())
    for i in range(20):  # one-sided selling, 10 prints a second, the mid unmoved
        guard.on_trade(Side.SELL, 1.0, i * 100 * MS)
    d = guard.evaluate(RiskInputs(mid_px=100.0, last_book_ns=2 * S), 2 * S)
    assert guard.toxicity.bid.state != "clear" and guard.toxicity.efficacy == 0.0
    assert "toxic_bid" not in d.reasons and d.bid_extra_px == 0.0


def test_check_full_bps_zero_switches_the_check_off() -> None:
    monitor = ToxicityMonitor(ToxicityParams(check_full_bps=0.0))
    assert monitor.efficacy == 1.0
    for i in range(20):
        monitor.on_trade(-1, 1.0, i * 100 * MS)
        monitor.update(i * 100 * MS, 100.0)
    assert monitor.bid.intensity > 0.0
    assert monitor.bid_extra_px(100.0) == pytest.approx(monitor.bid.intensity * 15e-4 * 100.0)


def test_check_parameters_are_validated() -> None:
    with pytest.raises(ValueError, match="check_sample_s"):
        ToxicityParams(check_sample_s=10.0, check_horizon_s=5.0)
    with pytest.raises(ValueError, match="check_z"):
        ToxicityParams(check_z=-1.0)
