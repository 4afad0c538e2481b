"""Prices and sizes in the engine's notes are written on the instrument's grid (bot.core.rounding)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.core.engine import Engine, EngineParams
from bot.core.estimators import ArrivalEstimator, SigmaEstimator
from bot.core.quoting import QuoteParams
from bot.core.rounding import NoteRounding, step_decimals
from bot.domain import BookSnapshot, Instrument, InstrumentKind, Liquidity, OrderFilled, PlaceOrder, Side

SEC = 1_000_000_000
# a BTC-like grid: 618314.5 ticks of 0.1 is 61831.450000000004 in binary floating point
BTC = Instrument("BTC/USDT", InstrumentKind.SPOT, "BTC", "USDT", tick_size=0.1, lot_size=0.00001, min_notional=5.0)


@pytest.mark.parametrize(
    ("step", "decimals"),
    [(0.01, 2), (0.1, 1), (0.5, 1), (0.25, 2), (1.0, 0), (10.0, 0), (1e-05, 5), (0.00001, 5), (1e-8, 8), (5e-3, 3)],
)
def test_step_decimals(step: float, decimals: int) -> None:
    assert step_decimals(step) == decimals


def test_rounding_of_a_price_a_mid_and_a_size() -> None:
    r = NoteRounding.for_instrument(BTC)
    assert (r.price_decimals, r.size_decimals) == (1, 5)
    assert 618_314.5 * 0.1 != 61831.45  # the float noise the notes used to show
    assert r.price(618_314 * 0.1 + 0.1) == 61831.5
    assert r.model_price(618_314.5 * 0.1) == 61831.45
    assert r.size(84 * 0.00001) == 0.00084


@given(ticks=st.integers(1, 10**9), lots=st.integers(0, 10**9), half=st.booleans())
def test_rounding_keeps_every_grid_value(ticks: int, lots: int, half: bool) -> None:
    """Rounding only removes float noise: the value still names the same tick (or half tick) and lot."""
    r = NoteRounding.for_instrument(BTC)
    assert round(r.price(ticks * BTC.tick_size) / BTC.tick_size) == ticks
    mid_ticks = ticks + (0.5 if half else 0.0)
    assert r.model_price(mid_ticks * BTC.tick_size) / BTC.tick_size == pytest.approx(mid_ticks, abs=1e-6)
    assert round(r.size(lots * BTC.lot_size) / BTC.lot_size) == lots


def _engine() -> Engine:
    params = EngineParams(spot=BTC, perp=None, quote=QuoteParams(order_size_base=0.01, min_spread_bps=2.0))
    return Engine(params, SigmaEstimator(5.0, 60.0, 1000), ArrivalEstimator(1.0, 0.5, 300.0, 50), start_ns=0)


def _decimals(value: float) -> int:
    text = repr(value)
    return len(text.split(".")[1]) if "." in text and "e" not in text else 0


def test_engine_notes_read_like_the_venue_prices_and_the_stats_stay_exact() -> None:
    engine = _engine()
    engine.apply(BookSnapshot(BTC.symbol, 1, ((618_314, 50_000),), ((618_315, 50_000),), 0, 0), SEC)
    placed = [c for c in engine.requote(SEC) if isinstance(c, PlaceOrder)]
    bid = next(c for c in placed if c.side is Side.BUY)
    fill = OrderFilled(
        BTC.symbol, bid.client_id, "f1", Side.BUY, bid.price_ticks, 84, 0.01, Liquidity.MAKER, 0, SEC, SEC
    )
    engine.apply(fill, SEC)
    engine.requote(2 * SEC)
    notes = engine.drain_notes()
    quote = next(f for n, f in notes if n == "quote.updated")
    assert quote["mid"] == 61831.45 and _decimals(quote["mid"]) <= 2
    for key in ("bid", "ask", "spread"):
        assert _decimals(quote[key]) <= 1, (key, quote[key])
    assert _decimals(quote["reservation_price"]) <= 2
    filled = next(f for n, f in notes if n == "order.filled")
    assert filled["price"] == round(bid.price_ticks * 0.1, 1) and _decimals(filled["price"]) <= 1
    assert filled["size"] == 0.00084 and filled["inventory"] == 0.00084
    for name, fields in notes:
        if name == "order.placed":
            assert _decimals(fields["price"]) <= 1 and _decimals(fields["size"]) <= 5
    # the decisions and the stats keep the exact floats: only the notes are rounded
    assert engine.stats.volume_base == 84 * 0.00001
    assert engine.inventory_base() == 84 * 0.00001
