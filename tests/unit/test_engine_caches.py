"""The engine's per-requote caches (model quote, ladder) and its event dispatch change
no decision: after any sequence of events, what a requote used equals what a fresh computation gives;
the exposure trim's shortcut equals the plain trim."""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import assume, given
from hypothesis import strategies as st

from bot.core.engine import Engine, EngineParams
from bot.core.estimators import ArrivalEstimator, SigmaEstimator
from bot.core.quoting import (
    DesiredQuote,
    MarketInputs,
    QuoteAdjust,
    QuoteParams,
    TheoQuote,
    build_ladder,
    theo_quote,
)
from bot.core.risk import RiskParams
from bot.domain import (
    BookDelta,
    BookSnapshot,
    Instrument,
    InstrumentKind,
    Liquidity,
    OrderAccepted,
    OrderFilled,
    PlaceOrder,
    Side,
    Timer,
    TradePrint,
)

SPOT = Instrument("TOKEN/USDT", InstrumentKind.SPOT, "TOKEN", "USDT", tick_size=0.01, lot_size=0.01)
MS = 1_000_000


def make_engine() -> Engine:
    params = EngineParams(
        spot=SPOT,
        perp=None,
        quote=QuoteParams(order_size_base=1.0, min_spread_bps=10.0, levels=2),
        risk=RiskParams(inventory_soft_base=2.0, inventory_hard_base=4.0),
    )
    return Engine(params, SigmaEstimator(0.02, 60.0, 100), ArrivalEstimator(1.0, 20.0, 30.0, 5, refit_ms=200))


# one step: ("top", bid offset, spread) moves the book top; ("trade", side, lots); ("fill", side, lots) fills
# one of our live quotes; ("timer",) lets time pass
steps = st.lists(
    st.one_of(
        st.tuples(st.just("top"), st.integers(-20, 20), st.integers(1, 30)),
        st.tuples(st.just("trade"), st.sampled_from(Side), st.integers(1, 50)),
        st.tuples(st.just("fill"), st.sampled_from(Side), st.integers(1, 150)),
        st.tuples(st.just("timer")),
    ),
    max_size=40,
)


@dataclass
class Driver:
    engine: Engine
    now: int = 0
    seq: int = 100
    fills: int = 0

    def deliver(self, event: object) -> None:
        for command in self.engine.apply(event, self.now) + self.engine.requote(self.now):  # type: ignore[arg-type]
            if isinstance(command, PlaceOrder):
                ack = OrderAccepted(SPOT.symbol, command.client_id, "v" + command.client_id, self.now, self.now)
                self.engine.apply(ack, self.now)


def check_caches(engine: Engine) -> None:
    book = engine.books[SPOT.symbol]
    inputs, theo = engine.last_inputs, engine.last_theo
    assert inputs is not None and theo is not None and book.mid_ticks is not None
    fit = engine.arrivals.estimate
    fresh = MarketInputs(
        mid_px=book.mid_ticks * SPOT.tick_size,
        inventory_base=engine.inventory_base(),
        sigma_px_per_sqrt_s=engine.sigma.sigma_px_per_sqrt_s,
        a_per_s=fit.a_per_s,
        k_per_px=fit.k_per_px,
    )
    assert inputs == fresh
    assert theo == theo_quote(engine.p.quote, fresh)
    decision = engine.risk_decision
    if decision.pause or decision.halt:
        return
    ladder = build_ladder(theo, engine.p.quote, SPOT, book.best_bid_ticks, book.best_ask_ticks, decision)
    quoter = engine.quoter  # the one market's part holds the caches
    assert quoter._ladder == ladder  # the cached ladder is the one a fresh build gives
    # the quotes wanted: its trim, done afresh
    assert quoter._last_desired == quoter.cap_exposure(ladder, engine.inventory_base())


