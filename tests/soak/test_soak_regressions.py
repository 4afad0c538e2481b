"""Bugs the soak found, pinned at the smallest scale that shows them."""

from __future__ import annotations

from bot.config import load_settings
from bot.core.orders import CANCEL_RETRY_NS, OrderManager
from bot.core.quoting import DesiredQuote
from bot.domain import CancelOrder, CancelRejected, OrderAccepted, Side
from bot.sim.soak import run_soak
from bot.venues.mock.faults import FAULT_NAMES

SYM = "TOKEN/USDT"


def _live_quote(om: OrderManager) -> str:
    desired = (DesiredQuote(Side.BUY, 0, 10_000, 100),)
    [place] = om.diff(SYM, desired, 0, 1, 0)
    om.on_accepted(OrderAccepted(SYM, place.client_id, "v1", 0, 0))
    return place.client_id


def test_a_cancel_refused_by_an_unreachable_venue_is_not_resent_in_the_same_instant() -> None:
    # seed 1, disconnect fault, t=24.91 s: the venue refused each cancel at once and the engine re-sent
    # it at once, forever, without simulated time moving (a busy loop in the live runner).
    om = OrderManager()
    cid = _live_quote(om)
    assert om.diff(SYM, (), 1_000, 1, 0) == [CancelOrder(SYM, cid)]
    om.on_cancel_rejected(CancelRejected(SYM, cid, "venue_disconnected", 1_000, 1_000))
    assert om.diff(SYM, (), 1_000, 1, 0) == []
    assert om.diff(SYM, (), 1_000 + CANCEL_RETRY_NS - 1, 1, 0) == []
    assert om.diff(SYM, (), 1_000 + CANCEL_RETRY_NS, 1, 0) == [CancelOrder(SYM, cid)]


def test_a_cancel_refused_because_the_order_is_gone_closes_it() -> None:
    om = OrderManager()
    cid = _live_quote(om)
    om.diff(SYM, (), 1_000, 1, 0)
    om.on_cancel_rejected(CancelRejected(SYM, cid, "unknown_order", 1_000, 1_000))
    assert om.live_orders() == []


def test_position_snapshot_does_not_overtake_a_fill_held_during_an_outage() -> None:
    # seed 2, t=305.0 s: a disconnect ended at the same instant as a periodic position snapshot, which
    # was delivered before a fill held during the outage, so the engine saw a position its fills did
    # not explain (position.mismatch, twice).
    report = run_soak(load_settings(), hours=0.09, faults=FAULT_NAMES, seed=2).report()
    assert report["faults"]["disconnect"] >= 1
    assert report["violations"] == []
    assert report["bot"]["position_mismatches"] == 0
