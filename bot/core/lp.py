"""A constant-product (Uniswap v2 style) liquidity position: token amount, delta, value, fees.

The pool holds x tokens and y quote with x·y = L² and price P = y/x, so

    x = L/√P,   y = L·√P,   value = x·P + y = 2·L·√P,
    delta = ∂value/∂P = L/√P = x     (the LP's token amount is its delta),
    gamma = ∂delta/∂P = −L / (2·P^{3/2})   (negative: an LP is short gamma).

The pool's price is assumed arbitraged to the CEX mid, so P is the mid the portfolio marks at.
Fees: the pool pays `fee_rate` of its swap volume to its liquidity providers in proportion to
their share of L; `volume_quote` is *simulated* in this bot (a configured multiple of the spot
venue's public trade volume, see DealConfig.dex_volume_ratio), since the bot trades on no DEX.
"""

from __future__ import annotations

import dataclasses
import math
from collections import deque
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class ConstantProductLp:
    """Our position in a constant-product pool.

    `liquidity` is L = √(x·y) in √(base·quote); `fee_rate` is the fraction of swap volume paid to
    liquidity providers; `pool_share` is our fraction of the pool's L (1.0: we are the whole pool).
    """

    liquidity: float
    fee_rate: float = 0.0
    pool_share: float = 1.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.liquidity) and self.liquidity >= 0):
            raise ValueError(f"liquidity must be finite and >= 0, got {self.liquidity!r}")
        if not 0 <= self.fee_rate < 1:
            raise ValueError(f"fee_rate must be in [0, 1), got {self.fee_rate!r}")
        if not 0 < self.pool_share <= 1:
            raise ValueError(f"pool_share must be in (0, 1], got {self.pool_share!r}")

    @classmethod
    def from_deposit(cls, token_base: float, price_px: float, fee_rate: float = 0.0) -> ConstantProductLp:
        """A balanced deposit of `token_base` tokens (and token_base·P quote) at price P: L = x·√P."""
        _check_price(price_px)
        return cls(liquidity=token_base * math.sqrt(price_px), fee_rate=fee_rate)

    @classmethod
    def from_value(cls, value_quote: float, price_px: float, fee_rate: float = 0.0) -> ConstantProductLp:
        """A pool worth `value_quote` at price P (half in each asset): L = value / (2√P)."""
        _check_price(price_px)
        return cls(liquidity=value_quote / (2.0 * math.sqrt(price_px)), fee_rate=fee_rate)

    def token_base(self, price_px: float) -> float:
        """Tokens in the position at price P: L/√P."""
        _check_price(price_px)
        return self.liquidity / math.sqrt(price_px)

    def quote_amount(self, price_px: float) -> float:
        """Quote currency in the position at price P: L·√P."""
        _check_price(price_px)
        return self.liquidity * math.sqrt(price_px)

    def value_quote(self, price_px: float) -> float:
        """Mark-to-market value at price P: 2·L·√P (fees excluded)."""
        return self.token_base(price_px) * price_px + self.quote_amount(price_px)

    def delta_base(self, price_px: float) -> float:
        """Delta in tokens: ∂value/∂P = L/√P, the token amount."""
        return self.token_base(price_px)

    def gamma_base_per_px(self, price_px: float) -> float:
        """∂delta/∂P = −L/(2·P^{3/2}), tokens per quote unit of price (negative)."""
        _check_price(price_px)
        return -self.liquidity / (2.0 * price_px * math.sqrt(price_px))

    def fees_quote(self, volume_quote: float) -> float:
        """Our fee income from `volume_quote` of swaps through the pool."""
        if volume_quote < 0:
            raise ValueError(f"volume must be >= 0, got {volume_quote!r}")
        return self.fee_rate * volume_quote * self.pool_share


def impermanent_loss(price0_px: float, price1_px: float) -> float:
    """LP value over the value of holding the initial deposit, minus 1: 2√r/(1+r) − 1 with r = P1/P0 (≤ 0)."""
    _check_price(price0_px)
    _check_price(price1_px)
    r = price1_px / price0_px
    return 2.0 * math.sqrt(r) / (1.0 + r) - 1.0


def _check_price(price_px: float) -> None:
    if not (math.isfinite(price_px) and price_px > 0):
        raise ValueError(f"price must be finite and > 0, got {price_px!r}")


