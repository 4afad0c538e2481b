"""Prices and sizes in the engine's notes (the log), rounded to the instrument's grid.

The core computes in integer ticks and lots and converts to floats only to explain itself: 618314.5
ticks of 0.1 is 61831.450000000004 in binary floating point. The notes round prices to the decimals
of the tick and sizes to those of the lot, so the log reads like the venue's own prices; model prices
(the mid, which can fall on a half tick, the reservation price, the theoretical quote) keep one more
decimal. Only the notes are rounded: every decision and the session summary keep the exact values.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from decimal import Decimal

from bot.domain import Instrument

MAX_DECIMALS = 12  # a grid step finer than this is not a venue's
# Below this many grid units a value's float noise stays far under half a unit of its last decimal (the
# float product is within ~2.3e-16 relative of the decimal value), so the decimal round() finds is the
# exact one; 2**50 ~ 1.1e15 (e.g. 11 billion at a tick of 1e-5), and an exact integer for the division.
_EXACT_UNITS = 2**50


def grid_units(step: float, decimals: int) -> int:
    """`step` in units of `10**-decimals` when that is a whole number, else 0: 0.01 at 2 → 1, 0.25 at 2 → 25."""
    if not (0.0 < step < math.inf):
        return 0
    units = Decimal(repr(step)).scaleb(decimals)
    return int(units) if units == units.to_integral_value() else 0


def step_decimals(step: float) -> int:
    """Decimals that write any multiple of `step` exactly: 0.01 → 2, 0.5 → 1, 1e-05 → 5, 10 → 0."""
    exponent = Decimal(repr(step)).normalize().as_tuple().exponent
    if not isinstance(exponent, int):  # NaN or infinity: no grid to speak of
        return MAX_DECIMALS
    return min(MAX_DECIMALS, max(0, -exponent))


@dataclass(frozen=True, slots=True)
class NoteRounding:
    """How one instrument's prices and sizes are written in the notes (decimals).

    With the grid (`tick_size`, `lot_size`), values given in ticks and lots are written without round():
    round(x, d) returns the double nearest the d-decimal number closest to x, and for x = ticks × tick
    that number is exactly ticks × tick_units / 10**d, which one integer product and one division give
    (correctly rounded, so the same double) at a fraction of round()'s cost. The notes round ~30k
    values a replay: this was most of the time the engine spent explaining itself.
    """

    price_decimals: int
    size_decimals: int
    tick_size: float = math.nan  # NaN: the grid is unknown, the *_of_ticks / *_of_lots forms fall back
    lot_size: float = math.nan
    _tick_units: int = field(init=False, repr=False, compare=False)  # tick in units of 10**-price_decimals
    _lot_units: int = field(init=False, repr=False, compare=False)
    _half_tick_units: int = field(init=False, repr=False, compare=False)  # half a tick in 10**-(price_decimals+1)
    _price_scale: float = field(init=False, repr=False, compare=False)  # 10**price_decimals
    _model_scale: float = field(init=False, repr=False, compare=False)  # 10**(price_decimals + 1)
    _size_scale: float = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_tick_units", grid_units(self.tick_size, self.price_decimals))
        object.__setattr__(self, "_lot_units", grid_units(self.lot_size, self.size_decimals))
        object.__setattr__(self, "_half_tick_units", self._tick_units * 5)
        object.__setattr__(self, "_price_scale", float(10**self.price_decimals))
        object.__setattr__(self, "_model_scale", float(10 ** (self.price_decimals + 1)))
        object.__setattr__(self, "_size_scale", float(10**self.size_decimals))

    @classmethod
    def for_instrument(cls, instrument: Instrument) -> NoteRounding:
        tick, lot = instrument.tick_size, instrument.lot_size
        return cls(step_decimals(tick), step_decimals(lot), tick, lot)

    def price(self, px: float) -> float:
        """A price on the grid (an order's, a fill's, a spread)."""
        return round(px, self.price_decimals)

    def model_price(self, px: float) -> float:
        """A price between ticks: a mid (half a tick at most) or a model's price."""
        return round(px, self.price_decimals + 1)

    def size(self, base: float) -> float:
        return round(base, self.size_decimals)

    def price_of_ticks(self, ticks: int) -> float:
        """`price(ticks × tick_size)`, the same double (see the class docstring)."""
        units = ticks * self._tick_units
        if self._tick_units and -_EXACT_UNITS < units < _EXACT_UNITS:
            return units / self._price_scale
        return self.price(ticks * self.tick_size)

    def model_price_of_half_ticks(self, half_ticks: int) -> float:
        """`model_price(half_ticks / 2 × tick_size)`, the same double: a mid (bid + ask) / 2 given as bid + ask."""
        # one more decimal: half_ticks / 2 × tick_units / 10**d = half_ticks × tick_units × 5 / 10**(d+1)
        units = half_ticks * self._half_tick_units
        if self._half_tick_units and -_EXACT_UNITS < units < _EXACT_UNITS:
            return units / self._model_scale
        return self.model_price(half_ticks / 2 * self.tick_size)

    def size_of_lots(self, lots: int) -> float:
        """`size(lots × lot_size)`, the same double."""
        units = lots * self._lot_units
        if self._lot_units and -_EXACT_UNITS < units < _EXACT_UNITS:
            return units / self._size_scale
        return self.size(lots * self.lot_size)
