"""Prices and sizes in the engine's notes (the log), rounded to the instrument's grid.

The core computes in integer ticks and lots and converts to floats only to explain itself: 618314.5
ticks of 0.1 is 61831.450000000004 in binary floating point. The notes round prices to the decimals
of the tick and sizes to those of the lot, so the log reads like the venue's own prices; model prices
(the mid, which can fall on a half tick, the reservation price, the theoretical quote) keep one more
decimal. Only the notes are rounded: every decision and the session summary keep the exact values.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from bot.domain import Instrument

MAX_DECIMALS = 12  # a grid step finer than this is not a venue's


def step_decimals(step: float) -> int:
    """Decimals that write any multiple of `step` exactly: 0.01 → 2, 0.5 → 1, 1e-05 → 5, 10 → 0."""
    exponent = Decimal(repr(step)).normalize().as_tuple().exponent
    if not isinstance(exponent, int):  # NaN or infinity: no grid to speak of
        return MAX_DECIMALS
    return min(MAX_DECIMALS, max(0, -exponent))


@dataclass(frozen=True, slots=True)
class NoteRounding:
    """How one instrument's prices and sizes are written in the notes (decimals)."""

    price_decimals: int
    size_decimals: int

    @classmethod
    def for_instrument(cls, instrument: Instrument) -> NoteRounding:
        return cls(step_decimals(instrument.tick_size), step_decimals(instrument.lot_size))

    def price(self, px: float) -> float:
        """A price on the grid (an order's, a fill's, a spread)."""
        return round(px, self.price_decimals)

    def model_price(self, px: float) -> float:
        """A price between ticks: a mid (half a tick at most) or a model's price."""
        return round(px, self.price_decimals + 1)

    def size(self, base: float) -> float:
        return round(base, self.size_decimals)
