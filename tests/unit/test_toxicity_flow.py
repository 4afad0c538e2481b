"""The concentrated one-sided flow score (bot/core/toxicity.FlowScore) and the side it turns toxic
(issue #16 item 4: the seed's one-sided, concentrated, unsliced flow beside markouts and OFI)."""

from __future__ import annotations

import pytest

from bot.core.toxicity import CLEAR, TOXIC, FlowScore, ToxicityMonitor, ToxicityParams

S = 1_000_000_000
MS = 1_000_000


def test_steady_one_sided_flow_of_typical_prints_scores_one() -> None:
    # 10 prints/s of size 1 for 300 s (10 long half-lives). At a print, Σ signed = 1/(1 − a_s) and
    # Σ weights = 1/(1 − a_l), a = 2^(−0.1 s/h): the score is their ratio × h_l/h_s = 1.034 (the
    # continuous-time limit r·h_s/ln2 over r·h_l/ln2, × h_l/h_s, is exactly 1)
    flow = FlowScore(1.0, 30.0, 2.0)
    for i in range(3000):
        flow.on_trade(+1, 1.0, i * 100 * MS)
    a_s, a_l = 0.5 ** (0.1 / 1.0), 0.5 ** (0.1 / 30.0)
    expected = (1 / (1 - a_s)) / (1 / (1 - a_l)) * 30.0
    assert expected == pytest.approx(1.034, abs=1e-3)
    assert flow.score(2999 * 100 * MS) == pytest.approx(expected, rel=2e-3)


def test_two_sided_flow_scores_near_zero_and_a_burst_of_large_sells_scores_far_below_minus_one() -> None:
    flow = FlowScore(1.0, 30.0, 2.0)
    now = 0
    for i in range(3000):  # alternating buys and sells of 1
        now = i * 100 * MS
        flow.on_trade(+1 if i % 2 else -1, 1.0, now)
    assert abs(flow.score(now)) < 0.1
    for _ in range(10):  # one second of sells twice the typical size: concentrated, one-sided, a burst
        now += 100 * MS
        flow.on_trade(-1, 2.0, now)
    assert flow.score(now) < -1.5  # well past steady one-sided flow of typical prints (-1)


def _monitor(**kw: float) -> ToxicityMonitor:
    # markouts and OFI that cannot fire, so only the flow score can turn a side toxic
    return ToxicityMonitor(
        ToxicityParams(
            markout_enter_bps=1e9, markout_exit_bps=1e9, ofi_enter=1.0, ofi_exit=1.0, check_full_bps=0.0, **kw
        )
    )


def _feed(monitor: ToxicityMonitor) -> int:
    now = 0
    for i in range(600):  # a minute of two-sided flow of size 1
        now = i * 100 * MS
        monitor.on_trade(+1 if i % 2 else -1, 1.0, now)
        monitor.update(now, 100.0)
    for _ in range(10):  # then large sellers in a burst
        now += 100 * MS
        monitor.on_trade(-1, 3.0, now)
        monitor.update(now, 100.0)
    return now


def test_the_flow_score_turns_the_bid_toxic_on_a_burst_of_large_sells() -> None:
    monitor = _monitor(flow_enter=0.7, flow_exit=0.3)
    _feed(monitor)
    assert monitor.bid.state is TOXIC and monitor.ask.state is CLEAR
    assert monitor.flow_score < -0.7


def test_with_the_flow_signal_off_the_same_burst_changes_nothing() -> None:
    monitor = _monitor(flow_enter=float("inf"), flow_exit=float("inf"))
    _feed(monitor)
    assert monitor.bid.state is CLEAR and monitor.ask.state is CLEAR
