"""One book of risk across venues: the engine with three spot venues of the same token and a perp on a
fourth, driven by hand-made events. A fill on one venue moves every venue's reservation price; a
silent venue pulls its own quotes only; the hedge covers the whole book; shutdown cancels everywhere."""

from __future__ import annotations

from bot.core.engine import Engine, EngineParams, MarketSpec
from bot.core.estimators import ArrivalEstimator, SigmaEstimator
from bot.core.hedger import HedgeParams
from bot.core.quoting import QuoteParams
from bot.core.risk import RiskParams
from bot.domain import (
    BookSnapshot,
    CancelOrder,
    Command,
    FeedStatus,
    Instrument,
    InstrumentKind,
    Liquidity,
    OrderAccepted,
    OrderCanceled,
    OrderFilled,
    PlaceOrder,
    Side,
    Timer,
    market_key,
)

SPOT = Instrument("TOKEN/USDT", InstrumentKind.SPOT, "TOKEN", "USDT", tick_size=0.01, lot_size=0.01)
PERP = Instrument("TOKEN/USDT:USDT", InstrumentKind.PERP, "TOKEN", "USDT", tick_size=0.01, lot_size=0.01)
SEC = 1_000_000_000
SPOT_VENUES = ("main", "second", "third")
QUOTE = QuoteParams(order_size_base=1.0, min_spread_bps=10.0, gamma_per_quote=0.05)


def estimators(spec: MarketSpec | None = None) -> tuple[SigmaEstimator, ArrivalEstimator, SigmaEstimator]:
    return SigmaEstimator(0.02, 60.0, 1000), ArrivalEstimator(1.0, 20.0, 300.0, 50), SigmaEstimator(0.02, 600.0, 1000)


def make_engine(hedge: bool = True) -> Engine:
    risk = RiskParams(inventory_soft_base=50.0, inventory_hard_base=100.0)
    params = EngineParams(
        spot=SPOT,
        perp=PERP,
        quote=QUOTE,
        risk=risk,
        venue="main",
        extra_markets=tuple(MarketSpec(SPOT, QUOTE, risk, venue) for venue in SPOT_VENUES[1:]),
        hedge_venue="perpx",
        hedge=HedgeParams(enabled=hedge, band_base=0.5),
        stale_feed_ns=3 * SEC,
        warmup_ns=0,
    )
    sigma, arrivals, sigma_long = estimators()
    return Engine(params, sigma, arrivals, start_ns=0, sigma_long=sigma_long, make_estimators=estimators)


def snapshot(
    venue: str, symbol: str = SPOT.symbol, bid: int = 9_990, ask: int = 10_010, seq: int = 100
) -> BookSnapshot:
    return BookSnapshot(symbol, seq, ((bid, 50_000),), ((ask, 50_000),), 0, 0, venue=venue)


def ack_all(engine: Engine, commands: list[Command], now: int) -> None:
    for c in commands:
        if isinstance(c, PlaceOrder):
            engine.apply(OrderAccepted(c.symbol, c.client_id, "v" + c.client_id, now, now, venue=c.venue), now)
        elif isinstance(c, CancelOrder):
            engine.apply(OrderCanceled(c.symbol, c.client_id, "requested", now, now, venue=c.venue), now)


def started(hedge: bool = True) -> tuple[Engine, list[Command]]:
    engine = make_engine(hedge)
    out: list[Command] = []
    for venue in SPOT_VENUES:
        out += engine.apply(snapshot(venue), 0)
    out += engine.apply(snapshot("perpx", PERP.symbol), 0)
    out += engine.requote(0)
    ack_all(engine, out, 0)
    return engine, out


def quotes_on(engine: Engine, venue: str) -> list[object]:
    q = next(q for q in engine.quoters if q.venue == venue)
    return q.orders.live_orders(SPOT.symbol, tag="quote")


def reservation(engine: Engine, venue: str) -> float:
    q = next(q for q in engine.quoters if q.venue == venue)
    assert q.last_theo is not None
    return q.last_theo.reservation_px


def test_every_spot_venue_quotes_and_every_command_names_its_venue() -> None:
    engine, out = started()
    placed = [c for c in out if isinstance(c, PlaceOrder)]
    assert {c.venue for c in placed} == set(SPOT_VENUES)
    for venue in SPOT_VENUES:
        assert {o.side for o in quotes_on(engine, venue)} == {Side.BUY, Side.SELL}  # type: ignore[attr-defined]
    # client ids are the engine's, unique across venues (one id space per session)
    assert len({c.client_id for c in placed}) == len(placed)


def test_a_fill_on_one_venue_moves_the_reservation_price_on_the_others() -> None:
    engine, _ = started(hedge=False)
    before = {venue: reservation(engine, venue) for venue in SPOT_VENUES}
    engine.drain_notes()
    assert len(set(before.values())) == 1  # same book, same mid, no inventory: the same price
    bid = next(o for o in quotes_on(engine, "main") if o.side is Side.BUY)  # type: ignore[attr-defined]
    now = SEC
    fill = OrderFilled(
        SPOT.symbol, bid.client_id, "f1", Side.BUY, bid.price_ticks, bid.size_lots, 0.0,  # type: ignore[attr-defined]
        Liquidity.MAKER, 0, now, now, venue="main",
    )  # fmt: skip
    engine.apply(fill, now)
    engine.requote(now)
    after = {venue: reservation(engine, venue) for venue in SPOT_VENUES}
    # long inventory bought on "main" lowers the reservation price of the whole book, on every venue
    for venue in SPOT_VENUES:
        assert after[venue] < before[venue], venue
    assert engine.inventory_base() == SPOT.size(bid.size_lots)  # type: ignore[attr-defined]
    assert engine.portfolio.position_lots(market_key("main", SPOT.symbol)) == bid.size_lots  # type: ignore[attr-defined]
    assert engine.portfolio.position_lots(market_key("second", SPOT.symbol)) == 0
    # and the other venues requote on it: their asks come down with the reservation price
    updates = {f["venue"]: f for name, f in engine.drain_notes() if name == "quote.updated"}
    assert set(updates) == set(SPOT_VENUES)
    for venue in SPOT_VENUES:
        assert updates[venue]["trigger"] == "fill" and updates[venue]["inventory"] == 1.0
        assert updates[venue]["ask"] < SPOT.price(10_006)  # 100.06 before the fill