@given(steps)
def test_what_a_requote_used_equals_a_fresh_computation(script: list[tuple[object, ...]]) -> None:
    engine = make_engine()
    d = Driver(engine)
    bid, ask = 9_990, 10_010
    d.deliver(BookSnapshot(SPOT.symbol, d.seq, ((bid, 500),), ((ask, 500),), 0, 0))
    for step in script:
        d.now += 50 * MS
        kind = step[0]
        if kind == "top":
            offset, spread = step[1], step[2]
            assert isinstance(offset, int) and isinstance(spread, int)
            new_bid, new_ask = bid + offset, bid + offset + spread
            d.seq += 1
            bids, asks = ((bid, 0), (new_bid, 500)), ((ask, 0), (new_ask, 500))
            d.deliver(BookDelta(SPOT.symbol, d.seq, d.seq, bids, asks, 0, 0))
            bid, ask = new_bid, new_ask
        elif kind == "trade":
            side, lots = step[1], step[2]
            assert isinstance(side, Side) and isinstance(lots, int)
            px = ask + 2 if side is Side.BUY else bid - 2
            d.deliver(TradePrint(SPOT.symbol, px, lots, side, f"t{d.now}", d.now, d.now))
        elif kind == "fill":
            side, lots = step[1], step[2]
            assert isinstance(side, Side) and isinstance(lots, int)
            live = [o for o in engine.orders.live_orders(SPOT.symbol) if o.side is side]
            if live:
                order = live[0]
                size = min(lots, order.open_lots)
                d.fills += 1
                leaves = order.open_lots - size
                fill = OrderFilled(
                    SPOT.symbol, order.client_id, f"f{d.fills}", side, order.price_ticks, size, 0.0,
                    Liquidity.MAKER, leaves, d.now, d.now,
                )  # fmt: skip
                d.deliver(fill)
        else:
            d.deliver(Timer(d.now, d.now))
        engine.quoter.touch("test")  # a requote now, whatever the step did: each one is checked
        d.deliver(Timer(d.now, d.now))
        check_caches(engine)


class LateTimer(Timer):
    """A subclass of a domain event (as a test or an adapter might make): handled as its base."""


def test_a_subclassed_event_is_dispatched_like_its_base_and_an_unknown_one_is_ignored() -> None:
    engine = make_engine()
    engine.apply(BookSnapshot(SPOT.symbol, 1, ((9_990, 500),), ((10_010, 500),), 0, 0), 0)
    engine.requote(0)
    engine.apply(LateTimer(10 * 1_000_000_000, 10 * 1_000_000_000), 10 * 1_000_000_000)
    assert SPOT.symbol in engine.stale  # the timer's stale-feed check ran
    assert engine.apply("not an event", 0) == []  # type: ignore[arg-type]


CAP_SPOT = Instrument(
    "TOKEN/USDT", InstrumentKind.SPOT, "TOKEN", "USDT", tick_size=0.01, lot_size=0.01, min_notional=5.0
)


def reference_trim(ladder: tuple[DesiredQuote, ...], position: int, hard_lots: int) -> tuple[DesiredQuote, ...]:
    """The exposure trim written plainly, quote by quote (what `MarketQuoter.cap_exposure` must equal)."""
    room = {Side.BUY: hard_lots - position, Side.SELL: hard_lots + position}
    out = []
    for quote in ladder:
        lots = min(quote.size_lots, max(0, room[quote.side]))
        room[quote.side] -= lots
        if lots > 0 and CAP_SPOT.notional(quote.price_ticks, lots) >= CAP_SPOT.min_notional:
            out.append(quote._replace(size_lots=lots))
    return tuple(out)


@given(
    levels=st.integers(1, 4),
    size_base=st.floats(0.005, 3.0),
    decay=st.floats(0.2, 1.5),
    reservation_px=st.floats(0.5, 200.0),
    half_px=st.floats(0.001, 5.0),
    sides=st.sampled_from([(True, True), (True, False), (False, True)]),
    hard_base=st.floats(0.5, 12.0),
    slack_lots=st.one_of(st.integers(-3, 3), st.integers(-1_500, 1_500)),
    short=st.booleans(),
)
def test_the_exposure_trim_equals_the_plain_one(
    levels: int,
    size_base: float,
    decay: float,
    reservation_px: float,
    half_px: float,
    sides: tuple[bool, bool],
    hard_base: float,
    slack_lots: int,
    short: bool,
) -> None:
    # the position leaves `slack_lots` of room beyond the whole ladder: at the edge, near it (trims, remnants
    # below the min notional, one-sided ladders) and far from it
    quote = QuoteParams(order_size_base=size_base, size_decay=decay, levels=levels, min_spread_bps=0.0)
    params = EngineParams(spot=CAP_SPOT, perp=None, quote=quote, risk=RiskParams(0.0, hard_base))
    engine = Engine(params, SigmaEstimator(0.02, 60.0, 100), ArrivalEstimator(1.0, 20.0, 30.0, 5))
    theo = TheoQuote("glft", reservation_px, reservation_px, half_px, 0.0, reservation_px - half_px,
                     reservation_px + half_px, False)  # fmt: skip
    ladder = build_ladder(theo, quote, CAP_SPOT, None, None, QuoteAdjust(bid_enabled=sides[0], ask_enabled=sides[1]))
    quoter = engine.quoter
    position_abs = quoter._hard_lots - sum(q.size_lots for q in ladder) - slack_lots
    assume(position_abs >= 0)
    position_lots = -position_abs if short else position_abs
    engine.portfolio.positions[CAP_SPOT.symbol].lots = position_lots
    inventory = CAP_SPOT.size(position_lots)  # the book's inventory: this one market's
    assert quoter.cap_exposure(ladder, inventory) == reference_trim(ladder, position_lots, quoter._hard_lots)
