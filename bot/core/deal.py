"""The token-loan + call-option deal: its terms and the initial hedge plan, under two accountings.

The project lends `tokens_lent_base` tokens; the market maker must keep resting depth on CEX
venues (bids in quote, asks in tokens) and a DEX pool (half token, half quote), and holds call
tranches on the token. The plan is decided by assets and obligations, not by a price view:

- deployed tokens = Σ CEX ask depth / price + DEX pool token side / price;
- quote (USDT) needed = Σ CEX bid depth + DEX pool quote side;
- option delta = Σ quantity × N(d1) at the token price (Black-Scholes, zero rate, τ = time left to
  each call's absolute expiry, in years of 365 days).

Dates are absolute: the deal starts at `start_ns`, each call expires at its `expiry_ns`, the loan
goes back at `loan_return_ns` (ns since the epoch, UTC). The core never reads a clock: the plan is
valued at a time it is given (`at_ns`, by default the start), and a running engine at its own
`now_ns`, so a restart on day 200 prices the calls with 165 days left, not 365.

Two accountings of the loan are shown side by side, because the choice decides what is "long":

`article` (the source article's view): the lent tokens are the market maker's own long. It sells
tokens to raise the USDT, then sells the idle rest as an unhedged long: tokens_to_sell = lent −
deployed (3,000,000 − 700,000 = 2,300,000 in the example). What is still held (the deployed
tokens: CEX asks and the pool's token side) plus the calls' delta is long delta, which the perp
short offsets: perp_short = deployed + option delta.

`counting_return_obligation`: the tokens must be returned, so the loan is a short of
`tokens_lent_base` against the tokens held. Holding them all is then already flat; nothing needs
selling if the market maker funds the USDT side itself (the deal's usual terms), and the perp short
offsets only the calls' delta. Seen this way, the article's plan is a directional short of the whole
loan (`article_plan_net_delta_base` = −3,000,000 in the example): it profits if the price falls. If
the USDT must come from selling tokens instead, the sale is a short that a perp *long* offsets
(`usdt_by_selling_*`).

All amounts: tokens in base units (`_base`), money in quote (`_quote`); `perp_short_base` > 0 means
a short perp position of that many tokens (negative: a long).
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bot.core.execution import NS_PER_DAY_INT, SaleSchedule, book_density_quote, plan_sale
from bot.core.lp import ConstantProductLp, PoolState, SimulatedPool, SimulatedRangePool, restore_pool
from bot.core.options import NS_PER_DAY, CallOption, call_greeks

if TYPE_CHECKING:  # the core does not depend on the settings machinery at run time
    from bot.config import DealConfig
    from bot.core.portfolio import Portfolio

DAYS_PER_YEAR = 365.0
NS_PER_YEAR_365 = DAYS_PER_YEAR * NS_PER_DAY


def date_ns(day: datetime.date) -> int:
    """00:00 UTC of `day`, in ns since the epoch (a pure conversion: no clock is read)."""
    midnight = datetime.datetime(day.year, day.month, day.day, tzinfo=datetime.UTC)
    return int(midnight.timestamp()) * 1_000_000_000


def ns_date(ts_ns: int) -> str:
    """ISO date (UTC) of a time in ns since the epoch."""
    return datetime.datetime.fromtimestamp(ts_ns / 1e9, tz=datetime.UTC).date().isoformat()


@dataclass(frozen=True, slots=True)
class CallTranche:
    strike_px: float
    quantity_base: float
    expiry_ns: int  # absolute, ns since the epoch (UTC)

    def days_left(self, at_ns: int) -> float:
        return (self.expiry_ns - at_ns) / NS_PER_DAY


@dataclass(frozen=True, slots=True)
class VenueObligation:
    """Resting depth to keep within ±depth_band_pct of mid, and the spread cap (percent of mid)."""

    name: str
    bid_depth_quote: float
    ask_depth_quote: float
    depth_band_pct: float
    max_spread_pct: float


@dataclass(frozen=True, slots=True)
class DealTerms:
    token_price_px: float
    tokens_lent_base: float
    calls: tuple[CallTranche, ...]
    implied_vol_annual: float
    venues: tuple[VenueObligation, ...]
    dex_pool_size_quote: float
    dex_fee_rate: float = 0.0
    start_ns: int = 0
    loan_return_ns: int = round(NS_PER_YEAR_365)
    dex_pool_model: str = "formula"
    dex_pool_share: float = 1.0  # our fraction of the pool's liquidity
    dex_range_width: float | None = None  # concentrated: the range [P/w, P·w] at the deal's price

    @classmethod
    def from_config(cls, cfg: DealConfig, start_ns: int | None = None) -> DealTerms:
        """The terms with every date made absolute. `start_ns`: the deal's start when the config has
        no `start_date` (the first run's start, which the ledger keeps); the config's date wins."""
        start = date_ns(cfg.start_date) if cfg.start_date is not None else (start_ns or 0)

        def expiry(c: object) -> int:
            day = getattr(c, "expiry_date", None)
            return date_ns(day) if day is not None else start + round(getattr(c, "expiry_days", 0.0) * NS_PER_DAY)

        loan_end = (
            date_ns(cfg.loan_return_date)
            if cfg.loan_return_date is not None
            else start + round(cfg.loan_term_days * NS_PER_DAY)
        )
        return cls(
            token_price_px=cfg.token_price_quote,
            tokens_lent_base=cfg.tokens_lent_base,
            calls=tuple(CallTranche(c.strike_quote, c.quantity_base, expiry(c)) for c in cfg.calls),
            implied_vol_annual=cfg.implied_vol_annual,
            venues=tuple(
                VenueObligation(v.name, v.bid_depth_quote, v.ask_depth_quote, v.depth_band_pct, v.max_spread_pct)
                for v in cfg.venues
            ),
            dex_pool_size_quote=cfg.dex_pool_size_quote,
            dex_fee_rate=cfg.dex_fee_rate,
            start_ns=start,
            loan_return_ns=loan_end,
            dex_pool_model=cfg.dex_pool_model,
            dex_pool_share=cfg.dex_pool_share,
            dex_range_width=cfg.dex_range_width,
        )

    def call_options(self, settled: Iterable[float] = ()) -> tuple[CallOption, ...]:
        """The tranches still held (not exercised or lapsed: `settled` strikes) as portfolio positions,
        each with its absolute expiry."""
        done = set(settled)
        return tuple(
            CallOption(c.strike_px, c.quantity_base, c.expiry_ns) for c in self.calls if c.strike_px not in done
        )

    def lp_position(self, state: PoolState | None = None, session: str = "") -> ConstantProductLp | SimulatedPool:
        """The DEX pool position at the deal's token price: a constant-product pool holds equal value of
        each asset (x·P = y), so L = value / (2√P). `constant_product`: a simulated pool with its own
        reserves and price, restored from `state` (the ledger's, where the last run left it: its
        reserves, share and fees, not a fresh deposit) when given; `formula`: the position priced at
        the CEX mid. `session`: the venue session now (trade ids already swapped hold within it).
        `concentrated`: a Uniswap v3 range position [P/w, P·w] (w = `dex_range_width`), centred on the
        price so it too holds equal value of each asset."""
        if self.dex_pool_model in ("constant_product", "concentrated"):
            if state is not None:
                return restore_pool(state, session)
            if self.dex_pool_model == "concentrated":
                assert self.dex_range_width is not None  # the config refuses the model without it
                return SimulatedRangePool.centred(
                    self.dex_pool_size_quote,
                    self.token_price_px,
                    self.dex_range_width,
                    self.dex_fee_rate,
                    self.dex_pool_share,
                )
            return SimulatedPool.balanced(
                self.dex_pool_size_quote, self.token_price_px, self.dex_fee_rate, self.dex_pool_share
            )
        return ConstantProductLp.from_value(self.dex_pool_size_quote, self.token_price_px, self.dex_fee_rate)


@dataclass(frozen=True, slots=True)
class TrancheRisk:
    strike_px: float
    quantity_base: float
    expiry_days: float  # left at the valuation time
    delta: float  # per token, N(d1)
    delta_base: float
    gamma_base_per_px: float
    value_quote: float


@dataclass(frozen=True, slots=True)
class HedgeView:
    """The initial position under one accounting of the loan (see the module docstring)."""

    tokens_lent_base: float
    tokens_deployed_cex_base: float
    tokens_deployed_lp_base: float
    tokens_deployed_base: float
    usdt_needed_cex_quote: float
    usdt_needed_lp_quote: float
    usdt_needed_quote: float
    usdt_from_sales_quote: float
    usdt_from_own_capital_quote: float
    tokens_sold_for_usdt_base: float
    tokens_sold_as_unhedged_long_base: float
    tokens_to_sell_base: float
    tokens_held_base: float  # spot (wallet + CEX asks) and the pool's token side, after the sale
    loan_obligation_base: float  # 0, or −lent when the return obligation counts as a short
    option_delta_base: float
    net_delta_before_perp_base: float
    perp_short_inventory_base: float
    perp_short_options_base: float
    perp_short_base: float
    net_delta_after_base: float


@dataclass(frozen=True, slots=True)
class DealPlan:
    tranches: tuple[TrancheRisk, ...]
    article: HedgeView
    counting_return_obligation: HedgeView
    article_plan_net_delta_base: float  # the article's plan, with the return obligation counted
    usdt_by_selling_tokens_base: float  # obligation view, if the USDT must come from token sales...
    usdt_by_selling_perp_short_base: float  # ...the perp short that keeps it flat (negative = long)


def tranche_risks(terms: DealTerms, at_ns: int | None = None) -> tuple[TrancheRisk, ...]:
    """Each tranche's Black-Scholes greeks at `at_ns` (default: the deal's start)."""
    now = terms.start_ns if at_ns is None else at_ns
    out = []
    for c in terms.calls:
        days = c.days_left(now)
        g = call_greeks(terms.token_price_px, c.strike_px, terms.implied_vol_annual, days / DAYS_PER_YEAR)
        out.append(
            TrancheRisk(
                strike_px=c.strike_px,
                quantity_base=c.quantity_base,
                expiry_days=days,
                delta=g.delta,
                delta_base=c.quantity_base * g.delta,
                gamma_base_per_px=c.quantity_base * g.gamma_per_px,
                value_quote=c.quantity_base * g.value_px,
            )
        )
    return tuple(out)


def plan_deal(terms: DealTerms, at_ns: int | None = None) -> DealPlan:
    """The initial hedge plan under both accountings of the loan, valued at `at_ns` (default: start)."""
    price = terms.token_price_px
    cex_tokens = sum(v.ask_depth_quote for v in terms.venues) / price
    cex_usdt = sum(v.bid_depth_quote for v in terms.venues)
    lp_tokens = terms.dex_pool_size_quote * 0.5 / price  # constant product: half the value in each asset
    lp_usdt = terms.dex_pool_size_quote * 0.5
    tranches = tranche_risks(terms, at_ns)
    option_delta = sum(t.delta_base for t in tranches)
    lent = terms.tokens_lent_base
    deployed = cex_tokens + lp_tokens
    usdt = cex_usdt + lp_usdt

    def view(sold_for_usdt: float, sold_long: float, obligation: float) -> HedgeView:
        sold = sold_for_usdt + sold_long
        held = lent - sold
        inventory = held + obligation  # the perp also offsets what is held beyond the obligation
        net_before = inventory + option_delta
        perp_short = net_before  # the perp takes the whole remaining delta: spot + LP + calls − obligation
        return HedgeView(
            tokens_lent_base=lent,
            tokens_deployed_cex_base=cex_tokens,
            tokens_deployed_lp_base=lp_tokens,
            tokens_deployed_base=deployed,
            usdt_needed_cex_quote=cex_usdt,
            usdt_needed_lp_quote=lp_usdt,
            usdt_needed_quote=usdt,
            usdt_from_sales_quote=sold_for_usdt * price,
            usdt_from_own_capital_quote=usdt - sold_for_usdt * price,
            tokens_sold_for_usdt_base=sold_for_usdt,
            tokens_sold_as_unhedged_long_base=sold_long,
            tokens_to_sell_base=sold,
            tokens_held_base=held,
            loan_obligation_base=obligation,
            option_delta_base=option_delta,
            net_delta_before_perp_base=net_before,
            perp_short_inventory_base=inventory,
            perp_short_options_base=option_delta,
            perp_short_base=perp_short,
            net_delta_after_base=net_before - perp_short,
        )

    # article: raise the USDT by selling tokens, then sell whatever is neither deployed nor sold
    # (never more than was lent: a loan too small for the obligations leaves nothing idle)
    for_usdt = min(usdt / price, max(lent - deployed, 0.0))
    idle = max(lent - deployed - for_usdt, 0.0)
    article = view(for_usdt, idle, obligation=0.0)
    counting = view(0.0, 0.0, obligation=-lent)
    # the article's positions (held tokens, perp short) judged with the obligation counted
    article_seen_counting = article.tokens_held_base - lent + option_delta - article.perp_short_base
    return DealPlan(
        tranches=tranches,
        article=article,
        counting_return_obligation=counting,
        article_plan_net_delta_base=article_seen_counting,
        usdt_by_selling_tokens_base=usdt / price,
        usdt_by_selling_perp_short_base=option_delta - usdt / price,
    )


DEAL_EVENT_KINDS = ("started", "sold", "exercised", "lapsed", "loan_returned", "lp_deposited")


@dataclass(frozen=True, slots=True)
class DealEvent:
    """One step of the deal's life, as the ledger keeps it (table `deal_events`).

    - `started`: the deal's start (`ts_ns`), recorded by the first run when the config gives no date;
    - `sold`: `quantity_base` tokens of the initial sale sold at average `price_px`;
    - `exercised` / `lapsed`: the tranche at `strike_px` settled at expiry (`price_px`: the spot then;
      `amount_quote`: the exercise payoff (S − K)·quantity, 0 for a lapse);
    - `loan_returned`: `quantity_base` tokens given back to the project;
    - `lp_deposited`: the pool position's liquidity L (`quantity_base` tokens, `amount_quote` quote).
    """

    kind: str
    ts_ns: int
    quantity_base: float = 0.0
    price_px: float = 0.0
    strike_px: float | None = None
    amount_quote: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in DEAL_EVENT_KINDS:
            raise ValueError(f"unknown deal event kind {self.kind!r} (one of {', '.join(DEAL_EVENT_KINDS)})")


@dataclass(frozen=True, slots=True)
class DealState:
    """What a restart needs to carry the deal on where it stood: folded from the ledger's deal events."""

    start_ns: int | None = None
    sold_base: float = 0.0
    sold_quote: float = 0.0
    settled_strikes: frozenset[float] = frozenset()
    exercised_base: float = 0.0
    exercise_payoff_quote: float = 0.0
    loan_returned_base: float = 0.0
    lp_token_base: float | None = None
    lp_quote: float | None = None
    sales: tuple[tuple[int, float], ...] = ()  # every `sold` event: (ts_ns, quantity_base)
    pool: PoolState | None = None  # the simulated pool as the last run left it (the ledger's deal_pool)
    venue_session: str = ""  # the venue session of this run: trade ids the pool saw hold within it
    sale_carried_lots: int = 0  # of this venue session's spot position, what earlier runs' sale sold

    @classmethod
    def from_events(cls, events: Iterable[DealEvent]) -> DealState:
        start: int | None = None
        sold = sold_quote = exercised = payoff = returned = 0.0
        settled: set[float] = set()
        lp_tokens: float | None = None
        lp_quote: float | None = None
        sales: list[tuple[int, float]] = []
        for ev in events:
            if ev.kind == "started":
                start = ev.ts_ns if start is None else start  # the first start is the deal's
            elif ev.kind == "sold":
                sold += ev.quantity_base
                sold_quote += ev.quantity_base * ev.price_px
                sales.append((ev.ts_ns, ev.quantity_base))
            elif ev.kind in ("exercised", "lapsed") and ev.strike_px is not None and ev.strike_px not in settled:
                settled.add(ev.strike_px)  # settled once: a repeated row cannot pay twice
                if ev.kind == "exercised":
                    exercised += ev.quantity_base
                    payoff += ev.amount_quote
            elif ev.kind == "loan_returned":
                returned += ev.quantity_base
            elif ev.kind == "lp_deposited":
                lp_tokens, lp_quote = ev.quantity_base, ev.amount_quote
        return cls(
            start, sold, sold_quote, frozenset(settled), exercised, payoff, returned, lp_tokens, lp_quote, tuple(sales)
        )

    def sold_by_day(self, start_ns: int) -> dict[int, float]:
        """Tokens sold per schedule day (day d: [start + d days, start + d + 1 days))."""
        out: dict[int, float] = {}
        for ts, qty in self.sales:
            day = max(0, (ts - start_ns) // NS_PER_DAY_INT)
            out[day] = out.get(day, 0.0) + qty
        return out

    @property
    def sold_avg_px(self) -> float | None:
        return self.sold_quote / self.sold_base if self.sold_base > 0 else None


def sale_schedule(
    terms: DealTerms,
    twap_days: float,
    fee_rate: float,
    daily_volume_quote: float | None,
    max_participation: float,
    floor_pct: float | None,
) -> SaleSchedule:
    """The article's sale (`plan_deal(...).article.tokens_to_sell_base`) as an execution schedule
    into the book the deal's CEX bid obligations describe (Σ bid depth over each venue's band)."""
    density = sum(book_density_quote(v.bid_depth_quote, v.depth_band_pct) for v in terms.venues)
    to_sell = plan_deal(terms).article.tokens_to_sell_base
    return plan_sale(
        to_sell, terms.token_price_px, twap_days, density, fee_rate, daily_volume_quote, max_participation, floor_pct
    )


class DealLifecycle:
    """The deal's dated events in a running engine: calls settled at their expiry (exercised in the
    money, lapsed out of it: `Portfolio.settle_calls`) and the loan's return date. Each happens once,
    also across restarts (`returned`: the ledger already holds the loan's return); the caller records
    the `DealEvent`s this hands back and logs the notes."""

    def __init__(self, loan_return_ns: int | None, tokens_lent_base: float, returned: bool = False) -> None:
        self.loan_return_ns = loan_return_ns
        self.tokens_lent_base = tokens_lent_base
        self.returned = returned

    def on_mark(
        self, portfolio: Portfolio, price_px: float, now_ns: int, sigma_annual: float
    ) -> list[tuple[str, dict[str, object], DealEvent]]:
        """(log event name, its fields, the ledger's DealEvent) for whatever fell due by `now_ns`."""
        out: list[tuple[str, dict[str, object], DealEvent]] = []
        for s in portfolio.settle_calls(price_px, now_ns, sigma_annual):
            kind = "exercised" if s.exercised else "lapsed"
            fields: dict[str, object] = {
                "strike_px": s.strike_px,
                "quantity_base": s.quantity_base,
                "spot_px": s.spot_px,
                "payoff_quote": round(s.payoff_quote, 6),
            }
            event = DealEvent(kind, now_ns, s.quantity_base, s.spot_px, s.strike_px, s.payoff_quote)
            out.append((f"deal.call_{kind}", fields, event))
        if not self.returned and self.loan_return_ns is not None and now_ns >= self.loan_return_ns:
            self.returned = True
            event = DealEvent("loan_returned", now_ns, self.tokens_lent_base, price_px)
            out.append(("deal.loan_returned", {"tokens_base": self.tokens_lent_base, "spot_px": price_px}, event))
        return out
