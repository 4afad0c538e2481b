"""Positions, PnL and its attribution for one session; the net delta the hedger works on.

Linear instruments (spot and the linear perp) are kept per symbol in integer lots with an average
entry price (average-cost method): realised PnL is booked when a fill reduces the position,
unrealised PnL is `position × (mark − average entry)`. Cash, fees, funding and PnL are in the
quote currency. The deal's calls (`CallOption`) and DEX pool (`ConstantProductLp`) are valued
on the *underlying* mark (the spot mid), see `mark_underlying`.

Net delta (base units) = spot + perp + LP delta (L/√P) + Σ call deltas (quantity × N(d1)).

Attribution (each component is a contribution to PnL, in quote; they sum to `total_quote`):

- `spread_capture`: quote fills, `−side × (fill price − mid at fill) × size` (a buy below mid earns,
  a fill through the mid costs);
- `quote_fees`: minus the fees of quote fills (a maker rebate is positive);
- `hedge_cost`: hedge fills, the same slippage vs the perp mid at fill, minus their fees (≤ 0 normally);
- `funding`: perp funding received (negative when paid);
- `options`: the calls' value change since the first mark *plus* the PnL of a notional hedge of
  −Δ rebalanced at every underlying mark, Σ −Δ_{i−1}·(S_i − S_{i−1}): the gamma-scalping PnL;
- `lp_fees`: the pool's fee income;
- `inventory_mtm`: everything else, i.e. each position marked from the mid at its fills to the
  current mark (spot, perp and the pool's token/quote holdings incl. impermanent loss), less the
  notional option hedge moved into `options` above.

`total_quote` is computed independently (average-cost realised + unrealised − fees + funding +
option value change + pool value change + pool fees), so `sum(components) == total` is a check,
not a definition.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from bot.core.lp import ConstantProductLp, SimulatedPool
from bot.core.options import CallOption, total_risk
from bot.domain import DEFAULT_VENUE, FundingPaid, Instrument, OrderFilled, Side, market_key


@dataclass(slots=True)
class Position:
    """One linear instrument's position. `avg_px` is meaningless while `lots == 0`."""

    instrument: Instrument
    lots: int = 0
    avg_px: float = 0.0
    realised_quote: float = 0.0
    fees_quote: float = 0.0
    funding_quote: float = 0.0
    mark_px: float = 0.0
    mid_basis_quote: float = 0.0  # Σ signed base × mid at fill: the reference of inventory MTM

    @property
    def base(self) -> float:
        return self.lots * self.instrument.lot_size

    @property
    def unrealised_quote(self) -> float:
        return self.base * (self.mark_px - self.avg_px) if self.lots else 0.0

    @property
    def pnl_quote(self) -> float:
        """Realised + unrealised − fees + funding."""
        return self.realised_quote + self.unrealised_quote - self.fees_quote + self.funding_quote

    def apply(self, side: Side, lots: int, price_px: float) -> None:
        """Average-cost update for a fill of `lots` at `price_px` (fees are booked by the caller)."""
        signed = side.sign * lots
        lot = self.instrument.lot_size
        if self.lots == 0 or (self.lots > 0) == (signed > 0):
            new = self.lots + signed
            self.avg_px = (self.lots * self.avg_px + signed * price_px) / new
            self.lots = new
            return
        closed = min(abs(signed), abs(self.lots))
        direction = 1 if self.lots > 0 else -1
        self.realised_quote += direction * closed * lot * (price_px - self.avg_px)
        self.lots += signed
        if self.lots == 0:
            self.avg_px = 0.0
        elif (self.lots > 0) != (direction > 0):  # crossed through zero: the remainder opens at the fill price
            self.avg_px = price_px


@dataclass(frozen=True, slots=True)
class PnlAttribution:
    """PnL contributions in quote currency; see the module docstring for each definition."""

    spread_capture_quote: float
    quote_fees_quote: float
    inventory_mtm_quote: float
    hedge_cost_quote: float
    funding_quote: float
    options_quote: float
    lp_fees_quote: float
    total_quote: float
    option_exercise_quote: float = 0.0

    def components(self) -> dict[str, float]:
        return {
            "spread_capture": self.spread_capture_quote,
            "quote_fees": self.quote_fees_quote,
            "inventory_mtm": self.inventory_mtm_quote,
            "hedge_cost": self.hedge_cost_quote,
            "funding": self.funding_quote,
            "options": self.options_quote,
            "option_exercise": self.option_exercise_quote,
            "lp_fees": self.lp_fees_quote,
        }


