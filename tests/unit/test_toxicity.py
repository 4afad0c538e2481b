"""Toxic flow: markouts at several horizons, order-flow imbalance, per-side enter/hold/decay/exit."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.core.toxicity import (
    CLEAR,
    DECAYING,
    TOXIC,
    MarkoutTracker,
    RollingWindow,
    SideToxicity,
    ToxicityMonitor,
    ToxicityParams,
    markout_quote,
    order_flow_imbalance,
    ramp,
)

S = 1_000_000_000


@pytest.mark.parametrize(
    ("sign", "fill", "mid", "size", "expected"),
    [
        (+1, 100.0, 99.9, 2.0, -0.2),  # bought at 100, mid fell 0.1: lost 0.1 per unit
        (+1, 100.0, 100.3, 2.0, 0.6),
        (-1, 100.0, 99.9, 2.0, 0.2),  # sold at 100, mid fell: made money
        (-1, 100.0, 100.5, 1.0, -0.5),
    ],
)
def test_markout_formula(sign: int, fill: float, mid: float, size: float, expected: float) -> None:
    assert markout_quote(sign, fill, mid, size) == pytest.approx(expected)


def test_markouts_at_each_horizon_and_adverse_loss() -> None:
    tracker = MarkoutTracker((1.0, 5.0, 30.0), 5.0, 60.0)
    tracker.observe(0, 100.0)
    tracker.on_fill(+1, 100.0, 2.0, 0)  # bought 2 at 100.00
    tracker.observe(S, 99.9)  # at 1 s: (99.9 − 100)·2 = −0.2
    tracker.observe(5 * S, 99.8)  # at 5 s: −0.4
    tracker.observe(30 * S, 100.3)  # at 30 s: +0.6
    one, five, thirty = tracker.stats()
    assert (one.count, one.total_quote, one.adverse_loss_quote) == pytest.approx((1, -0.2, 0.2))
    assert (five.total_quote, five.adverse_loss_quote) == pytest.approx((-0.4, 0.4))
    assert (thirty.total_quote, thirty.adverse_loss_quote) == pytest.approx((0.6, 0.0))
    assert tracker.adverse_selection_loss_quote(5.0) == pytest.approx(0.4)
    assert tracker.pending_count() == 0


def test_markout_uses_the_mid_prevailing_at_the_horizon() -> None:
    tracker = MarkoutTracker((1.0,), 1.0, 60.0)
    tracker.observe(0, 100.0)
    tracker.on_fill(-1, 100.0, 1.0, 0)
    tracker.observe(S // 2, 99.9)  # the mid at 0.5 s ...
    tracker.observe(12 * S // 10, 100.5)  # ... still prevails at 1 s; this 1.2 s mid comes too late
    (stats,) = tracker.stats()
    assert stats.total_quote == pytest.approx(0.1)  # sold at 100, marked at 99.9


def test_markout_waits_for_time_and_resolves_on_timer() -> None:
    tracker = MarkoutTracker((1.0,), 1.0, 60.0)
    tracker.observe(0, 100.0)
    tracker.on_fill(+1, 100.0, 1.0, 0)
    tracker.observe(S - 1, math.nan)
    assert tracker.pending_count() == 1
    tracker.observe(S, math.nan)  # a timer: no new mid, the last one prevails
    assert tracker.pending_count() == 0
    assert tracker.stats()[0].total_quote == 0.0


def test_losses_accumulate_only_negative_part() -> None:
    tracker = MarkoutTracker((1.0,), 1.0, 60.0)
    tracker.observe(0, 100.0)
    tracker.on_fill(+1, 100.0, 1.0, 0)
    tracker.on_fill(-1, 100.0, 3.0, 0)
    tracker.observe(S, 99.0)  # buy: −1.0, sell: +3.0
    (stats,) = tracker.stats()
    assert stats.total_quote == pytest.approx(2.0)
    assert stats.adverse_loss_quote == pytest.approx(1.0)


def test_rolling_window_expires_and_resets() -> None:
    window = RollingWindow(10 * S)
    window.add(0, 1.0, 2.0)
    window.add(5 * S, 0.1, 0.2)
    assert (window.count, window.sum_a, window.sum_b) == pytest.approx((2, 1.1, 2.2))
    window.expire(10 * S)  # the entry at 0 is exactly 10 s old: out
    assert (window.count, window.sum_a) == pytest.approx((1, 0.1))
    window.expire(15 * S)
    assert (window.count, window.sum_a, window.sum_b) == (0, 0.0, 0.0)


@pytest.mark.parametrize(
    ("buy", "sell", "expected"), [(3.0, 1.0, 0.5), (1.0, 3.0, -0.5), (2.0, 0.0, 1.0), (0.0, 0.0, 0.0)]
)
def test_order_flow_imbalance(buy: float, sell: float, expected: float) -> None:
    assert order_flow_imbalance(buy, sell) == expected


def test_side_state_machine_enter_hold_decay_exit() -> None:
    side = SideToxicity(halflife_s=10.0)
    side.update(False, False, 0)
    assert (side.state, side.intensity) == (CLEAR, 0.0)
    side.update(True, True, S)  # enter
    assert (side.state, side.intensity) == (TOXIC, 1.0)
    side.update(False, True, 2 * S)  # below the enter threshold but above exit: hold
    assert (side.state, side.intensity) == (TOXIC, 1.0)
    side.update(False, False, 3 * S)  # clears: decay starts from 1
    assert (side.state, side.intensity) == (DECAYING, 1.0)
    side.update(False, False, 13 * S)  # one half-life
    assert side.intensity == pytest.approx(0.5)
    side.update(False, True, 23 * S)  # the exit threshold alone does not stop the decay
    assert side.state == DECAYING
    assert side.intensity == pytest.approx(0.25)
    # 0.5^(t/10) < 0.01 ⇔ t > 10·log2(100) = 66.44 s after the clear at 3 s
    side.update(False, False, 69 * S)
    assert side.state == DECAYING
    assert side.intensity == pytest.approx(0.5**6.6)
    side.update(False, False, 70 * S)
    assert (side.state, side.intensity) == (CLEAR, 0.0)


def test_side_reenters_while_decaying() -> None:
    side = SideToxicity(halflife_s=10.0)
    side.update(True, True, 0)
    side.update(False, False, S)
    side.update(False, False, 11 * S)
    assert side.intensity == pytest.approx(0.5)
    side.update(True, True, 12 * S)
    assert (side.state, side.intensity) == (TOXIC, 1.0)


@pytest.mark.parametrize(
    ("x", "expected"), [(0.2, 0.0), (0.3, 0.0), (0.45, 0.5), (0.6, 1.0), (0.9, 1.0), (math.nan, 0.0)]
)
def test_ramp_between_exit_and_enter(x: float, expected: float) -> None:
    assert ramp(x, 0.3, 0.6) == pytest.approx(expected)


def test_ramp_is_a_step_when_thresholds_coincide() -> None:
    assert (ramp(0.5, 0.5, 0.5), ramp(0.51, 0.5, 0.5)) == (0.0, 1.0)


def test_intensity_follows_pressure_down_no_faster_than_the_halflife() -> None:
    side = SideToxicity(halflife_s=2.0)
    side.update(True, True, 0)
    assert (side.state, side.intensity) == (TOXIC, 1.0)
    side.update(False, True, 2 * S, pressure=0.2)  # one half-life: max(0.2, 0.5)
    assert (side.state, side.intensity) == (TOXIC, pytest.approx(0.5))
    side.update(False, True, 4 * S, pressure=0.2)  # max(0.2, 0.25)
    assert side.intensity == pytest.approx(0.25)
    side.update(False, True, 6 * S, pressure=0.2)  # the decay has reached the pressure: max(0.2, 0.125)
    assert side.intensity == pytest.approx(0.2)
    side.update(False, True, 7 * S, pressure=0.7)  # a stronger signal raises it at once
    assert side.intensity == pytest.approx(0.7)
    side.update(False, False, 8 * S, pressure=0.0)  # below exit: decaying from 0.7, starting now
    assert (side.state, side.intensity) == (DECAYING, pytest.approx(0.7))
    side.update(False, False, 10 * S)
    assert side.intensity == pytest.approx(0.35)


PARAMS = ToxicityParams(
    markout_horizons_s=(1.0, 5.0),
    signal_horizon_s=1.0,
    markout_window_s=60.0,
    markout_min_fills=2,
    markout_enter_bps=5.0,
    markout_exit_bps=2.0,
    ofi_window_s=10.0,
    ofi_min_trades=4,
    ofi_enter=0.6,
    ofi_exit=0.3,
    widen_bps=10.0,
    skew_bps=4.0,
    decay_halflife_s=10.0,
    # these tests drive the markout and OFI signals; the concentrated-flow score has its own
    # (tests/unit/test_toxicity_flow.py) and is switched off here so it cannot fire first
    flow_enter=math.inf,
    flow_exit=math.inf,
    # ... and the self-check, which would hold the response at 0 until calls come true (its own tests:
    # tests/unit/test_toxicity_check.py)
    check_full_bps=0.0,
)


def test_markouts_make_the_ask_toxic_and_it_clears_when_the_window_empties() -> None:
    monitor = ToxicityMonitor(PARAMS)
    monitor.update(0, 100.0)
    monitor.on_fill(-1, 100.0, 1.0, 0)  # we sold twice at 100 ...
    monitor.on_fill(-1, 100.0, 1.0, 0)
    monitor.update(S, 100.08)  # ... and the mid rose 8 bps: markout −8 bps < −5
    assert monitor.ask_markout_bps == pytest.approx(-8.0)
    assert monitor.ask.state == TOXIC
    assert monitor.bid.state == CLEAR
    assert monitor.ask_extra_px(100.0) == pytest.approx(0.1)  # 10 bps of 100
    assert monitor.bid_extra_px(100.0) == 0.0
    assert monitor.skew_px(100.0) == pytest.approx(0.04)  # both quotes up, away from the toxic ask
    monitor.update(30 * S, 100.08)  # still in the 60 s window: hold
    assert monitor.ask.state == TOXIC
    monitor.update(61 * S, 100.08)  # resolved at 1 s, out of the window at 61 s: decay starts
    assert monitor.ask.state == DECAYING
    monitor.update(71 * S, 100.08)
    assert monitor.ask_extra_px(100.0) == pytest.approx(0.05)
    assert monitor.skew_px(100.0) == pytest.approx(0.02)


def test_markout_signal_needs_min_fills() -> None:
    monitor = ToxicityMonitor(PARAMS)
    monitor.update(0, 100.0)
    monitor.on_fill(+1, 100.0, 1.0, 0)  # one terrible buy is not yet a pattern
    monitor.update(S, 99.0)
    assert math.isnan(monitor.bid_markout_bps)
    assert monitor.bid.state == CLEAR


def test_size_weighted_markout_bps() -> None:
    monitor = ToxicityMonitor(PARAMS)
    monitor.update(0, 100.0)
    monitor.on_fill(+1, 100.0, 3.0, 0)  # mid 99.99 at 1 s: −0.03 quote on 300 notional
    monitor.on_fill(+1, 100.0, 1.0, 0)  # −0.01 on 100
    monitor.update(S, 99.99)
    assert monitor.bid_markout_bps == pytest.approx(-1.0)  # −0.04 / 400 · 1e4
    assert monitor.bid.state == CLEAR


def test_order_flow_imbalance_makes_bid_toxic_with_hysteresis() -> None:
    monitor = ToxicityMonitor(PARAMS)
    for i in range(4):  # one buy of 1, then sellers hit bids: 3 sells of 1 and one of 4 → (1 − 7)/8
        monitor.on_trade(-1 if i else +1, 1.0, i * S)
    monitor.on_trade(-1, 4.0, 4 * S)
    monitor.update(4 * S, 100.0)
    assert monitor.ofi == pytest.approx(-0.75)
    assert monitor.bid.state == TOXIC
    assert monitor.ask.state == CLEAR
    assert monitor.skew_px(100.0) == pytest.approx(-0.04)  # quotes lower, away from the toxic bid
    for i in range(4):  # buyers arrive at 10 s; the buy at 0 s has left the 10 s window
        monitor.on_trade(+1, 1.0, 10 * S + i)
    # window (0.5 s, 10.5 s]: sells 1 + 1 + 1 + 4 = 7 at 1..4 s, buys 4 → (4 − 7)/11 = −0.27 > −0.3
    monitor.update(10 * S + S // 2, 100.0)
    assert monitor.ofi == pytest.approx(-3.0 / 11.0)
    assert monitor.bid.state == DECAYING


def test_ofi_needs_min_trades() -> None:
    monitor = ToxicityMonitor(PARAMS)
    for i in range(3):
        monitor.on_trade(+1, 1.0, i)
    monitor.update(3, 100.0)
    assert monitor.ofi == 0.0
    assert monitor.ask.state == CLEAR


def test_adverse_selection_loss_default_horizon() -> None:
    monitor = ToxicityMonitor(PARAMS)
    monitor.update(0, 100.0)
    monitor.on_fill(+1, 100.0, 1.0, 0)
    monitor.update(S, 99.5)  # 1 s (the signal horizon): −0.5
    monitor.update(5 * S, 100.2)  # 5 s: +0.2
    assert monitor.adverse_selection_loss_quote() == pytest.approx(0.5)
    assert monitor.adverse_selection_loss_quote(5.0) == 0.0


def test_params_validation() -> None:
    with pytest.raises(ValueError, match="signal_horizon_s"):
        ToxicityParams(markout_horizons_s=(1.0, 5.0), signal_horizon_s=2.0)
    with pytest.raises(ValueError, match="hysteresis"):
        ToxicityParams(markout_enter_bps=1.0, markout_exit_bps=2.0)


@given(
    steps=st.lists(
        st.tuples(
            st.integers(0, 5 * S),  # time step
            st.floats(99.0, 101.0),  # mid
            st.sampled_from([-1, 0, 1]),  # our fill side (0: none)
            st.sampled_from([-1, 1]),  # public trade aggressor
        ),
        max_size=60,
    )
)
def test_intensities_stay_in_unit_interval_and_decay_without_signals(
    steps: list[tuple[int, float, int, int]],
) -> None:
    monitor = ToxicityMonitor(PARAMS)
    now = 0
    for dt, mid, fill_side, aggressor in steps:
        now += dt
        if fill_side:
            monitor.on_fill(fill_side, mid, 1.0, now)
        monitor.on_trade(aggressor, 1.0, now)
        monitor.update(now, mid)
        for side in (monitor.bid, monitor.ask):
            assert 0.0 <= side.intensity <= 1.0
            assert (side.intensity == 0.0) == (side.state == CLEAR)
    # with no new fills or trades, once every window and horizon has passed, both sides decay to clear
    previous = (monitor.bid.intensity, monitor.ask.intensity)
    for k in range(1, 30):
        monitor.update(now + k * 10 * S, 100.0)
        current = (monitor.bid.intensity, monitor.ask.intensity)
        if k > 7:  # past the 60 s markout window and the 10 s trade window
            assert current[0] <= previous[0] and current[1] <= previous[1]
        previous = current
    assert monitor.bid.state == CLEAR and monitor.ask.state == CLEAR


def test_ofi_pressure_grades_the_response_while_toxic() -> None:
    monitor = ToxicityMonitor(PARAMS)  # ofi enter 0.6, exit 0.3, widen 10 bps, skew 4 bps, half-life 10 s
    for i in range(4):
        monitor.on_trade(+1, 1.0, i)
    monitor.update(4, 100.0)  # OFI +1: the ask turns toxic at full intensity
    assert (monitor.ask.state, monitor.ask.intensity) == (TOXIC, 1.0)
    for i in range(6):  # by 9 s: buys 4 + 3 = 7, sells 3 → OFI 0.4: pressure (0.4 − 0.3)/0.3 = 1/3
        monitor.on_trade(+1 if i % 2 else -1, 1.0, 3 * S + i)
    monitor.update(9 * S, 100.0)  # 9 s since the last update: decayed 0.5^0.9 = 0.536 > 1/3
    assert monitor.ofi == pytest.approx(0.4)
    assert monitor.ask.state == TOXIC
    assert monitor.ask.intensity == pytest.approx(0.5**0.9)
    assert monitor.ask_extra_px(100.0) == pytest.approx(0.5**0.9 * 0.1)
    monitor.update(40 * S, 100.0)  # the 10 s window is empty: OFI 0, below exit, decay starts
    assert monitor.ask.state == DECAYING
