"""The fill back-off (`[risk.toxicity] fill_backoff_bps`, issue #16 round eight): each of our fills
pushes its own side out, easing with a half-life. On the thin altcoin mock a quote the fair value has
passed is eaten piece by piece, one ladder relocation after another, while the book's top (that very
quote) holds the mid where it was (docs/research/toxicity-guard.md, round eight); the fill is the first sign of it."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from bot.config import RiskToxicityConfig
from bot.core.toxicity import ToxicityMonitor, ToxicityParams
from bot.sim.toxicity import RESPONSE_OFF

S = 1_000_000_000
MID = 100.0


def _monitor(**kw: float) -> ToxicityMonitor:
    # the flow, OFI and markout calls out of the way: only the back-off can shape the quotes
    return ToxicityMonitor(ToxicityParams(widen_bps=0.0, predict_share=0.0, **kw))


def test_a_fill_pushes_its_own_side_out_and_the_push_eases_with_the_half_life() -> None:
    m = _monitor(fill_backoff_bps=6.0, fill_backoff_halflife_s=0.5)
    m.on_fill(+1, MID, 0.02, 10 * S)  # our bid was hit
    m.update(10 * S, MID)
    assert m.bid_extra_px(MID) == pytest.approx(6e-4 * MID)  # 6 bps of mid at the fill
    assert m.ask_extra_px(MID) == 0.0  # the other side is left where the model puts it
    m.update(10 * S + S // 2, MID)  # one half-life later
    assert m.bid_extra_px(MID) == pytest.approx(3e-4 * MID)
    m.on_fill(-1, MID, 0.02, 11 * S)  # now our ask is lifted
    m.update(11 * S, MID)
    assert m.ask_extra_px(MID) == pytest.approx(6e-4 * MID)
    assert m.bid_extra_px(MID) == pytest.approx(6e-4 * MID * 0.5**2)  # two half-lives after the bid's fill


def test_more_fills_do_not_push_beyond_the_full_back_off() -> None:
    m = _monitor(fill_backoff_bps=6.0)
    for k in range(5):  # a quote eaten in five pieces within 40 ms
        m.on_fill(+1, MID, 0.02, 10 * S + k * 10_000_000)
    m.update(10 * S + 40_000_000, MID)
    assert m.bid_extra_px(MID) == pytest.approx(6e-4 * MID)


def test_off_by_default_and_in_the_guard_off_run() -> None:
    m = _monitor()  # fill_backoff_bps = 0
    m.on_fill(+1, MID, 1.0, 10 * S)
    m.update(10 * S, MID)
    assert m.bid_extra_px(MID) == 0.0 and m.bid_backoff == 0.0
    assert RiskToxicityConfig().fill_backoff_bps == 0.0
    assert RESPONSE_OFF["fill_backoff_bps"] == 0.0  # the experiment's guard-off run never backs off


def test_bad_values_are_refused() -> None:
    with pytest.raises(ValueError, match="fill_backoff_bps"):
        ToxicityParams(fill_backoff_bps=-1.0)
    with pytest.raises(ValueError, match="fill_backoff_halflife_s"):
        ToxicityParams(fill_backoff_halflife_s=0.0)
    with pytest.raises(ValidationError):
        RiskToxicityConfig(fill_backoff_halflife_s=0.0)
