"""Hypothesis properties of the mock exchange: price-time priority and queue position against a
reference model, and accounting invariants over random order flow."""

from __future__ import annotations

import math
from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st

from bot.config import MockExchangeConfig
from bot.domain import (
    CancelAll,
    CancelOrder,
    Event,
    Liquidity,
    OrderCanceled,
    OrderFilled,
    OrderRejected,
    OrderType,
    PlaceOrder,
    PositionSnapshot,
    Side,
)
from bot.venues.mock import MockExchange
from bot.venues.mock.book import BookSide, Order
from bot.venues.mock.presets import quiet_config

SPOT = "TOKEN/USDT"
PERP = "TOKEN/USDT:USDT"
MS = 1_000_000

# ---------------------------------------------------------------------------------------------
# The book against a reference model: a flat list of (price, arrival seq, owner, lots)
# ---------------------------------------------------------------------------------------------


@dataclass
class Ref:
    price: int
    seq: int
    owner: str | None
    lots: int


book_ops = st.lists(
    st.one_of(
        st.tuples(st.just("bg"), st.integers(95, 100), st.integers(1, 20)),
        st.tuples(st.just("ours"), st.integers(95, 100), st.integers(1, 20)),
        st.tuples(st.just("unbg"), st.integers(95, 100), st.integers(1, 20)),
        st.tuples(st.just("cancel"), st.integers(0, 50), st.just(0)),
        st.tuples(st.just("take"), st.integers(94, 101), st.integers(1, 60)),
    ),
    max_size=60,
)


def merge(execs: list[tuple[int, int, str | None]]) -> list[tuple[int, int, str | None]]:
    """Adjacent executions at the same price against the same owner are one (background merges)."""
    out: list[tuple[int, int, str | None]] = []
    for price, lots, owner in execs:
        if out and out[-1][0] == price and out[-1][2] == owner:
            out[-1] = (price, out[-1][1] + lots, owner)
        else:
            out.append((price, lots, owner))
    return out


@given(book_ops)
def test_bid_side_matches_price_time_reference(ops: list[tuple[str, int, int]]) -> None:
    side = BookSide(Side.BUY)
    ref: list[Ref] = []
    ours: dict[str, Order] = {}
    for seq, (op, a, b) in enumerate(ops, start=1):
        if op == "bg":
            side.add_background(a, b)
            ref.append(Ref(a, seq, None, b))
        elif op == "ours":
            cid = f"o{seq}"
            ours[cid] = Order(SPOT, cid, cid, Side.BUY, a, b)
            side.add_order(ours[cid])
            ref.append(Ref(a, seq, cid, b))
        elif op == "unbg":  # background cancels leave from the back of the queue
            left = min(b, sum(r.lots for r in ref if r.price == a and r.owner is None))
            assert side.remove_background(a, b) == left
            for r in sorted((r for r in ref if r.price == a and r.owner is None), key=lambda r: -r.seq):
                cut = min(left, r.lots)
                r.lots -= cut
                left -= cut
        elif op == "cancel" and ours:
            cid = sorted(ours)[a % len(ours)]
            side.remove_order(ours.pop(cid))
            ref = [r for r in ref if r.owner != cid]
        elif op == "take":
            execs, _ = side.take(a, b)
            got = merge([(e.price_ticks, e.lots, e.maker.client_id if e.maker else None) for e in execs])
            want: list[tuple[int, int, str | None]] = []
            left = b
            for r in sorted(ref, key=lambda r: (-r.price, r.seq)):  # best price first, then oldest
                if left == 0 or r.price < a:
                    break
                cut = min(left, r.lots)
                if cut:
                    want.append((r.price, cut, r.owner))
                r.lots -= cut
                left -= cut
            assert got == merge(want)
            for cid in [c for c, o in ours.items() if o.remaining_lots == 0]:
                del ours[cid]
        ref = [r for r in ref if r.lots > 0]
        # the aggregated view always equals the reference
        levels: dict[int, int] = {}
        for r in ref:
            levels[r.price] = levels.get(r.price, 0) + r.lots
        assert dict(side.depth()) == levels
        for cid, order in ours.items():
            ahead = sum(r.lots for r in ref if r.price == order.price_ticks and r.seq < int(cid[1:]))
            assert side.lots_ahead(order) == ahead


# ---------------------------------------------------------------------------------------------
# Accounting invariants over random flow on both markets
# ---------------------------------------------------------------------------------------------

actions = st.lists(
    st.one_of(
        st.tuples(
            st.just("place"),
            st.sampled_from([SPOT, PERP]),
            st.sampled_from([Side.BUY, Side.SELL]),
            st.integers(-6, 6),
            st.integers(1, 400),
            st.sampled_from([OrderType.LIMIT, OrderType.IOC, OrderType.MARKET]),
            st.booleans(),
        ),
        st.tuples(st.just("cancel"), st.integers(0, 100)),
        st.tuples(
            st.just("taker"), st.sampled_from([SPOT, PERP]), st.sampled_from([Side.BUY, Side.SELL]), st.integers(1, 600)
        ),
        st.tuples(st.just("wait"), st.integers(1, 1500)),
    ),
    min_size=1,
    max_size=40,
)


