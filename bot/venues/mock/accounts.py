"""Balances and positions of the mock exchange's one account, updated on every fill and funding.

- Spot: base and quote wallet balances move with each fill; the fee is charged in quote on both
  sides (a simplification: some venues charge a buyer's fee in base).
- Linear perp: the position in lots, its average entry price, and the realised PnL, fees and funding
  settled into the quote wallet. Unrealised PnL is `position * (mark - entry)`.

Identity kept by construction (and property-tested):
    quote + Σ_perp unrealised(mark) == initial_quote + Σ_fills (−sign · notional) + Σ_perp position · mark
                                       − Σ fees + Σ funding
"""

from __future__ import annotations

from bot.domain import Instrument, InstrumentKind, Side


class Accounts:
    def __init__(self, instruments: dict[str, Instrument], initial_quote: float, initial_base: float) -> None:
        self._instruments = instruments
        self.balances: dict[str, float] = {}
        for inst in instruments.values():
            self.balances[inst.quote] = initial_quote
            if inst.kind is InstrumentKind.SPOT:
                self.balances[inst.base] = initial_base
        self.positions_lots: dict[str, int] = dict.fromkeys(instruments, 0)
        self.entry_px: dict[str, float] = dict.fromkeys(instruments, 0.0)
        self.fees_quote = 0.0
        self.funding_quote = 0.0
        self.realized_pnl_quote = 0.0

    def apply_fill(self, symbol: str, side: Side, price_ticks: int, lots: int, fee_quote: float) -> None:
        inst = self._instruments[symbol]
        px = inst.price(price_ticks)
        qty_base = inst.size(lots)
        self.fees_quote += fee_quote
        self.balances[inst.quote] -= fee_quote
        if inst.kind is InstrumentKind.SPOT:
            self.balances[inst.quote] -= side.sign * px * qty_base
            self.balances[inst.base] += side.sign * qty_base
            self.positions_lots[symbol] += side.sign * lots
            return
        self._perp_fill(inst, side.sign * lots, px)

    def _perp_fill(self, inst: Instrument, signed_lots: int, px: float) -> None:
        symbol = inst.symbol
        pos = self.positions_lots[symbol]
        entry = self.entry_px[symbol]
        if pos == 0 or (pos > 0) == (signed_lots > 0):
            new_pos = pos + signed_lots
            self.entry_px[symbol] = (entry * abs(pos) + px * abs(signed_lots)) / abs(new_pos)
        else:
            closed = min(abs(signed_lots), abs(pos))
            pnl = (px - entry) * inst.size(closed) * (1 if pos > 0 else -1)
            self.realized_pnl_quote += pnl
            self.balances[inst.quote] += pnl
            new_pos = pos + signed_lots
            if new_pos == 0:
                self.entry_px[symbol] = 0.0
            elif (new_pos > 0) != (pos > 0):
                self.entry_px[symbol] = px  # flipped: the remainder opened at this price
        self.positions_lots[symbol] = new_pos

    def apply_funding(self, symbol: str, amount_quote: float) -> None:
        inst = self._instruments[symbol]
        self.funding_quote += amount_quote
        self.balances[inst.quote] += amount_quote

    def unrealized_quote(self, symbol: str, mark_px: float) -> float:
        inst = self._instruments[symbol]
        return (mark_px - self.entry_px[symbol]) * inst.size(self.positions_lots[symbol])