def test_a_silent_venue_pulls_its_own_quotes_and_the_others_keep_quoting() -> None:
    engine, _ = started()
    now = 0
    for _ in range(40):  # 4 s of timers; "second" and "third" keep ticking, "main" goes silent
        now += SEC // 10
        for venue in ("second", "third"):
            engine.apply(snapshot(venue, seq=100 + now), now)
        engine.apply(snapshot("perpx", PERP.symbol, seq=100 + now), now)
        out = engine.apply(Timer(now, now), now) + engine.requote(now)
        ack_all(engine, out, now)
    assert engine.stale == {market_key("main", SPOT.symbol)}
    assert quotes_on(engine, "main") == []
    for venue in ("second", "third"):
        assert len(quotes_on(engine, venue)) == 2, venue
    assert engine.not_quoting_reason() == ""  # the book still quotes


def test_a_venue_disconnect_pulls_that_venue_only() -> None:
    engine, _ = started()
    out = engine.apply(FeedStatus("*", False, "socket closed", 1, 1, venue="third"), 1)
    cancels = [c for c in out if isinstance(c, CancelOrder)]
    assert cancels and {c.venue for c in cancels} == {"third"}
    assert engine.awaiting_snapshot == {market_key("third", SPOT.symbol)}


def test_the_hedge_covers_the_whole_book_on_the_perp_venue() -> None:
    engine, _ = started()
    now = SEC
    out: list[Command] = []
    for i, venue in enumerate(("second", "third")):
        bid = next(o for o in quotes_on(engine, venue) if o.side is Side.BUY)  # type: ignore[attr-defined]
        fill = OrderFilled(
            SPOT.symbol, bid.client_id, f"f{i}", Side.BUY, bid.price_ticks, bid.size_lots, 0.0,  # type: ignore[attr-defined]
            Liquidity.MAKER, 0, now, now, venue=venue,
        )  # fmt: skip
        out += engine.apply(fill, now)
    hedges = [c for c in out if isinstance(c, PlaceOrder) and c.tag == "hedge"]
    assert hedges and {c.venue for c in hedges} == {"perpx"} and {c.symbol for c in hedges} == {PERP.symbol}
    assert all(c.side is Side.SELL for c in hedges)
    # net delta: both venues' long, less what is being sold on the perp
    assert sum(c.size_lots for c in hedges) <= 2 * PERP.lots(QUOTE.order_size_base)


def test_shutdown_cancels_on_every_venue() -> None:
    engine, _ = started()
    out = engine.shutdown(SEC)
    assert {c.venue for c in out if isinstance(c, CancelOrder)} == set(SPOT_VENUES)
    ack_all(engine, out, SEC)
    assert engine.open_order_count() == 0


def test_the_summary_reports_each_venue() -> None:
    engine, _ = started()
    venues = engine.summary(SEC)["venues"]
    assert set(venues) == {*SPOT_VENUES, "perpx"}
    assert venues["main"]["role"] == "spot" and venues["perpx"]["hedge"]["symbol"] == PERP.symbol


def test_the_hedge_venue_down_withholds_the_side_that_adds_unhedged_delta_everywhere() -> None:
    engine, _ = started()
    now = SEC
    bid = next(o for o in quotes_on(engine, "main") if o.side is Side.BUY)  # type: ignore[attr-defined]
    fill = OrderFilled(
        SPOT.symbol, bid.client_id, "f1", Side.BUY, bid.price_ticks, bid.size_lots, 0.0,  # type: ignore[attr-defined]
        Liquidity.MAKER, 0, now, now, venue="main",
    )  # fmt: skip
    ack_all(engine, engine.apply(fill, now) + engine.requote(now), now)  # the hedge is sent, never filled
    assert engine.portfolio.net_delta_base() > 0  # long, unhedged
    engine.drain_notes()
    out = engine.apply(FeedStatus("*", False, "socket closed", now, now, venue="perpx"), now)
    out += engine.requote(now)
    ack_all(engine, out, now)
    assert [n for n, _ in engine.drain_notes() if n.startswith("hedge.venue")] == ["hedge.venue_down"]
    for venue in SPOT_VENUES:  # every venue: no bid (buying adds to the long), the ask stays
        assert {o.side for o in quotes_on(engine, venue)} == {Side.SELL}, venue  # type: ignore[attr-defined]
    # the perp venue back: both sides again
    now += SEC // 10
    engine.apply(snapshot("perpx", PERP.symbol, seq=500), now)
    out = engine.apply(Timer(now, now), now) + engine.requote(now)
    ack_all(engine, out, now)
    assert "hedge.venue_up" in [n for n, _ in engine.drain_notes()]
    for venue in SPOT_VENUES:
        assert {o.side for o in quotes_on(engine, venue)} == {Side.BUY, Side.SELL}, venue  # type: ignore[attr-defined]
