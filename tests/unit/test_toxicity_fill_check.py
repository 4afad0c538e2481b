"""The self-check judged by our own fills (bot/core/toxicity.FillCheck, `check_source = "fills"`): issue #16 round
seven (docs/research/toxicity-guard.md). On the altcoin mock the mid check holds the response off (the flow score
moves the mid only a little), though our fills made against the flow lose more than the others; the fill check asks
that second question directly."""

from __future__ import annotations

import math
import random

import pytest
from pydantic import ValidationError

from bot.config import RiskToxicityConfig
from bot.core.toxicity import FillCheck, ToxicityMonitor, ToxicityParams

S = 1_000_000_000
MS = 1_000_000


def _feed(check: FillCheck, points: list[tuple[float, float]]) -> None:
    """Each (call against, markout bps) as one bought fill at 100 marked 1 s later."""
    for i, (x, y) in enumerate(points):
        t = 10 * i * S
        check.on_fill(+1, 100.0, x, t)
        check.update(t + S, 100.0 * (1 + y * 1e-4))


def test_the_regression_is_the_extra_loss_per_unit_of_call_against_with_its_standard_error() -> None:
    # 12 fills without a call (x = 0) marked +1, -1, ... (mean 0); 12 with the flow against them (x = 1)
    # marked -1, -3, ... (mean -2): b = -2 bps per unit; residuals all ±1 -> s² = 24/22,
    # Σ(x - x̄)² = 24 · 0.25 = 6, se = sqrt(s² / 6) = sqrt(2/11); lower = 2 - sqrt(2/11) = 1.574
    points = [(0.0, 1.0 if i % 2 else -1.0) for i in range(12)] + [(1.0, -1.0 if i % 2 else -3.0) for i in range(12)]
    check = FillCheck(horizon_s=1.0, halflife_s=1e9, z=1.0, full_bps=2.0)
    _feed(check, points)
    assert check.slope == pytest.approx(-2.0, rel=1e-6)
    assert check.lower_bps() == pytest.approx(2.0 - math.sqrt(2.0 / 11.0), rel=1e-6)
    assert check.efficacy == pytest.approx((2.0 - math.sqrt(2.0 / 11.0)) / 2.0, rel=1e-6)  # ramp to full_bps = 2


def test_too_few_fills_or_no_extra_loss_keeps_the_response_off() -> None:
    check = FillCheck(horizon_s=1.0, halflife_s=1e9, z=1.0, full_bps=1.0)
    _feed(check, [(1.0, -5.0), (0.0, 5.0)] * 9)  # 18 fills: a strong slope, but fewer than MIN_FILLS
    assert math.isnan(check.lower_bps()) and check.efficacy == 0.0
    flat = FillCheck(horizon_s=1.0, halflife_s=1e9, z=1.0, full_bps=1.0)
    _feed(flat, [(x, -2.0 + (1.0 if i % 2 else -1.0)) for i, x in enumerate([0.0, 0.0, 1.0, 1.0] * 10)])
    assert flat.slope == pytest.approx(0.0, abs=1e-9)  # every fill loses alike: no call to make
    assert flat.efficacy == 0.0


def _monitor_run(against_costs_bps: float, seconds: int = 900, seed: int = 3) -> ToxicityMonitor:
    """Regimes of 5 s in which takers sell (or buy) 5 prints a second, the mid unmoved by the flow; one of
    our fills a second on a random side, marked `against_costs_bps` worse when the flow was against it
    (the fill's own 1 s markout: the mid after it is set from the fill's price), plus noise."""
    rng = random.Random(seed)
    monitor = ToxicityMonitor(ToxicityParams(check_source="fills", predict_share=0.0))
    direction = 1
    due: list[tuple[int, float]] = []  # (time, mid then)
    mid = 100.0
    for step in range(seconds * 10):
        now = step * 100 * MS
        if step % 50 == 0:
            direction = rng.choice((-1, 1))
        if step % 2 == 0:
            monitor.on_trade(direction, 1.0, now)
        if step % 10 == 5:
            side = rng.choice((-1, 1))
            against = direction == -side  # sellers against our buy, buyers against our sell
            move = -side * against_costs_bps * against + rng.gauss(0.0, 1.0)
            monitor.on_fill(side, 100.0, 1.0, now)
            due.append((now + S, 100.0 * (1 + move * 1e-4)))
        if due and due[0][0] <= now:
            mid = due.pop(0)[1]
        monitor.update(now, mid)
    return monitor


def test_fills_that_lose_more_against_the_flow_get_the_whole_response() -> None:
    monitor = _monitor_run(against_costs_bps=3.0)
    assert monitor.fill_check is not None and monitor.fill_check.slope < -1.0
    assert monitor.efficacy == 1.0
    toxic = monitor.ask if monitor.flow_score > 0 else monitor.bid
    extra = monitor.ask_extra_px(100.0) if monitor.flow_score > 0 else monitor.bid_extra_px(100.0)
    assert toxic.intensity > 0.5 and extra > 0.0


def test_fills_that_do_not_lose_more_against_the_flow_shape_no_quote() -> None:
    monitor = _monitor_run(against_costs_bps=0.0)
    toxic = monitor.ask if monitor.flow_score > 0 else monitor.bid
    assert toxic.intensity > 0.5  # the flow is one-sided ...
    assert monitor.efficacy == 0.0  # ... but our fills do not lose more for it
    assert monitor.bid_extra_px(100.0) == monitor.ask_extra_px(100.0) == 0.0


def test_the_mid_check_stays_the_default() -> None:
    monitor = ToxicityMonitor(ToxicityParams())
    assert monitor.fill_check is None and monitor.efficacy == monitor.check.efficacy


def test_fill_check_parameters_are_validated() -> None:
    with pytest.raises(ValueError, match="check_source"):
        ToxicityParams(check_source="trades")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="fill_check_halflife_s"):
        ToxicityParams(fill_check_halflife_s=0.5, signal_horizon_s=1.0)
    with pytest.raises(ValidationError, match="signal_horizon_s"):
        RiskToxicityConfig(fill_check_halflife_s=1.0)
    with pytest.raises(ValidationError, match="check_source"):
        RiskToxicityConfig(check_source="trades")
