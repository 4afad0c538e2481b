"""Order manager: state machine driven by venue events, every venue fault, and the slot diff."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from bot.core.orders import Order, OrderManager, OrderState
from bot.core.quoting import DesiredQuote as DesiredOrder
from bot.domain import (
    CancelOrder,
    CancelRejected,
    Liquidity,
    OrderAccepted,
    OrderCanceled,
    OrderFilled,
    OrderRejected,
    PlaceOrder,
    Side,
)

SYM = "TOKEN/USDT"
SEC = 1_000_000_000


def ack(cid: str) -> OrderAccepted:
    return OrderAccepted(SYM, cid, "v-" + cid, 0, 0)


def fill(cid: str, fid: str, lots: int, leaves: int, side: Side = Side.BUY) -> OrderFilled:
    return OrderFilled(SYM, cid, fid, side, 100, lots, 0.01, Liquidity.MAKER, leaves, 0, 0)


def place_one(om: OrderManager, side: Side = Side.BUY, lots: int = 10) -> str:
    cmds = om.diff(SYM, (DesiredOrder(side, 0, 100, lots),), now_ns=0, tolerance_ticks=0, max_age_ns=0)
    assert len(cmds) == 1 and isinstance(cmds[0], PlaceOrder)
    return cmds[0].client_id


def test_full_lifecycle_new_open_partial_filled() -> None:
    om = OrderManager()
    cid = place_one(om)
    assert om.orders[cid].state is OrderState.PENDING_NEW
    om.on_accepted(ack(cid))
    assert om.orders[cid].state is OrderState.OPEN
    assert om.on_fill(fill(cid, "f1", 4, 6)).is_new
    assert om.orders[cid].state is OrderState.PARTIALLY_FILLED
    assert om.exposure_lots(SYM, Side.BUY) == 6
    om.on_fill(fill(cid, "f2", 6, 0))
    assert om.orders[cid].state is OrderState.FILLED
    assert om.live_orders() == []


def test_duplicate_fill_is_dropped() -> None:
    om = OrderManager()
    cid = place_one(om)
    om.on_accepted(ack(cid))
    assert om.on_fill(fill(cid, "f1", 4, 6)).is_new
    assert not om.on_fill(fill(cid, "f1", 4, 6)).is_new
    assert om.orders[cid].filled_lots == 4
    assert om.duplicate_fills == 1


def test_fill_before_ack_opens_the_order_and_late_ack_does_not_regress_it() -> None:
    om = OrderManager()
    cid = place_one(om)
    om.on_fill(fill(cid, "f1", 3, 7))
    assert om.orders[cid].state is OrderState.PARTIALLY_FILLED
    om.on_accepted(ack(cid))
    assert om.orders[cid].state is OrderState.PARTIALLY_FILLED


def test_reject_frees_the_slot_and_next_diff_places_again() -> None:
    om = OrderManager()
    cid = place_one(om)
    om.on_rejected(OrderRejected(SYM, cid, "post_only_would_cross", 0, 0))
    assert om.orders[cid].state is OrderState.REJECTED
    assert om.exposure_lots(SYM, Side.BUY) == 0
    cid2 = place_one(om)
    assert cid2 != cid


def test_unknown_order_events_are_counted_not_fatal() -> None:
    om = OrderManager()
    assert om.on_accepted(ack("nope")) is None
    assert om.on_canceled(OrderCanceled(SYM, "nope", "venue", 0, 0)) is None
    assert om.unknown_events == 2
    result = om.on_fill(fill("nope", "fx", 1, 0))
    assert result.is_new and result.order is None  # the venue says we traded: the caller must count it


def test_one_in_flight_action_per_slot_and_replace_is_cancel_then_place() -> None:
    om = OrderManager()
    cid = place_one(om)
    # not acked yet: a new target does nothing (one in-flight action per slot)
    assert om.diff(SYM, (DesiredOrder(Side.BUY, 0, 105, 10),), 0, 0, 0) == []
    om.on_accepted(ack(cid))
    cmds = om.diff(SYM, (DesiredOrder(Side.BUY, 0, 105, 10),), 0, 0, 0)
    assert cmds == [CancelOrder(SYM, cid)]
    # cancel in flight: nothing more, exposure not doubled
    assert om.diff(SYM, (DesiredOrder(Side.BUY, 0, 105, 10),), 0, 0, 0) == []
    om.on_canceled(OrderCanceled(SYM, cid, "requested", 0, 0))
    cmds = om.diff(SYM, (DesiredOrder(Side.BUY, 0, 105, 10),), 0, 0, 0)
    assert len(cmds) == 1 and isinstance(cmds[0], PlaceOrder) and cmds[0].price_ticks == 105


def test_price_tolerance_and_max_age() -> None:
    om = OrderManager()
    cid = place_one(om)
    om.on_accepted(ack(cid))
    assert om.diff(SYM, (DesiredOrder(Side.BUY, 0, 101, 10),), 1, tolerance_ticks=1, max_age_ns=10 * SEC) == []
    assert om.diff(SYM, (DesiredOrder(Side.BUY, 0, 100, 10),), 10 * SEC, 1, 10 * SEC) == [CancelOrder(SYM, cid)]


def test_cancel_rejected_unknown_closes_the_order() -> None:
    om = OrderManager()
    cid = place_one(om)
    om.on_accepted(ack(cid))
    assert om.cancel(cid) is not None
    om.on_cancel_rejected(CancelRejected(SYM, cid, "unknown_order", 0, 0))
    assert not om.orders[cid].is_live


def test_cancel_all_is_idempotent() -> None:
    om = OrderManager()
    both = (DesiredOrder(Side.BUY, 0, 99, 5), DesiredOrder(Side.SELL, 0, 101, 5))
    for cmd in om.diff(SYM, both, 0, 0, 0):
        assert isinstance(cmd, PlaceOrder)
        om.on_accepted(ack(cmd.client_id))
    first = om.cancel_all(SYM)
    assert len(first) == 2
    assert om.cancel_all(SYM) == []


desired_strategy = st.lists(
    st.tuples(st.sampled_from([Side.BUY, Side.SELL]), st.integers(0, 3), st.integers(1, 200), st.integers(1, 50)),
    max_size=8,
)


@given(desired_strategy, desired_strategy)
def test_diff_converges_and_is_idempotent(
    first: list[tuple[Side, int, int, int]], second: list[tuple[Side, int, int, int]]
) -> None:
    om = OrderManager()
    for target in (first, second):
        desired = tuple({(s, lv): DesiredOrder(s, lv, p, n) for s, lv, p, n in target}.values())
        for _ in range(4):  # the venue confirms every command; a few rounds converge
            for cmd in om.diff(SYM, desired, 0, 0, 0):
                if isinstance(cmd, PlaceOrder):
                    om.on_accepted(ack(cmd.client_id))
                elif isinstance(cmd, CancelOrder):
                    om.on_canceled(OrderCanceled(SYM, cmd.client_id, "requested", 0, 0))
        assert om.diff(SYM, desired, 0, 0, 0) == []
        live = {(o.side, o.level): (o.price_ticks, o.open_lots) for o in om.live_orders(SYM)}
        assert live == {(d.side, d.level): (d.price_ticks, d.size_lots) for d in desired}


def _new(om: OrderManager, cid: str) -> str:
    om.place(PlaceOrder(SYM, cid, Side.BUY, 100, 10), level=-1, now_ns=0)
    return cid


def _finish(om: OrderManager, cid: str, how: str) -> None:
    if how == "fill":
        om.on_fill(fill(cid, "f-" + cid, 10, 0))
    elif how == "cancel":
        om.on_canceled(OrderCanceled(SYM, cid, "requested", 0, 0))
    else:
        om.on_rejected(OrderRejected(SYM, cid, "post_only_would_cross", 0, 0))


def test_prune_keeps_the_most_recently_finished_orders_and_every_live_one() -> None:
    om = OrderManager()
    live = _new(om, "live")
    for i in range(5):
        _new(om, f"o{i}")
    assert om.prune(keep_terminal=2) == 0  # nothing finished yet
    # finished out of placement order: prune goes by the order in which they finished
    for cid, how in [("o3", "fill"), ("o0", "cancel"), ("o4", "reject"), ("o1", "fill"), ("o2", "cancel")]:
        _finish(om, cid, how)
    _finish(om, "o3", "cancel")  # a late cancel of a filled order does not count it twice
    assert om.prune(keep_terminal=2) == 3
    assert set(om.orders) == {live, "o1", "o2"}
    assert om.prune(keep_terminal=2) == 0  # idempotent
    assert [o.client_id for o in om.live_orders()] == [live]


def test_prune_drops_adopted_terminal_orders_too() -> None:
    om = OrderManager()
    _new(om, "a")
    om.adopt(Order(SYM, "old", Side.SELL, 101, 5, -1, "quote", 0, state=OrderState.CANCELED))
    _finish(om, "a", "fill")
    assert om.prune(keep_terminal=1) == 1
    assert set(om.orders) == {"a"}


@given(st.lists(st.sampled_from(["new", "fill", "cancel", "reject"]), max_size=60), st.integers(0, 5))
def test_prune_never_drops_a_live_order_and_keeps_exactly_the_newest_finished(ops: list[str], keep: int) -> None:
    om = OrderManager()
    finished: list[str] = []
    live: list[str] = []
    for i, op in enumerate(ops):
        if op == "new" or not live:
            live.append(_new(om, f"o{i}"))
            continue
        cid = live.pop(0)
        _finish(om, cid, op)
        finished.append(cid)
    om.prune(keep_terminal=keep)
    assert {o.client_id for o in om.live_orders()} == set(live)
    assert set(om.orders) == set(live) | set(finished[max(0, len(finished) - keep) :] if keep else [])


def test_a_partial_fill_keeps_its_place_unless_too_little_is_left() -> None:
    om = OrderManager()
    cid = place_one(om, lots=10)
    om.on_accepted(ack(cid))
    om.on_fill(fill(cid, "f1", 3, leaves=7))
    want = (DesiredOrder(Side.BUY, 0, 100, 10),)
    assert om.diff(SYM, want, 0, 0, 0) == []  # queue priority beats topping up
    assert om.diff(SYM, want, 0, 0, 0, min_open_lots=7) == []  # 7 left: still enough
    assert om.diff(SYM, want, 0, 0, 0, min_open_lots=8) == [CancelOrder(SYM, cid)]  # 7 < 8: replace it
