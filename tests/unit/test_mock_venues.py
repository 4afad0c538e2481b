"""Several mock exchanges on one fair value (bot/venues/mock/venues.py): one path whatever order the
venues step in, every event named by its venue, fills unique across venues, cross-venue arbitrage."""

from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st

from bot.config import MockExchangeConfig, MockVenueConfig
from bot.domain import OrderAccepted, OrderFilled, PlaceOrder, Side
from bot.venues.mock.market import FairValuePath
from bot.venues.mock.venues import MockVenues, SharedFairValue, venue_config

MS = 1_000_000


def path(seed: int = 7) -> FairValuePath:
    return FairValuePath(random.Random(seed), 100.0, 0.05, "abm", 0.1, 50, 10.0, 50.0, floor_px=0.01)


@given(st.lists(st.integers(0, 2), min_size=1, max_size=300))
def test_every_view_reads_the_one_path_whatever_order_the_venues_step_in(order: list[int]) -> None:
    shared = SharedFairValue(path())
    views = [shared.view() for _ in range(3)]
    seen: list[list[tuple[float, float]]] = [[(v.now_px, v.future_px)] for v in views]
    for i in order:
        views[i].step()
        seen[i].append((views[i].now_px, views[i].future_px))
    alone = path()  # the same path stepped by itself
    reference = [(alone.now_px, alone.future_px)]
    for _ in range(max(len(s) for s in seen)):
        alone.step()
        reference.append((alone.now_px, alone.future_px))
    for s in seen:
        assert s == reference[: len(s)]
    # only the steps between the slowest and the fastest view are kept
    steps = [v.step_index for v in views]
    assert len(shared._now) == max(steps) - min(steps) + 1


def test_venue_config_scales_liquidity_takers_fees_and_latency() -> None:
    base = MockExchangeConfig()
    cfg = venue_config(
        base, MockVenueConfig(liquidity_scale=0.5, taker_rate_scale=2.0, fee_scale=3.0, latency_scale=4.0)
    )
    assert cfg.spot.bg_size_base == base.spot.bg_size_base * 0.5
    assert cfg.perp.taker_a_per_s == base.perp.taker_a_per_s * 2.0
    assert cfg.spot.taker_fee == base.spot.taker_fee * 3.0
    assert cfg.latency.order_median_ms == base.latency.order_median_ms * 4.0
    assert cfg.seed == base.seed and cfg.spot.symbol == base.spot.symbol


def group(**venues: MockVenueConfig) -> MockVenues:
    return MockVenues(MockExchangeConfig(), venues or {"a": MockVenueConfig(), "b": MockVenueConfig()}, start_ns=0)


def test_venues_share_the_fair_value_and_name_their_events() -> None:
    g = group(a=MockVenueConfig(), b=MockVenueConfig(liquidity_scale=0.3))
    events = g.advance(30_000 * MS)
    assert {e.venue for e in events} == {"a", "b"}
    a, b = g.exchanges["a"], g.exchanges["b"]
    assert a.fair_value_px("TOKEN/USDT") == b.fair_value_px("TOKEN/USDT")
    # own seeds: their takers are not the same takers
    trades = {v: [(e.price_ticks, e.size_lots) for e in events if type(e).__name__ == "TradePrint" and e.venue == v]
              for v in ("a", "b")}  # fmt: skip
    assert trades["a"] and trades["b"] and trades["a"] != trades["b"]


def test_a_quote_that_crosses_another_venue_is_arbitraged_and_fill_ids_stay_unique() -> None:
    quiet = MockVenueConfig(taker_rate_scale=1e-9)  # no takers: only the arbitrageur can fill us
    g = group(a=quiet, b=quiet)
    now = 10_000 * MS
    g.advance(now)
    a, b = g.exchanges["a"], g.exchanges["b"]
    top_a = a.top("TOKEN/USDT")[1]
    assert top_a is not None
    ask_a = top_a[0]
    b.simulate_taker("TOKEN/USDT", Side.BUY, 20_000)  # clear b's best asks: b's ask is now above a's
    bid_b = ask_a + 15  # our bid on b: below b's remaining ask, above a's ask by more than both fees
    top_b = b.top("TOKEN/USDT")[1]
    assert top_b is None or top_b[0] > bid_b
    g.submit(PlaceOrder("TOKEN/USDT", "ours-1", Side.BUY, bid_b, 50, venue="b"), now)
    events: list[object] = []
    while not any(isinstance(e, OrderAccepted) and e.client_id == "ours-1" for e in events):
        now += MS
        events += g.advance(now)
    assert not [e for e in events if isinstance(e, OrderFilled)]  # resting, unfilled: no takers here
    assert g.arbitrage() == 1  # b's bid (ours) is above a's ask by more than both taker fees
    for _ in range(10):
        now += 100 * MS
        events += g.advance(now)
    fills = [e for e in events if isinstance(e, OrderFilled) and e.client_id == "ours-1"]
    assert fills and all(f.venue == "b" and f.fill_id.startswith("b:") for f in fills)
    assert sum(f.size_lots for f in fills) == min(50, top_a[1])  # the smaller top level, bought on a