@dataclass(slots=True)
class _Underlying:
    """Last underlying mark and the deal's valuations at it."""

    price_px: float | None = None
    option_value_quote: float = 0.0
    option_delta_base: float = 0.0
    option_gamma_base_per_px: float = 0.0
    option_value0_quote: float | None = None
    option_hedge_quote: float = 0.0  # Σ −Δ_{i−1}·(S_i − S_{i−1})
    lp_value0_quote: float | None = None


@dataclass(slots=True)
class _Attribution:
    spread_capture: float = 0.0
    quote_fees: float = 0.0
    hedge_cost: float = 0.0
    lp_fees: float = 0.0
    option_exercise: float = 0.0


@dataclass(frozen=True, slots=True)
class CallSettlement:
    """A call settled at expiry: exercised (payoff (S − K)·q > 0) or lapsed (payoff 0)."""

    strike_px: float
    quantity_base: float
    spot_px: float
    payoff_quote: float
    exercised: bool


MAX_REMEMBERED_FILLS = 100_000
"""Fill ids the portfolio remembers to drop a duplicate (see `Portfolio.on_fill`)."""


class Portfolio:
    """Positions and PnL of one session. Feed it every fill and funding event (duplicates are
    dropped) and fresh marks; read `net_delta_base()` and `pnl()`.

    Call `mark(symbol, px)` for each instrument's mark (the engine: the book mid, or the perp's
    MarkPrice) and `mark_underlying(px, now_ns, sigma_annual)` with the spot mid to revalue the
    calls and the pool. A fill also marks its instrument at the mid passed with it.
    """

    def __init__(
        self,
        instruments: Iterable[Instrument],
        options: Iterable[CallOption] = (),
        lp: ConstantProductLp | SimulatedPool | None = None,
        keys: Mapping[str, Instrument] | None = None,
    ) -> None:
        # a position per market key (`bot.domain.market_key`: the bare symbol on the default venue);
        # `keys` names them when several venues trade the same symbol, else each instrument's symbol
        markets = keys if keys is not None else {i.symbol: i for i in instruments}
        self.positions: dict[str, Position] = {key: Position(i) for key, i in markets.items()}
        self.options = tuple(options)
        self.lp = lp
        # fill ids already booked, the last MAX_REMEMBERED_FILLS of them: duplicates arrive soon after
        # the original (a venue's replay after a reconnect is at most a few thousand), and an unbounded
        # set grew by ~150 bytes a fill forever (the 24-hour soak's memory check)
        self._seen_fills: set[tuple[str, str]] = set()
        self._seen_order: deque[tuple[str, str]] = deque()
        self._seen_funding: set[tuple[str, int]] = set()
        self._under = _Underlying()
        self._attr = _Attribution()
        # bumped by every change to what the PnL is at given marks (fills, funding, pool fees, seeds, the
        # underlying's revaluation; not `mark`, whose prices a reader has at hand): a cache of the PnL
        # keys on it and on the marks
        self.version = 0

    # ---- events ----------------------------------------------------------------------------------

    def on_fill(self, fill: OrderFilled, mid_px: float, *, hedge: bool) -> bool:
        """Book one of our fills. `mid_px` is the instrument's mid when the fill was seen; `hedge`
        says whose fill it is (the hedger's perp orders vs the quoter's). Returns False for a
        duplicate `(symbol, fill_id)`, an unknown symbol or a size <= 0 (a broken adapter: it used
        to divide by zero in the average price), which change nothing."""
        market = fill.symbol if fill.venue == DEFAULT_VENUE else market_key(fill.venue, fill.symbol)
        key = (market, fill.fill_id)
        pos = self.positions.get(market)
        if pos is None or key in self._seen_fills or fill.size_lots <= 0:
            return False
        self._seen_fills.add(key)
        self._seen_order.append(key)
        if len(self._seen_order) > MAX_REMEMBERED_FILLS:
            self._seen_fills.discard(self._seen_order.popleft())
        price_px = pos.instrument.price(fill.price_ticks)
        size_base = pos.instrument.size(fill.size_lots)
        if not math.isfinite(mid_px):
            # no mid yet (its venue's book not synced when the fill came): no edge is known, so none is
            # booked, and the fill is marked at its own price; a NaN here made every later PnL NaN
            mid_px = price_px
        pos.apply(fill.side, fill.size_lots, price_px)
        pos.fees_quote += fill.fee_quote
        pos.mid_basis_quote += fill.side.sign * size_base * mid_px
        pos.mark_px = mid_px
        edge = -fill.side.sign * (price_px - mid_px) * size_base
        if hedge:
            self._attr.hedge_cost += edge - fill.fee_quote
        else:
            self._attr.spread_capture += edge
            self._attr.quote_fees -= fill.fee_quote
        self.version += 1
        return True

    def on_funding(self, event: FundingPaid) -> bool:
        """Book a funding settlement once per (symbol, venue timestamp)."""
        market = market_key(event.venue, event.symbol)
        key = (market, event.ts_venue_ns)
        pos = self.positions.get(market)
        if pos is None or key in self._seen_funding:
            return False
        self._seen_funding.add(key)
        pos.funding_quote += event.amount_quote
        self.version += 1
        return True

    def on_lp_volume(
        self, volume_quote: float, side_sign: int = 1, cex_px: float | None = None, trade_id: str | None = None
    ) -> float:
        """Accrue the pool's fees on `volume_quote` of (simulated) swaps; returns the fee booked. A
        `SimulatedPool` takes it as one swap on `side_sign` (+1: tokens bought) at the CEX price, once
        per `trade_id` (the public trade it mirrors)."""
        if self.lp is None:
            return 0.0
        if isinstance(self.lp, SimulatedPool):
            px = cex_px if cex_px is not None else self._under.price_px
            if px is None:
                return 0.0
            fee = self.lp.swap(side_sign, volume_quote, px, trade_id)
        else:
            fee = self.lp.fees_quote(volume_quote)
        self._attr.lp_fees += fee
        self.version += 1
        return fee

    def seed_position(self, symbol: str, lots: int, price_px: float) -> None:
        """Start from an existing position (reconciliation), entered at `price_px` = its mid: no
        spread capture, no fee; its later moves show up in inventory MTM."""
        pos = self.positions[symbol]
        side = Side.BUY if lots > 0 else Side.SELL
        if lots:
            pos.apply(side, abs(lots), price_px)
            pos.mid_basis_quote += pos.instrument.size(lots) * price_px
        pos.mark_px = price_px
        self.version += 1

    # ---- marks -----------------------------------------------------------------------------------

    def mark(self, symbol: str, mark_px: float) -> None:
        """Mark one linear instrument (unknown symbols, and a mark that is not a price, are ignored)."""
        pos = self.positions.get(symbol)
        if pos is not None and math.isfinite(mark_px):
            pos.mark_px = mark_px

    def mark_underlying(self, price_px: float, now_ns: int, sigma_annual: float) -> None:
        """Revalue the calls and the pool at the underlying price (spot mid). The first call sets
        their reference values; each later call books the notional option hedge −Δ·ΔS."""
        u = self._under
        self.version += 1
        if u.price_px is not None:
            u.option_hedge_quote -= u.option_delta_base * (price_px - u.price_px)
        u.price_px = price_px
        if self.options:
            risk = total_risk(self.options, price_px, sigma_annual, now_ns)
            u.option_value_quote = risk.value_quote
            u.option_delta_base = risk.delta_base
            u.option_gamma_base_per_px = risk.gamma_base_per_px
            if u.option_value0_quote is None:
                u.option_value0_quote = risk.value_quote
        if isinstance(self.lp, SimulatedPool) and u.lp_value0_quote is not None:
            self._attr.lp_fees += self.lp.arbitrage(price_px)  # arbitrageurs trade it back to the CEX price
        if self.lp is not None and u.lp_value0_quote is None:
            u.lp_value0_quote = self.lp.value_quote(price_px)

    def settle_calls(self, price_px: float, now_ns: int, sigma_annual: float) -> list[CallSettlement]:
        """Settle every call whose expiry has come (`expiry_ns <= now_ns`) at the underlying price: an
        in-the-money call is exercised (bought from the project at the strike, worth (S − K)·q, booked
        as `option_exercise`), an out-of-the-money one lapses. Either leaves the book, so its delta and
        its hedge go to zero. The calls are revalued first, so the PnL is continuous: their value at
        expiry *is* the payoff, and moves from `options` into `option_exercise`."""
        due = [o for o in self.options if o.expiry_ns <= now_ns]
        if not due:
            return []
        self.mark_underlying(price_px, now_ns, sigma_annual)
        out = []
        for option in due:
            payoff = option.quantity_base * max(price_px - option.strike_px, 0.0)
            out.append(CallSettlement(option.strike_px, option.quantity_base, price_px, payoff, payoff > 0.0))
            self._attr.option_exercise += payoff
        self.options = tuple(o for o in self.options if o.expiry_ns > now_ns)
        u = self._under
        risk = total_risk(self.options, price_px, sigma_annual, now_ns)
        u.option_value_quote = risk.value_quote
        u.option_delta_base = risk.delta_base
        u.option_gamma_base_per_px = risk.gamma_base_per_px
        self.version += 1
        return out

    # ---- reads -----------------------------------------------------------------------------------

    def position_lots(self, symbol: str) -> int:
        return self.positions[symbol].lots

    def position_base(self, symbol: str) -> float:
        return self.positions[symbol].base

    def option_delta_base(self) -> float:
        """Σ quantity × N(d1) at the last underlying mark (0 before the first)."""
        return self._under.option_delta_base

    def option_gamma_base_per_px(self) -> float:
        return self._under.option_gamma_base_per_px

    def lp_delta_base(self) -> float:
        """The pool's token amount L/√P at the last underlying mark (0 before the first)."""
        if self.lp is None or self._under.price_px is None:
            return 0.0
        return self.lp.delta_base(self._under.price_px)

    def net_delta_base(self) -> float:
        """Spot + perp + LP delta + option deltas, base units."""
        linear = 0.0  # a plain loop: read on every timer, and a generator costs more than two additions
        for pos in self.positions.values():
            linear += pos.base
        return linear + self.lp_delta_base() + self.option_delta_base()

    def _deal_changes_quote(self) -> tuple[float, float]:
        """(calls, pool): their value change since their first mark, quote."""
        u = self._under
        # once marked, even with every call settled: their value moved into option_exercise
        option_change = u.option_value_quote - u.option_value0_quote if u.option_value0_quote is not None else 0.0
        lp_change = 0.0
        if self.lp is not None and u.price_px is not None and u.lp_value0_quote is not None:
            lp_change = self.lp.value_quote(u.price_px) - u.lp_value0_quote
        return option_change, lp_change

    def total_pnl_quote(self) -> float:
        """`pnl().total_quote` without the attribution (the engine's equity, read on every requote)."""
        option_change, lp_change = self._deal_changes_quote()
        linear = sum(pos.pnl_quote for pos in self.positions.values())
        return linear + option_change + lp_change + self._attr.lp_fees + self._attr.option_exercise

    def pnl(self) -> PnlAttribution:
        u = self._under
        option_change, lp_change = self._deal_changes_quote()
        linear_mtm = sum(pos.base * pos.mark_px - pos.mid_basis_quote for pos in self.positions.values())
        funding = sum(pos.funding_quote for pos in self.positions.values())
        total = self.total_pnl_quote()
        return PnlAttribution(
            spread_capture_quote=self._attr.spread_capture,
            quote_fees_quote=self._attr.quote_fees,
            inventory_mtm_quote=linear_mtm + lp_change - u.option_hedge_quote,
            hedge_cost_quote=self._attr.hedge_cost,
            funding_quote=funding,
            options_quote=option_change + u.option_hedge_quote,
            lp_fees_quote=self._attr.lp_fees,
            total_quote=total,
            option_exercise_quote=self._attr.option_exercise,
        )
