"""The burst widening (`[risk.toxicity] burst_widen_bps`, issue #16 round nine): while the public
prints arrive far faster than their average, the 5 s outcome of a fill spreads wider, so both sides
are widened (docs/research/toxicity-guard.md, round nine)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from bot.config import RiskToxicityConfig
from bot.core.toxicity import BURST_FULL, ToxicityMonitor, ToxicityParams
from bot.sim.toxicity import RESPONSE_OFF

S = 1_000_000_000
MID = 100.0


def _monitor(**kw: float) -> ToxicityMonitor:
    # the flow, OFI and markout calls out of the way: only the burst widening can shape the quotes
    return ToxicityMonitor(ToxicityParams(widen_bps=0.0, predict_share=0.0, **kw))


def _steady(m: ToxicityMonitor, until_s: int) -> None:
    """One two-sided print a second (the average rate), with an update after each."""
    for t in range(until_s):
        m.on_trade(+1 if t % 2 else -1, 0.5, t * S)
        m.update(t * S, MID)


def test_a_burst_of_prints_widens_both_sides_and_a_steady_rate_does_not() -> None:
    m = _monitor(burst_widen_bps=8.0)
    _steady(m, 60)
    assert m.bid_extra_px(MID) == 0.0 and m.ask_extra_px(MID) == 0.0  # the rate is its average
    now = 60 * S
    for k in range(20):  # 20 prints within 0.2 s, both ways: no side is called, the rate is
        m.on_trade(+1 if k % 2 else -1, 0.5, now + k * 10_000_000)
    m.update(now + 200_000_000, MID)
    assert m.burst_ratio > BURST_FULL
    assert m.bid_extra_px(MID) == pytest.approx(8e-4 * MID)  # whole: 8 bps of mid on each side
    assert m.ask_extra_px(MID) == pytest.approx(8e-4 * MID)
    m.update(now + 5 * S, MID)  # ten short half-lives later the burst is over
    assert m.bid_extra_px(MID) == 0.0 and m.burst == 0.0


def test_no_widening_before_the_average_has_had_its_half_life() -> None:
    m = _monitor(burst_widen_bps=8.0)
    for k in range(20):  # the session's first prints: far above an average that is not there yet
        m.on_trade(+1, 0.5, S + k * 10_000_000)
    m.update(S + 200_000_000, MID)
    assert m.burst == 0.0 and m.ask_extra_px(MID) == 0.0


def test_off_by_default_and_in_the_guard_off_run() -> None:
    m = _monitor()  # burst_widen_bps = 0
    _steady(m, 40)
    for k in range(20):
        m.on_trade(+1, 0.5, 40 * S + k * 10_000_000)
    m.update(40 * S + 200_000_000, MID)
    assert m.bid_extra_px(MID) == 0.0 and m.ask_extra_px(MID) == 0.0
    assert RiskToxicityConfig().burst_widen_bps == 0.0
    assert RESPONSE_OFF["burst_widen_bps"] == 0.0  # the experiment's guard-off run never widens on bursts


def test_a_negative_widening_is_refused() -> None:
    with pytest.raises(ValueError, match="burst_widen_bps"):
        ToxicityParams(burst_widen_bps=-1.0)
    with pytest.raises(ValidationError):
        RiskToxicityConfig(burst_widen_bps=-1.0)
