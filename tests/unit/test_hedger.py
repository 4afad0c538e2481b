"""Perp hedger: sizing, band, in-flight counting, reduce-only, rejects/backoff, partial fills,
timeouts, latency and slippage; properties over random venue behaviour."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.config import HedgerConfig
from bot.core.hedger import HedgeParams, Hedger, latency_quantile_ns
from bot.domain import (
    CancelOrder,
    Instrument,
    InstrumentKind,
    Liquidity,
    OrderAccepted,
    OrderCanceled,
    OrderFilled,
    OrderRejected,
    OrderType,
    PlaceOrder,
    Side,
)

PERP = Instrument(
    "TOKEN/USDT:USDT", InstrumentKind.PERP, "TOKEN", "USDT", tick_size=0.01, lot_size=0.1, min_notional=5.0
)
BID, ASK = 9999, 10001  # mid 100.00
MS = 1_000_000
P = HedgeParams()  # band 2 base, IOC 5 ticks through, backoff 250 ms doubling to 5 s, 5 retries


def accepted(cid: str) -> OrderAccepted:
    return OrderAccepted(PERP.symbol, cid, "v" + cid, 0, 0)


def rejected(cid: str) -> OrderRejected:
    return OrderRejected(PERP.symbol, cid, "insufficient_balance", 0, 0)


def canceled(cid: str) -> OrderCanceled:
    return OrderCanceled(PERP.symbol, cid, "ioc_expired", 0, 0)


def filled(cid: str, fid: str, side: Side, ticks: int, lots: int, leaves: int) -> OrderFilled:
    return OrderFilled(PERP.symbol, cid, fid, side, ticks, lots, 0.0, Liquidity.TAKER, leaves, 0, 0)


def only_order(commands: tuple[object, ...]) -> PlaceOrder:
    orders = [c for c in commands if isinstance(c, PlaceOrder)]
    assert len(orders) == 1
    return orders[0]


def test_spot_fill_is_hedged_back_to_target() -> None:
    h = Hedger(P, PERP)
    h.note_spot_fill(now_ns=0)
    d = h.decide(1.25, 0, BID, ASK, now_ns=0)
    order = only_order(d.commands)
    # 1.25 base long → sell floor(1.25/0.1) = 12 lots at 99.99 − 5 ticks; 0.05 residual carried
    assert (d.reason, order.side, order.size_lots, order.price_ticks) == ("fill", Side.SELL, 12, 9994)
    assert (order.order_type, order.post_only, order.reduce_only, order.tag) == (OrderType.IOC, False, False, "hedge")
    assert order.client_id == "h-1" and h.owns("h-1")
    assert d.residual_base == pytest.approx(0.05)
    assert h.in_flight_base() == pytest.approx(-1.2)


def test_band_without_fill_trigger() -> None:
    h = Hedger(P, PERP)
    assert h.decide(1.9, 0, BID, ASK, 0).reason == "within_band"
    assert h.decide(-2.0, 0, BID, ASK, 0).commands == ()
    d = h.decide(-2.05, 0, BID, ASK, 0)
    order = only_order(d.commands)
    assert (d.reason, order.side, order.size_lots, order.price_ticks) == ("band", Side.BUY, 20, 10006)


def test_notional_band_and_tighter_wins() -> None:
    # band 2 base vs 50 quote / 100 mid = 0.5 base: the tighter (0.5) applies
    h = Hedger(replace(P, band_notional_quote=50.0), PERP)
    d = h.decide(0.6, 0, BID, ASK, 0)
    assert d.band_base == pytest.approx(0.5) and only_order(d.commands).size_lots == 6
    # both bands off: any whole lot is hedged
    h = Hedger(replace(P, band_base=0.0), PERP)
    assert only_order(h.decide(0.15, 0, BID, ASK, 0).commands).size_lots == 1


@given(
    band_base=st.one_of(st.just(0.0), st.floats(-1.0, 10.0), st.just(float("inf"))),
    band_notional=st.one_of(st.just(0.0), st.floats(-100.0, 1000.0)),
    mid_px=st.floats(0.01, 1e6),
)
def test_band_is_the_tighter_of_the_bands_set(band_base: float, band_notional: float, mid_px: float) -> None:
    # the reference: the smallest positive one of the two, 0 when neither is positive
    h = Hedger(replace(P, band_base=band_base, band_notional_quote=band_notional), PERP)
    bands = [b for b in (band_base, band_notional / mid_px) if b > 0]
    assert h._band_base(mid_px) == (min(bands) if bands else 0.0)


def test_in_flight_need_is_not_hedged_twice() -> None:
    h = Hedger(P, PERP)
    h.note_spot_fill(0)
    only_order(h.decide(1.25, 0, BID, ASK, 0).commands)
    h.note_spot_fill(1)  # a fill that did not change the need (e.g. a duplicate notice)
    d = h.decide(1.25, 0, BID, ASK, 2)
    assert (d.reason, d.commands) == ("in_flight", ())
    h.note_spot_fill(3)  # a new spot fill: +1.0 more
    d = h.decide(2.25, 0, BID, ASK, 4)
    assert only_order(d.commands).size_lots == 10  # gap 2.25 − 1.2 = 1.05 → 10 lots, not 22


def test_sub_lot_and_min_notional_residuals_are_carried() -> None:
    h = Hedger(P, PERP)
    h.note_spot_fill(0)
    assert h.decide(0.04, 0, BID, ASK, 0).reason == "below_one_lot"
    # 3 lots at 99.94 = 29.98 quote < 50 quote minimum
    h = Hedger(P, replace(PERP, min_notional=50.0))
    h.note_spot_fill(0)
    d = h.decide(0.3, 0, BID, ASK, 0)
    assert (d.reason, d.commands) == ("below_min_notional", ())
    assert h.decide(0.3, 0, BID, ASK, 1).reason == "within_band"  # no retry storm afterwards


def test_reduce_only_when_the_order_only_reduces() -> None:
    h = Hedger(P, PERP)
    # perp short 30 lots (3 base); spot 2 base short → net −1.0 → buy 10 lots, reduces the short
    h.note_spot_fill(0)
    assert only_order(h.decide(-1.0, -30, BID, ASK, 0).commands).reduce_only
    h.note_spot_fill(1)
    # another 25 lots to buy: only 30 − 10 in flight = 20 can still reduce → not reduce-only
    assert not only_order(h.decide(-3.5, -30, BID, ASK, 1).commands).reduce_only
    h2 = Hedger(P, PERP)
    h2.note_spot_fill(0)
    assert not only_order(h2.decide(5.0, -30, BID, ASK, 0).commands).reduce_only  # sell adds to the short


def test_a_same_side_order_in_flight_that_is_not_reduce_only_counts_against_the_position() -> None:
    """Perp short 3 base: a buy of 5 base (it flips the short, so not reduce-only) is in flight when a
    new spot fill asks for 1 more. At the venue the buy of 5 fills first and leaves us long: a
    reduce-only buy of 1 would then be refused (reduce_only_would_increase, seen 3 times on the
    bundled BTCUSDT pair), so it must not be sent reduce-only."""
    h = Hedger(P, PERP)
    h.note_spot_fill(0)
    first = only_order(h.decide(-5.0, -30, BID, ASK, 0).commands)
    assert (first.side, first.size_lots, first.reduce_only) == (Side.BUY, 50, False)
    h.note_spot_fill(1)
    second = only_order(h.decide(-6.0, -30, BID, ASK, 1).commands)  # 1 base more to buy
    assert (second.side, second.size_lots) == (Side.BUY, 10)
    assert not second.reduce_only  # 30 short − 50 in flight: nothing left for it to reduce


def test_a_burst_of_hedges_decided_on_one_book_fails_as_one_attempt() -> None:
    """Five spot fills in one burst send five IOCs on the same book; a book that moves past their
    limit before they arrive expires all five. That is one failed attempt, not five: the hedger backs
    off once and does not halt (it did, with max_retries 3, and quoting stopped with it). The retry,
    decided after the failure was seen, is a new attempt and counts."""
    h = Hedger(replace(P, max_retries=3), PERP)
    cids = []
    for i in range(5):
        h.note_spot_fill(i)
        cids.append(only_order(h.decide(-0.5 * (i + 1), 0, BID, ASK, i).commands).client_id)
    outcomes = [h.on_canceled(canceled(cid), 100) for cid in cids]
    assert [o.reason for o in outcomes if o is not None] == ["unfilled"] * 5
    assert not h.halted and h.stats.unfilled == 5
    retry_at = outcomes[0].retry_at_ns if outcomes[0] is not None else None
    assert retry_at == 100 + 250 * MS  # backed off once, by the first step
    assert all(o is not None and o.retry_at_ns == retry_at for o in outcomes)
    d = h.decide(-2.5, 0, BID, ASK, retry_at)
    assert d.reason == "retry"
    outcome = h.on_canceled(canceled(only_order(d.commands).client_id), retry_at + 100)
    assert outcome is not None and outcome.retry_at_ns == retry_at + 100 + 500 * MS  # the second failure


def test_market_order_type() -> None:
    h = Hedger(replace(P, order_type=OrderType.MARKET), PERP)
    h.note_spot_fill(0)
    order = only_order(h.decide(-0.5, 0, BID, ASK, 0).commands)
    assert (order.order_type, order.price_ticks) == (OrderType.MARKET, ASK)


def test_aggressive_width_in_bps_when_it_is_wider_than_the_ticks() -> None:
    # 10 bps through the best: a sell at bid 99.99 goes 0.09999 lower = 9.999 ticks, rounded out to 10;
    # a buy at ask 100.01 goes 10.001 ticks higher, rounded out to 11 (the limit never falls short)
    h = Hedger(replace(P, aggressive_ticks=0, aggressive_bps=10.0), PERP)
    h.note_spot_fill(0)
    sell = only_order(h.decide(1.0, 0, BID, ASK, 0).commands)
    assert (sell.side, sell.price_ticks) == (Side.SELL, BID - 10)
    h = Hedger(replace(P, aggressive_ticks=0, aggressive_bps=10.0), PERP)
    h.note_spot_fill(0)
    buy = only_order(h.decide(-1.0, 0, BID, ASK, 0).commands)
    assert (buy.side, buy.price_ticks) == (Side.BUY, ASK + 11)
    # the wider of the two wins: 5 ticks beat 2 bps (~2 ticks at 100)
    h = Hedger(replace(P, aggressive_bps=2.0), PERP)
    h.note_spot_fill(0)
    assert only_order(h.decide(1.0, 0, BID, ASK, 0).commands).price_ticks == BID - 5
    assert HedgeParams.from_config(HedgerConfig(aggressive_bps=3.5)).aggressive_bps == 3.5


def test_rejects_back_off_then_halt() -> None:
    h = Hedger(replace(P, retry_backoff_max_ns=600 * MS, max_retries=3), PERP)
    now = 0
    backoffs = []
    for _ in range(3):
        h.note_spot_fill(now)
        cid = only_order(h.decide(1.0, 0, BID, ASK, now).commands).client_id
        outcome = h.on_rejected(rejected(cid), now)
        assert outcome is not None and outcome.retry_at_ns is not None
        backoffs.append((outcome.retry_at_ns - now) // MS)
        # too early: the need is remembered but waits
        assert h.decide(1.0, 0, BID, ASK, outcome.retry_at_ns - 1).reason == "backoff"
        now = outcome.retry_at_ns
    assert backoffs == [250, 500, 600]  # doubling, capped
    d = h.decide(1.0, 0, BID, ASK, now)  # retry of the rejected need, without a new spot fill
    assert d.reason == "retry"
    outcome = h.on_rejected(rejected(only_order(d.commands).client_id), now)
    assert outcome is not None and outcome.reason == "halted" and h.halted
    assert h.decide(5.0, 0, BID, ASK, now + 10**12).reason == "halted"
    h.resume()
    assert only_order(h.decide(5.0, 0, BID, ASK, now + 10**12).commands).client_id == "h-5"


def test_partial_fill_then_ioc_expiry_hedges_the_rest() -> None:
    h = Hedger(P, PERP)
    h.note_spot_fill(0)
    cid = only_order(h.decide(1.25, 0, BID, ASK, 0).commands).client_id  # sell 12
    fill = filled(cid, "f1", Side.SELL, 9995, 5, leaves=7)
    assert h.on_fill(fill, 1) is not None
    assert h.on_fill(fill, 1) is None  # duplicate dropped
    assert h.in_flight_base() == pytest.approx(-0.7)
    # portfolio: net 1.25 − 0.5 = 0.75; with 0.7 still in flight only 0.05 is left
    assert h.decide(0.75, -5, BID, ASK, 2).commands == ()
    outcome = h.on_canceled(canceled(cid), 3)
    assert outcome is not None and outcome.reason == "canceled"  # partial: not a failure
    d = h.decide(0.75, -5, BID, ASK, 4)
    order = only_order(d.commands)
    assert (d.reason, order.side, order.size_lots) == ("retry", Side.SELL, 7)


def test_unfilled_ioc_is_a_failure_with_backoff() -> None:
    h = Hedger(P, PERP)
    h.note_spot_fill(0)
    cid = only_order(h.decide(1.0, 0, BID, ASK, 0).commands).client_id
    outcome = h.on_canceled(canceled(cid), 10)
    assert outcome is not None and (outcome.reason, outcome.retry_at_ns) == ("unfilled", 10 + 250 * MS)
    assert h.stats.unfilled == 1


def test_slow_order_is_cancelled_then_dropped() -> None:
    h = Hedger(replace(P, order_type=OrderType.LIMIT), PERP)
    h.note_spot_fill(0)
    cid = only_order(h.decide(1.0, 0, BID, ASK, 0).commands).client_id
    d = h.decide(1.0, 0, BID, ASK, 2000 * MS)
    assert d.commands == (CancelOrder(PERP.symbol, cid),)  # timed out: cancelled, still counted in flight
    assert d.in_flight_base == pytest.approx(-1.0)
    assert h.decide(1.0, 0, BID, ASK, 3000 * MS).commands == ()  # the cancel is sent once
    h.decide(1.0, 0, BID, ASK, 4000 * MS)
    assert cid not in h.orders and h.stats.lost == 1 and h.in_flight_base() == 0.0
    # a late fill of the dropped order is still ours (the portfolio books it as a hedge) but
    # changes nothing in the hedger
    assert h.owns(cid) and not h.owns("h-2") and not h.owns("q-1") and not h.owns("h-x")
    assert h.on_fill(filled(cid, "late", Side.SELL, 9990, 10, leaves=0), 5000 * MS) is None


def test_latency_and_slippage() -> None:
    h = Hedger(P, PERP)
    h.note_spot_fill(now_ns=1_000)
    cid = only_order(h.decide(-2.0, 0, BID, ASK, now_ns=1_500).commands).client_id  # buy 20 lots
    h.on_accepted(accepted(cid), now_ns=4_000)
    hf = h.on_fill(filled(cid, "f1", Side.BUY, 10002, 20, leaves=0), now_ns=5_000)
    assert hf is not None and hf.done and cid not in h.orders
    # bought 2.0 at 100.02 vs the 100.00 mid: 0.04 quote = 2 bps
    assert hf.slippage_quote == pytest.approx(0.04) and hf.slippage_bps == pytest.approx(2.0)
    assert list(h.stats.latency_ns) == [3_000]  # fill seen at 1000 → acked at 4000
    assert latency_quantile_ns(h.stats, 0.5) == 3_000.0


def test_fill_before_ack_records_latency_once() -> None:
    h = Hedger(P, PERP)
    h.note_spot_fill(0)
    cid = only_order(h.decide(1.0, 0, BID, ASK, 0).commands).client_id
    h.on_fill(filled(cid, "f1", Side.SELL, 9999, 4, leaves=6), 700)
    h.on_accepted(accepted(cid), 900)
    assert list(h.stats.latency_ns) == [700]


def test_disabled_and_no_book() -> None:
    h = Hedger(replace(P, enabled=False), PERP)
    h.note_spot_fill(0)
    assert h.decide(10.0, 0, BID, ASK, 0).reason == "disabled"
    h = Hedger(P, PERP)
    h.note_spot_fill(0)
    assert h.decide(10.0, 0, None, ASK, 0).reason == "no_perp_book"
    assert h.decide(10.0, 0, ASK, ASK, 0).reason == "no_perp_book"  # crossed / locked book
    assert only_order(h.decide(10.0, 0, BID, ASK, 1).commands).size_lots == 100  # the fill still pending


def test_from_config_and_deterministic_ids() -> None:
    params = HedgeParams.from_config(HedgerConfig(order_type="market", retry_backoff_ms=100, order_timeout_ms=7))
    assert (params.order_type, params.retry_backoff_ns, params.order_timeout_ns) == (OrderType.MARKET, 100 * MS, 7 * MS)
    ids = []
    for _ in range(2):
        h = Hedger(P, PERP)
        run = []
        for t in range(3):
            h.note_spot_fill(t)
            run.append(only_order(h.decide(3.0 * (t + 1), 0, BID, ASK, t).commands).client_id)
        ids.append(run)
    assert ids[0] == ids[1] == ["h-1", "h-2", "h-3"]


# ---- properties over random spot flow and venue behaviour -----------------------------------------

actions = st.lists(
    st.one_of(
        st.tuples(st.just("spot"), st.integers(-3000, 3000)),  # spot fill, milli-base
        st.tuples(st.just("decide"), st.just(0)),
        st.tuples(st.sampled_from(["fill", "partial", "expire", "reject", "accept"]), st.integers(0, 3)),
        st.tuples(st.just("time"), st.integers(1, 3000)),  # ms
    ),
    max_size=60,
)


@given(actions=actions, band=st.sampled_from([0.0, 0.5, 2.0]), target=st.sampled_from([0.0, 1.0]))
def test_hedge_properties(actions: list[tuple[str, int]], band: float, target: float) -> None:
    h = Hedger(replace(P, band_base=band, target_base=target, max_retries=1000), PERP)
    spot_base = 0.0
    perp_lots = 0
    now = 0
    flow_version = 0  # bumped by every exogenous delta change
    last: tuple[Side, int] | None = None
    n_fill = 0
    for kind, arg in actions:
        live = list(h.orders.values())
        if kind == "spot":
            spot_base += arg / 1000
            flow_version += 1
            h.note_spot_fill(now)
        elif kind == "time":
            now += arg * MS
        elif kind == "decide":
            net = spot_base + perp_lots * PERP.lot_size
            d = h.decide(net, perp_lots, BID, ASK, now)
            gap = net + h.in_flight_base() - target
            orders = [c for c in d.commands if isinstance(c, PlaceOrder)]
            if orders:
                order = orders[0]
                size = order.side.sign * order.size_lots * PERP.lot_size
                before = gap - size  # in-flight already includes the new order
                after = gap
                # never overshoots: same side of the target, strictly smaller, residual below a lot
                assert abs(after) < abs(before)
                assert after * before >= 0
                assert abs(after) < PERP.lot_size + 1e-9
                # |gap| never grows beyond the band because of a hedge
                assert abs(after) <= max(abs(before), band)
                if last is not None and last[0] is not order.side:
                    assert last[1] != flow_version, "buy then sell without a delta change"
                last = (order.side, flow_version)
        elif live:
            order = live[arg % len(live)]
            cid = order.client_id
            if kind == "accept":
                h.on_accepted(accepted(cid), now)
            elif kind == "reject" and order.filled_lots == 0:
                h.on_rejected(rejected(cid), now)
            elif kind == "expire":
                h.on_canceled(canceled(cid), now)
            elif kind in ("fill", "partial"):
                lots = order.remaining_lots if kind == "fill" else max(1, order.remaining_lots // 2)
                n_fill += 1
                h.on_fill(
                    filled(cid, f"f{n_fill}", order.side, order.price_ticks, lots, order.remaining_lots - lots), now
                )
                perp_lots += order.side.sign * lots
