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


# grid steps as venues publish them (and a few awkward ones): whole, decimal, 2.5 and 5 multiples, tiny
GRID_STEPS = [1.0, 10.0, 0.5, 0.1, 0.01, 0.05, 0.25, 0.025, 1e-3, 5e-4, 1e-5, 1e-6, 1e-8, 2.5e-7, 1e-12, 0.3, 0.07]


@given(
    step=st.sampled_from(GRID_STEPS),
    units=st.one_of(st.integers(-(10**6), 10**6), st.integers(-(10**17), 10**17)),
    half=st.booleans(),
)
def test_values_in_ticks_and_lots_are_rounded_as_round_does(step: float, units: int, half: bool) -> None:
    """The integer shortcut gives the very double round() gives, on and far beyond its exact range."""
    instrument = Instrument("X/USDT", InstrumentKind.SPOT, "X", "USDT", tick_size=step, lot_size=step)
    r = NoteRounding.for_instrument(instrument)
    assert r.price_of_ticks(units) == r.price(units * step)
    assert r.size_of_lots(units) == r.size(units * step)
    half_ticks = 2 * units + (1 if half else 0)  # a mid of bid + ask = half_ticks
    assert r.model_price_of_half_ticks(half_ticks) == r.model_price(half_ticks / 2 * step)


@pytest.mark.parametrize(
    ("step", "ticks"), [(0.1, 2773764778720583072), (0.5, 314365108835928738), (1e-05, 3756806069118793249)]
)
def test_far_beyond_the_exact_range_round_is_used(step: float, ticks: int) -> None:
    # values where ticks × units / 10**d (units past 2**53) is not round()'s double: the fallback must run
    instrument = Instrument("X/USDT", InstrumentKind.SPOT, "X", "USDT", tick_size=step, lot_size=step)
    r = NoteRounding.for_instrument(instrument)
    assert r.price_of_ticks(ticks) == round(ticks * step, r.price_decimals)
    assert r.size_of_lots(ticks) == round(ticks * step, r.size_decimals)
    assert r.model_price_of_half_ticks(ticks) == round(ticks / 2 * step, r.price_decimals + 1)


def test_the_shortcut_covers_the_grid_and_falls_back_off_it() -> None:
    r = NoteRounding.for_instrument(BTC)
    assert r.price_of_ticks(618_315) == 61831.5 and r.model_price_of_half_ticks(618_314 + 618_315) == 61831.45
    assert r.size_of_lots(84) == 0.00084
    no_grid = NoteRounding(2, 3)  # without the grid only the float forms make sense
    assert no_grid.price(1.005) == round(1.005, 2)
