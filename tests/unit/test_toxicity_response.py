"""The guard's response says WHICH side is picked off (issue #16, round three, docs/research/toxicity-guard.md): both
quotes are centred on the self-check's predicted mid (`predict_share`), and a side is widened by its intensity less
the other side's (`widen_net`). Before, both sides were flagged 80-90 % of the time on the mock and each was widened
by its own intensity, which only traded less: the loss per unit of notional hardly moved."""

from __future__ import annotations

import random

import pytest

from bot.core.toxicity import CALL_CLIP, ToxicityMonitor, ToxicityParams

MS = 1_000_000


def _monitor(**kw: float | bool) -> ToxicityMonitor:
    # the check off (efficacy 1) so the formulas can be read off by hand
    return ToxicityMonitor(ToxicityParams(check_full_bps=0.0, widen_bps=10.0, **kw))  # type: ignore[arg-type]


def test_both_sides_flagged_alike_widen_neither() -> None:
    monitor = _monitor()
    monitor.bid.intensity = monitor.ask.intensity = 0.8
    assert monitor.bid_extra_px(100.0) == monitor.ask_extra_px(100.0) == 0.0


def test_a_side_is_widened_by_its_intensity_less_the_other_sides() -> None:
    monitor = _monitor()
    monitor.bid.intensity, monitor.ask.intensity = 0.25, 1.0
    assert monitor.ask_extra_px(100.0) == pytest.approx(0.75 * 10e-4 * 100.0)  # 7.5 bps of 100
    assert monitor.bid_extra_px(100.0) == 0.0


def test_widen_net_false_widens_each_side_by_its_own_intensity() -> None:
    monitor = _monitor(widen_net=False)
    monitor.bid.intensity, monitor.ask.intensity = 0.25, 1.0
    assert monitor.ask_extra_px(100.0) == pytest.approx(0.1)
    assert monitor.bid_extra_px(100.0) == pytest.approx(0.025)


def _run(move_with_flow: float, predict_share: float = 1.0, seconds: int = 600) -> ToxicityMonitor:
    """Regimes of 10 s of one-sided prints (5 a second) while the mid drifts `move_with_flow` bps a
    second the flow's way (negative: against it), plus noise; the self-check on (the defaults)."""
    rng = random.Random(1)
    monitor = ToxicityMonitor(ToxicityParams(predict_share=predict_share))
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


def test_quotes_are_centred_on_the_predicted_mid() -> None:
    monitor = _run(move_with_flow=1.0)  # the flow's side comes true: 5 bps over the check's 5 s
    assert monitor.efficacy == 1.0
    beta = monitor.check.beta
    assert 3.0 < beta < 7.0  # ~5 bps per unit of call (the drift), measured by the check
    call = max(-CALL_CLIP, min(CALL_CLIP, monitor.flow_score))
    assert monitor.predicted_bps == pytest.approx(beta * call)
    # no skew_bps (default 0): the whole shift is the predicted move, the flow's way
    assert monitor.skew_px(100.0) == pytest.approx(beta * call * 1e-4 * 100.0)
    assert monitor.skew_px(100.0) * monitor.flow_score > 0.0
    half = _run(move_with_flow=1.0, predict_share=0.5)
    assert half.skew_px(100.0) == pytest.approx(0.5 * monitor.skew_px(100.0))


@pytest.mark.parametrize("move_with_flow", [0.0, -1.0])
def test_no_shift_where_the_flow_has_not_predicted_the_mid(move_with_flow: float) -> None:
    monitor = _run(move_with_flow)
    assert monitor.efficacy == 0.0
    assert monitor.predicted_bps == 0.0 and monitor.skew_px(100.0) == 0.0


def test_predict_share_is_validated() -> None:
    with pytest.raises(ValueError, match="predict_share"):
        ToxicityParams(predict_share=-1.0)
    with pytest.raises(ValueError, match="predict_share"):
        ToxicityParams(predict_share=float("inf"))