def play(ex: MockExchange, script: list[tuple]) -> tuple[list[Event], dict[str, PlaceOrder]]:  # type: ignore[type-arg]
    t = 1 * MS
    events: list[Event] = []
    placed: dict[str, PlaceOrder] = {}
    for i, action in enumerate(script):
        t += MS
        if action[0] == "place":
            _, symbol, side, offset, lots, kind, post_only = action
            fair = round(ex.fair_value_px(symbol) * 100)
            ref = fair - 3 if side is Side.BUY else fair + 3
            cmd = PlaceOrder(symbol, f"c{i}", side, ref + offset, lots, kind, post_only)
            placed[cmd.client_id] = cmd
            ex.submit(cmd, t)
        elif action[0] == "cancel" and placed:
            cid = sorted(placed)[action[1] % len(placed)]
            ex.submit(CancelOrder(placed[cid].symbol, cid), t)
        elif action[0] == "taker":
            events += ex.advance(t)
            ex.simulate_taker(action[1], action[2], action[3])
        elif action[0] == "wait":
            t += action[1] * MS
        events += ex.advance(t)
    ex.submit(CancelAll(), t)  # then nothing can fill any more, and everything in flight arrives
    events += ex.advance(t + 1_000 * MS)
    events += ex.advance(t + 2_000 * MS)
    return events, placed


@settings(max_examples=60)
@given(actions)
def test_accounting_invariants_over_random_flow(script: list[tuple]) -> None:  # type: ignore[type-arg]
    cfg = quiet_config(funding_interval_s=1.0, sigma_px_per_sqrt_s=0.05)
    ex = MockExchange(cfg)
    events, placed = play(ex, script)
    fills = [e for e in events if isinstance(e, OrderFilled)]
    insts = ex.instruments

    # every fill is charged its fee at the right rate, at a price no worse than the order's limit
    for f in fills:
        inst = insts[f.symbol]
        rate = inst.maker_fee if f.liquidity is Liquidity.MAKER else inst.taker_fee
        assert math.isclose(f.fee_quote, inst.notional(f.price_ticks, f.size_lots) * rate, rel_tol=1e-12)
        cmd = placed[f.client_id]
        if cmd.order_type is not OrderType.MARKET:
            assert f.side.sign * (cmd.price_ticks - f.price_ticks) >= 0
        if f.liquidity is Liquidity.MAKER:
            assert f.price_ticks == cmd.price_ticks
    assert len({f.fill_id for f in fills}) == len(fills)

    # positions are the sum of fills, as the account and the last position snapshot both say
    for symbol in (SPOT, PERP):
        signed = sum(f.side.sign * f.size_lots for f in fills if f.symbol == symbol)
        assert ex.positions()[symbol] == signed
        snaps = [e for e in events if isinstance(e, PositionSnapshot) and e.symbol == symbol]
        assert snaps[-1].position_lots == signed

    # no fill without its balance change: balances are exactly initial + cash flows of the fills
    spot = insts[SPOT]
    base = ex.balances()["TOKEN"]
    assert math.isclose(base, cfg.initial_base + spot.size(ex.positions()[SPOT]), abs_tol=1e-6)
    mark = 101.0
    cash_flows = sum(-f.side.sign * insts[f.symbol].notional(f.price_ticks, f.size_lots) for f in fills)
    fees = sum(f.fee_quote for f in fills)
    funding = ex.accounts.funding_quote  # the account's, since the last settlement may still be in flight
    perp_value = insts[PERP].size(ex.positions()[PERP]) * mark
    lhs = ex.balances()["USDT"] + ex.accounts.unrealized_quote(PERP, mark)
    rhs = cfg.initial_quote + cash_flows + perp_value - fees + funding
    assert math.isclose(lhs, rhs, abs_tol=1e-6)

    # per order: fills add up, leaves count down, nothing fills after it is rejected or canceled
    for cid, cmd in placed.items():
        mine = [f for f in fills if f.client_id == cid]
        done = [e for e in events if isinstance(e, OrderRejected | OrderCanceled) and e.client_id == cid]
        assert sum(f.size_lots for f in mine) <= cmd.size_lots
        filled = 0
        for f in mine:
            filled += f.size_lots
            assert f.leaves_lots == cmd.size_lots - filled
        if done and isinstance(done[0], OrderRejected):
            assert not mine
        if done:
            assert all(f.ts_venue_ns <= done[0].ts_venue_ns for f in mine)
    open_ids = {o.client_id for o in ex.open_orders()}
    for o in ex.open_orders():
        assert o.size_lots == placed[o.client_id].size_lots - sum(
            f.size_lots for f in fills if f.client_id == o.client_id
        )
    assert all(placed[c].order_type is OrderType.LIMIT for c in open_ids)


@settings(max_examples=8)
@given(st.integers(0, 2**32 - 1))
def test_taker_flow_never_breaks_the_book(seed: int) -> None:
    """With the full default market running, the book never crosses and background stays on its side."""
    ex = MockExchange(MockExchangeConfig(), seed=seed)
    for i in range(200):
        ex.advance((i + 1) * 100 * MS)
        for symbol in (SPOT, PERP):
            snap = ex.snapshot(symbol, 0)
            assert snap.bids and snap.asks
            assert snap.bids[0][0] < snap.asks[0][0]
            assert all(q > 0 for _, q in snap.bids + snap.asks)