@dataclass(frozen=True, slots=True)
class PoolState:
    """Everything a `SimulatedPool` is, to persist it (the ledger's `deal_pool` row) and restore it
    exactly: the reserves, our share of them, what we earned, and the trades already swapped
    (`recent_trade_ids` of the venue session `session`), so a trade delivered again after a restart
    or a reconnect is not swapped twice."""

    token_base: float  # x, the pool's whole token reserve
    quote: float  # y, its quote reserve
    fee_rate: float
    share: float  # our fraction of the pool's liquidity (1.0: we are its only LP)
    fees_quote: float  # our fee income so far (our share of every fee)
    swap_volume_quote: float
    arb_volume_quote: float
    swaps: int
    arbs: int
    session: str = ""
    recent_trade_ids: tuple[str, ...] = ()
    # a concentrated (Uniswap v3) range position: its bounds, its liquidity L and √P (None: v2 pool)
    lower_px: float | None = None
    upper_px: float | None = None
    liquidity: float | None = None
    sqrt_px: float | None = None

    def to_dict(self) -> dict[str, object]:
        return {
            "lower_px": self.lower_px,
            "upper_px": self.upper_px,
            "liquidity": self.liquidity,
            "sqrt_px": self.sqrt_px,
            "token_base": self.token_base,
            "quote": self.quote,
            "fee_rate": self.fee_rate,
            "share": self.share,
            "fees_quote": self.fees_quote,
            "swap_volume_quote": self.swap_volume_quote,
            "arb_volume_quote": self.arb_volume_quote,
            "swaps": self.swaps,
            "arbs": self.arbs,
            "session": self.session,
            "recent_trade_ids": list(self.recent_trade_ids),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PoolState:
        return cls(
            token_base=float(d["token_base"]),
            quote=float(d["quote"]),
            fee_rate=float(d["fee_rate"]),
            share=float(d["share"]),
            fees_quote=float(d["fees_quote"]),
            swap_volume_quote=float(d["swap_volume_quote"]),
            arb_volume_quote=float(d["arb_volume_quote"]),
            swaps=int(d["swaps"]),
            arbs=int(d["arbs"]),
            session=str(d.get("session", "")),
            recent_trade_ids=tuple(str(t) for t in d.get("recent_trade_ids", ())),
            lower_px=_opt_float(d.get("lower_px")),
            upper_px=_opt_float(d.get("upper_px")),
            liquidity=_opt_float(d.get("liquidity")),
            sqrt_px=_opt_float(d.get("sqrt_px")),
        )


def _opt_float(value: Any) -> float | None:
    return None if value is None else float(value)


class SimulatedPool:
    """A constant-product pool with its own price (Uniswap v2 style; the vectorised twin for
    `mmbot simulate deal` is `bot/sim/pool.py`), of which we hold `share` of the liquidity.

    Reserves x tokens, y quote, x·y = k; a swap pays `fee_rate` on its input (our `share` of it paid
    out to us as `fees_quote`, tokens valued at the CEX price of the moment) and the net input moves
    along x·y = k. Noise swaps come from the CEX's public trades (`swap`: a public buy buys tokens
    from the pool too, `dex_volume_ratio` of its notional); arbitrageurs bring the pool back into
    [S·(1 − f), S/(1 − f)] around the CEX mid S on every mark (`arbitrage`), paying the fee. Our
    position is `share` of the pool: its delta is share·x, its value share·(x·S + y), so the
    impermanent loss comes from the reserves, not from a formula.

    State persists (`state` / `from_state`): a restart carries the reserves, share and fees over
    exactly, and a trade id already swapped in the same venue session is not swapped again.
    """

    RECENT_TRADES = 256  # trade ids remembered: a venue's re-delivery after a reconnect is recent

    def __init__(self, token_base: float, quote: float, fee_rate: float, share: float = 1.0) -> None:
        if not (token_base > 0 and quote > 0 and math.isfinite(token_base) and math.isfinite(quote)):
            raise ValueError(f"reserves must be finite and > 0, got {token_base!r}, {quote!r}")
        if not 0 <= fee_rate < 1:
            raise ValueError(f"fee_rate must be in [0, 1), got {fee_rate!r}")
        if not 0 < share <= 1:
            raise ValueError(f"share must be in (0, 1], got {share!r}")
        self.x = token_base
        self.y = quote
        self.fee_rate = fee_rate
        self.share = share
        self.fees_quote = 0.0
        self.swap_volume_quote = 0.0
        self.arb_volume_quote = 0.0
        self.swaps = 0
        self.arbs = 0
        self.duplicate_trades = 0
        self.session = ""
        self._recent: deque[str] = deque(maxlen=self.RECENT_TRADES)
        self._recent_set: set[str] = set()
        self.version = 0  # bumped by every change: the ledger observer persists on a new version

    @classmethod
    def balanced(cls, value_quote: float, price_px: float, fee_rate: float, share: float = 1.0) -> SimulatedPool:
        """Our deposit worth `value_quote` at `price_px`, half in each asset, being `share` of the pool."""
        _check_price(price_px)
        pool_value = value_quote / share
        return cls(pool_value / 2.0 / price_px, pool_value / 2.0, fee_rate, share)

    @classmethod
    def from_state(cls, state: PoolState, session: str = "") -> SimulatedPool:
        """The pool as persisted. The remembered trade ids hold only within the same venue `session`
        (a new session numbers its trades afresh: an old id is a new trade there)."""
        pool = cls(state.token_base, state.quote, state.fee_rate, state.share)
        pool._restore_counts(state, session)
        return pool

    def _restore_counts(self, state: PoolState, session: str) -> None:
        self.fees_quote = state.fees_quote
        self.swap_volume_quote = state.swap_volume_quote
        self.arb_volume_quote = state.arb_volume_quote
        self.swaps = state.swaps
        self.arbs = state.arbs
        self.session = session
        if session and session == state.session:
            for trade_id in state.recent_trade_ids:
                self._remember(trade_id)

    def state(self) -> PoolState:
        return PoolState(
            self.x,
            self.y,
            self.fee_rate,
            self.share,
            self.fees_quote,
            self.swap_volume_quote,
            self.arb_volume_quote,
            self.swaps,
            self.arbs,
            self.session,
            tuple(self._recent),
        )

    @property
    def price_px(self) -> float:
        return self.y / self.x

    def _remember(self, trade_id: str) -> None:
        if len(self._recent) == self._recent.maxlen:
            self._recent_set.discard(self._recent[0])
        self._recent.append(trade_id)
        self._recent_set.add(trade_id)

    def _buy_tokens(self, quote_in: float) -> float:
        k = self.x * self.y
        fee = self.fee_rate * quote_in
        self.y += quote_in - fee
        self.x = k / self.y
        return fee * self.share

    def _sell_tokens(self, tokens_in: float, cex_px: float) -> float:
        k = self.x * self.y
        fee = self.fee_rate * tokens_in * cex_px
        self.x += tokens_in * (1.0 - self.fee_rate)
        self.y = k / self.x
        return fee * self.share

    def swap(self, side_sign: int, notional_quote: float, cex_px: float, trade_id: str | None = None) -> float:
        """A noise swap of `notional_quote` (side +1: buys tokens). Returns our share of its fee. A
        `trade_id` already swapped is ignored (counted in `duplicate_trades`)."""
        if notional_quote <= 0:
            return 0.0
        if trade_id is not None:
            if trade_id in self._recent_set:
                self.duplicate_trades += 1
                return 0.0
            self._remember(trade_id)
        fee = (
            self._buy_tokens(notional_quote)
            if side_sign > 0
            else self._sell_tokens(notional_quote / self.price_px, cex_px)
        )
        self.fees_quote += fee
        self.swap_volume_quote += notional_quote
        self.swaps += 1
        self.version += 1
        return fee

    def arbitrage(self, cex_px: float) -> float:
        """Trade the pool back into the no-arbitrage band around `cex_px`. Returns our share of the fee."""
        _check_price(cex_px)
        f = self.fee_rate
        k = self.x * self.y
        low, high = cex_px * (1.0 - f), cex_px / (1.0 - f)
        fee = 0.0
        if self.price_px < low:
            quote_in = (math.sqrt(k * low) - self.y) / (1.0 - f)
            fee = self._buy_tokens(quote_in)
            self.arb_volume_quote += quote_in
        elif self.price_px > high:
            tokens_in = (math.sqrt(k / high) - self.x) / (1.0 - f)
            fee = self._sell_tokens(tokens_in, cex_px)
            self.arb_volume_quote += tokens_in * cex_px
        else:
            return 0.0
        self.fees_quote += fee
        self.arbs += 1
        self.version += 1
        return fee

    def summary(self, cex_px: float | None) -> dict[str, float | int | None]:
        """The pool as a venue of its own, for the session summary: reserves, price, our part, flow.
        Counts and fees are the pool's life so far (they carry over restarts), not this session's."""
        return {
            "token_base": round(self.x, 10),
            "quote": round(self.y, 8),
            "price_px": round(self.price_px, 8),
            "cex_px": cex_px,
            "share": self.share,
            "our_token_base": round(self.share * self.x, 10),
            "our_value_quote": round(self.value_quote(cex_px), 8) if cex_px else None,
            "fees_quote": round(self.fees_quote, 8),
            "swaps": self.swaps,
            "arbs": self.arbs,
            "swap_volume_quote": round(self.swap_volume_quote, 6),
            "arb_volume_quote": round(self.arb_volume_quote, 6),
            "duplicate_trades": self.duplicate_trades,
        }

    # the position API the portfolio reads (as ConstantProductLp's): our share of the reserves
    def token_base(self, price_px: float) -> float:
        return self.share * self.x

    def delta_base(self, price_px: float) -> float:
        return self.share * self.x

    def value_quote(self, price_px: float) -> float:
        return self.share * (self.x * price_px + self.y)

    def gamma_base_per_px(self, price_px: float) -> float:
        _check_price(price_px)
        return -self.share * math.sqrt(self.x * self.y) / (2.0 * price_px * math.sqrt(price_px))


class SimulatedRangePool(SimulatedPool):
    """A concentrated-liquidity position (Uniswap v3 style) on `[lower_px, upper_px]`, the only
    liquidity of its pool, with the pool's own price; the same venue behaviour as `SimulatedPool`
    (noise swaps from public trades, arbitrage into the fee band, fees paid to us, persisted state).

    With liquidity L and √P inside the range (the v3 whitepaper, eqs. 6.29-6.30; a swap within one
    range moves Δ√P = Δy/L for quote in and Δ(1/√P) = Δx/L for tokens in, fee taken from the input):

        x = L·(1/√P − 1/√Pb),   y = L·(√P − √Pa),   delta = x,   gamma = −L/(2·P^{3/2})

    Below Pa the position is all tokens (x = L·(1/√Pa − 1/√Pb)), above Pb all quote (y = L·(√Pb −
    √Pa)); there its delta is constant and its gamma 0. A swap that would push the price out of the
    range fills only up to the bound (no other liquidity), and arbitrage stops at the bound too.
    `x`, `y` are the position's real reserves at √P (what the portfolio and the ledger read).
    """

    def __init__(
        self, liquidity: float, sqrt_px: float, lower_px: float, upper_px: float, fee_rate: float, share: float = 1.0
    ) -> None:
        if not (0 < lower_px < upper_px and math.isfinite(upper_px)):
            raise ValueError(f"range must be 0 < lower < upper, got {lower_px!r}, {upper_px!r}")
        if not (liquidity > 0 and math.isfinite(liquidity)):
            raise ValueError(f"liquidity must be finite and > 0, got {liquidity!r}")
        self.liquidity = liquidity
        self.sqrt_lo = math.sqrt(lower_px)
        self.sqrt_hi = math.sqrt(upper_px)
        self.sqrt_px = min(max(sqrt_px, self.sqrt_lo), self.sqrt_hi)
        x, y = self._amounts()
        # the base class checks x, y > 0 and the fee; at a bound one side is 0: give it a token's dust
        super().__init__(max(x, 1e-300), max(y, 1e-300), fee_rate, share)
        self.x, self.y = x, y

    @classmethod
    def centred(
        cls, value_quote: float, price_px: float, width: float, fee_rate: float, share: float = 1.0
    ) -> SimulatedRangePool:
        """Our deposit worth `value_quote` at `price_px` on [P/width, P·width]: a range centred (in log
        price) on P holds equal value of each asset (x·P = y exactly when P = √(Pa·Pb)), as the
        deal's 50/50 pool obligation asks."""
        _check_price(price_px)
        if not width > 1:
            raise ValueError(f"range width must be > 1, got {width!r}")
        lo, hi = price_px / width, price_px * width
        sp = math.sqrt(price_px)
        per_l = (1.0 / sp - 1.0 / math.sqrt(hi)) * price_px + (sp - math.sqrt(lo))  # value of L = 1
        return cls(value_quote / share / per_l, sp, lo, hi, fee_rate, share)

    @classmethod
    def from_range_state(cls, state: PoolState, session: str = "") -> SimulatedRangePool:
        assert state.liquidity is not None and state.sqrt_px is not None
        assert state.lower_px is not None and state.upper_px is not None
        pool = cls(state.liquidity, state.sqrt_px, state.lower_px, state.upper_px, state.fee_rate, state.share)
        pool._restore_counts(state, session)
        return pool

    def state(self) -> PoolState:
        base = super().state()
        return dataclasses.replace(
            base,
            lower_px=self.sqrt_lo**2,
            upper_px=self.sqrt_hi**2,
            liquidity=self.liquidity,
            sqrt_px=self.sqrt_px,
        )

    def _amounts(self) -> tuple[float, float]:
        sp, L = self.sqrt_px, self.liquidity
        return L * (1.0 / sp - 1.0 / self.sqrt_hi), L * (sp - self.sqrt_lo)

    def _move_to(self, sqrt_px: float) -> None:
        self.sqrt_px = min(max(sqrt_px, self.sqrt_lo), self.sqrt_hi)
        self.x, self.y = self._amounts()

    @property
    def price_px(self) -> float:
        return self.sqrt_px * self.sqrt_px

    def _buy_tokens(self, quote_in: float) -> float:
        f = self.fee_rate
        target = self.sqrt_px + (1.0 - f) * quote_in / self.liquidity
        before = self.sqrt_px
        self._move_to(target)
        used_net = self.liquidity * (self.sqrt_px - before)  # less than asked when the range ran out
        return used_net / (1.0 - f) * f * self.share

    def _sell_tokens(self, tokens_in: float, cex_px: float) -> float:
        f = self.fee_rate
        before = 1.0 / self.sqrt_px
        self._move_to(1.0 / (before + (1.0 - f) * tokens_in / self.liquidity))
        used_net = self.liquidity * (1.0 / self.sqrt_px - before)
        return used_net / (1.0 - f) * f * cex_px * self.share

    def arbitrage(self, cex_px: float) -> float:
        """Trade √P back into the fee band around `cex_px` (clamped to the range), paying the fee."""
        _check_price(cex_px)
        f = self.fee_rate
        low, high = cex_px * (1.0 - f), cex_px / (1.0 - f)
        p = self.price_px
        if p < low and self.sqrt_px < self.sqrt_hi:
            target = min(math.sqrt(low), self.sqrt_hi)
            quote_net = self.liquidity * (target - self.sqrt_px)
            fee = self._buy_tokens(quote_net / (1.0 - f))
            self.arb_volume_quote += quote_net / (1.0 - f)
        elif p > high and self.sqrt_px > self.sqrt_lo:
            target = max(math.sqrt(high), self.sqrt_lo)
            tokens_net = self.liquidity * (1.0 / target - 1.0 / self.sqrt_px)
            fee = self._sell_tokens(tokens_net / (1.0 - f), cex_px)
            self.arb_volume_quote += tokens_net / (1.0 - f) * cex_px
        else:
            return 0.0
        self.fees_quote += fee
        self.arbs += 1
        self.version += 1
        return fee

    def gamma_base_per_px(self, price_px: float) -> float:
        if not self.sqrt_lo < self.sqrt_px < self.sqrt_hi:
            return 0.0
        return -self.share * self.liquidity / (2.0 * self.price_px * self.sqrt_px)

    def summary(self, cex_px: float | None) -> dict[str, float | int | None]:
        return {
            **super().summary(cex_px),
            "lower_px": round(self.sqrt_lo**2, 8),
            "upper_px": round(self.sqrt_hi**2, 8),
            "in_range": self.sqrt_lo < self.sqrt_px < self.sqrt_hi,
        }


def restore_pool(state: PoolState, session: str = "") -> SimulatedPool:
    """The pool a `PoolState` describes: a range position when it has bounds, else a v2 pool."""
    if state.lower_px is not None:
        return SimulatedRangePool.from_range_state(state, session)
    return SimulatedPool.from_state(state, session)
