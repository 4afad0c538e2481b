"""Obligations: the spread cap on widening, depth within the band, time-weighted compliance."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.core.obligations import (
    ComplianceTracker,
    Obligation,
    cap_widening,
    depth_held,
    depth_within_band_quote,
    spread_held,
)

S = 1_000_000_000
MAIN = Obligation("main", max_spread_bps=10.0, depth_band_pct=2.0, min_depth_quote=100_000.0)


def test_article_obligation_numbers() -> None:
    # 0.1 % of a $1.00 token is $0.001; the ±2 % band is [0.98, 1.02]
    assert MAIN.max_spread_px(1.0) == pytest.approx(0.001)
    assert MAIN.band_px(1.0) == pytest.approx((0.98, 1.02))


def test_depth_within_band() -> None:
    low, high = MAIN.band_px(1.0)
    bids = [(0.999, 50_000.0), (0.99, 40_000.0), (0.98, 10_000.0), (0.97, 1_000_000.0)]  # last is outside
    depth = depth_within_band_quote(bids, low, high)
    assert depth == pytest.approx(0.999 * 50_000 + 0.99 * 40_000 + 0.98 * 10_000)  # 99,149.99
    assert not depth_held(MAIN, depth)
    assert depth_held(MAIN, 100_000.0)


@pytest.mark.parametrize(
    ("bid", "ask", "held"),
    [(99.95, 100.05, True), (99.949, 100.05, False), (99.95, math.nan, False), (math.nan, 100.0, False)],
)
def test_spread_held(bid: float, ask: float, held: bool) -> None:
    assert spread_held(MAIN, 100.0, bid, ask) is held  # cap 0.1 at mid 100


def test_cap_widening_hand_values() -> None:
    # model 0.06, ×1.5 = 0.09, + 0.05 bid extra = 0.14 > 0.10: f = 0.04/0.08 = 0.5
    assert cap_widening(0.06, 1.5, 0.05, 0.0, 0.10) == pytest.approx((1.25, 0.025, 0.0, True))
    assert cap_widening(0.06, 1.5, 0.0, 0.0, 0.10) == (1.5, 0.0, 0.0, False)  # 0.09 fits
    # the model alone is wider than the cap: all widening removed, the quoter clamps the rest
    assert cap_widening(0.12, 2.0, 0.01, 0.02, 0.10) == (1.0, 0.0, 0.0, True)


@given(
    theo=st.floats(1e-6, 10.0),
    mult=st.floats(1.0, 20.0),
    bid_extra=st.floats(0.0, 10.0),
    ask_extra=st.floats(0.0, 10.0),
    cap=st.floats(1e-6, 10.0),
)
def test_cap_widening_never_exceeds_cap_nor_widens(
    theo: float, mult: float, bid_extra: float, ask_extra: float, cap: float
) -> None:
    new_mult, new_bid, new_ask, bound = cap_widening(theo, mult, bid_extra, ask_extra, cap)
    total = theo * new_mult + new_bid + new_ask
    assert total <= max(cap, theo) * (1 + 1e-9) + 1e-12
    assert 1.0 <= new_mult <= mult * (1 + 1e-12)
    assert 0.0 <= new_bid <= bid_extra and 0.0 <= new_ask <= ask_extra
    assert bound == (theo * mult + bid_extra + ask_extra > cap)


def test_compliance_time_weighted() -> None:
    tracker = ComplianceTracker()
    assert math.isnan(tracker.shares(0)["spread"])
    tracker.update(0, True, True, False)  # 0–10 s: spread and bids ok, asks short
    tracker.update(10 * S, False, True, True)  # 10–15 s: spread too wide
    tracker.update(15 * S, True, True, True)  # 15–20 s: all held
    shares = tracker.shares(20 * S)
    assert shares == {"spread": 0.75, "bid_depth": 1.0, "ask_depth": 0.5, "all": 0.25}
    assert tracker.observed_s == 20.0


def test_compliance_ignores_time_going_backwards() -> None:
    tracker = ComplianceTracker()
    tracker.update(10 * S, True, True, True)
    tracker.update(5 * S, False, False, False)  # out of order: no negative time is accrued
    tracker.update(20 * S, False, False, False)
    assert tracker.shares(20 * S)["all"] == 0.0
    assert tracker.observed_s == 10.0


@given(
    st.lists(st.tuples(st.integers(0, 10 * S), st.booleans(), st.booleans(), st.booleans()), min_size=1, max_size=40)
)
def test_compliance_shares_are_fractions(steps: list[tuple[int, bool, bool, bool]]) -> None:
    tracker = ComplianceTracker()
    now = 0
    for dt, a, b, c in steps:
        now += dt
        tracker.update(now, a, b, c)
    shares = tracker.shares(now + S)
    for name in ("spread", "bid_depth", "ask_depth"):
        assert 0.0 <= shares["all"] <= shares[name] <= 1.0


def test_obligation_validation() -> None:
    with pytest.raises(ValueError):
        Obligation("x", max_spread_bps=0.0)
    with pytest.raises(ValueError):
        Obligation("x", depth_band_pct=100.0)
